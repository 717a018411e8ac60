//! The environment of each phase: the `CNB_*` variables, and the layer environment
//! (`bin/`, `lib/`, `env/`, `env.build/`, `env.launch/`) as a bash function.

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

    /// Detect's environment (Buildpack API 0.10 "Detection").
    pub fn detect_env(&self, escaped_id: &str, plan_path: &str, target: &BuildTarget) -> Vec<String> {
        let mut env = vec![
            format!("CNB_BUILDPACK_DIR={}", self.buildpack_dir(escaped_id)),
            format!("CNB_PLATFORM_DIR={}", self.platform),
            format!("CNB_BUILD_PLAN_PATH={plan_path}"),
        ];
        env.extend(target_env(target));
        env
    }

    /// Build's environment (Buildpack API 0.10 "Build").
    pub fn build_env(&self, escaped_id: &str, bp_plan_path: &str, target: &BuildTarget) -> Vec<String> {
        let mut env = vec![
            format!("CNB_BUILDPACK_DIR={}", self.buildpack_dir(escaped_id)),
            format!("CNB_LAYERS_DIR={}", self.layers_dir(escaped_id)),
            format!("CNB_PLATFORM_DIR={}", self.platform),
            format!("CNB_BP_PLAN_PATH={bp_plan_path}"),
        ];
        env.extend(target_env(target));
        env
    }
}

fn target_env(t: &BuildTarget) -> Vec<String> {
    vec![
        format!("CNB_TARGET_OS={}", t.os),
        format!("CNB_TARGET_ARCH={}", t.arch),
        format!("CNB_TARGET_DISTRO_NAME={}", t.distro_name),
        format!("CNB_TARGET_DISTRO_VERSION={}", t.distro_version),
    ]
}

/// `slipway_layer_env <layer dir> <build|launch>`: applies one layer's environment, per
/// Buildpack API 0.10 "Environment": `bin/` on `PATH`, `lib/` on `LD_LIBRARY_PATH`, and the
/// `env/` and `env.<phase>/` files, where a bare name or `.override` sets, `.default` sets if
/// unset, and `.append`/`.prepend` join with the `.delim` file's text (none if absent).
pub const LAYER_ENV_SH: &str = r#"slipway_layer_env() {
  local layer=$1 phase=$2 dir f name var op delim value
  [[ -d "$layer/bin" ]] && export PATH="$layer/bin${PATH:+:$PATH}"
  [[ -d "$layer/lib" ]] && export LD_LIBRARY_PATH="$layer/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for dir in "$layer/env" "$layer/env.$phase"; do
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
    fn build_env_names_every_cnb_variable() {
        let env = BuildDirs::default().build_env(
            "slipway_procfile",
            "/tmp/plan.toml",
            &BuildTarget::host_debian12(),
        );
        for want in [
            "CNB_BUILDPACK_DIR=/cnb/buildpacks/slipway_procfile",
            "CNB_LAYERS_DIR=/layers/slipway_procfile",
            "CNB_PLATFORM_DIR=/platform",
            "CNB_BP_PLAN_PATH=/tmp/plan.toml",
            "CNB_TARGET_OS=linux",
            "CNB_TARGET_DISTRO_NAME=debian",
        ] {
            assert!(env.iter().any(|e| e == want), "missing {want}");
        }
        let detect = BuildDirs::default().detect_env("x", "/tmp/p", &BuildTarget::host_debian12());
        assert!(detect.contains(&"CNB_BUILD_PLAN_PATH=/tmp/p".to_owned()));
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
        let script = format!(
            "{LAYER_ENV_SH}KEEP=old LIST=a; slipway_layer_env {} launch; echo \"$GREETING $KEEP $LIST ${{PATH%%:*}}\"",
            l.display()
        );
        let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("hello old a:b {}/bin", l.display()));
    }
}
