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
//! timezone = "+01:00"                    # optional, for times sent without an offset
//! identifier_base = "https://id.example.org"  # optional, default urn:corridor:id
//! tls = { ca = "ca.pem" }                # for https
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use store::UnixMicros;
use tokio::net::TcpStream;

use super::{Delivered, DeliveryMeta, Destination, Outgoing, clip, tls};
use crate::config::DestinationConfig;
use crate::error::{ConfigError, DeliveryError};

/// The converter options of a `type = "fhir"` destination; an error names the key.
pub fn converter_options(config: &DestinationConfig) -> Result<v2_fhir::Options, String> {
    let mut options = v2_fhir::Options::default();
    if let Some(tz) = &config.timezone {
        options.timezone = Some(
            tz.parse::<v2_fhir::UtcOffset>()
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
    uri: Uri,
    authority: String,
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for FhirDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirDestination")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl FhirDestination {
    /// From a validated `type = "fhir"` configuration; TLS files are read now.
    pub fn new(config: &DestinationConfig, base: &Path) -> Result<FhirDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        converter_options(config).map_err(fail)?;
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| fail("fhir destinations need `url`, the server's base".into()))?;
        let uri: Uri = url
            .parse()
            .map_err(|e| fail(format!("`url` {url:?}: {e}")))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| fail(format!("`url` {url:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        let tls = if https {
            let tls_config = config
                .tls
                .as_ref()
                .ok_or_else(|| fail("https URLs need `tls = { ca = ... }`".into()))?;
            let client = tls::client_config(tls_config, base).map_err(fail)?;
            let name = tls_config
                .server_name
                .clone()
                .unwrap_or_else(|| host.clone());
            let name = ServerName::try_from(name.clone())
                .map_err(|_| fail(format!("{name:?} is not a valid TLS server name")))?;
            Some((tokio_rustls::TlsConnector::from(Arc::clone(&client)), name))
        } else {
            None
        };
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("`headers`: {name:?} is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| fail(format!("`headers`: the value of {name} is not valid")))?;
            headers.push((name, value));
        }
        Ok(FhirDestination {
            uri,
            authority,
            host,
            port,
            tls,
            headers,
            timeout: config.timeout,
            sender: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, DeliveryError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                DeliveryError::transient(format!("cannot connect to {}: {e}", self.authority))
            })?;
        let _ = tcp.set_nodelay(true);
        let handshake_error = |e: hyper::Error| {
            DeliveryError::transient(format!(
                "HTTP handshake with {} failed: {e}",
                self.authority
            ))
        };
        match &self.tls {
            None => {
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(handshake_error)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(sender)
            }
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    DeliveryError::transient(format!(
                        "TLS handshake with {} failed: {e}",
                        self.authority
                    ))
                })?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(handshake_error)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(sender)
            }
        }
    }

    async fn send(&mut self, message: &Outgoing) -> Result<Delivered, DeliveryError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/fhir+json")
            .header(http::header::ACCEPT, "application/fhir+json");
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(message.payload.clone()))
            .map_err(|e| DeliveryError::transient(format!("cannot build the HTTP request: {e}")))?;
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender.ready().await.map_err(|e| {
            DeliveryError::transient(format!("HTTP connection to {} failed: {e}", self.authority))
        })?;
        let response = sender.send_request(request).await.map_err(|e| {
            DeliveryError::transient(format!("HTTP request to {} failed: {e}", self.authority))
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                DeliveryError::transient(format!(
                    "reading the answer of {} failed: {e}",
                    self.authority
                ))
            })?
            .to_bytes();
        self.sender = Some(sender);
        let answered_at = UnixMicros::now();
        let answer = format!("HTTP {status} {}", clip(&body, 512))
            .trim_end()
            .to_owned();
        if status.is_success() {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
            let is_response = parsed.as_ref().is_some_and(|b| {
                b["resourceType"] == "Bundle" && b["type"] == "transaction-response"
            });
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
        } else if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            Err(DeliveryError {
                kind: crate::FailureKind::Transient,
                reason: format!("the FHIR server answered HTTP {status}"),
                answer: Some(answer),
            })
        } else {
            Err(DeliveryError::refused(
                format!("the FHIR server answered HTTP {status}"),
                answer,
            ))
        }
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
                self.sender = None;
                Err(DeliveryError::transient(format!(
                    "no answer from the FHIR server within {timeout:?}"
                )))
            }
        }
    }
}
