//! The console's administration page: running channels and their destinations, the
//! configuration history with diffs, users, tokens, and the audit trail's export form.
//! The page is `Admin`; its start, stop and pause buttons post to the `Operate` forms
//! below, which do what `POST /api/channels/...` does. Other changes stay with the
//! JSON routes and the command line.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use console::{AdminView, ChannelView, ConfigVersionView, TokenView, UserView};

use super::{html, redirect_back, viewer};
use crate::auth::CsrfToken;
use crate::extract::Path;
use crate::{Api, ApiError, Principal};

/// How many configuration versions the page shows, newest first.
const VERSIONS: usize = 20;

pub(super) async fn admin(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    outcome: super::Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let states = match api.config.clone() {
        Some(control) => control.channel_states().await,
        None => Vec::new(),
    };
    let destinations = match api.delivery.clone() {
        Some(delivery) => crate::messages::blocking(move || Ok(delivery.stats()?)).await?,
        None => Vec::new(),
    };
    let channels: Vec<ChannelView> = api
        .status
        .as_ref()
        .map(|s| s.channels())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let state = states.iter().find(|s| s.channel == c.name);
            ChannelView {
                state: state.map_or("running", |s| s.state).to_owned(),
                paused_destinations: state
                    .map(|s| {
                        s.destinations
                            .iter()
                            .filter(|d| d.state == "paused")
                            .map(|d| d.destination.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                destinations: destinations
                    .iter()
                    .filter(|d| d.channel == c.name)
                    .map(|d| d.destination.clone())
                    .collect(),
                name: c.name,
                listen: c.listen,
                received: c.received,
                processed: c.processed,
                errored: c.errored,
            }
        })
        .collect();
    let (versions, running_config) = match api.config.clone() {
        Some(control) => {
            let history = tokio::task::spawn_blocking(move || control.history())
                .await
                .map_err(|e| ApiError::internal(format!("reading the history failed: {e}")))?
                .map_err(ApiError::internal)?;
            let running = history.last().map(|v| v.config.clone());
            let versions = history
                .iter()
                .rev()
                .take(VERSIONS)
                .map(|v| ConfigVersionView {
                    n: v.n,
                    applied_at: console::time_text(v.applied_at),
                    applied_by: v.applied_by.clone(),
                    diff: v.diff.clone(),
                })
                .collect();
            (versions, running)
        }
        None => (Vec::new(), None),
    };
    let identities = match api.auth.identities() {
        Some(identities) => identities.clone(),
        None => access::Access::open(api.store.clone())
            .await
            .map_err(|e| ApiError::internal(format!("the users could not be opened: {e}")))?,
    };
    let (users, tokens) = tokio::task::spawn_blocking(move || {
        Ok::<_, access::Error>((identities.list_users()?, identities.list_tokens()?))
    })
    .await
    .map_err(|e| ApiError::internal(format!("listing users stopped: {e}")))?
    .map_err(|e| ApiError::internal(format!("the users could not be read: {e}")))?;
    let view = AdminView {
        channels,
        versions,
        running_config,
        users: users
            .iter()
            .map(|u| UserView {
                name: u.name.clone(),
                role: u.role.as_str().to_owned(),
                created: console::time_text(u.created_at),
                has_password: u.has_password,
                disabled: u.disabled,
            })
            .collect(),
        tokens: tokens
            .iter()
            .map(|t| TokenView {
                id: t.id,
                user: t.user.clone(),
                hint: t.hint.clone(),
                role: t.role.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                created: console::time_text(t.created_at),
                expires: t.expires_at.map(console::time_text).unwrap_or_default(),
                revoked: t.revoked_at.map(console::time_text).unwrap_or_default(),
            })
            .collect(),
        notice: outcome.notice,
        error: outcome.error,
    };
    Ok(html(StatusCode::OK, console::admin_page(&viewer, &view)))
}

/// `POST /console/channels/{name}/{start|pause|stop}`: the administration page's
/// buttons; 303 back to it saying what happened.
async fn channel_form(
    api: Api,
    principal: Principal,
    name: String,
    action: crate::ChannelAction,
) -> Response {
    let result = crate::channel_control::change(&api, &principal, name, action)
        .await
        .map(|c| format!("Channel {} is {}.", c.channel, c.state));
    redirect_back("/console/admin", result)
}

pub(super) async fn start_channel(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Response {
    channel_form(api, principal, name, crate::ChannelAction::Start).await
}

pub(super) async fn pause_channel(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Response {
    channel_form(api, principal, name, crate::ChannelAction::Pause).await
}

pub(super) async fn stop_channel(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Response {
    channel_form(api, principal, name, crate::ChannelAction::Stop).await
}

/// `POST /console/channels/{channel}/destinations/{destination}/{pause|resume}`.
async fn destination_form(
    api: Api,
    principal: Principal,
    channel: String,
    destination: String,
    paused: bool,
) -> Response {
    let name = destination.clone();
    let result = crate::channel_control::change_destination(
        &api,
        &principal,
        channel.clone(),
        destination,
        paused,
    )
    .await
    .map(|_| {
        format!(
            "Destination {name} of {channel} is {}.",
            if paused { "paused" } else { "running" }
        )
    });
    redirect_back("/console/admin", result)
}

pub(super) async fn pause_destination(
    State(api): State<Api>,
    principal: Principal,
    Path((channel, destination)): Path<(String, String)>,
) -> Response {
    destination_form(api, principal, channel, destination, true).await
}

pub(super) async fn resume_destination(
    State(api): State<Api>,
    principal: Principal,
    Path((channel, destination)): Path<(String, String)>,
) -> Response {
    destination_form(api, principal, channel, destination, false).await
}
