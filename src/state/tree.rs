//! Directories slipway trusts, opened and changed without ever following a symlink.
//!
//! As root, slipway creates, deletes and links things inside `apps/<app>`, where the app's
//! user also runs. A path such as `apps/a/releases/v1` is only safe if no component of it is a
//! symlink or a directory the app made: the app could otherwise point `releases` at another
//! app's releases, or `home` at `/etc`. So a trusted directory is opened one component at a
//! time from the home's root, with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)`, and each
//! component must be a directory owned by slipway's own user and writable by no one else
//! (a sticky directory excepted: others may add files there but not remove or rename ours).
//! Anything else is tampering: it is named and refused, never acted on. Every later step works
//! relative to the opened descriptor, so renaming a name afterwards changes nothing.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use super::RunAs;

/// Failures opening or changing a trusted directory.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "refusing to use {path}: found {found} where slipway keeps its own directory or link; \
         something other than slipway (an app's process?) changed it. Inspect it, move it away as root, then run the command again{}",
        migrate_hint(.path)
    )]
    Tampered { path: PathBuf, found: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// For a path in an app's tree: the fix when the tree is the layout of an earlier slipway,
/// which gave `apps/APP` and its releases to the app's user (and so looks tampered with).
fn migrate_hint(path: &Path) -> String {
    let parts: Vec<Component<'_>> = path.components().collect();
    let app = parts.windows(2).rev().find_map(|w| match w {
        [Component::Normal(apps), Component::Normal(app)] if *apps == "apps" => Some(app.to_string_lossy()),
        _ => None,
    });
    app.map_or_else(String::new, |app| {
        format!(
            ". If this home was made by an earlier slipway, whose apps/{app} belonged to the app's user, \
             run `slipway apps migrate {app}` as root instead"
        )
    })
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> TreeError + 'a {
    move |e| TreeError::Io { action, path: path.to_owned(), source: e.into() }
}

/// Who owns a trusted directory and which mode it gets when slipway creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only slipway: mode 0700.
    Private,
    /// Readable and enterable by the app's group (mode 0750, group = the app's group as root),
    /// so the app reaches what lies below but cannot change this directory.
    AppReads,
    /// The app may add files but never remove or rename slipway's own: mode 01770 (sticky,
    /// group-writable) as root; for a `HOME` that holds slipway's `mount` link.
    AppAdds,
}

impl Access {
    fn mode(self, user: Option<&RunAs>) -> Mode {
        Mode::from_raw_mode(match (self, user) {
            (Self::Private, _) | (_, None) => 0o700,
            (Self::AppReads, Some(_)) => 0o750,
            (Self::AppAdds, Some(_)) => 0o1770,
        })
    }
}

/// The uid slipway's own directories belong to: root as root, else the invoking user.
fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Open the trusted directory `path` (the home `root` itself, or a path below it). The home
/// is trusted as given: the administrator chose it.
pub fn open(root: &Path, path: &Path) -> Result<OwnedFd, TreeError> {
    walk(root, path, None)
}

/// Like [`open`], creating missing components with `access` for `user` (the app's user).
pub fn open_or_create(
    root: &Path,
    path: &Path,
    access: Access,
    user: Option<&RunAs>,
) -> Result<OwnedFd, TreeError> {
    walk(root, path, Some((access, user)))
}

/// `None` if `path` (or a parent of it) does not exist; other failures as [`open`].
pub fn open_if_exists(root: &Path, path: &Path) -> Result<Option<OwnedFd>, TreeError> {
    match open(root, path) {
        Ok(fd) => Ok(Some(fd)),
        Err(TreeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn walk(root: &Path, path: &Path, create: Option<(Access, Option<&RunAs>)>) -> Result<OwnedFd, TreeError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(io("open", root))?;
    let mut path = root.to_owned();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(TreeError::Io {
                action: "open",
                path: root.join(rel),
                source: std::io::Error::other("not a plain relative path"),
            });
        };
        path.push(name);
        fd = match create {
            Some((access, user)) => child_or_create(&fd, name, &path, access, user)?,
            None => child(&fd, name, &path)?,
        };
    }
    Ok(fd)
}

/// Open the trusted directory `name` in `dir` (`path` names it in messages).
pub fn child(dir: &impl AsFd, name: &OsStr, path: &Path) -> Result<OwnedFd, TreeError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => {
            return Err(TreeError::Tampered { path: path.to_owned(), found: describe(dir, name) });
        }
        Err(e) => return Err(io("open", path)(e)),
    };
    check(&fd, path)?;
    Ok(fd)
}

fn child_or_create(
    dir: &impl AsFd,
    name: &OsStr,
    path: &Path,
    access: Access,
    user: Option<&RunAs>,
) -> Result<OwnedFd, TreeError> {
    match make_dir(dir, name, path, access, user) {
        Err(TreeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            child(dir, name, path)
        }
        other => other,
    }
}

/// Create the directory `name` in `dir` with `access` for `user`, and open it. It must not
/// exist yet.
pub fn make_dir(
    dir: &impl AsFd,
    name: &OsStr,
    path: &Path,
    access: Access,
    user: Option<&RunAs>,
) -> Result<OwnedFd, TreeError> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(io("create", path))?;
    let fd = child(dir, name, path)?;
    set_access(&fd, path, access, user)?;
    Ok(fd)
}

/// Give a directory slipway made its owner (slipway's user, the app's group) and mode.
pub fn set_access(
    fd: &impl AsFd,
    path: &Path,
    access: Access,
    user: Option<&RunAs>,
) -> Result<(), TreeError> {
    if let Some(u) = user.filter(|_| access != Access::Private) {
        rustix::fs::fchown(fd, Some(Uid::from_raw(own_uid())), Some(Gid::from_raw(u.gid)))
            .map_err(io("chown", path))?;
    }
    rustix::fs::fchmod(fd, access.mode(user)).map_err(io("chmod", path))
}

/// A trusted directory is owned by slipway's user and writable by nobody else, unless sticky.
fn check(fd: &OwnedFd, path: &Path) -> Result<(), TreeError> {
    let st = rustix::fs::fstat(fd).map_err(io("inspect", path))?;
    let mode = st.st_mode;
    if st.st_uid != own_uid() {
        return Err(TreeError::Tampered {
            path: path.to_owned(),
            found: format!("a directory owned by uid {}", st.st_uid),
        });
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(TreeError::Tampered {
            path: path.to_owned(),
            found: format!("a directory others may write to (mode {:o})", mode & 0o7777),
        });
    }
    Ok(())
}

/// What sits at `name` in `dir`, in words, for a tampering message.
fn describe(dir: &impl AsFd, name: &OsStr) -> String {
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return "something that cannot be opened as a directory".to_owned();
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())
                .map_or_else(|_| "?".to_owned(), |t| t.to_string_lossy().into_owned());
            format!("a symlink to {target} (owned by uid {})", st.st_uid)
        }
        FileType::Directory => format!("a directory owned by uid {}", st.st_uid),
        other => format!("a {} owned by uid {}", kind(other), st.st_uid),
    }
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "file",
        FileType::Symlink => "symlink",
        FileType::Directory => "directory",
        _ => "special file",
    }
}

/// The names in a directory, without `.` and `..`.
pub fn names(dir: &impl AsFd, path: &Path) -> Result<Vec<OsString>, TreeError> {
    let fd =
        rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io("list", path))?;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd).map_err(io("list", path))? {
        let entry = entry.map_err(io("list", path))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(out)
}

/// Remove `name` in `dir` and everything below it, walking by descriptors and never following
/// a symlink: a link in the tree is removed, not what it points to. Absent is fine.
pub fn remove_tree(dir: &impl AsFd, name: &OsStr, path: &Path) -> Result<(), TreeError> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("inspect", path)(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(sub) => {
                for n in names(&sub, path)? {
                    remove_tree(&sub, &n, &path.join(&n))?;
                }
            }
            // Swapped for a link or a file since the stat: it is removed below as what it is.
            Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => {}
            Err(e) => return Err(io("open", path)(e)),
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTDIR) => {}
            Err(e) => return Err(io("remove", path)(e)),
        }
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        // A directory slipped in since the stat: walk it.
        Err(Errno::ISDIR) => remove_tree(dir, name, path),
        Err(e) => Err(io("remove", path)(e)),
    }
}

/// Make `name` in `dir` a symlink to `target`, replacing slipway's own previous link. Anything
/// else found there (a directory, a file, someone else's link) is tampering and refused.
pub fn replace_link(dir: &impl AsFd, name: &OsStr, target: &Path, path: &Path) -> Result<(), TreeError> {
    remove_link(dir, name, path)?;
    rustix::fs::symlinkat(target, dir, name).map_err(io("create the link", path))
}

/// Remove slipway's own symlink `name` in `dir`; absent is fine, anything else is refused.
pub fn remove_link(dir: &impl AsFd, name: &OsStr, path: &Path) -> Result<(), TreeError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink && st.st_uid == own_uid() => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(io("remove", path))
        }
        Ok(_) => Err(TreeError::Tampered { path: path.to_owned(), found: describe(dir, name) }),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io("inspect", path)(e)),
    }
}

/// Move `from_name` in `from` to `to_name` in `to` (both trusted descriptors).
pub fn rename(
    from: &impl AsFd,
    from_name: &OsStr,
    to: &impl AsFd,
    to_name: &OsStr,
    path: &Path,
) -> Result<(), TreeError> {
    rustix::fs::renameat(from, from_name, to, to_name).map_err(io("move into place", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlinked_component_is_named_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/b/releases")).unwrap();
        std::fs::create_dir_all(dir.path().join("apps/a")).unwrap();
        symlink("../b/releases", dir.path().join("apps/a/releases")).unwrap();
        let err = open(dir.path(), Path::new("apps/a/releases")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TreeError::Tampered { .. }), "{text}");
        assert!(text.contains("apps/a/releases") && text.contains("a symlink to ../b/releases"), "{text}");
        assert!(open(dir.path(), Path::new("apps/b/releases")).is_ok());
        assert!(text.contains("run `slipway apps migrate a` as root"), "{text}");
    }

    #[test]
    fn only_a_path_in_an_app_tree_names_apps_migrate() {
        assert!(
            migrate_hint(Path::new("/srv/apps/home/apps/demo/releases/v1")).contains("apps migrate demo")
        );
        assert!(migrate_hint(Path::new("/srv/home/apps/demo")).contains("apps migrate demo`"));
        assert_eq!(migrate_hint(Path::new("/srv/home/state")), "");
        assert_eq!(migrate_hint(Path::new("/srv/home/apps")), "");
    }

    #[test]
    fn a_group_writable_directory_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("home");
        std::fs::create_dir(&p).unwrap();
        rustix::fs::chmod(&p, Mode::from_raw_mode(0o770)).unwrap();
        assert!(matches!(open(dir.path(), Path::new("home")), Err(TreeError::Tampered { .. })));
        rustix::fs::chmod(&p, Mode::from_raw_mode(0o1770)).unwrap();
        assert!(open(dir.path(), Path::new("home")).is_ok());
    }

    #[test]
    fn remove_tree_removes_links_not_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("keep")).unwrap();
        std::fs::write(outside.join("keep/file"), "x").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "y").unwrap();
        symlink(&outside, tree.join("a/link")).unwrap();
        symlink(outside.join("keep"), tree.join("home")).unwrap();
        let root = open(dir.path(), Path::new("")).unwrap();
        remove_tree(&root, OsStr::new("tree"), &tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(std::fs::read_to_string(outside.join("keep/file")).unwrap(), "x");
        remove_tree(&root, OsStr::new("tree"), &tree).unwrap();
    }

    #[test]
    fn replace_link_refuses_what_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let root = open(dir.path(), Path::new("")).unwrap();
        std::fs::create_dir(dir.path().join("mount")).unwrap();
        let err = replace_link(&root, OsStr::new("mount"), Path::new("../m"), &dir.path().join("mount"));
        assert!(matches!(err, Err(TreeError::Tampered { .. })));
        assert!(dir.path().join("mount").is_dir(), "nothing was removed");
        replace_link(&root, OsStr::new("link"), Path::new("../m"), &dir.path().join("link")).unwrap();
        replace_link(&root, OsStr::new("link"), Path::new("../n"), &dir.path().join("link")).unwrap();
        assert_eq!(std::fs::read_link(dir.path().join("link")).unwrap(), Path::new("../n"));
    }
}
