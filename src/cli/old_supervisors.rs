//! Finding and stopping the supervisors an earlier slipway left running, for `apps migrate`.
//!
//! An earlier slipway kept a supervisor's pid and lock files in `apps/APP/releases/vN`, which
//! the app's user could rewrite: nothing there may be read. So the supervisors are found in
//! `/proc`, which only the kernel writes: a process of uid 0 whose command line is exactly
//! `slipway --home HOME __supervise APP vN` for this home and app (how `detached::spawn`
//! starts one). Each is pinned with a pidfd before it is checked, so the signal reaches the
//! process that was checked, never a stranger that got its pid meanwhile.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use crate::ids::{AppName, ReleaseId};

/// A supervisor of this home's app, pinned by its pidfd.
struct Found {
    pid: i32,
    /// The kernel's start time of the process, so a reused pid is never taken for it.
    start: u64,
    release: ReleaseId,
    pidfd: OwnedFd,
}

/// The release whose supervisor `argv` (a `/proc/PID/cmdline`, NUL-separated) is, if it is
/// exactly `<exe> --home <home> __supervise <app> <vN>` with `exe` named `exe_name`; with the
/// `--home` argument as given, for the caller to compare with its own home.
pub fn supervised_release(cmdline: &[u8], exe_name: &OsStr, app: &AppName) -> Option<(OsString, ReleaseId)> {
    let args: Vec<&[u8]> = cmdline.strip_suffix(b"\0")?.split(|b| *b == 0).collect();
    let [exe, flag, home, sub, name, release] = args.as_slice() else { return None };
    let named = Path::new(OsStr::from_bytes(exe)).file_name() == Some(exe_name);
    let shape = *flag == b"--home" && *sub == b"__supervise" && *name == app.as_str().as_bytes();
    if !named || !shape || home.is_empty() {
        return None;
    }
    let release = std::str::from_utf8(release).ok()?.parse().ok()?;
    Some((OsStr::from_bytes(home).to_owned(), release))
}

/// Whether a `/proc/PID/status` text is of a live process whose real and effective uid are 0.
pub fn is_live_root(status: &str) -> bool {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let zombie = field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X'));
    let uids: Vec<&str> = field("Uid:").map(|u| u.split_whitespace().take(2).collect()).unwrap_or_default();
    !zombie && uids == ["0", "0"]
}

/// The start time (field 22) of a `/proc/PID/stat` text. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Stop every supervisor of `app` in this home: SIGTERM, up to `grace` for them to stop their
/// processes, then SIGKILL. Returns the releases whose supervisors were found.
pub fn stop(home: &Path, app: &AppName, grace: Duration) -> anyhow::Result<Vec<ReleaseId>> {
    let found = find(home, app)?;
    for f in &found {
        // ESRCH: it exited since it was found.
        let _ = pidfd_send_signal(&f.pidfd, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while found.iter().any(alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for f in found.iter().filter(|f| alive(f)) {
        let _ = pidfd_send_signal(&f.pidfd, Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while found.iter().any(alive) {
        if Instant::now() > deadline {
            let pids: Vec<String> = found.iter().filter(|f| alive(f)).map(|f| f.pid.to_string()).collect();
            anyhow::bail!(
                "the earlier supervisors of {app} (pids {}) survived SIGKILL; nothing was changed. \
                 Run `slipway apps migrate {app}` again once they are gone",
                pids.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(found.iter().map(|f| f.release).collect())
}

fn find(home: &Path, app: &AppName) -> anyhow::Result<Vec<Found>> {
    let exe = std::env::current_exe().context("cannot find slipway's own path")?;
    let exe_name = exe.file_name().unwrap_or(OsStr::new("slipway")).to_owned();
    let ours = rustix::fs::stat(home).with_context(|| format!("cannot inspect {}", home.display()))?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot list /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Some(raw) = Pid::from_raw(pid).filter(|_| pid > 1) else { continue };
        // Pinned first: if the process exits and its pid is reused while we look, the
        // signals below go to the exited one (and fail), never to the newcomer.
        let Ok(pidfd) = pidfd_open(raw, PidfdFlags::empty()) else { continue };
        let dir = entry.path();
        let read = |name: &str| std::fs::read(dir.join(name)).ok();
        let Some(status) = read("status") else { continue };
        if !is_live_root(&String::from_utf8_lossy(&status)) {
            continue;
        }
        let Some((arg, release)) = read("cmdline").and_then(|c| supervised_release(&c, &exe_name, app))
        else {
            continue;
        };
        let Some(start) = read("stat").and_then(|s| start_time(&String::from_utf8_lossy(&s))) else {
            continue;
        };
        if same_dir(&dir, &arg, &ours) {
            found.push(Found { pid, start, release, pidfd });
        }
    }
    Ok(found)
}

/// Whether the `--home` argument of the process at `/proc/PID` (relative to its working
/// directory if relative) is the directory `ours`.
fn same_dir(proc_dir: &Path, arg: &OsStr, ours: &rustix::fs::Stat) -> bool {
    let path = if Path::new(arg).is_absolute() { PathBuf::from(arg) } else { proc_dir.join("cwd").join(arg) };
    rustix::fs::stat(&path).is_ok_and(|st| st.st_dev == ours.st_dev && st.st_ino == ours.st_ino)
}

fn alive(f: &Found) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", f.pid)).unwrap_or_default();
    let zombie = stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with(['Z', 'X']));
    start_time(&stat) == Some(f.start) && !zombie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        "demo".parse().unwrap()
    }

    #[test]
    fn only_the_exact_supervisor_command_line_of_this_app_matches() {
        let name = OsStr::new("slipway");
        let line = b"/usr/local/bin/slipway\0--home\0/var/lib/slipway\0__supervise\0demo\0v3\0";
        let (home, release) = supervised_release(line, name, &app()).unwrap();
        assert_eq!(home, OsStr::new("/var/lib/slipway"));
        assert_eq!(release.to_string(), "v3");
        for bad in [
            &b"/usr/local/bin/slipway\0--home\0/h\0__supervise\0other\0v3\0"[..],
            b"/usr/local/bin/slipway\0--home\0/h\0__supervise\0demo\0v3\0extra\0",
            b"/usr/local/bin/slipway\0--home\0/h\0__route\0demo\0v3\0",
            b"/bin/sleep\0--home\0/h\0__supervise\0demo\0v3\0",
            b"/usr/local/bin/slipway\0--home\0/h\0__supervise\0demo\0latest\0",
            b"/usr/local/bin/slipway --home /h __supervise demo v3",
            b"/usr/local/bin/slipway\0--home\0\0__supervise\0demo\0v3\0",
            b"",
        ] {
            assert!(supervised_release(bad, name, &app()).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_a_live_process_of_real_and_effective_uid_0_counts_as_root() {
        assert!(is_live_root("Name:\tslipway\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n"));
        assert!(!is_live_root("State:\tS (sleeping)\nUid:\t1001\t0\t0\t0\n"));
        assert!(!is_live_root("State:\tS (sleeping)\nUid:\t0\t1001\t1001\t1001\n"));
        assert!(!is_live_root("State:\tZ (zombie)\nUid:\t0\t0\t0\t0\n"));
        assert!(!is_live_root("State:\tS (sleeping)\n"));
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(start_time(stat), Some(987_654));
        assert_eq!(start_time("42 (x"), None);
    }
}
