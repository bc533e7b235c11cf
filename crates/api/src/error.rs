//! The one error every route answers with.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request that failed: a status and a sentence saying what to fix.
///
/// Every route answers its errors with this type. The body has one stable shape,
/// `{"error": "..."}` (`application/json`), except on the FHIR repository's routes
/// (`/fhir/...`), where FHIR clients expect an `OperationOutcome` with one issue
/// (`application/fhir+json`): [`ApiError::outcome`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// The FHIR issue type (`invalid`, `not-found`, ...) when answered as an
    /// OperationOutcome.
    fhir_code: Option<&'static str>,
}

impl ApiError {
    /// An error answered as `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            fhir_code: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500, logged at `error` (the message names no patient data).
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!(error = %message, "API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An error answered as a FHIR `OperationOutcome` with one issue of type `code`.
    pub fn outcome(
        status: StatusCode,
        code: &'static str,
        diagnostics: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            message: diagnostics.into(),
            fhir_code: Some(code),
        }
    }

    /// The status code answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The sentence answered.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.fhir_code {
            None => (self.status, Json(json!({"error": self.message}))).into_response(),
            Some(code) => fhir_json(
                self.status,
                &json!({
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": code, "diagnostics": self.message}],
                }),
            ),
        }
    }
}

/// A FHIR JSON answer (`application/fhir+json; charset=utf-8`).
pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    response
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<quarantine::Error> for ApiError {
    fn from(e: quarantine::Error) -> ApiError {
        use quarantine::Error;
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NotOpen { .. } | Error::EditedMeanwhile(_) | Error::StillInvalid { .. } => {
                StatusCode::CONFLICT
            }
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotHl7(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Store(_) => return ApiError::internal(e.to_string()),
            // A kind added later: a server-side failure until it is classified here.
            _ => return ApiError::internal(e.to_string()),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<mpi::ServiceError> for ApiError {
    fn from(e: mpi::ServiceError) -> ApiError {
        use mpi::ServiceError;
        match &e {
            ServiceError::Index(i) => ApiError::from(i.clone()),
            ServiceError::Mapping(_) => ApiError::bad_request(e.to_string()),
            ServiceError::Store(_) | ServiceError::InUse(_) | ServiceError::Lock(..) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl From<mpi::MpiError> for ApiError {
    fn from(e: mpi::MpiError) -> ApiError {
        use mpi::MpiError;
        let status = match e {
            MpiError::UnknownRecord(_)
            | MpiError::UnknownEnterprise(_)
            | MpiError::UnknownReview(_)
            | MpiError::UnknownMerge(_) => StatusCode::NOT_FOUND,
            MpiError::AlreadyUndone(_)
            | MpiError::UnmergeConflict { .. }
            | MpiError::SameEnterprise(_)
            | MpiError::SameRecord(_)
            | MpiError::AlreadyMerged(_)
            | MpiError::AlreadyLinked(..)
            | MpiError::NothingToUnlink(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}
