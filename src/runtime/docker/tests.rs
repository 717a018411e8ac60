//! Engine tests: each talks to the real Docker engine, and is skipped (with a printed reason)
//! when there is none. They need the stack image, which the first test to need it imports
//! under a file lock, so parallel tests neither race nor import twice.
//!
//! Every test app gets a random name; its containers, images and volumes are removed in
//! `Drop` by label, even when the test fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bollard::Docker;

use super::container::{self, ProcessSpec};
use super::image::{self, BuildRequest};
use super::labels;
use super::oneoff::{self, OneOffError, OneOffSpec};
use super::reconcile;
use super::relabel;
use super::stack::{self, StackImport};
use super::volume;
use super::{DEFAULT_STACK, connect};
use crate::ids::{AppName, CommitSha, ReleaseId};

const SOCKET: &str = "/var/run/docker.sock";

/// The engine and the stack image, or `None` (test skipped) when there is no engine.
async fn engine() -> Option<Docker> {
    if std::env::var_os("DOCKER_HOST").is_none() && !Path::new(SOCKET).exists() {
        // CI sets SLIPWAY_REQUIRE_DOCKER=1 so that a missing engine fails instead of passing.
        assert!(
            std::env::var_os("SLIPWAY_REQUIRE_DOCKER").is_none_or(|v| v != "1"),
            "SLIPWAY_REQUIRE_DOCKER=1, but there is no Docker engine ({SOCKET} missing)"
        );
        eprintln!("SKIPPED (this is not a pass): no Docker engine ({SOCKET} missing)");
        return None;
    }
    let docker = connect().await.expect("engine reachable");
    ensure_stack(&docker).await;
    Some(docker)
}

async fn ensure_stack(docker: &Docker) {
    let lock = std::fs::File::create(std::env::temp_dir().join("slipway-test-stack-import.lock")).unwrap();
    let fd = lock.try_clone().unwrap();
    tokio::task::spawn_blocking(move || rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive))
        .await
        .unwrap()
        .unwrap();
    let opts = StackImport::default();
    stack::import_stack(docker, &opts, &mut |l: &str| eprintln!("{l}")).await.expect("stack import");
    drop(lock);
}

fn random_suffix() -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    uuid.trim().replace('-', "")[..10].to_owned()
}

/// A test app: a random name, a git repo holding a fixture, a host mount directory; every
/// engine resource labelled with its name is removed on drop.
struct TestApp {
    app: AppName,
    dir: tempfile::TempDir,
}

impl TestApp {
    fn new() -> Self {
        let app: AppName = format!("t{}", random_suffix()).parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mount")).unwrap();
        // The containers run as uid 1000; the mount must be theirs to write.
        rustix::fs::chown(
            dir.path().join("mount"),
            Some(rustix::fs::Uid::from_raw(1000)),
            Some(rustix::fs::Gid::from_raw(1000)),
        )
        .unwrap();
        Self { app, dir }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn mount_dir(&self) -> PathBuf {
        self.dir.path().join("mount")
    }

    /// Commits the fixture (plus `extra` files) and returns the commit.
    fn commit_fixture(&self, fixture: &str, extra: &[(&str, &str)]) -> CommitSha {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps").join(fixture);
        let repo = self.repo();
        std::fs::create_dir_all(&repo).unwrap();
        let status =
            Command::new("cp").arg("-a").arg(format!("{}/.", src.display())).arg(&repo).status().unwrap();
        assert!(status.success());
        for (name, text) in extra {
            std::fs::write(repo.join(name), text).unwrap();
        }
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@example.com",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "fixture", "--allow-empty"]);
        git(&["rev-parse", "HEAD"]).trim().parse().unwrap()
    }

    fn request(&self, release: u64, commit: CommitSha) -> BuildRequest {
        BuildRequest {
            app: self.app.clone(),
            release: ReleaseId::new(release),
            commit,
            source: crate::source::Repo::open(&self.repo()).unwrap(),
            stack: DEFAULT_STACK.to_owned(),
            previous: None,
            buildpacks: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))],
            gzip_context: false,
            ledger: self.ledger(),
            host_env: crate::build_env::BuildEnv::default(),
            platform: crate::buildpack::platform::BuildPlatform::default(),
        }
    }

    fn ledger(&self) -> super::ledger::Ledger {
        super::ledger::Ledger::at(&self.dir.path().join("ledger"))
    }

    fn oneoff(&self, release: u64, image: &str, script: &str) -> OneOffSpec {
        OneOffSpec {
            app: self.app.clone(),
            release: ReleaseId::new(release),
            what: format!("run-{}", random_suffix()),
            image: image.to_owned(),
            cmd: vec!["bash".into(), "-c".into(), script.into()],
            env: vec![],
            mount_volume: None,
            workdir: "/workspace".into(),
            user: super::CONTAINER_USER.into(),
            timeout: Duration::from_secs(60),
            limits: super::limits::Limits::default(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::APP, self.app);
        let ids = |args: &[&str]| -> Vec<String> {
            let out = Command::new("docker").args(args).output().map(|o| o.stdout).unwrap_or_default();
            String::from_utf8_lossy(&out).split_whitespace().map(str::to_owned).collect()
        };
        let containers = ids(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&containers).output();
        }
        let images = ids(&["images", "-q", "--filter", &filter]);
        if !images.is_empty() {
            let _ = Command::new("docker").args(["rmi", "-f"]).args(&images).output();
        }
        let volumes = ids(&["volume", "ls", "-q", "--filter", &filter]);
        if !volumes.is_empty() {
            let _ = Command::new("docker").args(["volume", "rm", "-f"]).args(&volumes).output();
        }
        // Step images carry no label: they go by the ids the builds recorded.
        let ledger = self.ledger();
        for release in ledger.releases().into_iter().rev() {
            let Ok(recorded) = ledger.load(release) else { continue };
            let ids: Vec<&String> = recorded.release.iter().chain(&recorded.steps).rev().collect();
            for id in ids {
                let _ = Command::new("docker").args(["rmi", id]).output();
            }
        }
        let network = super::limits::network_name(&self.app);
        let _ = Command::new("docker").args(["network", "rm", &network]).output();
    }
}

/// Runs a one-off and returns (exit code, output).
async fn run_capture(docker: &Docker, spec: &OneOffSpec) -> (i64, String) {
    let mut out = String::new();
    let (code, _) = oneoff::run(docker, spec, &mut |l: &str| {
        out.push_str(l);
        out.push('\n');
    })
    .await
    .unwrap();
    container::remove_container(docker, &spec.name()).await.unwrap();
    (code, out)
}

fn http_get(port: u16) -> String {
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && !body.is_empty() {
                return body;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

#[tokio::test]
async fn the_stack_has_bash_python3_and_user_slipway() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let spec =
        t.oneoff(1, DEFAULT_STACK, "id -un; id -u; python3 -c 'print(6*7)'; readlink ~/mount; echo $HOME");
    let (code, out) = run_capture(&docker, &spec).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "slipway\n1000\n42\n/mount\n/home/slipway\n");
    // A second import finds the tag and does nothing.
    let again = stack::import_stack(&docker, &StackImport::default(), &mut |_: &str| {}).await.unwrap();
    assert!(matches!(again, stack::StackOutcome::Present { .. }));
}

#[tokio::test]
async fn a_missing_stack_says_to_run_stack_import() {
    let Some(docker) = engine().await else { return };
    let err = stack::ensure_stack(&docker, "slipway/no-such-stack:x").await.unwrap_err();
    assert!(err.to_string().contains("run `slipway stack import`"), "{err}");
}

#[tokio::test]
async fn a_dockerfile_app_builds_a_labelled_image_of_exactly_the_commit() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-dockerfile", &[]);
    // Untracked files are not part of the commit, so not of the image.
    std::fs::write(t.repo().join("untracked.txt"), "x").unwrap();
    let mut lines = Vec::new();
    let id = image::build_image(&docker, &t.request(1, sha.clone()), &mut |l: &str| lines.push(l.to_owned()))
        .await
        .unwrap();
    assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "build output streamed: {lines:?}");
    let info = docker.inspect_image(&labels::image_tag(&t.app, ReleaseId::new(1))).await.unwrap();
    assert_eq!(info.id.as_deref(), Some(id.as_str()));
    let l = info.config.unwrap().labels.unwrap();
    assert_eq!(l["slipway.app"], t.app.as_str());
    assert_eq!(l["slipway.release"], "v1");
    assert_eq!(l["slipway.commit"], sha.as_str());
    let listed = image::list_images(&docker, &t.app).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tags, [format!("slipway/{}:v1", t.app)]);

    let mut spec = t.oneoff(1, &labels::image_tag(&t.app, ReleaseId::new(1)), "ls; cat build-output.txt");
    spec.workdir = "/app".into();
    let (code, out) = run_capture(&docker, &spec).await;
    assert_eq!(code, 0);
    assert!(out.contains("index.html") && out.contains("compiled"), "{out}");
    assert!(!out.contains("untracked.txt"), "{out}");
}

/// The image's runtime settings, which relabelling must keep as they are.
fn settings(info: &bollard::models::ImageInspect) -> Vec<Option<Vec<String>>> {
    let c = info.config.clone().unwrap_or_default();
    let layers = info.root_fs.clone().and_then(|r| r.layers);
    vec![c.cmd, c.user.map(|u| vec![u]), c.working_dir.map(|w| vec![w]), c.env, c.exposed_ports, layers]
}

#[tokio::test]
async fn relabelling_keeps_the_layers_and_settings_and_removal_takes_the_build_along() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-dockerfile", &[]);
    // The whole build path: the Dockerfile's image, then the labels by a config-only load.
    let v1 = image::build_image(&docker, &t.request(1, sha.clone()), &mut |_: &str| ()).await.unwrap();
    let release = docker.inspect_image(v1.as_str()).await.unwrap();
    let l = release.config.clone().unwrap().labels.unwrap();
    assert_eq!(l["slipway.release"], "v1");
    let build_id = l["slipway.build"].clone();
    let build_image = docker.inspect_image(&build_id).await.unwrap();
    assert_ne!(build_image.id.as_deref(), Some(v1.as_str()));
    assert_eq!(settings(&release), settings(&build_image), "same layers, command, user, workdir, env, ports");
    let exposed = release.config.as_ref().and_then(|c| c.exposed_ports.clone());
    assert_eq!(exposed, Some(vec!["5000/tcp".to_owned()]));
    assert_eq!(
        build_image.repo_tags.unwrap_or_default(),
        Vec::<String>::new(),
        "the tag moved to the release"
    );
    // This engine keeps images in its graph driver, so the config-only load applies.
    let tag3 = labels::image_tag(&t.app, ReleaseId::new(3));
    let (v3, used) = relabel::relabel(&docker, &v1, &tag3, &labels::Labels::new()).await.unwrap();
    assert_eq!(used, relabel::Method::Load);
    image::remove_image(&docker, v3.as_str(), true).await.unwrap();

    // The portable fallback: a commit of a created container, with the labels.
    let extra = labels::Labels::from([("slipway.release".to_owned(), "v2".to_owned())]);
    let tag = labels::image_tag(&t.app, ReleaseId::new(2));
    let v2 = relabel::commit(&docker, &v1, &tag, &release, &extra).await.unwrap();
    let committed = docker.inspect_image(&tag).await.unwrap();
    assert_eq!(committed.id.as_deref(), Some(v2.as_str()));
    assert_eq!(settings(&committed), settings(&release));
    let l = committed.config.unwrap().labels.unwrap();
    assert_eq!((l["slipway.release"].as_str(), l["slipway.app"].as_str()), ("v2", t.app.as_str()));
    let mut spec = t.oneoff(2, &tag, "pwd; id -u; cat build-output.txt");
    spec.workdir = "/app".into();
    let (code, out) = run_capture(&docker, &spec).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/app") && out.contains("1000") && out.contains("compiled"), "{out}");
    container::remove_container(&docker, &spec.name()).await.unwrap();
    image::remove_image(&docker, v2.as_str(), true).await.unwrap();

    // Removing the release removes the build image it recorded, and the stack stays.
    assert!(t.ledger().load(ReleaseId::new(1)).unwrap().steps.contains(&build_id));
    image::remove_recorded(&docker, &t.ledger(), ReleaseId::new(1), image::StepPrune::Wait).await.unwrap();
    assert!(docker.inspect_image(v1.as_str()).await.is_err(), "the release image is gone");
    assert!(docker.inspect_image(&build_id).await.is_err(), "and so is the build image it named");
    assert!(docker.inspect_image(DEFAULT_STACK).await.is_ok(), "the stack stays");
}

#[tokio::test]
async fn a_failing_dockerfile_step_is_named_with_its_output() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let dockerfile = "FROM slipway/stack:bookworm\nRUN echo about-to-fail && exit 3\n";
    let sha = t.commit_fixture("docker-dockerfile", &[("Dockerfile", dockerfile)]);
    let err = image::build_image(&docker, &t.request(1, sha), &mut |_: &str| {}).await.unwrap_err();
    let msg = err.to_string();
    // The engine counts the labels it adds as steps, hence no "/2".
    assert!(
        msg.contains("Dockerfile step `Step 2/") && msg.contains(": RUN echo about-to-fail && exit 3`"),
        "{msg}"
    );
    assert!(msg.contains("about-to-fail"), "{msg}");
    assert!(
        image::list_images(&docker, &t.app)
            .await
            .unwrap()
            .iter()
            .all(|i| !i.tags.iter().any(|t| t.ends_with(":v1")))
    );
}

#[tokio::test]
async fn a_procfile_app_builds_with_buildpacks_and_its_web_process_answers() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-procfile", &[]);
    let mut req = t.request(1, sha.clone());
    let extra = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps/docker-buildpack-cache");
    req.buildpacks.insert(0, extra);
    let mut lines = Vec::new();
    image::build_image(&docker, &req, &mut |l: &str| lines.push(l.to_owned())).await.unwrap();
    assert!(lines.iter().any(|l| l.contains("cache-demo: build 1")), "{lines:?}");
    let tag = labels::image_tag(&t.app, ReleaseId::new(1));
    let info = docker.inspect_image(&tag).await.unwrap();
    let config = info.config.unwrap();
    assert_eq!(config.entrypoint.unwrap(), ["/cnb/launcher"]);
    assert_eq!(config.cmd.unwrap(), ["web"]);
    let l = config.labels.unwrap();
    assert_eq!(l["slipway.commit"], sha.as_str());
    assert_eq!(l["slipway.kind"], "image");
    assert_eq!(l["slipway.processes"], "web,worker");

    // The launch layer is in the image with its environment; the build-only layer is not.
    let (code, out) = run_capture(
        &docker,
        &t.oneoff(1, &tag, "hello; echo $GREETING; ls /layers/fixtures_cache-demo; id -un"),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "hello from a launch layer (build 1)\nfrom-layer\ntools\ntools.toml\nslipway\n");

    let mut spec = ProcessSpec::new(t.app.clone(), ReleaseId::new(1), "web".parse().unwrap(), 1, tag.clone());
    spec.cmd = Some(vec!["web".into()]);
    let started = container::start_process(&docker, &spec).await.unwrap();
    let port = started.host_port.expect("web port published");
    container::wait_until_answers(&started.name, port, Duration::from_secs(20)).await.unwrap();
    let body = tokio::task::spawn_blocking(move || http_get(port)).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    let listed = container::list_containers(&docker, &t.app, Some(ReleaseId::new(1))).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].process_type(), Some("web"));
    assert!(listed[0].is_running());
    let mut log = Vec::new();
    container::logs(&docker, &started.name, false, Some(10), &mut |l: &str| log.push(l.to_owned()))
        .await
        .unwrap();
    assert!(log.iter().any(|l| l.contains("GET /")), "{log:?}");
    container::stop_and_remove(&docker, &started.name, Duration::from_secs(5)).await.unwrap();
    assert!(container::wait_until_answers(&started.name, port, Duration::from_millis(500)).await.is_err());

    // A second build restores the cached layer.
    let mut req2 = req.clone();
    req2.release = ReleaseId::new(2);
    let mut lines = Vec::new();
    image::build_image(&docker, &req2, &mut |l: &str| lines.push(l.to_owned())).await.unwrap();
    assert!(lines.iter().any(|l| l.contains("cache-demo: build 2")), "{lines:?}");
}

#[tokio::test]
async fn an_app_without_procfile_or_dockerfile_is_refused_at_detect() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-procfile", &[]);
    Command::new("git").arg("-C").arg(t.repo()).args(["rm", "-q", "Procfile"]).status().unwrap();
    let out = Command::new("git")
        .arg("-C")
        .arg(t.repo())
        .args(["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "no procfile"])
        .status()
        .unwrap();
    assert!(out.success());
    let head = Command::new("git").arg("-C").arg(t.repo()).args(["rev-parse", "HEAD"]).output().unwrap();
    let sha2: CommitSha = String::from_utf8_lossy(&head.stdout).trim().parse().unwrap();
    assert_ne!(sha, sha2);
    let err = image::build_image(&docker, &t.request(1, sha2), &mut |_: &str| {}).await.unwrap_err();
    assert!(err.to_string().contains("no buildpack passed detect"), "{err}");
    assert!(
        container::list_containers(&docker, &t.app, None).await.unwrap().is_empty(),
        "build container removed"
    );
}

#[tokio::test]
async fn the_mount_volume_is_shared_by_containers_and_the_host_at_every_path() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let vol = volume::ensure_mount_volume(&docker, &t.app, &t.mount_dir()).await.unwrap();
    assert_eq!(vol, format!("slipway-{}-mount", t.app));
    // Idempotent.
    volume::ensure_mount_volume(&docker, &t.app, &t.mount_dir()).await.unwrap();

    let mut writer = t.oneoff(1, DEFAULT_STACK, "echo from-a > /mount/a.txt");
    writer.mount_volume = Some(vol.clone());
    assert_eq!(run_capture(&docker, &writer).await.0, 0);
    let script = "cat ../mount/a.txt ~/mount/a.txt; readlink -f ../mount; readlink -f ~/mount; echo b > ../mount/b.txt";
    for workdir in ["/workspace", "/app", "/usr/src/app"] {
        let mut reader = t.oneoff(1, DEFAULT_STACK, script);
        reader.mount_volume = Some(vol.clone());
        reader.workdir = workdir.into();
        let (code, out) = run_capture(&docker, &reader).await;
        assert_eq!(code, 0, "{workdir}: {out}");
        let parent = Path::new(workdir).parent().unwrap().join("mount");
        assert_eq!(out, format!("from-a\nfrom-a\n{}\n/mount\n", parent.display()), "{workdir}");
    }
    assert_eq!(std::fs::read_to_string(t.mount_dir().join("a.txt")).unwrap(), "from-a\n");
    let meta = std::fs::metadata(t.mount_dir().join("b.txt")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1000, "files belong to the container user");
    std::fs::write(t.mount_dir().join("host.txt"), "from-host").unwrap();
    let mut reader = t.oneoff(1, DEFAULT_STACK, "cat /mount/host.txt");
    reader.mount_volume = Some(vol.clone());
    assert_eq!(run_capture(&docker, &reader).await, (0, "from-host\n".to_owned()));

    // A volume for another directory is refused rather than silently reused.
    let elsewhere = t.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    assert!(matches!(
        volume::ensure_mount_volume(&docker, &t.app, &elsewhere).await,
        Err(volume::VolumeError::Mismatch { .. })
    ));
    volume::remove_volume(&docker, &vol).await.unwrap();
    assert!(t.mount_dir().join("a.txt").exists(), "removing the volume keeps the files");
}

#[tokio::test]
async fn predeploy_is_committed_on_success_and_reported_on_failure() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-dockerfile", &[]);
    let built = image::build_image(&docker, &t.request(1, sha), &mut |_: &str| {}).await.unwrap();
    let vol = volume::ensure_mount_volume(&docker, &t.app, &t.mount_dir()).await.unwrap();
    let tag = labels::image_tag(&t.app, ReleaseId::new(1));
    let mut spec = OneOffSpec::predeploy(
        t.app.clone(),
        ReleaseId::new(1),
        tag.clone(),
        "predeploy.sh",
        Duration::from_secs(60),
    );
    spec.mount_volume = Some(vol.clone());
    spec.workdir = "/app".into();
    let mut lines = Vec::new();
    let committed =
        oneoff::run_predeploy(&docker, &spec, &mut |l: &str| lines.push(l.to_owned())).await.unwrap();
    assert_ne!(committed, built);
    // The script wrote into the app folder, so the container is committed, and says why.
    assert_eq!(lines, ["predeploy: running in /app", "predeploy changed /app in the image: committing it"]);
    assert!(t.mount_dir().join("predeploy-ran").exists(), "../mount changes persist in the volume");
    let info = docker.inspect_image(&tag).await.unwrap();
    assert_eq!(info.id.as_deref(), Some(committed.as_str()), "the tag now names the committed image");
    let config = info.config.unwrap();
    assert_eq!(config.cmd.unwrap(), ["bash", "-c", "exec python3 -m http.server ${PORT:-5000}"]);
    assert_eq!(config.labels.unwrap()["slipway.kind"], "image");
    let mut check = t.oneoff(1, &tag, "cat predeploy-marker");
    check.workdir = "/app".into();
    assert_eq!(run_capture(&docker, &check).await.1, "prepared\n", "app folder changes are kept");

    let mut failing = spec.clone();
    failing.cmd = vec!["bash".into(), "-c".into(), "echo broken-migration; exit 7".into()];
    let err = oneoff::run_predeploy(&docker, &failing, &mut |_: &str| {}).await.unwrap_err();
    assert!(matches!(err, OneOffError::Failed { code: 7, .. }), "{err}");
    assert!(err.to_string().contains("broken-migration"));
    let mut slow = spec.clone();
    slow.cmd = vec!["sleep".into(), "30".into()];
    slow.timeout = Duration::from_secs(2);
    assert!(matches!(
        oneoff::run_predeploy(&docker, &slow, &mut |_: &str| {}).await,
        Err(OneOffError::Timeout { .. })
    ));
    assert!(
        container::list_containers(&docker, &t.app, None).await.unwrap().is_empty(),
        "no one-off container is left behind"
    );
}

#[tokio::test]
async fn reconcile_removes_other_releases_and_keeps_the_current_one() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let sha = t.commit_fixture("docker-dockerfile", &[]);
    for n in [1, 2] {
        // The gzip-compressed context path, which the other tests do not take.
        let mut req = t.request(n, sha.clone());
        req.gzip_context = true;
        image::build_image(&docker, &req, &mut |_: &str| {}).await.unwrap();
        let mut spec = ProcessSpec::new(
            t.app.clone(),
            ReleaseId::new(n),
            "web".parse().unwrap(),
            1,
            labels::image_tag(&t.app, ReleaseId::new(n)),
        );
        spec.workdir = "/app".into();
        container::start_process(&docker, &spec).await.unwrap();
    }
    // A killed deploy's build that never got its labels is found by its release tag; as it may
    // be anyone's image (here the stack), only that tag goes.
    let stray = labels::image_tag(&t.app, ReleaseId::new(3));
    let (repo, tag) = stray.split_once(':').unwrap();
    let options =
        bollard::query_parameters::TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) };
    docker.tag_image(DEFAULT_STACK, Some(options)).await.unwrap();
    let vol = volume::ensure_mount_volume(&docker, &t.app, &t.mount_dir()).await.unwrap();
    // A one-off of the current release that finished is pruned.
    let finished = t.oneoff(2, DEFAULT_STACK, "true");
    oneoff::run(&docker, &finished, &mut |_: &str| {}).await.unwrap();

    let report = reconcile::reconcile(&docker, &t.app, &t.ledger(), &[ReleaseId::new(2)]).await.unwrap();
    assert_eq!(report.containers.len(), 2, "{report:?}");
    assert!(report.containers.contains(&format!("slipway-{}-v1-web-1", t.app)));
    assert!(report.containers.contains(&finished.name()));
    let left = container::list_containers(&docker, &t.app, None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].release(), Some(ReleaseId::new(2)));
    let images = image::list_images(&docker, &t.app).await.unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].release, Some(ReleaseId::new(2)));
    assert!(docker.inspect_image(&stray).await.is_err(), "the stray tag is gone");
    assert!(docker.inspect_image(DEFAULT_STACK).await.is_ok(), "the image behind it stays");
    let volumes = volume::list_volumes(&docker, &t.app).await.unwrap();
    assert!(volumes.iter().any(|(n, _)| *n == vol), "the mount volume is app-wide and kept");
    assert!(
        reconcile::reconcile(&docker, &t.app, &t.ledger(), &[ReleaseId::new(2)]).await.unwrap().is_empty(),
        "idempotent"
    );
}

/// Peak RSS of this process, from `VmHWM` in `/proc/self/status`, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

#[tokio::test]
#[ignore = "slow (a 1 GiB context); run with --ignored for the memory figure"]
async fn a_1gib_build_context_streams_in_bounded_memory() {
    let Some(docker) = engine().await else { return };
    let t = TestApp::new();
    let repo = t.repo();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("Dockerfile"), "FROM slipway/stack:bookworm\nCOPY big.bin /tmp/big.bin\n")
        .unwrap();
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("head -c 1G /dev/urandom > {}/big.bin", repo.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let sha = t.commit_fixture(
        "docker-dockerfile",
        &[("Dockerfile", "FROM slipway/stack:bookworm\nCOPY big.bin /tmp/big.bin\n")],
    );
    let before = peak_rss_mib();
    image::build_image(&docker, &t.request(1, sha), &mut |_: &str| {}).await.unwrap();
    let after = peak_rss_mib();
    eprintln!("peak RSS: {before} MiB before the build, {after} MiB after");
    assert!(after < 64, "peak RSS {after} MiB");
}
