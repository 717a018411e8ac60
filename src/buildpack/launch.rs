//! `launch.toml` processes, and the launcher script exported into buildpack-built images.
//!
//! The launcher stands in for the CNB launcher: it sets up every launch layer's environment,
//! then runs a process by type (`/cnb/launcher web`) or, when its first argument is not a
//! process type, runs the arguments as a command in that environment (`/cnb/launcher bash
//! predeploy.sh`), as the CNB launcher does for a direct command.

// Scripts are assembled line by line with `push_str(&format!(..))`, which reads like the
// script it builds; the extra allocations do not matter here.
#![allow(clippy::format_push_string)]

use serde::Deserialize;

use super::api::ApiVersion;
use super::env::LAYER_ENV_SH;

/// A parsed `launch.toml`: processes and labels; `[[slices]]` and SBOM entries are not
/// exported by slipway and only leave a note.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchToml {
    /// `[[processes]]`, commands as argv whatever the buildpack's API.
    pub processes: Vec<Process>,
    /// `[[labels]]`: image labels, later buildpacks winning.
    pub labels: Vec<Label>,
    /// What was ignored, for the build output.
    pub notes: Vec<String>,
}

/// One `[[processes]]` entry, its command as an argv run directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The process type, e.g. `web`.
    pub kind: String,
    /// The command and its fixed arguments.
    pub command: Vec<String>,
    /// Default arguments, replaced by user-given ones.
    pub args: Vec<String>,
    /// Whether this is the image's default process.
    pub default: bool,
    /// The working directory, relative to the app directory.
    pub working_dir: Option<String>,
}

/// One `[[labels]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// The label key.
    pub key: String,
    /// Its value.
    pub value: String,
}

#[derive(Deserialize)]
struct RawLaunch {
    #[serde(default)]
    processes: Vec<RawProcess>,
    #[serde(default)]
    labels: Vec<Label>,
    #[serde(default)]
    slices: Vec<toml::Value>,
    #[serde(default)]
    bom: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawProcess {
    #[serde(rename = "type")]
    kind: String,
    command: toml::Value,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    direct: Option<bool>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    working_dir: Option<String>,
}

/// Why a `launch.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Not valid TOML for launch.toml.
    #[error("invalid launch.toml from buildpack {buildpack}: {source}")]
    Toml {
        /// The buildpack that wrote it.
        buildpack: String,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A process with an empty command or an unusable type.
    #[error(
        "launch.toml from buildpack {buildpack}: process {kind:?} needs a type of [A-Za-z0-9_-] and a non-empty command"
    )]
    Process {
        /// The buildpack.
        buildpack: String,
        /// The process type.
        kind: String,
    },
    /// A command of the wrong shape for the buildpack's API.
    #[error("launch.toml from buildpack {buildpack} (Buildpack API {api}): process {kind:?}: {expected}")]
    CommandShape {
        /// The buildpack.
        buildpack: String,
        /// Its API.
        api: ApiVersion,
        /// The process type.
        kind: String,
        /// What the API asks for.
        expected: &'static str,
    },
    /// Two processes marked default.
    #[error("launch.toml from buildpack {buildpack}: more than one process has default = true")]
    TwoDefaults {
        /// The buildpack.
        buildpack: String,
    },
}

impl LaunchToml {
    /// Parses the launch.toml written by `buildpack`, which declares Buildpack API `api`:
    /// before 0.9 a command is a string run by bash unless `direct = true`, and
    /// `working-dir` is ignored before 0.8, as the reference lifecycle does.
    pub fn parse(buildpack: &str, api: ApiVersion, text: &str) -> Result<Self, LaunchError> {
        let raw: RawLaunch = toml::from_str(text)
            .map_err(|source| LaunchError::Toml { buildpack: buildpack.to_owned(), source })?;
        let mut notes = Vec::new();
        let mut processes = Vec::new();
        for p in raw.processes {
            let shape = |expected| LaunchError::CommandShape {
                buildpack: buildpack.to_owned(),
                api,
                kind: p.kind.clone(),
                expected,
            };
            let command = if api.command_is_array() {
                if p.direct.is_some() {
                    return Err(shape(
                        "`direct` was removed in Buildpack API 0.9; command is an array run directly",
                    ));
                }
                let toml::Value::Array(items) = &p.command else {
                    return Err(shape("command must be an array of strings from Buildpack API 0.9"));
                };
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| shape("command must be an array of strings"))?
            } else {
                let toml::Value::String(cmd) = &p.command else {
                    return Err(shape("command must be a string before Buildpack API 0.9"));
                };
                // A legacy shell process runs as `bash -c <command> <args>...`.
                if p.direct == Some(true) {
                    vec![cmd.clone()]
                } else {
                    vec!["bash".into(), "-c".into(), cmd.clone()]
                }
            };
            if command.first().is_none_or(String::is_empty)
                || p.kind.parse::<crate::ids::ProcessType>().is_err()
            {
                return Err(LaunchError::Process { buildpack: buildpack.to_owned(), kind: p.kind });
            }
            let working_dir = if api.has_working_dir() {
                p.working_dir
            } else {
                if p.working_dir.is_some() {
                    notes.push(format!(
                        "{buildpack}: working-dir of process {} ignored: Buildpack API {api} predates it",
                        p.kind
                    ));
                }
                None
            };
            processes.push(Process { kind: p.kind, command, args: p.args, default: p.default, working_dir });
        }
        if processes.iter().filter(|p| p.default).count() > 1 {
            return Err(LaunchError::TwoDefaults { buildpack: buildpack.to_owned() });
        }
        if !raw.slices.is_empty() {
            notes.push(format!(
                "{buildpack}: [[slices]] ignored: slipway exports the app directory as one layer"
            ));
        }
        if !raw.bom.is_empty() {
            notes.push(format!("{buildpack}: launch.toml [[bom]] ignored: slipway keeps no SBOM"));
        }
        Ok(Self { processes, labels: raw.labels, notes })
    }

    /// Merges buildpacks' launch files in order: a later buildpack's process replaces an
    /// earlier one of the same type, as the CNB exporter does.
    pub fn merge(all: impl IntoIterator<Item = LaunchToml>) -> LaunchToml {
        let mut out = LaunchToml::default();
        for l in all {
            for p in l.processes {
                out.processes.retain(|q| q.kind != p.kind);
                out.processes.push(p);
            }
            for label in l.labels {
                out.labels.retain(|q| q.key != label.key);
                out.labels.push(label);
            }
            out.notes.extend(l.notes);
        }
        out
    }

    /// The default process type: the one marked default, else `web`, else the first.
    pub fn default_process(&self) -> Option<&str> {
        self.processes
            .iter()
            .find(|p| p.default)
            .or_else(|| self.processes.iter().find(|p| p.kind == "web"))
            .or_else(|| self.processes.first())
            .map(|p| p.kind.as_str())
    }
}

/// Quotes `s` for bash as a single-quoted word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The launcher script: sets up `launch_layers` (absolute layer directories, in buildpack
/// order: their env files, then their `profile.d/` scripts, then their `exec.d/` output) and runs a process of `launch`
/// from `app_dir`, or from the directory it was started in when `None`.
pub fn launcher_script(launch: &LaunchToml, launch_layers: &[String], app_dir: Option<&str>) -> String {
    let mut s = String::from(
        "#!/bin/bash\n# Generated by slipway: runs launch.toml processes with the launch layers' environment.\n",
    );
    s.push_str(LAYER_ENV_SH);
    // The process type being started, for each layer's `env.launch/<process>/` (Buildpack
    // API 0.10 "Environment"): the first argument when it is a launch.toml type (how an image
    // is started), else the type in slipway's `DYNO=<type>.<n>` (a local process, whose
    // command the launcher is given as `bash -c ...`). Nothing for other commands.
    let types: Vec<String> = launch.processes.iter().map(|p| shell_quote(&p.kind)).collect();
    s.push_str("slipway_process=\n");
    if !types.is_empty() {
        s.push_str(&format!("case \"${{1:-}}\" in {}) slipway_process=$1 ;; esac\n", types.join("|")));
    }
    s.push_str(
        "if [[ -z $slipway_process && ${DYNO:-} =~ ^([A-Za-z0-9_-]+)\\.[0-9]+$ ]]; then slipway_process=${BASH_REMATCH[1]}; fi\n",
    );
    for layer in launch_layers {
        s.push_str(&format!("slipway_layer_env {} launch \"$slipway_process\"\n", shell_quote(layer)));
    }
    s.push_str("unset slipway_process\n");
    // profile.d scripts are sourced after every layer's env files (Buildpack API 0.10,
    // "Launch"), with the app directory as the working directory.
    match app_dir {
        Some(dir) => {
            s.push_str(&format!("export CNB_APP_DIR={}\ncd {}\n", shell_quote(dir), shell_quote(dir)));
        }
        None => s.push_str("export CNB_APP_DIR=\"$PWD\"\n"),
    }
    for layer in launch_layers {
        s.push_str(&format!(
            "for f in {}/profile.d/*; do if [[ -f \"$f\" ]]; then source \"$f\"; fi; done\n",
            shell_quote(layer)
        ));
    }
    // exec.d executables run next, each printing `NAME = "value"` lines on fd 3 that are
    // exported (Buildpack API 0.10 "exec.d"); their stdout goes to stderr so it cannot be
    // mistaken for output. Values are taken as written: TOML escapes are not decoded.
    for layer in launch_layers {
        s.push_str(&format!(
            "for x in {}/exec.d/*; do if [[ -f \"$x\" && -x \"$x\" ]]; then while IFS= read -r l; do if [[ \"$l\" =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*\\\"(.*)\\\"[[:space:]]*$ ]]; then export \"${{BASH_REMATCH[1]}}=${{BASH_REMATCH[2]}}\"; fi; done < <(\"$x\" 3>&1 1>&2); fi; done\n",
            shell_quote(layer)
        ));
    }
    s.push_str("if [[ $# -eq 0 ]]; then echo 'usage: /cnb/launcher <process type> | <command> [args...]' >&2; exit 64; fi\n");
    s.push_str("case \"$1\" in\n");
    for p in &launch.processes {
        let cmd: Vec<String> = p.command.iter().map(|c| shell_quote(c)).collect();
        let args: Vec<String> = p.args.iter().map(|c| shell_quote(c)).collect();
        s.push_str(&format!("  {})\n    shift\n", shell_quote(&p.kind)));
        if let Some(wd) = &p.working_dir {
            s.push_str(&format!("    cd {}\n", shell_quote(wd)));
        }
        // User-given arguments replace the default args (CNB launcher semantics).
        s.push_str(&format!("    if [[ $# -gt 0 ]]; then exec {} \"$@\"; fi\n", cmd.join(" ")));
        s.push_str(&format!("    exec {} {}\n    ;;\n", cmd.join(" "), args.join(" ")).replace("  \n", "\n"));
    }
    s.push_str("  *)\n    exec \"$@\"\n    ;;\nesac\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> ApiVersion {
        ApiVersion::new(minor).unwrap()
    }

    fn launch() -> LaunchToml {
        LaunchToml::parse(
            "slipway/procfile",
            v(10),
            "[[processes]]\ntype = \"web\"\ncommand = [\"bash\", \"-c\", \"echo 'hi' $PORT\"]\ndefault = true\n\
             [[processes]]\ntype = \"worker\"\ncommand = [\"bash\", \"-c\", \"sleep 1\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn processes_parse_and_later_buildpacks_override() {
        let l = launch();
        assert_eq!(l.default_process(), Some("web"));
        let other = LaunchToml::parse(
            "x",
            v(12),
            "[[processes]]\ntype = \"worker\"\ncommand = [\"true\"]\n[[labels]]\nkey = \"a\"\nvalue = \"1\"\n",
        )
        .unwrap();
        let merged = LaunchToml::merge([l, other]);
        assert_eq!(merged.processes.len(), 2);
        assert_eq!(merged.processes[1].command, ["true"]);
        assert_eq!(merged.labels, [Label { key: "a".into(), value: "1".into() }]);
        assert!(LaunchToml::parse("x", v(10), "[[processes]]\ntype = \"a b\"\ncommand = [\"x\"]\n").is_err());
        assert!(LaunchToml::parse("x", v(10), "[[processes]]\ntype = \"a\"\ncommand = []\n").is_err());
        let two = "[[processes]]\ntype = \"a\"\ncommand = [\"x\"]\ndefault = true\n\
                   [[processes]]\ntype = \"b\"\ncommand = [\"x\"]\ndefault = true\n";
        assert!(matches!(LaunchToml::parse("x", v(10), two), Err(LaunchError::TwoDefaults { .. })));
    }

    #[test]
    fn commands_follow_the_declared_api() {
        let legacy = "[[processes]]\ntype = \"web\"\ncommand = \"echo $0 hi\"\nargs = [\"a\"]\nworking-dir = \"sub\"\n\
                      [[processes]]\ntype = \"tool\"\ncommand = \"/bin/tool\"\ndirect = true\n\
                      [[slices]]\npaths = [\"x\"]\n";
        let l = LaunchToml::parse("old", v(7), legacy).unwrap();
        assert_eq!(l.processes[0].command, ["bash", "-c", "echo $0 hi"]);
        assert_eq!(l.processes[0].args, ["a"]);
        assert_eq!(l.processes[0].working_dir, None, "0.7 predates working-dir");
        assert_eq!(l.processes[1].command, ["/bin/tool"]);
        assert_eq!(l.notes.len(), 2, "{:?}", l.notes);
        assert_eq!(
            LaunchToml::parse("old", v(8), legacy).unwrap().processes[0].working_dir.as_deref(),
            Some("sub")
        );
        let err = LaunchToml::parse("new", v(9), legacy).unwrap_err();
        assert!(err.to_string().contains("array"), "{err}");
        let err = LaunchToml::parse(
            "new",
            v(12),
            "[[processes]]\ntype = \"w\"\ncommand = [\"x\"]\ndirect = true\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("direct"), "{err}");
    }

    #[test]
    fn the_launcher_runs_types_and_falls_back_to_commands() {
        let s = launcher_script(&launch(), &["/layers/a_b/tools".into()], Some("/workspace"));
        assert!(s.contains("slipway_layer_env '/layers/a_b/tools' launch \"$slipway_process\"\n"));
        assert!(s.contains("  'web')\n"));
        assert!(s.contains(r"exec 'bash' '-c' 'echo '\''hi'\'' $PORT'"));
        assert!(s.contains("  *)\n    exec \"$@\""));
    }

    #[test]
    fn exec_d_output_on_fd_3_reaches_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("exec.d")).unwrap();
        let x = layer.join("exec.d/set");
        std::fs::write(&x, "#!/bin/bash\necho noise\nprintf 'FROM_EXECD = \"yes it ran\"\\n' >&3\n").unwrap();
        std::fs::set_permissions(&x, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let launch = LaunchToml::parse(
            "x",
            v(10),
            "[[processes]]\ntype = \"show\"\ncommand = [\"bash\", \"-c\", \"echo $FROM_EXECD\"]\n",
        )
        .unwrap();
        let s = launcher_script(&launch, &[layer.display().to_string()], Some("/tmp"));
        let out = std::process::Command::new("bash").args(["-c", &s, "launcher", "show"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "yes it ran\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "noise\n");
    }

    #[test]
    fn the_launcher_is_valid_bash() {
        let s = launcher_script(&launch(), &[], Some("/tmp"));
        let status = std::process::Command::new("bash").args(["-n", "-c", &s]).status().unwrap();
        assert!(status.success());
        let out = std::process::Command::new("bash").args(["-c", &s, "launcher", "web"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        let out = std::process::Command::new("bash")
            .args(["-c", &s, "launcher", "echo", "direct"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "direct\n");
    }

    #[test]
    fn per_process_env_applies_to_that_process_type_only() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("env.launch/web")).unwrap();
        std::fs::create_dir_all(layer.join("env.launch/worker")).unwrap();
        std::fs::write(layer.join("env.launch/SHARED"), "all").unwrap();
        std::fs::write(layer.join("env.launch/web/ONLY.override"), "web").unwrap();
        std::fs::write(layer.join("env.launch/worker/ONLY.override"), "worker").unwrap();
        let show = "[[processes]]\ntype = \"web\"\ncommand = [\"bash\", \"-c\", \"echo $SHARED-${ONLY:-none}\"]\n\
                    [[processes]]\ntype = \"worker\"\ncommand = [\"bash\", \"-c\", \"echo $SHARED-${ONLY:-none}\"]\n";
        let launch = LaunchToml::parse("x", v(10), show).unwrap();
        let layers = [layer.display().to_string()];
        let run = |script: &str, args: &[&str], dyno: Option<&str>| {
            let mut cmd = std::process::Command::new("bash");
            cmd.args(["-c", script, "launcher"]).args(args).env_remove("DYNO").env_remove("ONLY");
            if let Some(d) = dyno {
                cmd.env("DYNO", d);
            }
            String::from_utf8_lossy(&cmd.output().unwrap().stdout).trim().to_owned()
        };
        // An image's launcher: by its first argument.
        let image = launcher_script(&launch, &layers, Some("/tmp"));
        assert_eq!(run(&image, &["web"], None), "all-web");
        assert_eq!(run(&image, &["worker"], Some("web.1")), "all-worker", "the argument wins");
        assert_eq!(run(&image, &["bash", "-c", "echo $SHARED-${ONLY:-none}"], None), "all-none");
        // The local launcher: commands as `bash -c`, the type from DYNO.
        let local = launcher_script(&LaunchToml::default(), &layers, None);
        let cmd = ["bash", "-c", "echo $SHARED-${ONLY:-none}"];
        assert_eq!(run(&local, &cmd, Some("worker.2")), "all-worker");
        assert_eq!(run(&local, &cmd, Some("../web.1")), "all-none", "not a process type");
        assert_eq!(run(&local, &cmd, None), "all-none");
    }
}
