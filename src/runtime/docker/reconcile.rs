//! Reconciliation: the engine's view of an app brought back to slipway's.
//!
//! Containers and volumes are found by label and name (both set only by slipway); images by
//! the ids slipway recorded in its [`Ledger`], never by labels, which a Dockerfile can set.
//! Everything belonging to a release slipway does not keep is removed: containers first (so
//! their images can go), then images, then per-release volumes. Finished build and one-off
//! containers of kept releases and superseded images of kept releases are pruned too. The
//! app-wide mount and cache volumes are never touched.
//!
//! Call it with the app's deploy lock held: a deploy in progress owns a release that is not
//! yet the current one, and must be in `keep`.

use bollard::Docker;

use super::container::{self, ContainerError};
use super::image::{self, ImageError};
use super::labels::{self, Kind};
use super::ledger::Ledger;
use super::volume::{self, VolumeError};
use crate::ids::{AppName, ReleaseId};

/// Why reconciliation stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A container could not be listed or removed.
    #[error("reconciling the engine with slipway's state")]
    Container(#[from] ContainerError),
    /// An image could not be listed or removed.
    #[error("reconciling the engine with slipway's state")]
    Image(#[from] ImageError),
    /// A volume could not be listed or removed.
    #[error("reconciling the engine with slipway's state")]
    Volume(#[from] VolumeError),
}

/// What reconciliation removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Container names.
    pub containers: Vec<String>,
    /// Image ids.
    pub images: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.images.is_empty() && self.volumes.is_empty()
    }
}

/// Whether a labelled resource is an orphan: it belongs to a release not in `keep` (a
/// resource of the app without a valid release label is kept, e.g. the mount volume).
pub fn is_orphan(release: Option<ReleaseId>, keep: &[ReleaseId]) -> bool {
    release.is_some_and(|r| !keep.contains(&r))
}

/// Whether a container of a kept release is finished work to prune: an exited or never
/// started build or one-off container. Process containers stay, whatever their state: a
/// stopped one is `ps stop`'s doing.
pub fn is_finished_task(kind: Option<Kind>, state: &str) -> bool {
    matches!(kind, Some(Kind::Build | Kind::OneOff)) && matches!(state, "exited" | "dead" | "created")
}

/// Removes `app`'s resources of releases other than `keep`, then its finished task
/// containers and dangling images.
pub async fn reconcile(
    docker: &Docker,
    app: &AppName,
    ledger: &Ledger,
    keep: &[ReleaseId],
) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport::default();
    for c in container::list_containers(docker, app, None).await? {
        if is_orphan(c.release(), keep) || is_finished_task(c.kind(), &c.state) {
            container::remove_container(docker, &c.id).await?;
            report.containers.push(c.name);
        }
    }
    // Labels and tags only find candidates: a killed deploy's tag is untagged (the tag is
    // slipway's), and images go only by the ids recorded in the ledger.
    for i in image::list_images(docker, app).await? {
        if image::untag_release_tags(docker, app, &i, keep).await? {
            report.images.push(i.id.to_string());
        }
    }
    for release in ledger.releases() {
        if is_orphan(Some(release), keep) {
            let recorded = ledger.load(release).map_err(|source| ImageError::Ledger { release, source })?;
            image::remove_recorded(docker, ledger, release, image::StepPrune::IfIdle).await?;
            for id in recorded.release {
                if !report.images.contains(&id) {
                    report.images.push(id);
                }
            }
        }
    }
    image::prune_superseded(docker, ledger).await?;
    for (name, l) in volume::list_volumes(docker, app).await? {
        if is_orphan(labels::release_of(&l), keep) {
            volume::remove_volume(docker, &name).await?;
            report.volumes.push(name);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_releases_are_orphans() {
        let keep = [ReleaseId::new(3), ReleaseId::new(4)];
        assert!(is_orphan(Some(ReleaseId::new(2)), &keep));
        assert!(!is_orphan(Some(ReleaseId::new(4)), &keep));
        assert!(!is_orphan(None, &keep), "app-wide volumes carry no release and are kept");
        assert!(is_orphan(Some(ReleaseId::new(1)), &[]));
    }

    #[test]
    fn finished_builds_and_oneoffs_are_pruned_but_processes_stay() {
        assert!(is_finished_task(Some(Kind::Build), "exited"));
        assert!(is_finished_task(Some(Kind::OneOff), "created"));
        assert!(!is_finished_task(Some(Kind::OneOff), "running"));
        assert!(!is_finished_task(Some(Kind::Process), "exited"));
    }
}
