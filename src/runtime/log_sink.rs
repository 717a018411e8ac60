//! Where `logs` writes: stdout for the CLI, a client's stream for the App Manager. The same
//! runtime code reads and follows the logs for both.

use std::io::Write;

/// Takes log lines, in order. An error means the reader is gone: the runtime stops reading
/// and returns it.
pub trait LogSink: Send {
    /// One log line, without its newline.
    fn line(&mut self, line: &str) -> std::io::Result<()>;
    /// Everything so far is written. A follow also calls this while no line arrives, so that a
    /// reader that went away ends the tail without waiting for the app to log.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// The CLI's sink: stdout, flushed after each batch.
#[derive(Debug, Default)]
pub struct StdoutLines;

impl LogSink for StdoutLines {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(std::io::stdout().lock(), "{line}")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}
