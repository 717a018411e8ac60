//! When a new release's web counts as ready for the switch. By default it is ready once it
//! accepts connections (local) or answers HTTP at all (docker). With a health check path
//! (project.toml `[io.slipway] healthcheck = "/up"`, or `deploy --healthcheck /up`), as Kamal's
//! and Dokku's checks do, it must answer `GET PATH` with a 2xx or 3xx status, so a release
//! that starts but serves errors is never switched in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The path a health check requests: absolute, printable ASCII, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HealthPath(String);

/// A health check path that cannot go in a request line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "health check path {0:?} must start with \"/\" and hold no spaces or control characters, such as \"/up\""
)]
pub struct BadHealthPath(pub String);

impl HealthPath {
    /// Checks `path`: it goes verbatim into an HTTP request line.
    pub fn parse(path: &str) -> Result<Self, BadHealthPath> {
        let fits = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic());
        if fits { Ok(Self(path.to_owned())) } else { Err(BadHealthPath(path.to_owned())) }
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The request sent to the web process: HTTP/1.0, so the answer ends with the connection.
    pub fn request(&self) -> String {
        format!("GET {} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: slipway-healthcheck\r\n\r\n", self.0)
    }
}

impl std::str::FromStr for HealthPath {
    type Err = BadHealthPath;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for HealthPath {
    type Error = BadHealthPath;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<HealthPath> for String {
    fn from(p: HealthPath) -> Self {
        p.0
    }
}

impl std::fmt::Display for HealthPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one probe of a web process found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It answered with a 2xx or 3xx status.
    Healthy(u16),
    /// It answered, with another status (or something that is not HTTP, as 0).
    Unhealthy(u16),
    /// No connection, or no answer in time.
    NoAnswer,
}

impl Probe {
    /// The status code answered, or 0.
    pub fn code(&self) -> u16 {
        match self {
            Self::Healthy(code) | Self::Unhealthy(code) => *code,
            Self::NoAnswer => 0,
        }
    }
}

/// The status code of an HTTP response's first bytes (`HTTP/1.1 200 OK...`).
pub fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    let code = words.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// Judges an answer's first bytes.
pub fn judge(head: &[u8]) -> Probe {
    match status_of(head) {
        Some(code @ 200..=399) => Probe::Healthy(code),
        Some(code) => Probe::Unhealthy(code),
        None if head.is_empty() => Probe::NoAnswer,
        None => Probe::Unhealthy(0),
    }
}

/// Requests `path` from 127.0.0.1:`port`, waiting at most `timeout` for each step. Blocking.
pub fn probe(port: u16, path: &HealthPath, timeout: Duration) -> Probe {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else { return Probe::NoAnswer };
    let sent = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.write_all(path.request().as_bytes()));
    if sent.is_err() {
        return Probe::NoAnswer;
    }
    // The status line is all that is judged; the body is not read.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    judge(&head[..len])
}

/// A health check repeated while a deploy waits for web, on either runtime. It spaces the
/// requests after a failed one, so that a failing web is not flooded, and remembers the last
/// answer for the deploy's error.
#[derive(Debug, Clone)]
pub struct Gate {
    path: HealthPath,
    last: Probe,
    next: Instant,
}

/// The pause after a failed request.
const RETRY_AFTER: Duration = Duration::from_millis(200);

impl Gate {
    /// A gate that has not asked yet.
    pub fn new(path: HealthPath) -> Self {
        Self { path, last: Probe::NoAnswer, next: Instant::now() }
    }

    /// Whether web on `port` passes now. Blocking: at most 2 s per step of the request.
    pub fn passes(&mut self, port: u16) -> bool {
        if Instant::now() < self.next {
            return false;
        }
        self.last = probe(port, &self.path, Duration::from_secs(2));
        let healthy = matches!(self.last, Probe::Healthy(_));
        if !healthy {
            self.next = Instant::now() + RETRY_AFTER;
        }
        healthy
    }

    /// The request and its last answer, for progress lines: `GET /up: 200`.
    pub fn summary(&self) -> String {
        format!("GET {}: {}", self.path, self.last.code())
    }

    /// Why web failed, if it answered but not well. A web that never answered is reported as
    /// a timeout instead, so this is `None` then.
    pub fn failing(&self) -> Option<String> {
        let path = &self.path;
        match self.last {
            Probe::Unhealthy(0) => Some(format!("GET {path} was answered with something that is not HTTP")),
            Probe::Unhealthy(code) => Some(format!("GET {path} answered {code}, not 2xx or 3xx")),
            Probe::Healthy(_) | Probe::NoAnswer => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_fit_a_request_line() {
        assert_eq!(HealthPath::parse("/up").unwrap().as_str(), "/up");
        assert!(HealthPath::parse("/health?full=1").is_ok());
        for bad in ["", "up", "/a b", "/x\r\nHost: evil", "/\u{e9}", "http://x/up"] {
            assert!(HealthPath::parse(bad).is_err(), "{bad:?}");
        }
        let request = HealthPath::parse("/up").unwrap().request();
        assert!(request.starts_with("GET /up HTTP/1.0\r\n") && request.ends_with("\r\n\r\n"), "{request}");
    }

    #[test]
    fn answers_are_judged_by_their_status_line() {
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\nContent-Length: 2"), Probe::Healthy(200));
        assert_eq!(judge(b"HTTP/1.0 302 Found\r\n"), Probe::Healthy(302));
        assert_eq!(judge(b"HTTP/1.1 500 Internal Server Error\r\n"), Probe::Unhealthy(500));
        assert_eq!(judge(b"HTTP/1.1 404"), Probe::Unhealthy(404));
        assert_eq!(judge(b"SSH-2.0-OpenSSH_9.2\r\n"), Probe::Unhealthy(0));
        assert_eq!(judge(b"HTTP/1.1 2000 Odd\r\n"), Probe::Unhealthy(0));
        assert_eq!(judge(b""), Probe::NoAnswer);
    }

    #[test]
    fn a_gate_reports_a_bad_answer_but_not_silence() {
        let gate = |last| Gate { path: HealthPath::parse("/up").unwrap(), last, next: Instant::now() };
        assert_eq!(gate(Probe::Unhealthy(500)).failing().unwrap(), "GET /up answered 500, not 2xx or 3xx");
        assert!(gate(Probe::Unhealthy(0)).failing().unwrap().contains("not HTTP"));
        assert_eq!(gate(Probe::NoAnswer).failing(), None, "silence is a timeout");
        assert_eq!(gate(Probe::Healthy(204)).failing(), None);
        assert_eq!(gate(Probe::Healthy(204)).summary(), "GET /up: 204");
    }

    #[test]
    fn the_path_round_trips_through_json_and_refuses_bad_input() {
        let p: HealthPath = serde_json::from_str("\"/up\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"/up\"");
        assert!(serde_json::from_str::<HealthPath>("\"up\"").is_err());
    }
}
