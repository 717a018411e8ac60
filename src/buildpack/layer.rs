//! `<layer>.toml`: which phases see a layer and whether it is cached.

use serde::Deserialize;

/// A parsed `<layer>.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LayerToml {
    /// The `[types]` table.
    #[serde(default)]
    pub types: LayerTypes,
    /// Free-form metadata the buildpack reads back on the next build.
    #[serde(default)]
    pub metadata: toml::Table,
}

/// `[types]`: each false unless set (Buildpack API 0.6+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct LayerTypes {
    /// Exported into the image and set up for processes.
    #[serde(default)]
    pub launch: bool,
    /// Set up for the later buildpacks' builds.
    #[serde(default)]
    pub build: bool,
    /// Kept in the app's build cache for the next build.
    #[serde(default)]
    pub cache: bool,
}

/// Why a layer's TOML was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid <layer>.toml for layer {layer}: {source}")]
pub struct LayerTomlError {
    layer: String,
    #[source]
    source: toml::de::Error,
}

impl LayerToml {
    /// Parses the TOML of layer `layer`.
    pub fn parse(layer: &str, text: &str) -> Result<Self, LayerTomlError> {
        toml::from_str(text).map_err(|source| LayerTomlError { layer: layer.to_owned(), source })
    }
}

/// What happens to one layer after the build, by its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFate {
    /// Stays in the exported image.
    pub export: bool,
    /// Is saved to the build cache.
    pub cache: bool,
}

impl LayerTypes {
    /// Launch layers are exported; cache layers are saved; the rest are dropped.
    pub fn fate(self) -> LayerFate {
        LayerFate { export: self.launch, cache: self.cache }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_default_to_false_and_decide_the_fate() {
        let l =
            LayerToml::parse("deps", "[types]\nlaunch = true\ncache = true\n[metadata]\nv = 1\n").unwrap();
        assert_eq!(l.types, LayerTypes { launch: true, build: false, cache: true });
        assert_eq!(l.types.fate(), LayerFate { export: true, cache: true });
        assert_eq!(
            LayerToml::parse("x", "").unwrap().types.fate(),
            LayerFate { export: false, cache: false }
        );
        assert!(LayerToml::parse("x", "[types]\nlaunch = 1").is_err());
    }
}
