//! Runtimes execute deploy plans. The deploy flow (src/deploy.rs) is written once against the
//! [`Runtime`] trait; each backend decides what "build", "start" and "remove" mean for it.

pub mod docker;
pub mod kubernetes;
pub mod local;
mod log_sink;
mod reconcile;
pub mod registry_http;
#[cfg(test)]
mod registry_process;
pub mod swarm;

use std::time::Duration;

use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DeployPlan, ScriptSpec};
use crate::progress::Progress;
use crate::source::Repo;
use crate::state::{AppRecord, Home, RuntimeKind};
use crate::supervise::status::InstanceStatus;

pub use log_sink::{LogSink, StdoutLines};
pub use reconcile::{ReconcileError, Repairs, reconcile_all, reconcile_app};

/// A failure inside a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Local(#[from] local::LocalError),
    #[error(transparent)]
    Docker(Box<docker::DockerError>),
    #[error(transparent)]
    Kubernetes(Box<kubernetes::KubeError>),
    #[error(transparent)]
    Swarm(Box<swarm::SwarmError>),
}

impl From<docker::DockerError> for RuntimeError {
    fn from(e: docker::DockerError) -> Self {
        Self::Docker(Box::new(e))
    }
}

/// A deploy that failed before the switch. The running release was not touched.
#[derive(Debug, thiserror::Error)]
#[error("deploy of {app} {release} failed during {phase}; the running release is untouched")]
pub struct DeployError {
    pub app: AppName,
    pub release: ReleaseId,
    pub phase: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where a started release can be reached.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Started {
    pub web_port: Option<u16>,
}

/// A way of running releases.
pub trait Runtime {
    /// Step 1: a fresh release folder or image from exactly the plan's commit. A buildpack
    /// build adds the process types its buildpacks declared to `plan` (the Procfile's win).
    fn build(&self, plan: &mut DeployPlan, repo: &Repo, progress: &Progress) -> Result<(), RuntimeError>;
    /// Step 2: make `../mount` and `~/mount` reach the app's persistent filesystem; warnings
    /// go to `progress`.
    fn attach_mount(&self, plan: &DeployPlan, progress: &Progress) -> Result<(), RuntimeError>;
    /// Step 3 (and postdeploy): run a Bash script in the new release, output to `progress`.
    fn run_script(
        &self,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), RuntimeError>;
    /// Step 4: start every process type and wait until the release is healthy.
    fn start(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, RuntimeError>;
    /// Step 5, and the cleanup of a failed deploy: stop a release and discard it.
    fn remove(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), RuntimeError>;

    /// The processes of a release, for `ps`.
    fn processes(&self, app: &AppRecord, release: ReleaseId) -> Result<ProcessReport, RuntimeError>;
    /// Bring a release's instance counts to the app record's scale.
    fn apply_scale(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError>;
    /// Restart one type's processes, or (None) every process with fresh settings.
    fn restart(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), RuntimeError>;
    /// Stop a release's processes without discarding it.
    fn stop(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError>;
    /// Start a stopped release's processes.
    fn start_release(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError>;
    /// Write the last `lines` log lines of `process` (a type, `type.N`, or all) to `sink`, and
    /// keep writing new ones if `follow`, until the sink fails (its reader is gone).
    fn logs(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), RuntimeError>;
    /// Run a one-off command in a release, sharing the caller's terminal; its exit code.
    fn run_oneoff(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, RuntimeError>;
    /// Repair after a crash or reboot. The caller holds the app's lock.
    fn reconcile(&self, app: &AppRecord) -> Result<Repairs, RuntimeError>;
}

/// What `ps` shows of a release.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcessReport {
    /// Whether its processes are meant to be, and are, running.
    pub running: bool,
    pub instances: Vec<InstanceStatus>,
}

/// The runtime of an app, chosen by its record.
#[derive(Debug)]
pub enum AnyRuntime {
    Local(local::LocalRuntime),
    Docker(Box<docker::DockerRuntime>),
    Kubernetes(Box<kubernetes::KubernetesRuntime>),
    Swarm(Box<swarm::SwarmRuntime>),
}

impl AnyRuntime {
    /// The runtime for `kind`.
    pub fn for_kind(home: &Home, kind: RuntimeKind) -> Result<Self, RuntimeError> {
        match kind {
            RuntimeKind::Local => Ok(Self::Local(local::LocalRuntime::new(home.clone()))),
            RuntimeKind::Docker => Ok(Self::Docker(Box::new(docker::DockerRuntime::new(home.clone())?))),
            RuntimeKind::Kubernetes => {
                Ok(Self::Kubernetes(Box::new(kubernetes::KubernetesRuntime::new(home.clone())?)))
            }
            RuntimeKind::Swarm => Ok(Self::Swarm(Box::new(swarm::SwarmRuntime::new(home.clone())?))),
        }
    }

    /// The Docker engine that builds this runtime's images (and keeps their build cache), if
    /// it has one: the docker runtime itself, and the cluster runtimes, which build on this
    /// machine before they push.
    pub fn build_engine(&self) -> Option<&docker::DockerRuntime> {
        match self {
            Self::Local(_) => None,
            Self::Docker(r) => Some(r),
            Self::Kubernetes(r) => Some(r.build_engine()),
            Self::Swarm(r) => Some(r.build_engine()),
        }
    }
}

impl std::ops::Deref for AnyRuntime {
    type Target = dyn Runtime;
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Local(r) => r,
            Self::Docker(r) => &**r,
            Self::Kubernetes(r) => &**r,
            Self::Swarm(r) => &**r,
        }
    }
}
