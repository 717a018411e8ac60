//! Versions of a mount's entries, so that an edit can insist that the entry is still the one
//! its caller read (HTTP's `If-Match`, `If-None-Match: *`) and otherwise refuse, changing
//! nothing. Every edit through [`MountFs`] (put, remove, rename) checks and acts under one
//! per-mount lock, so two edits can never both pass the check on the same version and the
//! second silently undo the first (a lost update). The app's own processes write without
//! that lock; a put that expects "nothing there" renames with `RENAME_NOREPLACE`, so even a
//! file the app creates meanwhile is not overwritten.

use std::fmt;

use cap_std::fs::{Dir, MetadataExt};

use crate::state::{FileLock, Wait};

use super::{MountError, MountFs};

/// The version of a file, folder or symlink: its inode, size and modification time (in
/// nanoseconds). Rewriting a file changes its size or mtime; replacing it (a put renames a
/// new file into place) changes its inode; adding or removing a folder's entries changes the
/// folder's mtime.
///
/// The kernel stamps mtimes from a coarse clock, so two rewrites of a file to the same size
/// within one tick (a few ms) can share a version. Puts through slipway always replace the
/// inode, so this only concerns in-place writes by the app itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Version {
    /// From the raw fields of a `stat`.
    pub fn new(ino: u64, size: u64, mtime: i64, mtime_nsec: i64) -> Self {
        Self { ino, size, mtime, mtime_nsec }
    }

    /// The version of the entry `meta` describes (not following a final symlink).
    pub(super) fn of(meta: &cap_std::fs::Metadata) -> Self {
        Self::new(meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
    }

    /// The version of an open file.
    pub fn of_std(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self::new(meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
    }
}

/// The text, made of `[0-9a-f.-]` only, so it needs no escaping in an HTTP `ETag`.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{:x}-{:x}.{:x}", self.ino, self.size, self.mtime, self.mtime_nsec)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A caller's condition on the current version of the entry an edit changes (`None`: nothing
/// is there), checked under the mount's edit lock right before the change.
pub trait Precondition {
    /// Whether the edit may go ahead.
    fn holds(&self, current: Option<&Version>) -> bool;
    /// Whether it holds whatever is there, so that there is nothing to check.
    fn is_unconditional(&self) -> bool {
        false
    }
}

/// No condition: the edit goes ahead whatever is there (the CLI's puts, removes, renames).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unconditional;

impl Precondition for Unconditional {
    fn holds(&self, _current: Option<&Version>) -> bool {
        true
    }
    fn is_unconditional(&self) -> bool {
        true
    }
}

impl MountFs {
    /// The version of the entry at `path` (a symlink's own, not its target's), or `None` if
    /// nothing is there.
    pub fn version(&self, path: &str) -> Result<Option<Version>, MountError> {
        let rel = super::validate_rel_path(path)?;
        let meta = match rel.file_name() {
            None => self.root.dir_metadata(),
            Some(name) => {
                match self.root.open_dir(super::cap(rel.parent().unwrap_or(std::path::Path::new("")))) {
                    Ok(parent) => parent.symlink_metadata(name),
                    Err(e) => Err(e),
                }
            }
        };
        match meta {
            Ok(m) => Ok(Some(Version::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail("inspect", path)(e)),
        }
    }

    /// Serialises this mount's edits (across processes: a `flock` in the app's root-only
    /// state), for the moment between checking a precondition and acting on it.
    pub(super) fn edit_lock(&self) -> Result<FileLock, MountError> {
        let path = self.paths.state_dir().join("edits.lock");
        Ok(FileLock::acquire(&path, "the persistent filesystem's edit lock", Wait::Yes, || {})?)
    }

    /// Refuses with [`MountError::Changed`] unless `pre` holds for `name` in `parent` now.
    /// Returns the current version. Call it holding [`MountFs::edit_lock`].
    pub(super) fn check(
        &self,
        parent: &Dir,
        name: &std::ffi::OsStr,
        shown: &str,
        pre: &dyn Precondition,
    ) -> Result<Option<Version>, MountError> {
        let current = match parent.symlink_metadata(name) {
            Ok(m) => Some(Version::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.fail("inspect", shown)(e)),
        };
        if pre.holds(current.as_ref()) {
            Ok(current)
        } else {
            Err(MountError::Changed { app: self.app.clone(), path: shown.to_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_changes_with_each_field_and_is_plain_text() {
        let v = Version::new(0x1f, 11, 1_700_000_000, 5);
        assert_eq!(v.to_string(), "1f-b-6553f100.5");
        assert_ne!(v, Version::new(0x20, 11, 1_700_000_000, 5), "another inode");
        assert_ne!(v, Version::new(0x1f, 12, 1_700_000_000, 5), "another size");
        assert_ne!(v, Version::new(0x1f, 11, 1_700_000_000, 6), "another mtime");
        assert!(v.to_string().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'.'));
    }

    #[test]
    fn unconditional_holds_for_anything() {
        assert!(Unconditional.holds(None) && Unconditional.holds(Some(&Version::new(1, 2, 3, 4))));
        assert!(Unconditional.is_unconditional());
    }
}
