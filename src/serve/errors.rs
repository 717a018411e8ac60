//! Every failure of the API as `{"error": "...", "code": "..."}` with the right status: the
//! message is the same actionable text the CLI prints, the code is stable for scripts.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::mount::MountError;
use crate::state::{LockError, StateError};

/// The JSON body of every error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
    /// A stable machine-readable code, e.g. `unauthorized`, `quota_exceeded`, `not_found`.
    pub code: &'static str,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 500: something on the server side, never the request's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, code: self.code };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The whole chain of causes, as the CLI's `{:#}` prints it.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let msg = chain(&e);
        match e {
            StateError::NoSuchApp(_) | StateError::NoSuchRelease { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", msg)
            }
            StateError::AppExists(_) => Self::new(StatusCode::CONFLICT, "exists", msg),
            StateError::Lock(LockError::Busy { .. }) => Self::new(StatusCode::CONFLICT, "busy", msg),
            _ => Self::internal(msg),
        }
    }
}

impl From<MountError> for ApiError {
    fn from(e: MountError) -> Self {
        let msg = chain(&e);
        let (status, code) = match &e {
            MountError::Disabled { .. } => (StatusCode::CONFLICT, "mount_disabled"),
            MountError::Escape { .. } | MountError::InvalidPath { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_path")
            }
            MountError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            MountError::IsDirectory { .. } => (StatusCode::CONFLICT, "is_directory"),
            MountError::NotRegular { .. } => (StatusCode::CONFLICT, "not_regular"),
            MountError::RootRemoval { .. } => (StatusCode::BAD_REQUEST, "root_removal"),
            MountError::RootRename => (StatusCode::BAD_REQUEST, "root_rename"),
            MountError::IntoItself { .. } => (StatusCode::BAD_REQUEST, "into_itself"),
            MountError::Exists { .. } => (StatusCode::CONFLICT, "exists"),
            MountError::Changed { .. } => (StatusCode::PRECONDITION_FAILED, "changed"),
            MountError::Full { .. } | MountError::OverQuota { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded")
            }
            MountError::TooSmall { .. } | MountError::ShrinkBelowUsage { .. } => {
                (StatusCode::BAD_REQUEST, "bad_size")
            }
            MountError::Busy { .. }
            | MountError::ImageInUse { .. }
            | MountError::Lock(LockError::Busy { .. }) => (StatusCode::CONFLICT, "busy"),
            MountError::UnsafeArchive { .. } | MountError::BadArchive { .. } => {
                (StatusCode::BAD_REQUEST, "bad_archive")
            }
            MountError::ImportConflict { .. } => (StatusCode::CONFLICT, "import_conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, msg)
    }
}

impl From<crate::runtime::RuntimeError> for ApiError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        Self::internal(chain(&e))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("the request's worker failed: {e}"))
    }
}

/// Rejections axum makes itself (a malformed JSON body, a wrong content type, a body over the
/// limit) are plain text; every API error is JSON, so they are rewritten here.
pub async fn json_rejections(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status.canonical_reason().unwrap_or("request refused").to_owned(),
    };
    let mut out = ApiError::new(status, code, text).into_response();
    for (k, v) in &parts.headers {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
