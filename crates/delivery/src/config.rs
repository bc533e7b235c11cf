//! A destination as written in the configuration (`[[channels.NAME.destinations]]`).
//!
//! One table per destination: the keys every kind shares (`name`, `type`, `filters`,
//! `transforms`, `retry`, `on_failure`, `on_nak`, `timeout`) are here, in
//! [`DestinationConfig`]; the keys of each kind are in its own typed struct beside the
//! kind's code (`destinations/{mllp,http,file,fhir,email}.rs`), picked by `type`. The
//! table is read by `conf::tagged`, so a key of another kind is refused naming it (`to`
//! on a file destination: `is not a key of a file destination (a mllp destination takes
//! it)`), as unknown keys are.

use conf::duration;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use steps::{FilterConfig, TransformConfig};

pub use crate::destinations::email::EmailDestinationConfig;
pub use crate::destinations::fhir::FhirDestinationConfig;
pub use crate::destinations::file::FileDestinationConfig;
pub use crate::destinations::http::HttpDestinationConfig;
pub use crate::destinations::mllp::MllpDestinationConfig;

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
        }
    }

    /// The TLS settings of the kinds that have them (MLLP, HTTP, FHIR).
    pub fn tls(&self) -> Option<&TlsConfig> {
        match &self.settings {
            DestinationSettings::Mllp(mllp) => mllp.tls.as_ref(),
            DestinationSettings::Http(http) => http.tls.as_ref(),
            DestinationSettings::Fhir(fhir) => fhir.tls.as_ref(),
            DestinationSettings::File(_) | DestinationSettings::Email(_) => None,
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
        }
    }
}

/// Retries with exponential backoff: `initial_backoff`, doubled after each failure, capped.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Deliveries tried before `on_failure` applies (the first try counts).
    pub max_attempts: u32,
    /// The wait after the first failure.
    #[serde(with = "duration")]
    pub initial_backoff: Duration,
    /// The longest wait between two tries.
    #[serde(with = "duration")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryConfig {
    /// The wait after `failures` failed tries in a row (1 for the first failure).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.initial_backoff
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_backoff)
    }
}

/// What a destination does with a message whose retries are spent.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Move it to the dead-letter state with the last error, and go on with the next.
    #[default]
    DeadLetter,
    /// Keep strict order: the message stays at the head of its queue, tried again every
    /// `max_backoff`, and the destination raises an alert until it goes through.
    Wait,
}

/// What a destination does when the receiver refuses a message (AE/AR, HTTP 4xx).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnNak {
    /// Treat it like any failure: retry with backoff, then `on_failure`.
    #[default]
    Retry,
    /// Mark the message errored with the receiver's answer and go on with the next.
    Error,
}

/// The body of an HTTP request.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// The message as sent over MLLP (segments end in CR), `x-application/hl7-v2+er7`.
    #[default]
    Hl7,
    /// `{"channel", "destination", "message_id", "control_id", "hl7"}` as JSON.
    Json,
}

/// How a file destination writes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileMode {
    /// One file per message, written whole and then renamed into place.
    #[default]
    PerMessage,
    /// Messages appended to the file the name template gives, one per line.
    Append,
}

/// TLS towards a receiver (MLLP, HTTP and FHIR destinations).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM) the receiver's certificate must chain to.
    pub ca: PathBuf,
    /// Our certificate chain (PEM) for mutual TLS; needs `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Our private key (PEM) for mutual TLS; needs `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the receiver's certificate must carry; default the host connected to.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_takes_the_shared_duration_grammar_with_days() {
        let config: DestinationConfig = toml::from_str(
            "name = \"ehr\"\ntype = \"mllp\"\nto = \"127.0.0.1:2576\"\nretry = { initial_backoff = \"1min\", max_backoff = \"1d\" }\ntimeout = 90",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.retry.max_backoff, Duration::from_secs(86_400));
        assert_eq!(config.retry.initial_backoff, Duration::from_secs(60));
        assert_eq!(config.timeout, Duration::from_secs(90));
        let error = toml::from_str::<DestinationConfig>(
            "name = \"ehr\"\ntype = \"mllp\"\nretry = { max_backoff = \"1 fortnight\" }",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("\"1 fortnight\" is not a duration"),
            "{error}"
        );
    }
}
