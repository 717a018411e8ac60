//! Buildpack builds for commits without a Dockerfile, as a CNB lifecycle would run them, in
//! one build container from the stack image:
//!
//! 1. **prepare**: the commit's tree is streamed into `/workspace` and the buildpacks
//!    (`buildpack.toml`, `bin/`, `lib/`) into `/cnb/buildpacks/<id>`;
//! 2. **detect**: each buildpack's `bin/detect` runs in order; those that exit 0 form the
//!    group (every buildpack is treated as optional), 100 skips, other codes fail the build;
//! 3. **restore**: `cache = true` layers of the previous build come back from the app's cache
//!    volume (`slipway-<app>-cache`, mounted at `/cache`);
//! 4. **build**: each buildpack's `bin/build` runs with the `CNB_*` variables, its own
//!    `/layers/<id>`, and the earlier buildpacks' `build = true` layers in its environment;
//! 5. **export**: `cache = true` layers are saved to the cache volume, layers without
//!    `launch = true` are deleted, `/cnb/launcher` is written from the merged launch.toml
//!    processes, and the container is committed as `slipway/<app>:<release>` with
//!    `ENTRYPOINT ["/cnb/launcher"]` and the default process as `CMD`.
//!
//! Not implemented: build-plan matching across buildpacks, `[[or]]`, SBOMs, slices,
//! `store.toml`, image extensions and rebase; the exported image keeps the stack's layers
//! plus one layer with the app, where the CNB exporter makes one layer per launch layer.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, KillContainerOptions, RemoveContainerOptions,
};

use super::context::{ContextError, GitContext};
use super::exec::{self, ExecOutput, ExecSpec, UploadError};
use super::image::{BuildRequest, ImageId};
use super::labels::{self, Kind};
use super::lifecycle_scripts::{BuiltLayer, export_script, prepare_script, restore_script};
use super::output::{LineSink, Tail};
use super::stack::{self, StackError};
use super::volume::{self, VolumeError};
use super::{CONTAINER_HOME, CONTAINER_USER};
use crate::buildpack::descriptor::{BuildpackDescriptor, DescriptorError};
use crate::buildpack::detect::{BuildPlan, DetectOutcome, PlanError};
use crate::buildpack::env::{BuildDirs, BuildTarget, LAYER_ENV_SH};
use crate::buildpack::launch::{LaunchError, LaunchToml, launcher_script};
use crate::buildpack::layer::{LayerToml, LayerTomlError};
use crate::ids::{AppName, ReleaseId};

/// Where the launcher is written in the exported image.
pub const LAUNCHER: &str = "/cnb/launcher";
/// Where the build cache volume is mounted in the build container.
pub(crate) const CACHE_DIR: &str = "/cache";
/// Scratch space for plans.
pub(crate) const SCRATCH: &str = "/tmp/cnb";

/// Why a buildpack build failed. The message names the phase and buildpack.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A buildpack directory has no readable buildpack.toml.
    #[error("cannot read {}: each --buildpack DIR needs a buildpack.toml and bin/detect, bin/build", path.display())]
    ReadDescriptor {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A buildpack.toml was refused.
    #[error("buildpack at {}", dir.display())]
    Descriptor {
        /// The buildpack directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: DescriptorError,
    },
    /// The stack image is missing.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The build cache volume could not be made.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The commit's tree could not be streamed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Files could not be put into the build container.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The id of the committed image could not be recorded as slipway's.
    #[error("building {app} {release}: cannot record the image it made")]
    Ledger {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// Why.
        #[source]
        source: super::ledger::LedgerError,
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
    /// No buildpack applies to the app.
    #[error(
        "building {app} {release}: no buildpack passed detect (tried {tried}); commit a Procfile, or a Dockerfile"
    )]
    NothingDetected {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// The buildpack ids tried.
        tried: String,
    },
    /// A phase script exited with an error.
    #[error(
        "building {app} {release}: {phase} of buildpack {buildpack} failed (exit {code}); its last output:\n{tail}fix the app or the buildpack, then deploy again"
    )]
    Phase {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// `detect`, `build`, ...
        phase: &'static str,
        /// The buildpack id (or `lifecycle` for slipway's own steps).
        buildpack: String,
        /// The exit code.
        code: i64,
        /// The last output lines.
        tail: Box<Tail>,
    },
    /// A build plan was refused.
    #[error("buildpack {buildpack}")]
    Plan {
        /// The buildpack id.
        buildpack: String,
        /// What is wrong.
        #[source]
        source: PlanError,
    },
    /// A `<layer>.toml` was refused.
    #[error("buildpack {buildpack}")]
    Layer {
        /// The buildpack id.
        buildpack: String,
        /// What is wrong.
        #[source]
        source: Box<LayerTomlError>,
    },
    /// A launch.toml was refused.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The engine failed.
    #[error("building {app} {release}: the Docker engine failed to {what}")]
    Engine {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// What was asked of it.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// A buildpack to run: its directory on the host and its descriptor.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// The host directory holding buildpack.toml and bin/.
    pub dir: PathBuf,
    /// Its parsed buildpack.toml.
    pub descriptor: BuildpackDescriptor,
}

impl Buildpack {
    /// Reads `dir/buildpack.toml`.
    pub fn load(dir: &Path) -> Result<Self, LifecycleError> {
        let path = dir.join("buildpack.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| LifecycleError::ReadDescriptor { path, source })?;
        let descriptor = BuildpackDescriptor::parse(&text)
            .map_err(|source| LifecycleError::Descriptor { dir: dir.to_owned(), source })?;
        // Without bin/ the phases would fail as a raw OCI exec error in the build container.
        if descriptor.is_composite() || !dir.join("bin").is_dir() {
            let id = descriptor.buildpack.id.clone();
            return Err(LifecycleError::Descriptor {
                dir: dir.to_owned(),
                source: DescriptorError::Composite { id },
            });
        }
        Ok(Self { dir: dir.to_owned(), descriptor })
    }
}

/// Builds `req` with buildpacks; see the module docs for the phases.
pub async fn build(
    docker: &Docker,
    req: &BuildRequest,
    output: LineSink<'_>,
) -> Result<ImageId, LifecycleError> {
    let buildpacks = req.buildpacks.iter().map(|d| Buildpack::load(d)).collect::<Result<Vec<_>, _>>()?;
    stack::ensure_stack(docker, &req.stack).await?;
    let cache = volume::ensure_cache_volume(docker, &req.app).await?;
    let name = labels::task_container_name(&req.app, req.release, "build");
    let b = Builder {
        docker,
        req,
        name: name.clone(),
        dirs: BuildDirs::default(),
        target: BuildTarget::host_debian12(),
    };
    b.remove_container().await;
    let body = ContainerCreateBody {
        image: Some(req.stack.clone()),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        entrypoint: Some(vec![]),
        user: Some("0:0".into()),
        labels: Some(labels::release_labels(&req.app, req.release, Kind::Build)),
        host_config: Some(HostConfig {
            mounts: Some(build_mounts(cache, &req.host_env)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| b.engine("create the build container", e))?;
    let result = async {
        docker.start_container(&name, None).await.map_err(|e| b.engine("start the build container", e))?;
        b.run(&buildpacks, output).await
    }
    .await;
    b.remove_container().await;
    result
}

struct Builder<'a> {
    docker: &'a Docker,
    req: &'a BuildRequest,
    name: String,
    dirs: BuildDirs,
    target: BuildTarget,
}

impl Builder<'_> {
    fn engine(&self, what: &'static str, source: bollard::errors::Error) -> LifecycleError {
        LifecycleError::Engine { app: self.req.app.clone(), release: self.req.release, what, source }
    }

    async fn remove_container(&self) {
        let options = RemoveContainerOptions { force: true, v: false, ..Default::default() };
        let _ = self.docker.remove_container(&self.name, Some(options)).await;
    }

    async fn run(&self, buildpacks: &[Buildpack], output: LineSink<'_>) -> Result<ImageId, LifecycleError> {
        let t = std::time::Instant::now();
        self.prepare(buildpacks).await?;
        output(&format!(
            "[lifecycle] prepare: source and {} buildpack(s) copied ({:.1}s)",
            buildpacks.len(),
            t.elapsed().as_secs_f64()
        ));

        let t = std::time::Instant::now();
        let group = self.detect(buildpacks, output).await?;
        let ids: Vec<&str> = group.iter().map(|(bp, _)| bp.descriptor.buildpack.id.as_str()).collect();
        output(&format!("[lifecycle] detect: {} ({:.1}s)", ids.join(", "), t.elapsed().as_secs_f64()));

        let t = std::time::Instant::now();
        let escaped: Vec<String> = group.iter().map(|(bp, _)| bp.descriptor.escaped_id()).collect();
        self.root_script("restore", &restore_script(&self.dirs, &escaped)).await?;
        output(&format!("[lifecycle] restore: cached layers back ({:.1}s)", t.elapsed().as_secs_f64()));

        let t = std::time::Instant::now();
        let mut layers: Vec<BuiltLayer> = Vec::new();
        let mut launches = Vec::new();
        for (bp, plan) in &group {
            let id = bp.descriptor.escaped_id();
            let build_layers: Vec<String> = layers
                .iter()
                .filter(|l| l.types.build)
                .map(|l| format!("{}/{}", self.dirs.layers_dir(&l.buildpack), l.name))
                .collect();
            self.build_one(bp, plan, &build_layers, output).await?;
            layers.extend(self.read_layers(&bp.descriptor.buildpack.id, &id).await?);
            if let Some(text) = self.read_file(&format!("{}/launch.toml", self.dirs.layers_dir(&id))).await? {
                launches.push(LaunchToml::parse(&bp.descriptor.buildpack.id, &text)?);
            }
        }
        output(&format!("[lifecycle] build: {} layer(s) ({:.1}s)", layers.len(), t.elapsed().as_secs_f64()));

        let t = std::time::Instant::now();
        let launch = LaunchToml::merge(launches);
        let image = self.export(&escaped, &layers, &launch).await?;
        let types: Vec<&str> = launch.processes.iter().map(|p| p.kind.as_str()).collect();
        output(&format!(
            "[lifecycle] export: processes {} ({:.1}s)",
            types.join(", "),
            t.elapsed().as_secs_f64()
        ));
        Ok(image)
    }

    async fn prepare(&self, buildpacks: &[Buildpack]) -> Result<(), LifecycleError> {
        let mut ctx = GitContext::start(&self.req.source, &self.req.commit, false)?;
        if let Some(stream) = ctx.take_stream() {
            let sent = self
                .docker
                .upload_to_container(
                    &self.name,
                    Some(bollard::query_parameters::UploadToContainerOptions {
                        path: self.dirs.app.clone(),
                        ..Default::default()
                    }),
                    bollard::body_try_stream(stream),
                )
                .await;
            ctx.finish().await?;
            sent.map_err(|e| self.engine("copy the source into the build container", e))?;
        }
        // Only what a buildpack runs from: slipway's own buildpack lives at the root of its
        // source tree, which must not be copied whole. Listed by lstat before the upload, so a
        // link leading out of a buildpack fails the build with its own message.
        let mut trees = Vec::new();
        for b in buildpacks {
            let entries =
                crate::buildpack::tree::collect(&b.dir, &["buildpack.toml", "bin", "lib"]).map_err(
                    |source| LifecycleError::Tree { buildpack: b.descriptor.buildpack.id.clone(), source },
                )?;
            trees.push((b.descriptor.escaped_id(), b.dir.clone(), entries));
        }
        exec::upload(self.docker, &self.name, &self.dirs.buildpacks, move |tar| {
            for (id, dir, entries) in &trees {
                append_tree(tar, id, dir, entries)?;
            }
            Ok(())
        })
        .await?;
        let ids: Vec<String> = buildpacks.iter().map(|b| b.descriptor.escaped_id()).collect();
        self.root_script("prepare", &prepare_script(&self.dirs, &ids)).await
    }

    async fn detect<'b>(
        &self,
        buildpacks: &'b [Buildpack],
        output: LineSink<'_>,
    ) -> Result<Vec<(&'b Buildpack, BuildPlan)>, LifecycleError> {
        let mut group = Vec::new();
        for bp in buildpacks {
            let id = bp.descriptor.escaped_id();
            if !bp.descriptor.supports(&self.target.os, &self.target.arch) {
                output(&format!(
                    "[lifecycle] detect: {} skipped: no matching [[targets]]",
                    bp.descriptor.buildpack.id
                ));
                continue;
            }
            let plan_path = format!("{SCRATCH}/{id}/plan.toml");
            let spec = self.user_spec(
                vec![format!("{}/bin/detect", self.dirs.buildpack_dir(&id))],
                self.dirs.detect_env(&id, &plan_path, &self.target),
            );
            let r = exec::exec(self.docker, &self.name, &spec, ExecOutput::Stream(&mut *output))
                .await
                .map_err(|e| self.engine("run detect", e))?;
            match DetectOutcome::from_exit_code(r.code) {
                DetectOutcome::Pass => {
                    let text = self.read_file(&plan_path).await?.unwrap_or_default();
                    let plan = BuildPlan::parse(&text).map_err(|source| LifecycleError::Plan {
                        buildpack: bp.descriptor.buildpack.id.clone(),
                        source,
                    })?;
                    group.push((bp, plan));
                }
                DetectOutcome::Fail => {}
                DetectOutcome::Error(code) => {
                    return Err(self.phase("detect", &bp.descriptor.buildpack.id, code, r.tail));
                }
            }
        }
        if group.is_empty() {
            let tried =
                buildpacks.iter().map(|b| b.descriptor.buildpack.id.clone()).collect::<Vec<_>>().join(", ");
            return Err(LifecycleError::NothingDetected {
                app: self.req.app.clone(),
                release: self.req.release,
                tried,
            });
        }
        Ok(group)
    }

    async fn build_one(
        &self,
        bp: &Buildpack,
        plan: &BuildPlan,
        build_layers: &[String],
        output: LineSink<'_>,
    ) -> Result<(), LifecycleError> {
        let id = bp.descriptor.escaped_id();
        let bp_plan = format!("{SCRATCH}/{id}/bp-plan.toml");
        self.write_file(&bp_plan, &plan.buildpack_plan().to_toml()).await?;
        let mut cmd = vec![
            "bash".to_owned(),
            "-c".to_owned(),
            format!(
                "{LAYER_ENV_SH}build=$1; shift; for l in \"$@\"; do slipway_layer_env \"$l\" build; done; exec \"$build\""
            ),
            "slipway-lifecycle".to_owned(),
            format!("{}/bin/build", self.dirs.buildpack_dir(&id)),
        ];
        cmd.extend(build_layers.iter().cloned());
        let mut env = self.dirs.build_env(&id, &bp_plan, &self.target);
        env.extend(self.req.host_env.env_list());
        let spec = self.user_spec(cmd, env);
        let r = exec::exec(self.docker, &self.name, &spec, ExecOutput::Stream(&mut *output))
            .await
            .map_err(|e| self.engine("run build", e))?;
        if r.code != 0 {
            return Err(self.phase("build", &bp.descriptor.buildpack.id, r.code, r.tail));
        }
        Ok(())
    }

    async fn read_layers(&self, bp_id: &str, escaped: &str) -> Result<Vec<BuiltLayer>, LifecycleError> {
        let dir = self.dirs.layers_dir(escaped);
        let list = format!(
            "cd {dir} && for f in *.toml; do case \"$f\" in launch.toml|build.toml|store.toml|'*.toml') ;; *) printf '%s\\n' \"${{f%.toml}}\" ;; esac; done"
        );
        let r = self.capture(vec!["bash".into(), "-c".into(), list]).await?;
        let mut layers = Vec::new();
        for name in String::from_utf8_lossy(&r).lines().filter(|l| !l.is_empty()) {
            let text = self.read_file(&format!("{dir}/{name}.toml")).await?.unwrap_or_default();
            let toml = LayerToml::parse(name, &text).map_err(|source| LifecycleError::Layer {
                buildpack: bp_id.to_owned(),
                source: Box::new(source),
            })?;
            layers.push(BuiltLayer {
                buildpack: escaped.to_owned(),
                name: name.to_owned(),
                types: toml.types,
            });
        }
        Ok(layers)
    }

    async fn export(
        &self,
        built: &[String],
        layers: &[BuiltLayer],
        launch: &LaunchToml,
    ) -> Result<ImageId, LifecycleError> {
        self.root_script("export", &export_script(&self.dirs, built, layers)).await?;
        let launch_layers: Vec<String> = layers
            .iter()
            .filter(|l| l.types.launch)
            .map(|l| format!("{}/{}", self.dirs.layers_dir(&l.buildpack), l.name))
            .collect();
        let script = launcher_script(launch, &launch_layers, &self.dirs.app);
        exec::upload(self.docker, &self.name, "/cnb", move |tar| {
            exec::append_file(tar, "launcher", 0o755, script.as_bytes())
        })
        .await?;
        let kill = KillContainerOptions { signal: "SIGKILL".into() };
        self.docker
            .kill_container(&self.name, Some(kill))
            .await
            .map_err(|e| self.engine("stop the build container", e))?;

        let mut image_labels = labels::image_labels(&self.req.app, self.req.release, &self.req.commit);
        let types: Vec<&str> = launch.processes.iter().map(|p| p.kind.as_str()).collect();
        image_labels.insert(labels::PROCESSES.to_owned(), types.join(","));
        let config = ContainerConfig {
            entrypoint: Some(vec![LAUNCHER.to_owned()]),
            cmd: launch.default_process().map(|p| vec![p.to_owned()]),
            working_dir: Some(self.dirs.app.clone()),
            user: Some(CONTAINER_USER.to_owned()),
            env: Some(vec![format!("HOME={CONTAINER_HOME}"), format!("CNB_APP_DIR={}", self.dirs.app)]),
            labels: Some(image_labels),
            ..Default::default()
        };
        let options = CommitContainerOptions {
            container: Some(self.name.clone()),
            repo: Some(labels::image_repo(&self.req.app)),
            tag: Some(self.req.release.to_string()),
            comment: Some(format!("slipway buildpack build of {}", self.req.commit)),
            pause: false,
            ..Default::default()
        };
        let id = self
            .docker
            .commit_container(options, config)
            .await
            .map_err(|e| self.engine("commit the build", e))?;
        self.req.ledger.record_release(self.req.release, &id.id).map_err(|source| {
            LifecycleError::Ledger { app: self.req.app.clone(), release: self.req.release, source }
        })?;
        Ok(ImageId::new(id.id))
    }

    fn user_spec(&self, cmd: Vec<String>, env: Vec<String>) -> ExecSpec {
        ExecSpec { cmd, env, user: CONTAINER_USER.to_owned(), workdir: self.dirs.app.clone() }
    }

    async fn root_script(&self, phase: &'static str, script: &str) -> Result<(), LifecycleError> {
        let spec = ExecSpec {
            cmd: vec!["bash".into(), "-c".into(), script.to_owned()],
            env: vec![],
            user: "0:0".into(),
            workdir: "/".into(),
        };
        let r = exec::exec(self.docker, &self.name, &spec, ExecOutput::Capture)
            .await
            .map_err(|e| self.engine("run a lifecycle step", e))?;
        if r.code != 0 {
            return Err(self.phase(phase, "lifecycle", r.code, r.tail));
        }
        Ok(())
    }

    async fn capture(&self, cmd: Vec<String>) -> Result<Vec<u8>, LifecycleError> {
        let spec = ExecSpec { cmd, env: vec![], user: CONTAINER_USER.into(), workdir: "/".into() };
        let r = exec::exec(self.docker, &self.name, &spec, ExecOutput::Capture)
            .await
            .map_err(|e| self.engine("read build results", e))?;
        if r.code != 0 {
            return Err(self.phase("read results", "lifecycle", r.code, r.tail));
        }
        Ok(r.stdout)
    }

    /// The file's text, or `None` if it does not exist.
    async fn read_file(&self, path: &str) -> Result<Option<String>, LifecycleError> {
        let script = "if [ -f \"$1\" ]; then printf 'y'; cat \"$1\"; fi".to_owned();
        let out = self.capture(vec!["bash".into(), "-c".into(), script, "_".into(), path.into()]).await?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.strip_prefix('y').map(str::to_owned))
    }

    async fn write_file(&self, path: &str, text: &str) -> Result<(), LifecycleError> {
        let script = "printf '%s' \"$1\" > \"$2\"".to_owned();
        self.capture(vec!["bash".into(), "-c".into(), script, "_".into(), text.into(), path.into()]).await?;
        Ok(())
    }

    fn phase(&self, phase: &'static str, buildpack: &str, code: i64, tail: Tail) -> LifecycleError {
        LifecycleError::Phase {
            app: self.req.app.clone(),
            release: self.req.release,
            phase,
            buildpack: buildpack.to_owned(),
            code,
            tail: Box::new(tail),
        }
    }
}

/// The build container's mounts: the app's cache volume, and the host files the build trusts
/// (CA bundle, pip.conf) read-only. Bind mounts are not part of a commit: the release image
/// never holds them.
fn build_mounts(cache: String, host: &crate::build_env::BuildEnv) -> Vec<Mount> {
    let mut mounts = vec![Mount {
        target: Some(CACHE_DIR.into()),
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

/// Appends a buildpack's listed entries under `id/`: links as links, files opened without
/// following a link swapped in since the listing.
fn append_tree<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    id: &str,
    dir: &std::path::Path,
    entries: &[crate::buildpack::tree::TreeEntry],
) -> std::io::Result<()> {
    use crate::buildpack::tree::{TreeEntry, open_nofollow};
    use std::os::unix::fs::PermissionsExt;
    for entry in entries {
        match entry {
            TreeEntry::Dir(rel) => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{id}/{}/", rel.display()), std::io::empty())?;
            }
            TreeEntry::File(rel) => {
                let mut file = open_nofollow(&dir.join(rel))?;
                let meta = file.metadata()?;
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(meta.permissions().mode() & 0o755);
                header.set_size(meta.len());
                tar.append_data(&mut header, format!("{id}/{}", rel.display()), &mut file)?;
            }
            TreeEntry::Link { path, target } => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, format!("{id}/{}", path.display()), target)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_root_buildpack_loads() {
        let bp = Buildpack::load(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(bp.descriptor.buildpack.id, "slipway/procfile");
    }
}
