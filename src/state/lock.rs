//! The per-app `flock`: two deploys (or a deploy and a scale) of one app never interleave,
//! while different apps proceed in parallel. The kernel drops the lock when its holder dies,
//! so a `kill -9` never leaves an app locked.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Failure to take a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another slipway command holds {what}; retry, or drop --no-wait to wait for it")]
    Busy { what: String },
    #[error("cannot lock {path}")]
    Flock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive advisory lock, released on drop or on process death.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

/// The lock's descriptor: a child that inherits a duplicate of it holds the lock too, until
/// every holder has closed it.
impl std::os::fd::AsFd for FileLock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether to block when the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Block until the holder releases it; `on_wait` runs once first.
    Yes,
    /// Fail with [`LockError::Busy`].
    No,
}

impl FileLock {
    /// Take the lock at `path`, creating the file. `what` names it in messages.
    pub fn acquire(path: &Path, what: &str, wait: Wait, on_wait: impl FnOnce()) -> Result<Self, LockError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| LockError::Open { path: path.to_owned(), source })?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Self { file }),
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(e) => {
                return Err(LockError::Flock { path: path.to_owned(), source: e.into() });
            }
        }
        if wait == Wait::No {
            return Err(LockError::Busy { what: what.to_owned() });
        }
        on_wait();
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| LockError::Flock { path: path.to_owned(), source: e.into() })?;
        Ok(Self { file })
    }

    /// Take the lock only if it is free right now.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, LockError> {
        match Self::acquire(path, "", Wait::No, || {}) {
            Ok(l) => Ok(Some(l)),
            Err(LockError::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Take the lock for the life of a long-running holder (a supervisor, a router). Unlike
    /// [`FileLock::try_acquire`] it retries for up to `patience`: [`FileLock::is_held`] probes
    /// by taking the lock for a moment, and a holder starting during such a probe must not
    /// mistake it for a rival and quit. A real rival holds the lock for its whole life, so
    /// after `patience` this returns `None`.
    pub fn claim(path: &Path, patience: std::time::Duration) -> Result<Option<Self>, LockError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(Some(lock));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Waits up to `timeout` for whoever holds the lock at `path` to let go (as it exits), and
    /// says whether it did. Blocks on the lock itself, so it returns the moment it is free; the
    /// waiting thread ends once the lock is free, however late.
    pub fn wait_free(path: &Path, timeout: std::time::Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(Self::acquire(&path, "", Wait::Yes, || {}).is_ok());
        });
        rx.recv_timeout(timeout) == Ok(true)
    }

    /// Whether some live process holds the lock at `path` (a missing file means no).
    pub fn is_held(path: &Path) -> bool {
        if !path.exists() {
            return false;
        }
        matches!(Self::try_acquire(path), Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_outlasts_a_probe_but_not_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        // A probe is a short-lived holder: a claim made while it holds the lock succeeds.
        let probe = FileLock::try_acquire(&p).unwrap().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(probe);
        });
        let claimed = FileLock::claim(&p, std::time::Duration::from_secs(2)).unwrap();
        releaser.join().unwrap();
        assert!(claimed.is_some(), "the claim waited out the probe");
        // A holder that keeps the lock makes the claim give up after its patience.
        let started = std::time::Instant::now();
        assert!(FileLock::claim(&p, std::time::Duration::from_millis(50)).unwrap().is_none());
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    }

    #[test]
    fn second_holder_is_refused_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let first = FileLock::acquire(&p, "app demo", Wait::No, || {}).unwrap();
        assert!(FileLock::is_held(&p));
        let err = FileLock::acquire(&p, "app demo", Wait::No, || {}).unwrap_err();
        assert!(err.to_string().contains("app demo"), "{err}");
        drop(first);
        // Other tests of this process fork children; until such a child execs, it shares every
        // open file description, this lock's included, so the release is awaited, not sampled.
        assert!(FileLock::wait_free(&p, std::time::Duration::from_secs(2)), "the drop released the lock");
    }

    #[test]
    fn waiting_for_a_lock_ends_when_it_is_let_go_or_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = FileLock::acquire(&p, "app demo", Wait::No, || {}).unwrap();
        assert!(!FileLock::wait_free(&p, std::time::Duration::from_millis(50)), "still held");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(held);
        });
        assert!(FileLock::wait_free(&p, std::time::Duration::from_secs(5)));
        releaser.join().unwrap();
    }
}
