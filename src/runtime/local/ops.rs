//! Day-to-day operations on the local runtime: ps, scale, restart, stop, start, logs, one-off
//! runs and crash repair, all through the release's supervisor.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use super::{LocalError, LocalRuntime, attach_mount, io_err, script};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DEFAULT_STOP_GRACE, DeployPlan};
use crate::runtime::{ProcessReport, Repairs};
use crate::state::tree;
use crate::state::{AppRecord, Home};
use crate::supervise::status::SupervisorStatus;
use crate::supervise::{cgroup, launch, logs, reaper};

/// The plan a release was deployed with.
pub fn load_plan(home: &Home, app: &AppName, release: ReleaseId) -> Result<DeployPlan, LocalError> {
    let path = home.app(app).release(release).plan();
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&bytes).map_err(|e| io_err(&path)(std::io::Error::other(e)))
}

fn grace(home: &Home, app: &AppName, release: ReleaseId) -> Duration {
    load_plan(home, app, release).map_or(DEFAULT_STOP_GRACE, |p| p.stop_grace)
}

impl LocalRuntime {
    pub(super) fn processes_of(&self, app: &AppRecord, release: ReleaseId) -> ProcessReport {
        let paths = self.home.app(&app.name).release(release);
        let running = launch::is_running(&paths);
        let instances = SupervisorStatus::read(&paths.status()).filter(|_| running).map(|s| s.instances);
        ProcessReport { running, instances: instances.unwrap_or_default() }
    }

    pub(super) fn restart_of(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        only: Option<&ProcessType>,
    ) -> Result<(), LocalError> {
        if only.is_some() {
            return Ok(launch::request_restart(&self.home, &app.name, release, only)?);
        }
        self.stop_of(app, release)?;
        self.start_of(app, release)
    }

    pub(super) fn stop_of(&self, app: &AppRecord, release: ReleaseId) -> Result<(), LocalError> {
        Ok(launch::stop(&self.home, &app.name, release, grace(&self.home, &app.name, release))?)
    }

    /// Start a release's supervisor. The mount is attached here (and by the deploy's attach
    /// step), so that a mount enabled or disabled since the deploy applies from this start on,
    /// and a mount error reaches the user directly.
    pub(super) fn start_of(&self, app: &AppRecord, release: ReleaseId) -> Result<(), LocalError> {
        attach_mount(&self.home, &app.name, release)?;
        Ok(launch::start(&self.home, &app.name, release)?)
    }

    pub(super) fn run_oneoff_of(
        &self,
        app: &AppRecord,
        release: ReleaseId,
        command: &crate::oneoff::OneOff,
    ) -> Result<i32, LocalError> {
        let mut plan = load_plan(&self.home, &app.name, release)?;
        plan.env.clone_from(&app.env);
        // Who the command runs as comes from the app's record, never from a release's files.
        plan.run_as.clone_from(&app.run_as);
        attach_mount(&self.home, &app.name, release)?;
        // Nothing the command starts outlives it, even in a new session: see `reaper`.
        reaper::become_subreaper();
        let since = reaper::ticks_now();
        let env = self.process_env(&plan);
        let script = command.script();
        let status = env.interactive(&script, &[("DYNO", "run.1".to_owned())]).status();
        reaper::kill_children(Some(since), Duration::from_secs(5));
        let status = status.map_err(|e| LocalError::Spawn {
            app: app.name.clone(),
            why: env.explain_spawn_error(&script, &e),
        })?;
        Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
    }

    /// Stop a release (supervisor, processes, a leftover script) and delete its folder.
    pub(super) fn discard(
        &self,
        app: &AppName,
        release: ReleaseId,
        grace: Duration,
    ) -> Result<(), LocalError> {
        launch::stop(&self.home, app, release, grace)?;
        let app_paths = self.home.app(app);
        let paths = app_paths.release(release);
        // A script a killed deploy left: its whole cgroup if it had one, else its group.
        match cgroup::script_path(self.home.root(), app, release) {
            Some(cg) if cg.exists() => cgroup::remove(&cg),
            _ => script::kill_leftover(&paths.script_pgid()),
        }
        // And what its build was running when it was killed (pip, say).
        if let Some(cg) = cgroup::build_path(self.home.root(), app, release).filter(|cg| cg.exists()) {
            cgroup::remove(&cg);
        }
        // The folder holds the app's own files and links: removed by descriptors, never
        // following a link, from a `releases` directory checked to be slipway's.
        let name = std::ffi::OsString::from(release.to_string());
        if let Some(releases) = tree::open_if_exists(self.home.root(), &app_paths.releases_dir())? {
            tree::remove_tree(&releases, &name, paths.dir())?;
        }
        // Logs of the current release and the three newest stay, for `slipway logs`.
        let current = self.home.load_app(app).ok().and_then(|r| r.current);
        let mut keep: Vec<ReleaseId> = self.home.release_ids(app).unwrap_or_default();
        keep = keep.split_off(keep.len().saturating_sub(3));
        keep.extend(current);
        logs::prune(&app_paths.logs_dir(), &keep);
        // Last, so that a failure above leaves the release findable for the next try.
        match std::fs::remove_dir_all(paths.state_dir()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(paths.state_dir())(e)),
        }
        // Sealed layers only this release ran from go with it (never the live release's, nor
        // the one the next build reuses).
        if let Err(e) = super::layer_store::collect_garbage(&self.home, app) {
            tracing::warn!(app = %app, error = %e, "cannot remove unused sealed layers");
        }
        Ok(())
    }

    /// Discard every release folder but the current one, stop their supervisors and leftover
    /// scripts, clear staging, and bring the current release back up if it should run.
    pub(super) fn reconcile_of(&self, app: &AppRecord) -> Result<Repairs, LocalError> {
        let home = &self.home;
        let paths = home.app(&app.name);
        let mut repairs = Repairs::default();
        for id in home.release_dirs(&app.name)? {
            if Some(id) == app.current {
                continue;
            }
            // Killed after the switch but before the old release stopped, or before the switch.
            match self.discard(&app.name, id, grace(home, &app.name, id)) {
                Ok(()) => repairs.removed.push(id),
                Err(e) => {
                    tracing::warn!(app = %app.name, release = %id, error = %e, "cannot remove leftover release");
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(paths.staging_dir()) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        if let Some(current) = app.current
            && !app.stopped
            && !launch::is_running(&paths.release(current))
            && paths.release(current).dir().exists()
        {
            self.start_of(app, current)?;
            repairs.restarted = Some(current);
        }
        Ok(repairs)
    }

    pub(super) fn logs_of(
        &self,
        app: &AppName,
        process: Option<&str>,
        lines: usize,
        follow: bool,
        sink: &mut dyn crate::runtime::LogSink,
    ) -> Result<(), LocalError> {
        let dir = self.home.app(app).logs_dir();
        let files = log_files(&dir, process);
        if files.is_empty() {
            return Err(LocalError::NoLogs {
                app: app.clone(),
                what: process.unwrap_or("any process").to_owned(),
            });
        }
        let mut all: Vec<String> = Vec::new();
        let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
        for f in &files {
            let text = std::fs::read(f).unwrap_or_default();
            offsets.insert(f.clone(), text.len() as u64);
            all.extend(String::from_utf8_lossy(&text).lines().map(str::to_owned));
        }
        // Each line starts with an RFC 3339 timestamp, so text order is time order.
        all.sort();
        let gone = || io_err("the log reader");
        for l in &all[all.len().saturating_sub(lines)..] {
            sink.line(l).map_err(gone())?;
        }
        sink.flush().map_err(gone())?;
        if !follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(Duration::from_millis(200));
            // Also while the app is silent: a reader that left ends the tail.
            sink.flush().map_err(gone())?;
            for f in log_files(&dir, process) {
                let offset = offsets.entry(f.clone()).or_insert(0);
                let Ok(mut file) = std::fs::File::open(&f) else { continue };
                let len = file.metadata().map_or(0, |m| m.len());
                if len < *offset {
                    *offset = 0; // rotated
                }
                if len == *offset {
                    continue;
                }
                let mut buf = Vec::new();
                file.seek(SeekFrom::Start(*offset))
                    .and_then(|_| file.read_to_end(&mut buf))
                    .map_err(io_err(&f))?;
                // Only complete lines; a partial one waits for the next round.
                let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                for l in String::from_utf8_lossy(&buf[..complete]).lines() {
                    sink.line(l).map_err(gone())?;
                }
                sink.flush().map_err(gone())?;
                *offset += complete as u64;
            }
        }
    }
}

/// The log files of `process`: a type (`worker`), one instance (`worker.2`), or all.
fn log_files(dir: &std::path::Path, process: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let Some((name, _)) = p.file_name().and_then(|n| n.to_str()).and_then(logs::parse_file_name)
            else {
                return false;
            };
            let name = name.as_str();
            match process {
                None => true,
                Some(want) if want.contains('.') => name == want,
                Some(want) => name.split_once('.').is_some_and(|(t, _)| t == want),
            }
        })
        .collect();
    files.sort();
    files
}
