//! Browser sessions over HTTP: `POST /login` and `POST /logout`.
//!
//! - `POST /login` takes `user` and `password` as JSON or as an HTML form
//!   (`application/x-www-form-urlencoded`, with an optional `next` path). Logins are
//!   throttled per name and per address before the password is checked (429 with
//!   `Retry-After`); the password is checked with Argon2id on the blocking pool, an
//!   unknown name costing the same as a wrong password. A success starts a session:
//!   the cookie (HttpOnly, SameSite=Strict, Secure under HTTPS) and, in the JSON
//!   answer, the session's CSRF token, which every state-changing request made with
//!   the cookie must send back (`X-CSRF-Token`, or the form field `csrf_token`). A
//!   form login is answered with a redirect (to `next`, or back to the login page
//!   saying it failed). Every login and failed login is in the audit trail.
//! - `POST /logout` ends the session of the cookie (with its CSRF token, like every
//!   change) and clears the cookie.

use std::net::SocketAddr;

use access::LoginError;
use access::audit::{ActionKind, AuditRecord, Outcome};
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::CsrfToken;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Post, "/login", Access::Public, login)
        // Any signed-in caller may end its own session: the class asks only that the
        // caller is authenticated (and, with a session, sends its CSRF token).
        .add(Method::Post, "/logout", Access::Metadata, logout)
}

/// The largest login body read.
const MAX_LOGIN_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
    /// Where a form login goes on success (a path on this server).
    #[serde(default)]
    next: Option<String>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A path on this server to go to after a form login: only `/...`, never `//host`.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn login(State(api): State<Api>, request: Request) -> Result<Response, ApiError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let form = is_form(request.headers());
    let bytes = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the login body is larger than {MAX_LOGIN_BYTES} bytes"),
            )
        })?;
    let body: LoginBody = if form {
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request(format!("login form: {e}")))?
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "login: the body must be JSON {{\"user\": ..., \"password\": ...}} or a form: {e}"
            ))
        })?
    };
    let auth = api.auth.clone();
    let Some(identities) = auth.identities().cloned() else {
        return Err(ApiError::not_found(
            "authentication is off ([http] auth = \"off\"): there is nothing to sign in to",
        ));
    };
    let browser = auth.browser();
    let ip = address.map(|a| a.ip());
    let attempt = |outcome: Outcome, detail: Option<&str>| {
        let mut record = AuditRecord::system("login", ActionKind::Execute);
        record.actor = format!("user:{}", body.user);
        record.method = "password".to_owned();
        record.address = ip.map(|ip| ip.to_string());
        record.outcome = outcome;
        record.detail = detail.map(str::to_owned);
        record.resource(format!("user/{}", body.user))
    };
    let audit = auth.audit().cloned();
    let record = |record: AuditRecord| {
        let audit = audit.clone();
        async move {
            match audit {
                Some(audit) => audit.append(record).await.map(|_| ()).map_err(|e| {
                    ApiError::internal(format!(
                        "the audit record of a login could not be written, so the login is refused: {e}"
                    ))
                }),
                None => Ok(()),
            }
        }
    };
    if let Err(throttled) = browser.throttle.check(&body.user, ip) {
        record(attempt(Outcome::Denied, Some("throttled"))).await?;
        let mut response =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, throttled.to_string()).into_response();
        if let Ok(value) =
            HeaderValue::from_str(&throttled.retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let (user, password) = (body.user.clone(), body.password.clone());
    let verified =
        tokio::task::spawn_blocking(move || identities.verify_password(&user, &password)).await?;
    let user = match verified {
        Ok(user) => user,
        Err(LoginError::BadCredentials(_)) => {
            browser.throttle.record_failure(&body.user, ip);
            record(attempt(
                Outcome::Denied,
                Some("unknown user or wrong password"),
            ))
            .await?;
            if form {
                let next = local_path(body.next.as_deref());
                return Ok(redirect(&format!(
                    "/login?failed=1&next={}",
                    serde_urlencoded::to_string([("", next)])
                        .unwrap_or_default()
                        .trim_start_matches('=')
                )));
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown user or wrong password",
            ));
        }
        Err(LoginError::Store(e)) => {
            return Err(ApiError::internal(format!(
                "the password could not be checked: {e}"
            )));
        }
    };
    browser.throttle.record_success(&user.name);
    record(attempt(Outcome::Success, None)).await?;
    let session = browser
        .sessions
        .create(&user.name, user.role, ip)
        .map_err(|e| ApiError::internal(format!("the session could not be created: {e}")))?;
    let set_cookie = HeaderValue::from_str(&browser.cookie.set(&session.id))
        .map_err(|_| ApiError::internal("the session cookie could not be written"))?;
    let mut response = if form {
        redirect(local_path(body.next.as_deref()))
    } else {
        Json(json!({
            "user": user.name,
            "role": user.role.as_str(),
            "csrf_token": session.csrf,
        }))
        .into_response()
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn logout(
    State(api): State<Api>,
    principal: crate::Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let browser = api.auth.browser();
    let session_id = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| browser.cookie.find(v))
        .map(str::to_owned);
    // Only a request authenticated by its session (the guard then hands on the CSRF
    // token) ends it; a bearer token signs nobody out.
    let ended = match (csrf, session_id) {
        (Some(_), Some(id)) => browser.sessions.remove(&id),
        _ => false,
    };
    if ended {
        if let (Some(audit), Some(caller)) = (api.auth.audit(), principal.authenticated()) {
            let record = AuditRecord::by(caller, "logout", ActionKind::Execute, Outcome::Success);
            if let Err(e) = audit.append(record).await {
                tracing::error!(error = %e, "audit record of a logout not written");
            }
        }
    }
    let mut response = if is_form(&headers) {
        redirect("/login")
    } else {
        Json(json!({"signed_out": ended})).into_response()
    };
    if let Ok(clear) = HeaderValue::from_str(&browser.cookie.clear()) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}
