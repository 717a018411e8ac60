//! The platform's side of a build: the files of `<platform>/env/` and which source files the
//! build sees (project.toml `include`/`exclude`).
//!
//! - `env/NAME` holds a value a buildpack may read (Platform API "Buildpack Environment"):
//!   project.toml `[[io.buildpacks.build.env]]` (or v0.1 `[[build.env]]`) first, then the
//!   app's config, which wins as `pack build --env` wins over project.toml.
//! - `include` keeps only matching paths, `exclude` drops matching paths, both with
//!   gitignore rules (project descriptor spec); a directory's match covers what is inside.
//!   [`SourceFilter::filter_tar`] applies it to the commit's tar stream, so both runtimes
//!   filter the same way before anything reaches the build.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// What project.toml asks of a buildpack build's platform, kept in the deploy plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformSpec {
    /// `[[io.buildpacks.build.env]]` (or v0.1 `[[build.env]]`), as (name, value), in order.
    #[serde(default)]
    pub build_env: Vec<(String, String)>,
    /// `[io.buildpacks] include`.
    #[serde(default)]
    pub include: Vec<String>,
    /// `[io.buildpacks] exclude`.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl PlatformSpec {
    /// The source filter these patterns make.
    pub fn source_filter(&self) -> Result<SourceFilter, PlatformError> {
        SourceFilter::new(&self.include, &self.exclude)
    }
}

/// What a build's platform hands the buildpacks: the `env/` files and the source filter.
#[derive(Debug, Clone)]
pub struct BuildPlatform {
    /// `<platform>/env/NAME` contents, by name.
    pub env: BTreeMap<String, String>,
    /// Which source paths the build sees.
    pub filter: SourceFilter,
}

impl Default for BuildPlatform {
    fn default() -> Self {
        Self { env: BTreeMap::new(), filter: SourceFilter::All }
    }
}

impl BuildPlatform {
    /// The platform of a build: project.toml's settings and the app's config (which wins).
    pub fn new(spec: &PlatformSpec, app_config: &BTreeMap<String, String>) -> Result<Self, PlatformError> {
        Ok(Self { env: env_files(&spec.build_env, app_config)?, filter: spec.source_filter()? })
    }
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

    /// Copies the tar stream `from` (a commit's tree, as `git archive` writes it) to `to`,
    /// keeping only the entries this filter keeps. A directory is written only once something
    /// kept lies in it (or it is kept itself), so an `include` list gives exactly its files
    /// and the directories that hold them. Returns how many entries were left out.
    pub fn filter_tar(&self, from: impl Read, to: impl Write) -> std::io::Result<u64> {
        let mut archive = tar::Archive::new(from);
        let mut out = tar::Builder::new(to);
        out.follow_symlinks(false);
        // Directories seen but not yet written, by path: git archive lists a directory
        // before what it holds, so a kept file's parents are all here when it comes.
        let mut pending: BTreeMap<PathBuf, tar::Header> = BTreeMap::new();
        let mut dropped = 0;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let kind = entry.header().entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
                continue;
            }
            let path = entry.path()?.into_owned();
            let is_dir = kind.is_dir();
            let rel = PathBuf::from(path.to_string_lossy().trim_end_matches('/'));
            if rel.as_os_str().is_empty() {
                continue;
            }
            if !self.keeps(&rel, is_dir) {
                if is_dir && self.may_hold_kept(&rel) {
                    pending.insert(rel, entry.header().clone());
                } else {
                    dropped += 1;
                }
                continue;
            }
            for parent in rel.ancestors().skip(1).collect::<Vec<_>>().into_iter().rev() {
                if let Some(mut h) = pending.remove(parent) {
                    h.set_size(0);
                    out.append_data(&mut h, parent, std::io::empty())?;
                }
            }
            let mut header = entry.header().clone();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name()?.map(std::borrow::Cow::into_owned).unwrap_or_default();
                out.append_link(&mut header, &rel, target)?;
            } else if is_dir {
                header.set_size(0);
                out.append_data(&mut header, &rel, std::io::empty())?;
            } else {
                out.append_data(&mut header, &rel, &mut entry)?;
            }
        }
        dropped += pending.len() as u64;
        out.into_inner()?.flush()?;
        // The writer (git archive) pads past the end-of-archive blocks; read it all so that it
        // never dies of SIGPIPE on a good archive.
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
        Ok(dropped)
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

    /// A tar as git archive writes it: a global header, then directories before their files.
    fn archive(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut g = tar::Header::new_ustar();
        g.set_entry_type(tar::EntryType::XGlobalHeader);
        let comment = b"52 comment=0123456789012345678901234567890123456789\n";
        g.set_size(comment.len() as u64);
        b.append_data(&mut g, "pax_global_header", &comment[..]).unwrap();
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            if let Some(d) = data {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, path, d.as_bytes()).unwrap();
            } else {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
    }

    #[test]
    fn the_tar_filter_drops_excluded_entries_and_writes_only_parents_of_included_ones() {
        let dir = "d".repeat(120);
        let longdir = format!("{dir}/");
        let long = format!("{dir}/deep.py");
        let tree = archive(&[
            ("Procfile", Some("web: x")),
            ("debug.log", Some("noise")),
            ("junk/", None),
            ("junk/a.txt", Some("a")),
            ("sub/", None),
            ("sub/app.py", Some("print(1)")),
            ("sub/x.log", Some("x")),
            ("tools/", None),
            (&longdir, None),
            (&long, Some("deep")),
        ]);
        let exclude = SourceFilter::new(&[], &strings(&["*.log", "junk/"])).unwrap();
        let mut out = Vec::new();
        assert_eq!(exclude.filter_tar(&tree[..], &mut out).unwrap(), 4);
        assert_eq!(names(&out), ["Procfile", "sub", "sub/app.py", "tools", dir.as_str(), long.as_str()]);

        let include = SourceFilter::new(&strings(&["*.py"]), &[]).unwrap();
        let mut out = Vec::new();
        include.filter_tar(&tree[..], &mut out).unwrap();
        assert_eq!(names(&out), ["sub", "sub/app.py", dir.as_str(), long.as_str()]);
        // Contents come through whole.
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = String::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            std::io::Read::read_to_string(&mut e, &mut seen).unwrap();
        }
        assert_eq!(seen, "print(1)deep");
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
