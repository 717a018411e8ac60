//! `slipway rollback`: an earlier release's commit deployed again, on the local runtime, with
//! the real binary, git and processes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, http_get};

fn version(s: &Slipway, app: &str) -> String {
    s.ok(&["run", app, "--", "cat VERSION"]).trim().to_owned()
}

#[test]
fn rollback_redeploys_the_previous_commit_and_refuses_what_cannot_come_back() {
    let s = Slipway::new();
    let app = s.app("rb");
    let repo = Repo::from_fixture("seed-demo");
    repo.write("VERSION", "one\n");
    let one = repo.commit("one");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    repo.write("VERSION", "two\n");
    repo.commit("two");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    // A failed deploy in between: rollback skips it.
    repo.write("project.toml", "predeploy = \"missing.sh\"\n");
    repo.commit("broken");
    assert_eq!(s.run(&["deploy", &app, "--repo", repo.path()]).status.code(), Some(3));
    assert_eq!(version(&s, &app), "two");

    let out = s.run(&["rollback", &app, "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["release"], "v4");
    assert_eq!(outcome["commit"], one.as_str());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Rolling"), "{}", describe(&out));
    assert_eq!(version(&s, &app), "one");
    assert_eq!(http_get(s.web_port(&app)).unwrap().0, 200);
    assert!(s.mount_dir(&app).join("data.csv").is_file(), "the mount is the same one");

    // Forward again to a named release.
    s.ok(&["rollback", &app, "v2"]);
    assert_eq!(version(&s, &app), "two");
    assert_eq!(s.release(&app), "v5");

    // Bad targets: exit 2, nothing changes.
    for (args, says) in [
        (vec!["rollback", &app, "v5"], "running release already"),
        (vec!["rollback", &app, "v3"], "never ran"),
        (vec!["rollback", &app, "v42"], "has no release v42"),
        (vec!["rollback", &app, "latest"], "release"),
    ] {
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {}", describe(&out));
    }
    assert_eq!(s.release(&app), "v5");
}

#[test]
fn an_app_with_one_release_has_nothing_to_roll_back_to() {
    let s = Slipway::new();
    let app = s.app("rb1");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let out = s.run(&["rollback", &app]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to roll back to"), "{}", describe(&out));
    assert_eq!(s.release(&app), "v1");
}
