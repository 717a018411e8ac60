//! Request bodies, read with a deadline as Apache's `mod_reqtimeout` (`body=20,MinRate=500`)
//! and nginx's `client_body_timeout` do: a client that stops sending, or trickles, gets `408`.
//!
//! The first [`BUFFERED`] bytes are read before any web instance is chosen, as nginx buffers a
//! request body, so a slow client of an ordinary form or JSON post never ties up a web worker
//! (8 uploads at 1 byte/s once starved a 4-worker app). A longer body is streamed on under the
//! same deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use tokio::time::Instant;

use crate::state::BodyLimits;

/// Bytes of a body read before it goes to web.
pub(crate) const BUFFERED: usize = 64 * 1024;

/// Why a body was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Fault {
    /// The client sent too slowly or stopped.
    #[error("the request body arrived too slowly")]
    TooSlow,
    /// The body's framing was broken (a bad chunk size) or the client went away.
    #[error("the request body is malformed or was cut off")]
    Malformed,
}

/// A body on its way to web.
pub(crate) type UpBody = BoxBody<Bytes, Fault>;

/// A request body being passed on, and what went wrong if its streamed part failed.
pub(crate) struct Upload {
    pub(crate) body: UpBody,
    /// Set by the streaming part when it gives up, so the proxy answers `408`/`400`, not `502`.
    pub(crate) fault: Arc<OnceLock<Fault>>,
    /// Whether the body was empty (a request that can be sent again as it is).
    pub(crate) empty: bool,
}

/// When the next bytes must have arrived: `timeout` after the last ones, and no later than
/// `timeout` plus the time `received` bytes earn at `min_rate`. Pure.
pub(crate) fn deadline(start: Instant, last: Instant, received: u64, limits: BodyLimits) -> Instant {
    let timeout = Duration::from_millis(limits.timeout_ms);
    let gap = last + timeout;
    if limits.min_rate == 0 {
        return gap;
    }
    let earned = Duration::from_millis(received.saturating_mul(1000) / limits.min_rate);
    gap.min(start + timeout + earned)
}

/// Empty bodies pass as they are.
pub(crate) fn empty() -> Upload {
    Upload { body: Empty::new().map_err(|never| match never {}).boxed(), fault: Arc::default(), empty: true }
}

/// Reads the body's first [`BUFFERED`] bytes under the deadline, then hands over the whole
/// body: buffered if it ended, else the buffer followed by the rest as it streams in.
pub(crate) async fn read(mut incoming: Incoming, limits: BodyLimits) -> Result<Upload, Fault> {
    if incoming.is_end_stream() {
        return Ok(empty());
    }
    let start = Instant::now();
    let mut last = start;
    let mut received = 0u64;
    let mut buffered = BytesMut::new();
    while buffered.len() < BUFFERED {
        let frame = tokio::time::timeout_at(deadline(start, last, received, limits), incoming.frame())
            .await
            .map_err(|_| Fault::TooSlow)?;
        match frame {
            None => break,
            Some(Err(_)) => return Err(Fault::Malformed),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                    buffered.extend_from_slice(&data);
                    last = Instant::now();
                }
            }
        }
        if incoming.is_end_stream() {
            break;
        }
    }
    let head = buffered.freeze();
    if incoming.is_end_stream() || received < BUFFERED as u64 {
        let empty = head.is_empty();
        let body = Full::new(head).map_err(|never| match never {}).boxed();
        return Ok(Upload { body, fault: Arc::default(), empty });
    }
    let fault = Arc::new(OnceLock::new());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Fault>>(4);
    tokio::spawn(pump(incoming, tx, fault.clone(), (start, last, received), limits));
    let first = futures_util::stream::once(async move { Ok(Frame::data(head)) });
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let body = BodyExt::boxed(StreamBody::new(futures_util::StreamExt::chain(first, rest)));
    Ok(Upload { body, fault, empty: false })
}

/// Passes the rest of a long body on, under the same deadline.
async fn pump(
    mut incoming: Incoming,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Fault>>,
    fault: Arc<OnceLock<Fault>>,
    (start, mut last, mut received): (Instant, Instant, u64),
    limits: BodyLimits,
) {
    loop {
        let frame =
            match tokio::time::timeout_at(deadline(start, last, received, limits), incoming.frame()).await {
                Err(_) => Err(Fault::TooSlow),
                Ok(None) => return,
                Ok(Some(Err(_))) => Err(Fault::Malformed),
                Ok(Some(Ok(frame))) => Ok(frame),
            };
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                    last = Instant::now();
                }
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
            Err(f) => {
                let _ = fault.set(f);
                let _ = tx.send(Err(f)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_client_has_the_timeout_and_a_trickle_only_what_its_bytes_earn() {
        let limits = BodyLimits { timeout_ms: 20_000, min_rate: 500 };
        let start = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(deadline(start, start, 0, limits), start + s(20), "nothing yet: the timeout");
        // 1 byte a second: the gap rule never fires, the rate rule does at about 20 s.
        assert_eq!(deadline(start, start + s(19), 19, limits), start + s(20) + Duration::from_millis(38));
        // A fast client earns time: 1 MB in 1 s allows 2,000 s more overall, but a 20 s gap at most.
        assert_eq!(deadline(start, start + s(1), 1_000_000, limits), start + s(21));
        let no_rate = BodyLimits { timeout_ms: 1000, min_rate: 0 };
        assert_eq!(deadline(start, start + s(100), 1, no_rate), start + s(101));
    }
}
