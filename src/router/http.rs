//! The router's HTTP side. Each request, not each connection, goes to the release that is
//! current when it arrives, so a keep-alive client moves to a new release at the switch like
//! everyone else. Requests get the headers apps behind Heroku's or Dokku's router expect:
//! `X-Forwarded-For` (the client's address, appended), `X-Forwarded-Proto` and
//! `X-Forwarded-Port` (kept if a TLS terminator in front set them), `X-Request-Start`
//! (`t=` milliseconds) and `X-Request-Id` (kept, or made). Upgrades (WebSocket) are passed
//! through as raw bytes once the app agrees to them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::balance::Balancer;
use super::body::{self, Fault};
use super::hop;
use super::pool::{Pool, Upstream};
use super::target::Target;

type Body = BoxBody<Bytes, hyper::Error>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sets the forwarding headers on a request from `client` to the router on `listen_port`,
/// received at `now_ms`. Pure.
pub(crate) fn add_forwarding(
    headers: &mut HeaderMap,
    client: IpAddr,
    listen_port: u16,
    now_ms: u128,
    id: &str,
) {
    let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{}, {client}", earlier.trim()),
        _ => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.entry(X_FORWARDED_PROTO).or_insert(HeaderValue::from_static("http"));
    headers.entry(X_FORWARDED_PORT).or_insert(HeaderValue::from(listen_port));
    if let Ok(v) = HeaderValue::from_str(&format!("t={now_ms}")) {
        headers.insert(X_REQUEST_START, v);
    }
    if !headers.contains_key(&X_REQUEST_ID)
        && let Ok(v) = HeaderValue::from_str(id)
    {
        headers.insert(X_REQUEST_ID, v);
    }
}

/// An id no other request of this router shares: pid, start time and a counter.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    format!("{:x}-{started:x}-{:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn answer(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp =
        Response::new(Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// What every connection of one router shares.
pub(super) struct Shared {
    pub(super) target: Arc<Target>,
    pub(super) listen_port: u16,
    balancer: StdMutex<Balancer>,
    pool: Pool,
    /// The ports of the last request, to forget the state of instances that went away.
    last_ports: StdMutex<Arc<[u16]>>,
}

impl Shared {
    pub(super) fn new(target: Arc<Target>, listen_port: u16) -> Self {
        Self {
            target,
            listen_port,
            balancer: StdMutex::default(),
            pool: Pool::default(),
            last_ports: StdMutex::new(Arc::from([])),
        }
    }

    /// Forgets the balancing state and kept connections of instances that are gone (an old
    /// release, a scale-down), so neither grows deploy after deploy.
    fn follow(&self, ports: &Arc<[u16]>) {
        let mut last = self.last_ports.lock().unwrap_or_else(PoisonError::into_inner);
        if **last != **ports {
            self.balancer().retain(ports);
            self.pool.retain(ports);
            *last = ports.clone();
        }
    }

    fn balancer(&self) -> std::sync::MutexGuard<'_, Balancer> {
        self.balancer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one client connection until it closes, or until `stop` says the router is stopping
/// or `shed` that descriptors ran out: then the request in flight finishes and the connection
/// closes (at once if idle), as in a web server's graceful stop.
pub(super) async fn serve(
    shared: Arc<Shared>,
    client: TcpStream,
    mut stop: watch::Receiver<bool>,
    mut shed: watch::Receiver<u64>,
) {
    let peer = client.peer_addr().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a: SocketAddr| a.ip());
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(forward(&shared, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).preserve_header_case(true);
    let served = builder.serve_connection(TokioIo::new(client), service).with_upgrades();
    tokio::pin!(served);
    let accepted = Instant::now();
    loop {
        tokio::select! {
            _ = served.as_mut() => return,
            _ = stop.changed() => break,
            // A connection just accepted is spared: it is likely the client that waited for
            // the descriptor, about to send its request.
            _ = shed.changed() => if accepted.elapsed() >= SHED_AFTER { break },
        }
    }
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// How old a connection must be to be closed when descriptors run out.
const SHED_AFTER: Duration = Duration::from_secs(1);

/// A request in flight on a web instance: when its response body is done (or dropped), the
/// instance's count goes down and the connection goes back to the pool.
struct InFlight {
    shared: Arc<Shared>,
    port: u16,
    sender: Option<Upstream>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.balancer().finish(self.port);
        if let Some(s) = self.sender.take() {
            self.shared.pool.put(self.port, s);
        }
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(hyper::header::UPGRADE)
        && headers
            .get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Methods that can be sent again when web closed a kept connection as the request went out
/// (RFC 9110 §9.2.2), as nginx's `proxy_next_upstream` does.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn closing(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

async fn forward(shared: &Arc<Shared>, client: IpAddr, mut req: Request<Incoming>) -> Response<Body> {
    let route = shared.target.route();
    shared.follow(&route.ports);
    let upgrading = is_upgrade(req.headers());
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    hop::strip(req.headers_mut(), upgrading);
    add_forwarding(req.headers_mut(), client, shared.listen_port, now_ms(), &request_id());
    if route.ports.is_empty() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "no release of this app is running right now.\n");
    }
    let (parts, incoming) = req.into_parts();
    let upload = match body::read(incoming, route.limits).await {
        Ok(u) => u,
        Err(fault) => return refuse(fault),
    };
    let replay = (upload.empty && idempotent(&parts.method)).then(|| {
        let mut again = Request::new(());
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        again
    });
    let req = Request::from_parts(parts, upload.body);
    let sent = Sending { req, replay, fault: upload.fault, client_upgrade, upgrading };
    dispatch(shared, route.ports, sent).await
}

/// The answer to a body the router gave up on; the connection closes after it.
fn refuse(fault: Fault) -> Response<Body> {
    closing(match fault {
        Fault::TooSlow => answer(StatusCode::REQUEST_TIMEOUT, "the request body arrived too slowly.\n"),
        Fault::Malformed => answer(StatusCode::BAD_REQUEST, "the request body is malformed.\n"),
    })
}

/// A request ready to go to web.
struct Sending {
    req: Request<body::UpBody>,
    /// The request again, for a body-less idempotent one that web may drop as it is sent.
    replay: Option<Request<()>>,
    fault: Arc<std::sync::OnceLock<Fault>>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    upgrading: bool,
}

/// Sends a request to one of `instances`, the least busy first; one that refuses is marked
/// down and the next is tried.
async fn dispatch(shared: &Arc<Shared>, mut instances: Arc<[u16]>, sending: Sending) -> Response<Body> {
    let Sending { req, replay, fault, client_upgrade, upgrading } = sending;
    let mut req = Some(req);
    let ports_len = instances.len();
    let mut tried: Vec<u16> = Vec::new();
    let mut cut = false;
    let mut looked_again = false;
    // A kept connection that web closed just as the request went out (its idle timeout) says
    // nothing of the instance: the request is sent again on a new connection to it.
    let mut fresh = false;
    for _ in 0..2 * (ports_len + 3) {
        let Some(port) = shared.balancer().pick(&instances, &tried, Instant::now()) else {
            // Every instance refused. A switch may have just happened: look once more.
            if looked_again || cut {
                break;
            }
            looked_again = true;
            tokio::time::sleep(Duration::from_millis(50)).await;
            instances = shared.target.route().ports;
            tried.clear();
            continue;
        };
        let Some(r) = req.take() else { break };
        let Ok((mut sender, kept)) = shared.pool.get(port, fresh).await else {
            // Restarting or draining: left out for a moment, and the request goes elsewhere.
            shared.balancer().mark_down(port, Instant::now());
            tried.push(port);
            req = Some(r);
            continue;
        };
        shared.balancer().start(port);
        let mut in_flight = InFlight { shared: shared.clone(), port, sender: None };
        match sender.try_send_request(r).await {
            Ok(mut resp) => {
                shared.balancer().mark_up(port);
                // The client talks to the router, which speaks HTTP/1.1 whatever web speaks: an
                // HTTP/1.0 app must not turn the client's keep-alive off.
                *resp.version_mut() = hyper::Version::HTTP_11;
                let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
                hop::strip(resp.headers_mut(), switching && upgrading);
                if switching && let Some(client_side) = client_upgrade {
                    let app_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(splice(client_side, app_side));
                } else {
                    in_flight.sender = Some(sender);
                }
                return resp.map(|b| {
                    b.map_err(move |e| {
                        let _ = &in_flight;
                        e
                    })
                    .boxed()
                });
            }
            Err(mut e) => {
                drop(in_flight);
                if let Some(unsent) = e.take_message() {
                    // The kept connection was closed before the request went out: send it again.
                    req = Some(unsent);
                    continue;
                }
                if let Some(f) = fault.get() {
                    return refuse(*f);
                }
                // Web closed the connection as the request went out, or while answering: a
                // request without a body that may be repeated is sent again, once per instance.
                cut = true;
                let Some(again) = replay.as_ref() else { break };
                fresh = kept;
                if !kept {
                    tried.push(port);
                }
                let mut r = Request::new(upload_empty());
                *r.method_mut() = again.method().clone();
                *r.uri_mut() = again.uri().clone();
                *r.version_mut() = again.version();
                *r.headers_mut() = again.headers().clone();
                req = Some(r);
            }
        }
    }
    if cut {
        return answer(StatusCode::BAD_GATEWAY, "the app closed the connection without answering.\n");
    }
    answer(StatusCode::SERVICE_UNAVAILABLE, "no web instance of this app is answering right now.\n")
}

fn upload_empty() -> body::UpBody {
    body::empty().body
}

/// After a 101, the two upgraded connections are joined byte for byte.
async fn splice(client: hyper::upgrade::OnUpgrade, app: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(app)) = tokio::join!(client, app) else { return };
    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(app)).await;
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_direct_client_gets_every_forwarding_header() {
        let mut h = HeaderMap::new();
        add_forwarding(&mut h, "203.0.113.7".parse().unwrap(), 8080, 1_764_000_000_123, "r1");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["x-request-start"], "t=1764000000123");
        assert_eq!(h["x-request-id"], "r1");
    }

    #[test]
    fn a_proxy_in_front_is_appended_to_and_its_scheme_kept() {
        let mut h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-request-id", "from-the-edge"),
            ("x-request-start", "t=1"),
        ]);
        add_forwarding(&mut h, "10.0.0.2".parse().unwrap(), 8080, 5, "r2");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-request-id"], "from-the-edge");
        assert_eq!(h["x-request-start"], "t=5", "the router's own arrival time");
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(request_id(), request_id());
    }
}
