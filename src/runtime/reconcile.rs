//! Repair after a crash, a `kill -9` or a reboot. Every slipway command runs this first for
//! every app whose lock is free (a held lock means a deploy is in progress, and its leftovers
//! are not leftovers yet). Recovery rests on one commit point: `current` in app.json. Any
//! release that is not current is discarded; the current one is brought back up.

use super::AnyRuntime;
use crate::ids::{AppName, ReleaseId};
use crate::state::{AppRecord, FileLock, Home, ReleaseStatus, StateError};

/// What reconciliation did to one app, for `-v` diagnostics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    pub removed: Vec<ReleaseId>,
    pub restarted: Option<ReleaseId>,
}

/// Reconcile every app whose lock is free. Failures are logged, never fatal: a broken app must
/// not stop commands about other apps.
pub fn reconcile_all(home: &Home, skip: Option<&AppName>) {
    let Ok(apps) = home.list_apps() else { return };
    for app in apps.iter().filter(|a| Some(*a) != skip) {
        let lock = match FileLock::try_acquire(&home.app(app).lock()) {
            Ok(Some(lock)) => lock,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(app = %app, error = %e, "cannot lock app for reconciliation");
                continue;
            }
        };
        match reconcile_app(home, app) {
            Ok(r) if r != Repairs::default() => tracing::info!(app = %app, ?r, "reconciled"),
            Ok(_) => {}
            Err(e) => tracing::warn!(app = %app, error = %e, "reconciliation failed"),
        }
        drop(lock);
    }
}

/// Reconcile one app. The caller holds the app's lock.
pub fn reconcile_app(home: &Home, app: &AppName) -> Result<Repairs, ReconcileError> {
    let record = home.load_app(app)?;
    let _span = tracing::debug_span!("reconcile", app = %app).entered();
    fix_records(home, &record)?;
    // After a reboot or a resize killed mid-way, the mount is remounted (the resize finished
    // or undone) before anything starts on it.
    if let Err(e) = crate::mount::attach(&home.app(app)) {
        tracing::warn!(app = %app, error = %e, "cannot attach the persistent filesystem");
    }
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    let repairs = runtime.reconcile(&record)?;
    // After a reboot or a kill, the app's address comes back too.
    if let Err(e) = crate::router::ensure_running(home, &record) {
        tracing::warn!(app = %app, error = %e, "cannot start the router");
    }
    Ok(repairs)
}

/// Reconciliation failed for one app.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
}

/// Make release records agree with `current`: a deploy killed before the switch is failed,
/// one killed after it is current, and an old current one is retired. Every deploy reconciles
/// first, so only the newest records and the current one can disagree; reading just those keeps
/// this cheap however long the history grows.
fn fix_records(home: &Home, record: &AppRecord) -> Result<(), StateError> {
    let ids = home.release_ids(&record.name)?;
    let mut candidates: Vec<ReleaseId> = ids[ids.len().saturating_sub(3)..].to_vec();
    candidates.extend(record.current);
    candidates.sort();
    candidates.dedup();
    for id in candidates {
        let Ok(mut release) = home.load_release(&record.name, id) else { continue };
        let want = match (Some(release.id) == record.current, release.status) {
            (true, ReleaseStatus::Current) | (false, ReleaseStatus::Retired | ReleaseStatus::Failed) => {
                continue;
            }
            (true, _) => ReleaseStatus::Current,
            (false, ReleaseStatus::Current) => ReleaseStatus::Retired,
            (false, ReleaseStatus::Deploying) => {
                release.error.get_or_insert_with(|| "the deploy was interrupted".to_owned());
                ReleaseStatus::Failed
            }
        };
        release.status = want;
        home.save_release(&record.name, &release)?;
    }
    Ok(())
}
