//! Detect: its exit codes, the build plan it writes, and the buildpack plan build receives.
//!
//! slipway resolves plans simply: every buildpack that passes detect runs (the group is
//! treated as all-optional, in order), and each one's build receives the `[[requires]]` of its
//! own build plan as `[[entries]]`. Matching requires against other buildpacks' provides, and
//! `[[or]]` alternatives, are not implemented.

use serde::{Deserialize, Serialize};

/// What a detect exit code means (CNB: 0 pass, 100 fail, anything else an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectOutcome {
    /// Exit 0: the buildpack applies.
    Pass,
    /// Exit 100: the buildpack does not apply.
    Fail,
    /// Any other code: detect itself broke.
    Error(i64),
}

impl DetectOutcome {
    /// Interprets a detect exit code.
    pub fn from_exit_code(code: i64) -> Self {
        match code {
            0 => Self::Pass,
            100 => Self::Fail,
            c => Self::Error(c),
        }
    }
}

/// The build plan detect writes to `CNB_BUILD_PLAN_PATH`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BuildPlan {
    /// What it provides.
    #[serde(default)]
    pub provides: Vec<PlanProvide>,
    /// What it requires.
    #[serde(default)]
    pub requires: Vec<PlanRequire>,
}

/// A `[[provides]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlanProvide {
    /// The dependency name.
    pub name: String,
}

/// A `[[requires]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlanRequire {
    /// The dependency name.
    pub name: String,
    /// Free-form metadata passed through to build.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub metadata: toml::Table,
}

/// The buildpack plan build reads from `CNB_BP_PLAN_PATH`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildpackPlan {
    /// The entries this buildpack is to provide.
    pub entries: Vec<PlanRequire>,
}

/// Why a build plan was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid build plan written by detect: {source}")]
pub struct PlanError {
    #[source]
    source: toml::de::Error,
}

impl BuildPlan {
    /// Parses the text detect wrote (empty text is an empty plan).
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        toml::from_str(text).map_err(|source| PlanError { source })
    }

    /// The buildpack plan that this buildpack's build receives.
    pub fn buildpack_plan(&self) -> BuildpackPlan {
        BuildpackPlan { entries: self.requires.clone() }
    }
}

impl BuildpackPlan {
    /// The TOML text of the plan.
    pub fn to_toml(&self) -> String {
        // Serializing a struct of strings and tables cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(DetectOutcome::from_exit_code(0), DetectOutcome::Pass);
        assert_eq!(DetectOutcome::from_exit_code(100), DetectOutcome::Fail);
        assert_eq!(DetectOutcome::from_exit_code(1), DetectOutcome::Error(1));
    }

    #[test]
    fn requires_become_plan_entries() {
        let plan = BuildPlan::parse("[[provides]]\nname = \"procfile\"\n[[requires]]\nname = \"procfile\"\n")
            .unwrap();
        let bp = plan.buildpack_plan();
        assert_eq!(bp.entries[0].name, "procfile");
        assert_eq!(bp.to_toml(), "[[entries]]\nname = \"procfile\"\n");
        assert_eq!(BuildPlan::parse("").unwrap(), BuildPlan::default());
    }
}
