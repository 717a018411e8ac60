//! A process that cannot be started at all (issue 7 §5): the deploy fails at once with the
//! reason and its fix, not after the web timeout with megabytes of log, and a failed release
//! never rotates the running release's logs away.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Repo, Slipway, describe, wait_for};

fn web_pid(s: &Slipway, app: &str) -> u64 {
    let ps = s.ps(app);
    ps["instances"].as_array().unwrap().iter().find(|i| i["ptype"] == "web").unwrap()["pid"].as_u64().unwrap()
}

fn logs_bytes(s: &Slipway, app: &str) -> u64 {
    let dir = s.home.path().join("state").join(app).join("logs");
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum()
}

#[test]
fn a_command_too_long_to_exec_fails_the_deploy_at_once_and_keeps_the_running_release() {
    let s = Slipway::new();
    let app = s.app("e2big");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let before = web_pid(&s, &app);
    repo.write(
        "Procfile",
        &format!("web: python3 app.py # {}\nworker: python3 worker.py\n", "x".repeat(2 << 20)),
    );
    repo.commit("a 2 MB Procfile line");
    let started = Instant::now();
    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--web-timeout", "60s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be started") && err.contains("too long to execute"), "{err:.2000}");
    assert!(took < Duration::from_secs(20), "the deploy waited {took:?} for a process that can never start");
    assert!(err.len() < 64 << 10, "the error is {} bytes long", err.len());
    assert!(logs_bytes(&s, &app) < 1 << 20, "the logs grew to {} bytes", logs_bytes(&s, &app));
    assert_eq!(web_pid(&s, &app), before, "the running release was touched");
    assert_eq!(s.release(&app), "v1");
}

#[test]
fn a_missing_working_directory_is_named_as_the_cause() {
    let s = Slipway::new();
    let app = s.app("enoent");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let app_dir = s.home.path().join("apps").join(&app).join("releases/v1/app");
    std::fs::rename(&app_dir, app_dir.with_file_name("app.gone")).unwrap();
    s.ok(&["ps", "restart", &app]);
    let why = wait_for(Duration::from_secs(5), || {
        let ps = s.ps(&app);
        let web = ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "web")?.clone();
        web["last_exit"].as_str().map(str::to_owned)
    })
    .expect("web never reported why it did not start");
    assert!(
        why.contains(&format!("{} does not exist", app_dir.display())) && why.contains("redeploy"),
        "{why}"
    );
}

#[test]
fn a_permission_denied_spawn_names_the_directory_and_the_permission() {
    if !common::require::root_or_skip("per-app users, who can be denied a directory") {
        return;
    }
    let s = Slipway::new();
    let app = s.app("eacces");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let home = s.home.path();
    let mode =
        |m: u32| std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
    mode(0o700);
    repo.write("VERSION", "2");
    repo.commit("v2");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    mode(0o711);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot enter {}", home.display()))
            && err.contains("mode 0700")
            && err.contains("chmod o+x"),
        "the message does not name the directory and the permission: {err}"
    );
    assert_eq!(s.release(&app), "v1");
}

#[test]
fn a_failing_release_never_rotates_the_running_releases_log_away() {
    let s = Slipway::new();
    let app = s.app("logkeep");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let marker = "the running release's own line";
    let v1_log = s.home.path().join("state").join(&app).join("logs/web.1.v1.log");
    let mut log = std::fs::OpenOptions::new().append(true).open(&v1_log).unwrap();
    std::io::Write::write_all(&mut log, format!("2026-01-01T00:00:00.000Z v1 web.1: {marker}\n").as_bytes())
        .unwrap();
    // A release whose web floods its log (11 MiB, more than one rotation) and never listens.
    repo.write(
        "Procfile",
        "web: yes 0123456789012345678901234567890123456789 | head -c 12000000; sleep 1000\n",
    );
    repo.commit("a web that floods its log");
    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--web-timeout", "8s"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        std::fs::read_to_string(&v1_log).unwrap().contains(marker),
        "the running release's log was rotated away"
    );
    let shown = s.ok(&["logs", &app, "web", "-n", "100000"]);
    assert!(shown.contains(marker), "`slipway logs` lost the running release's lines");
}
