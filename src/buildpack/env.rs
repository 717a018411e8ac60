//! The environment of each phase: the `CNB_*` variables, and the layer environment
//! (`bin/`, `lib/`, `env/`, `env.build/`, `env.launch/`) as a bash function.

use super::api::ApiVersion;

/// Where things are inside a build container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDirs {
    /// The app source, and the working directory of every phase.
    pub app: String,
    /// Parent of every buildpack's layers directory.
    pub layers: String,
    /// The platform directory (`env/` holds the app's config vars).
    pub platform: String,
    /// Parent of the installed buildpacks.
    pub buildpacks: String,
}

impl Default for BuildDirs {
    fn default() -> Self {
        Self {
            app: "/workspace".into(),
            layers: "/layers".into(),
            platform: "/platform".into(),
            buildpacks: "/cnb/buildpacks".into(),
        }
    }
}

/// The target a build runs on (`CNB_TARGET_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub arch: String,
    /// e.g. `debian`.
    pub distro_name: String,
    /// e.g. `12`.
    pub distro_version: String,
}

impl BuildTarget {
    /// The target of this machine running the Debian 12 stack.
    pub fn host_debian12() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Self {
            os: "linux".into(),
            arch: arch.into(),
            distro_name: "debian".into(),
            distro_version: "12".into(),
        }
    }
}

impl BuildDirs {
    /// Where buildpack `escaped_id` is installed.
    pub fn buildpack_dir(&self, escaped_id: &str) -> String {
        format!("{}/{escaped_id}", self.buildpacks)
    }
    /// The layers directory of buildpack `escaped_id`.
    pub fn layers_dir(&self, escaped_id: &str) -> String {
        format!("{}/{escaped_id}", self.layers)
    }

    /// Detect's argv and environment, as the reference lifecycle runs it: `bin/detect
    /// PLATFORM_DIR PLAN_PATH` for every API version, plus the `CNB_*` variables that
    /// buildpack's declared `api` has.
    pub fn detect_command(
        &self,
        bp: &PhaseBuildpack<'_>,
        plan_path: &str,
        target: &BuildTarget,
    ) -> PhaseCommand {
        let dir = self.buildpack_dir(bp.escaped_id);
        let argv = vec![format!("{dir}/bin/detect"), self.platform.clone(), plan_path.to_owned()];
        let mut env = vec![format!("CNB_BUILDPACK_DIR={dir}"), PLATFORM_MARKER.to_owned()];
        if bp.api.has_path_env() {
            env.push(format!("CNB_PLATFORM_DIR={}", self.platform));
            env.push(format!("CNB_BUILD_PLAN_PATH={plan_path}"));
        }
        if bp.api.has_target_env() {
            env.extend(target_env(target));
        }
        PhaseCommand { argv, env }
    }

    /// Build's argv and environment: `bin/build LAYERS_DIR PLATFORM_DIR PLAN_PATH`, plus the
    /// `CNB_*` variables of the buildpack's declared `api`.
    pub fn build_command(
        &self,
        bp: &PhaseBuildpack<'_>,
        bp_plan_path: &str,
        target: &BuildTarget,
    ) -> PhaseCommand {
        let dir = self.buildpack_dir(bp.escaped_id);
        let layers = self.layers_dir(bp.escaped_id);
        let argv =
            vec![format!("{dir}/bin/build"), layers.clone(), self.platform.clone(), bp_plan_path.to_owned()];
        let mut env = vec![format!("CNB_BUILDPACK_DIR={dir}"), PLATFORM_MARKER.to_owned()];
        if bp.api.has_path_env() {
            env.push(format!("CNB_LAYERS_DIR={layers}"));
            env.push(format!("CNB_PLATFORM_DIR={}", self.platform));
            env.push(format!("CNB_BP_PLAN_PATH={bp_plan_path}"));
        }
        if bp.api.has_target_env() {
            env.extend(target_env(target));
        }
        PhaseCommand { argv, env }
    }
}

/// Set in every phase slipway runs, so slipway's own buildpack knows that slipway (not `pack`)
/// runs predeploy and links the mount, and leaves those to it.
pub const PLATFORM_MARKER: &str = "SLIPWAY_LIFECYCLE=1";

/// Which buildpack a phase runs.
#[derive(Debug, Clone, Copy)]
pub struct PhaseBuildpack<'a> {
    /// Its id with `/` escaped, its directory name.
    pub escaped_id: &'a str,
    /// Its declared Buildpack API.
    pub api: ApiVersion,
}

/// A phase to run: argv (the executable first) and `NAME=value` environment additions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseCommand {
    /// The executable and its positional arguments.
    pub argv: Vec<String>,
    /// `NAME=value` pairs added to the phase's environment.
    pub env: Vec<String>,
}

fn target_env(t: &BuildTarget) -> Vec<String> {
    vec![
        format!("CNB_TARGET_OS={}", t.os),
        format!("CNB_TARGET_ARCH={}", t.arch),
        format!("CNB_TARGET_DISTRO_NAME={}", t.distro_name),
        format!("CNB_TARGET_DISTRO_VERSION={}", t.distro_version),
    ]
}

/// `slipway_layer_env <layer dir> <build|launch> [process type]`: applies one layer's
/// environment, per Buildpack API 0.10 "Environment": `bin/` on `PATH`, `lib/` on
/// `LD_LIBRARY_PATH`, and the `env/`, `env.<phase>/` and (at launch) `env.launch/<process>/`
/// files, where a bare name or `.override` sets, `.default` sets if unset, and
/// `.append`/`.prepend` join with the `.delim` file's text (none if absent). The same rules as
/// [`super::layer_env`], for scripts that run inside a build container or an image.
pub const LAYER_ENV_SH: &str = r#"slipway_layer_env() {
  local layer=$1 phase=$2 process=${3:-} dir f name var op delim value
  [[ -d "$layer/bin" ]] && export PATH="$layer/bin${PATH:+:$PATH}"
  [[ -d "$layer/lib" ]] && export LD_LIBRARY_PATH="$layer/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for dir in "$layer/env" "$layer/env.$phase" ${process:+"$layer/env.$phase/$process"}; do
    [[ -d "$dir" ]] || continue
    for f in "$dir"/*; do
      [[ -f "$f" ]] || continue
      name=${f##*/}
      case "$name" in
        *.delim) continue ;;
        *.override) var=${name%.override}; op=override ;;
        *.default) var=${name%.default}; op=default ;;
        *.append) var=${name%.append}; op=append ;;
        *.prepend) var=${name%.prepend}; op=prepend ;;
        *) var=$name; op=override ;;
      esac
      value=$(<"$f")
      delim=""
      [[ -f "$dir/$var.delim" ]] && delim=$(<"$dir/$var.delim")
      case "$op" in
        override) export "$var=$value" ;;
        default) [[ -n "${!var+x}" ]] || export "$var=$value" ;;
        append) export "$var=${!var:+${!var}$delim}$value" ;;
        prepend) export "$var=$value${!var:+$delim${!var}}" ;;
      esac
    done
  done
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_gets_positional_arguments_and_the_variables_of_its_api() {
        let dirs = BuildDirs::default();
        let target = BuildTarget::host_debian12();
        let bp = PhaseBuildpack { escaped_id: "slipway_procfile", api: ApiVersion::new(10).unwrap() };
        let cmd = dirs.build_command(&bp, "/tmp/plan.toml", &target);
        assert_eq!(
            cmd.argv,
            [
                "/cnb/buildpacks/slipway_procfile/bin/build",
                "/layers/slipway_procfile",
                "/platform",
                "/tmp/plan.toml"
            ]
        );
        for want in [
            "CNB_BUILDPACK_DIR=/cnb/buildpacks/slipway_procfile",
            "CNB_LAYERS_DIR=/layers/slipway_procfile",
            "CNB_PLATFORM_DIR=/platform",
            "CNB_BP_PLAN_PATH=/tmp/plan.toml",
            "CNB_TARGET_OS=linux",
            "CNB_TARGET_DISTRO_NAME=debian",
            "CNB_TARGET_DISTRO_VERSION=12",
        ] {
            assert!(cmd.env.iter().any(|e| e == want), "missing {want}");
        }
        let detect = dirs.detect_command(&bp, "/tmp/p", &target);
        assert_eq!(detect.argv, ["/cnb/buildpacks/slipway_procfile/bin/detect", "/platform", "/tmp/p"]);
        assert!(detect.env.contains(&"CNB_BUILD_PLAN_PATH=/tmp/p".to_owned()));
    }

    #[test]
    fn older_apis_get_only_what_the_lifecycle_gives_them() {
        let dirs = BuildDirs::default();
        let target = BuildTarget::host_debian12();
        let v7 = PhaseBuildpack { escaped_id: "old", api: ApiVersion::new(7).unwrap() };
        let cmd = dirs.build_command(&v7, "/p", &target);
        assert_eq!(cmd.argv.len(), 4);
        assert!(cmd.env.iter().all(|e| !e.starts_with("CNB_LAYERS_DIR") && !e.starts_with("CNB_TARGET_")));
        assert!(cmd.env.contains(&"CNB_BUILDPACK_DIR=/cnb/buildpacks/old".to_owned()));
        let v9 = PhaseBuildpack { escaped_id: "mid", api: ApiVersion::new(9).unwrap() };
        let cmd = dirs.detect_command(&v9, "/p", &target);
        assert!(cmd.env.contains(&"CNB_PLATFORM_DIR=/platform".to_owned()));
        assert!(cmd.env.iter().all(|e| !e.starts_with("CNB_TARGET_")));
    }

    #[test]
    fn layer_env_files_follow_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path();
        std::fs::create_dir_all(l.join("bin")).unwrap();
        std::fs::create_dir_all(l.join("env.launch")).unwrap();
        std::fs::create_dir_all(l.join("env")).unwrap();
        std::fs::write(l.join("env/GREETING"), "hello").unwrap();
        std::fs::write(l.join("env/KEEP.default"), "new").unwrap();
        std::fs::write(l.join("env.launch/LIST.append"), "b").unwrap();
        std::fs::write(l.join("env.launch/LIST.delim"), ":").unwrap();
        std::fs::create_dir_all(l.join("env.launch/web")).unwrap();
        std::fs::write(l.join("env.launch/web/ONLY_WEB.override"), "yes").unwrap();
        let script = format!(
            "{LAYER_ENV_SH}KEEP=old LIST=a; slipway_layer_env {} launch web; echo \"$GREETING $KEEP $LIST ${{PATH%%:*}} $ONLY_WEB\"",
            l.display()
        );
        let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("hello old a:b {}/bin yes", l.display())
        );
    }
}
