//! The file routes of `slipway serve` over real HTTP, for edits that race with others: every
//! file and listing carries an `ETag`, and `If-Match` / `If-None-Match` on PUT, DELETE and
//! rename refuse (412, nothing changed) what changed meanwhile, even when many clients race
//! on one version. Also: conditional reads (304, `If-Range`), and malformed or cut-short
//! requests on the file routes answering 4xx with a JSON error and leaving nothing behind.

#![allow(clippy::unwrap_used)]

mod common;
mod serve_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Slipway, wait_for};
use serve_support::{Server, soft_app};

/// One HTTP exchange through curl: status, response headers (lower-case names), body.
struct Answer {
    code: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers.get("etag").cloned().unwrap_or_else(|| panic!("no ETag in {:?}", self.headers))
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.code, self.body))
    }
    /// The JSON error's code, insisting on the `{"error", "code"}` shape.
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "an error message: {v}");
        v["code"].as_str().unwrap().to_owned()
    }
}

fn call(srv: &Server, args: &[&str], path: &str) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60", "-D"])
        .arg(&head)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", srv.admin))
        .args(args)
        .arg(srv.url(path))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    // With `Expect: 100-continue` the dump holds the interim answer first: keep the last block.
    let raw = std::fs::read_to_string(&head).unwrap_or_default();
    let last = raw.trim_end().rsplit("\r\n\r\n").next().unwrap_or_default().to_owned();
    let headers = last
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { code: code.trim().parse().unwrap_or(0), headers, body: body.to_owned() }
}

fn put(srv: &Server, path: &str, data: &str, extra: &[&str]) -> Answer {
    let mut args = vec!["-X", "PUT", "--data-binary", data];
    args.extend_from_slice(extra);
    call(srv, &args, path)
}

/// Names in the mount's folder `dir` that are not `keep`: temp files a put left behind.
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn etags_make_puts_deletes_and_renames_refuse_what_changed_meanwhile() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "filesoft", "64M");
    let mnt = s.mount_dir(&app);
    let base = format!("/api/apps/{app}/mount/files");
    let file = format!("{base}/notes.txt");

    // A put answers the new file's ETag; a GET and the listing show the same one.
    let created = put(&srv, &file, "first", &["-H", "If-None-Match: *"]);
    assert_eq!(created.code, 201, "{}", created.body);
    let v1 = created.etag();
    assert!(v1.starts_with('"') && v1.ends_with('"'), "a strong, quoted ETag: {v1}");
    assert_eq!(created.json()["etag"], v1.as_str());
    let got = call(&srv, &[], &file);
    assert_eq!((got.code, got.body.as_str(), got.etag()), (200, "first", v1.clone()));
    let listing = call(&srv, &[], &base);
    assert_eq!(listing.json()["entries"][0]["etag"], v1.as_str(), "the listing shows each entry's ETag");
    let root_tag = listing.etag();
    // Conditional reads: unchanged is 304 with no body; a stale If-Match is 412.
    let same = call(&srv, &["-H", &format!("If-None-Match: {v1}")], &file);
    assert_eq!((same.code, same.body.as_str()), (304, ""));
    assert_eq!(call(&srv, &["-H", &format!("If-None-Match: {root_tag}")], &base).code, 304);
    assert_eq!(call(&srv, &["-H", "If-Match: \"stale\""], &file).code, 412);

    // Creating only: a second If-None-Match: * finds the file there and writes nothing.
    let again = put(&srv, &file, "clobber", &["-H", "If-None-Match: *"]);
    assert_eq!((again.code, again.error_code()), (412, "changed".into()), "{}", again.body);
    assert_eq!(std::fs::read_to_string(mnt.join("notes.txt")).unwrap(), "first");

    // Someone else rewrites the file (here: on disk, as the app would).
    std::fs::write(mnt.join("notes.txt"), "edited by the app").unwrap();
    let v2 = call(&srv, &[], &file).etag();
    assert_ne!(v1, v2, "the ETag follows the file");

    // A stale If-Match refuses the put, the delete and the rename; each changes nothing.
    let stale = format!("If-Match: {v1}");
    let refused = put(&srv, &file, "overwrite", &["-H", &stale]);
    assert_eq!((refused.code, refused.error_code()), (412, "changed".into()), "{}", refused.body);
    assert!(refused.json()["error"].as_str().unwrap().contains("changed meanwhile"), "{}", refused.body);
    let refused = call(&srv, &["-X", "DELETE", "-H", &stale], &file);
    assert_eq!((refused.code, refused.error_code()), (412, "changed".into()));
    let refused = call(&srv, &["-X", "POST", "-H", &stale], &format!("{file}?rename_to=moved.txt"));
    assert_eq!((refused.code, refused.error_code()), (412, "changed".into()));
    assert_eq!(std::fs::read_to_string(mnt.join("notes.txt")).unwrap(), "edited by the app");
    assert!(!mnt.join("moved.txt").exists());
    assert_eq!(strays(&mnt, &["notes.txt"]), Vec::<String>::new(), "a refused put leaves no temp file");

    // A big body with a stale If-Match is refused before it is read, and nothing is written.
    let big = s.home.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 8 << 20]).unwrap();
    let refused = call(&srv, &["-X", "PUT", "-H", &stale, "-T", big.to_str().unwrap()], &file);
    assert_eq!(refused.code, 412, "{}", refused.body);
    assert_eq!(strays(&mnt, &["notes.txt"]), Vec::<String>::new());

    // The current ETag lets each through, and each answer's ETag chains to the next edit.
    let ok = put(&srv, &file, "second", &["-H", &format!("If-Match: {v2}")]);
    assert_eq!(ok.code, 201, "{}", ok.body);
    let v3 = ok.etag();
    assert_ne!(v3, v2);
    assert_eq!(std::fs::read_to_string(mnt.join("notes.txt")).unwrap(), "second");
    let moved =
        call(&srv, &["-X", "POST", "-H", &format!("If-Match: {v3}")], &format!("{file}?rename_to=moved.txt"));
    assert_eq!(moved.code, 200, "{}", moved.body);
    let v4 = call(&srv, &[], &format!("{base}/moved.txt")).etag();
    let gone = call(&srv, &["-X", "DELETE", "-H", &format!("If-Match: {v4}")], &format!("{base}/moved.txt"));
    assert_eq!(gone.code, 200, "{}", gone.body);
    assert!(!mnt.join("moved.txt").exists());
    // If-Match on what is no longer there: 412, not 404, so the client learns it changed.
    let missing =
        call(&srv, &["-X", "DELETE", "-H", &format!("If-Match: {v4}")], &format!("{base}/moved.txt"));
    assert_eq!(missing.code, 412);

    // A folder's ETag (from its parent's listing) changes when its contents do.
    assert_eq!(put(&srv, &format!("{base}/dir/a.txt"), "a", &[]).code, 201);
    let dir_tag = call(&srv, &[], &base).json()["entries"][0]["etag"].as_str().unwrap().to_owned();
    std::fs::write(mnt.join("dir/b.txt"), "added meanwhile").unwrap();
    let refused = call(
        &srv,
        &["-X", "DELETE", "-H", &format!("If-Match: {dir_tag}")],
        &format!("{base}/dir?recursive=1"),
    );
    assert_eq!(refused.code, 412, "{}", refused.body);
    assert!(mnt.join("dir/b.txt").exists(), "nothing in the folder was deleted");

    // Malformed preconditions: 400 with a JSON error, and nothing changed.
    for bad in ["If-Match: nope", "If-Match: \"unclosed", "If-None-Match: W/x"] {
        let a = call(&srv, &["-X", "DELETE", "-H", bad], &format!("{base}/dir/a.txt"));
        assert_eq!((a.code, a.error_code()), (400, "bad_precondition".into()), "{bad}: {}", a.body);
    }
    assert!(mnt.join("dir/a.txt").exists());
}

#[test]
fn racing_puts_on_one_version_let_exactly_one_through() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "filesoft", "64M");
    let path = format!("/api/apps/{app}/mount/files/shared.txt");
    let v = put(&srv, &path, "original", &[]).etag();
    // Eight clients read the same version and each tries to replace it at once.
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
                .arg("-H")
                .arg(format!("Authorization: Bearer {}", srv.admin))
                .arg("-H")
                .arg(format!("If-Match: {v}"))
                .arg("--data-binary")
                .arg(format!("writer {i}"))
                .arg(srv.url(&path))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<(usize, String)> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i, String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned()))
        .collect();
    let winners: Vec<usize> = codes.iter().filter(|(_, c)| c == "201").map(|(i, _)| *i).collect();
    assert_eq!(winners.len(), 1, "exactly one put wins: {codes:?}");
    assert!(codes.iter().all(|(_, c)| c == "201" || c == "412"), "the others are refused: {codes:?}");
    let on_disk = std::fs::read_to_string(s.mount_dir(&app).join("shared.txt")).unwrap();
    assert_eq!(on_disk, format!("writer {}", winners[0]), "the file holds the winner's bytes");
    assert_eq!(strays(&s.mount_dir(&app), &["shared.txt"]), Vec::<String>::new());
}

#[test]
fn mkdir_with_preconditions_creates_only_what_they_allow() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "filemkdir", "64M");
    let base = format!("/api/apps/{app}/mount/files");
    let mnt = s.mount_dir(&app);
    let mkdir = |path: &str, extra: &[&str]| {
        let mut args = vec!["-X", "POST"];
        args.extend_from_slice(extra);
        call(&srv, &args, &format!("{base}/{path}?mkdir=1"))
    };
    // If-None-Match: * creates once, parents included; the second asker learns it is taken.
    let first = mkdir("reports/2026", &["-H", "If-None-Match: *"]);
    assert_eq!(first.code, 201, "{}", first.body);
    assert!(mnt.join("reports/2026").is_dir());
    std::fs::write(mnt.join("reports/2026/q1.csv"), "kept").unwrap();
    let again = mkdir("reports/2026", &["-H", "If-None-Match: *"]);
    assert_eq!((again.code, again.error_code()), (412, "changed".into()), "{}", again.body);
    assert_eq!(std::fs::read_to_string(mnt.join("reports/2026/q1.csv")).unwrap(), "kept");
    // Without a precondition an existing folder is fine (mkdir -p).
    assert_eq!(mkdir("reports/2026", &[]).code, 201);
    // If-Match on nothing: 412 and nothing made; on the folder's current ETag: allowed.
    let none = mkdir("missing", &["-H", "If-Match: *"]);
    assert_eq!(none.code, 412, "{}", none.body);
    assert!(!mnt.join("missing").exists(), "a refused mkdir made the folder");
    let tag = call(&srv, &[], &base).json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "reports")
        .map(|e| e["etag"].as_str().unwrap().to_owned())
        .expect("reports is listed");
    assert_eq!(mkdir("reports", &["-H", &format!("If-Match: {tag}")]).code, 201);
    // A file in the way is not a folder, with or without a precondition.
    std::fs::write(mnt.join("plain.txt"), "x").unwrap();
    let file = mkdir("plain.txt", &["-H", "If-Match: *"]);
    assert_eq!(file.code, 409, "{}", file.body);
    assert_eq!(std::fs::read_to_string(mnt.join("plain.txt")).unwrap(), "x");
}

#[test]
fn ranges_follow_if_range_and_a_changed_file_is_sent_whole() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "filesoft", "64M");
    let path = format!("/api/apps/{app}/mount/files/data.bin");
    let v = put(&srv, &path, "0123456789", &[]).etag();
    let part = call(&srv, &["-H", "Range: bytes=2-4", "-H", &format!("If-Range: {v}")], &path);
    assert_eq!((part.code, part.body.as_str()), (206, "234"));
    assert_eq!(part.headers.get("content-range").map(String::as_str), Some("bytes 2-4/10"));
    assert_eq!(part.headers.get("accept-ranges").map(String::as_str), Some("bytes"));
    let whole = call(&srv, &["-H", "Range: bytes=2-4", "-H", "If-Range: \"older\""], &path);
    assert_eq!(
        (whole.code, whole.body.as_str()),
        (200, "0123456789"),
        "a stale If-Range gets the whole file"
    );
}

#[test]
fn malformed_and_cut_short_file_requests_get_4xx_and_leave_nothing() {
    let s = Slipway::new();
    let srv = Server::start(&s);
    let app = soft_app(&s, "filesoft", "16M");
    let mnt = s.mount_dir(&app);
    let base = format!("/api/apps/{app}/mount/files");
    assert_eq!(put(&srv, &format!("{base}/a.txt"), "a", &[]).code, 201);
    assert_eq!(put(&srv, &format!("{base}/folder/x.txt"), "x", &[]).code, 201);
    let long = "n".repeat(300);
    let cases: Vec<(&str, Vec<&str>, String, &str)> = vec![
        // A file where a folder is expected, on every route.
        ("PUT", vec!["--data-binary", "x"], format!("{base}/a.txt/b.txt"), "invalid_path"),
        ("PUT", vec!["--data-binary", "x"], format!("{base}/a.txt/deeper/b.txt"), "invalid_path"),
        ("GET", vec![], format!("{base}/a.txt/b.txt"), "invalid_path"),
        ("DELETE", vec![], format!("{base}/a.txt/b.txt"), "invalid_path"),
        ("POST", vec![], format!("{base}/a.txt/b.txt?mkdir=1"), "invalid_path"),
        // A name longer than the filesystem allows.
        ("PUT", vec!["--data-binary", "x"], format!("{base}/{long}"), "invalid_path"),
        ("GET", vec![], format!("{base}/{long}"), "invalid_path"),
        // A folder where a file is expected; no file name at all.
        ("PUT", vec!["--data-binary", "x"], format!("{base}/folder"), "is_directory"),
        ("PUT", vec!["--data-binary", "x"], format!("{base}/"), "invalid_path"),
        // Contradictory queries.
        ("POST", vec!["-H", "If-Match: *"], format!("{base}/a.txt?rename_to=b.txt&mkdir=1"), "bad_request"),
    ];
    for (method, extra, path, want) in cases {
        let mut args = vec!["-X", method];
        args.extend(extra.iter().copied());
        let a = call(&srv, &args, &path);
        assert!((400..500).contains(&a.code), "{method} {path}: {} {}", a.code, a.body);
        assert_eq!(a.error_code(), want, "{method} {path}: {}", a.body);
    }
    let mut names = strays(&mnt, &[]);
    names.sort();
    assert_eq!(names, ["a.txt", "folder"], "nothing was created or left behind");

    // A body cut short of its Content-Length: the client stops sending and hangs up.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        sock,
        "PUT {base}/short.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000000\r\n\r\n",
        srv.admin
    )
    .unwrap();
    sock.write_all(&[5u8; 4096]).unwrap();
    let started =
        wait_for(Duration::from_secs(10), || (strays(&mnt, &["a.txt", "folder"]).len() == 1).then_some(()));
    assert!(started.is_some(), "the upload's temp file appears beside its target");
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    // hyper closes a connection whose request body ends early, so there may be no answer at
    // all; if there is one, it blames the request.
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || (answer.starts_with("HTTP/1.1 4") && answer.contains("\"interrupted\"")),
        "a cut-short upload is the client's fault: {answer}"
    );
    let gone =
        wait_for(Duration::from_secs(10), || strays(&mnt, &["a.txt", "folder"]).is_empty().then_some(()));
    assert!(gone.is_some(), "nothing is left: {:?}", strays(&mnt, &["a.txt", "folder"]));

    // A Content-Length that is not a number never reaches the handler, and writes nothing.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        sock,
        "PUT {base}/bad.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: lots\r\n\r\nxyz",
        srv.admin
    )
    .unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!mnt.join("bad.bin").exists());
}
