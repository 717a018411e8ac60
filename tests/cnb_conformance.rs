//! The conformance buildpacks of `fixtures/buildpacks/` (bash, one per rule of the Buildpack
//! API 0.7-0.12 spec; see its README) deployed with `--buildpack` on the docker runtime through
//! the real binary and engine: positional arguments and `CNB_*` variables per API, a composite,
//! plan matching with metadata, env suffixes, exec.d, a process with working-dir and args,
//! store.toml across builds, a sparse file, and the failures: a named buildpack failing detect,
//! a requirement nobody provides, an unsupported API.
//!
//! Skipped, with a printed reason, without a Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Repo, Slipway, describe, http_get};

fn bp(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/buildpacks").join(name).display().to_string()
}

fn deploy(sw: &Slipway, app: &str, repo: &Repo, buildpacks: &[String]) -> std::process::Output {
    let mut args = vec!["deploy".to_owned(), app.to_owned(), "--repo".into(), repo.path().to_owned()];
    for b in buildpacks {
        args.push("--buildpack".into());
        args.push(b.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sw.run(&args)
}

/// A copy of `name` holding a 4 MiB sparse file, as a freshly linked binary often is.
fn with_sparse_file(tmp: &Path, name: &str) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tmp.join(name);
    common::copy_dir(Path::new(&bp(name)), &dir);
    let mut f = std::fs::File::create(dir.join("bin/blob")).unwrap();
    f.write_all(b"start").unwrap();
    f.seek(SeekFrom::Start(4 << 20)).unwrap();
    f.write_all(b"end").unwrap();
    dir
}

#[test]
fn the_conformance_buildpacks_pass_on_the_docker_runtime() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v07 = with_sparse_file(tmp.path(), "v07-args").display().to_string();
    let repo = Repo::from_fixture("cnb-conformance");
    let app = sw.app_with("cnbc", &["--runtime", "docker"]);
    let all = [bp("meta"), bp("provider"), bp("requirer"), v07.clone()];

    let out = deploy(&sw, &app, &repo, &all);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("provider: build 1"), "{err}");
    assert!(err.contains("v07-args: built"), "{err}");
    assert!(
        err.contains("conformance/provider, conformance/requirer, conformance/v07-args, slipway/procfile"),
        "{err}"
    );
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("conformance app"));

    // Layer env suffixes and exec.d reach a one-off command...
    assert_eq!(sw.ok(&["run", &app, "--", "echo $GREETING $LIST $LEGACY $EXECD"]), "hello b 0.7 ran\n");
    // ...and process types run from their working-dir with their default args.
    assert_eq!(
        sw.ok(&["run", &app, "--", "/cnb/launcher", "greet"]),
        "hello from sub exec.d=ran args=one two\n"
    );
    assert_eq!(sw.ok(&["run", &app, "--", "/cnb/launcher", "legacy"]), "legacy:0.7\n");

    // store.toml is kept between builds.
    repo.write("index.html", "conformance app, second build\n");
    repo.commit("second");
    let out = deploy(&sw, &app, &repo, &all);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider: build 2"), "{}", describe(&out));

    // A named buildpack that fails detect fails the build with its output; the release serves on.
    let out = deploy(&sw, &app, &repo, &[bp("never")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never: this app is not for me"), "{err}");
    assert!(err.contains("conformance/never did not pass detect"), "{err}");
    // A requirement nobody provides fails the group.
    let out = deploy(&sw, &app, &repo, &[bp("orphan")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("requires \"nothing-provides-this\", which no buildpack at or before it provides"),
        "{err}"
    );
    // An API outside 0.7-0.12 is refused, naming the range.
    let future = tmp.path().join("future");
    common::copy_dir(Path::new(&bp("requirer")), &future);
    let text = std::fs::read_to_string(future.join("buildpack.toml")).unwrap();
    std::fs::write(future.join("buildpack.toml"), text.replace("0.10", "0.13")).unwrap();
    let out = deploy(&sw, &app, &repo, &[future.display().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0.7 to 0.12"), "{}", describe(&out));
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("second build"));
}
