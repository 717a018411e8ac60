//! What the docker runtime reads from a repository and how it reports it: a subdirectory
//! deploy builds that subdirectory's Dockerfile, a composite naming a buildpack that is not
//! given fails clearly,
//! and build output reaching a file carries no terminal escape codes (issue 7 §6).
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, http_get};

#[test]
fn a_subdirectory_deploy_builds_the_subdirectorys_dockerfile() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    // The root holds a Procfile app; the subdirectory holds a Dockerfile app.
    let repo = Repo::from_fixture("docker-procfile");
    let sub = repo.dir.path().join("services/api");
    common::copy_dir(&common::fixture("docker-dockerfile"), &sub);
    repo.commit("a Dockerfile app in a subdirectory");
    let app = sw.app_with("dsd", &["--runtime", "docker"]);
    let out = sw.run(&["deploy", &app, "--repo", sub.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let (code, body) = http_get(sw.web_port(&app)).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello from the dockerfile fixture"), "{body}");
    assert_eq!(sw.ok(&["run", &app, "--", "cat build-output.txt"]), "compiled\n");
}

#[test]
fn a_composite_naming_a_buildpack_that_is_not_given_fails_clearly() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-buildpack-extra");
    repo.write(
        "buildpacks/meta/buildpack.toml",
        "api = \"0.10\"\n[buildpack]\nid = \"fixtures/meta\"\nversion = \"1\"\n\n\
         [[order]]\n[[order.group]]\nid = \"fixtures/marker\"\nversion = \"1\"\n",
    );
    repo.write(
        "project.toml",
        "[[io.buildpacks.group]]\nid = \"fixtures/meta\"\nuri = \"buildpacks/meta\"\n",
    );
    repo.commit("composite");
    let app = sw.app_with("dcb", &["--runtime", "docker"]);
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr.contains("a composite names buildpack fixtures/marker, which is not given")
            && stderr.contains("--buildpack"),
        "{stderr}"
    );
    assert!(!stderr.contains("OCI runtime"), "{stderr}");
}

#[test]
fn build_output_and_errors_not_going_to_a_terminal_have_no_escape_codes() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-dockerfile");
    repo.write(
        "Dockerfile",
        "FROM slipway/stack:bookworm\nRUN printf '\\033[1;31mcoloured-failure\\033[0m\\n' && exit 3\n",
    );
    repo.commit("colours");
    let app = sw.app_with("dan", &["--runtime", "docker"]);
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr.contains("coloured-failure"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes reached a pipe: {stderr:?}");
}
