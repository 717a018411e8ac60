//! Step 4 on the local runtime: start the release's supervisor and wait until the release is
//! healthy: every web instance answers HTTP on its port (`health::Gate`), every other instance
//! is up, and nothing crashes for the settle period (`health::Settle`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::LocalError;
use crate::health::{Gate, Settle, Settled};
use crate::ids::{AppName, ReleaseId};
use crate::plan::DeployPlan;
use crate::progress::Progress;
use crate::runtime::Started;
use crate::state::Home;
use crate::supervise::launch;
use crate::supervise::status::{ProcessState, SupervisorStatus};

/// Crashes of one instance before the deploy gives up rather than waiting out the timeout.
const CRASHES_BEFORE_GIVING_UP: u32 = 3;

/// Why a release did not become healthy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{instance} crashed {restarts} times while starting ({last_exit}); its last log lines:\n{tail}")]
    Crashing { instance: String, restarts: u32, last_exit: String, tail: String },
    #[error(
        "web did not accept connections and answer HTTP on port {port} within {}; make it listen on $PORT and serve HTTP. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    WebTimeout { port: u16, timeout: Duration, tail: String },
    #[error(
        "web on port {port} failed its health check for {}: {last}. Its last log lines:\n{tail}",
        humantime::format_duration(*.timeout)
    )]
    Unhealthy { port: u16, timeout: Duration, last: String, tail: String },
    #[error(
        "{instance} crashed {} after the release became healthy ({last_exit}), so it is not switched in; \
         its last log lines:\n{tail}",
        humantime::format_duration(*.settle)
    )]
    CrashedSettling { instance: String, settle: Duration, last_exit: String, tail: String },
    #[error("{instance} could not be started: {why}")]
    Spawn { instance: String, why: String },
    #[error("the supervisor of release {release} of app {app} died while starting; see logs/supervisor.log")]
    SupervisorDied { app: AppName, release: ReleaseId },
}

pub(super) fn start(home: &Home, plan: &DeployPlan, progress: &Progress) -> Result<Started, LocalError> {
    launch::start(home, &plan.app, plan.release)?;
    let paths = home.app(&plan.app).release(plan.release);
    let deadline = Instant::now() + plan.web_timeout;
    // One gate per web port: each instance must answer, and each has its own recent answer.
    let mut gates: BTreeMap<u16, Gate> = BTreeMap::new();
    let mut settle = Settle::new(plan.settle);
    let mut restarts_seen: Vec<(String, u32)> = Vec::new();
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
                    tail: log_tail(home, plan, &bad.name(), crate::health::FAILURE_TAIL),
                }
                .into());
            }
            let expected: u32 = plan.processes.iter().map(|p| p.instances).sum();
            // The deploy probes web ports itself rather than waiting for the supervisor's own
            // probe to reach the status file: that would add its polling period to every deploy.
            let all_up = st.instances.len() >= expected as usize
                && st.instances.iter().all(|i| match i.port {
                    Some(port) if i.pid.is_some() => {
                        gates.entry(port).or_insert_with(|| Gate::new(plan.healthcheck.clone())).passes(port)
                    }
                    _ => i.state == ProcessState::Up,
                });
            let restarts = st.instances.iter().map(|i| i.restarts).sum();
            match settle.observe(Instant::now(), all_up, restarts) {
                Settled::Ready => {
                    let web_port = st.web_port();
                    if let Some(port) = web_port {
                        progress.detail(&format!(
                            "web is answering on http://127.0.0.1:{port}/ ({}), no crash for {}",
                            gates.get(&port).map_or_else(String::new, Gate::summary),
                            humantime::format_duration(settle.period())
                        ));
                    }
                    return Ok(Started { web_port });
                }
                Settled::Crashed => {
                    let bad = st
                        .instances
                        .iter()
                        .find(|i| restarts_seen.iter().any(|(n, r)| *n == i.name() && i.restarts > *r))
                        .or_else(|| st.instances.iter().max_by_key(|i| i.restarts));
                    let instance = bad.map_or_else(
                        || "a process".to_owned(),
                        crate::supervise::status::InstanceStatus::name,
                    );
                    return Err(StartError::CrashedSettling {
                        last_exit: bad.and_then(|i| i.last_exit.clone()).unwrap_or_default(),
                        tail: log_tail(home, plan, &instance, crate::health::FAILURE_TAIL),
                        instance,
                        settle: plan.settle,
                    }
                    .into());
                }
                Settled::Waiting if all_up && restarts_seen.is_empty() => {
                    restarts_seen = st.instances.iter().map(|i| (i.name(), i.restarts)).collect();
                }
                Settled::Waiting => {}
            }
        }
        if Instant::now() >= deadline {
            let port = status.as_ref().and_then(SupervisorStatus::web_port).unwrap_or(0);
            let tail = log_tail(home, plan, "web.1", crate::health::FAILURE_TAIL);
            if let Some(last) = gates.values().find_map(Gate::failing) {
                return Err(StartError::Unhealthy { port, timeout: plan.web_timeout, last, tail }.into());
            }
            return Err(StartError::WebTimeout { port, timeout: plan.web_timeout, tail }.into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last `n` lines of an instance's log.
pub(super) fn log_tail(home: &Home, plan: &DeployPlan, instance: &str, n: usize) -> String {
    let path = home.app(&plan.app).logs_dir().join(format!("{instance}.{}.log", plan.release));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
