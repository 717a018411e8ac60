//! Kept-alive connections to web instances, shared by every client connection, as nginx's
//! upstream `keepalive`: a request takes an idle connection to the instance it was given, or
//! opens one, and gives it back once its response has been read to the end.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpBody;

/// Idle connections kept per instance.
const IDLE_PER_PORT: usize = 64;

/// A connection to web.
pub(crate) type Upstream = SendRequest<UpBody>;

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// Nothing listens there (a restarting or draining instance), or it did not answer in time.
    #[error("web on port {port} refused or did not answer")]
    Refused {
        /// The instance's port.
        port: u16,
    },
}

/// The idle connections, per web port.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<u16, Vec<Upstream>>>,
}

impl Pool {
    /// An idle connection to `port` that still works (`true`: kept from an earlier request),
    /// or a new one; with `fresh`, always a new one.
    pub(crate) async fn get(&self, port: u16, fresh: bool) -> Result<(Upstream, bool), ConnectError> {
        loop {
            let kept = if fresh {
                None
            } else {
                self.idle.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&port).and_then(Vec::pop)
            };
            let Some(mut s) = kept else { break };
            // Most kept connections are ready: no timer for those (this is every request's path).
            if s.is_ready() {
                return Ok((s, true));
            }
            // A kept connection is idle, so this is immediate unless web has just closed it.
            if matches!(tokio::time::timeout(Duration::from_millis(50), s.ready()).await, Ok(Ok(()))) {
                return Ok((s, true));
            }
        }
        connect(port).await.map(|s| (s, false))
    }

    /// Keeps a connection whose response was read, for the next request to `port`.
    pub(crate) fn put(&self, port: u16, sender: Upstream) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(port).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < IDLE_PER_PORT {
            list.push(sender);
        }
    }

    /// Drops the connections of ports no longer served.
    pub(crate) fn retain(&self, ports: &[u16]) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).retain(|p, _| ports.contains(p));
    }
}

async fn connect(port: u16) -> Result<Upstream, ConnectError> {
    let refused = || ConnectError::Refused { port };
    let stream =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((Ipv4Addr::LOCALHOST, port)))
            .await
            .map_err(|_| refused())?
            .map_err(|_| refused())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| refused())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.ready().await.map_err(|_| refused())?;
    Ok(sender)
}
