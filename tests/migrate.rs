//! `slipway apps migrate`: an app whose tree an earlier slipway made (everything below
//! `apps/APP` but the mount's contents owned by the app's user, release plans, status, pid and
//! lock files in the release folder) is brought to the current layout, as root, keeping its
//! mount and serving its commit again; nothing the app's user planted is trusted or followed.
//!
//! The earlier layout is made by hand from a fresh deploy, exactly as the earlier slipway left
//! it. Its supervisor is left running: it was started by the same `detached::spawn`, with the
//! same command line (`slipway --home HOME __supervise APP v1`) as the earlier slipway's, so it
//! is a faithful old supervisor; only its files are moved where the earlier slipway kept them.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::require::root_or_skip;
use common::{BIN, Repo, Slipway, describe, http_get, wait_for};

/// The app's system user from `apps info --json`: uid, gid.
fn user_of(s: &Slipway, app: &str) -> (u32, u32) {
    let info: serde_json::Value = serde_json::from_str(&s.ok(&["apps", "info", app, "--json"])).unwrap();
    let id = |k: &str| u32::try_from(info["run_as"][k].as_u64().unwrap()).unwrap();
    (id("uid"), id("gid"))
}

/// Run `script` under bash as `uid`/`gid` with no supplementary groups.
fn as_user(uid: u32, gid: u32, script: &str) -> Output {
    Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()])
        .args(["bash", "-c", script])
        .output()
        .unwrap()
}

/// The kernel's start time of `pid`, if it lives (zombies do not count).
fn started(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (!fields.first()?.starts_with(['Z', 'X'])).then(|| fields.get(19)?.parse().ok())?
}

/// A root process that is nobody's supervisor; killed on drop.
struct Decoy(Child);

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The served body of the app's stable address, once it answers 200.
fn served(s: &Slipway, app: &str) -> Option<String> {
    let port = s.router_port(app);
    wait_for(Duration::from_secs(20), || http_get(port).ok().filter(|(c, _)| *c == 200).map(|(_, b)| b))
}

/// An app deployed from the seed demo, with `data.csv` (which its web serves) put in its mount.
fn deployed(s: &Slipway) -> (String, Repo) {
    let app = s.app("migrate");
    let data = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(data.path(), "seed,1\n").unwrap();
    s.ok(&["mount", "put", &app, data.path().to_str().unwrap(), "data.csv"]);
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    assert!(served(s, &app).is_some_and(|b| b.starts_with("seed,1\n")), "the fresh deploy does not serve");
    (app, repo)
}

/// `chown -h uid:gid` on `path` and everything below it, without following links.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

/// Turn the app's tree into the earlier slipway's: v1's root-only files back in its folder
/// (its pid file naming `decoy`, a root process that is not its supervisor: a pid file the
/// app could rewrite must not be believed), everything but the mount given to the app's user,
/// `apps/APP` mode 0700. Returns the pid and start time of v1's (still running) supervisor.
fn to_earlier_layout(s: &Slipway, app: &str, decoy: &Decoy) -> (i32, u64) {
    let (uid, gid) = user_of(s, app);
    let state = s.home.path().join("state").join(app).join("releases/v1");
    let dir = s.home.path().join("apps").join(app);
    let release = dir.join("releases/v1");
    let pid: i32 = std::fs::read_to_string(state.join("supervisor.pid")).unwrap().trim().parse().unwrap();
    let start = started(pid).expect("v1's supervisor runs");
    for f in ["plan.json", "status.json", "supervisor.pid", "supervisor.lock"] {
        std::fs::rename(state.join(f), release.join(f)).unwrap();
    }
    std::fs::write(release.join("supervisor.pid"), decoy.0.id().to_string()).unwrap();
    // The earlier slipway kept no buildpack cache beside the releases.
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    std::os::unix::fs::lchown(&dir, Some(uid), Some(gid)).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap() != "mount" {
            chown_tree(&path, uid, gid);
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    (pid, start)
}

fn decoy() -> Decoy {
    Decoy(Command::new("sleep").arg("600").spawn().unwrap())
}

#[test]
fn an_app_in_the_earlier_layout_is_migrated_keeping_its_mount_and_serving_its_commit() {
    if !root_or_skip("apps migrate") {
        return;
    }
    let s = Slipway::new();
    let (app, repo) = deployed(&s);
    let decoy = decoy();
    let (supervisor, start) = to_earlier_layout(&s, &app, &decoy);

    let refused = s.run(&["deploy", &app, "--repo", repo.path()]);
    let text = describe(&refused);
    assert!(!refused.status.success(), "a deploy used the earlier layout: {text}");
    assert!(text.contains(&format!("run `slipway apps migrate {app}` as root")), "{text}");

    let out = s.run(&["apps", "migrate", &app]);
    let text = describe(&out);
    assert!(out.status.success(), "{text}");
    eprintln!("{text}");
    assert!(text.contains("stopped the supervisor of v1"), "{text}");
    assert!(
        wait_for(Duration::from_secs(5), || (started(supervisor) != Some(start)).then_some(())).is_some(),
        "the earlier supervisor {supervisor} survived the migration"
    );
    assert!(started(i32::try_from(decoy.0.id()).unwrap()).is_some(), "the pid file's decoy was signalled");

    let body = served(&s, &app).expect("the migrated app does not serve through its router");
    assert!(body.starts_with("seed,1\n"), "the mount's data.csv was lost: {body:?}");
    assert_eq!(s.release(&app), "v2", "the current commit was not deployed again");
    let dir = s.home.path().join("apps").join(&app);
    for (path, mode) in
        [(dir.clone(), 0o750), (dir.join("releases"), 0o750), (dir.join("releases/v2"), 0o750)]
    {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, mode), "{} is not root's", path.display());
    }
    assert!(!dir.join("releases/v1").exists(), "the earlier release folder is left");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().starts_with(".slipway-migrate")), "{names:?}");

    let again = s.run(&["apps", "migrate", &app]);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already uses the current layout; nothing changed")
    );
    assert_eq!(s.release(&app), "v2", "a second migrate deployed again");
}

#[test]
fn links_the_app_planted_in_its_earlier_tree_are_removed_never_followed() {
    if !root_or_skip("apps migrate") {
        return;
    }
    let s = Slipway::new();
    let (app, _repo) = deployed(&s);
    let decoy = decoy();
    to_earlier_layout(&s, &app, &decoy);
    let (uid, gid) = user_of(&s, &app);
    let targets: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for t in &targets {
        std::fs::write(t.path().join("keep"), "root's").unwrap();
    }
    let dir = s.home.path().join("apps").join(&app);
    let plant = as_user(
        uid,
        gid,
        &format!(
            "set -e; cd {}; rm -rf releases/v1/home workspace; ln -s {} releases/v1/home; ln -s {} workspace",
            dir.display(),
            targets[0].path().display(),
            targets[1].path().display()
        ),
    );
    assert!(plant.status.success(), "the app's user could not plant its links: {}", describe(&plant));

    let out = s.run(&["apps", "migrate", &app]);
    assert!(out.status.success(), "{}", describe(&out));
    for t in &targets {
        assert_eq!(std::fs::read_to_string(t.path().join("keep")).unwrap(), "root's", "a link was followed");
        assert_eq!(std::fs::symlink_metadata(t.path()).unwrap().uid(), 0, "a link's target was chowned");
    }
    assert!(std::fs::symlink_metadata(dir.join("workspace")).is_err(), "the planted workspace link is left");
    assert!(served(&s, &app).is_some_and(|b| b.starts_with("seed,1\n")));
}

#[test]
fn apps_migrate_refuses_to_run_without_root() {
    if !root_or_skip("running slipway as another user") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_user(65534, 65534, &format!("{BIN} --home {} apps migrate demo", home.path().display()));
    let text = describe(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("must run as root"), "{text}");
}

#[test]
fn an_earlier_app_never_deployed_gets_its_tree_back_and_deploys_after() {
    if !root_or_skip("apps migrate") {
        return;
    }
    let s = Slipway::new();
    let app = s.app("migrate");
    let (uid, gid) = user_of(&s, &app);
    let dir = s.home.path().join("apps").join(&app);
    for path in [&dir, &dir.join("releases")] {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    let out = s.run(&["apps", "migrate", &app]);
    let text = describe(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no current release to deploy again"), "{text}");
    for path in [dir.clone(), dir.join("releases")] {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (0, gid, 0o750), "{}", path.display());
    }
    assert!(dir.join("mount").is_dir(), "the mount went");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(s.release(&app), "v1");
}
