//! Builds never read the host, and an app's config never ends up in an image (issue 11 §1).
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{Repo, Slipway, describe};

fn token() -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    format!("tok{}", &uuid.trim().replace('-', "")[..12])
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_buildpack_symlink_leading_out_of_its_tree_is_refused_and_one_inside_is_kept() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    // A root-only host directory holding a secret.
    let secret = tempfile::tempdir().unwrap();
    let token = token();
    std::fs::write(secret.path().join("secret.txt"), &token).unwrap();
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o700)).unwrap();

    let repo = Repo::from_fixture("docker-buildpack-extra");
    let lib = repo.dir.path().join("buildpacks/marker/lib");
    std::os::unix::fs::symlink(secret.path(), &lib).unwrap();
    // The build script serves whatever lib holds, as the attack did.
    repo.write(
        "buildpacks/marker/bin/build",
        "#!/usr/bin/env bash\nset -euo pipefail\n\
         cat \"$CNB_BUILDPACK_DIR\"/lib/* > marker.txt 2>/dev/null || true\n\
         if [ -L \"$CNB_BUILDPACK_DIR/lib\" ]; then readlink \"$CNB_BUILDPACK_DIR/lib\" > link.txt; fi\n",
    );
    repo.commit("lib leads out");
    let app = sw.app_with("dbl", &["--runtime", "docker"]);
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr.contains("`lib` is a symlink to") && stderr.contains("outside the buildpack"), "{stderr}");
    assert!(!stderr.contains(&token), "{stderr}");

    // A link inside the buildpack is kept as a link.
    std::fs::remove_file(&lib).unwrap();
    std::os::unix::fs::symlink("bin", &lib).unwrap();
    repo.commit("lib stays inside");
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(sw.ok(&["run", &app, "--", "cat link.txt"]), "bin\n");
}

#[test]
fn config_is_given_at_run_time_and_never_committed_into_the_release_image() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-dockerfile");
    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    repo.commit("predeploy");
    let app = sw.app_with("dcf", &["--runtime", "docker"]);
    let token = token();
    sw.ok(&["config", "set", &app, &format!("SECRET={token}"), "--no-restart"]);
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    let tag = format!("slipway/{app}:v1");
    let env = docker(&["image", "inspect", "--format", "{{json .Config.Env}}", &tag]);
    assert!(
        !env.contains(&token) && !env.contains("SECRET"),
        "the release image's Env holds the config: {env}"
    );
    assert!(env.contains("APP_MODE=fixture"), "the image keeps its own Env: {env}");
    assert_eq!(sw.ok(&["run", &app, "--", "echo \"[$SECRET]\""]), format!("[{token}]\n"));

    sw.ok(&["config", "unset", &app, "SECRET"]);
    assert_eq!(sw.ok(&["run", &app, "--", "echo \"[${SECRET-unset}]\""]), "[unset]\n");
    let web = format!("slipway-{app}-v1-web-1");
    let web_env = docker(&["inspect", "--format", "{{json .Config.Env}}", &web]);
    assert!(!web_env.contains(&token), "web still sees the config: {web_env}");
}
