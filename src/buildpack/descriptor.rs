//! `buildpack.toml`: who a buildpack is and what it runs on.
//!
//! Others extend this file (pack reads `[[stacks]]`, `[metadata]`, ...), so unknown keys are
//! accepted rather than refused.

use serde::Deserialize;

use super::api::{ApiError, ApiVersion};

/// A parsed `buildpack.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackDescriptor {
    /// The Buildpack API version it declares; the lifecycle follows it.
    pub api: ApiVersion,
    /// The `[buildpack]` table.
    pub buildpack: BuildpackInfo,
    /// The `[[targets]]` it supports; empty means any.
    pub targets: Vec<Target>,
    /// The `[[order]]` groups of a composite buildpack (one that only names others).
    pub order: Vec<Order>,
}

/// `buildpack.toml` as written, before its api is checked.
#[derive(Debug, Deserialize)]
struct RawDescriptor {
    api: String,
    buildpack: BuildpackInfo,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    order: Vec<Order>,
}

impl BuildpackDescriptor {
    /// Whether it is a composite buildpack: `[[order]]` instead of its own `bin/`.
    pub fn is_composite(&self) -> bool {
        !self.order.is_empty()
    }
}

/// The `[buildpack]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildpackInfo {
    /// The id, e.g. `slipway/procfile`.
    pub id: String,
    /// The version.
    pub version: String,
    /// A human name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether detect and build run without the user's variables (`/platform/env`) in their
    /// environment; they are set there by default (Buildpack API "clear-env").
    #[serde(default, rename = "clear-env")]
    pub clear_env: bool,
}

/// One `[[order]]` of a composite buildpack.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// The buildpacks of this order's group, by id.
    #[serde(default)]
    pub group: Vec<OrderEntry>,
}

/// One buildpack of an `[[order.group]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderEntry {
    /// Its id.
    pub id: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// Whether the group still passes without it.
    #[serde(default)]
    pub optional: bool,
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Target {
    /// e.g. `linux`.
    #[serde(default)]
    pub os: Option<String>,
    /// e.g. `amd64`.
    #[serde(default)]
    pub arch: Option<String>,
}

/// Why a `buildpack.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// Not valid TOML, or a required key is missing.
    #[error("invalid buildpack.toml: {source}")]
    Toml {
        /// The parser's error, with its line.
        #[source]
        source: toml::de::Error,
    },
    /// The id could not be used as a directory name.
    #[error("invalid buildpack id {id:?}: use letters, digits, '.', '-', '_' and '/'")]
    Id {
        /// The id.
        id: String,
    },
    /// A buildpack with neither `[[order]]` nor `bin/`, or with both.
    #[error(
        "buildpack {id} must have either bin/detect and bin/build, or [[order]] groups naming other buildpacks (a composite buildpack)"
    )]
    Composite {
        /// The id.
        id: String,
    },
    /// An API version slipway does not run.
    #[error("buildpack {id}")]
    Api {
        /// The buildpack id.
        id: String,
        /// What is wrong.
        #[source]
        source: ApiError,
    },
}

impl BuildpackDescriptor {
    /// Parses and checks the text of a `buildpack.toml`.
    pub fn parse(text: &str) -> Result<Self, DescriptorError> {
        let d: RawDescriptor = toml::from_str(text).map_err(|source| DescriptorError::Toml { source })?;
        let id = &d.buildpack.id;
        let ok = !id.is_empty()
            && id != "config"
            && id != "app"
            && !id.split('/').any(|p| p.is_empty() || p == "." || p == "..")
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !ok {
            return Err(DescriptorError::Id { id: id.clone() });
        }
        let api =
            ApiVersion::parse(&d.api).map_err(|source| DescriptorError::Api { id: id.clone(), source })?;
        Ok(Self { api, buildpack: d.buildpack, targets: d.targets, order: d.order })
    }

    /// The id as a single path component: `/` becomes `_`, as the CNB lifecycle escapes it
    /// for layer directories.
    pub fn escaped_id(&self) -> String {
        self.buildpack.id.replace('/', "_")
    }

    /// Whether the buildpack runs on `os`/`arch` (no targets means anywhere).
    pub fn supports(&self, os: &str, arch: &str) -> bool {
        self.targets.is_empty()
            || self.targets.iter().any(|t| {
                t.os.as_deref().is_none_or(|o| o == os) && t.arch.as_deref().is_none_or(|a| a == arch)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_root_buildpack_parses() {
        let d = BuildpackDescriptor::parse(include_str!("../../buildpack.toml")).unwrap();
        assert_eq!(d.buildpack.id, "slipway/procfile");
        assert_eq!(d.escaped_id(), "slipway_procfile");
        assert!(d.supports("linux", "amd64"));
        assert!(!d.supports("windows", "amd64"));
    }

    #[test]
    fn ids_that_escape_a_path_and_other_apis_are_refused() {
        let bad_id = "api = \"0.10\"\n[buildpack]\nid = \"../x\"\nversion = \"1\"\n";
        assert!(matches!(BuildpackDescriptor::parse(bad_id), Err(DescriptorError::Id { .. })));
        let old = "api = \"0.2\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n";
        let err = BuildpackDescriptor::parse(old).unwrap_err();
        assert!(matches!(err, DescriptorError::Api { .. }));
        assert!(std::error::Error::source(&err).unwrap().to_string().contains("0.7 to 0.12"));
        let new = "api = \"0.12\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n";
        assert_eq!(BuildpackDescriptor::parse(new).unwrap().api.to_string(), "0.12");
        assert!(matches!(BuildpackDescriptor::parse("api = 1"), Err(DescriptorError::Toml { .. })));
    }

    #[test]
    fn a_buildpack_with_an_order_is_composite() {
        let text = "api = \"0.10\"\n[buildpack]\nid = \"x/meta\"\nversion = \"1\"\n\n[[order]]\n[[order.group]]\nid = \"x/a\"\nversion = \"1\"\n[[order.group]]\nid = \"x/b\"\noptional = true\n";
        let d = BuildpackDescriptor::parse(text).unwrap();
        assert!(d.is_composite());
        assert!(!d.order[0].group[0].optional && d.order[0].group[1].optional);
        let plain = "api = \"0.10\"\n[buildpack]\nid = \"x/a\"\nversion = \"1\"\n";
        assert!(!BuildpackDescriptor::parse(plain).unwrap().is_composite());
    }
}
