//! `POST /api/apps/{app}/deploys`: the CLI's deploy ([`crate::deploy`]), run in the server's
//! process on a blocking thread, its progress streamed to the client as NDJSON as it happens.
//!
//! The deploy owns its thread, not the request: a client that leaves stops receiving lines,
//! and the deploy goes on to its switch or its cleanup, and its record, as the CLI's does when
//! its terminal closes. The app's lock is taken as the CLI takes it: by default the request
//! waits for another deploy (and says so in the stream); with `"wait": false` it is refused
//! with 409 before anything streams, as `slipway deploy --no-wait` exits 4.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::apps::{app_name, blocking};
use super::errors::{ApiError, ErrorBody, chain};
use super::server::{AppState, LongOps};
use super::stream::{StreamLine, ndjson, ndjson_response};
use super::tokens::Principal;
use crate::deploy::{DeployFlowError, DeployOutcome};
use crate::plan::Overrides;
use crate::progress::{Progress, ProgressEvent, ProgressSink};
use crate::state::{LockError, StateError, Wait};

/// `POST /api/apps/{app}/deploys`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// A git repository on the server (admin token only) [default: the app's own repository,
    /// the one `git push` fills].
    pub repo: Option<String>,
    /// A branch, tag or commit [default: HEAD of `repo`, or the deploy branch of the app's repository].
    pub rev: Option<String>,
    /// Wait for another deploy of the app to finish [default: true]; false answers 409 at
    /// once instead, like `slipway deploy --no-wait`.
    pub wait: Option<bool>,
}

/// How many lines may wait for a slow client before later ones are left out (and counted):
/// a client that stops reading must never hold up a deploy, which holds the app's lock.
const BACKLOG: usize = 1024;

/// The deploy's progress, sent to the client's stream. Never blocks, never fails the deploy.
struct ChannelSink {
    tx: mpsc::Sender<Bytes>,
    /// Lines left out because the client read too slowly, not yet reported.
    dropped: AtomicU64,
}

impl ChannelSink {
    fn send(&self, line: Bytes) {
        if self.tx.is_closed() {
            return; // the client left; the deploy goes on
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!("       ({dropped} lines left out: the client read too slowly)");
            if self.tx.try_send(ndjson(&serde_json::json!({ "line": note }))).is_err() {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ProgressSink for ChannelSink {
    fn event(&self, event: ProgressEvent<'_>) {
        let mut v = serde_json::json!({ "line": event.text() });
        if let ProgressEvent::PhaseEnd { name, took, ok } = event {
            v["phase"] = name.into();
            v["millis"] = u64::try_from(took.as_millis()).unwrap_or(u64::MAX).into();
            v["phase_ok"] = ok.into();
        }
        self.send(ndjson(&v));
    }
}

/// The stream's last line: the outcome, or the error with the CLI's exit code.
fn final_line(result: Result<DeployOutcome, DeployFlowError>) -> serde_json::Value {
    match result {
        Ok(outcome) => serde_json::json!({ "done": true, "ok": true, "exit_code": 0, "outcome": outcome }),
        Err(e) => {
            let (code, exit_code) = failure_code(&e);
            serde_json::json!({
                "done": true, "ok": false, "exit_code": exit_code, "code": code, "error": chain(&e),
            })
        }
    }
}

/// A failed deploy's stable code, and the exit code `slipway deploy` gives it (see the
/// README's exit codes): 3 the deploy failed (the running release is untouched), 2 bad input,
/// 4 the app was locked, 1 anything else.
fn failure_code(e: &DeployFlowError) -> (&'static str, i32) {
    match e {
        DeployFlowError::Failed(_) => ("deploy_failed", 3),
        DeployFlowError::Source(_) => ("bad_revision", 2),
        DeployFlowError::State(StateError::NoSuchApp(_)) => ("not_found", 2),
        DeployFlowError::State(StateError::Lock(LockError::Busy { .. })) => ("busy", 4),
        DeployFlowError::State(_) | DeployFlowError::Runtime(_) | DeployFlowError::Reconcile(_) => {
            ("internal", 1)
        }
    }
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
        description = "the deploy's progress lines (the text `slipway deploy` prints) as they happen; \
            the last one says whether the deploy succeeded, with its outcome or its error"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another deploy of the app runs and `wait` is false"),
        (status = 429, body = ErrorBody, description = "too many deploys at once on this server")))]
pub async fn deploy(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(app): Path<String>,
    body: Option<Json<DeployRequest>>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let record = {
        let (st, app) = (st.clone(), app.clone());
        blocking(move || Ok(st.home.load_app(&app)?)).await?
    };
    let (repo, rev) = match req.repo {
        Some(repo) => {
            if who != Principal::Admin {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
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
            (PathBuf::from(repo), req.rev.unwrap_or_else(|| "HEAD".to_owned()))
        }
        None => (st.home.git_repo(&app), req.rev.unwrap_or_else(|| record.deploy_branch().to_owned())),
    };
    check_rev(&rev)?;
    let request = crate::deploy::DeployRequest {
        app: app.clone(),
        repo,
        rev,
        wait: if req.wait.unwrap_or(true) { Wait::Yes } else { Wait::No },
        overrides: Overrides::default(),
    };
    let permit = LongOps::take(&st.long_ops.deploys, "deploys")?;
    // Refusing is an answer's status, so the lock is tried before anything streams.
    let lock = match request.wait {
        Wait::No => {
            let (st, app) = (st.clone(), app.clone());
            Some(blocking(move || Ok(st.home.lock_app(&app, Wait::No, || {})?)).await?)
        }
        Wait::Yes => None,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(BACKLOG);
    let sink = Arc::new(ChannelSink { tx: tx.clone(), dropped: AtomicU64::new(0) });
    let home = st.home.clone();
    tracing::info!(app = %app, rev = %request.rev, "deploy requested over the API");
    // Not tied to the response: dropping the stream (the client left) drops only the lines.
    let running = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut progress = Progress::to(sink);
        match lock {
            Some(lock) => crate::deploy::deploy_locked(&home, &request, lock, &mut progress),
            None => crate::deploy::deploy(&home, &request, &mut progress),
        }
    });
    tokio::spawn(async move {
        let last = match running.await {
            Ok(result) => final_line(result),
            Err(e) => serde_json::json!({
                "done": true, "ok": false, "exit_code": 1, "code": "internal",
                "error": format!("the deploy's worker failed: {e}; see `slipway releases {app}`"),
            }),
        };
        // The deploy is over (and its lock released); wait for room for this one line.
        let _ = tx.send(ndjson(&last)).await;
    });
    // Not cut short when the server stops: it waits for the deploy, as for any request.
    Ok(ndjson_response(rx, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppName, ReleaseId};
    use crate::runtime::DeployError;

    fn lines(rx: &mut mpsc::Receiver<Bytes>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            out.push(serde_json::from_slice(&b).unwrap());
        }
        out
    }

    #[test]
    fn phase_ends_carry_their_name_and_duration_beside_the_cli_text() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut p = Progress::to(Arc::new(ChannelSink { tx, dropped: AtomicU64::new(0) }));
        let _: Result<(), ()> = p.phase("Building v1", |p| {
            p.detail("collecting");
            Ok(())
        });
        let got = lines(&mut rx);
        assert_eq!(got[0]["line"], "-----> Building v1");
        assert_eq!(got[1]["line"], "       collecting");
        assert!(got[2]["line"].as_str().unwrap().starts_with("       done in "), "{got:?}");
        assert_eq!(
            (got[2]["phase"].as_str(), got[2]["phase_ok"].as_bool()),
            (Some("Building v1"), Some(true))
        );
        assert!(got[2]["millis"].is_u64());
    }

    #[test]
    fn a_slow_client_loses_lines_not_the_deploy_and_is_told_how_many() {
        let (tx, mut rx) = mpsc::channel(2);
        let sink = ChannelSink { tx, dropped: AtomicU64::new(0) };
        for i in 0..5 {
            sink.event(ProgressEvent::Detail(&format!("line {i}")));
        }
        assert_eq!(lines(&mut rx).len(), 2);
        sink.event(ProgressEvent::Note("later"));
        let got = lines(&mut rx);
        assert_eq!(got[0]["line"], "       (3 lines left out: the client read too slowly)");
        assert_eq!(got[1]["line"], "-----> later");
    }

    #[test]
    fn a_client_that_left_costs_the_deploy_nothing() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let sink = ChannelSink { tx, dropped: AtomicU64::new(0) };
        sink.event(ProgressEvent::Note("nobody listens"));
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn long_operations_past_their_bound_get_429_until_one_ends() {
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        let first = LongOps::take(&sem, "deploys").unwrap();
        let refused = LongOps::take(&sem, "deploys").unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "too_many"));
        drop(first);
        assert!(LongOps::take(&sem, "deploys").is_ok());
    }

    #[test]
    fn failures_keep_the_clis_exit_codes() {
        let app: AppName = "web".parse().unwrap();
        let failed = DeployFlowError::Failed(DeployError {
            app: app.clone(),
            release: ReleaseId::new(2),
            phase: "predeploy",
            source: "exit 1".into(),
        });
        let last = final_line(Err(failed));
        assert_eq!((last["ok"].as_bool(), last["exit_code"].as_i64()), (Some(false), Some(3)));
        assert_eq!(last["code"], "deploy_failed");
        assert!(last["error"].as_str().unwrap().contains("during predeploy"), "{last}");
        let busy = DeployFlowError::State(StateError::Lock(LockError::Busy { what: "the lock".into() }));
        assert_eq!(failure_code(&busy), ("busy", 4));
        assert_eq!(failure_code(&DeployFlowError::State(StateError::NoSuchApp(app))), ("not_found", 2));
    }
}
