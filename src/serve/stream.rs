//! Long operations streamed to the client as NDJSON (one JSON object per line, sent as it
//! happens): a deploy's progress (see [`super::deploys`]) and a log tail.
//!
//! A log tail reads through the same runtime code as `slipway logs`, in the server's process
//! on a blocking thread, into a sink that feeds the response. It ends when the client leaves
//! (the sink fails and the runtime stops reading) or when the server stops.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::apps::{app_name, blocking};
use super::archive::channel_stream;
use super::errors::{ApiError, ErrorBody, chain};
use super::server::{AppState, LongOps};
use crate::ids::ProcessType;
use crate::runtime::{AnyRuntime, LogSink};

/// One line of a stream: `{"line": "..."}`, and last `{"done": true, "ok": ..., "exit_code": ...}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamLine {
    /// A progress or log line, as the CLI prints it.
    pub line: Option<String>,
    /// On a deploy's line that ends a phase: the phase's name.
    pub phase: Option<String>,
    /// On a deploy's line that ends a phase: how long it took.
    pub millis: Option<u64>,
    /// On a deploy's line that ends a phase: whether it succeeded.
    pub phase_ok: Option<bool>,
    /// On the last line only.
    pub done: Option<bool>,
    pub ok: Option<bool>,
    /// The exit code the CLI gives the same outcome: 0 ok, 1 other, 2 bad input, 3 the deploy
    /// failed (the running release is untouched), 4 the app was locked.
    pub exit_code: Option<i32>,
    /// A stable code for a failure, e.g. `deploy_failed`.
    pub code: Option<String>,
    /// What failed, the CLI's whole message.
    pub error: Option<String>,
    /// The deploy's outcome (`slipway deploy --json`) when it succeeded.
    #[schema(value_type = Object)]
    pub outcome: Option<serde_json::Value>,
}

/// One NDJSON line.
pub fn ndjson(v: &serde_json::Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A streamed response of the receiver's lines, ending when every sender is gone, or when
/// `until` is cancelled (the server stops).
pub fn ndjson_response(rx: mpsc::Receiver<Bytes>, until: Option<CancellationToken>) -> Response {
    use futures_util::StreamExt as _;
    let lines = channel_stream(rx).map(Ok::<_, io::Error>);
    let body = match until {
        Some(token) => Body::from_stream(lines.take_until(token.cancelled_owned())),
        None => Body::from_stream(lines),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    // Proxies must pass each line on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Log lines into a response. It waits for a slow client (a tail may), and fails once the
/// client is gone, which ends the runtime's follow. It never blocks on the channel itself, as
/// the Docker runtime calls it from inside its own async runtime.
struct ClientLines {
    tx: mpsc::Sender<Bytes>,
}

impl ClientLines {
    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "the client left")
    }
}

impl LogSink for ClientLines {
    fn line(&mut self, line: &str) -> io::Result<()> {
        let mut item = ndjson(&serde_json::json!({ "line": line }));
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(Self::gone()),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx.is_closed() { Err(Self::gone()) } else { Ok(()) }
    }
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

/// A `type` of the logs query: a process type or one instance of it.
fn check_type(t: &str) -> Result<(), ApiError> {
    let (ty, index) = t.split_once('.').map_or((t, None), |(a, b)| (a, Some(b)));
    let bad = || {
        ApiError::bad_request(
            "invalid_type",
            format!("{t:?} is not a process type (web) or instance (web.2)"),
        )
    };
    if !ty.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    ty.parse::<ProcessType>().map_err(|_| bad())?;
    if let Some(i) = index {
        i.parse::<u32>().map_err(|_| bad())?;
    }
    Ok(())
}

/// The app's logs as NDJSON lines; with `follow=1` a live tail until the client leaves.
#[utoipa::path(get, path = "/api/apps/{app}/logs", tag = "logs", params(("app" = String, Path), LogsQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = StreamLine),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many log tails open on this server")))]
pub async fn logs(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    if let Some(t) = &q.ptype {
        check_type(t)?;
    }
    let record = {
        let (st, app) = (st.clone(), app.clone());
        blocking(move || Ok(st.home.load_app(&app)?)).await?
    };
    let lines = q.lines.unwrap_or(100).min(10_000);
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let permit = LongOps::take(&st.long_ops.tails, "log tails")?;
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut sink = ClientLines { tx: tx.clone() };
    let home = st.home.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let runtime = AnyRuntime::for_kind(&home, record.runtime).map_err(|e| chain(&e))?;
        runtime.logs(&record, q.ptype.as_deref(), lines, follow, &mut sink).map_err(|e| chain(&e))
    });
    tokio::spawn(async move {
        let result = reading.await.unwrap_or_else(|e| Err(format!("the log reader failed: {e}")));
        let done = match result {
            Ok(()) => serde_json::json!({ "done": true, "ok": true, "exit_code": 0 }),
            Err(e) => {
                serde_json::json!({ "done": true, "ok": false, "exit_code": 1, "code": "logs_failed", "error": e })
            }
        };
        if !tx.is_closed() {
            let _ = tx.send(ndjson(&done)).await;
        }
    });
    // When the server stops, the response ends, and with it the tail (its sink fails).
    Ok(ndjson_response(rx, Some(st.stopping.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_types_are_types_or_instances_never_options() {
        assert!(check_type("web").is_ok());
        assert!(check_type("worker.2").is_ok());
        for bad in ["--evil", "-n", "web.x", "", "we b"] {
            assert!(check_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_tail_ends_once_its_client_is_gone() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sink = ClientLines { tx };
        sink.line("one").unwrap();
        assert!(sink.flush().is_ok());
        assert_eq!(rx.try_recv().unwrap(), Bytes::from("{\"line\":\"one\"}\n"));
        drop(rx);
        assert_eq!(sink.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(sink.line("two").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
