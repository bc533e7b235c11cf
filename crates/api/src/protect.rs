//! What every answer of the HTTP port carries, and the limit on every request body.
//!
//! - Security headers: `X-Content-Type-Options: nosniff`, a `Content-Security-Policy`
//!   (`default-src 'self'; frame-ancestors 'none'`) unless the route set its own,
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`
//!   unless the route set its own, and with HTTPS `Strict-Transport-Security`.
//! - A body size limit: a request whose `Content-Length` is over `max_body` is answered
//!   413 before any route sees it; a body that grows past it while being read (chunked)
//!   is refused by the route's body extractor, and that 413 too is answered as JSON
//!   (`{"error"}`, or an OperationOutcome on `/fhir`).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The body size limit unless configured (`[http] max_body`): 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// How the HTTP port protects its answers: set by the engine from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpPolicy {
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// Whether the port serves HTTPS: answers then carry `Strict-Transport-Security`.
    pub tls: bool,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            max_body: DEFAULT_MAX_BODY,
            tls: false,
        }
    }
}

/// The TLS client certificate's subject of a request's connection (mutual TLS), put
/// in the request's extensions by the server: the audit records name it as "from".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity(pub String);

const CSP: &str = "default-src 'self'; frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000";

fn too_large(path: &str, max_body: usize) -> Response {
    let message = format!("the request body is larger than the limit of {max_body} bytes");
    if path.starts_with("/fhir") {
        ApiError::outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", message).into_response()
    } else {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
    }
}

pub(crate) async fn protect(policy: HttpPolicy, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut response = match declared {
        Some(length) if length > policy.max_body as u64 => too_large(&path, policy.max_body),
        _ => {
            let response = next.run(request).await;
            let json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("json"));
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
                too_large(&path, policy.max_body)
            } else {
                response
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if policy.tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}
