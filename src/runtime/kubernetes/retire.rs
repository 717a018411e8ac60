//! Retiring and discarding releases of a kubernetes app, and reconciling after a killed deploy:
//! the cluster's objects of the release (found by label, [`super::repair`]), its image tag on
//! the local engine and in the cluster's registry ([`super::registry`]), and its local record.
//!
//! Reconciliation needs the cluster only when a deploy left something behind. Every cluster
//! write of a release happens after `build` saved `state/<app>/kubernetes/<release>.json`,
//! and `remove` deletes that file last, so a record of a release that is not current is the
//! evidence: without one, every command stays off the network.

use std::path::PathBuf;
use std::time::Duration;

use super::registry::{self, Deleted};
use super::repair::Current;
use super::runtime::{KubeError, KubernetesRuntime, SCHEDULE_SLACK};
use super::settings::KubeSettings;
use crate::ids::{AppName, ReleaseId};
use crate::runtime::{Repairs, Runtime as _, RuntimeError};
use crate::state::AppRecord;

/// How long the reconciliation of one app may talk to its cluster.
const RECONCILE_BUDGET: Duration = Duration::from_secs(15);

impl KubernetesRuntime {
    /// `Runtime::remove`: the release's Jobs, a failed rollout undone, its image tags, then
    /// its local image and record.
    pub(super) fn remove_release(
        &self,
        app: &AppName,
        release: ReleaseId,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let record = self.home.load_app(app).map_err(KubeError::from)?;
        let current = record.current.filter(|c| *c != release);
        let current_manifests = current.and_then(|c| self.load_state(app, c).ok()).and_then(|s| s.manifests);
        self.block(app, async |cluster, settings| {
            let kept = current
                .zip(current_manifests.as_ref())
                .map(|(release, manifests)| Current { release, manifests });
            // With no current release, `discard` deletes the app's Deployments instead.
            cluster.discard(app, release, kept, grace + SCHEDULE_SLACK).await?;
            self.untag(app, release).await?;
            retire_registry_tag(settings, app, release, current).await;
            Ok(())
        })?;
        self.docker.remove(app, release, grace)?;
        if record.current != Some(release) {
            let path = self.state_path(app, release);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(KubeError::Io { action: "remove", path, source }.into()),
            }
        }
        Ok(())
    }

    /// `Runtime::reconcile`: when a record of a release that is not current is left, sweep the
    /// app's labelled objects on the cluster, then remove each such release.
    pub(super) fn reconcile_app(&self, app: &AppRecord) -> Result<Repairs, RuntimeError> {
        let leftovers = self.leftover_releases(app)?;
        if leftovers.is_empty() {
            return Ok(Repairs::default());
        }
        let current = app.current.and_then(|c| Some((c, self.load_state(&app.name, c).ok()?.manifests?)));
        let swept = self.block(&app.name, async |cluster, _| {
            let kept = current.as_ref().map(|(release, manifests)| Current { release: *release, manifests });
            // Every command reconciles every app first: a cluster that does not answer must
            // not hold up a command about another app for long.
            match tokio::time::timeout(RECONCILE_BUDGET, cluster.sweep(&app.name, kept)).await {
                Ok(swept) => Ok(swept?),
                Err(_) => Err(KubeError::Unanswered { app: app.name.clone(), waited: RECONCILE_BUDGET }),
            }
        })?;
        if !swept.is_empty() {
            tracing::info!(app = %app.name, ?swept, "repaired the app's objects on the cluster");
        }
        for r in &leftovers {
            self.remove_release(&app.name, *r, crate::plan::DEFAULT_STOP_GRACE)?;
        }
        let restarted = if swept.roll_back { app.current } else { None };
        Ok(Repairs { removed: leftovers, restarted })
    }

    /// Releases with a record in `state/<app>/kubernetes/` that are not current.
    fn leftover_releases(&self, app: &AppRecord) -> Result<Vec<ReleaseId>, KubeError> {
        let dir = self.state_dir(&app.name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KubeError::Io { action: "read", path: dir, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|source| KubeError::Io { action: "read", path: dir.clone(), source })?;
            names.push(PathBuf::from(entry.file_name()));
        }
        Ok(leftovers(&names, app.current))
    }
}

/// The releases of `<release>.json` records among `names` that are not `current`, in order.
/// Pure.
fn leftovers(names: &[PathBuf], current: Option<ReleaseId>) -> Vec<ReleaseId> {
    let mut found: Vec<ReleaseId> = names
        .iter()
        .filter(|n| n.extension().is_some_and(|e| e == "json"))
        .filter_map(|n| n.file_stem()?.to_str()?.parse::<ReleaseId>().ok())
        .filter(|r| Some(*r) != current)
        .collect();
    found.sort();
    found
}

/// Deletes `release`'s image from the registry unless `current` shares its digest. A registry
/// that cannot or will not delete gets a warning: the deploy is done, and the image only takes
/// space.
async fn retire_registry_tag(
    settings: &KubeSettings,
    app: &AppName,
    release: ReleaseId,
    current: Option<ReleaseId>,
) {
    let Some(reg) = &settings.registry else { return };
    let image = registry::locate(reg, app, release);
    let kept = current.map(|c| registry::locate(reg, app, c));
    match registry::delete_tag(&image, kept.as_ref()).await {
        Ok(Deleted::Manifest { digest }) => {
            tracing::info!(app = %app, image = %image, digest, "deleted the retired image from the registry");
        }
        Ok(Deleted::Gone) => {}
        Ok(Deleted::Shared { digest }) => {
            tracing::info!(app = %app, image = %image, digest, "kept: the current release has the same image");
        }
        Err(e) => eprintln!("       {}", registry_warning(&image, &e)),
    }
}

/// The warning for an image the registry kept.
pub(super) fn registry_warning(image: &registry::RegistryImage, e: &registry::RegistryError) -> String {
    format!("WARNING: {image} stays in the registry: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_of_releases_that_are_not_current_are_leftovers() {
        let names: Vec<PathBuf> = ["v3.json", "settings.json", "v1.json", "v2.json", "v4.json.tmp", "v5"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(leftovers(&names, Some(ReleaseId::new(2))), [ReleaseId::new(1), ReleaseId::new(3)]);
        assert_eq!(leftovers(&names[..2], Some(ReleaseId::new(3))), [], "a healthy app: no cluster call");
        assert_eq!(leftovers(&names[..1], None), [ReleaseId::new(3)], "a first deploy that never switched");
    }

    #[test]
    fn a_registry_that_keeps_the_image_is_a_warning_naming_it() {
        let image = registry::locate("reg:5000", &"shop".parse().unwrap(), ReleaseId::new(1));
        let e = registry::RegistryError::DeletesDisabled { image: image.to_string(), status: 405 };
        let w = registry_warning(&image, &e);
        assert!(w.starts_with("WARNING: reg:5000/slipway/shop:v1 stays in the registry"), "{w}");
        assert!(w.contains("delete: enabled: true"), "{w}");
    }
}
