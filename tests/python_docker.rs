//! The seed's Dash app on the docker runtime, built by the `slipway/python` buildpack in a
//! build container from the stack image (python3-venv, python3-pip) that trusts the host's CA
//! bundle (this network intercepts TLS). See `tests/python_support` for what is proved.
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;
mod python_support;

use common::Slipway;

#[test]
fn seed_dash_deploys_with_its_venv_reused_rebuilt_and_a_failed_install_refused() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = sw.app_with("pyd", &["--runtime", "docker"]);
    let venv_toml = || sw.ok(&["run", &app, "--", "cat /layers/slipway_python/venv.toml"]);
    python_support::seed_dash_scenario(&sw, &app, &venv_toml);
    // The CA bundle was lent to the build, never baked into the release image (the commit
    // keeps only the empty mount point the engine made for it).
    let probe =
        sw.ok(&["run", &app, "--", "test -s /etc/slipway/ca-certificates.crt && echo baked || echo clean"]);
    assert_eq!(probe, "clean\n");
}

#[test]
fn apps_set_ca_certs_refuses_what_is_not_a_pem_bundle_and_keeps_the_setting() {
    let sw = Slipway::new();
    let app = sw.app("pyca");
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let pem = dir.path().join("corp.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let info =
        || -> serde_json::Value { serde_json::from_str(&sw.ok(&["apps", "info", &app, "--json"])).unwrap() };

    sw.ok(&["apps", "set", &app, "--ca-certs", pem.to_str().unwrap()]);
    assert_eq!(info()["ca_certs"], pem.to_str().unwrap());
    for (bad, why) in [
        ("corp.pem", "absolute"),
        (not_pem.to_str().unwrap(), "BEGIN CERTIFICATE"),
        ("/nonexistent/ca.pem", "cannot read"),
    ] {
        let out = sw.run(&["apps", "set", &app, "--ca-certs", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(why), "{bad}: {stderr}");
        assert_eq!(info()["ca_certs"], pem.to_str().unwrap(), "a refused value changes nothing");
    }
    sw.ok(&["apps", "set", &app, "--ca-certs", "host"]);
    assert!(info().get("ca_certs").is_none());
}
