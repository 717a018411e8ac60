//! What can go wrong with an app's persistent filesystem, each variant telling the fix.

use std::io;
use std::path::PathBuf;

use crate::state::LockError;

use super::size::{format_size, size_arg_up};

/// Failures of the persistent filesystem's lifecycle and file operations.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "the persistent filesystem of app {app} is disabled; enable it with `slipway mount enable {app}`"
    )]
    Disabled { app: String },
    #[error("cannot read the mount settings {path}")]
    ReadRecord {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the mount settings {path} are corrupt; fix or delete the file")]
    CorruptRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the mount settings {path}")]
    WriteRecord {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "SLIPWAY_MOUNT_MODE={value:?} is not a quota mode; use `hard` (ext4 image, needs root) or `soft`"
    )]
    BadModeEnv { value: String },
    #[error(
        "a hard size limit needs root, loop devices (/dev/loop-control) and mkfs.ext4 ({missing}); \
         run slipway as root with e2fsprogs installed, or set SLIPWAY_MOUNT_MODE=soft"
    )]
    HardUnavailable { missing: String },
    #[error("{limit} bytes is too small for a persistent filesystem; use at least {}", format_size(*min))]
    TooSmall { limit: u64, min: u64 },
    #[error("cannot run {tool}; install it (e2fsprogs, util-linux) or set SLIPWAY_MOUNT_MODE=soft")]
    Spawn {
        tool: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool { command: String, status: String, stderr: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is a symlink or not a directory; slipway will not mount through it. \
         Remove it and run `slipway mount enable` again"
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} already holds files; move them away before enabling a hard-limited persistent filesystem \
         (mounting would hide them)"
    )]
    MountPointNotEmpty { path: PathBuf },
    #[error("something other than the image {image} is mounted at {path}; unmount it with `umount {path}`")]
    ForeignMount { path: PathBuf, image: PathBuf },
    #[error(
        "the image {image} of app {app}'s persistent filesystem is missing; \
         run `slipway mount disable {app}` and enable it again"
    )]
    ImageMissing { app: String, image: PathBuf },
    #[error(
        "the persistent filesystem of app {app} is in use at {path}; stop the app (`slipway ps stop {app}`) \
         and retry"
    )]
    Busy {
        app: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot shrink the persistent filesystem of app {app} to {}: {} is in use, and the smallest \
         size that holds it is {}; nothing changed. Use `slipway mount enable {app} --size {}` or more, \
         or delete files first",
        format_size(*limit), format_size(*used), format_size(*fits), size_arg_up(*fits)
    )]
    ShrinkBelowUsage { app: String, used: u64, limit: u64, fits: u64 },
    #[error(
        "the image {image} of app {app} is still in use outside its mount point (a container or another \
         mount holds it); nothing changed. Stop what holds it (`slipway ps stop {app}`, \
         `slipway workspace delete {app}`) and retry"
    )]
    ImageInUse { app: String, image: PathBuf },
    #[error("path {path:?} escapes the persistent filesystem; paths are relative to its root")]
    Escape { path: String },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error(
        "{path:?} does not exist in the persistent filesystem of app {app}; see `slipway mount ls {app}`"
    )]
    NotFound { app: String, path: String },
    #[error("{path:?} is a directory in the persistent filesystem; {hint}")]
    IsDirectory { path: String, hint: &'static str },
    #[error("{path:?} is not a regular file or directory; only those can be copied")]
    NotRegular { path: String },
    #[error("refusing to remove the root of the persistent filesystem; use `slipway mount disable {app}`")]
    RootRemoval { app: String },
    #[error("refusing to rename the root of the persistent filesystem; rename a file or folder inside it")]
    RootRename,
    #[error(
        "{path:?} already exists in the persistent filesystem; nothing was renamed. Choose another name, or delete it first"
    )]
    Exists { path: String },
    #[error(
        "{path:?} changed meanwhile in the persistent filesystem of app {app}: it was edited, replaced, \
         created or removed since it was read; nothing was changed. Reload it and try again"
    )]
    Changed { app: String, path: String },
    #[error("cannot move the folder {from:?} into itself ({to:?}); nothing was renamed")]
    IntoItself { from: String, to: String },
    #[error(
        "the persistent filesystem of app {app} is full (limit {}) while writing {path:?}; \
         nothing was written. Free space, or raise the limit with `slipway mount enable {app} --size BIGGER`",
        format_size(*limit)
    )]
    Full { app: String, path: String, limit: u64 },
    #[error(
        "this would use {} more of app {app}'s {} limit ({} already used); nothing was written. \
         Free space, or raise the limit with `slipway mount enable {app} --size BIGGER`",
        format_size(*adding), format_size(*limit), format_size(*used)
    )]
    OverQuota { app: String, adding: u64, used: u64, limit: u64 },
    #[error("cannot {action} {path:?} in the persistent filesystem of app {app}")]
    File {
        app: String,
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} local path {path}")]
    Local {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "archive member {member:?} is refused: {reason}; nothing was imported. \
         An archive made by `slipway mount export` or `tar -C DIR -czf FILE .` has only relative names"
    )]
    UnsafeArchive { member: String, reason: &'static str },
    #[error("the archive is not a readable tar or tar.gz file ({reason}); nothing was imported")]
    BadArchive { reason: String },
    #[error("{path:?} {why}; nothing was imported. Remove it, or import into another directory")]
    ImportConflict { path: String, why: &'static str },
    #[error("the persistent filesystem tree of app {app} is deeper than {max} directories")]
    TooDeep { app: String, max: usize },
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl MountError {
    /// `Io` with a fixed action, for `map_err`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}

/// cap-std reports a path that resolves outside the directory as `PermissionDenied` with
/// this text (cap-primitives `escape_attempt`); openat2 `RESOLVE_BENEATH` gives `EXDEV`.
pub(crate) fn is_escape(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
        || (e.kind() == io::ErrorKind::PermissionDenied
            && e.to_string().contains("outside of the filesystem"))
}

/// ENOSPC, or EDQUOT from a kernel quota.
pub(crate) fn is_full(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || code == Some(rustix::io::Errno::DQUOT.raw_os_error())
}
