//! The health gate and the Procfile's release phase on the docker runtime, through the real
//! binary and engine: a release phase runs once with the mount and is not a process; a failing
//! one, or a process that crashes in the settle period, leaves the old release serving.
//!
//! Skipped, with a printed reason, when there is no Docker engine. Each app has a unique name
//! and is destroyed on drop.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, http_get};

#[test]
fn docker_release_phase_runs_once_and_a_crash_or_failure_is_never_switched_in() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("dgate", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-dockerfile");
    repo.write(
        "Procfile",
        "web: exec python3 -m http.server $PORT\nrelease: echo \"release ran in $PWD\" >> ../mount/release.log\n",
    );
    repo.commit("a release phase");
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    let log = || std::fs::read_to_string(sw.mount_dir(&app).join("release.log")).unwrap_or_default();
    assert_eq!(log(), "release ran in /app\n");
    let ps = sw.ps(&app);
    let types: Vec<_> = ps["instances"].as_array().unwrap().iter().map(|i| i["ptype"].clone()).collect();
    assert_eq!(types, ["web"], "release is not a process: {ps}");
    let port = sw.web_port(&app);

    let serves_v1 = |what: &str| {
        assert_eq!(sw.release(&app), "v1", "{what}: the current release changed");
        assert_eq!(http_get(port).unwrap().0, 200, "{what}: v1 stopped serving");
    };
    repo.write(
        "Procfile",
        "web: exec python3 -m http.server $PORT\nworker: sleep 0.3; echo 'worker: gone' >&2; exit 1\n",
    );
    repo.commit("a worker that dies after starting");
    let out = sw.run(&["deploy", &app, "--repo", repo.path(), "--stop-grace", "2s"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("after the release became healthy") || stderr.contains("crashed"), "{stderr}");
    serves_v1("a crash in the settle period");

    repo.write(
        "Procfile",
        "web: exec python3 -m http.server $PORT\nrelease: echo 'migration failed' >&2; exit 7\n",
    );
    repo.commit("a failing release phase");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed during release") && stderr.contains("migration failed"), "{stderr}");
    assert_eq!(log().lines().count(), 1, "the release phase ran again");
    serves_v1("a failing release phase");
}
