//! Soft-limited persistent filesystems (`SLIPWAY_MOUNT_MODE=soft`): a plain directory whose
//! limit slipway enforces on puts and reports in status.

mod mount_support;

use mount_support::{TestHome, soft_app, stderr};

#[test]
fn soft_put_over_the_limit_is_refused_and_writes_nothing() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    let status: serde_json::Value =
        serde_json::from_slice(&home.ok(&["mount", "status", &app, "--json"]).stdout).unwrap();
    assert_eq!(status["mode"], "soft");

    let fits = home.dir.path().join("fits");
    std::fs::write(&fits, vec![1u8; 10 << 20]).unwrap();
    home.ok(&["mount", "put", &app, fits.to_str().unwrap()]);

    let big = home.dir.path().join("big");
    std::fs::write(&big, vec![2u8; 8 << 20]).unwrap();
    let out = home.run(&["mount", "put", &app, big.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("this would use 8.0 MiB more") && err.contains("16.0 MiB limit"), "{err}");
    assert!(!home.mount_dir(&app).join("big").exists(), "nothing may be written");

    // A stream of unknown length is refused as its bytes cross the limit (so the writer may
    // find the pipe closed before it has written everything).
    let mut child = home
        .cmd(&["mount", "put", &app, "-", "streamed"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), &vec![3u8; 8 << 20]);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("16.0 MiB limit"), "{}", stderr(&out));
    let names: Vec<_> =
        std::fs::read_dir(home.mount_dir(&app)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("fits")], "no file and no temp file may remain");
}

#[test]
fn soft_status_flags_files_written_behind_its_back() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    std::fs::write(home.mount_dir(&app).join("behind"), vec![0u8; 20 << 20]).unwrap();
    let status: serde_json::Value =
        serde_json::from_slice(&home.ok(&["mount", "status", &app, "--json"]).stdout).unwrap();
    assert_eq!(status["over_limit"], true, "{status}");
    assert_eq!(status["used_bytes"], 20u64 << 20);
    assert_eq!(status["percent"], 125.0);
    let human = String::from_utf8(home.ok(&["mount", "status", &app]).stdout).unwrap();
    assert!(human.contains("OVER LIMIT"), "{human}");
}

#[test]
fn soft_disable_removes_the_tree() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    std::fs::create_dir_all(home.mount_dir(&app).join("a/b")).unwrap();
    std::fs::write(home.mount_dir(&app).join("a/b/c"), b"x").unwrap();
    let out = home.run(&["mount", "disable", &app]);
    assert_eq!(out.status.code(), Some(5));
    assert!(home.mount_dir(&app).join("a/b/c").exists());
    home.ok(&["mount", "disable", &app, "--confirm", &app]);
    assert!(!home.mount_dir(&app).exists());
    let again = home.ok(&["mount", "disable", &app]);
    assert!(stderr(&again).contains("already disabled"));
}

#[test]
fn file_operations_round_trip() {
    let home = TestHome::new();
    let app = soft_app(&home, "64M");
    let src = home.dir.path().join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("top.txt"), b"top").unwrap();
    std::fs::write(src.join("sub/deep.txt"), b"deep").unwrap();
    home.ok(&["mount", "put", &app, src.to_str().unwrap(), "data/"]);
    home.ok(&["mount", "mkdir", &app, "x/y/z"]);
    let ls: serde_json::Value =
        serde_json::from_slice(&home.ok(&["mount", "ls", &app, "data/tree", "--json"]).stdout).unwrap();
    let names: Vec<_> =
        ls.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["sub", "top.txt"]);
    assert_eq!(home.ok(&["mount", "get", &app, "data/tree/sub/deep.txt"]).stdout, b"deep");
    let out = home.dir.path().join("out");
    home.ok(&["mount", "get", &app, "data/tree", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("sub/deep.txt")).unwrap(), b"deep");
    let refused = home.run(&["mount", "rm", &app, "data"]);
    assert!(!refused.status.success() && stderr(&refused).contains("pass -r"));
    home.ok(&["mount", "rm", &app, "data", "-r"]);
    assert!(!home.mount_dir(&app).join("data").exists());
}
