//! `slipway local`: the Procfile in the foreground with the Dash Enterprise folder layout.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, copy_dir, describe, fixture};

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", describe(&out));
}

#[test]
fn a_mount_inside_the_git_work_tree_is_refused_with_the_fix() {
    // my-project is the repository and the app lives in my-project/app: ../mount would be
    // my-project/mount, inside the work tree.
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("my-project");
    copy_dir(&fixture("seed-demo"), &project.join("app"));
    git(&project, &["init", "-q"]);
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-qm", "init"]);
    let out = Command::new(BIN).arg("local").arg(project.join("app")).output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inside the git work tree") && stderr.contains("mount/"), "{stderr}");
    assert!(!project.join("mount").exists(), "refused, yet created the mount folder");
}

#[test]
fn runs_the_procfile_prefixed_by_type_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("my-project/app");
    copy_dir(&fixture("seed-demo"), &app);
    std::fs::create_dir_all(app.join("mount")).unwrap();
    std::fs::write(app.join("mount/committed.txt"), "oops").unwrap();
    git(&app, &["init", "-q"]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "init"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(BIN)
        .arg("local")
        .arg(&app)
        .args(["--predeploy", "--port", &port.to_string(), "--env", "WORKER_INTERVAL=0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen_web = false;
    let mut seen_worker = false;
    for line in stdout.lines().map_while(Result::ok) {
        seen_web |= line.starts_with("web.1") && line.contains("serving");
        seen_worker |= line.starts_with("worker.1") && line.contains("appended a line");
        if (seen_web && seen_worker) || Instant::now() > deadline {
            break;
        }
    }
    assert!(seen_web && seen_worker, "missing prefixed output (web {seen_web}, worker {seen_worker})");
    let (code, body) = common::wait_for(Duration::from_secs(5), || common::http_get(port).ok()).unwrap();
    assert_eq!(code, 200);
    assert!(body.lines().count() >= 2, "web does not serve ../mount/data.csv: {body:?}");
    let mount = tmp.path().join("my-project/mount");
    assert!(mount.join("last-predeploy.txt").is_file(), "--predeploy did not run against ../mount");

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("commits a `mount` folder"), "no warning about the committed mount:\n{stderr}");
    assert!(stderr.contains("SIGINT received, stopping all processes"), "{stderr}");
    assert!(common::http_get(port).is_err(), "web still answers after Ctrl-C");
}
