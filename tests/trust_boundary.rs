//! The trust boundary between root and an app's user (issue 7 §1). Each attack is run as the
//! app's own user, exactly as an app's process could, and each must change nothing that root
//! does: no process runs as root, no process outside the app is signalled, no file outside
//! the app is deleted, and no other app is touched. Tampering slipway finds is named and
//! refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::{Repo, Slipway, describe, wait_for};

/// The uid and gid the app's processes run as: the owner of its working directory.
fn app_user(s: &Slipway, app: &str) -> (u32, u32) {
    let meta = std::fs::metadata(s.home.path().join("apps").join(app).join("releases/v1/app")).unwrap();
    assert_ne!(meta.uid(), 0, "the app's working directory must belong to the app's user");
    (meta.uid(), meta.gid())
}

/// Run `script` with bash as the app's user, as a process of the app would.
fn as_app(s: &Slipway, app: &str, script: &str) -> Output {
    let (uid, gid) = app_user(s, app);
    Command::new("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", &gid.to_string(), "--clear-groups", "--"])
        .args(["bash", "-c", script])
        .current_dir("/")
        .output()
        .unwrap()
}

/// A root process in its own process group, which no attack may get slipway to kill.
struct Victim(Child);

impl Victim {
    fn start() -> Self {
        let mut cmd = Command::new("sleep");
        cmd.arg("1000");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Self(cmd.spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory every user may write to, for the planted plan's proof of execution.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("slipway-trust").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    dir
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Each instance's name, pid and start time: what changes if anything stops or restarts it.
fn processes(s: &Slipway, app: &str) -> Vec<(String, u64, u64)> {
    let ps = s.ps(app);
    let all = ps["instances"].as_array().unwrap().iter();
    all.map(|i| {
        (
            i["name"].as_str().unwrap().to_owned(),
            i["pid"].as_u64().unwrap(),
            i["started_at_ms"].as_u64().unwrap(),
        )
    })
    .collect()
}

fn state_release(s: &Slipway, app: &str, release: &str) -> PathBuf {
    s.home.path().join("state").join(app).join("releases").join(release)
}

#[test]
fn a_planted_plan_and_status_never_run_as_root_nor_kill_a_listed_process() {
    if !common::require::root_or_skip("the trust boundary between root and an app's user") {
        return;
    }
    let s = Slipway::new();
    let app = s.app("trusta");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let mut victim = Victim::start();
    let proof = shared_dir();
    let marker = proof.path().join("ran-as");

    // The attacker's plan: the real one with `run_as: null` and a web that records its uid.
    // Where the release's own files are (before this fix they were in the release folder).
    let mut own = state_release(&s, &app, "v1");
    if !own.join("plan.json").exists() {
        own = s.home.path().join("apps").join(&app).join("releases/v1");
    }
    let mut plan = json(&own.join("plan.json"));
    plan["run_as"] = serde_json::Value::Null;
    for p in plan["processes"].as_array_mut().unwrap() {
        p["command"] = format!("id -u > {}; exec sleep 1000", marker.display()).into();
    }
    let mut status = json(&own.join("status.json"));
    for i in status["instances"].as_array_mut().unwrap() {
        i["pid"] = victim.pid().into();
    }
    std::fs::write(proof.path().join("plan.json"), serde_json::to_vec(&plan).unwrap()).unwrap();
    std::fs::write(proof.path().join("status.json"), serde_json::to_vec(&status).unwrap()).unwrap();

    let (uid, _) = app_user(&s, &app);
    let releases = s.home.path().join("apps").join(&app).join("releases");
    let state = state_release(&s, &app, "v1");
    let attack = as_app(
        &s,
        &app,
        &format!(
            "cd {rel}; mv v1 v1.old; mkdir -p v1/app v1/home; \
             for d in v1 v1/app v1/home {state}; do cp {p}/plan.json {p}/status.json $d/; done; true",
            rel = releases.display(),
            state = state.display(),
            p = proof.path().display(),
        ),
    );

    // Every path by which slipway reads a release: a reconciling command, a full restart
    // (a new supervisor reads the plan and the old status), and a one-off run.
    s.run(&["apps", "list"]);
    s.run(&["ps", "restart", &app]);
    let ran = s.run(&["run", &app, "--", "id -u"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(victim.alive(), "slipway killed a process listed in a planted status.json");
    assert!(!marker.exists(), "the planted plan ran, as uid {:?}", std::fs::read_to_string(&marker));
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), uid.to_string(), "{}", describe(&ran));
    let said = String::from_utf8_lossy(&attack.stderr);
    assert!(said.contains("Permission denied"), "the attack met no resistance: {}", describe(&attack));
    assert!(releases.join("v1/app/Procfile").is_file(), "the release folder was replaced");
    assert!(!releases.join("v1.old").exists());
    let web = wait_for(Duration::from_secs(10), || {
        let ps = s.ps(&app);
        ps["instances"].as_array()?.iter().find(|i| i["ptype"] == "web" && i["state"] == "up").cloned()
    })
    .expect("web is up again");
    let web_uid = std::fs::metadata(format!("/proc/{}", web["pid"])).unwrap().uid();
    assert_eq!(web_uid, uid, "web runs as the app's user");
}

#[test]
fn a_home_link_to_a_root_directory_never_gets_its_mount_entry_deleted() {
    if !common::require::root_or_skip("the trust boundary between root and an app's user") {
        return;
    }
    let s = Slipway::new();
    let app = s.app("trustb");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let precious = tempfile::Builder::new().prefix("slipway-rootdir").tempdir().unwrap();
    std::fs::write(precious.path().join("mount"), "root's own file").unwrap();

    let releases = s.home.path().join("apps").join(&app).join("releases");
    let v1 = releases.join("v1");
    // Straight at HOME, and by a new v1 around the same working directory.
    let attack = as_app(
        &s,
        &app,
        &format!(
            "cd {v1}; mv home home.old; ln -s {dir} home; rm -f home/mount; ln -sfn {dir} home/mount; \
             cd {rel}; mv v1 v1.orig; mkdir -p v1/app; ln -s {dir} v1/home; true",
            v1 = v1.display(),
            rel = releases.display(),
            dir = precious.path().display()
        ),
    );
    // Reconciliation, and a restart, which links the mount again before starting.
    s.run(&["apps", "list"]);
    s.run(&["ps", "restart", &app]);
    s.run(&["mount", "enable", &app, "--size", "256M", "--restart"]);
    let left = std::fs::symlink_metadata(precious.path().join("mount"));
    assert!(
        left.as_ref().is_ok_and(std::fs::Metadata::is_file),
        "root's {}/mount was replaced: {left:?}",
        precious.path().display()
    );
    assert_eq!(std::fs::read_to_string(precious.path().join("mount")).unwrap(), "root's own file");
    let said = String::from_utf8_lossy(&attack.stderr);
    assert!(
        said.contains("Operation not permitted") || said.contains("Permission denied"),
        "the attack met no resistance: {}",
        describe(&attack)
    );
    assert!(std::fs::symlink_metadata(v1.join("home")).unwrap().is_dir(), "HOME is still slipway's");
    assert_eq!(std::fs::read_link(v1.join("home/mount")).unwrap(), Path::new("../mount"));
    let home_meta = std::fs::metadata(v1.join("home")).unwrap();
    assert_eq!((home_meta.uid(), home_meta.mode() & 0o7777), (0, 0o1770), "HOME: root's, sticky");
    // HOME stays usable: the app creates (and removes) its own files there.
    let out =
        s.ok(&["run", &app, "--", "mkdir -p ~/.cache/pip && echo ok > ~/.cache/pip/x && cat ~/.cache/pip/x"]);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn an_app_cannot_point_its_releases_at_another_app() {
    if !common::require::root_or_skip("the trust boundary between root and an app's user") {
        return;
    }
    let s = Slipway::new();
    let (a, b) = (s.app("trustca"), s.app("trustcb"));
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &a, "--repo", repo.path()]);
    s.ok(&["deploy", &b, "--repo", repo.path()]);
    let b_web = processes(&s, &b);

    let apps = s.home.path().join("apps");
    let attack = as_app(
        &s,
        &a,
        &format!(
            "cd {dir}; mv releases releases.old; ln -s ../{b}/releases releases; true",
            dir = apps.join(&a).display()
        ),
    );
    // Commands of every kind on A, including a redeploy, which retires A's old release.
    s.run(&["apps", "list"]);
    s.run(&["ps", &a]);
    s.run(&["deploy", &a, "--repo", repo.path()]);
    s.run(&["ps", "restart", &a]);
    assert!(apps.join(&b).join("releases/v1/app/Procfile").is_file(), "B's current release was deleted");
    assert_eq!(processes(&s, &b), b_web, "B's processes were touched");
    assert_eq!(s.release(&b), "v1");
    s.ok(&["deploy", &b, "--repo", repo.path()]);
    assert_eq!(s.release(&b), "v2");
    s.run(&["apps", "list"]);
    s.run(&["ps", "restart", &a]);
    assert_eq!(s.release(&b), "v2", "B's redeploy was undone");
    assert!(apps.join(&b).join("releases/v2/app/Procfile").is_file(), "B's redeployed release was deleted");
    assert!(
        String::from_utf8_lossy(&attack.stderr).contains("Permission denied"),
        "the attack met no resistance: {}",
        describe(&attack)
    );
    s.ok(&["deploy", &a, "--repo", repo.path()]);
}

#[test]
fn a_swapped_releases_directory_is_named_and_refused_and_the_other_app_is_untouched() {
    // As an upgraded home or a root-owned mistake would leave it: slipway must refuse to act
    // on a link where its directory should be, whoever made it.
    let s = Slipway::new();
    let (a, b) = (s.app("tampera"), s.app("tamperb"));
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &a, "--repo", repo.path()]);
    s.ok(&["deploy", &b, "--repo", repo.path()]);
    let b_before = processes(&s, &b);
    let a_releases = s.home.path().join("apps").join(&a).join("releases");
    std::fs::rename(&a_releases, a_releases.with_file_name("releases.real")).unwrap();
    std::os::unix::fs::symlink(format!("../{b}/releases"), &a_releases).unwrap();

    let out = s.run(&["deploy", &a, "--repo", repo.path()]);
    assert!(!out.status.success(), "a deploy through a swapped releases directory succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&a_releases.display().to_string()) && err.contains("a symlink to ../"),
        "the tampering is not named: {}",
        describe(&out)
    );
    s.ok(&["apps", "list"]);
    let restart = s.run(&["ps", "restart", &a]);
    assert!(!restart.status.success(), "{}", describe(&restart));
    assert_eq!(processes(&s, &b), b_before, "B's processes were touched");
    assert_eq!(s.release(&b), "v1");
    assert!(s.home.path().join("apps").join(&b).join("releases/v1/app/Procfile").is_file());
    // Once an administrator puts it right, A works again.
    std::fs::remove_file(&a_releases).unwrap();
    std::fs::rename(a_releases.with_file_name("releases.real"), &a_releases).unwrap();
    s.ok(&["deploy", &a, "--repo", repo.path()]);
    let up = wait_for(Duration::from_secs(5), || {
        s.ps(&a)["instances"]
            .as_array()?
            .iter()
            .any(|i| i["ptype"] == "web" && i["state"] == "up")
            .then_some(())
    });
    assert!(up.is_some(), "A does not work again once its directory is put right");
}

#[test]
fn release_state_is_root_only_and_the_release_folder_is_not_the_apps() {
    if !common::require::root_or_skip("root-owned release folders") {
        return;
    }
    let s = Slipway::new();
    let app = s.app("trustlayout");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let state = state_release(&s, &app, "v1");
    for f in ["plan.json", "status.json", "supervisor.pid", "supervisor.lock"] {
        assert_eq!(std::fs::metadata(state.join(f)).unwrap().uid(), 0, "{f}");
    }
    let dir = s.home.path().join("apps").join(&app);
    for (path, mode) in
        [(dir.clone(), 0o750), (dir.join("releases"), 0o750), (dir.join("releases/v1"), 0o750)]
    {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, mode), "{}", path.display());
    }
    for f in ["plan.json", "status.json", "supervisor.pid", "supervisor.lock"] {
        assert!(!dir.join("releases/v1").join(f).exists(), "{f} is still in the app's reach");
    }
    let out = as_app(&s, &app, &format!("touch {}/x", dir.join("releases/v1").display()));
    assert!(!out.status.success(), "the app can write to its release folder");
}
