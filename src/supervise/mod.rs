//! Process supervision for the local runtime. One supervisor process runs per release,
//! detached from the CLI that started it: it starts every instance, restarts crashed ones with
//! backoff, writes their logs, and stops them gracefully. The CLI talks to it with signals
//! (TERM: stop everything; HUP: re-read the scale; USR1: restart) and reads its status file.

pub mod backoff;
pub mod cgroup;
pub mod launch;
pub mod logs;
pub mod process;
pub mod reaper;
pub mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::DeployPlan;
use crate::ports;
use crate::state::{FileLock, Home, ReleasePaths, StateError, atomic};
use backoff::Backoff;
use logs::RotatingLog;
use process::ProcessEnv;
use status::{InstanceStatus, ProcessState, SPAWN_FAILED, SupervisorStatus, now_ms};

/// Failures of a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("a supervisor for release {release} of app {app} is already running")]
    AlreadyRunning { app: AppName, release: ReleaseId },
    #[error("release {release} of app {app} has no plan at {path}; redeploy the app")]
    NoPlan { app: AppName, release: ReleaseId, path: std::path::PathBuf },
    #[error("cannot write supervisor state in {0}")]
    Io(std::path::PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tree(#[from] crate::state::tree::TreeError),
}

struct Ctx {
    penv: ProcessEnv,
    paths: ReleasePaths,
    logs_dir: std::path::PathBuf,
    grace: Duration,
    status: Mutex<SupervisorStatus>,
    /// Web ports of this release's previous supervisor (a full restart), reused when free.
    previous_ports: BTreeMap<(ProcessType, u32), u16>,
}

impl Ctx {
    fn update(&self, ptype: &ProcessType, index: u32, f: impl FnOnce(&mut InstanceStatus)) {
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = st.instances.iter_mut().find(|i| &i.ptype == ptype && i.index == index) {
            f(i);
        }
        if let Err(e) = st.write(&self.paths.status()) {
            tracing::warn!(error = %e, "cannot write status file");
        }
    }
}

struct Handle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Run the supervisor of `release` until it is told to stop. Blocks.
pub fn run(home: &Home, app: &AppName, release: ReleaseId) -> Result<(), SuperviseError> {
    let app_paths = home.app(app);
    let paths = app_paths.release(release);
    let Some(_lock) = FileLock::claim(&paths.supervisor_lock(), crate::detached::CLAIM_PATIENCE)
        .map_err(StateError::from)?
    else {
        return Err(SuperviseError::AlreadyRunning { app: app.clone(), release });
    };
    let io = |e| SuperviseError::Io(paths.state_dir().to_owned(), e);
    // Whatever a process starts, even in a new session, stays below this supervisor and goes
    // when the release is retired.
    reaper::become_subreaper();
    // And with cgroup v2, everything stays in the release's cgroup, which also holds what a
    // predecessor killed with -9 left: that is killed first.
    if let Some(cg) = cgroup::path(home.root(), app, release) {
        cgroup::enter(&cg);
    }
    // The release folder is where the processes run: it must still be slipway's, not a
    // directory or link an app put in its place.
    crate::state::tree::open(home.root(), paths.dir())?;
    // A supervisor killed with -9 leaves its web ports recorded; they are reused when free.
    // Nothing else is taken from the old status: a supervisor signals only what it spawned.
    let previous_ports: BTreeMap<(ProcessType, u32), u16> = SupervisorStatus::read(&paths.status())
        .map(|old| old.instances.iter().filter_map(|i| Some(((i.ptype.clone(), i.index), i.port?))).collect())
        .unwrap_or_default();
    // Nobody may read a dead predecessor's ports as live; `launch::start` waits for the pid
    // file, which is written only after this.
    match std::fs::remove_file(paths.status()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    atomic::replace_volatile(&paths.supervisor_pid(), std::process::id().to_string().as_bytes())
        .map_err(io)?;
    let plan: DeployPlan = std::fs::read(paths.plan())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| SuperviseError::NoPlan { app: app.clone(), release, path: paths.plan() })?;
    let record = home.load_app(app)?;
    let ctx = Arc::new(Ctx {
        penv: ProcessEnv {
            cwd: paths.app(),
            home: paths.home(),
            env: record.env.clone(),
            // Who the processes run as comes from the app's record, the one source of truth.
            run_as: record.run_as.clone(),
            launcher: plan.runs_launcher().then(|| paths.launcher()),
        },
        paths: paths.clone(),
        logs_dir: app_paths.logs_dir(),
        grace: plan.stop_grace,
        status: Mutex::new(SupervisorStatus {
            app: app.clone(),
            release,
            supervisor_pid: std::process::id(),
            instances: Vec::new(),
        }),
        previous_ports,
    });
    tracing::info!(app = %app, release = %release, pid = std::process::id(), "supervisor started");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io)?;
    rt.block_on(supervise(home, &ctx, &plan)).map_err(io)?;
    let _ = std::fs::remove_file(paths.supervisor_pid());
    Ok(())
}

async fn supervise(home: &Home, ctx: &Arc<Ctx>, plan: &DeployPlan) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut running: BTreeMap<(ProcessType, u32), Handle> = BTreeMap::new();
    let desired = |home: &Home| -> BTreeMap<ProcessType, u32> {
        let record = home.load_app(&plan.app).ok();
        plan.processes
            .iter()
            // A type never scaled keeps the plan's count: a buildpack's non-default types start
            // at 0, where the record's own default (1) is for Procfile types.
            .map(|p| {
                let scaled = record.as_ref().and_then(|r| r.scale.get(&p.ptype).copied());
                (p.ptype.clone(), scaled.unwrap_or(p.instances))
            })
            .collect()
    };
    apply_scale(ctx, plan, &desired(home), &mut running).await;
    let mut reap = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            _ = reap.tick() => {
                // Daemons an app started and that have since exited. The leaders' pids are
                // kept: their statuses belong to their tasks. The runtime is single-threaded,
                // so no leader can be spawned and not yet recorded while this runs.
                let leaders: Vec<u32> = ctx.status.lock().unwrap_or_else(PoisonError::into_inner)
                    .instances.iter().filter_map(|i| i.pid).collect();
                reaper::reap_exited(&leaders);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => apply_scale(ctx, plan, &desired(home), &mut running).await,
            _ = usr1.recv() => {
                let path = ctx.paths.restart_request();
                let only: Option<ProcessType> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).flatten();
                let _ = std::fs::remove_file(&path);
                let keys: Vec<_> = running.keys().filter(|(t, _)| only.as_ref().is_none_or(|o| o == t)).cloned().collect();
                for key in keys {
                    if let Some(h) = running.remove(&key) {
                        stop_instance(h).await;
                    }
                    let spec = plan.processes.iter().find(|p| p.ptype == key.0);
                    if let Some(spec) = spec {
                        running.insert(key.clone(), start_instance(ctx, &key.0, key.1, &spec.command));
                    }
                }
            }
        }
    }
    let handles: Vec<Handle> = std::mem::take(&mut running).into_values().collect();
    for h in &handles {
        let _ = h.stop.send(true);
    }
    for h in handles {
        let _ = h.task.await;
    }
    // Every process group is gone; what is left escaped its group (a double fork, `setsid`)
    // and was reparented to us. The release is retired: nothing it started may outlive it.
    let left = reaper::kill_children(None, Duration::from_secs(5));
    if left > 0 {
        tracing::info!(app = %plan.app, release = %plan.release, left, "killed processes that left their group");
    }
    Ok(())
}

/// How often adopted daemons that exited are reaped.
const REAP_EVERY: Duration = Duration::from_secs(2);

async fn apply_scale(
    ctx: &Arc<Ctx>,
    plan: &DeployPlan,
    desired: &BTreeMap<ProcessType, u32>,
    running: &mut BTreeMap<(ProcessType, u32), Handle>,
) {
    let extra: Vec<_> =
        running.keys().filter(|(t, i)| *i > desired.get(t).copied().unwrap_or(0)).cloned().collect();
    for key in extra {
        if let Some(h) = running.remove(&key) {
            stop_instance(h).await;
        }
        let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
        st.instances.retain(|i| !(i.ptype == key.0 && i.index == key.1));
        let _ = st.write(&ctx.paths.status());
    }
    for spec in &plan.processes {
        for index in 1..=desired.get(&spec.ptype).copied().unwrap_or(0) {
            running
                .entry((spec.ptype.clone(), index))
                .or_insert_with(|| start_instance(ctx, &spec.ptype, index, &spec.command));
        }
    }
}

async fn stop_instance(h: Handle) {
    let _ = h.stop.send(true);
    let _ = h.task.await;
}

fn start_instance(ctx: &Arc<Ctx>, ptype: &ProcessType, index: u32, command: &str) -> Handle {
    let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
    // A restarted instance (`ps restart`, `config set`, `ps stop` + `ps start`) keeps its port
    // when it is free, so the address `deploy` printed keeps working for the life of the release.
    let previous = st
        .instances
        .iter()
        .find(|i| &i.ptype == ptype && i.index == index)
        .and_then(|i| i.port)
        .or_else(|| ctx.previous_ports.get(&(ptype.clone(), index)).copied());
    let port = if ptype.is_web() {
        previous.filter(|p| ports::is_free(*p)).or_else(ports::free_loopback_port)
    } else {
        None
    };
    st.instances.retain(|i| !(&i.ptype == ptype && i.index == index));
    st.instances.push(InstanceStatus {
        ptype: ptype.clone(),
        index,
        state: ProcessState::Starting,
        pid: None,
        port,
        restarts: 0,
        started_at_ms: None,
        last_exit: None,
        node: None,
    });
    st.instances.sort_by(|a, b| (&a.ptype, a.index).cmp(&(&b.ptype, b.index)));
    drop(st);
    let (stop, rx) = watch::channel(false);
    let task =
        tokio::spawn(run_instance(Arc::clone(ctx), ptype.clone(), index, command.to_owned(), port, rx));
    Handle { stop, task }
}

async fn run_instance(
    ctx: Arc<Ctx>,
    ptype: ProcessType,
    index: u32,
    command: String,
    port: Option<u16>,
    mut stop: watch::Receiver<bool>,
) {
    let name = format!("{ptype}.{index}");
    let release = ctx.status.lock().unwrap_or_else(PoisonError::into_inner).release;
    let log_path = ctx.logs_dir.join(logs::file_name(&ptype, index, release));
    let log = match RotatingLog::open(&log_path, logs::MAX_BYTES) {
        Ok(l) => Arc::new(Mutex::new(l)),
        Err(e) => {
            tracing::error!(error = %e, path = %log_path.display(), "cannot open log");
            return;
        }
    };
    let say = |text: &str| {
        let _ = log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .line(&format!("{release} slipway"), &format!("{name} {text}"));
    };
    let mut backoff = Backoff::default();
    let mut restarts = 0u32;
    let mut extra = vec![("DYNO", name.clone()), ("PS", name.clone())];
    if let Some(p) = port {
        extra.push(("PORT", p.to_string()));
    }
    loop {
        if *stop.borrow() {
            break;
        }
        say(&format!("starting: {}", shorten(&command)));
        let started = Instant::now();
        let spawned = tokio::process::Command::from(ctx.penv.command(&command, &extra, true)).spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let why = ctx.penv.explain_spawn_error(&command, &e);
                say(&format!("{SPAWN_FAILED}{why}"));
                let wait = backoff.on_exit(Duration::ZERO);
                restarts = restarts.saturating_add(1);
                ctx.update(&ptype, index, |i| {
                    i.state = ProcessState::Crashed;
                    i.last_exit = Some(format!("{SPAWN_FAILED}{why}"));
                    i.restarts = restarts;
                });
                if sleep_or_stop(wait, &mut stop).await {
                    break;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        for out in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
            tokio::spawn(copy_lines(out, Arc::clone(&log), format!("{release} {name}")));
        }
        let up_now = port.is_none();
        ctx.update(&ptype, index, |i| {
            i.pid = Some(pid);
            i.state = if up_now { ProcessState::Up } else { ProcessState::Starting };
            i.started_at_ms = Some(now_ms());
            i.restarts = restarts;
        });
        let mut probing = port.is_some();
        let exit = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                _ = stop.changed() => break None,
                () = probe(port), if probing => {
                    probing = false;
                    ctx.update(&ptype, index, |i| i.state = ProcessState::Up);
                    say(&format!("up, accepting connections on port {}", port.unwrap_or(0)));
                }
            }
        };
        let Some(status) = exit else {
            say("stopping (SIGTERM)");
            process::stop_group(pid, ctx.grace, &mut child).await;
            ctx.update(&ptype, index, |i| {
                i.state = ProcessState::Stopped;
                i.pid = None;
            });
            say("stopped");
            return;
        };
        // The leader is gone; anything it left in its group goes with it.
        process::signal_group(pid, rustix::process::Signal::KILL);
        let how = status.map_or_else(|e| e.to_string(), describe_exit);
        let wait = backoff.on_exit(started.elapsed());
        tracing::info!(instance = %name, exit = %how, restart_in = ?wait, "process exited");
        restarts = restarts.saturating_add(1);
        say(&format!("{how}; restarting in {}", humantime::format_duration(wait)));
        ctx.update(&ptype, index, |i| {
            i.state = ProcessState::Crashed;
            i.pid = None;
            i.last_exit = Some(how.clone());
            i.restarts = restarts;
        });
        if sleep_or_stop(wait, &mut stop).await {
            break;
        }
    }
    ctx.update(&ptype, index, |i| i.state = ProcessState::Stopped);
}

/// A command as log lines show it: a Procfile line can be megabytes long, and is logged at
/// every restart.
fn shorten(command: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    if command.len() <= MAX {
        return command.into();
    }
    let mut end = MAX;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &command[..end], command.len()).into()
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".to_owned(),
    }
}

/// Sleep for `d`; true if told to stop meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn probe(port: Option<u16>) {
    let Some(port) = port else { return std::future::pending().await };
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn boxed(r: impl AsyncRead + Unpin + Send + 'static) -> Box<dyn AsyncRead + Unpin + Send> {
    Box::new(r)
}

async fn copy_lines(out: Box<dyn AsyncRead + Unpin + Send>, log: Arc<Mutex<RotatingLog>>, name: String) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let _ = log.lock().unwrap_or_else(PoisonError::into_inner).line(&name, &text);
            }
        }
    }
}
