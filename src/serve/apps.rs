//! Apps, releases and processes: the same library calls as `apps info`, `releases` and `ps`.
//! Changes (scale, restart) take the app's lock, as the CLI does.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::errors::{ApiError, ErrorBody};
use super::server::AppState;
use super::tokens::Principal;
use crate::ids::{AppName, ProcessType};
use crate::runtime::AnyRuntime;
use crate::state::{AppRecord, Home, Wait};

/// Who the token is: what `POST /api/session` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    /// `admin` or `app`.
    pub kind: &'static str,
    /// The one app an app token reaches.
    pub app: Option<String>,
}

/// One app as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AppView {
    pub name: String,
    /// `local` or `docker`.
    pub runtime: String,
    /// The current release, e.g. `v3`.
    pub current: Option<String>,
    /// The current release's commit.
    pub commit: Option<String>,
    pub stopped: bool,
    /// The app's stable address.
    pub url: Option<String>,
    /// Whether the current release's processes run, and each instance's state.
    #[schema(value_type = Object)]
    pub processes: Value,
    /// The persistent filesystem: enabled, mode, limit and usage.
    #[schema(value_type = Object)]
    pub mount: Value,
}

/// Check the token: which principal it is.
#[utoipa::path(post, path = "/api/session", tag = "auth",
    responses((status = 200, body = Session), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn session(Extension(who): Extension<Principal>) -> Json<Session> {
    Json(match who {
        Principal::Admin => Session { kind: "admin", app: None },
        Principal::App(a) => Session { kind: "app", app: Some(a.to_string()) },
    })
}

/// Parse the `{app}` of a path.
pub fn app_name(raw: &str) -> Result<AppName, ApiError> {
    raw.parse().map_err(|e| ApiError::bad_request("invalid_app", format!("{e}")))
}

/// Run blocking library code off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

fn view(home: &Home, record: &AppRecord) -> AppView {
    let commit =
        record.current.and_then(|c| home.load_release(&record.name, c).ok()).map(|r| r.commit.to_string());
    let processes =
        processes_json(home, record).unwrap_or_else(|e| serde_json::json!({ "error": e.message }));
    let mount = match crate::mount::status(&home.app(&record.name)) {
        Ok(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Err(e) => serde_json::json!({ "enabled": false, "error": super::errors::chain(&e) }),
    };
    AppView {
        name: record.name.to_string(),
        runtime: serde_json::to_value(record.runtime)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        current: record.current.map(|c| c.to_string()),
        commit,
        stopped: record.stopped,
        url: record.listen.map(|l| format!("http://{l}/")),
        processes,
        mount,
    }
}

fn processes_json(home: &Home, record: &AppRecord) -> Result<Value, ApiError> {
    let Some(current) = record.current else {
        return Ok(serde_json::json!({ "release": null, "running": false, "instances": [] }));
    };
    let report = AnyRuntime::for_kind(home, record.runtime)?.processes(record, current)?;
    let now = crate::state::now_unix().saturating_mul(1000);
    let instances: Vec<Value> = report
        .instances
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
            v["name"] = Value::String(i.name());
            v["uptime_secs"] = i
                .started_at_ms
                .filter(|_| i.pid.is_some())
                .map_or(Value::Null, |t| Value::from(now.saturating_sub(t) / 1000));
            v
        })
        .collect();
    Ok(
        serde_json::json!({ "release": current.to_string(), "running": report.running, "instances": instances }),
    )
}

/// Every app the token reaches, with its release, processes, URL and mount usage.
#[utoipa::path(get, path = "/api/apps", tag = "apps",
    responses((status = 200, body = [AppView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    blocking(move || {
        let apps = st.home.list_apps()?;
        let views = apps
            .iter()
            .filter(|a| who.reaches(a.as_str()))
            .filter_map(|a| st.home.load_app(a).ok())
            .map(|r| view(&st.home, &r))
            .collect();
        Ok(Json(views))
    })
    .await
}

/// One app.
#[utoipa::path(get, path = "/api/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = AppView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn one(State(st): State<AppState>, Path(app): Path<String>) -> Result<Json<AppView>, ApiError> {
    let app = app_name(&app)?;
    blocking(move || Ok(Json(view(&st.home, &st.home.load_app(&app)?)))).await
}

/// The release history, newest first, with phase durations.
#[utoipa::path(get, path = "/api/apps/{app}/releases", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = [Object]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn releases(State(st): State<AppState>, Path(app): Path<String>) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    blocking(move || {
        st.home.load_app(&app)?;
        let mut releases = st.home.list_releases(&app)?;
        releases.reverse();
        Ok(Json(serde_json::to_value(releases).map_err(|e| ApiError::internal(e.to_string()))?))
    })
    .await
}

/// The current release's processes.
#[utoipa::path(get, path = "/api/apps/{app}/ps", tag = "processes", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn ps(State(st): State<AppState>, Path(app): Path<String>) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    blocking(move || processes_json(&st.home, &st.home.load_app(&app)?).map(Json)).await
}

/// `{"counts": {"web": 2, "worker": 1}}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// Instances per process type, 0 to 100.
    pub counts: std::collections::BTreeMap<String, u32>,
}

/// `{"type": "worker"}` restarts one type; `{}` every process.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    #[serde(rename = "type")]
    pub ptype: Option<String>,
}

fn check_types(home: &Home, record: &AppRecord, types: &[ProcessType]) -> Result<(), ApiError> {
    let Some(current) = record.current else { return Ok(()) };
    let known = home.load_release(&record.name, current)?.process_types;
    if let Some(t) = types.iter().find(|t| !known.contains(t)) {
        let known: Vec<String> = known.iter().map(ToString::to_string).collect();
        return Err(ApiError::bad_request(
            "unknown_type",
            format!("{} has no process type {t}; its Procfile defines {}", record.name, known.join(", ")),
        ));
    }
    Ok(())
}

/// Set instance counts, as `slipway ps scale APP web=2`.
#[utoipa::path(post, path = "/api/apps/{app}/ps/scale", tag = "processes", params(("app" = String, Path)),
    request_body = ScaleRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn scale(
    State(st): State<AppState>,
    Path(app): Path<String>,
    Json(req): Json<ScaleRequest>,
) -> Result<Json<Value>, ApiError> {
    let app = app_name(&app)?;
    let mut parsed = Vec::new();
    for (t, n) in &req.counts {
        let t: ProcessType = t.parse().map_err(|e| ApiError::bad_request("invalid_type", format!("{e}")))?;
        if *n > 100 {
            return Err(ApiError::bad_request(
                "bad_count",
                format!("{t}={n}: at most 100 instances per type"),
            ));
        }
        parsed.push((t, *n));
    }
    if parsed.is_empty() {
        return Err(ApiError::bad_request(
            "empty",
            "give at least one count, e.g. {\"counts\": {\"web\": 2}}",
        ));
    }
    blocking(move || {
        let home = &st.home;
        let _lock = home.lock_app(&app, Wait::Yes, || {})?;
        let mut record = home.load_app(&app)?;
        let types: Vec<ProcessType> = parsed.iter().map(|(t, _)| t.clone()).collect();
        check_types(home, &record, &types)?;
        for (t, n) in &parsed {
            record.scale.insert(t.clone(), *n);
        }
        home.save_app(&record)?;
        if let Some(current) = record.current.filter(|_| !record.stopped) {
            AnyRuntime::for_kind(home, record.runtime)?.apply_scale(&record, current)?;
        }
        Ok(Json(serde_json::to_value(&record.scale).unwrap_or(Value::Null)))
    })
    .await
}

/// Restart one process type or every process, as `slipway ps restart`.
#[utoipa::path(post, path = "/api/apps/{app}/ps/restart", tag = "processes", params(("app" = String, Path)),
    request_body = RestartRequest,
    responses((status = 202, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn restart(
    State(st): State<AppState>,
    Path(app): Path<String>,
    body: Option<Json<RestartRequest>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = app_name(&app)?;
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let only: Option<ProcessType> = req
        .ptype
        .map(|t| t.parse().map_err(|e| ApiError::bad_request("invalid_type", format!("{e}"))))
        .transpose()?;
    blocking(move || {
        let home = &st.home;
        let _lock = home.lock_app(&app, Wait::Yes, || {})?;
        let record = home.load_app(&app)?;
        let Some(current) = record.current.filter(|_| !record.stopped) else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_running",
                format!("{app} is not running; nothing to restart"),
            ));
        };
        if let Some(t) = &only {
            check_types(home, &record, std::slice::from_ref(t))?;
        }
        AnyRuntime::for_kind(home, record.runtime)?.restart(&record, current, only.as_ref())?;
        let mut record = home.load_app(&app)?;
        refresh_route(home, &mut record)?;
        Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "restarting": only.map_or("all".to_owned(), |t| t.to_string()) })),
        ))
    })
    .await
}

/// Point the router at web.1's port again if a restart moved it (as `ps restart` does).
fn refresh_route(home: &Home, record: &mut AppRecord) -> Result<(), ApiError> {
    let Some(current) = record.current else { return Ok(()) };
    let report = AnyRuntime::for_kind(home, record.runtime)?.processes(record, current)?;
    let port = report.instances.iter().find(|i| i.ptype.is_web() && i.index == 1).and_then(|i| i.port);
    if port.is_some() && port != record.web_port {
        record.web_port = port;
        home.save_app(record)?;
    }
    Ok(())
}
