//! `logs -f` on the docker runtime keeps following a process after its container restarts
//! or is replaced (issue 11 §4).
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use common::{Repo, Slipway};

#[test]
fn logs_follow_keeps_printing_a_process_after_ps_restart_replaces_its_container() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-procfile");
    repo.write(
        "Procfile",
        "web: exec python3 -m http.server $PORT\n\
         worker: echo started-$(cat /proc/sys/kernel/random/uuid); while true; do echo tick; sleep 0.3; done\n",
    );
    repo.commit("a chatty worker");
    let app = sw.app_with("dlf", &["--runtime", "docker"]);
    sw.ok(&["deploy", &app, "--repo", repo.path()]);

    let mut child = sw.cmd().args(["logs", &app, "worker", "-f"]).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for_line = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(500))
                && line.contains(what)
            {
                return Some(line);
            }
        }
        None
    };
    assert!(wait_for_line("tick").is_some(), "logs -f printed the running worker");
    sw.ok(&["ps", "restart", &app, "worker"]);
    let started = wait_for_line("started-");
    let ticking = started.as_ref().and_then(|_| wait_for_line("tick"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started.is_some(), "logs -f never printed the new container's start");
    assert!(ticking.is_some(), "logs -f stopped after the restart");
}
