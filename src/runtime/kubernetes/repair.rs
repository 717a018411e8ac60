//! Repairs on the cluster after a deploy was killed mid-way, found by the app and release
//! labels every object carries, as the docker and swarm runtimes find their leftovers:
//!
//! - a predeploy or release Job of a release that never switched (or of a retired one);
//! - Deployments of a type the current release does not have (its Procfile dropped it, or the
//!   first deploy never switched);
//! - Deployments a killed rollout had moved to its release: the current release's are applied
//!   again, so its pods come back.
//!
//! [`plan_sweep`] decides from the listed objects (pure); [`Cluster::sweep`] lists and acts.
//! [`Cluster::discard`] is the narrower cleanup of one release that `remove` does.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;

use super::cluster::{Cluster, ClusterError};
use super::render::{LABEL_APP, LABEL_RELEASE, Manifests, service_name};
use crate::ids::{AppName, ReleaseId};

/// The release that stays, with what it applied.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub release: ReleaseId,
    pub manifests: &'a Manifests,
}

/// A labelled object found on the cluster: its name and its release label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub release: Option<String>,
}

/// What a sweep does, as data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepPlan {
    pub delete_jobs: Vec<String>,
    pub delete_deployments: Vec<String>,
    /// Apply the current release's Deployments and Service again (a killed rollout moved some).
    pub roll_back: bool,
    pub delete_service: bool,
}

impl SweepPlan {
    /// Whether the sweep changes anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Decides what to remove and whether to put the current release back. Pure.
///
/// The current release's Jobs stay (their pods keep the last predeploy's log for `kubectl
/// logs`); every other Job is a leftover: the caller holds the app's lock, so no deploy waits
/// on one.
pub fn plan_sweep(current: Option<Current<'_>>, jobs: &[Found], deployments: &[Found]) -> SweepPlan {
    let current_label = current.map(|c| c.release.to_string());
    let keep: Vec<&str> = current
        .map(|c| c.manifests.deployments.iter().filter_map(|d| d.metadata.name.as_deref()).collect())
        .unwrap_or_default();
    let delete_jobs = jobs
        .iter()
        .filter(|j| current_label.is_none() || j.release != current_label)
        .map(|j| j.name.clone())
        .collect();
    let delete_deployments: Vec<String> =
        deployments.iter().filter(|d| !keep.contains(&d.name.as_str())).map(|d| d.name.clone()).collect();
    let roll_back = current.is_some()
        && deployments.iter().any(|d| keep.contains(&d.name.as_str()) && d.release != current_label);
    let has_service = current.is_some_and(|c| c.manifests.service.is_some());
    // Only when something was off: a sweep of a healthy app sends no write.
    let delete_service = !has_service && (!delete_deployments.is_empty() || current.is_none());
    SweepPlan { delete_jobs, delete_deployments, roll_back, delete_service }
}

fn found<K: kube::Resource>(items: Vec<K>) -> Vec<Found> {
    items
        .into_iter()
        .map(|o| {
            let meta = o.meta();
            Found {
                name: meta.name.clone().unwrap_or_default(),
                release: meta.labels.as_ref().and_then(|l| l.get(LABEL_RELEASE).cloned()),
            }
        })
        .collect()
}

impl Cluster {
    /// Finds the app's Jobs and Deployments by label and removes what `current` does not
    /// account for; applies the current release's Deployments again when a killed rollout
    /// moved them. It does not wait for their pods: it runs before any command, for every app,
    /// and the controllers bring the pods back on their own. Returns what it did.
    pub async fn sweep(
        &self,
        app: &AppName,
        current: Option<Current<'_>>,
    ) -> Result<SweepPlan, ClusterError> {
        let by_app = ListParams::default().labels(&format!("{LABEL_APP}={app}"));
        let jobs = self.api::<Job>().list(&by_app).await.map_err(self.fail("list", "Job", app.as_str()))?;
        let deployments = self.api::<Deployment>().list(&by_app).await.map_err(self.fail(
            "list",
            "Deployment",
            app.as_str(),
        ))?;
        let plan = plan_sweep(current, &found(jobs.items), &found(deployments.items));
        for j in &plan.delete_jobs {
            self.delete::<Job>("Job", j).await?;
        }
        for d in &plan.delete_deployments {
            self.delete::<Deployment>("Deployment", d).await?;
        }
        if plan.delete_service {
            self.delete::<Service>("Service", &service_name(app)).await?;
        }
        if let Some(c) = current.filter(|_| plan.roll_back) {
            self.apply_all(c.manifests).await?;
        }
        Ok(plan)
    }

    /// Removes `release` from the cluster: its Jobs (predeploy, release, postdeploy), found by
    /// label; and when a rollout of it began but it is not `current`, puts `current`'s
    /// Deployments back (or, with no current release, deletes the app's Deployments and Service).
    pub async fn discard(
        &self,
        app: &AppName,
        release: ReleaseId,
        current: Option<Current<'_>>,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let params = ListParams::default().labels(&format!("{LABEL_APP}={app},{LABEL_RELEASE}={release}"));
        let jobs = self.api::<Job>().list(&params).await.map_err(self.fail("list", "Job", app.as_str()))?;
        for j in found(jobs.items) {
            self.delete::<Job>("Job", &j.name).await?;
        }
        if current.is_some_and(|c| c.release == release) || !self.deployments_at(app, release).await? {
            return Ok(());
        }
        if let Some(c) = current {
            self.put_back(c.manifests, timeout).await?;
            self.prune(app, c.manifests).await
        } else {
            let none = Manifests { claim: None, predeploy: None, deployments: Vec::new(), service: None };
            self.prune(app, &none).await
        }
    }

    /// Applies a release's Deployments and Service again and waits until they are ready.
    async fn put_back(&self, m: &Manifests, timeout: Duration) -> Result<(), ClusterError> {
        self.apply_all(m).await?;
        self.wait_all_ready(m, timeout).await
    }
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
