//! Per-process log files with size-based rotation (`web.1.v3.log`, then `.1` … `.3`), so a
//! chatty process cannot fill the disk. Each release writes its own files: a failing release
//! that logs megabytes rotates only its own lines away, never the running release's.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::ids::{ProcessType, ReleaseId};

/// Rotate once a file passes this size.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept besides the live one.
pub const KEEP: u32 = 3;

/// An append-only log file that rotates itself.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
}

impl RotatingLog {
    /// Open (append) the log at `path`.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self { path: path.to_owned(), file, written, max_bytes })
    }

    /// Append one line, stamped with the time and the instance name.
    pub fn line(&mut self, source: &str, text: &str) -> io::Result<()> {
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let entry = format!("{stamp} {source}: {}\n", text.trim_end_matches(['\r', '\n']));
        if self.written + entry.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate()?;
        }
        self.file.write_all(entry.as_bytes())?;
        self.written += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..KEEP).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// The log file name of one instance of one release: `web.1.v3.log`.
pub fn file_name(ptype: &ProcessType, index: u32, release: ReleaseId) -> String {
    format!("{ptype}.{index}.{release}.log")
}

/// The instance (`web.1`) and release a live log file belongs to, from its name; files named
/// before logs were per release (`web.1.log`) have no release. None for anything else
/// (rotated files, `supervisor.log`, `router.log`).
pub fn parse_file_name(name: &str) -> Option<(String, Option<ReleaseId>)> {
    let stem = name.strip_suffix(".log")?;
    let mut parts = stem.split('.');
    let (ptype, index) = (parts.next()?, parts.next()?);
    index.parse::<u32>().ok()?;
    let release = match parts.next() {
        Some(r) => Some(r.parse().ok()?),
        None => None,
    };
    parts.next().is_none().then(|| (format!("{ptype}.{index}"), release))
}

/// Delete the log files (rotated ones too) of every release in `dir` but `keep`.
pub fn prune(dir: &Path, keep: &[ReleaseId]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let live = name.find(".log").map_or(name, |end| &name[..end + 4]);
        if let Some((_, Some(release))) = parse_file_name(live)
            && !keep.contains(&release)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The path of rotated file number `n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_names_carry_the_instance_and_the_release() {
        let web: ProcessType = "web".parse().unwrap();
        assert_eq!(file_name(&web, 2, ReleaseId::new(7)), "web.2.v7.log");
        assert_eq!(parse_file_name("web.2.v7.log"), Some(("web.2".to_owned(), Some(ReleaseId::new(7)))));
        assert_eq!(parse_file_name("worker.1.log"), Some(("worker.1".to_owned(), None)));
        for other in ["supervisor.log", "router.log", "web.2.v7.log.1", "web.x.v1.log", "web.1.v1.x.log"] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn prune_keeps_the_named_releases_and_other_logs() {
        let dir = tempfile::tempdir().unwrap();
        for f in
            ["web.1.v1.log", "web.1.v1.log.1", "web.1.v2.log", "web.1.v3.log", "supervisor.log", "web.1.log"]
        {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        prune(dir.path(), &[ReleaseId::new(2), ReleaseId::new(3)]);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["supervisor.log", "web.1.log", "web.1.v2.log", "web.1.v3.log"]);
    }

    #[test]
    fn rotates_and_keeps_three_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.1.log");
        let mut log = RotatingLog::open(&path, 200).unwrap();
        for i in 0..40 {
            log.line("web.1", &format!("line {i}")).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        for n in 1..=KEEP {
            assert!(rotated(&path, n).exists(), "missing .{n}");
        }
        assert!(!rotated(&path, KEEP + 1).exists());
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.trim_end().ends_with("web.1: line 39"), "{live}");
    }
}
