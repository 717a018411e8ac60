//! Parsers for the files an app commits: the Procfile and project.toml. The parsers take text
//! and return values or errors with line numbers and key paths; the two `load_*` helpers here are
//! the only code that reads the files.

pub mod procfile;
pub mod project_toml;
pub mod script_path;

use std::io;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

pub use procfile::{ProcessEntry, Procfile, ProcfileError};
pub use project_toml::{BuildpackRef, ProjectToml, ProjectTomlError};

/// The Procfile's name at the root of an app.
pub const PROCFILE: &str = "Procfile";
/// The project descriptor's name at the root of an app.
pub const PROJECT_TOML: &str = "project.toml";

/// Why an app's config files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The commit has no Procfile.
    #[error("no Procfile at the root of the commit: add one with a line such as \"web: python3 app.py\"")]
    NoProcfile { path: PathBuf },
    /// A file exists but could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{} is not UTF-8 text: save it with UTF-8 encoding", path.display())]
    NotUtf8 { path: PathBuf },
    /// The Procfile was read but refused.
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    /// The project.toml was read but refused.
    #[error(transparent)]
    ProjectToml(#[from] ProjectTomlError),
}

/// Reads and parses `<app_dir>/Procfile`, which every app must have.
pub fn load_procfile(app_dir: &Path) -> Result<Procfile, ConfigError> {
    match read_app_file(app_dir, PROCFILE)? {
        Some(text) => Ok(Procfile::parse(&text)?),
        None => Err(ConfigError::NoProcfile { path: app_dir.join(PROCFILE) }),
    }
}

/// Reads and parses `<app_dir>/project.toml`; `Ok(None)` when the app has none.
pub fn load_project_toml(app_dir: &Path) -> Result<Option<project_toml::Parsed>, ConfigError> {
    match read_app_file(app_dir, PROJECT_TOML)? {
        Some(text) => Ok(Some(project_toml::parse(&text)?)),
        None => Ok(None),
    }
}

/// Reads a file at the root of an app, or `None` if it does not exist.
///
/// The app's tree comes from a commit, and a commit can hold a symlink such as
/// `Procfile -> /etc/shadow`; parse errors quote lines, so following it could leak another file.
/// cap-std resolves symlinks only within `app_dir` and refuses any that lead out of it.
fn read_app_file(app_dir: &Path, name: &str) -> Result<Option<String>, ConfigError> {
    // A missing app directory is a caller's bug, not a missing file: report it as such.
    let dir = Dir::open_ambient_dir(app_dir, ambient_authority())
        .map_err(|source| ConfigError::Read { path: app_dir.to_owned(), source })?;
    let path = app_dir.join(name);
    let bytes = match dir.read(name) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| ConfigError::NotUtf8 { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    #[test]
    fn load_procfile_reads_and_parses_the_root_procfile() {
        let dir = app(&[("Procfile", b"web: python3 app.py\n")]);
        let procfile = load_procfile(dir.path()).unwrap();
        assert!(procfile.has_web());
    }

    #[test]
    fn a_missing_procfile_says_how_to_add_one() {
        let dir = app(&[]);
        let err = load_procfile(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::NoProcfile { .. }));
        assert_eq!(
            err.to_string(),
            r#"no Procfile at the root of the commit: add one with a line such as "web: python3 app.py""#
        );
    }

    #[test]
    fn procfile_parse_errors_pass_through_unchanged() {
        let dir = app(&[("Procfile", b"web python3 app.py\n")]);
        let err = load_procfile(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Procfile(ProcfileError::Malformed { line: 1, .. })));
        assert!(err.to_string().starts_with("Procfile line 1:"));
    }

    #[test]
    fn a_procfile_that_is_not_utf8_names_the_file() {
        let dir = app(&[("Procfile", b"web: \xff\xfe\n")]);
        let err = load_procfile(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::NotUtf8 { .. }));
        assert!(err.to_string().contains("Procfile is not UTF-8 text"), "{err}");
    }

    #[test]
    fn a_procfile_symlink_out_of_the_app_is_not_followed() {
        let outside = app(&[("secret", b"root:x:0:0\n")]);
        let dir = app(&[]);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("Procfile")).unwrap();
        let err = load_procfile(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }

    #[test]
    fn a_procfile_symlink_inside_the_app_is_followed() {
        let dir = app(&[("Procfile.real", b"web: a\n")]);
        std::os::unix::fs::symlink("Procfile.real", dir.path().join("Procfile")).unwrap();
        assert!(load_procfile(dir.path()).unwrap().has_web());
    }

    #[test]
    fn a_missing_app_dir_is_a_read_error_not_a_missing_file() {
        let dir = app(&[]);
        let gone = dir.path().join("nope");
        assert!(matches!(load_project_toml(&gone).unwrap_err(), ConfigError::Read { .. }));
    }

    #[test]
    fn a_missing_project_toml_is_none() {
        let dir = app(&[("Procfile", b"web: a\n")]);
        assert!(load_project_toml(dir.path()).unwrap().is_none());
    }

    #[test]
    fn load_project_toml_returns_settings_and_warnings() {
        let dir = app(&[("project.toml", b"predeploy = \"pre.sh\"\ncolour = 1\n")]);
        let parsed = load_project_toml(dir.path()).unwrap().unwrap();
        assert_eq!(parsed.project.predeploy.as_deref(), Some("pre.sh"));
        assert_eq!(parsed.warnings, [r#"project.toml: unknown key "colour" ignored"#]);
    }

    #[test]
    fn project_toml_parse_errors_pass_through_unchanged() {
        let dir = app(&[("project.toml", b"predeploy = 3\n")]);
        let err = load_project_toml(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), "project.toml: predeploy: expected a string");
    }
}
