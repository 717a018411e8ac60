//! Processes that escape their release (issue 7 §3): a process that leaves its process group
//! (a double fork into a new session) is still stopped when its predeploy, its one-off command
//! or its release ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Repo, Slipway, describe, wait_for};

/// A shell line that starts a daemon, named `name` in `ps`, in a new session, and returns.
fn daemonize(name: &str) -> String {
    format!("(setsid bash -c 'exec -a {name} sleep 1000' >/dev/null 2>&1 < /dev/null &)")
}

/// Live processes whose command line starts with `name`.
fn running(name: &str) -> Vec<u64> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u64>().ok()) else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmdline.starts_with(name.as_bytes()) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Kills whatever a failed test left running under these names.
struct Sweep(Vec<String>);

impl Drop for Sweep {
    fn drop(&mut self) {
        for name in &self.0 {
            for pid in running(name) {
                common::sigkill(pid);
            }
        }
    }
}

fn gone(name: &str) -> bool {
    wait_for(Duration::from_secs(3), || running(name).is_empty().then_some(())).is_some()
}

#[test]
fn a_predeploy_that_double_forks_leaves_nothing_running() {
    let s = Slipway::new();
    let app = s.app("escpre");
    let name = format!("slipway-escape-{app}-predeploy");
    let _sweep = Sweep(vec![name.clone()]);
    let repo = Repo::from_fixture("seed-demo");
    // The pause lets the daemon leave the script's group before the script ends.
    let script =
        format!("{}\nsleep 0.5\npgrep -f {name} >/dev/null && echo daemon started\n", daemonize(&name));
    repo.write("predeploy.sh", &script);
    repo.commit("a predeploy that leaves a daemon");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon started"), "{}", describe(&out));
    assert!(gone(&name), "the predeploy's daemon outlived it: {:?}", running(&name));
}

#[test]
fn a_one_off_command_that_double_forks_leaves_nothing_running() {
    let s = Slipway::new();
    let app = s.app("escrun");
    let name = format!("slipway-escape-{app}-run");
    let _sweep = Sweep(vec![name.clone()]);
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let out = s.ok(&[
        "run",
        &app,
        "--",
        &format!("{}; pgrep -f {name} >/dev/null && echo started", daemonize(&name)),
    ]);
    assert_eq!(out.trim(), "started", "the daemon never ran");
    assert!(gone(&name), "the one-off command's daemon outlived it: {:?}", running(&name));
}

#[test]
fn a_process_that_daemonizes_is_gone_once_its_release_is_retired() {
    let s = Slipway::new();
    let app = s.app("escproc");
    let (v1, v2) = (format!("slipway-escape-{app}-v1"), format!("slipway-escape-{app}-v2"));
    let _sweep = Sweep(vec![v1.clone(), v2.clone()]);
    let repo = Repo::from_fixture("seed-demo");
    let procfile =
        |name: &str| format!("web: python3 app.py\ndaemon: {}; exec sleep 1000\n", daemonize(name));
    repo.write("Procfile", &procfile(&v1));
    repo.commit("v1 daemonizes");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let up = wait_for(Duration::from_secs(5), || (!running(&v1).is_empty()).then_some(()));
    assert!(up.is_some(), "v1's daemon never started");
    repo.write("Procfile", &procfile(&v2));
    repo.commit("v2 daemonizes");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    assert!(gone(&v1), "a daemon of the retired release is still running: {:?}", running(&v1));
    assert!(!running(&v2).is_empty(), "the running release's daemon was killed too");
    // The current release's daemon goes when the app stops.
    s.ok(&["ps", "stop", &app]);
    assert!(gone(&v2), "ps stop left a daemon running: {:?}", running(&v2));
}

#[test]
fn orphans_of_a_supervisor_killed_with_9_are_killed_by_the_next_command() {
    if !common::require::root_or_skip("a cgroup per release") {
        return;
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.procs").exists()
    {
        common::require::skip(common::require::Need::Root, "this machine has no cgroup v2 hierarchy");
        return;
    }
    let s = Slipway::new();
    let app = s.app("escsup");
    let name = format!("slipway-escape-{app}-orphan");
    let _sweep = Sweep(vec![name.clone()]);
    let repo = Repo::from_fixture("seed-demo");
    repo.write("Procfile", &format!("web: python3 app.py\ndaemon: {}; exec sleep 1000\n", daemonize(&name)));
    repo.commit("a process that daemonizes");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let first = wait_for(Duration::from_secs(5), || running(&name).first().copied())
        .expect("the daemon never started");
    let pid_file = s.home.path().join("state").join(&app).join("releases/v1/supervisor.pid");
    let supervisor: u64 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    common::sigkill(supervisor);
    std::thread::sleep(Duration::from_millis(300));
    assert!(running(&name).contains(&first), "the daemon died with its supervisor; nothing to prove");
    s.ok(&["apps", "list"]); // reconciles: a new supervisor for v1
    let gone = wait_for(Duration::from_secs(5), || (!running(&name).contains(&first)).then_some(()));
    assert!(gone.is_some(), "an orphan of the killed supervisor is still running (pid {first})");
}

#[test]
fn what_the_predeploy_of_a_killed_deploy_left_is_killed_by_the_next_command() {
    if !common::require::root_or_skip("a cgroup per release") {
        return;
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.procs").exists()
    {
        common::require::skip(common::require::Need::Root, "this machine has no cgroup v2 hierarchy");
        return;
    }
    let s = Slipway::new();
    let app = s.app("esckill");
    let name = format!("slipway-escape-{app}-killed");
    let _sweep = Sweep(vec![name.clone()]);
    let repo = Repo::from_fixture("seed-demo");
    repo.write("predeploy.sh", &format!("{}\necho predeploy-running\nsleep 1000\n", daemonize(&name)));
    repo.commit("a predeploy that daemonizes, then hangs");
    s.kill_at(
        &["deploy", &app, "--repo", repo.path()],
        "predeploy-running",
        Duration::from_secs(30),
        Duration::from_millis(300),
    );
    assert!(!running(&name).is_empty(), "the daemon died with the deploy; nothing to prove");
    s.ok(&["apps", "list"]); // reconciles: removes the interrupted release
    assert!(gone(&name), "the killed deploy's predeploy left a daemon running: {:?}", running(&name));
}
