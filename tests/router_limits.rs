//! The router under abuse: out of descriptors it backs off and stays responsive with a small
//! log, slow request bodies get 408 without starving the app, hop-by-hop headers stay on their
//! hop, and a malformed chunked body gets 400. Real binary, real processes, real sockets.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Repo, Slipway, describe, exchange, get};

/// The whole response to a raw request on a new connection (read until the router closes).
fn raw(port: u16, request: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn router_pid(s: &Slipway, app: &str) -> u32 {
    let path = s.home.path().join("state").join(app).join("router.pid");
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_router_out_of_descriptors_backs_off_serves_a_normal_request_and_keeps_its_log_small() {
    let s = Slipway::new();
    let app = common::app_name("fds");
    // The router inherits a low limit: hard 96, soft 48, which it raises to the hard one.
    let out = std::process::Command::new("bash")
        .args(["-c", "ulimit -Sn 48 && ulimit -Hn 96 && exec \"$@\"", "bash", common::BIN])
        .arg("--home")
        .arg(s.home.path())
        .args(["apps", "create", &app])
        .env_remove("SLIPWAY_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    s.track(&app);
    s.ok(&["deploy", &app, "--repo", Repo::from_fixture("router-scale").path()]);
    let port = s.router_port(&app);
    let pid = router_pid(&s, &app);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[3..5],
        ["96", "96"],
        "soft raised to hard: {line}"
    );

    // 400 idle connections: far more than the router's descriptors.
    let idle: Vec<TcpStream> =
        (0..400).filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    assert!(idle.len() > 200, "only {} connections", idle.len());
    let ticks = cpu_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = get(port, "/").unwrap();
    assert_eq!((code, body.as_str()), (200, "web.1"), "a normal request is served");
    let spent_ms = (cpu_ticks(pid) - ticks) * 10; // USER_HZ is 100 on Linux
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap();
    assert!(spent_ms * 2 < elapsed_ms, "the router spun: {spent_ms} ms of CPU in {elapsed_ms} ms");
    let log = s.home.path().join("state").join(&app).join("logs").join("router.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() < 8 * 1024, "router.log grew to {} bytes:\n{text}", text.len());
    assert!(text.contains("cannot accept"), "the exhaustion is logged:\n{text}");
    assert!(
        text.lines().filter(|l| l.contains("cannot accept")).count() <= 3,
        "logged once per interval:\n{text}"
    );
    drop(idle);
}

#[test]
fn slow_uploads_get_408_while_a_normal_client_is_served() {
    let s = Slipway::new();
    let app = s.app("slowbody");
    s.ok(&["config", "set", &app, "WEB_THREADS=1"]);
    s.ok(&["deploy", &app, "--repo", Repo::from_fixture("router-scale").path()]);
    s.ok(&["apps", "set", &app, "--body-timeout", "2s"]);
    let port = s.router_port(&app);

    // 8 uploads at 1 byte a second to a web that serves one request at a time.
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").unwrap();
                let started = Instant::now();
                let mut answer = String::new();
                for _ in 0..100 {
                    if c.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    let mut buf = [0u8; 512];
                    c.set_nonblocking(true).unwrap();
                    if let Ok(n) = c.read(&mut buf) {
                        answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                    }
                    c.set_nonblocking(false).unwrap();
                    if !answer.is_empty() {
                        break;
                    }
                }
                (answer, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile a normal client gets every answer, quickly.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(get(port, "/").unwrap(), (200, "web.1".to_owned()));
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worst < Duration::from_millis(500), "a normal request took {worst:?}");
    for u in uploads {
        let (answer, took) = u.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "a slow upload got {answer:?}");
        assert!(took < Duration::from_secs(8), "the 408 came after {took:?}");
    }

    // A body larger than the router buffers, sent at an ordinary pace, reaches web whole.
    let big = vec![b'y'; 300 * 1024];
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", big.len())
        .unwrap();
    c.write_all(&big).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("307200 web.1"), "{out}");
}

#[test]
fn hop_by_hop_headers_are_stripped_both_ways_and_a_malformed_chunked_body_gets_400() {
    let s = Slipway::new();
    let app = s.app("hop");
    s.ok(&["deploy", &app, "--repo", Repo::from_fixture("router-probe").path()]);
    let port = s.router_port(&app);

    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hop = "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
               TE: trailers\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n";
    let (code, echoed) = exchange(&mut c, "/headers", hop).unwrap();
    assert_eq!(code, 200, "{echoed}");
    for gone in ["x-secret", "proxy-authorization", "te", "keep-alive", "upgrade"] {
        assert!(
            !echoed.lines().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone} reached the app:\n{echoed}"
        );
    }
    assert!(echoed.contains("x-end-to-end: kept"), "{echoed}");

    let answer = raw(port, b"GET /hop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    for gone in ["x-internal", "keep-alive", "proxy-authenticate", "upgrade"] {
        assert!(!answer.contains(&format!("\r\n{gone}:")), "{gone} reached the client:\n{answer}");
    }
    assert!(answer.contains("\r\nx-kept: yes"), "{answer}");

    let answer = raw(
        port,
        b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "a malformed chunked body: {answer}");
    assert_eq!(get(port, "/").unwrap().0, 200, "the router still serves");
}
