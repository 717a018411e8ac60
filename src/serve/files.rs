//! The file explorer's routes over an app's mount. Every path goes through the mount's safe
//! resolver (`MountFs`, cap-std: nothing leaves the mount's root, not even through a symlink
//! the app planted). Uploads stream to a temp file beside the target and are renamed into
//! place; a cancelled or failed upload leaves nothing behind.

use std::collections::BTreeMap;
use std::io;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::{mpsc, oneshot};

use super::apps::{app_name, blocking};
use super::conditional::{self, Conditions};
use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use super::upload::{self, Fed};
use crate::mount::{self, EntryKind, MountFs, Version};

/// One entry of a directory listing.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FileEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
    /// The entry's `ETag`, quoted as in the header: send it back as `If-Match` to delete,
    /// rename or overwrite it only if nobody changed it meanwhile.
    pub etag: String,
}

/// A directory listing.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Listing {
    /// The directory, relative to the mount's root (`""` is the root).
    pub path: String,
    pub entries: Vec<FileEntry>,
}

/// `?mkdir=1`, `?rename_to=NEW_PATH`, `?recursive=1`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct FileQuery {
    /// POST: create the folder (and its missing parents).
    pub mkdir: Option<String>,
    /// POST: rename (or move) the file or folder to this path, relative to the mount's root.
    /// Its parent folder must exist; an existing file or folder there is never replaced (409).
    pub rename_to: Option<String>,
    /// DELETE: remove a folder and everything in it.
    pub recursive: Option<String>,
}

fn flag(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "yes"))
}

/// The `{app}` and `{*path}` of a files route (the root has no `path`).
fn parts(params: &BTreeMap<String, String>) -> Result<(crate::ids::AppName, String), ApiError> {
    let app = app_name(params.get("app").map_or("", String::as_str))?;
    let path = params.get("path").cloned().unwrap_or_default();
    let trimmed = path.trim_end_matches('/');
    // `validate_rel_path` refuses absolute paths, `..` and NUL; an empty path is the root.
    mount::validate_rel_path(if trimmed.is_empty() { "." } else { trimmed })?;
    Ok((app, trimmed.to_owned()))
}

fn open(st: &AppState, app: &crate::ids::AppName) -> Result<MountFs, ApiError> {
    st.home.load_app(app)?;
    Ok(MountFs::open(&st.home.app(app))?)
}

/// What a GET found: a folder's listing, or an open file.
enum Found {
    Listing(Listing, Option<Version>),
    File(std::fs::File, u64, Version, String),
}

/// A folder's listing as JSON, or a file's bytes (with `Range` support). Both carry an `ETag`;
/// `If-None-Match` answers 304, a failed `If-Match` 412, and a stale `If-Range` the whole file.
#[utoipa::path(get, path = "/api/apps/{app}/mount/files/{path}", tag = "files",
    params(("app" = String, Path), ("path" = String, Path, description = "relative to the mount's root; empty for the root"),
        ("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer: 304 if unchanged"),
        ("If-Match" = Option<String>, Header, description = "412 unless the ETag still matches"),
        ("If-Range" = Option<String>, Header, description = "honour Range only if the file's ETag is this one"),
        ("Range" = Option<String>, Header, description = "`bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses((status = 200, body = Listing, description = "a folder's listing, or a file's bytes (application/octet-stream); \
            the `ETag` header identifies this version", headers(("ETag" = String))),
        (status = 206, description = "the requested range"), (status = 304, description = "not modified since the If-None-Match ETag"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody, description = "`changed`: If-Match no longer matches"), (status = 416, body = ErrorBody)))]
pub async fn get_path(
    State(st): State<AppState>,
    Path(params): Path<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (app, path) = parts(&params)?;
    let conditions = Conditions::from_headers(&headers)?;
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
    let (range, if_range) = (text(header::RANGE), text(header::IF_RANGE));
    let found = blocking(move || {
        let fs = open(&st, &app)?;
        let shown = if path.is_empty() { "." } else { path.as_str() };
        if fs.is_dir(shown)? {
            let version = fs.version(shown)?;
            let entries = fs.ls(shown)?.into_iter().map(file_entry).collect();
            return Ok(Found::Listing(Listing { path, entries }, version));
        }
        let file = fs.open_file(&path)?;
        let meta = file.metadata().map_err(|e| ApiError::internal(format!("cannot read {path:?}: {e}")))?;
        Ok(Found::File(file, meta.len(), Version::of_std(&meta), path))
    })
    .await?;
    let (file, len, version, path) = match found {
        Found::Listing(listing, version) => {
            if let Some(v) = &version {
                if conditions.read_refused(v) {
                    return Err(conditional::precondition_failed(&listing.path));
                }
                if conditions.not_modified(v) {
                    return Ok(not_modified(v));
                }
            }
            let mut resp = Json(listing).into_response();
            if let Some(v) = &version {
                resp.headers_mut().insert(header::ETAG, conditional::etag_header(v));
            }
            return Ok(resp);
        }
        Found::File(file, len, version, path) => (file, len, version, path),
    };
    if conditions.read_refused(&version) {
        return Err(conditional::precondition_failed(&path));
    }
    if conditions.not_modified(&version) {
        return Ok(not_modified(&version));
    }
    let range = range.filter(|_| conditional::range_applies(if_range.as_deref(), &version));
    let (status, start, count) = match range.as_deref().map(|r| parse_range(r, len)) {
        None | Some(RangeAsked::Ignore) => (StatusCode::OK, 0, len),
        Some(RangeAsked::Part(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(RangeAsked::Unsatisfiable) => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("the range {:?} is outside the file's {len} bytes", range.unwrap_or_default()),
            )
            .into_response();
            resp.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{len}")));
            return Ok(resp);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    file.seek(io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::internal(format!("cannot seek: {e}")))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 256 * 1024);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, header_value(&count.to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, conditional::etag_header(&version));
    // The mount holds what the app wrote: never let a browser render it in the UI's origin.
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let name = path.rsplit('/').next().unwrap_or("file");
    h.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("attachment; filename*=UTF-8''{}", percent(name))),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, header_value(&format!("bytes {start}-{}/{len}", start + count - 1)));
    }
    Ok(resp)
}

fn file_entry(e: mount::Entry) -> FileEntry {
    FileEntry {
        name: e.name,
        kind: match e.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        }
        .to_owned(),
        size: e.size,
        modified: e.modified,
        etag: conditional::etag(&e.version),
    }
}

fn not_modified(v: &Version) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    resp.headers_mut().insert(header::ETAG, conditional::etag_header(v));
    resp
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// RFC 5987 percent-encoding of a file name.
fn percent(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsked {
    /// Serve the whole file (several ranges, or a header we do not read: RFC 9110 allows it).
    Ignore,
    /// Bytes `a..=b`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parse a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range. Pure.
pub fn parse_range(header: &str, len: u64) -> RangeAsked {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeAsked::Ignore };
    if spec.contains(',') {
        return RangeAsked::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAsked::Ignore };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeAsked::Ignore,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAsked::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => return RangeAsked::Ignore,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else { return RangeAsked::Ignore };
            let end = if b.is_empty() { Ok(u64::MAX) } else { b.parse::<u64>() };
            let Ok(end) = end else { return RangeAsked::Ignore };
            if end < start {
                return RangeAsked::Ignore;
            }
            Some((start, end.min(len.saturating_sub(1))))
        }
    };
    match parsed {
        Some((a, b)) if len > 0 && a < len && a <= b => RangeAsked::Part(a, b),
        _ => RangeAsked::Unsatisfiable,
    }
}

/// Upload the request body as the file at `path`; missing parent folders are created. The
/// body streams to a temp file beside the target, checked against the quota as it arrives,
/// and is renamed into place once complete and fsynced; a refused, failed or cancelled upload
/// leaves nothing. `If-Match` overwrites only the version the client saw, `If-None-Match: *`
/// only creates: either is checked before the body is read, and again at the rename.
#[utoipa::path(put, path = "/api/apps/{app}/mount/files/{path}", tag = "files",
    params(("app" = String, Path), ("path" = String, Path),
        ("If-Match" = Option<String>, Header, description = "the ETag of the file this upload replaces: 412 if it changed"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only; 412 if the file exists")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Object, description = "`{path, bytes, etag}`", headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 412, body = ErrorBody, description = "`changed`: the precondition failed; nothing was written"),
        (status = 413, body = ErrorBody, description = "quota_exceeded")))]
pub async fn put_file(
    State(st): State<AppState>,
    Path(params): Path<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (app, path) = parts(&params)?;
    if path.is_empty() {
        return Err(ApiError::bad_request("invalid_path", "give a file name after /mount/files/"));
    }
    let conditions = Conditions::from_headers(&headers)?;
    let len_hint = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::bad_request("bad_request", "the Content-Length header is not a number of bytes")
        })?),
    };
    let (tx, mut rx) = mpsc::channel(upload::QUEUE);
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let shown = path.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<mount::Put, ApiError> {
        let fs = open(&st, &app)?;
        let mut ready = Some(ready_tx);
        let put = fs.put_with(&path, len_hint, &conditions, |sink| {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            upload::drain(&mut rx, sink)
        })?;
        Ok(put)
    });
    // Nothing is read before the temp file is ready: a refused put (412, 413, a bad path)
    // answers at once, and a client waiting on `Expect: 100-continue` never sends the body.
    let fed = match ready_rx.await {
        Ok(()) => upload::feed(body, tx).await,
        Err(_) => Fed::WriterGone,
    };
    let put = writer.await?;
    if let Fed::Interrupted(why) = fed {
        return Err(ApiError::bad_request(
            "interrupted",
            format!("the upload of {shown:?} was cut short ({why}); nothing was written. Upload it again"),
        ));
    }
    let put = put?;
    let body =
        serde_json::json!({ "path": shown, "bytes": put.bytes, "etag": conditional::etag(&put.version) });
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    resp.headers_mut().insert(header::ETAG, conditional::etag_header(&put.version));
    Ok(resp)
}

/// `?mkdir=1`: create the folder and its missing parents (201 `{path}`); with
/// `If-None-Match: *`, only if nothing is there yet (412 otherwise).
/// `?rename_to=NEW_PATH`: rename or move the file or folder to `NEW_PATH` (200 `{path, renamed_to}`);
/// with `If-Match`, only if it is still the version the client saw.
#[utoipa::path(post, path = "/api/apps/{app}/mount/files/{path}", tag = "files",
    params(("app" = String, Path), ("path" = String, Path), FileQuery,
        ("If-Match" = Option<String>, Header, description = "rename: the ETag of the file or folder; 412 if it changed"),
        ("If-None-Match" = Option<String>, Header, description = "mkdir: `*` creates the folder only if nothing is there; 412 otherwise")),
    responses((status = 200, body = Object, description = "renamed: `{path, renamed_to}`"),
        (status = 201, body = Object, description = "folder created: `{path}`"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`exists`: the new name is taken"),
        (status = 412, body = ErrorBody, description = "`changed`: a precondition does not hold; nothing was renamed or created")))]
pub async fn post_path(
    State(st): State<AppState>,
    Path(params): Path<BTreeMap<String, String>>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (app, path) = parts(&params)?;
    let conditions = Conditions::from_headers(&headers)?;
    let mkdir = flag(q.mkdir.as_deref());
    if let Some(to) = q.rename_to {
        if mkdir {
            return Err(ApiError::bad_request(
                "bad_request",
                "give either ?mkdir=1 or ?rename_to=, not both",
            ));
        }
        if path.is_empty() {
            return Err(mount::MountError::RootRename.into());
        }
        let to = to.trim_end_matches('/').to_owned();
        return blocking(move || {
            open(&st, &app)?.rename_if(&path, &to, &conditions)?;
            Ok((StatusCode::OK, Json(serde_json::json!({ "path": path, "renamed_to": to }))))
        })
        .await;
    }
    if !mkdir {
        return Err(ApiError::bad_request(
            "bad_request",
            "POST creates folders (?mkdir=1) or renames (?rename_to=NEW_PATH); upload files with PUT",
        ));
    }
    if path.is_empty() {
        return Err(ApiError::bad_request("invalid_path", "give the new folder's name after /mount/files/"));
    }
    blocking(move || {
        open(&st, &app)?.mkdir_if(&path, &conditions)?;
        Ok((StatusCode::CREATED, Json(serde_json::json!({ "path": path }))))
    })
    .await
}

/// Delete a file, a symlink, an empty folder, or with `?recursive=1` a folder and its contents;
/// with `If-Match`, only if it is still the version the client saw.
#[utoipa::path(delete, path = "/api/apps/{app}/mount/files/{path}", tag = "files",
    params(("app" = String, Path), ("path" = String, Path), FileQuery,
        ("If-Match" = Option<String>, Header, description = "the ETag of the file or folder; 412 if it changed")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody, description = "`changed`: If-Match no longer matches; nothing was deleted")))]
pub async fn delete_path(
    State(st): State<AppState>,
    Path(params): Path<BTreeMap<String, String>>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (app, path) = parts(&params)?;
    let conditions = Conditions::from_headers(&headers)?;
    let recursive = flag(q.recursive.as_deref());
    blocking(move || {
        let fs = open(&st, &app)?;
        if path.is_empty() {
            return Err(mount::MountError::RootRemoval { app: app.to_string() }.into());
        }
        fs.rm_if(&path, recursive, &conditions).map_err(|e| match e {
            mount::MountError::IsDirectory { path, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "not_empty",
                format!("{path:?} is a folder with files in it; add ?recursive=1 to delete it and everything in it"),
            ),
            other => other.into(),
        })?;
        Ok(Json(serde_json::json!({ "deleted": path })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsked::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsked::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsked::Part(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeAsked::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsked::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsked::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeAsked::Ignore);
        assert_eq!(parse_range("bytes=x-1", 100), RangeAsked::Ignore);
        assert_eq!(parse_range("bytes=0-", 0), RangeAsked::Unsatisfiable);
    }
}
