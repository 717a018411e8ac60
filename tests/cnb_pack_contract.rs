//! slipway's own buildpack as `pack build` would run it: `slipway buildpack package` writes it
//! out, then, in a container of the stack image, `bin/detect` and `bin/build` run with the argv
//! and environment the reference lifecycle gives a Buildpack API 0.10 and a 0.12 buildpack
//! (written out here by hand from lifecycle's `buildpack/detect.go` and `buildpack/build.go`,
//! not taken from slipway's code), as uid 1000. The exported process types then run as the CNB
//! launcher runs them (exec.d executables first, their fd-3 TOML exported; the app directory
//! as working directory) with a Docker volume at /mount and a HOME that has no `mount` link.
//!
//! `pack` itself cannot be installed here (no registry or builder image is reachable); this is
//! what is checked instead. Skipped, with a printed reason, without a Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{Slipway, describe, fixture};

const BP_ROOT: &str = "/cnb/buildpacks/slipway_procfile";

/// A container and a volume of this test, removed on drop.
struct Box {
    name: String,
    volume: String,
}

impl Drop for Box {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.volume]).output();
    }
}

impl Box {
    fn exec(&self, user: &str, workdir: &str, env: &[String], argv: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-u", user, "-w", workdir]);
        for e in env {
            cmd.args(["-e", e]);
        }
        cmd.arg(&self.name).args(argv);
        cmd.output().unwrap()
    }

    fn root(&self, script: &str) -> String {
        let out = self.exec("0:0", "/", &[], &["bash", "-c", script]);
        assert!(out.status.success(), "{script}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The reference lifecycle's environment for a phase of a buildpack declaring `api`.
fn lifecycle_env(api: &str, bp_dir: &str, paths: &[(&str, String)]) -> Vec<String> {
    let mut env = vec![format!("CNB_BUILDPACK_DIR={bp_dir}")];
    // Buildpack API 0.8+: the CNB_*_DIR/PATH variables; 0.10+: CNB_TARGET_*; 0.12+: CNB_EXEC_ENV.
    env.extend(paths.iter().map(|(k, v)| format!("{k}={v}")));
    env.extend(
        [
            "CNB_TARGET_OS=linux",
            "CNB_TARGET_ARCH=amd64",
            "CNB_TARGET_DISTRO_NAME=debian",
            "CNB_TARGET_DISTRO_VERSION=12",
        ]
        .map(String::from),
    );
    if api == "0.12" {
        env.push("CNB_EXEC_ENV=production".into());
    }
    env
}

/// Runs process `kind` of `launch` as the CNB launcher would: exec.d of every launch layer
/// first (its fd-3 `KEY = "value"` lines exported), then the command from its working dir.
fn launch(b: &Box, layers: &str, launch: &toml::Table, kind: &str, extra_env: &[&str]) -> Output {
    let process = launch["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no process type {kind} in {launch}"));
    let command: Vec<&str> =
        process["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let launcher = format!(
        r#"set -e
for x in {layers}/*/*/exec.d/*; do
  [[ -x "$x" ]] || continue
  while IFS= read -r line; do
    if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)\ =\ \"(.*)\"$ ]]; then export "${{BASH_REMATCH[1]}}=${{BASH_REMATCH[2]}}"; fi
  done < <("$x" 3>&1 1>&2)
done
exec "$@""#
    );
    let mut argv = vec!["bash", "-c", &launcher, "launcher"];
    argv.extend(command);
    let mut env = vec!["HOME=/tmp/home".to_owned(), "CNB_APP_DIR=/workspace".to_owned()];
    env.extend(extra_env.iter().map(|e| (*e).to_owned()));
    b.exec("1000:1000", "/workspace", &env, &argv)
}

#[test]
fn the_packaged_buildpack_keeps_the_mount_and_predeploy_contract_under_the_reference_lifecycle() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("pkg");
    let listed = sw.ok(&["buildpack", "package", pkg.to_str().unwrap()]);
    assert!(listed.lines().any(|l| l.starts_with("slipway/procfile\t")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("slipway/python\t")), "{listed}");
    let bp_host = pkg.join("slipway_procfile");
    // The same buildpack declaring 0.12, to run it as the lifecycle runs a 0.12 buildpack.
    let bp12 = tmp.path().join("bp12");
    common::copy_dir(&bp_host, &bp12);
    let toml = std::fs::read_to_string(bp12.join("buildpack.toml")).unwrap();
    std::fs::write(bp12.join("buildpack.toml"), toml.replace("api = \"0.10\"", "api = \"0.12\"")).unwrap();

    let id = common::app_name("cnbpack");
    let b = Box { name: format!("slipway-test-{id}"), volume: format!("slipway-test-{id}-mount") };
    let app_src = fixture("pack-contract");
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &b.name, "--entrypoint", "sleep"])
        .args(["-v", &format!("{}:/mount", b.volume)])
        .args(["-v", &format!("{}:{BP_ROOT}/0.1.0:ro", bp_host.display())])
        .args(["-v", &format!("{}:{BP_ROOT}/0.1.0-api12:ro", bp12.display())])
        .args(["-v", &format!("{}:/src:ro", app_src.display())])
        .args([common::STACK, "infinity"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    b.root(
        "cp -a /src/. /workspace/ && mkdir -p /layers10/slipway_procfile /layers12/slipway_procfile /platform/env /tmp/home \
         && chown -R 1000:1000 /workspace /layers10 /layers12 /platform /tmp/home /mount",
    );

    for (api, version, layers) in [("0.10", "0.1.0", "/layers10"), ("0.12", "0.1.0-api12", "/layers12")] {
        let bp_dir = format!("{BP_ROOT}/{version}");
        // detect: `bin/detect PLATFORM_DIR PLAN_PATH`, run from the app directory.
        let plan = format!("{layers}/plan.toml");
        let env = lifecycle_env(
            api,
            &bp_dir,
            &[("CNB_PLATFORM_DIR", "/platform".into()), ("CNB_BUILD_PLAN_PATH", plan.clone())],
        );
        let out =
            b.exec("1000:1000", "/workspace", &env, &[&format!("{bp_dir}/bin/detect"), "/platform", &plan]);
        assert!(out.status.success(), "detect ({api}): {}", describe(&out));
        let written = b.root(&format!("cat {plan}"));
        assert!(written.contains("[[provides]]\nname = \"procfile\""), "{written}");

        // build: `bin/build LAYERS_DIR PLATFORM_DIR PLAN_PATH`, the plan holding what it provides.
        let bp_plan = format!("{layers}/bp-plan.toml");
        b.root(&format!("printf '[[entries]]\\nname = \"procfile\"\\n' > {bp_plan} && chown 1000 {bp_plan}"));
        let bp_layers = format!("{layers}/slipway_procfile");
        let env = lifecycle_env(
            api,
            &bp_dir,
            &[
                ("CNB_LAYERS_DIR", bp_layers.clone()),
                ("CNB_PLATFORM_DIR", "/platform".into()),
                ("CNB_BP_PLAN_PATH", bp_plan.clone()),
            ],
        );
        let out = b.exec(
            "1000:1000",
            "/workspace",
            &env,
            &[&format!("{bp_dir}/bin/build"), &bp_layers, "/platform", &bp_plan],
        );
        assert!(out.status.success(), "build ({api}): {}", describe(&out));

        let launch_toml: toml::Table = b.root(&format!("cat {bp_layers}/launch.toml")).parse().unwrap();
        let types: Vec<&str> = launch_toml["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["web", "check", "release", "predeploy"], "({api})");
        let layer_toml: toml::Table = b.root(&format!("cat {bp_layers}/mount.toml")).parse().unwrap();
        assert_eq!(layer_toml["types"]["launch"].as_bool(), Some(true), "({api})");

        // predeploy fills the mount through ../mount; release writes there too.
        b.root("rm -f /mount/seed.txt /mount/release.txt /tmp/home/mount");
        let out = launch(&b, layers, &launch_toml, "predeploy", &[]);
        assert!(out.status.success(), "predeploy ({api}): {}", describe(&out));
        let out = launch(&b, layers, &launch_toml, "release", &[]);
        assert!(out.status.success(), "release ({api}): {}", describe(&out));
        assert_eq!(b.root("cat /mount/seed.txt /mount/release.txt"), "seeded\nreleased\n", "({api})");
        // Every process sees the volume at both ~/mount and ../mount.
        let out = launch(&b, layers, &launch_toml, "check", &[]);
        assert!(out.status.success(), "check ({api}): {}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "home:seeded parent:seeded mount:/mount\n",
            "({api})"
        );
        assert_eq!(b.root("readlink /tmp/home/mount"), "/mount\n");
    }

    // SLIPWAY_MOUNT moves the mount: ~/mount follows it.
    b.root("mkdir -p /data && echo elsewhere > /data/seed.txt && rm -f /tmp/home/mount");
    let launch_toml: toml::Table = b.root("cat /layers10/slipway_procfile/launch.toml").parse().unwrap();
    let out = launch(&b, "/layers10", &launch_toml, "check", &["SLIPWAY_MOUNT=/data"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "home:elsewhere parent:seeded mount:/data\n");
}
