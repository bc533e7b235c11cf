//! NATS JetStream destinations: each message published to a subject built from its
//! fields, counted delivered only once JetStream acknowledged the publish.
//!
//! ```toml
//! [[channels.lab.destinations]]
//! name = "bus"
//! type = "nats"
//! url = "nats://nats.example.org:4222"
//! subject = "hl7.{MSH-9.1}.{MSH-4}"     # literal tokens and {HL7 path}s
//! payload = "message"                   # or "fhir": the message's FHIR transaction Bundle
//! user = "corridor"                     # optional: with password_env or password_file,
//! password_env = "NATS_PASSWORD"        # or token_env, or credentials = "corridor.creds"
//! tls = { ca = "nats-ca.pem" }          # optional
//! ```
//!
//! A `{PATH}` of `subject` is replaced by that field's value in the message; characters
//! other than letters, digits, `-` and `_` become `_` (a value cannot add a token with a
//! `.`, nor make the subject a wildcard with `*` or `>`), and an empty field gives `_`.
//! With `payload = "fhir"` the Bundle is made when the message is routed (as for a
//! `fhir` destination) and the subject is built then, from the HL7 message.
//!
//! Every publish carries `Nats-Msg-Id: corridor:{channel}:{destination}:{journal id}`,
//! so a publish tried again after a lost acknowledgement is dropped by the stream as a
//! duplicate (within the stream's `duplicate_window`, 2 minutes by default) and the
//! answer kept says `duplicate`. The stream that takes the subject is the operator's to
//! create: without one, NATS answers "no responders" and the delivery fails as
//! transient (the queue holds and retries), naming the subject template. A NATS server
//! that is down holds the queue the same way.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use store::UnixMicros;

use super::{Delivered, DeliveryMeta, Destination, DestinationConfig, Outgoing};
use crate::config::TlsConfig;
use crate::error::{ConfigError, DeliveryError};
use crate::nats::NatsServerKeys;

/// What a `nats` destination publishes.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NatsPayload {
    /// The HL7 v2 message as this destination's transformers leave it.
    #[default]
    Message,
    /// The message's FHIR R4 transaction Bundle (JSON).
    Fhir,
}

/// `type = "nats"`: a NATS destination's own keys (the keys every destination takes are
/// in [`DestinationConfig`]).
///
/// ```
/// let config: delivery::DestinationConfig = toml::from_str(r#"
///     name = "bus"
///     type = "nats"
///     url = "nats://127.0.0.1:4222"
///     subject = "hl7.{MSH-9.1}.{MSH-4}"
/// "#).unwrap();
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsDestinationConfig {
    /// `nats://host:port` (or `tls://host:port`); several separated by commas.
    #[serde(default)]
    pub url: Option<String>,
    /// The subject: tokens separated by `.`, each literal or `{HL7 path}`.
    #[serde(default)]
    pub subject: Option<String>,
    /// `"message"` (default) or `"fhir"`.
    #[serde(default)]
    pub payload: NatsPayload,
    /// The user name, with `password_env` or `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password (relative to the configuration file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The environment variable holding a token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A NATS credentials file (`.creds`), relative to the configuration file.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// TLS towards the server.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl NatsDestinationConfig {
    /// The server keys.
    pub fn server(&self) -> NatsServerKeys<'_> {
        NatsServerKeys {
            url: self.url.as_deref(),
            user: self.user.as_deref(),
            password_env: self.password_env.as_deref(),
            password_file: self.password_file.as_deref(),
            token_env: self.token_env.as_deref(),
            credentials: self.credentials.as_deref(),
            tls: self.tls.as_ref(),
        }
    }

    /// Checks the keys without connecting; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.server().check()?;
        self.template()?;
        Ok(())
    }

    /// The subject template.
    pub fn template(&self) -> Result<SubjectTemplate, String> {
        let subject = self
            .subject
            .as_deref()
            .ok_or("nats destinations need `subject` (e.g. \"hl7.{MSH-9.1}.{MSH-4}\")")?;
        SubjectTemplate::parse(subject).map_err(|e| format!("`subject` {subject:?}: {e}"))
    }
}

/// One piece of a subject template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field(hl7v2::Path),
}

/// A subject built from literal text and message fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl SubjectTemplate {
    /// Reads `hl7.{MSH-9.1}.{MSH-4}`: literal text may hold letters, digits, `-`, `_`
    /// and `.` between tokens; `{...}` holds an HL7 path naming one value.
    pub fn parse(text: &str) -> Result<SubjectTemplate, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or("a `{` is not closed")?;
                let inner = after[..end].trim();
                let path: hl7v2::Path = inner
                    .parse()
                    .map_err(|e| format!("{inner:?} is not an HL7 path: {e}"))?;
                if path.field.is_none() {
                    return Err(format!("{inner:?} names a segment, not a value"));
                }
                if path.selects_many() {
                    return Err(format!("{inner:?} selects many values; a token takes one"));
                }
                pieces.push(Piece::Field(path));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if let Some(bad) = literal
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                {
                    return Err(format!(
                        "{bad:?} is not allowed (letters, digits, `-`, `_`, `.` and {{HL7 path}}s)"
                    ));
                }
                pieces.push(Piece::Literal(literal.to_owned()));
                rest = &rest[end..];
            }
        }
        if pieces.is_empty() {
            return Err("is empty".into());
        }
        // Every token must be non-empty: no leading, trailing or doubled dot.
        let shape: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(l) => l.as_str(),
                Piece::Field(_) => "x",
            })
            .collect();
        if shape.split('.').any(str::is_empty) {
            return Err("has an empty token (a leading, trailing or doubled `.`)".into());
        }
        Ok(SubjectTemplate {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The subject for `message`.
    pub fn subject(&self, message: &hl7v2::Message<'_>) -> String {
        let mut subject = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => subject.push_str(l),
                Piece::Field(path) => {
                    let value = message
                        .get(path)
                        .filter(|e| !e.is_empty() && !e.is_null())
                        .map(|e| e.text().into_owned())
                        .unwrap_or_default();
                    subject.push_str(&sanitise(&value));
                }
            }
        }
        subject
    }

    /// The subject for raw HL7 bytes; the error says why it cannot be built.
    pub fn subject_of(&self, raw: &[u8]) -> Result<String, String> {
        let message =
            hl7v2::Message::parse(raw).map_err(|e| format!("the message does not parse: {e}"))?;
        Ok(self.subject(&message))
    }
}

/// A field's value as one subject token: letters, digits, `-` and `_` kept, anything
/// else `_`; empty gives `_`.
pub fn sanitise(value: &str) -> String {
    if value.is_empty() {
        return "_".to_owned();
    }
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// With `payload = "fhir"`, the queue entry's payload is the subject, a line feed, and
/// the Bundle (the subject comes from the HL7 message, which the entry no longer holds).
pub(crate) fn fhir_entry(subject: &str, bundle: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(subject.len() + 1 + bundle.len());
    out.extend_from_slice(subject.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(bundle);
    Bytes::from(out)
}

/// Publishes messages to NATS JetStream.
pub struct NatsDestination {
    name: String,
    server: NatsDestinationConfig,
    template: SubjectTemplate,
    base: PathBuf,
    timeout: std::time::Duration,
    connection: Option<async_nats::jetstream::Context>,
}

impl std::fmt::Debug for NatsDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDestination")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NatsDestination {
    /// From a validated `type = "nats"` configuration; connects on the first delivery.
    pub fn new(
        config: &DestinationConfig,
        nats: &NatsDestinationConfig,
        base: &Path,
    ) -> Result<NatsDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        nats.server().check().map_err(fail)?;
        let template = nats.template().map_err(fail)?;
        // Read the secrets now so a missing variable or file fails at start.
        if nats.user.is_some() {
            crate::config::read_password(
                nats.password_env.as_deref(),
                nats.password_file.as_deref(),
                base,
                "",
            )
            .map_err(fail)?;
        }
        if let Some(var) = &nats.token_env {
            std::env::var(var).map_err(|_| {
                fail(format!(
                    "`token_env`: the environment variable {var} is not set"
                ))
            })?;
        }
        if let Some(file) = &nats.credentials {
            let path = base.join(file);
            std::fs::metadata(&path).map_err(|e| {
                fail(format!(
                    "`credentials`: cannot read {}: {e}",
                    path.display()
                ))
            })?;
        }
        if let Some(tls) = &nats.tls {
            super::tls::client_config(tls, base).map_err(|e| fail(format!("`tls`: {e}")))?;
        }
        Ok(NatsDestination {
            name: config.name.clone(),
            server: nats.clone(),
            template,
            base: base.to_owned(),
            timeout: config.timeout,
            connection: None,
        })
    }

    async fn context(&mut self) -> Result<async_nats::jetstream::Context, DeliveryError> {
        if let Some(context) = &self.connection {
            return Ok(context.clone());
        }
        let client = self
            .server
            .server()
            .connect(&self.base, &format!("corridor {}", self.name), self.timeout)
            .await
            .map_err(DeliveryError::transient)?;
        let mut context = async_nats::jetstream::new(client);
        context.set_timeout(self.timeout);
        self.connection = Some(context.clone());
        Ok(context)
    }

    /// The subject and the bytes to publish for one queue entry.
    fn split(&self, payload: &Bytes) -> Result<(String, Bytes), DeliveryError> {
        match self.server.payload {
            NatsPayload::Message => {
                let subject = self
                    .template
                    .subject_of(payload)
                    .map_err(|e| DeliveryError::refused(e.clone(), e))?;
                Ok((subject, payload.clone()))
            }
            NatsPayload::Fhir => {
                let Some(newline) = payload.iter().position(|b| *b == b'\n') else {
                    let why = "the entry holds no subject line before its Bundle".to_owned();
                    return Err(DeliveryError::refused(why.clone(), why));
                };
                let subject = String::from_utf8_lossy(&payload[..newline]).into_owned();
                Ok((subject, payload.slice(newline + 1..)))
            }
        }
    }

    /// The `Nats-Msg-Id` of one entry: the same on every try.
    fn message_id(meta: &DeliveryMeta, message: &Outgoing) -> String {
        format!(
            "corridor:{}:{}:{}",
            meta.channel, meta.destination, message.message_id.0
        )
    }

    /// Sends every message and then waits for the acknowledgements, in order.
    async fn publish_all(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        let mut results = Vec::with_capacity(batch.len());
        let context = match self.context().await {
            Ok(context) => context,
            Err(error) => {
                results.push(Err(error));
                return results;
            }
        };
        let mut pending = Vec::with_capacity(batch.len());
        for message in batch {
            let (subject, payload) = match self.split(&message.payload) {
                Ok(parts) => parts,
                Err(error) => {
                    pending.push(Err(error));
                    break;
                }
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", Self::message_id(meta, message).as_str());
            let sent = tokio::time::timeout(
                self.timeout,
                context.publish_with_headers(subject, headers, payload),
            )
            .await;
            match sent {
                Ok(Ok(ack)) => pending.push(Ok(ack)),
                Ok(Err(e)) => {
                    pending.push(Err(self.publish_failure(&e)));
                    break;
                }
                Err(_) => {
                    pending.push(Err(self.no_answer()));
                    break;
                }
            }
        }
        for sent in pending {
            let ack = match sent {
                Ok(ack) => ack,
                Err(error) => {
                    results.push(Err(error));
                    break;
                }
            };
            match tokio::time::timeout(self.timeout, ack).await {
                Ok(Ok(ack)) => results.push(Ok(Delivered {
                    answer: format!(
                        "stream {} sequence {}{}",
                        ack.stream,
                        ack.sequence,
                        if ack.duplicate { " (duplicate)" } else { "" }
                    ),
                    answered_at: UnixMicros::now(),
                })),
                Ok(Err(e)) => {
                    results.push(Err(self.publish_failure(&e)));
                    break;
                }
                Err(_) => {
                    results.push(Err(self.no_answer()));
                    break;
                }
            }
        }
        results
    }

    fn no_answer(&self) -> DeliveryError {
        DeliveryError::transient(format!(
            "NATS at {}: no publish acknowledgement within {:?}",
            crate::nats::describe(self.server.url.as_deref().unwrap_or_default()),
            self.timeout
        ))
    }

    fn publish_failure(
        &self,
        error: &async_nats::jetstream::context::PublishError,
    ) -> DeliveryError {
        use async_nats::jetstream::context::PublishErrorKind;
        let url = crate::nats::describe(self.server.url.as_deref().unwrap_or_default());
        match error.kind() {
            PublishErrorKind::StreamNotFound => DeliveryError::transient(format!(
                "NATS at {url}: no JetStream stream takes the subjects of {:?} (create a stream covering them)",
                self.template.as_str()
            )),
            _ => DeliveryError::transient(format!("NATS at {url}: the publish failed: {error}")),
        }
    }
}

impl Destination for NatsDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        self.publish_all(std::slice::from_ref(message), meta)
            .await
            .pop()
            .unwrap_or_else(|| Err(DeliveryError::transient("nothing was published")))
    }

    async fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        self.publish_all(batch, meta).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_take_field_values_as_single_safe_tokens() {
        let template = SubjectTemplate::parse("hl7.{MSH-9.1}.{MSH-4}").unwrap();
        let raw = b"MSH|^~\\&|LAB|St. Mary's *East>|EHR|HOSP|20260101||ADT^A01|1|P|2.5\r";
        assert_eq!(
            template.subject_of(raw).unwrap(),
            "hl7.ADT.St__Mary_s__East_"
        );
        let empty = b"MSH|^~\\&|LAB||EHR|HOSP|20260101||ADT^A01|1|P|2.5\r";
        assert_eq!(template.subject_of(empty).unwrap(), "hl7.ADT._");
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "",
            "hl7..x",
            ".hl7",
            "hl7.",
            "hl7.*",
            "hl7.>",
            "a b",
            "hl7.{MSH-9",
            "{PID}",
        ] {
            assert!(SubjectTemplate::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(SubjectTemplate::parse("hl7.{MSH-9.1}_{MSH-9.2}").is_ok());
    }
}
