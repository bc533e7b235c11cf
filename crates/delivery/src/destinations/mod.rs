//! The kinds of destination. Each is one module holding its own configuration struct and
//! a type implementing [`Destination`]; adding a kind means adding a module, a variant of
//! [`DestinationSettings`] and one arm in [`build`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use store::{MessageId, UnixMicros};

use crate::config::{DestinationConfig, DestinationSettings};
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
    })
}

/// At most `max` bytes of `text` as UTF-8 (lossy), for answers kept in the database.
pub(crate) fn clip(text: &[u8], max: usize) -> String {
    let end = text.len().min(max);
    String::from_utf8_lossy(&text[..end]).into_owned()
}
