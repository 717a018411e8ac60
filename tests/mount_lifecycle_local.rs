//! The persistent filesystem as deployed processes see it: enabled later with --restart,
//! disabled with confirmation, isolated per app, and destroyed with its app.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe};

#[test]
fn enable_restart_then_disable_changes_what_processes_see() {
    let s = Slipway::new();
    let app = common::app_name("life");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    // A Procfile app without predeploy, so it deploys with no mount.
    let repo = Repo::from_fixture("seed-demo");
    repo.write("project.toml", "");
    repo.commit("no predeploy");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let seen = s.ok(&["run", &app, "--", "test -e ../mount && echo yes || echo no"]);
    assert_eq!(seen.trim(), "no", "a disabled mount is visible");

    let enabled = s.run(&["mount", "enable", &app, "--size", "64M", "--restart"]);
    assert!(enabled.status.success(), "{}", describe(&enabled));
    let pid = common::wait_for(std::time::Duration::from_secs(5), || {
        let ps = s.ps(&app);
        ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "worker")?["pid"].as_u64()
    })
    .expect("worker did not come back after --restart");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert!(cwd.join("../mount").is_dir(), "restarted worker does not see ../mount");
    let grown = common::wait_for(std::time::Duration::from_secs(6), || {
        s.mount_dir(&app).join("data.csv").is_file().then_some(())
    });
    assert!(grown.is_some(), "the restarted worker never wrote into the mount");

    let refused = s.run(&["mount", "disable", &app]);
    assert_eq!(refused.status.code(), Some(5), "{}", describe(&refused));
    assert!(s.mount_dir(&app).join("data.csv").is_file(), "an unconfirmed disable deleted data");
    let wrong = s.run(&["mount", "disable", &app, "--confirm", "other-app"]);
    assert_eq!(wrong.status.code(), Some(5));
    s.ok(&["ps", "stop", &app]);
    let disabled = s.run(&["mount", "disable", &app, "--confirm", &app]);
    assert!(disabled.status.success(), "{}", describe(&disabled));
    assert!(String::from_utf8_lossy(&disabled.stderr).contains("files"), "no count of what was deleted");
    s.ok(&["ps", "start", &app]);
    let seen = s.ok(&["run", &app, "--", "test -e ../mount && echo yes || echo no"]);
    assert_eq!(seen.trim(), "no", "../mount still visible after disable and restart");
    s.ok(&["mount", "enable", &app, "--size", "64M"]);
    let listing = s.ok(&["mount", "ls", &app]);
    assert!(!listing.contains("data.csv"), "a re-enabled mount is not empty: {listing}");
}

#[test]
fn apps_never_see_each_others_mounts() {
    if !common::require::root_or_skip("per-app users") {
        return;
    }
    let s = Slipway::new();
    let (a, b) = (s.app("isoa"), s.app("isob"));
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &a, "--repo", repo.path()]);
    s.ok(&["deploy", &b, "--repo", repo.path()]);
    std::fs::write(s.mount_dir(&b).join("secret.txt"), "b only").unwrap();
    let theirs = s.mount_dir(&b).join("secret.txt");
    let out = s.run(&["run", &a, "--", &format!("cat {}", theirs.display())]);
    assert!(!out.status.success(), "app {a} read app {b}'s mount");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{}", describe(&out));
    let listing = s.run(&["run", &a, "--", &format!("ls {}", s.home.path().join("apps").display())]);
    assert!(!listing.status.success(), "app {a} can list every app");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.home.path().join("apps").join(&b)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o750, "root's, readable by the app's group only");
}

#[test]
fn destroy_removes_the_app_its_processes_and_its_mount_image() {
    let s = Slipway::new();
    let app = s.app("gone");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);
    let refused = s.run(&["apps", "destroy", &app]);
    assert_eq!(refused.status.code(), Some(5), "{}", describe(&refused));
    assert_eq!(common::http_get(port).unwrap().0, 200, "an unconfirmed destroy stopped the app");
    s.ok(&["workspace", "create", &app]);
    s.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(common::http_get(port).is_err(), "web still answers after destroy");
    assert!(!s.home.path().join("apps").join(&app).exists());
    assert!(!s.home.path().join("state").join(&app).exists(), "state (and mount.img) left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("/apps/{app}/mount")), "loop mount left behind");
    let again = s.run(&["ps", &app]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn a_shrink_stops_the_running_app_only_with_restart_and_keeps_every_file() {
    if !common::require::root_or_skip("hard-limited mounts") {
        return;
    }
    let s = Slipway::new();
    let app = common::app_name("shrink");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    let repo = Repo::from_fixture("seed-demo");
    repo.write("project.toml", "");
    repo.commit("no predeploy");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["mount", "enable", &app, "--size", "64M", "--restart"]);
    let worker_pid = || {
        common::wait_for(std::time::Duration::from_secs(10), || {
            s.ps(&app)["instances"].as_array()?.iter().find(|i| i["ptype"] == "worker")?["pid"].as_u64()
        })
        .expect("no worker")
    };
    let before = worker_pid();
    let data = s.mount_dir(&app).join("data.csv");
    common::wait_for(std::time::Duration::from_secs(10), || data.is_file().then_some(()))
        .expect("the worker never wrote into the mount");

    let refused = s.run(&["mount", "enable", &app, "--size", "48M"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--size 48M --restart"),
        "{}",
        describe(&refused)
    );
    assert_eq!(worker_pid(), before, "a refused shrink must not touch the running app");

    let shrunk = s.run(&["mount", "enable", &app, "--size", "48M", "--restart"]);
    assert!(shrunk.status.success(), "{}", describe(&shrunk));
    let after = worker_pid();
    assert_ne!(after, before, "the app's processes were not stopped and started again");
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["mount", "status", &app, "--json"])).unwrap();
    assert_eq!(status["limit_bytes"], 48u64 << 20);
    assert!(data.is_file(), "data.csv is gone after the shrink");
    let cwd = std::fs::read_link(format!("/proc/{after}/cwd")).unwrap();
    assert!(cwd.join("../mount/data.csv").is_file(), "the restarted worker does not see the mount");
}

#[test]
fn a_killed_shrink_of_a_running_app_is_settled_and_the_app_restarted_by_the_next_command() {
    use std::os::unix::fs::MetadataExt;
    if !common::require::root_or_skip("hard-limited mounts") {
        return;
    }
    let s = Slipway::new();
    let app = common::app_name("killrs");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    let repo = Repo::from_fixture("seed-demo");
    repo.write("project.toml", "");
    repo.commit("no predeploy");
    s.ok(&["config", "set", &app, "WORKER_INTERVAL=0.05"]);
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["mount", "enable", &app, "--size", "64M", "--restart"]);
    let data = s.mount_dir(&app).join("data.csv");
    let wait = std::time::Duration::from_secs(15);
    common::wait_for(wait, || data.is_file().then_some(())).expect("the worker never wrote");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let mut current = 64u64 << 20;
    for round in 0..4u32 {
        let before = std::fs::read(&data).unwrap();
        let wanted = if current == 64 << 20 { 48u64 << 20 } else { 64 << 20 };
        let mut child = s
            .cmd()
            .args(["mount", "enable", &app, "--size", &format!("{}M", wanted >> 20), "--restart"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the stop, the resize and the start (about 2 s here).
        let delay = (u64::from(nanos) + u64::from(round) * 2_654_435_761).wrapping_mul(0x9E37_79B9) % 2000;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();

        s.ok(&["apps", "list"]);
        let dir = s.mount_dir(&app);
        let own = std::fs::metadata(&dir).unwrap().dev();
        let parent = std::fs::metadata(dir.parent().unwrap()).unwrap().dev();
        assert_ne!(own, parent, "round {round} (killed after {delay} ms): not mounted after `apps list`");
        let status: serde_json::Value =
            serde_json::from_str(&s.ok(&["mount", "status", &app, "--json"])).unwrap();
        let now = status["limit_bytes"].as_u64().unwrap();
        assert!(now == current || now == wanted, "round {round}: limit {now}");
        // The worker runs again and writes after everything it wrote before.
        let grown = common::wait_for(wait, || {
            let after = std::fs::read(&data).ok()?;
            (after.len() > before.len()).then_some(after)
        })
        .unwrap_or_else(|| {
            panic!("round {round} (killed after {delay} ms): the worker is not writing again")
        });
        assert!(grown.starts_with(&before), "round {round}: lines written before the resize were lost");
        eprintln!("round {round}: killed after {delay} ms, limit {} MiB", now >> 20);
        current = now;
    }
}
