//! The console's administration page: running channels and their destinations, the
//! configuration history with diffs, users, tokens, and the audit trail's export form.
//! Read only (`Admin`); changes stay with the JSON routes and the command line.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use console::{AdminView, ChannelView, ConfigVersionView, TokenView, UserView};

use super::{html, viewer};
use crate::auth::CsrfToken;
use crate::{Api, ApiError, Principal};

/// How many configuration versions the page shows, newest first.
const VERSIONS: usize = 20;

pub(super) async fn admin(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
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
        .map(|c| ChannelView {
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
    };
    Ok(html(StatusCode::OK, console::admin_page(&viewer, &view)))
}
