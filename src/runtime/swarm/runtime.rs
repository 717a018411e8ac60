//! [`SwarmRuntime`]: the deploy steps and everyday commands on a swarm. Builds run on the
//! local engine through the docker runtime; everything else talks to the cluster's manager.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListServicesOptions, LogsOptions, PushImageOptions, RemoveImageOptions,
    TagImageOptions, UpdateServiceOptions,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::cluster::{self, ClusterError, ClusterSettings};
use super::jobs::{self, JobError};
use super::registry::{self, RegistryError};
use super::rollout::{self, RolloutError};
use super::shared::{self, SharedError};
use super::spec::{self, KIND_JOB, KIND_PROCESS, TaskInput};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DeployPlan, ScriptSpec};
use crate::progress::Progress;
use crate::runtime::docker::labels::{APP, KIND, PROCESS, RELEASE};
use crate::runtime::docker::runtime::{ReleaseImage, release_image};
use crate::runtime::docker::{DockerError, DockerRuntime, labels as docker_labels};
use crate::runtime::{LogSink, ProcessReport, Repairs, Runtime, RuntimeError, Started};
use crate::source::Repo;
use crate::state::{AppRecord, Home};
use crate::supervise::status::{InstanceStatus, ProcessState};

/// Failures of the swarm runtime.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("cannot start the async runtime that talks to the swarm")]
    AsyncRuntime(#[source] std::io::Error),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(
        "cannot reach the swarm manager at {host}: check `slipway cluster set --docker-host` and that it is a manager"
    )]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the swarm manager refused to {what} {object}")]
    Engine {
        what: &'static str,
        object: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "cannot push {image} to the registry: {detail}; check that the local engine can reach it (HOST:PORT on loopback, or listed in insecure-registries)"
    )]
    Push { image: String, detail: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Shared(#[from] SharedError),
    #[error("{what} of {app} {release} failed ({detail}); its last log lines:\n{tail}")]
    Failed { app: AppName, release: ReleaseId, what: String, detail: String, tail: String },
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error("no processes of {app} match {what}; see `slipway ps {app}`")]
    NoProcesses { app: AppName, what: String },
    #[error("cannot write the logs (stdout, or the App Manager's client)")]
    Stdout(#[source] std::io::Error),
}

fn engine(what: &'static str, object: &str) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
    let object = object.to_owned();
    move |source| SwarmError::Engine { what, object, source }
}

impl From<SwarmError> for RuntimeError {
    fn from(e: SwarmError) -> Self {
        Self::Swarm(Box::new(e))
    }
}

/// The stack image as the nodes pull it; slipway's own tasks (checks, cleanup) run it.
fn stack_ref(registry: &str) -> String {
    format!("{registry}/slipway/stack:bookworm")
}

/// How long a deploy waits for a service to converge beyond the app's web timeout: nodes pull
/// the image first.
const PULL_ALLOWANCE: Duration = Duration::from_secs(300);

/// How long a failed start waits for the updated services to serve the previous release again.
const ROLLBACK_WAIT: Duration = Duration::from_secs(120);

/// What a task of `plan`'s release runs.
fn task_input<'a>(
    plan: &'a DeployPlan,
    image: &ReleaseImage,
    registry: &str,
    shared: Option<&'a spec::SharedMount>,
    args: Vec<String>,
    dyno: String,
) -> TaskInput<'a> {
    TaskInput {
        app: &plan.app,
        release: plan.release,
        image: spec::image_ref(registry, &plan.app, plan.release),
        workdir: image.workdir.clone(),
        args,
        env: plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        dyno,
        shared,
        stop_grace: plan.stop_grace,
    }
}

/// How long the manager gets to answer the first request of a command.
const MANAGER_ANSWER: Duration = Duration::from_secs(10);

/// Runs releases as swarm services.
#[derive(Debug)]
pub struct SwarmRuntime {
    home: Home,
    build: DockerRuntime,
    local: OnceCell<Docker>,
    manager: OnceCell<Docker>,
}

impl SwarmRuntime {
    /// A swarm runtime over `home`; the cluster is reached on first use.
    pub fn new(home: Home) -> Result<Self, SwarmError> {
        let build = DockerRuntime::new(home.clone())
            .map_err(|e| SwarmError::AsyncRuntime(std::io::Error::other(e.to_string())))?;
        Ok(Self { home, build, local: OnceCell::new(), manager: OnceCell::new() })
    }

    /// The engine on this machine that builds the app's images before they are pushed.
    pub fn build_engine(&self) -> &DockerRuntime {
        &self.build
    }

    fn settings(&self) -> Result<ClusterSettings, SwarmError> {
        Ok(cluster::load(&self.home)?)
    }

    async fn manager(&self) -> Result<&Docker, SwarmError> {
        self.manager
            .get_or_try_init(async || {
                let settings = self.settings()?;
                let Some(host) = settings.docker_host else {
                    return self.local().await.cloned();
                };
                let connect = |source| SwarmError::Connect { host: host.clone(), source };
                let docker = if let Some(path) = host.strip_prefix("unix://") {
                    Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION).map_err(connect)?
                } else {
                    Docker::connect_with_http(&host, 600, bollard::API_DEFAULT_VERSION).map_err(connect)?
                };
                match tokio::time::timeout(MANAGER_ANSWER, docker.negotiate_version()).await {
                    Ok(negotiated) => negotiated.map_err(connect),
                    Err(_) => Err(connect(bollard::errors::Error::IOError {
                        err: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10s"),
                    })),
                }
            })
            .await
    }

    async fn local(&self) -> Result<&Docker, SwarmError> {
        self.local
            .get_or_try_init(async || {
                crate::runtime::docker::connect().await.map_err(|e| SwarmError::Connect {
                    host: "the local engine".to_owned(),
                    source: bollard::errors::Error::IOError { err: std::io::Error::other(e.to_string()) },
                })
            })
            .await
    }

    fn block<T>(&self, f: impl AsyncFnOnce() -> Result<T, SwarmError>) -> Result<T, RuntimeError> {
        self.build.block_on(f()).map_err(RuntimeError::from)
    }

    /// Tag `local` as `remote` and push it from the local engine.
    async fn push(&self, local_tag: &str, remote: &str, progress: &Progress) -> Result<(), SwarmError> {
        let docker = self.local().await?;
        let (repo, tag) = remote.rsplit_once(':').unwrap_or((remote, "latest"));
        docker
            .tag_image(
                local_tag,
                Some(TagImageOptions { repo: Some(repo.to_owned()), tag: Some(tag.to_owned()) }),
            )
            .await
            .map_err(engine("tag", local_tag))?;
        let t = Instant::now();
        let mut stream = docker.push_image(
            repo,
            Some(PushImageOptions { tag: Some(tag.to_owned()), ..Default::default() }),
            None,
        );
        let mut result = Ok(());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        result = Err(SwarmError::Push { image: remote.to_owned(), detail: e });
                    }
                }
                Err(e) => result = Err(SwarmError::Push { image: remote.to_owned(), detail: e.to_string() }),
            }
        }
        // The registry's name was only needed for the push.
        let _ = docker
            .remove_image(remote, Some(RemoveImageOptions { noprune: true, ..Default::default() }), None)
            .await;
        result?;
        progress.detail(&format!("pushed {remote} ({:.1}s)", t.elapsed().as_secs_f64()));
        Ok(())
    }

    async fn image_of(&self, app: &AppName, release: ReleaseId) -> Result<ReleaseImage, SwarmError> {
        let docker = self.local().await?;
        release_image(docker, app, release).await.map_err(|e| SwarmError::Push {
            image: docker_labels::image_tag(app, release),
            detail: e.to_string(),
        })
    }

    fn shared_of(&self, plan: &DeployPlan) -> Result<Option<spec::SharedMount>, SwarmError> {
        if !plan.mount {
            return Ok(None);
        }
        let s = shared::load(&self.home, &plan.app)?;
        Ok(Some(s.shared.ok_or_else(|| SharedError::NotConfigured { app: plan.app.clone() })?))
    }

    async fn run_script_in(
        &self,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), SwarmError> {
        let settings = self.settings()?;
        let image = self.image_of(&plan.app, plan.release).await?;
        let shared = self.shared_of(plan)?;
        let what = if plan.predeploy.as_ref().is_some_and(|p| std::ptr::eq(p, script)) {
            "predeploy"
        } else if script.command.is_some() {
            "release"
        } else {
            "postdeploy"
        };
        let args = crate::runtime::kubernetes::render::script_args(script);
        let input =
            task_input(plan, &image, &settings.registry, shared.as_ref(), args, "release.1".to_owned());
        let job = spec::job_service(spec::job_name(&plan.app, plan.release, what), &input, None);
        let docker = self.manager().await?;
        let mut tail = Vec::new();
        let mut sink = |l: &str| {
            progress.detail(l);
            tail.push(l.to_owned());
        };
        let outcomes = jobs::run(docker, job, 1, script.timeout + PULL_ALLOWANCE, &mut sink).await?;
        if let Some(o) = outcomes.first() {
            // Where it ran, for an operator reading a deploy across nodes.
            let nodes = shared::ready_nodes(docker).await.unwrap_or_default();
            let host =
                nodes.iter().find(|(id, _)| *id == o.node).map_or(o.node.as_str(), |(_, h)| h.as_str());
            progress.detail(&format!("{what} ran on node {host}"));
        }
        match outcomes.first() {
            Some(o) if o.succeeded() => Ok(()),
            o => Err(SwarmError::Failed {
                app: plan.app.clone(),
                release: plan.release,
                what: format!("{what} {}", script.path),
                // The exit code when the script ran and failed; swarm's reason when it never ran.
                detail: o.map_or("no task ran".to_owned(), |o| match (o.code, &o.error) {
                    (Some(c), _) if c != 0 => format!("exit code {c}"),
                    (_, Some(e)) => e.clone(),
                    (c, None) => format!("exit code {}", c.unwrap_or(-1)),
                }),
                tail: tail[tail.len().saturating_sub(20)..].join("\n"),
            }),
        }
    }

    async fn web_port(&self, app: &AppName) -> Result<u16, SwarmError> {
        let mut s = shared::load(&self.home, app)?;
        if let Some(p) = s.web_port {
            return Ok(p);
        }
        // A port no other service of the swarm publishes, from the range swarm itself uses.
        let docker = self.manager().await?;
        let services =
            docker.list_services(None::<ListServicesOptions>).await.map_err(engine("list", "services"))?;
        let taken: Vec<i64> = services
            .iter()
            .filter_map(|s| s.endpoint.as_ref()?.ports.clone())
            .flatten()
            .filter_map(|p| p.published_port)
            .collect();
        let hash = app.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let start = u16::try_from(hash % 2700).unwrap_or(0);
        let port = (0..2700u16)
            .map(|i| 30000 + (start + i) % 2700)
            .find(|p| !taken.contains(&i64::from(*p)))
            .unwrap_or(30000 + start);
        s.web_port = Some(port);
        shared::save(&self.home, app, &s)?;
        Ok(port)
    }

    async fn start_in(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, SwarmError> {
        let settings = self.settings()?;
        let image = self.image_of(&plan.app, plan.release).await?;
        let shared = self.shared_of(plan)?;
        let port = if plan.processes.iter().any(|p| p.ptype.is_web()) {
            Some(self.web_port(&plan.app).await?)
        } else {
            None
        };
        let docker = self.manager().await?;
        // Unknown counts as none spare: the old replica stops first, which always makes room.
        let nodes = shared::ready_nodes(docker).await.map_or(0, |n| n.len());
        let mut updated = Vec::new();
        for p in &plan.processes {
            let args = if image.launcher {
                vec![p.ptype.to_string()]
            } else {
                vec!["bash".to_owned(), "-c".to_owned(), p.command.clone()]
            };
            let input = task_input(
                plan,
                &image,
                &settings.registry,
                shared.as_ref(),
                args,
                format!("{}.{{{{.Task.Slot}}}}", p.ptype),
            );
            let web = p.ptype.is_web().then(|| spec::WebService {
                port: port.unwrap_or_default(),
                healthcheck: plan.healthcheck.as_ref(),
                start_period: plan.web_timeout,
                nodes,
            });
            let spec = spec::process_service(&input, &p.ptype, p.instances, web);
            let name = spec::service_name(&plan.app, &p.ptype);
            match inspect(docker, &name).await? {
                Some(existing) => {
                    let version = existing.version.and_then(|v| v.index).unwrap_or_default();
                    docker
                        .update_service(
                            &name,
                            spec,
                            UpdateServiceOptions {
                                version: i32::try_from(version).unwrap_or(i32::MAX),
                                ..Default::default()
                            },
                            None,
                        )
                        .await
                        .map_err(engine("update", &name))?;
                    updated.push(name);
                }
                None => {
                    docker.create_service(spec, None).await.map_err(engine("create", &name))?;
                }
            }
        }
        let deadline = plan.web_timeout + PULL_ALLOWANCE;
        let mut result = Ok(());
        for p in &plan.processes {
            let name = spec::service_name(&plan.app, &p.ptype);
            if let Err(e) = rollout::converge(docker, &name, plan.release, p.instances, deadline).await {
                result = Err(e);
                break;
            }
            progress.detail(&format!("{name}: {} replica(s) of {} running", p.instances, plan.release));
        }
        if result.is_ok() && !plan.settle.is_zero() {
            // The old release is retired only after this: a crash in the period rolls back.
            let t = Instant::now();
            let all: Vec<(String, u32)> = plan
                .processes
                .iter()
                .map(|p| (spec::service_name(&plan.app, &p.ptype), p.instances))
                .collect();
            result = rollout::settle(docker, &all, plan.release, plan.settle, plan.settle + deadline).await;
            if result.is_ok() {
                progress.detail(&format!(
                    "no task of {} failed in the settle period ({:.1}s)",
                    plan.release,
                    t.elapsed().as_secs_f64()
                ));
            }
        }
        if let Err(e) = result {
            // Updated services go back to the running release, and this waits until they
            // serve it again; new ones go with `remove`.
            for name in &updated {
                let _ = rollout::rollback_if(docker, name, plan.release).await;
            }
            for name in &updated {
                if !rollout::wait_rolled_back(docker, name, ROLLBACK_WAIT).await {
                    progress.detail(&format!("{name} has not finished rolling back; swarm goes on with it"));
                }
            }
            return Err(e.into());
        }
        if let Some(port) = port {
            progress.detail(&format!("web is published on port {port} of the nodes that run it"));
        }
        Ok(Started { web_port: None })
    }

    async fn remove_in(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), SwarmError> {
        let settings = self.settings()?;
        let docker = self.manager().await?;
        for s in services(docker, app).await? {
            let labels = s.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
            if labels.get(RELEASE).map(String::as_str) == Some(release.to_string().as_str()) {
                let id = s.id.clone().unwrap_or_default();
                docker.delete_service(&id).await.map_err(engine("remove", &id))?;
            }
        }
        // Nothing runs the image any more: out of the registry, then off every node.
        let repo = spec::image_repo(app);
        if let Some(digest) =
            registry::manifest_digest(&settings.registry, &repo, &release.to_string()).await?
        {
            // A delete by digest takes every tag naming it: never one another release still uses.
            let mut shared_digest = false;
            for tag in registry::tags(&settings.registry, &repo).await? {
                if tag != release.to_string()
                    && registry::manifest_digest(&settings.registry, &repo, &tag).await?.as_deref()
                        == Some(digest.as_str())
                {
                    shared_digest = true;
                }
            }
            if !shared_digest {
                registry::delete_manifest(&settings.registry, &repo, &digest).await?;
            }
        }
        self.clean_nodes(docker, &settings, app, release, grace).await
    }

    /// Remove a release's image from every node: a global job of the stack image (never the
    /// app's, which the app controls) with the node's engine socket, as root.
    async fn clean_nodes(
        &self,
        docker: &Docker,
        settings: &ClusterSettings,
        app: &AppName,
        release: ReleaseId,
        grace: Duration,
    ) -> Result<(), SwarmError> {
        let image = spec::image_ref(&settings.registry, app, release);
        let script = format!(
            "import http.client, socket\n\
             class C(http.client.HTTPConnection):\n    def connect(self):\n        \
             self.sock = socket.socket(socket.AF_UNIX); self.sock.connect('/var/run/docker.sock')\n\
             c = C('localhost'); c.request('DELETE', '/images/{image}?force=1'); r = c.getresponse()\n\
             print(socket.gethostname(), r.status)\n\
             raise SystemExit(0 if r.status in (200, 404) else 1)\n"
        );
        let nodes = shared::ready_nodes(docker).await?;
        let input = TaskInput {
            app,
            release,
            image: stack_ref(&settings.registry),
            workdir: "/".to_owned(),
            args: vec!["python3".to_owned(), "-c".to_owned(), script],
            env: Vec::new(),
            dyno: "cleanup".to_owned(),
            shared: None,
            stop_grace: grace,
        };
        // One global job: a task on every node at once, one service round trip in all.
        let mut job = spec::global_job_service(spec::job_name(app, release, "clean"), &input);
        if let Some(c) = job.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
            c.user = Some("0:0".to_owned());
            c.mounts = Some(vec![bollard::models::Mount {
                target: Some("/var/run/docker.sock".to_owned()),
                source: Some("/var/run/docker.sock".to_owned()),
                typ: Some(bollard::models::MountType::BIND),
                ..Default::default()
            }]);
        }
        let timeout = Duration::from_secs(120);
        let outcomes =
            jobs::run_draining(docker, job, nodes.len(), timeout, jobs::DRAIN_CHECK, &mut |_| {}).await?;
        for (id, host) in &nodes {
            if !outcomes.iter().any(|o| o.node == *id && o.succeeded()) {
                tracing::warn!(node = %host, image = %image, "cannot remove the old image from the node");
            }
        }
        Ok(())
    }

    async fn set_replicas(&self, app: &AppName, f: impl Fn(&ProcessType) -> u32) -> Result<(), SwarmError> {
        let docker = self.manager().await?;
        for s in services(docker, app).await? {
            let Some(ptype) = process_type(&s) else { continue };
            let mut spec = s.spec.clone().unwrap_or_default();
            spec.mode = Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(f(&ptype))) }),
                ..Default::default()
            });
            update(docker, &s, spec).await?;
        }
        Ok(())
    }

    async fn processes_in(&self, app: &AppRecord) -> Result<ProcessReport, SwarmError> {
        let docker = self.manager().await?;
        let nodes = shared::ready_nodes(docker).await.unwrap_or_default();
        let port = shared::load(&self.home, &app.name)?.web_port;
        let mut instances = Vec::new();
        for s in services(docker, &app.name).await? {
            let Some(ptype) = process_type(&s) else { continue };
            let name = s.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
            let tasks = jobs::tasks(docker, &name).await.map_err(engine("list the tasks of", &name))?;
            for t in tasks.iter().filter(|t| t.desired_state == Some(TaskState::RUNNING)) {
                let state = match t.status.as_ref().and_then(|s| s.state) {
                    Some(TaskState::RUNNING) => ProcessState::Up,
                    Some(TaskState::FAILED | TaskState::REJECTED) => ProcessState::Crashed,
                    _ => ProcessState::Starting,
                };
                let node = t
                    .node_id
                    .as_deref()
                    .and_then(|id| nodes.iter().find(|(n, _)| n == id))
                    .map(|(_, h)| h.clone());
                instances.push(InstanceStatus {
                    ptype: ptype.clone(),
                    index: t.slot.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
                    state,
                    pid: None,
                    port: if ptype.is_web() { port } else { None },
                    restarts: 0,
                    started_at_ms: None,
                    last_exit: None,
                    node,
                });
            }
        }
        instances.sort_by(|a, b| (a.ptype.as_str(), a.index).cmp(&(b.ptype.as_str(), b.index)));
        Ok(ProcessReport { running: !app.stopped && !instances.is_empty(), instances })
    }

    async fn logs_in(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), SwarmError> {
        let docker = self.manager().await?;
        let wanted = process.map(|p| p.split_once('.').map_or(p, |(t, _)| t).to_owned());
        let chosen: Vec<Service> = services(docker, &app.name)
            .await?
            .into_iter()
            .filter(|s| process_type(s).is_some_and(|t| wanted.as_deref().is_none_or(|w| w == t.as_str())))
            .collect();
        if chosen.is_empty() {
            return Err(SwarmError::NoProcesses {
                app: app.name.clone(),
                what: process.unwrap_or("any type").to_owned(),
            });
        }
        let streams = chosen.iter().map(|s| {
            let id = s.id.clone().unwrap_or_default();
            let opts = LogsOptions {
                follow,
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            };
            docker.service_logs(&id, Some(opts)).boxed()
        });
        let mut all = futures_util::stream::select_all(streams);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                item = all.next() => {
                    let Some(item) = item else { return Ok(()) };
                    let Ok(chunk) = item else { continue };
                    for line in String::from_utf8_lossy(&chunk.into_bytes()).lines() {
                        sink.line(line).map_err(SwarmError::Stdout)?;
                    }
                    sink.flush().map_err(SwarmError::Stdout)?;
                }
                // Also while the app is silent: a reader that left ends the tail.
                _ = tick.tick() => sink.flush().map_err(SwarmError::Stdout)?,
            }
        }
    }

    async fn run_oneoff_in(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, SwarmError> {
        let plan =
            crate::runtime::docker::runtime::load_plan(&self.home, &app.name, release).map_err(|e| {
                SwarmError::Push {
                    image: docker_labels::image_tag(&app.name, release),
                    detail: e.to_string(),
                }
            })?;
        let settings = self.settings()?;
        let image = self.image_of(&app.name, release).await?;
        let shared = self.shared_of(&plan)?;
        let mut plan = plan;
        plan.env.clone_from(&app.env);
        let args = vec!["bash".to_owned(), "-c".to_owned(), command.script()];
        let input = task_input(&plan, &image, &settings.registry, shared.as_ref(), args, "run.1".to_owned());
        let name = spec::job_name(&app.name, release, &format!("run-{}", std::process::id()));
        let job = spec::job_service(name, &input, None);
        let docker = self.manager().await?;
        let mut sink = |l: &str| println!("{l}");
        let outcomes = jobs::run(docker, job, 1, Duration::from_secs(24 * 3600), &mut sink).await?;
        Ok(outcomes.first().and_then(|o| o.code).map_or(1, |c| i32::try_from(c).unwrap_or(1)))
    }

    async fn reconcile_in(&self, app: &AppRecord) -> Result<Repairs, SwarmError> {
        let repairs = Repairs::default();
        if cluster::load(&self.home).is_err() {
            return Ok(repairs);
        }
        let docker = self.manager().await?;
        let current = app.current.map(|c| c.to_string());
        for s in services(docker, &app.name).await? {
            let labels = s.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
            let id = s.id.clone().unwrap_or_default();
            if labels.get(KIND).map(String::as_str) == Some(KIND_JOB) {
                // The caller holds the app's lock: no command of ours is waiting on this job.
                docker.delete_service(&id).await.map_err(engine("remove", &id))?;
                tracing::info!(app = %app.name, service = %id, "removed a leftover job");
                continue;
            }
            if labels.get(RELEASE) == current.as_ref() {
                continue;
            }
            // Newer than the current release: a deploy killed before its switch; swarm keeps
            // the spec it replaced, so roll back to it. Older, or no current release at all:
            // a process type the current release dropped; it has no place.
            let release: Option<ReleaseId> = labels.get(RELEASE).and_then(|r| r.parse().ok());
            match (release, app.current) {
                (Some(r), Some(c)) if r > c && labels.contains_key(PROCESS) => {
                    if !rollout::rollback_if(docker, &id, r).await {
                        docker.delete_service(&id).await.map_err(engine("remove", &id))?;
                    }
                }
                _ => docker.delete_service(&id).await.map_err(engine("remove", &id))?,
            }
            tracing::info!(app = %app.name, service = %id, "repaired a service of a release that is not current");
        }
        Ok(repairs)
    }
}

/// The app's services (processes and jobs), by label.
async fn services(docker: &Docker, app: &AppName) -> Result<Vec<Service>, SwarmError> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{APP}={app}")])]);
    docker
        .list_services(Some(ListServicesOptions { filters: Some(filters), ..Default::default() }))
        .await
        .map_err(engine("list the services of", app.as_str()))
}

fn process_type(s: &Service) -> Option<ProcessType> {
    let labels = s.spec.as_ref()?.labels.as_ref()?;
    if labels.get(KIND).map(String::as_str) != Some(KIND_PROCESS) {
        return None;
    }
    labels.get(PROCESS)?.parse().ok()
}

async fn inspect(docker: &Docker, name: &str) -> Result<Option<Service>, SwarmError> {
    match docker.inspect_service(name, None::<InspectServiceOptions>).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if crate::runtime::docker::is_not_found(&e) => Ok(None),
        Err(e) => Err(engine("inspect", name)(e)),
    }
}

async fn update(docker: &Docker, s: &Service, spec: ServiceSpec) -> Result<(), SwarmError> {
    let id = s.id.clone().unwrap_or_default();
    let version = s.version.as_ref().and_then(|v| v.index).unwrap_or_default();
    let opts =
        UpdateServiceOptions { version: i32::try_from(version).unwrap_or(i32::MAX), ..Default::default() };
    docker.update_service(&id, spec, opts, None).await.map_err(engine("update", &id))?;
    Ok(())
}

impl Runtime for SwarmRuntime {
    fn build(&self, plan: &mut DeployPlan, repo: &Repo, progress: &Progress) -> Result<(), RuntimeError> {
        self.build.build(plan, repo, progress)?;
        self.block(async || {
            let settings = self.settings()?;
            let stack = crate::runtime::docker::runtime::stack_image(
                &self
                    .home
                    .load_app(&plan.app)
                    .map_err(|e| SwarmError::Push { image: "stack".into(), detail: e.to_string() })?,
            );
            self.push(&stack, &stack_ref(&settings.registry), progress).await?;
            let local = docker_labels::image_tag(&plan.app, plan.release);
            self.push(&local, &spec::image_ref(&settings.registry, &plan.app, plan.release), progress).await
        })
    }

    fn attach_mount(&self, plan: &DeployPlan, progress: &Progress) -> Result<(), RuntimeError> {
        self.block(async || {
            let Some(shared) = self.shared_of(plan)? else { return Ok(()) };
            let settings = self.settings()?;
            let docker = self.manager().await?;
            let mut note = |l: &str| progress.detail(l);
            shared::prove(
                docker,
                &plan.app,
                plan.release,
                &shared,
                &stack_ref(&settings.registry),
                &mut note,
            )
            .await?;
            Ok(())
        })
    }

    fn run_script(
        &self,
        plan: &DeployPlan,
        script: &ScriptSpec,
        progress: &Progress,
    ) -> Result<(), RuntimeError> {
        self.block(async || self.run_script_in(plan, script, progress).await)
    }

    fn start(&self, plan: &DeployPlan, progress: &Progress) -> Result<Started, RuntimeError> {
        self.block(async || self.start_in(plan, progress).await)
    }

    fn remove(&self, app: &AppName, release: ReleaseId, grace: Duration) -> Result<(), RuntimeError> {
        self.block(async || self.remove_in(app, release, grace).await)?;
        // The local build's image, ledger and plan (its own engine connection and runtime).
        self.build.remove(app, release, grace)
    }

    fn processes(&self, app: &AppRecord, _release: ReleaseId) -> Result<ProcessReport, RuntimeError> {
        self.block(async || self.processes_in(app).await)
    }

    fn apply_scale(&self, app: &AppRecord, _release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async || self.set_replicas(&app.name, |t| app.instances(t)).await)
    }

    fn restart(
        &self,
        app: &AppRecord,
        _release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), RuntimeError> {
        self.block(async || {
            let docker = self.manager().await?;
            for s in services(docker, &app.name).await? {
                let Some(t) = process_type(&s) else { continue };
                if only.is_some_and(|o| *o != t) {
                    continue;
                }
                let mut spec = s.spec.clone().unwrap_or_default();
                if let Some(task) = spec.task_template.as_mut() {
                    task.force_update = Some(task.force_update.unwrap_or(0) + 1);
                }
                update(docker, &s, spec).await?;
            }
            Ok(())
        })
    }

    fn stop(&self, app: &AppRecord, _release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async || self.set_replicas(&app.name, |_| 0).await)
    }

    fn start_release(&self, app: &AppRecord, _release: ReleaseId) -> Result<(), RuntimeError> {
        self.block(async || self.set_replicas(&app.name, |t| app.instances(t)).await)
    }

    fn logs(
        &self,
        app: &AppRecord,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn LogSink,
    ) -> Result<(), RuntimeError> {
        self.block(async || self.logs_in(app, process, lines, follow, sink).await)
    }

    fn run_oneoff(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, RuntimeError> {
        self.block(async || self.run_oneoff_in(app, release, command).await)
    }

    fn reconcile(&self, app: &AppRecord) -> Result<Repairs, RuntimeError> {
        self.block(async || self.reconcile_in(app).await)
    }
}

impl From<DockerError> for SwarmError {
    fn from(e: DockerError) -> Self {
        Self::Push { image: String::new(), detail: e.to_string() }
    }
}
