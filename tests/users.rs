//! System users belong to one app of one home (issue 7, part 2): the attacks that shared a user
//! between two homes, left a daemon and a user behind on destroy, or adopted someone else's
//! user, run here as root against the real binary, useradd and userdel.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::require::root_or_skip;
use common::{Slipway, app_name, describe, wait_for};

/// The app's system user from `apps info --json`: name, uid, gid.
fn user_of(s: &Slipway, app: &str) -> (String, u32, u32) {
    let info: serde_json::Value = serde_json::from_str(&s.ok(&["apps", "info", app, "--json"])).unwrap();
    let u = &info["run_as"];
    let id = |k: &str| u32::try_from(u[k].as_u64().unwrap()).unwrap();
    (u["user"].as_str().unwrap().to_owned(), id("uid"), id("gid"))
}

/// Run `script` under bash as the user with ids `uid`/`gid` and no supplementary groups.
fn as_user(uid: u32, gid: u32, script: &str) -> Output {
    Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()])
        .args(["bash", "-c", script])
        .output()
        .unwrap()
}

fn user_exists(user: &str) -> bool {
    Command::new("id").arg("-u").arg(user).output().unwrap().status.success()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

/// Start a daemon (double fork, new session, stdio closed) as the user; returns its pid.
fn daemon_as(uid: u32, gid: u32) -> i32 {
    let out = as_user(uid, gid, "setsid bash -c 'sleep 600 >/dev/null 2>&1 & echo $!' </dev/null");
    assert!(out.status.success(), "{}", describe(&out));
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(alive(pid), "the daemon {pid} did not start");
    pid
}

/// Removes a user this test made by hand, whatever happens.
struct HandMadeUser(String);

impl Drop for HandMadeUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// Create `app` in `s` with a small mount, destroyed when `s` drops.
fn create(s: &Slipway, app: &str) {
    s.ok(&["apps", "create", app]);
    s.track(app);
    s.ok(&["mount", "enable", app, "--size", "64M"]);
}

#[test]
fn the_same_app_name_in_two_homes_gets_two_users_and_neither_reads_the_others_mount() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let (a, b) = (Slipway::new(), Slipway::new());
    let app = app_name("twin");
    create(&a, &app);
    create(&b, &app);
    let (user_a, uid_a, gid_a) = user_of(&a, &app);
    let (user_b, uid_b, gid_b) = user_of(&b, &app);
    assert_ne!(user_a, user_b, "two homes share a user");
    assert_ne!(uid_a, uid_b, "two homes share a uid");

    for (s, secret) in [(&a, "secret-of-a"), (&b, "secret-of-b")] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), secret).unwrap();
        s.ok(&["mount", "put", &app, file.path().to_str().unwrap(), "secret.txt"]);
    }
    let in_a = a.mount_dir(&app).join("secret.txt");
    let in_b = b.mount_dir(&app).join("secret.txt");
    let own = as_user(uid_a, gid_a, &format!("cat {}", in_a.display()));
    assert_eq!(String::from_utf8_lossy(&own.stdout), "secret-of-a", "{}", describe(&own));

    let cross = as_user(uid_a, gid_a, &format!("cat {}", in_b.display()));
    assert!(!cross.status.success(), "A's user read B's mount: {}", describe(&cross));
    let cross = as_user(uid_b, gid_b, &format!("cat {}; echo x > {}", in_a.display(), in_a.display()));
    assert!(!cross.status.success(), "B's user read A's mount: {}", describe(&cross));
    assert_eq!(std::fs::read_to_string(&in_a).unwrap(), "secret-of-a");
}

#[test]
fn destroying_an_app_leaves_the_same_named_app_of_another_home_its_user_and_processes() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let (a, b) = (Slipway::new(), Slipway::new());
    let app = app_name("pair");
    create(&a, &app);
    create(&b, &app);
    let (user_a, uid_a, gid_a) = user_of(&a, &app);
    let (user_b, uid_b, gid_b) = user_of(&b, &app);
    let daemon_a = daemon_as(uid_a, gid_a);
    let daemon_b = daemon_as(uid_b, gid_b);

    let out = a.run(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!user_exists(&user_a), "A's user {user_a} survived its app");
    assert!(wait_for(Duration::from_secs(5), || (!alive(daemon_a)).then_some(())).is_some());

    assert!(user_exists(&user_b), "destroying A removed B's user {user_b}");
    assert!(alive(daemon_b), "destroying A killed B's process {daemon_b}");
    assert_eq!(user_of(&b, &app).1, uid_b);
    b.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(!alive(daemon_b) && !user_exists(&user_b));
}

#[test]
fn destroy_kills_a_daemonized_process_of_the_app_then_removes_its_user() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let s = Slipway::new();
    let app = app_name("daemon");
    create(&s, &app);
    let (user, uid, gid) = user_of(&s, &app);
    // A daemon that also keeps the mount busy: destroy must kill it before the unmount.
    let mount = s.mount_dir(&app);
    let out = as_user(
        uid,
        gid,
        &format!("cd {} && setsid bash -c 'sleep 600 >/dev/null 2>&1 & echo $!' </dev/null", mount.display()),
    );
    let daemon: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(alive(daemon));

    let out = s.run(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Destroyed"));
    assert!(wait_for(Duration::from_secs(5), || (!alive(daemon)).then_some(())).is_some(), "daemon survived");
    assert!(!user_exists(&user), "user {user} survived apps destroy");
    assert!(!s.home.path().join("state").join(&app).exists());
}

#[test]
fn destroy_that_cannot_remove_the_user_fails_says_why_and_can_be_run_again() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let s = Slipway::new();
    let app = app_name("moved");
    create(&s, &app);
    let (user, uid, _) = user_of(&s, &app);
    let _cleanup = HandMadeUser(user.clone());
    // Someone gives the user another uid behind slipway's back: removing it could now hit
    // whoever owns that uid's files, so destroy must refuse, not report success.
    let new_uid = uid + 40_000;
    let out = Command::new("usermod").args(["-u", &new_uid.to_string(), &user]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    let out = s.run(&["apps", "destroy", &app, "--confirm", &app]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Destroyed"), "{stderr}");
    assert!(stderr.contains(&user) && stderr.contains(&format!("uid {new_uid}")), "{stderr}");
    assert!(user_exists(&user), "a user slipway no longer recognises was removed");
    assert!(s.home.path().join("state").join(&app).join("app.json").exists(), "record gone: no retry");

    // Once the stranger is dealt with by hand, the same command finishes the job. (The old uid
    // cannot be given back: a parallel useradd may have taken it, which is why this matters.)
    let out = Command::new("userdel").arg(&user).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    s.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(!s.home.path().join("state").join(&app).exists());
}

#[test]
fn apps_create_refuses_a_user_it_did_not_create_and_leaves_it_alone() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let s = Slipway::new();
    let app = app_name("taken");
    // Learn the would-be name, then let someone else own it.
    create(&s, &app);
    let (user, _, _) = user_of(&s, &app);
    s.ok(&["apps", "destroy", &app, "--confirm", &app]);
    let out = Command::new("useradd").args(["--system", "--no-create-home", &user]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let _cleanup = HandMadeUser(user.clone());
    let uid = || Command::new("id").arg("-u").arg(&user).output().unwrap().stdout;
    let before = uid();

    let out = s.run(&["apps", "create", &app]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&user) && stderr.contains("already exists"), "{stderr}");
    assert!(!s.home.path().join("state").join(&app).join("app.json").exists(), "app recorded anyway");
    assert_eq!(uid(), before, "the existing user was changed");
    assert!(user_exists(&user));
}

#[test]
fn apps_create_works_at_the_longest_app_name_and_refuses_one_more_character() {
    if !root_or_skip("per-app system users") {
        return;
    }
    let s = Slipway::new();
    let mut longest = app_name("long");
    longest.push_str(&"x".repeat(30 - longest.len()));
    let out = s.run(&["apps", "create", &longest]);
    s.track(&longest);
    assert!(out.status.success(), "{}", describe(&out));
    let (user, _, _) = user_of(&s, &longest);
    assert!(user.len() <= 32 && user_exists(&user), "{user}");

    let over = format!("{longest}y");
    let out = s.run(&["apps", "create", &over]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1-30 characters"));
}
