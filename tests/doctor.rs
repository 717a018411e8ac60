//! `slipway doctor` on this real machine, and on the same machine seen through a PATH without
//! git or a home it cannot write: each missing piece is a `fail` with a fix and exit 1.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Slipway, describe};

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
}

fn level<'a>(report: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    report["checks"].as_array()?.iter().find(|c| c["name"] == name)?["level"].as_str()
}

#[test]
fn this_machine_can_deploy_and_the_report_matches_what_it_has() {
    let s = Slipway::new();
    let out = s.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = report(&out);
    assert_eq!(r["ok"], true);
    for name in ["git", "bash", "home"] {
        assert_eq!(level(&r, name), Some("ok"), "{name}: {r:#}");
    }
    let engine = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    assert_eq!(level(&r, "docker"), Some(if engine { "ok" } else { "warn" }), "{r:#}");
    let root = rustix::process::geteuid().is_root();
    let hard = root && Path::new("/dev/loop-control").exists() && which::which("mkfs.ext4").is_ok();
    assert_eq!(level(&r, "mount limit"), Some(if hard { "ok" } else { "warn" }), "{r:#}");
    assert_eq!(level(&r, "isolation"), Some(if root { "ok" } else { "warn" }), "{r:#}");

    let text = s.ok(&["doctor"]);
    assert!(text.contains("slipway can deploy on this machine"), "{text}");
}

#[test]
fn a_machine_without_git_or_a_writable_home_fails_with_fixes() {
    let s = Slipway::new();
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(which::which("bash").unwrap(), bin.path().join("bash")).unwrap();
    let out = s.cmd().args(["doctor", "--json"]).env("PATH", bin.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r = report(&out);
    assert_eq!(r["ok"], false);
    let git = r["checks"].as_array().unwrap().iter().find(|c| c["name"] == "git").unwrap();
    assert_eq!(git["level"], "fail");
    assert_eq!(git["fix"], "apt-get install git");
    assert_eq!(level(&r, "bash"), Some("ok"));

    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["--home", "/proc/no-such-home", "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL  home") && text.contains("cannot create /proc/no-such-home"), "{text}");
    assert!(text.contains("fix: pick a writable directory"), "{text}");
}
