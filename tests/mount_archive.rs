//! `mount export` / `mount import`: backups that round-trip through real tar tools, and
//! hostile or broken archives that change nothing, inside the mount or out of it.

#![allow(clippy::unwrap_used)]

mod mount_support;

use std::path::Path;
use std::process::{Command, Stdio};

use mount_support::{SOFT, TestHome, snapshot, soft_app, stderr};

/// Writes a tar archive with Python's tarfile, which will write any member name and type.
fn craft(path: &Path, members: &str) {
    let script = format!(
        "import io, sys, tarfile\n\
         t = tarfile.open(sys.argv[1], 'w:gz' if sys.argv[1].endswith('gz') else 'w')\n\
         def add(name, data=b'pwned\\n', kind=tarfile.REGTYPE, link=''):\n\
         \x20   ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = link\n\
         \x20   if kind == tarfile.REGTYPE:\n\
         \x20       ti.size = len(data); t.addfile(ti, io.BytesIO(data))\n\
         \x20   else:\n\
         \x20       t.addfile(ti)\n\
         {members}\n\
         t.close()\n"
    );
    let out = Command::new("python3").arg("-c").arg(script).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn export_and_import_round_trip_through_gnu_tar_and_stdout() {
    let home = TestHome::new();
    let app = soft_app(&home, "64M");
    let mount = home.mount_dir(&app);
    std::fs::create_dir_all(mount.join("data/deep/er")).unwrap();
    std::fs::write(mount.join("data/a.csv"), "x,y\n1,2\n").unwrap();
    std::fs::write(
        mount.join("data/deep/er/blob"),
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(mount.join("empty"), "").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", mount.join("outside-link")).unwrap();
    let before = snapshot(&mount);

    let backup = home.dir.path().join("backup.tar.gz");
    let out = home.ok(&["mount", "export", &app, backup.to_str().unwrap()]);
    assert!(stderr(&out).contains("exported 3 files and 3 directories"), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped outside-link"), "{}", stderr(&out));
    // GNU tar reads it: slipway writes standard archives.
    let listing = Command::new("tar").arg("tzf").arg(&backup).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(names.lines().any(|l| l == "data/deep/er/blob"), "{names}");
    assert!(!names.contains("outside-link"), "{names}");
    // A .tar name gives a plain tar.
    let plain = home.dir.path().join("backup.tar");
    home.ok(&["mount", "export", &app, plain.to_str().unwrap(), "--path", "data"]);
    assert_eq!(&std::fs::read(&plain).unwrap()[257..262], b"ustar");

    // The backup restores the same bytes after a disable deleted everything.
    home.ok(&["mount", "disable", &app, "--confirm", &app]);
    assert!(home.run_env(SOFT, &["mount", "enable", &app, "--size", "64M"]).status.success());
    let out = home.ok(&["mount", "import", &app, backup.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["files"].as_u64(), report["dirs"].as_u64()), (Some(3), Some(3)), "{report}");
    let restored: Vec<_> =
        snapshot(&mount).into_iter().filter(|(p, _)| p != Path::new("outside-link")).collect();
    let expected: Vec<_> = before.into_iter().filter(|(p, _)| p != Path::new("outside-link")).collect();
    assert_eq!(restored, expected);

    // Piped: export of a directory to stdout, imported into another directory from stdin.
    let mut export =
        home.cmd(&["mount", "export", &app, "--path", "data/deep"]).stdout(Stdio::piped()).spawn().unwrap();
    let piped = export.stdout.take().unwrap();
    let import = home.cmd(&["mount", "import", &app, "-", "copy"]).stdin(piped).output().unwrap();
    assert!(export.wait().unwrap().success());
    assert!(import.status.success(), "{}", stderr(&import));
    assert_eq!(
        std::fs::read(mount.join("copy/er/blob")).unwrap(),
        std::fs::read(mount.join("data/deep/er/blob")).unwrap()
    );

    // An archive made by GNU tar from a local folder (members start with ./) imports too.
    let local = home.dir.path().join("local");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("sub/run.sh"), "#!/bin/bash\necho hi\n").unwrap();
    std::fs::set_permissions(local.join("sub/run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o4775))
        .unwrap();
    let gnu = home.dir.path().join("gnu.tgz");
    assert!(
        Command::new("tar").arg("-C").arg(&local).arg("-czf").arg(&gnu).arg(".").status().unwrap().success()
    );
    home.ok(&["mount", "import", &app, gnu.to_str().unwrap(), "tools"]);
    let mode = std::fs::metadata(mount.join("tools/sub/run.sh")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777, 0o755, "exec kept, setuid dropped");
}

#[test]
fn hostile_archives_are_refused_or_defused_and_nothing_outside_is_touched() {
    let home = TestHome::new();
    let app = soft_app(&home, "64M");
    let mount = home.mount_dir(&app);
    let outside = home.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "keep me").unwrap();
    std::fs::write(mount.join("keep.txt"), "mine").unwrap();
    // Planted by an app process: a link out, at a name the archive will write.
    std::os::unix::fs::symlink(outside.join("secret"), mount.join("conf")).unwrap();
    std::os::unix::fs::symlink(&outside, mount.join("data")).unwrap();
    let o = outside.display();

    // Refused outright: exit 2, and not even the good members land.
    let refused = [
        ("dotdot.tgz", "add('good.txt'); add('../escape.txt')".to_owned(), "climbs out"),
        ("deep-dotdot.tar", "add('good.txt'); add('a/b/../../../escape.txt')".to_owned(), "climbs out"),
        ("absolute.tar", format!("add('good.txt'); add('{o}/abs.txt')"), "absolute path"),
        ("into-link.tar", "add('data/owned.txt')".to_owned(), "is a file or symlink in the mount"),
        (
            "file-over-dir.tar",
            "add('sub/x'); add('keep.txt/y')".to_owned(),
            "is a file or symlink in the mount",
        ),
    ];
    for (name, members, says) in refused {
        let before = snapshot(&mount);
        let archive = home.dir.path().join(name);
        craft(&archive, &members);
        let out = home.run(&["mount", "import", &app, archive.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(says) && stderr(&out).contains("nothing was imported"),
            "{name}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(&mount), before, "{name} changed the mount");
    }

    // Defused: links and devices are skipped; a planted symlink is replaced, not written through.
    let archive = home.dir.path().join("links.tar");
    craft(
        &archive,
        &format!(
            "add('link', kind=tarfile.SYMTYPE, link='{o}'); add('link/through.txt')\n\
             add('hard', kind=tarfile.LNKTYPE, link='{o}/secret'); add('dev', kind=tarfile.CHRTYPE)\n\
             add('conf', b'new settings\\n')"
        ),
    );
    let out = home.run(&["mount", "import", &app, archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for skipped in ["skipped link", "skipped hard", "skipped dev"] {
        assert!(stderr(&out).contains(skipped), "{}", stderr(&out));
    }
    assert!(std::fs::symlink_metadata(mount.join("link")).unwrap().is_dir(), "link/ is a real directory");
    assert!(
        std::fs::symlink_metadata(mount.join("conf")).unwrap().is_file(),
        "the planted link was replaced"
    );
    assert_eq!(std::fs::read_to_string(mount.join("conf")).unwrap(), "new settings\n");
    assert!(!mount.join("hard").exists() && !mount.join("dev").exists());

    let names: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("secret")], "nothing was created outside");
    assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "keep me");
    assert!(!home.dir.path().join("escape.txt").exists() && !Path::new("/escape.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&mount)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".slipway"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn broken_or_too_large_archives_change_nothing() {
    let home = TestHome::new();
    let app = soft_app(&home, "16M");
    let mount = home.mount_dir(&app);
    std::fs::write(mount.join("old.bin"), vec![1u8; 6 << 20]).unwrap();

    // 4 files of 3 MiB: 12 MiB more does not fit beside 6 MiB in 16 MiB.
    let big = home.dir.path().join("big.tgz");
    craft(&big, "for i in range(4): add(f'part{i}', bytes([i]) * (3 << 20))");
    let before = snapshot(&mount);
    let out = home.run(&["mount", "import", &app, big.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("16.0 MiB limit"), "{}", stderr(&out));
    assert_eq!(snapshot(&mount), before, "a refused import wrote nothing");

    // Replacing a file counts its old size as freed: a same-sized restore fits.
    let same = home.dir.path().join("same.tar");
    craft(&same, "add('old.bin', bytes([9]) * (6 << 20))");
    home.ok(&["mount", "import", &app, same.to_str().unwrap()]);
    assert_eq!(std::fs::read(mount.join("old.bin")).unwrap(), vec![9u8; 6 << 20]);

    // Truncated, garbage or empty input: exit 2, and the members read before the break are gone too.
    let whole = home.dir.path().join("whole.tar");
    craft(&whole, "add('first.txt'); add('second.bin', b'z' * 200000)");
    let cut = home.dir.path().join("cut.tar");
    std::fs::write(&cut, &std::fs::read(&whole).unwrap()[..100_000]).unwrap();
    let garbage = home.dir.path().join("garbage.tgz");
    std::fs::write(&garbage, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    let empty = home.dir.path().join("empty.tar");
    std::fs::write(&empty, "").unwrap();
    let before = snapshot(&mount);
    for bad in [&cut, &garbage, &empty] {
        let out = home.run(&["mount", "import", &app, bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}: {}", bad.display(), stderr(&out));
        assert!(stderr(&out).contains("not a readable tar"), "{}", stderr(&out));
        assert_eq!(snapshot(&mount), before, "{} changed the mount", bad.display());
    }
    let missing = home.run(&["mount", "import", &app, "/nonexistent/backup.tgz"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));

    // An export into a directory that does not exist fails cleanly; to a pipe it is gzip.
    let out = home.run(&["mount", "export", &app, "/nonexistent/dir/backup.tgz"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/dir"), "{}", stderr(&out));
    let mut child = home.cmd(&["mount", "export", &app]).stdout(Stdio::piped()).spawn().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "stdout gets gzip");
}

#[test]
fn an_import_past_a_hard_limit_fails_with_enospc_and_leaves_nothing() {
    require_hard!();
    let home = TestHome::new();
    let app = home.create_app();
    home.ok(&["mount", "enable", &app, "--size", "64M"]);
    let mount = home.mount_dir(&app);
    std::fs::write(mount.join("keep.txt"), "mine").unwrap();
    let big = home.dir.path().join("big.tar");
    craft(&big, "for i in range(8): add(f'part{i}', bytes([i]) * (10 << 20))");
    let before = snapshot(&mount);
    let out = home.run(&["mount", "import", &app, big.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is full"), "{}", stderr(&out));
    assert_eq!(snapshot(&mount), before, "the staged members were removed");
}
