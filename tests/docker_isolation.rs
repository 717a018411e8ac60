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

/// The lines of `/proc/self/status` and the cgroup limits a one-off of `app` sees.
fn confinement(sw: &Slipway, app: &str) -> String {
    sw.ok(&[
        "run",
        app,
        "--",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; \
         echo pids $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); \
         echo memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)",
    ])
}

#[test]
fn app_containers_are_confined_and_isolated_from_other_apps_unless_relaxed_per_app() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    // apps create says what is true of a docker app's processes.
    let app = common::app_name("dhd");
    let out = sw.run(&["apps", "create", &app, "--runtime", "docker"]);
    sw.track(&app);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(said.contains("uid 1000, not a host account"), "{said}");
    assert!(!said.contains("run as system user"), "{said}");
    sw.ok(&["mount", "enable", &app, "--size", "256M"]);
    let other = sw.app_with("dho", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-dockerfile");
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    sw.ok(&["deploy", &other, "--repo", repo.path()]);

    let seen = confinement(&sw, &app);
    assert!(seen.contains("CapEff:\t0000000000000000"), "{seen}");
    assert!(seen.contains("CapBnd:\t0000000000000000"), "{seen}");
    assert!(seen.contains("NoNewPrivs:\t1"), "{seen}");
    assert!(seen.contains("pids 512\n"), "{seen}");
    assert!(seen.contains("memory 536870912\n"), "{seen}");
    let web = format!("slipway-{app}-v1-web-1");
    let host = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.PidsLimit}} {{.HostConfig.NetworkMode}}",
        &web,
    ]);
    assert_eq!(host.trim(), format!("[\"ALL\"] [\"no-new-privileges:true\"] 512 slipway-{app}"));

    // No path from this app's containers to the other app's web container.
    let other_web = format!("slipway-{other}-v1-web-1");
    let ip = docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &other_web,
    ]);
    let probe = format!(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/{}/5000' 2>/dev/null && echo reached || echo unreachable",
        ip.trim()
    );
    assert_eq!(
        sw.ok(&["run", &other, "--", &probe]),
        "reached\n",
        "the probe works: an app reaches its own web"
    );
    assert_eq!(sw.ok(&["run", &app, "--", &probe]), "unreachable\n", "{app} reached {other}'s web at {ip}");

    // Each point relaxes on its own, per app.
    sw.ok(&[
        "apps",
        "set",
        &app,
        "--pids",
        "100",
        "--memory",
        "256M",
        "--allow-setuid",
        "true",
        "--cap-add",
        "NET_BIND_SERVICE",
    ]);
    let relaxed = confinement(&sw, &app);
    assert!(relaxed.contains("NoNewPrivs:\t0"), "{relaxed}");
    assert!(relaxed.contains("CapBnd:\t0000000000000400"), "{relaxed}");
    assert!(relaxed.contains("pids 100\n") && relaxed.contains("memory 268435456\n"), "{relaxed}");
    assert!(confinement(&sw, &other).contains("NoNewPrivs:\t1"), "the other app stays confined");
    let bad = sw.run(&["apps", "set", &app, "--cap-add", "not a cap"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown capability"),
        "{}",
        describe(&bad)
    );
}
