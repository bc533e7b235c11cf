//! The kinds of destination. Each is one module implementing [`Destination`]; adding a kind
//! means adding a module and one arm in [`build`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use store::{MessageId, UnixMicros};

use crate::config::{DestinationConfig, DestinationKind};
use crate::error::{ConfigError, DeliveryError};
use crate::queue::EntryId;

pub mod email;
pub mod fhir;
pub mod file;
pub mod http;
pub mod mllp;
mod tls;

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
}

/// Any destination kind, for the worker (static dispatch, no boxed futures).
pub(crate) enum AnyDestination {
    Mllp(mllp::MllpDestination),
    Http(http::HttpDestination),
    File(file::FileDestination),
    Fhir(fhir::FhirDestination),
    Email(email::EmailDestination),
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
        }
    }
}

impl DestinationConfig {
    /// Checks that the keys fit the destination's kind and the values make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(fail("`name` must not be empty".into()));
        }
        let present: [(&str, bool, DestinationKind); 18] = [
            ("to", self.to.is_some(), DestinationKind::Mllp),
            ("url", self.url.is_some(), DestinationKind::Http),
            ("method", self.method.is_some(), DestinationKind::Http),
            ("headers", !self.headers.is_empty(), DestinationKind::Http),
            ("body", self.body.is_some(), DestinationKind::Http),
            ("success", self.success.is_some(), DestinationKind::Http),
            ("path", self.path.is_some(), DestinationKind::File),
            ("mode", self.mode.is_some(), DestinationKind::File),
            ("file_name", self.file_name.is_some(), DestinationKind::File),
            ("timezone", self.timezone.is_some(), DestinationKind::Fhir),
            (
                "identifier_base",
                self.identifier_base.is_some(),
                DestinationKind::Fhir,
            ),
            ("smtp", self.smtp.is_some(), DestinationKind::Email),
            ("from", self.from.is_some(), DestinationKind::Email),
            (
                "recipients",
                self.recipients.is_some(),
                DestinationKind::Email,
            ),
            ("subject", self.subject.is_some(), DestinationKind::Email),
            ("text", self.text.is_some(), DestinationKind::Email),
            ("attach", self.attach.is_some(), DestinationKind::Email),
            (
                "tls",
                self.tls.is_some()
                    && matches!(self.kind, DestinationKind::File | DestinationKind::Email),
                DestinationKind::Mllp,
            ),
        ];
        for (key, given, owner) in present {
            // A FHIR destination is an HTTP client too: it takes `url` and `headers`.
            let shared_with_fhir = matches!(key, "url" | "headers" | "tls");
            if given
                && owner != self.kind
                && !(shared_with_fhir && self.kind == DestinationKind::Fhir)
            {
                return Err(fail(format!(
                    "`{key}` belongs to {} destinations, not {}",
                    owner.as_str(),
                    self.kind.as_str()
                )));
            }
        }
        let required = match self.kind {
            DestinationKind::Mllp => ("to", self.to.is_some()),
            DestinationKind::Http => ("url", self.url.is_some()),
            DestinationKind::File => ("path", self.path.is_some()),
            DestinationKind::Fhir => ("url", self.url.is_some()),
            DestinationKind::Email => ("smtp", self.smtp.is_some()),
        };
        if !required.1 {
            return Err(fail(format!(
                "{} destinations need `{}`",
                self.kind.as_str(),
                required.0
            )));
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
        if self.pipeline == 0 {
            return Err(fail("`pipeline` must be at least 1".into()));
        }
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(fail(format!(
                    "`url` {url:?} must start with http:// or https://"
                )));
            }
        }
        if let Some(method) = &self.method {
            if ::http::Method::from_bytes(method.as_bytes()).is_err() {
                return Err(fail(format!("`method` {method:?} is not an HTTP method")));
            }
        }
        if let Some(codes) = &self.success {
            if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
                return Err(fail(
                    "`success` must list HTTP status codes between 100 and 599".into(),
                ));
            }
        }
        if self.kind == DestinationKind::Fhir {
            fhir::converter_options(self).map_err(fail)?;
        }
        if self.kind == DestinationKind::Email {
            email::check(self).map_err(fail)?;
        }
        if let Some(template) = &self.file_name {
            file::NameTemplate::parse(template).map_err(fail)?;
        }
        Ok(())
    }
}

/// Builds the destination a configuration describes; relative paths start at `base`.
pub(crate) fn build(
    config: &DestinationConfig,
    base: &Path,
) -> Result<AnyDestination, ConfigError> {
    config.validate()?;
    Ok(match config.kind {
        DestinationKind::Mllp => AnyDestination::Mllp(mllp::MllpDestination::new(config, base)?),
        DestinationKind::Http => AnyDestination::Http(http::HttpDestination::new(config, base)?),
        DestinationKind::File => AnyDestination::File(file::FileDestination::new(config, base)?),
        DestinationKind::Fhir => AnyDestination::Fhir(fhir::FhirDestination::new(config, base)?),
        DestinationKind::Email => {
            AnyDestination::Email(email::EmailDestination::new(config, base)?)
        }
    })
}

/// At most `max` bytes of `text` as UTF-8 (lossy), for answers kept in the database.
pub(crate) fn clip(text: &[u8], max: usize) -> String {
    let end = text.len().min(max);
    String::from_utf8_lossy(&text[..end]).into_owned()
}
