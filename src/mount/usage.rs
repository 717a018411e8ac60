//! Counting what a persistent filesystem holds, like `du`, without following symlinks.
//!
//! The walk goes descriptor to descriptor (`openat(O_NOFOLLOW)`, `getdents64`, `fstatat`), so
//! a directory swapped for a symlink mid-walk is never followed out of the tree, and it costs
//! one `fstatat` per non-directory (directories are recognised from `d_type`), which keeps it
//! at `du -s` speed. The depth is capped so that a hostile tree cannot exhaust descriptors.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use serde::Serialize;

use super::MountError;

/// Deeper trees are refused rather than walked.
const MAX_DEPTH: usize = 512;

/// What a persistent filesystem holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Apparent size of every non-directory (the sum of `st_size`).
    pub bytes: u64,
    /// Disk space actually allocated, directories included (`du`'s figure).
    pub allocated_bytes: u64,
    /// Files, symlinks and other non-directories.
    pub files: u64,
    /// Directories below the root.
    pub dirs: u64,
}

/// Walk the tree under the open directory `root`.
pub(crate) fn walk(root: OwnedFd, app: &str) -> Result<Usage, MountError> {
    let mut usage = Usage::default();
    let err = |e: rustix::io::Errno| MountError::File {
        app: app.to_owned(),
        action: "measure",
        path: ".".to_owned(),
        source: e.into(),
    };
    let mut stack = vec![Dir::new(root).map_err(err)?];
    while let Some(dir) = stack.last_mut() {
        let Some(entry) = dir.read() else {
            stack.pop();
            continue;
        };
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let fd = dir.fd().map_err(err)?;
        let kind = entry.file_type();
        if kind == FileType::Directory || kind == FileType::Unknown {
            // A directory, or an unknown d_type (some filesystems): stat to be sure.
            let st = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue, // deleted while we walked
                Err(e) => return Err(err(e)),
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                add_file(&mut usage, &st);
                continue;
            }
            usage.allocated_bytes += blocks(&st);
            usage.dirs += 1;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = match rustix::fs::openat(fd, name, flags, Mode::empty()) {
                Ok(sub) => sub,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    continue;
                }
                Err(e) => return Err(err(e)),
            };
            if stack.len() >= MAX_DEPTH {
                return Err(MountError::TooDeep { app: app.to_owned(), max: MAX_DEPTH });
            }
            stack.push(Dir::new(sub).map_err(err)?);
        } else {
            match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => add_file(&mut usage, &st),
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(usage)
}

fn add_file(usage: &mut Usage, st: &rustix::fs::Stat) {
    usage.files += 1;
    usage.bytes += u64::try_from(st.st_size).unwrap_or(0);
    usage.allocated_bytes += blocks(st);
}

fn blocks(st: &rustix::fs::Stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0) * 512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_bytes_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 10_000]).unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/one"), b"12345").unwrap();
        std::fs::write(dir.path().join("a/b/two"), b"123").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let fd = rustix::fs::open(dir.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let u = walk(fd, "demo").unwrap();
        assert_eq!(u.files, 3, "two files and one symlink: {u:?}");
        assert_eq!(u.dirs, 2);
        let link_len = outside.path().as_os_str().len() as u64;
        assert_eq!(u.bytes, 8 + link_len);
    }
}
