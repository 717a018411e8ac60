//! [`KubernetesRuntime`]: the deploy steps of [`Runtime`] on a cluster.
//!
//! - build: the docker runtime builds the image on the local engine; it is tagged
//!   `<registry>/slipway/<app>:<release>` and pushed (without a registry, the cluster must have
//!   the local tag: `kind load docker-image`, `k3s ctr images import`);
//! - attach_mount: the claim; run_script: a Job, waited for, its log streamed;
//! - start: the Deployments and the web Service, once the Job succeeded, waited for until ready;
//! - remove: the release's Jobs and image tags; a release whose rollout failed puts the
//!   current release's Deployments back.
//!
//! The image reference and the applied manifests are kept in the root-only
//! `state/<app>/kubernetes/<release>.json`, for scale, restart, ps, logs and rollbacks.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::cluster::{Cluster, ClusterError};
use super::kubeconfig::{self, KubeconfigError};
use super::render::{self, ImageRef, Manifests, RenderError, RenderInput, ScriptRole};
use super::settings::{self, AccessMode, KubeSettings, SettingsError};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DeployPlan, ScriptSpec};
use crate::progress::Progress;
use crate::runtime::docker::{self, DockerRuntime, labels};
use crate::runtime::{LogSink, ProcessReport, Repairs, Runtime, RuntimeError, Started};
use crate::source::Repo;
use crate::state::{AppRecord, Home, atomic};

/// How often Job and Deployment status is read.
const POLL: Duration = Duration::from_secs(1);
/// Time for a Job's pod to be scheduled and its image pulled, on top of the script's timeout.
pub(super) const SCHEDULE_SLACK: Duration = Duration::from_secs(120);

/// Failures of the Kubernetes runtime.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Kubeconfig(Box<KubeconfigError>),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    #[error(transparent)]
    Connect(#[from] docker::ConnectError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Mount(#[from] crate::mount::MountError),
    #[error("cannot {action} image {image} on the local Docker engine")]
    Engine {
        action: &'static str,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "cannot push {image}: {message}; check that the registry is reachable from this machine and accepts pushes \
         (an HTTP registry must be in dockerd's insecure-registries)"
    )]
    Push { image: String, message: String },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no record of {app} {release} on the cluster ({}): deploy again", path.display())]
    NoRelease { app: AppName, release: ReleaseId, path: PathBuf },
    #[error("`{what}` is not available for kubernetes apps yet; {hint}")]
    Unsupported { what: &'static str, hint: String },
    #[error("no processes of {app} match {what}; see `slipway ps {app}`")]
    NoProcesses { app: AppName, what: String },
    #[error(
        "the cluster of {app} did not answer within {}; its leftovers of an interrupted deploy are removed by a later command",
        humantime::format_duration(*waited)
    )]
    Unanswered { app: AppName, waited: Duration },
}

impl From<KubeconfigError> for KubeError {
    fn from(e: KubeconfigError) -> Self {
        Self::Kubeconfig(Box::new(e))
    }
}

impl From<ClusterError> for KubeError {
    fn from(e: ClusterError) -> Self {
        Self::Cluster(Box::new(e))
    }
}

/// What slipway keeps of a release on the cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct ReleaseState {
    pub(super) image: ImageRef,
    /// What `start` applied; None before it.
    #[serde(default)]
    pub(super) manifests: Option<Manifests>,
}

/// Runs releases on a Kubernetes cluster.
pub struct KubernetesRuntime {
    pub(super) home: Home,
    client: OnceCell<kube::Client>,
    pub(super) docker: DockerRuntime,
}

impl std::fmt::Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime").field("home", &self.home).finish_non_exhaustive()
    }
}

impl KubernetesRuntime {
    /// A runtime over `home`; the cluster is reached on first use.
    pub fn new(home: Home) -> Result<Self, RuntimeError> {
        let docker = DockerRuntime::new(home.clone())?;
        Ok(Self { home, client: OnceCell::new(), docker })
    }

    /// The engine on this machine that builds the app's images before they are pushed.
    pub fn build_engine(&self) -> &DockerRuntime {
        &self.docker
    }

    /// Runs `f` against the app's namespace, on the tokio runtime it shares with its builder.
    pub(super) fn block<T>(
        &self,
        app: &AppName,
        f: impl AsyncFnOnce(&Cluster, &KubeSettings) -> Result<T, KubeError>,
    ) -> Result<T, RuntimeError> {
        self.docker
            .block_on(async {
                let settings = settings::load(&self.home, app)?;
                let client = self.client.get_or_try_init(kubeconfig::client).await?;
                let cluster = Cluster::new(client.clone(), &settings.namespace, POLL);
                f(&cluster, &settings).await
            })
            .map_err(RuntimeError::from)
    }

    pub(super) fn state_dir(&self, app: &AppName) -> PathBuf {
        self.home.app(app).state_dir().join("kubernetes")
    }

    pub(super) fn state_path(&self, app: &AppName, release: ReleaseId) -> PathBuf {
        self.state_dir(app).join(format!("{release}.json"))
    }

    pub(super) fn load_state(&self, app: &AppName, release: ReleaseId) -> Result<ReleaseState, KubeError> {
        let path = self.state_path(app, release);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| KubeError::Io {
                action: "parse",
                path,
                source: std::io::Error::other(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KubeError::NoRelease { app: app.clone(), release, path })
            }
            Err(source) => Err(KubeError::Io { action: "read", path, source }),
        }
    }

    fn save_state(&self, app: &AppName, release: ReleaseId, state: &ReleaseState) -> Result<(), KubeError> {
        let path = self.state_path(app, release);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| KubeError::Io {
                action: "create",
                path: dir.into(),
                source,
            })?;
        }
        atomic::write_json(&path, state).map_err(|source| KubeError::Io { action: "write", path, source })
    }

    fn render(&self, plan: &DeployPlan, settings: &KubeSettings) -> Result<Manifests, KubeError> {
        let image = self.load_state(&plan.app, plan.release)?.image;
        let mount_bytes = mount_bytes(&self.home, plan)?;
        Ok(render::render(&RenderInput { plan, settings, mount_bytes, image: &image })?)
    }

    /// Tags the built image for the registry and pushes it; its reference and how it runs.
    async fn publish(&self, plan: &DeployPlan, progress: &Progress) -> Result<ImageRef, KubeError> {
        let settings = settings::load(&self.home, &plan.app)?;
        let engine = docker::connect().await?;
        let local = labels::image_tag(&plan.app, plan.release);
        let info = engine.inspect_image(&local).await.map_err(|source| KubeError::Engine {
            action: "inspect",
            image: local.clone(),
            source,
        })?;
        let config = info.config.unwrap_or_default();
        let launcher = config.entrypoint.unwrap_or_default().first().map(String::as_str)
            == Some(docker::lifecycle::LAUNCHER);
        let workdir = config.working_dir.filter(|w| !w.is_empty());
        let Some(registry) = &settings.registry else {
            progress.detail(&format!(
                "no registry set for {}: the cluster must already have {local} (kind load docker-image, k3s ctr images import)",
                plan.app
            ));
            return Ok(ImageRef { reference: local, workdir, launcher });
        };
        let repo = registry_repo(registry, &plan.app);
        let tag = plan.release.to_string();
        let options =
            bollard::query_parameters::TagImageOptions { repo: Some(repo.clone()), tag: Some(tag.clone()) };
        let reference = format!("{repo}:{tag}");
        // Recorded before the push: a deploy killed during it leaves the record, and so the
        // next command's reconciliation removes the tag from the registry.
        let image = ImageRef { reference: reference.clone(), workdir: workdir.clone(), launcher };
        self.save_state(&plan.app, plan.release, &ReleaseState { image, manifests: None })?;
        engine.tag_image(&local, Some(options)).await.map_err(|source| KubeError::Engine {
            action: "tag",
            image: reference.clone(),
            source,
        })?;
        let push = bollard::query_parameters::PushImageOptions { tag: Some(tag), platform: None };
        let mut stream = engine.push_image(&repo, Some(push), None);
        while let Some(item) = stream.next().await {
            let item =
                item.map_err(|e| KubeError::Push { image: reference.clone(), message: e.to_string() })?;
            if let Some(err) = item.error_detail.and_then(|d| d.message) {
                return Err(KubeError::Push { image: reference, message: err });
            }
        }
        progress.detail(&format!("pushed {reference}"));
        Ok(ImageRef { reference, workdir, launcher })
    }

    /// Removes the registry tag of `release` from the local engine; a missing one is fine.
    pub(super) async fn untag(&self, app: &AppName, release: ReleaseId) -> Result<(), KubeError> {
        let Some(registry) = settings::load(&self.home, app)?.registry else { return Ok(()) };
        let engine = docker::connect().await?;
        let reference = format!("{}:{release}", registry_repo(&registry, app));
        match engine
            .remove_image(&reference, None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await
        {
            Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(source) => Err(KubeError::Engine { action: "remove", image: reference, source }),
        }
    }
}

impl KubernetesRuntime {
    /// Deletes the app's objects on the cluster, its claim (and so its mount's files) included.
    pub fn destroy_objects(&self, app: &AppName) -> Result<(), RuntimeError> {
        self.block(app, async |cluster, _| Ok(cluster.delete_app(app).await?))
    }
}

/// `<registry>/slipway/<app>`.
pub fn registry_repo(registry: &str, app: &AppName) -> String {
    format!("{registry}/slipway/{app}")
}

/// The claim's size, when the plan attaches the mount.
pub fn mount_bytes(home: &Home, plan: &DeployPlan) -> Result<Option<u64>, KubeError> {
    if !plan.mount {
        return Ok(None);
    }
    Ok(crate::mount::settings(&home.app(&plan.app))?.filter(|s| s.enabled).map(|s| s.limit_bytes))
}

impl From<KubeError> for RuntimeError {
    fn from(e: KubeError) -> Self {
        Self::Kubernetes(Box::new(e))
    }
}

impl Runtime for KubernetesRuntime {
    fn build(&self, plan: &mut DeployPlan, repo: &Repo, progress: &Progress) -> Result<(), RuntimeError> {
        // The cluster first: without a kubeconfig nothing is built or pushed.
        self.block(&plan.app, async |_, _| Ok(()))?;
        self.docker.build(plan, repo, progress)?;
        let image = self.docker.block_on(self.publish(plan, progress))?;
        self.save_state(&plan.app, plan.release, &ReleaseState { image, manifests: None })?;
        Ok(())
    }

    fn attach_mount(&self, plan: &DeployPlan, progress: &Progress) -> Result<(), RuntimeError> {
        if !plan.mount {
            return Ok(());
        }
        self.block(&plan.app, async |cluster, settings| {
            if settings.access_mode == AccessMode::Rwo {
                progress.detail(settings::RWO_WARNING);
            }
            match self.render(plan, settings)?.claim {
                Some(claim) => Ok(cluster.apply_claim(&claim).await?),
                None => Ok(()),
            }
        })
    }

    fn run_script(
        &self,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), RuntimeError> {
        let role = if plan.predeploy.as_ref() == Some(script) {
            ScriptRole::Predeploy
        } else if plan.release_phase.as_ref() == Some(script) {
            ScriptRole::Release
        } else {
            ScriptRole::Postdeploy
        };
        self.block(&plan.app, async |cluster, settings| {
            let image = self.load_state(&plan.app, plan.release)?.image;
            let input =
                RenderInput { plan, settings, mount_bytes: mount_bytes(&self.home, plan)?, image: &image };
            let job = render::script_job(&input, role, script);
            let out = |line: &str| progress.detail(line);
            Ok(cluster.run_job(&job, script.timeout + SCHEDULE_SLACK, &out).await?)
        })
    }

    fn start(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, RuntimeError> {
        self.block(&plan.app, async |cluster, settings| {
            let manifests = self.render(plan, settings)?;
            let mut state = self.load_state(&plan.app, plan.release)?;
            // Saved first: a rollout that fails halfway can still be found and undone.
            state.manifests = Some(manifests.clone());
            self.save_state(&plan.app, plan.release, &state)?;
            cluster.roll_out(&plan.app, &manifests, plan.web_timeout + SCHEDULE_SLACK).await?;
            if manifests.service.is_some() {
                progress.detail(&format!(
                    "web is ready behind Service {}.{} port 80",
                    render::service_name(&plan.app),
                    settings.namespace
                ));
            }
            Ok(Started { web_port: None })
        })
    }

    fn remove(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), RuntimeError> {
        self.remove_release(app, release, grace)
    }

    fn processes(&self, app: &AppRecord, release: ReleaseId) -> Result<ProcessReport, RuntimeError> {
        self.block(&app.name, async |cluster, _| super::ops::processes(cluster, app, release).await)
    }

    fn apply_scale(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        let stopped = app.stopped;
        self.scale_to(app, release, |t| if stopped { 0 } else { app.instances(t) })
    }

    fn restart(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), RuntimeError> {
        let names = self.deployments(app, release, only)?;
        self.block(&app.name, async |cluster, _| {
            for (name, _) in &names {
                cluster.restart(name).await?;
            }
            Ok(())
        })
    }

    fn stop(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        self.scale_to(app, release, |_| 0)
    }

    fn start_release(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        self.scale_to(app, release, |t| app.instances(t))
    }

    fn logs(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), RuntimeError> {
        self.block(&app.name, async |cluster, _| {
            super::ops::logs(cluster, app, process, lines, follow, sink).await
        })
    }

    fn run_oneoff(
        &self,
        app: &AppRecord,
        _: ReleaseId,
        _: &crate::oneoff::OneOff,
    ) -> Result<i32, RuntimeError> {
        let ns = settings::load(&self.home, &app.name).map_err(KubeError::from)?.namespace;
        Err(KubeError::Unsupported {
            what: "slipway run",
            hint: format!("use `kubectl -n {ns} exec -it deploy/{}-web -- bash` meanwhile", app.name),
        }
        .into())
    }

    fn reconcile(&self, app: &AppRecord) -> Result<Repairs, RuntimeError> {
        self.reconcile_app(app)
    }
}
