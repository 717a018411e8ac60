//! Starting, signalling and stopping a release's supervisor from the CLI. The supervisor is a
//! new session (setsid), so it and its processes outlive the command that started it.

use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

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
    if signal_supervisor(&paths, signal) {
        Ok(())
    } else {
        Err(LaunchError::NotRunning { app: app.clone(), release })
    }
}

/// Ask the supervisor to restart `only` (or every type).
pub fn request_restart(
    home: &Home,
    app: &AppName,
    release: ReleaseId,
    only: Option<&ProcessType>,
) -> Result<(), LaunchError> {
    let path = home.app(app).release(release).restart_request();
    crate::state::atomic::write_json(&path, &only).map_err(|source| LaunchError::Write { path, source })?;
    signal(home, app, release, Signal::USR1)
}

/// Stop the supervisor and its processes: SIGTERM, which it turns into a graceful stop of each
/// process group; after `grace` plus a margin, SIGKILL it (its processes die with it:
/// `PR_SET_PDEATHSIG`).
pub fn stop(home: &Home, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), LaunchError> {
    let paths = home.app(app).release(release);
    let stopped = stop_supervisor(&paths, grace);
    // Whatever is left in the release's cgroup (all of it, if the supervisor was killed with
    // -9 and its subreaper with it) goes too.
    if let Some(cg) = super::cgroup::path(home.root(), app, release) {
        super::cgroup::remove(&cg);
    }
    if stopped || !is_running(&paths) {
        return Ok(());
    }
    Err(LaunchError::StopTimeout { app: app.clone(), release, secs: grace.as_secs() + 5 })
}

/// SIGTERM, `grace` plus a margin, then SIGKILL; whether the supervisor is gone.
fn stop_supervisor(paths: &ReleasePaths, grace: Duration) -> bool {
    if !is_running(paths) {
        return true;
    }
    signal_supervisor(paths, Signal::TERM);
    // The supervisor lets go of its lock as it exits; a deploy's retire step waits on this.
    if FileLock::wait_free(&paths.supervisor_lock(), grace + Duration::from_secs(5)) {
        return true;
    }
    signal_supervisor(paths, Signal::KILL);
    FileLock::wait_free(&paths.supervisor_lock(), Duration::from_secs(2))
}

/// Signal the live supervisor of `paths`. Its pid file is root's, but a pid can be reused once
/// its process is gone: so the process is pinned with a pidfd first, and signalled only if the
/// release's supervisor lock is still held and the pid file still names it. The pidfd makes
/// the check and the signal concern one and the same process.
fn signal_supervisor(paths: &ReleasePaths, signal: Signal) -> bool {
    let Some(pid) = read_pid(paths) else { return false };
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else { return false };
    if !is_running(paths) || read_pid(paths) != Some(pid) {
        return false;
    }
    pidfd_send_signal(&pidfd, signal).is_ok()
}

fn read_pid(paths: &ReleasePaths) -> Option<Pid> {
    crate::detached::read_pid(&paths.supervisor_pid())
}
