//! `slipway rollback`: which earlier release to bring back. Choosing is pure; the rollback
//! itself is a deploy of that release's commit from its recorded repository, so it builds a
//! fresh release (a new id) exactly as the original deploy did, with today's config.

use crate::ids::{AppName, ReleaseId};
use crate::state::{ReleaseRecord, ReleaseStatus};

/// Why there is nothing to roll back to.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// No earlier release ever ran.
    #[error("{app} has no earlier release that ran; nothing to roll back to (see `slipway releases {app}`)")]
    NothingBefore {
        /// The app.
        app: AppName,
    },
    /// The named release does not exist.
    #[error("{app} has no release {release} (see `slipway releases {app}`)")]
    NoSuchRelease {
        /// The app.
        app: AppName,
        /// The release asked for.
        release: ReleaseId,
    },
    /// The named release is the running one.
    #[error("{release} is {app}'s running release already; nothing was changed")]
    AlreadyCurrent {
        /// The app.
        app: AppName,
        /// The release asked for.
        release: ReleaseId,
    },
    /// The named release never served.
    #[error(
        "{release} of {app} never ran (its deploy {status}); pick a release that ran (see `slipway releases {app}`)"
    )]
    NeverRan {
        /// The app.
        app: AppName,
        /// The release asked for.
        release: ReleaseId,
        /// `failed` or `is in progress`.
        status: &'static str,
    },
}

/// The release to bring back: `wanted`, or else the newest retired release (the one that ran
/// before the current one).
pub fn target<'a>(
    app: &AppName,
    releases: &'a [ReleaseRecord],
    wanted: Option<ReleaseId>,
) -> Result<&'a ReleaseRecord, RollbackError> {
    let Some(wanted) = wanted else {
        return releases
            .iter()
            .filter(|r| r.status == ReleaseStatus::Retired)
            .max_by_key(|r| r.id)
            .ok_or_else(|| RollbackError::NothingBefore { app: app.clone() });
    };
    let r = releases
        .iter()
        .find(|r| r.id == wanted)
        .ok_or_else(|| RollbackError::NoSuchRelease { app: app.clone(), release: wanted })?;
    match r.status {
        ReleaseStatus::Retired => Ok(r),
        ReleaseStatus::Current => Err(RollbackError::AlreadyCurrent { app: app.clone(), release: wanted }),
        ReleaseStatus::Failed => {
            Err(RollbackError::NeverRan { app: app.clone(), release: wanted, status: "failed" })
        }
        ReleaseStatus::Deploying => {
            Err(RollbackError::NeverRan { app: app.clone(), release: wanted, status: "is in progress" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: u64, status: ReleaseStatus) -> ReleaseRecord {
        ReleaseRecord {
            id: ReleaseId::new(id),
            commit: format!("{id:040x}").parse().unwrap(),
            repo: "/srv/repo".into(),
            created_at: id,
            status,
            phases: Vec::new(),
            error: None,
            process_types: Vec::new(),
        }
    }

    fn app() -> AppName {
        "demo".parse().unwrap()
    }

    #[test]
    fn without_a_release_the_one_that_ran_before_the_current_one_comes_back() {
        let history = [
            release(1, ReleaseStatus::Retired),
            release(2, ReleaseStatus::Retired),
            release(3, ReleaseStatus::Failed),
            release(4, ReleaseStatus::Current),
        ];
        assert_eq!(target(&app(), &history, None).unwrap().id, ReleaseId::new(2));
        assert_eq!(target(&app(), &history, Some(ReleaseId::new(1))).unwrap().id, ReleaseId::new(1));
    }

    #[test]
    fn current_failed_unknown_and_lonely_releases_are_refused() {
        let history = [release(1, ReleaseStatus::Failed), release(2, ReleaseStatus::Current)];
        let err = |wanted: Option<u64>| target(&app(), &history, wanted.map(ReleaseId::new)).unwrap_err();
        assert!(matches!(err(None), RollbackError::NothingBefore { .. }));
        assert!(matches!(err(Some(2)), RollbackError::AlreadyCurrent { .. }));
        assert!(matches!(err(Some(1)), RollbackError::NeverRan { status: "failed", .. }));
        assert!(matches!(err(Some(9)), RollbackError::NoSuchRelease { .. }));
        assert!(err(Some(1)).to_string().contains("pick a release that ran"));
    }
}
