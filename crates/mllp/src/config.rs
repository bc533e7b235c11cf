//! Settings for listeners and clients, readable from TOML field by field.

use std::path::PathBuf;
use std::time::Duration;

use conf::duration;
use serde::Deserialize;

use crate::error::MllpError;
use crate::frame::DEFAULT_MAX_FRAME_SIZE;

/// Settings of one MLLP listener.
///
/// Every field but `listen` has a default, so the smallest TOML is one line:
///
/// ```
/// let config: mllp::MllpServerConfig = toml::from_str(r#"
///     listen = "127.0.0.1:2575"
///     read_timeout = "10s"
///     max_connections = 200
///     [tls]
///     cert_path = "certs/server.pem"
///     key_path = "certs/server.key"
///     client_ca_path = "certs/senders-ca.pem"
/// "#).unwrap();
/// assert_eq!(config.read_timeout, std::time::Duration::from_secs(10));
/// assert_eq!(config.idle_timeout, std::time::Duration::from_secs(3600));
/// ```
///
/// Durations are written as a number of seconds (`30`) or a string with a unit:
/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpServerConfig {
    /// Address to listen on, `host:port` (`"0.0.0.0:2575"`). Port 0 picks a free
    /// port; [`ServerHandle::local_addr`](crate::ServerHandle::local_addr) tells which.
    pub listen: String,
    /// Serve MLLP over TLS instead of plain TCP. Absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
    /// Largest accepted payload in bytes (default 16 MiB). A frame that grows past
    /// it closes the connection, so a sender that never ends a frame cannot make
    /// the server buffer without bound.
    #[serde(default = "default_max_frame_size")]
    pub max_frame_size: usize,
    /// Time a sender has to finish a frame once it started one (default 30 s).
    /// It also bounds the TLS handshake and the writing of each frame's
    /// responses (a peer that stops reading is cut). Past it the connection is closed.
    #[serde(
        default = "default_read_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub read_timeout: Duration,
    /// Time a connection may stay open without starting a frame (default 1 h).
    /// Past it the connection is closed; senders reconnect when they next send.
    /// `0` keeps idle connections open forever.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub idle_timeout: Duration,
    /// Most connections served at once (default 1024). Connections beyond it
    /// are closed as soon as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// MLLP release 2: senders expect a commit acknowledgement frame
    /// ([`CommitAck`](crate::CommitAck)) once each message is durably stored.
    /// The server only passes this flag to the handler through
    /// [`ConnectionInfo::commit_acks`](crate::ConnectionInfo::commit_acks); the
    /// handler sends the commit acknowledgement as its first response. Default off.
    #[serde(default)]
    pub commit_acks: bool,
    /// Client addresses allowed to connect, as CIDR blocks (`"10.0.0.0/8"`,
    /// `"192.0.2.7/32"`, `"2001:db8::/32"`). Empty (the default): every address.
    /// A connection from elsewhere is closed before anything is read from it, logged
    /// with its address and counted in
    /// [`ServerStats::connections_not_allowed`](crate::ServerStats::connections_not_allowed).
    #[serde(default)]
    pub allow_from: Vec<ipnet::IpNet>,
    /// With mutual TLS, the client certificate subjects allowed, RFC 4514 style
    /// (`"CN=lab-1,O=Hospital"`, as [`ConnectionInfo::client_subject`]
    /// (crate::ConnectionInfo::client_subject) reports them). Empty (the default):
    /// any certificate the client CA issued. A connection with another subject is
    /// closed after the handshake, before any frame is read, and counted like
    /// `allow_from`'s.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
}

impl MllpServerConfig {
    /// Plain-TCP settings with every default, listening on `listen`.
    pub fn new(listen: impl Into<String>) -> Self {
        MllpServerConfig {
            listen: listen.into(),
            tls: None,
            max_frame_size: default_max_frame_size(),
            read_timeout: default_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            commit_acks: false,
            allow_from: Vec::new(),
            allow_subjects: Vec::new(),
        }
    }

    /// Whether a client at `addr` may connect (an IPv4 address a dual-stack listener
    /// sees as `::ffff:a.b.c.d` is checked as IPv4).
    pub fn allows_address(&self, addr: std::net::IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.allow_from.is_empty() || self.allow_from.iter().any(|net| net.contains(&addr))
    }

    /// Whether a client whose certificate has `subject` may stay connected.
    pub fn allows_subject(&self, subject: Option<&str>) -> bool {
        self.allow_subjects.is_empty()
            || subject.is_some_and(|subject| self.allow_subjects.iter().any(|s| s == subject))
    }
}

impl MllpServerConfig {
    /// Checks values that would make the listener useless; the error names the key.
    pub fn validate(&self) -> Result<(), MllpError> {
        let invalid = |key: &str, why: &str| Err(MllpError::InvalidConfig(format!("{key}: {why}")));
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_frame_size == 0 {
            return invalid("max_frame_size", "must be at least 1 byte");
        }
        if self.read_timeout.is_zero() {
            return invalid("read_timeout", "must be longer than 0");
        }
        let mutual = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_path.is_some());
        if !self.allow_subjects.is_empty() && !mutual {
            return invalid(
                "allow_subjects",
                "needs mutual TLS (`tls.client_ca_path`): without it no client has a certificate",
            );
        }
        Ok(())
    }
}

fn default_max_frame_size() -> usize {
    DEFAULT_MAX_FRAME_SIZE
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_connections() -> usize {
    1024
}

/// TLS settings of a listener. Files are PEM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The server's certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// When set, mutual TLS: every client must present a certificate issued by
    /// one of these CAs, or the connection is refused. The certificate's subject
    /// is reported in [`ConnectionInfo::client_subject`](crate::ConnectionInfo::client_subject).
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}

/// TLS settings of a client. Files are PEM.
///
/// ```
/// let tls: mllp::TlsClientConfig = toml::from_str(r#"
///     ca_path = "certs/ca.pem"
///     cert_path = "certs/client.pem"
///     key_path = "certs/client.key"
///     server_name = "engine.hospital.example"
/// "#).unwrap();
/// assert!(tls.cert_path.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// CA certificates the server's certificate must chain to.
    pub ca_path: PathBuf,
    /// Client certificate chain for mutual TLS (needs `key_path` too).
    #[serde(default)]
    pub cert_path: Option<PathBuf>,
    /// Client private key for mutual TLS (needs `cert_path` too).
    #[serde(default)]
    pub key_path: Option<PathBuf>,
    /// Name the server certificate must carry. Default: the host part of the
    /// address connected to (a DNS name or an IP address).
    #[serde(default)]
    pub server_name: Option<String>,
}

impl TlsClientConfig {
    /// Trust the CAs in `ca_path`, no client certificate.
    pub fn new(ca_path: impl Into<PathBuf>) -> Self {
        TlsClientConfig {
            ca_path: ca_path.into(),
            cert_path: None,
            key_path: None,
            server_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_server_config_takes_every_default() {
        let config: MllpServerConfig = toml::from_str(r#"listen = "127.0.0.1:2575""#).unwrap();
        assert_eq!(config, MllpServerConfig::new("127.0.0.1:2575"));
        assert_eq!(config.max_frame_size, 16 * 1024 * 1024);
    }

    #[test]
    fn zero_limits_are_refused_naming_the_key() {
        let mut config = MllpServerConfig::new("127.0.0.1:0");
        config.max_connections = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_connections"), "{err}");
        let mut config = MllpServerConfig::new("127.0.0.1:0");
        config.read_timeout = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("read_timeout")
        );
        assert!(MllpServerConfig::new("127.0.0.1:0").validate().is_ok());
    }

    #[test]
    fn numeric_timeout_is_seconds() {
        let config: MllpServerConfig =
            toml::from_str("listen = \"127.0.0.1:0\"\nidle_timeout = 0\nread_timeout = 5").unwrap();
        assert_eq!(config.idle_timeout, Duration::ZERO);
        assert_eq!(config.read_timeout, Duration::from_secs(5));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = toml::from_str::<MllpServerConfig>("listen = \"x:1\"\nmax_conections = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn bad_duration_is_an_error_that_shows_the_expected_form() {
        let err = toml::from_str::<MllpServerConfig>("listen = \"x:1\"\nread_timeout = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon") && err.contains("30s"), "{err}");
    }
}
