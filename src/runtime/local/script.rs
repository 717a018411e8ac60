//! predeploy and postdeploy on the local runtime: `bash <script>` in the release's app folder
//! with the mount attached, output streamed line by line, under a timeout. A script that
//! leaves background jobs behind cannot hold the deploy open: its process group goes with it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::plan::ScriptSpec;
use crate::supervise::process::{ProcessEnv, signal_group};
use crate::supervise::{cgroup, reaper};

/// Stop the script a killed deploy left running in this release, if any.
pub fn kill_leftover(pgid_file: &Path) {
    if let Some(pgid) = std::fs::read_to_string(pgid_file).ok().and_then(|s| s.trim().parse().ok()) {
        signal_group(pgid, Signal::KILL);
    }
}

enum Event {
    Line(String),
    Exit(std::io::Result<std::process::ExitStatus>),
}

/// Lines of output kept to show when a script fails.
const TAIL_LINES: usize = 20;

/// Why a script failed. Each carries the last lines of its output.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script {path} not found in the commit; add it or fix the path in project.toml")]
    Missing { path: String },
    #[error("script {path} exited with status {code}; its last output:\n{tail}")]
    Failed { path: String, code: i32, tail: String },
    #[error("script {path} was killed by signal {signal}; its last output:\n{tail}")]
    Killed { path: String, signal: i32, tail: String },
    #[error("script {path} did not finish within {}; its last output:\n{tail}", humantime::format_duration(*.timeout))]
    Timeout { path: String, timeout: Duration, tail: String },
    #[error("cannot start script {path}: {why}")]
    Spawn { path: String, why: String },
}

/// Run `spec` and pass each output line to `on_line`.
/// `pgid_file`, if given, holds the script's process group while it runs.
pub fn run(
    env: &ProcessEnv,
    spec: &ScriptSpec,
    pgid_file: Option<&Path>,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ScriptError> {
    run_in(env, spec, pgid_file, None, on_line)
}

/// Like [`run`], in the cgroup `cgroup` if given: what the script leaves behind when the CLI is
/// killed with -9 (and its subreaper with it) is then killed when the release is removed.
pub(super) fn run_in(
    env: &ProcessEnv,
    spec: &ScriptSpec,
    pgid_file: Option<&Path>,
    cgroup: Option<&Path>,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ScriptError> {
    let path = spec.shown();
    if spec.command.is_none() && !env.cwd.join(&spec.path).is_file() {
        return Err(ScriptError::Missing { path });
    }
    // Orphans of the script (a double fork, `setsid`) are reparented to us, not to init, and
    // are killed when it ends: see `reaper`.
    reaper::become_subreaper();
    let since = reaper::ticks_now();
    let mut cmd = script_command(env, spec);
    // What the sweep below may take, in a process that runs other work too (the App Manager).
    let mut mark = reaper::ScriptMark::new(cgroup);
    cmd.env(reaper::MARK_VAR, &mark.value);
    if let Some(cg) = cgroup {
        cgroup::join_on_exec(&mut cmd, cg);
    }
    let mut child = cmd.spawn().map_err(|e| ScriptError::Spawn {
        path: path.clone(),
        why: env.explain_spawn_error(&format!("bash {path}"), &e),
    })?;
    let pgid = child.id();
    mark.pgid = pgid;
    if let Some(f) = pgid_file {
        let _ = std::fs::write(f, pgid.to_string());
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let readers: Vec<_> = [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
        child.stderr.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|out| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let _ = tx.send(Event::Line(String::from_utf8_lossy(&buf).trim_end().to_owned()));
                buf.clear();
            }
        })
    })
    .collect();
    // Waiting in a thread lets the loop below sleep until the next line or the exit, with no
    // polling delay added to every deploy.
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(Event::Exit(status));
    });
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut keep = |line: String, on_line: &mut dyn FnMut(&str)| {
        on_line(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let deadline = Instant::now() + spec.timeout;
    let mut exit = None;
    let mut timed_out = false;
    while exit.is_none() {
        let wait = if timed_out {
            Duration::from_millis(500)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Line(line)) => keep(line, on_line),
            Ok(Event::Exit(status)) => exit = Some(status),
            Err(mpsc::RecvTimeoutError::Timeout) if !timed_out => {
                timed_out = true;
                signal_group(pgid, Signal::TERM);
            }
            Err(_) => break,
        }
    }
    // Background jobs of the script would keep its pipes open and the readers blocked; so
    // would a process that left the group, which the subreaper catches.
    signal_group(pgid, Signal::KILL);
    reaper::kill_script_children(since, &mark, Duration::from_secs(5));
    if let Some(cg) = cgroup {
        cgroup::remove(cg);
    }
    for r in readers {
        let _ = r.join();
    }
    while exit.is_none() {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Line(line)) => keep(line, on_line),
            Ok(Event::Exit(status)) => exit = Some(status),
            Err(_) => break,
        }
    }
    while let Ok(event) = rx.try_recv() {
        if let Event::Line(line) = event {
            keep(line, on_line);
        }
    }
    if let Some(f) = pgid_file {
        let _ = std::fs::remove_file(f);
    }
    let tail = tail.into_iter().collect::<Vec<_>>().join("\n");
    let status = exit.and_then(Result::ok).filter(|_| !timed_out);
    outcome(path, status, spec.timeout, tail)
}

/// `bash` running the script file, or the command line of a `release:` phase.
fn script_command(env: &ProcessEnv, spec: &ScriptSpec) -> std::process::Command {
    if let Some(line) = &spec.command {
        return env.command(line, &[], true);
    }
    let mut cmd = env.command("exec bash \"$0\"", &[], true);
    cmd.arg0_placeholder(&spec.path);
    cmd
}

/// What the script's exit (None: it timed out) means.
fn outcome(
    path: String,
    exit: Option<std::process::ExitStatus>,
    timeout: Duration,
    tail: String,
) -> Result<(), ScriptError> {
    let Some(status) = exit else {
        return Err(ScriptError::Timeout { path, timeout, tail });
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(ScriptError::Failed { path, code, tail }),
        (None, signal) => Err(ScriptError::Killed { path, signal: signal.unwrap_or(0), tail }),
    }
}

trait Arg0 {
    fn arg0_placeholder(&mut self, script: &str);
}

impl Arg0 for std::process::Command {
    /// `bash -c 'exec bash "$0"' <script>` passes the script path as `$0` without quoting it
    /// into the command string.
    fn arg0_placeholder(&mut self, script: &str) {
        self.arg(script);
    }
}
