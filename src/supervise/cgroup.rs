//! One cgroup v2 per release, when the machine offers one: the supervisor moves itself into
//! it before it starts anything, so every process of the release, however it forks, stays in
//! it. `cgroup.kill` then ends them all at once, even the orphans of a supervisor killed with
//! -9, which no subreaper is left to catch. Without cgroup v2 (not root, an old kernel), the
//! subreaper in `reaper` covers everything but the orphans of a killed supervisor.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ids::{AppName, ReleaseId};

/// Where cgroup v2 is mounted: alone (unified mode) or beside v1 (hybrid mode).
const MOUNTS: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// The cgroup v2 hierarchy, if there is one with `cgroup.kill` (Linux 5.14).
fn hierarchy() -> Option<&'static Path> {
    MOUNTS.into_iter().map(Path::new).find(|m| {
        rustix::fs::statfs(*m).is_ok_and(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
            && m.join("cgroup.procs").exists()
    })
}

/// The cgroup of one release, `slipway/<home>.<app>.<release>`, if the machine has cgroup v2.
pub fn path(home: &Path, app: &AppName, release: ReleaseId) -> Option<PathBuf> {
    Some(hierarchy()?.join("slipway").join(name(home, app, release)))
}

/// The cgroup of a release's predeploy and postdeploy scripts (a sibling of the supervisor's,
/// which kills what it finds in its own cgroup when it starts).
pub fn script_path(home: &Path, app: &AppName, release: ReleaseId) -> Option<PathBuf> {
    let mut cg = path(home, app, release)?.into_os_string();
    cg.push(".scripts");
    Some(PathBuf::from(cg))
}

/// The cgroup of a release's local build (its buildpacks' phases and steps): killed whole once
/// the build ends, so that nothing the build started outlives it, least of all a process still
/// holding a layer open for writing when the layer is sealed.
pub fn build_path(home: &Path, app: &AppName, release: ReleaseId) -> Option<PathBuf> {
    let mut cg = path(home, app, release)?.into_os_string();
    cg.push(".build");
    Some(PathBuf::from(cg))
}

/// Make `cmd` join the cgroup `cg` (created if missing) just before it executes, so that
/// everything it starts stays there. A cgroup that cannot be made or joined is done without.
pub fn join_on_exec(cmd: &mut std::process::Command, cg: &Path) {
    let procs = std::fs::create_dir_all(cg)
        .and_then(|()| std::fs::OpenOptions::new().write(true).open(cg.join("cgroup.procs")));
    let Ok(procs) = procs else { return };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&procs);
    // The descriptor must outlive the fork; the closure owns it, and exec closes it (CLOEXEC).
    // SAFETY: write(2) is async-signal-safe and the buffer is static.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let _keep = &procs;
            // "0" moves the writing process itself (cgroup v2).
            libc::write(fd, b"0".as_ptr().cast(), 1);
            Ok(())
        });
    }
}

/// `<home>.<app>.<release>`, where `<home>` (from a hash of the home's absolute path) tells
/// apart apps of the same name in two homes.
fn name(home: &Path, app: &AppName, release: ReleaseId) -> String {
    let home = std::path::absolute(home).unwrap_or_else(|_| home.to_owned());
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    format!("{id:08x}.{app}.{release}")
}

/// Kill every process in `cg` and wait (up to 2 s) until it is empty. Absent is fine.
pub fn kill(cg: &Path) {
    if std::fs::write(cg.join("cgroup.kill"), "1").is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !is_empty(cg) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_empty(cg: &Path) -> bool {
    std::fs::read_to_string(cg.join("cgroup.procs")).map_or(true, |p| p.trim().is_empty())
}

/// Kill everything left in the release's cgroup and remove it.
pub fn remove(cg: &Path) {
    kill(cg);
    let _ = std::fs::remove_dir(cg);
}

/// Move this process into `cg`, first killing whatever a predecessor left there. Returns
/// whether it worked; a machine without cgroups, or a non-root supervisor, goes without.
pub fn enter(cg: &Path) -> bool {
    kill(cg);
    let joined = std::fs::create_dir_all(cg)
        .and_then(|()| std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string()));
    if let Err(e) = &joined {
        tracing::info!(cgroup = %cg.display(), error = %e, "no cgroup for this release; the subreaper alone keeps track");
    }
    joined.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_home_app_and_release_has_its_own_cgroup() {
        let (a, b): (AppName, AppName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let one = name(Path::new("/h1"), &a, ReleaseId::new(1));
        assert!(one.ends_with(".a.v1") && one.len() == 8 + ".a.v1".len(), "{one}");
        assert_ne!(one, name(Path::new("/h2"), &a, ReleaseId::new(1)));
        assert_ne!(one, name(Path::new("/h1"), &b, ReleaseId::new(1)));
        assert_ne!(one, name(Path::new("/h1"), &a, ReleaseId::new(2)));
    }
}
