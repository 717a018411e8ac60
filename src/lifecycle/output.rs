//! Streamed output: engine chunks cut into lines for a callback, and the last lines kept for
//! an error message.

use std::borrow::Cow;
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
        // The tail ends up in an error message, which may go to a log or a JSON answer.
        self.lines.push_back(strip_ansi(line).into_owned());
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

/// `text` without terminal escape sequences (colours, cursor moves, OSC titles) or other
/// control characters but tab: what a build prints for a terminal, made fit for a file.
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A build output line as it should be shown: as is on a terminal, stripped of escape codes
/// otherwise.
pub fn for_output(line: &str, terminal: bool) -> Cow<'_, str> {
    if terminal { Cow::Borrowed(line) } else { strip_ansi(line) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_codes_are_stripped_but_text_and_tabs_stay() {
        assert_eq!(strip_ansi("\u{1b}[1;31merror\u{1b}[0m:\there"), "error:\there");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}done\r"), "done");
        assert_eq!(strip_ansi("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"), "link");
        assert!(matches!(strip_ansi("plain"), Cow::Borrowed("plain")));
        assert_eq!(for_output("\u{1b}[32mok\u{1b}[0m", true), "\u{1b}[32mok\u{1b}[0m");
        assert_eq!(for_output("\u{1b}[32mok\u{1b}[0m", false), "ok");
    }

    #[test]
    fn the_tail_shown_in_errors_has_no_escape_codes() {
        let mut t = Tail::new();
        t.push_chunk("\u{1b}[31mfailed\u{1b}[0m\n", &mut |_: &str| {});
        assert_eq!(t.to_string(), "    failed\n");
    }

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
