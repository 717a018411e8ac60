//! The app's workspace: a working copy of its repository at the deployed commit, beside the
//! same persistent filesystem the app's processes use, as in Dash Enterprise. Deleting it
//! never touches the mount.
//!
//! ```text
//! apps/<app>/workspace/            root's, mode 0750, group: the app's
//! apps/<app>/workspace/app/        the working copy, the app's (bash starts here)
//! apps/<app>/workspace/mount      -> ../mount   (the app's persistent filesystem)
//! apps/<app>/workspace/home/       HOME: root's, sticky, writable by the app's group
//! apps/<app>/workspace/home/mount -> ../mount   (so ~/mount works; the app cannot swap it)
//! ```
//!
//! For a docker app the working copy is the same, given to the containers' user, and the
//! workspace is a container from the app's stack image holding it and the mount volume; see
//! [`crate::runtime::docker::workspace`].

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ids::{AppName, CommitSha};
use crate::runtime::RuntimeError;
use crate::runtime::docker::{self, DockerRuntime};
use crate::state::tree::{self, Access, TreeError};
use crate::state::{AppPaths, AppRecord, Home, RuntimeKind, StateError};
use crate::supervise::process::ProcessEnv;
use crate::supervise::reaper;

/// Failures of workspace commands.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("app {0} has no deployed release yet; deploy it first, then create its workspace")]
    NotDeployed(AppName),
    #[error("app {0} has no workspace; create it with `slipway workspace create {0}`")]
    Missing(AppName),
    #[error("git {what} failed for the workspace of {app}: {stderr}")]
    Git { app: AppName, what: &'static str, stderr: String },
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Mount(#[from] crate::mount::MountError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot start the command in the workspace of {app}: {why}")]
    Spawn { app: AppName, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io { path: path.to_owned(), source }
}

/// Where a workspace is and what it holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkspaceInfo {
    pub path: PathBuf,
    pub commit: CommitSha,
    pub mount_attached: bool,
}

/// How `create` went.
#[derive(Debug)]
pub enum Created {
    New(WorkspaceInfo),
    AlreadyThere(PathBuf),
}

/// Create the workspace of `app` at its current release's commit.
pub fn create(home: &Home, app: &AppName) -> Result<Created, WorkspaceError> {
    let record = home.load_app(app)?;
    let paths = home.app(app);
    let ws = paths.workspace_dir();
    if ws.join("app").is_dir() {
        if record.runtime == RuntimeKind::Docker {
            // Brings back a container lost to a failed create or a `docker rm`.
            container(home)?.workspace_up(&record, &ws.join("app"))?;
        }
        return Ok(Created::AlreadyThere(ws.join("app")));
    }
    let current = record.current.ok_or_else(|| WorkspaceError::NotDeployed(app.clone()))?;
    let release = home.load_release(app, current)?;
    // Clone where the app's user cannot interfere, then hand the finished tree over.
    let staging_root = paths.staging_dir();
    fs::create_dir_all(&staging_root).map_err(io(&staging_root))?;
    // state/ is root's alone (mode 0700), so a plain open is safe here.
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let staging_fd = rustix::fs::open(&staging_root, flags, rustix::fs::Mode::empty())
        .map_err(|e| io(&staging_root)(e.into()))?;
    let name = OsStr::new("workspace");
    let staging = staging_root.join(name);
    tree::remove_tree(&staging_fd, name, &staging)?;
    let user = record.run_as.as_ref();
    let ws_fd = tree::make_dir(&staging_fd, name, &staging, Access::AppReads, user)?;
    // HOME is root's and sticky, as in a release: the app cannot swap its `mount` link.
    tree::make_dir(&ws_fd, OsStr::new("home"), &staging.join("home"), Access::AppAdds, user)?;
    let clone_dir = staging.join("app");
    let mut clone = Command::new("git");
    // As in source.rs: the repository may belong to another user; we only read it.
    clone.arg("-c").arg(format!("safe.directory={}", release.repo.display()));
    clone.args(["clone", "--quiet", "--no-checkout"]).arg(&release.repo).arg(&clone_dir);
    git(app, "clone", &mut clone)?;
    let mut checkout = Command::new("git");
    checkout.arg("-C").arg(&clone_dir).args([
        "checkout",
        "--quiet",
        "-B",
        "workspace",
        release.commit.as_str(),
    ]);
    git(app, "checkout", &mut checkout)?;
    match record.runtime {
        RuntimeKind::Local => {
            if let Some(user) = user {
                user.chown_tree(&clone_dir).map_err(io(&clone_dir))?;
            }
        }
        RuntimeKind::Docker => docker::workspace::give_to_container_user(&staging).map_err(io(&staging))?,
    }
    let app_fd = tree::open(home.root(), paths.dir())?;
    tree::rename(&staging_fd, name, &app_fd, name, &ws)?;
    let mount_attached = match record.runtime {
        RuntimeKind::Local => attach(home, &paths)?,
        RuntimeKind::Docker => container(home)?.workspace_up(&record, &ws.join("app"))?,
    };
    Ok(Created::New(WorkspaceInfo { path: ws.join("app"), commit: release.commit, mount_attached }))
}

/// Make `../mount` and `~/mount` reach the mount if it is enabled (remounting it after a
/// reboot), or remove them if it is not. Returns whether it is attached. Both links sit in
/// root-owned directories opened without following a symlink; a link slipway did not make
/// is refused, never replaced.
pub fn attach(home: &Home, paths: &AppPaths) -> Result<bool, WorkspaceError> {
    let ws = paths.workspace_dir();
    let ws_fd = tree::open(home.root(), &ws)?;
    let home_fd = tree::child(&ws_fd, OsStr::new("home"), &ws.join("home"))?;
    let attached = crate::mount::attach(paths)?.is_some();
    let name = OsStr::new("mount");
    for (dir, at) in [(&ws_fd, ws.join("mount")), (&home_fd, ws.join("home/mount"))] {
        if attached {
            tree::replace_link(dir, name, Path::new("../mount"), &at)?;
        } else {
            tree::remove_link(dir, name, &at)?;
        }
    }
    Ok(attached)
}

/// The environment of a shell or command in the workspace.
pub fn env(home: &Home, app: &AppName) -> Result<ProcessEnv, WorkspaceError> {
    let record = home.load_app(app)?;
    let paths = home.app(app);
    let ws = paths.workspace_dir();
    if !ws.join("app").is_dir() {
        return Err(WorkspaceError::Missing(app.clone()));
    }
    attach(home, &paths)?;
    // The current release's launch environment (its layers' env, profile.d, bin/ on PATH),
    // set up by its launcher as the app's user.
    let launcher = record
        .current
        .and_then(|id| crate::runtime::local::load_plan(home, app, id).ok())
        .filter(crate::plan::DeployPlan::runs_launcher)
        .map(|plan| paths.release(plan.release).launcher());
    Ok(ProcessEnv {
        cwd: ws.join("app"),
        home: ws.join("home"),
        env: record.env,
        run_as: record.run_as,
        launcher,
    })
}

/// Run `script` with bash in the workspace, interactively when on a terminal; returns its exit
/// code (128 + signal when it was killed).
pub fn run(home: &Home, app: &AppName, script: &str) -> Result<i32, WorkspaceError> {
    use std::os::unix::process::ExitStatusExt;
    let record = home.load_app(app)?;
    if record.runtime == RuntimeKind::Docker {
        return run_in_container(home, &record, script);
    }
    let penv = env(home, app)?;
    let mut cmd = penv.interactive(script, &[]);
    // Nothing the command starts outlives it, even in a new session.
    reaper::become_subreaper();
    let since = reaper::ticks_now();
    let status = cmd.status();
    reaper::kill_children(Some(since), std::time::Duration::from_secs(5));
    let status = status
        .map_err(|e| WorkspaceError::Spawn { app: app.clone(), why: penv.explain_spawn_error(script, &e) })?;
    Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
}

fn run_in_container(home: &Home, record: &AppRecord, script: &str) -> Result<i32, WorkspaceError> {
    let working_copy = home.app(&record.name).workspace_dir().join("app");
    if !working_copy.is_dir() {
        return Err(WorkspaceError::Missing(record.name.clone()));
    }
    Ok(container(home)?.workspace_exec(record, &working_copy, script)?)
}

/// The runtime that keeps docker apps' workspace containers.
fn container(home: &Home) -> Result<DockerRuntime, WorkspaceError> {
    Ok(DockerRuntime::new(home.clone()).map_err(RuntimeError::from)?)
}

/// Remove the working copy; the mount and every file in it stay.
pub fn delete(home: &Home, app: &AppName) -> Result<bool, WorkspaceError> {
    let record = home.load_app(app)?;
    if record.runtime == RuntimeKind::Docker {
        // The container first: it holds the working copy; the volume it uses stays.
        container(home)?.workspace_remove(app)?;
    }
    let paths = home.app(app);
    let ws = paths.workspace_dir();
    if !ws.exists() {
        return Ok(false);
    }
    // Removed by descriptors, never following a link: the mount behind `mount` is untouched,
    // and so is anything an app's link points to.
    let app_fd = tree::open(home.root(), paths.dir())?;
    tree::remove_tree(&app_fd, OsStr::new("workspace"), &ws)?;
    Ok(true)
}

fn git(app: &AppName, what: &'static str, cmd: &mut Command) -> Result<(), WorkspaceError> {
    let out = cmd.output().map_err(|source| WorkspaceError::Io { path: PathBuf::from("git"), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(WorkspaceError::Git { app: app.clone(), what, stderr });
    }
    Ok(())
}
