//! Starting, signalling and stopping a release's supervisor from the CLI. The supervisor is a
//! new session (setsid), so it and its processes outlive the command that started it.

use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use super::status::SupervisorStatus;
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::state::{FileLock, Home, ReleasePaths};

/// Failures controlling a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start the supervisor of release {release} of app {app}")]
    Spawn {
        app: AppName,
        release: ReleaseId,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor of release {release} of app {app} did not stop within {secs} s")]
    StopTimeout { app: AppName, release: ReleaseId, secs: u64 },
    #[error(
        "the supervisor of release {release} of app {app} is not running; start it with `slipway ps start {app}`"
    )]
    NotRunning { app: AppName, release: ReleaseId },
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether the supervisor of this release is alive (it holds its lock while it lives).
pub fn is_running(paths: &ReleasePaths) -> bool {
    FileLock::is_held(&paths.supervisor_lock())
}

/// Start the supervisor of `release`, detached. Returns once it holds its lock.
pub fn start(home: &Home, app: &AppName, release: ReleaseId) -> Result<(), LaunchError> {
    let paths = home.app(app).release(release);
    if is_running(&paths) {
        return Ok(());
    }
    let log_path = home.app(app).logs_dir().join("supervisor.log");
    let args: Vec<std::ffi::OsString> =
        vec!["__supervise".into(), app.as_str().into(), release.to_string().into()];
    crate::detached::spawn(home.root(), &args, &log_path, |pid| {
        is_running(&paths) && read_pid(&paths) == Some(pid)
    })
    .map_err(|source| LaunchError::Spawn { app: app.clone(), release, source })
}

/// Send `signal` to the supervisor of this release.
pub fn signal(home: &Home, app: &AppName, release: ReleaseId, signal: Signal) -> Result<(), LaunchError> {
    let paths = home.app(app).release(release);
    let not_running = || LaunchError::NotRunning { app: app.clone(), release };
    if !is_running(&paths) {
        return Err(not_running());
    }
    let pid = read_pid(&paths).ok_or_else(not_running)?;
    kill_process(pid, signal).map_err(|_| not_running())
}

/// Ask the supervisor to restart `only` (or every type).
pub fn request_restart(
    home: &Home,
    app: &AppName,
    release: ReleaseId,
    only: Option<&ProcessType>,
) -> Result<(), LaunchError> {
    let path = home.app(app).release(release).dir().join(super::RESTART_REQUEST);
    crate::state::atomic::write_json(&path, &only).map_err(|source| LaunchError::Write { path, source })?;
    signal(home, app, release, Signal::USR1)
}

/// Stop the supervisor and its processes: SIGTERM, which it turns into a graceful stop of each
/// process group; after `grace` plus a margin, SIGKILL it and every group it recorded.
pub fn stop(home: &Home, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), LaunchError> {
    let paths = home.app(app).release(release);
    if !is_running(&paths) {
        kill_recorded_groups(&paths);
        return Ok(());
    }
    if let Some(pid) = read_pid(&paths) {
        let _ = kill_process(pid, Signal::TERM);
    }
    // The supervisor lets go of its lock as it exits; a deploy's retire step waits on this.
    if FileLock::wait_free(&paths.supervisor_lock(), grace + Duration::from_secs(5)) {
        return Ok(());
    }
    if let Some(pid) = read_pid(&paths) {
        let _ = kill_process(pid, Signal::KILL);
    }
    kill_recorded_groups(&paths);
    if is_running(&paths) {
        return Err(LaunchError::StopTimeout { app: app.clone(), release, secs: grace.as_secs() + 5 });
    }
    Ok(())
}

fn kill_recorded_groups(paths: &ReleasePaths) {
    if let Some(st) = SupervisorStatus::read(&paths.status()) {
        for pid in st.instances.iter().filter_map(|i| i.pid) {
            super::process::signal_group(pid, Signal::KILL);
        }
    }
}

fn read_pid(paths: &ReleasePaths) -> Option<Pid> {
    crate::detached::read_pid(&paths.supervisor_pid())
}
