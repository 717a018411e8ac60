//! The imperative shell: applies rendered [`Manifests`] to a cluster through the API server.
//! Every write is a server-side apply (field manager `slipway`, forced), so re-running a step
//! after a crash converges instead of failing on "already exists".
//!
//! The order is the deploy's guarantee: the claim, then the predeploy Job (waited for, its logs
//! streamed), and only then the Deployments. [`Cluster::roll_out`] checks the Job's status on
//! the server again before it touches a Deployment, so no caller can update them after a
//! failed predeploy.

use std::time::{Duration, Instant};

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::render::{LABEL_APP, LABEL_RELEASE, LABEL_ROLE, Manifests};
use crate::ids::{AppName, ReleaseId};

/// The field manager of every apply.
const MANAGER: &str = "slipway";

/// A cluster operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot {action} {kind} {name} in namespace {namespace}")]
    Api {
        action: &'static str,
        kind: &'static str,
        name: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("predeploy Job {job} failed ({reason}): {message}; the running Deployments are untouched")]
    JobFailed { job: String, reason: String, message: String },
    #[error(
        "predeploy Job {job} did not finish within {}; see `kubectl -n {namespace} describe job {job}`",
        humantime::format_duration(*waited)
    )]
    JobTimeout { job: String, namespace: String, waited: Duration },
    #[error("refusing to update the Deployments: predeploy Job {job} has not succeeded")]
    PredeployNotSucceeded { job: String },
    #[error(
        "Deployment {deployment} did not become ready within {}: {detail}; see `kubectl -n {namespace} describe deployment {deployment}`",
        humantime::format_duration(*waited)
    )]
    RolloutTimeout { deployment: String, namespace: String, waited: Duration, detail: String },
    #[error("Deployment {deployment} failed to roll out: {message}")]
    RolloutFailed { deployment: String, message: String },
}

/// A namespace of a cluster, reached through `client`.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
    poll: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster client for `namespace`, polling status every `poll`.
    pub fn new(client: kube::Client, namespace: &str, poll: Duration) -> Self {
        Self { client, namespace: namespace.to_owned(), poll }
    }

    pub(super) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(super) fn fail(
        &self,
        action: &'static str,
        kind: &'static str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> ClusterError {
        let (name, namespace) = (name.to_owned(), self.namespace.clone());
        move |source| ClusterError::Api { action, kind, name, namespace, source }
    }

    async fn apply<K>(&self, kind: &'static str, obj: &K) -> Result<K, ClusterError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        self.api::<K>()
            .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj))
            .await
            .map_err(self.fail("apply", kind, &name))
    }

    /// Applies the app's claim. An existing claim keeps its data; only growth is accepted by
    /// the server, which answers a shrink with an error naming the field.
    pub async fn apply_claim(&self, claim: &PersistentVolumeClaim) -> Result<(), ClusterError> {
        self.apply("PersistentVolumeClaim", claim).await.map(drop)
    }

    /// Creates the predeploy Job, streams its pod's output to `out` line by line, and waits
    /// until it succeeds, fails, or `timeout` passes.
    pub async fn run_job(
        &self,
        job: &Job,
        timeout: Duration,
        out: &dyn Fn(&str),
    ) -> Result<(), ClusterError> {
        let name = job.metadata.name.clone().unwrap_or_default();
        self.apply("Job", job).await?;
        let deadline = Instant::now() + timeout;
        let labels = job
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pods = self.api::<Pod>();
        loop {
            let list = pods
                .list(&ListParams::default().labels(&selector.join(",")))
                .await
                .map_err(self.fail("list pods of", "Job", &name))?;
            let started = list.items.iter().find(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                matches!(phase, Some("Running" | "Succeeded" | "Failed"))
            });
            if let Some(pod) = started {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                self.stream_logs(&pod_name, out).await?;
                break;
            }
            if self.job_outcome(&name).await?.is_some() {
                break;
            }
            self.pause(deadline, &name).await?;
        }
        loop {
            match self.job_outcome(&name).await? {
                Some(Ok(())) => return Ok(()),
                Some(Err((reason, message))) => {
                    return Err(ClusterError::JobFailed { job: name, reason, message });
                }
                None => self.pause(deadline, &name).await?,
            }
        }
    }

    async fn pause(&self, deadline: Instant, job: &str) -> Result<(), ClusterError> {
        if Instant::now() >= deadline {
            return Err(ClusterError::JobTimeout {
                job: job.to_owned(),
                namespace: self.namespace.clone(),
                waited: deadline.elapsed(),
            });
        }
        tokio::time::sleep(self.poll).await;
        Ok(())
    }

    async fn stream_logs(&self, pod: &str, out: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let params = LogParams { follow: true, ..LogParams::default() };
        let stream = self.api::<Pod>().log_stream(pod, &params).await.map_err(self.fail(
            "read logs of",
            "Pod",
            pod,
        ))?;
        let mut lines = Box::pin(stream.lines());
        // A broken stream only loses output; the Job's status still decides.
        while let Some(Ok(line)) = lines.next().await {
            out(&line);
        }
        Ok(())
    }

    /// None while the Job runs; Ok when it succeeded; Err with the reason when it failed.
    async fn job_outcome(&self, name: &str) -> Result<Option<Result<(), (String, String)>>, ClusterError> {
        let job = self.api::<Job>().get(name).await.map_err(self.fail("read", "Job", name))?;
        let status = job.status.unwrap_or_default();
        if status.succeeded.unwrap_or(0) > 0 {
            return Ok(Some(Ok(())));
        }
        let failed = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Failed" && c.status == "True");
        if let Some(c) = failed {
            return Ok(Some(Err((c.reason.unwrap_or_default(), c.message.unwrap_or_default()))));
        }
        if status.failed.unwrap_or(0) > 0 {
            return Ok(Some(Err(("Failed".into(), "its pod exited non-zero".into()))));
        }
        Ok(None)
    }

    /// Updates the Deployments and the web Service to this release and waits until each has
    /// rolled out with ready pods; then deletes the app's Deployments of types this release
    /// no longer has. Refuses before any write unless the release's predeploy Job succeeded.
    pub async fn roll_out(
        &self,
        app: &AppName,
        m: &Manifests,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        if let Some(job) = &m.predeploy {
            let name = job.metadata.name.clone().unwrap_or_default();
            if !matches!(self.job_outcome(&name).await?, Some(Ok(()))) {
                return Err(ClusterError::PredeployNotSucceeded { job: name });
            }
        }
        self.apply_all(m).await?;
        self.wait_all_ready(m, timeout).await?;
        self.prune(app, m).await
    }

    /// Applies the Deployments, then the web Service.
    pub(super) async fn apply_all(&self, m: &Manifests) -> Result<(), ClusterError> {
        for d in &m.deployments {
            self.apply("Deployment", d).await?;
        }
        if let Some(s) = &m.service {
            self.apply("Service", s).await?;
        }
        Ok(())
    }

    /// Waits until every Deployment of `m` has rolled out with ready pods, within `timeout`.
    pub(super) async fn wait_all_ready(&self, m: &Manifests, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        for d in &m.deployments {
            self.wait_ready(d.metadata.name.as_deref().unwrap_or_default(), deadline).await?;
        }
        Ok(())
    }

    async fn wait_ready(&self, name: &str, deadline: Instant) -> Result<(), ClusterError> {
        let api = self.api::<Deployment>();
        loop {
            let d = api.get(name).await.map_err(self.fail("read", "Deployment", name))?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let generation = d.metadata.generation.unwrap_or(0);
            let st = d.status.unwrap_or_default();
            let stalled = st.conditions.unwrap_or_default().into_iter().find(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            });
            if let Some(c) = stalled {
                return Err(ClusterError::RolloutFailed {
                    deployment: name.to_owned(),
                    message: c.message.unwrap_or_else(|| "progress deadline exceeded".into()),
                });
            }
            let (updated, ready, total) =
                (st.updated_replicas.unwrap_or(0), st.ready_replicas.unwrap_or(0), st.replicas.unwrap_or(0));
            if st.observed_generation.unwrap_or(0) >= generation
                && updated == want
                && ready >= want
                && total == want
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::RolloutTimeout {
                    deployment: name.to_owned(),
                    namespace: self.namespace.clone(),
                    waited: deadline.elapsed(),
                    detail: format!("{ready} of {want} pods ready, {updated} updated, {total} in all"),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Deletes the app's Deployments (and web Service) that `m` does not have.
    pub async fn prune(&self, app: &AppName, m: &Manifests) -> Result<(), ClusterError> {
        let keep: Vec<&str> = m.deployments.iter().filter_map(|d| d.metadata.name.as_deref()).collect();
        let api = self.api::<Deployment>();
        let list = api
            .list(&ListParams::default().labels(&format!("{LABEL_APP}={app}")))
            .await
            .map_err(self.fail("list", "Deployment", app.as_str()))?;
        for d in list.items {
            let name = d.metadata.name.unwrap_or_default();
            if !keep.contains(&name.as_str()) {
                self.delete::<Deployment>("Deployment", &name).await?;
            }
        }
        if m.service.is_none() {
            self.delete::<Service>("Service", &super::render::service_name(app)).await?;
        }
        Ok(())
    }

    /// Deletes an object; a missing one is fine. Its dependents (a Job's pods, a
    /// Deployment's ReplicaSets) go in the background.
    pub(super) async fn delete<K>(&self, kind: &'static str, name: &str) -> Result<(), ClusterError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match self.api::<K>().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.fail("delete", kind, name)(e)),
        }
    }

    /// Deletes every object of the app: Deployments, the web Service, Jobs, and the claim with
    /// the mount's files (`apps destroy`).
    pub async fn delete_app(&self, app: &AppName) -> Result<(), ClusterError> {
        let none = Manifests { claim: None, predeploy: None, deployments: Vec::new(), service: None };
        self.prune(app, &none).await?;
        let jobs = self
            .api::<Job>()
            .list(&ListParams::default().labels(&format!("{LABEL_APP}={app}")))
            .await
            .map_err(self.fail("list", "Job", app.as_str()))?;
        for j in jobs.items {
            self.delete::<Job>("Job", &j.metadata.name.unwrap_or_default()).await?;
        }
        self.delete::<PersistentVolumeClaim>("PersistentVolumeClaim", &super::render::claim_name(app)).await
    }

    /// The app's pods, for `ps` and `logs`; predeploy pods are left out.
    pub async fn pods(&self, app: &AppName) -> Result<Vec<Pod>, ClusterError> {
        let params = ListParams::default().labels(&format!("{LABEL_APP}={app},!{LABEL_ROLE}"));
        let list =
            self.api::<Pod>().list(&params).await.map_err(self.fail("list pods of", "app", app.as_str()))?;
        Ok(list.items)
    }

    /// Sets a Deployment's replicas (merge patch: the rest of its spec is left alone).
    pub async fn scale(&self, name: &str, replicas: i32) -> Result<(), ClusterError> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.api::<Deployment>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(self.fail("scale", "Deployment", name))
    }

    /// Restarts a Deployment's pods by a rolling update, as `kubectl rollout restart` does.
    pub async fn restart(&self, name: &str) -> Result<(), ClusterError> {
        let now = crate::state::now_unix().to_string();
        let patch = serde_json::json!({ "spec": { "template": { "metadata": {
            "annotations": { "slipway.dev/restarted-at": now } } } } });
        self.api::<Deployment>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(self.fail("restart", "Deployment", name))
    }

    /// The last `lines` lines of a pod's log, and with `follow` every later one, to `out`, until it
    /// answers false.
    pub async fn pod_logs(
        &self,
        pod: &str,
        lines: i64,
        follow: bool,
        out: &dyn Fn(&str) -> bool,
    ) -> Result<(), ClusterError> {
        let params = LogParams { follow, tail_lines: Some(lines), ..LogParams::default() };
        let stream = self.api::<Pod>().log_stream(pod, &params).await.map_err(self.fail(
            "read logs of",
            "Pod",
            pod,
        ))?;
        let mut l = Box::pin(stream.lines());
        while let Some(Ok(line)) = l.next().await {
            if !out(&line) {
                break;
            }
        }
        Ok(())
    }

    /// Whether the Deployments carry `release` (a rollout of it began).
    pub async fn deployments_at(&self, app: &AppName, release: ReleaseId) -> Result<bool, ClusterError> {
        let params = ListParams::default().labels(&format!("{LABEL_APP}={app},{LABEL_RELEASE}={release}"));
        let list = self.api::<Deployment>().list(&params).await.map_err(self.fail(
            "list",
            "Deployment",
            app.as_str(),
        ))?;
        Ok(!list.items.is_empty())
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
