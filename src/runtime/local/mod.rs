//! The local runtime: a release is a folder on this host and its processes are supervised
//! host processes. No Docker needed; this is the embedded default.
//!
//! ```text
//! apps/<app>/mount                 the persistent filesystem (the app's)
//! apps/<app>/releases/v3/          root's, mode 0750, group: the app's
//! apps/<app>/releases/v3/app/      the commit's tree, the app's; every process's working directory
//! apps/<app>/releases/v3/mount  -> ../../mount
//! apps/<app>/releases/v3/home/     HOME: root's, sticky, writable by the app's group
//! apps/<app>/releases/v3/home/mount -> ../mount   (so ~/mount works; the app cannot swap it)
//! apps/<app>/releases/v3/layers/   buildpack layers, the app's (see lifecycle.rs)
//! apps/<app>/releases/v3/cnb/      root's: installed buildpacks, launcher
//! apps/<app>/cache/layers/         cache-only layers (pip's cache), the app's, kept across releases
//! apps/<app>/layers/               root's store of sealed launch + cache layers (layer_store.rs)
//! state/<app>/releases/v3/         plan.json, status.json, supervisor.{pid,lock}, script.pgid
//! ```

mod build;
pub mod layer_store;
pub mod lifecycle;
mod ops;
mod script;
mod start;

use std::path::PathBuf;
use std::time::Duration;

use super::{LogSink, ProcessReport, Repairs, Runtime, RuntimeError, Started};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DeployPlan, ScriptSpec};
use crate::progress::Progress;
use crate::source::{Repo, SourceError};
use crate::state::{AppRecord, Home};
use crate::supervise::launch::{self, LaunchError};
use crate::supervise::process::ProcessEnv;

pub use build::attach_mount;
pub use ops::load_plan;
pub use script::ScriptError;
pub use script::{kill_leftover as kill_leftover_script, run as run_script};
pub use start::StartError;

/// Failures of the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Mount(#[from] crate::mount::MountError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Tree(#[from] crate::state::tree::TreeError),
    #[error("cannot start the command in app {app}: {why}")]
    Spawn { app: AppName, why: String },
    #[error(transparent)]
    Build(#[from] Box<lifecycle::HostBuildError>),
    #[error("no logs for {what} of app {app}; see `slipway ps {app}` for its processes")]
    NoLogs { app: AppName, what: String },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LocalError {
    let path = path.into();
    move |source| LocalError::Io { path, source }
}

/// Runs releases as supervised host processes.
#[derive(Debug, Clone)]
pub struct LocalRuntime {
    home: Home,
}

impl LocalRuntime {
    /// A local runtime over `home`.
    pub fn new(home: Home) -> Self {
        Self { home }
    }

    /// The environment every process, script and one-off command of a release gets.
    pub fn process_env(&self, plan: &DeployPlan) -> ProcessEnv {
        let paths = self.home.app(&plan.app).release(plan.release);
        ProcessEnv {
            cwd: paths.app(),
            home: paths.home(),
            env: plan.env.clone(),
            run_as: plan.run_as.clone(),
            launcher: plan.runs_launcher().then(|| paths.launcher()),
        }
    }
}

impl Runtime for LocalRuntime {
    fn build(&self, plan: &mut DeployPlan, repo: &Repo, progress: &Progress) -> Result<(), RuntimeError> {
        let terminal = progress.is_terminal();
        let mut sink = |line: &str| progress.detail(&crate::lifecycle::output::for_output(line, terminal));
        Ok(build::build(&self.home, plan, repo, &mut sink)?)
    }

    fn attach_mount(&self, plan: &DeployPlan, _progress: &Progress) -> Result<(), RuntimeError> {
        build::attach_mount(&self.home, &plan.app, plan.release)?;
        Ok(())
    }

    fn run_script(
        &self,
        plan: &DeployPlan,
        spec: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), RuntimeError> {
        let env = self.process_env(plan);
        let pgid_file = self.home.app(&plan.app).release(plan.release).script_pgid();
        let cg = crate::supervise::cgroup::script_path(self.home.root(), &plan.app, plan.release);
        Ok(script::run_in(&env, spec, Some(&pgid_file), cg.as_deref(), &mut |line| progress.detail(line))
            .map_err(LocalError::from)?)
    }

    fn start(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, RuntimeError> {
        Ok(start::start(&self.home, plan, progress)?)
    }

    fn processes(&self, app: &AppRecord, release: ReleaseId) -> Result<ProcessReport, RuntimeError> {
        Ok(self.processes_of(app, release))
    }

    fn apply_scale(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        let signalled = launch::signal(&self.home, &app.name, release, rustix::process::Signal::HUP);
        Ok(signalled.map_err(LocalError::from)?)
    }

    fn restart(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), RuntimeError> {
        Ok(self.restart_of(app, release, only)?)
    }

    fn stop(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        Ok(self.stop_of(app, release)?)
    }

    fn start_release(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        Ok(self.start_of(app, release)?)
    }

    fn logs(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), RuntimeError> {
        Ok(self.logs_of(&app.name, process, lines, follow, sink)?)
    }

    fn run_oneoff(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, RuntimeError> {
        Ok(self.run_oneoff_of(app, release, command)?)
    }

    fn reconcile(&self, app: &AppRecord) -> Result<Repairs, RuntimeError> {
        Ok(self.reconcile_of(app)?)
    }

    fn remove(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), RuntimeError> {
        Ok(self.discard(app, release, grace)?)
    }
}
