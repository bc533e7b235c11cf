//! Who acts on a request: the one place a request is attributed to a person.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::ApiError;

/// Header naming the person who makes a change. Today an authenticating proxy in
/// front of Corridor sets it.
pub const USER_HEADER: &str = "x-corridor-user";

/// The person acting on a request, as every route that records who did something
/// reads it (quarantine edits, reprocessing, patient index decisions).
///
/// This extractor is the single seam for authentication: today it reads
/// `X-Corridor-User`; a route never reads that header itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    user: Option<String>,
}

impl Principal {
    /// A principal naming `user` (tests, and callers inside the process).
    pub fn named(user: impl Into<String>) -> Principal {
        let user = user.into();
        Principal {
            user: (!user.trim().is_empty()).then(|| user.trim().to_owned()),
        }
    }

    /// The acting user, when the request names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The acting user, or a 400 saying the change must name who makes it.
    pub fn require(&self) -> Result<&str, ApiError> {
        self.user().ok_or_else(|| {
            ApiError::bad_request("the X-Corridor-User header must name who makes the change")
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Principal, ApiError> {
        match parts.headers.get(USER_HEADER) {
            None => Ok(Principal::default()),
            Some(value) => value.to_str().map(Principal::named).map_err(|_| {
                ApiError::bad_request(format!("header {USER_HEADER} must be visible ASCII text"))
            }),
        }
    }
}
