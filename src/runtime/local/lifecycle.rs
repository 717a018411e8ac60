//! Buildpack builds on the host: [`crate::lifecycle`]'s phases run in the release folder as
//! the app's user (`HostExecutor`).
//!
//! ```text
//! apps/<app>/cache/                 root's (0750, the app's group)
//! apps/<app>/cache/layers/<bp>/     the app's: cache layers, kept across releases
//! apps/<app>/releases/vN/layers/    the app's: this release's layers (launch layers stay)
//! apps/<app>/releases/vN/cnb/       root's: buildpacks/<id>, platform/, launcher
//! ```
//!
//! Root installs the buildpacks (while the release is still in root's staging) and writes the
//! launcher; everything the buildpacks write is read, copied and removed by the app's user, so
//! root never follows a link the app could have planted in a layer.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::buildpack::env::{BuildDirs, BuildTarget};
use crate::buildpack::launch::{LaunchToml, launcher_script};
use crate::buildpack::tree::{self as bptree, TreeEntry};
use crate::ids::AppName;
use crate::lifecycle::{
    BuildFor, Buildpack, Built, Executor, LifecycleDirs, LifecycleError, LineSink, PhaseCommand, PhaseResult,
    Tail, steps,
};
use crate::plan::{BuildpackSource, DeployPlan};
use crate::state::tree::{self, Access};
use crate::state::{Home, RunAs};

/// Why a host build step could not run.
#[derive(Debug, thiserror::Error)]
pub enum HostExecError {
    /// A command could not be started as the app's user.
    #[error("cannot start {program} as the app's user")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory of the build could not be made.
    #[error("cannot prepare {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A buildpack's tree holds a symlink leading out of it.
    #[error("buildpack at {}", dir.display())]
    Tree {
        /// The buildpack directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: bptree::TreeError,
    },
    /// A directory of the app's tree was tampered with.
    #[error(transparent)]
    State(#[from] tree::TreeError),
    /// The CA bundle the user named is missing.
    #[error(transparent)]
    BuildEnv(#[from] crate::build_env::BuildEnvError),
    /// The app's user cannot reach its release folder (a home it may not enter).
    #[error("{0}")]
    Unreachable(String),
    /// The platform env or the source filter was refused (a config name that cannot be a file).
    #[error(transparent)]
    Platform(#[from] crate::buildpack::platform::PlatformError),
    /// A reused or new `launch` + `cache` layer could not be kept in the app's layer store.
    #[error(transparent)]
    Store(#[from] super::layer_store::LayerStoreError),
}

/// A local buildpack build failure.
pub type HostBuildError = LifecycleError<HostExecError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostExecError + '_ {
    move |source| HostExecError::Io { path: path.to_owned(), source }
}

/// The buildpacks of `plan`, in order: its extra buildpacks (host directories, or directories
/// of the commit already extracted to `staged_app`), then slipway's own. Each is copied into
/// `dest/<escaped id>` (root's, readable by all), from where the app's user runs it.
pub fn install_buildpacks(
    plan: &DeployPlan,
    staged_app: &Path,
    scratch: &Path,
    dest: &Path,
) -> Result<(), HostBuildError> {
    let fail = |e| exec_err(plan, "install the buildpacks", e);
    let mut dirs = Vec::new();
    for source in &plan.buildpacks {
        dirs.push(match source {
            BuildpackSource::Dir(d) => d.clone(),
            BuildpackSource::Commit(p) => no_links_in(staged_app, p).map_err(fail)?,
        });
    }
    dirs.extend(crate::lifecycle::buildpack_dirs(scratch));
    std::fs::create_dir_all(dest).map_err(|e| fail(io(dest)(e)))?;
    let mut order = String::new();
    let incoming = dest.join(".incoming");
    for dir in dirs {
        // Copied first (links leading out refused, files opened without following a link),
        // then read: a committed link cannot make root read a file outside the buildpack.
        copy_buildpack(&dir, &incoming).map_err(fail)?;
        let bp = Buildpack::load(&incoming)?;
        let id = bp.descriptor.escaped_id();
        let to = dest.join(&id);
        std::fs::rename(&incoming, &to).map_err(|e| fail(io(&to)(e)))?;
        order.push_str(&id);
        order.push('\n');
    }
    let order_file = dest.join(ORDER);
    std::fs::write(&order_file, order).map_err(|e| fail(io(&order_file)(e)))
}

/// `app/<rel>`, refused if a committed symlink is any of its components.
fn no_links_in(app: &Path, rel: &str) -> Result<PathBuf, HostExecError> {
    let mut at = app.to_owned();
    for part in Path::new(rel).components() {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at).map_err(io(&at))?;
        if meta.file_type().is_symlink() {
            let e = std::io::Error::other(
                "a buildpack directory of the commit may not be, or lie under, a symlink",
            );
            return Err(io(&at)(e));
        }
    }
    Ok(at)
}

/// A build failure for a refused platform env or source filter.
pub(super) fn platform_err(
    plan: &DeployPlan,
    e: crate::buildpack::platform::PlatformError,
) -> HostBuildError {
    exec_err(plan, "set up the build's platform directory", e.into())
}

fn exec_err(plan: &DeployPlan, what: &'static str, source: HostExecError) -> HostBuildError {
    LifecycleError::Executor {
        build: BuildFor { app: plan.app.clone(), release: plan.release },
        what,
        source: Box::new(source),
    }
}

/// Copies what a buildpack runs from (`buildpack.toml`, `bin/`, `lib/`), links as links, files
/// opened without following a link, into `to` (root's, mode 0755 / files 0644 or 0755).
fn copy_buildpack(from: &Path, to: &Path) -> Result<(), HostExecError> {
    use std::os::unix::fs::PermissionsExt;
    let entries = bptree::collect(from, &["buildpack.toml", "bin", "lib"])
        .map_err(|source| HostExecError::Tree { dir: from.to_owned(), source })?;
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in entries {
        match entry {
            TreeEntry::Dir(rel) => {
                let d = to.join(rel);
                std::fs::create_dir_all(&d).map_err(io(&d))?;
            }
            TreeEntry::File(rel) => {
                let dst = to.join(&rel);
                let mut src = bptree::open_nofollow(&from.join(&rel)).map_err(io(&from.join(&rel)))?;
                let mode = src.metadata().map_err(io(&dst))?.permissions().mode() & 0o755 | 0o644;
                let mut out = std::fs::File::create(&dst).map_err(io(&dst))?;
                std::io::copy(&mut src, &mut out).map_err(io(&dst))?;
                out.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io(&dst))?;
            }
            TreeEntry::Link { path, target } => {
                let at = to.join(path);
                std::os::unix::fs::symlink(target, &at).map_err(io(&at))?;
            }
        }
    }
    Ok(())
}

/// Runs the lifecycle in release `plan.release` (already in place, its buildpacks installed)
/// and writes its launcher; returns what the build left (its launch.toml processes).
pub fn build(home: &Home, plan: &DeployPlan, output: LineSink<'_>) -> Result<Built, HostBuildError> {
    let app_paths = home.app(&plan.app);
    let paths = app_paths.release(plan.release);
    let for_build = BuildFor { app: plan.app.clone(), release: plan.release };
    let fail = |what, e| LifecycleError::Executor { build: for_build.clone(), what, source: Box::new(e) };
    // The build runs as the app's user: say which directory keeps it out, before any step
    // fails with a bare "permission denied".
    if let Some(why) =
        plan.run_as.as_ref().and_then(|u| crate::supervise::process::blocked_dir(&paths.app(), u))
    {
        return Err(fail("reach the app's folder", HostExecError::Unreachable(why)));
    }
    let cache =
        cache_dir(home, &plan.app, plan.run_as.as_ref()).map_err(|e| fail("make the build cache", e))?;
    let bp_dir = paths.cnb().join("buildpacks");
    let buildpacks = installed(plan, &bp_dir)?;
    let ca_certs = home.load_app(&plan.app).ok().and_then(|r| r.ca_certs);
    let host_env = crate::build_env::HostSettings::gather(ca_certs.as_deref())
        .plan(crate::build_env::BuildSite::Host)
        .map_err(|e| fail("read the build's CA and proxy settings", e.into()))?;
    if let Some(ca) = &host_env.ca {
        output(&format!("[lifecycle] builds trust the CA bundle {}", ca.display()));
    }
    let user_env = crate::buildpack::platform::env_files(&plan.platform.build_env, &plan.env)
        .map_err(|e| platform_err(plan, e))?;
    let exec = HostExecutor {
        dirs: LifecycleDirs {
            build: BuildDirs {
                app: path_str(&paths.app()),
                layers: path_str(&paths.layers()),
                platform: path_str(&paths.cnb().join("platform")),
                buildpacks: path_str(&bp_dir),
            },
            cache: path_str(&cache),
            scratch: path_str(&paths.layers().join(".slipway")),
            owner: None,
            store: Some(path_str(&app_paths.layer_store_dir())),
            kept: None,
        },
        home: paths.home(),
        run_as: plan.run_as.clone(),
        host_env,
        user_env,
        // Only root can move processes between cgroups, and only an app user's build needs it.
        cgroup: plan
            .run_as
            .as_ref()
            .and_then(|_| crate::supervise::cgroup::build_path(home.root(), &plan.app, plan.release)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| fail("start the build", io(Path::new("/"))(e)))?;
    let ran = runtime.block_on(crate::lifecycle::run(
        &exec,
        &for_build,
        &buildpacks,
        &BuildTarget::host_debian12(),
        output,
    ));
    // Whatever the build left running (a daemon a buildpack started, a process that detached)
    // goes before its layers are sealed: none keeps a descriptor it could still write through.
    if let Some(cg) = &exec.cgroup {
        crate::supervise::cgroup::remove(cg);
    }
    let mut built: Built = ran?;
    // `launch` + `cache` layers go to root's store (sealed) or are found there (reused): the
    // launcher runs them from the store, so that nothing of them is copied per release.
    let t = std::time::Instant::now();
    let sealed =
        super::layer_store::seal_release(home, &plan.app, plan.release, plan.run_as.as_ref(), &built.layers)
            .map_err(|e| fail("keep the layers", e.into()))?;
    let launch_layers: Vec<String> = built
        .layers
        .iter()
        .filter(|l| l.types.launch)
        .map(|l| match sealed.get(&(l.buildpack.clone(), l.name.clone())) {
            Some(dir) => path_str(dir),
            None => path_str(&paths.layers().join(&l.buildpack).join(&l.name)),
        })
        .collect();
    output(&format!(
        "[lifecycle] store: {} layer(s) sealed or reused, none copied ({:.1}s)",
        sealed.len(),
        t.elapsed().as_secs_f64()
    ));
    // Commands are given as `LAUNCHER bash -c ...`, so it needs no process table of its own.
    let script = launcher_script(&LaunchToml::default(), &launch_layers, None);
    write_launcher(&paths.launcher(), &script).map_err(|e| fail("write the launcher", e))?;
    built.launch_layers = launch_layers;
    Ok(built)
}

/// The installed buildpacks, in the order the plan gives them.
fn installed(plan: &DeployPlan, bp_dir: &Path) -> Result<Vec<Buildpack>, HostBuildError> {
    let order = std::fs::read_to_string(bp_dir.join(ORDER))
        .map_err(|e| exec_err(plan, "list the buildpacks", io(bp_dir)(e)))?;
    order.lines().filter(|l| !l.is_empty()).map(|id| Buildpack::load(&bp_dir.join(id))).collect()
}

/// The file in `cnb/buildpacks/` listing the installed buildpacks in order.
pub const ORDER: &str = "order";

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `apps/<app>/cache/layers`: made (and given to the app's user) the first time, then left as
/// the app made it; its parent is root's, so the name cannot be swapped for a link.
fn cache_dir(home: &Home, app: &AppName, user: Option<&RunAs>) -> Result<PathBuf, HostExecError> {
    let parent = home.app(app).build_cache_dir();
    let fd = tree::open_or_create(home.root(), &parent, Access::AppReads, user)?;
    let layers = parent.join("layers");
    match rustix::fs::mkdirat(&fd, "layers", rustix::fs::Mode::from_raw_mode(0o700)) {
        Ok(()) => {
            if let Some(u) = user {
                let (uid, gid) = (rustix::fs::Uid::from_raw(u.uid), rustix::fs::Gid::from_raw(u.gid));
                rustix::fs::chownat(
                    &fd,
                    "layers",
                    Some(uid),
                    Some(gid),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&layers)(e.into()))?;
            }
        }
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(io(&layers)(e.into())),
    }
    Ok(layers)
}

/// Writes one `platform/env` file: root's, read-only to everyone.
fn write_platform_file(path: &Path, value: &str) -> Result<(), HostExecError> {
    use std::os::unix::fs::PermissionsExt;
    crate::state::atomic::write(path, value.as_bytes()).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).map_err(io(path))
}

/// Writes the launcher into root's `cnb/` (every component of the path is root's).
fn write_launcher(path: &Path, script: &str) -> Result<(), HostExecError> {
    use std::os::unix::fs::PermissionsExt;
    crate::state::atomic::write(path, script.as_bytes()).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

/// Runs phases and steps on the host as the app's user, in its release.
struct HostExecutor {
    dirs: LifecycleDirs,
    home: PathBuf,
    run_as: Option<RunAs>,
    /// CA bundle, proxies and pip settings from the host (`crate::build_env`).
    host_env: crate::build_env::BuildEnv,
    /// The `platform/env` variables.
    user_env: std::collections::BTreeMap<String, String>,
    /// The build's cgroup, which every phase and step joins (None: no cgroup v2, or not root).
    cgroup: Option<PathBuf>,
}

impl HostExecutor {
    /// The build user's environment before the phase's own `CNB_*` variables: the one place
    /// where what every local build sees is assembled.
    fn base_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_owned(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()),
            ("HOME".to_owned(), path_str(&self.home)),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ];
        if let Some(u) = &self.run_as {
            env.push(("USER".to_owned(), u.user.clone()));
        }
        env.extend(self.host_env.vars.iter().cloned());
        env
    }

    fn command(&self, argv: &[String], env: &[String], cwd: &str) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(cwd).env_clear().envs(self.base_env());
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid).gid(u.gid);
        }
        if let Some(cg) = &self.cgroup {
            crate::supervise::cgroup::join_on_exec(&mut cmd, cg);
        }
        cmd.process_group(0).stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd`, both output streams into one pipe read line by line.
    fn run(
        mut cmd: Command,
        program: &str,
        capture: bool,
        output: LineSink<'_>,
    ) -> Result<PhaseResult, HostExecError> {
        let spawn = |source| HostExecError::Spawn { program: program.to_owned(), source };
        let (reader, writer) = std::io::pipe().map_err(spawn)?;
        if capture {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(writer.try_clone().map_err(spawn)?);
        }
        cmd.stderr(writer);
        let mut child = cmd.spawn().map_err(spawn)?;
        // The command's copies of the pipe's write end are the only ones left once it starts.
        drop(cmd);
        let stdout = child.stdout.take();
        let captured = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stdout {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        });
        let mut tail = Tail::new();
        for line in BufReader::new(reader).split(b'\n') {
            let line = line.map_err(spawn)?;
            tail.push_chunk(&format!("{}\n", String::from_utf8_lossy(&line)), &mut *output);
        }
        let status = child.wait().map_err(spawn)?;
        let stdout = captured.join().unwrap_or_default();
        Ok(PhaseResult { code: status.code().map_or(-1, i64::from), tail, stdout })
    }
}

impl Executor for HostExecutor {
    type Error = HostExecError;

    fn dirs(&self) -> &LifecycleDirs {
        &self.dirs
    }

    fn user_env(&self) -> &std::collections::BTreeMap<String, String> {
        &self.user_env
    }

    async fn prepare(&self, buildpacks: &[Buildpack]) -> Result<(), HostExecError> {
        let ids: Vec<String> = buildpacks.iter().map(|b| b.descriptor.escaped_id()).collect();
        let r = self.run_step(&steps::prepare_script(&self.dirs, &ids)).await?;
        if r.code != 0 {
            let msg = r.tail.lines().collect::<Vec<_>>().join("\n");
            return Err(io(Path::new(&self.dirs.build.layers))(std::io::Error::other(msg)));
        }
        Ok(())
    }

    async fn run_phase(
        &self,
        cmd: &PhaseCommand,
        output: LineSink<'_>,
    ) -> Result<PhaseResult, HostExecError> {
        Self::run(self.command(&cmd.argv, &cmd.env, &cmd.cwd), &cmd.argv[0], false, output)
    }

    async fn run_step(&self, script: &str) -> Result<PhaseResult, HostExecError> {
        let argv = ["bash".to_owned(), "-c".to_owned(), script.to_owned()];
        Self::run(self.command(&argv, &[], "/"), "bash", false, &mut |_: &str| {})
    }

    async fn capture(&self, argv: Vec<String>) -> Result<PhaseResult, HostExecError> {
        Self::run(self.command(&argv, &[], "/"), &argv[0], true, &mut |_: &str| {})
    }
}

/// Makes root's `cnb/` in a staged release (`release_fd`), with the buildpacks installed in
/// order and the platform directory: `platform/env/NAME` for project.toml's build env and
/// the app's config (which wins), root's files the app's user may only read.
pub fn stage(
    release_fd: &impl std::os::fd::AsFd,
    staging: &Path,
    plan: &DeployPlan,
    scratch: &Path,
) -> Result<(), HostBuildError> {
    let cnb = staging.join("cnb");
    let fail = |e: HostExecError| exec_err(plan, "install the buildpacks", e);
    tree::make_dir(release_fd, OsStr::new("cnb"), &cnb, Access::AppReads, plan.run_as.as_ref())
        .map_err(|e| fail(e.into()))?;
    let platform_env = cnb.join("platform/env");
    std::fs::create_dir_all(&platform_env).map_err(|e| fail(io(&platform_env)(e)))?;
    let files = crate::buildpack::platform::env_files(&plan.platform.build_env, &plan.env)
        .map_err(|e| platform_err(plan, e))?;
    // The staging tree is root's alone until it moves into place, so no name here can be a
    // link the app placed; each file is written whole (temp, fsync, rename) and left 0444.
    for (name, value) in &files {
        write_platform_file(&platform_env.join(name), value).map_err(fail)?;
    }
    let bp_dir = cnb.join("buildpacks");
    install_buildpacks(plan, &staging.join("app"), scratch, &bp_dir)
}
