//! `git push` deploys through the app's bare repository and its pre-receive hook: real git,
//! the real binary (run by git as the hook), real processes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, http_get};

fn remote_ref(s: &Slipway, app: &str, branch: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(s.git_repo(app))
        .args(["rev-parse", "--verify", "--quiet", branch])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn releases(s: &Slipway, app: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&s.ok(&["releases", app, "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_push_of_main_deploys_and_a_failed_deploy_rejects_the_push() {
    let s = Slipway::new();
    let app = s.app("push");
    let info = s.ok(&["apps", "info", &app]);
    let bare = s.git_repo(&app);
    assert!(info.contains(&bare.display().to_string()), "apps info names the repository:\n{info}");

    let repo = Repo::from_fixture("seed-demo");
    repo.add_slipway_remote(&s, &app);
    let first = repo.git(&["rev-parse", "HEAD"]);
    let out = repo.push("main");
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("remote: -----> Building v1"), "deploy progress reaches the pusher:\n{stderr}");
    assert!(stderr.contains("predeploy: preparing ../mount"), "{stderr}");
    assert_eq!(remote_ref(&s, &app, "main"), first);
    assert_eq!(s.release(&app), "v1");
    assert_eq!(releases(&s, &app)[0]["commit"], first.as_str());
    let port = s.web_port(&app);
    assert_eq!(http_get(port).unwrap().0, 200);

    // A commit whose predeploy fails: the push is rejected, the branch keeps the running
    // commit, and v1 keeps serving.
    repo.write("project.toml", "predeploy = \"fail.sh\"\n");
    repo.write("fail.sh", "echo about to fail\nexit 7\n");
    let bad = repo.commit("predeploy fails");
    let out = repo.push("main");
    assert!(!out.status.success(), "a failed deploy must reject the push: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");
    assert!(stderr.contains("push rejected") && stderr.contains("about to fail"), "{stderr}");
    assert_eq!(remote_ref(&s, &app, "main"), first, "the branch still names the running commit");
    assert_eq!(s.release(&app), "v1");
    assert_eq!(http_get(port).unwrap().0, 200, "v1 still serves");

    // Fixed and pushed again: deployed, and the mount kept its data across the deploys.
    repo.write("fail.sh", "echo fixed\n");
    let fixed = repo.commit("predeploy fixed");
    assert_ne!(bad, fixed);
    let out = repo.push("main");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(remote_ref(&s, &app, "main"), fixed);
    assert_eq!(s.release(&app), "v3");
    assert!(s.mount_dir(&app).join("data.csv").is_file());

    // The workspace is a working copy of the pushed commit.
    s.ok(&["workspace", "create", &app]);
    let head = s.ok(&["workspace", "run", &app, "--", "git rev-parse HEAD"]);
    assert_eq!(head.trim(), fixed);
}

#[test]
fn only_the_deploy_branch_deploys_and_other_branches_and_tags_are_stored() {
    let s = Slipway::new();
    let app = s.app("pushb");
    let repo = Repo::from_fixture("seed-demo");
    let bare = s.git_repo(&app);
    repo.add_slipway_remote(&s, &app);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let feature = repo.commit("feature work");
    repo.git(&["tag", "v0.1"]);
    // master is an ordinary branch unless it is made the deploy branch.
    for refspec in ["feature", "v0.1", "feature:master"] {
        let out = repo.push(refspec);
        assert!(out.status.success(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("stored, not deployed (pushes of main deploy)"), "{stderr}");
    }
    assert_eq!(remote_ref(&s, &app, "feature"), feature);
    assert!(releases(&s, &app).is_empty(), "nothing was deployed");

    // Concurrent pushes of main and master: only main deploys.
    repo.git(&["checkout", "-q", "-b", "other"]);
    let other = repo.commit("other work");
    let spawn = |refspec: &str| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args(["push", "--force", "slipway", refspec])
            .output()
    };
    let (main_push, master_push) = std::thread::scope(|t| {
        let a = t.spawn(|| spawn("feature:main").unwrap());
        let b = t.spawn(|| spawn("other:master").unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(main_push.status.success(), "{}", describe(&main_push));
    assert!(master_push.status.success(), "{}", describe(&master_push));
    assert!(String::from_utf8_lossy(&master_push.stderr).contains("stored, not deployed"));
    let deployed = releases(&s, &app);
    assert_eq!(deployed.len(), 1, "one deploy only: {deployed:?}");
    assert_eq!(deployed[0]["commit"], feature.as_str());
    assert_eq!(remote_ref(&s, &app, "master"), other);

    // Another deploy branch: its pushes deploy, and main's are stored.
    s.ok(&["apps", "set", &app, "--deploy-branch", "master"]);
    let out = repo.push("other:master");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Everything up-to-date"), "{}", describe(&out));
    let next = repo.commit("more");
    let out = repo.push("other:master");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.release(&app), "v2");
    assert_eq!(releases(&s, &app)[0]["commit"], next.as_str());
    let out = repo.push("other:main");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stored, not deployed (pushes of master deploy)"));
    assert_eq!(s.release(&app), "v2");
    let bad = s.run(&["apps", "set", &app, "--deploy-branch", "no..pe"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));

    // Destroying the app removes its repository.
    s.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(!bare.exists());
}

#[test]
fn deleting_the_deploy_branch_is_refused_and_says_so_and_other_deletions_say_deleted() {
    let s = Slipway::new();
    let app = s.app("pushdel");
    let repo = Repo::from_fixture("seed-demo");
    repo.add_slipway_remote(&s, &app);
    let first = repo.git(&["rev-parse", "HEAD"]);
    assert!(repo.push("main").status.success());
    let port = s.web_port(&app);

    let out = repo.push(":main");
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to delete main: it is this app's deploy branch"), "{stderr}");
    assert!(!stderr.contains("stored"), "a refused deletion is not reported as stored: {stderr}");
    assert_eq!(remote_ref(&s, &app, "main"), first, "main still names the running commit");
    assert_eq!(http_get(port).unwrap().0, 200);

    assert!(repo.push("main:feature").status.success());
    let out = repo.push(":feature");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refs/heads/feature: deleted"),
        "{}",
        describe(&out)
    );
    assert_eq!(remote_ref(&s, &app, "feature"), "");
    assert_eq!(s.release(&app), "v1");
}

#[test]
fn concurrent_pushes_take_turns_and_a_push_overtaken_by_another_deploys_nothing() {
    let s = Slipway::new();
    let app = s.app("pushc");
    let first = Repo::from_fixture("seed-demo");
    first.add_slipway_remote(&s, &app);
    assert!(first.push("main").status.success());

    // Two clones of v1 each commit on top of it; the first one's predeploy is slow.
    let clone = |name: &str, predeploy: &str| {
        let r = Repo::from_fixture("seed-demo");
        r.add_slipway_remote(&s, &app);
        r.git(&["fetch", "-q", "slipway"]);
        r.git(&["reset", "-q", "--hard", "slipway/main"]);
        r.write("project.toml", &format!("predeploy = \"{name}.sh\"\n"));
        r.write(&format!("{name}.sh"), predeploy);
        r.commit(name);
        r
    };
    let slow = clone("slow", "echo slow predeploy starts\nsleep 2\n");
    let fast = clone("fast", "echo fast\n");
    let slow_sha = slow.git(&["rev-parse", "HEAD"]);
    let slow_push = std::process::Command::new("git")
        .arg("-C")
        .arg(slow.path())
        .args(["push", "slipway", "main"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the slow push is deploying, the fast one arrives.
    let releases_now = || releases(&s, &app).len();
    assert!(
        common::wait_for(std::time::Duration::from_secs(20), || (releases_now() == 2).then_some(()))
            .is_some()
    );
    let out = fast.push("main");
    let slow_out = slow_push.wait_with_output().unwrap();
    assert!(slow_out.status.success(), "{}", describe(&slow_out));
    assert!(!out.status.success(), "the overtaken push is rejected: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Waiting for another push"), "{stderr}");
    assert!(stderr.contains("main moved to") && stderr.contains("fetch, then push again"), "{stderr}");
    assert_eq!(remote_ref(&s, &app, "main"), slow_sha);
    assert_eq!(releases_now(), 2, "the overtaken push deployed nothing");
    assert_eq!(s.release(&app), "v2");
}
