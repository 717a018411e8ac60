//! The Docker runtime: the deploy steps of [`Runtime`] on the engine, from the building blocks
//! of this module. A release is an image `slipway/<app>:<release>` and one container per
//! process instance; the plan it was deployed with is kept in
//! `state/<app>/docker/<release>.json` so that `ps scale`, `restart` and reconciliation
//! can recreate its containers later.
//!
//! The [`Runtime`] trait is synchronous; each method blocks on a current-thread tokio runtime
//! owned by [`DockerRuntime`]. The engine connection is made on first use, so commands that
//! never touch a docker app never need the engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use tokio::sync::OnceCell;

use super::container::{self, ContainerError};
use super::image::{self, BuildError, BuildRequest, ImageError};
use super::ledger::Ledger;
use super::oneoff::{self, OneOffError, OneOffSpec};
use super::reconcile::ReconcileError;
use super::stack::{self, StackError};
use super::volume::{self, VolumeError};
use super::{ConnectError, DEFAULT_STACK, connect, labels};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{BuildKind, BuildpackSource, DeployPlan, ScriptSpec};
use crate::progress::Progress;
use crate::runtime::{LogSink, ProcessReport, Repairs, Runtime, RuntimeError, Started};
use crate::source::Repo;
use crate::state::{AppRecord, Home, atomic};

/// How long the engine gets to answer when a command only repairs docker apps in passing.
const RECONCILE_WAIT: Duration = Duration::from_secs(2);

/// The uid and gid of the stack's `slipway` user, as numbers.
const CONTAINER_UID: u32 = 1000;

/// Failures of the Docker runtime.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot start the async runtime that talks to the Docker engine")]
    AsyncRuntime(#[source] std::io::Error),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Build(Box<BuildError>),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    OneOff(Box<OneOffError>),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Mount(#[from] crate::mount::MountError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Context(#[from] super::context::ContextError),
    #[error(transparent)]
    Limits(#[from] super::limits::LimitsError),
    #[error(transparent)]
    BuildEnv(#[from] crate::build_env::BuildEnvError),
    #[error("building {app}: cannot set up the build's platform directory")]
    Platform {
        app: AppName,
        #[source]
        source: crate::buildpack::platform::PlatformError,
    },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no buildpack to build {app} with: the commit has no Dockerfile, and slipway's Procfile buildpack \
         was not found; set SLIPWAY_BUILDPACK to its directory (the one holding buildpack.toml and bin/)"
    )]
    NoBuildpack { app: AppName },
    #[error("no plan for {app} {release} in {}: it was not deployed by the docker runtime; deploy again", path.display())]
    NoPlan {
        app: AppName,
        release: ReleaseId,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{instance} crashed {restarts} times while starting; its last log lines:\n{tail}")]
    Crashing { instance: String, restarts: u32, tail: String },
    #[error(
        "{instance} crashed {} after the release became healthy, so it is not switched in; its last log lines:\n{tail}",
        humantime::format_duration(*.settle)
    )]
    CrashedSettling { instance: String, settle: Duration, tail: String },
    #[error(
        "web did not answer HTTP on 127.0.0.1:{port} within {}; make it listen on 0.0.0.0:$PORT. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    WebTimeout { port: u16, timeout: Duration, tail: String },
    #[error(
        "web on 127.0.0.1:{port} failed its health check for {}: {last}. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    Unhealthy { port: u16, timeout: Duration, last: String, tail: String },
    #[error("no processes of {app} match {what}; see `slipway ps {app}`")]
    NoProcesses { app: AppName, what: String },
    #[error("cannot run `docker` for an interactive one-off: install the docker CLI")]
    DockerCli(#[source] std::io::Error),
}

impl From<BuildError> for DockerError {
    fn from(e: BuildError) -> Self {
        Self::Build(Box::new(e))
    }
}

impl From<OneOffError> for DockerError {
    fn from(e: OneOffError) -> Self {
        Self::OneOff(Box::new(e))
    }
}

/// Runs releases as containers on the local Docker engine.
#[derive(Debug)]
pub struct DockerRuntime {
    pub(super) home: Home,
    rt: tokio::runtime::Runtime,
    docker: OnceCell<Docker>,
}

/// How a release image runs its processes.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseImage {
    pub(crate) tag: String,
    /// The app folder: the image's working directory.
    pub(crate) workdir: String,
    /// Built by buildpacks: `/cnb/launcher` runs process types by name.
    pub(crate) launcher: bool,
}

impl DockerRuntime {
    /// A Docker runtime over `home`; the engine is reached on first use.
    pub fn new(home: Home) -> Result<Self, DockerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DockerError::AsyncRuntime)?;
        Ok(Self { home, rt, docker: OnceCell::new() })
    }

    /// Runs `f` on this runtime's tokio runtime: the cluster runtimes, which build through
    /// this one, share it rather than start a second.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Run `f` against the engine, blocking until it finishes.
    pub(super) fn block<T>(
        &self,
        f: impl AsyncFnOnce(&Docker) -> Result<T, DockerError>,
    ) -> Result<T, RuntimeError> {
        self.rt
            .block_on(async {
                let docker = self.docker.get_or_try_init(connect).await?;
                f(docker).await
            })
            .map_err(RuntimeError::from)
    }

    /// Remove the app's workspace container and volumes (the mount volume only points at the
    /// host directory, whose files stay; the build cache goes). For `apps destroy`, after
    /// every release is removed.
    pub fn destroy_volumes(&self, app: &AppName) -> Result<(), RuntimeError> {
        self.block(async |docker| {
            // It holds the mount volume, which the engine would refuse to remove.
            super::workspace::remove_container(docker, app).await?;
            // Builds that never became a release (failed, or killed with `kill -9`), and the
            // build images later builds stood on: newest first, so that children go before
            // the parents the engine refuses to remove while they have any.
            let ledger = Ledger::of(&self.home, app);
            for release in ledger.releases().into_iter().rev() {
                image::remove_release_image(docker, &labels::image_tag(app, release)).await?;
                image::remove_recorded(docker, &ledger, release, image::StepPrune::Wait).await?;
            }
            // A network left behind holds nothing of the app's; it must not stop the destroy.
            if let Err(e) = super::limits::remove_network(docker, app).await {
                tracing::warn!(app = %app, error = %e, "cannot remove the app's network");
            }
            for (name, _) in volume::list_volumes(docker, app).await? {
                volume::remove_volume(docker, &name).await?;
            }
            let dir = plans_dir(&self.home, app);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(DockerError::Io { action: "remove", path: dir, source: e })
                }
                _ => Ok(()),
            }
        })
    }

    /// Attach the app's persistent filesystem and return its volume, or None when the mount
    /// is disabled.
    pub(super) async fn mount_volume(
        &self,
        docker: &Docker,
        app: &AppName,
    ) -> Result<Option<String>, DockerError> {
        let Some(dir) = crate::mount::attach(&self.home.app(app))? else { return Ok(None) };
        give_to_container_user(&dir)?;
        Ok(Some(volume::ensure_mount_volume(docker, app, &dir).await?))
    }

    async fn build_release(
        &self,
        docker: &Docker,
        plan: &mut DeployPlan,
        repo: &Repo,
        progress: &Progress,
    ) -> Result<(), DockerError> {
        let record = self.home.load_app(&plan.app)?;
        save_plan(&self.home, plan)?;
        let stack = stack_image(&record);
        progress.detail(&format!("stack image {stack}"));
        stack::ensure_stack(docker, &stack).await?;
        // Plans saved before the build kind was planned say Tree: decide by the commit then.
        let kind = match plan.build {
            BuildKind::Tree => {
                let has = super::context::commit_has_file(repo, &plan.commit, image::DOCKERFILE)?;
                BuildKind::of(crate::state::RuntimeKind::Docker, has)
            }
            kind => kind,
        };
        let has_dockerfile = kind == BuildKind::Dockerfile;
        // Buildpacks committed with the app, and slipway's own, are written out for the build
        // into a private directory (0700, random name) that no other user can plant files in.
        let scratch_dir = tempfile::Builder::new()
            .prefix(&format!("slipway-{}-{}-buildpacks.", plan.app, plan.release))
            .tempdir()
            .map_err(|source| DockerError::Io {
                action: "create a private scratch directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let scratch = scratch_dir.path().join("commit");
        let mut buildpacks = Vec::new();
        if has_dockerfile {
            if !plan.buildpacks.is_empty() {
                progress.detail("the commit has a Dockerfile: its extra buildpacks are not used");
            }
        } else {
            for source in &plan.buildpacks {
                match source {
                    BuildpackSource::Dir(dir) => buildpacks.push(dir.clone()),
                    BuildpackSource::Commit(path) => {
                        super::context::extract_dir(repo, &plan.commit, path, &scratch).await?;
                        buildpacks.push(scratch.join(path));
                    }
                }
            }
            if !buildpacks.is_empty() {
                let names: Vec<String> = buildpacks.iter().map(|d| d.display().to_string()).collect();
                progress.detail(&format!("extra buildpacks: {}", names.join(", ")));
            }
        }
        let own = crate::lifecycle::buildpack_dirs(&scratch_dir.path().join("own"));
        if buildpacks.is_empty() && own.is_empty() && !has_dockerfile {
            return Err(DockerError::NoBuildpack { app: plan.app.clone() });
        }
        buildpacks.extend(own);
        let req = BuildRequest {
            app: plan.app.clone(),
            release: plan.release,
            commit: plan.commit.clone(),
            source: repo.clone(),
            stack,
            // Only a buildpack build's image may be the next one's base (a Dockerfile can
            // set any label on what it builds).
            previous: record.current.filter(|r| {
                kind == BuildKind::Buildpacks
                    && load_plan(&self.home, &plan.app, *r).is_ok_and(|p| p.build == BuildKind::Buildpacks)
            }),
            buildpacks,
            gzip_context: false,
            ledger: Ledger::of(&self.home, &plan.app),
            host_env: crate::build_env::HostSettings::gather(record.ca_certs.as_deref())
                .plan(crate::build_env::BuildSite::Container)?,
            platform: crate::buildpack::platform::BuildPlatform::new(&plan.platform, &plan.env)
                .map_err(|source| DockerError::Platform { app: plan.app.clone(), source })?,
        };
        if let Some(ca) = &req.host_env.ca {
            progress.detail(&format!("build trusts the CA bundle {}", ca.display()));
        }
        let terminal = progress.is_terminal();
        let mut sink = |line: &str| progress.detail(&super::output::for_output(line, terminal));
        let built = image::build_kind(docker, &req, kind, &mut sink).await;
        drop(scratch_dir);
        if built.is_err() {
            // A failed build's step images are recorded as it streams them; none may stay.
            let _ = image::remove_recorded(docker, &req.ledger, plan.release, image::StepPrune::Wait).await;
        }
        let (id, launch) = built?;
        if !launch.is_empty() {
            plan.add_buildpack_processes(&record, &launch);
            save_plan(&self.home, plan)?;
        }
        progress.detail(&format!("image {} ({})", labels::image_tag(&plan.app, plan.release), short_id(&id)));
        Ok(())
    }

    async fn run_script_in(
        &self,
        docker: &Docker,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), DockerError> {
        let image = release_image(docker, &plan.app, plan.release).await?;
        let predeploy = plan.predeploy.as_ref().is_some_and(|p| std::ptr::eq(p, script));
        let mut spec = OneOffSpec::predeploy(
            plan.app.clone(),
            plan.release,
            image.tag.clone(),
            &script.path,
            script.timeout,
        );
        spec.env = env_list(&plan.env, "release.1");
        spec.limits = super::limits::load(&self.home, &plan.app)?;
        spec.mount_volume = self.mount_volume(docker, &plan.app).await?;
        spec.workdir = image.workdir;
        let terminal = progress.is_terminal();
        let mut sink = |line: &str| progress.detail(&super::output::for_output(line, terminal));
        if predeploy {
            // Success commits the container as the release image: app-folder changes are kept.
            let id = oneoff::run_predeploy(docker, &spec, &mut sink).await?;
            Ledger::of(&self.home, &plan.app)
                .record_release(plan.release, id.as_str())
                .map_err(|source| ImageError::Ledger { release: plan.release, source })?;
            return Ok(());
        }
        "postdeploy".clone_into(&mut spec.what);
        if let Some(line) = &script.command {
            // The Procfile's release phase: a command line, run like postdeploy, not committed.
            spec.cmd = vec!["bash".to_owned(), "-c".to_owned(), line.clone()];
            script.path.clone_into(&mut spec.what);
        }
        let result = oneoff::run(docker, &spec, &mut sink).await;
        container::remove_container(docker, &spec.name()).await?;
        let (code, tail) = result?;
        if code != 0 {
            return Err(OneOffError::Failed {
                app: plan.app.clone(),
                release: plan.release,
                what: spec.what,
                code,
                tail,
            }
            .into());
        }
        Ok(())
    }

    /// Stop and remove a release's containers, remove its image and plan, and prune the app's
    /// finished task containers and dangling images.
    async fn remove_release(
        &self,
        docker: &Docker,
        app: &AppName,
        release: ReleaseId,
        grace: Duration,
    ) -> Result<(), DockerError> {
        let containers = container::list_containers(docker, app, Some(release)).await?;
        let stops = containers.iter().map(|c| container::stop_and_remove(docker, &c.id, grace));
        for r in futures_util::future::join_all(stops).await {
            r?;
        }
        // The tag `slipway/<app>:<release>` is slipway's to remove; the images themselves go
        // only by the ids recorded as built for this release.
        image::remove_release_image(docker, &labels::image_tag(app, release)).await?;
        let ledger = Ledger::of(&self.home, app);
        image::remove_recorded(docker, &ledger, release, image::StepPrune::IfIdle).await?;
        image::remove_freed_bases(docker, &ledger).await?;
        super::ops::prune(docker, app, &ledger).await?;
        let path = plan_path(&self.home, app, release);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(DockerError::Io { action: "remove", path, source: e })
            }
            _ => Ok(()),
        }
    }
}

impl Runtime for DockerRuntime {
    fn build(&self, plan: &mut DeployPlan, repo: &Repo, progress: &Progress) -> Result<(), RuntimeError> {
        self.block(async |docker| self.build_release(docker, plan, repo, progress).await)
    }

    fn attach_mount(&self, plan: &DeployPlan, _progress: &Progress) -> Result<(), RuntimeError> {
        self.block(async |docker| self.mount_volume(docker, &plan.app).await.map(drop))
    }

    fn run_script(
        &self,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), RuntimeError> {
        self.block(async |docker| self.run_script_in(docker, plan, script, progress).await)
    }

    fn start(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, RuntimeError> {
        self.block(async |docker| {
            let web_port = self.converge(docker, plan, super::ops::Recreate::Nothing).await?;
            super::ops::wait_healthy(docker, plan, web_port).await?;
            if let Some(port) = web_port {
                progress.detail(&format!("web is answering on http://127.0.0.1:{port}/"));
            }
            Ok(Started { web_port })
        })
    }

    fn remove(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), RuntimeError> {
        self.block(async |docker| self.remove_release(docker, app, release, grace).await)
    }

    fn processes(&self, app: &AppRecord, release: ReleaseId) -> Result<ProcessReport, RuntimeError> {
        self.block(async |docker| super::ops::processes(docker, app, release).await)
    }

    fn apply_scale(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async |docker| self.apply_scale_of(docker, app, release).await)
    }

    fn restart(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), RuntimeError> {
        self.block(async |docker| self.restart_of(docker, app, release, only).await)
    }

    fn stop(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async |docker| self.stop_of(docker, app, release).await)
    }

    fn start_release(&self, app: &AppRecord, release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async |docker| self.start_of(docker, app, release).await)
    }

    fn logs(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), RuntimeError> {
        self.block(async |docker| super::ops::logs(docker, app, process, lines, follow, sink).await)
    }

    fn run_oneoff(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, RuntimeError> {
        self.block(async |docker| self.run_oneoff_of(docker, app, release, command).await)
    }

    fn reconcile(&self, app: &AppRecord) -> Result<Repairs, RuntimeError> {
        // Every command repairs every app first: a hung engine must not stall commands that
        // have nothing to do with it, so this background repair gives it little time.
        self.rt
            .block_on(async {
                let docker = self.docker.get_or_try_init(|| super::connect_within(RECONCILE_WAIT)).await?;
                self.reconcile_of(docker, app).await
            })
            .map_err(RuntimeError::from)
    }
}

/// The stack image of an app: `apps create --stack`, else `$SLIPWAY_STACK`, else the default.
pub fn stack_image(record: &AppRecord) -> String {
    record.stack.clone().unwrap_or_else(default_stack)
}

/// The stack image of an app created without `--stack`: `$SLIPWAY_STACK`, else the default.
pub fn default_stack() -> String {
    std::env::var("SLIPWAY_STACK").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_STACK.to_owned())
}

/// `NAME=value` entries for a container: the config vars and `DYNO`.
pub(crate) fn env_list(env: &std::collections::BTreeMap<String, String>, dyno: &str) -> Vec<String> {
    let mut list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    list.push(format!("DYNO={dyno}"));
    list
}

/// The release image and how it runs processes.
pub(crate) async fn release_image(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
) -> Result<ReleaseImage, DockerError> {
    let tag = labels::image_tag(app, release);
    let info = docker.inspect_image(&tag).await.map_err(|source| ImageError::Engine {
        what: "inspect",
        image: tag.clone(),
        source,
    })?;
    let config = info.config.unwrap_or_default();
    let launcher =
        config.entrypoint.unwrap_or_default().first().map(String::as_str) == Some(super::lifecycle::LAUNCHER);
    let workdir = config.working_dir.filter(|w| !w.is_empty()).unwrap_or_else(|| "/".to_owned());
    Ok(ReleaseImage { tag, workdir, launcher })
}

/// Containers run as uid 1000 (the stack's user: the image's app folder and HOME are its), so
/// the mount's root must be theirs to write. We hand the root to 1000:1000 rather than run
/// containers as the app's system user, which owns neither the image's files nor its HOME.
/// No host user can reach the directory through the app's 0700 tree; `slipway mount`
/// creates files as the root's owner, so they stay writable from the containers.
fn give_to_container_user(dir: &Path) -> Result<(), DockerError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|source| DockerError::Io {
        action: "inspect",
        path: dir.to_owned(),
        source,
    })?;
    if meta.uid() != CONTAINER_UID || meta.gid() != CONTAINER_UID {
        std::os::unix::fs::chown(dir, Some(CONTAINER_UID), Some(CONTAINER_UID))
            .map_err(|source| DockerError::Io { action: "give to uid 1000", path: dir.to_owned(), source })?;
    }
    Ok(())
}

fn plans_dir(home: &Home, app: &AppName) -> PathBuf {
    home.app(app).state_dir().join("docker")
}

fn plan_path(home: &Home, app: &AppName, release: ReleaseId) -> PathBuf {
    plans_dir(home, app).join(format!("{release}.json"))
}

/// Keep the plan a release runs with.
pub(super) fn save_plan(home: &Home, plan: &DeployPlan) -> Result<(), DockerError> {
    let dir = plans_dir(home, &plan.app);
    std::fs::create_dir_all(&dir).map_err(|source| DockerError::Io {
        action: "create",
        path: dir,
        source,
    })?;
    let path = plan_path(home, &plan.app, plan.release);
    atomic::write_json(&path, plan).map_err(|source| DockerError::Io { action: "write", path, source })
}

/// The plan a release was deployed with (with later scale changes).
pub(crate) fn load_plan(home: &Home, app: &AppName, release: ReleaseId) -> Result<DeployPlan, DockerError> {
    let path = plan_path(home, app, release);
    let no_plan = |source| DockerError::NoPlan { app: app.clone(), release, path: path.clone(), source };
    let bytes = std::fs::read(&path).map_err(no_plan)?;
    serde_json::from_slice(&bytes).map_err(|e| no_plan(std::io::Error::other(e)))
}

/// The release ids that have a stored plan.
pub(super) fn planned_releases(home: &Home, app: &AppName) -> Vec<ReleaseId> {
    let Ok(entries) = std::fs::read_dir(plans_dir(home, app)) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect()
}

pub(super) fn remove_plan(home: &Home, app: &AppName, release: ReleaseId) {
    let _ = std::fs::remove_file(plan_path(home, app, release));
}

fn short_id(id: &image::ImageId) -> &str {
    let s = id.as_str().trim_start_matches("sha256:");
    &s[..s.len().min(12)]
}
