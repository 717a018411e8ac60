//! The Persistent Filesystem tab: status, and "Edit Persistent Filesystem" (enable with a
//! size, change the size, disable). Disabling deletes every file, so it needs the app's name
//! typed back (`{"confirm": "<app>"}`), exactly as `slipway mount disable --confirm`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::apps::{app_name, blocking};
use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use crate::mount::{self, DisableOutcome, Resized};
use crate::state::Wait;

/// The mount's state: enabled, mode (hard or soft), limit, usage (`mount status --json`).
#[utoipa::path(get, path = "/api/apps/{app}/mount", tag = "mount", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn status(State(st): State<AppState>, Path(app): Path<String>) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    blocking(move || {
        st.home.load_app(&app)?;
        let s = mount::status(&st.home.app(&app))?;
        Ok(Json(serde_json::to_value(s).map_err(|e| ApiError::internal(e.to_string()))?))
    })
    .await
}

/// A size: bytes as a number, or text such as `"256M"`, `"1.5G"`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// `PUT /api/apps/{app}/mount`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    pub enabled: bool,
    /// The limit when enabling or resizing [default when enabling: 1G].
    pub size: Option<Size>,
    /// The app's name, required to disable (every file is deleted).
    pub confirm: Option<String>,
}

/// Enable, resize or disable the persistent filesystem. Takes the app's lock.
#[utoipa::path(put, path = "/api/apps/{app}/mount", tag = "mount", params(("app" = String, Path)),
    request_body = MountRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 428, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Json(req): Json<MountRequest>,
) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    let size = match req.size.as_ref() {
        None => None,
        Some(Size::Bytes(b)) => Some(*b),
        Some(Size::Text(t)) => {
            Some(mount::parse_size(t).map_err(|e| ApiError::bad_request("bad_size", e.to_string()))?)
        }
    };
    blocking(move || {
        let home = &st.home;
        let record = home.load_app(&app)?;
        let paths = home.app(&app);
        let current = mount::settings(&paths)?.filter(|s| s.enabled);
        if !req.enabled {
            if req.size.is_some() {
                return Err(ApiError::bad_request("bad_request", "a size means nothing when disabling; drop it"));
            }
            if current.is_some() {
                let doomed = mount::disable_preview(&paths)?;
                if req.confirm.as_deref() != Some(app.as_str()) {
                    return Err(ApiError::new(
                        StatusCode::PRECONDITION_REQUIRED,
                        "confirm_required",
                        format!(
                            "disabling deletes every file in the persistent filesystem of app {app}, irrecoverably: \
                             {} files, {} directories, {}; nothing was deleted. Export it first \
                             (GET /api/apps/{app}/mount/export), then send {{\"enabled\": false, \"confirm\": \"{app}\"}}",
                            doomed.files,
                            doomed.dirs,
                            mount::format_size(doomed.bytes)
                        ),
                    ));
                }
            }
            let _lock = home.lock_app(&app, Wait::Yes, || {})?;
            let deleted = match mount::disable(&paths)? {
                DisableOutcome::Disabled(gone) => serde_json::json!({ "files": gone.files, "bytes": gone.bytes }),
                DisableOutcome::AlreadyDisabled => serde_json::json!({ "files": 0, "bytes": 0 }),
            };
            return Ok(Json(serde_json::json!({ "enabled": false, "deleted": deleted })));
        }
        let _lock = home.lock_app(&app, Wait::Yes, || {})?;
        match (current, size) {
            (Some(cur), Some(new)) if new != cur.limit_bytes => match mount::set_limit(&paths, new, false)? {
                Resized::Done => {}
                Resized::NeedsStop(_) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "needs_stop",
                        format!(
                            "this resize needs the filesystem unmounted, which stops the app's processes; nothing \
                             changed. Run `slipway mount enable {app} --size {} --restart`",
                            mount::size_arg_up(new)
                        ),
                    ));
                }
            },
            (Some(_), _) => {}
            (None, size) => {
                mount::enable(&paths, size.unwrap_or(mount::DEFAULT_LIMIT), record.run_as.as_ref())?;
            }
        }
        let s = mount::status(&paths)?;
        Ok(Json(serde_json::to_value(s).map_err(|e| ApiError::internal(e.to_string()))?))
    })
    .await
}
