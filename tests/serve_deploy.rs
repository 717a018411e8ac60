//! `POST /api/apps/{app}/deploys` runs the CLI's deploy inside `slipway serve` and streams
//! it: lines arrive as the phases happen, the last line carries the outcome or the CLI's
//! error and exit code; a failed deploy leaves the old release serving; a client that leaves
//! does not stop the deploy; the app's lock is shared with the CLI (409 with `"wait": false`,
//! else the request waits, as `slipway deploy` does); the processes a deploy starts inherit
//! none of the server's descriptors and keep serving after `slipway serve --stop`.

#![allow(clippy::unwrap_used)]

mod common;
mod serve_support;

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Repo, Slipway, describe, wait_for};
use serve_support::Server;

fn app(s: &Slipway) -> String {
    let app = common::app_name("apideploy");
    s.ok(&["apps", "create", &app]);
    s.track(&app);
    app
}

/// The seed demo with a predeploy that says `marker`, then sleeps `secs`.
fn slow_repo(marker: &str, secs: u32) -> Repo {
    let repo = Repo::from_fixture("seed-demo");
    repo.write("predeploy.sh", &format!("echo {marker}\nsleep {secs}\necho predeploy-over\n"));
    repo.commit("a slow predeploy");
    repo
}

/// A deploy request streamed through curl, read line by line as it arrives.
struct Stream {
    child: Child,
    lines: std::sync::mpsc::Receiver<(Instant, serde_json::Value)>,
}

impl Stream {
    fn start(srv: &Server, app: &str, body: &str) -> Self {
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "--max-time", "300", "-X", "POST", "-H", "Content-Type: application/json"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", srv.admin))
            .arg("--data-binary")
            .arg(body)
            .arg(srv.url(&format!("/api/apps/{app}/deploys")))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                if tx.send((Instant::now(), v)).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines until one whose `line` contains `text` (that one included).
    fn until(&self, text: &str) -> Vec<(Instant, serde_json::Value)> {
        let mut seen = Vec::new();
        loop {
            let got = self.lines.recv_timeout(Duration::from_secs(120));
            let Ok(item) = got else { panic!("no line with {text:?} in {seen:?}") };
            let hit = item.1["line"].as_str().is_some_and(|l| l.contains(text));
            seen.push(item);
            if hit {
                return seen;
            }
        }
    }

    /// Every line up to the end of the stream.
    fn rest(mut self) -> Vec<(Instant, serde_json::Value)> {
        let all: Vec<_> = self.lines.iter().collect();
        let _ = self.child.wait();
        all
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_deploy(repo: &Repo) -> String {
    format!(r#"{{"repo": "{}", "rev": "main"}}"#, repo.path())
}

#[test]
fn progress_arrives_as_it_happens_and_a_failed_deploy_leaves_the_old_release_serving() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = app(&s);
    let repo = slow_repo("slow-predeploy-begins", 3);
    let stream = Stream::start(&srv, &app, &admin_deploy(&repo));
    let early = stream.until("slow-predeploy-begins");
    let started = early.last().unwrap().0;
    assert!(
        early.iter().any(|(_, v)| v["line"].as_str().is_some_and(|l| l.starts_with("-----> Building v1"))),
        "the CLI's phase lines: {early:?}"
    );
    let rest = stream.rest();
    let (ended, last) = rest.last().unwrap().clone();
    assert!(
        ended.duration_since(started) >= Duration::from_secs(2),
        "the predeploy's first line came while it ran, not with the end"
    );
    assert_eq!(
        (last["done"].as_bool(), last["ok"].as_bool(), last["exit_code"].as_i64()),
        (Some(true), Some(true), Some(0)),
        "{last}"
    );
    assert_eq!(last["outcome"]["release"], "v1", "{last}");
    // Each phase's end carries its name and duration beside the CLI's text.
    let predeploy = rest
        .iter()
        .find(|(_, v)| v["phase"].as_str().is_some_and(|p| p.starts_with("Running predeploy")))
        .unwrap_or_else(|| panic!("a phase end for predeploy: {rest:?}"));
    assert!(predeploy.1["millis"].as_u64().unwrap() >= 3000, "{}", predeploy.1);
    assert!(predeploy.1["line"].as_str().unwrap().starts_with("       done in "), "{}", predeploy.1);
    let router = s.router_port(&app);
    assert_eq!(common::get(router, "/").unwrap().0, 200);

    // A predeploy that fails: the stream says so, with the CLI's code, and v1 still serves.
    repo.write("predeploy.sh", "echo about-to-fail\nexit 3\n");
    repo.commit("a failing predeploy");
    let (code, body) = srv.curl(
        Some(&srv.admin),
        &["-N", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &admin_deploy(&repo)],
        &format!("/api/apps/{app}/deploys"),
    );
    assert_eq!(code, 200, "{body}");
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["line"].as_str().is_some_and(|t| t.contains("about-to-fail"))), "{body}");
    let last = lines.last().unwrap();
    assert_eq!(
        (last["ok"].as_bool(), last["exit_code"].as_i64(), last["code"].as_str()),
        (Some(false), Some(3), Some("deploy_failed")),
        "{last}"
    );
    assert!(last["error"].as_str().unwrap().contains("failed during predeploy"), "{last}");
    assert_eq!(common::get(router, "/").unwrap().0, 200, "the old release still serves");
    assert_eq!(s.release(&app), "v1");
    let releases = srv.get_json(&format!("/api/apps/{app}/releases"));
    let v2 = releases.as_array().unwrap().iter().find(|r| r["id"] == "v2").unwrap();
    assert_eq!(v2["status"], "failed", "{releases}");
    // A good deploy retires v1: its supervisor, the server's child, exits, and the server
    // reaps it rather than keep a zombie per deploy.
    repo.write("predeploy.sh", "true\n");
    repo.commit("a quick predeploy");
    let (code, body) = srv.curl(
        Some(&srv.admin),
        &["-N", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &admin_deploy(&repo)],
        &format!("/api/apps/{app}/deploys"),
    );
    assert!(code == 200 && body.lines().last().unwrap().contains(r#""ok":true"#), "{body}");
    assert_eq!(s.release(&app), "v3");
    let server: u32 =
        std::fs::read_to_string(s.home.path().join("serve/serve.pid")).unwrap().trim().parse().unwrap();
    let reaped = wait_for(Duration::from_secs(15), || zombies_of(server).is_empty().then_some(()));
    assert!(reaped.is_some(), "zombie children of the server: {:?}", zombies_of(server));
}

/// The children of `parent` that have exited and were not reaped.
fn zombies_of(parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str()) {
            found.push(stat.trim().to_owned());
        }
    }
    found
}

#[test]
fn a_client_that_leaves_does_not_stop_the_deploy() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = app(&s);
    let repo = slow_repo("client-leaves-now", 3);
    let stream = Stream::start(&srv, &app, &admin_deploy(&repo));
    stream.until("client-leaves-now");
    drop(stream); // curl is killed mid-predeploy
    let current = wait_for(Duration::from_secs(120), || {
        let one = srv.get_json(&format!("/api/apps/{app}"));
        (one["current"] == "v1").then_some(one)
    });
    assert!(current.is_some(), "the deploy went on to its switch");
    let releases = srv.get_json(&format!("/api/apps/{app}/releases"));
    assert_eq!(releases[0]["status"], "current", "{releases}");
    let phases: Vec<&str> =
        releases[0]["phases"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(phases.iter().any(|p| p.starts_with("Starting processes")), "{phases:?}");
    assert_eq!(common::get(s.router_port(&app), "/").unwrap().0, 200);
}

#[test]
fn the_app_lock_is_shared_with_the_cli_refused_with_409_or_waited_for() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = app(&s);
    let repo = slow_repo("cli-holds-the-lock", 4);
    // A CLI deploy holds the app's lock through its slow predeploy.
    let mut cli = s
        .cmd()
        .args(["deploy", &app, "--repo", repo.path(), "--rev", "main"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = cli.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("cli-holds-the-lock") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("the CLI deploy reaches its predeploy");
    // As `slipway deploy --no-wait`: refused at once.
    let (code, v) = srv.json(
        &srv.admin,
        "POST",
        &format!("/api/apps/{app}/deploys"),
        &admin_deploy(&repo).replace('}', r#", "wait": false}"#),
    );
    assert_eq!((code, v["code"].as_str()), (409, Some("busy")), "{v}");
    // As `slipway deploy`: waits, says so, then deploys after the CLI's.
    let stream = Stream::start(&srv, &app, &admin_deploy(&repo));
    let waiting = stream.until("waiting for another deploy");
    assert!(!waiting.iter().any(|(_, v)| v["done"] == true));
    let status = cli.wait().unwrap();
    let cli_err = reader.join().unwrap();
    assert!(status.success(), "{cli_err}");
    let rest = stream.rest();
    let last = &rest.last().unwrap().1;
    assert_eq!(
        (last["ok"].as_bool(), last["outcome"]["release"].as_str()),
        (Some(true), Some("v2")),
        "{rest:?}"
    );
    assert_eq!(s.release(&app), "v2");
}

/// The `socket:[inode]` links among the descriptors of `pid`.
fn sockets(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("socket:"))
        .collect()
}

/// Every descriptor target of `pid`.
fn fd_targets(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

/// The pids of this home's supervisors and routers.
fn helpers(s: &Slipway) -> Vec<(u32, String)> {
    let home = s.home.path().display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd =
            std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default().replace('\0', " ");
        if cmd.contains(&home) && (cmd.contains("__supervise") || cmd.contains("__route")) {
            found.push((pid, cmd));
        }
    }
    found
}

#[test]
fn processes_of_an_in_process_deploy_hold_none_of_the_servers_descriptors_and_outlive_it() {
    struct StopOnDrop<'a>(&'a Slipway);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["serve", "--stop"]);
        }
    }
    let s = Slipway::new();
    let _stop = StopOnDrop(&s);
    let port = common::free_port();
    let out = s.run(&["serve", "--detach", "--listen", &format!("127.0.0.1:{port}")]);
    assert!(out.status.success(), "{}", describe(&out));
    let admin = s.ok(&["tokens", "show-admin"]).trim().to_owned();
    let server_pid: u32 =
        std::fs::read_to_string(s.home.path().join("serve/serve.pid")).unwrap().trim().parse().unwrap();
    let app = app(&s);
    let repo = slow_repo("quick-predeploy", 0);
    let out = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "300", "-X", "POST", "-H", "Content-Type: application/json"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {admin}"))
        .arg("--data-binary")
        .arg(admin_deploy(&repo))
        .arg(format!("http://127.0.0.1:{port}/api/apps/{app}/deploys"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.lines().last().unwrap().contains(r#""ok":true"#), "{body}");
    // Every descriptor of the server past stdio is close-on-exec, whoever opened it.
    for fd in std::fs::read_dir(format!("/proc/{server_pid}/fdinfo")).unwrap().flatten() {
        let n: u32 = fd.file_name().to_string_lossy().parse().unwrap();
        let Ok(info) = std::fs::read_to_string(fd.path()) else { continue };
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        let target = std::fs::read_link(format!("/proc/{server_pid}/fd/{n}")).unwrap_or_default();
        assert!(
            n < 3 || flags & 0o2_000_000 != 0,
            "the server's fd {n} ({}) is not close-on-exec",
            target.display()
        );
    }
    // The server's own descriptors: its listener and connections, its lock, its log.
    let server_sockets = sockets(server_pid);
    assert!(!server_sockets.is_empty(), "the server holds its listener");
    let serve_dir = s.home.path().join("serve").display().to_string();
    let mut pids: Vec<(u32, String)> = helpers(&s);
    assert!(pids.iter().any(|(_, c)| c.contains("__supervise")), "a supervisor runs: {pids:?}");
    assert!(pids.iter().any(|(_, c)| c.contains("__route")), "a router runs: {pids:?}");
    for inst in s.ps(&app)["instances"].as_array().unwrap() {
        pids.push((
            u32::try_from(inst["pid"].as_u64().unwrap()).unwrap(),
            format!("{} instance", inst["ptype"]),
        ));
    }
    for (pid, what) in &pids {
        let held = fd_targets(*pid);
        let leaked: Vec<&String> =
            held.iter().filter(|t| server_sockets.contains(t) || t.starts_with(&serve_dir)).collect();
        assert!(leaked.is_empty(), "{what} (pid {pid}) holds the server's {leaked:?}");
    }
    // The server stops; the app it deployed keeps serving, through its router and its release.
    let router = s.router_port(&app);
    assert_eq!(common::get(router, "/").unwrap().0, 200);
    // A live tail is open when the server is asked to stop: it ends the tail rather than
    // wait for it (and be killed after 5 s).
    let mut tail = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "60", "-H"])
        .arg(format!("Authorization: Bearer {admin}"))
        .arg(format!("http://127.0.0.1:{port}/api/apps/{app}/logs?follow=1&type=worker"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(tail.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains(r#""line":"#), "the tail streams: {first}");
    let asked = Instant::now();
    assert!(s.run(&["serve", "--stop"]).status.success());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "serve --stop took {took:?}: the tail held the server");
    let ended = wait_for(Duration::from_secs(5), || tail.try_wait().unwrap());
    assert!(ended.is_some(), "the tail's response ended");
    assert!(
        wait_for(Duration::from_secs(10), || (!std::path::Path::new(&format!("/proc/{server_pid}"))
            .exists())
        .then_some(()))
        .is_some(),
        "the server is gone"
    );
    std::thread::sleep(Duration::from_secs(1));
    for (pid, what) in &pids {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{what} (pid {pid}) outlived the server"
        );
    }
    assert_eq!(common::get(router, "/").unwrap().0, 200, "the app serves after the server stopped");
    assert_eq!(s.ps(&app)["running"], true);
}

#[test]
fn deploys_of_two_apps_at_once_leave_each_others_scripts_alone() {
    // Both run in the server's process. When the first predeploy ends, its sweep of escaped
    // processes must not take the second's script, which started after it.
    let s = Slipway::new();
    let srv = Server::start(&s);
    let (first, second) = (app(&s), app(&s));
    let first_repo = slow_repo("first-predeploy-runs", 2);
    let second_repo = slow_repo("second-predeploy-runs", 5);
    let a = Stream::start(&srv, &first, &admin_deploy(&first_repo));
    a.until("first-predeploy-runs");
    let b = Stream::start(&srv, &second, &admin_deploy(&second_repo));
    b.until("second-predeploy-runs");
    let (a, b) = (a.rest(), b.rest());
    for (app, lines) in [(&first, &a), (&second, &b)] {
        let last = &lines.last().unwrap().1;
        assert_eq!(last["ok"].as_bool(), Some(true), "{app}: {lines:?}");
        assert!(lines.iter().any(|(_, v)| v["line"] == "       predeploy-over"), "{app}: {lines:?}");
    }
}

/// Live processes whose command line starts with `name`.
fn running(name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmdline.starts_with(name.as_bytes()) && !zombie {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_predeploy_daemon_is_swept_in_the_server_too() {
    // In the server the sweep is narrowed to the script's own; a daemon that left its group
    // and session still carries the script's mark, and goes.
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = app(&s);
    let name = format!("slipway-escape-{app}-served");
    let repo = slow_repo("unused", 0);
    let daemon = format!("(setsid bash -c 'exec -a {name} sleep 1000' >/dev/null 2>&1 < /dev/null &)");
    repo.write(
        "predeploy.sh",
        &format!("{daemon}\nsleep 0.5\npgrep -f {name} >/dev/null && echo daemon started\n"),
    );
    repo.commit("a predeploy that leaves a daemon");
    let stream = Stream::start(&srv, &app, &admin_deploy(&repo));
    let lines = stream.rest();
    let kill_left = || {
        for pid in running(&name) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    };
    let started = lines.iter().any(|(_, v)| v["line"] == "       daemon started");
    let ok = lines.last().unwrap().1["ok"].as_bool();
    let gone = wait_for(Duration::from_secs(3), || running(&name).is_empty().then_some(())).is_some();
    let left = running(&name);
    kill_left();
    assert!(started && ok == Some(true), "{lines:?}");
    assert!(gone, "the predeploy's daemon outlived it: {left:?}");
}

#[test]
fn a_docker_app_deploys_and_tails_in_process() {
    // The Docker runtime drives its own async runtime; in the server it runs on a blocking
    // thread of the server's, and its build lines and container logs reach the client.
    let s = Slipway::new();
    if !common::docker_ready(&s) {
        return;
    }
    let srv = Server::start(&s);
    let repo = Repo::from_fixture("docker-procfile");
    repo.write(
        "Procfile",
        "web: exec python3 -m http.server $PORT\nworker: while true; do echo served-tick; sleep 0.3; done\n",
    );
    repo.commit("a chatty worker");
    let app = s.app_with("apidock", &["--runtime", "docker"]);
    let lines = Stream::start(&srv, &app, &admin_deploy(&repo)).rest();
    let last = &lines.last().unwrap().1;
    assert_eq!(last["ok"].as_bool(), Some(true), "{lines:?}");
    assert!(
        lines.iter().any(|(_, v)| v["phase"].as_str().is_some_and(|p| p.starts_with("Building v1"))),
        "{lines:?}"
    );
    let (code, body) = srv.curl(
        Some(&srv.admin),
        &["-N", "--max-time", "4"],
        &format!("/api/apps/{app}/logs?follow=1&type=worker&lines=5"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.lines().filter(|l| l.contains("served-tick")).count() >= 3, "{body}");
}

#[test]
fn supervisors_of_pushes_adopted_by_the_server_leave_no_zombies() {
    // A script ran in the server, so it is a subreaper: the supervisor a push's hook starts
    // is reparented to it when the hook exits, and must be reaped when it is retired.
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = app(&s);
    let repo = slow_repo("first", 0);
    let deploy = |repo: &Repo| {
        let lines = Stream::start(&srv, &app, &admin_deploy(repo)).rest();
        assert_eq!(lines.last().unwrap().1["ok"].as_bool(), Some(true), "{lines:?}");
    };
    deploy(&repo);
    repo.write("predeploy.sh", "echo pushed\n");
    repo.commit("pushed over HTTP");
    let url = format!("http://git:{}@127.0.0.1:{}/git/{app}.git", srv.admin, srv.port);
    let out = Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "push", &url, "main"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.release(&app), "v2");
    repo.write("predeploy.sh", "echo third\n");
    repo.commit("deployed over the API");
    deploy(&repo);
    assert_eq!(s.release(&app), "v3");
    let server: u32 =
        std::fs::read_to_string(s.home.path().join("serve/serve.pid")).unwrap().trim().parse().unwrap();
    let reaped = wait_for(Duration::from_secs(15), || zombies_of(server).is_empty().then_some(()));
    assert!(reaped.is_some(), "zombie children of the server: {:?}", zombies_of(server));
}
