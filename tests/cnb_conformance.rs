//! The conformance buildpacks of `fixtures/buildpacks/` (bash, one per rule of the Buildpack
//! API 0.7-0.12 spec; see its README) deployed with `--buildpack` through the real binary, on
//! the local runtime (as the app's user on the host) and on the docker runtime (the real
//! engine). Each scenario is written once and run on both runtimes ([`conformance!`]).
//!
//! - `a_full_group_builds`: positional arguments and `CNB_*` variables for each API version
//!   0.7 to 0.12, a composite, plan matching with metadata, env suffixes, per-process env,
//!   exec.d, a process with working-dir and args, store.toml across builds, include/exclude,
//!   a sparse file, `/platform/env` from project.toml and the app's config, and colour codes
//!   stripped from output that is not a terminal.
//! - `failures_name_their_cause`: a named buildpack failing detect, a requirement nobody
//!   provides, an unsupported API; the running release serves on.
//!
//! The docker tests are skipped, with a printed reason, without a Docker engine; the local
//! ones without root (which creates the app's user).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Repo, Slipway, describe, http_get};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Runtime {
    Local,
    Docker,
}

impl Runtime {
    /// An app of this runtime, or `None` (reported as skipped) when this machine cannot run it.
    fn app(self, sw: &Slipway, prefix: &str) -> Option<String> {
        match self {
            Runtime::Local => common::require::root_or_skip("a local buildpack build as the app's user")
                .then(|| sw.app(prefix)),
            Runtime::Docker => {
                common::docker_ready(sw).then(|| sw.app_with(prefix, &["--runtime", "docker"]))
            }
        }
    }

    /// What process type `ptype` prints when started as the platform starts it: by the image's
    /// launcher on docker; by the supervisor (scaled up, its log read) on the local runtime.
    fn run_type(self, sw: &Slipway, app: &str, ptype: &str) -> String {
        match self {
            Runtime::Docker => sw.ok(&["run", app, "--", "/cnb/launcher", ptype]).trim().to_owned(),
            Runtime::Local => {
                sw.ok(&["ps", "scale", app, &format!("{ptype}=1")]);
                let line = common::wait_for(Duration::from_secs(20), || {
                    // `TIME vN TYPE.1: LINE`; exec.d's stdout goes to the log as noise.
                    let logs = sw.ok(&["logs", app, ptype, "-n", "20"]);
                    let mark = format!(" {ptype}.1: ");
                    logs.lines()
                        .filter_map(|l| l.split_once(&mark).map(|(_, m)| m.trim().to_owned()))
                        .find(|m| m != "exec.d noise")
                });
                sw.ok(&["ps", "scale", app, &format!("{ptype}=0")]);
                line.unwrap_or_else(|| {
                    panic!("{ptype} printed nothing: {}", sw.ok(&["logs", app, "-n", "50"]))
                })
            }
        }
    }
}

/// Runs each scenario on each runtime, as its own test.
macro_rules! conformance {
    ($($scenario:ident),*) => {
        mod local {
            $(#[test] fn $scenario() { super::$scenario(super::Runtime::Local) })*
        }
        mod docker {
            $(#[test] fn $scenario() { super::$scenario(super::Runtime::Docker) })*
        }
    };
}

conformance!(a_full_group_builds, failures_name_their_cause);

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

/// Copies of the `apis` buildpack declaring each Buildpack API version from 0.7 to 0.12.
fn api_copies(tmp: &Path) -> Vec<String> {
    (7..=12)
        .map(|minor| {
            let dir = tmp.join(format!("api-0-{minor}"));
            common::copy_dir(Path::new(&bp("apis")), &dir);
            let text = std::fs::read_to_string(dir.join("buildpack.toml")).unwrap();
            let text = text
                .replace("api = \"0.10\"", &format!("api = \"0.{minor}\""))
                .replace("conformance/apis", &format!("conformance/api-0-{minor}"));
            std::fs::write(dir.join("buildpack.toml"), text).unwrap();
            dir.display().to_string()
        })
        .collect()
}

/// The app's files as the build left them, sorted, relative to the app directory.
fn app_files(sw: &Slipway, app: &str) -> Vec<String> {
    let out = sw.ok(&["run", app, "--", "find . -type f | sort"]);
    out.lines().map(|l| l.trim_start_matches("./").to_owned()).collect()
}

fn a_full_group_builds(rt: Runtime) {
    let sw = Slipway::new();
    let Some(app) = rt.app(&sw, "cnbc") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let v07 = with_sparse_file(tmp.path(), "v07-args").display().to_string();
    let repo = Repo::from_fixture("cnb-conformance");
    // The app's config wins over project.toml's build env in /platform/env.
    sw.ok(&["config", "set", &app, "BOTH=config", "--no-restart"]);
    let mut all = vec![bp("meta"), bp("provider"), bp("requirer"), v07, bp("platform-env"), bp("colour")];
    all.extend(api_copies(tmp.path()));

    let out = deploy(&sw, &app, &repo, &all);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "provider: build 1",
        "v07-args: built",
        "conformance/provider, conformance/requirer, conformance/v07-args, conformance/platform-env, conformance/colour, conformance/api-0-7",
        "platform-env: PROJECT_ONLY=project BOTH=config",
        "colour: detect in green",
        "colour: after a title",
        "colour: build in blue bold",
        "conformance/provider: SBOM files skipped (slipway keeps no SBOM): launch.sbom.cdx.json",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
    for minor in 7..=12 {
        assert!(err.contains(&format!("api 0.{minor}: ok")), "api 0.{minor} did not build:\n{err}");
    }
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}'),
        "escape codes reached a non-terminal:\n{err:?}"
    );
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("conformance app"));

    // exclude: the release holds none of what project.toml leaves out.
    let files = app_files(&sw, &app);
    assert_eq!(
        files,
        ["Procfile", "index.html", "project.toml", "sub/file.txt", "sub/keep.txt"],
        "{files:?}"
    );
    // Layer env suffixes and exec.d reach a one-off command, the per-process env does not...
    assert_eq!(
        sw.ok(&["run", &app, "--", "echo $GREETING $LIST $LEGACY $EXECD ${ONLY_GREET:-none}"]),
        "hello b 0.7 ran none\n"
    );
    // ...and a process type runs from its working-dir with its default args and its own env.
    assert_eq!(rt.run_type(&sw, &app, "greet"), "hello from sub exec.d=ran only=yes args=one two");
    assert_eq!(rt.run_type(&sw, &app, "legacy"), "legacy:0.7");
    assert_eq!(rt.run_type(&sw, &app, "api-0-12"), "api-0.12");

    // include: exactly what it names (and the directories holding it) is there; store.toml
    // is kept between builds.
    repo.write("index.html", "conformance app, second build\n");
    let project = std::fs::read_to_string(repo.dir.path().join("project.toml")).unwrap();
    let project = project.replace(
        "exclude = [\"*.log\", \"/secret.txt\", \"junk/\"]",
        "include = [\"Procfile\", \"index.html\", \"sub/*.txt\"]",
    );
    repo.write("project.toml", &project);
    repo.commit("second");
    let out = deploy(&sw, &app, &repo, &all);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider: build 2"), "{}", describe(&out));
    assert_eq!(app_files(&sw, &app), ["Procfile", "index.html", "sub/file.txt", "sub/keep.txt"]);
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("second build"));
}

fn failures_name_their_cause(rt: Runtime) {
    let sw = Slipway::new();
    let Some(app) = rt.app(&sw, "cnbf") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::from_fixture("cnb-conformance");
    let out = deploy(&sw, &app, &repo, &[bp("provider"), bp("requirer")]);
    assert!(out.status.success(), "{}", describe(&out));

    // A named buildpack that fails detect fails the build with its output, colour stripped.
    let out = deploy(&sw, &app, &repo, &[bp("never")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never: this app is not for me"), "{err}");
    assert!(err.contains("conformance/never did not pass detect"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes reached a non-terminal:\n{err:?}");
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
    assert_eq!(sw.release(&app), "v1", "a failed build replaced the running release");
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("conformance app"));
}
