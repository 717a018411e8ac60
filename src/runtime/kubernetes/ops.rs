//! Everyday commands on a kubernetes app: `ps` (its pods), `ps scale`, `ps stop/start`,
//! `restart` and `logs`, through the Deployments a release applied.

use k8s_openapi::api::core::v1::Pod;

use super::cluster::Cluster;
use super::render::{LABEL_RELEASE, LABEL_TYPE};
use super::runtime::{KubeError, KubernetesRuntime};
use crate::ids::{ProcessType, ReleaseId};
use crate::runtime::{ProcessReport, RuntimeError};
use crate::state::AppRecord;
use crate::supervise::status::{InstanceStatus, ProcessState};

impl KubernetesRuntime {
    /// The Deployments `release` applied, with their types (all, or `only`).
    pub(super) fn deployments(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<Vec<(String, ProcessType)>, RuntimeError> {
        let state = self.load_state(&app.name, release)?;
        let manifests = state.manifests.unwrap_or(super::render::Manifests {
            claim: None,
            predeploy: None,
            deployments: Vec::new(),
            service: None,
        });
        let found: Vec<(String, ProcessType)> = manifests
            .deployments
            .iter()
            .filter_map(|d| {
                let ptype = d.metadata.labels.as_ref()?.get(LABEL_TYPE)?.parse().ok()?;
                Some((d.metadata.name.clone()?, ptype))
            })
            .filter(|(_, t)| only.is_none_or(|o| o == t))
            .collect();
        if found.is_empty() {
            let what = only.map_or_else(|| "any process type".to_owned(), ToString::to_string);
            return Err(KubeError::NoProcesses { app: app.name.clone(), what }.into());
        }
        Ok(found)
    }

    /// Sets each Deployment's replicas to `count(type)`.
    pub(super) fn scale_to(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        count: impl Fn(&ProcessType) -> u32,
    ) -> Result<(), RuntimeError> {
        let names = self.deployments(app, release, None)?;
        self.block(&app.name, async |cluster, _| {
            for (name, ptype) in &names {
                cluster.scale(name, i32::try_from(count(ptype)).unwrap_or(i32::MAX)).await?;
            }
            Ok(())
        })
    }
}

/// The release's pods as `ps` instances: `type.N`, numbered by pod name within each type.
pub(super) async fn processes(
    cluster: &Cluster,
    app: &AppRecord,
    release: ReleaseId,
) -> Result<ProcessReport, KubeError> {
    let pods = release_pods(cluster, app, release).await?;
    let instances: Vec<InstanceStatus> =
        pods.iter().map(|(ptype, index, pod)| status(ptype, *index, pod)).collect();
    let running = !app.stopped && instances.iter().any(|i| i.state == ProcessState::Up);
    Ok(ProcessReport { running, instances })
}

async fn release_pods(
    cluster: &Cluster,
    app: &AppRecord,
    release: ReleaseId,
) -> Result<Vec<(ProcessType, u32, Pod)>, KubeError> {
    let release = release.to_string();
    let mut pods: Vec<(ProcessType, String, Pod)> = cluster
        .pods(&app.name)
        .await?
        .into_iter()
        .filter_map(|p| {
            let labels = p.metadata.labels.as_ref()?;
            if labels.get(LABEL_RELEASE) != Some(&release) {
                return None;
            }
            let ptype: ProcessType = labels.get(LABEL_TYPE)?.parse().ok()?;
            Some((ptype, p.metadata.name.clone()?, p))
        })
        .collect();
    pods.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = Vec::new();
    let mut last: Option<(ProcessType, u32)> = None;
    for (ptype, _, pod) in pods {
        let index = match &last {
            Some((t, n)) if *t == ptype => n + 1,
            _ => 1,
        };
        last = Some((ptype.clone(), index));
        out.push((ptype, index, pod));
    }
    Ok(out)
}

fn status(ptype: &ProcessType, index: u32, pod: &Pod) -> InstanceStatus {
    let st = pod.status.clone().unwrap_or_default();
    let container = st.container_statuses.unwrap_or_default().into_iter().next();
    let restarts = container.as_ref().map_or(0, |c| u32::try_from(c.restart_count).unwrap_or(0));
    let waiting = container.as_ref().and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let ready = container.as_ref().is_some_and(|c| c.ready);
    let state = match (st.phase.as_deref(), ready, waiting.as_deref()) {
        (_, _, Some("CrashLoopBackOff" | "Error")) | (Some("Failed"), _, _) => ProcessState::Crashed,
        (Some("Running"), true, _) => ProcessState::Up,
        (Some("Succeeded"), _, _) => ProcessState::Stopped,
        _ => ProcessState::Starting,
    };
    let last_exit = container
        .and_then(|c| c.last_state?.terminated)
        .map(|t| format!("exit {} ({})", t.exit_code, t.reason.unwrap_or_default()));
    InstanceStatus {
        ptype: ptype.clone(),
        index,
        state,
        pid: None,
        port: None,
        restarts,
        started_at_ms: None,
        last_exit,
        node: None,
    }
}

/// Gives `emit` the logs of the current release's pods matching `process` (a type, `type.N`,
/// or all), line by line with their instance; with `follow`, every pod's stream at once.
pub(super) async fn logs(
    cluster: &Cluster,
    app: &AppRecord,
    process: Option<&str>,
    lines: usize,
    follow: bool,
    sink: &mut dyn crate::runtime::LogSink,
) -> Result<(), KubeError> {
    let Some(release) = app.current else {
        return Err(KubeError::NoProcesses { app: app.name.clone(), what: "a deployed release".into() });
    };
    let pods: Vec<(String, String)> = release_pods(cluster, app, release)
        .await?
        .into_iter()
        .map(|(t, n, p)| (format!("{t}.{n}"), p.metadata.name.unwrap_or_default()))
        .filter(|(inst, _)| process.is_none_or(|p| inst == p || inst.split('.').next() == Some(p)))
        .collect();
    if pods.is_empty() {
        let what = process.unwrap_or("any process").to_owned();
        return Err(KubeError::NoProcesses { app: app.name.clone(), what });
    }
    let tail = i64::try_from(lines).unwrap_or(i64::MAX);
    // The pods' streams run at once and take turns with the one sink; once it fails (the
    // reader is gone), each stream stops at its next line.
    let sink = std::sync::Mutex::new(sink);
    let sink = &sink;
    let streams = pods.iter().map(|(inst, pod)| {
        let print = move |line: &str| {
            let mut s = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.line(&format!("{inst}| {line}")).and_then(|()| s.flush()).is_ok()
        };
        async move { cluster.pod_logs(pod, tail, follow, &print).await }
    });
    for r in futures_util::future::join_all(streams).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
