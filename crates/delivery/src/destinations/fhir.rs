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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http::{HeaderValue, Method};
use store::UnixMicros;

use super::DestinationConfig;
use super::http::{EndpointKeys, HttpEndpoint, answer_text, failure};
use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::config::TlsConfig;

/// `type = "fhir"`: a FHIR destination's own keys (the keys every destination takes are
/// in [`DestinationConfig`]).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FhirDestinationConfig {
    /// The FHIR server's base URL, where the transaction Bundle is POSTed (required;
    /// missing, it is reported with the file's other problems).
    #[serde(default)]
    pub url: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` URL.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The zone of times the message sends without an offset when MSH-7 has none
    /// either: an IANA name (`America/Chicago`) or a fixed offset (`+01:00`, `Z`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// The base URI of identifier systems and local code systems (default
    /// `urn:corridor:id`).
    #[serde(default)]
    pub identifier_base: Option<String>,
}

impl FhirDestinationConfig {
    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.url {
            None => return Err("fhir destinations need `url`".into()),
            Some(url) => super::http::check_url(url)?,
        }
        converter_options(self)?;
        Ok(())
    }
}
use crate::error::{ConfigError, DeliveryError};

/// The converter options of a `type = "fhir"` destination; an error names the key.
pub fn converter_options(config: &FhirDestinationConfig) -> Result<v2_fhir::Options, String> {
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
    pub fn new(
        config: &DestinationConfig,
        fhir: &FhirDestinationConfig,
        base: &Path,
    ) -> Result<FhirDestination, ConfigError> {
        converter_options(fhir).map_err(|reason| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        })?;
        let keys = EndpointKeys {
            destination: &config.name,
            url: fhir.url.as_deref(),
            tls: fhir.tls.as_ref(),
            headers: &fhir.headers,
        };
        Ok(FhirDestination {
            endpoint: HttpEndpoint::new(
                &keys,
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
