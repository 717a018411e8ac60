//! A broken release is never switched in (issue 8 §4), and the Procfile's `release:` is
//! Heroku's release phase (§5), on the local runtime: the real binary, real gunicorn, real
//! processes, the app's router.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, get};

/// The app answers through its router with `release`'s web.
fn router_serves(s: &Slipway, app: &str, release: &str) {
    assert_eq!(s.release(app), release, "the current release changed");
    let (code, _) = get(s.router_port(app), "/").expect("the router stopped answering");
    assert_eq!(code, 200, "the app's stable address does not serve the good release");
}

/// Replaces the repository's Procfile (and removes project.toml) with `fixture`'s files.
fn switch_to(repo: &Repo, fixture: &str) {
    for f in ["Procfile", "project.toml", "app.py", "predeploy.sh", "worker.py"] {
        let _ = std::fs::remove_file(repo.dir.path().join(f));
    }
    common::copy_dir(&common::fixture(fixture), repo.dir.path());
    repo.commit(fixture);
}

#[test]
fn an_import_error_under_gunicorn_is_never_switched_in() {
    assert!(
        std::path::Path::new("/usr/bin/gunicorn").exists(),
        "this test needs Debian's gunicorn package (.ci/run installs it): apt-get install gunicorn"
    );
    let s = Slipway::new();
    let app = s.app("gunicorn");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    router_serves(&s, &app, "v1");
    switch_to(&repo, "bad-import-gunicorn");
    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--web-timeout", "20s", "--stop-grace", "2s"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed during start"), "{stderr}");
    assert!(
        stderr.contains("slipway_fixture_module_that_is_not_installed"),
        "the import error is not shown:\n{stderr}"
    );
    router_serves(&s, &app, "v1");
}

#[test]
fn a_process_that_crashes_in_the_settle_period_is_never_switched_in() {
    let s = Slipway::new();
    let app = s.app("settle");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    // web answers at once; the worker dies 300 ms in, inside the default 1 s settle period.
    repo.write(
        "Procfile",
        "web: python3 app.py\nworker: sleep 0.3; echo 'worker: lost the queue' >&2; exit 1\n",
    );
    repo.commit("a worker that dies after starting");
    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--stop-grace", "2s"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker.1 crashed 1s after the release became healthy"), "{stderr}");
    assert!(stderr.contains("worker: lost the queue"), "its log is not shown:\n{stderr}");
    router_serves(&s, &app, "v1");
    // A settle period of zero switches as soon as web answers: the crash comes too late.
    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--settle", "0s", "--stop-grace", "2s"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.release(&app), "v3");
}

#[test]
fn procfile_release_runs_once_per_deploy_with_the_mount_and_a_failure_aborts() {
    let s = Slipway::new();
    let app = s.app("relphase");
    let repo = Repo::from_fixture("seed-demo");
    repo.write(
        "Procfile",
        "Web: python3 app.py\nrelease: echo \"release of $(basename \"$PWD\") ran\" | tee -a ../mount/release.log\n",
    );
    repo.commit("a release phase");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"process type "Web" is read as "web""#), "no warning for Web:\n{stderr}");
    assert!(stderr.contains("Running release: echo"), "{stderr}");
    let log = || std::fs::read_to_string(s.mount_dir(&app).join("release.log")).unwrap_or_default();
    assert_eq!(
        log().lines().collect::<Vec<_>>(),
        ["release of app ran"],
        "mount: {}",
        s.mount_dir(&app).display()
    );
    // It ran after predeploy, which it can rely on, and it is not a process: ps does not list it.
    assert!(s.mount_dir(&app).join("data.csv").is_file());
    let ps = s.ps(&app);
    let types: Vec<_> = ps["instances"].as_array().unwrap().iter().map(|i| i["ptype"].clone()).collect();
    assert_eq!(types, ["web"], "{ps}");
    router_serves(&s, &app, "v1");
    // A failing release phase aborts the deploy before anything starts.
    repo.write("Procfile", "web: python3 app.py\nrelease: echo 'migration 7 failed' >&2; exit 7\n");
    repo.commit("a failing release phase");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed during release") && stderr.contains("migration 7 failed"), "{stderr}");
    assert_eq!(log().lines().count(), 1);
    router_serves(&s, &app, "v1");
}
