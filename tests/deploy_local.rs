//! The local runtime end to end: real git repositories, the real binary, real processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Repo, Slipway, describe, http_get, wait_for};

fn data_lines(body: &str) -> usize {
    body.lines().filter(|l| l.contains(',')).count()
}

#[test]
fn demo_serves_what_the_worker_appends_and_both_mount_paths_agree() {
    let s = Slipway::new();
    let app = s.app("demo");
    let repo = Repo::from_fixture("seed-demo");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for phase in
        ["Building v1", "Attaching the persistent filesystem", "Running predeploy", "Starting processes"]
    {
        assert!(stderr.contains(phase), "no {phase:?} line in:\n{stderr}");
    }
    assert!(stderr.contains("predeploy: preparing ../mount"), "predeploy output not streamed:\n{stderr}");
    assert!(s.mount_dir(&app).join("last-predeploy.txt").is_file(), "predeploy did not write into ../mount");

    // The worker appends a line every 2 s; the web process reads the file on every request.
    let port = s.web_port(&app);
    let first = data_lines(&http_get(port).unwrap().1);
    let grown = wait_for(Duration::from_secs(10), || {
        let n = data_lines(&http_get(port).ok()?.1);
        (n > first).then_some(n)
    });
    assert!(grown.is_some(), "web never showed a new worker line (had {first})");

    let paths = s.ok(&["run", &app, "--", "readlink -f ../mount; readlink -f ~/mount; pwd -P"]);
    let lines: Vec<&str> = paths.lines().collect();
    assert_eq!(lines[0], lines[1], "../mount and ~/mount differ");
    let real_mount = std::fs::canonicalize(s.mount_dir(&app)).unwrap();
    assert_eq!(lines[0], real_mount.to_str().unwrap());
    assert!(lines[2].ends_with("/releases/v1/app"), "cwd is {}", lines[2]);

    // The same in the supervised processes themselves.
    s.ok(&["run", &app, "--", "true"]);
    let ps = s.ps(&app);
    for inst in ps["instances"].as_array().unwrap() {
        let pid = inst["pid"].as_u64().unwrap();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        let mount = std::fs::canonicalize(cwd.join("../mount")).unwrap();
        assert_eq!(mount, real_mount, "{} sees another ../mount", inst["name"]);
    }
    let logs = s.ok(&["logs", &app, "worker", "-n", "5"]);
    assert!(logs.contains("v1 worker.1: appended a line"), "{logs}");
}

#[test]
fn data_in_the_mount_survives_three_redeploys_and_old_releases_are_retired() {
    let s = Slipway::new();
    let app = s.app("persist");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["run", &app, "--", "echo precious > ../mount/keep.txt; echo scratch > scratch.txt"]);
    for n in 2..=4 {
        repo.write("VERSION", &format!("{n}\n"));
        let sha = repo.commit(&format!("v{n}"));
        s.ok(&["deploy", &app, "--repo", repo.path()]);
        assert_eq!(s.release(&app), format!("v{n}"));
        let version =
            s.ok(&["run", &app, "--", "cat VERSION; cat ../mount/keep.txt; ls scratch.txt 2>&1 || true"]);
        assert!(version.starts_with(&format!("{n}\nprecious\n")), "release v{n} sees: {version}");
        assert!(version.contains("No such file"), "app folder changes leaked into a new release: {version}");
        let releases: serde_json::Value = serde_json::from_str(&s.ok(&["releases", &app, "--json"])).unwrap();
        assert_eq!(releases[0]["commit"], sha.as_str());
    }
    let dirs: Vec<_> = std::fs::read_dir(s.home.path().join("apps").join(&app).join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs, ["v4"], "old release folders were not discarded");
    let releases: serde_json::Value = serde_json::from_str(&s.ok(&["releases", &app, "--json"])).unwrap();
    let statuses: Vec<&str> =
        releases.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["current", "retired", "retired", "retired"]);
    assert!(releases[0]["phases"].as_array().unwrap().len() >= 4);
}

#[test]
fn only_committed_files_deploy() {
    let s = Slipway::new();
    let app = s.app("commit");
    let repo = Repo::from_fixture("seed-demo");
    repo.write("untracked.txt", "not committed");
    std::fs::write(repo.dir.path().join("app.py"), "raise SystemExit('uncommitted edit deployed')").unwrap();
    let first = repo.git(&["rev-parse", "HEAD"]);
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let ls = s.ok(&["run", &app, "--", "ls"]);
    assert!(!ls.contains("untracked.txt"), "{ls}");
    let deployed = s.ok(&["run", &app, "--", "cat app.py"]);
    let committed = repo.git(&["show", "HEAD:app.py"]);
    assert_eq!(deployed.trim_end(), committed, "app.py is not the committed one");
    let releases: serde_json::Value = serde_json::from_str(&s.ok(&["releases", &app, "--json"])).unwrap();
    assert_eq!(releases[0]["commit"], first.as_str());
}

fn assert_old_release_still_serves(s: &Slipway, app: &str, port: u16, release: &str) {
    assert_eq!(s.release(app), release, "the current release changed");
    let (code, _) = http_get(port).expect("old web stopped answering");
    assert_eq!(code, 200);
    let dirs: Vec<_> = std::fs::read_dir(s.home.path().join("apps").join(app).join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs, [release], "the failed release was not discarded");
}

#[test]
fn failing_missing_and_hanging_predeploy_leave_the_old_release_serving() {
    let s = Slipway::new();
    let app = s.app("predeploy");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    std::fs::write(s.mount_dir(&app).join("keep.txt"), "mine").unwrap();
    let port = s.web_port(&app);
    let cases = [
        ("bad-predeploy-fails", "exited with status 3", "the data source is unreachable"),
        ("bad-predeploy-missing", "scripts/missing.sh not found", "project.toml"),
        ("bad-predeploy-hangs", "did not finish within 2s", "waiting forever"),
    ];
    for (fixture, error, detail) in cases {
        for f in ["Procfile", "project.toml", "predeploy.sh"] {
            let _ = std::fs::remove_file(repo.dir.path().join(f));
        }
        common::copy_dir(&common::fixture(fixture), repo.dir.path());
        repo.commit(fixture);
        let out = s.run(&["deploy", &app, "--repo", repo.path()]);
        assert_eq!(out.status.code(), Some(3), "{fixture}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error) && stderr.contains(detail), "{fixture}: unclear error:\n{stderr}");
        assert!(stderr.contains("the running release is untouched"), "{stderr}");
        assert_old_release_still_serves(&s, &app, port, "v1");
        assert_eq!(std::fs::read_to_string(s.mount_dir(&app).join("keep.txt")).unwrap(), "mine");
    }
    let releases: serde_json::Value = serde_json::from_str(&s.ok(&["releases", &app, "--json"])).unwrap();
    let statuses: Vec<&str> =
        releases.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "failed", "current"]);
    // The hanging script's process group was killed, not left behind.
    let sleepers = std::process::Command::new("pgrep").args(["-f", "sleep 600"]).output().unwrap();
    let pids = String::from_utf8_lossy(&sleepers.stdout);
    for pid in pids.lines() {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        assert!(!cwd.starts_with(s.home.path()), "predeploy left `sleep 600` running");
    }
}

#[test]
fn web_that_never_listens_or_crashes_fails_the_deploy_with_its_log() {
    let s = Slipway::new();
    let app = s.app("webfail");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);
    let cases = [
        ("bad-web-crashes", "crashed 3 times", "boom: missing DATABASE_URL"),
        ("bad-web-not-listening", "did not accept connections", "listening nowhere"),
        (
            "bad-web-unhealthy",
            "failed its health check for 6s: GET /up answered 500",
            "database not migrated",
        ),
    ];
    for (fixture, error, detail) in cases {
        for f in ["Procfile", "project.toml"] {
            let _ = std::fs::remove_file(repo.dir.path().join(f));
        }
        common::copy_dir(&common::fixture(fixture), repo.dir.path());
        repo.commit(fixture);
        let out =
            s.run(&["deploy", &app, "--repo", repo.path(), "--web-timeout", "6s", "--stop-grace", "2s"]);
        assert_eq!(out.status.code(), Some(3), "{fixture}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error) && stderr.contains(detail), "{fixture}:\n{stderr}");
        assert_old_release_still_serves(&s, &app, port, "v1");
    }
    // `--healthcheck` asks it of any app: the demo's / answers 200 once data.csv exists.
    let demo = Repo::from_fixture("seed-demo");
    let out = s.run(&["deploy", &app, "--repo", demo.path(), "--healthcheck", "/"]);
    assert!(out.status.success(), "{}", describe(&out));
    let bad = s.run(&["deploy", &app, "--repo", demo.path(), "--healthcheck", "up"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must start with \"/\""), "{}", describe(&bad));
}

#[test]
fn bad_config_and_bad_sources_give_clear_errors_and_change_nothing() {
    let s = Slipway::new();
    let app = s.app("badinput");
    let good = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", good.path()]);
    let port = s.web_port(&app);
    let cases = [
        ("bad-no-procfile", "no Procfile at the root of the commit"),
        ("bad-procfile-malformed", "line 2"),
        ("bad-procfile-duplicate", "already defined on line 1"),
        ("bad-procfile-empty", "defines no processes"),
        ("bad-project-toml", "predeploy: expected a string"),
    ];
    for (fixture, error) in cases {
        let repo = Repo::from_fixture(fixture);
        let out = s.run(&["deploy", &app, "--repo", repo.path()]);
        assert!(!out.status.success(), "{fixture} deployed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{fixture}: expected {error:?} in:\n{stderr}");
        assert_old_release_still_serves(&s, &app, port, "v1");
    }
    let nowhere = s.run(&["deploy", &app, "--repo", "/nonexistent/repo"]);
    assert_eq!(nowhere.status.code(), Some(2), "{}", describe(&nowhere));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("is not a git repository"));
    let norev = s.run(&["deploy", &app, "--repo", good.path(), "--rev", "no-such-branch"]);
    assert_eq!(norev.status.code(), Some(2), "{}", describe(&norev));
    assert!(String::from_utf8_lossy(&norev.stderr).contains("revision \"no-such-branch\" does not exist"));
    // With --json, a CI runner reading stdout gets the failure as JSON as well.
    let bad = Repo::from_fixture("bad-predeploy-fails");
    let failed = s.run(&["deploy", &app, "--repo", bad.path(), "--json"]);
    assert_eq!(failed.status.code(), Some(3), "{}", describe(&failed));
    let doc: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(doc["exit_code"], 3);
    assert!(doc["error"].as_str().unwrap().contains("failed during predeploy"), "{doc}");
    assert_old_release_still_serves(&s, &app, port, "v1");
    let noapp = s.run(&["deploy", "ghost", "--repo", good.path()]);
    assert_eq!(noapp.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&noapp.stderr).contains("slipway apps create ghost"));
    let badname = s.run(&["deploy", "../etc", "--repo", good.path()]);
    assert_eq!(badname.status.code(), Some(2));
    assert_old_release_still_serves(&s, &app, port, "v1");
}

#[test]
fn a_crashed_process_is_restarted() {
    let s = Slipway::new();
    let app = s.app("crash");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let worker = |s: &Slipway| {
        let ps = s.ps(&app);
        ps["instances"].as_array().unwrap().iter().find(|i| i["ptype"] == "worker").cloned().unwrap()
    };
    let before = worker(&s);
    let pid = before["pid"].as_u64().unwrap();
    common::sigkill(pid);
    let after = wait_for(Duration::from_secs(5), || {
        let w = worker(&s);
        (w["state"] == "up" && w["pid"].as_u64().is_some_and(|p| p != pid)).then_some(w)
    })
    .expect("worker was not restarted");
    assert_eq!(after["restarts"], 1);
    let logs = s.ok(&["logs", &app, "worker.1"]);
    assert!(logs.contains("killed by signal 9; restarting in 100ms"), "{logs}");
}

#[test]
fn scale_restart_stop_start_and_config() {
    let s = Slipway::new();
    let app = s.app("scale");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["ps", "scale", &app, "worker=2"]);
    let two = wait_for(Duration::from_secs(5), || {
        let ps = s.ps(&app);
        let n = ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["ptype"] == "worker" && i["state"] == "up")
            .count();
        (n == 2).then_some(())
    });
    assert!(two.is_some(), "worker=2 not applied: {}", s.ps(&app));
    let bad = s.run(&["ps", "scale", &app, "nope=1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no process type nope"));

    let deployed_port = s.web_port(&app);
    // --no-restart only records the change: web keeps running, one-off runs see it.
    let web_pid = |s: &Slipway| {
        s.ps(&app)["instances"].as_array().unwrap().iter().find(|i| i["ptype"] == "web").unwrap()["pid"]
            .clone()
    };
    let before = web_pid(&s);
    s.ok(&["config", "set", &app, "LATER=1", "--no-restart"]);
    assert_eq!(web_pid(&s), before, "--no-restart restarted web");
    assert_eq!(s.ok(&["run", &app, "--", "echo $LATER"]).trim(), "1");
    s.ok(&["config", "unset", &app, "LATER", "--no-restart"]);
    assert_eq!(web_pid(&s), before);
    s.ok(&["config", "set", &app, "GREETING=hello world"]);
    assert_eq!(s.ok(&["config", "get", &app, "GREETING"]).trim(), "hello world");
    assert_eq!(s.ok(&["run", &app, "--", "echo $GREETING"]).trim(), "hello world");
    let ps = s.ps(&app);
    let workers = ps["instances"].as_array().unwrap().iter().filter(|i| i["ptype"] == "worker").count();
    assert_eq!(workers, 2, "scale was lost on restart");
    // Restarts keep web's port, so the address the deploy printed keeps working.
    for restart in [&["ps", "restart", &app][..], &["ps", "restart", &app, "web"][..]] {
        s.ok(restart);
        let up = wait_for(Duration::from_secs(10), || {
            let ps = s.ps(&app);
            let web = ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "web")?.clone();
            (web["state"] == "up" && http_get(deployed_port).is_ok_and(|(c, _)| c == 200)).then_some(web)
        });
        let web =
            up.unwrap_or_else(|| panic!("web not back on {deployed_port} after {restart:?}: {}", s.ps(&app)));
        assert_eq!(web["port"], u64::from(deployed_port));
    }

    let old_port = s.web_port(&app);
    s.ok(&["ps", "stop", &app]);
    assert_eq!(s.ps(&app)["running"], false);
    assert!(http_get(old_port).is_err(), "web still answers after ps stop");
    // A stopped app stays stopped: reconciliation must not bring it back.
    s.ok(&["apps", "list"]);
    assert_eq!(s.ps(&app)["running"], false);
    s.ok(&["ps", "start", &app]);
    let port = wait_for(Duration::from_secs(5), || {
        let ps = s.ps(&app);
        ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "web" && i["state"] == "up")?["port"]
            .as_u64()
    })
    .expect("web did not come back after ps start");
    assert_eq!(port, u64::from(deployed_port), "ps start keeps the release's web port");
    assert_eq!(http_get(deployed_port).unwrap().0, 200);
}

#[test]
fn a_subdirectory_of_a_repository_deploys_on_its_own() {
    let s = Slipway::new();
    let app = s.app("subdir");
    let repo = Repo::from_fixture("bad-no-procfile"); // a root without a Procfile
    common::copy_dir(&common::fixture("seed-demo"), &repo.dir.path().join("apps/web"));
    repo.write("README.root", "not part of the app");
    repo.commit("monorepo");
    let sub = repo.dir.path().join("apps/web");
    s.ok(&["deploy", &app, "--repo", sub.to_str().unwrap()]);
    let ls = s.ok(&["run", &app, "--", "ls"]);
    assert!(ls.lines().any(|l| l == "Procfile"), "{ls}");
    assert!(!ls.contains("README.root") && !ls.contains("apps"), "the whole repository deployed: {ls}");
    assert_eq!(common::http_get(s.web_port(&app)).unwrap().0, 200);
}
