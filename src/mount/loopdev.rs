//! Hard limits: a sparse ext4 image in `state/<app>/mount.img`, loop-mounted at the mount point.
//! The kernel enforces the size; slipway only creates, mounts, resizes and unmounts.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

use crate::state::{AppPaths, RunAs};

use super::{MountError, anchor};

/// ext4's block size; image sizes are rounded down to it.
const BLOCK: u64 = 4096;

/// The image size for a limit.
pub(crate) fn image_size(limit: u64) -> u64 {
    limit / BLOCK * BLOCK
}

/// Create a fresh sparse image of `limit` bytes holding an empty ext4 owned by `owner`.
pub(crate) fn create_image(image: &Path, limit: u64, owner: Option<&RunAs>) -> Result<(), MountError> {
    match std::fs::remove_file(image) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(MountError::Io { action: "remove", path: image.to_owned(), source }),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(MountError::io("create", image))?;
    // Sparse: the image takes disk space only as files are written.
    file.set_len(image_size(limit)).map_err(MountError::io("size", image))?;
    drop(file);
    // -m 0: no blocks reserved for root, the app's user gets the whole limit.
    // root_owner: the filesystem's root directory belongs to the app's user from the start.
    let (uid, gid) = owner.map_or((0, 0), |o| (o.uid, o.gid));
    let extended = format!("root_owner={uid}:{gid},nodiscard");
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-m", "0", "-E", &extended, &path_arg(image)], 0)?;
    Ok(())
}

/// The `/dev/loopN` whose filesystem is mounted at the app's mount point, if it is the app's
/// image; `None` if nothing is mounted there; an error if something else is.
pub(crate) fn mounted_device(paths: &AppPaths) -> Result<Option<PathBuf>, MountError> {
    let Some(point) = anchor::open_mount_point(paths, OFlags::PATH)? else { return Ok(None) };
    device_of(paths, &point)
}

fn device_of(paths: &AppPaths, point: &OwnedFd) -> Result<Option<PathBuf>, MountError> {
    let (own, parent) = anchor::devices(paths, point)?;
    if own == parent {
        return Ok(None);
    }
    let foreign = || MountError::ForeignMount { path: paths.mount_dir(), image: paths.mount_image() };
    let sys = format!("/sys/dev/block/{}:{}", rustix::fs::major(own), rustix::fs::minor(own));
    let backing = std::fs::read_to_string(format!("{sys}/loop/backing_file")).map_err(|_| foreign())?;
    let image = std::fs::canonicalize(paths.mount_image()).map_err(|_| foreign())?;
    if Path::new(backing.trim_end()) != image {
        return Err(foreign());
    }
    let link = std::fs::read_link(&sys).map_err(|_| foreign())?;
    let name = link.file_name().ok_or_else(foreign)?;
    Ok(Some(Path::new("/dev").join(name)))
}

/// Loop-mount the image at the mount point (creating it), `nosuid,nodev`.
pub(crate) fn mount(paths: &AppPaths, app: &str) -> Result<(), MountError> {
    let image = std::fs::canonicalize(paths.mount_image())
        .map_err(|_| MountError::ImageMissing { app: app.to_owned(), image: paths.mount_image() })?;
    let point = anchor::create_hard_mount_point(paths)?;
    if device_of(paths, &point)?.is_some() {
        return Ok(());
    }
    // --nooverlap reuses a loop device already backed by this image: two loop devices over
    // one ext4 image would corrupt it.
    let device = run("losetup", &["--find", "--show", "--nooverlap", &path_arg(&image)], 0)?;
    let device = device.trim().to_owned();
    let mounted = rustix::mount::mount(
        device.as_str(),
        anchor::proc_path(&point).as_str(),
        "ext4",
        MountFlags::NOSUID | MountFlags::NODEV,
        None,
    );
    // Detaching a loop device that is in use only marks it autoclear: the kernel frees it
    // when the filesystem is unmounted, so an unmount never leaks a loop device.
    let _ = run("losetup", &["-d", &device], 0);
    mounted.map_err(|e| MountError::Io {
        action: "mount the image on",
        path: paths.mount_dir(),
        source: e.into(),
    })
}

/// Unmount the app's image if it is mounted. A busy filesystem is detached lazily when `lazy`
/// (it lives on, unreachable by path, until its last user exits), else refused.
pub(crate) fn unmount(paths: &AppPaths, app: &str, lazy: bool) -> Result<bool, MountError> {
    let Some(point) = anchor::open_mount_point(paths, OFlags::PATH)? else { return Ok(false) };
    if device_of(paths, &point)?.is_none() {
        return Ok(false);
    }
    // Our own descriptor would keep the filesystem busy, so unmount by name. The name still
    // means our mount: the kernel refuses to rename a mount point, `apps/` is slipway's, so
    // the app's user cannot move `apps/<app>`, and NOFOLLOW ignores a symlink in its place.
    drop(point);
    let target = paths.mount_dir();
    match rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(true),
        Err(Errno::BUSY) if lazy => {
            rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
                .map(|()| true)
                .map_err(|e| MountError::Io { action: "unmount", path: target, source: e.into() })
        }
        Err(Errno::BUSY) => {
            Err(MountError::Busy { app: app.to_owned(), path: target, source: Errno::BUSY.into() })
        }
        Err(e) => Err(MountError::Io { action: "unmount", path: target, source: e.into() }),
    }
}

/// Space on a mounted filesystem, as `df` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    /// Bytes in use.
    pub used: u64,
    /// Bytes the app's user can still write (ext4 keeps some back for its own metadata).
    pub available: u64,
}

impl Space {
    /// What can really be stored: ext4's journal, inode tables and reserve take the rest of
    /// the image (about 15 % of a 64 MiB image, 2.3 % of 25 GiB).
    pub(crate) fn capacity(self) -> u64 {
        self.used.saturating_add(self.available)
    }

    /// Full: ext4 answers ENOSPC before `available` reaches 0 (delayed allocation reserves room
    /// for the metadata of writes in flight), so under 1 MiB or 1 % left counts as full.
    pub(crate) fn full(self) -> bool {
        self.available < FULL_SLACK.max(self.capacity() / 100)
    }
}

/// Free space below which a hard-limited mount counts as full.
const FULL_SLACK: u64 = 1 << 20;

/// Used and available bytes of the mounted filesystem at `root`.
pub(crate) fn fs_space(root: &OwnedFd) -> Option<Space> {
    let v = rustix::fs::fstatvfs(root).ok()?;
    Some(Space {
        used: v.f_blocks.saturating_sub(v.f_bfree).saturating_mul(v.f_frsize),
        available: v.f_bavail.saturating_mul(v.f_frsize),
    })
}

/// The bytes in use on the mounted filesystem, as `df` counts them.
pub(crate) fn fs_used(root: &OwnedFd) -> Option<u64> {
    fs_space(root).map(|s| s.used)
}

/// The smallest image that holds the filesystem on `device` (or an image file), as resize2fs
/// estimates it (`resize2fs -P`), in bytes.
pub(crate) fn min_size(device: &Path) -> Option<u64> {
    let out = run("resize2fs", &["-P", &path_arg(device)], 0).ok()?;
    parse_min_blocks(&out).map(|blocks| blocks.saturating_mul(BLOCK))
}

fn parse_min_blocks(out: &str) -> Option<u64> {
    out.lines().find_map(|l| l.strip_prefix("Estimated minimum size of the filesystem:")?.trim().parse().ok())
}

/// Whether any loop device is still backed by `image` (one set up elsewhere, say a container
/// holding a bind mount of the filesystem, keeps it alive after our unmount).
pub(crate) fn image_in_use(image: &Path) -> Result<bool, MountError> {
    let out = run("losetup", &["-j", &path_arg(image)], 0)?;
    Ok(!out.trim().is_empty())
}

/// Grow the mounted filesystem on `device` to fill its (already extended) image, online.
/// `Ok(false)` when the kernel refuses online resizing (it needs `CAP_SYS_RESOURCE`, which
/// containers often drop): nothing changed then.
pub(crate) fn grow_online(device: &Path) -> Result<bool, MountError> {
    refresh_capacity(device)?;
    match run("resize2fs", &[&path_arg(device)], 0) {
        Ok(_) => Ok(true),
        Err(MountError::Tool { stderr, .. }) if stderr.contains("Permission denied") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Make the loop device `device` take its image file's current length.
pub(crate) fn refresh_capacity(device: &Path) -> Result<(), MountError> {
    run("losetup", &["-c", &path_arg(device)], 0).map(drop)
}

/// Check and resize the unmounted filesystem in the image file `image` to `bytes`.
pub(crate) fn resize_offline(image: &Path, bytes: u64) -> Result<(), MountError> {
    let arg = path_arg(image);
    // e2fsck exits 1 when it fixed something: that is a success.
    run("e2fsck", &["-f", "-y", &arg], 1)?;
    run("resize2fs", &[&arg, &format!("{}K", image_size(bytes) / 1024)], 0).map(drop)
}

/// Copy `from` to `to`, sparse (and shared, where the host filesystem can reflink).
pub(crate) fn copy_image(from: &Path, to: &Path) -> Result<(), MountError> {
    run("cp", &["--sparse=always", "--reflink=auto", "--", &path_arg(from), &path_arg(to)], 0).map(drop)
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Run a tool, succeeding on exit codes up to `max_ok`; stdout on success.
fn run(tool: &str, args: &[&str], max_ok: i32) -> Result<String, MountError> {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    // A tool outlives a `kill -9` of slipway otherwise, and could still be working on a copy of
    // the image when the next command recovers from that kill.
    let parent = rustix::process::getpid();
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("slipway exited before its tool started"));
            }
            Ok(())
        });
    }
    let out = cmd.output().map_err(|source| MountError::Spawn { tool: tool.to_owned(), source })?;
    match out.status.code() {
        Some(c) if c <= max_ok => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => Err(MountError::Tool {
            command: format!("{tool} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_minimum_size_that_resize2fs_prints() {
        let out = "resize2fs 1.47.0 (5-Feb-2023)\nEstimated minimum size of the filesystem: 15889\n";
        assert_eq!(parse_min_blocks(out), Some(15889));
        assert_eq!(parse_min_blocks("resize2fs: Bad magic number"), None);
    }

    #[test]
    fn full_leaves_room_for_what_ext4_keeps_back() {
        // Measured: a 64 MiB image filled by dd has 672 KiB left that no write can take.
        let full = Space { used: 13_830 * 4096, available: 168 * 4096 };
        assert!(full.full());
        assert!(!Space { used: 10 << 20, available: 44 << 20 }.full());
        // On 25 GiB, 1 % is the margin.
        assert!(Space { used: 24 << 30, available: 200 << 20 }.full());
        assert!(!Space { used: 20 << 30, available: 4 << 30 }.full());
    }
}
