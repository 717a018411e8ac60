//! The CNB platform side, shared by every runtime: which buildpacks run, in what order, with
//! which arguments and environment, and what happens to their layers. A runtime only says how
//! a command runs (on the host as the app's user, or in a build container) through
//! [`Executor`]; the sequence is written once in [`run()`]:
//!
//! 1. **prepare** (the executor): the source in the app directory, the buildpacks installed,
//!    a layers and scratch directory per buildpack;
//! 2. **detect**: the groups are tried in order and the first that passes is used; each
//!    buildpack's `bin/detect` runs as the build user ([`phases::detect_command`]);
//! 3. **restore**: `cache = true` layers of the previous build come back ([`steps`]);
//! 4. **build**: each buildpack's `bin/build` runs with the earlier buildpacks' `build = true`
//!    layers in its environment ([`phases::build_command`]);
//! 5. **export** ([`steps`]): cache layers saved, layers without `launch = true` dropped; the
//!    merged `launch.toml` processes and launch layers are returned ([`Built`]) for the
//!    runtime to write its launcher and keep the result (an image, or a release folder).
//!
//! The buildpack contract itself (descriptor, plan, layer TOML, env, launch.toml) is
//! [`crate::buildpack`]; the buildpacks compiled into slipway are [`crate::buildpacks`].

pub mod output;
pub mod phases;
pub mod run;
pub mod steps;

use std::path::{Path, PathBuf};

use crate::buildpack::descriptor::{BuildpackDescriptor, DescriptorError};
use crate::buildpack::detect::PlanError;
use crate::buildpack::env::BuildDirs;
use crate::buildpack::launch::LaunchError;
use crate::buildpack::layer::LayerTomlError;
use crate::ids::{AppName, ReleaseId};

pub use output::{LineSink, Tail};
pub use run::{Built, run};
pub use steps::{BuiltLayer, KeptLayer};

/// Where a build's directories are, as the phases see them (in a container or on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleDirs {
    /// The app, layers, platform and buildpacks directories.
    pub build: BuildDirs,
    /// Parent of each buildpack's cached layers, kept from one build to the next.
    pub cache: String,
    /// Scratch space for build plans, removed by export.
    pub scratch: String,
    /// `uid:gid` that the lifecycle's own steps hand results to, when they run as root (in a
    /// build container); `None` when they already run as the build user.
    pub owner: Option<String>,
    /// A store of sealed layers (`<store>/<bp>/<layer>/current -> vN`), read-only to the
    /// build user: restore links a `launch` + `cache` layer there instead of copying it, and
    /// export leaves such layers for the runtime to seal (the local runtime's
    /// `layer_store`). `None`: every cache layer is copied through `cache` (containers).
    pub store: Option<String>,
    /// Sealed layers already in the layers directory because the build container started
    /// from the previous release's image (docker's warm build, [`steps::wipe_script`]):
    /// restore leaves them alone and export says which came through unchanged. `None`: the
    /// build starts without any layer (the bare stack, or the host).
    pub kept: Option<Vec<steps::KeptLayer>>,
}

impl LifecycleDirs {
    /// The layout of a build container of the stack image.
    pub fn container() -> Self {
        Self {
            build: BuildDirs::default(),
            cache: "/cache".into(),
            scratch: "/tmp/cnb".into(),
            owner: Some("1000:1000".into()),
            store: None,
            kept: None,
        }
    }
}

/// A command of one phase, run as the build user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// `NAME=value` entries added to the build user's base environment.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct PhaseResult {
    /// Its exit code (-1 if killed by a signal).
    pub code: i64,
    /// The last output lines.
    pub tail: Tail,
    /// Its standard output, when captured.
    pub stdout: Vec<u8>,
}

/// How a runtime runs the lifecycle's commands. The sequence ([`run()`]) is the same for all.
// Implemented inside the crate only, by the local and docker runtimes; no Send bound needed.
#[allow(async_fn_in_trait)]
pub trait Executor {
    /// The runtime's own failure (the engine, a spawn, a file).
    type Error: std::error::Error + Send + Sync + 'static;
    /// The directories the phases see.
    fn dirs(&self) -> &LifecycleDirs;
    /// The user's variables (`/platform/env`), also set in the environment of buildpacks
    /// without `clear-env`.
    fn user_env(&self) -> &std::collections::BTreeMap<String, String>;
    /// Puts the source and `buildpacks` in place and makes their layers directories.
    async fn prepare(&self, buildpacks: &[Buildpack]) -> Result<(), Self::Error>;
    /// Runs a phase command as the build user; its output lines go to `output`.
    async fn run_phase(&self, cmd: &PhaseCommand, output: LineSink<'_>) -> Result<PhaseResult, Self::Error>;
    /// Runs a lifecycle step (a bash script from [`steps`]) with the rights it needs.
    async fn run_step(&self, script: &str) -> Result<PhaseResult, Self::Error>;
    /// Runs `argv` as the build user and captures its standard output (reading results).
    async fn capture(&self, argv: Vec<String>) -> Result<PhaseResult, Self::Error>;
}

/// A buildpack to run: its directory (as the runtime holds it) and its descriptor.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// The host directory holding buildpack.toml and bin/.
    pub dir: PathBuf,
    /// Its parsed buildpack.toml.
    pub descriptor: BuildpackDescriptor,
}

/// The app and release a build is for, named in every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFor {
    /// The app.
    pub app: AppName,
    /// The release.
    pub release: ReleaseId,
}

/// Why a buildpack build failed. The message names the phase and buildpack.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError<E: std::error::Error + 'static> {
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
    /// No buildpack applies to the app.
    #[error(
        "building {} {}: no buildpack passed detect (tried {tried}); commit a Procfile, or a Dockerfile",
        build.app, build.release
    )]
    NothingDetected {
        /// The build.
        build: BuildFor,
        /// The buildpack ids tried.
        tried: String,
    },
    /// A phase exited with an error.
    #[error(
        "building {} {}: {phase} of buildpack {buildpack} failed (exit {code}); its last output:\n{tail}fix the app or the buildpack, then deploy again",
        build.app, build.release
    )]
    Phase {
        /// The build.
        build: BuildFor,
        /// `detect`, `build`, ...
        phase: &'static str,
        /// The buildpack id (or `lifecycle` for slipway's own steps).
        buildpack: String,
        /// The exit code.
        code: i64,
        /// The last output lines.
        tail: Box<Tail>,
    },
    /// No order group passed detection and plan resolution; a required buildpack that failed
    /// detect is named with its output.
    #[error(
        "building {} {}: no buildpack group passed detection:\n{reasons}{}",
        build.app, build.release,
        tail.as_ref().map(|t| format!("its last output:\n{t}")).unwrap_or_default()
    )]
    NoGroup {
        /// The build.
        build: BuildFor,
        /// Why each group failed, one line each.
        reasons: String,
        /// The detect output of the first required buildpack that failed, if one did.
        tail: Option<Box<Tail>>,
    },
    /// The buildpack order cannot be expanded (a composite names itself).
    #[error(transparent)]
    Order(#[from] crate::buildpack::order::OrderError),
    /// A build.toml was refused.
    #[error(transparent)]
    BuildToml(Box<crate::buildpack::resolve::BuildTomlError>),
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
    /// The runtime could not run a step.
    #[error("building {} {}: cannot {what}", build.app, build.release)]
    Executor {
        /// The build.
        build: BuildFor,
        /// What was asked.
        what: &'static str,
        /// The runtime's error.
        #[source]
        source: Box<E>,
    },
}

/// The buildpacks of a build without a Dockerfile, in order: the directories in
/// `$SLIPWAY_BUILDPACKS` (colon-separated), then slipway's own Procfile buildpack at
/// `$SLIPWAY_BUILDPACK` if set, else the built-in buildpacks (`crate::buildpacks`), written
/// into `scratch` (a directory private to this build).
pub fn buildpack_dirs(scratch: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("SLIPWAY_BUILDPACKS")
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if let Some(own) = std::env::var_os("SLIPWAY_BUILDPACK").map(PathBuf::from) {
        dirs.extend(Some(own).filter(|d| d.join("buildpack.toml").is_file()));
        return dirs;
    }
    for bp in crate::buildpacks::builtins() {
        match bp.write_to(&scratch.join(bp.id.replace('/', "_"))) {
            Ok(dir) => dirs.push(dir),
            Err(e) => tracing::warn!(error = %e, buildpack = bp.id, "cannot write a built-in buildpack"),
        }
    }
    dirs
}

impl Buildpack {
    /// Reads `dir/buildpack.toml`.
    pub fn load<E: std::error::Error>(dir: &Path) -> Result<Self, LifecycleError<E>> {
        let path = dir.join("buildpack.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| LifecycleError::ReadDescriptor { path, source })?;
        let descriptor = BuildpackDescriptor::parse(&text)
            .map_err(|source| LifecycleError::Descriptor { dir: dir.to_owned(), source })?;
        // A composite only names others; anything else needs bin/, without which the phases
        // would fail as a raw exec error.
        if descriptor.is_composite() == dir.join("bin").is_dir() {
            let id = descriptor.buildpack.id.clone();
            return Err(LifecycleError::Descriptor {
                dir: dir.to_owned(),
                source: DescriptorError::Composite { id },
            });
        }
        Ok(Self { dir: dir.to_owned(), descriptor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_root_buildpack_loads() {
        let bp = Buildpack::load::<std::io::Error>(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(bp.descriptor.buildpack.id, "slipway/procfile");
    }
}
