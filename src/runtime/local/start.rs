//! Step 4 on the local runtime: start the release's supervisor and wait until the release is
//! healthy: every web instance accepts TCP on its port (or, with a health check, answers it
//! with 2xx/3xx), and nothing has crashed meanwhile.

use std::time::{Duration, Instant};

use super::LocalError;
use crate::health::Gate;
use crate::ids::{AppName, ReleaseId};
use crate::plan::DeployPlan;
use crate::progress::Progress;
use crate::runtime::Started;
use crate::state::Home;
use crate::supervise::launch;
use crate::supervise::status::{ProcessState, SupervisorStatus};

/// Crashes of one instance before the deploy gives up rather than waiting out the timeout.
const CRASHES_BEFORE_GIVING_UP: u32 = 3;
/// How long a release without a web process must run without a crash to count as started.
const SETTLE: Duration = Duration::from_millis(1500);

/// Why a release did not become healthy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{instance} crashed {restarts} times while starting ({last_exit}); its last log lines:\n{tail}")]
    Crashing { instance: String, restarts: u32, last_exit: String, tail: String },
    #[error(
        "web did not accept connections on port {port} within {}; make it listen on $PORT. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    WebTimeout { port: u16, timeout: Duration, tail: String },
    #[error(
        "web on port {port} failed its health check for {}: {last}. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    Unhealthy { port: u16, timeout: Duration, last: String, tail: String },
    #[error("{instance} could not be started: {why}")]
    Spawn { instance: String, why: String },
    #[error("the supervisor of release {release} of app {app} died while starting; see logs/supervisor.log")]
    SupervisorDied { app: AppName, release: ReleaseId },
}

pub(super) fn start(home: &Home, plan: &DeployPlan, progress: &Progress) -> Result<Started, LocalError> {
    launch::start(home, &plan.app, plan.release)?;
    let paths = home.app(&plan.app).release(plan.release);
    let deadline = Instant::now() + plan.web_timeout;
    let has_web = plan.web().is_some_and(|w| w.instances > 0);
    let mut healthy_since: Option<Instant> = None;
    let mut check = plan.healthcheck.clone().map(Gate::new);
    loop {
        let status = SupervisorStatus::read(&paths.status());
        if !launch::is_running(&paths) {
            return Err(StartError::SupervisorDied { app: plan.app.clone(), release: plan.release }.into());
        }
        if let Some(st) = &status {
            if let Some((bad, why)) = st.instances.iter().find_map(|i| Some((i, i.spawn_error()?))) {
                return Err(StartError::Spawn { instance: bad.name(), why: why.to_owned() }.into());
            }
            if let Some(bad) = st.instances.iter().find(|i| i.restarts >= CRASHES_BEFORE_GIVING_UP) {
                return Err(StartError::Crashing {
                    instance: bad.name(),
                    restarts: bad.restarts,
                    last_exit: bad.last_exit.clone().unwrap_or_default(),
                    tail: log_tail(home, plan, &bad.name(), 20),
                }
                .into());
            }
            let expected: u32 = plan.processes.iter().map(|p| p.instances).sum();
            // The deploy probes web ports itself rather than waiting for the supervisor's own
            // probe to reach the status file: that would add its polling period to every deploy.
            let all_up = st.instances.len() >= expected as usize
                && st.instances.iter().all(|i| match i.port {
                    Some(port) if i.pid.is_some() => match &mut check {
                        Some(gate) => gate.passes(port),
                        None => accepts(port),
                    },
                    _ => i.state == ProcessState::Up,
                });
            if all_up {
                let since = *healthy_since.get_or_insert_with(Instant::now);
                if has_web || since.elapsed() >= SETTLE {
                    let web_port = st.web_port();
                    if let Some(port) = web_port {
                        let checked = check.as_ref().map_or(String::new(), |g| format!(" ({})", g.summary()));
                        progress.detail(&format!("web is answering on http://127.0.0.1:{port}/{checked}"));
                    }
                    return Ok(Started { web_port });
                }
            } else {
                healthy_since = None;
            }
        }
        if Instant::now() >= deadline {
            let port = status.as_ref().and_then(SupervisorStatus::web_port).unwrap_or(0);
            let tail = log_tail(home, plan, "web.1", 20);
            if let Some(last) = check.as_ref().and_then(Gate::failing) {
                return Err(StartError::Unhealthy { port, timeout: plan.web_timeout, last, tail }.into());
            }
            return Err(StartError::WebTimeout { port, timeout: plan.web_timeout, tail }.into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn accepts(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The last `n` lines of an instance's log.
pub(super) fn log_tail(home: &Home, plan: &DeployPlan, instance: &str, n: usize) -> String {
    let path = home.app(&plan.app).logs_dir().join(format!("{instance}.{}.log", plan.release));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
