//! Long operations streamed to the client as NDJSON (one JSON object per line, sent as it
//! happens): a deploy's progress, and a log tail.
//!
//! Both run the very command a person runs (`slipway deploy`, `slipway logs -f`) as a child
//! of the server, because their output is not only slipway's: a deploy's predeploy script,
//! buildpacks and docker builds write straight to the process's stdout and stderr, which a
//! server serving many requests at once cannot redirect per request. The child takes the app's
//! lock as the CLI does, and a deploy goes on to its end (and its record) if the client leaves.

use std::process::Stdio;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::apps::app_name;
use super::archive::channel_stream;
use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use super::tokens::Principal;
use crate::ids::ProcessType;

/// `POST /api/apps/{app}/deploys`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// A git repository on the server (admin token only) [default: the app's own repository,
    /// the one `git push` fills].
    pub repo: Option<String>,
    /// A branch, tag or commit [default: HEAD of `repo`, or the deploy branch of the app's repository].
    pub rev: Option<String>,
}

/// One line of a stream: `{"line": "..."}`, and last `{"done": true, "ok": ..., "exit_code": ...}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamLine {
    pub line: Option<String>,
    pub done: Option<bool>,
    pub ok: Option<bool>,
    pub exit_code: Option<i32>,
    /// The deploy's outcome (`slipway deploy --json`) when it succeeded.
    #[schema(value_type = Object)]
    pub outcome: Option<serde_json::Value>,
}

fn ndjson(v: &serde_json::Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn ndjson_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::StreamExt::map(channel_stream(rx), Ok::<_, std::io::Error>);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    // Proxies must pass each line on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn slipway(st: &AppState) -> Result<Command, ApiError> {
    let exe = std::env::current_exe()
        .map_err(|e| ApiError::internal(format!("cannot find slipway's binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home").arg(st.home.root()).env_remove("SLIPWAY_HOME").stdin(Stdio::null());
    Ok(cmd)
}

/// A revision given over the API: never an option, never a control character.
fn check_rev(rev: &str) -> Result<(), ApiError> {
    if rev.is_empty()
        || rev.starts_with('-')
        || rev.len() > 256
        || rev.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(ApiError::bad_request("invalid_rev", format!("{rev:?} is not a branch, tag or commit")));
    }
    Ok(())
}

/// Deploy `{repo, rev}` and stream its progress as NDJSON.
#[utoipa::path(post, path = "/api/apps/{app}/deploys", tag = "deploys", params(("app" = String, Path)),
    request_body = DeployRequest,
    responses((status = 200, content_type = "application/x-ndjson", body = StreamLine,
        description = "progress lines as they happen; the last one says whether the deploy succeeded"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deploy(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(app): Path<String>,
    body: Option<Json<DeployRequest>>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let record = {
        let st = st.clone();
        let app = app.clone();
        super::apps::blocking(move || Ok(st.home.load_app(&app)?)).await?
    };
    let (repo, rev) = match req.repo {
        Some(repo) => {
            if who != Principal::Admin {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    "an app token deploys only from the app's own repository; leave out \"repo\" (push with git first)",
                ));
            }
            if !std::path::Path::new(&repo).is_absolute() {
                return Err(ApiError::bad_request(
                    "invalid_repo",
                    format!("{repo:?}: give the repository's absolute path on the server"),
                ));
            }
            (std::path::PathBuf::from(repo), req.rev.unwrap_or_else(|| "HEAD".to_owned()))
        }
        None => (st.home.git_repo(&app), req.rev.unwrap_or_else(|| record.deploy_branch().to_owned())),
    };
    check_rev(&rev)?;
    let mut cmd = slipway(&st)?;
    cmd.arg("deploy").arg("--json").arg(format!("--repo={}", repo.display())).arg(format!("--rev={rev}"));
    cmd.arg("--").arg(app.as_str()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| ApiError::internal(format!("cannot start the deploy: {e}")))?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stderr = child.stderr.take();
    let mut stdout = child.stdout.take();
    tokio::spawn(async move {
        let reading = tokio::spawn(async move {
            let mut out = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
            out
        });
        if let Some(err) = stderr {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // A client that left does not stop the deploy: keep draining.
                let _ = tx.send(ndjson(&serde_json::json!({ "line": line }))).await;
            }
        }
        let out = reading.await.unwrap_or_default();
        let status = child.wait().await;
        let code = status.as_ref().ok().and_then(std::process::ExitStatus::code).unwrap_or(-1);
        let outcome: Option<serde_json::Value> = serde_json::from_slice(&out).ok();
        let done =
            serde_json::json!({ "done": true, "ok": code == 0, "exit_code": code, "outcome": outcome });
        let _ = tx.send(ndjson(&done)).await;
    });
    Ok(ndjson_response(rx))
}

/// `?follow=1&type=web&lines=100`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// Keep the response open and send new lines as they are written.
    pub follow: Option<String>,
    /// A process type (`worker`) or one instance (`worker.2`) [default: every process].
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    /// How many earlier lines to send first [default: 100, at most 10000].
    pub lines: Option<usize>,
}

/// The app's logs as NDJSON lines; with `follow=1` a live tail until the client leaves.
#[utoipa::path(get, path = "/api/apps/{app}/logs", tag = "logs", params(("app" = String, Path), LogsQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = StreamLine),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    {
        let st = st.clone();
        let app = app.clone();
        super::apps::blocking(move || Ok(st.home.load_app(&app).map(drop)?)).await?;
    }
    if let Some(t) = &q.ptype {
        let (ty, index) = t.split_once('.').map_or((t.as_str(), None), |(a, b)| (a, Some(b)));
        let bad = || {
            ApiError::bad_request(
                "invalid_type",
                format!("{t:?} is not a process type (web) or instance (web.2)"),
            )
        };
        // Never anything `slipway logs` could read as an option.
        if !ty.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        ty.parse::<ProcessType>().map_err(|_| bad())?;
        if let Some(i) = index {
            i.parse::<u32>().map_err(|_| bad())?;
        }
    }
    let lines = q.lines.unwrap_or(100).min(10_000);
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let mut cmd = slipway(&st)?;
    cmd.arg("logs").arg("-n").arg(lines.to_string());
    if follow {
        cmd.arg("-f");
    }
    cmd.arg("--").arg(app.as_str());
    if let Some(t) = &q.ptype {
        cmd.arg(t);
    }
    // The tail ends when the client leaves: the response's stream is dropped, then the child.
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ApiError::internal(format!("cannot read the logs: {e}")))?;
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut text).await;
            }
            text
        });
        if let Some(out) = stdout {
            let mut lines = tokio::io::BufReader::new(out).lines();
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(line)) => {
                            if tx.send(ndjson(&serde_json::json!({ "line": line }))).await.is_err() {
                                return; // client gone: dropping `child` kills the tail
                            }
                        }
                        _ => break,
                    },
                    () = tx.closed() => return,
                }
            }
        }
        let status = child.wait().await;
        let code = status.as_ref().ok().and_then(std::process::ExitStatus::code).unwrap_or(-1);
        let err = errors.await.unwrap_or_default();
        let mut done = serde_json::json!({ "done": true, "ok": code == 0, "exit_code": code });
        if code != 0 {
            done["error"] = serde_json::Value::String(err.trim().to_owned());
        }
        let _ = tx.send(ndjson(&done)).await;
    });
    Ok(ndjson_response(rx))
}
