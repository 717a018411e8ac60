//! `mount get` and `mount put` leave nothing half-done: a failed get keeps the local file, and
//! a killed put's temp file is swept by the next put; `mount mv` never replaces, escapes or
//! nests. Soft-limited mounts: no root needed.

#![allow(clippy::unwrap_used)]

mod mount_support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mount_support::{TestHome, soft_app, stderr};

fn parts(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() }; // not created yet
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".slipway-put-"))
        .collect()
}

#[test]
fn a_failed_get_leaves_the_local_file_untouched() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    let local = home.dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let dest = local.join("keep.txt");
    std::fs::write(&dest, b"precious local data").unwrap();

    let out = home.run(&["mount", "get", &app, "missing.txt", dest.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious local data", "a failed get truncated LOCAL");
    assert_eq!(std::fs::read_dir(&local).unwrap().count(), 1, "no temp file may remain beside LOCAL");

    // A get that works replaces it whole, through the same rename.
    let src = home.dir.path().join("new.txt");
    std::fs::write(&src, b"fresh").unwrap();
    home.ok(&["mount", "put", &app, src.to_str().unwrap(), "new.txt"]);
    home.ok(&["mount", "get", &app, "new.txt", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"fresh");
    assert_eq!(std::fs::read_dir(&local).unwrap().count(), 1);
}

/// Start `mount put APP - DEST` fed by a pipe we keep open, and wait until its temp file exists.
fn slow_put(home: &TestHome, app: &str, dest: &str) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = home
        .cmd(&["mount", "put", app, "-", dest])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![b'x'; 64 * 1024]).unwrap();
    stdin.flush().unwrap();
    (child, stdin)
}

fn wait_for_part(dir: &std::path::Path) {
    let start = Instant::now();
    while parts(dir).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "the put never created its temp file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_puts_temp_file_is_swept_by_the_next_put_but_a_running_one_is_kept() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    home.ok(&["mount", "mkdir", &app, "in"]);
    let dir = home.mount_dir(&app).join("in");

    let (mut killed, stdin) = slow_put(&home, &app, "in/a.bin");
    wait_for_part(&dir);
    killed.kill().unwrap();
    killed.wait().unwrap(); // reaped: its pid no longer runs slipway
    drop(stdin);
    assert_eq!(parts(&dir).len(), 1, "kill -9 leaves the temp file (the bug being fixed)");
    let leftover = parts(&dir).remove(0);

    // The next put, into any directory, sweeps it; its own temp file, streaming still,
    // survives the sweep of a third put.
    let (running, mut running_stdin) = slow_put(&home, &app, "in/b.bin");
    let start = Instant::now();
    let own = loop {
        let now = parts(&dir);
        if let [one] = now.as_slice()
            && *one != leftover
        {
            break one.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the killed put's temp file stayed: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let src = home.dir.path().join("c.txt");
    std::fs::write(&src, b"c").unwrap();
    home.ok(&["mount", "put", &app, src.to_str().unwrap(), "c.txt"]);
    assert_eq!(parts(&dir), vec![own], "a put in progress must keep its temp file");

    // A leftover elsewhere is found without a scan: from its record in state/APP/puts.
    let (mut killed, stdin) = slow_put(&home, &app, "deep/er/x.bin");
    let deep = home.mount_dir(&app).join("deep/er");
    wait_for_part(&deep);
    killed.kill().unwrap();
    killed.wait().unwrap();
    drop(stdin);
    home.ok(&["mount", "put", &app, src.to_str().unwrap(), "c2.txt"]);
    assert!(parts(&deep).is_empty(), "the killed put's temp file in deep/er stayed");

    running_stdin.write_all(b"end").unwrap();
    drop(running_stdin);
    let out = running.wait_with_output().unwrap();
    assert!(out.status.success(), "the running put failed after the sweep: {}", stderr(&out));
    assert_eq!(std::fs::metadata(dir.join("b.bin")).unwrap().len(), 64 * 1024 + 3);
    assert!(parts(&dir).is_empty());
    assert!(!dir.join("a.bin").exists(), "the killed put must not have landed");
}

#[test]
fn mount_mv_renames_files_and_folders_but_never_replaces_escapes_or_nests() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    let mnt = home.mount_dir(&app);
    std::fs::create_dir_all(mnt.join("dir/sub")).unwrap();
    std::fs::write(mnt.join("dir/sub/a.txt"), b"aaa").unwrap();
    std::fs::write(mnt.join("b.txt"), b"bbb").unwrap();

    home.ok(&["mount", "mv", &app, "b.txt", "dir/b2.txt"]);
    assert_eq!(std::fs::read(mnt.join("dir/b2.txt")).unwrap(), b"bbb");
    assert!(!mnt.join("b.txt").exists());
    home.ok(&["mount", "mv", &app, "dir", "folder"]);
    assert_eq!(std::fs::read(mnt.join("folder/sub/a.txt")).unwrap(), b"aaa");
    // A symlink is renamed itself, not followed.
    std::os::unix::fs::symlink("/etc", mnt.join("out")).unwrap();
    home.ok(&["mount", "mv", &app, "out", "out2"]);
    assert_eq!(std::fs::read_link(mnt.join("out2")).unwrap(), std::path::Path::new("/etc"));

    let before = mount_support::snapshot(&mnt);
    let refused = [
        (["folder/b2.txt", "folder/sub/a.txt"], "already exists"),
        (["folder/sub", "folder"], "already exists"),
        (["folder", "folder/sub/inner"], "into itself"),
        (["folder", "../escaped"], "escapes"),
        (["../../etc/hostname", "x"], "escapes"),
        (["out2/hostname", "stolen"], "escapes"),
        (["folder/b2.txt", "out2/planted"], "escapes"),
        ([".", "root2"], "root"),
        (["missing", "found"], "does not exist"),
        (["folder/b2.txt", "folder/b2.txt/x"], "not a folder"),
        (["folder/b2.txt", "no/such/parent.txt"], "does not exist"),
    ];
    for ([from, to], want) in refused {
        let out = home.run(&["mount", "mv", &app, from, to]);
        assert!(!out.status.success(), "mv {from} {to} succeeded");
        assert!(stderr(&out).contains(want), "mv {from} {to}: {}", stderr(&out));
    }
    // Through a symlink inside the mount, the kernel's own check refuses the nesting.
    std::os::unix::fs::symlink("folder/sub", mnt.join("alias")).unwrap();
    let out = home.run(&["mount", "mv", &app, "folder", "alias/inner"]);
    assert!(stderr(&out).contains("into itself"), "{}", stderr(&out));
    std::fs::remove_file(mnt.join("alias")).unwrap();
    assert_eq!(mount_support::snapshot(&mnt), before, "a refused mv changed the mount");
    assert!(!mnt.parent().unwrap().join("escaped").exists() && !mnt.join("stolen").exists());
}
