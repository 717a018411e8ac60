//! Detached helper processes of slipway itself: a release's supervisor and an app's router.
//! Each is a `slipway` subcommand started in a new session (setsid), so it outlives the
//! command that started it and Ctrl-C on that command does not reach it. Each holds a lock
//! file while it lives, which is how its liveness is told without pid races.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Pid;

/// How long a starting helper waits for its lock before concluding that a rival holds it.
/// Liveness probes hold the lock for microseconds; a rival holds it for its whole life.
pub const CLAIM_PATIENCE: Duration = Duration::from_millis(300);

/// Start `slipway --home HOME ARGS...` detached, its output appended to `log`. Returns once
/// `is_up` says so, or fails if it exits first or is not up within 10 s.
pub fn spawn(home: &Path, args: &[OsString], log: &Path, is_up: impl Fn(Pid) -> bool) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let out = OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home").arg(home).args(args);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // A helper lives for days; it must not hold (or hand its processes) a descriptor the
    // calling shell left open.
    crate::supervise::process::close_inherited_fds(&mut cmd);
    // SAFETY: setsid is async-signal-safe. A new session detaches the process from the CLI's
    // terminal and process group, so Ctrl-C on the CLI or its exit does not reach it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    reap_exited();
    let mut child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        if pid.is_some_and(&is_up) {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(std::io::Error::other(format!("exited at start ({status}); see {}", log.display())));
        }
        if Instant::now() >= deadline {
            break Err(std::io::Error::other("did not start within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    lock_spawned().push(child);
    outcome
}

/// Helpers this process started and has not reaped: its children, which a subreaper sweeping
/// up after a script must leave alone.
static SPAWNED: std::sync::Mutex<Vec<Child>> = std::sync::Mutex::new(Vec::new());

fn lock_spawned() -> std::sync::MutexGuard<'static, Vec<Child>> {
    SPAWNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The pids of the helpers this process started.
pub fn spawned() -> Vec<u32> {
    lock_spawned().iter().map(Child::id).collect()
}

/// Reap the helpers that have exited (a retired release's supervisor). A CLI command exits
/// before that matters; the App Manager lives for days and starts a supervisor per deploy,
/// so it calls this now and then, lest each leave a zombie behind.
pub fn reap_exited() {
    lock_spawned().retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}

/// The pid recorded in `path` (never 0 or 1).
pub fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    Pid::from_raw(text.trim().parse::<i32>().ok().filter(|p| *p > 1)?)
}
