//! The router's own log, `state/APP/logs/router.log`, rotated as process logs are
//! ([`RotatingLog`]), and throttled: a condition that repeats (a full descriptor table, an
//! unreachable engine) is written once per interval with a count, never once per occurrence,
//! so a storm of failures cannot fill the disk.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::supervise::logs::{self, RotatingLog};

/// A repeating condition is written at most once per this interval.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// Whether a repeating event is written now, and how many were held back before it. Pure.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// An event at `now`: `Some(held back since the last written one)` if it is to be written.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

struct Inner {
    file: Option<RotatingLog>,
    throttles: HashMap<&'static str, Throttle>,
}

/// The router's log: shared by its tasks, cheap to clone.
#[derive(Clone)]
pub(crate) struct RouterLog(Arc<Mutex<Inner>>);

impl RouterLog {
    /// Appends to `path`; if it cannot be opened, lines go to stderr (the router still serves).
    pub(crate) fn open(path: &Path) -> Self {
        let file = RotatingLog::open(path, logs::MAX_BYTES)
            .map_err(|e| eprintln!("router: cannot open {}: {e}", path.display()))
            .ok();
        Self(Arc::new(Mutex::new(Inner { file, throttles: HashMap::new() })))
    }

    /// Writes one line.
    pub(crate) fn line(&self, text: &str) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.file.as_mut() {
            Some(f) => {
                let _ = f.line("router", text);
            }
            None => eprintln!("router: {text}"),
        }
    }

    /// Writes `what` unless a line of the same `kind` was written less than [`EVERY`] ago.
    pub(crate) fn every(&self, kind: &'static str, what: &dyn Display) {
        let held = {
            let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            inner.throttles.entry(kind).or_default().hit(Instant::now())
        };
        match held {
            Some(0) => self.line(&what.to_string()),
            Some(n) => self.line(&format!("{what} (and {n} more times since the last such line)")),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_written_once_per_interval_with_its_count() {
        let mut t = Throttle::default();
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(0));
        for ms in 1..1000 {
            assert_eq!(t.hit(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.hit(start + EVERY), Some(999));
        assert_eq!(t.hit(start + EVERY + Duration::from_millis(1)), None);
    }

    #[test]
    fn the_log_rotates_and_throttles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        let log = RouterLog::open(&path);
        for _ in 0..10_000 {
            log.every("accept", &"accept failed: Too many open files");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
