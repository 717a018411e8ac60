//! The system user of each app, when slipway runs as root. A user belongs to one app of one
//! home: its name carries a hash of the home's path and the app's name, slipway refuses to
//! adopt a user it did not create, and `apps destroy` removes the user only once every process
//! running as it is gone, so a later app can never inherit the uid with a live process or files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ids::AppName;
use crate::state::RunAs;

/// useradd's limit on a user (and group) name on Linux.
pub const MAX_USER_NAME: usize = 32;
const PREFIX: &str = "slipway-";
/// Hex digits of the hash: 2^32 names per app name, so two homes collide only by accident,
/// and an accident is refused (the user exists), never shared.
const HASH_LEN: usize = 8;

/// Why a user could not be made, checked or removed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "system user {user} already exists, and this home did not create it: slipway never adopts a user, \
         since another home's app or a person may own its files. Remove it (`userdel {user}`) if it is a \
         leftover, or use another app name"
    )]
    Exists { user: String },
    #[error("cannot run {tool}: {source}; install the passwd package (apt-get install passwd)")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("useradd {user} failed: {stderr}")]
    Add { user: String, stderr: String },
    #[error("user {user} was created but cannot be found by `id`; check /etc/nsswitch.conf")]
    Vanished { user: String },
    #[error(
        "system user {user} now has uid {found}, not the uid {recorded} this app was created with: it was \
         replaced outside slipway, so it is left alone; remove it by hand if it is not in use"
    )]
    Replaced { user: String, recorded: u32, found: u32 },
    #[error("cannot list processes in /proc to stop those of user {user}: {source}")]
    Proc {
        user: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "processes of user {user} kept running after {rounds} rounds of SIGKILL (pids {pids:?}); the user \
         was not removed. Stop them, then run `apps destroy` again"
    )]
    Survivors { user: String, rounds: u32, pids: Vec<i32> },
    #[error(
        "userdel {user} failed: {stderr}; the user was not removed. Fix that, then run `apps destroy` again"
    )]
    Del { user: String, stderr: String },
}

/// The user name of `app` in the home at `home` (an absolute path): `slipway-APP-HASH`, the app
/// name shortened when needed to stay within [`MAX_USER_NAME`]; the hash covers the whole app
/// name, so a shortened name stays unique.
pub fn user_name(home: &Path, app: &AppName) -> String {
    let mut hasher = Sha256::new();
    hasher.update(home.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    hasher.update(app.as_str().as_bytes());
    let digest = hasher.finalize();
    let hash = digest.iter().take(HASH_LEN / 2).fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    });
    let room = MAX_USER_NAME - PREFIX.len() - 1 - HASH_LEN;
    let short = &app.as_str()[..app.as_str().len().min(room)];
    format!("{PREFIX}{short}-{hash}")
}

/// Create the system user `user`, refusing one that exists already.
pub fn create(user: &str) -> Result<RunAs, UserError> {
    if lookup(user)?.is_some() {
        return Err(UserError::Exists { user: user.to_owned() });
    }
    let out = shadow_tool(
        "useradd",
        &["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "--", user],
    )?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // useradd exits 9 when the name was taken in the meantime.
        if out.status.code() == Some(9) {
            return Err(UserError::Exists { user: user.to_owned() });
        }
        return Err(UserError::Add { user: user.to_owned(), stderr });
    }
    lookup(user)?.ok_or_else(|| UserError::Vanished { user: user.to_owned() })
}

/// The user's ids, or None if there is no such user.
pub fn lookup(user: &str) -> Result<Option<RunAs>, UserError> {
    let id = |flag: &str| -> Result<Option<u32>, UserError> {
        let out = Command::new("id")
            .arg(flag)
            .arg("--")
            .arg(user)
            .output()
            .map_err(|source| UserError::Spawn { tool: "id", source })?;
        Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok()).flatten())
    };
    let (Some(uid), Some(gid)) = (id("-u")?, id("-g")?) else { return Ok(None) };
    Ok(Some(RunAs { user: user.to_owned(), uid, gid }))
}

/// Whether `who` still exists with the uid it was created with: false if it is gone (its uid
/// may belong to someone else by now, so nothing may be done to that uid), an error if the
/// name now has another uid.
pub fn still_ours(who: &RunAs) -> Result<bool, UserError> {
    match lookup(&who.user)? {
        None => Ok(false),
        Some(found) if found.uid != who.uid => {
            Err(UserError::Replaced { user: who.user.clone(), recorded: who.uid, found: found.uid })
        }
        Some(_) => Ok(true),
    }
}

/// Kill every process running as `who` (daemonized ones included), then delete the user and
/// its group. A user that is already gone is fine; one whose uid changed is left alone.
pub fn remove(who: &RunAs) -> Result<(), UserError> {
    if !still_ours(who)? {
        return Ok(());
    }
    kill_all(who)?;
    // A killed process stays a zombie until its parent reaps it, and userdel counts zombies as
    // users; give the reaper a moment before calling it a failure.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = shadow_tool("userdel", &["--", &who.user])?;
        // 6: no such user (someone removed it meanwhile), which is the outcome we want.
        if out.status.success() || out.status.code() == Some(6) {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // 8: the user is logged in or has processes.
        if out.status.code() != Some(8) || Instant::now() > deadline {
            return Err(UserError::Del { user: who.user.clone(), stderr });
        }
        kill_all(who)?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs useradd or userdel, again while another one holds the lock on /etc/passwd: apps
/// created or destroyed at the same moment must not fail for that.
fn shadow_tool(tool: &'static str, args: &[&str]) -> Result<std::process::Output, UserError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out =
            Command::new(tool).args(args).output().map_err(|source| UserError::Spawn { tool, source })?;
        let busy = String::from_utf8_lossy(&out.stderr).contains("try again later");
        if out.status.success() || !busy || Instant::now() > deadline {
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL every live process whose real, effective or saved uid is `who`'s, over and over
/// until a scan finds none: a process that forks between two scans is caught by the next.
/// Check [`still_ours`] first: the uid must still be this user's.
pub fn kill_all(who: &RunAs) -> Result<(), UserError> {
    const ROUNDS: u32 = 100;
    let mut pids = Vec::new();
    for _ in 0..ROUNDS {
        pids = live_processes_of(who)?;
        if pids.is_empty() {
            return Ok(());
        }
        for &pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                // ESRCH: it exited meanwhile.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(UserError::Survivors { user: who.user.clone(), rounds: ROUNDS, pids })
}

/// The pids of `who`'s processes that are not zombies.
fn live_processes_of(who: &RunAs) -> Result<Vec<i32>, UserError> {
    let proc_err = |source| UserError::Proc { user: who.user.clone(), source };
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(proc_err)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        // A process that exits while we look has no status left: it is not running.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        if runs_as(&status, who.uid) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Whether a `/proc/PID/status` text is of a live (non-zombie) process with `uid` as its real,
/// effective or saved uid: any of them lets it act as the user, and userdel checks the same.
fn runs_as(status: &str, uid: u32) -> bool {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let zombie = field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X'));
    let uids = field("Uid:").map(|u| u.split_whitespace().take(3).filter_map(|v| v.parse::<u32>().ok()));
    !zombie && uids.is_some_and(|mut u| u.any(|v| v == uid))
}

/// A directory above `path` that other users cannot pass through (no `o+x`), with its mode:
/// an app's user could not reach its own tree below it. (`path` itself, the home, is given mode
/// 0711 by `apps create`.)
pub fn blocking_parent(path: &Path) -> Option<(PathBuf, u32)> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let modes = path.ancestors().skip(1).filter_map(|dir| {
        // A directory that does not exist yet will be made by slipway with the right mode.
        let meta = std::fs::metadata(dir).ok()?;
        Some((dir.to_owned(), std::os::unix::fs::PermissionsExt::mode(&meta.permissions())))
    });
    first_blocking(modes)
}

/// The first of (directory, mode) that lacks `o+x`. Pure.
fn first_blocking(dirs: impl IntoIterator<Item = (PathBuf, u32)>) -> Option<(PathBuf, u32)> {
    dirs.into_iter().find(|(_, mode)| mode & 0o001 == 0).map(|(p, m)| (p, m & 0o7777))
}

/// The fix for a [`blocking_parent`], in words a person can act on.
pub fn reach_fix(dir: &Path, mode: u32) -> String {
    format!(
        "{} has mode {mode:o}, so app users cannot reach their apps below it: run `chmod o+x {}`, or pick a \
         home they can reach with --home or SLIPWAY_HOME (as root the default is /var/lib/slipway)",
        dir.display(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(s: &str) -> AppName {
        s.parse().unwrap()
    }

    #[test]
    fn the_same_app_in_two_homes_gets_two_users() {
        let a = user_name(Path::new("/var/lib/slipway"), &app("demo"));
        let b = user_name(Path::new("/srv/other"), &app("demo"));
        assert_ne!(a, b);
        assert!(a.starts_with("slipway-demo-"), "{a}");
        assert_eq!(a, user_name(Path::new("/var/lib/slipway"), &app("demo")), "stable");
    }

    #[test]
    fn user_names_of_the_longest_app_names_fit_useradd_and_stay_unique() {
        let longest = "a".repeat(crate::ids::AppName::MAX_LEN);
        let home = Path::new("/var/lib/slipway");
        let name = user_name(home, &app(&longest));
        assert!(name.len() <= MAX_USER_NAME, "{name} is {} chars", name.len());
        let sibling = format!("{}b", &longest[..longest.len() - 1]);
        assert_ne!(name, user_name(home, &app(&sibling)), "shortened names differ by their hash");
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        assert!(name.chars().all(valid), "{name}");
    }

    #[test]
    fn processes_are_matched_on_any_uid_but_not_as_zombies() {
        let status =
            |state: &str, uids: &str| format!("Name:\tx\nState:\t{state}\nUid:\t{uids}\nGid:\t0\t0\t0\t0\n");
        assert!(runs_as(&status("S (sleeping)", "1001\t1001\t1001\t1001"), 1001));
        assert!(runs_as(&status("R (running)", "0\t1001\t0\t0"), 1001), "effective uid");
        assert!(runs_as(&status("S (sleeping)", "0\t0\t1001\t0"), 1001), "saved uid: it can switch back");
        assert!(!runs_as(&status("S (sleeping)", "0\t0\t0\t1001"), 1001), "fs uid alone cannot signal");
        assert!(!runs_as(&status("Z (zombie)", "1001\t1001\t1001\t1001"), 1001));
        assert!(!runs_as(&status("S (sleeping)", "10010\t10010\t10010\t10010"), 1001));
    }

    #[test]
    fn a_parent_without_o_x_blocks_app_users() {
        let dirs = [("/tmp/x/home", 0o40711), ("/tmp/x", 0o40700), ("/tmp", 0o41777), ("/", 0o40755)];
        let found = first_blocking(dirs.map(|(p, m)| (PathBuf::from(p), m)));
        assert_eq!(found, Some((PathBuf::from("/tmp/x"), 0o700)));
        let open = [("/var/lib/slipway", 0o40711), ("/var/lib", 0o40755), ("/", 0o40755)];
        assert_eq!(first_blocking(open.map(|(p, m)| (PathBuf::from(p), m))), None);
    }
}
