//! The router speaks HTTP: every request goes to the release current when it arrives (a
//! keep-alive client included), with X-Forwarded-* and X-Request-* headers, and upgrades pass
//! through. Real binary, real processes, real sockets.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Repo, Slipway, exchange, get};

fn header<'a>(echoed: &'a str, name: &str) -> Option<&'a str> {
    echoed.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// A new app deployed from `repo`, and its router's port.
fn deployed(s: &Slipway, prefix: &str, repo: &Repo) -> (String, u16) {
    let app = s.app(prefix);
    s.ok(&["deploy", &app, "--repo", repo.path()]);
    let port = s.router_port(&app);
    (app, port)
}

#[test]
fn apps_get_forwarding_headers_and_a_proxy_in_front_is_kept() {
    let s = Slipway::new();
    let (_, port) = deployed(&s, "fwd", &Repo::from_fixture("router-probe"));

    let (code, echoed) = get(port, "/headers").unwrap();
    assert_eq!(code, 200, "{echoed}");
    assert_eq!(header(&echoed, "x-forwarded-for"), Some("127.0.0.1"), "{echoed}");
    assert_eq!(header(&echoed, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&echoed, "x-forwarded-port"), Some(port.to_string().as_str()));
    let start: u128 =
        header(&echoed, "x-request-start").unwrap().strip_prefix("t=").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert!(now.abs_diff(start) < 60_000, "x-request-start is not now in ms: {start}");
    let first_id = header(&echoed, "x-request-id").unwrap().to_owned();
    assert_ne!(header(&get(port, "/headers").unwrap().1, "x-request-id"), Some(first_id.as_str()));

    // Behind a TLS terminator: its client is kept first in line, its scheme and id are kept.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let edge = "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\nX-Request-Id: edge-1\r\n";
    let (_, echoed) = exchange(&mut c, "/headers", edge).unwrap();
    assert_eq!(header(&echoed, "x-forwarded-for"), Some("198.51.100.1, 127.0.0.1"), "{echoed}");
    assert_eq!(header(&echoed, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&echoed, "x-request-id"), Some("edge-1"));
}

#[test]
fn a_keep_alive_client_moves_to_the_new_release_at_the_switch() {
    let s = Slipway::new();
    let repo = Repo::from_fixture("router-probe");
    let (app, port) = deployed(&s, "keep", &repo);
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(exchange(&mut client, "/version", "").unwrap(), (200, "1\n".to_owned()));
    for n in 2..=3 {
        repo.write("VERSION", &format!("{n}\n"));
        repo.commit("next");
        s.ok(&["deploy", &app, "--repo", repo.path()]);
        // The same connection, now answered by the new release.
        assert_eq!(exchange(&mut client, "/version", "").unwrap(), (200, format!("{n}\n")));
    }
}

#[test]
fn an_upgraded_connection_passes_bytes_both_ways() {
    let s = Slipway::new();
    let (_, port) = deployed(&s, "upg", &Repo::from_fixture("router-probe"));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for word in ["ping\n", "a longer line of bytes\n"] {
        c.write_all(word.as_bytes()).unwrap();
        let mut back = vec![0u8; word.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, word.as_bytes());
    }
}

#[test]
fn a_kept_connection_web_closes_as_a_request_goes_out_is_retried_on_a_new_one() {
    let s = Slipway::new();
    // Web answers the first request of each connection and closes the connection on the
    // second, unanswered: what an idle timeout firing as the router reuses it looks like.
    let repo = Repo::from_fixture("seed-demo");
    let _ = std::fs::remove_file(repo.dir.path().join("project.toml"));
    repo.write(
        "web.py",
        r#"import os, socketserver

class Once(socketserver.StreamRequestHandler):
    def handle(self):
        for n in range(2):
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
            if n == 1:
                return
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.wfile.flush()

socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(os.environ["PORT"])), Once).serve_forever()
"#,
    );
    repo.write("Procfile", "web: python3 web.py\n");
    repo.commit("web closes each kept connection on its second request");
    let (app, _) = deployed(&s, "reuse", &repo);
    let router = s.router_port(&app);
    for n in 1..=4 {
        let (code, body) = get(router, "/").unwrap();
        assert_eq!((code, body.as_str()), (200, "ok"), "request {n} through the router");
    }
}
