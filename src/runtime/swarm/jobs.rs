//! Run-to-completion services: a `replicated-job` (or `global-job`) is created, its logs are
//! followed while it runs, and its tasks' outcomes are read back. The service is removed when
//! it is done, whatever the outcome.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ServiceSpec, Task, TaskState};
use bollard::query_parameters::{ListTasksOptions, LogsOptions};
use futures_util::StreamExt;

/// A job's failure to run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the swarm manager refused to {what} {service}")]
    Engine {
        what: &'static str,
        service: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{service} did not finish within {}; it was removed", humantime::format_duration(*.waited))]
    Timeout { service: String, waited: Duration },
}

/// How one task of a job ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub node: String,
    pub state: TaskState,
    /// The container's exit code, when it ran.
    pub code: Option<i64>,
    /// Swarm's reason when the task never ran (e.g. a bind source missing on the node).
    pub error: Option<String>,
}

impl Outcome {
    /// Whether the task ran and exited 0.
    pub fn succeeded(&self) -> bool {
        self.state == TaskState::COMPLETE && self.code.unwrap_or(0) == 0
    }
}

fn engine(what: &'static str, service: &str) -> impl FnOnce(bollard::errors::Error) -> JobError {
    let service = service.to_owned();
    move |source| JobError::Engine { what, service, source }
}

fn terminal(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::SHUTDOWN
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    )
}

/// The tasks of a service.
pub async fn tasks(docker: &Docker, service: &str) -> Result<Vec<Task>, bollard::errors::Error> {
    let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
    docker.list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await
}

/// How often a job's tasks are looked at: a manager answers a task list in milliseconds, and
/// every look saved is time a deploy waits for nothing.
const POLL: Duration = Duration::from_millis(200);

/// How long the last log lines of a script (predeploy, a one-off) get to arrive from the node
/// once its task has ended: they are the user's output.
pub const DRAIN_SCRIPT: Duration = Duration::from_millis(700);
/// The same for slipway's own checks, whose verdict is the exit code: lines are only a hint.
pub const DRAIN_CHECK: Duration = Duration::from_millis(100);

/// Create `spec`, follow its logs into `sink` until `expected` tasks ended, remove it, and
/// return how each task ended. Past `timeout` the job is removed and this fails.
pub async fn run(
    docker: &Docker,
    spec: ServiceSpec,
    expected: usize,
    timeout: Duration,
    sink: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<Outcome>, JobError> {
    run_draining(docker, spec, expected, timeout, DRAIN_SCRIPT, sink).await
}

/// [`run`], waiting `drain` for the last log lines once the tasks have ended.
pub async fn run_draining(
    docker: &Docker,
    spec: ServiceSpec,
    expected: usize,
    timeout: Duration,
    drain: Duration,
    sink: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<Outcome>, JobError> {
    let name = spec.name.clone().unwrap_or_default();
    // A leftover of a killed command holds the name: it is ours (same app, same release).
    let _ = docker.delete_service(&name).await;
    docker.create_service(spec, None).await.map_err(engine("create", &name))?;
    let result = wait(docker, &name, expected, timeout, drain, sink).await;
    let _ = docker.delete_service(&name).await;
    result
}

/// Create `spec`, a job whose one task keeps running, and wait until it runs: its node's id,
/// or how it ended if it ended first. The caller removes it ([`remove`]).
pub async fn start(
    docker: &Docker,
    spec: ServiceSpec,
    timeout: Duration,
) -> Result<Result<String, Outcome>, JobError> {
    let name = spec.name.clone().unwrap_or_default();
    let _ = docker.delete_service(&name).await;
    docker.create_service(spec, None).await.map_err(engine("create", &name))?;
    let started = Instant::now();
    loop {
        let all = tasks(docker, &name).await.map_err(engine("list the tasks of", &name))?;
        if let Some(t) = all.iter().find(|t| terminal(t.status.as_ref().and_then(|s| s.state))) {
            return Ok(Err(outcome(t)));
        }
        if let Some(t) =
            all.iter().find(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        {
            return Ok(Ok(t.node_id.clone().unwrap_or_default()));
        }
        if started.elapsed() > timeout {
            let _ = docker.delete_service(&name).await;
            return Err(JobError::Timeout { service: name, waited: timeout });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How the tasks of a started job are now: running ones have no outcome yet.
pub async fn ended(docker: &Docker, name: &str) -> Result<Vec<Outcome>, JobError> {
    let all = tasks(docker, name).await.map_err(engine("list the tasks of", name))?;
    Ok(all.iter().filter(|t| terminal(t.status.as_ref().and_then(|s| s.state))).map(outcome).collect())
}

/// Remove a job; its running task is stopped by its node (SIGTERM, then its grace period).
pub async fn remove(docker: &Docker, name: &str) {
    let _ = docker.delete_service(name).await;
}

async fn wait(
    docker: &Docker,
    name: &str,
    expected: usize,
    timeout: Duration,
    drain: Duration,
    sink: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<Outcome>, JobError> {
    let started = Instant::now();
    let opts = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
    let mut logs = Box::pin(docker.service_logs(name, Some(opts)));
    let mut poll = tokio::time::interval(POLL);
    let mut logs_open = true;
    loop {
        tokio::select! {
            line = logs.next(), if logs_open => match line {
                Some(Ok(out)) => {
                    for l in String::from_utf8_lossy(&out.into_bytes()).lines() {
                        sink(l);
                    }
                }
                // Logs are an aid: the task states below decide.
                _ => logs_open = false,
            },
            _ = poll.tick() => {
                let all = tasks(docker, name).await.map_err(engine("list the tasks of", name))?;
                let done: Vec<&Task> =
                    all.iter().filter(|t| terminal(t.status.as_ref().and_then(|s| s.state))).collect();
                if all.len() >= expected && done.len() >= expected {
                    // The last lines may still be on their way from the node.
                    let drain = tokio::time::sleep(drain);
                    tokio::pin!(drain);
                    while logs_open {
                        tokio::select! {
                            line = logs.next() => match line {
                                Some(Ok(out)) => {
                                    for l in String::from_utf8_lossy(&out.into_bytes()).lines() {
                                        sink(l);
                                    }
                                }
                                _ => logs_open = false,
                            },
                            () = &mut drain => break,
                        }
                    }
                    return Ok(done.into_iter().map(outcome).collect());
                }
                if started.elapsed() > timeout {
                    return Err(JobError::Timeout { service: name.to_owned(), waited: timeout });
                }
            }
        }
    }
}

fn outcome(t: &Task) -> Outcome {
    let status = t.status.clone().unwrap_or_default();
    Outcome {
        node: t.node_id.clone().unwrap_or_default(),
        state: status.state.unwrap_or(TaskState::FAILED),
        code: status.container_status.and_then(|c| c.exit_code),
        error: status.err.filter(|e| !e.is_empty()),
    }
}
