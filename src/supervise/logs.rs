//! Per-process log files with size-based rotation (`web.1.log`, then `.1` … `.3`), so a chatty
//! process cannot fill the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
