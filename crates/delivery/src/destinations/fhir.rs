//! FHIR destinations: each message's FHIR R4 transaction Bundle POSTed to a FHIR
//! server's base URL.
//!
//! The Bundle is made when the message is routed (`Router`), from the message as this
//! destination's transformers leave it, with the destination's `timezone` and
//! `identifier_base`, and it is the queue entry's payload: a retry or a resend sends the
//! same bytes, and the entry shows exactly what the server received. Resource ids are
//! stable and every entry is a `PUT`, so a Bundle the server sees twice updates the same
//! resources. A message type the converter does not handle is `filtered` (by `fhir`); a
//! message it cannot convert is `errored` with the converter's reason.
//!
//! Delivered means a 2xx answer carrying a `transaction-response` Bundle. 408, 429 and
//! 5xx are transient (retry with backoff); other answers, and a 2xx without a
//! transaction-response, are refusals that follow `on_nak`.
//!
//! ```toml
//! [[channels.lab.destinations]]
//! name = "fhir-server"
//! type = "fhir"
//! url = "https://fhir.example.org/r4"   # the base: the Bundle is POSTed here
//! headers = { Authorization = "Bearer ..." }
//! timezone = "Europe/Paris"              # optional, for times sent without an offset
//!                                        # (an IANA zone or a fixed offset like "+01:00")
//! identifier_base = "https://id.example.org"  # optional, default urn:corridor:id
//! tls = { ca = "ca.pem" }                # for https
//! ```

use std::path::Path;
use std::time::Duration;

use http::{HeaderValue, Method};
use store::UnixMicros;

use super::http::{HttpEndpoint, answer_text, failure};
use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::config::DestinationConfig;
use crate::error::{ConfigError, DeliveryError};

/// The converter options of a `type = "fhir"` destination; an error names the key.
pub fn converter_options(config: &DestinationConfig) -> Result<v2_fhir::Options, String> {
    let mut options = v2_fhir::Options::default();
    if let Some(tz) = &config.timezone {
        options.timezone = Some(
            tz.parse::<v2_fhir::Zone>()
                .map_err(|e| format!("`timezone`: {e}"))?,
        );
    }
    if let Some(base) = &config.identifier_base {
        if base.is_empty() || !base.contains(':') || base.trim() != base {
            return Err(format!(
                "`identifier_base` {base:?} is not an absolute URI (e.g. \"https://id.example.org\")"
            ));
        }
        options.identifier_base = base.trim_end_matches('/').to_owned();
    }
    Ok(options)
}

/// Sends transaction Bundles to a FHIR server.
pub struct FhirDestination {
    endpoint: HttpEndpoint,
    timeout: Duration,
}

impl std::fmt::Debug for FhirDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirDestination").finish_non_exhaustive()
    }
}

impl FhirDestination {
    /// From a validated `type = "fhir"` configuration; TLS files are read now.
    pub fn new(config: &DestinationConfig, base: &Path) -> Result<FhirDestination, ConfigError> {
        converter_options(config).map_err(|reason| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        })?;
        Ok(FhirDestination {
            endpoint: HttpEndpoint::new(
                config,
                base,
                "fhir destinations need `url`, the server's base",
            )?,
            timeout: config.timeout,
        })
    }

    async fn send(&mut self, message: &Outgoing) -> Result<Delivered, DeliveryError> {
        let accept = [(
            http::header::ACCEPT,
            HeaderValue::from_static("application/fhir+json"),
        )];
        let (status, body) = self
            .endpoint
            .exchange(
                Method::POST,
                "application/fhir+json",
                &accept,
                message.payload.clone(),
            )
            .await?;
        let answered_at = UnixMicros::now();
        let answer = answer_text(status, &body);
        if !status.is_success() {
            return Err(failure(status, answer, "the FHIR server"));
        }
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let is_response = parsed
            .as_ref()
            .is_some_and(|b| b["resourceType"] == "Bundle" && b["type"] == "transaction-response");
        if !is_response {
            return Err(DeliveryError::refused(
                format!(
                    "the FHIR server answered HTTP {status} without a transaction-response Bundle"
                ),
                answer,
            ));
        }
        let entries = parsed
            .as_ref()
            .and_then(|b| b["entry"].as_array().map(Vec::len))
            .unwrap_or(0);
        Ok(Delivered {
            answer: format!("HTTP {status} transaction-response with {entries} entries"),
            answered_at,
        })
    }
}

impl Destination for FhirDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        _meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send(message)).await {
            Ok(result) => result,
            Err(_) => {
                // A request cut off halfway leaves the connection unusable.
                self.endpoint.reset();
                Err(DeliveryError::transient(format!(
                    "no answer from the FHIR server within {timeout:?}"
                )))
            }
        }
    }
}
