//! Buildpack builds for commits without a Dockerfile: one build container from the stack
//! image runs [`crate::lifecycle`]'s phases (`ContainerExecutor`), then the container is
//! committed as `slipway/<app>:<release>` with `/cnb/launcher` as its entrypoint.
//!
//! - prepare: the commit's tree is streamed into `/workspace` and the buildpacks
//!   (`buildpack.toml`, `bin/`, `lib/`) into `/cnb/buildpacks/<id>`;
//! - cache: `cache = true` layers live in the app's cache volume (`slipway-<app>-cache`,
//!   mounted at `/cache`);
//! - export: `/cnb/launcher` is written from the merged launch.toml processes, and the
//!   container is committed with `ENTRYPOINT ["/cnb/launcher"]` and the default process as
//!   `CMD`. The image keeps the stack's layers plus one layer with the app, where the CNB
//!   exporter makes one layer per launch layer.
//! - warm builds: when [`super::base`] allows, the container starts from the previous
//!   release's build image instead of the stack; prepare first wipes all that build left but
//!   its sealed layers ([`steps::wipe_script`]), which the buildpack reuses in place, and the
//!   commit then holds only what changed.

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, KillContainerOptions, RemoveContainerOptions,
};

use super::base::{self, BuildBase};
use super::build_request::{BuildRequest, ImageId};
use super::context::{ContextError, GitContext};
use super::exec::{self, ExecOutput, ExecSpec, UploadError};
use super::labels::{self, Kind};
use super::output::LineSink;
use super::stack::{self, StackError};
use super::volume::{self, VolumeError};
use super::{CONTAINER_HOME, CONTAINER_USER};
use crate::buildpack::env::BuildTarget;
use crate::buildpack::launch::{LaunchToml, launcher_script};
use crate::lifecycle::{
    BuildFor, Buildpack, Executor, LifecycleDirs, LifecycleError, PhaseCommand, PhaseResult, steps,
};

/// Where the launcher is written in the exported image.
pub const LAUNCHER: &str = "/cnb/launcher";

/// Why the build container could not run a step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The engine failed.
    #[error("the Docker engine failed to {what}")]
    Engine {
        /// What was asked of it.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The commit's tree could not be streamed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Files could not be put into the build container.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The directories of the build could not be made.
    #[error("preparing the build container failed (exit {code}):\n{tail}")]
    Prepare {
        /// The step's exit code.
        code: i64,
        /// Its last output lines.
        tail: Box<crate::lifecycle::Tail>,
    },
    /// A buildpack's tree holds a symlink leading out of it.
    #[error("buildpack {buildpack}")]
    Tree {
        /// The buildpack id.
        buildpack: String,
        /// What is wrong.
        #[source]
        source: crate::buildpack::tree::TreeError,
    },
}

/// Why a buildpack build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildpackBuildError {
    /// A phase, or the container running it, failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError<ExecError>),
    /// The stack image is missing.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The build cache volume could not be made.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The id of the committed image could not be recorded as slipway's.
    #[error("building {app} {release}: cannot record the image it made")]
    Ledger {
        /// The app.
        app: crate::ids::AppName,
        /// The release.
        release: crate::ids::ReleaseId,
        /// Why.
        #[source]
        source: super::ledger::LedgerError,
    },
}

/// What a buildpack build made: the image and the process types it runs.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The committed image.
    pub id: ImageId,
    /// The merged launch.toml processes.
    pub launch: LaunchToml,
    /// How the image was made: its one new layer loaded, or a `docker commit`.
    pub how: &'static str,
}

/// Builds `req` with buildpacks in a build container; see the module docs.
pub async fn build(
    docker: &Docker,
    req: &BuildRequest,
    output: LineSink<'_>,
) -> Result<BuiltImage, BuildpackBuildError> {
    let build = BuildFor { app: req.app.clone(), release: req.release };
    let buildpacks = req.buildpacks.iter().map(|d| Buildpack::load(d)).collect::<Result<Vec<_>, _>>()?;
    let stack_id = stack::ensure_stack(docker, &req.stack).await?;
    let buildpacks_key = base::buildpacks_key(&buildpacks);
    let previous = match req.previous {
        Some(current) => base::previous_build(docker, &req.ledger, &req.app, current).await,
        None => None,
    };
    let base = base::choose(previous.as_ref().map(|(id, l)| (id.as_str(), l)), &stack_id, &buildpacks_key);
    tracing::debug!(app = %req.app, release = %req.release, previous = ?req.previous, base = ?base, "build base");
    let from = match &base {
        BuildBase::Previous { image, depth, kept } => {
            let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
            output(&format!(
                "[lifecycle] base: the previous build's image {} (depth {depth}), keeping {}",
                short(image),
                kept.join(", ")
            ));
            image.clone()
        }
        BuildBase::Stack { why } => {
            if let Some(why) = why {
                output(&format!("[lifecycle] base: the stack image {} ({why})", req.stack));
            }
            req.stack.clone()
        }
    };
    let cache = volume::ensure_cache_volume(docker, &req.app).await?;
    let name = labels::task_container_name(&req.app, req.release, "build");
    let mut dirs = LifecycleDirs::container();
    dirs.kept = base.kept();
    let b = ContainerExecutor {
        docker,
        req,
        name: name.clone(),
        dirs,
        base_labels: (base, stack_id, buildpacks_key),
    };
    b.remove_container().await;
    let body = ContainerCreateBody {
        image: Some(from),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        entrypoint: Some(vec![]),
        user: Some("0:0".into()),
        labels: Some(labels::release_labels(&req.app, req.release, Kind::Build)),
        host_config: Some(HostConfig {
            mounts: Some(build_mounts(&b.dirs.cache, cache, &req.host_env)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    let lc = |source| LifecycleError::Executor {
        build: build.clone(),
        what: "create the build container",
        source: Box::new(source),
    };
    docker
        .create_container(Some(options), body)
        .await
        .map_err(|source| lc(ExecError::Engine { what: "create the build container", source }))?;
    let result = async {
        docker
            .start_container(&name, None)
            .await
            .map_err(|source| lc(ExecError::Engine { what: "start the build container", source }))?;
        let outcome =
            crate::lifecycle::run(&b, &build, &buildpacks, &BuildTarget::host_debian12(), output).await?;
        let t = std::time::Instant::now();
        let image = b.export(&build, &outcome).await?;
        output(&format!(
            "[lifecycle] commit: {} ({:.1}s, {})",
            short(image.id.as_str()),
            t.elapsed().as_secs_f64(),
            image.how
        ));
        Ok(image)
    }
    .await;
    b.remove_container().await;
    result
}

/// Runs the lifecycle's commands in the build container: phases as the stack's build user,
/// steps as root (which hands their results to the build user).
struct ContainerExecutor<'a> {
    docker: &'a Docker,
    req: &'a BuildRequest,
    name: String,
    dirs: LifecycleDirs,
    /// What the build starts from, the stack's id and the buildpacks key: the image's
    /// [`base::labels`].
    base_labels: (BuildBase, String, String),
}

impl ContainerExecutor<'_> {
    async fn remove_container(&self) {
        let options = RemoveContainerOptions { force: true, v: false, ..Default::default() };
        let _ = self.docker.remove_container(&self.name, Some(options)).await;
    }

    async fn exec(
        &self,
        spec: &ExecSpec,
        out: ExecOutput<'_>,
        what: &'static str,
    ) -> Result<PhaseResult, ExecError> {
        let r = exec::exec(self.docker, &self.name, spec, out)
            .await
            .map_err(|source| ExecError::Engine { what, source })?;
        Ok(PhaseResult { code: r.code, tail: r.tail, stdout: r.stdout })
    }

    /// Writes the launcher and commits the container as the release image.
    async fn export(
        &self,
        build: &BuildFor,
        made: &crate::lifecycle::Built,
    ) -> Result<BuiltImage, BuildpackBuildError> {
        let err = |what: &'static str, source| {
            BuildpackBuildError::Lifecycle(LifecycleError::Executor {
                build: build.clone(),
                what,
                source: Box::new(source),
            })
        };
        let launch = &made.launch;
        let script = launcher_script(launch, &made.launch_layers, Some(self.dirs.build.app.as_str()));
        exec::upload(self.docker, &self.name, "/cnb", move |tar| {
            exec::append_file(tar, "launcher", 0o755, script.as_bytes())
        })
        .await
        .map_err(|e| err("write the launcher", ExecError::Upload(e)))?;
        let kill = KillContainerOptions { signal: "SIGKILL".into() };
        self.docker.kill_container(&self.name, Some(kill)).await.map_err(|source| {
            err("stop the build container", ExecError::Engine { what: "stop the build container", source })
        })?;

        let mut image_labels = labels::image_labels(&self.req.app, self.req.release, &self.req.commit);
        let types: Vec<&str> = launch.processes.iter().map(|p| p.kind.as_str()).collect();
        image_labels.insert(labels::PROCESSES.to_owned(), types.join(","));
        // Every label is set, so none is inherited from a previous image this build started
        // from (the engine merges the container's labels into the commit's).
        let (base, stack_id, buildpacks_key) = &self.base_labels;
        image_labels.extend(base::labels(base, stack_id, buildpacks_key, made));
        let config = ContainerConfig {
            entrypoint: Some(vec![LAUNCHER.to_owned()]),
            cmd: launch.default_process().map(|p| vec![p.to_owned()]),
            working_dir: Some(self.dirs.build.app.clone()),
            user: Some(CONTAINER_USER.to_owned()),
            env: Some(vec![format!("HOME={CONTAINER_HOME}"), format!("CNB_APP_DIR={}", self.dirs.build.app)]),
            labels: Some(image_labels),
            ..Default::default()
        };
        let tag = labels::image_tag(&self.req.app, self.req.release);
        let loaded = super::layer_export::export(self.docker, &self.name, &config, &tag).await;
        let how = if loaded.is_some() { "one layer loaded" } else { "docker commit" };
        let id = if let Some(id) = loaded {
            id.as_str().to_owned()
        } else {
            let options = CommitContainerOptions {
                container: Some(self.name.clone()),
                repo: Some(labels::image_repo(&self.req.app)),
                tag: Some(self.req.release.to_string()),
                comment: Some(format!("slipway buildpack build of {}", self.req.commit)),
                pause: false,
                ..Default::default()
            };
            let committed = self.docker.commit_container(options, config).await.map_err(|source| {
                err("commit the build", ExecError::Engine { what: "commit the build", source })
            })?;
            committed.id
        };
        let ledger_err = |source| BuildpackBuildError::Ledger {
            app: self.req.app.clone(),
            release: self.req.release,
            source,
        };
        self.req.ledger.record_release(self.req.release, &id).map_err(ledger_err)?;
        self.req.ledger.record_base(self.req.release, &id).map_err(ledger_err)?;
        Ok(BuiltImage { id: ImageId::new(id), launch: launch.clone(), how })
    }
}

impl Executor for ContainerExecutor<'_> {
    type Error = ExecError;

    fn dirs(&self) -> &LifecycleDirs {
        &self.dirs
    }

    fn user_env(&self) -> &std::collections::BTreeMap<String, String> {
        &self.req.platform.env
    }

    async fn prepare(&self, buildpacks: &[Buildpack]) -> Result<(), ExecError> {
        if self.dirs.kept.is_some() {
            // Started from the previous build's image: what that build left goes first.
            let r = self.run_step(&steps::wipe_script(&self.dirs, LAUNCHER, &["/tmp", "/var/tmp"])).await?;
            if r.code != 0 {
                return Err(ExecError::Prepare { code: r.code, tail: Box::new(r.tail) });
            }
        }
        // project.toml include/exclude: the build, and so the image, sees only what they keep.
        let mut ctx =
            GitContext::start_filtered(&self.req.source, &self.req.commit, false, &self.req.platform.filter)?;
        if let Some(stream) = ctx.take_stream() {
            let sent = self
                .docker
                .upload_to_container(
                    &self.name,
                    Some(bollard::query_parameters::UploadToContainerOptions {
                        path: self.dirs.build.app.clone(),
                        ..Default::default()
                    }),
                    bollard::body_try_stream(stream),
                )
                .await;
            ctx.finish().await?;
            sent.map_err(|source| ExecError::Engine {
                what: "copy the source into the build container",
                source,
            })?;
        }
        // Only what a buildpack runs from: slipway's own buildpack lives at the root of its
        // source tree, which must not be copied whole. Listed by lstat before the upload, so a
        // link leading out of a buildpack fails the build with its own message.
        let mut trees = Vec::new();
        for b in buildpacks {
            let entries = crate::buildpack::tree::collect(&b.dir, &["buildpack.toml", "bin", "lib"])
                .map_err(|source| ExecError::Tree { buildpack: b.descriptor.buildpack.id.clone(), source })?;
            trees.push((b.descriptor.escaped_id(), b.dir.clone(), entries));
        }
        exec::upload(self.docker, &self.name, &self.dirs.build.buildpacks, move |tar| {
            for (id, dir, entries) in &trees {
                crate::buildpack::tree::append_to_tar(tar, id, dir, entries)?;
            }
            Ok(())
        })
        .await?;
        // /platform/env: root's files the build user may only read (the prepare step below
        // makes them so whatever the engine does with the archive's owners); export empties it,
        // so the app's config never lands in the image.
        let env = self.req.platform.env.clone();
        let platform = self.dirs.build.platform.clone();
        exec::upload(self.docker, &self.name, "/", move |tar| {
            let root = platform.trim_start_matches('/');
            exec::append_dir(tar, root, 0o755)?;
            exec::append_dir(tar, &format!("{root}/env"), 0o755)?;
            for (name, value) in &env {
                exec::append_file(tar, &format!("{root}/env/{name}"), 0o444, value.as_bytes())?;
            }
            Ok(())
        })
        .await?;
        let ids: Vec<String> = buildpacks.iter().map(|b| b.descriptor.escaped_id()).collect();
        let r = self.run_step(&steps::prepare_script(&self.dirs, &ids)).await?;
        if r.code != 0 {
            return Err(ExecError::Prepare { code: r.code, tail: Box::new(r.tail) });
        }
        Ok(())
    }

    async fn run_phase(&self, cmd: &PhaseCommand, output: LineSink<'_>) -> Result<PhaseResult, ExecError> {
        let mut env = cmd.env.clone();
        env.extend(self.req.host_env.env_list());
        let spec = ExecSpec {
            cmd: cmd.argv.clone(),
            env,
            user: CONTAINER_USER.to_owned(),
            workdir: cmd.cwd.clone(),
        };
        self.exec(&spec, ExecOutput::Stream(output), "run a buildpack phase").await
    }

    async fn run_step(&self, script: &str) -> Result<PhaseResult, ExecError> {
        let spec = ExecSpec {
            cmd: vec!["bash".into(), "-c".into(), script.to_owned()],
            env: vec![],
            user: "0:0".into(),
            workdir: "/".into(),
        };
        self.exec(&spec, ExecOutput::Capture, "run a lifecycle step").await
    }

    async fn capture(&self, argv: Vec<String>) -> Result<PhaseResult, ExecError> {
        let spec = ExecSpec { cmd: argv, env: vec![], user: CONTAINER_USER.into(), workdir: "/".into() };
        self.exec(&spec, ExecOutput::Capture, "read build results").await
    }
}

/// The build container's mounts: the app's cache volume, and the host files the build trusts
/// (CA bundle, pip.conf) read-only. Bind mounts are not part of a commit: the release image
/// never holds them.
fn build_mounts(cache_dir: &str, cache: String, host: &crate::build_env::BuildEnv) -> Vec<Mount> {
    let mut mounts = vec![Mount {
        target: Some(cache_dir.to_owned()),
        source: Some(cache),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }];
    mounts.extend(host.mounts.iter().map(|m| Mount {
        target: Some(m.target.clone()),
        source: Some(m.source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }));
    mounts
}

/// The first 12 hex digits of an image id.
fn short(id: &str) -> &str {
    let s = id.trim_start_matches("sha256:");
    &s[..s.len().min(12)]
}
