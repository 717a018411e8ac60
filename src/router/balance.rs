//! Which web instance gets the next request: the one with the fewest requests in flight among
//! those not marked down, taking turns on ties (least-connections, as nginx's `least_conn`).
//! An instance that refused a connection is marked down for a moment, so a restarting or
//! draining instance gets nothing while the others are up. Pure apart from the clock it is given.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an instance that refused a connection is left out.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Instance {
    in_flight: usize,
    down_until: Option<Instant>,
}

/// The balancing state of one router: requests in flight and down marks, per web port.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    instances: HashMap<u16, Instance>,
    turn: usize,
}

impl Balancer {
    /// The port for the next request among `ports`, skipping `tried`, or None if every port was
    /// tried. Ports marked down are picked only when no other is left, since a mark may be stale.
    pub(crate) fn pick(&mut self, ports: &[u16], tried: &[u16], now: Instant) -> Option<u16> {
        let n = ports.len();
        self.turn = self.turn.wrapping_add(1);
        let candidates = (0..n).map(|k| ports[(self.turn + k) % n]).filter(|p| !tried.contains(p));
        let score = |p: &u16| {
            let i = self.instances.get(p);
            let down = i.and_then(|i| i.down_until).is_some_and(|t| t > now);
            (down, i.map_or(0, |i| i.in_flight))
        };
        candidates.min_by_key(score)
    }

    /// A request starts on `port`.
    pub(crate) fn start(&mut self, port: u16) {
        self.instances.entry(port).or_default().in_flight += 1;
    }

    /// A request on `port` is over.
    pub(crate) fn finish(&mut self, port: u16) {
        if let Some(i) = self.instances.get_mut(&port) {
            i.in_flight = i.in_flight.saturating_sub(1);
        }
    }

    /// `port` refused a connection.
    pub(crate) fn mark_down(&mut self, port: u16, now: Instant) {
        self.instances.entry(port).or_default().down_until = Some(now + DOWN_FOR);
    }

    /// `port` answered.
    pub(crate) fn mark_up(&mut self, port: u16) {
        if let Some(i) = self.instances.get_mut(&port) {
            i.down_until = None;
        }
    }

    /// Forgets ports no longer served, so the map stays as small as the instances.
    pub(crate) fn retain(&mut self, ports: &[u16]) {
        self.instances.retain(|p, i| ports.contains(p) || i.in_flight > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_instances_take_turns() {
        let mut b = Balancer::default();
        let now = Instant::now();
        let ports = [1, 2, 3];
        let mut seen: Vec<u16> = (0..6).map(|_| b.pick(&ports, &[], now).unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn the_least_busy_instance_is_picked() {
        let mut b = Balancer::default();
        let now = Instant::now();
        b.start(1);
        b.start(1);
        b.start(2);
        for _ in 0..4 {
            assert_eq!(b.pick(&[1, 2, 3], &[], now), Some(3));
        }
        b.start(3);
        b.start(3);
        assert_eq!(b.pick(&[1, 2, 3], &[], now), Some(2));
        b.finish(1);
        b.finish(1);
        assert_eq!(b.pick(&[1, 2, 3], &[], now), Some(1));
    }

    #[test]
    fn a_down_instance_is_skipped_until_its_mark_expires_or_nothing_else_is_left() {
        let mut b = Balancer::default();
        let now = Instant::now();
        b.mark_down(2, now);
        for _ in 0..4 {
            assert_ne!(b.pick(&[1, 2], &[], now), Some(2));
        }
        assert_eq!(b.pick(&[1, 2], &[1], now), Some(2), "the only one left");
        assert_eq!(b.pick(&[1, 2], &[1, 2], now), None, "every one tried");
        let later = now + DOWN_FOR + Duration::from_millis(1);
        assert!((0..4).any(|_| b.pick(&[1, 2], &[], later) == Some(2)), "back after its mark");
        b.mark_down(1, now);
        b.mark_up(1);
        assert!((0..4).any(|_| b.pick(&[1, 2], &[], now) == Some(1)));
    }

    #[test]
    fn retain_forgets_idle_ports_that_left() {
        let mut b = Balancer::default();
        b.start(1);
        b.start(2);
        b.finish(2);
        b.retain(&[3]);
        assert_eq!(b.instances.len(), 1, "port 1 still has a request in flight");
    }
}
