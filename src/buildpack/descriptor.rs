//! `buildpack.toml`: who a buildpack is and what it runs on.
//!
//! Others extend this file (pack reads `[[stacks]]`, `[metadata]`, ...), so unknown keys are
//! accepted rather than refused.

use serde::Deserialize;

/// A parsed `buildpack.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildpackDescriptor {
    /// The Buildpack API version, e.g. `0.10`.
    pub api: String,
    /// The `[buildpack]` table.
    pub buildpack: BuildpackInfo,
    /// The `[[targets]]` it supports; empty means any.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// The `[[order]]` groups of a composite buildpack (one that only names others).
    #[serde(default)]
    pub order: Vec<Order>,
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
    /// A composite buildpack, which slipway cannot run yet.
    #[error(
        "buildpack {id} is a composite buildpack ([[order]], no bin/), which slipway does not support yet: list the buildpacks it names in project.toml's [[io.buildpacks.group]] instead"
    )]
    Composite {
        /// The id.
        id: String,
    },
    /// An API version slipway does not run.
    #[error("buildpack {id} declares api = {api:?}; slipway runs Buildpack API 0.10: set api = \"0.10\"")]
    Api {
        /// The buildpack id.
        id: String,
        /// Its declared API.
        api: String,
    },
}

impl BuildpackDescriptor {
    /// Parses and checks the text of a `buildpack.toml`.
    pub fn parse(text: &str) -> Result<Self, DescriptorError> {
        let d: Self = toml::from_str(text).map_err(|source| DescriptorError::Toml { source })?;
        let id = &d.buildpack.id;
        let ok = !id.is_empty()
            && id != "config"
            && id != "app"
            && !id.split('/').any(|p| p.is_empty() || p == "." || p == "..")
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !ok {
            return Err(DescriptorError::Id { id: id.clone() });
        }
        if d.api != super::BUILDPACK_API {
            return Err(DescriptorError::Api { id: id.clone(), api: d.api.clone() });
        }
        Ok(d)
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
        assert!(matches!(BuildpackDescriptor::parse(old), Err(DescriptorError::Api { .. })));
        assert!(matches!(BuildpackDescriptor::parse("api = 1"), Err(DescriptorError::Toml { .. })));
    }

    #[test]
    fn a_buildpack_with_an_order_is_composite() {
        let text = "api = \"0.10\"\n[buildpack]\nid = \"x/meta\"\nversion = \"1\"\n\n[[order]]\n[[order.group]]\nid = \"x/a\"\nversion = \"1\"\n";
        assert!(BuildpackDescriptor::parse(text).unwrap().is_composite());
        let plain = "api = \"0.10\"\n[buildpack]\nid = \"x/a\"\nversion = \"1\"\n";
        assert!(!BuildpackDescriptor::parse(plain).unwrap().is_composite());
    }
}
