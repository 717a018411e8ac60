//! The platform's side of a build: the files of `<platform>/env/` and which source files the
//! build sees (project.toml `include`/`exclude`).
//!
//! - `env/NAME` holds a value a buildpack may read (Platform API "Buildpack Environment"):
//!   project.toml `[[io.buildpacks.build.env]]` (or v0.1 `[[build.env]]`) first, then the
//!   app's config, which wins as `pack build --env` wins over project.toml.
//! - `include` keeps only matching paths, `exclude` drops matching paths, both with
//!   gitignore rules (project descriptor spec); a directory's match covers what is inside.

use std::collections::BTreeMap;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Why the platform env or the source filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A variable name cannot be a file of `env/`.
    #[error(
        "build env name {name:?} cannot be used: names are non-empty, without '/', '=' or NUL, and not '.' or '..'"
    )]
    EnvName {
        /// The name.
        name: String,
    },
    /// An include/exclude pattern is not a valid gitignore pattern.
    #[error("project.toml {key} pattern {pattern:?} is not a valid gitignore-style pattern")]
    Pattern {
        /// `include` or `exclude`.
        key: &'static str,
        /// The pattern.
        pattern: String,
        /// The parser's error.
        #[source]
        source: ignore::Error,
    },
}

/// The files of `<platform>/env/`: name to contents, in name order.
pub fn env_files(
    project_env: &[(String, String)],
    app_config: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, PlatformError> {
    let mut out = BTreeMap::new();
    for (name, value) in project_env.iter().map(|(n, v)| (n, v)).chain(app_config) {
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '=', '\0']);
        if bad {
            return Err(PlatformError::EnvName { name: name.clone() });
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// Which paths of the app source a build sees.
#[derive(Debug, Clone)]
pub enum SourceFilter {
    /// Everything.
    All,
    /// Only paths matching (or inside a directory matching) one of the patterns.
    Include(Gitignore),
    /// Everything but paths matching (or inside a directory matching) one of the patterns.
    Exclude(Gitignore),
}

impl SourceFilter {
    /// The filter project.toml asks for (it refuses both lists at once).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, PlatformError> {
        if !include.is_empty() {
            Ok(Self::Include(matcher("include", include)?))
        } else if !exclude.is_empty() {
            Ok(Self::Exclude(matcher("exclude", exclude)?))
        } else {
            Ok(Self::All)
        }
    }

    /// Whether the build sees `path` (relative to the app root).
    pub fn keeps(&self, path: &Path, is_dir: bool) -> bool {
        match self {
            Self::All => true,
            Self::Include(m) => m.matched_path_or_any_parents(path, is_dir).is_ignore(),
            Self::Exclude(m) => !m.matched_path_or_any_parents(path, is_dir).is_ignore(),
        }
    }

    /// Whether a directory may hold kept paths, so a walk should enter it: with `include`, any
    /// directory may hold a match deeper down.
    pub fn may_hold_kept(&self, dir: &Path) -> bool {
        match self {
            Self::All | Self::Include(_) => true,
            Self::Exclude(_) => self.keeps(dir, true),
        }
    }

    /// Whether the filter keeps everything.
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

fn matcher(key: &'static str, patterns: &[String]) -> Result<Gitignore, PlatformError> {
    let mut b = GitignoreBuilder::new("");
    for p in patterns {
        b.add_line(None, p).map_err(|source| PlatformError::Pattern { key, pattern: p.clone(), source })?;
    }
    b.build().map_err(|source| PlatformError::Pattern { key, pattern: patterns.join(" "), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn app_config_wins_over_project_toml_and_bad_names_are_refused() {
        let project = vec![("A".to_owned(), "project".to_owned()), ("B".to_owned(), "b".to_owned())];
        let config: BTreeMap<String, String> = [("A".to_owned(), "config".to_owned())].into();
        let files = env_files(&project, &config).unwrap();
        assert_eq!(files["A"], "config");
        assert_eq!(files["B"], "b");
        for bad in ["", "..", "a/b", "x=y"] {
            let config: BTreeMap<String, String> = [(bad.to_owned(), String::new())].into();
            assert!(env_files(&[], &config).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exclude_drops_matches_and_what_is_inside_matched_directories() {
        let f = SourceFilter::new(&[], &strings(&["*.log", "node_modules/", "/secret.txt"])).unwrap();
        assert!(!f.keeps(Path::new("debug.log"), false));
        assert!(!f.keeps(Path::new("sub/deep/x.log"), false));
        assert!(!f.keeps(Path::new("node_modules/a/b.js"), false));
        assert!(!f.may_hold_kept(Path::new("node_modules")));
        assert!(!f.keeps(Path::new("secret.txt"), false));
        assert!(f.keeps(Path::new("sub/secret.txt"), false), "a leading / anchors at the root");
        assert!(f.keeps(Path::new("app.py"), false));
    }

    #[test]
    fn include_keeps_only_matches() {
        let f = SourceFilter::new(&strings(&["src/", "Procfile", "*.py"]), &[]).unwrap();
        assert!(f.keeps(Path::new("Procfile"), false));
        assert!(f.keeps(Path::new("src/lib/a.txt"), false));
        assert!(f.keeps(Path::new("tools/x.py"), false));
        assert!(!f.keeps(Path::new("README.md"), false));
        assert!(f.may_hold_kept(Path::new("tools")));
        assert!(SourceFilter::new(&[], &[]).unwrap().is_all());
    }
}
