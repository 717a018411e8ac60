//! The docker runtime end to end, through the real binary and the real engine: Dockerfile and
//! buildpack apps deploy and answer; the mount is `/mount` under both paths in every container
//! and keeps its data; old releases leave nothing behind; a failed predeploy or a killed
//! deploy leaves the old release serving.
//!
//! Skipped, with a printed reason, when there is no Docker engine. Each app has a unique name
//! and is destroyed on drop (`apps destroy`: containers, images, volumes).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Repo, Slipway, describe, http_get, wait_for};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The app's images and containers (name, state) in the engine, by label.
fn engine_view(app: &str) -> (Vec<String>, Vec<String>) {
    let filter = format!("label=slipway.app={app}");
    let images = docker(&["images", "-q", "--filter", &filter]);
    let containers = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    (sorted(images), sorted(containers))
}

fn docker_app(sw: &Slipway, prefix: &str) -> String {
    sw.app_with(prefix, &["--runtime", "docker"])
}

fn deploy(sw: &Slipway, app: &str, repo: &Repo) {
    sw.ok(&["deploy", app, "--repo", repo.path()]);
}

fn body(sw: &Slipway, app: &str) -> String {
    let (code, body) = http_get(sw.web_port(app)).unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn dockerfile_and_buildpack_apps_deploy_and_answer_with_predeploy_changes_kept() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let dockerfile = Repo::from_fixture("docker-dockerfile");
    dockerfile.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    dockerfile.commit("predeploy");
    let app = docker_app(&sw, "dkf");
    deploy(&sw, &app, &dockerfile);
    assert!(body(&sw, &app).contains("hello from the dockerfile fixture"));
    // Predeploy ran in a container of the new image, which was committed as the release.
    let marker = sw.ok(&["run", &app, "--", "cat predeploy-marker build-output.txt"]);
    assert_eq!(marker, "prepared\ncompiled\n");
    assert!(sw.mount_dir(&app).join("predeploy-ran").is_file());

    let procfile = Repo::from_fixture("docker-procfile");
    let bp = docker_app(&sw, "dkp");
    deploy(&sw, &bp, &procfile);
    assert!(body(&sw, &bp).contains("hello from the procfile fixture"));
    let ps = sw.ps(&bp);
    let types: Vec<&str> =
        ps["instances"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(types, ["web.1", "worker.1"]);
}

/// Web and workers record where `../mount` and `~/mount` lead, and the worker appends the
/// commit's VERSION to a file in the mount.
fn mount_probe_repo() -> Repo {
    let repo = Repo::from_fixture("docker-procfile");
    repo.write(
        "Procfile",
        "web: realpath ../mount ~/mount > ../mount/paths-$DYNO; exec python3 -m http.server $PORT\n\
         worker: realpath ../mount ~/mount > ~/mount/paths-$DYNO; cat VERSION >> ../mount/versions-$DYNO; exec sleep infinity\n",
    );
    repo.write("predeploy.sh", "realpath ../mount ~/mount > ../mount/paths-predeploy\n");
    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    repo.write("VERSION", "1\n");
    repo.commit("mount probe");
    repo
}

#[test]
fn both_mount_paths_are_slash_mount_everywhere_and_data_persists_across_redeploys() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = mount_probe_repo();
    let app = docker_app(&sw, "dkm");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    // Predeploy wrote only to the mount: its container is not committed, and the release
    // runs the image the build made.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("predeploy changed no file of the image"), "{stderr}");
    let built = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("[lifecycle] commit: "))
        .unwrap_or_else(|| panic!("no commit line in {stderr}"));
    let release = docker(&["image", "inspect", "-f", "{{.Id}}", &format!("slipway/{app}:v1")]);
    assert!(release.trim().trim_start_matches("sha256:").starts_with(&built[..12]), "{release} vs {built}");
    sw.ok(&["ps", "scale", &app, "worker=2"]);
    for v in ["2", "3"] {
        repo.write("VERSION", &format!("{v}\n"));
        repo.commit(v);
        deploy(&sw, &app, &repo);
    }
    let mount = sw.mount_dir(&app);
    for who in ["web.1", "worker.1", "worker.2", "predeploy"] {
        let got = wait_for(Duration::from_secs(20), || {
            std::fs::read_to_string(mount.join(format!("paths-{who}"))).ok()
        });
        assert_eq!(got.as_deref(), Some("/mount\n/mount\n"), "{who}");
    }
    let versions =
        |who: &str| std::fs::read_to_string(mount.join(format!("versions-{who}"))).unwrap_or_default();
    let all = wait_for(Duration::from_secs(20), || Some(versions("worker.1")).filter(|v| v.ends_with("3\n")));
    assert_eq!(all.as_deref(), Some("1\n2\n3\n"), "worker.1's writes survive two redeploys");
    assert_eq!(versions("worker.2"), "1\n2\n3\n", "scaled up while v1 ran");
    // Files the containers wrote belong to the container user, and `slipway mount` reads them.
    let listed = sw.ok(&["mount", "ls", &app]);
    assert!(listed.contains("versions-worker.1"), "{listed}");
}

#[test]
fn after_five_deploys_the_engine_holds_one_image_and_one_set_of_containers() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-procfile");
    let app = docker_app(&sw, "dkc");
    for n in 1..=5 {
        repo.write("n.txt", &n.to_string());
        repo.commit(&format!("deploy {n}"));
        deploy(&sw, &app, &repo);
    }
    let (images, containers) = engine_view(&app);
    assert_eq!(images.len(), 1, "images: {images:?}");
    assert_eq!(containers, [format!("slipway-{app}-v5-web-1"), format!("slipway-{app}-v5-worker-1")]);
    assert_eq!(sw.release(&app), "v5");
}

#[test]
fn a_failing_predeploy_exits_3_and_leaves_the_old_containers_serving() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-procfile");
    let app = docker_app(&sw, "dkf3");
    deploy(&sw, &app, &repo);
    let port = sw.web_port(&app);
    let before = engine_view(&app);

    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    repo.write(
        "predeploy.sh",
        "echo 'fetching data...'\necho 'error: the data source is unreachable' >&2\nexit 3\n",
    );
    repo.commit("failing predeploy");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the data source is unreachable"), "{stderr}");

    assert_eq!(sw.release(&app), "v1");
    assert_eq!(sw.web_port(&app), port);
    assert!(http_get(port).unwrap().1.contains("hello from the procfile fixture"));
    assert_eq!(engine_view(&app), before, "the failed release's image and containers are gone");

    // A web that starts but fails its health check is never switched in either.
    repo.write("project.toml", "[io.slipway]\nhealthcheck = \"/missing\"\n");
    repo.commit("a health check web fails");
    let out = sw.run(&["deploy", &app, "--repo", repo.path(), "--web-timeout", "12s"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed its health check for 12s: GET /missing answered 404"), "{stderr}");
    assert_eq!(sw.release(&app), "v1");
    assert!(http_get(port).unwrap().1.contains("hello from the procfile fixture"));
    assert_eq!(engine_view(&app), before, "the unhealthy release's image and containers are gone");
}

#[test]
fn a_deploy_killed_during_build_or_predeploy_leaves_the_old_release_and_no_orphans() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let repo = Repo::from_fixture("docker-dockerfile");
    // Slow steps only when the file `slow` is committed, so v1 deploys quickly.
    repo.write(
        "Dockerfile",
        "FROM slipway/stack:bookworm\nRUN install -d -o 1000 -g 1000 /app\nWORKDIR /app\n\
         COPY --chown=1000:1000 . /app\nUSER 1000:1000\n\
         RUN if [ -f slow-build ]; then echo slow-build-started; sleep 60; fi\n",
    );
    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    repo.write("predeploy.sh", "if [ -f slow-predeploy ]; then echo slow-predeploy-started; sleep 60; fi\n");
    repo.commit("v1");
    let app = docker_app(&sw, "dkk");
    deploy(&sw, &app, &repo);
    let port = sw.web_port(&app);
    let v1 = engine_view(&app);

    for (file, marker) in [("slow-build", "slow-build-started"), ("slow-predeploy", "slow-predeploy-started")]
    {
        let _ = std::fs::remove_file(repo.dir.path().join("slow-build"));
        repo.write(file, "");
        repo.commit(file);
        sw.kill_at(
            &["deploy", &app, "--repo", repo.path()],
            marker,
            Duration::from_secs(120),
            Duration::ZERO,
        );
        // The next command reconciles: the old release keeps serving, the orphans go (the
        // engine may still be finishing an abandoned build step, so poll).
        let clean = wait_for(Duration::from_secs(90), || {
            (engine_view(&app) == v1).then_some(()).or_else(|| {
                sw.ok(&["ps", &app]);
                None
            })
        });
        assert!(clean.is_some(), "after a kill during {file}: {:?}, want {v1:?}", engine_view(&app));
        assert_eq!(sw.release(&app), "v1");
        assert!(http_get(port).unwrap().1.contains("hello from the dockerfile fixture"), "{file}");
    }
    // And the next deploy works.
    let _ = std::fs::remove_file(repo.dir.path().join("slow-predeploy"));
    repo.commit("fast again");
    deploy(&sw, &app, &repo);
    assert!(body(&sw, &app).contains("hello from the dockerfile fixture"));
}

#[test]
fn a_git_push_deploys_a_docker_app_and_labels_its_image_with_the_pushed_commit() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = docker_app(&sw, "dpush");
    let repo = Repo::from_fixture("docker-dockerfile");
    repo.add_slipway_remote(&sw, &app);
    let out = repo.push("main");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("remote: -----> Building v1"),
        "{}",
        describe(&out)
    );
    assert!(body(&sw, &app).contains("hello from the dockerfile fixture"));
    let head = repo.git(&["rev-parse", "HEAD"]);
    let label = docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"slipway.commit\"}}",
        &format!("slipway/{app}:v1"),
    ]);
    assert_eq!(label.trim(), head);
}

#[test]
fn restart_config_stop_start_and_logs_work_and_keep_the_web_address() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = docker_app(&sw, "dops");
    deploy(&sw, &app, &Repo::from_fixture("docker-dockerfile"));
    let port = sw.web_port(&app);
    let answers = |what: &str| {
        let ok = wait_for(Duration::from_secs(20), || http_get(port).ok().filter(|(c, _)| *c == 200));
        assert!(ok.is_some(), "web does not answer on {port} after {what}: {}", sw.ps(&app));
        assert_eq!(sw.web_port(&app), port, "{what} moved web");
    };
    sw.ok(&["ps", "restart", &app]);
    answers("ps restart");
    sw.ok(&["ps", "restart", &app, "web"]);
    answers("ps restart web");
    sw.ok(&["config", "set", &app, "GREETING=from config"]);
    answers("config set");
    assert_eq!(sw.ok(&["run", &app, "--", "echo $GREETING"]).trim(), "from config");
    sw.ok(&["ps", "stop", &app]);
    assert_eq!(sw.ps(&app)["running"], false);
    assert!(http_get(port).is_err(), "web answers after ps stop");
    sw.ok(&["ps", "start", &app]);
    answers("ps start");
    let logs = sw.ok(&["logs", &app, "web", "-n", "50"]);
    assert!(logs.contains("GET / HTTP"), "the engine's log of web: {logs}");

    // The app's stable address follows a redeploy to the new container's port.
    let router = sw.router_port(&app);
    assert_eq!(http_get(router).unwrap().0, 200);
    deploy(&sw, &app, &Repo::from_fixture("docker-dockerfile"));
    assert_ne!(sw.web_port(&app), port, "a deploy gives web a new port");
    assert!(http_get(router).unwrap().1.contains("hello from the dockerfile fixture"));
}
