//! Deploy progress for people: one line per phase on stderr, with its duration, in the
//! `----->` style of Heroku's and libcnb's build output. Machine output never goes here.

use std::io::Write;
use std::time::{Duration, Instant};

/// Prints phase lines and remembers their durations for the release record.
#[derive(Debug, Default)]
pub struct Progress {
    phases: Vec<(String, Duration)>,
    quiet: bool,
}

impl Progress {
    /// Progress that prints to stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self { phases: Vec::new(), quiet }
    }

    /// Print a line that is not a phase (e.g. a script's output), indented under its phase.
    pub fn detail(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "       {text}");
        }
    }

    /// Print a note line.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "-----> {text}");
        }
    }

    /// Run `f` as a phase named `name`: announce it, time it, report done or failed.
    pub fn phase<T, E>(&mut self, name: &str, f: impl FnOnce(&Self) -> Result<T, E>) -> Result<T, E> {
        self.note(name);
        let started = Instant::now();
        let result = f(self);
        let took = started.elapsed();
        self.phases.push((name.to_owned(), took));
        let verdict = if result.is_ok() { "done" } else { "FAILED" };
        self.detail(&format!("{verdict} in {}", format_duration(took)));
        result
    }

    /// Every phase run so far, with its duration.
    pub fn phases(&self) -> &[(String, Duration)] {
        &self.phases
    }
}

/// A duration as people read it in progress lines: `0.42s`, `12.3s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn phases_are_recorded_even_when_they_fail() {
        let mut p = Progress::new(true);
        let ok: Result<u8, ()> = p.phase("build", |_| Ok(1));
        let bad: Result<u8, ()> = p.phase("predeploy", |_| Err(()));
        assert_eq!((ok, bad), (Ok(1), Err(())));
        let names: Vec<_> = p.phases().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["build", "predeploy"]);
    }
}
