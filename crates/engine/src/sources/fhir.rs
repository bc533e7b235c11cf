//! The FHIR source: `[channels.NAME] source = { type = "fhir", listen = "0.0.0.0:8082" }`.
//!
//! FHIR in, HL7 v2 through the channel: for v2-only destinations. A client `POST`s
//! (to any path) FHIR R4 JSON: one resource, a Bundle of any type (a `transaction`
//! usually), or a Subscription notification (an R4 `history` Bundle whose first entry
//! is the notification's status, as the Subscriptions R5 Backport writes it). The
//! body is translated by `v2_fhir::to_v2` (the v2-to-FHIR guide's mappings read
//! backwards: Patient to ADT^A28/A31, Encounter to ADT^A01/A03/A08, ServiceRequest to
//! ORM^O01, Observation and DiagnosticReport to ORU^R01, MedicationRequest to RDE^O11,
//! Immunization to VXU^V04, allergies, conditions and coverage into the patient's
//! ADT), and the messages go through the channel's [`Intake`] like any message
//! received: stored (duplicate window, validation before the answer when the channel
//! asks) before the answer, then filtered, transformed and delivered.
//!
//! The answer is an `OperationOutcome` (`application/fhir+json`): an `information`
//! issue per message stored (its type and MSH-10), every element and resource that has
//! no place in v2 (`not-supported`), and what a notification named without sending it
//! (`incomplete`). `X-Corridor-Message-Ids` lists the journal ids, as the `http`
//! source does.
//!
//! | answer | when |
//! | --- | --- |
//! | 200 | every message was stored (or none was made: a heartbeat, a resource with no v2 message) |
//! | 400 | the body is not FHIR R4 JSON: the issue's `expression` names the element (`Patient.birthDate`) |
//! | 422 | a message was refused by the channel (validation before the answer): the issue says why |
//! | 503 | the store could not take a message: send it again |
//! | 405, 408, 413, and 400 for an empty body | as the `http` source (plain text) |
//!
//! The listener is the `http` source's ([`super::http::serve_app`],
//! [`super::http::read_post`]), with the same `read_timeout`, `idle_timeout` and
//! `max_connections`; `max_frame_size` is the largest body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;
use v2_fhir::to_v2::{ToV2Options, to_v2};

use super::http::{message_ids, rank, read_post, serve_app, status_of};
use super::shared_keys::{
    AckModeSetting, ListenAddr, ListenerKeys, default_idle_timeout, default_max_connections,
    default_read_timeout,
};
use super::{Listener, RunningSource};
use crate::http_serve::{HttpLimits, HttpServer};
use crate::intake::{Intake, IntakeStatus, Origin};
use crate::start_error::StartError;
use conf::{ByteSize, ConfigDuration};

/// `source = { type = "fhir", ... }`: a FHIR source's own keys (the keys every source
/// takes are in `SourceConfig`; `max_frame_size` is the largest body).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirSourceConfig {
    /// Address to listen on, `IP:port` (required).
    #[serde(default)]
    pub listen: Option<ListenAddr>,
    /// Time a client has to send a whole request (default `"30s"`).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
    /// Time a connection may wait between requests (default `"1h"`; `0` = forever).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Most connections served at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// MSH-3 of the messages made (default `"CORRIDOR"`).
    #[serde(default = "default_application")]
    pub sending_application: String,
    /// MSH-4 of the messages made (default empty).
    #[serde(default)]
    pub sending_facility: String,
    /// The base of identifier systems made from local authority names
    /// (`{base}/HOSP` is CX-4 `HOSP`; default `"urn:corridor:id"`, see
    /// `v2_fhir::identity`).
    #[serde(default)]
    pub identifier_base: Option<String>,
}

fn default_application() -> String {
    "CORRIDOR".to_owned()
}

impl FhirSourceConfig {
    /// A FHIR source on `listen` with every default.
    pub fn new(listen: SocketAddr) -> FhirSourceConfig {
        FhirSourceConfig {
            listen: Some(ListenAddr(listen)),
            read_timeout: default_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            sending_application: default_application(),
            sending_facility: String::new(),
            identifier_base: None,
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
        let mut errors = ListenerKeys {
            kind: "fhir",
            listen: self.listen,
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            application_ack_to: None,
            ack_mode,
        }
        .check(at);
        if let Some(base) = &self.identifier_base
            && (!base.contains(':') || base.trim() != base)
        {
            errors.push((
                format!("{at}.source.identifier_base"),
                format!("{base:?} is not an absolute URI (e.g. \"https://id.example.org\")"),
            ));
        }
        for (key, value) in [
            ("sending_application", &self.sending_application),
            ("sending_facility", &self.sending_facility),
        ] {
            if value.contains(['|', '^', '~', '\\', '&', '\r', '\n']) {
                errors.push((
                    format!("{at}.source.{key}"),
                    format!("{value:?} holds an HL7 delimiter (| ^ ~ \\ &) or a line break"),
                ));
            }
        }
        errors
    }

    fn options(&self) -> ToV2Options {
        let mut options = ToV2Options {
            sending_application: self.sending_application.clone(),
            sending_facility: self.sending_facility.clone(),
            ..ToV2Options::default()
        };
        if let Some(base) = &self.identifier_base {
            options.identifier_base = base.trim_end_matches('/').to_owned();
        }
        options
    }
}

#[derive(Clone)]
struct SourceState {
    intake: Intake,
    max_body: usize,
    options: Arc<ToV2Options>,
    /// The last MSH-10 start given, in microseconds: each translation gets a larger
    /// one, so two requests in one second never make the same control ids (which
    /// the duplicate window would take for a resend).
    last_control: Arc<AtomicU64>,
}

impl SourceState {
    /// The options of one translation: this moment's MSH-7 and a control id start
    /// no other translation of this source had.
    fn options_now(&self) -> ToV2Options {
        let now = u64::try_from(store::UnixMicros::now().0).unwrap_or(0);
        let previous = self
            .last_control
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        let start = now.max(previous + 1);
        ToV2Options {
            timestamp: v2_fhir::to_v2::now(),
            control_id_start: Some(format!("F{start}")),
            ..(*self.options).clone()
        }
    }
}

/// A running FHIR source with the address it listens on.
pub(crate) struct RunningFhir {
    listener: Listener,
    server: HttpServer,
}

impl RunningFhir {
    /// Binds `source`'s listener and serves it through `intake`; the error names the
    /// `listen` key of channel `name`.
    pub(crate) async fn start(
        name: &str,
        fhir: &FhirSourceConfig,
        max_frame_size: ByteSize,
        intake: Intake,
    ) -> Result<RunningFhir, StartError> {
        let max_body = usize::try_from(max_frame_size.0).unwrap_or(usize::MAX);
        let addr = fhir
            .listen
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |l| l.0);
        let channel = intake.channel().clone();
        let state = SourceState {
            intake,
            max_body,
            options: Arc::new(fhir.options()),
            last_control: Arc::new(AtomicU64::new(0)),
        };
        let app = Router::new().fallback(receive).with_state(state);
        let server = serve_app(addr, &channel, app, fhir.limits())
            .await
            .map_err(|err| StartError::Listen {
                key: format!("channels.{name}.source.listen"),
                addr,
                reason: err.to_string(),
            })?;
        info!(addr = %server.local_addr(), "FHIR source listening");
        let listener = Listener {
            channel: name.to_owned(),
            addr: server.local_addr(),
            tls: false,
        };
        Ok(RunningFhir { listener, server })
    }
}

impl RunningSource for RunningFhir {
    fn listener(&self) -> Option<Listener> {
        Some(self.listener.clone())
    }

    /// Stops after the requests in flight are stored and answered.
    async fn shutdown(self, _grace: std::time::Duration) -> bool {
        self.server.shutdown().await;
        true
    }
}

fn issue(severity: &str, code: &str, diagnostics: String, expression: Option<&str>) -> Value {
    let mut issue = json!({ "severity": severity, "code": code, "diagnostics": diagnostics });
    if let Some(e) = expression.filter(|e| !e.is_empty()) {
        issue["expression"] = json!([e]);
    }
    issue
}

fn answer(status: StatusCode, outcome: &Value, ids: Option<String>) -> Response {
    let mut response = Response::new(Body::from(outcome.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    if let Some(value) = ids.and_then(|ids| HeaderValue::from_str(&ids).ok()) {
        headers.insert("x-corridor-message-ids", value);
    }
    response
}

/// MSH-9 and MSH-10 of a message made here, for the answer.
fn type_and_control(message: &str) -> (String, String) {
    let msh = message.split('\r').next().unwrap_or("");
    let field = |n: usize| msh.split('|').nth(n).unwrap_or("").to_owned();
    (field(8), field(9))
}

async fn receive(
    State(state): State<SourceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let what = "a FHIR R4 resource, a Bundle or a Subscription notification (JSON)";
    let body = match read_post(request, state.max_body, peer, what).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let translation = match to_v2(&body, &state.options_now()) {
        Ok(t) => t,
        Err(e) => {
            let outcome = json!({
                "resourceType": "OperationOutcome",
                "issue": [issue("error", "invalid", e.message.clone(), Some(&e.element))],
            });
            return answer(StatusCode::BAD_REQUEST, &outcome, None);
        }
    };
    let mut outcome = translation.outcome;
    let made: Vec<(String, String)> = translation
        .messages
        .iter()
        .map(|m| type_and_control(m))
        .collect();
    if translation.messages.is_empty() {
        return answer(StatusCode::OK, &outcome, Some(String::new()));
    }
    let messages: Vec<Bytes> = translation.messages.into_iter().map(Bytes::from).collect();
    let answers = state
        .intake
        .receive(messages, &Origin::new(peer.to_string()))
        .await;
    let status = answers
        .iter()
        .map(status_of)
        .max_by_key(|s| rank(*s))
        .unwrap_or(StatusCode::OK);
    let mut notes = Vec::new();
    for (received, (kind, control)) in answers.iter().zip(&made) {
        notes.push(match &received.status {
            IntakeStatus::Stored(id) => issue(
                "information",
                "informational",
                format!("stored as message {id}: {kind}, MSH-10 {control}"),
                None,
            ),
            IntakeStatus::Duplicate(id) => issue(
                "information",
                "duplicate",
                format!("{kind}, MSH-10 {control}, is a repeat of message {id}: not stored again"),
                None,
            ),
            IntakeStatus::Rejected { id, reason } => issue(
                "error",
                "processing",
                format!("{kind}, MSH-10 {control}, was refused (message {id}): {reason}"),
                None,
            ),
            IntakeStatus::Failed => issue(
                "error",
                "transient",
                format!("{kind}, MSH-10 {control}, could not be stored: send the request again"),
                None,
            ),
        });
    }
    if let Some(Value::Array(issues)) = outcome.get_mut("issue") {
        notes.append(issues);
        *issues = notes;
    }
    answer(status, &outcome, Some(message_ids(&answers)))
}
