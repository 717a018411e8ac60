//! Crash safety of the local runtime: kill -9 of a deploy, concurrent deploys, reboots.

#![allow(clippy::unwrap_used)]

mod common;

/// How long a deploy may take to reach the point where a test kills it.
const WAIT: Duration = Duration::from_secs(60);

use std::process::Stdio;
use std::time::Duration;

use common::{Repo, Slipway, describe, http_get, wait_for};

#[test]
fn kill_9_of_a_deploy_mid_predeploy_leaves_the_old_release_and_is_cleaned_up() {
    let s = Slipway::new();
    let app = s.app("kill9");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);
    repo.write("predeploy.sh", "echo started-slow-predeploy\nsleep 30\n");
    repo.commit("slow predeploy");
    s.kill_at(&["deploy", &app, "--repo", repo.path()], "started-slow-predeploy", WAIT, Duration::ZERO);
    // The old release kept serving throughout.
    assert_eq!(http_get(port).unwrap().0, 200);
    // The next command removes the leftovers.
    assert_eq!(s.release(&app), "v1");
    let dirs: Vec<_> = std::fs::read_dir(s.home.path().join("apps").join(&app).join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs, ["v1"]);
    let releases: serde_json::Value = serde_json::from_str(&s.ok(&["releases", &app, "--json"])).unwrap();
    assert_eq!(releases[0]["status"], "failed");
    assert_eq!(releases[0]["error"], "the deploy was interrupted");
    // The predeploy died with its deploy (parent-death signal), so it cannot write later.
    let gone = wait_for(Duration::from_secs(3), || {
        let out = std::process::Command::new("pgrep").args(["-f", "sleep 30"]).output().ok()?;
        let alive = String::from_utf8_lossy(&out.stdout).lines().any(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(s.home.path()))
        });
        (!alive).then_some(())
    });
    assert!(gone.is_some(), "the killed deploy's predeploy is still running");
    // And a new deploy works.
    repo.write("predeploy.sh", "echo fast\n");
    repo.commit("fast predeploy");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(s.release(&app), "v3");
}

#[test]
fn kill_9_after_the_switch_leaves_the_new_release_running() {
    let s = Slipway::new();
    let app = s.app("switch");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    // A worker that ignores SIGTERM keeps the old release's retirement busy for the grace
    // period, which is the window in which we kill the deploy.
    repo.write("Procfile", "web: python3 app.py\nworker: trap '' TERM; while true; do sleep 1; done\n");
    repo.commit("stubborn worker");
    // Its own grace is short, so that the cleanup after the kill is quick.
    s.ok(&["deploy", &app, "--repo", repo.path(), "--stop-grace", "2s"]);
    repo.write("VERSION", "3");
    repo.commit("v3");
    let deploy = ["deploy", &app, "--repo", repo.path(), "--stop-grace", "20s"];
    s.kill_at(&deploy, "Retiring v2", WAIT, Duration::ZERO);
    assert_eq!(s.release(&app), "v3", "the switch was committed before the kill");
    let port = s.web_port(&app);
    assert_eq!(http_get(port).unwrap().0, 200);
    let dirs = wait_for(Duration::from_secs(30), || {
        s.ok(&["apps", "list"]);
        let dirs: Vec<_> = std::fs::read_dir(s.home.path().join("apps").join(&app).join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        (dirs == ["v3"]).then_some(dirs)
    });
    assert!(dirs.is_some(), "v2 was not cleaned up");
}

#[test]
fn two_concurrent_deploys_of_one_app_are_serialised() {
    let s = Slipway::new();
    let app = s.app("serial");
    let repo = Repo::from_fixture("seed-demo");
    repo.write(
        "predeploy.sh",
        "echo \"start $$\" >> ../mount/order.log\nsleep 1\necho \"end $$\" >> ../mount/order.log\n",
    );
    repo.commit("logging predeploy");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    std::fs::remove_file(s.mount_dir(&app).join("order.log")).unwrap();
    let a = s.cmd().args(["deploy", &app, "--repo", repo.path()]).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = s.cmd().args(["deploy", &app, "--repo", repo.path()]).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", describe(&a));
    assert!(b.status.success(), "{}", describe(&b));
    assert!(String::from_utf8_lossy(&b.stderr).contains("waiting for another deploy"), "{}", describe(&b));
    let log = std::fs::read_to_string(s.mount_dir(&app).join("order.log")).unwrap();
    let kinds: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(kinds, ["start", "end", "start", "end"], "predeploys interleaved:\n{log}");
    assert_eq!(s.release(&app), "v3");

    // --no-wait refuses instead of waiting.
    let slow = s.cmd().args(["deploy", &app, "--repo", repo.path()]).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let refused = s.run(&["deploy", &app, "--repo", repo.path(), "--no-wait"]);
    assert_eq!(refused.status.code(), Some(4), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--no-wait"));
    assert!(slow.wait_with_output().unwrap().status.success());
}

#[test]
fn deploys_of_different_apps_run_in_parallel() {
    let s = Slipway::new();
    let (first_app, second_app) = (s.app("para"), s.app("parb"));
    let repo = Repo::from_fixture("seed-demo");
    repo.write("predeploy.sh", "sleep 2\n");
    repo.commit("two second predeploy");
    let started = std::time::Instant::now();
    let first = s.cmd().args(["deploy", &first_app, "--repo", repo.path()]).output().unwrap();
    assert!(first.status.success(), "{}", describe(&first));
    let one = started.elapsed();
    let started = std::time::Instant::now();
    let deploys: Vec<_> = [&first_app, &second_app]
        .map(|app| {
            s.cmd().args(["deploy", app, "--repo", repo.path()]).stderr(Stdio::null()).spawn().unwrap()
        })
        .into_iter()
        .collect();
    for d in deploys {
        assert!(d.wait_with_output().unwrap().status.success());
    }
    let both = started.elapsed();
    // Serialised, the two would take at least twice the two-second predeploy.
    assert!(
        both + Duration::from_millis(500) < one * 2,
        "deploys of two apps were serialised: one {one:?}, both {both:?}"
    );
}

#[test]
fn after_a_reboot_the_next_command_brings_the_current_release_back() {
    let s = Slipway::new();
    let app = s.app("reboot");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    std::fs::write(s.mount_dir(&app).join("keep.txt"), "survives").unwrap();
    // A reboot kills every process at once, supervisor included.
    let ps = s.ps(&app);
    let sup =
        std::fs::read_to_string(s.home.path().join("state").join(&app).join("releases/v1/supervisor.pid"))
            .unwrap();
    common::sigkill(sup.trim().parse().unwrap());
    for i in ps["instances"].as_array().unwrap() {
        let pid = i["pid"].as_u64().unwrap();
        common::sigkill_group(pid);
    }
    std::thread::sleep(Duration::from_millis(300));
    let port = wait_for(Duration::from_secs(10), || {
        let ps = s.ps(&app); // any command reconciles first
        let web =
            ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "web" && i["state"] == "up")?.clone();
        web["port"].as_u64()
    })
    .expect("the current release was not brought back");
    assert_eq!(http_get(u16::try_from(port).unwrap()).unwrap().0, 200);
    assert_eq!(std::fs::read_to_string(s.mount_dir(&app).join("keep.txt")).unwrap(), "survives");
}
