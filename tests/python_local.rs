//! The seed's Dash app on the local runtime: the `slipway/python` buildpack runs on the host as
//! the app's user, with the host's python3 and CA bundle. See `tests/python_support` for what is
//! proved.

#![allow(clippy::unwrap_used)]

mod common;
mod python_support;

use common::Slipway;

#[test]
fn seed_dash_deploys_locally_with_its_venv_reused_rebuilt_and_a_failed_install_refused() {
    let sw = Slipway::new();
    let app = sw.app("pyl");
    let venv_toml = || {
        let release = sw.release(&app);
        let path = sw
            .home
            .path()
            .join("apps")
            .join(&app)
            .join("releases")
            .join(&release)
            .join("layers/slipway_python/venv.toml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    python_support::seed_dash_scenario(&sw, &app, &venv_toml);
    // The launch environment reaches one-off commands too: the venv's python, with dash.
    let out =
        sw.ok(&["run", &app, "--", "python -c 'import dash, sys; print(sys.prefix.endswith(\"venv\"))'"]);
    assert_eq!(out, "True\n");
}

#[test]
fn a_python_version_that_is_not_installed_fails_the_build_listing_those_that_are() {
    let sw = Slipway::new();
    let app = sw.app("pyv");
    let repo = common::Repo::from_fixture("seed-dash");
    repo.write(".python-version", "3.4\n");
    repo.commit("an old python");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(".python-version asks for Python 3.4, which is not installed here")
            && stderr.contains("Installed:")
            && stderr.contains("/usr/bin/python3"),
        "{stderr}"
    );
    assert!(sw.ps(&app)["release"].is_null(), "nothing was switched in: {}", sw.ps(&app));
}
