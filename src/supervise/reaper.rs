//! Processes that escape their release. A process group kill misses a process that left its
//! group (`setsid`, a double fork): it is reparented to init and outlives its release. A
//! supervisor, and the CLI while it runs predeploy or `run`, therefore make themselves a
//! child subreaper (`PR_SET_CHILD_SUBREAPER`): every orphan below them is reparented to them
//! instead, stays their child, and is killed and reaped when the release (or the script) ends.
//!
//! Only our own children are ever signalled: an unreaped child keeps its pid, so the pid cannot
//! name another process between the look-up and the signal. The CLI has children of its own
//! (a `git push` deploy's lock watcher, helpers it started), so it kills only the children
//! that started after the script did: every descendant of the script did, and nothing else
//! of the CLI's starts while it waits for the script.
//!
//! The App Manager runs deploys in its own process while other requests start children of
//! their own (`git http-backend`, another app's build or script). It says so with
//! [`share_process`], and a sweep after a script then takes only what belongs to the script
//! ([`ScriptMark`]): its cgroup, its process group, or the mark in its environment.

use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, getpid, kill_process, waitpid};

/// Whether this process runs other work beside a script ([`share_process`]).
static SHARED: AtomicBool = AtomicBool::new(false);

/// Say that this process starts children for other work while a script runs (the App
/// Manager): sweeps after a script then take only the script's own ([`ScriptMark`]).
pub fn share_process() {
    SHARED.store(true, Ordering::Relaxed);
}

/// The variable that marks a script's processes in their environment.
pub const MARK_VAR: &str = "SLIPWAY_SCRIPT_RUN";

/// How to tell a script's processes from the rest of a shared process's children: what the
/// kernel keeps for them even after they leave the script's process group.
#[derive(Debug, Clone)]
pub struct ScriptMark {
    /// The script's process group.
    pub pgid: u32,
    /// `MARK_VAR=<value>` in the environment of the script and what it starts.
    pub value: String,
    /// The script's cgroup (cgroup v2), which nothing it starts can leave.
    pub cgroup: Option<std::path::PathBuf>,
}

impl ScriptMark {
    /// A fresh mark for a script about to start (its group is filled in once it has).
    pub fn new(cgroup: Option<&std::path::Path>) -> Self {
        let nanos = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let value = format!("{}.{}.{}", std::process::id(), nanos.tv_sec, nanos.tv_nsec);
        Self { pgid: 0, value, cgroup: cgroup.map(std::path::Path::to_path_buf) }
    }

    /// Whether child `pid` (with `stat`) belongs to the script.
    fn owns(&self, pid: u32, stat: &Stat) -> bool {
        if stat.pgrp == self.pgid {
            return true;
        }
        if let Some(cg) = &self.cgroup
            && let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            && let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::"))
            && cg.ends_with(rel.trim_start_matches('/'))
            && rel.len() > 1
        {
            return true;
        }
        let want = format!("{MARK_VAR}={}", self.value);
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
    }
}

/// Make this process the subreaper of everything it starts from now on.
pub fn become_subreaper() {
    if let Err(e) = rustix::process::set_child_subreaper(Some(getpid())) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphans of scripts may outlive them");
    }
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    ppid: u32,
    pgrp: u32,
    session: u32,
    /// Clock ticks after boot at which it started.
    started: u64,
}

/// Parse one `/proc/PID/stat` line. The command name (field 2, in parentheses) may hold
/// spaces and parentheses, so fields are counted from the last `)`: state is field 3, ppid 4,
/// starttime 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// Clock ticks since boot now, on the clock of `/proc/PID/stat`'s start times.
pub fn ticks_now() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    // Rounded down, so a child started in the same tick still counts as started since.
    secs * hz + nanos * hz / 1_000_000_000
}

/// Our children (adopted orphans included), but for `keep`, those started before `since`, and
/// those `mark` does not own, with whether each is a zombie.
fn children(keep: &[u32], since: Option<u64>, mark: Option<&ScriptMark>) -> Vec<(Pid, bool)> {
    let me = u32::try_from(getpid().as_raw_nonzero().get()).unwrap_or(0);
    // The kernel's list of our children reads a few small files; scanning every process of
    // the machine cost a deploy ~20 ms. Without CONFIG_PROC_CHILDREN, scan as before.
    let candidates = child_pids().unwrap_or_else(all_pids);
    candidates
        .into_iter()
        .filter_map(|pid| {
            let st = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            let ours = st.ppid == me
                && !keep.contains(&pid)
                && since.is_none_or(|t| st.started >= t)
                && mark.is_none_or(|m| m.owns(pid, &st));
            ours.then(|| Some((Pid::from_raw(i32::try_from(pid).ok()?)?, st.state == 'Z')))?
        })
        .collect()
}

/// Our children's pids, from each of our threads' `children` file (an orphan is reparented to
/// one of the subreaper's threads). None if the kernel has no such files.
fn child_pids() -> Option<Vec<u32>> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => pids.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok())),
            // A thread that ended since the listing has no children left to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && task.path().exists() => return None,
            Err(_) => {}
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Some(pids)
}

/// Every pid on the machine.
fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// Reap adopted children that have exited, but for `keep` (children whose status someone else
/// waits for), so that daemons an app starts and ends leave no zombies behind.
pub fn reap_exited(keep: &[u32]) {
    for (pid, zombie) in children(keep, None, None) {
        if zombie {
            let _ = waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

/// Reap exited children that were adopted from another session: helpers (a supervisor, a
/// router) that a `git push` hook's `slipway __receive` started, reparented to a long-lived
/// subreaper (the App Manager) when the hook exited. Children of our own session are left to
/// whoever waits for them (a script's runner, a tokio child), whose status this must not take.
pub fn reap_adopted() {
    let me = getpid();
    // Read from /proc, not getsid(2): in a pid namespace whose session leader lives outside it
    // (a CI runner's container) our session id is 0, which rustix's Pid cannot hold.
    let Some(own) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|t| parse_stat(&t)) else {
        return;
    };
    let keep = crate::detached::spawned();
    for pid in child_pids().unwrap_or_else(all_pids) {
        let Some(st) = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|t| parse_stat(&t))
        else {
            continue;
        };
        let adopted = st.state == 'Z'
            && i32::try_from(st.ppid).ok() == Some(me.as_raw_nonzero().get())
            && st.session != own.session
            && !keep.contains(&pid);
        if adopted && let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = waitpid(Some(p), WaitOptions::NOHANG);
        }
    }
}

/// SIGKILL and reap every child started at or after `since` (clock ticks from [`ticks_now`];
/// None: every child), repeating as the orphans of each killed child are reparented to us,
/// until none is left or `patience` runs out. Returns how many signals were sent.
pub fn kill_children(since: Option<u64>, patience: Duration) -> usize {
    sweep(since, None, patience)
}

/// After a script: [`kill_children`] since it started, but in a shared process
/// ([`share_process`]) only the children `mark` says are the script's.
pub fn kill_script_children(since: u64, mark: &ScriptMark, patience: Duration) -> usize {
    sweep(Some(since), SHARED.load(Ordering::Relaxed).then_some(mark), patience)
}

fn sweep(since: Option<u64>, mark: Option<&ScriptMark>, patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    let mut killed = 0;
    // Helpers this process started (a supervisor, a router) are its children too.
    let keep = crate::detached::spawned();
    loop {
        let left = children(&keep, since, mark);
        if left.is_empty() || Instant::now() >= deadline {
            return killed;
        }
        for (pid, zombie) in left {
            if !zombie {
                let _ = kill_process(pid, Signal::KILL);
                killed += 1;
            }
            let _ = waitpid(Some(pid), WaitOptions::NOHANG);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (we ird) (name)) S 17 4242 4242 0 -1 4194560 100 0 0 0";
        let line = format!("{line} 0 0 0 0 20 0 1 0 98765 0 0");
        assert_eq!(
            parse_stat(&line),
            Some(Stat { state: 'S', ppid: 17, pgrp: 4242, session: 4242, started: 98765 })
        );
        assert_eq!(parse_stat("1 (init) Z 0 1 1"), None, "too short");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_kernels_list_of_children_names_a_child_we_started() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let listed = child_pids().map(|pids| pids.contains(&pid));
        let found =
            children(&[], None, None).iter().any(|(p, _)| p.as_raw_nonzero().get().cast_unsigned() == pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_ne!(listed, Some(false), "the children files miss pid {pid}");
        assert!(found, "children() misses pid {pid}");
    }

    #[test]
    fn a_scripts_mark_owns_what_carries_it_and_nothing_else() {
        let mark = ScriptMark::new(None);
        let spawn = |marked: bool| {
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg("5");
            if marked {
                cmd.env(MARK_VAR, &mark.value);
            }
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.spawn().unwrap()
        };
        let (mut marked, mut other) = (spawn(true), spawn(false));
        let owned = |c: &std::process::Child| {
            let st = parse_stat(&std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap()).unwrap();
            mark.owns(c.id(), &st)
        };
        let (a, b) = (owned(&marked), owned(&other));
        // The script's own group counts too, whatever its environment.
        let in_group = ScriptMark { pgid: other.id(), ..mark.clone() };
        let st = parse_stat(&std::fs::read_to_string(format!("/proc/{}/stat", other.id())).unwrap()).unwrap();
        let c = in_group.owns(other.id(), &st);
        for child in [&mut marked, &mut other] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(a, "the marked child is the script's");
        assert!(!b, "an unmarked child of another group is not");
        assert!(c, "a child in the script's group is");
    }

    #[test]
    fn our_own_start_time_is_not_after_now() {
        let st = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(st.started <= ticks_now());
    }
}
