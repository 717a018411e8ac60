//! Enable, attach, resize, disable and destroy: each takes the mount lock, refreshes the
//! settings, checks, acts, then saves.

use std::path::PathBuf;

use rustix::fs::OFlags;

use crate::state::{AppPaths, FileLock, RunAs, Wait};

use super::quota::{self, HostSupport, MIN_LIMIT};
use super::record::{self, MountSettings, QuotaMode};
use super::resize::{self, Action};
use super::usage::{self, Usage};
use super::{MountError, anchor, app_name, loopdev};

/// What `enable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableOutcome {
    /// Created, enforced in this mode.
    Enabled { mode: QuotaMode },
    /// It was enabled already; nothing changed.
    AlreadyEnabled,
}

/// What `disable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableOutcome {
    /// Every file is gone; this is what was deleted.
    Disabled(Usage),
    /// It was disabled already (leftovers, if any, were removed).
    AlreadyDisabled,
}

/// Serialises lifecycle changes and remounts of one app's mount. It is not the app lock,
/// because a deploy holding the app lock calls `attach`.
fn lock(paths: &AppPaths, app: &str) -> Result<FileLock, MountError> {
    std::fs::create_dir_all(paths.state_dir()).map_err(MountError::io("create", paths.state_dir()))?;
    let what = format!("the mount lock of app {app}");
    Ok(FileLock::acquire(&paths.state_dir().join("mount.lock"), &what, Wait::Yes, || {})?)
}

/// Create the persistent filesystem with a `limit` in bytes, owned by `owner`.
pub fn enable(paths: &AppPaths, limit: u64, owner: Option<&RunAs>) -> Result<EnableOutcome, MountError> {
    let app = app_name(paths);
    if limit < MIN_LIMIT {
        return Err(MountError::TooSmall { limit, min: MIN_LIMIT });
    }
    let _lock = lock(paths, &app)?;
    if record::enabled(paths)?.is_some() {
        return Ok(EnableOutcome::AlreadyEnabled);
    }
    let mode = quota::choose_mode(std::env::var("SLIPWAY_MOUNT_MODE").ok().as_deref(), HostSupport::probe())?;
    if mode == QuotaMode::Soft {
        anchor::create_mount_point(paths, owner)?;
    } else {
        // Checked before the mount point is locked down, which would shut the app out of them.
        if let Some(point) = anchor::open_mount_point(paths, OFlags::RDONLY)?
            && loopdev::mounted_device(paths)?.is_none()
            && !is_empty(&point, paths)?
        {
            return Err(MountError::MountPointNotEmpty { path: paths.mount_dir() });
        }
        let created = loopdev::create_image(&paths.mount_image(), limit, owner)
            .and_then(|()| loopdev::mount(paths, &app))
            .and_then(|()| remove_lost_found(paths, owner));
        if let Err(e) = created {
            let _ = loopdev::unmount(paths, &app, true);
            let _ = std::fs::remove_file(paths.mount_image());
            return Err(e);
        }
    }
    record::save(paths, &MountSettings { enabled: true, limit_bytes: limit, mode })?;
    Ok(EnableOutcome::Enabled { mode })
}

/// Make the mount ready before a process, predeploy or workspace starts: after a reboot the
/// image is mounted again. Returns the mount point, or `None` if the mount is disabled.
/// Cheap when already mounted: two `stat`s and a read of sysfs.
pub fn attach(paths: &AppPaths) -> Result<Option<PathBuf>, MountError> {
    let Some(settings) = record::enabled(paths)? else { return Ok(None) };
    let app = app_name(paths);
    match settings.mode {
        QuotaMode::Soft => {
            if anchor::open_mount_point(paths, OFlags::PATH)?.is_none() {
                anchor::create_mount_point(paths, None)?;
            }
        }
        QuotaMode::Hard => {
            if resize::pending(paths) || loopdev::mounted_device(paths)?.is_none() {
                let _lock = lock(paths, &app)?;
                resize::recover(paths, &app)?;
                loopdev::mount(paths, &app)?;
            }
        }
    }
    Ok(Some(paths.mount_dir()))
}

/// What [`set_limit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resized {
    /// The new limit is in force.
    Done,
    /// Nothing changed: this resize needs the filesystem unmounted, so the app's processes
    /// must be stopped first; call again with `stopped`.
    NeedsStop(StopReason),
}

/// Why a resize needs the app's processes stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// ext4 shrinks only unmounted.
    Shrink,
    /// The kernel refuses to grow it online (no `CAP_SYS_RESOURCE`, as in many containers).
    NoOnlineGrow,
}

/// Change the limit. Growing works online; shrinking is refused below what the files need,
/// and for a hard limit is done unmounted, only when the caller says the app's processes are
/// `stopped`. A crash mid-way is finished or undone by the next command (see `resize`).
pub fn set_limit(paths: &AppPaths, new_limit: u64, stopped: bool) -> Result<Resized, MountError> {
    let app = app_name(paths);
    if new_limit < MIN_LIMIT {
        return Err(MountError::TooSmall { limit: new_limit, min: MIN_LIMIT });
    }
    let _lock = lock(paths, &app)?;
    let disabled = || MountError::Disabled { app: app.clone() };
    if record::enabled(paths)?.ok_or_else(disabled)?.mode == QuotaMode::Hard {
        // A resize that a crash interrupted is settled first: it may have changed the limit.
        resize::recover(paths, &app)?;
        loopdev::mount(paths, &app)?;
    }
    let mut settings = record::enabled(paths)?.ok_or_else(disabled)?;
    let used = used_bytes(paths, &settings, &app)?;
    let fits = match settings.mode {
        QuotaMode::Hard => loopdev::mounted_device(paths)?.and_then(|d| loopdev::min_size(&d)),
        QuotaMode::Soft => None,
    };
    match resize::decide(&app, settings.mode, settings.limit_bytes, new_limit, used, fits)? {
        Action::Record => {
            settings.limit_bytes = new_limit;
            record::save(paths, &settings)?;
        }
        Action::Grow => {
            if !resize::grow_online(paths, &app, &mut settings, new_limit)? {
                if !stopped {
                    return Ok(Resized::NeedsStop(StopReason::NoOnlineGrow));
                }
                resize::resize_offline(paths, &app, &mut settings, new_limit, used)?;
            }
        }
        Action::Shrink if !stopped => return Ok(Resized::NeedsStop(StopReason::Shrink)),
        Action::Shrink => resize::resize_offline(paths, &app, &mut settings, new_limit, used)?,
    }
    Ok(Resized::Done)
}

/// What `disable` would delete.
pub fn disable_preview(paths: &AppPaths) -> Result<Usage, MountError> {
    super::usage(paths)
}

/// Delete every file irrecoverably and disable the mount. The mount point goes too, so
/// `../mount` links dangle and restarted processes no longer see it.
pub fn disable(paths: &AppPaths) -> Result<DisableOutcome, MountError> {
    let app = app_name(paths);
    let _lock = lock(paths, &app)?;
    let Some(mut settings) = record::enabled(paths)? else {
        remove_everything(paths, &app)?;
        return Ok(DisableOutcome::AlreadyDisabled);
    };
    if settings.mode == QuotaMode::Hard && loopdev::mounted_device(paths)?.is_none() {
        // Measure what is deleted; a missing image means there is nothing to measure.
        let _ = loopdev::mount(paths, &app);
    }
    let deleted = measure(paths, &app).unwrap_or_default();
    // Saved first: if the deletion below is interrupted, nothing mounts the remains again,
    // and disabling again finishes the job.
    settings.enabled = false;
    record::save(paths, &settings)?;
    remove_everything(paths, &app)?;
    Ok(DisableOutcome::Disabled(deleted))
}

/// Remove the mount, its image and its settings, for `apps destroy`. Idempotent.
pub fn destroy(paths: &AppPaths) -> Result<(), MountError> {
    let app = app_name(paths);
    if !paths.state_dir().exists() {
        return anchor::remove_mount_point(paths);
    }
    let _lock = lock(paths, &app)?;
    remove_everything(paths, &app)?;
    match std::fs::remove_file(paths.mount_record()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MountError::Io { action: "remove", path: paths.mount_record(), source }),
    }
}

fn remove_everything(paths: &AppPaths, app: &str) -> Result<(), MountError> {
    loopdev::unmount(paths, app, true)?;
    resize::forget(paths)?;
    match std::fs::remove_file(paths.mount_image()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(MountError::Io { action: "remove", path: paths.mount_image(), source }),
    }
    anchor::remove_mount_point(paths)
}

/// Walk the mounted tree.
pub(crate) fn measure(paths: &AppPaths, app: &str) -> Result<Usage, MountError> {
    let root = anchor::open_mount_point(paths, OFlags::RDONLY)?
        .ok_or_else(|| MountError::Disabled { app: app.to_owned() })?;
    usage::walk(root, app)
}

/// The bytes counted against the limit: the filesystem's own figure in hard mode, the sum
/// of file sizes in soft mode.
pub(crate) fn used_bytes(paths: &AppPaths, settings: &MountSettings, app: &str) -> Result<u64, MountError> {
    if settings.mode == QuotaMode::Hard {
        let root = anchor::open_mount_point(paths, OFlags::RDONLY)?;
        if let Some(used) = root.as_ref().and_then(loopdev::fs_used) {
            return Ok(used);
        }
    }
    Ok(measure(paths, app)?.bytes)
}

fn is_empty(fd: &std::os::fd::OwnedFd, paths: &AppPaths) -> Result<bool, MountError> {
    let dup = rustix::io::dup(fd).map_err(|e| MountError::Io {
        action: "read",
        path: paths.mount_dir(),
        source: e.into(),
    })?;
    let entries = usage::walk(dup, &app_name(paths))?;
    Ok(entries.files == 0 && entries.dirs == 0)
}

/// mkfs leaves `lost+found`; the app's users should see an empty directory.
fn remove_lost_found(paths: &AppPaths, owner: Option<&RunAs>) -> Result<(), MountError> {
    let root = anchor::open_mount_point(paths, OFlags::RDONLY)?
        .ok_or_else(|| MountError::NotADirectory { path: paths.mount_dir() })?;
    anchor::chown_fd(&root, owner, &paths.mount_dir())?;
    let dir = cap_std::fs::Dir::from_std_file(std::fs::File::from(root));
    match dir.remove_dir("lost+found") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => {
            Err(MountError::Io { action: "remove", path: paths.mount_dir().join("lost+found"), source })
        }
    }
}
