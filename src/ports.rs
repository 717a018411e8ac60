//! Loopback ports: which are free now. Web processes, web containers and app routers all take
//! theirs from here.

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that is free now (the kernel's pick).
pub fn free_loopback_port() -> Option<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?.local_addr().ok().map(|a| a.port())
}

/// Whether `port` on 127.0.0.1 can be bound now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
