//! What slipway removes from the engine is decided by its own records under `state/`, never by
//! labels an image could set (issue 11 §2), and what a build made is removed even when the
//! build fails or is killed (issue 7 §6, 11 §4).
//!
//! Skipped, with a printed reason, when there is no Docker engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Repo, STACK, Slipway, describe, http_get, wait_for};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_id(reference: &str) -> Option<String> {
    let out =
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The ids of every image (intermediate ones included) whose build step ran a command
/// containing `token`.
fn images_made_by(token: &str) -> Vec<String> {
    let ids = docker(&["image", "ls", "-a", "-q", "--no-trunc"]);
    let ids: Vec<&str> = ids.lines().collect();
    let mut found = Vec::new();
    for chunk in ids.chunks(200) {
        let mut args = vec!["image", "inspect", "--format", "{{.Id}} {{json .ContainerConfig.Cmd}}"];
        args.extend_from_slice(chunk);
        // An image removed between the listing and the inspect is simply not there any more.
        let out = Command::new("docker").args(&args).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.contains(token) {
                found.push(line.split(' ').next().unwrap().to_owned());
            }
        }
    }
    found
}

fn token() -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    format!("tok{}", &uuid.trim().replace('-', "")[..12])
}

fn docker_app(sw: &Slipway, prefix: &str) -> String {
    sw.app_with(prefix, &["--runtime", "docker"])
}

const FIXTURE_DOCKERFILE: &str = "FROM slipway/stack:bookworm\nRUN install -d -o 1000 -g 1000 /app\n\
    WORKDIR /app\nCOPY --chown=1000:1000 . /app\nUSER 1000:1000\n\
    CMD [\"bash\", \"-c\", \"exec python3 -m http.server ${PORT:-5000}\"]\n";

#[test]
fn dockerfile_slipway_labels_never_make_slipway_remove_another_apps_image_or_the_stack() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let victim = docker_app(&sw, "vic");
    let victim_repo = Repo::from_fixture("docker-dockerfile");
    sw.ok(&["deploy", &victim, "--repo", victim_repo.path()]);
    let victim_image = image_id(&format!("slipway/{victim}:v1")).unwrap();
    let stack = image_id(STACK).unwrap();

    let attacker = docker_app(&sw, "atk");
    let repo = Repo::from_fixture("docker-dockerfile");
    // Each deploy removes the release before it, whose image names a target to delete; the
    // last one also claims to be the victim's v1.
    let claims = [
        format!("slipway.app={attacker} slipway.release=v1 slipway.build={victim_image}"),
        format!("slipway.app={attacker} slipway.release=v2 slipway.build={stack}"),
        format!("slipway.app={victim} slipway.release=v1 slipway.build={stack} slipway.kind=image"),
        "org.example.plain=yes".to_owned(),
    ];
    for (n, claim) in claims.iter().enumerate() {
        repo.write("Dockerfile", &format!("{FIXTURE_DOCKERFILE}LABEL {claim}\n"));
        repo.commit(&format!("attack {n}"));
        sw.ok(&["deploy", &attacker, "--repo", repo.path()]);
    }
    // The victim redeploys, then is destroyed: neither takes what only claims to be its own.
    victim_repo.write("again.txt", "again\n");
    victim_repo.commit("again");
    sw.ok(&["deploy", &victim, "--repo", victim_repo.path()]);
    let attacker_v4 = image_id(&format!("slipway/{attacker}:v4")).expect("the attacker's v4 tag");

    assert_eq!(image_id(STACK).as_deref(), Some(stack.as_str()), "the stack stays");
    assert!(image_id(&victim_image).is_none(), "the victim's own v1 went with its own redeploy");
    let (code, body) = http_get(sw.web_port(&attacker)).unwrap();
    assert_eq!(code, 200, "{body}");
    // Release images carry only slipway's own slipway.* labels.
    let labels = docker(&["image", "inspect", "--format", "{{json .Config.Labels}}", &attacker_v4]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["slipway.app"], attacker.as_str(), "{labels}");
    assert_eq!(labels["slipway.release"], "v4", "{labels}");
    assert_ne!(labels["slipway.build"], stack.as_str(), "{labels}");

    let victim_v2 = image_id(&format!("slipway/{victim}:v2")).unwrap();
    sw.ok(&["apps", "destroy", &victim, "--confirm", &victim]);
    assert!(image_id(&victim_v2).is_none(), "destroy removes the victim's own image");
    assert_eq!(image_id(&attacker_v4).as_deref(), Some(attacker_v4.as_str()), "the attacker's image stays");
    assert_eq!(image_id(STACK).as_deref(), Some(stack.as_str()), "the stack stays");
}

#[test]
fn a_failed_dockerfile_build_leaves_none_of_its_step_images() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = docker_app(&sw, "dkf");
    let repo = Repo::from_fixture("docker-dockerfile");
    let token = token();
    repo.write(
        "Dockerfile",
        &format!(
            "FROM slipway/stack:bookworm\nRUN echo {token} > /made\nRUN echo {token}-2 > /made2\nRUN exit 3\n"
        ),
    );
    repo.commit("fails at step 4");
    let out = sw.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUN exit 3"), "{}", describe(&out));
    assert_eq!(images_made_by(&token), Vec::<String>::new(), "its step images are removed");
    assert!(image_id(STACK).is_some(), "the stack stays");
}

#[test]
fn a_build_killed_with_sigkill_leaves_no_step_images_after_apps_destroy() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let app = docker_app(&sw, "dkk");
    let repo = Repo::from_fixture("docker-dockerfile");
    let token = token();
    repo.write(
        "Dockerfile",
        &format!(
            "FROM slipway/stack:bookworm\nRUN echo {token} > /made\nRUN echo slow-step-started && sleep 30\n"
        ),
    );
    repo.commit("slow");
    sw.kill_at(
        &["deploy", &app, "--repo", repo.path()],
        "slow-step-started",
        Duration::from_secs(120),
        Duration::ZERO,
    );
    assert!(!images_made_by(&token).is_empty(), "the killed build left its first step image");
    sw.ok(&["apps", "destroy", &app, "--confirm", &app]);
    // The engine may still be finishing the abandoned step: poll.
    let gone = wait_for(Duration::from_secs(60), || images_made_by(&token).is_empty().then_some(()));
    assert!(gone.is_some(), "left behind: {:?}", images_made_by(&token));
}

#[test]
fn an_image_id_a_build_prints_is_never_removed_as_one_of_its_steps() {
    let sw = Slipway::new();
    if !common::docker_ready(&sw) {
        return;
    }
    let victim = docker_app(&sw, "vid");
    let victim_repo = Repo::from_fixture("docker-dockerfile");
    sw.ok(&["deploy", &victim, "--repo", victim_repo.path()]);
    let labels =
        docker(&["image", "inspect", "--format", "{{json .Config.Labels}}", &format!("slipway/{victim}:v1")]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    let victim_build = labels["slipway.build"].as_str().unwrap().to_owned();
    let short = &victim_build.trim_start_matches("sha256:")[..12];

    let attacker = docker_app(&sw, "aid");
    let repo = Repo::from_fixture("docker-dockerfile");
    repo.write("Dockerfile", &format!("{FIXTURE_DOCKERFILE}RUN echo ' ---> {short}'\n"));
    repo.commit("prints the victim's build image id as if it were a step");
    sw.ok(&["deploy", &attacker, "--repo", repo.path()]);
    repo.write("Dockerfile", FIXTURE_DOCKERFILE);
    repo.commit("v2 retires v1");
    sw.ok(&["deploy", &attacker, "--repo", repo.path()]);
    sw.ok(&["apps", "destroy", &attacker, "--confirm", &attacker]);
    assert_eq!(
        image_id(&victim_build).as_deref(),
        Some(victim_build.as_str()),
        "the victim's build image stays"
    );
}
