//! `slipway mount export` and `mount import`: the persistent filesystem, or one directory of
//! it, as a tar archive, for backups (before `mount disable`, say) and for moving data between
//! apps or machines.
//!
//! Export walks beneath the root without following symlinks. Import never lets a member leave
//! its destination: names are checked as text (no absolute paths, no `..`), symlinks, hard
//! links and devices are skipped, and the tar crate only reads here; files are written through
//! cap-std beneath the root, as `mount put` writes them. An import lands in a hidden staging
//! directory first and moves into place only once the whole archive has been read and checked
//! against the limit, so a corrupt, truncated, hostile or too-large archive changes nothing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::{OFlags, Timespec, Timestamps};
use serde::Serialize;
use tar::{Archive, Builder, EntryType, Header};

use super::{MountFs, cap, reopen, validate_rel_path};
use crate::mount::record::QuotaMode;
use crate::mount::{MountError, lifecycle, quota};

/// Deeper trees than this are refused rather than risking the stack.
const MAX_DEPTH: usize = 256;
/// Staging directories of imports, at the mount's root; never exported.
const STAGING_PREFIX: &str = ".slipway-import-";

/// What an export or an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Symlinks, hard links and special files: never followed, exported or created.
    pub skipped: Vec<PathBuf>,
    /// Files that changed while they were exported (an app process was writing them).
    pub changed: Vec<PathBuf>,
}

/// What an import does with one archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    Dir(PathBuf),
    File(PathBuf),
    /// A link or a device: never created, listed in the report.
    Skip(PathBuf),
    /// Metadata of the archive itself, or its root directory.
    Ignore,
}

/// Decides what to do with a member, from its name and type alone. Pure. A name that would
/// leave the destination refuses the whole archive.
pub(crate) fn classify(name: &Path, kind: EntryType) -> Result<Member, MountError> {
    let unsafe_member = |reason| MountError::UnsafeArchive { member: name.display().to_string(), reason };
    let mut rel = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_member("it is an absolute path")),
            Component::ParentDir => return Err(unsafe_member("it climbs out with `..`")),
        }
    }
    if rel.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(unsafe_member("it contains a NUL byte"));
    }
    Ok(match kind {
        EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {
            Member::Ignore
        }
        EntryType::Directory if rel.as_os_str().is_empty() => Member::Ignore,
        EntryType::Directory => Member::Dir(rel),
        _ if rel.as_os_str().is_empty() => return Err(unsafe_member("it has no name")),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Member::File(rel),
        _ => Member::Skip(rel),
    })
}

/// The permissions an imported file gets: executable or not, never setuid or world-writable.
pub(crate) fn file_mode(archived: u32) -> u32 {
    if archived & 0o111 != 0 { 0o755 } else { 0o644 }
}

impl MountFs {
    /// Writes `path` (a directory, or one file) as a tar archive to `out`. Member names are
    /// relative to `path`, so an import into any directory recreates its contents there.
    pub fn export(&self, path: &str, out: impl Write) -> Result<ArchiveReport, MountError> {
        let rel = validate_rel_path(path)?;
        let mut report = ArchiveReport::default();
        let mut builder = Builder::new(out);
        let meta = self.root.symlink_metadata(cap(&rel)).map_err(self.fail("export", path))?;
        if meta.is_dir() {
            let dir = self.root.open_dir(cap(&rel)).map_err(self.fail("export", path))?;
            self.export_dir(&mut builder, &dir, &rel, Path::new(""), 0, &mut report)?;
        } else if meta.is_file() {
            let name = PathBuf::from(rel.file_name().unwrap_or_default());
            let parent = self
                .root
                .open_dir(cap(rel.parent().unwrap_or(Path::new(""))))
                .map_err(self.fail("export", path))?;
            self.export_file(&mut builder, &parent, &rel, &name, &mut report)?;
        } else {
            return Err(MountError::NotRegular { path: path.to_owned() });
        }
        builder.into_inner().and_then(|mut w| w.flush()).map_err(archive_write)?;
        Ok(report)
    }

    fn export_dir<W: Write>(
        &self,
        builder: &mut Builder<W>,
        dir: &Dir,
        rel: &Path,
        member: &Path,
        depth: usize,
        report: &mut ArchiveReport,
    ) -> Result<(), MountError> {
        if depth > MAX_DEPTH {
            return Err(MountError::TooDeep { app: self.app.clone(), max: MAX_DEPTH });
        }
        let shown = rel.to_string_lossy();
        let mut entries = dir
            .entries()
            .and_then(Iterator::collect::<io::Result<Vec<_>>>)
            .map_err(self.fail("export", &shown))?;
        entries.sort_by_key(cap_std::fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name();
            if depth == 0 && rel.as_os_str().is_empty() && is_scratch(&name.to_string_lossy()) {
                continue;
            }
            let (child_rel, child_member) = (rel.join(&name), member.join(&name));
            let kind = match e.file_type() {
                Ok(k) => k,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(self.fail("export", &child_rel.to_string_lossy())(err)),
            };
            if kind.is_dir() {
                let shown = child_rel.to_string_lossy();
                let meta = e.metadata().map_err(self.fail("export", &shown))?;
                let mut header = header_for(EntryType::Directory, 0o755, meta.mtime());
                builder.append_data(&mut header, &child_member, io::empty()).map_err(archive_write)?;
                report.dirs += 1;
                let sub = dir.open_dir(&name).map_err(self.fail("export", &shown))?;
                self.export_dir(builder, &sub, &child_rel, &child_member, depth + 1, report)?;
            } else if kind.is_file() {
                self.export_file(builder, dir, &child_rel, &child_member, report)?;
            } else {
                report.skipped.push(child_rel);
            }
        }
        Ok(())
    }

    fn export_file<W: Write>(
        &self,
        builder: &mut Builder<W>,
        parent: &Dir,
        rel: &Path,
        member: &Path,
        report: &mut ArchiveReport,
    ) -> Result<(), MountError> {
        let shown = rel.to_string_lossy();
        let name = rel.file_name().unwrap_or_default();
        // O_NOFOLLOW: a file swapped for a symlink since the listing is not followed;
        // O_NONBLOCK: nor does a FIFO swapped in hang the export.
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(flags(OFlags::NOFOLLOW | OFlags::NONBLOCK));
        let file = match parent.open_with(name, &options) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                report.skipped.push(rel.to_owned());
                return Ok(());
            }
            Err(e) => return Err(self.fail("export", &shown)(e)),
        };
        let meta = file.metadata().map_err(self.fail("export", &shown))?;
        if !meta.is_file() {
            report.skipped.push(rel.to_owned());
            return Ok(());
        }
        let len = meta.len();
        let mut header = header_for(EntryType::Regular, file_mode(meta.mode()), meta.mtime());
        header.set_size(len);
        let mut body = Exact { inner: file.into_std(), left: len, short: false };
        builder.append_data(&mut header, member, &mut body).map_err(archive_write)?;
        let after = body.inner.metadata().map_err(self.fail("export", &shown))?;
        if body.short || after.len() != len || std::os::unix::fs::MetadataExt::mtime(&after) != meta.mtime() {
            report.changed.push(rel.to_owned());
        }
        report.files += 1;
        report.bytes += len;
        Ok(())
    }

    /// Reads a tar archive, gzip-compressed or not, into the directory `dest` (created if
    /// missing). Existing files of the same names are replaced; nothing else is touched.
    pub fn import(&self, input: impl Read, dest: &str) -> Result<ArchiveReport, MountError> {
        let dest_rel = validate_rel_path(dest)?;
        if !self.is_dir(dest)? && self.root.symlink_metadata(cap(&dest_rel)).is_ok() {
            return Err(MountError::ImportConflict { path: dest.to_owned(), why: "is not a directory" });
        }
        self.sweep_stale_staging();
        let staging_name = format!("{STAGING_PREFIX}{}-{}", std::process::id(), super::unique_suffix());
        let mut builder = DirBuilder::new();
        builder.mode(0o700);
        self.root.create_dir_with(&staging_name, &builder).map_err(self.fail("import into", dest))?;
        let result = (|| {
            let staging = self.root.open_dir(&staging_name).map_err(self.fail("import into", dest))?;
            let report = self.extract(input, &staging, &dest_rel)?;
            self.check_conflicts(&staging, Path::new(""), &dest_rel, 0)?;
            // The data is durable before it becomes visible in place.
            rustix::fs::syncfs(reopen(&staging)?).map_err(|e| self.fail("import into", dest)(e.into()))?;
            self.mkdir(dest)?;
            let target = self.root.open_dir(cap(&dest_rel)).map_err(self.fail("import into", dest))?;
            self.move_into(&staging, &target, &dest_rel, 0)?;
            rustix::fs::syncfs(reopen(&target)?).map_err(|e| self.fail("import into", dest)(e.into()))?;
            Ok(report)
        })();
        let _ = self.root.remove_dir_all(&staging_name);
        result
    }

    fn extract(&self, input: impl Read, staging: &Dir, dest_rel: &Path) -> Result<ArchiveReport, MountError> {
        let mut report = ArchiveReport::default();
        let corrupt = |e: io::Error| MountError::BadArchive { reason: e.to_string() };
        let mut reader = BufReader::with_capacity(256 * 1024, input);
        let head = reader.fill_buf().map_err(corrupt)?;
        if head.is_empty() {
            return Err(MountError::BadArchive { reason: "it is empty".into() });
        }
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let stream: Box<dyn Read> =
            if gzip { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
        let mut archive = Archive::new(stream);
        // Soft mode: the limit is checked as members arrive, counting replaced files as freed.
        let soft = (self.settings.mode == QuotaMode::Soft)
            .then(|| lifecycle::used_bytes(&self.paths, &self.settings, &self.app))
            .transpose()?;
        let mut net: i128 = 0;
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let name = entry.path().map_err(corrupt)?.into_owned();
            match classify(&name, entry.header().entry_type())? {
                Member::Ignore => {}
                Member::Skip(rel) => report.skipped.push(rel),
                Member::Dir(rel) => {
                    self.make_dirs(staging, &rel, &rel.to_string_lossy())?;
                    report.dirs += 1;
                }
                Member::File(rel) => {
                    let size = entry.header().size().map_err(corrupt)?;
                    if let Some(used) = soft {
                        let replacing = self
                            .root
                            .symlink_metadata(dest_rel.join(&rel))
                            .ok()
                            .filter(cap_std::fs::Metadata::is_file)
                            .map_or(0, |m| m.len());
                        net += i128::from(size) - i128::from(replacing);
                        let adding = u64::try_from(net.max(0)).unwrap_or(u64::MAX);
                        quota::check_soft(&self.app, used, 0, adding, self.settings.limit_bytes)?;
                    }
                    let mode = entry.header().mode().unwrap_or(0o644);
                    let mtime = entry.header().mtime().unwrap_or(0);
                    report.bytes += self.write_member(staging, &rel, &mut entry, mode, mtime)?;
                    report.files += 1;
                }
            }
        }
        Ok(report)
    }

    fn write_member(
        &self,
        staging: &Dir,
        rel: &Path,
        body: &mut impl Read,
        mode: u32,
        mtime: u64,
    ) -> Result<u64, MountError> {
        let shown = rel.to_string_lossy();
        let parent = self.make_dirs(staging, rel.parent().unwrap_or(Path::new("")), &shown)?;
        let name = rel.file_name().unwrap_or_default();
        // A name the archive gave twice: the later one wins, as with tar itself.
        let _ = parent.remove_file(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(file_mode(mode)).custom_flags(flags(OFlags::NOFOLLOW));
        let file = parent.open_with(name, &options).map_err(self.fail("import", &shown))?;
        let mut file = file.into_std();
        let n = io::copy(body, &mut file).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
                MountError::BadArchive { reason: e.to_string() }
            }
            _ => self.fail("import", &shown)(e),
        })?;
        let fd = OwnedFd::from(file);
        let when = Timespec { tv_sec: i64::try_from(mtime).unwrap_or(0), tv_nsec: 0 };
        let _ = rustix::fs::futimens(&fd, &Timestamps { last_access: when, last_modification: when });
        self.chown(&fd).map_err(self.fail("import", &shown))?;
        Ok(n)
    }

    /// Refuses, before anything moves, an archive whose file would replace a directory of the
    /// mount, or whose directory would replace a file or a symlink.
    fn check_conflicts(
        &self,
        staged: &Dir,
        rel: &Path,
        dest_rel: &Path,
        depth: usize,
    ) -> Result<(), MountError> {
        if depth > MAX_DEPTH {
            return Err(MountError::TooDeep { app: self.app.clone(), max: MAX_DEPTH });
        }
        for e in staged.entries().map_err(self.fail("import", "."))? {
            let e = e.map_err(self.fail("import", "."))?;
            let child = rel.join(e.file_name());
            let in_mount = dest_rel.join(&child);
            let Ok(existing) = self.root.symlink_metadata(&in_mount) else { continue };
            let staged_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let shown = in_mount.to_string_lossy().into_owned();
            if staged_dir && !existing.is_dir() {
                return Err(MountError::ImportConflict {
                    path: shown,
                    why: "is a file or symlink in the mount but a directory in the archive",
                });
            }
            if !staged_dir && existing.is_dir() {
                return Err(MountError::ImportConflict {
                    path: shown,
                    why: "is a directory in the mount but a file in the archive",
                });
            }
            if staged_dir {
                let sub = staged.open_dir(e.file_name()).map_err(self.fail("import", &shown))?;
                self.check_conflicts(&sub, &child, dest_rel, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Renames every staged entry into `target`: new directories whole, existing ones merged,
    /// files over the old ones (a rename replaces a symlink; it never writes through it).
    fn move_into(&self, staged: &Dir, target: &Dir, rel: &Path, depth: usize) -> Result<(), MountError> {
        if depth > MAX_DEPTH {
            return Err(MountError::TooDeep { app: self.app.clone(), max: MAX_DEPTH });
        }
        let shown = rel.to_string_lossy();
        for e in staged.entries().map_err(self.fail("import", &shown))? {
            let e = e.map_err(self.fail("import", &shown))?;
            let name = e.file_name();
            let merge = e.file_type().is_ok_and(|t| t.is_dir())
                && target.symlink_metadata(&name).is_ok_and(|m| m.is_dir());
            if merge {
                let from = staged.open_dir(&name).map_err(self.fail("import", &shown))?;
                let to = target.open_dir(&name).map_err(self.fail("import", &shown))?;
                self.move_into(&from, &to, &rel.join(&name), depth + 1)?;
            } else {
                staged
                    .rename(&name, target, &name)
                    .map_err(self.fail("import", &rel.join(&name).to_string_lossy()))?;
            }
        }
        Ok(())
    }

    /// Removes staging directories left by an import that was killed (its process is gone).
    fn sweep_stale_staging(&self) {
        let Ok(entries) = self.root.entries() else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(STAGING_PREFIX).and_then(|r| r.split('-').next()) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = self.root.remove_dir_all(&name);
            }
        }
        super::inflight::sweep(&self.paths, &self.root);
    }
}

fn archive_write(e: io::Error) -> MountError {
    MountError::Local { action: "write the archive to", path: PathBuf::from("the output"), source: e }
}

/// Scratch files of slipway's own at the mount's root: import staging, put temp files.
fn is_scratch(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
        || (name.starts_with(".slipway-put-") && Path::new(name).extension().is_some_and(|e| e == "part"))
}

fn header_for(kind: EntryType, mode: u32, mtime: i64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(0);
    h
}

fn flags(f: OFlags) -> i32 {
    i32::try_from(f.bits()).unwrap_or(0)
}

/// Exactly `left` bytes of `inner`: a file that shrank while it was read is padded with
/// zeros, one that grew is cut, so the archive always matches the size in its header.
struct Exact<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = if self.short { 0 } else { self.inner.read(&mut buf[..want])? };
        let n = if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, kind: EntryType) -> Result<Member, MountError> {
        classify(Path::new(name), kind)
    }

    #[test]
    fn names_that_leave_the_destination_refuse_the_archive() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "./../x", "/"] {
            let err = member(bad, EntryType::Regular).unwrap_err();
            assert!(matches!(err, MountError::UnsafeArchive { .. }), "{bad}: {err}");
        }
        let msg = member("../../root/.ssh/authorized_keys", EntryType::Regular).unwrap_err().to_string();
        assert!(msg.contains("../../root/.ssh/authorized_keys") && msg.contains("`..`"), "{msg}");
    }

    #[test]
    fn files_and_directories_are_kept_and_links_and_devices_skipped() {
        assert_eq!(member("./data/x.csv", EntryType::Regular).unwrap(), Member::File("data/x.csv".into()));
        assert_eq!(member("data/", EntryType::Directory).unwrap(), Member::Dir("data".into()));
        assert_eq!(member("./", EntryType::Directory).unwrap(), Member::Ignore);
        assert_eq!(member("..data", EntryType::Regular).unwrap(), Member::File("..data".into()));
        for kind in [EntryType::Symlink, EntryType::Link, EntryType::Char, EntryType::Block, EntryType::Fifo]
        {
            assert_eq!(member("evil", kind).unwrap(), Member::Skip("evil".into()), "{kind:?}");
        }
        assert!(member("./", EntryType::Regular).is_err(), "a file needs a name");
    }

    #[test]
    fn modes_keep_only_the_executable_bit() {
        assert_eq!(file_mode(0o4755), 0o755);
        assert_eq!(file_mode(0o666), 0o644);
        assert_eq!(file_mode(0o700), 0o755);
        assert_eq!(file_mode(0o600), 0o644);
    }

    #[test]
    fn exact_pads_a_short_file_and_cuts_a_long_one() {
        let mut out = Vec::new();
        let mut short = Exact { inner: &b"abc"[..], left: 5, short: false };
        short.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        assert!(short.short);
        out.clear();
        let mut long = Exact { inner: &b"abcdef"[..], left: 4, short: false };
        long.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
        assert!(!long.short);
    }
}
