//! How one process instance is started and stopped: `bash -c` in its own process group, with
//! a clean environment, as the app's user, and killed with its whole group so that no child
//! of it outlives it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

use crate::state::RunAs;

/// What a process needs besides its command.
#[derive(Debug, Clone)]
pub struct ProcessEnv {
    /// The working directory: the release's app folder.
    pub cwd: PathBuf,
    /// `HOME`, which holds the `mount` link.
    pub home: PathBuf,
    pub env: BTreeMap<String, String>,
    pub run_as: Option<RunAs>,
    /// The release's launcher (buildpack builds): commands run as `LAUNCHER bash -c ...`, so
    /// the launch layers' environment is set up as the app's user, never parsed by root.
    pub launcher: Option<PathBuf>,
}

/// The default `PATH` when slipway's own is unset.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessEnv {
    /// `bash -c <script>` with this environment plus `extra`, sharing the caller's terminal:
    /// for one-off commands and shells.
    pub fn interactive(&self, script: &str, extra: &[(&str, String)]) -> std::process::Command {
        let mut cmd = match &self.launcher {
            Some(launcher) => {
                let mut cmd = std::process::Command::new(launcher);
                cmd.arg("bash");
                cmd
            }
            None => std::process::Command::new("bash"),
        };
        cmd.arg("-c").arg(script).current_dir(&self.cwd).env_clear();
        close_inherited_fds(&mut cmd);
        // The app's user cannot enter root's home, so root's PATH (e.g. ~/.cargo/bin) is no use
        // to it; it gets the system directories.
        let path = match &self.run_as {
            Some(_) => FALLBACK_PATH.into(),
            None => std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into()),
        };
        cmd.env("PATH", path).env("HOME", &self.home).env("LANG", "C.UTF-8");
        if let Some(user) = &self.run_as {
            cmd.env("USER", &user.user).env("LOGNAME", &user.user);
            std::os::unix::process::CommandExt::uid(&mut cmd, user.uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, user.gid);
        }
        cmd.envs(&self.env);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Like [`Self::interactive`], but in a new process group with piped output, for supervised
    /// processes and scripts. `die_with_parent` makes the kernel kill it if its parent dies
    /// (`PR_SET_PDEATHSIG`).
    pub fn command(
        &self,
        script: &str,
        extra: &[(&str, String)],
        die_with_parent: bool,
    ) -> std::process::Command {
        let mut cmd = self.interactive(script, extra);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if die_with_parent {
            // SAFETY: prctl is async-signal-safe; std runs this after setuid, which would
            // otherwise clear the death signal.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                    Ok(())
                });
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

impl ProcessEnv {
    /// Why `bash -c script` could not be started in this environment, naming the fix: an
    /// exec or `chdir` error is a start failure with a reason, not a crash to retry blindly.
    pub fn explain_spawn_error(&self, script: &str, e: &std::io::Error) -> String {
        match e.raw_os_error() {
            Some(libc::E2BIG) => format!(
                "the command is {} bytes, too long to execute (Linux takes at most 128 KiB in one argument); \
                 move it into a script committed with the app and run that",
                script.len()
            ),
            Some(libc::EACCES) => self
                .run_as
                .as_ref()
                .and_then(|user| blocked_dir(&self.cwd, user))
                .unwrap_or_else(|| format!("{e} (starting bash in {})", self.cwd.display())),
            Some(libc::ENOENT) if !self.cwd.is_dir() => {
                format!("its working directory {} does not exist; redeploy the app", self.cwd.display())
            }
            Some(libc::ENOENT) => format!("{e}: bash was not found; install bash"),
            _ => e.to_string(),
        }
    }
}

/// The first directory on the way to `cwd` that `user` may not enter, described with its
/// owner, its mode and the fix.
pub fn blocked_dir(cwd: &std::path::Path, user: &RunAs) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut chain: Vec<&std::path::Path> = cwd.ancestors().collect();
    chain.reverse();
    chain.into_iter().find_map(|dir| {
        let meta = std::fs::metadata(dir).ok()?;
        (!can_enter(meta.mode(), meta.uid(), meta.gid(), user)).then(|| {
            format!(
                "permission denied: user {} (uid {}) cannot enter {} (owner uid {}, group {}, mode {:04o}), \
                 which leads to its working directory {}; let it through (`chmod o+x {}`) or use a slipway home outside it (--home)",
                user.user,
                user.uid,
                dir.display(),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777,
                cwd.display(),
                dir.display()
            )
        })
    })
}

/// Whether `user` has search (x) permission on a directory of this mode and ownership. The
/// kernel checks the owner's bits for the owner, the group's for the group, the others' for
/// the rest (the app's processes have no supplementary groups).
fn can_enter(mode: u32, owner: u32, group: u32, user: &RunAs) -> bool {
    let bit = if user.uid == owner {
        0o100
    } else if user.gid == group {
        0o010
    } else {
        0o001
    };
    mode & bit != 0
}

/// Make `cmd` start with descriptors 0 to 2 only. slipway's own descriptors are close-on-exec,
/// but one that the calling shell left open (`exec 7>>/root/file; slipway deploy`) is not, and
/// an app's process would inherit it and write through it as root. Marking every descriptor
/// from 3 up close-on-exec, just before exec, leaves std's own error pipe working until the
/// exec itself, so a failed exec is still reported.
pub fn close_inherited_fds(cmd: &mut std::process::Command) {
    // SAFETY: close_range and fcntl are async-signal-safe system calls; nothing is allocated.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            let flags = libc::CLOSE_RANGE_CLOEXEC;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, flags) != 0 {
                // Kernels before 5.11: mark each descriptor up to the soft limit.
                let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 {
                    i32::try_from(limit.rlim_cur).unwrap_or(i32::MAX).min(1 << 20)
                } else {
                    1 << 16
                };
                for fd in 3..max {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}

/// Whether any process of group `pgid` is alive.
pub fn group_alive(pgid: u32) -> bool {
    pid(pgid).is_some_and(|p| test_kill_process_group(p).is_ok())
}

/// Send `signal` to every process of group `pgid`; a group that is gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Some(p) = pid(pgid) {
        let _ = kill_process_group(p, signal);
    }
}

/// SIGTERM the group, wait up to `grace` for it to empty, then SIGKILL what is left.
/// `leader` is reaped along the way, since an unreaped leader still counts as a member.
pub async fn stop_group(pgid: u32, grace: Duration, leader: &mut tokio::process::Child) {
    signal_group(pgid, Signal::TERM);
    let deadline = tokio::time::Instant::now() + grace;
    let mut reaped = false;
    let mut poll = Duration::from_millis(1);
    while tokio::time::Instant::now() < deadline {
        if !reaped {
            reaped = matches!(leader.try_wait(), Ok(Some(_)) | Err(_));
        }
        if reaped {
            reap_group_zombies(pgid);
        }
        if reaped && !group_alive(pgid) {
            return;
        }
        // Most processes exit within milliseconds of SIGTERM; poll fast at first, then back off.
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(Duration::from_millis(50));
    }
    signal_group(pgid, Signal::KILL);
    let _ = leader.wait().await;
}

/// Reaps the exited members of group `pgid` that were reparented to us (the supervisor is a
/// child subreaper): once `bash` dies before its `sleep`, the `sleep` becomes our zombie, and
/// an unreaped zombie keeps the group alive, so a stop would wait out the whole grace.
/// Only this group: other instances' leaders are reaped by their own tasks.
fn reap_group_zombies(pgid: u32) {
    let Some(p) = pid(pgid) else { return };
    while let Ok(Some(_)) = rustix::process::waitpgid(p, rustix::process::WaitOptions::NOHANG) {}
}

/// A pid fit to signal. 0 and 1 never are: a group signal to them would reach our own group or,
/// as `kill(-1)`, every process on the machine.
fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().filter(|p| *p > 1).and_then(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> RunAs {
        RunAs { user: "slipway-demo".to_owned(), uid: 990, gid: 990 }
    }

    #[test]
    fn search_permission_follows_owner_then_group_then_others() {
        assert!(can_enter(0o700, 990, 0, &user()));
        assert!(!can_enter(0o700, 0, 0, &user()));
        assert!(can_enter(0o750, 0, 990, &user()));
        assert!(!can_enter(0o705, 0, 990, &user()), "the group's bits apply to a member, not the others'");
        assert!(can_enter(0o711, 0, 0, &user()));
    }

    #[test]
    fn a_spawn_error_names_the_cause_and_the_fix() {
        let env = ProcessEnv {
            cwd: "/nonexistent/app".into(),
            home: "/tmp".into(),
            env: BTreeMap::new(),
            run_as: None,
            launcher: None,
        };
        let big = env.explain_spawn_error("x", &std::io::Error::from_raw_os_error(libc::E2BIG));
        assert!(big.contains("too long") && big.contains("script"), "{big}");
        let missing = env.explain_spawn_error("x", &std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(missing.contains("/nonexistent/app does not exist"), "{missing}");
    }
}
