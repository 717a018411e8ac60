//! Deploy progress for people: one line per phase with its duration, in the `----->` style of
//! Heroku's and libcnb's build output. Machine output never goes here.
//!
//! The lines go to a [`ProgressSink`]: stderr for the CLI, a channel for the App Manager,
//! which streams the very same text to its client while the deploy runs in-process.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One thing a deploy reports. [`ProgressEvent::text`] is the line the CLI prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// A phase starts, or a note that is not a phase.
    Note(&'a str),
    /// A line under the current phase (a script's or a build's output).
    Detail(&'a str),
    /// A phase ended.
    PhaseEnd { name: &'a str, took: Duration, ok: bool },
}

impl ProgressEvent<'_> {
    /// The line as the CLI prints it on stderr.
    pub fn text(&self) -> String {
        match self {
            Self::Note(t) => format!("-----> {t}"),
            Self::Detail(t) => format!("       {t}"),
            Self::PhaseEnd { took, ok, .. } => {
                format!("       {} in {}", if *ok { "done" } else { "FAILED" }, format_duration(*took))
            }
        }
    }
}

/// Where progress goes. Shared by the threads of one deploy (a script's output readers, a
/// build's engine stream), hence `&self` and `Sync`. A sink must never fail the deploy: a
/// reader that went away is the sink's business, not the deploy's.
pub trait ProgressSink: Send + Sync {
    /// Take one event.
    fn event(&self, event: ProgressEvent<'_>);
    /// Whether the lines reach a terminal, which keeps the colours of build output.
    fn is_terminal(&self) -> bool {
        false
    }
}

/// The CLI's sink: each line on stderr; a failed write (a pusher who hung up) is ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl ProgressSink for Stderr {
    fn event(&self, event: ProgressEvent<'_>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", event.text());
    }

    fn is_terminal(&self) -> bool {
        std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ProgressSink for Quiet {
    fn event(&self, _: ProgressEvent<'_>) {}
}

/// Reports phase lines to a sink and remembers their durations for the release record.
pub struct Progress {
    phases: Vec<(String, Duration)>,
    sink: Arc<dyn ProgressSink>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("phases", &self.phases).finish_non_exhaustive()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Progress {
    /// Progress that prints to stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        if quiet { Self::to(Arc::new(Quiet)) } else { Self::to(Arc::new(Stderr)) }
    }

    /// Progress reported to `sink`.
    pub fn to(sink: Arc<dyn ProgressSink>) -> Self {
        Self { phases: Vec::new(), sink }
    }

    /// Report a line that is not a phase (e.g. a script's output), indented under its phase.
    pub fn detail(&self, text: &str) {
        self.sink.event(ProgressEvent::Detail(text));
    }

    /// Report a note line.
    pub fn note(&self, text: &str) {
        self.sink.event(ProgressEvent::Note(text));
    }

    /// Whether the lines reach a terminal (build output keeps its colours only then).
    pub fn is_terminal(&self) -> bool {
        self.sink.is_terminal()
    }

    /// Run `f` as a phase named `name`: announce it, time it, report done or failed.
    pub fn phase<T, E>(&mut self, name: &str, f: impl FnOnce(&Self) -> Result<T, E>) -> Result<T, E> {
        self.note(name);
        let started = Instant::now();
        let result = f(self);
        let took = started.elapsed();
        self.phases.push((name.to_owned(), took));
        self.sink.event(ProgressEvent::PhaseEnd { name, took, ok: result.is_ok() });
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
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl ProgressSink for Lines {
        fn event(&self, event: ProgressEvent<'_>) {
            self.0.lock().unwrap().push(event.text());
        }
    }

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

    #[test]
    fn a_sink_gets_the_lines_the_cli_prints() {
        let sink = Arc::new(Lines::default());
        let mut p = Progress::to(sink.clone());
        let _: Result<(), ()> = p.phase("Building v1", |p| {
            p.detail("pip install");
            Err(())
        });
        p.note("done");
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines[..2], ["-----> Building v1", "       pip install"]);
        assert!(lines[2].starts_with("       FAILED in 0.0"), "{lines:?}");
        assert_eq!(lines[3], "-----> done");
    }
}
