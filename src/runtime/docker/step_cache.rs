//! The engine's build cache is shared: a Dockerfile step image that one app's build made is
//! the cache hit of another app's build with the same first steps, in this home or another on
//! the same engine. Removing it while that other build stands on it fails the build with
//! `unknown parent image`. So every Dockerfile build holds this machine-wide lock shared, and
//! removing step images takes it exclusively: a retire that finds a build running leaves its
//! step images recorded for a later command, and `apps destroy` or a failed build's clean-up
//! waits for the running builds.
//!
//! The lock lives in a root-only `/run/slipway` as root (every home on the machine shares the
//! engine), else in the home's root-only `state/`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::state::Home;

/// Why the step-cache lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock the build cache at {}: {source}; check that it is a root-owned file in a root-owned directory", path.display())]
pub struct StepCacheError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Held while a Dockerfile build runs (shared) or while step images are removed (exclusive).
#[derive(Debug)]
pub struct StepCacheLock {
    _file: File,
}

/// Where the lock of `home` lives: machine-wide as root.
pub fn lock_path(home: &Home) -> PathBuf {
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/run/slipway/docker-steps.lock")
    } else {
        home.state_dir().join("docker-steps.lock")
    }
}

fn open(path: &Path) -> Result<File, StepCacheError> {
    let err = |source| StepCacheError { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) => return Err(err(e)),
        }
        // Only a directory no one else can write keeps a planted link or a rival lock out.
        let meta = std::fs::symlink_metadata(dir).map_err(err)?;
        if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
            return Err(err(io::Error::other("the directory is not ours alone")));
        }
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)
}

/// Taken shared for the whole of a build; waits only for a removal pass in progress.
pub async fn building(path: PathBuf) -> Result<StepCacheLock, StepCacheError> {
    blocking(path, FlockOperation::LockShared).await
}

/// Taken exclusively to remove step images, waiting for every running build to finish.
pub async fn pruning(path: PathBuf) -> Result<StepCacheLock, StepCacheError> {
    blocking(path, FlockOperation::LockExclusive).await
}

/// Taken exclusively only if no build is running now.
pub fn pruning_if_idle(path: &Path) -> Result<Option<StepCacheLock>, StepCacheError> {
    let file = open(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(StepCacheLock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(StepCacheError { path: path.to_owned(), source: e.into() }),
    }
}

async fn blocking(path: PathBuf, op: FlockOperation) -> Result<StepCacheLock, StepCacheError> {
    let file = open(&path)?;
    let locked = tokio::task::spawn_blocking(move || flock(&file, op).map(|()| file))
        .await
        .map_err(|e| StepCacheError { path: path.clone(), source: io::Error::other(e) })?;
    locked.map(|file| StepCacheLock { _file: file }).map_err(|e| StepCacheError { path, source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_running_build_defers_an_idle_prune_but_not_another_build() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks").join("steps.lock");
        let build = building(path.clone()).await.unwrap();
        let other_build = building(path.clone()).await.unwrap();
        assert!(pruning_if_idle(&path).unwrap().is_none(), "a prune ran beside a build");
        drop((build, other_build));
        let prune = pruning_if_idle(&path).unwrap();
        assert!(prune.is_some(), "no build runs, yet the prune was deferred");
    }
}
