//! The crate's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::FrameTooLarge;

/// Everything that can go wrong while framing, serving or sending over MLLP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MllpError {
    /// A certificate, key or CA file could not be read or holds no usable PEM item.
    #[error("cannot load {what} from {}: {reason}", path.display())]
    Pem {
        /// What the file was supposed to hold ("server certificate", "client CA", ...).
        what: &'static str,
        /// The file that failed.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// A setting has a value the listener cannot work with.
    #[error("invalid MLLP listener setting {0}")]
    InvalidConfig(String),
    /// The TLS settings were readable but rustls refused them.
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    /// The listen address could not be resolved or bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The peer address could not be resolved or connected to.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address given to the client.
        addr: String,
        /// The reason.
        source: io::Error,
    },
    /// The TLS handshake with the peer failed (untrusted certificate, wrong name, ...).
    #[error("TLS handshake with {addr} failed: {source}")]
    TlsHandshake {
        /// The peer address.
        addr: String,
        /// The reason given by rustls.
        source: io::Error,
    },
    /// The name to check the server certificate against is not a valid DNS name or IP.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// A received frame grew past the maximum frame size.
    #[error(transparent)]
    FrameTooLarge(#[from] FrameTooLarge),
    /// A payload to send contains a start or end block byte and cannot be framed.
    #[error(
        "payload contains MLLP control byte 0x{byte:02X} at offset {offset} and cannot be framed"
    )]
    PayloadNotFramable {
        /// The offending byte (0x0B or 0x1C).
        byte: u8,
        /// Its offset in the payload.
        offset: usize,
    },
    /// No response frame arrived in time.
    #[error("no response frame within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection between frames.
    #[error("connection closed by the peer")]
    ConnectionClosed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed by the peer in the middle of a frame")]
    ClosedMidFrame,
    /// Reading from or writing to the connection failed.
    #[error("connection I/O failed: {0}")]
    Io(#[from] io::Error),
}
