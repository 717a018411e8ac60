//! The swarm runtime across real nodes: a three-node swarm of docker-in-docker containers (a
//! manager running the registry, two workers) on the host engine, which never enters swarm
//! mode itself. The nodes share one host directory at the same path, as an operator's shared
//! filesystem. One cluster serves every test of this file: brought up on first use
//! (`fixtures/swarm/cluster.sh`; its node image is built once by debootstrap and cached by
//! tag), torn down when the test process exits. The tests take turns on it.
//!
//! Needs root (debootstrap, the shared directory's owner) and the Docker engine; skipped with
//! a printed reason otherwise, which CI turns into a failure.

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
    if let Some(Some(c)) = CLUSTER.get() {
        let _ = Command::new(script("cluster.sh")).args(["down", &c.name]).status();
        let _ = std::fs::remove_dir_all(&c.shared);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shared cluster, or None (reported as a skip) when this machine cannot run it.
fn cluster(sw: &Slipway) -> Option<&'static Cluster> {
    if !require::root_or_skip("a docker-in-docker swarm") || !docker_ready(sw) {
        return None;
    }
    CLUSTER
        .get_or_init(|| {
            let name = format!("slipway-swarm-{}", std::process::id());
            let shared = std::env::temp_dir().join(format!("{name}-shared"));
            std::fs::create_dir_all(&shared).unwrap();
            let port = free_port();
            let out = Command::new(script("cluster.sh"))
                .args(["up", &name, &port.to_string(), shared.to_str().unwrap()])
                .output()
                .unwrap();
            let cluster = Cluster {
                name: name.clone(),
                registry: format!("127.0.0.1:{port}"),
                manager_ip: String::new(),
                nodes: Vec::new(),
                shared,
            };
            // Registered before the check: a half-made cluster is removed too.
            // SAFETY: `tear_down` is a plain function that touches only this static.
            unsafe { libc::atexit(tear_down) };
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut c = cluster;
            for line in stdout.lines() {
                if let Some(ip) = line.strip_prefix("manager=") {
                    ip.clone_into(&mut c.manager_ip);
                } else if let Some(rest) = line.strip_prefix("node ") {
                    let (n, ip) = rest.split_once(' ').unwrap();
                    c.nodes.push((n.to_owned(), ip.to_owned()));
                }
            }
            assert!(out.status.success() && c.nodes.len() == 3, "cluster.sh up failed: {}", describe(&out));
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

/// The seed demo, its web bound to every interface (a container's port is reached from outside).
fn seed_repo() -> Repo {
    let repo = Repo::from_fixture("seed-demo");
    let app_py = repo.dir.path().join("app.py");
    let text =
        std::fs::read_to_string(&app_py).unwrap().replace("(\"127.0.0.1\", port)", "(\"0.0.0.0\", port)");
    std::fs::write(&app_py, text).unwrap();
    repo.commit("web on 0.0.0.0");
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

fn web_port(sw: &Slipway, app: &str) -> u16 {
    sw.web_port(app)
}

#[test]
#[ignore = "takes over 25 minutes on a 2-core machine (vfs nodes); run with `cargo test --test swarm_cluster -- --ignored`"]
fn a_swarm_app_shares_one_mount_across_nodes_redeploys_and_node_loss() {
    let sw = Slipway::new();
    let Some(c) = cluster(&sw) else { return };
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    setup(&sw, c);
    let app = common::app_name("swarm");
    sw.ok(&["apps", "create", &app, "--runtime", "swarm"]);
    sw.track(&app);
    let dir = c.shared.join(&app);
    std::fs::create_dir_all(&dir).unwrap();
    sw.ok(&["mount", "enable", &app, "--mount-path", &format!("/srv/slipway-shared/{app}")]);
    sw.ok(&["ps", "scale", &app, "web=2"]);
    let repo = seed_repo();

    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "first deploy: {}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is shared: a marker written on"), "{err}");
    // predeploy ran as a task on some node and wrote into the shared directory.
    assert!(dir.join("last-predeploy.txt").is_file(), "predeploy's file is not on the shared mount");
    let port = web_port(&sw, &app);
    let inst = instances(&sw, &app);
    let web_nodes: BTreeSet<String> = inst.iter().filter(|i| i.0 == "web").map(|i| i.1.clone()).collect();
    let worker_node = inst.iter().find(|i| i.0 == "worker").map(|i| i.1.clone()).expect("no worker");
    assert_eq!(web_nodes.len(), 2, "the two web replicas share a node: {inst:?}");
    // A web replica on another node than the worker serves the rows the worker appends there.
    let other = web_nodes.iter().find(|n| **n != worker_node).expect("every web runs beside the worker");
    let ip = node_ip(c, other);
    let first = wait_for(Duration::from_secs(30), || get(ip, port).filter(|b| rows(b) > 2))
        .expect("web never served rows");
    let later = wait_for(Duration::from_secs(30), || get(ip, port).filter(|b| rows(b) > rows(&first)))
        .expect("rows stopped growing");
    assert!(later.starts_with(&first[..first.len().min(20)]), "the data changed under web");

    // Three redeploys keep the data; each leaves only its own image in the registry.
    let mut seen = rows(&later);
    for n in 2..=4 {
        std::fs::write(repo.dir.path().join("deploy.txt"), format!("{n}\n")).unwrap();
        repo.commit(&format!("deploy {n}"));
        sw.ok(&["deploy", &app, "--repo", repo.path()]);
        let now = wait_for(Duration::from_secs(30), || {
            web_nodes_of(&sw, &app).iter().find_map(|n| get(node_ip(c, n), port)).filter(|b| rows(b) >= seen)
        })
        .unwrap_or_else(|| panic!("after deploy {n}, web lost rows (had {seen})"));
        seen = rows(&now);
    }
    let tags = registry_tags(c, &app);
    assert_eq!(tags, vec!["v4".to_owned()], "old images stay in the registry");
    for (node, _) in &c.nodes {
        let images = node_docker(node, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for old in ["v1", "v2", "v3"] {
            assert!(!images.contains(&format!("slipway/{app}:{old}")), "{node} still has {old}: {images}");
        }
    }

    // A failing predeploy stops the deploy; the running services stay on v4 and serve.
    std::fs::write(repo.dir.path().join("predeploy.sh"), "#!/usr/bin/env bash\necho about to fail\nexit 7\n")
        .unwrap();
    repo.commit("predeploy fails");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(!out.status.success(), "a failing predeploy deployed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("about to fail") && err.contains("exit code 7"), "{err}");
    let ps = sw.ps(&app);
    assert_eq!(ps["release"], "v4", "{ps}");
    let after =
        web_nodes_of(&sw, &app).iter().find_map(|n| get(node_ip(c, n), port)).expect("web stopped serving");
    assert!(rows(&after) >= seen);
    repo.git(&["revert", "--no-edit", "HEAD"]);

    // Kill a worker node that runs something: swarm reschedules its tasks on the others and
    // the rows go on from where they were.
    let inst = instances(&sw, &app);
    let victim =
        inst.iter().map(|i| i.1.clone()).find(|n| n.starts_with("worker")).expect("nothing on a worker node");
    let before = rows(&after);
    let victim_container = format!("{}-{victim}", c.name);
    let out = Command::new("docker").args(["kill", &victim_container]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let moved = wait_for(Duration::from_secs(180), || {
        let inst = instances(&sw, &app);
        let ok = inst.len() == 3 && inst.iter().all(|i| i.1 != victim && i.2 == "up");
        ok.then_some(inst)
    });
    let moved = moved
        .unwrap_or_else(|| panic!("tasks were not rescheduled off {victim}: {:?}", instances(&sw, &app)));
    let web = moved.iter().find(|i| i.0 == "web").unwrap();
    let grown =
        wait_for(Duration::from_secs(30), || get(node_ip(c, &web.1), port).filter(|b| rows(b) > before))
            .expect("after the node loss, rows were lost or stopped growing");
    assert!(rows(&grown) > before);
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
