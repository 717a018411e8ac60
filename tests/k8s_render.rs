//! The kubernetes runtime without a cluster (issue 10 §2, §3): `apps create --runtime
//! kubernetes`, `slipway k8s render` printing what a deploy applies, every rendered manifest
//! validated offline with `kubernetes-validate` against Kubernetes 1.30 to 1.35, and the
//! refusals (bad settings, no kubeconfig) with nothing built or written.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Repo, Slipway, app_name, describe};

/// The Kubernetes versions every manifest must validate against.
const VERSIONS: [&str; 6] = ["1.30", "1.31", "1.32", "1.33", "1.34", "1.35"];

/// `kubernetes-validate` (PyPI): `SLIPWAY_KUBERNETES_VALIDATE`, the CI venv, or PATH. `.ci/run`
/// installs it, so a missing one fails rather than skips.
fn validator() -> PathBuf {
    let candidates = [
        std::env::var_os("SLIPWAY_KUBERNETES_VALIDATE").map(PathBuf::from),
        Some(PathBuf::from("/opt/slipway-ci/kubernetes-validate/bin/kubernetes-validate")),
        which::which("kubernetes-validate").ok(),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed: python3 -m venv /opt/slipway-ci/kubernetes-validate && \
             /opt/slipway-ci/kubernetes-validate/bin/pip install kubernetes-validate (as .ci/run does)"
        )
    })
}

fn create(s: &Slipway, prefix: &str, flags: &[&str]) -> String {
    let app = app_name(prefix);
    let mut args = vec!["apps", "create", app.as_str(), "--runtime", "kubernetes"];
    args.extend_from_slice(flags);
    s.ok(&args);
    s.track(&app);
    app
}

/// A soft mount: only its size matters to a kubernetes app, and it needs no loop device.
fn enable_mount(s: &Slipway, app: &str, size: &str) {
    let out = s
        .cmd()
        .env("SLIPWAY_MOUNT_MODE", "soft")
        .args(["mount", "enable", app, "--size", size])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

fn render(s: &Slipway, app: &str, repo: &Repo) -> String {
    s.ok(&["k8s", "render", app, "--repo", repo.path()])
}

/// Validates `yaml` strictly (unknown fields are errors) against every version in VERSIONS.
fn validate(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, yaml).unwrap();
    for v in VERSIONS {
        let out = Command::new(validator()).args(["--strict", "-k", v]).arg(&file).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "Kubernetes {v} rejects the manifests:\n{text}\n{yaml}");
        // One line per document that passed: the claim, the Job, two Deployments, the Service.
        assert_eq!(text.matches(" passed for resource ").count(), 5, "Kubernetes {v}:\n{text}");
    }
}

fn repo_with_healthcheck() -> Repo {
    let repo = Repo::from_fixture("seed-demo");
    let project = std::fs::read_to_string(repo.dir.path().join("project.toml")).unwrap();
    repo.write("project.toml", &format!("{project}\n[io.slipway]\nhealthcheck = \"/\"\n"));
    repo.commit("health check");
    repo
}

#[test]
fn rendered_manifests_validate_against_kubernetes_1_30_to_1_35() {
    let s = Slipway::new();
    let repo = repo_with_healthcheck();
    let rwx = create(
        &s,
        "k8srwx",
        &["--namespace", "shop", "--storage-class", "efs-sc", "--registry", "reg.example:5000"],
    );
    enable_mount(&s, &rwx, "5G");
    s.ok(&["config", "set", &rwx, "GREETING=hello"]);
    let yaml = render(&s, &rwx, &repo);
    let kinds: Vec<_> = yaml.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Deployment", "Deployment", "Service"], "{yaml}");
    for needle in [
        "namespace: shop".to_owned(),
        format!("image: reg.example:5000/slipway/{rwx}:v1"),
        format!("claimName: {rwx}-mount"),
        format!("name: {rwx}-predeploy-v1"),
        "storageClassName: efs-sc".to_owned(),
        "- ReadWriteMany".to_owned(),
        "backoffLimit: 0".to_owned(),
        "restartPolicy: Never".to_owned(),
        "revisionHistoryLimit: 0".to_owned(),
        "GREETING".to_owned(),
        "mountPath: /mount".to_owned(),
        format!("storage: \"{}\"", 5u64 << 30),
    ] {
        assert!(yaml.contains(&needle), "no {needle:?} in:\n{yaml}");
    }
    validate(&yaml);

    // ReadWriteOnce: pinned to one node, recreated; said on stderr.
    let rwo = create(&s, "k8srwo", &["--access-mode", "rwo"]);
    enable_mount(&s, &rwo, "1G");
    let out = s.run(&["k8s", "render", &rwo, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pinned to that node"),
        "{}",
        describe_stderr(&out.stderr)
    );
    assert!(
        yaml.contains("type: Recreate") && yaml.contains("topologyKey: kubernetes.io/hostname"),
        "{yaml}"
    );
    assert!(yaml.contains(&format!("image: slipway/{rwo}:v1")), "no registry: the local tag\n{yaml}");
    validate(&yaml);
}

fn describe_stderr(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bad_kubernetes_settings_are_refused_and_nothing_is_created() {
    let s = Slipway::new();
    for (flags, says) in [
        (vec!["--runtime", "kubernetes", "--namespace", "Team_A"], "not a valid Kubernetes name"),
        (vec!["--runtime", "kubernetes", "--registry", "https://reg.example"], "HOST[:PORT][/PATH]"),
        (vec!["--runtime", "kubernetes", "--listen", "8080"], "served by its Service"),
        (vec!["--namespace", "shop"], "are for --runtime kubernetes"),
    ] {
        let app = app_name("k8sbad");
        let mut args = vec!["apps", "create", app.as_str()];
        args.extend_from_slice(&flags);
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{flags:?}: {}", describe(&out));
        assert!(!s.home.path().join("state").join(&app).exists(), "{flags:?} left state behind");
    }
    assert_eq!(s.ok(&["apps", "list"]).trim(), "");

    // `k8s render` of an app of another runtime names the fix.
    let repo = Repo::from_fixture("seed-demo");
    let local = app_name("k8slocal");
    s.ok(&["apps", "create", &local]);
    s.track(&local);
    let out = s.run(&["k8s", "render", &local, "--repo", repo.path()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runtime kubernetes"), "{}", describe(&out));

    // A process type that cannot name a Deployment is refused with the fix.
    let app = create(&s, "k8stype", &[]);
    repo.write("Procfile", "web: python3 app.py\n_sidecar: sleep infinity\n");
    repo.commit("bad type");
    let out = s.run(&["k8s", "render", &app, "--repo", repo.path()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rename it in the Procfile"), "{}", describe(&out));
}

#[test]
fn a_deploy_without_a_kubeconfig_is_refused_before_anything_is_built() {
    let s = Slipway::new();
    let app = create(&s, "k8snocfg", &[]);
    let repo = Repo::from_fixture("seed-demo");
    let empty_home = tempfile::tempdir().unwrap();
    let out = s
        .cmd()
        .env_remove("SLIPWAY_KUBECONFIG")
        .env_remove("KUBECONFIG")
        .env("HOME", empty_home.path())
        .args(["deploy", &app, "--repo", repo.path()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no kubeconfig") && err.contains("SLIPWAY_KUBECONFIG"), "{err}");
    assert!(err.contains("during build"), "{err}");
    let releases = s.ok(&["releases", &app, "--json"]);
    assert!(releases.contains("\"failed\""), "{releases}");
    // Nothing was built: no release image on the engine (when there is one).
    if let Ok(o) = Command::new("docker").args(["image", "ls", "-q", &format!("slipway/{app}")]).output() {
        assert!(o.stdout.is_empty(), "an image was built: {}", String::from_utf8_lossy(&o.stdout));
    }
}
