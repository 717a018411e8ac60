//! Test harness: a throwaway slipway home, git repositories made from fixtures, and the real
//! binary. Everything gets random names and is torn down in Drop, so tests run in parallel.
#![allow(dead_code, unreachable_pub, clippy::similar_names)]
#![allow(clippy::unwrap_used)]

pub mod require;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_slipway");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique app name for this test process.
pub fn app_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps").join(name)
}

/// A slipway home that destroys its apps (and their supervisors) when dropped.
pub struct Slipway {
    pub home: tempfile::TempDir,
    apps: std::cell::RefCell<Vec<String>>,
}

impl Slipway {
    pub fn new() -> Self {
        Self {
            home: tempfile::Builder::new().prefix("slipway-test").tempdir().unwrap(),
            apps: std::cell::RefCell::default(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--home").arg(self.home.path()).env_remove("SLIPWAY_HOME");
        c
    }

    /// Run and return the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and insist on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "slipway {args:?} failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Destroy `app` when the test ends.
    pub fn track(&self, app: &str) {
        self.apps.borrow_mut().push(app.to_owned());
    }

    /// Create an app with its mount enabled.
    pub fn app(&self, prefix: &str) -> String {
        let app = app_name(prefix);
        self.ok(&["apps", "create", &app]);
        self.apps.borrow_mut().push(app.clone());
        self.ok(&["mount", "enable", &app, "--size", "256M"]);
        app
    }

    pub fn mount_dir(&self, app: &str) -> PathBuf {
        self.home.path().join("apps").join(app).join("mount")
    }

    pub fn ps(&self, app: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["ps", app, "--json"])).unwrap()
    }

    pub fn web_port(&self, app: &str) -> u16 {
        let ps = self.ps(app);
        let web = ps["instances"].as_array().unwrap().iter().find(|i| i["ptype"] == "web").expect("no web");
        u16::try_from(web["port"].as_u64().unwrap()).unwrap()
    }

    /// Run `slipway ARGS`, wait up to `timeout` for a stderr line containing `marker`, wait
    /// `settle` more, then SIGKILL that one process, as a crash or `kill -9` would.
    pub fn kill_at(&self, args: &[&str], marker: &str, timeout: Duration, settle: Duration) {
        use std::io::BufRead;
        let mut child = self
            .cmd()
            .args(args)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = marker.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(&wanted) {
                    let _ = tx.send(());
                }
            }
        });
        let seen = rx.recv_timeout(timeout);
        std::thread::sleep(settle);
        child.kill().unwrap(); // SIGKILL to this one pid
        child.wait().unwrap();
        assert!(seen.is_ok(), "slipway {args:?} never printed {marker:?}");
    }

    /// The app's bare repository, which `git push` deploys through.
    pub fn git_repo(&self, app: &str) -> PathBuf {
        self.home.path().join("git").join(format!("{app}.git"))
    }

    /// The port of the app's stable address, from the `url:` line of `apps info`.
    pub fn router_port(&self, app: &str) -> u16 {
        let info = self.ok(&["apps", "info", app]);
        let url = info.lines().find_map(|l| l.strip_prefix("url:")).expect("apps info shows the url");
        url.trim().trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn release(&self, app: &str) -> String {
        self.ps(app)["release"].as_str().unwrap().to_owned()
    }
}

impl Drop for Slipway {
    fn drop(&mut self) {
        for app in self.apps.borrow().iter() {
            let _ = self.cmd().args(["apps", "destroy", app, "--confirm", app]).output();
        }
        // Belt and braces: no supervisor or router of this home may outlive the test.
        for helper in ["__supervise", "__route"] {
            let _ = Command::new("pkill")
                .arg("-9")
                .arg("-f")
                .arg(format!("{} {helper}", self.home.path().display()))
                .status();
        }
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A git repository in a temp dir, seeded from a fixture.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn from_fixture(name: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("slipway-repo").tempdir().unwrap();
        copy_dir(&fixture(name), dir.path());
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit("initial");
        repo
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args(["-c", "user.email=test@example.com", "-c", "user.name=test"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Adds the app's repository in `s` as the remote `slipway`.
    pub fn add_slipway_remote(&self, s: &Slipway, app: &str) {
        self.git(&["remote", "add", "slipway", s.git_repo(app).to_str().unwrap()]);
    }

    /// `git push slipway <refspec>`, whatever its outcome.
    pub fn push(&self, refspec: &str) -> Output {
        Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args(["push", "slipway", refspec])
            .output()
            .unwrap()
    }

    pub fn write(&self, file: &str, content: &str) {
        let p = self.dir.path().join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// GET / on 127.0.0.1:port; the status code and body.
/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 exchange on an open connection, which stays open for the next: sends
/// `GET path` with `extra` header lines (each ending in CRLF) and reads one response by its
/// Content-Length. Returns the status and body.
pub fn exchange(stream: &mut TcpStream, path: &str, extra: &str) -> std::io::Result<(u16, String)> {
    use std::io::BufRead;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` on a new connection to 127.0.0.1:`port`.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    exchange(&mut s, path, "Connection: close\r\n")
}

pub fn http_get(port: u16) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((code, body))
}

/// The stack image the docker tests build on.
pub const STACK: &str = "slipway/stack:bookworm";
/// The stack recipe the tests need (`slipway.stack.version`, src/runtime/docker/stack.rs).
pub const STACK_VERSION: &str = "2";

/// Whether the Docker engine is here, importing the stack image first if it is missing. The
/// import takes a file lock shared with every other docker test (and the library's engine
/// tests), so parallel tests on a fresh machine import once.
pub fn docker_ready(sw: &Slipway) -> bool {
    const SOCKET: &str = "/var/run/docker.sock";
    if std::env::var_os("DOCKER_HOST").is_none() && !Path::new(SOCKET).exists() {
        require::skip(require::Need::Docker, &format!("no Docker engine ({SOCKET} missing)"));
        return false;
    }
    // A stack made by an earlier recipe (without python3-venv) is imported again.
    let have = || {
        Command::new("docker")
            .args(["image", "inspect", "-f", "{{index .Config.Labels \"slipway.stack.version\"}}", STACK])
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == STACK_VERSION)
    };
    match have() {
        Err(e) => {
            require::skip(require::Need::Docker, &format!("no docker CLI ({e})"));
            false
        }
        Ok(true) => true,
        Ok(false) => {
            let lock =
                std::fs::File::create(std::env::temp_dir().join("slipway-test-stack-import.lock")).unwrap();
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
            if !have().unwrap_or(false) {
                sw.ok(&["stack", "import"]);
            }
            true
        }
    }
}

/// SIGKILL one process. Never shell out to kill(1) for this: procps parses `kill -9 -123`
/// as options and can end up signalling every process on the machine.
pub fn sigkill(pid: u64) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    assert!(pid.as_raw_nonzero().get() > 1, "refusing to signal pid {pid:?}");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// SIGKILL a whole process group.
pub fn sigkill_group(pgid: u64) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pgid).unwrap()).unwrap();
    assert!(pid.as_raw_nonzero().get() > 1, "refusing to signal group {pid:?}");
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Slipway {
    /// Create an app with extra `apps create` flags (e.g. `--runtime docker`) and its mount
    /// enabled; destroyed on drop like [`Slipway::app`]'s.
    pub fn app_with(&self, prefix: &str, create_flags: &[&str]) -> String {
        let app = app_name(prefix);
        let mut args = vec!["apps", "create", app.as_str()];
        args.extend_from_slice(create_flags);
        self.ok(&args);
        self.apps.borrow_mut().push(app.clone());
        self.ok(&["mount", "enable", &app, "--size", "256M"]);
        app
    }
}
