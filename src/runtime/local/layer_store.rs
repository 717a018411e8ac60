//! The local runtime's store of sealed layers: a `launch` + `cache` layer whose buildpack asks
//! for it ([`crate::lifecycle::BuiltLayer::sealed`]: the Python venv) is built once, then
//! *sealed* (moved into root's store and made root's, read-only to the app), and every later
//! release that reuses it links to it instead of holding a copy.
//!
//! ```text
//! apps/<app>/layers/                          root's, 0750, the app's group
//! apps/<app>/layers/<bp>/<layer>/vN/<layer>/       a sealed layer, built by release vN: root's,
//!                                                  0755/0644 (named as the layer, so that a venv
//!                                                  is still a `venv` directory)
//! apps/<app>/layers/<bp>/<layer>/vN/<layer>.toml   its <layer>.toml, as the build left it
//! apps/<app>/layers/<bp>/<layer>/current -> vN     what the next build restores
//! apps/<app>/releases/vM/layers/<bp>/<layer> -> <store>/<bp>/<layer>/vN/<layer>
//! state/<app>/releases/vM/layers.json         the sealed layers release vM runs from
//! ```
//!
//! Why sealed, not shared writable: the app's processes run as the app's user, so a layer they
//! could write would carry whatever a running release wrote into the next release's build.
//! Sealed, the live venv is not the app's to change, the next build can only reuse it or
//! replace it, and retiring a release deletes only its link. Root never follows a link the app
//! could have placed: the release's link is read as text and checked to name a store entry,
//! and the seal walks the build's tree by descriptors, taking each directory first, so that the
//! app can no longer change what lies in it while the walk goes on.
//!
//! A crash leaves either the old `current` or a complete new entry: an entry is made under a
//! `.vN.partial` name and renamed once sealed, then `current` is replaced. Entries that neither
//! `current` nor a release references (and partial ones) are removed by
//! [`collect_garbage`], run whenever a release is removed, so after every deploy and on the
//! reconcile that starts every command.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::ids::{AppName, ReleaseId};
use crate::lifecycle::BuiltLayer;
use crate::state::tree::{self, Access};
use crate::state::{Home, RunAs, atomic};

/// Why a layer could not be sealed, referenced or collected.
#[derive(Debug, thiserror::Error)]
pub enum LayerStoreError {
    /// A directory of root's tree was tampered with.
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    /// A file operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The build left something that is not sealed.
    #[error(
        "refusing to keep layer content {}: {why}. Layers hold plain files, directories and \
         symlinks made by the build; change the buildpack, then deploy again",
        path.display()
    )]
    Refused {
        /// What was found.
        path: PathBuf,
        /// Why it is refused.
        why: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> LayerStoreError + 'a {
    move |e| LayerStoreError::Io { action, path: path.to_owned(), source: e.into() }
}

/// The name of the link to the entry the next build restores.
pub const CURRENT: &str = "current";
/// A `<layer>.toml` larger than this is not a layer's metadata.
const TOML_LIMIT: u64 = 1 << 20;

/// A sealed layer a release runs from: `<buildpack>/<layer>/<version>/<layer>` in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRef {
    /// The escaped buildpack id.
    pub buildpack: String,
    /// The layer name.
    pub layer: String,
    /// The release that built it (`vN`).
    pub version: String,
}

/// Whether `v` names a store entry: `v` and digits.
fn is_version(v: &str) -> bool {
    v.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The version a release's layer link names, if its target is exactly
/// `<store>/<bp>/<layer>/vN/<layer>` (read as text, never followed).
pub fn linked_version(store: &Path, bp: &str, layer: &str, target: &Path) -> Option<String> {
    let rest = target.strip_prefix(store.join(bp).join(layer)).ok()?;
    let mut parts = rest.components();
    let (Some(Component::Normal(v)), Some(Component::Normal(name)), None) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let v = v.to_str()?;
    (is_version(v) && name == OsStr::new(layer)).then(|| v.to_owned())
}

/// The names in one layer's store directory that garbage collection removes: entries that
/// are neither `current` nor in `keep`, and leftovers of a killed seal.
pub fn doomed(names: &[String], current: Option<&str>, keep: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            if n.as_str() == CURRENT {
                return false;
            }
            if !is_version(n) {
                return n.starts_with('.');
            }
            Some(n.as_str()) != current && !keep.contains(n.as_str())
        })
        .cloned()
        .collect()
}

/// Seals (or, when the build reused one, checks the link to) every sealed layer of release `release`, records them in its `layers.json`, and returns their store
/// directories by (buildpack, layer), for the launcher.
pub fn seal_release(
    home: &Home,
    app: &AppName,
    release: ReleaseId,
    user: Option<&RunAs>,
    layers: &[BuiltLayer],
) -> Result<BTreeMap<(String, String), PathBuf>, LayerStoreError> {
    let app_paths = home.app(app);
    let paths = app_paths.release(release);
    let store_path = app_paths.layer_store_dir();
    let mut refs = Vec::new();
    let mut dirs = BTreeMap::new();
    let sealed: Vec<&BuiltLayer> = layers.iter().filter(|l| l.sealed).collect();
    if !sealed.is_empty() {
        let release_fd = tree::open(home.root(), paths.dir())?;
        tree::open_or_create(home.root(), &store_path, Access::AppReads, user)?;
        for l in sealed {
            let bp_path = paths.layers().join(&l.buildpack);
            let bp_fd = open_beneath(&release_fd, &Path::new("layers").join(&l.buildpack), &bp_path)?;
            let entry_dir = store_path.join(&l.buildpack).join(&l.name);
            let entry_fd = tree::open_or_create(home.root(), &entry_dir, Access::AppReads, user)?;
            let name = OsStr::new(&l.name);
            let at = bp_path.join(&l.name);
            let st = match rustix::fs::statat(&bp_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // A layer with only its toml has no content to keep.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io("inspect", &at)(e)),
            };
            let version = match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&bp_fd, name, Vec::new()).map_err(io("read", &at))?;
                    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                    let v = linked_version(&store_path, &l.buildpack, &l.name, target).ok_or_else(|| {
                        LayerStoreError::Refused {
                            path: at.clone(),
                            why: format!(
                                "a link to {}, which is not a sealed layer of this app",
                                target.display()
                            ),
                        }
                    })?;
                    // It must still be there, as root left it.
                    let v_fd = tree::child(&entry_fd, OsStr::new(&v), &entry_dir.join(&v))?;
                    tree::child(&v_fd, name, &entry_dir.join(&v).join(name))?;
                    v
                }
                FileType::Directory => {
                    let v = release.to_string();
                    seal_new(&bp_fd, name, &at, &entry_fd, &entry_dir, &v, user)?;
                    let link = entry_dir.join(&v).join(name);
                    rustix::fs::symlinkat(&link, &bp_fd, name).map_err(io("link", &at))?;
                    v
                }
                _ => {
                    return Err(LayerStoreError::Refused { path: at, why: "not a directory".into() });
                }
            };
            dirs.insert((l.buildpack.clone(), l.name.clone()), entry_dir.join(&version).join(name));
            refs.push(LayerRef { buildpack: l.buildpack.clone(), layer: l.name.clone(), version });
        }
    }
    atomic::write_json(&paths.layer_refs(), &refs).map_err(|e| LayerStoreError::Io {
        action: "write",
        path: paths.layer_refs(),
        source: e,
    })?;
    Ok(dirs)
}

/// Opens the app's directory `rel` below `dir` without following any symlink on the way.
fn open_beneath(dir: &impl AsFd, rel: &Path, path: &Path) -> Result<OwnedFd, LayerStoreError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve).map_err(io("open", path))
}

/// Moves the build's layer `name` (in the app's `bp_fd`) into the store as `version/name`,
/// sealed, with its toml, and points `current` at it.
fn seal_new(
    bp_fd: &OwnedFd,
    name: &OsStr,
    at: &Path,
    entry_fd: &OwnedFd,
    entry_dir: &Path,
    version: &str,
    user: Option<&RunAs>,
) -> Result<(), LayerStoreError> {
    let partial = format!(".{version}.partial");
    for leftover in [partial.as_str(), version] {
        tree::remove_tree(entry_fd, OsStr::new(leftover), &entry_dir.join(leftover))?;
    }
    let mut toml_name = name.to_owned();
    toml_name.push(".toml");
    let toml = read_small(bp_fd, &toml_name, &at.with_file_name(&toml_name))?;
    let partial_path = entry_dir.join(&partial);
    let partial_fd = tree::make_dir(entry_fd, OsStr::new(&partial), &partial_path, Access::Private, None)?;
    rustix::fs::fchmod(&partial_fd, Mode::from_raw_mode(0o755)).map_err(io("chmod", &partial_path))?;
    let layer_path = partial_path.join(name);
    rustix::fs::renameat(bp_fd, name, &partial_fd, name).map_err(io("move into the store", at))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::openat(&partial_fd, name, flags, Mode::empty()).map_err(io("open", &layer_path))?;
    let builder = user.map_or_else(|| rustix::process::geteuid().as_raw(), |u| u.uid);
    seal_tree(&fd, &layer_path, builder)?;
    write_file(&partial_fd, &toml_name, &toml, &partial_path.join(&toml_name))?;
    rustix::fs::fsync(&partial_fd).map_err(io("sync", &partial_path))?;
    rustix::fs::renameat(entry_fd, partial.as_str(), entry_fd, version)
        .map_err(io("rename", &partial_path))?;
    // `current` moves last: until here the next build restores the previous entry.
    let tmp = ".current.tmp";
    tree::remove_tree(entry_fd, OsStr::new(tmp), &entry_dir.join(tmp))?;
    rustix::fs::symlinkat(version, entry_fd, tmp).map_err(io("link", &entry_dir.join(tmp)))?;
    rustix::fs::renameat(entry_fd, tmp, entry_fd, CURRENT)
        .map_err(io("replace", &entry_dir.join(CURRENT)))?;
    rustix::fs::fsync(entry_fd).map_err(io("sync", entry_dir))
}

/// Makes the tree at `dir` root's and read-only to everyone else: each directory is taken
/// before it is listed, so the app's user (whose build made it) cannot change it under the
/// walk. Only what `builder` made is taken: a file of anyone else (a hard link to it), a hard
/// link or a special file is refused.
fn seal_tree(dir: &OwnedFd, path: &Path, builder: u32) -> Result<(), LayerStoreError> {
    let st = rustix::fs::fstat(dir).map_err(io("inspect", path))?;
    if st.st_uid != builder {
        return Err(refused(path, format!("owned by uid {}, not the build's user", st.st_uid)));
    }
    let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
    let root = uid.is_root();
    if root {
        rustix::fs::fchown(dir, Some(uid), Some(gid)).map_err(io("chown", path))?;
    }
    rustix::fs::fchmod(dir, Mode::from_raw_mode(0o755)).map_err(io("chmod", path))?;
    for name in tree::names(dir, path)? {
        let p = path.join(&name);
        let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(io("inspect", &p))?;
        if st.st_uid != builder {
            return Err(refused(&p, format!("owned by uid {}, not the build's user", st.st_uid)));
        }
        let own = |at: &Path| -> Result<(), LayerStoreError> {
            if root {
                rustix::fs::chownat(dir, &name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io("chown", at))?;
            }
            Ok(())
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = rustix::fs::openat(dir, &name, flags | OFlags::NONBLOCK, Mode::empty())
                    .map_err(io("open", &p))?;
                seal_tree(&sub, &p, builder)?;
            }
            FileType::RegularFile => {
                // Another name for the same file elsewhere would stay the app's way to change it.
                if st.st_nlink != 1 {
                    return Err(refused(&p, format!("a file with {} hard links", st.st_nlink)));
                }
                own(&p)?;
                // The name cannot change any more (its directory is root's): chmod by name.
                let mode = if st.st_mode & 0o111 == 0 { 0o644 } else { 0o755 };
                rustix::fs::chmodat(dir, &name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(io("chmod", &p))?;
            }
            FileType::Symlink => own(&p)?,
            _ => return Err(refused(&p, "a special file (a fifo or socket)".into())),
        }
    }
    Ok(())
}

fn refused(path: &Path, why: String) -> LayerStoreError {
    LayerStoreError::Refused { path: path.to_owned(), why }
}

/// A small regular file of the app's, opened without following a link or blocking on a fifo.
fn read_small(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<Vec<u8>, LayerStoreError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(io("open", path))?;
    let st = rustix::fs::fstat(&fd).map_err(io("inspect", path))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(refused(path, "not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd).take(TOML_LIMIT).read_to_end(&mut bytes).map_err(|e| LayerStoreError::Io {
        action: "read",
        path: path.to_owned(),
        source: e,
    })?;
    Ok(bytes)
}

/// Writes root's file `name` in root's `dir`: a temporary file, synced, renamed into place.
fn write_file(dir: &OwnedFd, name: &OsStr, bytes: &[u8], path: &Path) -> Result<(), LayerStoreError> {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    let tmp = tmp.as_os_str();
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, tmp, flags, Mode::from_raw_mode(0o644)).map_err(io("write", path))?;
    let mut file = std::fs::File::from(fd);
    let wrote = file.write_all(bytes).and_then(|()| file.sync_all());
    wrote.map_err(|e| LayerStoreError::Io { action: "write", path: path.to_owned(), source: e })?;
    rustix::fs::renameat(dir, tmp, dir, name).map_err(io("rename", path))
}

/// Every sealed layer a release of `app` still references (its `layers.json`), as
/// `<bp>/<layer>/<version>`.
fn referenced(home: &Home, app: &AppName) -> BTreeSet<(String, String, String)> {
    let mut keep = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(home.app(app).release_state_dir()) else { return keep };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read(e.path().join("layers.json")) else { continue };
        // An unreadable list keeps nothing alive; it is root's, so this means a bug or a crash
        // mid-write, and its release is being removed anyway.
        for r in serde_json::from_slice::<Vec<LayerRef>>(&text).unwrap_or_default() {
            keep.insert((r.buildpack, r.layer, r.version));
        }
    }
    keep
}

/// Removes store entries that no release references and that are not `current`, and the
/// leftovers of a killed seal. Runs under the app's lock (deploy or reconcile), so no seal
/// is under way. Returns how many entries it removed.
pub fn collect_garbage(home: &Home, app: &AppName) -> Result<usize, LayerStoreError> {
    let store_path = home.app(app).layer_store_dir();
    let Some(store) = tree::open_if_exists(home.root(), &store_path)? else { return Ok(0) };
    let refs = referenced(home, app);
    let mut removed = 0;
    for bp in tree::names(&store, &store_path)? {
        let bp_path = store_path.join(&bp);
        let bp_fd = tree::child(&store, &bp, &bp_path)?;
        for layer in tree::names(&bp_fd, &bp_path)? {
            let dir = bp_path.join(&layer);
            let fd = tree::child(&bp_fd, &layer, &dir)?;
            let current = rustix::fs::readlinkat(&fd, CURRENT, Vec::new())
                .ok()
                .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned());
            let (b, l) = (bp.to_string_lossy(), layer.to_string_lossy());
            let keep: BTreeSet<String> =
                refs.iter().filter(|(rb, rl, _)| *rb == b && *rl == l).map(|(_, _, v)| v.clone()).collect();
            let names: Vec<String> =
                tree::names(&fd, &dir)?.iter().map(|n| n.to_string_lossy().into_owned()).collect();
            for name in doomed(&names, current.as_deref(), &keep) {
                tree::remove_tree(&fd, OsStr::new(&name), &dir.join(&name))?;
                removed += usize::from(!name.starts_with('.'));
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_link_counts_only_when_it_names_an_entry_of_the_same_layer() {
        let store = Path::new("/h/apps/a/layers");
        let v = |t: &str| linked_version(store, "slipway_python", "venv", Path::new(t));
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/v3/venv").as_deref(), Some("v3"));
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/v3"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/current/venv"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/v3/lib"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/v3/venv/lib"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/../other/v3/venv"), None);
        assert_eq!(v("/h/apps/b/layers/slipway_python/venv/v3/venv"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/pip/v3/pip"), None);
        assert_eq!(v("venv/v3/venv"), None);
        assert_eq!(v("/h/apps/a/layers/slipway_python/venv/v/venv"), None);
    }

    fn open_dir(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn sealing_makes_a_tree_read_only_and_refuses_hard_links_and_fifos() {
        use std::os::unix::fs::PermissionsExt;
        let me = rustix::process::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(venv.join("bin/tool"), std::fs::Permissions::from_mode(0o4777)).unwrap();
        std::fs::write(venv.join("data"), "x").unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
        seal_tree(&open_dir(&venv), &venv, me).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&venv.join("bin/tool")), 0o755, "no set-id bit, no write for others");
        assert_eq!(mode(&venv.join("data")), 0o644);
        assert_eq!(mode(&venv.join("bin")), 0o755);
        assert_eq!(std::fs::read_link(venv.join("bin/python")).unwrap(), Path::new("/usr/bin/python3"));

        // Another name for a layer file (elsewhere, out of the seal's reach) is refused.
        let linked = dir.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::fs::write(dir.path().join("outside"), "x").unwrap();
        std::fs::hard_link(dir.path().join("outside"), linked.join("inside")).unwrap();
        let err = seal_tree(&open_dir(&linked), &linked, me).unwrap_err();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        // A fifo is refused without being opened (which would block).
        let fifo = dir.path().join("fifo");
        std::fs::create_dir(&fifo).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, fifo.join("f"), FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap();
        let err = seal_tree(&open_dir(&fifo), &fifo, me).unwrap_err();
        assert!(err.to_string().contains("special file"), "{err}");
        // A tree someone else made is not the build's to seal.
        let err = seal_tree(&open_dir(&venv), &venv, me + 1).unwrap_err();
        assert!(err.to_string().contains("not the build's user"), "{err}");
    }

    #[test]
    fn collection_keeps_current_and_referenced_entries_and_drops_partials() {
        let all = names(&["current", "v1", "v2", "v3", ".v4.partial", ".current.tmp"]);
        let keep: BTreeSet<String> = ["v2".to_owned()].into();
        let mut gone = doomed(&all, Some("v3"), &keep);
        gone.sort();
        assert_eq!(gone, names(&[".current.tmp", ".v4.partial", "v1"]));
        assert!(doomed(&names(&["current", "v1"]), Some("v1"), &BTreeSet::new()).is_empty());
    }
}
