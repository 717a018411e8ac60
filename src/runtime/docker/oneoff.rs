//! One-off containers: a command in a container of a release image with the mount attached,
//! its output streamed, bounded by a timeout. Predeploy is one, and on success its container
//! is committed as the release image, so changes to the app folder are kept (as when Dash
//! Enterprise runs predeploy during the build) while changes under `../mount` stay in the
//! volume.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, CreateContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::build_request::ImageId;
use super::container::{self, ContainerError, mount_points};
use super::labels::{self, Kind};
use super::output::{LineSink, Tail};
use super::relabel;
use super::upper_dir;
use super::{CONTAINER_HOME, CONTAINER_USER};
use crate::ids::{AppName, ReleaseId};

/// A one-off command.
#[derive(Debug, Clone)]
pub struct OneOffSpec {
    /// The app.
    pub app: AppName,
    /// The release whose image runs it.
    pub release: ReleaseId,
    /// What it is, for its container name: `predeploy`, `run-<n>`.
    pub what: String,
    /// The image.
    pub image: String,
    /// argv (after the image's entrypoint; buildpack images run it through the launcher).
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// The mount volume, if the app has one.
    pub mount_volume: Option<String>,
    /// The app folder inside the image.
    pub workdir: String,
    /// `uid:gid` to run as.
    pub user: String,
    /// Killed after this long.
    pub timeout: Duration,
    /// Capabilities, privileges, memory and process limits.
    pub limits: super::limits::Limits,
}

impl OneOffSpec {
    /// A predeploy run of `script` (e.g. `predeploy.sh`) with `bash`, as the stack user.
    pub fn predeploy(
        app: AppName,
        release: ReleaseId,
        image: String,
        script: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            app,
            release,
            what: "predeploy".to_owned(),
            image,
            cmd: vec!["bash".to_owned(), script.to_owned()],
            env: Vec::new(),
            mount_volume: None,
            workdir: "/workspace".to_owned(),
            user: CONTAINER_USER.to_owned(),
            timeout,
            limits: super::limits::Limits::default(),
        }
    }

    /// The container's name.
    pub fn name(&self) -> String {
        labels::task_container_name(&self.app, self.release, &self.what)
    }
}

/// Why a one-off failed.
#[derive(Debug, thiserror::Error)]
pub enum OneOffError {
    /// The command exited non-zero.
    #[error(
        "{what} of {app} {release} failed (exit {code}); its last output:\n{tail}fix it and deploy again: the running release is untouched"
    )]
    Failed {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// `predeploy`, ...
        what: String,
        /// The exit code.
        code: i64,
        /// The last output lines.
        tail: Tail,
    },
    /// The command ran too long and was killed.
    #[error("{what} of {app} {release} did not finish within {}; its last output:\n{tail}make it faster or raise the timeout", humantime::format_duration(*timeout))]
    Timeout {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// `predeploy`, ...
        what: String,
        /// The limit.
        timeout: Duration,
        /// The last output lines.
        tail: Tail,
    },
    /// The committed image could not be issued without the app's config in its environment.
    #[error(
        "predeploy of {app} {release}: the engine refused to issue the committed image without the app's config in its environment (a config-only image load); the release is not deployed, so that no image holds the config. Use an engine with the graph-driver image store, or drop predeploy"
    )]
    ConfigInImage {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
    },
    /// The container could not be made, run or removed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// The container command of `slipway run`: bash runs the line, or execs the argv as given.
pub fn oneoff_cmd(command: &crate::oneoff::OneOff) -> Vec<String> {
    vec!["bash".to_owned(), "-c".to_owned(), command.script()]
}

/// The engine's create request for a one-off container, as data.
pub fn oneoff_create_body(spec: &OneOffSpec) -> ContainerCreateBody {
    let mut env = vec![format!("HOME={CONTAINER_HOME}")];
    env.extend(spec.env.iter().cloned());
    let mut host = HostConfig {
        mounts: spec.mount_volume.as_deref().map(|v| mount_points(v, &spec.workdir)),
        init: Some(true),
        ..Default::default()
    };
    super::limits::apply(&spec.limits, &spec.app, &mut host);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        env: Some(env),
        user: Some(spec.user.clone()),
        working_dir: Some(spec.workdir.clone()),
        labels: Some(labels::release_labels(&spec.app, spec.release, Kind::OneOff)),
        host_config: Some(host),
        ..Default::default()
    }
}

/// Runs a one-off to completion, streaming its output to `output`, and returns its exit code
/// and last lines. The container is left for the caller (to commit or remove).
pub async fn run(
    docker: &Docker,
    spec: &OneOffSpec,
    output: LineSink<'_>,
) -> Result<(i64, Tail), OneOffError> {
    let name = spec.name();
    container::remove_container(docker, &name).await?;
    let engine = |what: &'static str| {
        let name = name.clone();
        move |source| OneOffError::Container(ContainerError::Engine { what, container: name, source })
    };
    super::limits::ensure_network(docker, &spec.app).await.map_err(engine("make the network of"))?;
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    docker.create_container(Some(options), oneoff_create_body(spec)).await.map_err(engine("create"))?;
    // Attached before the start, so that no output of a quick command is missed (following
    // the logs of a container that already exited can come back empty).
    let attach =
        AttachContainerOptions { stdout: true, stderr: true, stream: true, logs: true, ..Default::default() };
    let attached = docker.attach_container(&name, Some(attach)).await.map_err(engine("attach to"))?;
    docker.start_container(&name, None).await.map_err(engine("start"))?;

    let mut tail = Tail::new();
    let finished = tokio::time::timeout(spec.timeout, async {
        let mut t = Tail::new();
        let mut out = attached.output;
        while let Some(item) = out.next().await {
            let chunk = item.map_err(|source| ContainerError::Engine {
                what: "read the output of",
                container: name.clone(),
                source,
            })?;
            t.push_chunk(&String::from_utf8_lossy(&chunk.into_bytes()), &mut *output);
        }
        t.finish(&mut *output);
        let mut waits = docker.wait_container(&name, None::<WaitContainerOptions>);
        let code = match waits.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(source)) => {
                return Err(ContainerError::Engine { what: "wait for", container: name.clone(), source });
            }
            None => -1,
        };
        Ok::<_, ContainerError>((code, t))
    })
    .await;
    if let Ok(result) = finished {
        return result.map_err(OneOffError::from);
    }
    let _ = container::remove_container(docker, &name).await;
    tail.push_chunk("(killed: timeout)\n", &mut |_: &str| {});
    Err(OneOffError::Timeout {
        app: spec.app.clone(),
        release: spec.release,
        what: spec.what.clone(),
        timeout: spec.timeout,
        tail,
    })
}

/// Runs predeploy and, on success, commits its container as the release image
/// `slipway/<app>:<release>`, keeping the image's entrypoint, command, user, working
/// directory and labels. The container is removed either way; on failure the caller removes
/// the new image and leaves the running release alone.
pub async fn run_predeploy(
    docker: &Docker,
    spec: &OneOffSpec,
    output: LineSink<'_>,
) -> Result<ImageId, OneOffError> {
    let name = spec.name();
    let result = predeploy_inner(docker, spec, output).await;
    let removed = container::remove_container(docker, &name).await;
    let image = result?;
    removed?;
    Ok(image)
}

async fn predeploy_inner(
    docker: &Docker,
    spec: &OneOffSpec,
    output: LineSink<'_>,
) -> Result<ImageId, OneOffError> {
    let name = spec.name();
    let (code, tail) = run(docker, spec, output).await?;
    if code != 0 {
        return Err(OneOffError::Failed {
            app: spec.app.clone(),
            release: spec.release,
            what: spec.what.clone(),
            code,
            tail,
        });
    }
    let engine = |what: &'static str| {
        let name = name.clone();
        move |source| OneOffError::Container(ContainerError::Engine { what, container: name, source })
    };
    let original = docker.inspect_image(&spec.image).await.map_err(engine("inspect the image of"))?;
    // A predeploy that wrote only to the mount left the image as it was: the release keeps the
    // built image, and the commit (a diff of the whole tree on fuse-overlayfs: seconds) and
    // the reissue are skipped.
    match changes(docker, &name).await {
        Changes::None if original.id.is_some() => {
            output("predeploy changed no file of the image: the built image is the release");
            return Ok(ImageId::new(original.id.unwrap_or_default()));
        }
        Changes::Some(path) => output(&format!("predeploy changed /{path} in the image: committing it")),
        Changes::None | Changes::Unknown => {}
    }
    let c = original.config.unwrap_or_default();
    // The engine merges unset fields from the container (cmd = the predeploy command), so
    // every field that the container changed is set back from the image here.
    let config = ContainerConfig {
        cmd: Some(c.cmd.unwrap_or_default()),
        entrypoint: Some(c.entrypoint.unwrap_or_default()),
        working_dir: c.working_dir,
        user: c.user,
        env: c.env.clone(),
        labels: c.labels.map(|mut l| {
            l.insert(labels::KIND.to_owned(), Kind::Image.as_str().to_owned());
            l
        }),
        ..Default::default()
    };
    let options = CommitContainerOptions {
        container: Some(name.clone()),
        repo: Some(labels::image_repo(&spec.app)),
        tag: Some(spec.release.to_string()),
        comment: Some(format!("slipway predeploy of {}", spec.release)),
        pause: false,
        ..Default::default()
    };
    let committed =
        ImageId::new(docker.commit_container(options, config).await.map_err(engine("commit"))?.id);
    // The commit merged the container's environment, the app's config, into the image's:
    // issue the image again with the original environment, and drop the commit.
    let tag = labels::image_tag(&spec.app, spec.release);
    let clean = relabel::reissue_with_env(docker, &committed, &tag, c.env.unwrap_or_default()).await;
    let _ = super::image::remove_image(docker, committed.as_str(), true).await;
    clean.ok_or(OneOffError::ConfigInImage { app: spec.app.clone(), release: spec.release })
}

/// What a stopped container changed in its image.
enum Changes {
    /// Nothing: its upper directory holds only the engine's marks.
    None,
    /// At least this path (relative to the root).
    Some(String),
    /// Not known (another storage driver, an unreadable directory): commit as before.
    Unknown,
}

/// Whether the container changed files of its image ([`upper_dir`]).
async fn changes(docker: &Docker, container: &str) -> Changes {
    let Some((upper, inspect)) = upper_dir::of_container(docker, container).await else {
        return Changes::Unknown;
    };
    let mut marks: Vec<PathBuf> = inspect
        .mounts
        .unwrap_or_default()
        .iter()
        .filter_map(|m| Some(PathBuf::from(m.destination.as_deref()?.trim_start_matches('/'))))
        .collect();
    if inspect.host_config.and_then(|h| h.init) == Some(true) {
        marks.push(PathBuf::from(upper_dir::INIT_PATH));
    }
    match tokio::task::spawn_blocking(move || upper_dir::walk(&upper)).await {
        Ok(Ok(Some(entries))) => match upper_dir::first_change(&entries, &marks) {
            Some(path) => Changes::Some(path.display().to_string()),
            None => Changes::None,
        },
        Ok(Ok(None)) => Changes::Some("(many files)".to_owned()),
        _ => Changes::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predeploy_runs_the_script_with_bash_beside_the_mount() {
        let mut s = OneOffSpec::predeploy(
            "demo".parse().unwrap(),
            ReleaseId::new(4),
            "slipway/demo:v4".into(),
            "predeploy.sh",
            Duration::from_secs(60),
        );
        s.mount_volume = Some("slipway-demo-mount".into());
        assert_eq!(s.name(), "slipway-demo-v4-predeploy");
        let body = oneoff_create_body(&s);
        assert_eq!(body.cmd.unwrap(), ["bash", "predeploy.sh"]);
        assert_eq!(body.labels.unwrap()["slipway.kind"], "oneoff");
        assert_eq!(body.host_config.unwrap().mounts.unwrap()[0].target.as_deref(), Some("/mount"));
    }
}
