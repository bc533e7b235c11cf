//! Corridor's engine: the configuration, the channels, and the receive
//! pipeline that turns MLLP frames into durable journal entries and ACKs.
//!
//! - [`Config`]: the TOML configuration, read with errors that name the key
//!   (`channels.lab.source.listen: "nonsense" is not a socket address`).
//! - [`Engine`]: starts what a configuration describes (the store, one MLLP
//!   listener per channel, the HTTP server with every route of the `api` crate) and
//!   stops it gracefully.
//! - [`MllpReceiver`]: the [`mllp::FrameHandler`] of an MLLP source. Each batch
//!   of frames a connection delivers is stored with one write request (the
//!   store commits the requests of all connections together, one fsync), and
//!   only after that commit are the ACKs built and sent, in order. Input that
//!   does not parse, or is not HL7 at all, is stored as rejected and answered
//!   with a NAK carrying an ERR segment; duplicates are acknowledged again
//!   without being stored twice.
//! - [`Intake`]: that store-then-acknowledge path, shared by every source: the
//!   MLLP receiver, [`sources::http::HttpSource`] (a `POST` of a message or batch,
//!   answered with the ACK) and [`sources::directory::DirectorySource`] (files moved to
//!   `done` or `error` only after their messages are stored), and
//!   [`sources::sftp::SftpSource`] (the same, on an SFTP server). With
//!   [`Intake::validating`] it validates before the ACK.
//! - [`retention`]: pruning of finished messages per channel, in the background.
//! - [`Engine::reload`]: the configuration file read again and applied without a
//!   restart (`SIGHUP`, `POST /api/config/reload`); unchanged channels keep running,
//!   a file with an error is refused whole, and every applied file is kept in
//!   [`config_history`] with who applied it and its diff.
//! - [`channel_test`]: channel fixtures (`corridor test`), a message in and what each
//!   destination must receive, run through a channel's real intake and pipeline.
//!
//! Each channel's processor (`pipeline.rs`) runs its stages in order (validate after
//! the ACK, patient index, code map, filters and transformers, FHIR, clinical rules)
//! and routes the message to its destinations' queues, one store write per batch.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let config = engine::Config::from_toml(&format!(r#"
//!     [data]
//!     dir = {:?}
//!     [http]
//!     enabled = false
//!     [channels.lab]
//!     source = {{ type = "mllp", listen = "127.0.0.1:0" }}
//! "#, dir.path()))?;
//! let engine = engine::Engine::start(config).await?;
//! let addr = engine.listeners()[0].addr;
//!
//! let mut sender = mllp::MllpClient::connect(&addr.to_string(), None).await?;
//! let ack = sender.send(b"MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101||ORU^R01|42|P|2.5.1\rPID|1\r").await?;
//! assert!(ack.windows(7).any(|w| w == b"MSA|AA|"));
//! assert_eq!(engine.metrics().channel("lab").unwrap().counts().received, 1);
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

mod application_ack;
pub mod audit_retention;
mod channel_control;
pub mod channel_test;
mod config;
pub mod config_history;
mod http;
mod http_serve;
mod intake;
mod lifecycle;
mod metrics;
pub mod minutes;
mod open_files;
mod pipeline;
mod reload;
pub mod retention;
mod search_keys;
pub mod sources;
pub mod stage;
pub mod stages;
mod start_error;
mod terminology_service;

pub use api::{ConfigProblem, ConfigVersion, ReloadApplied, ReloadRefused};
pub use config::{
    AckModeSetting, AuditConfig, ByteSize, ChannelConfig, Config, ConfigDuration, ConfigError,
    ConfigErrors, DataConfig, DestinationConfig, DestinationKind, DirectorySourceConfig,
    DuplicateWindow, FilterConfig, HlPath, HttpConfig, HttpSourceConfig, ListenAddr,
    MllpSourceConfig, RetentionConfig, SourceConfig, SourceKind, SourceSettings, TerminologyConfig,
    TlsConfig, TransformConfig, ValidationConfig, ValidationMode, parse_byte_size, parse_duration,
};
pub use http_serve::{HttpLimits, RequestTimedOut};
pub use intake::{
    APPLICATION_ACKS_COMPONENT, Intake, IntakeStatus, Origin, Positioned, Received,
    ReceiverSettings, SOURCE_POSITIONS_COMPONENT, migrate, stored_position,
};
pub use lifecycle::Engine;
pub use metrics::{ChannelCounts, ChannelMetrics, Metrics};
pub use reload::ConfigFile;
pub use sources::Listener;
pub use sources::mllp::MllpReceiver;
pub use stage::{Commit, Stage, StageOutcome, Work};
pub use start_error::StartError;
