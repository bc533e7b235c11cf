//! The admin routes (access class `Admin`): users, API tokens, the audit trail's export
//! and verification.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /api/users` | lists users (never password hashes) |
//! | `POST /api/users` | adds one: `{"name", "role", "password"?}` |
//! | `POST /api/users/{name}/disable` | disables one: no login, its tokens refused, its sessions ended |
//! | `GET /api/tokens` | lists tokens (never secrets) |
//! | `POST /api/tokens` | creates one: `{"user", "role"?, "expires_days"?, "scopes"?}`; the secret is in this answer only |
//! | `POST /api/tokens/{id}/revoke` | revokes one |
//! | `GET /api/audit?since=T&format=json\|csv` | exports the audit trail from `since`, oldest first, streamed |
//! | `GET /api/audit?format=page&before=SEQ&limit=N` | one page, newest first: `{"records", "next_before"}` |
//! | `GET /api/audit/verify` | checks the audit trail's hash chain |
//!
//! Both take the filters `from` (or `since`), `to` (exclusive; a date: through that
//! day), `who` (`user:NAME`, `token:ID`, or a name: the user's records and their
//! tokens'), `action` (exactly, e.g. `GET /api/messages/{id}`), `kind` (`C R U D E`),
//! `outcome` (`success`, `denied`, `failed`), `patient`, `resource` (exactly).
//!
//! A user or token change is written in one transaction with its own audit record
//! (who, what, which user or token); the guard records every other admin request. The
//! console's forms (`POST /console/users`, ...) make the same changes through the same
//! functions (`add_user_as`, `disable_user_as`, `create_token_as`, `revoke_token_as`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::io::Write as _;

use access::audit::{ActionKind, AuditRecord, ExportFormat};
use access::{Principal, Role};

use crate::auth::AuditedWithChange;
use crate::extract::{Path, Query};
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/users", Access::Admin, list_users)
        .add(Method::Post, "/api/users", Access::Admin, add_user)
        .add(
            Method::Post,
            "/api/users/{name}/disable",
            Access::Admin,
            disable_user,
        )
        .add(Method::Get, "/api/tokens", Access::Admin, list_tokens)
        .add(Method::Post, "/api/tokens", Access::Admin, create_token)
        .add(
            Method::Post,
            "/api/tokens/{id}/revoke",
            Access::Admin,
            revoke_token,
        )
        .add(Method::Get, "/api/audit", Access::Admin, export_audit)
        .add(
            Method::Get,
            "/api/audit/verify",
            Access::Admin,
            verify_audit,
        )
}

/// The users and tokens: those authentication checks, or (authentication off) the
/// store's own.
pub(crate) async fn identities(app: &Api) -> Result<access::Access, ApiError> {
    match app.auth.identities() {
        Some(identities) => Ok(identities.clone()),
        None => access::Access::open(app.store.clone())
            .await
            .map_err(|e| ApiError::internal(format!("the users could not be opened: {e}"))),
    }
}

/// An identity change's error as an answer.
fn refused(error: access::Error) -> ApiError {
    use access::Error as E;
    match error {
        E::NoSuchUser(_) | E::NoSuchToken(_) => ApiError::not_found(error.to_string()),
        E::UserExists(_) => ApiError::conflict(error.to_string()),
        E::InvalidName(_)
        | E::PasswordLength { .. }
        | E::RoleWiderThanOwner { .. }
        | E::InvalidExpiry
        | E::InvalidScopes(_) => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(format!("the change could not be made: {other}")),
    }
}

/// The record of `caller` changing `resource`, written with the change.
fn change_record(
    caller: Option<&Principal>,
    action: &str,
    kind: ActionKind,
    resource: String,
) -> Option<AuditRecord> {
    caller.map(|principal| {
        AuditRecord::by(principal, action, kind, access::audit::Outcome::Success).resource(resource)
    })
}

/// A JSON body, or a 400 naming what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// An answer whose change was recorded with it.
fn changed(status: StatusCode, value: serde_json::Value) -> Response {
    recorded((status, axum::Json(value)).into_response())
}

/// Marks `response` as the answer to a change recorded with it (the guard adds none).
pub(crate) fn recorded(mut response: Response) -> Response {
    response.extensions_mut().insert(AuditedWithChange);
    response
}

fn user_json(user: &access::User) -> serde_json::Value {
    json!({
        "name": user.name,
        "role": user.role,
        "created_at": access::audit::rfc3339(user.created_at),
        "has_password": user.has_password,
        "disabled": user.disabled,
    })
}

async fn list_users(State(app): State<Api>) -> Result<Response, ApiError> {
    let identities = identities(&app).await?;
    let users = tokio::task::spawn_blocking(move || identities.list_users())
        .await
        .map_err(|e| ApiError::internal(format!("listing users stopped: {e}")))?
        .map_err(refused)?;
    let users: Vec<_> = users.iter().map(user_json).collect();
    Ok(axum::Json(json!({ "users": users })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: String,
    password: Option<String>,
}

/// Adds a user as `caller` (the JSON route and the console's form): the password
/// hashed with Argon2id on the blocking pool, the change and its `user.add` record
/// written together.
pub(crate) async fn add_user_as(
    app: &Api,
    caller: Option<&Principal>,
    name: String,
    role: &str,
    password: Option<String>,
) -> Result<access::User, ApiError> {
    let role: Role = role
        .parse()
        .map_err(|e: access::UnknownRole| ApiError::bad_request(e.to_string()))?;
    let record = change_record(
        caller,
        "user.add",
        ActionKind::Create,
        format!("user/{name}"),
    )
    .map(|r| r.detail(format!("role {role}")));
    let identities = identities(app).await?;
    // Hashing takes tens of milliseconds: not on the runtime's threads.
    let pending = tokio::task::spawn_blocking(move || {
        identities.add_user(&name, role, password.as_deref(), record)
    })
    .await
    .map_err(|e| ApiError::internal(format!("adding the user stopped: {e}")))?;
    pending.await.map_err(refused)
}

async fn add_user(
    State(app): State<Api>,
    caller: Option<Extension<Principal>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let new: NewUser = body(&bytes)?;
    let caller = caller.as_ref().map(|Extension(p)| p);
    let user = add_user_as(&app, caller, new.name, &new.role, new.password).await?;
    Ok(changed(StatusCode::CREATED, user_json(&user)))
}

/// Disables a user as `caller` and ends their sessions at once (each request made with
/// a session also checks its user, so a user disabled from the command line loses
/// theirs at their next request).
pub(crate) async fn disable_user_as(
    app: &Api,
    caller: Option<&Principal>,
    name: &str,
) -> Result<access::User, ApiError> {
    let record = change_record(
        caller,
        "user.disable",
        ActionKind::Update,
        format!("user/{name}"),
    );
    let user = identities(app)
        .await?
        .disable_user(name, record)
        .await
        .map_err(refused)?;
    app.auth.browser().sessions.remove_user(&user.name);
    Ok(user)
}

async fn disable_user(
    State(app): State<Api>,
    Path(name): Path<String>,
    caller: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
    let caller = caller.as_ref().map(|Extension(p)| p);
    let user = disable_user_as(&app, caller, &name).await?;
    Ok(changed(StatusCode::OK, user_json(&user)))
}

fn token_json(token: &access::TokenInfo) -> serde_json::Value {
    json!({
        "id": token.id,
        "user": token.user,
        "hint": token.hint,
        "role": token.role,
        "scopes": token.scopes,
        "created_at": access::audit::rfc3339(token.created_at),
        "expires_at": token.expires_at.map(access::audit::rfc3339),
        "revoked_at": token.revoked_at.map(access::audit::rfc3339),
    })
}

async fn list_tokens(State(app): State<Api>) -> Result<Response, ApiError> {
    let identities = identities(&app).await?;
    let tokens = tokio::task::spawn_blocking(move || identities.list_tokens())
        .await
        .map_err(|e| ApiError::internal(format!("listing tokens stopped: {e}")))?
        .map_err(refused)?;
    let tokens: Vec<_> = tokens.iter().map(token_json).collect();
    Ok(axum::Json(json!({ "tokens": tokens })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    user: String,
    role: Option<String>,
    expires_days: Option<u32>,
    scopes: Option<String>,
}

/// Creates a token as `caller` (the JSON route and the console's form); its secret is
/// in the answer only. `role`, `expires_days` and `scopes` as `POST /api/tokens` takes
/// them.
pub(crate) async fn create_token_as(
    app: &Api,
    caller: Option<&Principal>,
    user: &str,
    role: Option<&str>,
    expires_days: Option<u32>,
    scopes: Option<&str>,
) -> Result<access::NewToken, ApiError> {
    let role = match role.map(str::parse::<Role>) {
        None => None,
        Some(Ok(role)) => Some(role),
        Some(Err(e)) => return Err(ApiError::bad_request(e.to_string())),
    };
    // The token's id is known only once written: the record names its user, role,
    // lifetime and scopes, and the token list its id.
    let record = change_record(
        caller,
        "token.create",
        ActionKind::Create,
        format!("user/{user}"),
    )
    .map(|r| {
        r.detail(format!(
            "role {}, expires in {} days, scopes {}",
            role.map_or("(owner's)", Role::as_str),
            expires_days.map_or_else(|| "never".to_owned(), |d| d.to_string()),
            scopes.unwrap_or("(none)")
        ))
    });
    identities(app)
        .await?
        .create_scoped_token(user, expires_days, role, scopes, record)
        .await
        .map_err(refused)
}

async fn create_token(
    State(app): State<Api>,
    caller: Option<Extension<Principal>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let new: NewToken = body(&bytes)?;
    let caller = caller.as_ref().map(|Extension(p)| p);
    let token = create_token_as(
        &app,
        caller,
        &new.user,
        new.role.as_deref(),
        new.expires_days,
        new.scopes.as_deref(),
    )
    .await?;
    Ok(changed(
        StatusCode::CREATED,
        json!({
            "id": token.id,
            "token": token.secret,
            "user": token.user,
            "role": token.role,
            "scopes": token.scopes,
            "expires_at": token.expires_at.map(access::audit::rfc3339),
            "note": "the token is shown only in this answer: send it as Authorization: Bearer TOKEN",
        }),
    ))
}

/// Revokes a token as `caller`.
pub(crate) async fn revoke_token_as(
    app: &Api,
    caller: Option<&Principal>,
    id: i64,
) -> Result<(), ApiError> {
    let record = change_record(
        caller,
        "token.revoke",
        ActionKind::Update,
        format!("token/{id}"),
    );
    identities(app)
        .await?
        .revoke_token(id, record)
        .await
        .map_err(refused)
}

async fn revoke_token(
    State(app): State<Api>,
    Path(id): Path<i64>,
    caller: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
    let caller = caller.as_ref().map(|Extension(p)| p);
    revoke_token_as(&app, caller, id).await?;
    Ok(changed(
        StatusCode::OK,
        json!({ "id": id, "revoked": true }),
    ))
}

/// `GET /api/audit`'s query: the filters, the format and the page.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// At or after; `from` is the same (the console's form says `from`).
    pub(crate) since: Option<String>,
    pub(crate) from: Option<String>,
    /// Before (a date: up to the end of that day).
    pub(crate) to: Option<String>,
    pub(crate) who: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) patient: Option<String>,
    pub(crate) resource: Option<String>,
    /// `json` (the default) or `csv`: the whole filtered trail, oldest first,
    /// streamed; `page`: one page, newest first, as `{"records", "next_before"}`.
    pub(crate) format: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) limit: Option<String>,
}

/// A filter's value: trimmed, None when empty (an empty form field filters nothing).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl AuditQuery {
    /// The filter it asks for, or a 400 naming the parameter that is wrong.
    pub(crate) fn filter(&self) -> Result<access::audit::AuditFilter, ApiError> {
        use access::audit::{ActionKind, AuditFilter, Outcome, parse_since};
        let from = match (given(&self.since), given(&self.from)) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("give since or from, not both"));
            }
            (Some(text), None) => Some(("since", text)),
            (None, Some(text)) => Some(("from", text)),
            (None, None) => None,
        };
        let from = from
            .map(|(name, text)| {
                parse_since(text).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            })
            .transpose()?;
        let to = given(&self.to)
            .map(|text| {
                let at =
                    parse_since(text).map_err(|e| ApiError::bad_request(format!("to: {e}")))?;
                // A bare date means up to the end of that day.
                let date = text.len() == 10 && !text.contains('T');
                Ok::<_, ApiError>(if date { at + 86_400_000_000 } else { at })
            })
            .transpose()?;
        let kind = given(&self.kind)
            .map(|text| {
                ActionKind::parse(text).ok_or_else(|| {
                    ApiError::bad_request(format!("kind: {text:?} is not C, R, U, D or E"))
                })
            })
            .transpose()?;
        let outcome = given(&self.outcome)
            .map(|text| {
                Outcome::named(text).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "outcome: {text:?} is not success, denied or failed"
                    ))
                })
            })
            .transpose()?;
        let before = given(&self.before)
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("before: {text:?} is not a sequence number"))
                })
            })
            .transpose()?;
        let owned = |v: &Option<String>| given(v).map(str::to_owned);
        Ok(AuditFilter {
            from,
            to,
            who: owned(&self.who),
            action: owned(&self.action),
            kind,
            outcome,
            patient: owned(&self.patient),
            resource: owned(&self.resource),
            before,
        })
    }

    /// The page size asked for (default 50, at most 500).
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match given(&self.limit) {
            None => Ok(50),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit: {text:?} is not a number from 1 to 500"))
                }),
        }
    }
}

fn audit_of(app: &Api) -> Result<access::audit::Audit, ApiError> {
    app.auth
        .audit()
        .cloned()
        .ok_or_else(|| ApiError::not_found("no audit trail is kept"))
}

async fn export_audit(
    State(app): State<Api>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let audit = audit_of(&app)?;
    let filter = query.filter()?;
    let (format, content_type) = match given(&query.format) {
        None | Some("json") => (ExportFormat::Json, "application/json"),
        Some("csv") => (ExportFormat::Csv, "text/csv; charset=utf-8"),
        Some("page") => {
            let limit = query.limit()?;
            let (records, next) = audit_page(&app, filter, limit).await?;
            let records: Vec<_> = records.iter().map(access::audit::record_json).collect();
            return Ok(axum::Json(json!({"records": records, "next_before": next})).into_response());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not json, csv or page"
            )));
        }
    };
    if filter.before.is_some() {
        return Err(ApiError::bad_request(
            "before pages format=page; an export is the whole filtered trail",
        ));
    }
    // Streamed: the export runs on the blocking pool and hands the body 64 KiB at a
    // time, so a trail of years is never held in memory (a slow client slows the
    // export, through the channel's bound, instead of filling memory).
    let (sender, chunks) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            sender,
            buffer: Vec::with_capacity(EXPORT_CHUNK),
        };
        let exported = audit
            .export_filtered(&filter, format, &mut out)
            .map_err(|e| e.to_string())
            .and_then(|_| out.flush().map_err(|e| e.to_string()));
        if let Err(e) = exported {
            // The answer has begun: ending the body with an error tells the client
            // the export is incomplete.
            tracing::error!(error = %e, "the audit export stopped");
            let _ = out
                .sender
                .blocking_send(Err(std::io::Error::other("the audit export stopped")));
        }
    });
    let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let mut response = axum::body::Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// How much of an export is handed to the response at a time.
const EXPORT_CHUNK: usize = 64 * 1024;

/// The export's output, sent to the response body in chunks of [`EXPORT_CHUNK`].
struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(EXPORT_CHUNK));
        self.sender
            .blocking_send(Ok(bytes::Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// One page of the audit trail, newest first, and the `before` of the next.
pub(crate) async fn audit_page(
    app: &Api,
    filter: access::audit::AuditFilter,
    limit: usize,
) -> Result<(Vec<access::audit::StoredRecord>, Option<i64>), ApiError> {
    let audit = audit_of(app)?;
    let before = filter.before;
    tokio::task::spawn_blocking(move || audit.page(&filter, before, limit))
        .await
        .map_err(|e| ApiError::internal(format!("reading the audit trail stopped: {e}")))?
        .map_err(|e| ApiError::internal(format!("the audit trail could not be read: {e}")))
}

/// The chain check of `GET /api/audit/verify` (the console's audit page shows it too).
pub(crate) async fn verification(app: &Api) -> Result<access::audit::Verification, ApiError> {
    let audit = audit_of(app)?;
    tokio::task::spawn_blocking(move || audit.verify())
        .await
        .map_err(|e| ApiError::internal(format!("the check stopped: {e}")))?
        .map_err(|e| ApiError::internal(format!("the audit trail could not be read: {e}")))
}

async fn verify_audit(State(app): State<Api>) -> Result<Response, ApiError> {
    let verification = verification(&app).await?;
    let body = json!({
        "records": verification.records,
        "intact": verification.broken.is_none(),
        "broken": verification.broken.map(|b| json!({"seq": b.seq, "problem": b.problem})),
    });
    Ok(axum::Json(body).into_response())
}
