//! The docker runtime's workspace and its switch, through the real binary and engine: the
//! workspace is a container from the release image holding the working copy at the deployed
//! commit and the app's mount at `../mount` and `~/mount`; deleting it keeps every file; a
//! deploy killed while it retires the old release leaves the new one serving and nothing else.
//!
//! Skipped, with a printed reason, when there is no Docker engine. Each app has a unique name
//! and is destroyed on drop.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Repo, Slipway, describe, http_get, wait_for};

/// The names of the app's containers (optionally of one kind), sorted.
fn containers(app: &str, kind: Option<&str>) -> Vec<String> {
    let mut args = vec!["ps".to_owned(), "-a".into(), "--filter".into(), format!("label=slipway.app={app}")];
    if let Some(k) = kind {
        args.extend(["--filter".into(), format!("label=slipway.kind={k}")]);
    }
    args.extend(["--format".into(), "{{.Names}}".into()]);
    let out = Command::new("docker").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// The tags of the app's images, sorted.
fn image_tags(app: &str) -> Vec<String> {
    let filter = format!("label=slipway.app={app}");
    let args = ["images", "--filter", &filter, "--format", "{{.Repository}}:{{.Tag}}"];
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn docker_workspace_is_a_container_at_the_deployed_commit_sharing_the_mount() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("dws", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-dockerfile");
    let deployed = repo.git(&["rev-parse", "HEAD"]);
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    repo.write("later.txt", "not deployed");
    repo.commit("not deployed yet");

    sw.ok(&["workspace", "create", &app]);
    assert_eq!(containers(&app, Some("workspace")), [format!("slipway-{app}-workspace")]);
    let again = sw.run(&["workspace", "create", &app]);
    assert!(again.status.success(), "{}", describe(&again));

    let got =
        sw.ok(&["workspace", "run", &app, "--", "realpath ../mount ~/mount; git rev-parse HEAD; id -u"]);
    assert_eq!(got, format!("/mount\n/mount\n{deployed}\n1000\n"), "workspace paths, commit and user");
    assert!(
        sw.ok(&["workspace", "run", &app, "--", "test ! -e later.txt && cat index.html"])
            .contains("hello from the dockerfile fixture")
    );
    // It runs from the release image, not the bare stack: what the build made, and the
    // image's environment, are there.
    assert_eq!(
        sw.ok(&["workspace", "run", &app, "--", "cat /app/build-output.txt; echo \"$APP_MODE\""]),
        "compiled\nfixture\n",
        "the workspace does not run from the release image"
    );

    // Written in the workspace, read by the app; and the other way round.
    sw.ok(&["workspace", "run", &app, "--", "echo from-workspace > ../mount/x"]);
    assert_eq!(sw.ok(&["run", &app, "--", "cat ../mount/x"]), "from-workspace\n");
    sw.ok(&["run", &app, "--", "echo from-app > ~/mount/y"]);
    assert_eq!(sw.ok(&["workspace", "run", &app, "--", "cat ~/mount/y"]), "from-app\n");

    // Exit codes pass through.
    for code in [0, 3, 42] {
        let out = sw.run(&["workspace", "run", &app, "--", &format!("exit {code}")]);
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    }

    // Deleting the workspace removes its container and working copy, never the mount's files.
    sw.ok(&["workspace", "delete", &app]);
    assert!(containers(&app, Some("workspace")).is_empty());
    assert!(!sw.home.path().join("apps").join(&app).join("workspace").exists());
    let mount = sw.mount_dir(&app);
    assert_eq!(std::fs::read_to_string(mount.join("x")).unwrap(), "from-workspace\n");
    assert_eq!(std::fs::read_to_string(mount.join("y")).unwrap(), "from-app\n");
    let missing = sw.run(&["workspace", "run", &app, "--", "true"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no workspace"), "{}", describe(&missing));

    // A container whose working copy is gone (a killed `workspace delete`) is reconciled away.
    sw.ok(&["workspace", "create", &app]);
    std::fs::remove_dir_all(sw.home.path().join("apps").join(&app).join("workspace")).unwrap();
    sw.ok(&["ps", &app]);
    assert!(containers(&app, Some("workspace")).is_empty(), "orphan workspace container kept");

    // A workspace does not stand in the way of `apps destroy` (it holds the mount volume).
    sw.ok(&["workspace", "create", &app]);
    sw.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(containers(&app, None).is_empty(), "{:?}", containers(&app, None));
    let volumes = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("label=slipway.app={app}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&volumes.stdout).trim(), "", "volumes left behind");
}

#[test]
fn a_deploy_killed_while_retiring_the_old_release_leaves_the_new_one_and_no_orphans() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("dsw", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-dockerfile");
    // SIGTERM is ignored (and stays ignored across exec), so only the grace's SIGKILL stops it.
    repo.write("Procfile", "web: trap '' TERM; exec python3 -m http.server $PORT\n");
    repo.write("VERSION", "1\n");
    repo.commit("v1");
    sw.ok(&["deploy", &app, "--repo", repo.path(), "--stop-grace", "5s"]);
    assert_eq!(sw.release(&app), "v1");

    repo.write("VERSION", "2\n");
    repo.commit("v2");
    let deploy = ["deploy", app.as_str(), "--repo", repo.path(), "--stop-grace", "10m"];
    // Give the retire a moment to be under way (v1 ignoring SIGTERM) before the kill.
    sw.kill_at(&deploy, "Retiring v1", Duration::from_secs(180), Duration::from_millis(500));
    assert!(
        containers(&app, None).contains(&format!("slipway-{app}-v1-web-1")),
        "v1 should still be in its stop grace when the deploy is killed"
    );

    // The next command sees v2 as the release, serving.
    assert_eq!(sw.release(&app), "v2");
    let port = sw.web_port(&app);
    let (code, _) = http_get(port).unwrap();
    assert_eq!(code, 200);
    let served = wait_for(Duration::from_secs(10), || {
        http_get(port).ok().filter(|(_, b)| b.contains("hello from the dockerfile fixture"))
    });
    assert!(served.is_some());

    // Reconciliation leaves only v2's containers and image (v1's web may still be in its
    // grace when the first command runs, so poll with commands that reconcile).
    let v2 = (vec![format!("slipway-{app}-v2-web-1")], vec![format!("slipway/{app}:v2")]);
    let clean = wait_for(Duration::from_secs(90), || {
        let now = (containers(&app, None), image_tags(&app));
        (now == v2).then_some(()).or_else(|| {
            sw.ok(&["ps", &app]);
            None
        })
    });
    assert!(clean.is_some(), "left behind: {:?}, want {v2:?}", (containers(&app, None), image_tags(&app)));
    assert_eq!(sw.release(&app), "v2");
    assert_eq!(http_get(sw.web_port(&app)).unwrap().0, 200);
}
