//! The router's HTTP side. Each request, not each connection, goes to the release that is
//! current when it arrives, so a keep-alive client moves to a new release at the switch like
//! everyone else. Requests get the headers apps behind Heroku's or Dokku's router expect:
//! `X-Forwarded-For` (the client's address, appended), `X-Forwarded-Proto` and
//! `X-Forwarded-Port` (kept if a TLS terminator in front set them), `X-Request-Start`
//! (`t=` milliseconds) and `X-Request-Id` (kept, or made). Upgrades (WebSocket) are passed
//! through as raw bytes once the app agrees to them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, watch};

use super::Target;

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

/// One client connection: the upstream connection it reuses while the release stays current.
struct Conn {
    target: Arc<Target>,
    client: IpAddr,
    listen_port: u16,
    upstream: Mutex<Option<(u16, SendRequest<Incoming>)>>,
}

/// Serves one client connection until it closes, or until `stop` says the router is stopping:
/// then the request in flight finishes and the connection closes, as in a web server's
/// graceful stop.
pub(super) async fn serve(
    target: Arc<Target>,
    client: TcpStream,
    listen_port: u16,
    mut stop: watch::Receiver<bool>,
) {
    let peer = client.peer_addr().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a: SocketAddr| a.ip());
    let conn = Arc::new(Conn { target, client: peer, listen_port, upstream: Mutex::new(None) });
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, std::convert::Infallible>(conn.forward(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).preserve_header_case(true);
    let served = builder.serve_connection(TokioIo::new(client), service).with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = stop.changed() => served.as_mut().graceful_shutdown(),
    }
    let _ = served.await;
}

impl Conn {
    async fn forward(&self, mut req: Request<Incoming>) -> Response<Body> {
        add_forwarding(req.headers_mut(), self.client, self.listen_port, now_ms(), &request_id());
        let client_upgrade =
            req.headers().contains_key(hyper::header::UPGRADE).then(|| hyper::upgrade::on(&mut req));
        // A kept upstream connection may have been closed by the old release between two
        // requests; a request that was not sent is tried once more on a fresh connection.
        let mut req = Some(req);
        for _ in 0..2 {
            let Some((port, mut sender)) = self.sender().await else { break };
            let Some(r) = req.take() else { break };
            match sender.try_send_request(r).await {
                Ok(mut resp) => {
                    // Kept for this connection's next request, which checks it still fits.
                    *self.upstream.lock().await = (!sender.is_closed()).then_some((port, sender));
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_side) = client_upgrade
                    {
                        let app_side = hyper::upgrade::on(&mut resp);
                        tokio::spawn(splice(client_side, app_side));
                    }
                    return resp.map(BodyExt::boxed);
                }
                Err(mut e) => {
                    *self.upstream.lock().await = None;
                    match e.take_message() {
                        Some(unsent) => req = Some(unsent),
                        None => {
                            return answer(
                                StatusCode::BAD_GATEWAY,
                                "the app closed the connection without answering.\n",
                            );
                        }
                    }
                }
            }
        }
        answer(StatusCode::SERVICE_UNAVAILABLE, "no release of this app is running right now.\n")
    }

    /// A sender ready for the current release's web, and its port: the kept one if it still
    /// goes there.
    async fn sender(&self) -> Option<(u16, SendRequest<Incoming>)> {
        let mut kept = self.upstream.lock().await;
        // Read the record again once if the first port refuses: a switch may have just happened.
        for attempt in 0..2 {
            let port = self.target.port()?;
            if let Some((p, mut s)) = kept.take()
                && p == port
                && s.ready().await.is_ok()
            {
                return Some((port, s));
            }
            if let Some(s) = connect(port).await {
                return Some((port, s));
            }
            if attempt == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        None
    }
}

async fn connect(port: u16) -> Option<SendRequest<Incoming>> {
    let stream =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((Ipv4Addr::LOCALHOST, port)))
            .await
            .ok()?
            .ok()?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.ready().await.ok()?;
    Some(sender)
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
