//! A destination as written in the configuration (`[[channels.NAME.destinations]]`).
//!
//! One flat table per destination: the keys every kind shares (`name`, `type`, `filters`,
//! `transforms`, `retry`, `on_failure`, `on_nak`, `timeout`, `pipeline`) and the keys of
//! its kind. `DestinationConfig::validate` (in `destinations`, beside the kinds whose
//! settings it checks) refuses keys of another kind with words that name the destination
//! and the key, as unknown keys are refused by serde.

use conf::duration;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use steps::{FilterConfig, TransformConfig};

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
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// The destination's name, unique within its channel; names its queue.
    pub name: String,
    /// What kind of receiver: `mllp`, `http`, `file`, `fhir` or `email`.
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Filters that decide whether this destination wants the message (all must keep it).
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// Transformers applied, in order, to this destination's copy of the message.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// How often and how patiently a failed delivery is tried again.
    #[serde(default)]
    pub retry: RetryConfig,
    /// What happens once `retry.max_attempts` is spent.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// What an explicit refusal (MLLP AE/AR/CE/CR, an HTTP 4xx) leads to.
    #[serde(default)]
    pub on_nak: OnNak,
    /// How long one delivery may take: connecting, sending and waiting for the answer.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Messages sent before waiting for their answers (MLLP only). 1 is stop-and-wait.
    ///
    /// With more than one, a message refused with a NAK and retried later arrives after
    /// the messages sent behind it; choose 1 when strict order must survive NAK retries.
    #[serde(default = "default_pipeline")]
    pub pipeline: usize,

    /// mllp: the receiver's address, `host:port`.
    #[serde(default)]
    pub to: Option<String>,
    /// mllp and http (https URLs): TLS settings; without them MLLP is plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,

    /// http: the URL to send to (`http://` or `https://`); fhir: the FHIR server's base
    /// URL, where the transaction Bundle is POSTed.
    #[serde(default)]
    pub url: Option<String>,
    /// http: the request method (default `POST`).
    #[serde(default)]
    pub method: Option<String>,
    /// http and fhir: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http: the request body, the message as HL7 text (`hl7`, default) or a JSON envelope.
    #[serde(default)]
    pub body: Option<HttpBody>,
    /// http: the status codes that mean the receiver took the message
    /// (default 200, 201, 202, 204).
    #[serde(default)]
    pub success: Option<Vec<u16>>,

    /// file: the directory files are written to (relative to the configuration file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// file: one file per message (`per_message`, default) or every message appended to
    /// one file (`append`).
    #[serde(default)]
    pub mode: Option<FileMode>,
    /// file: the file name template (`name` already names the destination);
    /// `{channel}`, `{destination}`, `{message_id}`, `{entry_id}`, `{control_id}` and
    /// `{date}` (UTC, `YYYYMMDD`) are replaced. Default
    /// `{channel}-{message_id}-{control_id}.hl7` per message, `{channel}-{date}.hl7`
    /// appended.
    #[serde(default)]
    pub file_name: Option<String>,

    /// fhir: the zone of times the message sends without an offset when MSH-7 has
    /// none either: an IANA name (`America/Chicago`) or a fixed offset (`+01:00`, `Z`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// fhir: the base URI of identifier systems and local code systems
    /// (default `urn:corridor:id`).
    #[serde(default)]
    pub identifier_base: Option<String>,

    // email (issue 20): these keys stay together, to move as one into a typed struct.
    /// email: the mail server (`host`, `port`, `security`, `username`, `password_env` or
    /// `password_file`, `ca`, `timeout`).
    #[serde(default)]
    pub smtp: Option<crate::smtp::SmtpConfig>,
    /// email: the sender's address (`Corridor <corridor@example.org>`).
    #[serde(default)]
    pub from: Option<String>,
    /// email: the recipients' addresses.
    #[serde(default)]
    pub recipients: Option<Vec<String>>,
    /// email: the subject template: `{MSH-9}`, `{PID-3.1}` (any path), `{channel}`,
    /// `{destination}`, `{message_id}`, `{control_id}`.
    #[serde(default)]
    pub subject: Option<String>,
    /// email: the body template, with the same placeholders as `subject`.
    #[serde(default)]
    pub text: Option<String>,
    /// email: attach the message as a `.hl7` file (default true).
    #[serde(default)]
    pub attach: Option<bool>,
}

/// The kind of receiver a destination sends to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
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
    /// The payload as it is, as `application/json`: for payloads that are JSON
    /// documents already (the alert JSON `[rules]` gives its `http` destinations). A
    /// payload that is not JSON is not sent (the entry fails, refused).
    JsonPayload,
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

/// TLS towards a receiver.
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

fn default_pipeline() -> usize {
    64
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
