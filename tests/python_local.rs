//! The seed's Dash app on the local runtime: the `slipway/python` buildpack runs on the host as
//! the app's user, with the host's python3 and CA bundle. See `tests/python_support` for what is
//! proved.

#![allow(clippy::unwrap_used)]

mod common;
mod python_support;

use common::{Slipway, describe};

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
    let repo = python_support::seed_dash_scenario(&sw, &app, &venv_toml);
    // The launch environment reaches one-off commands too: the venv's python, with dash.
    let out =
        sw.ok(&["run", &app, "--", "python -c 'import dash, sys; print(sys.prefix.endswith(\"venv\"))'"]);
    assert_eq!(out, "True\n");
    sealed_venv_is_linked_not_copied_and_the_app_cannot_change_it(&sw, &app, &repo);
}

/// After the scenario (v3 installed the current requirements, v4 failed): the venv is root's,
/// sealed in the app's layer store; a code-only deploy links the same files (no copy, no pip),
/// retiring the release that built it does not break the live one, and neither a write into
/// the live venv nor a venv planted in the app's own cache reaches the next release.
fn sealed_venv_is_linked_not_copied_and_the_app_cannot_change_it(
    sw: &Slipway,
    app: &str,
    repo: &common::Repo,
) {
    use std::os::unix::fs::MetadataExt;
    let apps = sw.home.path().join("apps").join(app);
    let store = apps.join("layers/slipway_python/venv");
    let link_of = |release: &str| {
        let at = apps.join("releases").join(release).join("layers/slipway_python/venv");
        std::fs::read_link(&at).unwrap_or_else(|e| panic!("{} is not a link: {e}", at.display()))
    };
    let built_by = sw.release(app);
    let entry = store.join(&built_by).join("venv");
    assert_eq!(link_of(&built_by), entry, "the release runs its venv from the store");
    assert_eq!(std::fs::read_link(store.join("current")).unwrap(), std::path::Path::new(&built_by));
    let gunicorn = entry.join("bin/gunicorn");
    let before = std::fs::metadata(&gunicorn).unwrap();
    assert_eq!((before.uid(), before.mode() & 0o222), (0, 0o200), "sealed: root's, read-only to others");
    let mut entries: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["current", built_by.as_str()], "v1's venv, no longer used, was removed");

    // The app's user (its one-off commands run as it, in the live release's environment)
    // cannot change its live venv...
    let write = sw.run(&[
        "run",
        app,
        "--",
        "echo '# poisoned' >> \"$VIRTUAL_ENV/bin/gunicorn\" && exit 0; \
         for d in \"$VIRTUAL_ENV\"/lib/python3*/site-packages; do touch \"$d/poison.py\" && exit 0; done; exit 1",
    ]);
    assert!(!write.status.success(), "the app wrote into its sealed venv: {}", describe(&write));
    assert_eq!(
        String::from_utf8_lossy(&write.stderr).matches("Permission denied").count(),
        2,
        "{}",
        describe(&write)
    );
    // ...and a venv it plants in its own build cache, with the current key, is not restored.
    let plant = "set -e; c=../../../cache/layers/slipway_python; mkdir -p $c/venv/bin $c/venv/lib/python3/site-packages; \
                 ln -sf /usr/bin/python3 $c/venv/bin/python; cp ../layers/slipway_python/venv.toml $c/venv.toml; \
                 echo 'print(\"poisoned\")' > $c/venv/lib/python3/site-packages/poison.py; echo planted";
    assert_eq!(sw.ok(&["run", app, "--", plant]).trim(), "planted");

    // A code-only deploy: the same sealed files, linked; pip does not run.
    // The requirements the serving release was built from (before the broken one).
    repo.git(&["checkout", "-q", "HEAD~1", "--", "requirements.txt"]);
    repo.write(
        "worker.py",
        &(std::fs::read_to_string(repo.path().to_owned() + "/worker.py").unwrap() + "# again\n"),
    );
    repo.commit("code only, again");
    let out = sw.run(&["deploy", app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr.contains("venv reused, pip not run") && stderr.contains("none copied"), "{stderr}");
    let live = sw.release(app);
    assert_ne!(live, built_by);
    assert_eq!(link_of(&live), entry, "the new release links the same sealed venv");
    let after = std::fs::metadata(&gunicorn).unwrap();
    assert_eq!(
        (after.dev(), after.ino(), after.mtime()),
        (before.dev(), before.ino(), before.mtime()),
        "not copied, not rewritten"
    );
    assert!(!apps.join("cache/layers/slipway_python/venv").exists(), "the planted venv was dropped");

    // The release that built the venv is retired and deleted; the live one still runs from it.
    assert!(!apps.join("releases").join(&built_by).exists(), "{built_by} was retired");
    assert!(entry.join("bin/python").exists(), "the sealed venv outlives the release that built it");
    let out = sw.ok(&["run", app, "--", "python -c 'import dash, os; print(os.environ[\"VIRTUAL_ENV\"])'; python -c 'import poison' 2>/dev/null || echo no-poison"]);
    assert_eq!(out, format!("{}\nno-poison\n", entry.display()));
    python_support::callback_rows(sw.router_port(app), 1);
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
