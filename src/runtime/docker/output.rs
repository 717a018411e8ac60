//! Streamed output: engine chunks cut into lines for a callback, and the last lines kept for
//! an error message.

use std::collections::VecDeque;
use std::fmt;

/// How many output lines a failed step shows.
pub const TAIL_LINES: usize = 30;

/// Where streamed output lines go (e.g. the deploy output on stderr).
pub type LineSink<'a> = &'a mut (dyn FnMut(&str) + Send);

/// The last lines of a step's output, shown when the step fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    lines: VecDeque<String>,
    partial: String,
}

impl Tail {
    /// An empty tail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk of text, which may hold several lines or part of one, and passes every
    /// completed line to `sink`.
    pub fn push_chunk(&mut self, chunk: &str, sink: LineSink<'_>) {
        self.partial.push_str(chunk);
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            sink(line);
            self.push_line(line);
        }
    }

    /// Flushes a last line that had no newline.
    pub fn finish(&mut self, sink: LineSink<'_>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            sink(&line);
            self.push_line(&line);
        }
    }

    fn push_line(&mut self, line: &str) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines_and_only_the_last_are_kept() {
        let mut seen = Vec::new();
        let mut sink = |l: &str| seen.push(l.to_owned());
        let mut t = Tail::new();
        t.push_chunk("a\nb", &mut sink);
        t.push_chunk("c\r\n", &mut sink);
        for i in 0..40 {
            t.push_chunk(&format!("{i}\n"), &mut sink);
        }
        t.push_chunk("end", &mut sink);
        t.finish(&mut sink);
        assert_eq!(seen[..2], ["a", "bc"]);
        assert_eq!(seen.last().map(String::as_str), Some("end"));
        let kept: Vec<_> = t.lines().collect();
        assert_eq!(kept.len(), TAIL_LINES);
        assert_eq!(kept.last(), Some(&"end"));
    }
}
