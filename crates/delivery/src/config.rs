//! The values a destination's configuration is written with that more than one kind,
//! or the worker, shares: retries, what failures and refusals lead to, TLS, and the
//! kinds' enumerated settings. [`DestinationConfig`](crate::DestinationConfig) itself,
//! which picks a kind's own typed struct by `type`, is in `destinations/mod.rs` beside
//! the kinds; this module imports none of them.

use conf::duration;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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

/// The password `password_env` (an environment variable) or `password_file` (its first
/// line, relative to `base`) gives, or `None` when neither is set; an error names the
/// key, with `prefix` before it (`smtp.`), and never holds the password.
pub(crate) fn read_password(
    env: Option<&str>,
    file: Option<&std::path::Path>,
    base: &std::path::Path,
    prefix: &str,
) -> Result<Option<String>, String> {
    if let Some(var) = env {
        return std::env::var(var).map(Some).map_err(|_| {
            format!("`{prefix}password_env`: the environment variable {var} is not set")
        });
    }
    if let Some(file) = file {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "`{prefix}password_file`: cannot read {}: {e}",
                path.display()
            )
        })?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DestinationConfig;

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
