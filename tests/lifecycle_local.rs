//! The CNB lifecycle on the local runtime: buildpacks run on the host as the app's user, their
//! launch layers reach every process, script, one-off and the workspace, cache layers survive
//! releases, launch.toml types are process types, and root follows no link a buildpack plants.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;

fn instances(s: &Slipway, app: &str, ptype: &str) -> Vec<serde_json::Value> {
    s.ps(app)["instances"]
        .as_array()
        .expect("ps lists instances")
        .iter()
        .filter(|i| i["ptype"] == ptype && i["state"] == "up")
        .cloned()
        .collect()
}

fn environ(pid: u64) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the process is running");
    raw.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

#[test]
fn a_buildpack_launch_layer_reaches_every_process_and_its_cache_survives_releases() {
    let s = Slipway::new();
    let app = s.app("lc");
    // A buildpack type takes a scale like any other, before its first deploy too.
    s.ok(&["ps", "scale", &app, "ticker=2"]);
    let repo = Repo::from_fixture("lifecycle-tools");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[lifecycle] detect: fixtures/tools, slipway/procfile"), "{stderr}");
    assert!(stderr.contains("tools: build 1"), "{stderr}");
    let layer = s.home.path().join(format!("apps/{app}/releases/v1/layers/fixtures_tools/tools"));

    // predeploy: layer env, profile.d and the layer's bin/ on PATH.
    assert!(
        stderr.contains(&format!("predeploy: from-tools 1 {}/bin/hello", layer.display())),
        "predeploy lacks the launch environment:\n{stderr}"
    );
    // A supervised process (web): its environment was set up by the launcher.
    let web = instances(&s, &app, "web");
    let env = environ(web[0]["pid"].as_u64().unwrap());
    for want in ["GREETING=from-tools", "PROFILE_SEEN=1", "TOOLS_LIST=tools-lib"] {
        assert!(env.iter().any(|e| e == want), "web lacks {want}: {env:?}");
    }
    let path = env.iter().find(|e| e.starts_with("PATH=")).unwrap();
    assert!(path.starts_with(&format!("PATH={}/bin:", layer.display())), "{path}");
    // A one-off and the workspace.
    let run = s.ok(&["run", &app, "--", "echo $GREETING $PROFILE_SEEN; hello"]);
    assert_eq!(run, "from-tools 1\nhello from a launch layer (build 1)\n");
    s.ok(&["workspace", "create", &app]);
    let ws = s.ok(&["workspace", "run", &app, "--", "echo $GREETING; hello; pwd"]);
    assert!(ws.starts_with("from-tools\nhello from a launch layer (build 1)\n"), "{ws}");
    assert!(ws.trim_end().ends_with("/workspace/app"), "the workspace keeps its own cwd: {ws}");
    // The build-only layer is gone, the launch layer belongs to the app's user.
    let layers = layer.parent().unwrap();
    assert!(!layers.join("scratch").exists(), "a build-only layer was kept");
    let owner = std::fs::metadata(&layer).unwrap().uid();
    assert_ne!(owner, 0, "layers must be the app's, not root's");

    // Buildpack process types are process types; the Procfile's clock wins over the buildpack's.
    let ps = s.ok(&["ps", &app]);
    assert!(ps.contains("ticker"), "{ps}");
    assert_eq!(instances(&s, &app, "ticker").len(), 2, "ticker=2 not applied: {}", s.ps(&app));
    let before: Vec<_> = instances(&s, &app, "ticker").iter().map(|i| i["pid"].clone()).collect();
    s.ok(&["ps", "restart", &app, "ticker"]);
    let restarted = wait_for(Duration::from_secs(10), || {
        let now: Vec<_> = instances(&s, &app, "ticker").iter().map(|i| i["pid"].clone()).collect();
        (now.len() == 2 && now.iter().all(|p| !before.contains(p))).then_some(())
    });
    assert!(restarted.is_some(), "ticker not restarted: {}", s.ps(&app));
    s.ok(&["ps", "scale", &app, "ticker=1"]);
    let one = wait_for(Duration::from_secs(10), || (instances(&s, &app, "ticker").len() == 1).then_some(()));
    assert!(one.is_some(), "ticker=1 not applied: {}", s.ps(&app));
    let logs = wait_for(Duration::from_secs(10), || {
        let l = s.ok(&["logs", &app, "-n", "200"]);
        (l.contains("tick from-tools") && l.contains("procfile clock")).then_some(l)
    });
    let logs = logs.unwrap_or_else(|| s.ok(&["logs", &app, "-n", "200"]));
    assert!(logs.contains("tick from-tools"), "{logs}");
    assert!(logs.contains("procfile clock") && !logs.contains("buildpack clock"), "{logs}");
    let oneoff = s.ok(&["run", &app, "--", "echo $GREETING"]);
    assert_eq!(oneoff.trim(), "from-tools");

    // The cache layer comes back for the next release; v1's launch layer leaves with v1.
    repo.write("index.html", "<p>v2</p>\n");
    repo.commit("v2");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tools: build 2"), "{}", describe(&out));
    assert_eq!(s.ok(&["run", &app, "--", "hello"]), "hello from a launch layer (build 2)\n");
    assert!(!layer.exists(), "v1's layers outlived v1");
    let cached = s.home.path().join(format!("apps/{app}/cache/layers/fixtures_tools/tools/count"));
    assert_eq!(std::fs::read_to_string(cached).unwrap().trim(), "2");
    assert_eq!(instances(&s, &app, "ticker").len(), 1, "the scale of a buildpack type survives a deploy");
}

#[test]
fn a_symlink_a_buildpack_plants_is_never_followed_by_root() {
    let s = Slipway::new();
    let app = s.app("lctrap");
    // Root's own files, which the app's user can neither read nor change.
    let secret = tempfile::tempdir().unwrap();
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = secret.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "root's").unwrap();
    let file = secret.path().join("launch.toml");
    std::fs::write(&file, "[[processes]]\ntype = \"root-secret\"\ncommand = [\"x\"]\n").unwrap();

    // A cache layer that is a link to root's directory: saved, restored and removed as a link.
    let repo = Repo::from_fixture("lifecycle-tools");
    repo.write("trap-target", dir.to_str().unwrap());
    repo.commit("trap");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    repo.write("index.html", "<p>v2</p>\n");
    repo.commit("v2");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let cached = s.home.path().join(format!("apps/{app}/cache/layers/fixtures_tools/trap"));
    assert!(
        std::fs::symlink_metadata(&cached).unwrap().file_type().is_symlink(),
        "the link was not kept as a link"
    );
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "root's");
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 0, "root's directory changed hands");

    // launch.toml as a link to root's file: the build fails, root's file is not read.
    let port = s.web_port(&app);
    repo.write("launch-target", file.to_str().unwrap());
    repo.commit("launch link");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(!out.status.success(), "a launch.toml link to root's file deployed: {}", describe(&out));
    let all = describe(&out);
    assert!(all.contains("read results"), "{all}");
    assert!(!all.contains("root-secret"), "root's file leaked into the output: {all}");
    assert_eq!(s.release(&app), "v2", "the failed deploy replaced the running release");
    assert!(http_get(port).is_ok(), "v2 stopped serving");
    s.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "root's", "destroy followed the link");
}

#[test]
fn nothing_a_build_starts_outlives_it() {
    let s = Slipway::new();
    let app = s.app("lcdaemon");
    let tag = format!("slipway-build-daemon-{}", std::process::id());
    let repo = Repo::from_fixture("lifecycle-tools");
    repo.write("daemon-tag", &tag);
    repo.commit("a build that leaves a daemon");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let left = std::process::Command::new("pgrep").args(["-f", &tag]).output().unwrap();
    let pids = String::from_utf8_lossy(&left.stdout).trim().to_owned();
    if !pids.is_empty() {
        for pid in pids.lines() {
            common::sigkill(pid.parse().unwrap());
        }
    }
    assert_eq!(pids, "", "the build's daemon outlived the build");
}

#[test]
fn a_build_killed_with_its_deploy_is_stopped_by_the_next_command() {
    let s = Slipway::new();
    let app = s.app("lckill");
    let repo = Repo::from_fixture("lifecycle-tools");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let tag = format!("slipway-slow-build-{}", std::process::id());
    repo.write("slow-build", &tag);
    repo.commit("a build that takes its time");
    s.kill_at(
        &["deploy", &app, "--repo", repo.path()],
        "slow build begins",
        std::time::Duration::from_secs(60),
        std::time::Duration::ZERO,
    );
    let running = || {
        let out = std::process::Command::new("pgrep").args(["-f", &tag]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // The next command finds the killed deploy's release and stops what its build ran.
    assert_eq!(s.release(&app), "v1");
    let left = running();
    for pid in left.lines() {
        common::sigkill(pid.parse().unwrap());
    }
    assert_eq!(left, "", "the killed deploy's build is still running");
}
