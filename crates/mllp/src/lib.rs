//! MLLP framing, and async MLLP servers and clients over TCP and TLS.
//!
//! The Minimal Lower Layer Protocol carries HL7 v2 messages over a byte
//! stream: each message is one frame, `0x0B` + payload + `0x1C 0x0D`. This
//! crate moves frames and nothing else: it does not parse HL7 and does not
//! store anything. A [`FrameHandler`] supplied by the caller (the engine)
//! decides what each received frame is answered with.
//!
//! - [`FrameDecoder`] / [`encode_frame`]: the framing, tolerant of junk between
//!   frames and of a missing final CR, with a hard frame size limit.
//! - [`MllpServer`]: a listener (plain TCP or TLS, optionally mutual TLS) that
//!   serves many connections concurrently and each connection's frames strictly
//!   in order, with read and idle timeouts, a connection limit and graceful
//!   shutdown. Frames a sender pipelined arrive at the handler as one batch
//!   ([`FrameHandler::on_frames`]) so it can commit them with one fsync.
//! - [`MllpClient`]: a connection that sends a frame and waits for its answer,
//!   or splits into [`FrameWriter`] and [`FrameReader`] for pipelined sending.
//! - [`CommitAck`]: MLLP release 2 commit acknowledgements.
//!
//! TLS is rustls with the *ring* provider. Logs go through `tracing`: one line
//! per bad event (junk skipped, frame too large, timeouts, TLS failures,
//! connection limit), never message content.
//!
//! ```
//! use bytes::Bytes;
//! use mllp::{handler_fn, ConnectionInfo, MllpClient, MllpServer, MllpServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mllp::MllpError> {
//! // A listener on a free port that answers every frame with "ACK:<frame>".
//! let server = MllpServer::bind("lab", MllpServerConfig::new("127.0.0.1:0")).await?;
//! let handle = server.spawn(handler_fn(|frame: Bytes, _conn: &ConnectionInfo| async move {
//!     vec![Bytes::from([&b"ACK:"[..], &frame[..]].concat())]
//! }));
//!
//! let mut client = MllpClient::connect(&handle.local_addr().to_string(), None).await?;
//! let answer = client.send(b"MSH|^~\\&|LAB").await?;
//! assert_eq!(answer.as_ref(), b"ACK:MSH|^~\\&|LAB");
//!
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod client;
mod codec;
mod config;
mod error;
mod frame;
mod server;
mod subject;
mod tls;

pub use client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, FrameReader, FrameWriter, MllpClient,
    MllpConnector,
};
pub use codec::{FrameDecoder, FrameTooLarge, MllpCodec};
pub use config::{MllpServerConfig, TlsClientConfig, TlsServerConfig};
pub use error::MllpError;
pub use frame::{
    CARRIAGE_RETURN, COMMIT_ACK_PAYLOAD, COMMIT_NAK_PAYLOAD, CommitAck, DEFAULT_MAX_FRAME_SIZE,
    END_BLOCK, FRAME_OVERHEAD, START_BLOCK, encode_frame, encode_frame_into,
};
pub use server::{
    ConnectionId, ConnectionInfo, FnHandler, FrameHandler, MllpServer, ServerHandle, ServerStats,
    StatsReader, handler_fn,
};
pub use subject::subject_of_certificate;
pub use tls::server_acceptor;
/// The TLS crate [`server_acceptor`]'s acceptor comes from, for servers built on it.
pub use tokio_rustls;
