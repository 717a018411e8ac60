//! Buildpack API versions: which ones slipway runs, and what differs between them.
//!
//! The reference lifecycle runs Buildpack API 0.7 to 0.12
//! (<https://github.com/buildpacks/lifecycle/blob/main/api/apis.go>) and follows each
//! buildpack's declared version: the `CNB_*` path variables exist from 0.8, `CNB_TARGET_*` from
//! 0.10, a process `command` is an array from 0.9, `working-dir` is honoured from 0.8.

use std::fmt;

/// The oldest minor version of Buildpack API 0.x that slipway runs.
pub const OLDEST: u32 = 7;
/// The newest minor version of Buildpack API 0.x that slipway runs.
pub const NEWEST: u32 = 12;

/// A Buildpack API version slipway runs: `0.7` to `0.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    minor: u32,
}

/// Why an `api = "..."` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Buildpack API {given:?} is not supported: slipway runs Buildpack API 0.{OLDEST} to 0.{NEWEST}, as the reference lifecycle does; set api to one of those in buildpack.toml"
)]
pub struct ApiError {
    /// The version as written.
    pub given: String,
}

impl ApiVersion {
    /// The version `0.minor`, if slipway runs it.
    pub fn new(minor: u32) -> Option<Self> {
        (OLDEST..=NEWEST).contains(&minor).then_some(Self { minor })
    }

    /// Parses `0.7` .. `0.12` (no leading zeros, no patch part, as buildpack.toml writes it).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let err = || ApiError { given: text.to_owned() };
        let minor = text.strip_prefix("0.").ok_or_else(err)?;
        if minor.is_empty() || minor.starts_with('0') || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        minor.parse().ok().and_then(Self::new).ok_or_else(err)
    }

    /// Whether the lifecycle sets `CNB_PLATFORM_DIR`, `CNB_BUILD_PLAN_PATH`, `CNB_BP_PLAN_PATH`
    /// and `CNB_LAYERS_DIR` (0.8 and later; older buildpacks read the positional arguments).
    pub fn has_path_env(self) -> bool {
        self.minor >= 8
    }

    /// Whether the lifecycle sets `CNB_TARGET_*` (0.10 and later).
    pub fn has_target_env(self) -> bool {
        self.minor >= 10
    }

    /// Whether a launch.toml process `command` is an array run directly (0.9 and later);
    /// before, it is a string with `args` and `direct`.
    pub fn command_is_array(self) -> bool {
        self.minor >= 9
    }

    /// Whether a process's `working-dir` is honoured (0.8 and later; ignored with a warning
    /// before, as the lifecycle does).
    pub fn has_working_dir(self) -> bool {
        self.minor >= 8
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0.{}", self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_from_0_7_to_0_12_is_accepted_and_nothing_else() {
        for minor in 7..=12 {
            let v = ApiVersion::parse(&format!("0.{minor}")).unwrap();
            assert_eq!(v.to_string(), format!("0.{minor}"));
        }
        for bad in ["0.6", "0.13", "1.0", "0.10.1", "0.010", "0.", "", " 0.10", "0.1x", "latest"] {
            let err = ApiVersion::parse(bad).unwrap_err();
            assert!(err.to_string().contains("0.7 to 0.12"), "{bad}: {err}");
        }
    }

    #[test]
    fn features_follow_the_declared_version() {
        let v = |m| ApiVersion::new(m).unwrap();
        assert!(!v(7).has_path_env() && v(8).has_path_env());
        assert!(!v(9).has_target_env() && v(10).has_target_env());
        assert!(!v(8).command_is_array() && v(9).command_is_array());
        assert!(!v(7).has_working_dir() && v(12).has_working_dir());
        assert!(v(7) < v(12));
    }
}
