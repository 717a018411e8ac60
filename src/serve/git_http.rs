//! git's smart HTTP protocol at `/git/APP.git`, served by `git http-backend` (CGI) against the
//! app's bare repository. A push runs the repository's pre-receive hook, so it deploys exactly
//! as a local push does and streams the same `remote:` lines. The token (any user name, the
//! token as password) was checked by the auth middleware, and reaches this app.

use std::process::Stdio;

use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use super::apps::app_name;
use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use super::tokens::Principal;

/// `?service=` of the ref advertisement.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct ServiceQuery {
    /// `git-upload-pack` (fetch, clone) or `git-receive-pack` (push).
    pub service: Option<String>,
}

// Only what git's smart protocol asks for has a route; anything else (dumb HTTP, hooks,
// config) is the API's 404.

/// The ref advertisement, the first request of a fetch or a push.
#[utoipa::path(get, path = "/git/{app}.git/info/refs", tag = "git",
    params(("app" = String, Path, description = "the app; its bare repository is the one `git push` deploys"), ServiceQuery),
    security(("basic" = [])),
    responses((status = 200, content_type = "application/x-git-receive-pack-advertisement", body = Vec<u8>,
            description = "git's smart HTTP protocol, answered by `git http-backend`"),
        (status = 401, body = ErrorBody, description = "no or a wrong token: git then asks for credentials (any user name, the token as password)"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn info_refs(
    st: State<AppState>,
    who: Extension<Principal>,
    Path(repo): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    backend(st, who, &repo, "info/refs", req).await
}

/// A fetch or a clone: git's `upload-pack` service.
#[utoipa::path(post, path = "/git/{app}.git/git-upload-pack", tag = "git", params(("app" = String, Path)),
    security(("basic" = [])),
    request_body(content = Vec<u8>, content_type = "application/x-git-upload-pack-request"),
    responses((status = 200, content_type = "application/x-git-upload-pack-result", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn upload_pack(
    st: State<AppState>,
    who: Extension<Principal>,
    Path(repo): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    backend(st, who, &repo, "git-upload-pack", req).await
}

/// A push: git's `receive-pack` service. A push of the deploy branch deploys it, streaming
/// the deploy's progress as `remote:` lines; a failed deploy rejects the push.
#[utoipa::path(post, path = "/git/{app}.git/git-receive-pack", tag = "git", params(("app" = String, Path)),
    security(("basic" = [])),
    request_body(content = Vec<u8>, content_type = "application/x-git-receive-pack-request"),
    responses((status = 200, content_type = "application/x-git-receive-pack-result", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn receive_pack(
    st: State<AppState>,
    who: Extension<Principal>,
    Path(repo): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    backend(st, who, &repo, "git-receive-pack", req).await
}

/// `git http-backend` for `/git/{repo}/{rest}`.
async fn backend(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    repo: &str,
    rest: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such repository; push to /git/APP.git");
    let app = app_name(repo.strip_suffix(".git").ok_or_else(not_found)?)?;
    let git_dir = st.home.git_repo(&app);
    if !st.home.app(&app).record().exists() || !git_dir.join("HEAD").exists() {
        return Err(not_found());
    }
    let root = git_dir.parent().ok_or_else(not_found)?.to_owned();
    let (parts, body) = req.into_parts();
    let header_str =
        |name: HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{app}.git/{rest}"))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header_str(header::CONTENT_TYPE))
        .env("HTTP_CONTENT_ENCODING", header_str(header::CONTENT_ENCODING))
        .env("GIT_PROTOCOL", header_str(HeaderName::from_static("git-protocol")))
        .env(
            "REMOTE_USER",
            match &who {
                Principal::Admin => "admin".to_owned(),
                Principal::App(a) => format!("app:{a}"),
            },
        )
        .env("REMOTE_ADDR", "127.0.0.1")
        // Pushes are what this endpoint is for; http-backend needs it said for an authenticated user.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        // The hook runs `slipway`: it must find the same home.
        .env("SLIPWAY_HOME", st.home.root())
        .env("HOME", std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        cmd.env("CONTENT_LENGTH", len);
    }
    let mut child =
        cmd.spawn().map_err(|e| ApiError::internal(format!("cannot run git http-backend: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| ApiError::internal("git http-backend has no stdin"))?;
    tokio::spawn(async move {
        let mut body = body.into_data_stream().map_err(std::io::Error::other);
        while let Ok(Some(chunk)) = body.try_next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Closing stdin tells http-backend the request body is complete.
        drop(stdin);
    });
    let stdout = child.stdout.take().ok_or_else(|| ApiError::internal("git http-backend has no stdout"))?;
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut response = Response::new(Body::empty());
    // CGI headers, then the body streams through: a push's `remote:` lines arrive as they happen.
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| ApiError::internal(format!("git http-backend failed: {e}")))?;
        let line = line.trim_end();
        if n == 0 || line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse::<u16>().ok()).unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            response.headers_mut().append(n, v);
        }
    }
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    *response.body_mut() = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok(response)
}
