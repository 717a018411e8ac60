//! The kubernetes runtime against a real cluster (kind or k3s), issue 10 §3. No API server
//! can run on the machine these tests were written on, so they are `#[ignore]`d: run them with
//! `SLIPWAY_KUBECONFIG=~/.kube/config cargo test --test k8s_real -- --ignored` where a cluster
//! is, with `kubectl` on PATH, the stack image on the local engine, and
//! `SLIPWAY_K8S_REGISTRY=HOST:PORT`: a registry this engine pushes to and the cluster pulls from
//! (kind's "local registry" recipe, or k3s's `registries.yaml`). The cluster's default storage
//! class must offer `ReadWriteMany`, or set `SLIPWAY_K8S_ACCESS_MODE=rwo`.
//! Without `SLIPWAY_KUBECONFIG` each test prints SKIPPED and returns: CI has no cluster.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Repo, Slipway, app_name, describe, wait_for};

const WHY_IGNORED: &str = "SKIPPED: no Kubernetes cluster (set SLIPWAY_KUBECONFIG)";

fn cluster() -> Option<String> {
    let cfg = std::env::var("SLIPWAY_KUBECONFIG").ok().filter(|v| !v.is_empty());
    if cfg.is_none() {
        eprintln!("{WHY_IGNORED}: this test is not a pass");
    }
    cfg
}

struct Cluster {
    kubeconfig: String,
    namespace: String,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .output()
            .expect("kubectl must be on PATH for the real-cluster tests");
        assert!(out.status.success(), "kubectl {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

/// An app on the cluster in a namespace of its own, with a 1G mount.
fn kube_app(s: &Slipway, kubeconfig: &str) -> (String, Cluster) {
    let app = app_name("k8sreal");
    let namespace = format!("slipway-{app}");
    let c = Cluster { kubeconfig: kubeconfig.to_owned(), namespace: namespace.clone() };
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["create", "namespace", &namespace])
        .output();
    assert!(out.unwrap().status.success(), "cannot create namespace {namespace}");
    let mut args =
        vec!["apps", "create", app.as_str(), "--runtime", "kubernetes", "--namespace", namespace.as_str()];
    let registry = std::env::var("SLIPWAY_K8S_REGISTRY").expect("set SLIPWAY_K8S_REGISTRY=HOST:PORT");
    args.extend(["--registry", registry.as_str()]);
    let mode = std::env::var("SLIPWAY_K8S_ACCESS_MODE").unwrap_or_else(|_| "rwx".into());
    args.extend(["--access-mode", mode.as_str()]);
    s.ok(&args);
    s.track(&app);
    let out =
        s.cmd().env("SLIPWAY_MOUNT_MODE", "soft").args(["mount", "enable", &app, "--size", "1G"]).output();
    assert!(out.unwrap().status.success());
    (app, c)
}

/// `slipway deploy` against the cluster.
fn deploy(s: &Slipway, kubeconfig: &str, app: &str, repo: &Repo) -> std::process::Output {
    s.cmd()
        .env("SLIPWAY_KUBECONFIG", kubeconfig)
        .args(["deploy", app, "--repo", repo.path()])
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs a Kubernetes cluster: set SLIPWAY_KUBECONFIG and run with --ignored"]
fn predeploy_writes_the_claim_and_web_on_every_pod_reads_it_across_redeploys() {
    let Some(cfg) = cluster() else { return };
    let s = Slipway::new();
    let (app, c) = kube_app(&s, &cfg);
    s.ok(&["ps", "scale", &app, "web=2"]);
    let repo = Repo::from_fixture("seed-demo");
    for round in 1..=3 {
        let out = deploy(&s, &cfg, &app, &repo);
        assert!(out.status.success(), "deploy {round}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("predeploy: data.csv has"),
            "{}",
            describe(&out)
        );
        repo.commit(&format!("round {round}"));
    }
    // Every web pod sees the predeploy's file in the one claim, at /mount and ../mount.
    let pods = c.kubectl(&[
        "get",
        "pods",
        "-l",
        &format!("slipway.dev/app={app},slipway.dev/type=web"),
        "-o",
        "name",
    ]);
    assert_eq!(pods.lines().count(), 2, "{pods}");
    for pod in pods.lines() {
        let seen =
            c.kubectl(&["exec", pod, "--", "bash", "-c", "cat /mount/last-predeploy.txt ../mount/data.csv"]);
        assert!(seen.contains("x,y"), "{pod}: {seen}");
    }
    // The old ReplicaSets are gone, and so are the Jobs of the retired releases.
    let rs = c.kubectl(&[
        "get",
        "replicasets",
        "-l",
        &format!("slipway.dev/app={app},slipway.dev/type=web"),
        "-o",
        "name",
    ]);
    assert_eq!(rs.lines().count(), 1, "{rs}");
    let jobs = c.kubectl(&["get", "jobs", "-o", "name"]);
    assert_eq!(jobs.lines().collect::<Vec<_>>(), [format!("job.batch/{app}-predeploy-v3")], "{jobs}");
}

#[test]
#[ignore = "needs a Kubernetes cluster: set SLIPWAY_KUBECONFIG and run with --ignored"]
fn a_failing_predeploy_leaves_the_running_deployments_untouched() {
    let Some(cfg) = cluster() else { return };
    let s = Slipway::new();
    let (app, c) = kube_app(&s, &cfg);
    let repo = Repo::from_fixture("seed-demo");
    let out = deploy(&s, &cfg, &app, &repo);
    assert!(out.status.success(), "{}", describe(&out));
    repo.write("predeploy.sh", "echo about to fail\nexit 7\n");
    repo.commit("failing predeploy");
    let out = deploy(&s, &cfg, &app, &repo);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("about to fail"), "{}", describe(&out));
    let release = c.kubectl(&[
        "get",
        "deployment",
        &format!("{app}-web"),
        "-o",
        "jsonpath={.metadata.labels.slipway\\.dev/release}",
    ]);
    assert_eq!(release, "v1");
    let ready = wait_for(Duration::from_secs(60), || {
        let r = c.kubectl(&[
            "get",
            "deployment",
            &format!("{app}-web"),
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        (r == "1").then_some(())
    });
    assert!(ready.is_some(), "v1 stopped serving");
}
