//! Detect: its exit codes, the build plan it writes, and the buildpack plan build receives.
//! [`super::resolve`] matches the plans of a group.

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
    /// Alternatives tried, in order, when the first sections do not resolve.
    #[serde(default)]
    pub or: Vec<PlanSections>,
}

/// One alternative of a build plan: an `[[or]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PlanSections {
    /// What it provides.
    #[serde(default)]
    pub provides: Vec<PlanProvide>,
    /// What it requires.
    #[serde(default)]
    pub requires: Vec<PlanRequire>,
}

impl BuildPlan {
    /// The alternatives in the order they are tried: the top-level sections, then each `[[or]]`.
    pub fn options(&self) -> Vec<PlanSections> {
        let first = PlanSections { provides: self.provides.clone(), requires: self.requires.clone() };
        std::iter::once(first).chain(self.or.iter().cloned()).collect()
    }
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
    fn a_plan_with_alternatives_lists_them_in_order() {
        let plan = BuildPlan::parse(
            "[[provides]]\nname = \"a\"\n[[requires]]\nname = \"a\"\n[requires.metadata]\nv = 1\n\
             [[or]]\n[[or.provides]]\nname = \"b\"\n[[or.requires]]\nname = \"b\"\n",
        )
        .unwrap();
        let options = plan.options();
        assert_eq!(options.len(), 2);
        assert_eq!(options[0].requires[0].metadata["v"].as_integer(), Some(1));
        assert_eq!(options[1].provides[0].name, "b");
        assert_eq!(BuildPlan::parse("").unwrap(), BuildPlan::default());
        let bp = BuildpackPlan { entries: options[1].requires.clone() };
        assert_eq!(bp.to_toml(), "[[entries]]\nname = \"b\"\n");
    }
}
