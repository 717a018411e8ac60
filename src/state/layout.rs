//! Where everything lives under the slipway home directory. Paths are computed here and
//! nowhere else, so the README's layout section can be checked against one file.

use std::path::{Path, PathBuf};

use crate::ids::{AppName, ProcessType, ReleaseId};

/// The slipway home directory (`--home`, `SLIPWAY_HOME`, or a per-user data dir).
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root`; nothing is created yet.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The default home: `/var/lib/slipway` as root (as Dokku's /var/lib/dokku: app users must
    /// pass through every parent, and they cannot pass through `/root`); otherwise the per-user
    /// `$XDG_DATA_HOME/slipway`, else `~/.local/share/slipway`.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/slipway");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("slipway");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/var/lib"), PathBuf::from);
        home.join(".local/share/slipway")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Parent of every app directory.
    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("apps")
    }
    /// Parent of every app's root-only state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }
    /// The app's bare repository, which `git push` deploys through: `git/<app>.git`, root only
    /// (like `state/`), since its hook deploys.
    pub fn git_repo(&self, app: &AppName) -> PathBuf {
        self.root.join("git").join(format!("{app}.git"))
    }
    /// Everything one app owns.
    pub fn app(&self, app: &AppName) -> AppPaths {
        AppPaths { dir: self.apps_dir().join(app.as_str()), state: self.state_dir().join(app.as_str()) }
    }
}

/// The paths of one app, in two trees. `state/<app>` holds what only slipway may change
/// (settings, records, plans, status, pid and lock files, the mount's ext4 image): everything
/// slipway reads to decide what to run, as whom, or what to signal. `apps/<app>` holds what the
/// app's processes reach (releases, the mount, the workspace); as root its directories belong
/// to root with the app's group (mode 0750), and only the working directories, the mount's
/// contents and what the app adds to its `HOME` belong to the app's user. So no process of
/// the app can rewrite its own `run_as`, plant a plan, or swap a directory slipway works in.
#[derive(Debug, Clone)]
pub struct AppPaths {
    dir: PathBuf,
    state: PathBuf,
}

impl AppPaths {
    /// `apps/<app>`: root's with the app's group, mode 0750, when running as root.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `state/<app>`: root-only state.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }
    /// Held by the app's router while it lives.
    pub fn router_lock(&self) -> PathBuf {
        self.state.join("router.lock")
    }
    /// The router's pid, written once it listens.
    pub fn router_pid(&self) -> PathBuf {
        self.state.join("router.pid")
    }
    /// Taken by `git push` deploys for the whole pre-receive hook, so pushes take turns.
    pub fn push_lock(&self) -> PathBuf {
        self.state.join("push.lock")
    }
    /// The app's settings.
    pub fn record(&self) -> PathBuf {
        self.state.join("app.json")
    }
    /// The per-app deploy lock.
    pub fn lock(&self) -> PathBuf {
        self.state.join("lock")
    }
    /// One JSON record per release, kept after the release folder is gone.
    pub fn history_dir(&self) -> PathBuf {
        self.state.join("history")
    }
    /// The record of one release.
    pub fn history(&self, id: ReleaseId) -> PathBuf {
        self.history_dir().join(format!("{id}.json"))
    }
    /// Parent of the release folders.
    pub fn releases_dir(&self) -> PathBuf {
        self.dir.join("releases")
    }
    /// Parent of each release's root-only files (plan, status, pid and lock files).
    pub fn release_state_dir(&self) -> PathBuf {
        self.state.join("releases")
    }
    /// Per-process log files, shared across releases.
    pub fn logs_dir(&self) -> PathBuf {
        self.state.join("logs")
    }
    /// The log file of one process instance.
    pub fn log(&self, ptype: &ProcessType, index: u32) -> PathBuf {
        self.logs_dir().join(format!("{ptype}.{index}.log"))
    }
    /// The persistent filesystem: a directory, or the mount point of its ext4 image.
    pub fn mount_dir(&self) -> PathBuf {
        self.dir.join("mount")
    }
    /// The sparse ext4 image behind a hard-limited mount.
    pub fn mount_image(&self) -> PathBuf {
        self.state.join("mount.img")
    }
    /// The mount's settings.
    pub fn mount_record(&self) -> PathBuf {
        self.state.join("mount.json")
    }
    /// The workspace: a working copy beside a `mount` link, so `../mount` works there too.
    pub fn workspace_dir(&self) -> PathBuf {
        self.dir.join("workspace")
    }
    /// Where a release is extracted before it is handed to the app's user.
    pub fn staging_dir(&self) -> PathBuf {
        self.state.join("staging")
    }
    /// Root's directory holding the app's buildpack cache (`layers/`, the app's), kept
    /// across releases.
    pub fn build_cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }
    /// Root's store of sealed `launch` + `cache` layers (`<bp>/<layer>/vN`, read-only to the
    /// app), which releases reference instead of holding a copy.
    pub fn layer_store_dir(&self) -> PathBuf {
        self.dir.join("layers")
    }
    /// The folder of one release.
    pub fn release(&self, id: ReleaseId) -> ReleasePaths {
        ReleasePaths {
            dir: self.releases_dir().join(id.to_string()),
            state: self.release_state_dir().join(id.to_string()),
        }
    }
}

/// One release: its folder `apps/<app>/releases/<id>` (root's, mode 0750) holding `app/` (the
/// working directory, the app's), its sibling link `mount`, and `home/` (root's, sticky and
/// writable by the app's group) holding another `mount` link, so `../mount` and `~/mount` are
/// one directory and the app can swap neither; and its root-only files in
/// `state/<app>/releases/<id>`.
#[derive(Debug, Clone)]
pub struct ReleasePaths {
    dir: PathBuf,
    state: PathBuf,
}

impl ReleasePaths {
    /// `releases/<id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The app folder: the committed tree, and every process's working directory.
    pub fn app(&self) -> PathBuf {
        self.dir.join("app")
    }
    /// The release's buildpack layers (the app's): launch layers stay with the release.
    pub fn layers(&self) -> PathBuf {
        self.dir.join("layers")
    }
    /// Root's directory of the release's installed buildpacks, platform dir and launcher.
    pub fn cnb(&self) -> PathBuf {
        self.dir.join("cnb")
    }
    /// The launcher every process, script and one-off of a buildpack-built release runs
    /// through: it sets up the launch layers' environment as the app's user, then execs.
    pub fn launcher(&self) -> PathBuf {
        self.cnb().join("launcher")
    }
    /// `../mount` as seen from the app folder.
    pub fn mount_link(&self) -> PathBuf {
        self.dir.join("mount")
    }
    /// The processes' `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }
    /// `state/<app>/releases/<id>`: the release's root-only files.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }
    /// The sealed layers (`<bp>/<layer>/vN` in the app's layer store) the release runs from.
    pub fn layer_refs(&self) -> PathBuf {
        self.state.join("layers.json")
    }
    /// Held by the release's supervisor for as long as it lives.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.state.join("supervisor.lock")
    }
    /// The supervisor's pid, for signals.
    pub fn supervisor_pid(&self) -> PathBuf {
        self.state.join("supervisor.pid")
    }
    /// The supervisor's view of its processes, rewritten atomically on each change.
    pub fn status(&self) -> PathBuf {
        self.state.join("status.json")
    }
    /// The process group of a running predeploy or postdeploy, so that the script of a killed
    /// deploy can be found and stopped.
    pub fn script_pgid(&self) -> PathBuf {
        self.state.join("script.pgid")
    }
    /// The plan the supervisor runs.
    pub fn plan(&self) -> PathBuf {
        self.state.join("plan.json")
    }
    /// Which process types the supervisor is asked to restart (read on SIGUSR1).
    pub fn restart_request(&self) -> PathBuf {
        self.state.join("restart-request.json")
    }
}
