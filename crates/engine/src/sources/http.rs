//! The HTTP source: `[channels.NAME] source = { type = "http", listen = "0.0.0.0:8081" }`.
//!
//! Each channel with an HTTP source has a listener of its own, apart from the engine's
//! HTTP port (which serves the API and shows message content, so it stays on loopback):
//! the sender's firewall rule and URL name one port per feed, as with MLLP.
//!
//! A sender `POST`s a raw HL7 v2 message, or several (a stream or an FHS/BHS batch), as
//! the body, to any path. Corridor stores every message (through the channel's
//! [`Intake`], as the MLLP source does: duplicate window, rejected messages stored too,
//! validation before the ACK when the channel asks for it) and answers only after the
//! commit, with the acknowledgement as the body (`Content-Type: x-application/hl7-v2+er7`):
//!
//! | answer | when |
//! | --- | --- |
//! | 200 | every message was accepted (AA, or CA in enhanced mode; duplicates too) |
//! | 400 | a message was rejected (AR/CR): not HL7, unreadable header, unsupported type or version |
//! | 422 | a message was in error (AE/CE): it does not parse, or failed validation |
//! | 503 | the store could not take a message: send it again |
//! | 413 | the body is larger than `max_frame_size` (plain text; nothing stored) |
//! | 408 | the body did not arrive within `read_timeout` (plain text; nothing stored) |
//! | 400 | the body is empty (plain text; nothing stored) |
//! | 405 | not a `POST` (plain text) |
//!
//! A body with several messages is answered with a batch of acknowledgements
//! (`BHS`, one ACK per message in order, `BTS` with the count); the status is the
//! worst of them. The answer's `X-Corridor-Message-Ids` header lists the journal ids
//! (comma-separated, empty for a message that could not be stored).
//!
//! The listener keeps the source's `max_connections`, `read_timeout` and
//! `idle_timeout` (see [`crate::http_serve`]).

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hl7v2::AckCode;
use serde::Deserialize;
use tracing::{info, warn};

use super::Listener;
use super::shared_keys::{
    AckModeSetting, ListenAddr, ListenerKeys, default_idle_timeout, default_max_connections,
    default_read_timeout,
};
use super::{RunningSource, split_body};
use crate::http_serve::{HttpLimits, HttpServer, RequestTimedOut};
use crate::intake::{Intake, IntakeStatus, Origin, Received};
use crate::start_error::StartError;
use conf::{ByteSize, ConfigDuration};

/// The media type of an HL7 v2 message in its usual (ER7) encoding.
pub const HL7_CONTENT_TYPE: &str = "x-application/hl7-v2+er7";

/// `source = { type = "http", ... }`: an HTTP source's own keys (the keys every source
/// takes are in [`SourceConfig`](crate::SourceConfig); `max_frame_size` is the largest
/// body).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// Address to listen on, `IP:port` (required; missing, it is reported with the
    /// file's other problems).
    #[serde(default)]
    pub listen: Option<ListenAddr>,
    /// Time a sender has to send a whole request (default `"30s"`).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
    /// Time a connection may wait between requests (default `"1h"`; `0` = forever).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Most connections served at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// With `ack_mode = "enhanced"`: the `host:port` of the senders' own MLLP
    /// listener, where the application acknowledgements MSH-16 asks for are sent
    /// once each message is processed. Without it they are noted as owed only.
    #[serde(default)]
    pub application_ack_to: Option<String>,
}

impl HttpSourceConfig {
    /// An HTTP source on `listen` with every default.
    pub fn new(listen: SocketAddr) -> HttpSourceConfig {
        HttpSourceConfig {
            listen: Some(ListenAddr(listen)),
            read_timeout: default_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            application_ack_to: None,
        }
    }

    /// The limits of the source's listener.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            read_timeout: self.read_timeout.0,
            idle_timeout: self.idle_timeout.0,
        }
    }

    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str, ack_mode: AckModeSetting) -> Vec<(String, String)> {
        ListenerKeys {
            kind: "http",
            listen: self.listen,
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            application_ack_to: self.application_ack_to.as_deref(),
            ack_mode,
        }
        .check(at)
    }
}

/// A running HTTP source.
pub struct HttpSource {
    server: HttpServer,
}

#[derive(Clone)]
struct SourceState {
    intake: Intake,
    max_body: usize,
}

impl HttpSource {
    /// Listens on `listen` with a source's default limits and hands every posted body
    /// to `intake`; bodies larger than `max_body` bytes are refused with 413.
    pub async fn bind(
        listen: SocketAddr,
        intake: Intake,
        max_body: usize,
    ) -> std::io::Result<HttpSource> {
        let limits = HttpSourceConfig::new(listen).limits();
        HttpSource::bind_with_limits(listen, intake, max_body, limits).await
    }

    /// Like [`HttpSource::bind`], within `limits`.
    pub async fn bind_with_limits(
        listen: SocketAddr,
        intake: Intake,
        max_body: usize,
        limits: HttpLimits,
    ) -> std::io::Result<HttpSource> {
        let channel = intake.channel().clone();
        let app = Router::new()
            .fallback(receive)
            .with_state(SourceState { intake, max_body });
        let server = serve_app(listen, &channel, app, limits).await?;
        info!(addr = %server.local_addr(), "HTTP source listening");
        Ok(HttpSource { server })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops accepting, lets requests in flight be stored and answered, and returns.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A running HTTP source with the address it listens on.
pub(crate) struct RunningHttp {
    listener: Listener,
    source: HttpSource,
}

impl RunningHttp {
    /// Binds `source`'s listener with its limits (the largest body is
    /// `max_frame_size`) and serves it through `intake`; the error names the
    /// `listen` key of channel `name`.
    pub(crate) async fn start(
        name: &str,
        http: &HttpSourceConfig,
        max_frame_size: ByteSize,
        intake: Intake,
    ) -> Result<RunningHttp, StartError> {
        let max_body = usize::try_from(max_frame_size.0).unwrap_or(usize::MAX);
        let addr = http
            .listen
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |l| l.0);
        let http = HttpSource::bind_with_limits(addr, intake, max_body, http.limits())
            .await
            .map_err(|err| StartError::Listen {
                key: format!("channels.{name}.source.listen"),
                addr,
                reason: err.to_string(),
            })?;
        let listener = Listener {
            channel: name.to_owned(),
            addr: http.local_addr(),
            tls: false,
        };
        Ok(RunningHttp {
            listener,
            source: http,
        })
    }
}

impl RunningSource for RunningHttp {
    fn listener(&self) -> Option<Listener> {
        Some(self.listener.clone())
    }

    /// Stops after the requests in flight are stored and answered.
    async fn shutdown(self, _grace: std::time::Duration) -> bool {
        self.source.shutdown().await;
        true
    }
}

/// Binds `listen` and serves `app` within `limits`: the listener every source that
/// takes HTTP requests runs on (`http`, `fhir`).
pub(crate) async fn serve_app(
    listen: SocketAddr,
    channel: &str,
    app: Router,
    limits: HttpLimits,
) -> std::io::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    HttpServer::spawn(channel, listener, app, limits)
}

/// The body of a source's `POST`, or the plain-text answer that refuses the request:
/// 405 for another method, 408 when the body did not arrive within `read_timeout`,
/// 413 past `max_body`, 400 for an empty body. `what` says what to post.
pub(crate) async fn read_post(
    request: Request,
    max_body: usize,
    peer: SocketAddr,
    what: &str,
) -> Result<Bytes, Response> {
    if request.method() != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("POST {what} as the request body"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(response);
    }
    let body = match axum::body::to_bytes(request.into_body(), max_body).await {
        Ok(body) => body,
        Err(err) => {
            if let Some(timed_out) = RequestTimedOut::in_chain(&err) {
                warn!(peer = %peer, read_timeout = ?timed_out.read_timeout, "request body not received within read_timeout; answered 408");
                let mut response = plain(StatusCode::REQUEST_TIMEOUT, format!("{timed_out}"));
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Err(response);
            }
            // The only other error that is not the client going away is the size limit.
            return Err(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than this source's max_frame_size ({max_body} bytes), or was cut off: {err}"
                ),
            ));
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            format!("the body is empty: POST {what}"),
        ));
    }
    Ok(body)
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn receive(
    State(state): State<SourceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let what = "one HL7 v2 message, several, or an FHS/BHS batch";
    let body = match read_post(request, state.max_body, peer, what).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let (messages, batch) = split_body(&body);
    let answers = state
        .intake
        .receive(messages, &Origin::new(peer.to_string()))
        .await;
    respond(&answers, batch)
}

/// The HTTP status of one answer.
pub(crate) fn status_of(answer: &Received) -> StatusCode {
    match (&answer.status, answer.code) {
        (IntakeStatus::Failed, _) => StatusCode::SERVICE_UNAVAILABLE,
        (IntakeStatus::Stored(_) | IntakeStatus::Duplicate(_), _) => StatusCode::OK,
        (IntakeStatus::Rejected { .. }, AckCode::AR | AckCode::CR) => StatusCode::BAD_REQUEST,
        (IntakeStatus::Rejected { .. }, _) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// How bad a status is, for the answer to a batch: the worst wins.
pub(crate) fn rank(status: StatusCode) -> u8 {
    match status {
        StatusCode::OK => 0,
        StatusCode::UNPROCESSABLE_ENTITY => 1,
        StatusCode::BAD_REQUEST => 2,
        _ => 3,
    }
}

fn respond(answers: &[Received], batch: bool) -> Response {
    let status = answers
        .iter()
        .map(status_of)
        .max_by_key(|s| rank(*s))
        .unwrap_or(StatusCode::OK);
    let mut body = Vec::new();
    if batch {
        body.extend_from_slice(b"BHS|^~\\&|||||");
        body.extend_from_slice(hl7_now().as_bytes());
        body.push(b'\r');
    }
    for answer in answers {
        if let Some(ack) = &answer.ack {
            body.extend_from_slice(ack);
            if !ack.ends_with(b"\r") {
                body.push(b'\r');
            }
        }
    }
    if batch {
        body.extend_from_slice(format!("BTS|{}\r", answers.len()).as_bytes());
    }
    let ids = message_ids(answers);
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(HL7_CONTENT_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(&ids) {
        headers.insert("x-corridor-message-ids", value);
    }
    response
}

/// The journal ids of the answers, comma-separated (empty for one not stored): the
/// `X-Corridor-Message-Ids` header.
pub(crate) fn message_ids(answers: &[Received]) -> String {
    answers
        .iter()
        .map(|a| match &a.status {
            IntakeStatus::Stored(id)
            | IntakeStatus::Duplicate(id)
            | IntakeStatus::Rejected { id, .. } => id.to_string(),
            IntakeStatus::Failed => String::new(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The current time as HL7 DTM (UTC, to the second).
fn hl7_now() -> String {
    let mut now = datetime::hl7::now_dtm_utc();
    now.truncate(14);
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_now_is_a_dtm_to_the_second() {
        let now = hl7_now();
        assert_eq!(now.len(), 14, "{now}");
        assert!(now.starts_with("20"), "{now}");
        assert!(now.bytes().all(|b| b.is_ascii_digit()), "{now}");
    }
}
