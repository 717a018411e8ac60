//! Choosing how the limit is enforced, and the soft-mode check made before a write.

use std::path::Path;

use super::{MountError, QuotaMode};

/// The smallest limit accepted: ext4 needs room for its journal and metadata.
pub const MIN_LIMIT: u64 = 16 << 20;

/// The default limit, 25 GiB, as Dash Enterprise's persistent filesystem.
pub const DEFAULT_LIMIT: u64 = 25 << 30;

/// What the host offers for hard limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSupport {
    /// Running as root.
    pub root: bool,
    /// `/dev/loop-control` exists.
    pub loop_control: bool,
    /// `mkfs.ext4` is on PATH.
    pub mkfs: bool,
}

impl HostSupport {
    /// Probe this host.
    pub fn probe() -> Self {
        Self {
            root: rustix::process::geteuid().is_root(),
            loop_control: Path::new("/dev/loop-control").exists(),
            mkfs: which::which("mkfs.ext4").is_ok(),
        }
    }

    /// What stands in the way of hard limits, if anything.
    pub fn missing(self) -> Option<String> {
        let missing: Vec<&str> = [
            (!self.root).then_some("not root"),
            (!self.loop_control).then_some("no /dev/loop-control"),
            (!self.mkfs).then_some("mkfs.ext4 not found"),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }
}

/// Hard when the host supports it, unless `SLIPWAY_MOUNT_MODE` (`env`) says `soft`;
/// `hard` forces it and fails where it cannot work.
pub(crate) fn choose_mode(env: Option<&str>, host: HostSupport) -> Result<QuotaMode, MountError> {
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some("soft") => Ok(QuotaMode::Soft),
        Some("hard") => match host.missing() {
            None => Ok(QuotaMode::Hard),
            Some(missing) => Err(MountError::HardUnavailable { missing }),
        },
        Some(other) => Err(MountError::BadModeEnv { value: other.to_owned() }),
        None if host.missing().is_none() => Ok(QuotaMode::Hard),
        None => Ok(QuotaMode::Soft),
    }
}

/// Soft mode: refuse a write of `adding` bytes that replaces `replacing` bytes when the
/// result would cross `limit`.
pub(crate) fn check_soft(
    app: &str,
    used: u64,
    replacing: u64,
    adding: u64,
    limit: u64,
) -> Result<(), MountError> {
    let after = used.saturating_sub(replacing).saturating_add(adding);
    if after > limit {
        return Err(MountError::OverQuota { app: app.to_owned(), adding, used, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: HostSupport = HostSupport { root: true, loop_control: true, mkfs: true };
    const USER: HostSupport = HostSupport { root: false, loop_control: true, mkfs: true };

    #[test]
    fn hard_when_possible_soft_otherwise() {
        assert_eq!(choose_mode(None, ALL).unwrap(), QuotaMode::Hard);
        assert_eq!(choose_mode(None, USER).unwrap(), QuotaMode::Soft);
        assert_eq!(choose_mode(Some("soft"), ALL).unwrap(), QuotaMode::Soft);
        assert_eq!(choose_mode(Some(""), ALL).unwrap(), QuotaMode::Hard);
    }

    #[test]
    fn forced_hard_without_root_is_an_error() {
        let err = choose_mode(Some("hard"), USER).unwrap_err();
        assert!(err.to_string().contains("not root"), "{err}");
        assert!(matches!(choose_mode(Some("quick"), ALL), Err(MountError::BadModeEnv { .. })));
    }

    #[test]
    fn soft_check_counts_the_replaced_file() {
        assert!(check_soft("demo", 50, 0, 50, 100).is_ok());
        assert!(check_soft("demo", 50, 0, 51, 100).is_err());
        assert!(check_soft("demo", 90, 40, 50, 100).is_ok());
        let err = check_soft("demo", 90, 0, 20, 100).unwrap_err().to_string();
        assert!(err.contains("app demo's 100 B limit (90 B already used)"), "{err}");
    }
}
