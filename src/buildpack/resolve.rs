//! Build plan resolution for one group, as the Buildpack API spec's "Phase #1: Detection"
//! and the reference lifecycle's resolver do it:
//!
//! - a non-optional buildpack that fails detect fails the group; an optional one is dropped;
//! - each buildpack's plan alternatives (the top-level sections, then each `[[or]]`) are tried
//!   in order, the first combination that resolves wins;
//! - a `requires` must be provided by the same or an earlier buildpack, and a `provides` must be
//!   required by the same or a later one; an optional buildpack that breaks either rule is
//!   dropped (and the check repeated), a non-optional one fails the combination;
//! - each provider's build receives every matched requirement of its names, with metadata, in
//!   its buildpack plan; a requirement a provider lists in build.toml `[[unmet]]` goes on to
//!   the next provider of that name.

use super::detect::{BuildPlan, BuildpackPlan, DetectOutcome, PlanRequire, PlanSections};

/// One group member after its detect ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// The buildpack id.
    pub id: String,
    /// Whether the group passes without it.
    pub optional: bool,
    /// Its detect exit code, interpreted.
    pub outcome: DetectOutcome,
    /// The plan it wrote (empty unless it passed).
    pub plan: BuildPlan,
}

/// A dependency name matched in the resolved group.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// The buildpacks that provide it, in group order.
    pub providers: Vec<String>,
    /// Every requirement of it, in group order.
    pub requires: Vec<PlanRequire>,
}

/// The group that passed and its resolved plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The buildpacks that run build, in order.
    pub group: Vec<String>,
    /// The matched entries.
    pub plan: Vec<PlanEntry>,
}

/// Why a group did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupFailure {
    /// A buildpack that is not optional did not pass detect (exit 100).
    #[error("buildpack {id} did not pass detect (exit 100) and is not optional")]
    Failed {
        /// The buildpack.
        id: String,
    },
    /// A detect exited with an error code.
    #[error("detect of buildpack {id} failed with exit code {code}")]
    Errored {
        /// The buildpack.
        id: String,
        /// Its exit code.
        code: i64,
    },
    /// A non-optional buildpack requires what no earlier buildpack provides.
    #[error("buildpack {id} requires {name:?}, which no buildpack at or before it provides")]
    Unprovided {
        /// The buildpack.
        id: String,
        /// The dependency.
        name: String,
    },
    /// A non-optional buildpack provides what no buildpack at or after it requires.
    #[error("buildpack {id} provides {name:?}, which no buildpack at or after it requires")]
    Unrequired {
        /// The buildpack.
        id: String,
        /// The dependency.
        name: String,
    },
    /// Nothing is left to build.
    #[error("no buildpack of the group passed detection")]
    Empty,
}

/// Resolves one group's detect results; see the module docs.
pub fn resolve(group: &[Detected]) -> Result<Resolved, GroupFailure> {
    let mut passed = Vec::new();
    for d in group {
        match d.outcome {
            DetectOutcome::Pass => passed.push(d),
            DetectOutcome::Fail | DetectOutcome::Error(_) if d.optional => {}
            DetectOutcome::Fail => return Err(GroupFailure::Failed { id: d.id.clone() }),
            DetectOutcome::Error(code) => return Err(GroupFailure::Errored { id: d.id.clone(), code }),
        }
    }
    if passed.is_empty() {
        return Err(GroupFailure::Empty);
    }
    let options: Vec<Vec<PlanSections>> = passed.iter().map(|d| d.plan.options()).collect();
    let mut choice = vec![0usize; passed.len()];
    let mut last_err;
    loop {
        // Only the last alternative lets an optional buildpack drop out, as in the lifecycle.
        let trial: Vec<Trial<'_>> = passed
            .iter()
            .zip(&choice)
            .zip(&options)
            .map(|((d, &c), opts)| Trial {
                id: &d.id,
                optional: d.optional && c + 1 == opts.len(),
                sections: &opts[c],
            })
            .collect();
        match run_trial(trial) {
            Ok(r) => return Ok(r),
            Err(e) => last_err = e,
        }
        // Next combination, the last buildpack's alternatives varying fastest.
        let mut i = choice.len();
        loop {
            if i == 0 {
                return Err(last_err);
            }
            i -= 1;
            choice[i] += 1;
            if choice[i] < options[i].len() {
                break;
            }
            choice[i] = 0;
        }
    }
}

struct Trial<'a> {
    id: &'a str,
    optional: bool,
    sections: &'a PlanSections,
}

fn run_trial(mut trial: Vec<Trial<'_>>) -> Result<Resolved, GroupFailure> {
    'retry: loop {
        if trial.is_empty() {
            return Err(GroupFailure::Empty);
        }
        // name -> (providers seen so far not yet matched, entry)
        let mut entries: Vec<(String, PlanEntry)> = Vec::new();
        let mut pending: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, t) in trial.iter().enumerate() {
            for p in &t.sections.provides {
                match pending.iter_mut().find(|(n, _)| *n == p.name) {
                    Some((_, who)) => who.push(i),
                    None => pending.push((p.name.clone(), vec![i])),
                }
            }
            for r in &t.sections.requires {
                let newly: Vec<usize> = pending
                    .iter_mut()
                    .find(|(n, _)| *n == r.name)
                    .map(|(_, who)| std::mem::take(who))
                    .unwrap_or_default();
                let at = entries.iter().position(|(n, _)| *n == r.name).unwrap_or_else(|| {
                    entries.push((r.name.clone(), PlanEntry { providers: vec![], requires: vec![] }));
                    entries.len() - 1
                });
                let entry = &mut entries[at].1;
                entry.providers.extend(newly.iter().map(|&k| trial[k].id.to_owned()));
                if entry.providers.is_empty() {
                    if t.optional {
                        trial.remove(i);
                        continue 'retry;
                    }
                    return Err(GroupFailure::Unprovided { id: t.id.to_owned(), name: r.name.clone() });
                }
                entry.requires.push(r.clone());
            }
        }
        for (name, who) in &pending {
            if let Some(&k) = who.first() {
                if trial[k].optional {
                    trial.remove(k);
                    continue 'retry;
                }
                return Err(GroupFailure::Unrequired { id: trial[k].id.to_owned(), name: name.clone() });
            }
        }
        let group = trial.iter().map(|t| t.id.to_owned()).collect();
        let plan = entries.into_iter().map(|(_, e)| e).collect();
        return Ok(Resolved { group, plan });
    }
}

impl Resolved {
    /// The buildpack plan `id`'s build receives: every requirement of each name it provides.
    pub fn buildpack_plan(&self, id: &str) -> BuildpackPlan {
        let entries = self
            .plan
            .iter()
            .filter(|e| e.providers.iter().any(|p| p == id))
            .flat_map(|e| e.requires.iter().cloned())
            .collect();
        BuildpackPlan { entries }
    }

    /// After `id` built: the names it provides are met, except those it listed in build.toml
    /// `[[unmet]]`, which stay for the next provider.
    pub fn after_build(&mut self, id: &str, unmet: &[String]) {
        self.plan.retain(|e| {
            !e.providers.iter().any(|p| p == id) || e.requires.iter().any(|r| unmet.contains(&r.name))
        });
        for e in &mut self.plan {
            e.providers.retain(|p| p != id);
        }
    }
}

/// build.toml: what a buildpack's build did not meet (`[[unmet]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct BuildToml {
    /// The plan entries left for a later provider.
    #[serde(default)]
    pub unmet: Vec<Unmet>,
}

/// One `[[unmet]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Unmet {
    /// The entry's name.
    pub name: String,
}

/// Why a build.toml was refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildTomlError {
    /// Not valid TOML for build.toml.
    #[error("invalid build.toml from buildpack {buildpack}: {source}")]
    Toml {
        /// The buildpack.
        buildpack: String,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// An `[[unmet]]` names an entry the buildpack was not given.
    #[error(
        "build.toml from buildpack {buildpack}: [[unmet]] names {name:?}, which is not in its buildpack plan"
    )]
    NotInPlan {
        /// The buildpack.
        buildpack: String,
        /// The name.
        name: String,
    },
}

impl BuildToml {
    /// Parses the build.toml `buildpack` wrote and checks its unmet names against its plan.
    pub fn parse(buildpack: &str, text: &str, plan: &BuildpackPlan) -> Result<Self, BuildTomlError> {
        let b: Self = toml::from_str(text)
            .map_err(|source| BuildTomlError::Toml { buildpack: buildpack.to_owned(), source })?;
        if let Some(u) = b.unmet.iter().find(|u| !plan.entries.iter().any(|e| e.name == u.name)) {
            return Err(BuildTomlError::NotInPlan { buildpack: buildpack.to_owned(), name: u.name.clone() });
        }
        Ok(b)
    }

    /// The unmet names.
    pub fn unmet_names(&self) -> Vec<String> {
        self.unmet.iter().map(|u| u.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(id: &str, optional: bool, plan: &str) -> Detected {
        Detected {
            id: id.into(),
            optional,
            outcome: DetectOutcome::Pass,
            plan: BuildPlan::parse(plan).unwrap(),
        }
    }

    fn failed(id: &str, optional: bool) -> Detected {
        Detected { id: id.into(), optional, outcome: DetectOutcome::Fail, plan: BuildPlan::default() }
    }

    const PROVIDES_PY: &str = "[[provides]]\nname = \"python\"\n";
    const REQUIRES_PY: &str = "[[requires]]\nname = \"python\"\n[requires.metadata]\nversion = \"3.11\"\n";

    #[test]
    fn a_requirement_reaches_its_provider_with_its_metadata() {
        let r = resolve(&[det("py", false, PROVIDES_PY), det("app", false, REQUIRES_PY)]).unwrap();
        assert_eq!(r.group, ["py", "app"]);
        let plan = r.buildpack_plan("py");
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].metadata["version"].as_str(), Some("3.11"));
        assert!(r.buildpack_plan("app").entries.is_empty());
    }

    #[test]
    fn a_requirement_nobody_provides_fails_the_group() {
        let err = resolve(&[det("app", false, REQUIRES_PY)]).unwrap_err();
        assert_eq!(err, GroupFailure::Unprovided { id: "app".into(), name: "python".into() });
        // The provider must come first.
        let err = resolve(&[det("app", false, REQUIRES_PY), det("py", false, PROVIDES_PY)]).unwrap_err();
        assert!(matches!(err, GroupFailure::Unprovided { .. }), "{err}");
        let err = resolve(&[det("py", false, PROVIDES_PY)]).unwrap_err();
        assert_eq!(err, GroupFailure::Unrequired { id: "py".into(), name: "python".into() });
    }

    #[test]
    fn optional_buildpacks_that_do_not_match_are_dropped() {
        let r = resolve(&[
            det("py", true, PROVIDES_PY),
            det("lonely", true, REQUIRES_PY.replace("python", "node").as_str()),
            det("app", false, ""),
            failed("skipped", true),
        ])
        .unwrap();
        assert_eq!(r.group, ["app"]);
        let err = resolve(&[det("app", false, ""), failed("named", false)]).unwrap_err();
        assert_eq!(err, GroupFailure::Failed { id: "named".into() });
        assert_eq!(resolve(&[failed("a", true)]).unwrap_err(), GroupFailure::Empty);
    }

    #[test]
    fn or_alternatives_are_tried_in_order() {
        let either = "[[requires]]\nname = \"node\"\n[[or]]\n[[or.requires]]\nname = \"python\"\n";
        let r = resolve(&[det("py", false, PROVIDES_PY), det("app", false, either)]).unwrap();
        assert_eq!(r.buildpack_plan("py").entries[0].name, "python");
    }

    #[test]
    fn unmet_entries_go_on_to_the_next_provider() {
        let mut r = resolve(&[
            det("a", false, PROVIDES_PY),
            det("b", false, PROVIDES_PY),
            det("app", false, REQUIRES_PY),
        ])
        .unwrap();
        let plan = r.buildpack_plan("a");
        assert_eq!(plan.entries.len(), 1);
        let build = BuildToml::parse("a", "[[unmet]]\nname = \"python\"\n", &plan).unwrap();
        r.after_build("a", &build.unmet_names());
        assert_eq!(r.buildpack_plan("b").entries.len(), 1, "b still gets python");
        let mut met = r.clone();
        met.after_build("b", &[]);
        assert!(met.buildpack_plan("b").entries.is_empty());
        let err = BuildToml::parse("a", "[[unmet]]\nname = \"ruby\"\n", &plan).unwrap_err();
        assert!(err.to_string().contains("not in its buildpack plan"), "{err}");
    }

    #[test]
    fn without_unmet_a_later_provider_gets_nothing() {
        let mut r = resolve(&[
            det("a", false, PROVIDES_PY),
            det("b", false, PROVIDES_PY),
            det("app", false, REQUIRES_PY),
        ])
        .unwrap();
        r.after_build("a", &[]);
        assert!(r.buildpack_plan("b").entries.is_empty());
    }
}
