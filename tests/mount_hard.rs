//! Hard-limited persistent filesystems: a loop-mounted ext4 image per app. Needs root and
//! loop devices; each test skips with a reason otherwise.

mod mount_support;

use std::io::Write;
use std::process::{Command, Stdio};

use mount_support::{TestHome, stderr, stdout};

#[allow(clippy::unwrap_used)] // test helper
fn status_json(home: &TestHome, app: &str) -> serde_json::Value {
    serde_json::from_slice(&home.ok(&["mount", "status", app, "--json"]).stdout).unwrap()
}

#[test]
fn hard_limit_gives_enospc_to_a_real_process_and_spares_other_apps() {
    require_hard!();
    let home = TestHome::new();
    let (small, other) = (home.create_app(), home.create_app());
    home.ok(&["mount", "enable", &small, "--size", "64M"]);
    home.ok(&["mount", "enable", &other, "--size", "64M"]);
    assert_eq!(status_json(&home, &small)["mode"], "hard");

    let dd = format!("dd if=/dev/zero of={}/big bs=1M count=100", home.mount_dir(&small).display());
    let out = Command::new("bash").arg("-c").arg(&dd).output().unwrap();
    assert!(!out.status.success(), "dd past the limit must fail");
    assert!(stderr(&out).contains("No space left on device"), "{}", stderr(&out));

    let second = format!("dd if=/dev/zero of={}/data bs=1M count=10", home.mount_dir(&other).display());
    let out = Command::new("bash").arg("-c").arg(&second).output().unwrap();
    assert!(out.status.success(), "the other app's mount must still accept writes: {}", stderr(&out));

    // A put into the full mount fails clearly and leaves no temp file behind.
    let src = home.dir.path().join("ten-megs");
    std::fs::write(&src, vec![7u8; 10 << 20]).unwrap();
    let out = home.run(&["mount", "put", &small, src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is full"), "{}", stderr(&out));
    let names: Vec<_> =
        std::fs::read_dir(home.mount_dir(&small)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("big")], "no temp file may remain");
}

#[test]
fn remount_after_unmount_keeps_data() {
    require_hard!();
    let home = TestHome::new();
    let app = home.create_app();
    home.ok(&["mount", "enable", &app, "--size", "32M"]);
    std::fs::write(home.mount_dir(&app).join("kept.csv"), b"a,b\n1,2\n").unwrap();

    // As after a reboot: the mount is gone, the image remains.
    let out = Command::new("umount").arg(home.mount_dir(&app)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.mount_dir(&app).join("kept.csv").exists());

    let listing = stdout(&home.ok(&["mount", "ls", &app]));
    assert!(listing.contains("kept.csv"), "ls must remount: {listing}");
    assert_eq!(std::fs::read(home.mount_dir(&app).join("kept.csv")).unwrap(), b"a,b\n1,2\n");

    Command::new("umount").arg(home.mount_dir(&app)).output().unwrap();
    assert_eq!(status_json(&home, &app)["files"], 1, "status must remount too");
}

#[test]
fn set_limit_grows_and_refuses_shrinking_below_usage() {
    require_hard!();
    let home = TestHome::new();
    let app = home.create_app();
    home.ok(&["mount", "enable", &app, "--size", "32M"]);
    let grown = format!("dd if=/dev/zero of={}/f bs=1M count=40", home.mount_dir(&app).display());
    assert!(!Command::new("bash").arg("-c").arg(&grown).output().unwrap().status.success());

    // --restart: where the kernel refuses to grow online, the grow is done unmounted
    // (mount_resize.rs covers both ways).
    home.ok(&["mount", "enable", &app, "--size", "128M", "--restart"]);
    assert_eq!(status_json(&home, &app)["limit_bytes"], 128u64 << 20);
    let out = Command::new("bash").arg("-c").arg(&grown).output().unwrap();
    assert!(out.status.success(), "40M must fit after growing to 128M: {}", stderr(&out));

    let out = home.run(&["mount", "enable", &app, "--size", "20M"]);
    assert!(!out.status.success(), "shrinking below 40M of data must be refused");
    assert!(stderr(&out).contains("cannot shrink"), "{}", stderr(&out));
    assert_eq!(status_json(&home, &app)["limit_bytes"], 128u64 << 20);
    assert_eq!(std::fs::metadata(home.mount_dir(&app).join("f")).unwrap().len(), 40 << 20);

    // Shrinking above the usage works, data intact.
    home.ok(&["mount", "enable", &app, "--size", "112M", "--restart"]);
    assert_eq!(status_json(&home, &app)["limit_bytes"], 112u64 << 20);
    assert_eq!(std::fs::metadata(home.mount_dir(&app).join("f")).unwrap().len(), 40 << 20);
}

#[test]
fn fifty_concurrent_puts_land_intact() {
    require_hard!();
    let home = TestHome::new();
    let app = home.create_app();
    home.ok(&["mount", "enable", &app, "--size", "128M"]);
    let srcs: Vec<(String, Vec<u8>)> = (0..50u32)
        .map(|i| {
            let bytes: Vec<u8> = (0..(64 * 1024 + i * 997)).map(|j| ((j * 31 + i) % 251) as u8).collect();
            (format!("f{i}.bin"), bytes)
        })
        .collect();
    let children: Vec<_> = srcs
        .iter()
        .map(|(name, bytes)| {
            let mut child = home
                .cmd(&["mount", "put", &app, "-", &format!("dir/{name}")])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let bytes = bytes.clone();
            let writer = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
            (child, writer)
        })
        .collect();
    // `dir` is created by the first mkdir; later puts race it and must still succeed.
    for (child, writer) in children {
        writer.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for (name, bytes) in &srcs {
        let got = home.ok(&["mount", "get", &app, &format!("dir/{name}")]).stdout;
        assert!(got == *bytes, "{name} differs after concurrent puts");
    }
}

#[test]
fn disable_needs_confirmation_then_deletes_everything() {
    require_hard!();
    let home = TestHome::new();
    let app = home.create_app();
    home.ok(&["mount", "enable", &app, "--size", "32M"]);
    std::fs::create_dir(home.mount_dir(&app).join("d")).unwrap();
    std::fs::write(home.mount_dir(&app).join("d/x"), b"precious").unwrap();

    let out = home.run(&["mount", "disable", &app]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("--confirm {app}")), "{}", stderr(&out));
    let out = home.run(&["mount", "disable", &app, "--confirm", "not-it"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(std::fs::read(home.mount_dir(&app).join("d/x")).unwrap(), b"precious");

    home.ok(&["mount", "disable", &app, "--confirm", &app]);
    assert!(!home.mount_dir(&app).exists(), "the mount point must be gone");
    assert!(!home.image(&app).exists(), "the image must be deleted");
    assert_eq!(status_json(&home, &app)["enabled"], false);
    let out = home.run(&["mount", "ls", &app]);
    assert!(stderr(&out).contains("is disabled"), "{}", stderr(&out));

    home.ok(&["mount", "enable", &app, "--size", "32M"]);
    assert_eq!(stdout(&home.ok(&["mount", "ls", &app])), "", "re-enabled mount must be empty");
    let again = home.ok(&["mount", "enable", &app]);
    assert!(stderr(&again).contains("already enabled"));
}
