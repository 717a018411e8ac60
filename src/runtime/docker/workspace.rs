//! The workspace of a docker app: a long-running container from the current release's image
//! (so the app's dependencies are there; the stack image before the first deploy) that holds
//! the working copy and the app's mount volume, laid out like a release container. Commands
//! in a buildpack-built image run through its launcher, which sets the layers' environment.
//!
//! ```text
//! host apps/<app>/workspace/app  (bind)   -> /workspace        working directory, uid 1000
//! volume slipway-<app>-mount              -> /mount            = /workspace/../mount
//! HOME /home/slipway                         ~/mount -> /mount (made by the stack image)
//! ```
//!
//! The working copy stays on the host, so deleting the container loses nothing and deleting
//! the workspace never reaches the volume. `workspace shell` and `run` are `docker exec` into
//! the container, through the docker CLI for the terminal handling, as `slipway run` does.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig, Mount, MountType};
use bollard::query_parameters::CreateContainerOptions;

use super::container::{self, ContainerError, mount_points};
use super::labels;
use super::runtime::{DockerError, DockerRuntime, env_list, release_image, stack_image};
use super::{CONTAINER_HOME, CONTAINER_USER, is_not_found};
use crate::ids::AppName;
use crate::runtime::RuntimeError;
use crate::state::{AppRecord, RunAs};

/// The working directory of the workspace container, as in buildpack-built release images.
pub const WORKDIR: &str = "/workspace";
/// The host's git, lent read-only to stacks that have none (`debootstrap --variant=minbase`
/// leaves it out, and nothing can be installed offline).
const HOST_GIT: &str = "/usr/bin/git";
/// Where the host's git appears: last on `PATH`, so a stack's own git wins.
const LENT_BIN: &str = "/opt/slipway/bin";

/// What the workspace container is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSpec {
    /// The app.
    pub app: AppName,
    /// The current release's image, else the app's stack image.
    pub image: String,
    /// The image's `PATH`, to which the lent git is appended (none: the Debian default).
    pub image_path: Option<String>,
    /// Whether the image was built by buildpacks: commands then go through its launcher.
    pub launcher: bool,
    /// The working copy on the host, bound at [`WORKDIR`].
    pub working_copy: PathBuf,
    /// The mount volume, if the app has one.
    pub mount_volume: Option<String>,
    /// The host's git binary to lend, if there is one.
    pub host_git: Option<PathBuf>,
}

impl WorkspaceSpec {
    /// The container's name.
    pub fn name(&self) -> String {
        labels::workspace_container_name(&self.app)
    }

    /// Where things are mounted in the container, sorted.
    fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = workspace_mounts(self).into_iter().filter_map(|m| m.target).collect();
        t.sort();
        t
    }
}

fn workspace_mounts(spec: &WorkspaceSpec) -> Vec<Mount> {
    let bind = |source: &Path, target: &str, read_only: bool| Mount {
        target: Some(target.to_owned()),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut mounts = vec![bind(&spec.working_copy, WORKDIR, false)];
    if let Some(v) = &spec.mount_volume {
        mounts.extend(mount_points(v, WORKDIR));
    }
    if let Some(git) = &spec.host_git {
        mounts.push(bind(git, &format!("{LENT_BIN}/git"), true));
    }
    mounts
}

/// The engine's create request for the workspace container, as data.
pub fn workspace_create_body(spec: &WorkspaceSpec) -> ContainerCreateBody {
    let base =
        spec.image_path.as_deref().unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let path = format!("{base}:{LENT_BIN}");
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        // Idles until it is exec'd into; the init reaps what shells leave behind. The entry
        // point is replaced, so a release image's launcher does not start a process type.
        entrypoint: Some(vec!["sleep".to_owned()]),
        cmd: Some(vec!["infinity".to_owned()]),
        env: Some(vec![format!("HOME={CONTAINER_HOME}"), format!("PATH={path}"), "LANG=C.UTF-8".to_owned()]),
        user: Some(CONTAINER_USER.to_owned()),
        working_dir: Some(WORKDIR.to_owned()),
        labels: Some(labels::workspace_labels(&spec.app)),
        host_config: Some(HostConfig {
            mounts: Some(workspace_mounts(spec)),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `docker` arguments that run `script` with bash in the workspace container; config
/// vars are named by key only, their values come through docker's own environment.
pub fn exec_args(app: &AppName, script: &str, tty: bool, env_keys: &[&str], launcher: bool) -> Vec<String> {
    let mut args: Vec<String> = vec!["exec".into(), "-i".into()];
    if tty {
        args.push("-t".into());
    }
    args.extend(["--user".into(), CONTAINER_USER.into(), "--workdir".into(), WORKDIR.into()]);
    for k in env_keys {
        args.extend(["--env".to_owned(), (*k).to_owned()]);
    }
    args.push(labels::workspace_container_name(app));
    if launcher {
        args.push(super::lifecycle::LAUNCHER.to_owned());
    }
    args.extend(["bash".into(), "-c".into(), script.into()]);
    args
}

/// Whether an existing container was made from `spec` (same image and mounts); a mount
/// enabled or disabled since calls for a new one.
fn is_made_from(info: &ContainerInspectResponse, spec: &WorkspaceSpec) -> bool {
    let image = info.config.as_ref().and_then(|c| c.image.as_deref());
    let mut targets: Vec<String> =
        info.mounts.iter().flatten().filter_map(|m| m.destination.clone()).collect();
    targets.sort();
    image == Some(spec.image.as_str()) && targets == spec.targets()
}

/// Give the working copy to the containers' user (uid 1000), without following symlinks.
/// Only root can; an unprivileged slipway leaves it to the invoking user.
pub fn give_to_container_user(working_copy: &Path) -> std::io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    RunAs { user: "slipway".to_owned(), uid: 1000, gid: 1000 }.chown_tree(working_copy)
}

/// The `PATH` of `image`'s environment, if it sets one.
async fn image_env_path(docker: &Docker, image: &str) -> Option<String> {
    let info = docker.inspect_image(image).await.ok()?;
    info.config?.env?.into_iter().find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
}

/// Removes the app's workspace container, if any; the working copy and volume stay.
pub async fn remove_container(docker: &Docker, app: &AppName) -> Result<(), ContainerError> {
    container::remove_container(docker, &labels::workspace_container_name(app)).await
}

/// Makes the workspace container match `spec` and run.
async fn ensure(docker: &Docker, spec: &WorkspaceSpec) -> Result<(), ContainerError> {
    let name = spec.name();
    let engine = |what: &'static str| {
        let name = name.clone();
        move |source| ContainerError::Engine { what, container: name, source }
    };
    match docker.inspect_container(&name, None).await {
        Ok(info) if is_made_from(&info, spec) => {
            if !info.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
                docker.start_container(&name, None).await.map_err(engine("start"))?;
            }
            return Ok(());
        }
        Ok(_) => container::remove_container(docker, &name).await?,
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(engine("inspect")(e)),
    }
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    docker.create_container(Some(options), workspace_create_body(spec)).await.map_err(engine("create"))?;
    docker.start_container(&name, None).await.map_err(engine("start"))
}

impl DockerRuntime {
    /// Create or repair the workspace container of `record` around `working_copy`; returns
    /// whether the app's mount is attached.
    pub fn workspace_up(&self, record: &AppRecord, working_copy: &Path) -> Result<bool, RuntimeError> {
        Ok(self.workspace_spec_up(record, working_copy)?.mount_volume.is_some())
    }

    fn workspace_spec_up(
        &self,
        record: &AppRecord,
        working_copy: &Path,
    ) -> Result<WorkspaceSpec, RuntimeError> {
        self.block(async |docker| {
            let (image, image_path, launcher) = match record.current {
                Some(current) => {
                    let image = release_image(docker, &record.name, current).await?;
                    let path = image_env_path(docker, &image.tag).await;
                    (image.tag, path, image.launcher)
                }
                None => (stack_image(record), None, false),
            };
            let spec = WorkspaceSpec {
                app: record.name.clone(),
                image,
                image_path,
                launcher,
                working_copy: working_copy.to_owned(),
                mount_volume: self.mount_volume(docker, &record.name).await?,
                host_git: std::fs::canonicalize(HOST_GIT).ok(),
            };
            ensure(docker, &spec).await?;
            Ok(spec)
        })
    }

    /// Run `script` with bash in the workspace (interactively when on a terminal); returns its
    /// exit code (128 + signal if it was killed).
    pub fn workspace_exec(
        &self,
        record: &AppRecord,
        working_copy: &Path,
        script: &str,
    ) -> Result<i32, RuntimeError> {
        use std::io::IsTerminal;
        use std::os::unix::process::ExitStatusExt;
        let spec = self.workspace_spec_up(record, working_copy)?;
        let env = env_list(&record.env, "workspace.1");
        let pairs: Vec<(&str, &str)> = env.iter().filter_map(|e| e.split_once('=')).collect();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        let status = std::process::Command::new("docker")
            .args(exec_args(&record.name, script, tty, &keys, spec.launcher))
            .envs(pairs)
            .status()
            .map_err(DockerError::DockerCli)?;
        Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
    }

    /// Remove the workspace container; the working copy is the caller's to remove.
    pub fn workspace_remove(&self, app: &AppName) -> Result<(), RuntimeError> {
        self.block(async |docker| Ok(remove_container(docker, app).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkspaceSpec {
        WorkspaceSpec {
            app: "demo".parse().unwrap(),
            image: "slipway/stack:bookworm".into(),
            image_path: None,
            launcher: false,
            working_copy: "/srv/slipway/apps/demo/workspace/app".into(),
            mount_volume: Some("slipway-demo-mount".into()),
            host_git: Some("/usr/bin/git".into()),
        }
    }

    #[test]
    fn the_working_copy_is_the_workdir_beside_the_mount_and_git_is_lent_read_only() {
        let body = workspace_create_body(&spec());
        assert_eq!(body.working_dir.as_deref(), Some("/workspace"));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.labels.as_ref().unwrap()["slipway.kind"], "workspace");
        assert!(!body.labels.as_ref().unwrap().contains_key("slipway.release"));
        assert!(body.env.as_ref().unwrap().contains(&"HOME=/home/slipway".to_owned()));
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let got: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|m| {
                (m.source.as_deref().unwrap(), m.target.as_deref().unwrap(), m.read_only.unwrap_or(false))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/srv/slipway/apps/demo/workspace/app", "/workspace", false),
                ("slipway-demo-mount", "/mount", false),
                ("/usr/bin/git", "/opt/slipway/bin/git", true),
            ]
        );
    }

    #[test]
    fn without_a_mount_only_the_working_copy_is_attached() {
        let s = WorkspaceSpec { mount_volume: None, host_git: None, ..spec() };
        assert_eq!(s.targets(), ["/workspace"]);
    }

    #[test]
    fn exec_runs_bash_in_the_workdir_with_env_keys_only() {
        let args = exec_args(&"demo".parse().unwrap(), "ls ../mount", false, &["SECRET"], false);
        assert_eq!(
            args,
            [
                "exec",
                "-i",
                "--user",
                "1000:1000",
                "--workdir",
                "/workspace",
                "--env",
                "SECRET",
                "slipway-demo-workspace",
                "bash",
                "-c",
                "ls ../mount"
            ]
        );
        assert!(exec_args(&"demo".parse().unwrap(), "bash", true, &[], false).contains(&"-t".to_owned()));
    }

    #[test]
    fn a_release_image_idles_with_its_entrypoint_replaced_and_runs_commands_through_its_launcher() {
        let s = WorkspaceSpec {
            image: "slipway/demo:v3".into(),
            image_path: Some("/layers/slipway_python/venv/bin:/usr/bin:/bin".into()),
            launcher: true,
            ..spec()
        };
        let body = workspace_create_body(&s);
        assert_eq!(body.image.as_deref(), Some("slipway/demo:v3"));
        assert_eq!(body.entrypoint, Some(vec!["sleep".to_owned()]));
        assert_eq!(body.cmd, Some(vec!["infinity".to_owned()]));
        let env = body.env.unwrap();
        assert!(
            env.contains(&"PATH=/layers/slipway_python/venv/bin:/usr/bin:/bin:/opt/slipway/bin".to_owned()),
            "{env:?}"
        );
        let args = exec_args(&s.app, "python -c 'import dash'", false, &[], true);
        assert_eq!(args[args.len() - 4..], ["/cnb/launcher", "bash", "-c", "python -c 'import dash'"]);
    }
}
