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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    async fn principal_of(header: Option<&[u8]>) -> Result<Principal, ApiError> {
        let mut request = Request::builder().uri("/api/quarantine/1");
        if let Some(value) = header {
            request = request.header(USER_HEADER, value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        Principal::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn the_user_header_names_the_principal_trimmed() {
        let principal = principal_of(Some(b"  ana ")).await.unwrap();
        assert_eq!(principal.user(), Some("ana"));
        assert_eq!(principal.require().unwrap(), "ana");
    }

    #[tokio::test]
    async fn no_header_or_a_blank_one_names_nobody_and_a_change_is_refused() {
        for header in [None, Some(&b"   "[..])] {
            let principal = principal_of(header).await.unwrap();
            assert_eq!(principal.user(), None);
            assert_eq!(
                principal.require().unwrap_err().status(),
                axum::http::StatusCode::BAD_REQUEST
            );
        }
    }

    #[tokio::test]
    async fn a_header_that_is_not_visible_ascii_is_a_bad_request() {
        let error = principal_of(Some("Zoë".as_bytes())).await.unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(error.message().contains(USER_HEADER), "{error}");
    }
}
