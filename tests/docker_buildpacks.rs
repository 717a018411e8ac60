//! Extra buildpacks on the docker runtime, through the real binary and the real engine: a
//! buildpack committed with the app and named by project.toml `[[io.buildpacks.group]]`, and
//! `--buildpack DIR` (which replaces the group), each run before slipway's Procfile buildpack.
//!
//! Skipped, with a printed reason, when there is no Docker engine. Each app has a unique name
//! and is destroyed on drop.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, fixture, http_get};

fn get(sw: &Slipway, app: &str, path: &str) -> (u16, String) {
    let port = sw.web_port(app);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut s, format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

#[test]
fn a_project_toml_group_buildpack_from_the_commit_runs_before_the_procfile_buildpack() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-buildpack-extra");
    let app = sw.app_with("dbx", &["--runtime", "docker"]);
    sw.ok(&["deploy", &app, "--repo", repo.path()]);
    // The marker buildpack wrote into the app folder, which the Procfile's web serves...
    let (code, body) = get(&sw, &app, "/marker.txt");
    assert_eq!((code, body.as_str()), (200, "built by the marker buildpack\n"));
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("hello from the buildpack-extra fixture"));
    // ...and its launch layer's environment reaches every process.
    assert_eq!(sw.ok(&["run", &app, "--", "echo $MARKER"]), "from-marker\n");
}

#[test]
fn buildpack_flags_replace_the_group_and_run_in_order() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-buildpack-extra");
    let app = sw.app_with("dbf", &["--runtime", "docker"]);
    let cache_demo = fixture("docker-buildpack-cache");
    sw.ok(&["deploy", &app, "--repo", repo.path(), "--buildpack", cache_demo.to_str().unwrap()]);
    // cache-demo's launch layer puts `hello` on the PATH of every process.
    assert_eq!(sw.ok(&["run", &app, "--", "hello"]), "hello from a launch layer (build 1)\n");
    // The flag replaced project.toml's group, as `pack build --buildpack` does.
    assert_eq!(get(&sw, &app, "/marker.txt").0, 404);
    assert!(http_get(sw.web_port(&app)).unwrap().1.contains("hello from the buildpack-extra fixture"));
}

#[test]
fn an_id_only_group_entry_is_refused_since_no_registry_can_be_reached() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-buildpack-extra");
    repo.write("project.toml", "[[io.buildpacks.group]]\nid = \"heroku/python\"\n");
    repo.commit("registry buildpack");
    let app = sw.app_with("dbr", &["--runtime", "docker"]);
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("io.buildpacks.group[0]") && stderr.contains("no buildpack registry"),
        "{stderr}"
    );
}
