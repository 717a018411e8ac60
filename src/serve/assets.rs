//! The UI: plain HTML, CSS and JS embedded in the binary (no CDN, no npm). These routes, and
//! only these, answer without a token: the page then signs in with one.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;

/// Every file under `src/serve/ui/`, with its content type.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("ui/app.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("ui/style.css")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("ui/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("ui/dom.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_bytes!("ui/overview.js")),
    ("logs.js", "text/javascript; charset=utf-8", include_bytes!("ui/logs.js")),
    ("mount.js", "text/javascript; charset=utf-8", include_bytes!("ui/mount.js")),
    ("files.js", "text/javascript; charset=utf-8", include_bytes!("ui/files.js")),
];

fn respond(name: &str) -> Response {
    let Some((_, mime, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no UI file {name:?}"))
            .into_response();
    };
    let mut resp = (*bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Same-origin scripts and styles only: an app's file shown in the explorer can never run.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"),
    );
    resp
}

/// `GET /`: the sign-in page and the app.
pub async fn index() -> Response {
    respond("index.html")
}

/// `GET /ui/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    respond(&name)
}
