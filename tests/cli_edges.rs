//! Small defects of the command line (issue 7, part 5): reserved variables, `--listen 0`, a
//! reader that hangs up, and `run` arguments that must reach the program as given.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::{Repo, Slipway, app_name, describe};

fn config(s: &Slipway, app: &str) -> serde_json::Value {
    serde_json::from_str(&s.ok(&["config", app, "--json"])).unwrap()
}

#[test]
fn config_set_of_a_variable_slipway_sets_is_refused_and_changes_nothing() {
    let s = Slipway::new();
    let app = app_name("reserved");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    s.ok(&["config", "set", &app, "KEPT=1", "--no-restart"]);
    for var in ["PATH", "PORT", "HOME", "DYNO"] {
        let out = s.run(&["config", "set", &app, "OTHER=2", &format!("{var}=/x")]);
        assert_eq!(out.status.code(), Some(2), "{var}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{var} is set by slipway")), "{stderr}");
        assert_eq!(config(&s, &app), serde_json::json!({"KEPT": "1"}), "{var} changed the config");
    }
}

#[test]
fn apps_create_listen_0_records_and_serves_the_port_it_really_got() {
    let s = Slipway::new();
    let app = app_name("anyport");
    s.ok(&["apps", "create", &app, "--listen", "0"]);
    s.track(&app);
    let port = s.router_port(&app);
    assert_ne!(port, 0, "port 0 was recorded");
    let info: serde_json::Value = serde_json::from_str(&s.ok(&["apps", "info", &app, "--json"])).unwrap();
    assert_eq!(info["listen"], format!("127.0.0.1:{port}"));
    // Its router is really there: with no release yet it answers 503.
    let answer = common::wait_for(std::time::Duration::from_secs(10), || common::get(port, "/").ok());
    assert_eq!(answer.map(|(code, _)| code), Some(503));

    // Moving it to port 0 likewise lands on a real port.
    s.ok(&["apps", "set", &app, "--listen", "0"]);
    let moved = s.router_port(&app);
    assert!(moved != 0 && moved != port, "moved to {moved}");
    let answer = common::wait_for(std::time::Duration::from_secs(10), || common::get(moved, "/").ok());
    assert_eq!(answer.map(|(code, _)| code), Some(503));
}

#[test]
fn commands_whose_reader_hung_up_end_without_a_panic() {
    let s = Slipway::new();
    let app = app_name("epipe");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    for args in
        [vec!["releases", app.as_str()], vec!["apps", "list"], vec!["releases", app.as_str(), "--json"]]
    {
        // The reader is gone before slipway writes a byte, as `| head -1` is after its line.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s.cmd().args(&args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "slipway {args:?} panicked: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(13),
            "slipway {args:?} should end as `cat` does: {}",
            describe(&out)
        );
    }
}

#[test]
fn run_takes_one_argument_as_a_bash_line_and_several_as_an_exact_argv() {
    let s = Slipway::new();
    let app = s.app("argv");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);

    let words = ["printf", "%s|", "a", "x;id", "$(id -u)", "it's", "*", ""];
    let mut args = vec!["run", app.as_str(), "--"];
    args.extend(words);
    assert_eq!(s.ok(&args), "a|x;id|$(id -u)|it's|*||", "the words were re-parsed by a shell");
    assert_eq!(s.ok(&["run", &app, "--", "echo one; echo two"]), "one\ntwo\n");
    let out = s.run(&["run", &app, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let out = s.run(&["run", &app, "--", "no-such-program-here", "x"]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));

    s.ok(&["workspace", "create", &app]);
    let mut args = vec!["workspace", "run", app.as_str(), "--"];
    args.extend(words);
    assert_eq!(s.ok(&args), "a|x;id|$(id -u)|it's|*||", "workspace run re-parsed the words");
    assert_eq!(s.ok(&["workspace", "run", &app, "--", "echo one; echo two"]), "one\ntwo\n");
}

#[test]
fn docker_run_takes_one_argument_as_a_bash_line_and_several_as_an_exact_argv() {
    let s = Slipway::new();
    if !common::docker_ready(&s) {
        return;
    }
    let app = s.app_with("dargv", &["--runtime", "docker"]);
    let repo = Repo::from_fixture("docker-dockerfile");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let words = ["printf", "%s|", "a", "x;id", "$(id -u)", "it's", "*", ""];
    let mut args = vec!["run", app.as_str(), "--"];
    args.extend(words);
    assert_eq!(s.ok(&args), "a|x;id|$(id -u)|it's|*||", "the words were re-parsed by a shell");
    assert_eq!(s.ok(&["run", &app, "--", "echo one; echo two"]), "one\ntwo\n");
}
