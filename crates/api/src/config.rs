//! `POST /api/config/reload`, `GET /api/config/history` and
//! `GET /api/config/history/{n}`: applying the configuration file again without a
//! restart, and every configuration applied, with who applied it and its diff.
//!
//! The engine does the work behind [`ConfigControl`]; this module only turns it into
//! HTTP. All three routes are `Admin`, and so audited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::extract::Path;
use crate::routes::{Access, Method, Routes};
use crate::times::{add_iso, iso};
use crate::{Api, ApiError, Principal};

/// A future the engine hands back, boxed so the trait stays object safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One problem of a configuration that was refused: its key, what is wrong, and its
/// line in the file when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
    pub line: Option<usize>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadApplied {
    /// The number of the configuration in the history (`None` when nothing changed,
    /// so nothing was recorded).
    pub version: Option<i64>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Why a reload did not happen. The running configuration stays in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadRefused {
    /// The file has errors, or changes a setting that needs a restart: each problem
    /// names its key.
    Invalid {
        /// The file read.
        file: Option<String>,
        problems: Vec<ConfigProblem>,
    },
    /// There is nothing to reload from (started without a file), or the engine is
    /// stopping.
    Unavailable(String),
    /// Applying it failed (a listener could not bind): what had changed was put back.
    Failed(String),
}

impl ReloadRefused {
    /// The refusal in one line, for logs and the `error` field.
    pub fn summary(&self) -> String {
        match self {
            ReloadRefused::Invalid { file, problems } => {
                let list: Vec<String> = problems
                    .iter()
                    .map(|p| match p.line {
                        Some(line) => format!("{} (line {line}): {}", p.key, p.message),
                        None => format!("{}: {}", p.key, p.message),
                    })
                    .collect();
                format!(
                    "the configuration{} was refused and the running one stays: {}",
                    file.as_ref().map(|f| format!(" {f}")).unwrap_or_default(),
                    list.join("; ")
                )
            }
            ReloadRefused::Unavailable(why) => why.clone(),
            ReloadRefused::Failed(why) => {
                format!("the configuration could not be applied and the running one stays: {why}")
            }
        }
    }
}

/// One applied configuration, as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigVersion {
    /// Its number, counting from 1.
    pub n: i64,
    /// When it was applied, in microseconds since the Unix epoch.
    pub applied_at: i64,
    /// Who applied it: `start`, `SIGHUP`, or the API caller (`user:alice`,
    /// `token:3 (admin)`).
    pub applied_by: String,
    /// The file's text as applied.
    pub config: String,
    /// A unified diff against the configuration applied before it (empty for the first).
    pub diff: String,
}

/// What the engine offers the configuration routes.
pub trait ConfigControl: Send + Sync + 'static {
    /// Reads the configuration file again and applies it, recording it as applied by
    /// `by`; refused whole on any error.
    fn reload(&self, by: String) -> BoxFuture<Result<ReloadApplied, ReloadRefused>>;
    /// Every configuration applied, oldest first.
    fn history(&self) -> Result<Vec<ConfigVersion>, String>;
    /// One configuration applied, by number.
    fn version(&self, n: i64) -> Result<Option<ConfigVersion>, String>;
    /// Every running channel's state and its destinations', by name.
    fn channel_states(&self) -> BoxFuture<Vec<crate::ChannelControl>> {
        Box::pin(async { Vec::new() })
    }
    /// Starts, pauses or stops a channel as `by` asks; kept in the store.
    fn set_channel_state(
        &self,
        channel: String,
        action: crate::ChannelAction,
        by: String,
    ) -> BoxFuture<Result<crate::ChannelControl, crate::ControlRefused>> {
        let _ = (channel, action, by);
        crate::channel_control::unavailable()
    }
    /// Starts, pauses or stops a destination as `by` asks; kept in the store.
    fn set_destination_state(
        &self,
        channel: String,
        destination: String,
        action: crate::ChannelAction,
        by: String,
    ) -> BoxFuture<Result<crate::ChannelControl, crate::ControlRefused>> {
        let _ = (channel, destination, action, by);
        crate::channel_control::unavailable()
    }
}

/// The engine's side of configuration reload, shared by the routes.
pub type SharedConfigControl = Arc<dyn ConfigControl>;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Post, "/api/config/reload", Access::Admin, reload)
        .add(Method::Get, "/api/config/history", Access::Admin, history)
        .add(
            Method::Get,
            "/api/config/history/{n}",
            Access::Admin,
            version,
        )
}

fn control(api: &Api) -> Result<SharedConfigControl, ApiError> {
    api.config
        .clone()
        .ok_or_else(|| ApiError::not_found("configuration reload is not available here"))
}

/// Who applied a configuration, as the history records it.
pub(crate) fn applied_by(principal: &Principal) -> String {
    match principal.authenticated() {
        Some(p) => match p.actor.owner() {
            Some(owner) => format!("{} ({owner})", p.actor.audit_name()),
            None => match (&p.actor, principal.user()) {
                (access::Actor::Anonymous, Some(user)) => format!("anonymous ({user})"),
                _ => p.actor.audit_name(),
            },
        },
        None => principal.user().unwrap_or("anonymous").to_owned(),
    }
}

async fn reload(State(api): State<Api>, principal: Principal) -> Result<Response, ApiError> {
    let control = control(&api)?;
    match control.reload(applied_by(&principal)).await {
        Ok(applied) => Ok(Json(json!({ "applied": true, "reload": applied })).into_response()),
        Err(refused) => {
            let (status, problems) = match &refused {
                ReloadRefused::Invalid { problems, .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, problems.clone())
                }
                ReloadRefused::Unavailable(_) => (StatusCode::CONFLICT, Vec::new()),
                ReloadRefused::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
            };
            let body: Value = json!({
                "error": refused.summary(),
                "errors": problems,
            });
            Ok((status, Json(body)).into_response())
        }
    }
}

async fn history(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let control = control(&api)?;
    let versions = tokio::task::spawn_blocking(move || control.history())
        .await
        .map_err(|e| ApiError::internal(format!("reading the history failed: {e}")))?
        .map_err(ApiError::internal)?;
    let list: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "n": v.n,
                "applied_at": v.applied_at,
                "applied": iso(v.applied_at),
                "applied_by": v.applied_by,
                "diff": v.diff,
            })
        })
        .collect();
    Ok(Json(json!({ "versions": list })))
}

async fn version(State(api): State<Api>, Path(n): Path<i64>) -> Result<Json<Value>, ApiError> {
    let control = control(&api)?;
    let found = tokio::task::spawn_blocking(move || control.version(n))
        .await
        .map_err(|e| ApiError::internal(format!("reading the history failed: {e}")))?
        .map_err(ApiError::internal)?;
    let found = found
        .ok_or_else(|| ApiError::not_found(format!("no configuration number {n} was applied")))?;
    let mut body = serde_json::to_value(&found).map_err(|e| ApiError::internal(e.to_string()))?;
    add_iso(&mut body, &["applied_at"]);
    Ok(Json(body))
}
