//! Export the mount as tar.gz and import an archive: the same code as `slipway mount export`
//! and `mount import` (staged, checked, then renamed into place), streamed over HTTP.

use std::io::{self, Write};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::TryStreamExt as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::apps::{app_name, blocking};
use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use crate::mount::MountFs;

/// `?path=`: the folder to export, or to import into [default: the root].
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct ArchiveQuery {
    pub path: Option<String>,
}

/// Hands the blocking exporter's bytes to the response body, 256 KiB at a time.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(256 * 1024)));
        // A client that hung up ends the export.
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The mount (or `?path=`) as a tar.gz download.
#[utoipa::path(get, path = "/api/apps/{app}/mount/export", tag = "files", params(("app" = String, Path), ArchiveQuery),
    responses((status = 200, content_type = "application/gzip", description = "tar.gz of the folder"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn export(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let app = app_name(&app)?;
    let path = q.path.unwrap_or_else(|| ".".to_owned());
    let name = app.to_string();
    // Open and check first, so a disabled mount or a wrong path is a JSON error, not a torn download.
    let (fs, path) = blocking(move || {
        st.home.load_app(&app)?;
        let fs = MountFs::open(&st.home.app(&app))?;
        if !fs.is_dir(&path)? {
            fs.ls(&path)?;
        }
        Ok((fs, path))
    })
    .await?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(256 * 1024) };
        let result = (|| {
            let mut gz = GzEncoder::new(&mut out, Compression::fast());
            fs.export(&path, &mut gz).map_err(io::Error::other)?;
            gz.finish()?.flush()
        })();
        if let Err(e) = result {
            // The status is sent already: cutting the stream short is how the client learns.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = channel_stream(rx);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    let disposition = format!("attachment; filename=\"{name}-mount.tar.gz\"");
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    Ok(resp)
}

/// The receiver's values as a stream, until every sender is gone.
pub fn channel_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Import a tar or tar.gz body into the mount (or `?path=`): staged, checked, then renamed into
/// place; an unsafe or broken archive changes nothing.
#[utoipa::path(post, path = "/api/apps/{app}/mount/import", tag = "files", params(("app" = String, Path), ArchiveQuery),
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn import(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<ArchiveQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    let dest = q.path.unwrap_or_else(|| ".".to_owned());
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    blocking(move || {
        st.home.load_app(&app)?;
        let fs = MountFs::open(&st.home.app(&app))?;
        let report = fs.import(io::BufReader::with_capacity(1 << 20, reader), &dest)?;
        Ok(Json(serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?))
    })
    .await
}
