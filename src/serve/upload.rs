//! An upload's bytes, carried from the connection to the disk. The request's own task pulls
//! the body's chunks as fast as the socket gives them and queues them (bounded); a blocking
//! writer drains the queue in batches, one `writev` per batch, into the put's temp file. So
//! reading the network and writing the disk overlap, no chunk is copied on the way, and the
//! memory an upload holds is bounded by the queue, whatever its size.

use std::io;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::mount::PutSink;

/// Chunks queued between the connection and the writer. hyper hands out at most ~400 KiB at a
/// time, so an upload holds at most ~13 MiB here.
pub const QUEUE: usize = 32;
/// At most this much is handed to one `writev`.
const BATCH_BYTES: usize = 4 << 20;
/// At most this many chunks go in one `writev` (well under `IOV_MAX`).
const BATCH_CHUNKS: usize = 64;

/// What the connection hands the writer.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    /// The body ended as its framing says. A queue that closes without it was cut short: the
    /// writer then fails, and the put leaves nothing.
    End,
}

/// How feeding the body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The whole body is queued, `End` included.
    Complete,
    /// The writer stopped taking chunks (it failed; its result says why).
    WriterGone,
    /// The body failed: the client went away or broke the framing.
    Interrupted(String),
}

/// Queue `body`'s chunks for the writer until it ends.
pub async fn feed(body: Body, tx: mpsc::Sender<Piece>) -> Fed {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                if tx.send(Piece::Data(data)).await.is_err() {
                    return Fed::WriterGone;
                }
            }
            Err(e) => return Fed::Interrupted(super::errors::chain(&e)),
        }
    }
    if tx.send(Piece::End).await.is_err() { Fed::WriterGone } else { Fed::Complete }
}

/// Write the queued chunks into `sink` until `End`; returns the bytes written. Runs on a
/// blocking thread. Fails if the queue closes without `End` (the upload was cancelled).
pub fn drain(rx: &mut mpsc::Receiver<Piece>, sink: &mut PutSink) -> io::Result<u64> {
    let cancelled = || io::Error::new(io::ErrorKind::UnexpectedEof, "the upload was cut short");
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH_CHUNKS);
    loop {
        let mut end = match rx.blocking_recv() {
            None => return Err(cancelled()),
            Some(Piece::End) => true,
            Some(Piece::Data(b)) => {
                batch.push(b);
                false
            }
        };
        // Whatever else has arrived meanwhile goes into the same writev.
        let mut bytes: usize = batch.iter().map(Bytes::len).sum();
        while !end && bytes < BATCH_BYTES && batch.len() < BATCH_CHUNKS {
            match rx.try_recv() {
                Ok(Piece::Data(b)) => {
                    bytes += b.len();
                    batch.push(b);
                }
                Ok(Piece::End) => end = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(cancelled()),
            }
        }
        if !batch.is_empty() {
            let slices: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
            sink.write_all_vectored(&slices)?;
            batch.clear();
        }
        if end {
            return Ok(sink.written());
        }
    }
}
