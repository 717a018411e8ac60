//! File operations from outside the app (`slipway mount ls/put/get/rm/mkdir/mv`), run as root on
//! a tree the app's user controls. Every path is first checked as text, then resolved by
//! cap-std beneath the mount's root (openat2 `RESOLVE_BENEATH` where the kernel has it), so
//! neither `..` nor a symlink planted by the app (`data -> /etc`) can reach outside. A put
//! streams into a temp file in the target directory and renames it into place, so readers see
//! the old file or the new one, and the rename replaces a planted symlink instead of writing
//! through it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use rustix::fs::{Gid, OFlags, Uid};
use serde::Serialize;

use crate::state::AppPaths;

use super::errors::{is_escape, is_full};
use super::record::{self, MountSettings};
use super::{MountError, anchor, app_name, attach};

mod archive;
mod inflight;
mod put;
mod version;

pub use archive::ArchiveReport;
pub use put::{Put, PutSink};
pub use version::{Precondition, Unconditional, Version};

/// One name in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes (a symlink's is the length of its target).
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified: i64,
    /// Changes whenever the entry does; an edit can insist on it ([`Precondition`]).
    pub version: Version,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// What a recursive copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PutReport {
    pub files: u64,
    pub bytes: u64,
    /// Symlinks and special files found inside a copied directory; never followed.
    pub skipped: Vec<PathBuf>,
}

/// Check a path given relative to the mount's root, as text: refuse empty paths, NUL bytes,
/// absolute paths and `..`. Returns it normalised; `.` gives the empty path, the root.
pub fn validate_rel_path(path: &str) -> Result<PathBuf, MountError> {
    let invalid = |reason| MountError::InvalidPath { path: path.to_owned(), reason };
    if path.is_empty() {
        return Err(invalid("it is empty; use . for the root"));
    }
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(MountError::Escape { path: path.to_owned() });
            }
        }
    }
    Ok(out)
}

/// The persistent filesystem of one app, opened for file operations.
#[derive(Debug)]
pub struct MountFs {
    app: String,
    paths: AppPaths,
    settings: MountSettings,
    root: Dir,
    /// Who new files and directories belong to: the mount root's owner, when we are root.
    owner: Option<(u32, u32)>,
}

fn cap(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() { Path::new(".") } else { rel }
}

impl MountFs {
    /// Attach the mount (remounting it after a reboot) and open its root.
    pub fn open(paths: &AppPaths) -> Result<Self, MountError> {
        let app = app_name(paths);
        let disabled = || MountError::Disabled { app: app.clone() };
        let settings = record::enabled(paths)?.ok_or_else(disabled)?;
        attach(paths)?;
        let fd = anchor::open_mount_point(paths, OFlags::RDONLY)?.ok_or_else(disabled)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| MountError::Io {
            action: "stat",
            path: paths.mount_dir(),
            source: e.into(),
        })?;
        let owner =
            (rustix::process::geteuid().is_root() && st.st_uid != 0).then_some((st.st_uid, st.st_gid));
        Ok(Self { app, paths: paths.clone(), settings, root: Dir::from_std_file(File::from(fd)), owner })
    }

    /// The settings in force.
    pub fn settings(&self) -> &MountSettings {
        &self.settings
    }

    fn fail(&self, action: &'static str, path: &str) -> impl FnOnce(io::Error) -> MountError + use<'_> {
        let path = path.to_owned();
        move |e| {
            if is_escape(&e) {
                MountError::Escape { path }
            } else if e.kind() == io::ErrorKind::NotFound {
                MountError::NotFound { app: self.app.clone(), path }
            } else if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
                MountError::InvalidPath { path, reason: "a part of it is a file, not a folder" }
            } else if e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()) {
                MountError::InvalidPath { path, reason: "a name in it is longer than 255 bytes" }
            } else if is_full(&e) {
                MountError::Full { app: self.app.clone(), path, limit: self.settings.limit_bytes }
            } else {
                MountError::File { app: self.app.clone(), action, path, source: e }
            }
        }
    }

    /// Whether `path` is a directory (following symlinks beneath the root).
    pub fn is_dir(&self, path: &str) -> Result<bool, MountError> {
        let rel = validate_rel_path(path)?;
        match self.root.metadata(cap(&rel)) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // A symlink leading out is not a directory of ours; a put replaces the link itself.
            Err(e) if is_escape(&e) && rel.parent().is_none_or(|p| self.root.is_dir(cap(p))) => Ok(false),
            Err(e) => Err(self.fail("inspect", path)(e)),
        }
    }

    /// The entries of a directory, sorted by name, or the one entry of a file.
    pub fn ls(&self, path: &str) -> Result<Vec<Entry>, MountError> {
        let rel = validate_rel_path(path)?;
        let meta = self.root.metadata(cap(&rel)).map_err(self.fail("list", path))?;
        if !meta.is_dir() {
            let name = rel.file_name().unwrap_or_default().to_string_lossy().into_owned();
            return Ok(vec![entry(name, &meta)]);
        }
        let dir = self.root.open_dir(cap(&rel)).map_err(self.fail("list", path))?;
        let mut out = Vec::new();
        for e in dir.entries().map_err(self.fail("list", path))? {
            let e = e.map_err(self.fail("list", path))?;
            let name = e.file_name().to_string_lossy().into_owned();
            match e.metadata() {
                Ok(m) => out.push(entry(name, &m)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(self.fail("list", path)(err)),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Stream the regular file at `path` (symlinks followed only beneath the root).
    pub fn get(&self, path: &str, writer: &mut impl Write) -> Result<u64, MountError> {
        let mut file = self.open_file(path)?;
        io::copy(&mut file, writer).map_err(self.fail("read", path))
    }

    /// Open the regular file at `path` for reading (symlinks followed only beneath the root),
    /// for readers that seek, such as an HTTP Range request.
    pub fn open_file(&self, path: &str) -> Result<File, MountError> {
        let rel = validate_rel_path(path)?;
        // O_NONBLOCK: a FIFO planted by the app must not hang us; regular files ignore it.
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(i32::try_from(OFlags::NONBLOCK.bits()).unwrap_or(0));
        let file = self.root.open_with(cap(&rel), &options).map_err(self.fail("read", path))?;
        let meta = file.metadata().map_err(self.fail("read", path))?;
        if meta.is_dir() {
            return Err(MountError::IsDirectory {
                path: path.to_owned(),
                hint: "give a local destination to copy it recursively",
            });
        }
        if !meta.is_file() {
            return Err(MountError::NotRegular { path: path.to_owned() });
        }
        Ok(file.into_std())
    }

    /// Copy `path` to the local `dest`: a file, or a directory recursively (symlinks inside
    /// are skipped). A `dest` that is an existing directory receives it under its own name.
    pub fn get_to_local(&self, path: &str, dest: &Path) -> Result<PutReport, MountError> {
        let rel = validate_rel_path(path)?;
        let mut target = dest.to_owned();
        if dest.is_dir() {
            target.push(rel.file_name().map_or_else(|| OsStr::new(&self.app).to_owned(), ToOwned::to_owned));
        }
        let mut report = PutReport::default();
        if self.is_dir(path)? {
            let dir = self.root.open_dir(cap(&rel)).map_err(self.fail("read", path))?;
            self.copy_dir_out(&dir, &rel, &target, &mut report)?;
        } else {
            report.bytes = self.get_into(path, &target)?;
            report.files = 1;
        }
        Ok(report)
    }

    /// Copy the file at `path` to the local `target` through a temp file beside it, renamed
    /// into place: a failed get (a missing file, a full disk) leaves `target` as it was.
    fn get_into(&self, path: &str, target: &Path) -> Result<u64, MountError> {
        let local = |action| move |source| MountError::Local { action, path: target.to_owned(), source };
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = target.file_name().map_or_else(|| "get".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.slipway-get-{}-{}.part", std::process::id(), unique_suffix()));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(local("create a temp file beside"))?;
        let copied = self.get(path, &mut out).and_then(|n| {
            out.sync_all().map_err(local("write"))?;
            std::fs::rename(&tmp, target).map_err(local("rename into"))?;
            Ok(n)
        });
        if copied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        copied
    }

    fn copy_dir_out(
        &self,
        dir: &Dir,
        rel: &Path,
        target: &Path,
        report: &mut PutReport,
    ) -> Result<(), MountError> {
        let shown = rel.to_string_lossy();
        std::fs::create_dir_all(target).map_err(|source| MountError::Local {
            action: "create",
            path: target.to_owned(),
            source,
        })?;
        for e in dir.entries().map_err(self.fail("read", &shown))? {
            let e = e.map_err(self.fail("read", &shown))?;
            let child = rel.join(e.file_name());
            let kind = e.file_type().map_err(self.fail("read", &shown))?;
            if kind.is_dir() {
                let sub = dir.open_dir(e.file_name()).map_err(self.fail("read", &child.to_string_lossy()))?;
                self.copy_dir_out(&sub, &child, &target.join(e.file_name()), report)?;
            } else if kind.is_file() {
                report.bytes += self.get_into(&child.to_string_lossy(), &target.join(e.file_name()))?;
                report.files += 1;
            } else {
                report.skipped.push(child);
            }
        }
        Ok(())
    }

    /// Remove a file, a symlink (not its target), an empty directory, or with `recursive` a tree.
    pub fn rm(&self, path: &str, recursive: bool) -> Result<(), MountError> {
        self.rm_if(path, recursive, &Unconditional)
    }

    /// [`MountFs::rm`] if `pre` holds for what `path` is now ([`MountError::Changed`] if not).
    pub fn rm_if(&self, path: &str, recursive: bool, pre: &dyn Precondition) -> Result<(), MountError> {
        let rel = validate_rel_path(path)?;
        let Some(name) = rel.file_name() else {
            return Err(MountError::RootRemoval { app: self.app.clone() });
        };
        let parent = self
            .root
            .open_dir(cap(rel.parent().unwrap_or(Path::new(""))))
            .map_err(self.fail("remove", path))?;
        let _edit = self.edit_lock()?;
        if !pre.is_unconditional() {
            self.check(&parent, name, path, pre)?;
        }
        let meta = parent.symlink_metadata(name).map_err(self.fail("remove", path))?;
        if !meta.is_dir() {
            return parent.remove_file(name).map_err(self.fail("remove", path));
        }
        if recursive {
            return parent.remove_dir_all(name).map_err(self.fail("remove", path));
        }
        parent.remove_dir(name).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) {
                MountError::IsDirectory {
                    path: path.to_owned(),
                    hint: "pass -r to remove it and everything in it",
                }
            } else {
                self.fail("remove", path)(e)
            }
        })
    }

    /// Rename (or move) the file, symlink or directory `from` to `to`, both beneath the root.
    /// The parent of `to` must exist. Never replaces: an existing `to` is refused, atomically
    /// (`renameat2(RENAME_NOREPLACE)`), so a rename cannot silently destroy a file.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), MountError> {
        self.rename_if(from, to, &Unconditional)
    }

    /// [`MountFs::rename`] if `pre` holds for what `from` is now ([`MountError::Changed`] if not).
    pub fn rename_if(&self, from: &str, to: &str, pre: &dyn Precondition) -> Result<(), MountError> {
        let (src, dst) = (validate_rel_path(from)?, validate_rel_path(to)?);
        let Some(src_name) = src.file_name() else { return Err(MountError::RootRename) };
        let Some(dst_name) = dst.file_name() else { return Err(MountError::Exists { path: to.to_owned() }) };
        let into_itself = || MountError::IntoItself { from: from.to_owned(), to: to.to_owned() };
        let parent = |rel: &Path, shown: &str| {
            self.root.open_dir(cap(rel.parent().unwrap_or(Path::new("")))).map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
                    MountError::InvalidPath {
                        path: shown.to_owned(),
                        reason: "a part of it is a file, not a folder",
                    }
                } else {
                    self.fail("rename", shown)(e)
                }
            })
        };
        let src_dir = parent(&src, from)?;
        let _edit = self.edit_lock()?;
        if !pre.is_unconditional() {
            self.check(&src_dir, src_name, from, pre)?;
        }
        // The source itself is not followed: renaming a symlink renames the link.
        let meta = src_dir.symlink_metadata(src_name).map_err(self.fail("rename", from))?;
        if meta.is_dir() && dst != src && dst.starts_with(&src) {
            return Err(into_itself());
        }
        let dst_dir = parent(&dst, to)?;
        let renamed = rustix::fs::renameat_with(
            &src_dir,
            src_name,
            &dst_dir,
            dst_name,
            rustix::fs::RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
                return Err(MountError::Exists { path: to.to_owned() });
            }
            // The kernel's own check: `to` reached `from` through a symlink.
            Err(rustix::io::Errno::INVAL) if meta.is_dir() => {
                return Err(into_itself());
            }
            Err(e) => return Err(self.fail("rename", from)(e.into())),
        }
        for dir in [&src_dir, &dst_dir] {
            rustix::fs::fsync(reopen(dir)?).map_err(|e| self.fail("rename", from)(e.into()))?;
        }
        Ok(())
    }

    /// Create a directory and its missing parents.
    pub fn mkdir(&self, path: &str) -> Result<(), MountError> {
        let rel = validate_rel_path(path)?;
        self.make_dirs(&self.root, &rel, path).map(drop)
    }

    /// Like [`Self::mkdir`], only if `pre` holds for what is at `path` now (its parents are
    /// made first): `If-None-Match: *` creates the folder only if nothing is there, and two
    /// clients racing to create it get one 201 and one 412.
    pub fn mkdir_if(&self, path: &str, pre: &dyn Precondition) -> Result<(), MountError> {
        if pre.is_unconditional() {
            return self.mkdir(path);
        }
        let rel = validate_rel_path(path)?;
        let Some(name) = rel.file_name() else { return self.mkdir(path) };
        let parent = self.make_dirs(&self.root, rel.parent().unwrap_or(Path::new("")), path)?;
        let _edit = self.edit_lock()?;
        let existed = self.check(&parent, name, path, pre)?.is_some();
        match parent.create_dir(name) {
            Ok(()) => {
                let made = parent.open_dir(name).map_err(self.fail("create directory", path))?;
                self.chown(&reopen(&made)?).map_err(self.fail("create directory", path))
            }
            // Checked above under the edit lock: an entry that came since is another writer's,
            // which the precondition was meant to keep us from stepping on.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !existed => {
                Err(MountError::Changed { app: self.app.clone(), path: path.to_owned() })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if parent.symlink_metadata(name).is_ok_and(|m| m.is_dir()) {
                    Ok(())
                } else {
                    Err(MountError::Exists { path: path.to_owned() })
                }
            }
            Err(e) => Err(self.fail("create directory", path)(e)),
        }
    }

    /// Opens `rel` beneath `base` (the root, or an import's staging directory), creating the
    /// missing directories, owned like every file the mount's owner writes. `shown` names it
    /// in errors.
    fn make_dirs(&self, base: &Dir, rel: &Path, shown: &str) -> Result<Dir, MountError> {
        let mut cur = base.try_clone().map_err(self.fail("open", "."))?;
        for name in rel {
            let created = match cur.create_dir(name) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(self.fail("create directory", shown)(e)),
            };
            let next = cur.open_dir(name).map_err(self.fail("create directory", shown))?;
            if created {
                self.chown(&reopen(&next)?).map_err(self.fail("create directory", shown))?;
            }
            cur = next;
        }
        Ok(cur)
    }

    fn chown(&self, fd: impl AsFd) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner {
            rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        Ok(())
    }
}

/// A readable descriptor of `dir` (cap-std may hold it as `O_PATH`, which fchown and fsync refuse).
fn reopen(dir: &Dir) -> Result<OwnedFd, MountError> {
    rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| MountError::Io { action: "reopen", path: PathBuf::from("."), source: e.into() })
}

fn entry(name: String, m: &cap_std::fs::Metadata) -> Entry {
    let kind = if m.is_dir() {
        EntryKind::Dir
    } else if m.is_file() {
        EntryKind::File
    } else if m.file_type().is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    Entry { name, kind, size: m.len(), modified: m.mtime(), version: Version::of(m) }
}

/// A name no other put (in this or another process) uses at the same time.
fn temp_name() -> String {
    format!(".slipway-put-{}-{}.part", std::process::id(), unique_suffix())
}

/// Unique within this process, and unlikely to repeat across restarts of a pid.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{n}-{nanos}")
}

/// List a local directory's files and directories (relative, parents first); returns their
/// total size. Symlinks and special files are skipped.
fn plan_local(
    root: &Path,
    rel: &Path,
    plan: &mut Vec<(PathBuf, bool)>,
    skipped: &mut Vec<PathBuf>,
) -> Result<u64, MountError> {
    let dir = root.join(rel);
    let read = |source| MountError::Local { action: "read", path: dir.clone(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(&dir).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut total = 0;
    for e in entries {
        let child = rel.join(e.file_name());
        let kind = e.file_type().map_err(read)?;
        if kind.is_dir() {
            plan.push((child.clone(), true));
            total += plan_local(root, &child, plan, skipped)?;
        } else if kind.is_file() {
            total += e.metadata().map_err(read)?.len();
            plan.push((child, false));
        } else {
            skipped.push(root.join(child));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_relative_paths() {
        assert_eq!(validate_rel_path("a/b.csv").unwrap(), PathBuf::from("a/b.csv"));
        assert_eq!(validate_rel_path("./a//b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(validate_rel_path(".").unwrap(), PathBuf::new());
        assert_eq!(validate_rel_path("..data").unwrap(), PathBuf::from("..data"));
    }

    #[test]
    fn only_put_temp_files_are_swept() {
        assert_eq!(inflight::part_pid(".slipway-put-4242-0-123.part"), Some(4242));
        assert_eq!(inflight::part_pid(&temp_name()), Some(std::process::id()));
        for other in [".slipway-put-x-1.part", "slipway-put-1-1.part", ".slipway-put-1-1.txt", "data.part"] {
            assert_eq!(inflight::part_pid(other), None, "{other}");
        }
    }

    #[test]
    fn refuses_escapes_nul_and_empty_paths() {
        for bad in ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "/", "./../x"] {
            assert!(matches!(validate_rel_path(bad), Err(MountError::Escape { .. })), "{bad:?}");
        }
        assert!(matches!(validate_rel_path(""), Err(MountError::InvalidPath { .. })));
        assert!(matches!(validate_rel_path("a\0b"), Err(MountError::InvalidPath { .. })));
        let msg = validate_rel_path("../x").unwrap_err().to_string();
        assert_eq!(msg, r#"path "../x" escapes the persistent filesystem; paths are relative to its root"#);
    }
}
