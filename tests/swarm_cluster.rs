//! The swarm runtime across real nodes: a three-node swarm of docker-in-docker containers (a
//! manager running the registry, two workers) on the host engine, which never enters swarm
//! mode itself. The nodes share one host directory at the same path, as an operator's shared
//! filesystem. One cluster serves every test of this file: brought up on first use
//! (`fixtures/swarm/cluster.sh`; its node image is built once by debootstrap and cached by
//! tag), torn down when the test process exits. The tests take turns on it.
//!
//! Nodes store images on overlay2 when the kernel allows it (node-entrypoint.sh picks and
//! says), and the stack image is preloaded into every node once, so a deploy pulls only the
//! app's own layer. Budget in CI: the whole file within 8 minutes on a loaded 2-core machine.
//!
//! Needs root (debootstrap, the shared directory's owner) and the Docker engine; skipped with
//! a printed reason otherwise, which CI turns into a failure (`SLIPWAY_REQUIRE_ROOT=1`,
//! `SLIPWAY_REQUIRE_DOCKER=1`). A cluster that cannot be built always fails, loudly.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{Repo, Slipway, describe, docker_ready, require, wait_for};

struct Cluster {
    name: String,
    registry: String,
    manager_ip: String,
    /// Node container name → its IP on the cluster's network.
    nodes: Vec<(String, String)>,
    shared: PathBuf,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/swarm").join(name)
}

extern "C" fn tear_down() {
    if let Some(Some(c)) = CLUSTER.get().filter(|_| std::env::var_os("SLIPWAY_SWARM_REUSE").is_none()) {
        let _ = Command::new(script("cluster.sh")).args(["down", &c.name]).status();
        let _ = std::fs::remove_dir_all(&c.shared);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The nodes and addresses `cluster.sh up` or `info` printed.
fn parse(name: &str, stdout: &str, registry: String, shared: PathBuf) -> Cluster {
    let mut c =
        Cluster { name: name.to_owned(), registry, manager_ip: String::new(), nodes: Vec::new(), shared };
    for line in stdout.lines() {
        if let Some(ip) = line.strip_prefix("manager=") {
            ip.clone_into(&mut c.manager_ip);
        } else if let Some(rest) = line.strip_prefix("node ") {
            let (n, ip) = rest.split_once(' ').unwrap();
            c.nodes.push((n.to_owned(), ip.to_owned()));
        }
    }
    c
}

/// A cluster left up by `cluster.sh up` (`SLIPWAY_SWARM_REUSE=NAME`), kept after the tests: to
/// work on these tests without paying for a cluster each run.
fn reuse(name: &str) -> Cluster {
    let out = Command::new(script("cluster.sh")).args(["info", name]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
    let (Some(port), Some(shared)) = (field("registry="), field("shared=")) else {
        panic!("SLIPWAY_SWARM_REUSE={name}: no such cluster: {}", describe(&out));
    };
    parse(name, &text, format!("127.0.0.1:{port}"), PathBuf::from(shared))
}

/// The shared cluster, or None (reported as a skip) when this machine cannot run it. A cluster
/// that cannot be built fails the test, whatever the environment says.
fn cluster(sw: &Slipway) -> Option<&'static Cluster> {
    if !require::root_or_skip("a docker-in-docker swarm") || !docker_ready(sw) {
        return None;
    }
    CLUSTER
        .get_or_init(|| {
            if let Some(name) = std::env::var("SLIPWAY_SWARM_REUSE").ok().filter(|n| !n.is_empty()) {
                return Some(reuse(&name));
            }
            let name = format!("slipway-swarm-{}", std::process::id());
            let shared = std::env::temp_dir().join(format!("{name}-shared"));
            std::fs::create_dir_all(&shared).unwrap();
            let port = free_port();
            let t = std::time::Instant::now();
            let out = Command::new(script("cluster.sh"))
                .args(["up", &name, &port.to_string(), shared.to_str().unwrap()])
                .env("SLIPWAY_SWARM_PRELOAD", common::STACK)
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap();
            eprintln!("cluster {name} up in {:.0?}", t.elapsed());
            let c = parse(&name, &String::from_utf8_lossy(&out.stdout), format!("127.0.0.1:{port}"), shared);
            if !out.status.success() || c.nodes.len() != 3 {
                // A half-made cluster goes now: the exit hook only knows a finished one.
                let _ = Command::new(script("cluster.sh")).args(["down", &name]).status();
                let _ = std::fs::remove_dir_all(&c.shared);
                panic!("cluster.sh up failed: {}", describe(&out));
            }
            // SAFETY: `tear_down` is a plain function that touches only this static.
            unsafe { libc::atexit(tear_down) };
            Some(c)
        })
        .as_ref()
}

fn setup(sw: &Slipway, c: &Cluster) {
    sw.ok(&[
        "cluster",
        "set",
        "--registry",
        &c.registry,
        "--docker-host",
        &format!("tcp://{}:2375", c.manager_ip),
    ]);
}

fn node_docker(node: &str, args: &[&str]) -> String {
    let out = Command::new("docker").args(["exec", node, "docker"]).args(args).output().unwrap();
    assert!(out.status.success(), "docker exec {node} docker {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The seed demo, its web bound to every interface (a container's port is reached from
/// outside), its predeploy leaving a row of its own in the data web serves.
fn seed_repo() -> Repo {
    let repo = Repo::from_fixture("seed-demo");
    let app_py = repo.dir.path().join("app.py");
    let text =
        std::fs::read_to_string(&app_py).unwrap().replace("(\"127.0.0.1\", port)", "(\"0.0.0.0\", port)");
    std::fs::write(&app_py, text).unwrap();
    let pre = repo.dir.path().join("predeploy.sh");
    let mut text = std::fs::read_to_string(&pre).unwrap();
    text.push_str("echo \"predeploy,$(cat deploy.txt 2>/dev/null || echo 1)\" >> ../mount/data.csv\n");
    std::fs::write(&pre, text).unwrap();
    repo.commit("web on 0.0.0.0, predeploy leaves a row");
    repo
}

/// `(type, node hostname, state)` of each instance from `ps --json`.
fn instances(sw: &Slipway, app: &str) -> Vec<(String, String, String)> {
    let ps = sw.ps(app);
    ps["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
            (s("ptype"), s("node"), s("state"))
        })
        .collect()
}

fn node_ip<'a>(c: &'a Cluster, hostname: &str) -> &'a str {
    let name = format!("{}-{hostname}", c.name);
    &c.nodes.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no node {hostname}")).1
}

fn get(ip: &str, port: u16) -> Option<String> {
    let out =
        Command::new("curl").args(["-fsS", "-m", "5", &format!("http://{ip}:{port}/")]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rows(body: &str) -> usize {
    body.lines().count()
}

/// What web serves from any node that runs a replica, once it has at least `min` rows.
fn served(sw: &Slipway, c: &Cluster, app: &str, port: u16, min: usize) -> Option<String> {
    web_nodes_of(sw, app).iter().find_map(|n| get(node_ip(c, n), port)).filter(|b| rows(b) >= min)
}

fn commit_file(repo: &Repo, file: &str, content: &str, msg: &str) {
    std::fs::write(repo.dir.path().join(file), content).unwrap();
    repo.commit(msg);
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
// One scenario on one cluster: each step starts from the state the previous one left.
#[allow(clippy::too_many_lines)]
fn a_swarm_app_shares_one_mount_across_nodes_redeploys_and_node_loss() {
    let sw = Slipway::new();
    let Some(c) = cluster(&sw) else { return };
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let t0 = std::time::Instant::now();
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    setup(&sw, c);
    let app = common::app_name("swarm");
    sw.ok(&["apps", "create", &app, "--runtime", "swarm"]);
    sw.track(&app);
    let dir = c.shared.join(&app);
    std::fs::create_dir_all(&dir).unwrap();
    sw.ok(&["mount", "enable", &app, "--mount-path", &format!("/srv/slipway-shared/{app}")]);
    sw.ok(&["ps", "scale", &app, "web=2"]);
    let repo = seed_repo();

    step("first deploy");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "first deploy: {}", describe(&out));
    let err = stderr_of(&out);
    assert!(err.contains("is shared: a marker written on"), "{err}");
    // predeploy ran as a task on one node and wrote into the shared directory...
    let pre_node = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("predeploy ran on node "))
        .unwrap_or_else(|| panic!("no node named for predeploy: {err}"))
        .to_owned();
    assert!(dir.join("last-predeploy.txt").is_file(), "predeploy's file is not on the shared mount");
    let port = sw.web_port(&app);
    let inst = instances(&sw, &app);
    let web_nodes: BTreeSet<String> = inst.iter().filter(|i| i.0 == "web").map(|i| i.1.clone()).collect();
    let worker_node = inst.iter().find(|i| i.0 == "worker").map(|i| i.1.clone()).expect("no worker");
    assert_eq!(web_nodes.len(), 2, "the two web replicas share a node: {inst:?}");
    // ...and a web replica on another node serves what it wrote.
    let away = web_nodes.iter().find(|n| **n != pre_node).expect("two web nodes, one is not predeploy's");
    let body = wait_for(Duration::from_secs(20), || {
        get(node_ip(c, away), port).filter(|b| b.contains("predeploy,1"))
    })
    .unwrap_or_else(|| panic!("web on {away} does not serve the row predeploy wrote on {pre_node}"));
    assert!(body.starts_with("x,y\n"), "{body}");
    // A web replica on another node than the worker serves the rows the worker appends there.
    let other = web_nodes.iter().find(|n| **n != worker_node).expect("every web runs beside the worker");
    let ip = node_ip(c, other);
    let first = wait_for(Duration::from_secs(20), || get(ip, port).filter(|b| rows(b) > 3))
        .unwrap_or_else(|| panic!("web on {other} never served the rows of the worker on {worker_node}"));
    let later = wait_for(Duration::from_secs(20), || get(ip, port).filter(|b| rows(b) > rows(&first)))
        .expect("rows stopped growing");
    assert!(later.starts_with(&first), "the data changed under web");

    // Three redeploys keep the data; each leaves only its own image in the registry.
    let mut seen = later;
    for n in 2..=4 {
        step(&format!("redeploy {n}"));
        commit_file(&repo, "deploy.txt", &format!("{n}\n"), &format!("deploy {n}"));
        sw.ok(&["deploy", &app, "--repo", repo.path()]);
        let now = wait_for(Duration::from_secs(20), || served(&sw, c, &app, port, rows(&seen)))
            .unwrap_or_else(|| panic!("after deploy {n}, web lost rows (had {})", rows(&seen)));
        assert!(now.starts_with(&seen), "after deploy {n}, the rows web served before changed");
        assert!(now.contains(&format!("predeploy,{n}\n")), "predeploy {n} did not run on the mount: {now}");
        seen = now;
    }
    assert_eq!(sw.ps(&app)["release"], "v4");
    assert_only_image(c, &app, "v4");

    // A failing predeploy stops the deploy; the running services stay on v4 and serve.
    step("failing predeploy");
    commit_file(
        &repo,
        "predeploy.sh",
        "#!/usr/bin/env bash\necho about to fail\nexit 7\n",
        "predeploy fails",
    );
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(!out.status.success(), "a failing predeploy deployed");
    let err = stderr_of(&out);
    assert!(err.contains("about to fail") && err.contains("exit code 7"), "{err}");
    assert_eq!(sw.ps(&app)["release"], "v4");
    seen = wait_for(Duration::from_secs(20), || served(&sw, c, &app, port, rows(&seen)))
        .expect("after a failing predeploy, web stopped serving or lost rows");
    repo.git(&["revert", "--no-edit", "HEAD"]);
    assert_only_image(c, &app, "v4");

    // The settle period: a release whose web fails after it became healthy is not switched
    // in; swarm's services go back to v4, whose image stays. The failure is set off by the
    // test, through the shared mount, once the release has converged: no race with startup.
    step("a release that fails in its settle period");
    let procfile = std::fs::read_to_string(repo.dir.path().join("Procfile")).unwrap();
    let crashy = procfile.replace(
        "web: python3 app.py",
        "web: bash -c 'python3 app.py & until [ -e ../mount/crash-web ]; do sleep 0.3; done; exit 9'",
    );
    assert_ne!(crashy, procfile);
    commit_file(&repo, "Procfile", &crashy, "web fails on a signal from the test");
    let out = deploy_then(
        &sw,
        &["deploy", &app, "--repo", repo.path(), "--settle", "40s"],
        "worker: 1 replica(s) of v6 running",
        || {
            std::fs::write(dir.join("crash-web"), "").unwrap();
        },
    );
    std::fs::remove_file(dir.join("crash-web")).unwrap();
    assert!(!out.status.success(), "a release that failed in its settle period was switched in");
    let err = stderr_of(&out);
    // The failed task is named with its exit code when swarm still lists it.
    assert!(err.contains("within the settle period of 40s") && err.contains(&format!("{app}-web")), "{err}");
    assert_eq!(sw.ps(&app)["release"], "v4");
    let rolled = wait_for(Duration::from_secs(60), || {
        let i = instances(&sw, &app);
        (i.len() == 3 && i.iter().all(|i| i.2 == "up")).then_some(i)
    });
    assert!(rolled.is_some(), "v4 is not back in full: {:?}", instances(&sw, &app));
    seen = wait_for(Duration::from_secs(20), || served(&sw, c, &app, port, rows(&seen)))
        .expect("after the rollback, web stopped serving or lost rows");
    assert_only_image(c, &app, "v4");
    commit_file(&repo, "Procfile", &procfile, "web is well again");

    // Kill a worker node that runs something (one web replica at least is on a worker node:
    // a host-mode port admits one replica per node): swarm reschedules its tasks on the
    // others, and the rows go on from where they were.
    step("node loss");
    let inst = instances(&sw, &app);
    let victim = inst
        .iter()
        .map(|i| i.1.clone())
        .find(|n| n.starts_with("worker"))
        .unwrap_or_else(|| panic!("nothing on a worker node: {inst:?}"));
    let before = rows(&seen);
    let out = Command::new("docker").args(["kill", &format!("{}-{victim}", c.name)]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let moved = wait_for(Duration::from_secs(90), || {
        let inst = instances(&sw, &app);
        let ok = inst.len() == 3 && inst.iter().all(|i| !i.1.is_empty() && i.1 != victim && i.2 == "up");
        ok.then_some(inst)
    });
    let moved = moved
        .unwrap_or_else(|| panic!("tasks were not rescheduled off {victim}: {:?}", instances(&sw, &app)));
    let web = moved.iter().find(|i| i.0 == "web").unwrap();
    let grown =
        wait_for(Duration::from_secs(20), || get(node_ip(c, &web.1), port).filter(|b| rows(b) > before))
            .expect("after the node loss, rows were lost or stopped growing");
    assert!(grown.starts_with(&seen), "rows written before the node loss are gone");

    // Two nodes are left for two web replicas: no node has a free port for a new replica to
    // start beside the old one, so each old one stops first and the deploy still goes through.
    step("redeploy with a web replica on every node");
    commit_file(&repo, "deploy.txt", "5\n", "deploy on a full cluster");
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    let release = sw.ps(&app)["release"].as_str().unwrap().to_owned();
    assert_ne!(release, "v4", "the redeploy on a full cluster did not switch");
    let full = wait_for(Duration::from_secs(60), || {
        let i = instances(&sw, &app);
        (i.len() == 3 && i.iter().all(|i| i.2 == "up" && i.1 != victim)).then_some(i)
    });
    assert!(full.is_some(), "{release} is not up in full: {:?}", instances(&sw, &app));
    let web = full.unwrap().into_iter().find(|i| i.0 == "web").unwrap();
    let after = wait_for(Duration::from_secs(20), || {
        get(node_ip(c, &web.1), port).filter(|b| rows(b) > rows(&grown) && b.contains("predeploy,5\n"))
    })
    .expect("after the redeploy on a full cluster, rows were lost or predeploy did not run");
    assert!(after.starts_with(&grown), "rows written before the redeploy are gone");

    // The images were built on this machine: `apps destroy` takes their build cache too.
    step("destroy");
    let volumes = || {
        let out = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &format!("label=slipway.app={app}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    assert!(!volumes().is_empty(), "the build left no cache volume on this machine");
    sw.ok(&["apps", "destroy", &app, "--confirm", &app]);
    assert_eq!(volumes(), Vec::<String>::new(), "apps destroy left the app's volumes");
    step("done");
}

/// Run `slipway ARGS`; when a stderr line contains `marker`, call `then`; the whole output.
fn deploy_then(sw: &Slipway, args: &[&str], marker: &str, then: impl FnOnce()) -> std::process::Output {
    use std::io::{BufRead, Read};
    let mut child = sw
        .cmd()
        .args(args)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    let mut then = Some(then);
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains(marker)
            && let Some(f) = then.take()
        {
            f();
        }
        err.push_str(&line);
        line.clear();
    }
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(then.is_none(), "the deploy never printed {marker:?}: {err}");
    std::process::Output { status, stdout: out, stderr: err.into_bytes() }
}

/// The app's only image in the registry and on every running node is `release`'s.
fn assert_only_image(c: &Cluster, app: &str, release: &str) {
    assert_eq!(registry_tags(c, app), vec![release.to_owned()], "old images stay in the registry");
    for (node, _) in &c.nodes {
        let images = node_docker(node, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        let ours: Vec<&str> = images.lines().filter(|l| l.contains(&format!("/slipway/{app}:"))).collect();
        assert!(
            ours.iter().all(|l| l.ends_with(&format!(":{release}"))),
            "{node} keeps old images: {ours:?}"
        );
    }
}

fn web_nodes_of(sw: &Slipway, app: &str) -> Vec<String> {
    instances(sw, app).into_iter().filter(|i| i.0 == "web").map(|i| i.1).collect()
}

fn registry_tags(c: &Cluster, app: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-fsS", &format!("http://{}/v2/slipway/{app}/tags/list", c.registry)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_mount_that_is_not_shared_is_refused_before_anything_runs() {
    let sw = Slipway::new();
    let Some(c) = cluster(&sw) else { return };
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    setup(&sw, c);
    let app = common::app_name("swarmns");
    sw.ok(&["apps", "create", &app, "--runtime", "swarm"]);
    sw.track(&app);
    // The same path on every node, but each node's own directory.
    let local = format!("/var/tmp/{app}");
    for (node, _) in &c.nodes {
        let _ = Command::new("docker").args(["exec", node, "mkdir", "-p", &local]).output();
    }
    sw.ok(&["mount", "enable", &app, "--mount-path", &local]);
    let out = sw.run(&["deploy", &app, "--repo", seed_repo().path()]);
    assert!(!out.status.success(), "deployed on a mount that is not shared");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not shared across the swarm") && err.contains("no marker"), "{err}");
    // Nothing of the app runs.
    let manager = format!("{}-manager", c.name);
    let services =
        node_docker(&manager, &["service", "ls", "--filter", &format!("label=slipway.app={app}"), "-q"]);
    assert!(services.trim().is_empty(), "services were left: {services}");
}
