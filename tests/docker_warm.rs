//! Warm docker redeploys (issue 8): a code-only redeploy's build container starts from the
//! previous release's build image and keeps its sealed venv layer (pip does not run, nothing
//! is copied); a requirements change rebuilds the venv there, and the next build rebases on
//! the stack; each image carries its own release's labels; rollback still works; and
//! `apps destroy` leaves none of the app's images, the bases later builds stood on included.
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Repo, Slipway, describe};

const WARM: &str = "[lifecycle] base: the previous build's image";

/// `docker image inspect -f FORMAT IMAGE`, or `None` if the engine has no such image.
fn inspect(image: &str, format: &str) -> Option<String> {
    let out = Command::new("docker").args(["image", "inspect", "-f", format, image]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn label(image: &str, key: &str) -> String {
    inspect(image, &format!("{{{{index .Config.Labels \"{key}\"}}}}"))
        .unwrap_or_else(|| panic!("no image {image}"))
}

/// Notes `image`'s id and its parent's in `seen`.
fn note(image: &str, seen: &mut BTreeSet<String>) {
    seen.insert(inspect(image, "{{.Id}}").unwrap());
    let parent = inspect(image, "{{.Parent}}").unwrap();
    if !parent.is_empty() {
        seen.insert(parent);
    }
}

/// The short id of the build image a deploy's `[lifecycle] commit: <id> (..s)` line names.
fn committed(stderr: &str) -> &str {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("[lifecycle] commit: "))
        .unwrap_or_else(|| panic!("no commit line in {stderr}"));
    &line[..12]
}

/// The full id of the build image a deploy committed (before predeploy's commit).
fn build_image(stderr: &str) -> String {
    let short = committed(stderr);
    inspect(short, "{{.Id}}").unwrap_or_else(|| panic!("no image {short}"))
}

/// Deploys and returns stderr, failing with the whole output if the deploy failed.
fn deploy(sw: &Slipway, app: &str, repo: &Repo) -> String {
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    assert!(out.status.success(), "deploy: {}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_code_change_builds_on_the_previous_image_and_a_rebuilt_venv_rebases_the_next_build() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("dwarm", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-python-warm");
    let tag = |release: &str| format!("slipway/{app}:{release}");
    // Every image id seen, parents included: none may survive `apps destroy`.
    let mut seen = BTreeSet::new();

    // v1: from the stack, with a fresh venv.
    let v1 = deploy(&sw, &app, &repo);
    assert!(!v1.contains(WARM), "the first build starts from the stack: {v1}");
    assert!(v1.contains("installing dependencies"), "{v1}");
    let v1_id = build_image(&v1);
    let layers = |id: &str| -> Vec<String> {
        serde_json::from_str(&inspect(id, "{{json .RootFS.Layers}}").unwrap()).unwrap()
    };
    // Read now: once v1 retires nothing stands on its build image (v2's is loaded, with no
    // parent), so it goes with v1.
    let v1_layers = layers(&v1_id);
    assert_eq!(label(&tag("v1"), "slipway.base.depth"), "0");
    assert_eq!(label(&tag("v1"), "slipway.base.sealed"), "slipway_python/venv");
    note(&tag("v1"), &mut seen);
    note(&v1_id, &mut seen);
    let venv_toml = || sw.ok(&["run", &app, "--", "cat /layers/slipway_python/venv.toml"]);
    let installed_at = |t: &str| t.lines().find(|l| l.starts_with("installed_at")).unwrap().to_owned();
    let first_install = installed_at(&venv_toml());

    // v2, a code change: built on v1's image, the venv kept as it was, pip not run.
    repo.write("index.html", "<p>v2</p>\n");
    repo.git(&["rm", "-q", "old.txt"]);
    repo.commit("code only");
    let v2 = deploy(&sw, &app, &repo);
    assert!(v2.contains(&format!("{WARM} {}", &v1_id["sha256:".len()..][..12])), "{v2}");
    assert!(v2.contains("venv reused, pip not run"), "{v2}");
    let v2_id = build_image(&v2);
    // v2's build image is v1's layers and one more: the build's own changes, tarred from
    // its upper directory and loaded, not committed by a diff of the whole tree.
    let v2_layers = layers(&v2_id);
    assert_eq!(v2_layers[..v2_layers.len() - 1], v1_layers[..], "v2's build image stands on v1's layers");
    assert_eq!(v2_layers.len(), v1_layers.len() + 1);
    assert_eq!(inspect(&v2_id, "{{.Parent}}").unwrap(), "", "loaded, not committed: no parent image");
    assert!(v2.contains("one layer loaded)"), "{v2}");
    note(&v2_id, &mut seen);
    // Its own labels, none inherited from v1's image.
    assert_eq!(label(&tag("v2"), "slipway.release"), "v2");
    assert_eq!(label(&tag("v2"), "slipway.commit"), repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(label(&tag("v2"), "slipway.base.depth"), "1");
    assert_eq!(label(&tag("v2"), "slipway.base.rebase"), "false");
    note(&tag("v2"), &mut seen);
    // The new commit's tree, not the old one's: the removed file is gone from the image.
    assert_eq!(
        sw.ok(&["run", &app, "--", "cat index.html; test -e old.txt && echo stale || echo clean"]),
        "<p>v2</p>\nclean\n"
    );
    let predeployed = sw.ok(&["run", &app, "--", "cat predeployed.txt"]);
    assert!(
        predeployed.starts_with("predeployed with Python 3"),
        "predeploy's commit is the release: {predeployed}"
    );
    assert_eq!(installed_at(&venv_toml()), first_install, "the same venv");
    let layout = sw.ok(&["run", &app, "--", "ls -A /layers/slipway_python /platform/env"]);
    assert_eq!(
        layout.split_whitespace().collect::<Vec<_>>()[1..],
        ["venv", "venv.toml", "/platform/env:"],
        "only the venv, no cache-only layer, no app config: {layout}"
    );
    let port = sw.router_port(&app);
    let page =
        Command::new("curl").args(["-fsS", &format!("http://127.0.0.1:{port}/index.html")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout), "<p>v2</p>\n", "v2 serves");

    // v3, a requirements change: still built on v2's image, the venv rebuilt there, so the
    // image says the next build must start from the stack.
    let reqs = std::fs::read_to_string(repo.dir.path().join("requirements.txt")).unwrap();
    repo.write("requirements.txt", &format!("{reqs}# changed\n"));
    repo.commit("requirements changed");
    let v3 = deploy(&sw, &app, &repo);
    assert!(v3.contains(WARM), "{v3}");
    assert!(v3.contains("installing dependencies"), "{v3}");
    assert_eq!(label(&tag("v3"), "slipway.base.depth"), "2");
    assert_eq!(label(&tag("v3"), "slipway.base.rebase"), "true");
    note(&tag("v3"), &mut seen);
    let v3_id = build_image(&v3);
    note(&v3_id, &mut seen);
    let second_install = installed_at(&venv_toml());
    assert_ne!(second_install, first_install, "pip ran again");

    // v4, a code change: rebased on the stack; the rebuilt venv comes back from the cache.
    repo.write("index.html", "<p>v4</p>\n");
    repo.commit("code only again");
    let v4 = deploy(&sw, &app, &repo);
    assert!(v4.contains("[lifecycle] base: the stack image"), "{v4}");
    assert!(v4.contains("the previous build replaced a layer it kept"), "{v4}");
    assert!(v4.contains("venv reused, pip not run"), "the export cached the rebuilt venv: {v4}");
    assert_eq!(label(&tag("v4"), "slipway.base.depth"), "0");
    let v4_id = build_image(&v4);
    assert_ne!(inspect(&v4_id, "{{.Parent}}").unwrap(), v3_id, "not built on v3's image");
    assert_eq!(installed_at(&venv_toml()), second_install);
    note(&tag("v4"), &mut seen);
    note(&v4_id, &mut seen);
    // Retiring v3 freed the chain v1 <- v2 <- v3: none of it is left.
    for (old, id) in [("v1", &v1_id), ("v2", &v2_id), ("v3", &v3_id)] {
        assert!(inspect(id, "{{.Id}}").is_none(), "{old}'s build image outlived the chain");
    }

    fail_roll_back_and_destroy(&sw, &app, &repo, &v4_id, seen);
}

/// v5 crashes at start; rollback builds v3's commit on v4's build image; `apps destroy` then
/// leaves none of the images in `seen` (every image and parent the scenario made).
fn fail_roll_back_and_destroy(sw: &Slipway, app: &str, repo: &Repo, v4_id: &str, mut seen: BTreeSet<String>) {
    let tag = |release: &str| format!("slipway/{app}:{release}");
    // v5 crashes at start, so it is removed; its image stood on v4's build image, which is
    // untagged (predeploy's commit holds the tag) and must survive it for the next build.
    repo.write("Procfile", "web: exit 3\n");
    repo.commit("crashes");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    assert!(!out.status.success(), "a crashing release fails its deploy");
    let failed = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(failed.contains(WARM), "{failed}");
    assert!(inspect(committed(&failed), "{{.Id}}").is_none(), "the failed release's image is removed");
    assert_eq!(sw.release(app), "v4");
    assert!(inspect(v4_id, "{{.Id}}").is_some(), "the failed release's removal left v4's build image");

    // Rollback builds v3's commit again, on v4's image: same requirements, so no pip.
    let out = sw.run(&["rollback", app]);
    assert!(out.status.success(), "rollback: {}", describe(&out));
    let rolled = String::from_utf8_lossy(&out.stderr);
    assert!(rolled.contains(&format!("{WARM} {}", &v4_id["sha256:".len()..][..12])), "{rolled}");
    assert!(rolled.contains("venv reused, pip not run"), "{rolled}");
    let rolled_back = tag(&sw.release(app));
    assert_eq!(sw.ok(&["run", app, "--", "cat index.html"]), "<p>v2</p>\n", "v3's tree is back");
    note(&rolled_back, &mut seen);
    note(&build_image(&rolled), &mut seen);

    // Retired releases are gone by tag; the images later builds stood on stay only as their
    // parents (untagged), and `apps destroy` takes every one of them.
    for old in ["v1", "v2", "v3", "v5"] {
        assert!(inspect(&tag(old), "{{.Id}}").is_none(), "{old}'s tag is removed when it retires");
    }
    let out = sw.run(&["apps", "destroy", app, "--confirm", app]);
    assert!(out.status.success(), "{}", describe(&out));
    let stack = inspect(common::STACK, "{{.Id}}").unwrap();
    for id in &seen {
        if *id != stack {
            assert!(inspect(id, "{{.Id}}").is_none(), "apps destroy left image {id}");
        }
    }
    assert!(inspect(common::STACK, "{{.Id}}").is_some(), "the stack stays");
    let filter = format!("label=slipway.app={app}");
    let left = Command::new("docker").args(["images", "-a", "-q", "--filter", &filter]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "no image of the app is left");
}

#[test]
fn a_warm_build_killed_after_its_commit_leaves_nothing_and_the_base_stays_for_the_next() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("dwkill", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-python-warm");
    let v1 = deploy(&sw, &app, &repo);
    let v1_build = build_image(&v1);

    // Killed once its image is committed (and recorded), before predeploy ran.
    repo.write("index.html", "<p>killed</p>\n");
    repo.commit("killed deploy");
    let args = ["deploy", app.as_str(), "--repo", repo.path()];
    sw.kill_at(&args, "[lifecycle] commit:", std::time::Duration::from_secs(300), std::time::Duration::ZERO);
    let filter = format!("label=slipway.app={app}");
    let of_v2 = || {
        let out = Command::new("docker")
            .args(["ps", "-a", "-q", "--filter", &filter, "--filter", "label=slipway.release=v2"])
            .output()
            .unwrap();
        let images = Command::new("docker")
            .args(["images", "-a", "-q", "--filter", &filter, "--filter", "label=slipway.release=v2"])
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&images.stdout))
    };
    assert!(!of_v2().trim().is_empty(), "the killed deploy left its image for the next command");

    // The next command repairs: nothing of v2 is left, and v1's build image stays the base.
    sw.ok(&["ps", &app]);
    assert_eq!(of_v2().trim(), "", "nothing of the killed release is left");
    assert!(inspect(&v1_build, "{{.Id}}").is_some(), "the current release's build image stays");
    let v3 = deploy(&sw, &app, &repo);
    assert!(v3.contains(&format!("{WARM} {}", &v1_build["sha256:".len()..][..12])), "{v3}");
    assert!(v3.contains("venv reused, pip not run"), "{v3}");
}
