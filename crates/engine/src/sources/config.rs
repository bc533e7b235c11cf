//! A channel's `source = { type = "...", ... }`: the keys every kind of source takes,
//! here, and the kind that `type` names with its own typed struct, in its module
//! ([`MllpSourceConfig`], [`HttpSourceConfig`], [`DirectorySourceConfig`],
//! [`FhirSourceConfig`]).
//!
//! The table is read by `conf::tagged`, so a key of another kind is refused naming it
//! (`channels.lab.source.read_timeout: is not a key of a directory source (mllp, http and fhir
//! sources take it)`), with its line, as any other bad key is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::database::DatabaseSourceConfig;
use super::directory::DirectorySourceConfig;
use super::fhir::FhirSourceConfig;
use super::http::HttpSourceConfig;
use super::mllp::MllpSourceConfig;
use super::nats::NatsSourceConfig;
use super::sftp::SftpSourceConfig;
use super::shared_keys::{AckModeSetting, default_max_frame_size};
use conf::{ByteSize, DuplicateWindow};

/// `source = { type = "mllp", listen = "127.0.0.1:2575", ... }`,
/// `{ type = "http", listen = "0.0.0.0:8081" }`, `{ type = "fhir", listen = "0.0.0.0:8082" }` or
/// `{ type = "directory", path = "/var/spool/lab", pattern = "*.hl7" }`.
///
/// ```
/// let config = engine::Config::from_toml(r#"
///     [channels.lab]
///     source = { type = "mllp", listen = "127.0.0.1:0", read_timeout = "5s", ack_mode = "enhanced" }
/// "#).unwrap();
/// let source = &config.channels["lab"].source;
/// assert_eq!(source.ack_mode, engine::AckModeSetting::Enhanced);
/// let engine::SourceSettings::Mllp(mllp) = &source.settings else { panic!("not mllp") };
/// assert_eq!(mllp.read_timeout.0, std::time::Duration::from_secs(5));
///
/// let error = engine::Config::from_toml(
///     "[channels.lab]\nsource = { type = \"directory\", path = \".\", read_timeout = \"5s\" }\n",
/// ).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "line 2: channels.lab.source.read_timeout: is not a key of a directory source \
///      (mllp, http and fhir sources take it)",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// `"original"` (default) or `"enhanced"`.
    pub ack_mode: AckModeSetting,
    /// How long a repeated sending application/facility + MSH-10 counts as a
    /// duplicate (default `"10m"`); `"off"` or `0` turns detection off.
    pub duplicate_window: DuplicateWindow,
    /// Largest accepted message (default `"16MiB"`): an MLLP frame, an HTTP body, one
    /// message of a file.
    pub max_frame_size: ByteSize,
    /// The kind of source `type` names, with its own keys.
    pub settings: SourceSettings,
}

/// The keys every kind of source takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedKeys {
    #[serde(default)]
    ack_mode: AckModeSetting,
    #[serde(default)]
    duplicate_window: DuplicateWindow,
    #[serde(default = "default_max_frame_size")]
    max_frame_size: ByteSize,
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shared, settings): (SharedKeys, SourceSettings) =
            conf::tagged::deserialize(deserializer, "source")?;
        Ok(SourceConfig {
            ack_mode: shared.ack_mode,
            duplicate_window: shared.duplicate_window,
            max_frame_size: shared.max_frame_size,
            settings,
        })
    }
}

/// A source's own keys, by the kind its `type` names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceSettings {
    /// `type = "mllp"`.
    Mllp(MllpSourceConfig),
    /// `type = "http"`.
    Http(HttpSourceConfig),
    /// `type = "directory"`.
    Directory(DirectorySourceConfig),
    /// `type = "fhir"`.
    Fhir(FhirSourceConfig),
    /// `type = "nats"`.
    Nats(NatsSourceConfig),
    /// `type = "database"`.
    Database(DatabaseSourceConfig),
    /// `type = "sftp"`.
    Sftp(SftpSourceConfig),
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// An MLLP listener (plain TCP or TLS).
    Mllp,
    /// An HTTP listener: each `POST` carries a raw HL7 message (or a batch) and its
    /// answer carries the acknowledgement.
    Http,
    /// A folder read at an interval: each file holds one or more messages (or a batch)
    /// and is moved to `done` (or `error`) once its messages are stored.
    Directory,
    /// An HTTP listener for FHIR R4: each `POST` of a resource, a Bundle or a
    /// Subscription notification becomes HL7 v2 messages; the answer is an
    /// OperationOutcome.
    Fhir,
    /// A durable pull consumer on a NATS JetStream stream: each NATS message carries a
    /// message (or a batch) and is acknowledged once its messages are stored.
    Nats,
    /// A database query polled at an interval: each row becomes a message through a
    /// template; the position is stored with the message.
    Database,
    /// A folder on an SFTP server read at an interval, as the directory source reads a
    /// local one: files renamed into `done` (or `error`) once their messages are stored.
    Sftp,
}

impl SourceKind {
    /// The word the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Mllp => "mllp",
            SourceKind::Http => "http",
            SourceKind::Directory => "directory",
            SourceKind::Fhir => "fhir",
            SourceKind::Nats => "nats",
            SourceKind::Database => "database",
            SourceKind::Sftp => "sftp",
        }
    }
}

impl SourceConfig {
    fn with(settings: SourceSettings) -> SourceConfig {
        SourceConfig {
            ack_mode: AckModeSetting::default(),
            duplicate_window: DuplicateWindow::default(),
            max_frame_size: default_max_frame_size(),
            settings,
        }
    }

    /// An MLLP source on `listen` with every default.
    pub fn mllp(listen: SocketAddr) -> SourceConfig {
        SourceConfig::with(SourceSettings::Mllp(MllpSourceConfig::new(listen)))
    }

    /// An HTTP source on `listen` with every default.
    pub fn http(listen: SocketAddr) -> SourceConfig {
        SourceConfig::with(SourceSettings::Http(HttpSourceConfig::new(listen)))
    }

    /// A FHIR source on `listen` with every default.
    pub fn fhir(listen: SocketAddr) -> SourceConfig {
        SourceConfig::with(SourceSettings::Fhir(FhirSourceConfig::new(listen)))
    }

    /// A directory source reading `path` with every default.
    pub fn directory(path: impl Into<PathBuf>) -> SourceConfig {
        SourceConfig::with(SourceSettings::Directory(DirectorySourceConfig::new(
            path.into(),
        )))
    }

    /// The kind of source.
    pub fn kind(&self) -> SourceKind {
        match self.settings {
            SourceSettings::Mllp(_) => SourceKind::Mllp,
            SourceSettings::Http(_) => SourceKind::Http,
            SourceSettings::Directory(_) => SourceKind::Directory,
            SourceSettings::Fhir(_) => SourceKind::Fhir,
            SourceSettings::Nats(_) => SourceKind::Nats,
            SourceSettings::Database(_) => SourceKind::Database,
            SourceSettings::Sftp(_) => SourceKind::Sftp,
        }
    }

    /// The configured address of the kinds that listen (`None` when `listen` is
    /// missing, which the check refuses).
    pub fn listen(&self) -> Option<SocketAddr> {
        match &self.settings {
            SourceSettings::Mllp(mllp) => mllp.listen.map(|l| l.0),
            SourceSettings::Http(http) => http.listen.map(|l| l.0),
            SourceSettings::Fhir(fhir) => fhir.listen.map(|l| l.0),
            SourceSettings::Directory(_)
            | SourceSettings::Nats(_)
            | SourceSettings::Database(_)
            | SourceSettings::Sftp(_) => None,
        }
    }

    /// The address to listen on (`127.0.0.1:0` when none is set, which the check
    /// refuses for the kinds that listen).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// `max_connections` of the kinds that listen.
    pub fn max_connections(&self) -> Option<usize> {
        match &self.settings {
            SourceSettings::Mllp(mllp) => Some(mllp.max_connections),
            SourceSettings::Http(http) => Some(http.max_connections),
            SourceSettings::Fhir(fhir) => Some(fhir.max_connections),
            SourceSettings::Directory(_)
            | SourceSettings::Nats(_)
            | SourceSettings::Database(_)
            | SourceSettings::Sftp(_) => None,
        }
    }

    /// Lowers (or sets) `max_connections` of a source that listens; no-op otherwise.
    pub(crate) fn set_max_connections(&mut self, cap: usize) {
        match &mut self.settings {
            SourceSettings::Mllp(mllp) => mllp.max_connections = cap,
            SourceSettings::Http(http) => http.max_connections = cap,
            SourceSettings::Fhir(fhir) => fhir.max_connections = cap,
            SourceSettings::Directory(_)
            | SourceSettings::Nats(_)
            | SourceSettings::Database(_)
            | SourceSettings::Sftp(_) => {}
        }
    }

    /// Where the application acknowledgements MSH-16 asks for are sent, if anywhere.
    pub fn application_ack_to(&self) -> Option<&str> {
        match &self.settings {
            SourceSettings::Mllp(mllp) => mllp.application_ack_to.as_deref(),
            SourceSettings::Http(http) => http.application_ack_to.as_deref(),
            SourceSettings::Fhir(_)
            | SourceSettings::Directory(_)
            | SourceSettings::Nats(_)
            | SourceSettings::Database(_)
            | SourceSettings::Sftp(_) => None,
        }
    }

    /// The certificate an MLLP source serves under TLS.
    pub fn listener_cert(&self) -> Option<&Path> {
        match &self.settings {
            SourceSettings::Mllp(mllp) => mllp.tls.as_ref().map(|tls| tls.cert.as_path()),
            _ => None,
        }
    }

    /// Problems with these settings, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str, base_dir: &Path) -> Vec<(String, String)> {
        let mut errors = match &self.settings {
            SourceSettings::Mllp(mllp) => mllp.check(at, self.ack_mode, base_dir),
            SourceSettings::Http(http) => http.check(at, self.ack_mode),
            SourceSettings::Directory(directory) => directory.check(at, base_dir),
            SourceSettings::Fhir(fhir) => fhir.check(at, self.ack_mode),
            SourceSettings::Nats(nats) => nats.check(at),
            SourceSettings::Database(database) => database.check(at),
            SourceSettings::Sftp(sftp) => sftp.check(at),
        };
        if self.max_frame_size.0 == 0 {
            errors.push((
                format!("{at}.source.max_frame_size"),
                "must be at least 1 byte".to_owned(),
            ));
        }
        errors
    }
}
