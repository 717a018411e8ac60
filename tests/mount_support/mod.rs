//! Shared by the `mount_*` tests: a temp slipway home with apps, driven through the real
//! binary, whose loop mounts are undone in `Drop` so that nothing leaks.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

#[path = "../common/require.rs"]
pub mod require;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A temp home; every app created in it is unmounted and detached on drop.
pub struct TestHome {
    pub dir: tempfile::TempDir,
    apps: std::cell::RefCell<Vec<String>>,
}

impl TestHome {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), apps: std::cell::RefCell::new(Vec::new()) }
    }

    /// A new app with a random name, created the way `slipway apps create` writes it.
    pub fn create_app(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name =
            format!("t{:x}-{}-{:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), nanos % 0xfff);
        let state = self.dir.path().join("state").join(&name);
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(self.dir.path().join("apps").join(&name)).unwrap();
        std::fs::write(
            state.join("app.json"),
            format!(r#"{{"name":"{name}","runtime":"local","created_at":0}}"#),
        )
        .unwrap();
        self.apps.borrow_mut().push(name.clone());
        name
    }

    /// A new app whose processes run as `nobody` (uid 65534), so that the app's side of a
    /// test runs as an unprivileged user; the home is made traversable for it.
    pub fn create_app_as_nobody(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = self.create_app();
        let record = self.dir.path().join("state").join(&name).join("app.json");
        std::fs::write(
            record,
            format!(
                r#"{{"name":"{name}","runtime":"local","created_at":0,"run_as":{{"user":"nobody","uid":{NOBODY},"gid":{NOBODY}}}}}"#
            ),
        )
        .unwrap();
        name
    }

    /// `slipway --home HOME args...`, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
        c.arg("--home").arg(self.dir.path()).args(args).env_remove("SLIPWAY_MOUNT_MODE");
        c
    }

    /// Run `slipway args...`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run `slipway args...` with extra environment.
    pub fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        c.envs(env.iter().copied());
        c.output().unwrap()
    }

    /// Run and insist on success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "slipway {args:?} failed: {}", stderr(&out));
        out
    }

    pub fn mount_dir(&self, app: &str) -> PathBuf {
        self.dir.path().join("apps").join(app).join("mount")
    }

    pub fn image(&self, app: &str) -> PathBuf {
        self.dir.path().join("state").join(app).join("mount.img")
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        for app in self.apps.borrow().iter() {
            let dir = self.mount_dir(app);
            let _ = Command::new("umount").arg("-l").arg(&dir).output();
            // Loop devices are autoclear, but detach any left by a failed step.
            if let Ok(out) = Command::new("losetup").arg("-j").arg(self.image(app)).output() {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(dev) = line.split(':').next() {
                        let _ = Command::new("losetup").arg("-d").arg(dev).output();
                    }
                }
            }
        }
    }
}

/// The uid and gid of `nobody`, as which the app side of a test runs.
pub const NOBODY: u32 = 65534;

/// `bash -c script` as `nobody`, not yet run.
pub fn as_nobody(script: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "bash", "-c", script]);
    c
}

/// Whether something is mounted at `dir` (its device differs from its parent's).
pub fn is_mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::symlink_metadata(dir).map(|m| m.dev());
    let parent = std::fs::metadata(dir.parent().unwrap()).map(|m| m.dev());
    matches!((own, parent), (Ok(a), Ok(b)) if a != b)
}

/// A process of the app's user appending numbered lines to `log` in the mount, one open and
/// close per line, retrying a line until its write succeeds; stopped by [`Worker::finish`].
pub struct Worker {
    child: std::process::Child,
    stop: PathBuf,
    result: PathBuf,
}

impl Worker {
    pub fn start(home: &TestHome, app: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let scratch = home.dir.path().join(format!("worker-{app}"));
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (stop, result) = (scratch.join("stop"), scratch.join("result"));
        let script = format!(
            "i=0; fails=0; while [ ! -e '{stop}' ]; do \
               if echo \"$i\" 2>/dev/null >> '{log}'; then i=$((i+1)); else fails=$((fails+1)); fi; \
               sleep 0.005; done; echo \"$i $fails\" > '{result}'",
            stop = stop.display(),
            log = home.mount_dir(app).join("log").display(),
            result = result.display()
        );
        let child = as_nobody(&script).spawn().unwrap();
        Self { child, stop, result }
    }

    /// Stop it; returns (lines written, writes that failed and were retried).
    pub fn finish(mut self) -> (u64, u64) {
        std::fs::write(&self.stop, b"").unwrap();
        self.child.wait().unwrap();
        let text = std::fs::read_to_string(&self.result).unwrap();
        let mut parts = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Assert that `log` in the mount holds exactly the lines 0..n, each once, in order.
pub fn assert_every_line_kept(home: &TestHome, app: &str, n: u64) {
    let text = std::fs::read_to_string(home.mount_dir(app).join("log")).unwrap_or_default();
    let lines: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    let want: Vec<u64> = (0..n).collect();
    assert!(
        lines == want,
        "the worker wrote {n} lines; the mount holds {} ({:?}...)",
        lines.len(),
        &lines[..lines.len().min(5)]
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why hard-mode tests cannot run here, if they cannot.
pub fn hard_unavailable() -> Option<&'static str> {
    if !rustix_is_root() {
        return Some("not root");
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control");
    }
    if Command::new("mkfs.ext4").arg("-V").output().is_err() {
        return Some("no mkfs.ext4");
    }
    None
}

fn rustix_is_root() -> bool {
    // The test crate does not depend on rustix; `id -u` is enough here.
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Skip a hard-mode test with a printed reason.
#[macro_export]
macro_rules! require_hard {
    () => {
        if let Some(why) = mount_support::hard_unavailable() {
            mount_support::require::skip(
                mount_support::require::Need::Root,
                &format!("hard-limited mounts need root and loop devices ({why})"),
            );
            return;
        }
    };
}

/// The environment that makes `mount enable` soft-limited.
pub const SOFT: &[(&str, &str)] = &[("SLIPWAY_MOUNT_MODE", "soft")];

/// A new app with a soft-limited mount of `size`.
pub fn soft_app(home: &TestHome, size: &str) -> String {
    let app = home.create_app();
    let out = home.run_env(SOFT, &["mount", "enable", &app, "--size", size]);
    assert!(out.status.success(), "{}", stderr(&out));
    app
}

/// Bytes of every file under `dir`, by relative path, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().to_owned();
            if ft.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                stack.push(e.path());
            } else if ft.is_symlink() {
                out.push((rel, std::fs::read_link(e.path()).unwrap().into_os_string().into_encoded_bytes()));
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}
