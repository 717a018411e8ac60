//! The App Manager's process: the routes, the listener, and its lifecycle as a detached
//! service (`serve --detach`, `serve --stop`, started again by any command after a reboot
//! when `serve/serve.json` records it, like the routers).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use rustix::process::{Signal, kill_process};

use super::auth::FailureLimiter;
use super::tokens::TokenStore;
use crate::state::{FileLock, Home, atomic};

/// Failures starting or stopping the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}; is another server there? choose another with --listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("an App Manager of this home is already running (pid {pid}); `slipway serve --stop` stops it")]
    Running { pid: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the detached App Manager")]
    Spawn(#[source] std::io::Error),
    #[error(transparent)]
    Tokens(#[from] super::tokens::TokenError),
}

/// What the request handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub home: Home,
    pub tokens: TokenStore,
    pub limiter: Arc<FailureLimiter>,
    /// Cancelled when the server begins to stop: log tails end then.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Deploys and log tails each hold a blocking thread for as long as they run; these
    /// bound them, so that short requests (token checks, listings) always find one.
    pub long_ops: LongOps,
}

/// Permits for the long operations that hold a blocking thread.
#[derive(Debug, Clone)]
pub struct LongOps {
    pub deploys: Arc<tokio::sync::Semaphore>,
    pub tails: Arc<tokio::sync::Semaphore>,
}

/// At most this many deploys (running, or waiting for their app's lock) at once.
pub const MAX_DEPLOYS: usize = 16;
/// At most this many log tails open at once.
pub const MAX_TAILS: usize = 32;
/// Blocking threads: the long operations' plus as many again for everything else.
const BLOCKING_THREADS: usize = 2 * (MAX_DEPLOYS + MAX_TAILS);

impl Default for LongOps {
    fn default() -> Self {
        Self {
            deploys: Arc::new(tokio::sync::Semaphore::new(MAX_DEPLOYS)),
            tails: Arc::new(tokio::sync::Semaphore::new(MAX_TAILS)),
        }
    }
}

impl LongOps {
    /// A permit from `which`, or 429 saying what is full.
    pub fn take(
        which: &Arc<tokio::sync::Semaphore>,
        what: &str,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, super::errors::ApiError> {
        which.clone().try_acquire_owned().map_err(|_| {
            super::errors::ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many",
                format!("too many {what} at once on this server; wait for one to end, then retry"),
            )
        })
    }
}

/// `serve/` in the home: tokens, the service record, its lock, pid and log. Root only.
pub fn serve_dir(home: &Home) -> PathBuf {
    home.root().join("serve")
}

/// JSON bodies (scale, mount settings, deploy requests) are small; anything bigger is refused
/// with 413 before it is parsed. File uploads stream and are bounded by the quota instead.
const JSON_LIMIT: usize = 64 * 1024;

/// Every route. `/` and `/ui/*` answer without a token; everything else goes through
/// [`super::auth::require_token`].
pub fn router(state: AppState) -> Router {
    use super::{apps, archive, deploys, files, git_http, mount, openapi, stream};
    let files_route =
        get(files::get_path).put(files::put_file).post(files::post_path).delete(files::delete_path);
    let api = Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/session", post(apps::session))
        .route("/api/apps", get(apps::list))
        .route("/api/apps/{app}", get(apps::one))
        .route("/api/apps/{app}/releases", get(apps::releases))
        .route("/api/apps/{app}/ps", get(apps::ps))
        .route("/api/apps/{app}/ps/scale", post(apps::scale))
        .route("/api/apps/{app}/ps/restart", post(apps::restart))
        .route("/api/apps/{app}/deploys", post(deploys::deploy))
        .route("/api/apps/{app}/logs", get(stream::logs))
        .route("/api/apps/{app}/mount", get(mount::status).put(mount::update))
        .route("/api/apps/{app}/mount/files", files_route.clone())
        .route("/api/apps/{app}/mount/files/", files_route.clone())
        .route("/api/apps/{app}/mount/files/{*path}", files_route)
        .route("/api/apps/{app}/mount/export", get(archive::export))
        .route("/api/apps/{app}/mount/import", post(archive::import))
        .layer(axum::middleware::map_response(super::errors::json_rejections))
        .route("/git/{repo}/info/refs", get(git_http::info_refs))
        .route("/git/{repo}/git-upload-pack", post(git_http::upload_pack))
        .route("/git/{repo}/git-receive-pack", post(git_http::receive_pack))
        .fallback(|| async {
            super::errors::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see GET /api/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), super::auth::require_token));
    Router::new()
        .route("/", get(super::assets::index))
        .route("/ui/{name}", get(super::assets::asset))
        .merge(api)
        .with_state(state)
}

/// Serve in the foreground until SIGTERM or SIGINT. Prints the admin token if it was created
/// now. Exits with [`ServeError::Running`] if this home's server already runs.
pub fn run(home: &Home, addr: SocketAddr) -> Result<(), ServeError> {
    let tokens = TokenStore::new(home);
    announce_admin(&tokens)?;
    let dir = serve_dir(home);
    let io = |action, path: &std::path::Path| {
        let path = path.to_owned();
        move |source| ServeError::Io { action, path, source }
    };
    let lock_path = dir.join("serve.lock");
    let Some(_lock) = FileLock::claim(&lock_path, crate::detached::CLAIM_PATIENCE)
        .map_err(|e| io("lock", &lock_path)(std::io::Error::other(e)))?
    else {
        let pid = std::fs::read_to_string(dir.join("serve.pid")).unwrap_or_default().trim().to_owned();
        return Err(ServeError::Running { pid });
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(io("start", &dir))?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(io("listen on", &dir))?;
        let pid_path = dir.join("serve.pid");
        atomic::replace_volatile(&pid_path, std::process::id().to_string().as_bytes())
            .map_err(io("write", &pid_path))?;
        eprintln!("-----> App Manager listening on http://{bound}/");
        // Deploys run in this process beside other requests' children: a script's sweep must
        // take only the script's own.
        crate::supervise::reaper::share_process();
        // Supervisors that in-process deploys started exit when their release retires, as
        // do those of pushes, adopted by this process once it is a subreaper (a script ran).
        tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                crate::detached::reap_exited();
                crate::supervise::reaper::reap_adopted();
            }
        });
        // Every command repairs what a reboot left; the server is such a command too.
        tokio::task::spawn_blocking({
            let home = home.clone();
            move || crate::runtime::reconcile_all(&home, None)
        });
        let stopping = tokio_util::sync::CancellationToken::new();
        let state = AppState {
            home: home.clone(),
            tokens,
            limiter: Arc::default(),
            stopping: stopping.clone(),
            long_ops: LongOps::default(),
        };
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io("handle signals in", &dir))?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stopping.cancel();
        };
        let served = axum::serve(listener, app).with_graceful_shutdown(stop).await;
        let _ = std::fs::remove_file(&pid_path);
        served.map_err(io("serve on", &dir))
    })?;
    // Streams (log tails) may hold tasks open; do not wait for them past the shutdown.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn announce_admin(tokens: &TokenStore) -> Result<(), ServeError> {
    let (token, created) = tokens.ensure_admin()?;
    if created {
        eprintln!("-----> Created the admin token (shown once; `slipway tokens show-admin` shows it again):");
        eprintln!("       {token}");
    }
    Ok(())
}

/// The detached service's record: where it listens. Present while it should run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeRecord {
    listen: SocketAddr,
}

fn record_path(home: &Home) -> PathBuf {
    serve_dir(home).join("serve.json")
}

/// Whether this home's server is alive.
pub fn is_running(home: &Home) -> bool {
    FileLock::is_held(&serve_dir(home).join("serve.lock"))
}

/// `serve --detach`: record the service and start it in its own session.
pub fn detach(home: &Home, addr: SocketAddr) -> Result<(), ServeError> {
    let tokens = TokenStore::new(home);
    announce_admin(&tokens)?;
    if is_running(home) {
        let pid =
            std::fs::read_to_string(serve_dir(home).join("serve.pid")).unwrap_or_default().trim().to_owned();
        return Err(ServeError::Running { pid });
    }
    crate::router::check_free(addr)
        .map_err(|e| ServeError::Bind { addr, source: std::io::Error::other(e) })?;
    let path = record_path(home);
    atomic::write_json(&path, &ServeRecord { listen: addr }).map_err(|source| ServeError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    spawn(home, addr)
}

fn spawn(home: &Home, addr: SocketAddr) -> Result<(), ServeError> {
    let dir = serve_dir(home);
    let args: Vec<OsString> = vec!["serve".into(), "--listen".into(), addr.to_string().into()];
    let spawned = crate::detached::spawn(home.root(), &args, &dir.join("serve.log"), |pid| {
        is_running(home) && crate::detached::read_pid(&dir.join("serve.pid")) == Some(pid)
    });
    match spawned {
        Err(_) if is_running(home) => Ok(()),
        r => r.map_err(ServeError::Spawn),
    }
}

/// `serve --stop`: forget the service and stop it (SIGTERM, then SIGKILL after 5 s). Returns
/// whether one was running.
pub fn stop(home: &Home) -> Result<bool, ServeError> {
    let dir = serve_dir(home);
    let path = record_path(home);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ServeError::Io { action: "remove", path, source }),
    }
    let Some(pid) = crate::detached::read_pid(&dir.join("serve.pid")) else { return Ok(false) };
    if !is_running(home) {
        return Ok(false);
    }
    let _ = kill_process(pid, Signal::TERM);
    let lock = dir.join("serve.lock");
    if !FileLock::wait_free(&lock, Duration::from_secs(5)) {
        let _ = kill_process(pid, Signal::KILL);
        FileLock::wait_free(&lock, Duration::from_secs(1));
    }
    Ok(true)
}

/// After a reboot or a kill, the recorded service comes back (every command calls this).
pub fn ensure_running(home: &Home) {
    let Ok(bytes) = std::fs::read(record_path(home)) else { return };
    let Ok(record) = serde_json::from_slice::<ServeRecord>(&bytes) else {
        tracing::warn!("the App Manager record {} is corrupt", record_path(home).display());
        return;
    };
    if is_running(home) {
        return;
    }
    if let Err(e) = spawn(home, record.listen) {
        tracing::warn!(error = %e, "cannot start the App Manager again");
    }
}
