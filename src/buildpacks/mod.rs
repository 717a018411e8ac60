//! The buildpacks compiled into the binary, in the order they are tried after any the user
//! names: an installed slipway needs no source tree to build an app. Each is written afresh
//! for each build into a directory private to that build, never reused from a shared path
//! another user could have planted.

use std::path::{Path, PathBuf};

/// A buildpack whose files are compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBuildpack {
    /// Its id, as in its buildpack.toml.
    pub id: &'static str,
    /// `(relative path, contents, mode)` of each file.
    pub files: &'static [(&'static str, &'static str, u32)],
}

/// slipway's own Procfile buildpack: the repository root's buildpack.toml and bin/, which
/// `pack build` can also run.
pub const PROCFILE: EmbeddedBuildpack = EmbeddedBuildpack {
    id: "slipway/procfile",
    files: &[
        ("buildpack.toml", include_str!("../../buildpack.toml"), 0o644),
        ("bin/detect", include_str!("../../bin/detect"), 0o755),
        ("bin/build", include_str!("../../bin/build"), 0o755),
    ],
};

/// slipway's Python buildpack: dependencies into a venv layer reused while they are unchanged.
pub const PYTHON: EmbeddedBuildpack = EmbeddedBuildpack {
    id: "slipway/python",
    files: &[
        ("buildpack.toml", include_str!("python/buildpack.toml"), 0o644),
        ("bin/detect", include_str!("python/bin/detect"), 0o755),
        ("bin/build", include_str!("python/bin/build"), 0o755),
    ],
};

/// The built-in buildpacks, in detection order. slipway/procfile comes last: it turns the
/// Procfile into process types once the others have installed what those commands need.
pub fn builtins() -> &'static [EmbeddedBuildpack] {
    &[PYTHON, PROCFILE]
}

impl EmbeddedBuildpack {
    /// Write the buildpack's files under `dir` (created if missing) and return `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        for (name, text, mode) in self.files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(*mode))?;
        }
        Ok(dir.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_descriptor_naming_its_id_and_both_scripts() {
        for bp in builtins() {
            let toml = bp.files.iter().find(|f| f.0 == "buildpack.toml").expect("buildpack.toml").1;
            assert!(toml.contains(&format!("id = \"{}\"", bp.id)), "{}", bp.id);
            for script in ["bin/detect", "bin/build"] {
                let f = bp.files.iter().find(|f| f.0 == script).expect(script);
                assert_eq!(f.2, 0o755, "{} {script}", bp.id);
                assert!(f.1.starts_with("#!"), "{} {script}", bp.id);
            }
        }
    }
}
