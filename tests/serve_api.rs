//! `slipway serve` over real HTTP: every documented route refuses requests without a token
//! or with another app's token; files (upload, Range, listing, folders, rename, delete, bad names,
//! quota, cancel); mount enable/disable with the typed confirmation; export/import; deploy
//! and log streams; scale and restart; the detached service and its restart.

#![allow(clippy::unwrap_used)]

mod common;
mod serve_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Repo, Slipway, wait_for};
use serve_support::{Server, app_token, soft_app};

#[test]
fn every_documented_route_needs_a_token_and_reaches_only_the_tokens_app() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let mine = soft_app(&s, "apisoft", "32M");
    let other = soft_app(&s, "apisoft", "32M");
    let token = app_token(&s, &mine);
    // Static UI files answer without a token; nothing else does.
    assert_eq!(srv.curl(None, &[], "/").0, 200);
    assert_eq!(srv.curl(None, &[], "/ui/app.js").0, 200);
    let doc = srv.get_json("/api/openapi.json");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "the document lists the API: {:?}", paths.keys());
    // git's smart HTTP routes are documented, with their Basic auth, and swept below.
    for git in
        ["/git/{app}.git/info/refs", "/git/{app}.git/git-upload-pack", "/git/{app}.git/git-receive-pack"]
    {
        assert!(paths.contains_key(git), "{git} is documented: {:?}", paths.keys());
    }
    let push = &doc["paths"]["/git/{app}.git/git-receive-pack"]["post"];
    assert_eq!(push["security"][0]["basic"], serde_json::json!([]), "{push}");
    assert_eq!(doc["components"]["securitySchemes"]["basic"]["scheme"], "basic");
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let concrete = path.replace("{path}", "x.txt");
            let m = method.to_uppercase();
            let (code, body) = srv.curl(None, &["-X", &m], &concrete.replace("{app}", &other));
            assert_eq!(code, 401, "{m} {path} without a token: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], "unauthorized");
            // A cookie never suffices.
            let cookie = format!("Cookie: token={}", srv.admin);
            assert_eq!(srv.curl(None, &["-X", &m, "-H", &cookie], &concrete.replace("{app}", &other)).0, 401);
            if path.contains("{app}") {
                let (code, body) = srv.curl(Some(&token), &["-X", &m], &concrete.replace("{app}", &other));
                assert_eq!(code, 403, "{m} {path} with another app's token: {body}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "checked {checked} routes");
    // The app token sees its own app only.
    let (code, body) = srv.curl(Some(&token), &[], "/api/apps");
    assert_eq!(code, 200);
    let apps: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["name"], mine.as_str());
    let (code, session) = srv.json(&token, "POST", "/api/session", "");
    assert_eq!(
        (code, session["kind"].as_str(), session["app"].as_str()),
        (200, Some("app"), Some(mine.as_str()))
    );
    // A revoked token stops working at once.
    let list: serde_json::Value = serde_json::from_str(&s.ok(&["tokens", "list", "--json"])).unwrap();
    assert!(!list.to_string().contains(&token), "tokens are stored hashed");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    s.ok(&["tokens", "revoke", &id]);
    assert_eq!(srv.curl(Some(&token), &[], "/api/apps").0, 401);
    // Wrong tokens are rate-limited per address: even the right one waits then.
    for _ in 0..12 {
        srv.curl(Some("slwp_guess"), &[], "/api/apps");
    }
    let (code, body) = srv.curl(Some(&srv.admin), &[], "/api/apps");
    assert_eq!(code, 429, "{body}");
}

#[test]
fn files_upload_list_range_folders_delete_and_refused_names() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "apisoft", "32M");
    let t = srv.admin.clone();
    let base = format!("/api/apps/{app}/mount/files");
    let (code, body) =
        srv.curl(Some(&t), &["-X", "PUT", "--data-binary", "hello world"], &format!("{base}/docs/a%20b.txt"));
    assert_eq!(code, 201, "{body}");
    assert_eq!(std::fs::read_to_string(s.mount_dir(&app).join("docs/a b.txt")).unwrap(), "hello world");
    let listing = srv.get_json(&format!("{base}/docs"));
    assert_eq!(listing["entries"][0]["name"], "a b.txt");
    assert_eq!(listing["entries"][0]["size"], 11);
    let root = srv.get_json(&base);
    assert_eq!(root["entries"][0]["kind"], "dir");
    // Whole file, then ranges.
    assert_eq!(srv.curl(Some(&t), &[], &format!("{base}/docs/a%20b.txt")), (200, "hello world".into()));
    assert_eq!(
        srv.curl(Some(&t), &["-H", "Range: bytes=6-"], &format!("{base}/docs/a%20b.txt")),
        (206, "world".into())
    );
    assert_eq!(
        srv.curl(Some(&t), &["-H", "Range: bytes=-5"], &format!("{base}/docs/a%20b.txt")),
        (206, "world".into())
    );
    assert_eq!(srv.curl(Some(&t), &["-H", "Range: bytes=99-"], &format!("{base}/docs/a%20b.txt")).0, 416);
    // Folders.
    assert_eq!(srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/new/deep?mkdir=1")).0, 201);
    assert!(s.mount_dir(&app).join("new/deep").is_dir());
    assert_eq!(srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/other")).0, 400);
    // Rename a file and a folder; never onto an existing name, out of the mount or into itself.
    let mnt = s.mount_dir(&app);
    let (code, body) =
        srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/docs/a%20b.txt?rename_to=docs/c%20d.txt"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read_to_string(mnt.join("docs/c d.txt")).unwrap(), "hello world");
    assert!(!mnt.join("docs/a b.txt").exists());
    let (code, body) = srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/new?rename_to=moved"));
    assert_eq!(code, 200, "{body}");
    assert!(mnt.join("moved/deep").is_dir() && !mnt.join("new").exists());
    std::fs::write(mnt.join("docs/taken.txt"), "keep me").unwrap();
    let (code, body) =
        srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/docs/c%20d.txt?rename_to=docs/taken.txt"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("\"exists\"") && body.contains("already exists"), "{body}");
    assert_eq!(std::fs::read_to_string(mnt.join("docs/taken.txt")).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(mnt.join("docs/c d.txt")).unwrap(), "hello world");
    for (from, to, want) in [
        ("docs/c%20d.txt", "..%2Fescape.txt", "invalid_path"),
        ("docs/c%20d.txt", "docs%2F..%2F..%2Fescape.txt", "invalid_path"),
        ("moved", "moved%2Fdeep%2Finside", "into_itself"),
        ("missing.txt", "found.txt", "not_found"),
    ] {
        let (code, body) = srv.curl(Some(&t), &["-X", "POST"], &format!("{base}/{from}?rename_to={to}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], want, "{from} -> {to}: {code} {body}");
        assert!((400..500).contains(&code), "{from} -> {to}: {code}");
    }
    assert!(!mnt.parent().unwrap().join("escape.txt").exists() && mnt.join("docs/c d.txt").exists());
    assert!(mnt.join("moved/deep").is_dir());
    // Delete: a folder with files needs recursive.
    let (code, body) = srv.curl(Some(&t), &["-X", "DELETE"], &format!("{base}/docs"));
    assert_eq!(code, 409, "{body}");
    assert!(s.mount_dir(&app).join("docs/c d.txt").exists(), "nothing deleted");
    assert_eq!(srv.curl(Some(&t), &["-X", "DELETE"], &format!("{base}/docs?recursive=1")).0, 200);
    assert!(!s.mount_dir(&app).join("docs").exists());
    assert_eq!(srv.curl(Some(&t), &["-X", "DELETE"], &format!("{base}/docs")).0, 404);
    assert_eq!(srv.curl(Some(&t), &["-X", "DELETE"], &base).0, 400, "the root is never deleted");
    // Names that leave the mount are refused, encoded or not; nothing is written outside.
    for bad in ["%2e%2e/escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "%00nul"] {
        let (code, body) = srv.curl(
            Some(&t),
            &["-X", "PUT", "--data-binary", "x", "--path-as-is"],
            &format!("{base}/{bad}"),
        );
        assert!((400..500).contains(&code), "{bad}: {code} {body}");
    }
    assert!(!s.mount_dir(&app).parent().unwrap().join("escape.txt").exists());
    // A symlink the app planted that leads out is not followed.
    std::os::unix::fs::symlink("/etc", s.mount_dir(&app).join("out")).unwrap();
    let (code, _) = srv.curl(Some(&t), &[], &format!("{base}/out/hostname"));
    assert!((400..500).contains(&code), "{code}");
    // Malformed and oversized JSON: 4xx with a JSON error, nothing changed.
    let (code, v) = srv.json(&t, "PUT", &format!("/api/apps/{app}/mount"), "{not json");
    assert!((400..500).contains(&code), "{code} {v}");
    assert!(v["code"].is_string(), "{v}");
    let big = format!("{{\"enabled\": false, \"confirm\": \"{}\"}}", "x".repeat(200_000));
    let big_file = s.home.path().join("big.json");
    std::fs::write(&big_file, big).unwrap();
    let (code, body) = srv.curl(
        Some(&t),
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", big_file.display()),
        ],
        &format!("/api/apps/{app}/mount"),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("\"code\""), "a JSON error: {body}");
    assert!(s.mount_dir(&app).join("moved/deep").is_dir(), "the mount is still there");
}

#[test]
fn uploads_past_the_quota_or_cancelled_leave_nothing_behind() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "apisoft", "16M");
    let t = srv.admin.clone();
    let big = s.home.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 20 << 20]).unwrap();
    let file_arg = format!("@{}", big.display());
    let url = format!("/api/apps/{app}/mount/files/big.bin");
    // Known length: refused before a byte is written.
    let (code, body) = srv.curl(Some(&t), &["-X", "PUT", "--data-binary", &file_arg], &url);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("quota_exceeded"), "{body}");
    // Chunked, length unknown: refused as the bytes arrive.
    let (code, body) = srv.curl(
        Some(&t),
        &["-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary", &file_arg],
        &url,
    );
    assert_eq!(code, 413, "{body}");
    let leftovers = |s: &Slipway| std::fs::read_dir(s.mount_dir(&app)).unwrap().count();
    assert_eq!(leftovers(&s), 0, "no file and no temp file");
    // Cancelled mid-upload: the client goes away, the temp file goes too.
    let mut child = Command::new("curl")
        .args(["-sS", "-X", "PUT", "--limit-rate", "200K", "-H", &format!("Authorization: Bearer {t}")])
        .args([
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &file_arg,
            &srv.url(&format!("/api/apps/{app}/mount/files/slow.bin")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for(Duration::from_secs(10), || (leftovers(&s) > 0).then_some(()));
    assert!(started.is_some(), "the upload's temp file appears beside its target");
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_for(Duration::from_secs(10), || (leftovers(&s) == 0).then_some(()));
    assert!(
        gone.is_some(),
        "a cancelled upload leaves nothing: {:?}",
        std::fs::read_dir(s.mount_dir(&app)).unwrap().collect::<Vec<_>>()
    );
}

#[test]
fn mount_disable_needs_the_typed_name_and_export_import_round_trip() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "apisoft", "32M");
    let t = srv.admin.clone();
    let base = format!("/api/apps/{app}/mount/files");
    assert_eq!(
        srv.curl(Some(&t), &["-X", "PUT", "--data-binary", "keep me"], &format!("{base}/d/keep.txt")).0,
        201
    );
    let status = srv.get_json(&format!("/api/apps/{app}/mount"));
    assert_eq!((status["enabled"].as_bool(), status["files"].as_u64()), (Some(true), Some(1)));
    // Export, then import into another folder.
    let archive = s.home.path().join("export.tar.gz");
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o", archive.to_str().unwrap(), "-H", &format!("Authorization: Bearer {t}")])
        .arg(srv.url(&format!("/api/apps/{app}/mount/export")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let listed = Command::new("tar").args(["tzf", archive.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("d/keep.txt"));
    let file_arg = format!("@{}", archive.display());
    let (code, body) = srv.curl(
        Some(&t),
        &["-X", "POST", "--data-binary", &file_arg],
        &format!("/api/apps/{app}/mount/import?path=copy"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read_to_string(s.mount_dir(&app).join("copy/d/keep.txt")).unwrap(), "keep me");
    let (code, body) = srv.curl(
        Some(&t),
        &["-X", "POST", "--data-binary", "not an archive"],
        &format!("/api/apps/{app}/mount/import"),
    );
    assert_eq!(code, 400, "{body}");
    // Disabling without the app's name typed back deletes nothing.
    let url = format!("/api/apps/{app}/mount");
    let (code, v) = srv.json(&t, "PUT", &url, r#"{"enabled": false}"#);
    assert_eq!((code, v["code"].as_str()), (428, Some("confirm_required")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("2 files"), "says what would go: {v}");
    let (code, _) = srv.json(&t, "PUT", &url, r#"{"enabled": false, "confirm": "someone-else"}"#);
    assert_eq!(code, 428);
    assert!(s.mount_dir(&app).join("d/keep.txt").exists());
    let (code, v) = srv.json(&t, "PUT", &url, &format!(r#"{{"enabled": false, "confirm": "{app}"}}"#));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["deleted"]["files"], 2);
    assert!(!s.mount_dir(&app).join("d/keep.txt").exists());
    assert_eq!(srv.curl(Some(&t), &[], &base).0, 409, "files of a disabled mount: mount_disabled");
    // Enable again with a size.
    let (code, v) = srv.json(&t, "PUT", &url, r#"{"enabled": true, "size": "20M"}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["enabled"].as_bool(), v["limit_bytes"].as_u64()), (Some(true), Some(20 << 20)));
    let (code, _) = srv.json(&t, "PUT", &url, r#"{"enabled": true, "size": "lots"}"#);
    assert_eq!(code, 400);
}

#[test]
fn deploy_streams_progress_then_ps_scale_restart_releases_and_logs() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "apisoft", "32M");
    let token = app_token(&s, &app);
    let repo = Repo::from_fixture("seed-demo");
    // An app token cannot deploy an arbitrary repository on the server.
    let (code, _) = srv.json(
        &token,
        "POST",
        &format!("/api/apps/{app}/deploys"),
        &format!(r#"{{"repo": "{}"}}"#, repo.path()),
    );
    assert_eq!(code, 403);
    let (code, _) = srv.json(
        &srv.admin,
        "POST",
        &format!("/api/apps/{app}/deploys"),
        r#"{"repo": "/x", "rev": "--upload-pack=evil"}"#,
    );
    assert_eq!(code, 400);
    let (code, body) = srv.curl(
        Some(&srv.admin),
        &[
            "-N",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!(r#"{{"repo": "{}", "rev": "main"}}"#, repo.path()),
        ],
        &format!("/api/apps/{app}/deploys"),
    );
    assert_eq!(code, 200, "{body}");
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        lines.iter().any(|l| l["line"].as_str().is_some_and(|t| t.contains("-----> "))),
        "progress lines: {body}"
    );
    let last = lines.last().unwrap();
    assert_eq!((last["done"].as_bool(), last["ok"].as_bool()), (Some(true), Some(true)), "{body}");
    let releases = srv.get_json(&format!("/api/apps/{app}/releases"));
    assert_eq!(releases[0]["id"], "v1");
    assert!(!releases[0]["phases"].as_array().unwrap().is_empty());
    let one = srv.get_json(&format!("/api/apps/{app}"));
    assert_eq!((one["current"].as_str(), one["commit"].as_str().map(str::len)), (Some("v1"), Some(40)));
    let ps = srv.get_json(&format!("/api/apps/{app}/ps"));
    assert_eq!(ps["running"], true, "{ps}");
    // Scale with the app's own token; bad types and counts are refused.
    let (code, v) =
        srv.json(&token, "POST", &format!("/api/apps/{app}/ps/scale"), r#"{"counts": {"worker": 0}}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["worker"], 0);
    let (code, _) =
        srv.json(&token, "POST", &format!("/api/apps/{app}/ps/scale"), r#"{"counts": {"nope": 1}}"#);
    assert_eq!(code, 400);
    let (code, _) =
        srv.json(&token, "POST", &format!("/api/apps/{app}/ps/scale"), r#"{"counts": {"web": 1000}}"#);
    assert_eq!(code, 400);
    let (code, v) = srv.json(&token, "POST", &format!("/api/apps/{app}/ps/restart"), r#"{"type": "web"}"#);
    assert_eq!(code, 202, "{v}");
    // Logs: the last lines, then a live tail that ends when the client leaves.
    let (code, body) = srv.curl(Some(&token), &[], &format!("/api/apps/{app}/logs?lines=50"));
    assert_eq!(code, 200, "{body}");
    assert!(body.lines().last().unwrap().contains("\"done\":true"), "{body}");
    let (code, body) = srv.curl(
        Some(&token),
        &["-N", "--max-time", "3"],
        &format!("/api/apps/{app}/logs?follow=1&type=web"),
    );
    assert_eq!(code, 200, "a tail stays open until the client leaves: {body}");
    assert!(!body.contains("\"done\""), "{body}");
    assert_eq!(srv.curl(Some(&token), &[], &format!("/api/apps/{app}/logs?type=--evil")).0, 400);
}

#[test]
fn serve_detach_stop_and_restart_after_a_kill() {
    struct StopOnDrop<'a>(&'a Slipway);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["serve", "--stop"]);
        }
    }
    let s = Slipway::new();
    let _stop = StopOnDrop(&s);
    let port = common::free_port();
    let out = s.run(&["serve", "--detach", "--listen", &format!("127.0.0.1:{port}")]);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("slwa_"), "the admin token is printed once");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.home.path().join("serve/admin.token")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let pid: i32 =
        std::fs::read_to_string(s.home.path().join("serve/serve.pid")).unwrap().trim().parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    // As after a reboot: the server is gone; the next command brings it back.
    common::sigkill(u64::try_from(pid).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    s.ok(&["apps", "list"]);
    let back = wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
    assert!(back.is_some(), "restarted by the next command");
    let again = s.run(&["serve", "--detach", "--listen", &format!("127.0.0.1:{port}")]);
    assert!(!again.status.success(), "a second server of the same home is refused");
    s.ok(&["serve", "--stop"]);
    let down = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
    });
    assert!(down.is_some());
    s.ok(&["apps", "list"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "a stopped server stays stopped");
}
