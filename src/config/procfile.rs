//! The Procfile: one `type: command` line per process type, with Heroku's semantics.
//!
//! We do not use the `procfile` crate on purpose: it drops malformed lines without a word, loses
//! the order of the lines, splits on single spaces, and keeps a random one of two duplicate types
//! because it parses in parallel. Here every line either becomes an entry or an error that names
//! its line number and says how to fix it.
//!
//! The rules follow Heroku's (<https://devcenter.heroku.com/articles/procfile>): the type is
//! `[A-Za-z0-9_-]+`, and the command is everything after the first `:`, so `web: python -c "a:b"`
//! keeps its inner colon.
//!
//! Two types mean something to Heroku and so to us: `release` is the release phase, a command
//! run once per deploy before the new processes start (not a process type), and `web` receives
//! the port. `Web:` (any case) is read as `web` with a warning, as Heroku's Procfile buildpack
//! does, and likewise `Release:`; every other type keeps its case.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::ProcessType;

/// How long a quoted line may get in an error message before it is cut short.
const QUOTE_MAX_CHARS: usize = 60;

/// A parsed Procfile: its process entries, in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Procfile {
    entries: Vec<ProcessEntry>,
    release: Option<ProcessEntry>,
    warnings: Vec<String>,
}

/// The type of Heroku's release phase.
pub const RELEASE: &str = "release";

/// One `type: command` line of a Procfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// The process type, such as `web` or `worker`.
    pub ptype: ProcessType,
    /// The command, trimmed, exactly as written after the first `:`.
    pub command: String,
    /// The 1-based line number it was defined on.
    pub line: usize,
}

/// Why a Procfile was refused. Each variant names the line to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcfileError {
    /// A line that is neither blank, a comment, nor `type: command`.
    #[error("Procfile line {line}: expected \"type: command\", found {found:?}")]
    Malformed { line: usize, found: String },
    /// A process type with characters Heroku does not allow.
    #[error("Procfile line {line}: invalid process type {found:?}: use only letters, digits, '_' and '-'")]
    InvalidType { line: usize, found: String },
    /// A process type with nothing after its colon.
    #[error(
        "Procfile line {line}: process type \"{ptype}\" has no command: write it after the colon, \
         as in \"{ptype}: python3 app.py\""
    )]
    EmptyCommand { line: usize, ptype: ProcessType },
    /// A process type defined twice.
    #[error("Procfile line {line}: process type \"{ptype}\" is already defined on line {first_line}")]
    Duplicate { line: usize, first_line: usize, ptype: ProcessType },
    /// A file with no process lines at all.
    #[error("Procfile defines no processes: add a line such as \"web: python3 app.py\"")]
    NoProcesses,
}

impl Procfile {
    /// Parses the text of a Procfile.
    ///
    /// ```
    /// use slipway::config::Procfile;
    ///
    /// let procfile = Procfile::parse("web: gunicorn app:server\nworker: python3 worker.py\n")?;
    /// assert!(procfile.has_web());
    /// assert_eq!(procfile.entries()[0].command, "gunicorn app:server");
    /// # Ok::<(), slipway::config::ProcfileError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        // Editors on Windows may save with a byte order mark; it is not part of the first type.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries: Vec<ProcessEntry> = Vec::new();
        let mut warnings = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let content = raw.strip_suffix('\r').unwrap_or(raw).trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut entry = parse_line(line, content)?;
            if let Some(lower) = special_in_other_case(entry.ptype.as_str()) {
                warnings.push(format!(
                    "Procfile line {line}: process type \"{}\" is read as \"{lower}\"; write it in lower case",
                    entry.ptype
                ));
                entry.ptype =
                    lower.parse().map_err(|_| ProcfileError::InvalidType { line, found: lower.into() })?;
            }
            if let Some(first) = entries.iter().find(|e| e.ptype == entry.ptype) {
                return Err(ProcfileError::Duplicate { line, first_line: first.line, ptype: entry.ptype });
            }
            entries.push(entry);
        }
        let release = entries.iter().position(|e| e.ptype.as_str() == RELEASE).map(|i| entries.remove(i));
        if entries.is_empty() {
            return Err(ProcfileError::NoProcesses);
        }
        Ok(Procfile { entries, release, warnings })
    }

    /// The `release:` command, Heroku's release phase: run once per deploy, never kept running.
    pub fn release(&self) -> Option<&ProcessEntry> {
        self.release.as_ref()
    }

    /// What was accepted but should be fixed, such as `Web:` for `web:`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The process types, in file order (without `release`, which is not one).
    pub fn entries(&self) -> &[ProcessEntry] {
        &self.entries
    }

    /// The entry for one process type, if the Procfile defines it.
    pub fn get(&self, t: &ProcessType) -> Option<&ProcessEntry> {
        self.entries.iter().find(|e| &e.ptype == t)
    }

    /// Whether a `web` process is defined.
    pub fn has_web(&self) -> bool {
        self.entries.iter().any(|e| e.ptype.is_web())
    }
}

impl FromStr for Procfile {
    type Err = ProcfileError;

    fn from_str(text: &str) -> Result<Self, ProcfileError> {
        Procfile::parse(text)
    }
}

/// Parses one non-blank, non-comment line, already trimmed.
fn parse_line(line: usize, content: &str) -> Result<ProcessEntry, ProcfileError> {
    let Some((ptype, command)) = content.split_once(':') else {
        return Err(ProcfileError::Malformed { line, found: quote(content) });
    };
    let ptype = ptype.trim();
    let ptype: ProcessType =
        ptype.parse().map_err(|_| ProcfileError::InvalidType { line, found: quote(ptype) })?;
    let command = command.trim();
    if command.is_empty() {
        return Err(ProcfileError::EmptyCommand { line, ptype });
    }
    Ok(ProcessEntry { ptype, command: command.to_owned(), line })
}

/// `web` or `release` if `ptype` is one of them in another case (`Web`, `RELEASE`).
fn special_in_other_case(ptype: &str) -> Option<&'static str> {
    ["web", RELEASE].into_iter().find(|s| *s != ptype && s.eq_ignore_ascii_case(ptype))
}

/// Shortens a quoted line so that one long line cannot flood the error output.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(s: &str) -> ProcessType {
        s.parse().unwrap()
    }

    fn err(text: &str) -> String {
        Procfile::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn entries_keep_file_order_and_line_numbers() {
        let p =
            Procfile::parse("worker: python3 w.py\nweb: gunicorn app:server\nclock: python3 c.py\n").unwrap();
        let got: Vec<_> =
            p.entries().iter().map(|e| (e.ptype.as_str(), e.command.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [("worker", "python3 w.py", 1), ("web", "gunicorn app:server", 2), ("clock", "python3 c.py", 3)]
        );
    }

    #[test]
    fn command_is_everything_after_the_first_colon() {
        let p = Procfile::parse(r#"web: python -c "a:b""#).unwrap();
        assert_eq!(p.entries()[0].command, r#"python -c "a:b""#);
    }

    #[test]
    fn whitespace_around_type_and_command_is_trimmed_but_inner_spacing_kept() {
        let p = Procfile::parse("  web   :   gunicorn  -w 2   app:server  \t\n").unwrap();
        let e = &p.entries()[0];
        assert_eq!(e.ptype, pt("web"));
        assert_eq!(e.command, "gunicorn  -w 2   app:server");
    }

    #[test]
    fn no_space_after_colon_is_accepted() {
        let p = Procfile::parse("web:gunicorn app:server").unwrap();
        assert_eq!(p.entries()[0].command, "gunicorn app:server");
    }

    #[test]
    fn blank_lines_and_comments_are_skipped_but_counted() {
        let text = "# the web server\n\n   \n   # indented comment\nweb: gunicorn app:server\n#worker: x\n";
        let p = Procfile::parse(text).unwrap();
        assert_eq!(p.entries().len(), 1);
        assert_eq!(p.entries()[0].line, 5);
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let p = Procfile::parse("web: gunicorn app:server\r\nworker: python3 w.py\r\n").unwrap();
        assert_eq!(p.entries()[0].command, "gunicorn app:server");
        assert_eq!(p.entries()[1].command, "python3 w.py");
        assert_eq!(p.entries()[1].line, 2);
    }

    #[test]
    fn a_byte_order_mark_is_tolerated() {
        let p = Procfile::parse("\u{feff}web: gunicorn app:server\n").unwrap();
        assert_eq!(p.entries()[0].ptype, pt("web"));
    }

    #[test]
    fn a_missing_final_newline_is_fine() {
        let p = Procfile::parse("web: a\nworker: b").unwrap();
        assert_eq!(p.entries()[1].command, "b");
    }

    #[test]
    fn get_and_has_web_look_up_by_type() {
        let p = Procfile::parse("worker: python3 w.py\nweb: gunicorn app:server\n").unwrap();
        assert!(p.has_web());
        assert_eq!(p.get(&pt("worker")).unwrap().line, 1);
        assert!(p.get(&pt("clock")).is_none());
        assert!(!Procfile::parse("worker: python3 w.py").unwrap().has_web());
    }

    #[test]
    fn types_may_use_letters_digits_underscore_and_dash() {
        let p = Procfile::parse("Web_2-x: a\n").unwrap();
        assert_eq!(p.entries()[0].ptype.as_str(), "Web_2-x");
    }

    #[test]
    fn from_str_is_parse() {
        let p: Procfile = "web: a".parse().unwrap();
        assert_eq!(p, Procfile::parse("web: a").unwrap());
    }

    #[test]
    fn a_line_without_colon_is_malformed() {
        assert_eq!(
            err("web: a\n\nfoo bar\n"),
            r#"Procfile line 3: expected "type: command", found "foo bar""#
        );
    }

    #[test]
    fn a_long_malformed_line_is_cut_short_in_the_message() {
        let long = "x".repeat(200);
        let msg = err(&long);
        assert!(msg.ends_with(&format!("found \"{}...\"", "x".repeat(60))), "{msg}");
    }

    #[test]
    fn an_invalid_type_names_the_line_and_the_allowed_characters() {
        assert_eq!(
            err("worker: a\nwe b: python3 app.py\n"),
            r#"Procfile line 2: invalid process type "we b": use only letters, digits, '_' and '-'"#
        );
        assert_eq!(
            Procfile::parse("w.b: x").unwrap_err(),
            ProcfileError::InvalidType { line: 1, found: "w.b".into() }
        );
    }

    #[test]
    fn an_empty_type_is_invalid() {
        assert_eq!(
            Procfile::parse(": python3 app.py").unwrap_err(),
            ProcfileError::InvalidType { line: 1, found: String::new() }
        );
    }

    #[test]
    fn an_empty_command_is_refused() {
        assert_eq!(
            err("web: a\nworker:   \n"),
            r#"Procfile line 2: process type "worker" has no command: write it after the colon, as in "worker: python3 app.py""#
        );
        assert_eq!(
            Procfile::parse("web:").unwrap_err(),
            ProcfileError::EmptyCommand { line: 1, ptype: pt("web") }
        );
    }

    #[test]
    fn a_duplicate_type_names_both_lines() {
        let text = "web: a\nworker: b\n\n# again\nweb: c\n";
        assert_eq!(err(text), r#"Procfile line 5: process type "web" is already defined on line 1"#);
    }

    #[test]
    fn web_in_another_case_is_web_with_a_warning_but_other_types_keep_their_case() {
        let p = Procfile::parse("Web: a\nWorker: b\n").unwrap();
        assert_eq!(p.entries()[0].ptype, pt("web"));
        assert!(p.has_web());
        assert_eq!(p.entries()[1].ptype, pt("Worker"));
        assert_eq!(
            p.warnings(),
            [r#"Procfile line 1: process type "Web" is read as "web"; write it in lower case"#]
        );
        assert!(Procfile::parse("web: a").unwrap().warnings().is_empty());
        assert_eq!(
            err("web: a\nWEB: b\n"),
            r#"Procfile line 2: process type "web" is already defined on line 1"#
        );
    }

    #[test]
    fn release_is_the_release_phase_not_a_process_type() {
        let p = Procfile::parse("release: ./migrate.sh\nweb: a\n").unwrap();
        assert_eq!(p.release().map(|e| (e.command.as_str(), e.line)), Some(("./migrate.sh", 1)));
        assert_eq!(p.entries().len(), 1);
        assert!(p.get(&pt("release")).is_none());
        let p = Procfile::parse("web: a\nRelease: b\n").unwrap();
        assert_eq!(p.release().unwrap().command, "b");
        assert_eq!(p.warnings().len(), 1);
        assert_eq!(
            err("release: a\nrelease: b\n"),
            r#"Procfile line 2: process type "release" is already defined on line 1"#
        );
        assert_eq!(Procfile::parse("release: a\n").unwrap_err(), ProcfileError::NoProcesses);
        assert!(Procfile::parse("web: a").unwrap().release().is_none());
    }

    #[test]
    fn an_empty_or_comment_only_file_defines_no_processes() {
        for text in ["", "\n\n", "# only a comment\n", "\u{feff}", "  \r\n# x\r\n"] {
            assert_eq!(Procfile::parse(text).unwrap_err(), ProcfileError::NoProcesses, "{text:?}");
        }
        assert_eq!(err(""), r#"Procfile defines no processes: add a line such as "web: python3 app.py""#);
    }

    #[test]
    fn the_first_error_in_the_file_wins() {
        assert!(matches!(
            Procfile::parse("web: a\nbad\nweb: b\n").unwrap_err(),
            ProcfileError::Malformed { line: 2, .. }
        ));
    }

    #[test]
    fn entries_serialize_with_their_type_as_text() {
        let p = Procfile::parse("web: a").unwrap();
        let json = serde_json::to_string(&p.entries()[0]).unwrap();
        assert_eq!(json, r#"{"ptype":"web","command":"a","line":1}"#);
        let back: ProcessEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p.entries()[0]);
    }
}
