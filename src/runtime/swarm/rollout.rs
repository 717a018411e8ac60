//! A release's rollout on the swarm, once its services were created or updated: wait until
//! each converges on the release, then hold it to the settle period (no task of the release
//! may fail or be replaced), and roll back to the previous spec when it does not hold.
//!
//! Which tasks belong to the release is decided by their image (swarm pins it by digest, so
//! the tag is compared), since a task carries no service labels.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task, TaskState};
use bollard::query_parameters::{InspectServiceOptions, LogsOptions, UpdateServiceOptions};
use futures_util::StreamExt;

use super::jobs;
use crate::health::{Settle, Settled};
use crate::ids::ReleaseId;
use crate::runtime::docker::labels::RELEASE;

/// How often a rollout looks at its services: every look is a couple of manager API calls.
const POLL: Duration = Duration::from_millis(250);

/// Why a rollout did not end with the release serving.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("the swarm manager refused to {what} {service}")]
    Engine {
        what: &'static str,
        service: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{service} did not converge on {release} within {}: {state}", humantime::format_duration(*.waited))]
    NotConverged { service: String, release: ReleaseId, waited: Duration, state: String },
    #[error("swarm rolled {service} back to the running release: {message}")]
    RolledBack { service: String, message: String },
    #[error(
        "a task of {service} ({release}) {what} within the settle period of {} after the release became \
         healthy, so it is not switched in and the services go back to the running release; its last log lines:\n{tail}",
        humantime::format_duration(*.settle)
    )]
    CrashedSettling { service: String, release: ReleaseId, what: String, settle: Duration, tail: String },
}

fn engine(what: &'static str, service: &str) -> impl FnOnce(bollard::errors::Error) -> RolloutError {
    let service = service.to_owned();
    move |source| RolloutError::Engine { what, service, source }
}

/// The service `name`, or None if there is none.
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<Service>, bollard::errors::Error> {
    match docker.inspect_service(name, None::<InspectServiceOptions>).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if crate::runtime::docker::is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The image of a service's spec or a task's, without the digest swarm pins it by.
fn untagged_digest(image: Option<&String>) -> &str {
    image.map_or("", |i| i.split('@').next().unwrap_or_default())
}

fn service_image(s: &Service) -> &str {
    untagged_digest(
        s.spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.as_ref()),
    )
}

fn task_image(t: &Task) -> &str {
    untagged_digest(t.spec.as_ref().and_then(|s| s.container_spec.as_ref()).and_then(|c| c.image.as_ref()))
}

fn running(t: &Task) -> bool {
    t.desired_state == Some(TaskState::RUNNING)
        && t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
}

fn failed(t: &Task) -> bool {
    matches!(t.status.as_ref().and_then(|s| s.state), Some(TaskState::FAILED | TaskState::REJECTED))
}

/// Roll `name` back to its previous spec if it still runs `release` and swarm has not; whether
/// it is (or was already) rolling back.
pub async fn rollback_if(docker: &Docker, name: &str, release: ReleaseId) -> bool {
    let Ok(Some(s)) = inspect(docker, name).await else { return false };
    let labels = s.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
    let rolling = s.update_status.as_ref().and_then(|u| u.state).is_some_and(|st| {
        matches!(
            st,
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
        )
    });
    if rolling || labels.get(RELEASE) != Some(&release.to_string()) {
        return rolling;
    }
    let version = s.version.as_ref().and_then(|v| v.index).unwrap_or_default();
    let opts = UpdateServiceOptions {
        version: i32::try_from(version).unwrap_or(i32::MAX),
        rollback: Some("previous".to_owned()),
        ..Default::default()
    };
    match docker.update_service(name, s.spec.clone().unwrap_or_default(), opts, None).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(service = name, error = %e, "cannot roll the service back");
            false
        }
    }
}

/// Wait (up to `timeout`) until a rollback of `name` has completed, so that the caller can
/// say the previous release serves again. Whether it did.
pub async fn wait_rolled_back(docker: &Docker, name: &str, timeout: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        match inspect(docker, name).await {
            Ok(Some(s)) => {
                let state = s.update_status.as_ref().and_then(|u| u.state);
                if state == Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) {
                    return true;
                }
                if state != Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) {
                    return false;
                }
            }
            _ => return false,
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// Wait until `name` runs `replicas` healthy tasks of `release` and its update (if any) is
/// complete; a rollback by swarm is a failure. Swarm reports a task with a health check as
/// running only once it is healthy.
pub async fn converge(
    docker: &Docker,
    name: &str,
    release: ReleaseId,
    replicas: u32,
    timeout: Duration,
) -> Result<(), RolloutError> {
    let started = Instant::now();
    let want = format!(":{release}");
    loop {
        let s = inspect(docker, name).await.map_err(engine("inspect", name))?.unwrap_or_default();
        let status = s.update_status.clone().unwrap_or_default();
        if let Some(
            ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
            | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
            | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
            | ServiceUpdateStatusStateEnum::PAUSED,
        ) = status.state
        {
            return Err(RolloutError::RolledBack {
                service: name.to_owned(),
                message: status.message.unwrap_or_default(),
            });
        }
        let updating = status.state == Some(ServiceUpdateStatusStateEnum::UPDATING);
        let tasks = jobs::tasks(docker, name).await.map_err(engine("list the tasks of", name))?;
        let image = service_image(&s);
        let up = tasks.iter().filter(|t| running(t) && task_image(t) == image).count();
        if image.ends_with(&want) && !updating && up == usize::try_from(replicas).unwrap_or(usize::MAX) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            let last = tasks
                .iter()
                .filter_map(|t| t.status.as_ref())
                .filter_map(|s| s.err.clone().or(s.message.clone()))
                .next_back()
                .unwrap_or_default();
            return Err(RolloutError::NotConverged {
                service: name.to_owned(),
                release,
                waited: timeout,
                state: format!("{up} of {replicas} running; {last}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What one look at a release's services saw, for the settle period.
#[derive(Debug, Default)]
struct Look {
    /// Every service runs all its replicas of the release.
    healthy: bool,
    /// Tasks of the release seen so far, and those seen failed: both only grow, so a task
    /// that failed and was replaced between two looks, or pruned from the history, still
    /// counts.
    seen: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// The service of the last task seen failing or replaced, and what swarm said of it.
    culprit: Option<(String, String)>,
    culprit_failed: bool,
}

impl Look {
    fn restarts(&self) -> u32 {
        u32::try_from(self.seen.len() + self.failed.len()).unwrap_or(u32::MAX)
    }
}

/// Hold converged services (`(name, replicas)`) of `release` to the settle period: they must
/// stay fully up, with no task of the release failing or being replaced, for `period`.
pub async fn settle(
    docker: &Docker,
    services: &[(String, u32)],
    release: ReleaseId,
    period: Duration,
    timeout: Duration,
) -> Result<(), RolloutError> {
    if period.is_zero() {
        return Ok(());
    }
    let started = Instant::now();
    let want = format!(":{release}");
    let mut settle = Settle::new(period);
    let mut look = Look::default();
    loop {
        look.healthy = true;
        for (name, replicas) in services {
            let tasks = jobs::tasks(docker, name).await.map_err(engine("list the tasks of", name))?;
            let ours: Vec<&Task> = tasks.iter().filter(|t| task_image(t).ends_with(&want)).collect();
            let up = ours.iter().filter(|t| running(t)).count();
            look.healthy &= up == usize::try_from(*replicas).unwrap_or(usize::MAX);
            for t in ours {
                let id = t.id.clone().unwrap_or_default();
                let fresh = look.seen.insert(id.clone());
                let newly_failed = failed(t) && look.failed.insert(id);
                // A failure names the crash better than its replacement ("assigned to node").
                if newly_failed || (fresh && !look.culprit_failed) {
                    let what = t.status.as_ref().and_then(|s| s.err.clone().or(s.message.clone()));
                    look.culprit = Some((name.clone(), what.unwrap_or_default()));
                    look.culprit_failed |= newly_failed;
                }
            }
        }
        match settle.observe(Instant::now(), look.healthy, look.restarts()) {
            Settled::Ready => return Ok(()),
            Settled::Crashed => {
                let (service, what) = look.culprit.clone().unwrap_or_default();
                let what =
                    if what.is_empty() { "was replaced".to_owned() } else { format!("failed ({what})") };
                return Err(RolloutError::CrashedSettling {
                    tail: log_tail(docker, &service).await,
                    service,
                    release,
                    what,
                    settle: period,
                });
            }
            Settled::Waiting => {}
        }
        if started.elapsed() > timeout {
            return Err(RolloutError::NotConverged {
                service: services.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", "),
                release,
                waited: timeout,
                state: "its tasks did not stay up for the settle period".to_owned(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last lines a service logged, for an error message (best effort, a few seconds at most).
async fn log_tail(docker: &Docker, service: &str) -> String {
    let opts = LogsOptions {
        follow: false,
        stdout: true,
        stderr: true,
        tail: "20".to_owned(),
        ..Default::default()
    };
    let mut out = Vec::new();
    let collect = async {
        let mut logs = docker.service_logs(service, Some(opts));
        while let Some(Ok(line)) = logs.next().await {
            out.push(String::from_utf8_lossy(&line.into_bytes()).trim_end().to_owned());
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), collect).await;
    out.join("\n")
}
