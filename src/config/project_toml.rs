//! project.toml: Dash Enterprise's top-level keys and the CNB project descriptor (v0.2's
//! `[_]` and `[io.buildpacks]`, and v0.1's `[project]` and `[build]`), in one file.
//!
//! Other tools extend this file too (<https://github.com/buildpacks/spec/blob/main/extensions/project-descriptor.md>),
//! so an unknown key is a warning, not an error. We walk a `toml::Table` by hand rather than
//! deriving `Deserialize`, so that every warning and type error can name its full key path, such
//! as `io.buildpacks.group[0].id`. Array indexes in paths count from 0.

use std::path::{Component, Path};
use std::time::Duration;

use toml::{Table, Value};

use crate::health::HealthPath;

/// What a project.toml asks of a deploy. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectToml {
    /// Script run before the new release starts, relative to the app root (Dash: `predeploy`).
    pub predeploy: Option<String>,
    /// Script run after the new release is live, relative to the app root (Dash: `postdeploy`).
    pub postdeploy: Option<String>,
    /// The CNB descriptor version from `[_] schema-version`, such as `"0.2"`.
    pub schema_version: Option<String>,
    /// The builder image from `[io.buildpacks] builder`.
    pub builder: Option<String>,
    /// Globs of files to send to the build; empty means all.
    pub include: Vec<String>,
    /// Globs of files to leave out of the build.
    pub exclude: Vec<String>,
    /// The buildpacks of `[[io.buildpacks.group]]` (or v0.1 `[[build.buildpacks]]`), in order.
    pub buildpacks: Vec<BuildpackRef>,
    /// Build-time environment from `[[io.buildpacks.build.env]]` (or v0.1 `[[build.env]]`), as
    /// (name, value), in order.
    pub build_env: Vec<(String, String)>,
    /// How long the predeploy script may run (`[io.slipway] predeploy-timeout`).
    pub predeploy_timeout: Option<Duration>,
    /// How long to wait for the web process to listen (`[io.slipway] web-timeout`).
    pub web_timeout: Option<Duration>,
    /// The path web must answer with 2xx/3xx before the switch (`[io.slipway] healthcheck`).
    pub healthcheck: Option<HealthPath>,
    /// How long the new release must stay healthy, with no crash, before the switch
    /// (`[io.slipway] settle`, like Dokku's `CHECKS_WAIT`).
    pub settle: Option<Duration>,
    /// Whether a Procfile without `web` may replace a release that serves web
    /// (`[io.slipway] allow-no-web`, for `git push`, which cannot pass `--allow-no-web`).
    pub allow_no_web: bool,
}

/// One buildpack of a group: by `id` (and optional `version`) or by `uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildpackRef {
    /// The buildpack id, such as `heroku/python`.
    pub id: Option<String>,
    /// The buildpack version, used with `id`.
    pub version: Option<String>,
    /// Where to fetch the buildpack from, such as `docker://...` or a URL.
    pub uri: Option<String>,
}

/// A parsed project.toml and the warnings to show about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The settings that were understood.
    pub project: ProjectToml,
    /// One line per ignored key or setting, ready to print.
    pub warnings: Vec<String>,
}

/// Why a project.toml was refused. Each message names the line or the key path to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProjectTomlError {
    /// The file is not valid TOML.
    #[error("project.toml{}: invalid TOML: {message}", line.map(|n| format!(" line {n}")).unwrap_or_default())]
    Syntax { line: Option<usize>, message: String },
    /// A key holds a value of the wrong type.
    #[error("project.toml: {path}: expected {expected}")]
    WrongType { path: String, expected: &'static str },
    /// A required key of a table is missing.
    #[error("project.toml: {path}: missing {key:?}")]
    Missing { path: String, key: &'static str },
    /// A script path that points outside the app.
    #[error("project.toml: {path}: must be a path inside the app, such as {example:?}")]
    OutsideApp { path: String, example: &'static str },
    /// Both `include` and `exclude`, which the CNB spec forbids.
    #[error(
        "project.toml: io.buildpacks: set \"include\" or \"exclude\", not both (the CNB project descriptor allows only one)"
    )]
    IncludeAndExclude,
    /// Buildpacks in both `[[io.buildpacks.group]]` and v0.1's `[[build.buildpacks]]`.
    #[error(
        "project.toml: buildpacks are listed in both [[io.buildpacks.group]] and [[build.buildpacks]]: keep one list"
    )]
    TwoGroups,
    /// A buildpack with neither `id` nor `uri`.
    #[error("project.toml: {path}: set \"id\" or \"uri\" to say which buildpack to use")]
    UnnamedBuildpack { path: String },
    /// An environment variable name that cannot be set.
    #[error("project.toml: {path}: {name:?} is not a valid environment variable name")]
    EnvName { path: String, name: String },
    /// A health check path that cannot be requested.
    #[error("project.toml: {path}: {reason}")]
    HealthPath { path: String, reason: crate::health::BadHealthPath },
    /// A duration that does not parse, or is zero.
    #[error("project.toml: {path}: invalid duration {value}: {reason}; write it like \"90s\" or \"10m\"")]
    Duration { path: String, value: String, reason: String },
}

type Result<T> = std::result::Result<T, ProjectTomlError>;

/// Parses the text of a project.toml.
///
/// ```
/// let parsed = slipway::config::project_toml::parse("predeploy = \"predeploy.sh\"\n")?;
/// assert_eq!(parsed.project.predeploy.as_deref(), Some("predeploy.sh"));
/// assert!(parsed.warnings.is_empty());
/// # Ok::<(), slipway::config::ProjectTomlError>(())
/// ```
pub fn parse(text: &str) -> Result<Parsed> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| ProjectTomlError::Syntax {
        line: e.span().map(|span| line_of(text, span.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut warnings = Vec::new();
    let mut project = ProjectToml::default();
    let mut root = Section::new(String::new(), table);

    project.predeploy = script_path(&mut root, "predeploy", "predeploy.sh")?;
    project.postdeploy = script_path(&mut root, "postdeploy", "postdeploy.sh")?;
    if let Some(descriptor) = root.table("_")? {
        project.schema_version = read_descriptor(descriptor, &mut warnings)?;
    }
    // Project descriptor v0.1: `[project]` describes, `[build]` is v0.2's `[io.buildpacks]`.
    if let Some(v01) = root.table("project")? {
        read_descriptor(v01, &mut warnings)?;
    }
    if let Some(mut build) = root.table("build")? {
        read_build_inputs(&mut build, "buildpacks", &mut project, &mut warnings)?;
        read_env(&mut build, "env", &mut project, &mut warnings)?;
        build.finish(&mut warnings);
    }
    root.table("metadata")?;
    if let Some(mut io) = root.table("io")? {
        if let Some(buildpacks) = io.table("buildpacks")? {
            read_buildpacks(buildpacks, &mut project, &mut warnings)?;
        }
        if let Some(mut slipway) = io.table("slipway")? {
            project.predeploy_timeout = slipway.duration("predeploy-timeout")?;
            project.web_timeout = slipway.duration("web-timeout")?;
            project.healthcheck = slipway.health_path("healthcheck")?;
            project.settle = slipway.duration_or_zero("settle")?;
            project.allow_no_web = slipway.boolean("allow-no-web")?.unwrap_or(false);
            slipway.finish(&mut warnings);
        }
        io.finish(&mut warnings);
    }
    root.finish(&mut warnings);
    Ok(Parsed { project, warnings })
}

/// Reads `[_]`: only `schema-version` is used, the rest is checked and set aside.
fn read_descriptor(mut section: Section, warnings: &mut Vec<String>) -> Result<Option<String>> {
    let schema_version = section.string("schema-version")?;
    for key in ["id", "name", "version", "documentation-url", "source-url"] {
        section.string(key)?;
    }
    section.strings("authors")?;
    for mut license in section.tables("licenses")? {
        license.string("type")?;
        license.string("uri")?;
        license.finish(warnings);
    }
    section.table("metadata")?;
    section.finish(warnings);
    Ok(schema_version)
}

/// Reads `[io.buildpacks]` into `project`.
fn read_buildpacks(
    mut section: Section,
    project: &mut ProjectToml,
    warnings: &mut Vec<String>,
) -> Result<()> {
    project.builder = section.string("builder")?;
    read_build_inputs(&mut section, "group", project, warnings)?;
    if let Some(mut build) = section.table("build")? {
        read_env(&mut build, "env", project, warnings)?;
        build.finish(warnings);
    }
    // Pre- and post-buildpacks wrap the detected group; we check them so that typos still fail,
    // but the build does not run them yet, and saying so beats a silent difference.
    for phase in ["pre", "post"] {
        if let Some(mut wrap) = section.table(phase)? {
            if !read_group(&mut wrap, "group", warnings)?.is_empty() {
                warnings.push(format!(
                    "project.toml: io.buildpacks.{phase}.group is not supported yet and is ignored"
                ));
            }
            wrap.finish(warnings);
        }
    }
    section.finish(warnings);
    Ok(())
}

/// Reads `include`, `exclude` and the buildpacks (`group_key`) of `[io.buildpacks]` or v0.1's
/// `[build]`, adding to what the other one set.
fn read_build_inputs(
    section: &mut Section,
    group_key: &str,
    project: &mut ProjectToml,
    warnings: &mut Vec<String>,
) -> Result<()> {
    project.include.extend(section.strings("include")?);
    project.exclude.extend(section.strings("exclude")?);
    if !project.include.is_empty() && !project.exclude.is_empty() {
        return Err(ProjectTomlError::IncludeAndExclude);
    }
    let group = read_group(section, group_key, warnings)?;
    if !group.is_empty() && !project.buildpacks.is_empty() {
        return Err(ProjectTomlError::TwoGroups);
    }
    project.buildpacks.extend(group);
    Ok(())
}

/// Reads an array of `{ name, value }` tables into the build environment.
fn read_env(
    section: &mut Section,
    key: &str,
    project: &mut ProjectToml,
    warnings: &mut Vec<String>,
) -> Result<()> {
    for mut var in section.tables(key)? {
        let name = var.required_string("name")?;
        if name.is_empty() || name.contains(['=', '\0', '/']) || name == "." || name == ".." {
            return Err(ProjectTomlError::EnvName { path: var.key_path("name"), name });
        }
        let value = var.required_string("value")?;
        var.finish(warnings);
        project.build_env.push((name, value));
    }
    Ok(())
}

/// Reads the `key` array of tables of `section` as buildpack references.
fn read_group(section: &mut Section, key: &str, warnings: &mut Vec<String>) -> Result<Vec<BuildpackRef>> {
    let mut refs = Vec::new();
    for mut entry in section.tables(key)? {
        let buildpack = BuildpackRef {
            id: entry.string("id")?,
            version: entry.string("version")?,
            uri: entry.string("uri")?,
        };
        if buildpack.id.is_none() && buildpack.uri.is_none() {
            return Err(ProjectTomlError::UnnamedBuildpack { path: entry.path });
        }
        entry.finish(warnings);
        refs.push(buildpack);
    }
    Ok(refs)
}

/// Reads a script path and checks that it stays inside the app: the script runs from there, and
/// `..` or an absolute path would reach into the host or another app.
fn script_path(section: &mut Section, key: &str, example: &'static str) -> Result<Option<String>> {
    let Some(path) = section.string(key)? else { return Ok(None) };
    let inside = !path.is_empty()
        && Path::new(&path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(Some(path))
    } else {
        Err(ProjectTomlError::OutsideApp { path: section.key_path(key), example })
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// A table being walked: keys are removed as they are read, so what remains is unknown.
struct Section {
    /// The dotted key path of this table; empty at the root.
    path: String,
    table: Table,
}

impl Section {
    fn new(path: String, table: Table) -> Self {
        Section { path, table }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn wrong_type(&self, key: &str, expected: &'static str) -> ProjectTomlError {
        ProjectTomlError::WrongType { path: self.key_path(key), expected }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    fn required_string(&mut self, key: &'static str) -> Result<String> {
        self.string(key)?.ok_or_else(|| ProjectTomlError::Missing { path: self.path.clone(), key })
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>> {
        let Some(value) = self.table.remove(key) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else { return Err(self.wrong_type(key, "an array of strings")) };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                _ => Err(self.wrong_type(&format!("{key}[{i}]"), "a string")),
            })
            .collect()
    }

    fn table(&mut self, key: &str) -> Result<Option<Section>> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(Section::new(self.key_path(key), t))),
            Some(_) => Err(self.wrong_type(key, "a table")),
        }
    }

    fn tables(&mut self, key: &str) -> Result<Vec<Section>> {
        let Some(value) = self.table.remove(key) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else { return Err(self.wrong_type(key, "an array of tables")) };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let key = format!("{key}[{i}]");
                match item {
                    Value::Table(t) => Ok(Section::new(self.key_path(&key), t)),
                    _ => Err(self.wrong_type(&key, "a table")),
                }
            })
            .collect()
    }

    /// A duration as a humantime string (`"90s"`, `"10m"`) or whole seconds; zero is refused.
    fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong_type(key, "true or false")),
        }
    }

    fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        self.duration_from(key, false)
    }

    /// Like `duration`, where zero means "none" (a settle period of 0 switches at once).
    fn duration_or_zero(&mut self, key: &str) -> Result<Option<Duration>> {
        self.duration_from(key, true)
    }

    fn duration_from(&mut self, key: &str, zero_ok: bool) -> Result<Option<Duration>> {
        let (written, parsed) = match self.table.remove(key) {
            None => return Ok(None),
            Some(Value::String(s)) => {
                let parsed = humantime::parse_duration(s.trim()).map_err(|e| e.to_string());
                (format!("{s:?}"), parsed)
            }
            Some(Value::Integer(n)) => {
                let parsed =
                    u64::try_from(n).map(Duration::from_secs).map_err(|_| "it is negative".to_owned());
                (n.to_string(), parsed)
            }
            Some(_) => {
                return Err(self.wrong_type(key, "a duration such as \"90s\" or a whole number of seconds"));
            }
        };
        let parsed = parsed.and_then(|d| {
            if d.is_zero() && !zero_ok { Err("it must be longer than zero".to_owned()) } else { Ok(d) }
        });
        parsed.map(Some).map_err(|reason| ProjectTomlError::Duration {
            path: self.key_path(key),
            value: written,
            reason,
        })
    }

    fn health_path(&mut self, key: &str) -> Result<Option<HealthPath>> {
        let Some(path) = self.string(key)? else { return Ok(None) };
        HealthPath::parse(&path)
            .map(Some)
            .map_err(|reason| ProjectTomlError::HealthPath { path: self.key_path(key), reason })
    }

    /// Turns every key not read into a warning.
    fn finish(self, warnings: &mut Vec<String>) {
        for key in self.table.keys() {
            warnings.push(format!("project.toml: unknown key \"{}\" ignored", self.key_path(key)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Parsed {
        parse(text).unwrap()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn bp(id: Option<&str>, version: Option<&str>, uri: Option<&str>) -> BuildpackRef {
        BuildpackRef { id: id.map(Into::into), version: version.map(Into::into), uri: uri.map(Into::into) }
    }

    #[test]
    fn a_v0_1_descriptor_sets_the_build_too() {
        let parsed = ok(r#"
[project]
id = "io.example.app"
name = "Example"
version = "1"

[build]
exclude = ["*.log"]

[[build.buildpacks]]
id = "example/a"
version = "1.0"

[[build.buildpacks]]
uri = "bp/b"

[[build.env]]
name = "GREETING"
value = "hi"

[metadata]
anything = 1
"#);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.project.exclude, ["*.log"]);
        assert_eq!(
            parsed.project.buildpacks,
            [bp(Some("example/a"), Some("1.0"), None), bp(None, None, Some("bp/b"))]
        );
        assert_eq!(parsed.project.build_env, [("GREETING".to_owned(), "hi".to_owned())]);
        let both = "[[build.buildpacks]]\nid = \"a\"\n[[io.buildpacks.group]]\nid = \"b\"\n";
        assert_eq!(parse(both).unwrap_err(), ProjectTomlError::TwoGroups);
        let mixed = "[build]\ninclude = [\"a\"]\n[io.buildpacks]\nexclude = [\"b\"]\n";
        assert_eq!(parse(mixed).unwrap_err(), ProjectTomlError::IncludeAndExclude);
        let bad = "[[build.env]]\nname = \"a/b\"\nvalue = \"x\"\n";
        assert!(matches!(parse(bad).unwrap_err(), ProjectTomlError::EnvName { .. }));
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        assert_eq!(ok(""), Parsed::default());
        assert_eq!(ok("# nothing here\n"), Parsed::default());
    }

    #[test]
    fn a_dash_enterprise_file_sets_the_deploy_scripts() {
        let parsed = ok("predeploy = \"predeploy.sh\"\npostdeploy = \"scripts/post.sh\"\n");
        assert_eq!(parsed.project.predeploy.as_deref(), Some("predeploy.sh"));
        assert_eq!(parsed.project.postdeploy.as_deref(), Some("scripts/post.sh"));
        assert!(parsed.warnings.is_empty());
    }

    const CNB: &str = r#"
[_]
schema-version = "0.2"
id = "io.example.app"
name = "Example"
version = "1.0.0"
authors = ["Ada", "Grace"]
documentation-url = "https://example.com/docs"
source-url = "https://example.com/src"

[[_.licenses]]
type = "MIT"

[_.metadata]
anything = { goes = [1, "here"] }

[io.buildpacks]
builder = "heroku/builder:24"
exclude = ["*.log", "node_modules/"]

[[io.buildpacks.group]]
id = "heroku/python"
version = "0.19.0"

[[io.buildpacks.group]]
uri = "docker://example/buildpack:1"

[[io.buildpacks.build.env]]
name = "PIP_NO_CACHE_DIR"
value = "1"

[[io.buildpacks.build.env]]
name = "EMPTY"
value = ""
"#;

    #[test]
    fn a_cnb_file_sets_the_build() {
        let parsed = ok(CNB);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let p = parsed.project;
        assert_eq!(p.schema_version.as_deref(), Some("0.2"));
        assert_eq!(p.builder.as_deref(), Some("heroku/builder:24"));
        assert!(p.include.is_empty());
        assert_eq!(p.exclude, ["*.log", "node_modules/"]);
        assert_eq!(
            p.buildpacks,
            [
                bp(Some("heroku/python"), Some("0.19.0"), None),
                bp(None, None, Some("docker://example/buildpack:1"))
            ]
        );
        assert_eq!(p.build_env, [("PIP_NO_CACHE_DIR".into(), "1".into()), ("EMPTY".into(), String::new())]);
        assert_eq!(p.predeploy, None);
    }

    #[test]
    fn dash_and_cnb_keys_live_in_one_file() {
        let text = format!("predeploy = \"predeploy.sh\"\n{CNB}\n[io.slipway]\nweb-timeout = \"2m\"\n");
        let parsed = ok(&text);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.project.predeploy.as_deref(), Some("predeploy.sh"));
        assert_eq!(parsed.project.buildpacks.len(), 2);
        assert_eq!(parsed.project.web_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn include_alone_is_fine() {
        let parsed = ok("[io.buildpacks]\ninclude = [\"src/\", \"Procfile\"]\n");
        assert_eq!(parsed.project.include, ["src/", "Procfile"]);
    }

    #[test]
    fn include_and_exclude_together_are_refused() {
        assert_eq!(
            parse("[io.buildpacks]\ninclude = [\"a\"]\nexclude = [\"b\"]\n").unwrap_err(),
            ProjectTomlError::IncludeAndExclude
        );
    }

    #[test]
    fn unknown_keys_anywhere_are_warnings_with_their_path() {
        let text = r#"
predeploy = "p.sh"
colour = "blue"
[_]
schema-version = "0.2"
nmae = "typo"
[[_.licenses]]
type = "MIT"
url = "typo"
[io.buildpacks]
bulid = "typo"
[[io.buildpacks.group]]
id = "heroku/python"
script = { api = "0.10", inline = "echo" }
[[io.buildpacks.build.env]]
name = "A"
value = "1"
secret = true
[io.slipway]
web-timout = "1m"
[io.other-tool]
x = 1
[build]
builder = "v0.1 style"
"#;
        let parsed = ok(text);
        let mut warnings = parsed.warnings.clone();
        warnings.sort();
        let expected = [
            "_.licenses[0].url",
            "_.nmae",
            "build.builder",
            "colour",
            "io.buildpacks.build.env[0].secret",
            "io.buildpacks.bulid",
            "io.buildpacks.group[0].script",
            "io.other-tool",
            "io.slipway.web-timout",
        ]
        .map(|k| format!("project.toml: unknown key \"{k}\" ignored"));
        assert_eq!(warnings, expected);
        assert_eq!(parsed.project.predeploy.as_deref(), Some("p.sh"));
        assert_eq!(parsed.project.buildpacks, [bp(Some("heroku/python"), None, None)]);
    }

    #[test]
    fn pre_and_post_groups_are_checked_and_warned_about() {
        let text = "[[io.buildpacks.pre.group]]\nid = \"a\"\n[[io.buildpacks.post.group]]\nuri = \"b\"\n";
        let parsed = ok(text);
        assert_eq!(
            parsed.warnings,
            [
                "project.toml: io.buildpacks.pre.group is not supported yet and is ignored",
                "project.toml: io.buildpacks.post.group is not supported yet and is ignored",
            ]
        );
        assert!(parsed.project.buildpacks.is_empty());
        assert_eq!(
            err("[[io.buildpacks.pre.group]]\nid = 1\n"),
            "project.toml: io.buildpacks.pre.group[0].id: expected a string"
        );
    }

    #[test]
    fn type_errors_name_the_key_path() {
        let cases = [
            ("predeploy = 1", "predeploy: expected a string"),
            ("postdeploy = [\"a\"]", "postdeploy: expected a string"),
            ("_ = 1", "_: expected a table"),
            ("[_]\nschema-version = 0.2", "_.schema-version: expected a string"),
            ("[_]\nauthors = \"Ada\"", "_.authors: expected an array of strings"),
            ("[_]\nauthors = [\"Ada\", 2]", "_.authors[1]: expected a string"),
            ("[_]\nlicenses = [\"MIT\"]", "_.licenses[0]: expected a table"),
            ("[_]\nlicenses = { type = \"MIT\" }", "_.licenses: expected an array of tables"),
            ("[[_.licenses]]\ntype = 1", "_.licenses[0].type: expected a string"),
            ("[_]\nmetadata = 1", "_.metadata: expected a table"),
            ("io = 1", "io: expected a table"),
            ("[io]\nbuildpacks = []", "io.buildpacks: expected a table"),
            ("[io.buildpacks]\nbuilder = true", "io.buildpacks.builder: expected a string"),
            ("[io.buildpacks]\nexclude = \"*.log\"", "io.buildpacks.exclude: expected an array of strings"),
            ("[io.buildpacks]\ninclude = [1]", "io.buildpacks.include[0]: expected a string"),
            ("[io.buildpacks]\ngroup = 1", "io.buildpacks.group: expected an array of tables"),
            (
                "[[io.buildpacks.group]]\nid = \"a\"\n[[io.buildpacks.group]]\nid = 2",
                "io.buildpacks.group[1].id: expected a string",
            ),
            (
                "[[io.buildpacks.group]]\nid = \"a\"\nversion = 1",
                "io.buildpacks.group[0].version: expected a string",
            ),
            ("[[io.buildpacks.group]]\nuri = {}", "io.buildpacks.group[0].uri: expected a string"),
            ("[io.buildpacks.build]\nenv = \"A=1\"", "io.buildpacks.build.env: expected an array of tables"),
            (
                "[[io.buildpacks.build.env]]\nname = \"A\"\nvalue = 1",
                "io.buildpacks.build.env[0].value: expected a string",
            ),
            ("[io]\nslipway = \"fast\"", "io.slipway: expected a table"),
        ];
        for (text, message) in cases {
            assert_eq!(err(text), format!("project.toml: {message}"), "{text}");
        }
    }

    #[test]
    fn a_buildpack_needs_an_id_or_a_uri() {
        assert_eq!(
            err("[[io.buildpacks.group]]\nid = \"a\"\n[[io.buildpacks.group]]\nversion = \"1\""),
            r#"project.toml: io.buildpacks.group[1]: set "id" or "uri" to say which buildpack to use"#
        );
    }

    #[test]
    fn build_env_entries_need_a_valid_name_and_a_value() {
        assert_eq!(
            err("[[io.buildpacks.build.env]]\nvalue = \"1\""),
            r#"project.toml: io.buildpacks.build.env[0]: missing "name""#
        );
        assert_eq!(
            err("[[io.buildpacks.build.env]]\nname = \"A\""),
            r#"project.toml: io.buildpacks.build.env[0]: missing "value""#
        );
        assert_eq!(
            err("[[io.buildpacks.build.env]]\nname = \"A=B\"\nvalue = \"1\""),
            r#"project.toml: io.buildpacks.build.env[0].name: "A=B" is not a valid environment variable name"#
        );
        assert!(matches!(
            parse("[[io.buildpacks.build.env]]\nname = \"\"\nvalue = \"1\"").unwrap_err(),
            ProjectTomlError::EnvName { .. }
        ));
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let msg = err("predeploy = \"a.sh\"\n\n[io.buildpacks\nbuilder = \"x\"\n");
        assert!(msg.starts_with("project.toml line 3: invalid TOML: "), "{msg}");
        let ProjectTomlError::Syntax { line, .. } = parse("a = 1\nb = \n").unwrap_err() else { panic!() };
        assert_eq!(line, Some(2));
    }

    #[test]
    fn a_duplicate_key_is_a_syntax_error() {
        let msg = err("predeploy = \"a\"\npredeploy = \"b\"\n");
        assert!(msg.starts_with("project.toml line 2: invalid TOML: "), "{msg}");
    }

    #[test]
    fn script_paths_must_stay_inside_the_app() {
        for bad in ["/etc/predeploy.sh", "../predeploy.sh", "scripts/../../x.sh", "", ".."] {
            assert_eq!(
                err(&format!("predeploy = {bad:?}")),
                r#"project.toml: predeploy: must be a path inside the app, such as "predeploy.sh""#,
                "{bad}"
            );
        }
        assert_eq!(
            err("postdeploy = \"/x\""),
            r#"project.toml: postdeploy: must be a path inside the app, such as "postdeploy.sh""#
        );
        for good in ["predeploy.sh", "./predeploy.sh", "scripts/pre deploy.sh", "a..b.sh"] {
            assert_eq!(ok(&format!("predeploy = {good:?}")).project.predeploy.as_deref(), Some(good));
        }
    }

    #[test]
    fn durations_accept_humantime_strings_and_whole_seconds() {
        let parsed = ok("[io.slipway]\npredeploy-timeout = \"10m\"\nweb-timeout = 90\n");
        assert_eq!(parsed.project.predeploy_timeout, Some(Duration::from_secs(600)));
        assert_eq!(parsed.project.web_timeout, Some(Duration::from_secs(90)));
        let parsed = ok("[io.slipway]\nweb-timeout = \"1m 30s\"\npredeploy-timeout = \"1h\"\n");
        assert_eq!(parsed.project.web_timeout, Some(Duration::from_secs(90)));
        assert_eq!(parsed.project.predeploy_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(
            ok("[io.slipway]\nweb-timeout = \"500ms\"").project.web_timeout,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn settle_is_a_duration() {
        assert_eq!(ok("[io.slipway]\nsettle = \"3s\"\n").project.settle, Some(Duration::from_secs(3)));
        assert_eq!(ok("[io.slipway]\nsettle = 0\n").project.settle, Some(Duration::ZERO));
        assert_eq!(ok("").project.settle, None);
        assert!(err("[io.slipway]\nsettle = \"soon\"").starts_with("project.toml: io.slipway.settle: "));
    }

    #[test]
    fn allow_no_web_is_a_boolean_that_defaults_to_false() {
        assert!(!ok("").project.allow_no_web);
        assert!(ok("[io.slipway]\nallow-no-web = true\n").project.allow_no_web);
        assert_eq!(
            err("[io.slipway]\nallow-no-web = \"yes\""),
            "project.toml: io.slipway.allow-no-web: expected true or false"
        );
    }

    #[test]
    fn a_health_check_path_is_read_and_a_bad_one_is_named() {
        let parsed = ok("[io.slipway]\nhealthcheck = \"/up\"\n");
        assert_eq!(parsed.project.healthcheck.as_ref().map(HealthPath::as_str), Some("/up"));
        let msg = err("[io.slipway]\nhealthcheck = \"up\"");
        assert!(msg.starts_with("project.toml: io.slipway.healthcheck: "), "{msg}");
        assert!(msg.contains("must start with \"/\""), "{msg}");
        assert!(err("[io.slipway]\nhealthcheck = 1").contains("expected a string"));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        let msg = err("[io.slipway]\npredeploy-timeout = \"ten minutes\"");
        assert!(
            msg.starts_with(
                r#"project.toml: io.slipway.predeploy-timeout: invalid duration "ten minutes": "#
            ),
            "{msg}"
        );
        assert!(msg.ends_with(r#"; write it like "90s" or "10m""#), "{msg}");
        assert_eq!(
            err("[io.slipway]\nweb-timeout = -5"),
            r#"project.toml: io.slipway.web-timeout: invalid duration -5: it is negative; write it like "90s" or "10m""#
        );
        assert_eq!(
            err("[io.slipway]\nweb-timeout = \"0s\""),
            r#"project.toml: io.slipway.web-timeout: invalid duration "0s": it must be longer than zero; write it like "90s" or "10m""#
        );
        assert!(matches!(
            parse("[io.slipway]\nweb-timeout = 0").unwrap_err(),
            ProjectTomlError::Duration { .. }
        ));
        assert_eq!(
            err("[io.slipway]\nweb-timeout = 1.5"),
            r#"project.toml: io.slipway.web-timeout: expected a duration such as "90s" or a whole number of seconds"#
        );
    }
}
