//! A Docker engine that accepts connections but never answers (issue 11 §4): commands that
//! do not need it finish as if it were not there, and those that do fail quickly with a
//! message that says so. No real engine is needed: the test serves the silent socket itself.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixListener;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Slipway, describe};

/// Runs `slipway ARGS` against the silent engine; returns the output and how long it took.
fn timed(sw: &Slipway, host: &str, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = sw.cmd().env("DOCKER_HOST", host).args(args).output().unwrap();
    (out, start.elapsed())
}

#[test]
fn a_hung_engine_never_stalls_commands_that_do_not_need_it_and_times_out_clearly_for_those_that_do() {
    if !common::require::root_or_skip("mount enable of a local app") {
        return;
    }
    let sw = Slipway::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // Accepts every connection and keeps it open, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let host = format!("unix://{}", socket.display());
    let local = sw.app("hl");
    let docker_app = common::app_name("hd");
    let (out, _) = timed(&sw, &host, &["apps", "create", &docker_app, "--runtime", "docker"]);
    sw.track(&docker_app);
    assert!(out.status.success(), "{}", describe(&out));

    for args in [vec!["apps", "list"], vec!["ps", local.as_str()], vec!["mount", "ls", local.as_str()]] {
        let (out, took) = timed(&sw, &host, &args);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        assert!(took < Duration::from_secs(6), "{args:?} took {took:?} with a hung engine");
    }
    let (out, took) = timed(&sw, &host, &["doctor"]);
    assert!(took < Duration::from_secs(25), "doctor took {took:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("docker")
            || String::from_utf8_lossy(&out.stderr).contains("docker"),
        "{}",
        describe(&out)
    );

    let repo = common::Repo::from_fixture("docker-dockerfile");
    let (out, took) = timed(&sw, &host, &["deploy", &docker_app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(took < Duration::from_secs(20), "a docker deploy took {took:?}");
    assert!(stderr.contains("did not answer within") && stderr.contains("DOCKER_HOST"), "{stderr}");
}
