//! Saved message searches, per user (`store::saved_searches`).
//!
//! - `GET /api/saved-searches`: the caller's saved searches by name, each with its
//!   query string (the parameters of `GET /api/messages`) and when it was saved.
//! - `POST /api/saved-searches`: `{"name": ..., "query": "channel=lab&state=errored"}`
//!   saves (or replaces) the caller's search of that name; a query `GET /api/messages`
//!   would refuse is refused here the same way (400 naming the parameter).
//! - `DELETE /api/saved-searches/{name}`: deletes the caller's search of that name
//!   (404 when they have none).
//!
//! A query may name a patient, so every route needs the permission to read patient
//! data, and a user sees only their own searches.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::Path;
use crate::messages::blocking;
use crate::routes::{Access, Method, Routes};
use crate::times::iso;
use crate::{Api, ApiError, Principal};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/saved-searches", Access::Phi, list)
        .add(Method::Post, "/api/saved-searches", Access::Phi, save)
        .add(
            Method::Delete,
            "/api/saved-searches/{name}",
            Access::Phi,
            delete,
        )
}

/// The longest name, in characters.
const MAX_NAME: usize = 100;
/// The longest query string, in bytes.
const MAX_QUERY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    name: String,
    query: String,
}

/// Checks a search to save: its name, and its query as the message search reads it
/// (paging parameters left out). The name and the query to store.
pub(crate) fn checked(name: &str, query: &str) -> Result<(String, String), ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request("name: give the search a name"));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "name: at most {MAX_NAME} characters, none of them control characters"
        )));
    }
    let query = query.trim().trim_start_matches('?');
    if query.len() > MAX_QUERY {
        return Err(ApiError::bad_request(format!(
            "query: longer than {MAX_QUERY} bytes"
        )));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, v)| k != "before" && !v.trim().is_empty())
        .collect();
    crate::messages::check_search(&pairs)
        .map_err(|e| ApiError::new(e.status(), format!("query: {}", e.message())))?;
    let query = serde_urlencoded::to_string(&pairs)
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    Ok((name.to_owned(), query))
}

/// Saves `user`'s search; whether it replaced one of that name.
pub(crate) async fn save_search(
    api: &Api,
    user: &str,
    name: &str,
    query: &str,
) -> Result<bool, ApiError> {
    api.store
        .migrate_component(
            store::saved_searches::COMPONENT,
            store::saved_searches::MIGRATIONS,
        )
        .await?;
    let (user, name, query) = (user.to_owned(), name.to_owned(), query.to_owned());
    let at = store::UnixMicros::now().0;
    Ok(api
        .store
        .write(move |conn| store::saved_searches::save_in(conn, &user, &name, &query, at))
        .await?)
}

/// `user`'s saved searches by name.
pub(crate) async fn searches_of(
    api: &Api,
    user: &str,
) -> Result<Vec<store::saved_searches::SavedSearch>, ApiError> {
    let store = api.store.clone();
    let user = user.to_owned();
    blocking(move || Ok(store.read(|conn| store::saved_searches::list(conn, &user))?)).await
}

/// Deletes `user`'s search `name`; false when there was none.
pub(crate) async fn delete_search(api: &Api, user: &str, name: &str) -> Result<bool, ApiError> {
    let (user, name) = (user.to_owned(), name.to_owned());
    Ok(api
        .store
        .write(move |conn| store::saved_searches::delete_in(conn, &user, &name))
        .await?)
}

async fn list(State(api): State<Api>, principal: Principal) -> Result<Json<Value>, ApiError> {
    let user = principal.require()?.to_owned();
    let searches = searches_of(&api, &user).await?;
    Ok(Json(json!({
        "searches": searches
            .iter()
            .map(|s| json!({
                "name": s.name,
                "query": s.query,
                "saved": iso(s.saved_at),
                "saved_at": s.saved_at,
            }))
            .collect::<Vec<_>>(),
    })))
}

async fn save(
    State(api): State<Api>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = principal.require()?.to_owned();
    let body: SaveBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    let (name, query) = checked(&body.name, &body.query)?;
    let replaced = save_search(&api, &user, &name, &query).await?;
    Ok((
        if replaced {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(json!({"name": name, "query": query, "replaced": replaced})),
    ))
}

async fn delete(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = principal.require()?.to_owned();
    if delete_search(&api, &user, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "you have no saved search {name:?}"
        )))
    }
}
