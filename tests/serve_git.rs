//! git push over HTTP to `slipway serve`: a push with the app's token (or the admin token) as
//! the password deploys exactly as a local push, with the same `remote:` lines; a push without
//! a token or with another app's token is refused and deploys nothing.

#![allow(clippy::unwrap_used)]

mod common;
mod serve_support;

use std::process::Command;

use common::{Repo, Slipway};
use serve_support::{Server, app_token};

fn push(repo: &Repo, url: &str) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(repo.path())
        // Never prompt: a refused push must fail, not wait for a password.
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "push", url, "main"])
        .output()
        .unwrap()
}

#[test]
fn git_push_over_http_deploys_with_the_apps_token_and_is_refused_otherwise() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = s.app("gitp");
    let other = s.app("gitq");
    let token = app_token(&s, &app);
    let other_token = app_token(&s, &other);
    let repo = Repo::from_fixture("seed-demo");
    let url = |t: &str| format!("http://git:{t}@127.0.0.1:{}/git/{app}.git", srv.port);
    let anonymous = push(&repo, &format!("http://127.0.0.1:{}/git/{app}.git", srv.port));
    assert!(!anonymous.status.success(), "no token, no push");
    let wrong = push(&repo, &url(&other_token));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("403"), "{}", common::describe(&wrong));
    assert!(s.ps(&app)["release"].is_null(), "nothing deployed");
    let ok = push(&repo, &url(&token));
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{}", common::describe(&ok));
    assert!(err.contains("remote: -----> "), "the deploy's progress streams as remote: lines: {err}");
    assert_eq!(s.release(&app), "v1");
    let commit = repo.git(&["rev-parse", "HEAD"]);
    let info = srv.get_json(&format!("/api/apps/{app}"));
    assert_eq!(info["commit"].as_str(), Some(commit.as_str()));
}
