//! Restart backoff as a pure function: 100 ms, doubling per crash, capped at one minute, and
//! forgotten once a process has stayed up for 10 s (the shape of systemd's and Heroku's
//! crash-restart policies, without their long cool-down).

use std::time::Duration;

/// First delay after a crash.
pub const BASE: Duration = Duration::from_millis(100);
/// Longest delay.
pub const CAP: Duration = Duration::from_secs(60);
/// Uptime after which a process counts as healthy and its crash count resets.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// The crash history of one process instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    crashes: u32,
}

impl Backoff {
    /// Record an exit after `uptime`; returns how long to wait before the restart.
    pub fn on_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= RESET_AFTER {
            self.crashes = 0;
        }
        let wait = delay(self.crashes);
        self.crashes = self.crashes.saturating_add(1);
        wait
    }
}

/// How long to wait before restart number `attempt` (0 = first crash after a healthy run).
pub fn delay(attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    BASE.checked_mul(factor).map_or(CAP, |d| d.min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_100ms_and_caps_at_a_minute() {
        let got: Vec<u128> = (0..12).map(|a| delay(a).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
        assert_eq!(delay(u32::MAX), CAP);
    }

    #[test]
    fn resets_after_ten_seconds_of_uptime() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(50);
        let waits: Vec<u128> = (0..4).map(|_| b.on_exit(quick).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800]);
        assert_eq!(b.on_exit(Duration::from_millis(9_999)).as_millis(), 1600);
        assert_eq!(b.on_exit(Duration::from_secs(10)).as_millis(), 100);
        assert_eq!(b.on_exit(quick).as_millis(), 200);
    }
}
