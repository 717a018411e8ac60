//! `apps destroy` during a docker deploy waits for the deploy, then removes what it made,
//! the new release included: it reads the app's record only once it holds the lock
//! (issue 11 §4).
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Repo, Slipway, describe};

fn engine_names(app: &str) -> String {
    let filter = format!("label=slipway.app={app}");
    let mut all = String::new();
    for args in [
        vec!["ps", "-a", "--filter", filter.as_str(), "--format", "{{.Names}}"],
        vec!["volume", "ls", "--filter", filter.as_str(), "--format", "{{.Name}}"],
        vec!["images", "--filter", filter.as_str(), "--format", "{{.Repository}}:{{.Tag}}"],
    ] {
        let out = Command::new("docker").args(&args).output().unwrap();
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    all
}

#[test]
fn apps_destroy_during_a_deploy_waits_then_removes_the_new_release_too() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-dockerfile");
    let app = sw.app_with("dds", &["--runtime", "docker"]);
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    let dockerfile = std::fs::read_to_string(repo.dir.path().join("Dockerfile")).unwrap();
    repo.write("Dockerfile", &format!("{dockerfile}RUN echo slow-step && sleep 8\n"));
    repo.commit("slow v2");

    let mut deploy = sw
        .cmd()
        .args(["deploy", &app, "--repo", repo.path()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = deploy.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("slow-step") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("the deploy reached its slow step");
    let destroy = sw.run(&["apps", "destroy", &app, "--confirm", &app]);
    let deployed = deploy.wait().unwrap();
    assert!(destroy.status.success(), "{}", describe(&destroy));
    assert!(deployed.success(), "the deploy finished before destroy went on");
    let left = engine_names(&app);
    assert_eq!(left.trim(), "", "destroy left: {left}");
    assert!(!sw.run(&["ps", &app]).status.success(), "the app is gone");
    let network =
        Command::new("docker").args(["network", "inspect", &format!("slipway-{app}")]).output().unwrap();
    assert!(!network.status.success(), "the app's network is gone");
}
