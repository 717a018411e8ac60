//! Traversal and symlink attacks on `slipway mount ls/get/put/rm/mkdir`: the app's user plants
//! symlinks in its mount; slipway (root) must never read, write or delete outside it.

mod mount_support;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::process::Stdio;

use mount_support::{TestHome, snapshot, stderr};

#[test]
fn attack_corpus_is_refused_and_nothing_outside_is_touched() {
    let home = TestHome::new();
    let app = home.create_app();
    // Soft mode: a plain directory on the same filesystem as everything else, the worst case.
    let out = home.run_env(&[("SLIPWAY_MOUNT_MODE", "soft")], &["mount", "enable", &app, "--size", "64M"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let canary = home.dir.path().join("canary");
    std::fs::create_dir_all(canary.join("sub")).unwrap();
    std::fs::write(canary.join("secret"), b"do not read").unwrap();
    std::fs::write(canary.join("sub/keep"), b"do not delete").unwrap();
    let before = snapshot(&canary);

    let m = home.mount_dir(&app);
    symlink("/etc", m.join("etc")).unwrap();
    symlink("../..", m.join("up")).unwrap();
    symlink(&canary, m.join("canary")).unwrap();
    symlink("../../../canary", m.join("rel_canary")).unwrap();
    symlink(canary.join("secret"), m.join("secret_link")).unwrap();
    std::fs::create_dir(m.join("d1")).unwrap();
    symlink("../../../../canary", m.join("d1/d2")).unwrap();
    symlink("d1", m.join("chain1")).unwrap();
    symlink("loop", m.join("loop")).unwrap();

    let c = canary.to_str().unwrap();
    let abs_secret = format!("{c}/secret");
    let abs_evil = format!("{c}/evil");
    let attacks: Vec<Vec<&str>> = vec![
        vec!["ls", ".."],
        vec!["ls", "../.."],
        vec!["ls", "up"],
        vec!["ls", "etc"],
        vec!["ls", "canary"],
        vec!["ls", "rel_canary/sub"],
        vec!["ls", "chain1/d2"],
        vec!["ls", "/etc"],
        vec!["get", "../../../canary/secret"],
        vec!["get", "etc/passwd"],
        vec!["get", "/etc/passwd"],
        vec!["get", "canary/secret"],
        vec!["get", "rel_canary/secret"],
        vec!["get", "secret_link"],
        vec!["get", "chain1/d2/secret"],
        vec!["get", "up/canary/secret"],
        vec!["get", "loop"],
        vec!["put", "-", "../evil"],
        vec!["put", "-", "a/../../evil"],
        vec!["put", "-", "canary/evil"],
        vec!["put", "-", "rel_canary/evil"],
        vec!["put", "-", "up/evil"],
        vec!["put", "-", "chain1/d2/evil"],
        vec!["put", "-", &abs_evil],
        vec!["rm", &abs_secret],
        vec!["rm", "canary/secret"],
        vec!["rm", "rel_canary/secret"],
        vec!["rm", "-r", "chain1/d2/sub"],
        vec!["rm", "../../../canary/secret"],
        vec!["rm", "-r", "."],
        vec!["rm", "-r", ".."],
        vec!["mkdir", "canary/newdir"],
        vec!["mkdir", "rel_canary/x/y"],
        vec!["mkdir", "../x"],
        vec!["mkdir", "chain1/d2/new"],
        vec!["mkdir", &abs_evil],
        vec!["ls", ""],
    ];
    assert!(attacks.len() >= 20);
    for attack in &attacks {
        let mut args = vec!["mount", attack[0], &app];
        args.extend(&attack[1..]);
        let mut child = home
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(b"evil bytes");
        let out = child.wait_with_output().unwrap();
        assert!(
            !out.status.success(),
            "attack {attack:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("do not read"),
            "attack {attack:?} leaked the canary"
        );
        assert_eq!(snapshot(&canary), before, "attack {attack:?} changed the canary");
    }
    let escape = home.run(&["mount", "get", &app, "canary/secret"]);
    assert!(stderr(&escape).contains("escapes the persistent filesystem"), "{}", stderr(&escape));

    // Removing a planted symlink removes the link, never its target.
    home.ok(&["mount", "rm", &app, "-r", "canary"]);
    home.ok(&["mount", "rm", &app, "rel_canary"]);
    assert_eq!(snapshot(&canary), before);
    // A put over a planted symlink replaces the link instead of writing through it.
    let mut child =
        home.cmd(&["mount", "put", &app, "-", "secret_link"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"replaced").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(m.join("secret_link")).unwrap(), b"replaced");
    assert!(!m.join("secret_link").is_symlink());
    assert_eq!(snapshot(&canary), before);
}

#[test]
fn a_mount_point_swapped_for_a_symlink_is_refused() {
    let home = TestHome::new();
    let app = home.create_app();
    let out = home.run_env(&[("SLIPWAY_MOUNT_MODE", "soft")], &["mount", "enable", &app, "--size", "64M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let canary = home.dir.path().join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(canary.join("secret"), b"do not read").unwrap();
    let before = snapshot(&canary);
    let m = home.mount_dir(&app);
    std::fs::remove_dir(&m).unwrap();
    symlink(&canary, &m).unwrap();
    for args in [
        vec!["ls"],
        vec!["get", "secret"],
        vec!["put", "-", "evil"],
        vec!["mkdir", "x"],
        vec!["rm", "secret"],
    ] {
        let mut full = vec!["mount", args[0], &app];
        full.extend(&args[1..]);
        let out = home.cmd(&full).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{args:?} went through a swapped mount point");
        assert!(stderr(&out).contains("symlink or not a directory"), "{}", stderr(&out));
    }
    assert_eq!(snapshot(&canary), before);
}
