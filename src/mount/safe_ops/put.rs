//! Puts: a file streamed into the mount through a temp file beside its target, fsynced, then
//! renamed into place, so readers see the old file or the new one and a failed or cancelled
//! put leaves nothing. The soft quota is checked before a byte is written when the length is
//! known, and as the bytes arrive otherwise.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use cap_std::fs::{OpenOptions, OpenOptionsExt as _};

use super::inflight::{self, InFlight};
use super::version::{Precondition, Unconditional, Version};
use super::{MountError, MountFs, PutReport, cap, plan_local, reopen, temp_name, validate_rel_path};
use crate::mount::{QuotaMode, lifecycle, quota};

/// Writeback of a put's bytes is started every this many bytes (`sync_file_range`), so the
/// disk works while the rest arrives and the final fsync has little left to do, and the page
/// cache never holds more than this much of one upload unwritten.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A finished put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub bytes: u64,
    /// The new file's version (see [`Version`]).
    pub version: Version,
}

/// The temp file a put writes into: refuses bytes past the soft limit as they arrive, and
/// starts their writeback to disk as it goes.
#[derive(Debug)]
pub struct PutSink {
    file: File,
    written: u64,
    /// Soft mode: how many bytes may be written in all. Hard mode: ext4 answers ENOSPC itself.
    room: Option<u64>,
    over: bool,
    flushed: u64,
}

impl PutSink {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn admit(&mut self, len: usize) -> io::Result<()> {
        if let Some(room) = self.room
            && self.written + len as u64 > room
        {
            self.over = true;
            return Err(io::Error::other("the put crosses the persistent filesystem's limit"));
        }
        Ok(())
    }

    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        if self.written - self.flushed >= WRITEBACK_EVERY {
            // Only a hint to start writing back: the fsync before the rename is what makes the
            // put durable, so a failure here changes nothing.
            let len = i64::try_from(self.written - self.flushed).unwrap_or(i64::MAX);
            let off = i64::try_from(self.flushed).unwrap_or(i64::MAX);
            // SAFETY: sync_file_range reads no memory of ours, and the descriptor is open.
            unsafe {
                libc::sync_file_range(self.file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE);
            }
            self.flushed = self.written;
        }
    }

    /// Writes every byte of `bufs` (one `writev` per call when the kernel takes them all).
    pub fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        IoSlice::advance_slices(&mut rest, 0);
        while !rest.is_empty() {
            match self.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Write for PutSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.admit(buf.len())?;
        let n = self.file.write(buf)?;
        self.wrote(n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.admit(bufs.iter().map(|b| b.len()).sum())?;
        let n = self.file.write_vectored(bufs)?;
        self.wrote(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MountFs {
    /// Stream `reader` into `dest` atomically. In soft mode a `len_hint` that would cross the
    /// limit is refused before anything is written. Returns the bytes written.
    pub fn put_file(
        &self,
        reader: &mut impl Read,
        dest: &str,
        len_hint: Option<u64>,
    ) -> Result<u64, MountError> {
        self.put_with(dest, len_hint, &Unconditional, |sink| io::copy(reader, sink)).map(|p| p.bytes)
    }

    /// Put `dest` with bytes that `write` writes into the sink, if `pre` holds for what `dest`
    /// is now: checked before `write` runs (so a refused put reads nothing) and again under
    /// the edit lock right before the rename. Missing parent folders are created.
    pub fn put_with(
        &self,
        dest: &str,
        len_hint: Option<u64>,
        pre: &dyn Precondition,
        write: impl FnOnce(&mut PutSink) -> io::Result<u64>,
    ) -> Result<Put, MountError> {
        self.put_checked(dest, len_hint, pre, true, write)
    }

    fn put_checked(
        &self,
        dest: &str,
        len_hint: Option<u64>,
        pre: &dyn Precondition,
        check_quota: bool,
        write: impl FnOnce(&mut PutSink) -> io::Result<u64>,
    ) -> Result<Put, MountError> {
        let rel = validate_rel_path(dest)?;
        let Some(name) = rel.file_name() else {
            return Err(MountError::IsDirectory { path: dest.to_owned(), hint: "give a file name" });
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        // Missing parents are created, as `mkdir` would (concurrent puts may race to do it).
        let parent = match self.root.open_dir(cap(parent_rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.mkdir(&parent_rel.to_string_lossy())?;
                self.root.open_dir(cap(parent_rel))
            }
            other => other,
        }
        .map_err(self.fail("open the directory of", dest))?;
        inflight::sweep(&self.paths, &self.root);
        let replacing = match parent.symlink_metadata(name) {
            Ok(m) if m.is_dir() => {
                return Err(MountError::IsDirectory {
                    path: dest.to_owned(),
                    hint: "end the destination with / to put into it",
                });
            }
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        if !pre.is_unconditional() {
            self.check(&parent, name, dest, pre)?;
        }
        let room = if check_quota && self.settings.mode == QuotaMode::Soft {
            let used = lifecycle::used_bytes(&self.paths, &self.settings, &self.app)?;
            if let Some(adding) = len_hint {
                quota::check_soft(&self.app, used, replacing, adding, self.settings.limit_bytes)?;
            }
            Some(self.settings.limit_bytes.saturating_sub(used.saturating_sub(replacing)))
        } else {
            None
        };
        let tmp = temp_name();
        let record = InFlight::begin(&self.paths, parent_rel, &tmp);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        let file = match parent.open_with(&tmp, &options) {
            Ok(file) => file,
            Err(e) => {
                if let Some(r) = record {
                    r.end();
                }
                return Err(self.fail("create a temp file for", dest)(e));
            }
        };
        let mut sink = PutSink { file: file.into_std(), written: 0, room, over: false, flushed: 0 };
        let done = (|| {
            let n = match write(&mut sink) {
                Ok(n) => n,
                Err(_) if sink.over => {
                    return Err(MountError::OverQuota {
                        app: self.app.clone(),
                        adding: sink.written,
                        used: self.settings.limit_bytes.saturating_sub(room.unwrap_or(0)),
                        limit: self.settings.limit_bytes,
                    });
                }
                Err(e) => return Err(self.fail("write", dest)(e)),
            };
            if check_quota && len_hint.is_none() {
                // Another put may have written meanwhile: the walk counts the temp file
                // itself, `n` is in flight.
                self.check_soft(replacing, n, n)?;
            }
            let file = &sink.file;
            file.sync_all().map_err(self.fail("write", dest))?;
            self.chown(file).map_err(self.fail("write", dest))?;
            let version = Version::of_std(&file.metadata().map_err(self.fail("write", dest))?);
            {
                let _edit = self.edit_lock()?;
                let checked =
                    if pre.is_unconditional() { None } else { self.check(&parent, name, dest, pre)? };
                // What was checked absent must still be: a file the app created meanwhile is
                // not overwritten.
                let flags = if pre.is_unconditional() || checked.is_some() {
                    rustix::fs::RenameFlags::empty()
                } else {
                    rustix::fs::RenameFlags::NOREPLACE
                };
                match rustix::fs::renameat_with(&parent, tmp.as_str(), &parent, name, flags) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {
                        return Err(MountError::Changed { app: self.app.clone(), path: dest.to_owned() });
                    }
                    Err(e) => return Err(self.fail("rename into place", dest)(e.into())),
                }
            }
            // cap-std may hold directories as O_PATH descriptors, which cannot be fsynced.
            rustix::fs::fsync(reopen(&parent)?).map_err(|e| self.fail("write", dest)(e.into()))?;
            Ok(Put { bytes: n, version })
        })();
        if done.is_err() {
            let _ = parent.remove_file(&tmp);
        }
        if let Some(r) = record {
            r.end();
        }
        done
    }

    /// Soft mode: refuse a write that would cross the limit.
    /// `in_flight` bytes already on disk (a temp file) are not counted as used.
    pub(super) fn check_soft(&self, replacing: u64, adding: u64, in_flight: u64) -> Result<(), MountError> {
        if self.settings.mode != QuotaMode::Soft {
            return Ok(());
        }
        let used = lifecycle::used_bytes(&self.paths, &self.settings, &self.app)?.saturating_sub(in_flight);
        quota::check_soft(&self.app, used, replacing, adding, self.settings.limit_bytes)
    }

    /// Copy a local file or directory (recursively) to `dest`.
    pub fn put_local(&self, src: &Path, dest: &str) -> Result<PutReport, MountError> {
        let local = |action| move |source| MountError::Local { action, path: src.to_owned(), source };
        let meta = std::fs::metadata(src).map_err(local("read"))?;
        let mut report = PutReport::default();
        if meta.is_file() {
            let mut f = File::open(src).map_err(local("open"))?;
            report.bytes = self.put_file(&mut f, dest, Some(meta.len()))?;
            report.files = 1;
            return Ok(report);
        }
        let mut plan = Vec::new();
        let total = plan_local(src, Path::new(""), &mut plan, &mut report.skipped)?;
        self.check_soft(0, total, 0)?;
        let base = validate_rel_path(dest)?;
        self.mkdir(dest)?;
        for (rel, is_dir) in plan {
            let target = base.join(&rel).to_string_lossy().into_owned();
            if is_dir {
                self.mkdir(&target)?;
            } else {
                let path = src.join(&rel);
                let mut f = File::open(&path).map_err(|source| MountError::Local {
                    action: "open",
                    path: path.clone(),
                    source,
                })?;
                report.bytes += self
                    .put_checked(&target, None, &Unconditional, false, |sink| io::copy(&mut f, sink))?
                    .bytes;
                report.files += 1;
            }
        }
        Ok(report)
    }
}
