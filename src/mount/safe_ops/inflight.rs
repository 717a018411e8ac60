//! Puts in flight, recorded in root-only `state/<app>/puts/`: one file per put, named like its
//! temp file and holding the directory it writes in. A put killed before its rename leaves
//! its temp file, which counts against the limit and which the app sees; the record lets the
//! next put find and remove it without scanning the mount.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use crate::state::AppPaths;

use super::{cap, validate_rel_path};

/// The record of one put in progress; removed by [`InFlight::end`].
#[derive(Debug)]
pub(super) struct InFlight {
    record: PathBuf,
}

fn records(paths: &AppPaths) -> PathBuf {
    paths.state_dir().join("puts")
}

impl InFlight {
    /// Record that the temp file `tmp` is being written in `dir` (relative to the mount's
    /// root). Not fsynced: a record lost to a power cut leaves one temp file, as before records.
    pub(super) fn begin(paths: &AppPaths, dir: &Path, tmp: &str) -> Option<Self> {
        let record = records(paths).join(tmp);
        let written = std::fs::create_dir_all(records(paths))
            .and_then(|()| std::fs::write(&record, cap(dir).as_os_str().as_bytes()));
        match written {
            Ok(()) => Some(Self { record }),
            Err(e) => {
                tracing::warn!(record = %record.display(), error = %e, "cannot record a put in progress");
                None
            }
        }
    }

    /// The put is over: renamed into place, or its temp file removed.
    pub(super) fn end(self) {
        let _ = std::fs::remove_file(&self.record);
    }
}

/// Remove the temp files of puts whose process is gone. A record whose process still runs
/// slipway is a put in progress (a reused pid only delays the sweep). The temp file is
/// removed beneath the mount's root with `unlinkat`, never through a symlink an app planted.
pub(super) fn sweep(paths: &AppPaths, root: &Dir) {
    let Ok(entries) = std::fs::read_dir(records(paths)) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = part_pid(&name) else { continue };
        if runs_slipway(pid) {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else { continue };
        let dir = OsString::from_vec(bytes);
        let gone = match validate_rel_path(&dir.to_string_lossy()) {
            Ok(rel) => match root.open_dir(cap(&rel)) {
                Ok(d) => {
                    d.remove_file(&name).map_or_else(|e| e.kind() == std::io::ErrorKind::NotFound, |()| true)
                }
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            },
            Err(_) => true, // not a path we wrote: nothing to remove
        };
        if gone {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The pid in a put's temp file name, `.slipway-put-PID-N-NANOS.part`.
pub(super) fn part_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".slipway-put-")?.strip_suffix(".part")?;
    rest.split('-').next()?.parse().ok()
}

fn runs_slipway(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim_end() == "slipway")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Home;

    /// A pid that surely runs nothing: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_dead_puts_temp_file_and_record_go_and_nothing_outside_is_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Home::new(tmp.path().to_owned()).app(&"demo".parse().unwrap());
        let mount = tmp.path().join("mount");
        std::fs::create_dir_all(mount.join("sub")).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        let pid = dead_pid();
        let part = format!(".slipway-put-{pid}-0-1.part");
        let link = format!(".slipway-put-{pid}-1-1.part");
        std::fs::write(mount.join("sub").join(&part), b"half").unwrap();
        std::os::unix::fs::symlink(&outside, mount.join(&link)).unwrap();
        let escape = format!(".slipway-put-{pid}-2-1.part");
        std::fs::create_dir_all(paths.state_dir().join("puts")).unwrap();
        std::fs::write(paths.state_dir().join("puts").join(&part), b"sub").unwrap();
        std::fs::write(paths.state_dir().join("puts").join(&link), b".").unwrap();
        std::fs::write(paths.state_dir().join("puts").join(&escape), b"..").unwrap();

        let root = Dir::open_ambient_dir(&mount, cap_std::ambient_authority()).unwrap();
        sweep(&paths, &root);
        assert!(!mount.join("sub").join(&part).exists(), "the dead put's temp file stayed");
        assert!(std::fs::symlink_metadata(mount.join(&link)).is_err(), "the planted link stayed");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep", "the link's target was touched");
        assert_eq!(std::fs::read_dir(paths.state_dir().join("puts")).unwrap().count(), 0);
    }

    #[test]
    fn begin_records_the_directory_and_end_removes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Home::new(tmp.path().to_owned()).app(&"demo".parse().unwrap());
        let record = InFlight::begin(&paths, Path::new(""), ".slipway-put-1-0-1.part").unwrap();
        // The root is recorded as `.`, a path `validate_rel_path` accepts back.
        assert_eq!(std::fs::read(paths.state_dir().join("puts/.slipway-put-1-0-1.part")).unwrap(), b".");
        record.end();
        assert_eq!(std::fs::read_dir(paths.state_dir().join("puts")).unwrap().count(), 0);
    }
}
