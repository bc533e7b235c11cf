//! Access control for every route, in one place: [`guard`] runs before each route's
//! handler (the route table attaches it, so no route is served without it). It
//! authenticates the request, checks the route's permission, hands the handler the
//! [`access::Principal`], and appends the audit record of a PHI read or a change
//! before the answer leaves.

use std::net::SocketAddr;
use std::sync::Arc;

use access::audit::{ActionKind, Audit, AuditRecord, Outcome};
use access::oidc::OidcVerifier;
use access::{
    Actor, AuthMethod, LoginThrottle, Principal, Role, SessionCookie, SessionInfo, SessionPolicy,
    Sessions, ThrottlePolicy, VerifyTokenError,
};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::routes::{Access, Method, RouteInfo};

/// How requests are authenticated and recorded: the engine builds one from `[http]`.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    mode: Mode,
    audit: Option<Audit>,
    metrics_public: bool,
    browser: Arc<Browser>,
}

/// Browser sessions: the sessions themselves, the login throttle and the cookie.
pub(crate) struct Browser {
    pub(crate) sessions: Sessions,
    pub(crate) throttle: LoginThrottle,
    pub(crate) cookie: SessionCookie,
}

impl Browser {
    fn new(policy: SessionPolicy, throttle: ThrottlePolicy, secure: bool) -> Browser {
        Browser {
            sessions: Sessions::new(policy),
            throttle: LoginThrottle::new(throttle),
            cookie: SessionCookie {
                secure,
                max_age: policy.absolute_timeout,
            },
        }
    }
}

impl Default for Browser {
    fn default() -> Browser {
        Browser::new(SessionPolicy::default(), ThrottlePolicy::default(), false)
    }
}

/// The CSRF token of the session a request was authenticated with, for the console's
/// pages to put in their forms. Only requests made with a session cookie carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfToken(pub String);

/// The form field a state-changing form sends its CSRF token in (the header
/// `X-CSRF-Token` is the other way).
pub const CSRF_FIELD: &str = "csrf_token";

#[derive(Clone)]
enum Mode {
    /// `[http] auth = "off"` (loopback only): every request acts as an anonymous admin.
    Off,
    /// Bearer credentials are required: Corridor API tokens, and OIDC JWTs when an
    /// issuer is configured.
    On {
        access: access::Access,
        oidc: Option<OidcVerifier>,
    },
}

impl Auth {
    /// Credentials required on every route but `/health`: Corridor API tokens checked
    /// against `access`, OIDC bearer JWTs when `oidc` is given; PHI reads and changes
    /// recorded in `audit`.
    pub fn required(access: access::Access, oidc: Option<OidcVerifier>, audit: Audit) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                mode: Mode::On { access, oidc },
                audit: Some(audit),
                metrics_public: false,
                browser: Arc::new(Browser::default()),
            }),
        }
    }

    /// No authentication: every request acts as an anonymous admin. The engine allows it
    /// only on a loopback address. With `audit`, PHI reads and changes are still
    /// recorded (as `anonymous`).
    pub fn off(audit: Option<Audit>) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                mode: Mode::Off,
                audit,
                metrics_public: false,
                browser: Arc::new(Browser::default()),
            }),
        }
    }

    /// `/metrics` answers without credentials (`[http] metrics_public = true`).
    pub fn with_public_metrics(self, public: bool) -> Auth {
        let mut inner = (*self.inner).clone();
        inner.metrics_public = public;
        Auth {
            inner: Arc::new(inner),
        }
    }

    /// Browser sessions with `policy` (idle and absolute timeouts) and login throttling
    /// with `throttle`; `secure` makes the cookie `Secure` (and `__Host-` named), for
    /// a console served over HTTPS. Existing sessions are dropped.
    pub fn with_sessions(
        self,
        policy: SessionPolicy,
        throttle: ThrottlePolicy,
        secure: bool,
    ) -> Auth {
        let mut inner = (*self.inner).clone();
        inner.browser = Arc::new(Browser::new(policy, throttle, secure));
        Auth {
            inner: Arc::new(inner),
        }
    }

    /// Whether credentials are required.
    pub fn is_on(&self) -> bool {
        matches!(self.inner.mode, Mode::On { .. })
    }

    /// The audit trail requests are recorded in, if one is kept.
    pub(crate) fn audit(&self) -> Option<&Audit> {
        self.inner.audit.as_ref()
    }

    /// The users and tokens credentials are checked against (authentication on).
    pub(crate) fn identities(&self) -> Option<&access::Access> {
        match &self.inner.mode {
            Mode::On { access, .. } => Some(access),
            Mode::Off => None,
        }
    }

    pub(crate) fn browser(&self) -> &Browser {
        &self.inner.browser
    }
}

/// Put in a response's extensions by a handler whose change was written together with
/// its own, more detailed audit record (user and token changes): the guard then adds
/// none, so the request has exactly one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditedWithChange;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("on", &self.is_on())
            .field("audited", &self.inner.audit.is_some())
            .field("metrics_public", &self.inner.metrics_public)
            .finish()
    }
}

/// A 401: no or bad credentials. Says `WWW-Authenticate: Bearer` so a client knows
/// what to send.
fn unauthorized(route: RouteInfo, message: &str, error: Option<&str>) -> Response {
    let mut response = refusal(route, StatusCode::UNAUTHORIZED, "login", message);
    let challenge = match error {
        Some(code) => format!("Bearer realm=\"corridor\", error=\"{code}\""),
        None => "Bearer realm=\"corridor\"".to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An error in the route's shape: an OperationOutcome on `/fhir`, `{"error"}` elsewhere.
fn refusal(
    route: RouteInfo,
    status: StatusCode,
    fhir_code: &'static str,
    message: &str,
) -> Response {
    if route.path.starts_with("/fhir") {
        ApiError::outcome(status, fhir_code, message).into_response()
    } else {
        ApiError::new(status, message).into_response()
    }
}

/// Why a request has no principal.
enum Refused {
    /// 401, with the `WWW-Authenticate` error code.
    Unauthenticated(&'static str, Option<&'static str>),
    /// 403: authenticated, but with no role Corridor knows.
    Forbidden(&'static str),
    /// 500: the credentials could not be checked.
    Failed(String),
}

/// The credentials of a request (bearer token, else session cookie), as a principal;
/// with the session when it was a session cookie.
async fn authenticate(
    auth: &Auth,
    authorization: Option<HeaderValue>,
    cookies: Option<HeaderValue>,
    address: Option<SocketAddr>,
    tls_identity: Option<String>,
) -> Result<(Principal, Option<SessionInfo>), Refused> {
    let cookie = &auth.inner.browser.cookie;
    let session_id = cookies
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| cookie.find(value))
        .map(str::to_owned);
    if let (None, Mode::On { access, .. }) = (&authorization, &auth.inner.mode) {
        if let Some(id) = session_id {
            return match auth.inner.browser.sessions.get(&id) {
                // The user is read again on every request (one indexed row), so one
                // disabled or given a new password, here or from the command line,
                // loses every session at once.
                Ok(session) => match access.session_holder_current(&session) {
                    Ok(true) => Ok((
                        Principal::from_session(&session, address, tls_identity),
                        Some(session),
                    )),
                    Ok(false) => {
                        auth.inner.browser.sessions.remove(&id);
                        tracing::info!(
                            "session ended: its user was disabled, changed role or password"
                        );
                        Err(Refused::Unauthenticated(
                            "the session ended (the user was disabled or changed password): sign in again",
                            Some("invalid_token"),
                        ))
                    }
                    Err(e) => Err(Refused::Failed(format!(
                        "the session's user could not be checked: {e}"
                    ))),
                },
                Err(why) => {
                    tracing::info!(reason = %why, "session cookie refused");
                    Err(Refused::Unauthenticated(
                        "the session is not valid (signed out, expired or unknown): sign in again",
                        Some("invalid_token"),
                    ))
                }
            };
        }
    }
    authenticate_bearer(auth, authorization, address, tls_identity)
        .await
        .map(|principal| (principal, None))
}

/// The bearer credentials of a request, as a principal.
async fn authenticate_bearer(
    auth: &Auth,
    authorization: Option<HeaderValue>,
    address: Option<SocketAddr>,
    tls_identity: Option<String>,
) -> Result<Principal, Refused> {
    let (access, oidc) = match &auth.inner.mode {
        Mode::Off => {
            return Ok(Principal {
                actor: Actor::Anonymous,
                roles: vec![Role::Admin],
                scopes: None,
                method: AuthMethod::Unauthenticated,
                address,
                tls_identity,
            });
        }
        Mode::On { access, oidc } => (access, oidc),
    };
    let Some(value) = authorization else {
        return Err(Refused::Unauthenticated(
            "credentials are required: send Authorization: Bearer TOKEN, or sign in (POST /login)",
            None,
        ));
    };
    // The scheme is case-insensitive (RFC 9110); the token is one word.
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty() && !t.contains(' '))
    else {
        return Err(Refused::Unauthenticated(
            "the Authorization header must be `Bearer TOKEN`",
            Some("invalid_request"),
        ));
    };
    if token.starts_with(access::TOKEN_PREFIX) {
        // A token verified lately is answered from memory, here on the async worker.
        if let Some(identity) = access.verify_cached_token(token) {
            return Ok(Principal::from_token(identity, address, tls_identity));
        }
        // Else a SQLite read: on the blocking pool, not on the async worker.
        let (access, secret) = (access.clone(), token.to_owned());
        let verified = tokio::task::spawn_blocking(move || access.verify_token(&secret))
            .await
            .map_err(|e| Refused::Failed(format!("the token check stopped: {e}")))?;
        return match verified {
            Ok(identity) => Ok(Principal::from_token(identity, address, tls_identity)),
            Err(VerifyTokenError::Rejected(why)) => {
                tracing::info!(reason = %why, "API token refused");
                Err(Refused::Unauthenticated(
                    "the token is not valid (unknown, expired, revoked or its user disabled)",
                    Some("invalid_token"),
                ))
            }
            Err(VerifyTokenError::Store(e)) => Err(Refused::Failed(format!(
                "the token could not be checked: {e}"
            ))),
        };
    }
    let Some(oidc) = oidc else {
        return Err(Refused::Unauthenticated(
            "the token is not a Corridor API token and no OpenID Connect issuer is configured",
            Some("invalid_token"),
        ));
    };
    match oidc.verify(token).await {
        Ok(identity) if identity.roles.is_empty() => Err(Refused::Forbidden(
            "the token's claims map to no Corridor role",
        )),
        Ok(identity) => Ok(identity.into_principal(address, tls_identity)),
        Err(access::oidc::OidcRejected::NoRole) => Err(Refused::Forbidden(
            "the token's claims map to no Corridor role",
        )),
        Err(why) => {
            tracing::info!(reason = %why, "OpenID Connect token refused");
            Err(Refused::Unauthenticated(
                "the OpenID Connect token is not valid",
                Some("invalid_token"),
            ))
        }
    }
}

/// Runs before every route's handler (attached by the route table).
pub(crate) async fn guard(route: RouteInfo, mut request: Request, next: Next) -> Response {
    let Some(permission) = route.access.permission() else {
        return next.run(request).await;
    };
    let Some(auth) = request.extensions().get::<Auth>().cloned() else {
        // The router always adds it; failing closed if it ever does not.
        return refusal(
            route,
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "access control is not configured",
        );
    };
    if route.access == Access::Metrics && auth.inner.metrics_public {
        return next.run(request).await;
    }
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    // Under mutual TLS, the server put the client certificate's subject here.
    let tls_identity = request
        .extensions()
        .get::<crate::TlsIdentity>()
        .map(|identity| identity.0.clone());
    let cookies = request.headers().get(header::COOKIE).cloned();
    let (principal, session) =
        match authenticate(&auth, authorization, cookies, address, tls_identity).await {
            Ok(authenticated) => authenticated,
            Err(Refused::Unauthenticated(message, code)) => {
                if route.method == Method::Get
                    && crate::console::is_page(route.path)
                    && wants_html(&request)
                {
                    // A browser that is not signed in is sent to the sign-in page.
                    let next = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    let location = format!("/login?next={}", console::url_encode(&next));
                    let mut response = StatusCode::SEE_OTHER.into_response();
                    if let Ok(value) = HeaderValue::from_str(&location) {
                        response.headers_mut().insert(header::LOCATION, value);
                    }
                    return response;
                }
                return unauthorized(route, message, code);
            }
            Err(Refused::Forbidden(message)) => {
                return refusal(route, StatusCode::FORBIDDEN, "forbidden", message);
            }
            Err(Refused::Failed(message)) => {
                tracing::error!(error = %message, "authentication failed");
                return refusal(
                    route,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the credentials could not be checked",
                );
            }
        };
    if !principal.allows(permission) {
        // A person reaching for PHI or a change their role does not grant is recorded.
        if let (Some(audit), true) = (&auth.inner.audit, route.access.audited()) {
            let record = AuditRecord {
                outcome: Outcome::Denied,
                detail: Some("403".to_owned()),
                ..record_of(route, &request, &principal)
            };
            if let Err(e) = audit.append(record).await {
                tracing::error!(error = %e, "audit record of a refused request not written");
            }
        }
        if crate::console::is_page(route.path) && wants_html(&request) {
            let csrf = session.as_ref().map(|s| CsrfToken(s.csrf.clone()));
            let viewer = crate::console::viewer_of(&principal, csrf.as_ref());
            return crate::console::html(
                StatusCode::FORBIDDEN,
                console::forbidden_page(&viewer, "this page"),
            );
        }
        return refusal(
            route,
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "{} {} needs the {:?} permission, which the caller's role does not grant",
                route.method.as_str(),
                route.path,
                permission.as_str()
            ),
        );
    }
    if let Some(session) = &session {
        // A request made with the session cookie changes something only with the
        // session's CSRF token: a forged cross-site request carries the cookie (where
        // SameSite does not stop it) but cannot read the token.
        if route.method != Method::Get {
            let (checked, ok) = check_csrf(request, session).await;
            request = checked;
            if !ok {
                if let (Some(audit), true) = (&auth.inner.audit, route.access.audited()) {
                    let record = AuditRecord {
                        outcome: Outcome::Denied,
                        detail: Some("403 CSRF token missing or wrong".to_owned()),
                        ..record_of(route, &request, &principal)
                    };
                    if let Err(e) = audit.append(record).await {
                        tracing::error!(error = %e, "audit record of a refused request not written");
                    }
                }
                return refusal(
                    route,
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a change made with a session needs its CSRF token (header X-CSRF-Token or form field csrf_token)",
                );
            }
        }
        request
            .extensions_mut()
            .insert(CsrfToken(session.csrf.clone()));
    }
    let audit = match (&auth.inner.audit, route.access.audited()) {
        (Some(audit), true) => Some((audit.clone(), record_of(route, &request, &principal))),
        _ => None,
    };
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    let Some((audit, record)) = audit else {
        return response;
    };
    if response.extensions().get::<AuditedWithChange>().is_some() {
        return response;
    }
    // A console form's refusal is a redirect carrying the status of the refusal.
    let status = response
        .extensions()
        .get::<crate::console::FormRefused>()
        .map_or(response.status(), |refused| refused.0);
    let outcome = if status.is_success() || status.is_redirection() {
        Outcome::Success
    } else if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        Outcome::Denied
    } else {
        Outcome::Failed
    };
    let record = AuditRecord {
        outcome,
        detail: (!status.is_success()).then(|| status.as_u16().to_string()),
        ..record
    };
    match audit.append(record).await {
        Ok(_) => response,
        Err(e) => {
            // The answer is dropped: no PHI leaves without its record.
            tracing::error!(error = %e, "audit record not written; request refused");
            refusal(
                route,
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the audit record could not be written, so the request is refused",
            )
        }
    }
}

/// Whether the request asks for HTML (a browser navigating).
fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The largest form body read for its CSRF token.
const MAX_FORM_BYTES: usize = 1 << 20;

/// Whether a state-changing request carries its session's CSRF token, in the
/// `X-CSRF-Token` header or, for an HTML form, the `csrf_token` field of its
/// `application/x-www-form-urlencoded` body (read, then handed on unchanged).
async fn check_csrf(request: Request, session: &SessionInfo) -> (Request, bool) {
    if let Some(value) = request.headers().get(access::CSRF_HEADER) {
        let ok = access::verify_csrf(session, value.to_str().ok());
        return (request, ok);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return (request, false);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (Request::from_parts(parts, axum::body::Body::empty()), false);
    };
    let presented = form_field(&bytes, CSRF_FIELD);
    let ok = access::verify_csrf(session, presented.as_deref());
    (
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        ok,
    )
}

/// The first value of `name` in a urlencoded form body, decoded.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The audit record of a request, outcome to be filled in: who, from where, the route
/// pattern as the action, the path as the resource, and the patients the path or query
/// names.
fn record_of(route: RouteInfo, request: &Request, principal: &Principal) -> AuditRecord {
    let kind = match (route.access, route.method) {
        (Access::Phi, Method::Get) => ActionKind::Read,
        (_, Method::Delete) => ActionKind::Delete,
        (Access::Phi, _) => ActionKind::Execute,
        (_, Method::Put) => ActionKind::Update,
        (_, _) if route.path.ends_with("/discard") => ActionKind::Delete,
        _ => ActionKind::Execute,
    };
    let action = format!("{} {}", route.method.as_str(), route.path);
    let path = request.uri().path();
    AuditRecord::by(principal, &action, kind, Outcome::Success)
        .resource(path)
        .patients(patients_of(path, request.uri().query()))
}

/// The patients a request names cheaply: `/mpi/patients/E12`, `/fhir/Patient/7...`, and
/// a FHIR search's `patient=` or `subject=Patient/...`.
fn patients_of(path: &str, query: Option<&str>) -> Vec<String> {
    let mut patients = Vec::new();
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("mpi" | "console"), Some("patients"), Some(id))
            if !id.is_empty() && id != "merge" && id != "unmerge" =>
        {
            patients.push(id.to_owned());
        }
        (Some("fhir"), Some("Patient"), Some(id))
            if !id.is_empty() && !id.starts_with('_') && !id.starts_with('$') =>
        {
            patients.push(format!("Patient/{id}"));
        }
        _ => {}
    }
    if path.starts_with("/fhir/") {
        for pair in query.unwrap_or("").split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let key = key.split(':').next().unwrap_or(key);
            if matches!(key, "patient" | "subject") && !value.is_empty() {
                let id = value
                    .trim_start_matches("Patient/")
                    .trim_start_matches("Patient%2F");
                patients.push(format!("Patient/{id}"));
            }
        }
    }
    patients
}

#[cfg(test)]
mod tests {
    use super::patients_of;

    #[test]
    fn the_patients_a_path_or_search_names_are_found() {
        assert_eq!(patients_of("/mpi/patients/E12", None), ["E12"]);
        assert_eq!(patients_of("/console/patients/E12", None), ["E12"]);
        assert!(patients_of("/console/patients/merge", None).is_empty());
        assert_eq!(patients_of("/fhir/Patient/7", None), ["Patient/7"]);
        assert_eq!(
            patients_of("/fhir/Patient/7/_history/2", None),
            ["Patient/7"]
        );
        assert!(patients_of("/fhir/Patient/_search", None).is_empty());
        assert_eq!(
            patients_of("/fhir/Observation", Some("subject=Patient/9&code=1")),
            ["Patient/9"]
        );
        assert_eq!(
            patients_of("/fhir/Observation", Some("patient=9")),
            ["Patient/9"]
        );
        assert!(patients_of("/api/messages/3", Some("patient=9")).is_empty());
    }
}
