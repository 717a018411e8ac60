//! When a new release's web counts as ready for the switch. By default web must answer
//! `GET /` with any HTTP status below 500 (a 404 is an app that serves; a 502 from gunicorn
//! whose workers cannot import the app is not). With a health check path (project.toml
//! `[io.slipway] healthcheck = "/up"`, or `deploy --healthcheck /up`), as Kamal's and Dokku's
//! checks do, it must answer `GET PATH` with a 2xx or 3xx status. Either way the release must
//! then stay healthy, with no process crashing, for a settle period ([`Settle`], like Dokku's
//! `CHECKS_WAIT`), so that a release that answers once and then dies is never switched in.

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
    /// It answered with a status that passes (2xx/3xx at a health check path, else below 500).
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

/// Judges an answer's first bytes: `strict` (a health check path) wants 2xx or 3xx, otherwise
/// any status below 500 passes.
pub fn judge(head: &[u8], strict: bool) -> Probe {
    match status_of(head) {
        Some(code @ 200..=399) => Probe::Healthy(code),
        Some(code @ 100..=499) if !strict => Probe::Healthy(code),
        Some(code) => Probe::Unhealthy(code),
        None if head.is_empty() => Probe::NoAnswer,
        None => Probe::Unhealthy(0),
    }
}

/// Requests `path` from 127.0.0.1:`port`, waiting at most `timeout` for each step. Blocking.
pub fn probe(port: u16, path: &HealthPath, strict: bool, timeout: Duration) -> Probe {
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
    let verdict = judge(&head[..len], strict);
    // Read the rest of a short answer before closing: closing with unread bytes sends a reset,
    // and an app that is still writing its body then logs a broken pipe that pushes its own
    // words out of the log tail a failed deploy shows. HTTP/1.0: the server closes at the end.
    let _ = stream.set_read_timeout(Some(DRAIN_FOR));
    let mut rest = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut rest) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    verdict
}

/// How many of a failed instance's last log lines a refused deploy shows, on every runtime. A
/// cause is often well above the last line: gunicorn prints its worker's `ImportError`, then
/// 20 lines of its own shutdown.
pub const FAILURE_TAIL: usize = 60;

/// How long a probe waits for the rest of an answer once its status line is judged.
const DRAIN_FOR: Duration = Duration::from_millis(200);

/// A health check repeated while a deploy waits for web, on either runtime. It spaces the
/// requests after a bad answer, so that a failing web is not flooded, and remembers the last
/// answer for the deploy's error.
#[derive(Debug, Clone)]
pub struct Gate {
    path: HealthPath,
    /// Whether the path is the app's own health check (2xx/3xx) or the default `/` (below 500).
    strict: bool,
    last: Probe,
    next: Instant,
}

/// The pause after a bad answer. Silence is retried at once: a web that is not listening yet
/// is refused in microseconds, and one that holds the connection already took the timeout.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How long a good answer stands while the settle period runs, so that the app's log is not
/// flooded with checks.
const RECHECK_AFTER: Duration = Duration::from_millis(250);

impl Gate {
    /// A gate that has not asked yet: `GET path` must answer 2xx/3xx, or without a path,
    /// `GET /` must answer below 500.
    pub fn new(path: Option<HealthPath>) -> Self {
        let strict = path.is_some();
        let path = path.unwrap_or_else(|| HealthPath("/".to_owned()));
        Self { path, strict, last: Probe::NoAnswer, next: Instant::now() }
    }

    /// Whether web on `port` passes now (a recent answer stands for a moment). Blocking: at
    /// most 2 s per step of the request.
    pub fn passes(&mut self, port: u16) -> bool {
        if Instant::now() >= self.next {
            self.last = probe(port, &self.path, self.strict, Duration::from_secs(2));
            self.next = Instant::now()
                + match self.last {
                    Probe::Healthy(_) => RECHECK_AFTER,
                    Probe::Unhealthy(_) => RETRY_AFTER,
                    Probe::NoAnswer => Duration::ZERO,
                };
        }
        matches!(self.last, Probe::Healthy(_))
    }

    /// The request and its last answer, for progress lines: `GET /up: 200`.
    pub fn summary(&self) -> String {
        format!("GET {}: {}", self.path, self.last.code())
    }

    /// Why web failed, if it answered but not well. A web that never answered is reported as
    /// a timeout instead, so this is `None` then.
    pub fn failing(&self) -> Option<String> {
        let path = &self.path;
        let wanted = if self.strict { "not 2xx or 3xx" } else { "a server error" };
        match self.last {
            Probe::Unhealthy(0) => Some(format!("GET {path} was answered with something that is not HTTP")),
            Probe::Unhealthy(code) => Some(format!("GET {path} answered {code}, {wanted}")),
            Probe::Healthy(_) | Probe::NoAnswer => None,
        }
    }
}

/// The settle period: once every process is up and web passes its [`Gate`], the release must
/// stay so for `period` with no process restarting before it is switched in. Pure: the caller
/// observes the runtime and passes what it saw.
#[derive(Debug, Clone)]
pub struct Settle {
    period: Duration,
    /// When the release last became healthy.
    since: Option<Instant>,
    /// The restarts counted when it first did: any later one is a crash in the period.
    baseline: Option<u32>,
}

/// What the settle period says after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Not healthy yet, or healthy for less than the period.
    Waiting,
    /// Healthy for the whole period, with no crash.
    Ready,
    /// A process restarted after the release had become healthy.
    Crashed,
}

impl Settle {
    /// A settle period of `period` (zero: ready as soon as healthy).
    pub fn new(period: Duration) -> Self {
        Self { period, since: None, baseline: None }
    }

    /// Takes in one look at the release: whether everything is healthy, and the sum of its
    /// instances' restart counts.
    pub fn observe(&mut self, now: Instant, healthy: bool, restarts: u32) -> Settled {
        // The baseline survives a moment of ill health: a crash usually shows as "not up"
        // before its restart is counted, and must not reset what it is compared with.
        if self.baseline.is_some_and(|b| restarts > b) {
            return Settled::Crashed;
        }
        if !healthy {
            self.since = None;
            return Settled::Waiting;
        }
        self.baseline.get_or_insert(restarts);
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.period { Settled::Ready } else { Settled::Waiting }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
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
        let strict = |head: &[u8]| judge(head, true);
        assert_eq!(strict(b"HTTP/1.1 200 OK\r\nContent-Length: 2"), Probe::Healthy(200));
        assert_eq!(strict(b"HTTP/1.0 302 Found\r\n"), Probe::Healthy(302));
        assert_eq!(strict(b"HTTP/1.1 500 Internal Server Error\r\n"), Probe::Unhealthy(500));
        assert_eq!(strict(b"HTTP/1.1 404"), Probe::Unhealthy(404));
        assert_eq!(strict(b"SSH-2.0-OpenSSH_9.2\r\n"), Probe::Unhealthy(0));
        assert_eq!(strict(b"HTTP/1.1 2000 Odd\r\n"), Probe::Unhealthy(0));
        assert_eq!(strict(b""), Probe::NoAnswer);
    }

    #[test]
    fn without_a_path_any_answer_below_500_passes() {
        let lenient = |head: &[u8]| judge(head, false);
        assert_eq!(lenient(b"HTTP/1.1 404 Not Found\r\n"), Probe::Healthy(404));
        assert_eq!(lenient(b"HTTP/1.1 401 Unauthorized\r\n"), Probe::Healthy(401));
        assert_eq!(lenient(b"HTTP/1.0 200 OK\r\n"), Probe::Healthy(200));
        assert_eq!(lenient(b"HTTP/1.1 502 Bad Gateway\r\n"), Probe::Unhealthy(502));
        assert_eq!(lenient(b"HTTP/1.1 500 Internal Server Error\r\n"), Probe::Unhealthy(500));
        assert_eq!(lenient(b"220 smtp ready\r\n"), Probe::Unhealthy(0));
        let gate = Gate { last: Probe::Unhealthy(502), ..Gate::new(None) };
        assert_eq!(gate.failing().unwrap(), "GET / answered 502, a server error");
    }

    #[test]
    fn the_release_is_ready_after_a_settle_period_of_health_without_a_crash() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Settle::new(Duration::from_secs(1));
        assert_eq!(s.observe(at(0), false, 0), Settled::Waiting);
        // Crashes while starting do not count: only those after the release became healthy.
        assert_eq!(s.observe(at(100), false, 2), Settled::Waiting);
        assert_eq!(s.observe(at(200), true, 2), Settled::Waiting);
        assert_eq!(s.observe(at(900), true, 2), Settled::Waiting);
        assert_eq!(s.observe(at(1200), true, 2), Settled::Ready);
    }

    #[test]
    fn a_crash_in_the_settle_period_fails_even_if_seen_after_a_moment_of_ill_health() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Settle::new(Duration::from_secs(1));
        assert_eq!(s.observe(at(0), true, 0), Settled::Waiting);
        assert_eq!(s.observe(at(300), false, 0), Settled::Waiting, "the process exited");
        assert_eq!(s.observe(at(400), true, 1), Settled::Crashed, "and was restarted");
        let mut s = Settle::new(Duration::from_secs(1));
        assert_eq!(s.observe(at(0), true, 0), Settled::Waiting);
        assert_eq!(s.observe(at(500), true, 1), Settled::Crashed);
    }

    #[test]
    fn ill_health_without_a_crash_restarts_the_period() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Settle::new(Duration::from_secs(1));
        assert_eq!(s.observe(at(0), true, 0), Settled::Waiting);
        assert_eq!(s.observe(at(800), false, 0), Settled::Waiting);
        assert_eq!(s.observe(at(1100), true, 0), Settled::Waiting, "healthy again only since 1100");
        assert_eq!(s.observe(at(2100), true, 0), Settled::Ready);
        let mut zero = Settle::new(Duration::ZERO);
        assert_eq!(zero.observe(at(0), true, 0), Settled::Ready);
    }

    #[test]
    fn a_gate_reports_a_bad_answer_but_not_silence() {
        let gate = |last| Gate { last, ..Gate::new(Some(HealthPath::parse("/up").unwrap())) };
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
