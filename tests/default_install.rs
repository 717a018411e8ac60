//! The default install works as root (issue 7, part 5): the default home is one that app users
//! can reach, and a home they cannot reach is refused up front with the fix, not at the first
//! deploy with a message that blames bash.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::require::root_or_skip;
use common::{BIN, describe};

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn as_root_without_a_home_setting_the_home_is_var_lib_slipway() {
    if !root_or_skip("the root default home") {
        return;
    }
    let existed = std::path::Path::new("/var/lib/slipway").exists();
    let out = Command::new(BIN)
        .args(["doctor", "--json"])
        .env_remove("SLIPWAY_HOME")
        .env("XDG_DATA_HOME", "/nonexistent-xdg")
        .env("HOME", "/root")
        .output()
        .unwrap();
    if !existed {
        let _ = std::fs::remove_dir("/var/lib/slipway");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let home = check(&report, "home");
    assert_eq!(home["detail"], "/var/lib/slipway is writable", "{report:#}");
    assert_eq!(check(&report, "reach")["level"], "ok", "{report:#}");
}

#[test]
fn unprivileged_the_home_stays_under_xdg_data_home() {
    if !root_or_skip("switching to an unprivileged user") {
        return;
    }
    let xdg = tempfile::tempdir().unwrap();
    std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "doctor", "--json"])
        .env_remove("SLIPWAY_HOME")
        .env("XDG_DATA_HOME", xdg.path())
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let want = format!("{} is writable", xdg.path().join("slipway").display());
    assert_eq!(check(&report, "home")["detail"], want.as_str(), "{report:#}");
}

#[test]
fn a_home_below_a_0700_directory_is_refused_by_apps_create_and_failed_by_doctor_with_the_fix() {
    if !root_or_skip("per-app users that must reach the home") {
        return;
    }
    // As `mktemp -d` makes it: mode 0700, so only root may pass.
    let closed = tempfile::Builder::new().prefix("slipway-closed").tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = closed.path().join("home");
    let slipway = |args: &[&str]| Command::new(BIN).arg("--home").arg(&home).args(args).output().unwrap();
    let fix = format!("chmod o+x {}", closed.path().display());

    let app = common::app_name("closed");
    let out = slipway(&["apps", "create", &app]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&fix) && stderr.contains("mode 700"), "{stderr}");
    assert!(!home.join("state").join(&app).exists(), "the app was recorded anyway");

    let out = slipway(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reach = check(&report, "reach");
    assert_eq!(reach["level"], "fail", "{report:#}");
    assert!(reach["fix"].as_str().unwrap().contains(&fix), "{report:#}");

    // The fix it names works.
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = slipway(&["apps", "create", &app]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = slipway(&["apps", "destroy", &app, "--confirm", &app]);
    assert!(out.status.success(), "{}", describe(&out));
}
