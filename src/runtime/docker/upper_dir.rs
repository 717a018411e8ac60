//! Whether a stopped container changed any file of its image, read from the writable (upper)
//! directory of an overlay-style storage driver. The engine itself leaves marks there that
//! are no change of the app's: the empty file it binds `docker-init` onto, and a volume's
//! mount point (a directory, made opaque by fuse-overlayfs). Anything else, down to an empty
//! directory, is a change.
//!
//! The walk ([`walk`]) reads a directory the app could write into, as root, so it never
//! follows a link and stops after [`LIMIT`] entries; the judgement ([`only_engine_marks`]) is
//! pure.

use std::path::{Path, PathBuf};

/// Storage drivers whose `UpperDir` holds exactly what a container changed.
const OVERLAY_DRIVERS: [&str; 3] = ["overlay2", "fuse-overlayfs", "overlay"];

/// A container's inspection and its upper directory, if its storage driver has one. The path
/// is the engine's, never the app's, and names a layer id no other machine's engine shares.
pub async fn of_container(
    docker: &bollard::Docker,
    container: &str,
) -> Option<(PathBuf, bollard::models::ContainerInspectResponse)> {
    let inspect = docker.inspect_container(container, None).await.ok()?;
    let driver = inspect.graph_driver.as_ref()?;
    if !OVERLAY_DRIVERS.contains(&driver.name.as_str()) {
        return None;
    }
    let upper = PathBuf::from(driver.data.get("UpperDir")?);
    Some((upper, inspect))
}

/// More entries than this count as a change without being read further.
pub const LIMIT: usize = 64;

/// Where the engine binds its init process (`--init`).
pub const INIT_PATH: &str = "usr/sbin/docker-init";

/// What an entry of the upper directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// A directory (never a link to one).
    Dir,
    /// An empty regular file.
    EmptyFile,
    /// Anything else: a file with content, a link, a device (an overlay2 whiteout).
    Other,
}

/// The entries under `upper`, as paths relative to it, or `None` if there are more than
/// [`LIMIT`].
pub fn walk(upper: &Path) -> std::io::Result<Option<Vec<(PathBuf, Entry)>>> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        for item in std::fs::read_dir(upper.join(&rel))? {
            let item = item?;
            let path = rel.join(item.file_name());
            // DirEntry's file type is the entry's own (lstat), not a link's target.
            let meta = std::fs::symlink_metadata(upper.join(&path))?;
            let entry = if meta.file_type().is_dir() {
                dirs.push(path.clone());
                Entry::Dir
            } else if meta.file_type().is_file() && meta.len() == 0 {
                Entry::EmptyFile
            } else {
                Entry::Other
            };
            found.push((path, entry));
            if found.len() > LIMIT {
                return Ok(None);
            }
        }
    }
    Ok(Some(found))
}

/// Whether `entries` hold only the engine's marks for the mount points `marks` (relative
/// paths: volume targets, and [`INIT_PATH`] when the container ran with an init): the
/// directories leading to a mount point, the mount point itself (a directory or an empty
/// file), and opaque-directory markers inside a mount point (what the mount covers anyway).
pub fn only_engine_marks(entries: &[(PathBuf, Entry)], marks: &[PathBuf]) -> bool {
    first_change(entries, marks).is_none()
}

/// The first entry that is not one of the engine's marks (see [`only_engine_marks`]).
pub fn first_change<'a>(entries: &'a [(PathBuf, Entry)], marks: &[PathBuf]) -> Option<&'a Path> {
    entries
        .iter()
        .map(|(p, e)| (p.as_path(), e))
        .find(|&(path, entry)| {
            let leads_to_mark = marks.iter().any(|m| m != path && m.starts_with(path));
            let is_mark = marks.iter().any(|m| m == path);
            let opaque_marker = path.parent().is_some_and(|p| marks.iter().any(|m| m == p))
                && path.file_name().is_some_and(|n| n == ".wh..wh..opq" || n == ".wh..opq");
            let engines = match entry {
                Entry::Dir => leads_to_mark || is_mark,
                Entry::EmptyFile => is_mark || opaque_marker,
                // fuse-overlayfs writes one of its two markers as a whiteout device.
                Entry::Other => opaque_marker,
            };
            !engines
        })
        .map(|(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> Vec<PathBuf> {
        vec![PathBuf::from("mount"), PathBuf::from(INIT_PATH)]
    }

    fn entries(list: &[(&str, Entry)]) -> Vec<(PathBuf, Entry)> {
        list.iter().map(|(p, e)| (PathBuf::from(p), *e)).collect()
    }

    #[test]
    fn the_engines_init_and_mount_point_are_no_change() {
        let seen = entries(&[
            ("usr", Entry::Dir),
            ("usr/sbin", Entry::Dir),
            ("usr/sbin/docker-init", Entry::EmptyFile),
            ("mount", Entry::Dir),
            ("mount/.wh..wh..opq", Entry::EmptyFile),
            ("mount/.wh..opq", Entry::Other),
        ]);
        assert!(only_engine_marks(&seen, &marks()));
        assert!(only_engine_marks(&[], &marks()));
    }

    #[test]
    fn anything_the_app_wrote_is_a_change() {
        for extra in [
            ("workspace", Entry::Dir),
            ("workspace/out.txt", Entry::EmptyFile),
            ("tmp/x", Entry::Other),
            ("usr/sbin/other", Entry::EmptyFile),
            ("usr/local", Entry::Dir),
            ("mount/data", Entry::EmptyFile),
            ("mount/.wh..wh..opq/x", Entry::EmptyFile),
            ("usr/sbin/docker-init", Entry::Other),
            (".wh..wh..opq", Entry::EmptyFile),
        ] {
            let mut seen = entries(&[("usr", Entry::Dir), ("usr/sbin", Entry::Dir), ("mount", Entry::Dir)]);
            seen.push((PathBuf::from(extra.0), extra.1));
            assert!(!only_engine_marks(&seen, &marks()), "{extra:?}");
            assert_eq!(first_change(&seen, &marks()), Some(Path::new(extra.0)), "named");
        }
    }

    #[test]
    fn the_walk_lists_links_as_links_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mount")).unwrap();
        std::fs::write(dir.path().join("mount/.wh..wh..opq"), "").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let mut seen = walk(dir.path()).unwrap().unwrap();
        seen.sort();
        assert_eq!(
            seen,
            entries(&[
                ("link", Entry::Other),
                ("mount", Entry::Dir),
                ("mount/.wh..wh..opq", Entry::EmptyFile)
            ])
        );
        for i in 0..=LIMIT {
            std::fs::write(dir.path().join(format!("f{i}")), "").unwrap();
        }
        assert_eq!(walk(dir.path()).unwrap(), None);
    }
}
