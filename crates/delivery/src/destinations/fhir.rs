//! FHIR destinations: each message's FHIR R4 transaction Bundle POSTed to a FHIR
//! server's base URL.
//!
//! The Bundle is made when the message is routed (`Router`), from the message as this
//! destination's transformers leave it, with the destination's `timezone` and
//! `identifier_base`, and it is the queue entry's payload. Resource ids are stable and
//! every entry is a `PUT`, so a Bundle the server sees twice updates the same
//! resources. A message type the converter does not handle is `filtered` (by `fhir`); a
//! message it cannot convert is `errored` with the converter's reason.
//!
//! # Shared resources are merged at send time
//!
//! A Patient, Encounter, Practitioner, ... ([`v2_fhir::merge::SHARED`]) is described in
//! part by each message: a VXU's PID has no SSN, driver's licence or contacts, and a
//! `PUT` of it alone would erase what the ADT recorded on the server. So what is sent
//! is the payload with each shared resource merged into the server's current version,
//! by the rules the repository applies ([`v2_fhir::merge::merge_into`]): before the
//! POST, each such entry is read with `GET {base}/{type}/{id}` (same connection, TLS
//! and headers). On 200 the message's resource is merged into the server's (its `meta`
//! dropped) and the entry's `request.ifMatch` is set to the answer's `ETag` (else
//! `W/"{meta.versionId}"`), so the `PUT` applies only to the version read (a server
//! that gives neither keeps no versions: the merge is sent without `ifMatch`, and the
//! delivery's answer says so); on 404 or
//! 410 the entry is sent as it is (a create); any other answer is transient. A 412 (for
//! the whole transaction or in an entry's response: the resource changed between the
//! read and the write) is transient, and the retry reads again. The merge is done at
//! send time, not at routing, because only then is the server's version known: the
//! queue entry keeps the Bundle made at routing (what the message said), and a retry
//! or resend merges it into whatever the server holds then. A Bundle without shared
//! resources, or whose shared resources the server does not have yet, is sent as the
//! payload's exact bytes.
//!
//! Delivered means a 2xx answer carrying a `transaction-response` Bundle whose entries
//! are all answered 2xx. 408, 412, 429 and 5xx, for the whole request or in an entry,
//! are transient (retry with backoff); other answers, an entry without a status, and a
//! 2xx without a transaction-response, are refusals that follow `on_nak`.
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

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::Value;
use store::UnixMicros;
use v2_fhir::merge::{Update, is_shared, merge_into};

use super::DestinationConfig;
use super::http::{EndpointKeys, HttpEndpoint, answer_text, failure};
use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::FailureKind;
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
        let (payload, merged) = self.merged_payload(&message.payload).await?;
        let accept = [(
            http::header::ACCEPT,
            HeaderValue::from_static("application/fhir+json"),
        )];
        let (status, body) = self
            .endpoint
            .exchange(Method::POST, "application/fhir+json", &accept, payload)
            .await?;
        let answered_at = UnixMicros::now();
        let answer = answer_text(status, &body);
        if status == StatusCode::PRECONDITION_FAILED {
            return Err(changed_meanwhile(answer));
        }
        if !status.is_success() {
            return Err(failure(status, answer, "the FHIR server"));
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
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
        let responses = parsed
            .as_ref()
            .and_then(|b| b["entry"].as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(error) = entry_failure(responses, &answer) {
            return Err(error);
        }
        let merged = match merged {
            Merged { all: 0, .. } => String::new(),
            Merged { all, unversioned } => {
                let resources = if all == 1 { "resource" } else { "resources" };
                let unversioned = match unversioned {
                    0 => String::new(),
                    n => format!(
                        "; {n} without a version from the server (no ETag, no meta.versionId), \
                         so written with no version to match"
                    ),
                };
                format!(" ({all} shared {resources} merged into the server's{unversioned})")
            }
        };
        Ok(Delivered {
            answer: format!(
                "HTTP {status} transaction-response with {} entries{merged}",
                responses.len()
            ),
            answered_at,
        })
    }

    /// The payload with each shared resource merged into the server's current version
    /// (see the module docs), and how many were merged; the payload's own bytes when
    /// none was.
    async fn merged_payload(&mut self, payload: &Bytes) -> Result<(Bytes, Merged), DeliveryError> {
        let mut merged = Merged::default();
        // Not JSON (never made by the router): the server says what it thinks of it.
        let Ok(mut bundle) = serde_json::from_slice::<Value>(payload) else {
            return Ok((payload.clone(), merged));
        };
        let update = Update::of_json(&bundle);
        if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
            for entry in entries {
                let Some(resource_type) = entry["resource"]["resourceType"].as_str() else {
                    continue;
                };
                if !is_shared(resource_type) {
                    continue;
                }
                let resource_type = resource_type.to_owned();
                let id = entry["resource"]["id"].as_str().unwrap_or_default();
                if !is_fhir_id(id) {
                    return Err(DeliveryError::refused(
                        format!("a {resource_type} of the Bundle has no valid FHIR id"),
                        "not sent",
                    ));
                }
                let id = id.to_owned();
                let Some((mut current, version)) = self.current(&resource_type, &id).await? else {
                    continue;
                };
                if let Value::Object(map) = &mut current {
                    map.remove("meta");
                }
                let incoming = entry["resource"].take();
                entry["resource"] = merge_into(current, incoming, &resource_type, &update);
                match (version, &mut entry["request"]) {
                    (Some(version), Value::Object(request)) => {
                        request.insert("ifMatch".into(), version.into());
                    }
                    _ => merged.unversioned += 1,
                }
                merged.all += 1;
            }
        }
        if merged.all == 0 {
            return Ok((payload.clone(), merged));
        }
        Ok((Bytes::from(bundle.to_string()), merged))
    }

    /// The server's current `{resource_type}/{id}` and its version as an `If-Match`
    /// value (the `ETag`, else `W/"{meta.versionId}"`); None when it has none (404,
    /// 410). Any other answer is transient.
    async fn current(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<(Value, Option<String>)>, DeliveryError> {
        let accept = [(
            http::header::ACCEPT,
            HeaderValue::from_static("application/fhir+json"),
        )];
        let path = format!("{resource_type}/{id}");
        let (status, headers, body) = self
            .endpoint
            .request(Method::GET, Some(&path), None, &accept, Bytes::new())
            .await?;
        match status.as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            _ => {
                return Err(DeliveryError {
                    kind: FailureKind::Transient,
                    reason: format!(
                        "the FHIR server answered HTTP {status} to the read of a {resource_type} \
                         to update"
                    ),
                    answer: Some(answer_text(status, &body)),
                });
            }
        }
        let current: Value = serde_json::from_slice(&body)
            .ok()
            .filter(|r: &Value| r["resourceType"] == resource_type && r["id"] == id)
            .ok_or_else(|| {
                DeliveryError::transient(format!(
                    "the FHIR server answered the read of a {resource_type} to update with \
                     something else than that {resource_type}"
                ))
            })?;
        let version = headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                current["meta"]["versionId"]
                    .as_str()
                    .map(|v| format!("W/\"{v}\""))
            });
        Ok(Some((current, version)))
    }
}

/// How many shared resources of a Bundle were merged into the server's, and how many
/// of those had no version to send as `ifMatch`.
#[derive(Debug, Default, Clone, Copy)]
struct Merged {
    all: usize,
    unversioned: usize,
}

/// The failure a transaction-response's entries report, if any: an entry answered 412
/// is [`changed_meanwhile`]; any other entry not answered 2xx fails the delivery as that
/// status would for the whole request (408, 429 and 5xx transient, others refused).
/// A server that applies entries one by one may have written the others: the retry
/// writes them again, with the same ids, as a resend does.
fn entry_failure(responses: &[Value], answer: &str) -> Option<DeliveryError> {
    let statuses: Vec<(usize, &str)> = responses
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                i,
                e["response"]["status"].as_str().unwrap_or_default().trim(),
            )
        })
        .collect();
    if statuses.iter().any(|(_, s)| s.starts_with("412")) {
        return Some(changed_meanwhile(answer.to_owned()));
    }
    let (index, status) = statuses.into_iter().find(|(_, s)| {
        !s.get(..3)
            .and_then(|code| code.parse::<u16>().ok())
            .is_some_and(|code| (200..300).contains(&code))
    })?;
    let code = status.get(..3).and_then(|c| c.parse::<u16>().ok());
    let reason = if status.is_empty() {
        format!("the FHIR server's transaction-response entry {index} has no status")
    } else {
        format!("the FHIR server answered {status:?} in transaction-response entry {index}")
    };
    let transient = code.is_some_and(|c| c == 408 || c == 429 || (500..600).contains(&c));
    Some(if transient {
        DeliveryError {
            kind: FailureKind::Transient,
            reason,
            answer: Some(answer.to_owned()),
        }
    } else {
        DeliveryError::refused(reason, answer.to_owned())
    })
}

/// A 412: a shared resource changed on the server between its read and the write.
fn changed_meanwhile(answer: String) -> DeliveryError {
    DeliveryError {
        kind: FailureKind::Transient,
        reason: "the FHIR server answered 412: a shared resource changed since it was read; \
                 the retry reads it again"
            .into(),
        answer: Some(answer),
    }
}

/// A FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
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
