//! A bounded pipe from blocking writers (the tar crate, a child's stdout) into a bollard
//! request body, so that a root filesystem or a build context streams through a few hundred
//! KiB of memory instead of being held whole.

use std::io::{self, Write};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// Size of each chunk handed to the engine.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight; with [`CHUNK`] this bounds the pipe's memory at about 2 MiB.
const DEPTH: usize = 8;

/// The writing end of a body pipe; blocking, so use it from `spawn_blocking`.
#[derive(Debug)]
pub struct BodyWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

/// A pipe: write into the [`BodyWriter`], give the stream to `bollard::body_try_stream`.
pub fn pipe() -> (BodyWriter, impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (BodyWriter { tx, buf: Vec::with_capacity(CHUNK) }, stream)
}

impl BodyWriter {
    /// Ends the body with an error, so the engine sees a broken upload rather than a short
    /// but well-formed one.
    pub fn fail(self, err: io::Error) {
        let _ = self.tx.blocking_send(Err(err));
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the Docker engine stopped reading the upload")
        })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}
