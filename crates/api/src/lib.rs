//! Corridor's HTTP API: every route the engine serves on its HTTP port, in one place.
//!
//! | area | routes | module |
//! | --- | --- | --- |
//! | health and metrics | `GET /health`, `GET /metrics` | `health` |
//! | message browser | `/api/messages...`, `/api/stats` | `messages` |
//! | the destinations' dead letters: list, discard | `/api/dead-letters...` | `dead_letters` |
//! | quarantine and data quality | `/api/quarantine...`, `/api/data-quality` | `quarantine` |
//! | patient index (PDQm, PIXm, `$match`, reviews, decisions) | `/mpi/...` | `patients` |
//! | terminology: loads, unmapped codes, `$translate`, `$lookup`, `$validate-code` | `/api/terminology...`, `/fhir/ConceptMap...`, `/fhir/CodeSystem...`, `/fhir/ValueSet/$validate-code` | `terminology` |
//! | feed profile of a channel's stored messages | `/api/channels/{name}/profile` | `profile` |
//! | FHIR R4 repository | `/fhir/...` | `fhir` |
//! | alerts | `/api/alerts...` | `alerts` |
//! | configuration reload and its history | `/api/config/...` | `config` |
//! | browser sessions | `POST /login`, `POST /logout` | `session` |
//! | web console (HTML from the `console` crate) | `/`, `GET /login`, `/console/...` | `console` |
//!
//! Each route is declared once, with its method, path and [`Access`] class; the same
//! declaration builds the [`router`] and the table [`routes`] lists, so access control
//! can walk every route and none can be served unlisted.
//!
//! Three things are shared by every route:
//!
//! - one error type, [`ApiError`]: `{"error": "..."}` with a status code, or an
//!   `OperationOutcome` on the FHIR repository's routes;
//! - access control, [`Auth`]: before each route's handler, the route's class
//!   ([`Access`]) decides which permission the caller needs; bearer tokens (Corridor
//!   API tokens, OpenID Connect JWTs) are checked, 401 or 403 answered, and PHI reads
//!   and changes recorded in the audit trail before the answer leaves;
//! - one extractor for the acting user, [`Principal`], the authenticated caller;
//! - one JSON shape per resource: a journal entry is [`entry_json`] wherever it
//!   appears (the message list, one message, a quarantine entry's original).
//!
//! The crates below (`quarantine`, `mpi`, `fhir-repo`, `store`, `delivery`) expose
//! plain functions and types; this crate turns them into HTTP.
//!
//! The API shows message content, which is PHI: every route but `/health` needs
//! credentials unless [`Auth::off`] is chosen (the engine allows that on loopback only).
//!
//! ```no_run
//! # async fn demo(store: store::Store) {
//! let app = api::router(api::Api::new(store));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

mod admin;
mod alerts;
mod audit_events;
mod auth;
mod cds;
mod channel_control;
mod config;
mod console;
mod dead_letters;
mod error;
mod extract;
mod fhir;
mod health;
mod messages;
mod patients;
mod principal;
mod profile;
mod protect;
mod quarantine;
mod routes;
mod rules;
mod saved_searches;
mod session;
mod terminology;
mod times;

use std::sync::Arc;

use axum::Router;

pub use ::console::QueueThresholds;
pub use auth::{Auth, CSRF_FIELD, CsrfToken};
pub use cds::screening_rules as cds_screening_rules;
pub use channel_control::{ChannelAction, ChannelControl, ControlRefused, DestinationControl};
pub use config::{
    BoxFuture, ConfigControl, ConfigProblem, ConfigVersion, ReloadApplied, ReloadRefused,
    SharedConfigControl,
};
pub use error::ApiError;
pub use fhir::{DEFAULT_COUNT, MAX_COUNT, capability_statement};
pub use health::{ChannelHealth, EngineStatus};
pub use messages::entry_json;
pub use patients::parse_enterprise;
pub use principal::{Principal, USER_HEADER};
pub use protect::{DEFAULT_MAX_BODY, HttpPolicy, TlsIdentity};
pub use quarantine::REASON_HEADER;
pub use routes::{Access, Method, RouteInfo};

/// Tells a channel's pipeline that messages wait in its journal as `received`, so it
/// looks now instead of at its next poll.
pub type WakeChannel = Arc<dyn Fn(&str) + Send + Sync>;

/// What the routes work on. A part left `None` answers its routes with a clear error
/// (503 for the running parts, 404 for a component that is not enabled).
#[derive(Clone)]
pub struct Api {
    pub store: store::Store,
    /// The running destinations, for their statistics and resends.
    pub delivery: Option<Arc<delivery::Delivery>>,
    /// Called after a message was put back to `received` (reprocess).
    pub wake_channel: WakeChannel,
    /// The quarantine, with each channel's validation settings.
    pub quarantine: Option<::quarantine::Quarantine>,
    /// The patient index, when enabled.
    pub patient_index: Option<mpi::MpiService>,
    /// How clients reach `/fhir` (`http://host:8080/fhir`), when the repository is
    /// enabled; used in `fullUrl` and paging links.
    pub fhir_base: Option<String>,
    /// The engine's health and counters, for `/health` and `/metrics`.
    pub status: Option<Arc<dyn EngineStatus>>,
    /// Who may call which route, and the audit trail of PHI reads and changes.
    pub auth: Auth,
    /// The running `[[alerts]]`, when any is configured.
    pub alerts: Option<::alerts::Alerts>,
    /// Configuration reload and its history (`/api/config/...`), when the engine was
    /// started from a file.
    pub config: Option<SharedConfigControl>,
    /// The terminology in force and its stored loads (`/api/terminology`, the FHIR
    /// terminology operations).
    pub terminology: Option<::terminology::TerminologyService>,
    /// The rules the CDS Hooks services answer with, built by [`cds_screening_rules`]
    /// from the live rules' settings (`[rules]`); `None` answers with the defaults.
    pub cds_rules: Option<Arc<::rules::Rules>>,
    /// When the dashboard colours a destination's queue depth and oldest entry
    /// (`[console]`).
    pub queue_thresholds: QueueThresholds,
    /// The destinations with thresholds of their own (`[console.destinations]`), by
    /// `(channel, destination)`; the others use [`Api::queue_thresholds`].
    pub destination_thresholds: std::collections::BTreeMap<(String, String), QueueThresholds>,
}

impl Api {
    /// The API over `store` alone: the message browser; nothing to wake, no
    /// destinations, quarantine, patient index or repository, and no authentication
    /// ([`Auth::off`]: for tests and callers inside the process; the engine always
    /// sets [`Api::auth`] from `[http] auth`).
    pub fn new(store: store::Store) -> Api {
        Api {
            store,
            delivery: None,
            wake_channel: Arc::new(|_| {}),
            quarantine: None,
            patient_index: None,
            fhir_base: None,
            status: None,
            auth: Auth::off(None),
            alerts: None,
            config: None,
            terminology: None,
            cds_rules: None,
            queue_thresholds: QueueThresholds::default(),
            destination_thresholds: Default::default(),
        }
    }

    pub(crate) fn quarantine(&self) -> Result<&::quarantine::Quarantine, ApiError> {
        self.quarantine.as_ref().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the quarantine is not running",
            )
        })
    }

    pub(crate) fn patient_index(&self) -> Result<&mpi::MpiService, ApiError> {
        self.patient_index
            .as_ref()
            .ok_or_else(|| ApiError::not_found("the patient index is not enabled"))
    }
}

/// Every route, declared once: the router and the table come from here.
fn declare() -> (Router<Api>, Vec<RouteInfo>) {
    health::routes()
        .merge(messages::routes())
        .merge(dead_letters::routes())
        .merge(saved_searches::routes())
        .merge(quarantine::routes())
        .merge(patients::routes())
        .merge(terminology::routes())
        .merge(profile::routes())
        .merge(fhir::routes())
        // Access (issue 13): the FHIR AuditEvent search and the admin routes.
        .merge(audit_events::routes())
        .merge(admin::routes())
        .merge(rules::routes())
        .merge(cds::routes())
        .merge(alerts::routes())
        .merge(config::routes())
        // Browser sessions and the console.
        .merge(session::routes())
        .merge(console::routes())
        // Start, stop and pause of channels and destinations.
        .merge(channel_control::routes())
        .into_parts()
}

/// The API's routes over `api`, with the default [`HttpPolicy`] (no TLS, bodies up to
/// [`DEFAULT_MAX_BODY`]).
pub fn router(api: Api) -> Router {
    router_with(api, HttpPolicy::default())
}

/// The API's routes over `api`: every answer carries the security headers, and every
/// request body is limited to `policy.max_body` (413 with a JSON error beyond).
pub fn router_with(api: Api, policy: HttpPolicy) -> Router {
    let auth = api.auth.clone();
    declare()
        .0
        .with_state(api)
        .layer(axum::Extension(auth))
        .layer(axum::extract::DefaultBodyLimit::max(policy.max_body))
        .layer(axum::middleware::from_fn(move |request, next| {
            protect::protect(policy, request, next)
        }))
}

/// The route table: every route [`router`] serves, with its method, path and access
/// class, in declaration order.
pub fn routes() -> Vec<RouteInfo> {
    declare().1
}
