//! The workspace shares the app's persistent filesystem and can be deleted without touching it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe};

#[test]
fn workspace_shares_the_mount_and_its_deletion_keeps_every_file() {
    let s = Slipway::new();
    let app = s.app("ws");
    let refused = s.run(&["workspace", "create", &app]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no deployed release yet"),
        "{}",
        describe(&refused)
    );

    let repo = Repo::from_fixture("seed-demo");
    let first = repo.git(&["rev-parse", "HEAD"]);
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    repo.write("VERSION", "2");
    repo.commit("not deployed yet");
    s.ok(&["workspace", "create", &app]);
    let again = s.run(&["workspace", "create", &app]);
    assert!(
        again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already has a workspace")
    );

    // The working copy is at the deployed commit, not at the repository's newer HEAD.
    let head = s.ok(&["workspace", "run", &app, "--", "git rev-parse HEAD"]);
    assert_eq!(head.trim(), first);
    let paths = s.ok(&["workspace", "run", &app, "--", "readlink -f ../mount; readlink -f ~/mount; id -un"]);
    let lines: Vec<&str> = paths.lines().collect();
    let real = std::fs::canonicalize(s.mount_dir(&app)).unwrap();
    assert_eq!(
        lines[..2],
        [real.to_str().unwrap(), real.to_str().unwrap()],
        "workspace mount paths: {paths}"
    );
    if rustix::process::geteuid().is_root() {
        let info: serde_json::Value = serde_json::from_str(&s.ok(&["apps", "info", &app, "--json"])).unwrap();
        assert_eq!(lines[2], info["run_as"]["user"], "the workspace must run as the app's user");
    }

    // Written in the workspace, read by the app; and the other way round.
    s.ok(&["workspace", "run", &app, "--", "echo from-workspace > ../mount/ws.txt"]);
    assert_eq!(s.ok(&["run", &app, "--", "cat ../mount/ws.txt"]).trim(), "from-workspace");
    s.ok(&["run", &app, "--", "echo from-app > ~/mount/app.txt"]);
    assert_eq!(s.ok(&["workspace", "run", &app, "--", "cat ~/mount/app.txt"]).trim(), "from-app");

    s.ok(&["workspace", "delete", &app]);
    assert!(!s.home.path().join("apps").join(&app).join("workspace").exists());
    for f in ["ws.txt", "app.txt", "data.csv"] {
        assert!(s.mount_dir(&app).join(f).is_file(), "{f} was lost with the workspace");
    }
    let gone = s.run(&["workspace", "run", &app, "--", "true"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("slipway workspace create"),
        "{}",
        describe(&gone)
    );

    // Data outlives redeploys and a second workspace sees it.
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["workspace", "create", &app]);
    assert_eq!(
        s.ok(&["workspace", "run", &app, "--", "cat ../mount/ws.txt; cat VERSION"]),
        "from-workspace\n2"
    );
}

#[test]
fn a_failing_workspace_command_passes_its_exit_code_through() {
    let s = Slipway::new();
    let app = s.app("wsexit");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    s.ok(&["workspace", "create", &app]);
    assert_eq!(s.run(&["workspace", "run", &app, "--", "exit 7"]).status.code(), Some(7));
    assert_eq!(s.run(&["run", &app, "--", "exit 9"]).status.code(), Some(9));
}
