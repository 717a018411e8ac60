//! A buildpack's files, listed without ever following a symlink out of its own tree.
//!
//! A buildpack committed with an app is the app's to write, so `bp/lib -> /root-only/dir`
//! once had slipway copy that host directory into the image (issue 11 §1). The walk here uses
//! `lstat` only: a link is kept as a link when it resolves inside the buildpack's directory,
//! and refused when it leads out (an absolute target, or `..` past the root). Files are later
//! opened with `O_NOFOLLOW`, so a link swapped in after the walk is refused too.

use std::io;
use std::path::{Component, Path, PathBuf};

/// One entry of a buildpack's tree, by its path relative to the buildpack's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A directory.
    Dir(PathBuf),
    /// A regular file.
    File(PathBuf),
    /// A symlink whose target stays inside the tree, kept as a link.
    Link {
        /// Where the link is.
        path: PathBuf,
        /// Its target, as written.
        target: PathBuf,
    },
}

/// Why a buildpack's tree was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A symlink leads out of the buildpack's directory.
    #[error(
        "buildpack {}: `{}` is a symlink to `{}`, outside the buildpack; builds never read the host: commit the files themselves, or make the link relative and inside the buildpack",
        root.display(), path.display(), target.display()
    )]
    LinkLeadsOut {
        /// The buildpack's directory.
        root: PathBuf,
        /// The link, relative to it.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// The buildpack's directory is itself a symlink, or not a directory.
    #[error("buildpack {}: not a directory (a symlink is refused); point at the directory holding buildpack.toml", root.display())]
    NotADir {
        /// The buildpack's directory.
        root: PathBuf,
    },
    /// Something that is neither file, directory nor symlink (a fifo, a device).
    #[error("buildpack {}: `{}` is not a regular file, directory or symlink", root.display(), path.display())]
    Special {
        /// The buildpack's directory.
        root: PathBuf,
        /// The entry, relative to it.
        path: PathBuf,
    },
    /// The tree could not be read.
    #[error("cannot read buildpack file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Whether a link at `link` (relative to the root) with `target` resolves inside the root,
/// by its text alone: an absolute target, or one whose `..` climbs above the root, leads out.
pub fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize = link.parent().map_or(0, |p| p.components().count());
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The entries of `names` (e.g. `buildpack.toml`, `bin`, `lib`) under `root`, recursively,
/// parents before children. Missing names are skipped.
pub fn collect(root: &Path, names: &[&str]) -> Result<Vec<TreeEntry>, TreeError> {
    let meta =
        std::fs::symlink_metadata(root).map_err(|source| TreeError::Io { path: root.to_owned(), source })?;
    if !meta.is_dir() {
        return Err(TreeError::NotADir { root: root.to_owned() });
    }
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = names.iter().rev().map(PathBuf::from).collect();
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && names.iter().any(|n| Path::new(n) == rel) => {
                continue;
            }
            Err(source) => return Err(TreeError::Io { path: full, source }),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target =
                std::fs::read_link(&full).map_err(|source| TreeError::Io { path: full.clone(), source })?;
            if !link_stays_inside(&rel, &target) {
                return Err(TreeError::LinkLeadsOut { root: root.to_owned(), path: rel, target });
            }
            out.push(TreeEntry::Link { path: rel, target });
        } else if kind.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&full)
                .map_err(|source| TreeError::Io { path: full.clone(), source })?
                .map(|e| e.map(|e| rel.join(e.file_name())))
                .collect::<Result<_, _>>()
                .map_err(|source| TreeError::Io { path: full.clone(), source })?;
            children.sort();
            stack.extend(children.into_iter().rev());
            out.push(TreeEntry::Dir(rel));
        } else if kind.is_file() {
            out.push(TreeEntry::File(rel));
        } else {
            return Err(TreeError::Special { root: root.to_owned(), path: rel });
        }
    }
    Ok(out)
}

/// Opens a regular file of the tree without following a symlink put in its place.
pub fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
        .open(path)
}

/// Appends the listed `entries` of the buildpack at `dir` to `tar` under `prefix/`: links as
/// links, files by their contents (a sparse file's holes are written as the zeros they read
/// as, so every tar reader, Docker's included, takes it), opened without following a link
/// swapped in since the listing. Modes keep only the execute and read bits.
pub fn append_to_tar<W: io::Write>(
    tar: &mut tar::Builder<W>,
    prefix: &str,
    dir: &Path,
    entries: &[TreeEntry],
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match entry {
            TreeEntry::Dir(rel) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{prefix}/{}/", rel.display()), io::empty())?;
            }
            TreeEntry::File(rel) => {
                let mut file = open_nofollow(&dir.join(rel))?;
                let meta = file.metadata()?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(meta.permissions().mode() & 0o755);
                header.set_size(meta.len());
                tar.append_data(&mut header, format!("{prefix}/{}", rel.display()), &mut file)?;
            }
            TreeEntry::Link { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, format!("{prefix}/{}", path.display()), target)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_inside_stay_and_links_out_are_caught_by_their_text() {
        assert!(link_stays_inside(Path::new("lib/a"), Path::new("b")));
        assert!(link_stays_inside(Path::new("lib/a"), Path::new("../bin/build")));
        assert!(link_stays_inside(Path::new("lib"), Path::new("bin")));
        assert!(!link_stays_inside(Path::new("lib"), Path::new("/etc")));
        assert!(!link_stays_inside(Path::new("lib"), Path::new("../x")));
        assert!(!link_stays_inside(Path::new("lib/a"), Path::new("../../x")));
        assert!(!link_stays_inside(Path::new("lib/a"), Path::new("x/../../../y")));
    }

    #[test]
    fn the_walk_keeps_inner_links_and_refuses_one_leading_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bp");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("buildpack.toml"), "").unwrap();
        std::fs::write(root.join("bin/build"), "").unwrap();
        std::os::unix::fs::symlink("build", root.join("bin/detect")).unwrap();
        let got = collect(&root, &["buildpack.toml", "bin", "lib"]).unwrap();
        assert_eq!(
            got,
            [
                TreeEntry::File("buildpack.toml".into()),
                TreeEntry::Dir("bin".into()),
                TreeEntry::File("bin/build".into()),
                TreeEntry::Link { path: "bin/detect".into(), target: "build".into() },
            ]
        );
        std::os::unix::fs::symlink("/root", root.join("lib")).unwrap();
        let err = collect(&root, &["buildpack.toml", "bin", "lib"]).unwrap_err();
        assert!(matches!(&err, TreeError::LinkLeadsOut { path, .. } if path == Path::new("lib")), "{err}");
        assert!(err.to_string().contains("outside the buildpack"), "{err}");
    }

    #[test]
    fn a_sparse_file_is_written_as_a_plain_file_with_its_holes_as_zeros() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bp");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let mut f = std::fs::File::create(root.join("bin/build")).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(4 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        let blocks =
            std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(root.join("bin/build")).unwrap());
        assert!(blocks < 1024, "the test file should be sparse ({blocks} blocks)");
        let entries = collect(&root, &["bin"]).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        append_to_tar(&mut tar, "x_y", &root, &entries).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let kind = e.header().entry_type();
            assert!(matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory), "{kind:?}");
            seen.push(e.path().unwrap().display().to_string());
            if kind == tar::EntryType::Regular {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                assert_eq!(data.len(), (4 << 20) + 4);
                assert_eq!(&data[..4], b"head");
                assert_eq!(&data[data.len() - 4..], b"tail");
                assert!(data[4..data.len() - 4].iter().all(|&b| b == 0));
            }
        }
        assert_eq!(seen, ["x_y/bin/", "x_y/bin/build"]);
    }

    #[test]
    fn a_fifo_in_a_buildpack_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bp");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("bin/pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = collect(&root, &["bin"]).unwrap_err();
        assert!(matches!(&err, TreeError::Special { path, .. } if path == Path::new("bin/pipe")), "{err}");
    }

    #[test]
    fn a_symlinked_buildpack_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("bp")).unwrap();
        assert!(matches!(collect(&dir.path().join("bp"), &["bin"]), Err(TreeError::NotADir { .. })));
    }
}
