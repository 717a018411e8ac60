//! An app's stable address: an HTTP/1.1 proxy per app, listening on the app's `listen`
//! address and passing each request to one of the current release's web instances on
//! 127.0.0.1.
//!
//! A deploy gives each release fresh web ports; the router is why users need not care. It
//! looks up the instances for every request (`target.rs`: stats, and a read only when a file
//! changed), and the switch writes `current` and `web_port` in one atomic write, so requests
//! move to the new release at the switch, keep-alive connections included, while those in
//! flight finish on the old one until it is retired: a deploy drops no request. Requests are
//! balanced over the healthy web instances (`balance.rs`: least requests in flight), over kept
//! connections (`pool.rs`). With nothing to send to (no release yet, or `ps stop`), it answers
//! `503 Service Unavailable`. The HTTP side (forwarding headers, hop-by-hop headers, body
//! deadlines, upgrades, graceful close) is in `http.rs`, `hop.rs` and `body.rs`; the accept
//! loop, which survives running out of descriptors, in `accept.rs`.
//!
//! The router is a detached `slipway __route APP` holding `state/APP/router.lock`; `apps
//! create` and every deploy start it, every command restarts it if it died (as after a
//! reboot), and `apps destroy` stops it.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rustix::process::{Signal, kill_process};
use tokio::net::TcpListener;

mod accept;
mod balance;
mod body;
mod hop;
mod http;
mod log;
mod pool;
mod target;

use crate::ids::AppName;
use crate::state::{AppRecord, FileLock, Home, StateError, atomic};

/// Why the router could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// `--listen` is neither a port nor an address:port.
    #[error("--listen {0:?} is neither a port (8080) nor an address:port (0.0.0.0:80)")]
    BadListen(String),
    /// The address is taken or not ours.
    #[error(
        "the router of {app} cannot listen on {addr}: pick another with `slipway apps set {app} --listen ADDR`"
    )]
    Bind {
        /// The app.
        app: AppName,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A new address is taken (checked before anything changes).
    #[error("cannot listen on {addr} ({source}); pick another address")]
    Taken {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The router process could not be started.
    #[error("cannot start the router of {app}")]
    Spawn {
        /// The app.
        app: AppName,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The app's records could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// Its lock or pid file failed.
    #[error("router of {app}: {source}")]
    Io {
        /// The app.
        app: AppName,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `--listen`: a port (on 127.0.0.1) or an address with a port.
pub fn parse_listen(s: &str) -> Result<SocketAddr, RouterError> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| RouterError::BadListen(s.to_owned()))
}

/// A free port on 127.0.0.1 for an app that was given no `--listen`.
pub fn free_listen() -> Option<SocketAddr> {
    crate::ports::free_loopback_port().map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// Fails unless `addr` can be listened on now, so that a taken address is refused before
/// anything changes rather than by a router that cannot start.
pub fn check_free(addr: SocketAddr) -> Result<(), RouterError> {
    std::net::TcpListener::bind(addr).map(drop).map_err(|source| RouterError::Taken { addr, source })
}

/// Moves the app's stable address to `addr` and returns the old one. The caller holds the
/// app's lock, so no deploy rewrites the record meanwhile. If the router cannot start on the
/// new address, the old one is restored and served again.
pub fn relisten(
    home: &Home,
    record: &mut AppRecord,
    addr: SocketAddr,
) -> Result<Option<SocketAddr>, RouterError> {
    check_free(addr)?;
    let old = record.listen.replace(addr);
    stop(home, &record.name);
    home.save_app(record)?;
    if let Err(e) = ensure_running(home, record) {
        record.listen = old;
        home.save_app(record)?;
        let _ = ensure_running(home, record);
        return Err(e);
    }
    Ok(old)
}

/// How long a stopping router lets requests in flight finish; `stop` waits a little longer.
const DRAIN: Duration = Duration::from_secs(5);

/// Whether the router of `app` is alive.
pub fn is_running(home: &Home, app: &AppName) -> bool {
    FileLock::is_held(&home.app(app).router_lock())
}

/// Starts the app's router unless it runs already or the app has no `listen` address.
pub fn ensure_running(home: &Home, record: &AppRecord) -> Result<(), RouterError> {
    let app = &record.name;
    if record.listen.is_none() || is_running(home, app) {
        return Ok(());
    }
    let paths = home.app(app);
    let args: Vec<OsString> = vec!["__route".into(), app.as_str().into()];
    let log = paths.logs_dir().join("router.log");
    std::fs::create_dir_all(paths.logs_dir())
        .map_err(|source| RouterError::Io { app: app.clone(), source })?;
    let spawned = crate::detached::spawn(home.root(), &args, &log, |pid| {
        is_running(home, app) && crate::detached::read_pid(&paths.router_pid()) == Some(pid)
    });
    match spawned {
        // Another command started it at the same time: ours found it running and left.
        Err(_) if is_running(home, app) => Ok(()),
        r => r.map_err(|source| RouterError::Spawn { app: app.clone(), source }),
    }
}

/// Stops the router of `app`: SIGTERM, which closes its address at once and lets open
/// connections finish for up to `DRAIN`; SIGKILL if it is still there 0.5 s after that.
pub fn stop(home: &Home, app: &AppName) {
    let paths = home.app(app);
    let Some(pid) = crate::detached::read_pid(&paths.router_pid()) else { return };
    if !is_running(home, app) {
        return;
    }
    let _ = kill_process(pid, Signal::TERM);
    if !FileLock::wait_free(&paths.router_lock(), DRAIN + Duration::from_millis(500)) {
        let _ = kill_process(pid, Signal::KILL);
        // Until its lock is free it still counts as running, and would not be started again.
        FileLock::wait_free(&paths.router_lock(), Duration::from_secs(1));
    }
}

/// The router process: serve until SIGTERM. Exits if another router of the app runs.
pub fn run(home: &Home, app: &AppName) -> Result<(), RouterError> {
    let io = |source| RouterError::Io { app: app.clone(), source };
    let paths = home.app(app);
    let Some(_lock) = FileLock::claim(&paths.router_lock(), crate::detached::CLAIM_PATIENCE)
        .map_err(|e| io(std::io::Error::other(e)))?
    else {
        return Ok(());
    };
    let addr = home
        .load_app(app)?
        .listen
        .ok_or_else(|| io(std::io::Error::other("the app has no listen address")))?;
    let log = log::RouterLog::open(&paths.logs_dir().join("router.log"));
    match accept::raise_fd_limit() {
        Ok((soft, hard)) => log.line(&format!("descriptor limit {soft} (hard limit {hard})")),
        Err(e) => log.line(&format!("cannot raise the descriptor limit: {e}")),
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io)?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr).await.map_err(|source| RouterError::Bind {
            app: app.clone(),
            addr,
            source,
        })?;
        // Written once listening: `ensure_running` returns when the pid is there.
        atomic::replace_volatile(&paths.router_pid(), std::process::id().to_string().as_bytes())
            .map_err(io)?;
        log.line(&format!("listening on {addr}"));
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io)?;
        let target = std::sync::Arc::new(target::Target::new(home.clone(), app.clone()));
        if target.is_docker() {
            tokio::spawn(target.clone().follow_docker(log.clone()));
        }
        let shared = std::sync::Arc::new(http::Shared::new(target, addr.port()));
        accept::serve(listener, shared, term, &log).await;
        let _ = std::fs::remove_file(paths.router_pid());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_port_on_loopback_or_a_full_address() {
        assert_eq!(parse_listen("8080").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_listen("0.0.0.0:80").unwrap(), "0.0.0.0:80".parse().unwrap());
        assert_eq!(parse_listen("[::1]:8000").unwrap(), "[::1]:8000".parse().unwrap());
        for bad in ["", "http://x", "70000", "localhost:80"] {
            assert!(matches!(parse_listen(bad), Err(RouterError::BadListen(_))), "{bad}");
        }
    }
}
