//! What a deploy will do, computed from the app's settings and the commit's config as plain
//! data before anything is built. Runtimes execute a [`DeployPlan`]; tests check it as data.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buildpack::platform::{PlatformSpec, SourceFilter};
use crate::config::{Procfile, ProjectToml};
use crate::health::HealthPath;
use crate::ids::{AppName, CommitSha, ProcessType, ReleaseId};
use crate::state::{AppRecord, RunAs, RuntimeKind};

/// Default time a predeploy script may run, as in the issue: 10 minutes.
pub const DEFAULT_PREDEPLOY_TIMEOUT: Duration = Duration::from_secs(600);
/// Default time the new web process has to accept TCP connections.
pub const DEFAULT_WEB_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a new release must stay healthy, with no process restarting, before the
/// switch: long enough to catch a process that dies right after it starts (an import error
/// in a worker, gunicorn's master exiting when its workers fail to boot).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);
/// Default grace between SIGTERM and SIGKILL, as Heroku's dyno shutdown.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(30);

/// A Bash script from project.toml (predeploy or postdeploy), or the Procfile's `release:`
/// command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSpec {
    /// Path relative to the app folder; for a command, its name (`release`).
    pub path: String,
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// A Bash command line run instead of a file: the Procfile's `release:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl ScriptSpec {
    /// The script at `path`, relative to the app folder.
    pub fn file(path: String, timeout: Duration) -> Self {
        Self { path, timeout, command: None }
    }

    /// What progress lines call it: `predeploy.sh`, or `release: ./migrate`.
    pub fn shown(&self) -> String {
        match &self.command {
            Some(command) => format!("{}: {command}", self.path),
            None => self.path.clone(),
        }
    }
}

/// One Procfile process type and how many instances run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub ptype: ProcessType,
    /// Run as `bash -c <command>`.
    pub command: String,
    pub instances: u32,
}

/// Where an extra buildpack of a build without a Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildpackSource {
    /// A directory on this machine: `--buildpack DIR`, or an absolute project.toml `uri`.
    Dir(PathBuf),
    /// A directory of the deployed commit, relative to the app root (a relative `uri`).
    Commit(String),
}

/// Which build turns the commit into a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildKind {
    /// The commit's tree as it is, processes run with `bash -c` (plans saved before the
    /// local runtime ran buildpacks).
    #[default]
    Tree,
    /// The commit's Dockerfile (docker runtime).
    Dockerfile,
    /// The CNB lifecycle: detect, build, export, and processes started by its launcher.
    Buildpacks,
}

impl BuildKind {
    /// The build of a commit: its Dockerfile on the docker runtime, otherwise buildpacks (the
    /// local runtime cannot build a Dockerfile, so it runs the buildpacks there too).
    pub fn of(runtime: RuntimeKind, has_dockerfile: bool) -> Self {
        match runtime {
            RuntimeKind::Docker | RuntimeKind::Swarm | RuntimeKind::Kubernetes if has_dockerfile => {
                Self::Dockerfile
            }
            RuntimeKind::Docker | RuntimeKind::Swarm | RuntimeKind::Kubernetes | RuntimeKind::Local => {
                Self::Buildpacks
            }
        }
    }
}

/// Linux's limit on one argument (`MAX_ARG_STRLEN`): a command runs as `bash -c COMMAND`.
const MAX_ARG_LEN: usize = 128 * 1024;

/// Why a deploy cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A Procfile command longer than Linux lets one argument be: it could never be started.
    #[error(
        "Procfile: {ptype}: the command is {len} bytes, too long to execute (Linux takes at most 128 KiB in one argument), \
         so it could not be started; move it into a script committed with the app and run that"
    )]
    CommandTooLong {
        /// The process type.
        ptype: ProcessType,
        /// The command's length in bytes.
        len: usize,
    },
    /// A group entry names a buildpack by id only, which only a registry could provide.
    #[error(
        "project.toml: io.buildpacks.group[{index}]: buildpack {id:?} has no uri, and no buildpack registry can be reached here; \
         commit the buildpack and set uri = \"<its directory, relative to the app root>\", or pass --buildpack DIR"
    )]
    NeedsRegistry {
        /// The entry's index in the group, from 0.
        index: usize,
        /// Its id.
        id: String,
    },
    /// A group entry's uri is not a local directory.
    #[error(
        "project.toml: io.buildpacks.group[{index}]: uri {uri:?} is not a local directory, and no registry or URL can be reached here; \
         use a directory relative to the app root, or an absolute path"
    )]
    RemoteUri {
        /// The entry's index in the group, from 0.
        index: usize,
        /// The uri.
        uri: String,
    },
    /// The Procfile has no `web`, so the switch would retire the web that serves the app.
    #[error(
        "the Procfile of this commit has no web process, but the running release {running} serves web: deploying it \
         would retire web and the app would answer 503. Add a web line to the Procfile, or if that is intended, \
         pass --allow-no-web (for git push: set allow-no-web = true under [io.slipway] in project.toml)"
    )]
    DropsWeb {
        /// The running release.
        running: ReleaseId,
    },
    /// An include/exclude pattern that is not a gitignore pattern.
    #[error(
        "project.toml: io.buildpacks.{key}: {pattern:?} is not a valid gitignore-style pattern ({reason}); fix or remove it"
    )]
    SourcePattern {
        /// `include` or `exclude`.
        key: &'static str,
        /// The pattern.
        pattern: String,
        /// What the pattern parser said.
        reason: String,
    },
    /// A relative uri climbs out of the app root.
    #[error(
        "project.toml: io.buildpacks.group[{index}]: uri {uri:?} leaves the app root; name a directory inside the app"
    )]
    OutsideApp {
        /// The entry's index in the group, from 0.
        index: usize,
        /// The uri.
        uri: String,
    },
}

/// Everything a runtime needs to turn a commit into a running release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployPlan {
    pub app: AppName,
    pub release: ReleaseId,
    pub commit: CommitSha,
    pub predeploy: Option<ScriptSpec>,
    /// The Procfile's `release:` command (Heroku's release phase), run after predeploy.
    #[serde(default)]
    pub release_phase: Option<ScriptSpec>,
    pub postdeploy: Option<ScriptSpec>,
    pub processes: Vec<ProcessSpec>,
    pub env: BTreeMap<String, String>,
    pub run_as: Option<RunAs>,
    /// Whether the app's persistent filesystem is attached.
    pub mount: bool,
    #[serde(with = "secs")]
    pub web_timeout: Duration,
    #[serde(with = "secs")]
    pub stop_grace: Duration,
    /// The path web must answer with 2xx/3xx before the switch; none means accepting
    /// connections is enough.
    #[serde(default)]
    pub healthcheck: Option<HealthPath>,
    /// How long the release must stay healthy with no crash before the switch.
    #[serde(with = "secs", default = "default_settle")]
    pub settle: Duration,
    /// Extra buildpacks for a commit without a Dockerfile, run in order before slipway's own
    /// Procfile buildpack.
    #[serde(default)]
    pub buildpacks: Vec<BuildpackSource>,
    /// Which build it is.
    #[serde(default)]
    pub build: BuildKind,
    /// project.toml's build env and include/exclude, for a buildpack build's platform.
    #[serde(default)]
    pub platform: PlatformSpec,
}

/// Settings given on the command line; they win over project.toml.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub predeploy_timeout: Option<Duration>,
    pub web_timeout: Option<Duration>,
    pub stop_grace: Option<Duration>,
    pub healthcheck: Option<HealthPath>,
    pub settle: Option<Duration>,
    /// `--buildpack DIR`, in order, as absolute paths; when given they replace project.toml's
    /// `[[io.buildpacks.group]]`, as `pack build --buildpack` does.
    pub buildpacks: Vec<PathBuf>,
    /// `--allow-no-web`: a Procfile without web may replace a release that serves web.
    pub allow_no_web: bool,
}

/// The inputs of a plan.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub app: &'a AppRecord,
    pub release: ReleaseId,
    pub commit: CommitSha,
    pub procfile: &'a Procfile,
    pub project: Option<&'a ProjectToml>,
    pub mount_enabled: bool,
    pub overrides: &'a Overrides,
    /// The running release, if it has a web process.
    pub running_web: Option<ReleaseId>,
    /// Whether the commit has a Dockerfile.
    pub has_dockerfile: bool,
}

/// Compute the plan. Pure: no I/O.
pub fn plan(input: &PlanInput<'_>) -> Result<DeployPlan, PlanError> {
    let project = input.project;
    // Refused here rather than at start: a build would spend its time on a line no exec takes.
    if let Some(e) = input.procfile.entries().iter().find(|e| e.command.len() >= MAX_ARG_LEN) {
        return Err(PlanError::CommandTooLong { ptype: e.ptype.clone(), len: e.command.len() });
    }
    let has_web = input.procfile.entries().iter().any(|e| e.ptype.is_web());
    let allowed = input.overrides.allow_no_web || project.is_some_and(|p| p.allow_no_web);
    if let Some(running) = input.running_web
        && !has_web
        && !allowed
    {
        return Err(PlanError::DropsWeb { running });
    }
    let predeploy_timeout = input
        .overrides
        .predeploy_timeout
        .or_else(|| project.and_then(|p| p.predeploy_timeout))
        .unwrap_or(DEFAULT_PREDEPLOY_TIMEOUT);
    let script = |path: &Option<String>| path.clone().map(|path| ScriptSpec::file(path, predeploy_timeout));
    Ok(DeployPlan {
        app: input.app.name.clone(),
        release: input.release,
        commit: input.commit.clone(),
        predeploy: project.and_then(|p| script(&p.predeploy)),
        release_phase: input.procfile.release().map(|e| ScriptSpec {
            path: crate::config::procfile::RELEASE.to_owned(),
            timeout: predeploy_timeout,
            command: Some(e.command.clone()),
        }),
        postdeploy: project.and_then(|p| script(&p.postdeploy)),
        processes: input
            .procfile
            .entries()
            .iter()
            .map(|e| ProcessSpec {
                ptype: e.ptype.clone(),
                command: e.command.clone(),
                instances: input.app.instances(&e.ptype),
            })
            .collect(),
        env: input.app.env.clone(),
        run_as: input.app.run_as.clone(),
        mount: input.mount_enabled,
        web_timeout: input
            .overrides
            .web_timeout
            .or_else(|| project.and_then(|p| p.web_timeout))
            .unwrap_or(DEFAULT_WEB_TIMEOUT),
        stop_grace: input.overrides.stop_grace.unwrap_or(DEFAULT_STOP_GRACE),
        healthcheck: input
            .overrides
            .healthcheck
            .clone()
            .or_else(|| project.and_then(|p| p.healthcheck.clone())),
        settle: input.overrides.settle.or_else(|| project.and_then(|p| p.settle)).unwrap_or(DEFAULT_SETTLE),
        buildpacks: buildpacks(input.overrides, project)?,
        build: BuildKind::of(input.app.runtime, input.has_dockerfile),
        platform: platform(project)?,
    })
}

/// project.toml's build env and source filter, its patterns checked now so that a bad one
/// fails before anything is built.
fn platform(project: Option<&ProjectToml>) -> Result<PlatformSpec, PlanError> {
    let Some(p) = project else { return Ok(PlatformSpec::default()) };
    for (key, list) in [("include", &p.include), ("exclude", &p.exclude)] {
        for pattern in list {
            if let Err(e) = SourceFilter::new(std::slice::from_ref(pattern), &[]) {
                let reason = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
                return Err(PlanError::SourcePattern { key, pattern: pattern.clone(), reason });
            }
        }
    }
    Ok(PlatformSpec {
        build_env: p.build_env.clone(),
        include: p.include.clone(),
        exclude: p.exclude.clone(),
    })
}

/// The extra buildpacks: `--buildpack` directories if any were given, else project.toml's
/// group, each of which must say where the buildpack is on this machine or in the commit.
fn buildpacks(
    overrides: &Overrides,
    project: Option<&ProjectToml>,
) -> Result<Vec<BuildpackSource>, PlanError> {
    if !overrides.buildpacks.is_empty() {
        return Ok(overrides.buildpacks.iter().cloned().map(BuildpackSource::Dir).collect());
    }
    let group = project.map_or(&[][..], |p| p.buildpacks.as_slice());
    group
        .iter()
        .enumerate()
        .map(|(index, bp)| match &bp.uri {
            None => Err(PlanError::NeedsRegistry { index, id: bp.id.clone().unwrap_or_default() }),
            Some(uri) => local_buildpack(index, uri),
        })
        .collect()
}

/// A group entry's `uri` as a local directory: absolute (or `file://`) on this machine,
/// otherwise relative to the app root in the commit.
fn local_buildpack(index: usize, uri: &str) -> Result<BuildpackSource, PlanError> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if path.contains("://") || path.starts_with("urn:") || path.starts_with("docker:") {
        return Err(PlanError::RemoteUri { index, uri: uri.to_owned() });
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(BuildpackSource::Dir(path.to_owned()));
    }
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PlanError::OutsideApp { index, uri: uri.to_owned() });
            }
        }
    }
    Ok(BuildpackSource::Commit(if parts.is_empty() { ".".to_owned() } else { parts.join("/") }))
}

impl DeployPlan {
    /// The web process, if the Procfile has one.
    pub fn web(&self) -> Option<&ProcessSpec> {
        self.processes.iter().find(|p| p.ptype.is_web())
    }

    /// Whether the release's processes run through its launcher (a buildpack build).
    pub fn runs_launcher(&self) -> bool {
        self.build == BuildKind::Buildpacks
    }

    /// Adds the process types a buildpack build declared (launch.toml) that the Procfile
    /// does not: the Procfile's command wins over a buildpack's of the same type. A type that
    /// is not a valid process type name is skipped (launch.toml parsing already refuses it).
    pub fn add_buildpack_processes(&mut self, app: &AppRecord, launch: &[crate::buildpack::launch::Process]) {
        for p in launch {
            let Ok(ptype) = p.kind.parse::<ProcessType>() else { continue };
            if self.processes.iter().any(|q| q.ptype == ptype) {
                continue;
            }
            let mut words: Vec<String> = p.command.iter().chain(&p.args).map(|w| shell_quote(w)).collect();
            words.insert(0, "exec".to_owned());
            let mut command = words.join(" ");
            if let Some(dir) = &p.working_dir {
                command = format!("cd {} && {command}", shell_quote(dir));
            }
            // As `pack`'s launcher runs only the default process, a buildpack's other types
            // (one-off tasks, often) start at 0 until `ps scale` asks for them; web and the
            // default process start at 1, like a Procfile's types.
            let fallback = u32::from(ptype.is_web() || p.default);
            let instances = app.scale.get(&ptype).copied().unwrap_or(fallback);
            self.processes.push(ProcessSpec { ptype, command, instances });
        }
    }
}

fn shell_quote(s: &str) -> String {
    crate::buildpack::launch::shell_quote(s)
}

fn default_settle() -> Duration {
    DEFAULT_SETTLE
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppRecord {
        let mut a = AppRecord::new("demo".parse().unwrap(), RuntimeKind::Local);
        a.scale.insert("worker".parse().unwrap(), 3);
        a.env.insert("GREETING".into(), "hi".into());
        a
    }

    fn input<'a>(
        app: &'a AppRecord,
        procfile: &'a Procfile,
        project: Option<&'a ProjectToml>,
        overrides: &'a Overrides,
    ) -> PlanInput<'a> {
        PlanInput {
            app,
            release: ReleaseId::new(7),
            commit: "a".repeat(40).parse().unwrap(),
            procfile,
            project,
            mount_enabled: true,
            overrides,
            running_web: None,
            has_dockerfile: false,
        }
    }

    #[test]
    fn a_command_no_exec_could_take_is_refused_before_anything_is_built() {
        let app = app();
        let none = Overrides::default();
        let long = Procfile::parse(&format!("web: x\nworker: echo {}\n", "y".repeat(MAX_ARG_LEN))).unwrap();
        let err = plan(&input(&app, &long, None, &none)).unwrap_err();
        assert!(
            matches!(&err, PlanError::CommandTooLong { ptype, len } if ptype.as_str() == "worker" && *len > MAX_ARG_LEN)
        );
        assert!(err.to_string().contains("too long to execute"), "{err}");
        let fits = Procfile::parse(&format!("web: echo {}\n", "y".repeat(MAX_ARG_LEN - 100))).unwrap();
        assert!(plan(&input(&app, &fits, None, &none)).is_ok());
    }

    #[test]
    fn a_procfile_without_web_cannot_replace_a_release_serving_web_unless_allowed() {
        let app = app();
        let no_web = Procfile::parse("worker: ./work\n").unwrap();
        let none = Overrides::default();
        let running = Some(ReleaseId::new(6));
        let refused = plan(&PlanInput { running_web: running, ..input(&app, &no_web, None, &none) });
        let err = refused.unwrap_err();
        assert_eq!(err, PlanError::DropsWeb { running: ReleaseId::new(6) });
        assert!(
            err.to_string().contains("--allow-no-web") && err.to_string().contains("allow-no-web = true")
        );

        let flag = Overrides { allow_no_web: true, ..Overrides::default() };
        assert!(plan(&PlanInput { running_web: running, ..input(&app, &no_web, None, &flag) }).is_ok());
        let project =
            crate::config::project_toml::parse("[io.slipway]\nallow-no-web = true\n").unwrap().project;
        assert!(
            plan(&PlanInput { running_web: running, ..input(&app, &no_web, Some(&project), &none) }).is_ok()
        );
        // Nothing serves web yet (first deploy, or a worker-only app): nothing to lose.
        assert!(plan(&input(&app, &no_web, None, &none)).is_ok());
        let web = Procfile::parse("web: x\n").unwrap();
        assert!(plan(&PlanInput { running_web: running, ..input(&app, &web, None, &none) }).is_ok());
    }

    #[test]
    fn the_release_line_is_a_release_phase_not_a_process() {
        let app = app();
        let procfile = Procfile::parse("release: ./migrate --yes\nweb: python3 app.py\n").unwrap();
        let plan = plan(&input(&app, &procfile, None, &Overrides::default())).unwrap();
        let release = plan.release_phase.as_ref().unwrap();
        assert_eq!(release.command.as_deref(), Some("./migrate --yes"));
        assert_eq!(release.shown(), "release: ./migrate --yes");
        assert_eq!(release.timeout, DEFAULT_PREDEPLOY_TIMEOUT);
        assert_eq!(plan.processes.iter().map(|p| p.ptype.as_str()).collect::<Vec<_>>(), ["web"]);
        let none = Procfile::parse("web: x\n").unwrap();
        assert_eq!(
            super::plan(&input(&app, &none, None, &Overrides::default())).unwrap().release_phase,
            None
        );
    }

    #[test]
    fn processes_keep_procfile_order_and_take_scale() {
        let app = app();
        let procfile = Procfile::parse("worker: ./work\nweb: python3 app.py\n").unwrap();
        let plan = plan(&input(&app, &procfile, None, &Overrides::default())).unwrap();
        let got: Vec<_> = plan.processes.iter().map(|p| (p.ptype.as_str(), p.instances)).collect();
        assert_eq!(got, [("worker", 3), ("web", 1)]);
        assert_eq!(plan.web().unwrap().command, "python3 app.py");
        assert_eq!(plan.env["GREETING"], "hi");
        assert_eq!(plan.predeploy, None);
        assert_eq!(plan.web_timeout, DEFAULT_WEB_TIMEOUT);
    }

    #[test]
    fn settle_comes_from_the_flag_then_project_toml_then_the_default() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let project = crate::config::project_toml::parse("[io.slipway]\nsettle = \"4s\"\n").unwrap().project;
        let none = Overrides::default();
        assert_eq!(plan(&input(&app, &procfile, None, &none)).unwrap().settle, DEFAULT_SETTLE);
        assert_eq!(
            plan(&input(&app, &procfile, Some(&project), &none)).unwrap().settle,
            Duration::from_secs(4)
        );
        let flag = Overrides { settle: Some(Duration::ZERO), ..Overrides::default() };
        assert_eq!(plan(&input(&app, &procfile, Some(&project), &flag)).unwrap().settle, Duration::ZERO);
    }

    #[test]
    fn command_line_timeout_wins_over_project_toml() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let project = crate::config::project_toml::parse(
            "predeploy = \"pre.sh\"\n[io.slipway]\npredeploy-timeout = \"90s\"\n",
        )
        .unwrap()
        .project;
        let from_file = plan(&input(&app, &procfile, Some(&project), &Overrides::default())).unwrap();
        assert_eq!(from_file.predeploy, Some(ScriptSpec::file("pre.sh".into(), Duration::from_secs(90))));
        let overrides = Overrides { predeploy_timeout: Some(Duration::from_secs(5)), ..Overrides::default() };
        let from_flag = plan(&input(&app, &procfile, Some(&project), &overrides)).unwrap();
        assert_eq!(from_flag.predeploy.unwrap().timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_health_check_flag_wins_over_project_toml_and_none_means_tcp() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let project = project("[io.slipway]\nhealthcheck = \"/up\"\n");
        let path = |p: &DeployPlan| p.healthcheck.as_ref().map(|h| h.as_str().to_owned());
        assert_eq!(path(&plan(&input(&app, &procfile, None, &Overrides::default())).unwrap()), None);
        let from_file = plan(&input(&app, &procfile, Some(&project), &Overrides::default())).unwrap();
        assert_eq!(path(&from_file).as_deref(), Some("/up"));
        let overrides = Overrides { healthcheck: Some("/ready".parse().unwrap()), ..Overrides::default() };
        let from_flag = plan(&input(&app, &procfile, Some(&project), &overrides)).unwrap();
        assert_eq!(path(&from_flag).as_deref(), Some("/ready"));
    }

    #[test]
    fn plan_round_trips_through_json() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let mut p = plan(&input(&app, &procfile, None, &Overrides::default())).unwrap();
        p.buildpacks = vec![BuildpackSource::Dir("/srv/bp".into()), BuildpackSource::Commit("bp".into())];
        let back: DeployPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    fn project(text: &str) -> ProjectToml {
        crate::config::project_toml::parse(text).unwrap().project
    }

    #[test]
    fn the_platform_carries_project_build_env_and_filters_and_refuses_a_bad_pattern() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let good = project(
            "[io.buildpacks]\nexclude = [\"*.log\"]\n[[io.buildpacks.build.env]]\nname = \"A\"\nvalue = \"1\"\n",
        );
        let p = plan(&input(&app, &procfile, Some(&good), &Overrides::default())).unwrap();
        assert_eq!(p.platform.build_env, [("A".to_owned(), "1".to_owned())]);
        assert_eq!(p.platform.exclude, ["*.log"]);
        assert_eq!(p.env["GREETING"], "hi", "the app's config stays the plan's env");
        let bad = project("[io.buildpacks]\ninclude = [\"src/{a,b\"]\n");
        let err = plan(&input(&app, &procfile, Some(&bad), &Overrides::default())).unwrap_err();
        assert!(matches!(err, PlanError::SourcePattern { key: "include", .. }), "{err}");
        assert!(err.to_string().contains("\"src/{a,b\""), "{err}");
        // A plan saved before the platform field reads as an empty platform.
        let mut json = serde_json::to_value(&p).unwrap();
        json.as_object_mut().unwrap().remove("platform");
        let old: DeployPlan = serde_json::from_value(json).unwrap();
        assert_eq!(old.platform, PlatformSpec::default());
    }

    #[test]
    fn group_uris_are_app_or_host_directories_in_order() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let project = project(
            "[[io.buildpacks.group]]\nuri = \"./buildpacks/node/\"\n\
             [[io.buildpacks.group]]\nid = \"me/tools\"\nuri = \"/srv/buildpacks/tools\"\n\
             [[io.buildpacks.group]]\nuri = \"file:///opt/bp\"\n",
        );
        let p = plan(&input(&app, &procfile, Some(&project), &Overrides::default())).unwrap();
        assert_eq!(
            p.buildpacks,
            [
                BuildpackSource::Commit("buildpacks/node".into()),
                BuildpackSource::Dir("/srv/buildpacks/tools".into()),
                BuildpackSource::Dir("/opt/bp".into()),
            ]
        );
        assert!(plan(&input(&app, &procfile, None, &Overrides::default())).unwrap().buildpacks.is_empty());
    }

    #[test]
    fn buildpack_flags_replace_the_project_group() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let project = project("[[io.buildpacks.group]]\nid = \"heroku/python\"\n");
        let overrides = Overrides { buildpacks: vec!["/a".into(), "/b".into()], ..Overrides::default() };
        let p = plan(&input(&app, &procfile, Some(&project), &overrides)).unwrap();
        assert_eq!(p.buildpacks, [BuildpackSource::Dir("/a".into()), BuildpackSource::Dir("/b".into())]);
    }

    #[test]
    fn group_entries_that_need_a_registry_or_leave_the_app_are_refused() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let none = Overrides::default();
        let id_only = project(
            "[[io.buildpacks.group]]\nuri = \"bp\"\n[[io.buildpacks.group]]\nid = \"heroku/python\"\n",
        );
        let err = plan(&input(&app, &procfile, Some(&id_only), &none)).unwrap_err();
        assert_eq!(err, PlanError::NeedsRegistry { index: 1, id: "heroku/python".into() });
        assert!(err.to_string().contains("no buildpack registry can be reached"), "{err}");
        let remote = project("[[io.buildpacks.group]]\nuri = \"docker://heroku/python\"\n");
        assert!(matches!(
            plan(&input(&app, &procfile, Some(&remote), &none)),
            Err(PlanError::RemoteUri { index: 0, .. })
        ));
        let outside = project("[[io.buildpacks.group]]\nuri = \"bp/../../etc\"\n");
        assert!(matches!(
            plan(&input(&app, &procfile, Some(&outside), &none)),
            Err(PlanError::OutsideApp { index: 0, .. })
        ));
    }

    #[test]
    fn plans_saved_before_buildpacks_existed_still_load() {
        let app = app();
        let procfile = Procfile::parse("web: x").unwrap();
        let p = plan(&input(&app, &procfile, None, &Overrides::default())).unwrap();
        let mut json = serde_json::to_value(&p).unwrap();
        json.as_object_mut().unwrap().remove("buildpacks");
        json.as_object_mut().unwrap().remove("healthcheck");
        json.as_object_mut().unwrap().remove("release_phase");
        json.as_object_mut().unwrap().remove("settle");
        assert_eq!(serde_json::from_value::<DeployPlan>(json).unwrap(), p);
    }

    #[test]
    fn the_build_kind_follows_runtime_and_dockerfile() {
        assert_eq!(BuildKind::of(RuntimeKind::Docker, true), BuildKind::Dockerfile);
        assert_eq!(BuildKind::of(RuntimeKind::Docker, false), BuildKind::Buildpacks);
        assert_eq!(BuildKind::of(RuntimeKind::Local, true), BuildKind::Buildpacks);
        let a = app();
        let procfile = Procfile::parse("web: x\n").unwrap();
        let o = Overrides::default();
        assert_eq!(plan(&input(&a, &procfile, None, &o)).unwrap().build, BuildKind::Buildpacks);
    }

    #[test]
    fn buildpack_types_join_the_procfile_types_which_win() {
        use crate::buildpack::launch::LaunchToml;
        let a = app();
        let procfile = Procfile::parse("web: ./serve\n").unwrap();
        let o = Overrides::default();
        let mut p = plan(&input(&a, &procfile, None, &o)).unwrap();
        let launch = LaunchToml::parse(
            "acme/tools",
            crate::buildpack::api::ApiVersion::new(10).unwrap(),
            "[[processes]]\ntype = \"web\"\ncommand = [\"other\"]\n\
             [[processes]]\ntype = \"worker\"\ncommand = [\"run it\"]\nargs = [\"--x\"]\nworking-dir = \"sub\"\n",
        )
        .unwrap();
        p.add_buildpack_processes(&a, &launch.processes);
        assert_eq!(p.processes.len(), 2);
        assert_eq!(p.processes[0].command, "./serve");
        assert_eq!(p.processes[1].ptype.as_str(), "worker");
        assert_eq!(p.processes[1].command, "cd 'sub' && exec 'run it' '--x'");
        assert_eq!(p.processes[1].instances, 3);
    }
}
