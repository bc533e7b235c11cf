//! The console's administration page: running channels and their destinations, the
//! configuration history with diffs, users, tokens, and the audit trail's export form.
//! The page is `Admin`; its start, stop and pause buttons post to the `Operate` forms
//! below, which do what `POST /api/channels/...` does. Its user and token forms are
//! `Admin` and do what `POST /api/users` and `POST /api/tokens` do, through the same
//! functions, so each change is written with its one audit record (`user.add`,
//! `user.disable`, `token.create`, `token.revoke`). A new token's secret is on the
//! form's answer only (`Cache-Control: no-store`), never on the page again.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use console::{AdminView, ChannelView, ConfigVersionView, TokenCreatedView, TokenView, UserView};

use super::{Form, html, redirect_back, viewer};
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
                held_destinations: state
                    .map(|s| {
                        s.destinations
                            .iter()
                            .filter(|d| d.state != "running")
                            .map(|d| (d.destination.clone(), d.state.to_owned()))
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
    let identities = crate::admin::identities(&api).await?;
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
                scopes: t.scopes.clone().unwrap_or_default(),
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

/// `POST /console/channels/{channel}/destinations/{destination}/{start|pause|stop}`.
async fn destination_form(
    api: Api,
    principal: Principal,
    (channel, destination): (String, String),
    action: crate::ChannelAction,
) -> Response {
    let name = destination.clone();
    let result = crate::channel_control::change_destination(
        &api,
        &principal,
        channel.clone(),
        destination,
        action,
    )
    .await
    .map(|c| {
        let state = c
            .destinations
            .iter()
            .find(|d| d.destination == name)
            .map_or("running", |d| d.state);
        format!("Destination {name} of {channel} is {state}.")
    });
    redirect_back("/console/admin", result)
}

pub(super) async fn start_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Response {
    destination_form(api, principal, names, crate::ChannelAction::Start).await
}

pub(super) async fn pause_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Response {
    destination_form(api, principal, names, crate::ChannelAction::Pause).await
}

pub(super) async fn stop_destination(
    State(api): State<Api>,
    principal: Principal,
    Path(names): Path<(String, String)>,
) -> Response {
    destination_form(api, principal, names, crate::ChannelAction::Stop).await
}

/// An answer to a user or token form: written with its audit record when it worked
/// (the guard adds none), else the guard records the refusal.
fn answered(result: Result<String, ApiError>) -> Response {
    let ok = result.is_ok();
    let response = redirect_back("/console/admin", result);
    if ok {
        crate::admin::recorded(response)
    } else {
        response
    }
}

/// `POST /console/users`: `name`, `role`, `password` and `password_again` (the same).
pub(super) async fn add_user(
    State(api): State<Api>,
    caller: Option<Extension<access::Principal>>,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let name = form.required("name", "give the user a name")?;
        let role = form.required("role", "choose a role")?;
        let password = form.get("password").unwrap_or("");
        if password.is_empty() {
            return Err(ApiError::bad_request("password: type the user's password"));
        }
        if form.get("password_again") != Some(password) {
            return Err(ApiError::bad_request(
                "password_again: the two passwords differ; type the same one twice",
            ));
        }
        let caller = caller.as_ref().map(|Extension(p)| p);
        let user =
            crate::admin::add_user_as(&api, caller, name, &role, Some(password.to_owned())).await?;
        Ok(format!("User {} added as {}.", user.name, user.role))
    }
    .await;
    answered(result)
}

/// `POST /console/users/{name}/disable`: no login, its tokens refused, its sessions
/// ended.
pub(super) async fn disable_user(
    State(api): State<Api>,
    caller: Option<Extension<access::Principal>>,
    Path(name): Path<String>,
) -> Response {
    let caller = caller.as_ref().map(|Extension(p)| p);
    let result = crate::admin::disable_user_as(&api, caller, &name)
        .await
        .map(|user| {
            format!(
                "User {} disabled: signed out, their tokens refused.",
                user.name
            )
        });
    answered(result)
}

/// `POST /console/tokens`: `user`, `role` (empty: the owner's), `expires_days` (empty:
/// never), `scopes` (empty: none). Answers with the secret, this once.
pub(super) async fn create_token(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<Extension<CsrfToken>>,
    caller: Option<Extension<access::Principal>>,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let user = form.required("user", "name the user the token acts for")?;
        let given = |name: &str| form.get(name).map(str::trim).filter(|v| !v.is_empty());
        let expires_days = given("expires_days")
            .map(|text| {
                text.parse::<u32>().ok().filter(|&d| d > 0).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "expires_days: {text:?} is not a whole number of days"
                    ))
                })
            })
            .transpose()?;
        let caller = caller.as_ref().map(|Extension(p)| p);
        crate::admin::create_token_as(
            &api,
            caller,
            &user,
            given("role"),
            expires_days,
            given("scopes"),
        )
        .await
    }
    .await;
    match result {
        Ok(token) => {
            let view = TokenCreatedView {
                id: token.id,
                user: token.user,
                role: token.role.as_str().to_owned(),
                scopes: token.scopes.unwrap_or_default(),
                expires: token.expires_at.map(console::time_text).unwrap_or_default(),
                secret: token.secret,
            };
            // `html` answers with `Cache-Control: no-store`: the secret is kept by no cache.
            crate::admin::recorded(html(
                StatusCode::OK,
                console::token_created_page(&viewer(&principal, csrf.as_ref()), &view),
            ))
        }
        Err(e) => redirect_back("/console/admin", Err(e)),
    }
}

/// `POST /console/tokens/{id}/revoke`.
pub(super) async fn revoke_token(
    State(api): State<Api>,
    caller: Option<Extension<access::Principal>>,
    Path(id): Path<i64>,
) -> Response {
    let caller = caller.as_ref().map(|Extension(p)| p);
    let result = crate::admin::revoke_token_as(&api, caller, id)
        .await
        .map(|()| format!("Token {id} revoked."));
    answered(result)
}
