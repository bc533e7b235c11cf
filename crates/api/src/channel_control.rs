//! Start, stop and pause of channels and of destinations:
//! `GET /api/channels/{name}/control` shows a channel's state and its destinations';
//! `POST /api/channels/{name}/{start|stop|pause}` and
//! `POST /api/channels/{channel}/destinations/{destination}/{start|stop|pause|resume}`
//! change them (`resume` is `start`, kept for earlier clients). The engine does the work behind [`crate::ConfigControl`]; the changes are
//! `Operate` routes, so each is in the audit trail with who asked and its outcome.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::config::{BoxFuture, applied_by};
use crate::extract::Path;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

/// What an operator asks of a channel or a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelAction {
    /// Runs it: the source receives and the processor processes; a destination
    /// delivers its queue.
    Start,
    /// The source keeps receiving and storing; the processor processes nothing. A
    /// destination keeps queuing and sends nothing, its connection left open.
    Pause,
    /// The source takes nothing (its listener is closed, a directory is not read) and
    /// the processor processes nothing. A destination keeps queuing, sends nothing and
    /// closes its connection to the receiver.
    Stop,
}

/// A destination's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationControl {
    pub destination: String,
    /// `running`, `paused` (queues, sends nothing, connection kept) or `stopped`
    /// (queues, sends nothing, connection closed).
    pub state: &'static str,
    /// When it was paused or stopped, ISO 8601 (None while running).
    pub paused_at: Option<String>,
    /// Who paused or stopped it.
    pub paused_by: Option<String>,
}

/// A channel's state and its destinations'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelControl {
    pub channel: String,
    /// `running`, `paused` or `stopped`.
    pub state: &'static str,
    /// When an operator last paused or stopped it, ISO 8601 (None while running).
    pub changed_at: Option<String>,
    /// Who did.
    pub changed_by: Option<String>,
    pub destinations: Vec<DestinationControl>,
}

/// Why a change was not made; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRefused {
    /// No such channel or destination runs.
    NotFound(String),
    /// The engine is stopping, or this process has no channels.
    Unavailable(String),
    /// It failed (the listener could not bind again, the store refused the write).
    Failed(String),
}

impl From<ControlRefused> for ApiError {
    fn from(refused: ControlRefused) -> ApiError {
        match refused {
            ControlRefused::NotFound(why) => ApiError::not_found(why),
            ControlRefused::Unavailable(why) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why),
            ControlRefused::Failed(why) => ApiError::internal(why),
        }
    }
}

/// The answer of a control that is not there.
pub(crate) fn unavailable<T: Send + 'static>() -> BoxFuture<Result<T, ControlRefused>> {
    Box::pin(async {
        Err(ControlRefused::Unavailable(
            "channel control is not available here".to_owned(),
        ))
    })
}

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(
            Method::Get,
            "/api/channels/{name}/control",
            Access::Metadata,
            show,
        )
        .add(
            Method::Post,
            "/api/channels/{name}/start",
            Access::Operate,
            start,
        )
        .add(
            Method::Post,
            "/api/channels/{name}/stop",
            Access::Operate,
            stop,
        )
        .add(
            Method::Post,
            "/api/channels/{name}/pause",
            Access::Operate,
            pause,
        )
        .add(
            Method::Post,
            "/api/channels/{channel}/destinations/{destination}/start",
            Access::Operate,
            start_destination,
        )
        .add(
            Method::Post,
            "/api/channels/{channel}/destinations/{destination}/pause",
            Access::Operate,
            pause_destination,
        )
        .add(
            Method::Post,
            "/api/channels/{channel}/destinations/{destination}/stop",
            Access::Operate,
            stop_destination,
        )
        .add(
            Method::Post,
            "/api/channels/{channel}/destinations/{destination}/resume",
            Access::Operate,
            start_destination,
        )
}

fn control(api: &Api) -> Result<crate::SharedConfigControl, ApiError> {
    api.config
        .clone()
        .ok_or_else(|| ApiError::not_found("channel control is not available here"))
}

async fn show(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<ChannelControl>, ApiError> {
    control(&api)?
        .channel_states()
        .await
        .into_iter()
        .find(|c| c.channel == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no channel {name:?} runs")))
}

/// Changes a channel's state as `action` asks; the answer is its state after.
pub(crate) async fn change(
    api: &Api,
    principal: &Principal,
    name: String,
    action: ChannelAction,
) -> Result<ChannelControl, ApiError> {
    Ok(control(api)?
        .set_channel_state(name, action, applied_by(principal))
        .await?)
}

/// Starts, pauses or stops a destination; the answer is its channel's state after.
pub(crate) async fn change_destination(
    api: &Api,
    principal: &Principal,
    channel: String,
    destination: String,
    action: ChannelAction,
) -> Result<ChannelControl, ApiError> {
    Ok(control(api)?
        .set_destination_state(channel, destination, action, applied_by(principal))
        .await?)
}

async fn start(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<ChannelControl>, ApiError> {
    change(&api, &principal, name, ChannelAction::Start)
        .await
        .map(Json)
}

async fn stop(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<ChannelControl>, ApiError> {
    change(&api, &principal, name, ChannelAction::Stop)
        .await
        .map(Json)
}

async fn pause(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<ChannelControl>, ApiError> {
    change(&api, &principal, name, ChannelAction::Pause)
        .await
        .map(Json)
}

async fn destination(
    api: Api,
    principal: Principal,
    (channel, destination): (String, String),
    action: ChannelAction,
) -> Result<Json<ChannelControl>, ApiError> {
    change_destination(&api, &principal, channel, destination, action)
        .await
        .map(Json)
}

async fn start_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Result<Json<ChannelControl>, ApiError> {
    destination(api, principal, names, ChannelAction::Start).await
}

async fn pause_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Result<Json<ChannelControl>, ApiError> {
    destination(api, principal, names, ChannelAction::Pause).await
}

async fn stop_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Result<Json<ChannelControl>, ApiError> {
    destination(api, principal, names, ChannelAction::Stop).await
}
