//! Durable state: app settings and release records, written atomically, guarded by per-app locks.

pub mod atomic;
pub mod layout;
pub mod lock;
mod records;
pub mod tree;

pub use layout::{AppPaths, Home, ReleasePaths};
pub use lock::{FileLock, LockError, Wait};
pub use records::{AppRecord, BodyLimits, Phase, ReleaseRecord, ReleaseStatus, RunAs, RuntimeKind, now_unix};

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::ids::{AppName, ReleaseId};

/// Failures reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("app {0} does not exist; create it with `slipway apps create {0}`")]
    NoSuchApp(AppName),
    #[error("app {0} already exists")]
    AppExists(AppName),
    #[error("release {release} of app {app} does not exist; see `slipway releases {app}`")]
    NoSuchRelease { app: AppName, release: ReleaseId },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
}

impl Home {
    /// Every app, sorted by name. Directories that are not valid app names are skipped.
    pub fn list_apps(&self) -> Result<Vec<AppName>, StateError> {
        let dir = self.state_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Read { path: dir, source }),
        };
        let mut apps: Vec<AppName> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|a| self.app(a).record().exists())
            .collect();
        apps.sort();
        Ok(apps)
    }

    /// The settings of `app`.
    pub fn load_app(&self, app: &AppName) -> Result<AppRecord, StateError> {
        let path = self.app(app).record();
        read_json(&path)?.ok_or_else(|| StateError::NoSuchApp(app.clone()))
    }

    /// Replace the settings of an app atomically.
    pub fn save_app(&self, record: &AppRecord) -> Result<(), StateError> {
        let path = self.app(&record.name).record();
        atomic::write_json(&path, record).map_err(|source| StateError::Write { path, source })
    }

    /// Create the app's directory and record; fails if it exists.
    pub fn create_app(&self, record: &AppRecord) -> Result<(), StateError> {
        let paths = self.app(&record.name);
        if paths.record().exists() {
            return Err(StateError::AppExists(record.name.clone()));
        }
        for dir in [paths.history_dir(), paths.logs_dir(), paths.release_state_dir()] {
            fs::create_dir_all(&dir).map_err(|source| StateError::Write { path: dir.clone(), source })?;
        }
        // The app reaches its tree but cannot change it: see `tree`.
        let user = record.run_as.as_ref();
        tree::open_or_create(self.root(), &self.apps_dir(), tree::Access::Private, None)?;
        tree::open_or_create(self.root(), &paths.releases_dir(), tree::Access::AppReads, user)?;
        self.save_app(record)
    }

    /// Take the app's lock: deploys, scaling and mount changes of one app serialise here.
    pub fn lock_app(
        &self,
        app: &AppName,
        wait: Wait,
        on_wait: impl FnOnce(),
    ) -> Result<FileLock, StateError> {
        let path = self.app(app).lock();
        if !self.app(app).record().exists() {
            return Err(StateError::NoSuchApp(app.clone()));
        }
        Ok(FileLock::acquire(
            &path,
            &format!("the lock of app {app} (a deploy may be running)"),
            wait,
            on_wait,
        )?)
    }

    /// The record of one release.
    pub fn load_release(&self, app: &AppName, id: ReleaseId) -> Result<ReleaseRecord, StateError> {
        read_json(&self.app(app).history(id))?
            .ok_or_else(|| StateError::NoSuchRelease { app: app.clone(), release: id })
    }

    /// Write the record of one release atomically.
    pub fn save_release(&self, app: &AppName, record: &ReleaseRecord) -> Result<(), StateError> {
        let path = self.app(app).history(record.id);
        atomic::write_json(&path, record).map_err(|source| StateError::Write { path, source })
    }

    /// Every release record of `app`, oldest first.
    pub fn list_releases(&self, app: &AppName) -> Result<Vec<ReleaseRecord>, StateError> {
        self.release_ids(app)?.into_iter().map(|id| self.load_release(app, id)).collect()
    }

    /// The ids of every release record, oldest first, read from file names alone.
    pub fn release_ids(&self, app: &AppName) -> Result<Vec<ReleaseId>, StateError> {
        let dir = self.app(app).history_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Read { path: dir, source }),
        };
        let mut ids: Vec<ReleaseId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Releases present on disk, whatever their records say: folders in `apps/<app>/releases`
    /// (opened without following a symlink, refused if tampered with) and root-only release
    /// state in `state/<app>/releases`.
    pub fn release_dirs(&self, app: &AppName) -> Result<Vec<ReleaseId>, StateError> {
        let paths = self.app(app);
        let mut names = Vec::new();
        for dir in [paths.releases_dir(), paths.release_state_dir()] {
            if let Some(fd) = tree::open_if_exists(self.root(), &dir)? {
                names.extend(tree::names(&fd, &dir)?);
            }
        }
        let mut ids: Vec<ReleaseId> = names.iter().filter_map(|n| n.to_str()?.parse().ok()).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The id a new release gets: one past every record and every folder, so an orphan folder
    /// from a killed deploy is never reused.
    pub fn next_release_id(&self, app: &AppName) -> Result<ReleaseId, StateError> {
        let max = self.release_ids(app)?.into_iter().chain(self.release_dirs(app)?).max();
        Ok(max.map_or(ReleaseId::new(1), ReleaseId::next))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path: path.to_owned(), source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_skip_orphan_folders() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let app: AppName = "demo".parse().unwrap();
        home.create_app(&AppRecord::new(app.clone(), RuntimeKind::Local)).unwrap();
        assert_eq!(home.next_release_id(&app).unwrap().to_string(), "v1");
        fs::create_dir_all(home.app(&app).release(ReleaseId::new(4)).dir()).unwrap();
        assert_eq!(home.next_release_id(&app).unwrap().to_string(), "v5");
        assert!(matches!(
            home.create_app(&AppRecord::new(app, RuntimeKind::Local)),
            Err(StateError::AppExists(_))
        ));
    }
}
