//! The MLLP client: one connection, send a frame and wait for the answer, or
//! split into a writer and a reader for pipelined, open-loop sending.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::either::Either;
use tracing::warn;

use crate::codec::FrameDecoder;
use crate::config::TlsClientConfig;
use crate::error::MllpError;
use crate::frame::{DEFAULT_MAX_FRAME_SIZE, encode_frame_into};
use crate::tls::{ClientTls, client_tls, parse_server_name};

/// Plain TCP or TLS over TCP.
type ClientStream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

const READ_CHUNK: usize = 16 * 1024;

/// Default time [`MllpClient::send`] waits for the response frame.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to establish the TCP connection and TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens client connections with shared settings; TLS files are read once.
///
/// ```no_run
/// # async fn demo() -> Result<(), mllp::MllpError> {
/// use std::time::Duration;
/// let connector = mllp::MllpConnector::new(None)?.response_timeout(Duration::from_secs(5));
/// let mut client = connector.connect("127.0.0.1:2575").await?;
/// let ack = client.send(b"MSH|^~\\&|LAB|...").await?;
/// # let _ = ack; Ok(()) }
/// ```
#[derive(Clone)]
pub struct MllpConnector {
    tls: Option<ClientTls>,
    response_timeout: Duration,
    connect_timeout: Duration,
    max_frame_size: usize,
}

impl std::fmt::Debug for MllpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpConnector")
            .field("tls", &self.tls.is_some())
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .finish()
    }
}

impl MllpConnector {
    /// Plain TCP when `tls` is `None`; otherwise loads the PEM files now, with
    /// errors that name the file.
    pub fn new(tls: Option<TlsClientConfig>) -> Result<MllpConnector, MllpError> {
        Ok(MllpConnector {
            tls: tls.as_ref().map(client_tls).transpose()?,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        })
    }

    /// How long [`MllpClient::send`] and [`MllpClient::receive`] wait for a frame.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long connecting (TCP and TLS handshake) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Largest response payload accepted (default 16 MiB).
    pub fn max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Connects to `addr` (`"host:port"`), completing the TLS handshake if configured.
    pub async fn connect(&self, addr: &str) -> Result<MllpClient, MllpError> {
        let connect_error = |source| MllpError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let timed_out = || {
            connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not connected within {:?}", self.connect_timeout),
            ))
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())?
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        let peer_addr = tcp.peer_addr().map_err(connect_error)?;
        let stream = match &self.tls {
            None => Either::Left(tcp),
            Some(tls) => {
                let server_name = match &tls.server_name {
                    Some(name) => name.clone(),
                    None => server_name_of(addr)?,
                };
                let handshake = tls.connector.connect(server_name, tcp);
                let stream = tokio::time::timeout(self.connect_timeout, handshake)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| MllpError::TlsHandshake {
                        addr: addr.to_owned(),
                        source,
                    })?;
                Either::Right(stream)
            }
        };
        Ok(MllpClient {
            stream,
            peer_addr,
            reader: FrameReadState::new(self.max_frame_size),
            out: BytesMut::new(),
            response_timeout: self.response_timeout,
        })
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn server_name_of(addr: &str) -> Result<ServerName<'static>, MllpError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    parse_server_name(host)
}

/// One MLLP connection to a server.
///
/// [`send`](Self::send) frames a payload, writes it and waits for one response
/// frame. With MLLP release 2 the first response is the commit acknowledgement
/// ([`CommitAck::from_payload`](crate::CommitAck::from_payload) recognises it);
/// call [`receive`](Self::receive) for a following application ACK.
pub struct MllpClient {
    stream: ClientStream,
    peer_addr: SocketAddr,
    reader: FrameReadState,
    out: BytesMut,
    response_timeout: Duration,
}

impl std::fmt::Debug for MllpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpClient")
            .field("peer_addr", &self.peer_addr)
            .field("tls", &matches!(self.stream, Either::Right(_)))
            .finish_non_exhaustive()
    }
}

impl MllpClient {
    /// Connects with default timeouts; shorthand for
    /// [`MllpConnector::new(tls)?.connect(addr)`](MllpConnector::connect).
    pub async fn connect(
        addr: &str,
        tls: Option<TlsClientConfig>,
    ) -> Result<MllpClient, MllpError> {
        MllpConnector::new(tls)?.connect(addr).await
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Sends `payload` as one frame and returns the payload of the next frame
    /// received, waiting at most the response timeout.
    ///
    /// After [`MllpError::Timeout`] the answer may still arrive later and would
    /// then be read as the answer to the next message: reconnect instead of
    /// sending on the same connection.
    pub async fn send(&mut self, payload: &[u8]) -> Result<Bytes, MllpError> {
        self.send_frame(payload).await?;
        self.receive().await
    }

    /// Sends `payload` as one frame without waiting for an answer.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), MllpError> {
        write_frame(&mut self.stream, &mut self.out, payload).await
    }

    /// Waits at most the response timeout for the next frame.
    pub async fn receive(&mut self) -> Result<Bytes, MllpError> {
        let timeout = self.response_timeout;
        match tokio::time::timeout(timeout, self.reader.next_frame(&mut self.stream)).await {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(MllpError::ConnectionClosed),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(MllpError::Timeout(timeout)),
        }
    }

    /// Closes the connection cleanly (TLS close_notify, then FIN).
    pub async fn close(mut self) -> Result<(), MllpError> {
        Ok(self.stream.shutdown().await?)
    }

    /// Splits the connection so one task can send while another reads
    /// responses. Frames already received but not yet read stay with the reader.
    pub fn into_split(self) -> (FrameWriter, FrameReader) {
        let (read_half, write_half) = tokio::io::split(self.stream);
        (
            FrameWriter {
                stream: write_half,
                out: self.out,
            },
            FrameReader {
                stream: read_half,
                state: self.reader,
            },
        )
    }
}

/// The sending half of a split [`MllpClient`].
pub struct FrameWriter {
    stream: WriteHalf<ClientStream>,
    out: BytesMut,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").finish_non_exhaustive()
    }
}

impl FrameWriter {
    /// Frames `payload`, writes it and flushes.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), MllpError> {
        write_frame(&mut self.stream, &mut self.out, payload).await
    }

    /// Closes the sending direction; the reader still receives what the server sends.
    pub async fn close(mut self) -> Result<(), MllpError> {
        Ok(self.stream.shutdown().await?)
    }
}

/// The receiving half of a split [`MllpClient`].
pub struct FrameReader {
    stream: ReadHalf<ClientStream>,
    state: FrameReadState,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader").finish_non_exhaustive()
    }
}

impl FrameReader {
    /// Waits for the next frame; `Ok(None)` when the server closed the
    /// connection between frames. Cancel safe: wrapping it in
    /// `tokio::time::timeout` loses no data.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, MllpError> {
        self.state.next_frame(&mut self.stream).await
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    stream: &mut W,
    out: &mut BytesMut,
    payload: &[u8],
) -> Result<(), MllpError> {
    out.clear();
    encode_frame_into(payload, out)?;
    stream.write_all(out).await?;
    stream.flush().await?;
    Ok(())
}

/// Read buffer and decoder of one connection.
struct FrameReadState {
    decoder: FrameDecoder,
    buf: BytesMut,
}

impl FrameReadState {
    fn new(max_frame_size: usize) -> Self {
        FrameReadState {
            decoder: FrameDecoder::new(max_frame_size),
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Cancel safe: all state lives in `self`, and `read_buf` is cancel safe.
    async fn next_frame<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Bytes>, MllpError> {
        loop {
            let frame = self.decoder.decode(&mut self.buf)?;
            let skipped = self.decoder.take_skipped_bytes();
            if skipped > 0 {
                warn!(
                    skipped_bytes = skipped,
                    "skipped bytes outside MLLP frames in server response"
                );
            }
            if let Some(frame) = frame {
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK);
            if stream.read_buf(&mut self.buf).await? == 0 {
                return if self.decoder.is_mid_frame() {
                    Err(MllpError::ClosedMidFrame)
                } else {
                    Ok(None)
                };
            }
        }
    }
}
