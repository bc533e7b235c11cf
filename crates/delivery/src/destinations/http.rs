//! HTTP destinations: one request per message, success by status code.
//!
//! One HTTP/1.1 connection (plain or TLS) stays open between requests. A status in
//! `success` is delivered; 408, 429 and 5xx are transient (retry); any other status is a
//! refusal that follows `on_nak`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use store::UnixMicros;
use tokio::net::TcpStream;

use super::{Delivered, DeliveryMeta, Destination, Outgoing, clip, tls};
use super::{DestinationConfig, DestinationSettings};
use crate::config::{HttpBody, TlsConfig};
use crate::error::{ConfigError, DeliveryError};

const DEFAULT_SUCCESS: [u16; 4] = [200, 201, 202, 204];

/// `type = "http"`: an HTTP destination's own keys (the keys every destination takes
/// are in [`DestinationConfig`]).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpDestinationConfig {
    /// The URL to send to, `http://` or `https://` (required; missing, it is reported
    /// with the file's other problems).
    #[serde(default)]
    pub url: Option<String>,
    /// The request method (default `POST`).
    #[serde(default)]
    pub method: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body: the message as HL7 text (`hl7`, the default when not written),
    /// a JSON envelope, or a JSON payload as it is.
    #[serde(default)]
    pub body: Option<HttpBody>,
    /// The status codes that mean the receiver took the message (default 200, 201,
    /// 202, 204).
    #[serde(default)]
    pub success: Option<Vec<u16>>,
    /// TLS settings for an `https://` URL.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl HttpDestinationConfig {
    /// An HTTP destination posting to `url`, every other key at its default.
    pub fn new(url: impl Into<String>) -> HttpDestinationConfig {
        HttpDestinationConfig {
            url: Some(url.into()),
            method: None,
            headers: BTreeMap::new(),
            body: None,
            success: None,
            tls: None,
        }
    }

    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.url {
            None => return Err("http destinations need `url`".into()),
            Some(url) => check_url(url)?,
        }
        if let Some(method) = &self.method {
            if Method::from_bytes(method.as_bytes()).is_err() {
                return Err(format!("`method` {method:?} is not an HTTP method"));
            }
        }
        if let Some(codes) = &self.success {
            if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
                return Err("`success` must list HTTP status codes between 100 and 599".into());
            }
        }
        Ok(())
    }

    fn endpoint_keys<'a>(&'a self, config: &'a DestinationConfig) -> EndpointKeys<'a> {
        EndpointKeys {
            destination: &config.name,
            url: self.url.as_deref(),
            tls: self.tls.as_ref(),
            headers: &self.headers,
        }
    }
}

/// A `url` must be `http://` or `https://`.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`url` {url:?} must start with http:// or https://"))
    }
}

/// The keys an HTTP-speaking destination sends with: its name (for errors), `url`,
/// `tls` and `headers`.
pub(crate) struct EndpointKeys<'a> {
    pub destination: &'a str,
    pub url: Option<&'a str>,
    pub tls: Option<&'a TlsConfig>,
    pub headers: &'a BTreeMap<String, String>,
}

/// Sends to an HTTP endpoint.
pub struct HttpDestination {
    endpoint: HttpEndpoint,
    method: Method,
    body: HttpBody,
    success: Vec<u16>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDestination")
            .field("uri", &self.endpoint.uri)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Where an HTTP-speaking destination sends (`url`, `tls`, `headers`), and the one
/// HTTP/1.1 connection (plain or TLS) kept open between its requests. The `http` and
/// `fhir` destinations share it.
pub(crate) struct HttpEndpoint {
    uri: Uri,
    authority: String,
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpEndpoint {
    /// From the destination's `url`, `tls` and `headers`; `missing_url` is the error
    /// when there is no `url`. TLS files are read now.
    pub(crate) fn new(
        config: &EndpointKeys<'_>,
        base: &Path,
        missing_url: &str,
    ) -> Result<HttpEndpoint, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.destination.to_owned(),
            reason,
        };
        let url = config.url.ok_or_else(|| fail(missing_url.to_owned()))?;
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
        for (name, value) in config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("`headers`: {name:?} is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| fail(format!("`headers`: the value of {name} is not valid")))?;
            headers.push((name, value));
        }
        Ok(HttpEndpoint {
            uri,
            authority,
            host,
            port,
            tls,
            headers,
            sender: None,
        })
    }

    /// Forgets the connection (after a request was cut off halfway).
    pub(crate) fn reset(&mut self) {
        self.sender = None;
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

    /// Sends `body` with `method` to the URL (Host, `content_type` and the configured
    /// headers set, plus `extra`), reusing the open connection, and reads the whole
    /// answer so the connection can carry the next request.
    pub(crate) async fn exchange(
        &mut self,
        method: Method,
        content_type: &str,
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), DeliveryError> {
        let (status, _, body) = self
            .request(method, None, Some(content_type), extra, body)
            .await?;
        Ok((status, body))
    }

    /// The path of `under` below the URL's path (`/r4` and `Patient/1` give
    /// `/r4/Patient/1`); the URL's own query is not carried over.
    fn path_under(&self, under: &str) -> String {
        let base = self.uri.path().trim_end_matches('/');
        format!("{base}/{}", under.trim_start_matches('/'))
    }

    /// Like [`HttpEndpoint::exchange`], with the answer's headers: to `under` below
    /// the URL when given (a FHIR server's `Patient/1` under its base), on the same
    /// connection, TLS and configured headers. Without `content_type` no
    /// `Content-Type` is sent (a `GET`).
    pub(crate) async fn request(
        &mut self,
        method: Method,
        under: Option<&str>,
        content_type: Option<&str>,
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), DeliveryError> {
        let path = match under {
            Some(under) => self.path_under(under),
            None => self
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority);
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in extra.iter().chain(&self.headers) {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
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
        let (parts, body) = response.into_parts();
        let body = body
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
        Ok((status, parts.headers, body))
    }
}

/// `HTTP <status> <start of the body>`, as an entry's recorded answer.
pub(crate) fn answer_text(status: StatusCode, body: &[u8]) -> String {
    format!("HTTP {status} {}", clip(body, 512))
        .trim_end()
        .to_owned()
}

/// A status that is not a success: 408, 429 and 5xx are transient (retry), any other a
/// refusal. `who` names the receiver in the reason ("the receiver", "the FHIR server").
pub(crate) fn failure(status: StatusCode, answer: String, who: &str) -> DeliveryError {
    let reason = format!("{who} answered HTTP {status}");
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        DeliveryError {
            kind: crate::FailureKind::Transient,
            reason,
            answer: Some(answer),
        }
    } else {
        DeliveryError::refused(reason, answer)
    }
}

/// A JSON document POSTed to a URL, for senders that are not destinations (the alert
/// webhook): the same connection handling, TLS and headers as an `http` destination.
pub struct JsonPost {
    endpoint: HttpEndpoint,
    timeout: Duration,
}

impl std::fmt::Debug for JsonPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonPost")
            .field("uri", &self.endpoint.uri)
            .finish_non_exhaustive()
    }
}

impl JsonPost {
    /// From `url`, `tls`, `headers` and `timeout` of an `http` configuration.
    pub fn new(config: &DestinationConfig, base: &Path) -> Result<JsonPost, ConfigError> {
        let DestinationSettings::Http(http) = &config.settings else {
            return Err(ConfigError::Invalid {
                destination: config.name.clone(),
                reason: format!(
                    "a webhook is an http destination, not {}",
                    config.kind().as_str()
                ),
            });
        };
        let keys = http.endpoint_keys(config);
        Ok(JsonPost {
            endpoint: HttpEndpoint::new(&keys, base, "a webhook needs `url`")?,
            timeout: config.timeout,
        })
    }

    /// POSTs `body` as `application/json`; a 2xx status is success, anything else an
    /// error with the status in words.
    pub async fn post(&mut self, body: Bytes) -> Result<String, DeliveryError> {
        let exchange = self
            .endpoint
            .exchange(Method::POST, "application/json", &[], body);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, body))) if status.is_success() => Ok(answer_text(status, &body)),
            Ok(Ok((status, body))) => {
                Err(failure(status, answer_text(status, &body), "the webhook"))
            }
            Ok(Err(error)) => {
                self.endpoint.reset();
                Err(error)
            }
            Err(_) => {
                self.endpoint.reset();
                Err(DeliveryError::transient(format!(
                    "no HTTP answer within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

impl HttpDestination {
    /// From a validated `type = "http"` configuration; TLS files are read now.
    pub fn new(
        config: &DestinationConfig,
        http: &HttpDestinationConfig,
        base: &Path,
    ) -> Result<HttpDestination, ConfigError> {
        let keys = http.endpoint_keys(config);
        let endpoint = HttpEndpoint::new(&keys, base, "http destinations need `url`")?;
        let method = match &http.method {
            Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| ConfigError::Invalid {
                destination: config.name.clone(),
                reason: format!("`method` {m:?} is not an HTTP method"),
            })?,
            None => Method::POST,
        };
        Ok(HttpDestination {
            endpoint,
            method,
            body: http.body.unwrap_or_default(),
            success: http.success.clone().unwrap_or(DEFAULT_SUCCESS.to_vec()),
            timeout: config.timeout,
        })
    }

    async fn send(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        let (content_type, body) = match self.body {
            HttpBody::Hl7 => ("x-application/hl7-v2+er7", message.payload.clone()),
            HttpBody::Json => {
                let control_id = hl7v2::Message::parse(&message.payload)
                    .map(|m| m.control_id().into_owned())
                    .unwrap_or_default();
                let envelope = serde_json::json!({
                    "channel": &*meta.channel,
                    "destination": &*meta.destination,
                    "message_id": message.message_id.0,
                    "control_id": control_id,
                    "hl7": String::from_utf8_lossy(&message.payload),
                });
                ("application/json", Bytes::from(envelope.to_string()))
            }
            HttpBody::JsonPayload => {
                if serde_json::from_slice::<serde_json::Value>(&message.payload).is_err() {
                    return Err(DeliveryError::refused(
                        "the payload is not JSON, and body = \"json_payload\" sends JSON only",
                        "not sent",
                    ));
                }
                ("application/json", message.payload.clone())
            }
        };
        let (status, body) = self
            .endpoint
            .exchange(self.method.clone(), content_type, &[], body)
            .await?;
        let answered_at = UnixMicros::now();
        let answer = answer_text(status, &body);
        if self.success.contains(&status.as_u16()) {
            Ok(Delivered {
                answer,
                answered_at,
            })
        } else {
            Err(failure(status, answer, "the receiver"))
        }
    }
}

impl Destination for HttpDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send(message, meta)).await {
            Ok(result) => result,
            Err(_) => {
                // A request cut off halfway leaves the connection unusable.
                self.endpoint.reset();
                Err(DeliveryError::transient(format!(
                    "no HTTP answer within {timeout:?}"
                )))
            }
        }
    }
}
