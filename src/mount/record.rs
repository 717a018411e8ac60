//! The mount's settings, `state/<app>/mount.json`: root-only, replaced atomically.

use std::io;

use serde::{Deserialize, Serialize};

use crate::state::{AppPaths, atomic};

use super::MountError;

/// How the size limit is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaMode {
    /// A loop-mounted ext4 image of the limit's size: the kernel answers ENOSPC.
    Hard,
    /// A plain directory: slipway refuses puts past the limit and reports overuse.
    Soft,
}

impl std::fmt::Display for QuotaMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
        })
    }
}

/// An app's persistent filesystem settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSettings {
    pub enabled: bool,
    pub limit_bytes: u64,
    pub mode: QuotaMode,
}

/// The settings, or `None` if the mount was never enabled.
pub fn settings(paths: &AppPaths) -> Result<Option<MountSettings>, MountError> {
    let path = paths.mount_record();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| MountError::CorruptRecord { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MountError::ReadRecord { path, source }),
    }
}

/// The settings if the mount is enabled.
pub(crate) fn enabled(paths: &AppPaths) -> Result<Option<MountSettings>, MountError> {
    Ok(settings(paths)?.filter(|s| s.enabled))
}

/// Replace the settings atomically.
pub(crate) fn save(paths: &AppPaths, settings: &MountSettings) -> Result<(), MountError> {
    let path = paths.mount_record();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(MountError::io("create", parent))?;
    }
    atomic::write_json(&path, settings).map_err(|source| MountError::WriteRecord { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_in_lowercase() {
        let s = MountSettings { enabled: true, limit_bytes: 64 << 20, mode: QuotaMode::Soft };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"enabled":true,"limit_bytes":67108864,"mode":"soft"}"#);
        assert_eq!(serde_json::from_str::<MountSettings>(&json).unwrap(), s);
        assert!(
            serde_json::from_str::<MountSettings>(r#"{"enabled":true,"limit_bytes":1,"mode":"x"}"#).is_err()
        );
    }
}
