//! The persistent filesystem: one directory per app, shared by every process of every
//! release and by the workspace (`../mount`, `~/mount`), kept across deploys and limited in
//! size. Hard limits use a loop-mounted ext4 image (root only); soft limits a plain directory
//! that slipway measures. File operations from outside go through [`MountFs`], which resolves
//! every path beneath the mount's root.
//!
//! Lifecycle: [`enable`] → [`attach`] before anything runs → [`set_limit`] →
//! [`disable`] (deletes every file) or [`destroy`] (with the app).

mod anchor;
mod errors;
mod lifecycle;
mod loopdev;
mod quota;
mod record;
mod resize;
mod safe_ops;
mod size;
mod usage;

use rustix::fs::OFlags;
use serde::Serialize;

use crate::state::AppPaths;

pub use errors::MountError;
pub use lifecycle::{
    DisableOutcome, EnableOutcome, Resized, StopReason, attach, destroy, disable, disable_preview, enable,
    set_limit,
};
pub use quota::{DEFAULT_LIMIT, HostSupport, MIN_LIMIT};
pub(crate) use record::save as save_settings;
pub use record::{MountSettings, QuotaMode, settings};
pub use safe_ops::{
    ArchiveReport, Entry, EntryKind, MountFs, Precondition, Put, PutReport, PutSink, Unconditional, Version,
    validate_rel_path,
};
pub use size::{SizeError, format_size, parse_size, percent, size_arg_up};
pub use usage::Usage;

/// The state of an app's persistent filesystem, for `mount status`.
#[derive(Debug, Clone, Serialize)]
pub struct MountStatus {
    pub app: String,
    pub enabled: bool,
    pub mode: Option<QuotaMode>,
    pub path: Option<std::path::PathBuf>,
    pub limit_bytes: u64,
    /// Counted against the limit: the filesystem's figure (hard) or the sum of file sizes (soft).
    pub used_bytes: u64,
    /// The sum of file sizes.
    pub apparent_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    /// What can really be stored: the limit (soft), or the limit less ext4's overhead (hard).
    pub capacity_bytes: u64,
    /// `used_bytes` as a percentage of `capacity_bytes`; 100 when full.
    pub percent: f64,
    /// At or over the limit: a hard-limited mount that answers ENOSPC counts.
    pub over_limit: bool,
}

/// What the mount holds; attaches it first. Errors if disabled.
pub fn usage(paths: &AppPaths) -> Result<Usage, MountError> {
    let app = app_name(paths);
    attach(paths)?.ok_or_else(|| MountError::Disabled { app: app.clone() })?;
    lifecycle::measure(paths, &app)
}

/// Enabled or not, mode, limit and usage; attaches the mount first (remounting after a reboot).
pub fn status(paths: &AppPaths) -> Result<MountStatus, MountError> {
    let app = app_name(paths);
    let settings = settings(paths)?;
    let Some(settings) = settings.filter(|s| s.enabled) else {
        return Ok(MountStatus {
            app,
            enabled: false,
            mode: None,
            path: None,
            limit_bytes: 0,
            used_bytes: 0,
            apparent_bytes: 0,
            files: 0,
            dirs: 0,
            capacity_bytes: 0,
            percent: 0.0,
            over_limit: false,
        });
    };
    let path = attach(paths)?;
    let usage = lifecycle::measure(paths, &app)?;
    let space = match settings.mode {
        QuotaMode::Soft => None,
        QuotaMode::Hard => {
            anchor::open_mount_point(paths, OFlags::RDONLY)?.as_ref().and_then(loopdev::fs_space)
        }
    };
    let (used, capacity, full) = match space {
        Some(space) => (space.used, space.capacity(), space.full()),
        None if settings.mode == QuotaMode::Soft => {
            (usage.bytes, settings.limit_bytes, usage.bytes > settings.limit_bytes)
        }
        None => (usage.allocated_bytes, settings.limit_bytes, usage.allocated_bytes >= settings.limit_bytes),
    };
    Ok(MountStatus {
        app,
        enabled: true,
        mode: Some(settings.mode),
        path,
        limit_bytes: settings.limit_bytes,
        used_bytes: used,
        apparent_bytes: usage.bytes,
        files: usage.files,
        dirs: usage.dirs,
        capacity_bytes: capacity,
        percent: if full && settings.mode == QuotaMode::Hard { 100.0 } else { percent(used, capacity) },
        over_limit: full,
    })
}

/// The app's name: the last component of `apps/<app>`.
fn app_name(paths: &AppPaths) -> String {
    paths.dir().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
