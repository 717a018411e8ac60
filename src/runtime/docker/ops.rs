//! The Docker runtime's process operations: start a release's containers and wait until it is
//! healthy, and day-to-day ps, scale, restart, stop, start, logs, one-off runs and repair.
//!
//! One function, [`DockerRuntime::converge`], makes a release's process containers match its
//! plan (type → instance count); start, scale, restart and reconciliation all go through it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{LogsOptions, StopContainerOptions};
use futures_util::StreamExt;

use super::container::{self, AppContainer, ContainerError};
use super::image;
use super::labels::{self, Kind};
use super::reconcile::{self, is_finished_task};
use super::runtime::{
    DockerError, DockerRuntime, env_list, load_plan, planned_releases, release_image, remove_plan, save_plan,
};
use crate::health::{Gate, Settle, Settled};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DEFAULT_STOP_GRACE, DeployPlan};
use crate::runtime::{ProcessReport, Repairs};
use crate::state::AppRecord;
use crate::supervise::status::{InstanceStatus, ProcessState};

/// Restarts of one container while starting before the deploy gives up, as on the local runtime.
const CRASHES_BEFORE_GIVING_UP: i64 = 3;
/// Log lines shown when a process fails to start (the same count as on the local runtime).
const TAIL: u64 = crate::health::FAILURE_TAIL as u64;

/// Which containers [`DockerRuntime::converge`] replaces even if they run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Recreate<'a> {
    Nothing,
    All,
    Type(&'a ProcessType),
}

impl Recreate<'_> {
    fn covers(self, ptype: &str) -> bool {
        match self {
            Recreate::Nothing => false,
            Recreate::All => true,
            Recreate::Type(t) => t.as_str() == ptype,
        }
    }
}

/// The release's process containers (not its build or one-off ones).
async fn process_containers(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
) -> Result<Vec<AppContainer>, ContainerError> {
    let all = container::list_containers(docker, app, Some(release)).await?;
    Ok(all.into_iter().filter(|c| c.kind() == Some(Kind::Process)).collect())
}

fn index_of(c: &AppContainer) -> Option<u32> {
    c.labels.get(labels::INDEX).and_then(|i| i.parse().ok())
}

impl DockerRuntime {
    /// Make the release's process containers match `plan`: create missing ones, start stopped
    /// ones, remove extra ones, and replace those `recreate` covers. Returns web.1's port.
    pub(super) async fn converge(
        &self,
        docker: &Docker,
        plan: &DeployPlan,
        recreate: Recreate<'_>,
    ) -> Result<Option<u16>, DockerError> {
        let image = release_image(docker, &plan.app, plan.release).await?;
        let volume = self.mount_volume(docker, &plan.app).await?;
        let existing = process_containers(docker, &plan.app, plan.release).await?;
        let wanted: BTreeSet<(String, u32)> = plan
            .processes
            .iter()
            .flat_map(|p| (1..=p.instances).map(move |i| (p.ptype.to_string(), i)))
            .collect();
        for c in &existing {
            let key = (c.process_type().unwrap_or_default().to_owned(), index_of(c).unwrap_or(0));
            if !wanted.contains(&key) {
                container::stop_and_remove(docker, &c.id, plan.stop_grace).await?;
            }
        }
        let mut web_port = None;
        let limits = super::limits::load(&self.home, &plan.app)?;
        for p in &plan.processes {
            for index in 1..=p.instances {
                let mut spec = container::ProcessSpec::new(
                    plan.app.clone(),
                    plan.release,
                    p.ptype.clone(),
                    index,
                    image.tag.clone(),
                );
                spec.cmd = Some(if image.launcher {
                    vec![p.ptype.to_string()]
                } else {
                    vec!["bash".to_owned(), "-c".to_owned(), p.command.clone()]
                });
                spec.env = env_list(&plan.env, &format!("{}.{index}", p.ptype));
                spec.mount_volume.clone_from(&volume);
                spec.workdir.clone_from(&image.workdir);
                spec.limits.clone_from(&limits);
                let name = spec.name();
                let found = existing.iter().find(|c| c.name == name);
                match found {
                    Some(c) if !recreate.covers(p.ptype.as_str()) => {
                        if !c.is_running() {
                            docker.start_container(&name, None).await.map_err(|source| {
                                ContainerError::Engine { what: "start", container: name.clone(), source }
                            })?;
                        }
                    }
                    _ => {
                        if found.is_some() {
                            // The replacement keeps web's port: the address stays valid.
                            spec.web_port = container::published_port(docker, &name).await?;
                            container::stop_and_remove(docker, &name, plan.stop_grace).await?;
                        }
                        container::start_process(docker, &spec).await?;
                    }
                }
                if p.ptype.is_web() && index == 1 {
                    web_port = container::published_port(docker, &name).await?;
                }
            }
        }
        Ok(web_port)
    }

    pub(super) async fn apply_scale_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
        release: ReleaseId,
    ) -> Result<(), DockerError> {
        let plan = self.scaled_plan(app, release, false)?;
        if !app.stopped {
            self.converge(docker, &plan, Recreate::Nothing).await?;
        }
        Ok(())
    }

    pub(super) async fn restart_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), DockerError> {
        let plan = self.scaled_plan(app, release, true)?;
        let recreate = only.map_or(Recreate::All, Recreate::Type);
        self.converge(docker, &plan, recreate).await.map(drop)
    }

    pub(super) async fn stop_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
        release: ReleaseId,
    ) -> Result<(), DockerError> {
        let grace = load_plan(&self.home, &app.name, release).map_or(DEFAULT_STOP_GRACE, |p| p.stop_grace);
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let containers = process_containers(docker, &app.name, release).await?;
        let stops = containers.iter().map(|c| async move {
            let options = StopContainerOptions { t: Some(secs), signal: None };
            match docker.stop_container(&c.id, Some(options)).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {
                    Ok(())
                }
                Err(source) => {
                    Err(ContainerError::Engine { what: "stop", container: c.name.clone(), source })
                }
            }
        });
        for r in futures_util::future::join_all(stops).await {
            r?;
        }
        Ok(())
    }

    pub(super) async fn start_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
        release: ReleaseId,
    ) -> Result<(), DockerError> {
        let plan = self.scaled_plan(app, release, false)?;
        self.converge(docker, &plan, Recreate::Nothing).await.map(drop)
    }

    /// The release's plan with the app's current scale (and, with `fresh_env`, its current
    /// config vars), saved for later commands.
    fn scaled_plan(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        fresh_env: bool,
    ) -> Result<DeployPlan, DockerError> {
        let mut plan = load_plan(&self.home, &app.name, release)?;
        // A type never scaled keeps the plan's count (a buildpack's non-default types: 0).
        for p in &mut plan.processes {
            if let Some(n) = app.scale.get(&p.ptype) {
                p.instances = *n;
            }
        }
        if fresh_env {
            plan.env.clone_from(&app.env);
        }
        save_plan(&self.home, &plan)?;
        Ok(plan)
    }

    /// An interactive one-off through the docker CLI, which handles the terminal (raw mode,
    /// resizes, signals) better than we could by hand. Same image, user, mounts and labels as
    /// the process containers; `--rm` removes it, reconciliation removes it if docker dies.
    pub(super) async fn run_oneoff_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, DockerError> {
        use std::io::IsTerminal;
        use std::os::unix::process::ExitStatusExt;
        let image = release_image(docker, &app.name, release).await?;
        let volume = self.mount_volume(docker, &app.name).await?;
        let name = labels::task_container_name(&app.name, release, &format!("run-{}", std::process::id()));
        let mut cmd = std::process::Command::new("docker");
        cmd.args(["run", "--rm", "-i", "--init", "--name", &name]);
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            cmd.arg("-t");
        }
        for (k, v) in labels::release_labels(&app.name, release, Kind::OneOff) {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        super::limits::ensure_network(docker, &app.name).await.map_err(|source| ContainerError::Engine {
            what: "make the network of",
            container: name.clone(),
            source,
        })?;
        cmd.args(super::limits::run_flags(&super::limits::load(&self.home, &app.name)?, &app.name));
        cmd.args(["--user", super::CONTAINER_USER, "--workdir", &image.workdir]);
        cmd.arg("--env").arg(format!("HOME={}", super::CONTAINER_HOME));
        // Values through docker's own environment, so config vars stay out of `ps` listings.
        for entry in env_list(&app.env, "run.1") {
            if let Some((k, v)) = entry.split_once('=') {
                cmd.arg("--env").arg(k).env(k, v);
            }
        }
        if let Some(v) = &volume {
            for m in container::mount_points(v, &image.workdir) {
                cmd.arg("--mount").arg(format!("type=volume,src={v},dst={}", m.target.unwrap_or_default()));
            }
        }
        cmd.arg(&image.tag).args(super::oneoff::oneoff_cmd(command));
        let status = cmd.status().map_err(DockerError::DockerCli)?;
        Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
    }

    /// Remove everything of releases other than the current one (gracefully stopping their
    /// processes first: a deploy killed after the switch leaves the old release running), and
    /// bring the current release's processes back if they should run but do not.
    pub(super) async fn reconcile_of(
        &self,
        docker: &Docker,
        app: &AppRecord,
    ) -> Result<Repairs, DockerError> {
        let keep: Vec<ReleaseId> = app.current.into_iter().collect();
        let mut removed = BTreeSet::new();
        let containers = container::list_containers(docker, &app.name, None).await?;
        let working_copy = self.home.app(&app.name).workspace_dir().join("app");
        for c in &containers {
            // A workspace container outlives no working copy (a killed `workspace delete`).
            if c.kind() == Some(Kind::Workspace) && !working_copy.is_dir() {
                container::remove_container(docker, &c.id).await?;
                continue;
            }
            let Some(r) = c.release().filter(|r| reconcile::is_orphan(Some(*r), &keep)) else { continue };
            removed.insert(r);
            if c.kind() == Some(Kind::Process) && c.is_running() {
                let grace = load_plan(&self.home, &app.name, r).map_or(DEFAULT_STOP_GRACE, |p| p.stop_grace);
                container::stop_and_remove(docker, &c.id, grace).await?;
            }
        }
        for i in image::list_images(docker, &app.name).await? {
            removed.extend(i.release.filter(|r| reconcile::is_orphan(Some(*r), &keep)));
        }
        let ledger = super::ledger::Ledger::of(&self.home, &app.name);
        removed.extend(ledger.releases().into_iter().filter(|r| {
            reconcile::is_orphan(Some(*r), &keep) && !ledger.load(*r).is_ok_and(|i| i.only_bases())
        }));
        reconcile::reconcile(docker, &app.name, &ledger, &keep).await?;
        for r in planned_releases(&self.home, &app.name) {
            if !keep.contains(&r) {
                remove_plan(&self.home, &app.name, r);
            }
        }
        let mut repairs = Repairs { removed: removed.into_iter().collect(), restarted: None };
        if let Some(current) = app.current
            && !app.stopped
            && let Ok(plan) = load_plan(&self.home, &app.name, current)
        {
            let running = containers
                .iter()
                .filter(|c| c.release() == Some(current) && c.kind() == Some(Kind::Process) && c.is_running())
                .count();
            let expected: u32 = plan.processes.iter().map(|p| p.instances).sum();
            if running < expected as usize {
                self.converge(docker, &plan, Recreate::Nothing).await?;
                repairs.restarted = Some(current);
            }
        }
        Ok(repairs)
    }
}

/// Wait until the started release is healthy: every container runs, web answers HTTP (below
/// 500, or 2xx/3xx at the health check path if there is one), and nothing restarts for the
/// settle period; a crash loop, or a crash in the settle period, fails fast with its last log
/// lines.
pub(super) async fn wait_healthy(
    docker: &Docker,
    plan: &DeployPlan,
    web_port: Option<u16>,
) -> Result<(), DockerError> {
    let deadline = Instant::now() + plan.web_timeout;
    let mut check = Some(Gate::new(plan.healthcheck.clone()));
    let mut settle = Settle::new(plan.settle);
    // Each container's restarts when the release first became healthy, to name a crash.
    let mut baseline: Option<Vec<(String, i64)>> = None;
    loop {
        let mut all_running = true;
        let mut counts = Vec::new();
        for c in process_containers(docker, &plan.app, plan.release).await? {
            let info = docker.inspect_container(&c.id, None).await.map_err(|source| {
                ContainerError::Engine { what: "inspect", container: c.name.clone(), source }
            })?;
            let restarts = info.restart_count.unwrap_or(0);
            let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false)
                && !info.state.as_ref().and_then(|s| s.restarting).unwrap_or(false);
            if restarts >= CRASHES_BEFORE_GIVING_UP {
                let instance = format!(
                    "{}.{}",
                    c.process_type().unwrap_or("?"),
                    c.labels.get(labels::INDEX).map_or("?", String::as_str)
                );
                return Err(DockerError::Crashing {
                    instance,
                    restarts: u32::try_from(restarts).unwrap_or(u32::MAX),
                    tail: log_tail(docker, &c.id).await,
                });
            }
            all_running &= running;
            counts.push((c.name.clone(), restarts));
        }
        let web_ok = match (web_port, check.take()) {
            (Some(port), Some(mut gate)) => {
                // The probe blocks; the gate goes to a blocking thread and comes back.
                let (gate, ok) = tokio::task::spawn_blocking(move || {
                    let ok = gate.passes(port);
                    (gate, ok)
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                check = Some(gate);
                ok
            }
            (None, gate) | (Some(_), gate @ None) => {
                check = gate;
                true
            }
        };
        let healthy = all_running && web_ok;
        let total = counts.iter().map(|(_, r)| u32::try_from(*r).unwrap_or(u32::MAX)).sum();
        match settle.observe(Instant::now(), healthy, total) {
            Settled::Ready => return Ok(()),
            Settled::Crashed => {
                let before = baseline.unwrap_or_default();
                let crashed = counts
                    .iter()
                    .find(|(name, r)| before.iter().any(|(n, b)| n == name && r > b))
                    .map_or_else(|| counts.first().map(|c| c.0.clone()).unwrap_or_default(), |c| c.0.clone());
                return Err(DockerError::CrashedSettling {
                    tail: log_tail(docker, &crashed).await,
                    instance: crashed,
                    settle: plan.settle,
                });
            }
            Settled::Waiting if healthy && baseline.is_none() => baseline = Some(counts),
            Settled::Waiting => {}
        }
        if Instant::now() >= deadline {
            let web =
                labels::container_name(&plan.app, plan.release, &"web".parse().expect("web is a type"), 1);
            let (port, timeout, tail) =
                (web_port.unwrap_or(0), plan.web_timeout, log_tail(docker, &web).await);
            if let Some(last) = check.as_ref().and_then(Gate::failing) {
                return Err(DockerError::Unhealthy { port, timeout, last, tail });
            }
            return Err(DockerError::WebTimeout { port, timeout, tail });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_tail(docker: &Docker, container: &str) -> String {
    let mut lines = Vec::new();
    let mut sink = |l: &str| lines.push(format!("    {l}"));
    let _ = container::logs(docker, container, false, Some(TAIL), &mut sink).await;
    lines.join("\n")
}

/// The processes of a release, from the engine.
pub(super) async fn processes(
    docker: &Docker,
    app: &AppRecord,
    release: ReleaseId,
) -> Result<ProcessReport, DockerError> {
    use bollard::models::ContainerStateStatusEnum as S;
    let mut instances = Vec::new();
    for c in process_containers(docker, &app.name, release).await? {
        let (Some(ptype), Some(index)) = (c.process_type().and_then(|t| t.parse().ok()), index_of(&c)) else {
            continue;
        };
        let info = docker.inspect_container(&c.id, None).await.map_err(|source| ContainerError::Engine {
            what: "inspect",
            container: c.name.clone(),
            source,
        })?;
        let state = info.state.unwrap_or_default();
        let exit = state.exit_code.unwrap_or(0);
        let status = match state.status {
            Some(S::RUNNING) => ProcessState::Up,
            Some(S::RESTARTING | S::DEAD) => ProcessState::Crashed,
            Some(S::EXITED) if exit != 0 && !app.stopped => ProcessState::Crashed,
            Some(S::CREATED) => ProcessState::Starting,
            _ => ProcessState::Stopped,
        };
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&format!("{}/tcp", container::WEB_PORT)).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse().ok());
        let started_at_ms = state
            .started_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .filter(|_| status == ProcessState::Up);
        instances.push(InstanceStatus {
            ptype,
            index,
            state: status,
            pid: state.pid.and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0),
            port,
            restarts: u32::try_from(info.restart_count.unwrap_or(0)).unwrap_or(0),
            started_at_ms,
            last_exit: (state.status == Some(S::EXITED) || exit != 0).then(|| format!("exit {exit}")),
            node: None,
        });
    }
    instances.sort_by(|a, b| (a.ptype.as_str(), a.index).cmp(&(b.ptype.as_str(), b.index)));
    let running = !app.stopped && instances.iter().any(|i| i.state == ProcessState::Up);
    Ok(ProcessReport { running, instances })
}

/// Remove the app's finished build and one-off containers and its superseded release images
/// (images go by the ledger alone).
pub(super) async fn prune(
    docker: &Docker,
    app: &AppName,
    ledger: &super::ledger::Ledger,
) -> Result<(), DockerError> {
    for c in container::list_containers(docker, app, None).await? {
        if is_finished_task(c.kind(), &c.state) {
            container::remove_container(docker, &c.id).await?;
        }
    }
    image::prune_superseded(docker, ledger).await?;
    Ok(())
}

/// Print the current release's log lines of `process` (a type, `type.N`, or all) in time
/// order, then follow them.
pub(super) async fn logs(
    docker: &Docker,
    app: &AppRecord,
    process: Option<&str>,
    lines: usize,
    follow: bool,
    sink: &mut dyn crate::runtime::LogSink,
) -> Result<(), DockerError> {
    let what = process.unwrap_or("any process").to_owned();
    let no_processes = || DockerError::NoProcesses { app: app.name.clone(), what: what.clone() };
    let release = app.current.ok_or_else(no_processes)?;
    let selected = select_instances(docker, &app.name, release, process).await?;
    if selected.is_empty() {
        return Err(no_processes());
    }
    // Each line starts with the engine's RFC 3339 timestamp, so text order is time order.
    let mut all: Vec<String> = Vec::new();
    for (instance, c) in &selected {
        let mut s = Box::pin(log_stream(docker, &c.id, instance.clone(), false, lines.to_string(), 0));
        while let Some((instance, item)) = s.next().await {
            let chunk = item.map_err(|source| ContainerError::Engine {
                what: "read the logs of",
                container: c.name.clone(),
                source,
            })?;
            all.extend(format_lines(&instance, release, &chunk.into_bytes()));
        }
    }
    all.sort();
    let gone = |source| DockerError::Io { action: "write", path: "the log reader".into(), source };
    for l in &all[all.len().saturating_sub(lines)..] {
        sink.line(l).map_err(gone)?;
    }
    sink.flush().map_err(gone)?;
    if follow {
        let dumped: BTreeSet<String> = selected.iter().map(|(_, c)| c.id.clone()).collect();
        follow_instances(docker, &app.name, release, process, &dumped, sink).await?;
    }
    Ok(())
}

/// The current release's process containers that `process` (a type, `type.N`, or all)
/// selects, by instance name.
async fn select_instances(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
    process: Option<&str>,
) -> Result<Vec<(String, AppContainer)>, DockerError> {
    Ok(process_containers(docker, app, release)
        .await?
        .into_iter()
        .map(|c| (format!("{}.{}", c.process_type().unwrap_or("?"), index_of(&c).unwrap_or(0)), c))
        .filter(|(instance, c)| match process {
            None => true,
            Some(want) if want.contains('.') => instance == want,
            Some(want) => c.process_type() == Some(want),
        })
        .collect())
}

/// One container's log chunks, each with its instance name.
fn log_stream<'a>(
    docker: &'a Docker,
    id: &str,
    instance: String,
    follow: bool,
    tail: String,
    since: i32,
) -> impl futures_util::Stream<Item = (String, Result<bollard::container::LogOutput, bollard::errors::Error>)> + 'a
{
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        tail,
        since,
        ..Default::default()
    };
    docker.logs(id, Some(options)).map(move |item| (instance.clone(), item))
}

/// Follows the selected instances' new log lines until interrupted; `dumped` holds the
/// containers whose history was just printed.
async fn follow_instances(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
    process: Option<&str>,
    dumped: &BTreeSet<String>,
    sink: &mut dyn crate::runtime::LogSink,
) -> Result<(), DockerError> {
    // A container's log stream ends when it stops: a crash restarts it (same id), `ps
    // restart` replaces it (new id). Every second the followed set is brought up to date,
    // and an instance whose stream ended, or whose container changed, is followed again
    // from the moment its old stream ended.
    enum Event {
        Chunk(String, Result<bollard::container::LogOutput, bollard::errors::Error>),
        End(String, String),
    }
    let gone = |source| DockerError::Io { action: "write", path: "the log reader".into(), source };
    let now = || i32::try_from(crate::state::now_unix()).unwrap_or(i32::MAX);
    let start = now();
    let mut following: HashMap<String, String> = HashMap::new();
    let mut resume: HashMap<String, i32> = HashMap::new();
    let mut merged = futures_util::stream::SelectAll::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(event) = merged.next(), if !merged.is_empty() => match event {
                Event::Chunk(instance, Ok(chunk)) => {
                    for l in format_lines(&instance, release, &chunk.into_bytes()) {
                        sink.line(&l).map_err(gone)?;
                    }
                    sink.flush().map_err(gone)?;
                }
                Event::Chunk(_, Err(_)) => {}
                Event::End(instance, id) => {
                    if following.get(&instance) == Some(&id) {
                        following.remove(&instance);
                        resume.insert(instance, now());
                    }
                }
            },
            _ = tick.tick() => {
                // Also while the app is silent: a reader that left ends the tail.
                sink.flush().map_err(gone)?;
                for (instance, c) in select_instances(docker, app, release, process).await? {
                    if c.state != "running" || following.get(&instance) == Some(&c.id) {
                        continue;
                    }
                    let since = resume.get(&instance).copied().unwrap_or(start);
                    // A container whose history was just printed continues from there; a
                    // new or restarted one is read from `since`, with every line after it.
                    let tail = if dumped.contains(&c.id) && !resume.contains_key(&instance) { "0" } else { "all" };
                    following.insert(instance.clone(), c.id.clone());
                    let end = futures_util::stream::once(std::future::ready(Event::End(instance.clone(), c.id.clone())));
                    let lines = log_stream(docker, &c.id, instance.clone(), true, tail.to_owned(), since)
                        .map(|(instance, item)| Event::Chunk(instance, item));
                    merged.push(Box::pin(lines.chain(end)));
                }
            }
        }
    }
}

/// `<timestamp> <release> <type.N>: <text>` lines, as the local runtime's logs read.
fn format_lines(instance: &str, release: ReleaseId, chunk: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(chunk)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (ts, text) = l.split_once(' ').unwrap_or((l, ""));
            format!("{ts} {release} {instance}: {text}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_carry_time_release_and_instance() {
        let got = format_lines("web.1", ReleaseId::new(3), b"2024-01-02T03:04:05.6Z hello there\n\n");
        assert_eq!(got, ["2024-01-02T03:04:05.6Z v3 web.1: hello there"]);
    }

    #[test]
    fn recreate_selects_types() {
        let web: ProcessType = "web".parse().unwrap();
        assert!(Recreate::All.covers("worker"));
        assert!(Recreate::Type(&web).covers("web"));
        assert!(!Recreate::Type(&web).covers("worker"));
        assert!(!Recreate::Nothing.covers("web"));
    }
}
