//! Opening the mount point without following symlinks.
//!
//! `apps/<app>` belongs to the app's (untrusted) user, who may at any moment replace
//! `apps/<app>/mount` with a symlink to `/etc`. Anything slipway does there as root (mkdir,
//! chown, mount, removing files) would then land in `/etc`. So the mount point is opened once
//! with `O_NOFOLLOW | O_DIRECTORY` relative to a descriptor of `apps/<app>` (whose own parent,
//! `apps/`, is slipway's), checked through that descriptor, and every later step goes through
//! the descriptor: `mount(2)` targets `/proc/self/fd/<fd>`, which the kernel resolves to the
//! very directory we opened, never to whatever the name points to by then.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

use crate::state::{AppPaths, RunAs};

use super::MountError;

const NAME: &str = "mount";

/// `apps/<app>`, opened without following a symlink.
pub(crate) fn open_app_dir(paths: &AppPaths) -> Result<OwnedFd, MountError> {
    rustix::fs::open(
        paths.dir(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => MountError::NotADirectory { path: paths.dir().to_owned() },
        e => MountError::Io { action: "open", path: paths.dir().to_owned(), source: e.into() },
    })
}

/// The mount point, or `None` if it does not exist. `flags` adds e.g. `O_PATH` or `O_RDONLY`.
pub(crate) fn open_mount_point(paths: &AppPaths, flags: OFlags) -> Result<Option<OwnedFd>, MountError> {
    let parent = match open_app_dir(paths) {
        Ok(fd) => fd,
        Err(MountError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    open_in(&parent, paths, flags)
}

fn open_in(parent: &OwnedFd, paths: &AppPaths, flags: OFlags) -> Result<Option<OwnedFd>, MountError> {
    let all = flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, NAME, all, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP | Errno::NOTDIR) => Err(MountError::NotADirectory { path: paths.mount_dir() }),
        Err(e) => Err(MountError::Io { action: "open", path: paths.mount_dir(), source: e.into() }),
    }
}

/// The mount point, created (mode 0755, owned by `owner`) if missing.
pub(crate) fn create_mount_point(paths: &AppPaths, owner: Option<&RunAs>) -> Result<OwnedFd, MountError> {
    std::fs::create_dir_all(paths.dir()).map_err(MountError::io("create", paths.dir()))?;
    let parent = open_app_dir(paths)?;
    match rustix::fs::mkdirat(&parent, NAME, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(MountError::Io { action: "create", path: paths.mount_dir(), source: e.into() }),
    }
    let fd = open_in(&parent, paths, OFlags::RDONLY)?
        .ok_or_else(|| MountError::NotADirectory { path: paths.mount_dir() })?;
    chown_fd(&fd, owner, &paths.mount_dir())?;
    Ok(fd)
}

/// The mount point of a hard-limited mount, created if missing. While nothing is mounted on
/// it, the directory itself is made root's with mode 000: the ext4 root mounted over it
/// belongs to the app's user, so the app can write only while the image is mounted, and a
/// write during an unmount (a resize, a reboot) fails with EACCES instead of landing on the
/// host's disk, outside the limit, hidden once the image is mounted again.
pub(crate) fn create_hard_mount_point(paths: &AppPaths) -> Result<OwnedFd, MountError> {
    std::fs::create_dir_all(paths.dir()).map_err(MountError::io("create", paths.dir()))?;
    let parent = open_app_dir(paths)?;
    match rustix::fs::mkdirat(&parent, NAME, Mode::empty()) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(MountError::Io { action: "create", path: paths.mount_dir(), source: e.into() }),
    }
    let fd = open_in(&parent, paths, OFlags::RDONLY)?
        .ok_or_else(|| MountError::NotADirectory { path: paths.mount_dir() })?;
    let (own, parent_dev) = devices(paths, &fd)?;
    if own == parent_dev {
        let fail =
            |e: Errno| MountError::Io { action: "lock down", path: paths.mount_dir(), source: e.into() };
        rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT)).map_err(fail)?;
        rustix::fs::fchmod(&fd, Mode::empty()).map_err(fail)?;
    }
    Ok(fd)
}

/// Give `fd` to `owner`, when there is one.
pub(crate) fn chown_fd(fd: &OwnedFd, owner: Option<&RunAs>, path: &Path) -> Result<(), MountError> {
    if let Some(o) = owner {
        rustix::fs::fchown(fd, Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid)))
            .map_err(|e| MountError::Io { action: "chown", path: path.to_owned(), source: e.into() })?;
    }
    Ok(())
}

/// The path through which the kernel reaches exactly the directory `fd` refers to.
pub(crate) fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The device of the directory `fd` and of its parent: they differ at a mount point.
pub(crate) fn devices(paths: &AppPaths, fd: &OwnedFd) -> Result<(u64, u64), MountError> {
    let own = rustix::fs::fstat(fd).map_err(|e| MountError::Io {
        action: "stat",
        path: paths.mount_dir(),
        source: e.into(),
    })?;
    let parent = rustix::fs::statat(open_app_dir(paths)?, ".", AtFlags::empty())
        .map_err(|e| MountError::Io { action: "stat", path: paths.dir().to_owned(), source: e.into() })?;
    Ok((own.st_dev, parent.st_dev))
}

/// Remove the mount point and anything under it, without following symlinks.
pub(crate) fn remove_mount_point(paths: &AppPaths) -> Result<(), MountError> {
    let parent = match open_app_dir(paths) {
        Ok(fd) => fd,
        Err(MountError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let dir = cap_std::fs::Dir::from_std_file(std::fs::File::from(parent));
    // A process may still be creating files while we delete; a few passes win that race.
    let mut last = None;
    for _ in 0..5 {
        match dir.symlink_metadata(NAME) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Ok(m) if !m.is_dir() => {
                return dir.remove_file(NAME).map_err(MountError::io("remove", paths.mount_dir()));
            }
            _ => {}
        }
        match dir.remove_dir_all(NAME) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(MountError::Io {
        action: "remove",
        path: paths.mount_dir(),
        source: last.unwrap_or_else(|| std::io::Error::other("removal did not finish")),
    })
}
