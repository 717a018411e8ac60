//! Deploys refused before anything runs (issue 7, part 5): a Procfile that would retire the web
//! that serves the app, and a predeploy or postdeploy that a committed symlink leads out of the
//! app. Each is exit 3 with the running release untouched.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Repo, Slipway, describe, http_get};

fn types(s: &Slipway, app: &str) -> Vec<String> {
    let ps = s.ps(app);
    ps["instances"].as_array().unwrap().iter().map(|i| i["ptype"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_procfile_without_web_is_refused_while_web_serves_unless_allow_no_web() {
    let s = Slipway::new();
    let app = s.app("noweb");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);

    repo.write("Procfile", "worker: python3 worker.py\n");
    repo.commit("no web");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no web process") && stderr.contains("--allow-no-web"), "{stderr}");
    assert!(stderr.contains("allow-no-web = true"), "the git push way is named: {stderr}");
    assert!(!stderr.contains("Building v2"), "something was built: {stderr}");
    assert_eq!(s.release(&app), "v1");
    assert_eq!(http_get(port).unwrap().0, 200, "v1's web stopped serving");

    let out = s.run(&["deploy", &app, "--repo", repo.path(), "--allow-no-web"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.release(&app), "v2");
    assert_eq!(types(&s, &app), ["worker"]);
}

#[test]
fn a_push_without_web_is_rejected_unless_project_toml_allows_it() {
    let s = Slipway::new();
    let app = s.app("noweb-push");
    let repo = Repo::from_fixture("seed-demo");
    repo.add_slipway_remote(&s, &app);
    let out = repo.push("main");
    assert!(out.status.success(), "{}", describe(&out));

    repo.write("Procfile", "worker: python3 worker.py\n");
    repo.commit("no web");
    let out = repo.push("main");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow-no-web = true"), "{}", describe(&out));
    assert_eq!(s.release(&app), "v1");

    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n[io.slipway]\nallow-no-web = true\n");
    repo.commit("workers only, on purpose");
    let out = repo.push("main");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(types(&s, &app), ["worker"]);
}

#[test]
fn a_script_path_through_a_committed_symlink_out_of_the_app_is_refused_and_nothing_runs() {
    let s = Slipway::new();
    let app = s.app("prelink");
    let repo = Repo::from_fixture("seed-demo");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);

    // A script outside the app that would leave a mark if anything ran it.
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("ran");
    let evil = outside.path().join("evil.sh");
    std::fs::write(&evil, format!("touch {}\n", marker.display())).unwrap();
    let link = |name: &str, target: &std::path::Path| {
        let at = repo.dir.path().join(name);
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(target, at).unwrap();
    };
    let cases = [
        ("predeploy.sh", evil.clone(), "predeploy = \"predeploy.sh\"\n", "predeploy.sh"),
        ("scripts", outside.path().to_owned(), "predeploy = \"scripts/evil.sh\"\n", "scripts"),
        ("up", "../../..".into(), "postdeploy = \"up/evil.sh\"\n", "up"),
    ];
    for (name, target, toml, named) in cases {
        link(name, &target);
        repo.write("project.toml", toml);
        repo.commit(&format!("{name} leads out"));
        let out = s.run(&["deploy", &app, "--repo", repo.path()]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("leads outside the app") && stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("Building"), "something was built: {stderr}");
        assert!(!marker.exists(), "{name}: the script outside the app ran");
        assert_eq!(s.release(&app), "v1");
        assert_eq!(http_get(port).unwrap().0, 200);
        repo.git(&["rm", "-q", name]);
    }

    // A link that stays inside the app is followed.
    std::fs::rename(repo.dir.path().join("predeploy.sh"), repo.dir.path().join("real-predeploy.sh")).ok();
    repo.write("real-predeploy.sh", "echo inside the app\n");
    link("predeploy.sh", std::path::Path::new("real-predeploy.sh"));
    repo.write("project.toml", "predeploy = \"predeploy.sh\"\n");
    repo.commit("link inside");
    let out = s.run(&["deploy", &app, "--repo", repo.path()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the app"));
}

#[test]
fn a_rollback_to_a_release_without_web_is_refused_unless_allow_no_web() {
    let s = Slipway::new();
    let app = s.app("noweb-rb");
    let repo = Repo::from_fixture("seed-demo");
    let procfile = std::fs::read_to_string(std::path::Path::new(repo.path()).join("Procfile")).unwrap();
    // v1 runs workers only (allowed: nothing serves web yet), v2 serves web.
    repo.write("Procfile", "worker: python3 worker.py\n");
    repo.commit("workers first");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    repo.write("Procfile", &procfile);
    repo.commit("web");
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.web_port(&app);

    let out = s.run(&["rollback", &app]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-no-web"), "{}", describe(&out));
    assert_eq!(s.release(&app), "v2");
    assert_eq!(http_get(port).unwrap().0, 200, "v2's web stopped serving");

    let out = s.run(&["rollback", &app, "--allow-no-web"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(types(&s, &app), ["worker"]);
}
