//! Who acts on a request: the one place a handler learns who is making it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::ApiError;

/// Header naming the person who makes a change, read only when `[http] auth = "off"`
/// (there is no authenticated principal then to name).
pub const USER_HEADER: &str = "x-corridor-user";

/// The caller of a request, as the access guard authenticated it, and the name that
/// routes recording who did something use (quarantine edits, reprocessing, patient
/// index decisions).
///
/// The name is the authenticated user's: a token's owner, a session's user, an OIDC
/// identity's name. Only without authentication (`auth = "off"`, anonymous) does the
/// `X-Corridor-User` header name the person. No route reads that header itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user: Option<String>,
    principal: Option<access::Principal>,
}

impl Principal {
    /// A principal naming `user` (tests, and callers inside the process).
    pub fn named(user: impl Into<String>) -> Principal {
        let user = user.into();
        Principal {
            user: (!user.trim().is_empty()).then(|| user.trim().to_owned()),
            principal: None,
        }
    }

    /// The acting user, when known.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The authenticated caller, as the guard saw it.
    pub fn authenticated(&self) -> Option<&access::Principal> {
        self.principal.as_ref()
    }

    /// The acting user, or a 400 saying the change must name who makes it (only
    /// possible without authentication).
    pub fn require(&self) -> Result<&str, ApiError> {
        self.user().ok_or_else(|| {
            ApiError::bad_request(
                "who makes the change is unknown: authentication is off, so the X-Corridor-User header must name them",
            )
        })
    }

    fn of(principal: access::Principal, header: Option<&str>) -> Principal {
        let user = match &principal.actor {
            access::Actor::User { name } => Some(name.clone()),
            access::Actor::Token { owner, .. } => Some(owner.clone()),
            access::Actor::Oidc { name, .. } => Some(name.clone()),
            access::Actor::Anonymous => header
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
        };
        Principal {
            user,
            principal: Some(principal),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Principal, ApiError> {
        let Some(principal) = parts.extensions.get::<access::Principal>().cloned() else {
            // The guard runs before every route; fail closed if it did not.
            return Err(ApiError::internal("the request was not authenticated"));
        };
        let header = match (&principal.actor, parts.headers.get(USER_HEADER)) {
            (access::Actor::Anonymous, Some(value)) => Some(value.to_str().map_err(|_| {
                ApiError::bad_request(format!("header {USER_HEADER} must be visible ASCII text"))
            })?),
            _ => None,
        };
        Ok(Principal::of(principal, header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use access::{Actor, AuthMethod, Role};
    use axum::http::Request;

    fn caller(actor: Actor) -> access::Principal {
        access::Principal {
            actor,
            roles: vec![Role::Operator],
            scopes: None,
            method: AuthMethod::Token,
            address: None,
            tls_identity: None,
        }
    }

    async fn principal_of(
        caller: Option<access::Principal>,
        header: Option<&[u8]>,
    ) -> Result<Principal, ApiError> {
        let mut request = Request::builder().uri("/api/quarantine/1");
        if let Some(value) = header {
            request = request.header(USER_HEADER, value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(caller) = caller {
            parts.extensions.insert(caller);
        }
        Principal::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn a_token_acts_as_its_owner_and_the_header_is_ignored() {
        let token = caller(Actor::Token {
            id: 4,
            owner: "alice".into(),
        });
        let principal = principal_of(Some(token), Some(b"mallory")).await.unwrap();
        assert_eq!(principal.require().unwrap(), "alice");
    }

    #[tokio::test]
    async fn without_authentication_the_header_names_the_person_trimmed() {
        let principal = principal_of(Some(caller(Actor::Anonymous)), Some(b"  ana "))
            .await
            .unwrap();
        assert_eq!(principal.user(), Some("ana"));
        for header in [None, Some(&b"   "[..])] {
            let principal = principal_of(Some(caller(Actor::Anonymous)), header)
                .await
                .unwrap();
            assert_eq!(
                principal.require().unwrap_err().status(),
                axum::http::StatusCode::BAD_REQUEST
            );
        }
        let error = principal_of(Some(caller(Actor::Anonymous)), Some("Zoë".as_bytes()))
            .await
            .unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_request_the_guard_did_not_see_is_refused() {
        let error = principal_of(None, Some(b"ana")).await.unwrap_err();
        assert_eq!(
            error.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
