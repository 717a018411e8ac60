//! The accept loop, made to survive running out of descriptors: with the table full, `accept`
//! fails at once and forever, which once spun a router at 100 % CPU and wrote a 1 GB log in
//! 10 s. Here an exhausted table backs off (sleeping, doubling), asks idle connections to close
//! so that descriptors come back, and is logged once per interval.

use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::net::TcpListener;
use tokio::signal::unix::Signal;

use super::http::{self, Shared};
use super::log::RouterLog;

/// How long a stopping router lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(5);
/// The first pause after an exhausted accept, doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause, short enough that a freed descriptor is used promptly.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Raises the soft descriptor limit to the hard one: each proxied request holds two
/// descriptors, and the default soft limit (1024) is far below what a busy router needs.
/// Returns the (soft, hard) limits now in force.
pub(super) fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current != maximum {
        setrlimit(Resource::Nofile, Rlimit { current: maximum, maximum })?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok((now.current.unwrap_or(u64::MAX), now.maximum.unwrap_or(u64::MAX)))
}

/// Whether an accept failed for want of descriptors or memory, which only time frees.
pub(super) fn is_exhaustion(e: &std::io::Error) -> bool {
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// The pause after an exhausted accept that followed `previous` (None: the first). Pure.
pub(super) fn next_pause(previous: Option<Duration>) -> Duration {
    previous.map_or(FIRST_PAUSE, |p| (p * 2).min(MAX_PAUSE))
}

/// Accepts and serves connections until SIGTERM, then drains.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut term: Signal, log: &RouterLog) {
    let mut open = tokio::task::JoinSet::new();
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let (shedding, shed) = tokio::sync::watch::channel(0u64);
    let mut pause = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            // Reap finished connections so the set stays as small as the open ones.
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    pause = None;
                    let _ = client.set_nodelay(true);
                    open.spawn(http::serve(shared.clone(), client, stop.clone(), shed.clone()));
                }
                Err(e) if is_exhaustion(&e) => {
                    let wait = next_pause(pause);
                    pause = Some(wait);
                    log.every("accept", &format_args!(
                        "cannot accept ({e}) with {} connections open: closing idle ones, retrying in up to {} ms",
                        open.len(),
                        MAX_PAUSE.as_millis(),
                    ));
                    // Idle keep-alive connections close at once; busy ones after their request.
                    shedding.send_modify(|n| *n += 1);
                    tokio::select! {
                        _ = term.recv() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => log.every("accept-other", &format_args!("accept failed: {e}")),
            },
        }
    }
    // Stop taking connections at once (the address may be moving), but let requests in
    // flight finish for a moment, as a web server's graceful stop does.
    drop(listener);
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(DRAIN, async { while open.join_next().await.is_some() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_backs_off_doubling_to_a_cap() {
        let mut p = None;
        let mut seen = Vec::new();
        for _ in 0..8 {
            let next = next_pause(p);
            seen.push(next.as_millis());
            p = Some(next);
        }
        assert_eq!(seen, [5, 10, 20, 40, 80, 160, 200, 200]);
    }

    #[test]
    fn only_resource_errors_count_as_exhaustion() {
        let emfile = std::io::Error::from_raw_os_error(Errno::MFILE.raw_os_error());
        assert!(is_exhaustion(&emfile));
        let aborted = std::io::Error::from_raw_os_error(Errno::CONNABORTED.raw_os_error());
        assert!(!is_exhaustion(&aborted));
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = raise_fd_limit().unwrap();
        assert_eq!(soft, hard);
    }
}
