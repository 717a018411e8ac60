//! Changing the size of a hard-limited mount without losing a write, even to a `kill -9`.
//!
//! Growing is done online: the image file is extended and `resize2fs` grows the mounted
//! filesystem, so the app keeps writing throughout. Shrinking (and growing where the kernel
//! refuses online resizing) is done offline, with the app's processes stopped, on a copy:
//! unmount, copy the image sparsely to `mount.img.resize-PID-N`, check and resize the copy, then
//! rename it over `mount.img` and mount again. The rename is the commit point: until then the
//! original image is untouched, so undoing a resize is deleting the copy, and no tool ever
//! works on the image that holds the app's data.
//!
//! `state/<app>/resize.json` (root-only, written atomically) records a resize in progress. The
//! next command finishes or undoes it ([`recover`], run by `attach`, which every command's
//! reconcile calls), leaving the size the old one or the new one, and the mount mounted.

use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::state::{AppPaths, atomic};

use super::loopdev::{self, image_size};
use super::quota::MIN_LIMIT;
use super::record::{self, MountSettings, QuotaMode};
use super::{MountError, anchor};

/// How a resize is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    /// Grown while mounted.
    Online,
    /// Resized on an unmounted copy, renamed into place.
    Offline,
}

/// The step a resize had reached, for diagnostics (recovery decides from the image itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Step {
    Extending,
    Unmounting,
    Copying,
    Resizing,
    Renaming,
    Mounting,
}

/// `state/<app>/resize.json`: a resize in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Journal {
    pub from_bytes: u64,
    pub to_bytes: u64,
    pub method: Method,
    pub step: Step,
    /// The inode of `mount.img` before the resize: another inode there means the resized copy
    /// was renamed into place.
    pub image_ino: u64,
}

/// What a change of limit does to the filesystem, decided before anything changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Only the record changes (soft mode, or the same image size).
    Record,
    Grow,
    Shrink,
}

/// Decide how to go from `current` to `wanted` bytes, given the bytes `used` and the smallest
/// size the filesystem fits in (`fits`, from `resize2fs -P`; at least `used`).
pub(crate) fn decide(
    app: &str,
    mode: QuotaMode,
    current: u64,
    wanted: u64,
    used: u64,
    fits: Option<u64>,
) -> Result<Action, MountError> {
    if wanted < MIN_LIMIT {
        return Err(MountError::TooSmall { limit: wanted, min: MIN_LIMIT });
    }
    let smallest = fits.unwrap_or(0).max(used).max(MIN_LIMIT);
    if wanted < current && wanted < smallest {
        return Err(MountError::ShrinkBelowUsage {
            app: app.to_owned(),
            used,
            limit: wanted,
            fits: smallest,
        });
    }
    Ok(match mode {
        QuotaMode::Soft => Action::Record,
        QuotaMode::Hard => match image_size(wanted).cmp(&image_size(current)) {
            std::cmp::Ordering::Greater => Action::Grow,
            std::cmp::Ordering::Less => Action::Shrink,
            std::cmp::Ordering::Equal => Action::Record,
        },
    })
}

/// What the next command does with an interrupted resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// An online grow: the image may be extended, the filesystem grown or not. Grow again
    /// (idempotent); if the kernel refuses, the old size stays.
    FinishGrow,
    /// The resized copy is in place: keep the new size.
    KeepNew,
    /// The original image is in place and untouched: keep the old size.
    KeepOld,
}

/// Decide from the journal and the inode now at `mount.img`.
pub(crate) fn recovery(journal: &Journal, image_ino: Option<u64>) -> Recovery {
    match journal.method {
        Method::Online => Recovery::FinishGrow,
        Method::Offline if image_ino.is_some_and(|ino| ino != journal.image_ino) => Recovery::KeepNew,
        Method::Offline => Recovery::KeepOld,
    }
}

fn journal_path(paths: &AppPaths) -> PathBuf {
    paths.state_dir().join("resize.json")
}

/// The copy of this resize: a name of its own, so that nothing left of a killed resize can
/// ever touch the copy of the next one.
fn copy_path(paths: &AppPaths) -> PathBuf {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    paths.state_dir().join(format!("{COPY_PREFIX}{}-{nanos}", std::process::id()))
}

const COPY_PREFIX: &str = "mount.img.resize-";

/// Whether a resize was left unfinished (cheap: one `stat`).
pub(crate) fn pending(paths: &AppPaths) -> bool {
    journal_path(paths).exists()
}

fn write_journal(paths: &AppPaths, journal: &Journal) -> Result<(), MountError> {
    let path = journal_path(paths);
    atomic::write_json(&path, journal).map_err(|source| MountError::WriteRecord { path, source })
}

fn read_journal(paths: &AppPaths) -> Result<Option<Journal>, MountError> {
    let path = journal_path(paths);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| MountError::CorruptRecord { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MountError::ReadRecord { path, source }),
    }
}

/// Remove the journal and the copy; the resize is over. Also for `disable` and `destroy`.
pub(crate) fn forget(paths: &AppPaths) -> Result<(), MountError> {
    let copies = std::fs::read_dir(paths.state_dir())
        .map_err(MountError::io("read", paths.state_dir()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(COPY_PREFIX))
        .map(|e| e.path());
    for path in copies.chain([journal_path(paths)]) {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MountError::Io { action: "remove", path, source }),
        }
    }
    atomic::sync_dir(paths.state_dir()).map_err(MountError::io("sync", paths.state_dir()))
}

fn inode(path: &Path) -> Result<u64, MountError> {
    std::fs::metadata(path).map(|m| m.ino()).map_err(MountError::io("stat", path))
}

fn set_len(path: &Path, len: u64) -> Result<(), MountError> {
    let file = OpenOptions::new().write(true).open(path).map_err(MountError::io("open", path))?;
    file.set_len(len).map_err(MountError::io("resize", path))?;
    file.sync_all().map_err(MountError::io("sync", path))
}

/// Finish or undo a resize that a crash interrupted, and mount the image. The caller holds
/// the mount lock.
pub(crate) fn recover(paths: &AppPaths, app: &str) -> Result<(), MountError> {
    let Some(journal) = read_journal(paths)? else { return Ok(()) };
    let Some(mut settings) = record::enabled(paths)? else { return forget(paths) };
    let ino = match std::fs::metadata(paths.mount_image()) {
        Ok(m) => Some(m.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(MountError::Io { action: "stat", path: paths.mount_image(), source }),
    };
    let action = recovery(&journal, ino);
    tracing::info!(app, ?journal, ?action, "recovering an interrupted resize");
    loopdev::mount(paths, app)?;
    let new_size = match action {
        Recovery::FinishGrow => {
            let grown = finish_grow(paths, app, journal.to_bytes);
            if let Err(e) = &grown {
                tracing::warn!(app, error = %e, "cannot finish growing; the old size stays");
            }
            matches!(grown, Ok(true))
        }
        Recovery::KeepNew => true,
        Recovery::KeepOld => false,
    };
    if new_size && settings.limit_bytes != journal.to_bytes {
        settings.limit_bytes = journal.to_bytes;
        record::save(paths, &settings)?;
    }
    forget(paths)
}

fn finish_grow(paths: &AppPaths, app: &str, to: u64) -> Result<bool, MountError> {
    let image = paths.mount_image();
    if std::fs::metadata(&image).map_err(MountError::io("stat", &image))?.len() < image_size(to) {
        set_len(&image, image_size(to))?;
    }
    let device = loopdev::mounted_device(paths)?
        .ok_or_else(|| MountError::ImageMissing { app: app.to_owned(), image: image.clone() })?;
    loopdev::grow_online(&device)
}

/// Grow the mounted filesystem to `to` bytes online. `Ok(false)`: the kernel refuses online
/// resizing here; nothing changed. The caller holds the mount lock.
pub(crate) fn grow_online(
    paths: &AppPaths,
    app: &str,
    settings: &mut MountSettings,
    to: u64,
) -> Result<bool, MountError> {
    let image = paths.mount_image();
    let device = loopdev::mounted_device(paths)?
        .ok_or_else(|| MountError::ImageMissing { app: app.to_owned(), image: image.clone() })?;
    let before = std::fs::metadata(&image).map_err(MountError::io("stat", &image))?.len();
    write_journal(
        paths,
        &Journal {
            from_bytes: settings.limit_bytes,
            to_bytes: to,
            method: Method::Online,
            step: Step::Extending,
            image_ino: inode(&image)?,
        },
    )?;
    set_len(&image, image_size(to).max(before))?;
    match loopdev::grow_online(&device) {
        Ok(true) => {
            settings.limit_bytes = to;
            record::save(paths, settings)?;
            forget(paths)?;
            Ok(true)
        }
        Ok(false) => {
            // The kernel refused before touching the filesystem: the old length is safe again.
            set_len(&image, before)?;
            loopdev::refresh_capacity(&device)?;
            forget(paths)?;
            Ok(false)
        }
        // Left to recovery, which grows again or keeps the old size.
        Err(e) => Err(e),
    }
}

/// How long an unmount waits for the app's just-stopped processes to let go of the mount.
const RELEASE_PATIENCE: Duration = Duration::from_secs(5);

/// Resize to `to` bytes offline, on a copy renamed into place. The app's processes must be
/// stopped; anything else holding the mount makes it fail with nothing changed. The caller
/// holds the mount lock.
pub(crate) fn resize_offline(
    paths: &AppPaths,
    app: &str,
    settings: &mut MountSettings,
    to: u64,
    used: u64,
) -> Result<(), MountError> {
    let image = paths.mount_image();
    let copy = copy_path(paths);
    let mut journal = Journal {
        from_bytes: settings.limit_bytes,
        to_bytes: to,
        method: Method::Offline,
        step: Step::Unmounting,
        image_ino: inode(&image)?,
    };
    write_journal(paths, &journal)?;
    if let Err(e) = release(paths, app) {
        let remounted = loopdev::mount(paths, app);
        forget(paths)?;
        remounted?;
        return Err(e);
    }
    let prepared = (|| {
        journal.step = Step::Copying;
        write_journal(paths, &journal)?;
        loopdev::copy_image(&image, &copy)?;
        journal.step = Step::Resizing;
        write_journal(paths, &journal)?;
        let grow = image_size(to) > image_size(settings.limit_bytes);
        // A grown filesystem needs its room first; a shrunk one is cut after resize2fs.
        if grow {
            set_len(&copy, image_size(to))?;
        }
        if let Err(e) = loopdev::resize_offline(&copy, to) {
            tracing::debug!(app, error = %e, "offline resize2fs failed");
            // resize2fs's own words ("No space left on device") would not say what to do.
            let fits = loopdev::min_size(&copy).unwrap_or(0).max(used).max(MIN_LIMIT);
            return Err(match e {
                MountError::Tool { .. } if !grow => {
                    MountError::ShrinkBelowUsage { app: app.to_owned(), used, limit: to, fits }
                }
                e => e,
            });
        }
        set_len(&copy, image_size(to))?;
        journal.step = Step::Renaming;
        write_journal(paths, &journal)
    })();
    if let Err(e) = prepared {
        let _ = std::fs::remove_file(&copy);
        let remounted = loopdev::mount(paths, app);
        forget(paths)?;
        remounted?;
        return Err(e);
    }
    // The commit point.
    std::fs::rename(&copy, &image).map_err(MountError::io("rename the resized image to", &image))?;
    atomic::sync_dir(paths.state_dir()).map_err(MountError::io("sync", paths.state_dir()))?;
    journal.step = Step::Mounting;
    write_journal(paths, &journal)?;
    loopdev::mount(paths, app)?;
    remove_empty_lost_found(paths);
    settings.limit_bytes = to;
    record::save(paths, settings)?;
    forget(paths)
}

/// e2fsck recreates `lost+found`, which the app never asked for. Kept if e2fsck put
/// anything in it.
fn remove_empty_lost_found(paths: &AppPaths) {
    if let Ok(Some(root)) = anchor::open_mount_point(paths, rustix::fs::OFlags::RDONLY) {
        let _ = rustix::fs::unlinkat(&root, "lost+found", rustix::fs::AtFlags::REMOVEDIR);
    }
}

/// Unmount, waiting a little for processes that were just stopped, and make sure no loop
/// device outside our mount point still holds the image (a container's bind mount would keep
/// writing to the image we are about to replace).
fn release(paths: &AppPaths, app: &str) -> Result<(), MountError> {
    let deadline = Instant::now() + RELEASE_PATIENCE;
    loop {
        match loopdev::unmount(paths, app, false) {
            Ok(_) => break,
            Err(MountError::Busy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
    // The kernel may free an autoclear loop device a moment after the unmount.
    while loopdev::image_in_use(&paths.mount_image())? {
        if Instant::now() >= deadline {
            return Err(MountError::ImageInUse { app: app.to_owned(), image: paths.mount_image() });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing is mounted: the mount point is root's, mode 000 again (see anchor).
    anchor::create_hard_mount_point(paths).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn growing_shrinking_and_equal_sizes_are_told_apart() {
        let d = |cur, new| decide("demo", QuotaMode::Hard, cur, new, 10 * M, Some(20 * M));
        assert_eq!(d(64 * M, 128 * M).unwrap(), Action::Grow);
        assert_eq!(d(64 * M, 32 * M).unwrap(), Action::Shrink);
        assert_eq!(d(64 * M, 64 * M + 100).unwrap(), Action::Record, "same image size");
        let soft = decide("demo", QuotaMode::Soft, 64 * M, 32 * M, 10 * M, None).unwrap();
        assert_eq!(soft, Action::Record);
    }

    #[test]
    fn a_shrink_below_what_fits_names_the_usage_and_the_smallest_size() {
        let err = decide("demo", QuotaMode::Hard, 128 * M, 40 * M, 38 * M, Some(43 * M)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("38.0 MiB is in use"), "{text}");
        assert!(text.contains("--size 43M"), "{text}");
        assert!(!text.contains("resize2fs"), "{text}");
        // Growing is never refused for usage, and a too small limit is refused first.
        assert!(decide("demo", QuotaMode::Hard, 32 * M, 48 * M, 40 * M, Some(60 * M)).is_ok());
        assert!(matches!(
            decide("demo", QuotaMode::Hard, 64 * M, M, 0, None),
            Err(MountError::TooSmall { .. })
        ));
    }

    #[test]
    fn recovery_keeps_the_copy_only_once_it_replaced_the_image() {
        let j = Journal {
            from_bytes: 64 * M,
            to_bytes: 32 * M,
            method: Method::Offline,
            step: Step::Resizing,
            image_ino: 7,
        };
        assert_eq!(recovery(&j, Some(7)), Recovery::KeepOld);
        assert_eq!(recovery(&j, Some(9)), Recovery::KeepNew);
        assert_eq!(recovery(&Journal { method: Method::Online, ..j }, Some(7)), Recovery::FinishGrow);
    }

    #[test]
    fn the_journal_is_strict_json() {
        let j = Journal {
            from_bytes: 1,
            to_bytes: 2,
            method: Method::Offline,
            step: Step::Copying,
            image_ino: 3,
        };
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""method":"offline""#) && text.contains(r#""step":"copying""#), "{text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
        assert!(serde_json::from_str::<Journal>(&text.replace("\"step\"", "\"stp\"")).is_err());
    }
}
