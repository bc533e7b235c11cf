//! The kinds of destination. Each is one module holding its own configuration struct and
//! a type implementing [`Destination`]; adding a kind means adding a module, a variant of
//! [`DestinationSettings`] and one arm in [`build`].
//!
//! [`DestinationConfig`] is one destination as written (`[[channels.NAME.destinations]]`):
//! the keys every kind shares (`name`, `type`, `filters`, `transforms`, `retry`,
//! `on_failure`, `on_nak`, `timeout`), and the kind's own typed struct that `type` picks.
//! The table is read by `conf::tagged`, so a key of another kind is refused naming it
//! (`to` on a file destination: `is not a key of a file destination (a mllp destination
//! takes it)`), as unknown keys are.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conf::duration;
use serde::{Deserialize, Deserializer};
use steps::{FilterConfig, TransformConfig};
use store::{MessageId, UnixMicros};

use crate::config::{OnFailure, OnNak, RetryConfig, TlsConfig};
use crate::error::{ConfigError, DeliveryError};
use crate::queue::EntryId;

pub use channel::ChannelDestinationConfig;
pub use database::DatabaseDestinationConfig;
pub use email::EmailDestinationConfig;
pub use fhir::FhirDestinationConfig;
pub use file::FileDestinationConfig;
pub use http::HttpDestinationConfig;
pub use mllp::MllpDestinationConfig;
pub use nats::{NatsDestinationConfig, NatsPayload};
pub use sftp::SftpDestinationConfig;

pub mod channel;
pub mod database;
pub mod email;
pub mod fhir;
pub mod file;
pub mod http;
pub mod mllp;
pub mod nats;
pub mod sftp;
pub(crate) mod tls;

/// One destination of a channel.
///
/// ```
/// let config: delivery::DestinationConfig = toml::from_str(r#"
///     name = "ehr"
///     type = "mllp"
///     to = "127.0.0.1:2576"
///     retry = { max_attempts = 10, initial_backoff = "500ms", max_backoff = "5m" }
///     on_failure = "wait"
/// "#).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.retry.initial_backoff, std::time::Duration::from_millis(500));
/// let delivery::DestinationSettings::Mllp(mllp) = &config.settings else { panic!() };
/// assert_eq!(mllp.to.as_deref(), Some("127.0.0.1:2576"));
///
/// let error = toml::from_str::<delivery::DestinationConfig>(
///     "name = \"ehr\"\ntype = \"file\"\npath = \"out\"\nto = \"127.0.0.1:2576\"",
/// ).unwrap_err();
/// assert_eq!(
///     error.message(),
///     "`to`: is not a key of a file destination (a mllp destination takes it)",
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationConfig {
    /// The destination's name, unique within its channel; names its queue.
    pub name: String,
    /// Filters that decide whether this destination wants the message (all must keep it).
    pub filters: Vec<FilterConfig>,
    /// Transformers applied, in order, to this destination's copy of the message.
    pub transforms: Vec<TransformConfig>,
    /// How often and how patiently a failed delivery is tried again.
    pub retry: RetryConfig,
    /// What happens once `retry.max_attempts` is spent.
    pub on_failure: OnFailure,
    /// What an explicit refusal (MLLP AE/AR/CE/CR, an HTTP 4xx) leads to.
    pub on_nak: OnNak,
    /// How long one delivery may take: connecting, sending and waiting for the answer
    /// (default `"30s"`).
    pub timeout: Duration,
    /// The kind of receiver `type` names, with its own keys.
    pub settings: DestinationSettings,
}

/// The keys every kind of destination takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedKeys {
    name: String,
    #[serde(default)]
    filters: Vec<FilterConfig>,
    #[serde(default)]
    transforms: Vec<TransformConfig>,
    #[serde(default)]
    retry: RetryConfig,
    #[serde(default)]
    on_failure: OnFailure,
    #[serde(default)]
    on_nak: OnNak,
    #[serde(default = "default_timeout", with = "duration")]
    timeout: Duration,
}

impl<'de> Deserialize<'de> for DestinationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shared, settings): (SharedKeys, DestinationSettings) =
            conf::tagged::deserialize(deserializer, "destination")?;
        Ok(DestinationConfig {
            name: shared.name,
            filters: shared.filters,
            transforms: shared.transforms,
            retry: shared.retry,
            on_failure: shared.on_failure,
            on_nak: shared.on_nak,
            timeout: shared.timeout,
            settings,
        })
    }
}

impl DestinationConfig {
    /// A destination named `name` with every shared key at its default.
    pub fn new(name: impl Into<String>, settings: DestinationSettings) -> DestinationConfig {
        DestinationConfig {
            name: name.into(),
            filters: Vec::new(),
            transforms: Vec::new(),
            retry: RetryConfig::default(),
            on_failure: OnFailure::default(),
            on_nak: OnNak::default(),
            timeout: default_timeout(),
            settings,
        }
    }

    /// The kind of receiver.
    pub fn kind(&self) -> DestinationKind {
        match self.settings {
            DestinationSettings::Mllp(_) => DestinationKind::Mllp,
            DestinationSettings::Http(_) => DestinationKind::Http,
            DestinationSettings::File(_) => DestinationKind::File,
            DestinationSettings::Fhir(_) => DestinationKind::Fhir,
            DestinationSettings::Email(_) => DestinationKind::Email,
            DestinationSettings::Sftp(_) => DestinationKind::Sftp,
            DestinationSettings::Channel(_) => DestinationKind::Channel,
            DestinationSettings::Database(_) => DestinationKind::Database,
            DestinationSettings::Nats(_) => DestinationKind::Nats,
        }
    }

    /// The TLS settings of the kinds that have them (MLLP, HTTP, FHIR).
    pub fn tls(&self) -> Option<&TlsConfig> {
        match &self.settings {
            DestinationSettings::Mllp(mllp) => mllp.tls.as_ref(),
            DestinationSettings::Http(http) => http.tls.as_ref(),
            DestinationSettings::Fhir(fhir) => fhir.tls.as_ref(),
            DestinationSettings::Database(database) => database.tls.as_ref(),
            DestinationSettings::Nats(nats) => nats.tls.as_ref(),
            DestinationSettings::File(_)
            | DestinationSettings::Email(_)
            | DestinationSettings::Sftp(_)
            | DestinationSettings::Channel(_) => None,
        }
    }
}

/// A destination's own keys, by the kind its `type` names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSettings {
    /// `type = "mllp"`.
    Mllp(MllpDestinationConfig),
    /// `type = "http"`.
    Http(HttpDestinationConfig),
    /// `type = "file"`.
    File(FileDestinationConfig),
    /// `type = "fhir"`.
    Fhir(FhirDestinationConfig),
    /// `type = "email"`.
    Email(EmailDestinationConfig),
    /// `type = "sftp"`.
    Sftp(SftpDestinationConfig),
    /// `type = "channel"`.
    Channel(ChannelDestinationConfig),
    /// `type = "database"`.
    Database(DatabaseDestinationConfig),
    /// `type = "nats"`.
    Nats(NatsDestinationConfig),
}

/// The kind of receiver a destination sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// An MLLP listener (TCP or TLS) that answers with an HL7 ACK.
    Mllp,
    /// An HTTP endpoint that answers with a status code.
    Http,
    /// Files in a directory.
    File,
    /// A FHIR server: the message's transaction Bundle POSTed to its base URL.
    Fhir,
    /// Mail recipients, through an SMTP server.
    Email,
    /// Files in a folder on an SFTP server.
    Sftp,
    /// Another channel of the same engine, handed the message as it is processed.
    Channel,
    /// Rows in a PostgreSQL, MySQL/MariaDB, SQL Server or SQLite database.
    Database,
    /// Messages published to NATS JetStream.
    Nats,
}

impl DestinationKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Mllp => "mllp",
            DestinationKind::Http => "http",
            DestinationKind::File => "file",
            DestinationKind::Fhir => "fhir",
            DestinationKind::Email => "email",
            DestinationKind::Sftp => "sftp",
            DestinationKind::Channel => "channel",
            DestinationKind::Database => "database",
            DestinationKind::Nats => "nats",
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// One message on its way to a receiver: the queue entry and the bytes to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The queue entry.
    pub entry: EntryId,
    /// The journal id of the message this entry carries.
    pub message_id: MessageId,
    /// The message as this destination wants it (after its transformers).
    pub payload: Bytes,
    /// The entry's ordering key (empty: the destination's single FIFO).
    pub ordering_key: Arc<str>,
    /// Deliveries tried before this one.
    pub attempts: u32,
}

/// What a destination knows about where it sends, for templates and envelopes.
#[derive(Debug, Clone)]
pub struct DeliveryMeta {
    /// The channel the message came in on.
    pub channel: Arc<str>,
    /// The destination's name.
    pub destination: Arc<str>,
}

/// The receiver took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// What it answered: the ACK message, the HTTP status line, the file written.
    pub answer: String,
    /// When the answer arrived.
    pub answered_at: UnixMicros,
}

/// A receiver of messages: an MLLP listener, an HTTP endpoint, a directory.
///
/// One worker owns one destination, so methods take `&mut self` and may keep a
/// connection open between calls.
pub trait Destination: Send + 'static {
    /// Delivers one message.
    fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> impl Future<Output = Result<Delivered, DeliveryError>> + Send;

    /// Delivers `batch` in order and returns one result per message tried, in order; a
    /// shorter list means the rest were not tried. The default delivers one by one and
    /// stops at the first failure; kinds that can do better (pipelining, one fsync for
    /// many files) override it.
    fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> impl Future<Output = Vec<Result<Delivered, DeliveryError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(batch.len());
            for message in batch {
                let result = self.deliver(message, meta).await;
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            results
        }
    }

    /// Closes any connection kept open to the receiver (an operator stopped the
    /// destination); the next delivery opens a new one. Kinds that keep none do nothing.
    fn disconnect(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Any destination kind, for the worker (static dispatch, no boxed futures).
pub(crate) enum AnyDestination {
    Mllp(mllp::MllpDestination),
    Http(http::HttpDestination),
    File(file::FileDestination),
    Fhir(fhir::FhirDestination),
    Email(email::EmailDestination),
    Sftp(sftp::SftpDestination),
    Channel(channel::ChannelDestination),
    Database(database::DatabaseDestination),
    /// Boxed: its client and settings are the largest of the kinds.
    Nats(Box<nats::NatsDestination>),
}

impl Destination for AnyDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        match self {
            AnyDestination::Mllp(d) => d.deliver(message, meta).await,
            AnyDestination::Http(d) => d.deliver(message, meta).await,
            AnyDestination::File(d) => d.deliver(message, meta).await,
            AnyDestination::Fhir(d) => d.deliver(message, meta).await,
            AnyDestination::Email(d) => d.deliver(message, meta).await,
            AnyDestination::Sftp(d) => d.deliver(message, meta).await,
            AnyDestination::Channel(d) => d.deliver(message, meta).await,
            AnyDestination::Database(d) => d.deliver(message, meta).await,
            AnyDestination::Nats(d) => d.deliver(message, meta).await,
        }
    }

    async fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        match self {
            AnyDestination::Mllp(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Http(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::File(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Fhir(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Email(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Sftp(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Channel(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Database(d) => d.deliver_batch(batch, meta).await,
            AnyDestination::Nats(d) => d.deliver_batch(batch, meta).await,
        }
    }

    async fn disconnect(&mut self) {
        match self {
            AnyDestination::Mllp(d) => d.disconnect().await,
            AnyDestination::Http(d) => d.disconnect().await,
            AnyDestination::File(d) => d.disconnect().await,
            AnyDestination::Fhir(d) => d.disconnect().await,
            AnyDestination::Email(d) => d.disconnect().await,
            AnyDestination::Sftp(d) => d.disconnect().await,
            AnyDestination::Channel(d) => d.disconnect().await,
            AnyDestination::Database(d) => d.disconnect().await,
            AnyDestination::Nats(d) => d.disconnect().await,
        }
    }
}

impl DestinationConfig {
    /// Checks the values: the keys every kind shares, then the kind's own (which keys
    /// belong to which kind is settled when the table is read).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(fail("`name` must not be empty".into()));
        }
        if self.retry.max_attempts == 0 {
            return Err(fail("`retry.max_attempts` must be at least 1".into()));
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(fail(
                "`retry.initial_backoff` is longer than `retry.max_backoff`".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(fail("`timeout` must be longer than zero".into()));
        }
        match &self.settings {
            DestinationSettings::Mllp(mllp) => mllp.check(),
            DestinationSettings::Http(http) => http.check(),
            DestinationSettings::File(file) => file.check(),
            DestinationSettings::Fhir(fhir) => fhir.check(),
            DestinationSettings::Email(email) => email.check(),
            DestinationSettings::Sftp(sftp) => sftp.check(),
            DestinationSettings::Channel(channel) => channel.check(),
            DestinationSettings::Database(database) => database.check(),
            DestinationSettings::Nats(nats) => nats.check(),
        }
        .map_err(fail)
    }
}

/// Builds the destination a configuration describes; relative paths start at `base`.
pub(crate) fn build(
    config: &DestinationConfig,
    base: &Path,
) -> Result<AnyDestination, ConfigError> {
    config.validate()?;
    Ok(match &config.settings {
        DestinationSettings::Mllp(mllp) => {
            AnyDestination::Mllp(mllp::MllpDestination::new(config, mllp, base)?)
        }
        DestinationSettings::Http(http) => {
            AnyDestination::Http(http::HttpDestination::new(config, http, base)?)
        }
        DestinationSettings::File(file) => {
            AnyDestination::File(file::FileDestination::new(config, file, base)?)
        }
        DestinationSettings::Fhir(fhir) => {
            AnyDestination::Fhir(fhir::FhirDestination::new(config, fhir, base)?)
        }
        DestinationSettings::Email(email) => {
            AnyDestination::Email(email::EmailDestination::new(config, email, base)?)
        }
        DestinationSettings::Sftp(sftp) => {
            AnyDestination::Sftp(sftp::SftpDestination::new(config, sftp, base)?)
        }
        DestinationSettings::Channel(_) => AnyDestination::Channel(channel::ChannelDestination),
        DestinationSettings::Database(database) => {
            AnyDestination::Database(database::DatabaseDestination::new(config, database, base)?)
        }
        DestinationSettings::Nats(nats) => {
            AnyDestination::Nats(Box::new(nats::NatsDestination::new(config, nats, base)?))
        }
    })
}

/// At most `max` bytes of `text` as UTF-8 (lossy), for answers kept in the database.
pub(crate) fn clip(text: &[u8], max: usize) -> String {
    let end = text.len().min(max);
    String::from_utf8_lossy(&text[..end]).into_owned()
}
