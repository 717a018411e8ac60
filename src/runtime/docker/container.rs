//! Process containers: one per Procfile process instance, labelled with app, release, type
//! and index, with a restart policy, the mount volume attached, and (for web) the port
//! published on 127.0.0.1.
//!
//! The mount volume is attached at `/mount` and, when the working directory is not directly
//! under `/`, also at `<workdir>/../mount`, so `../mount` is the mount from any app folder;
//! the stack's `~/mount` link (HOME `/home/slipway`) points at `/mount`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;

use super::labels;
use super::output::{LineSink, Tail};
use super::{CONTAINER_HOME, CONTAINER_USER, MOUNT_PATH, is_not_found};
use crate::ids::{AppName, ProcessType, ReleaseId};

/// The port a web process listens on inside its container (given as `PORT`).
pub const WEB_PORT: u16 = 5000;
/// How long a stopped process gets between SIGTERM and SIGKILL, as Heroku gives.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// When the engine restarts a process container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After a non-zero exit, at most this many times.
    OnFailure(u32),
    /// Always, unless slipway stopped it (also after an engine restart).
    UnlessStopped,
}

/// Everything a process container is made from.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The app.
    pub app: AppName,
    /// The release.
    pub release: ReleaseId,
    /// The Procfile type.
    pub ptype: ProcessType,
    /// The instance number, from 1.
    pub index: u32,
    /// The release image.
    pub image: String,
    /// The command; `None` uses the image's. For buildpack images pass `[<type>]`, which the
    /// launcher runs; for Dockerfile images pass `["bash", "-c", <Procfile command>]`.
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` entries (config vars); `PORT` and `HOME` are added.
    pub env: Vec<String>,
    /// The mount volume's name, if the app has a mount.
    pub mount_volume: Option<String>,
    /// The app folder inside the image (`/workspace` for buildpack images).
    pub workdir: String,
    /// `uid:gid` to run as.
    pub user: String,
    /// The restart policy.
    pub restart: Restart,
    /// For web: the loopback port to publish on, e.g. the one a replaced container had;
    /// `None` picks a free one. The port is fixed in the container, so a restart keeps it.
    pub web_port: Option<u16>,
    /// Capabilities, privileges, memory and process limits.
    pub limits: super::limits::Limits,
}

impl ProcessSpec {
    /// A spec with slipway's defaults: the stack user, `unless-stopped`, no extra env.
    pub fn new(app: AppName, release: ReleaseId, ptype: ProcessType, index: u32, image: String) -> Self {
        Self {
            app,
            release,
            ptype,
            index,
            image,
            cmd: None,
            env: Vec::new(),
            mount_volume: None,
            workdir: "/workspace".to_owned(),
            user: CONTAINER_USER.to_owned(),
            restart: Restart::UnlessStopped,
            web_port: None,
            limits: super::limits::Limits::default(),
        }
    }

    /// The container's name.
    pub fn name(&self) -> String {
        labels::container_name(&self.app, self.release, &self.ptype, self.index)
    }
}

/// The mounts that make `/mount` and `<workdir>/../mount` the app's mount volume.
pub fn mount_points(volume: &str, workdir: &str) -> Vec<Mount> {
    let mut targets = vec![MOUNT_PATH.to_owned()];
    if let Some(parent) = Path::new(workdir).parent() {
        let sibling = parent.join("mount").display().to_string();
        if sibling != MOUNT_PATH {
            targets.push(sibling);
        }
    }
    targets
        .into_iter()
        .map(|target| Mount {
            target: Some(target),
            source: Some(volume.to_owned()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect()
}

/// The engine's create request for a process container, as data.
pub fn process_create_body(spec: &ProcessSpec) -> ContainerCreateBody {
    let web = spec.ptype.is_web();
    let mut env = vec![format!("HOME={CONTAINER_HOME}")];
    if web {
        env.push(format!("PORT={WEB_PORT}"));
    }
    env.extend(spec.env.iter().cloned());
    let port_key = format!("{WEB_PORT}/tcp");
    let restart = match spec.restart {
        Restart::OnFailure(n) => RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(i64::from(n)),
        },
        Restart::UnlessStopped => {
            RestartPolicy { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None }
        }
    };
    let mut host = HostConfig {
        mounts: spec.mount_volume.as_deref().map(|v| mount_points(v, &spec.workdir)),
        restart_policy: Some(restart),
        // Loopback only. An empty host port would let the engine pick one, but a new one at
        // every restart of the container.
        port_bindings: web.then(|| {
            HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(spec.web_port.map(|p| p.to_string()).unwrap_or_default()),
                }]),
            )])
        }),
        init: Some(true),
        ..Default::default()
    };
    super::limits::apply(&spec.limits, &spec.app, &mut host);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        env: Some(env),
        user: Some(spec.user.clone()),
        working_dir: Some(spec.workdir.clone()),
        labels: Some(labels::process_labels(&spec.app, spec.release, &spec.ptype, spec.index)),
        exposed_ports: web.then(|| vec![port_key.clone()]),
        stop_signal: Some("SIGTERM".to_owned()),
        host_config: Some(host),
        ..Default::default()
    }
}

/// Why a container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The engine failed.
    #[error("cannot {what} container {container}: check `docker info` and `docker logs {container}`")]
    Engine {
        /// What was asked.
        what: &'static str,
        /// The container's name.
        container: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// Why a web process was not seen answering.
#[derive(Debug, thiserror::Error)]
#[error("the web process of {container} did not answer HTTP on 127.0.0.1:{port} within {}: it must listen on 0.0.0.0:$PORT; see `docker logs {container}`", humantime::format_duration(*waited))]
pub struct NotAnswering {
    /// The container.
    pub container: String,
    /// The loopback port tried.
    pub port: u16,
    /// How long it was given.
    pub waited: Duration,
}

/// Waits until something answers an HTTP request on `127.0.0.1:port` (any status line
/// counts: the app is up), as the switch to a new release requires.
pub async fn wait_until_answers(container: &str, port: u16, timeout: Duration) -> Result<(), NotAnswering> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
            let mut head = [0u8; 5];
            s.read_exact(&mut head).await.ok()?;
            (&head == b"HTTP/").then_some(())
        };
        if tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten().is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NotAnswering { container: container.to_owned(), port, waited: timeout });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn engine<'a>(
    what: &'static str,
    container: &'a str,
) -> impl FnOnce(bollard::errors::Error) -> ContainerError + 'a {
    move |source| ContainerError::Engine { what, container: container.to_owned(), source }
}

/// A started process container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// The loopback port the web process is published on.
    pub host_port: Option<u16>,
}

/// Creates and starts a process container, replacing a leftover of the same name. A web
/// container gets `spec.web_port` if it can still be had, else a free loopback port.
pub async fn start_process(docker: &Docker, spec: &ProcessSpec) -> Result<Started, ContainerError> {
    let name = spec.name();
    let web = spec.ptype.is_web();
    let mut spec = spec.clone();
    // Between choosing a free port and the engine binding it, someone else may take it: a web
    // container gets two more tries on fresh ports.
    let mut tries_left = if web { 2 } else { 0 };
    super::limits::ensure_network(docker, &spec.app).await.map_err(engine("make the network of", &name))?;
    if web && spec.web_port.is_none() {
        spec.web_port = crate::ports::free_loopback_port();
    }
    loop {
        remove_container(docker, &name).await?;
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = docker
            .create_container(Some(options), process_create_body(&spec))
            .await
            .map_err(engine("create", &name))?;
        match docker.start_container(&name, None).await {
            Ok(()) => {
                let host_port = if web { published_port(docker, &name).await? } else { None };
                return Ok(Started { id: created.id, name, host_port });
            }
            Err(e) if tries_left > 0 => {
                tracing::debug!("{name}: start on {:?} failed: {e}", spec.web_port);
                tries_left -= 1;
                spec.web_port = crate::ports::free_loopback_port();
            }
            Err(e) => return Err(engine("start", &name)(e)),
        }
    }
}

/// The loopback port the web port is published on: the live binding of a running container,
/// else the one it was created with (a stopped container has no live bindings).
pub async fn published_port(docker: &Docker, container: &str) -> Result<Option<u16>, ContainerError> {
    let info = docker.inspect_container(container, None).await.map_err(engine("inspect", container))?;
    let key = format!("{WEB_PORT}/tcp");
    let first_port = |bindings: Option<Vec<PortBinding>>| {
        bindings?.into_iter().find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))
    };
    let live = info.network_settings.and_then(|n| n.ports).and_then(|p| p.get(&key).cloned().flatten());
    let configured =
        info.host_config.and_then(|h| h.port_bindings).and_then(|p| p.get(&key).cloned().flatten());
    Ok(first_port(live).or_else(|| first_port(configured)))
}

/// Stops a container (SIGTERM, then SIGKILL after `grace`) and removes it; a missing
/// container is not an error.
pub async fn stop_and_remove(
    docker: &Docker,
    container: &str,
    grace: Duration,
) -> Result<(), ContainerError> {
    let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
    let options = StopContainerOptions { t: Some(secs), signal: None };
    match docker.stop_container(container, Some(options)).await {
        // 304: already stopped.
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(engine("stop", container)(e)),
    }
    remove_container(docker, container).await
}

/// Removes a container, killing it if running; a missing container is not an error.
pub async fn remove_container(docker: &Docker, container: &str) -> Result<(), ContainerError> {
    let options = RemoveContainerOptions { force: true, v: false, link: false };
    match docker.remove_container(container, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine("remove", container)(e)),
    }
}

/// One of an app's containers, as listed from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppContainer {
    /// The container id.
    pub id: String,
    /// The name, without the leading `/`.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// `running`, `exited`, `restarting`, ...
    pub state: String,
    /// The engine's human status, e.g. `Up 3 minutes`.
    pub status: String,
}

impl AppContainer {
    /// Its `slipway.release` label.
    pub fn release(&self) -> Option<ReleaseId> {
        labels::release_of(&self.labels)
    }
    /// Its `slipway.kind` label.
    pub fn kind(&self) -> Option<labels::Kind> {
        labels::kind_of(&self.labels)
    }
    /// Its `slipway.process` label.
    pub fn process_type(&self) -> Option<&str> {
        self.labels.get(labels::PROCESS).map(String::as_str)
    }
    /// Whether it is running (or restarting).
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting")
    }
}

/// The app's containers (all states); only those of `release` when given.
pub async fn list_containers(
    docker: &Docker,
    app: &AppName,
    release: Option<ReleaseId>,
) -> Result<Vec<AppContainer>, ContainerError> {
    let filters = match release {
        Some(r) => labels::release_filter(app, r),
        None => labels::app_filter(app),
    };
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await.map_err(engine("list", app.as_str()))?;
    let mut out: Vec<AppContainer> = list
        .into_iter()
        .map(|c| AppContainer {
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            labels: c.labels.unwrap_or_default(),
            state: c.state.map_or(String::new(), |s| state_name(s).to_owned()),
            status: c.status.unwrap_or_default(),
        })
        .filter(|c: &AppContainer| is_named_by_slipway(app, c))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether a labelled container bears a name slipway gives its own containers. A container
/// inherits its image's labels, so a Dockerfile `LABEL slipway.app=<other app>` puts them on
/// every builder step container; the name, which only slipway chooses, tells them apart.
pub fn is_named_by_slipway(app: &AppName, c: &AppContainer) -> bool {
    if c.name == labels::workspace_container_name(app) {
        return true;
    }
    c.release().is_some_and(|r| c.name.starts_with(&format!("slipway-{app}-{r}-")))
}

fn state_name(s: ContainerSummaryStateEnum) -> &'static str {
    match s {
        ContainerSummaryStateEnum::CREATED => "created",
        ContainerSummaryStateEnum::RUNNING => "running",
        ContainerSummaryStateEnum::PAUSED => "paused",
        ContainerSummaryStateEnum::RESTARTING => "restarting",
        ContainerSummaryStateEnum::EXITED => "exited",
        ContainerSummaryStateEnum::REMOVING => "removing",
        ContainerSummaryStateEnum::DEAD => "dead",
        ContainerSummaryStateEnum::STOPPING => "stopping",
        ContainerSummaryStateEnum::EMPTY => "",
    }
}

/// Passes a container's log lines to `sink`: the last `tail` lines (all if `None`), then
/// new lines as they come when `follow`. Returns the last lines seen.
pub async fn logs(
    docker: &Docker,
    container: &str,
    follow: bool,
    tail: Option<u64>,
    sink: LineSink<'_>,
) -> Result<Tail, ContainerError> {
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
        ..Default::default()
    };
    let mut stream = docker.logs(container, Some(options));
    let mut kept = Tail::new();
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(engine("read the logs of", container))?;
        kept.push_chunk(&String::from_utf8_lossy(&chunk.into_bytes()), &mut *sink);
    }
    kept.finish(&mut *sink);
    Ok(kept)
}

/// The working directory an image declares (`/` when it declares none).
pub async fn image_workdir(docker: &Docker, image: &str) -> Result<String, ContainerError> {
    let info = docker.inspect_image(image).await.map_err(engine("inspect the image of", image))?;
    Ok(info.config.and_then(|c| c.working_dir).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ptype: &str) -> ProcessSpec {
        let mut s = ProcessSpec::new(
            "demo".parse().unwrap(),
            ReleaseId::new(3),
            ptype.parse().unwrap(),
            2,
            "slipway/demo:v3".into(),
        );
        s.mount_volume = Some("slipway-demo-mount".into());
        s.env = vec!["GREETING=hi".into()];
        s
    }

    #[test]
    fn web_containers_publish_port_5000_on_loopback_only() {
        let body = process_create_body(&spec("web"));
        let env = body.env.unwrap();
        assert!(env.contains(&"PORT=5000".to_owned()));
        assert!(env.contains(&"GREETING=hi".to_owned()));
        assert_eq!(body.exposed_ports.unwrap(), ["5000/tcp"]);
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["5000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
    }

    #[test]
    fn a_chosen_web_port_is_fixed_in_the_container() {
        let mut web = spec("web");
        web.web_port = Some(41234);
        let host = process_create_body(&web).host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["5000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("41234"));
    }

    #[test]
    fn workers_get_no_port_and_are_labelled() {
        let body = process_create_body(&spec("worker"));
        assert!(body.exposed_ports.is_none());
        assert!(!body.env.unwrap().iter().any(|e| e.starts_with("PORT=")));
        let l = body.labels.unwrap();
        assert_eq!(l["slipway.process"], "worker");
        assert_eq!(l["slipway.index"], "2");
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(spec("worker").name(), "slipway-demo-v3-worker-2");
    }

    #[test]
    fn the_mount_is_at_slash_mount_and_beside_the_app_folder() {
        let targets = |wd: &str| -> Vec<String> {
            mount_points("v", wd).into_iter().map(|m| m.target.unwrap()).collect()
        };
        assert_eq!(targets("/workspace"), ["/mount"]);
        assert_eq!(targets("/app"), ["/mount"]);
        assert_eq!(targets("/usr/src/app"), ["/mount", "/usr/src/mount"]);
        let body = process_create_body(&spec("web"));
        let mounts = body.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("slipway-demo-mount"));
    }
}
