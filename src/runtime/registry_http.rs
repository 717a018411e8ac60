//! One request to a Docker registry (Registry HTTP API v2), shared by the cluster runtimes
//! that retire images from their cluster's registry.
//!
//! HTTPS first, as the engine does, trusting the host's CA bundle (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` override it, as for OpenSSL). A registry that does not speak TLS on that port
//! (an insecure registry, a loopback one) is asked again over plain HTTP, and the answer is
//! remembered per registry. A certificate that does not verify is an error, never a reason to
//! fall back. `HOST` without a port is HTTPS on 443, then HTTP on 80.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

/// The manifest types `docker push` writes: schema 2, OCI, and their multi-platform lists.
/// Asking for all of them gets the digest the engine pushed and pulled by.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                          application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.docker.distribution.manifest.list.v2+json, \
                          application/vnd.oci.image.index.v1+json";

/// How long one request may take: a retired image is not worth holding up a deploy for.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A registry's answer: its status, `Docker-Content-Digest`, and body.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Docker-Content-Digest` header, if any.
    pub digest: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// How a registry was reached last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// Whether a failed TLS attempt means "this port does not speak TLS" (ask again in plain
/// HTTP) rather than "TLS failed" (a certificate that does not verify: an error). Pure.
pub fn speaks_no_tls(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    match e.kind() {
        // A plain HTTP server answers a ClientHello with "HTTP/1.1 400" (not a TLS record)
        // or hangs up.
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => true,
        ErrorKind::InvalidData => matches!(
            e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::InvalidMessage(_))
        ),
        _ => false,
    }
}

/// `HOST[:PORT]` as the host, and the ports to try for each scheme.
fn endpoints(authority: &str) -> (&str, u16, u16) {
    let port = authority.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)));
    match port {
        Some((host, p)) => (host, p, p),
        None => (authority, 443, 80),
    }
}

/// The TLS settings trusting the host's CA bundle, made once.
fn host_tls() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no CA certificate found on this machine ({:?}); set SSL_CERT_FILE",
                    found.errors
                ));
            }
            client_config(roots)
        })
        .clone()
}

/// TLS settings trusting `roots`.
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The scheme each registry answered on, so that a plain one costs one attempt, not two.
fn learned() -> &'static Mutex<HashMap<String, Scheme>> {
    static LEARNED: OnceLock<Mutex<HashMap<String, Scheme>>> = OnceLock::new();
    LEARNED.get_or_init(Mutex::default)
}

/// Sends `method path` to the registry at `authority` (`HOST[:PORT]`), trusting the host's
/// CA bundle. The error is why the registry could not be reached or did not answer in time,
/// for the caller's own error.
pub async fn request(authority: &str, method: Method, path: &str) -> Result<Answer, String> {
    let tls = host_tls()?;
    request_with(&tls, authority, method, path).await
}

/// [`request`] with the given TLS settings.
pub async fn request_with(
    tls: &Arc<ClientConfig>,
    authority: &str,
    method: Method,
    path: &str,
) -> Result<Answer, String> {
    let go = async {
        let (host, tls_port, plain_port) = endpoints(authority);
        let known = learned().lock().ok().and_then(|m| m.get(authority).copied());
        if known != Some(Scheme::Http) {
            match send(Some(tls), host, tls_port, authority, method.clone(), path).await {
                Ok(a) => {
                    remember(authority, Scheme::Https);
                    return Ok(a);
                }
                Err(Failure::NoTls(_)) if known.is_none() => {}
                Err(Failure::NoTls(e) | Failure::Other(e)) => return Err(e),
            }
        }
        let answer = send(None, host, plain_port, authority, method, path).await.map_err(Failure::text)?;
        remember(authority, Scheme::Http);
        Ok(answer)
    };
    tokio::time::timeout(TIMEOUT, go).await.map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}

fn remember(authority: &str, scheme: Scheme) {
    if let Ok(mut m) = learned().lock() {
        m.insert(authority.to_owned(), scheme);
    }
}

/// Why one attempt failed.
enum Failure {
    /// The port does not speak TLS (or nothing listens on the HTTPS port of a bare host).
    NoTls(String),
    Other(String),
}

impl Failure {
    fn text(self) -> String {
        match self {
            Self::NoTls(e) | Self::Other(e) => e,
        }
    }
}

async fn send(
    tls: Option<&Arc<ClientConfig>>,
    host: &str,
    port: u16,
    authority: &str,
    method: Method,
    path: &str,
) -> Result<Answer, Failure> {
    let other = |e: &dyn std::fmt::Display| Failure::Other(e.to_string());
    let bare_host = !authority.contains(':');
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| {
        // A bare host may serve plain HTTP on 80 only.
        if tls.is_some() && bare_host && e.kind() == std::io::ErrorKind::ConnectionRefused {
            Failure::NoTls(e.to_string())
        } else {
            other(&e)
        }
    })?;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("accept", ACCEPT)
        .body(Empty::<Bytes>::new())
        .map_err(|e| other(&e))?;
    let resp = match tls {
        Some(config) => {
            let name =
                ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).map_err(|e| other(&e))?;
            let tls_stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .map_err(|e| {
                    if speaks_no_tls(&e) {
                        Failure::NoTls(e.to_string())
                    } else {
                        Failure::Other(format!("TLS with {host}:{port} failed: {e}"))
                    }
                })?;
            exchange(TokioIo::new(tls_stream), req).await.map_err(|e| other(&e))?
        }
        None => exchange(TokioIo::new(stream), req).await.map_err(|e| other(&e))?,
    };
    Ok(resp)
}

async fn exchange<T>(io: T, req: Request<Empty<Bytes>>) -> Result<Answer, hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer { status, digest, body })
}

#[cfg(test)]
#[path = "registry_http_tls_tests.rs"]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_is_https_on_443_then_http_on_80_and_a_port_is_kept_for_both() {
        assert_eq!(endpoints("reg.example.com"), ("reg.example.com", 443, 80));
        assert_eq!(endpoints("10.0.0.5:5000"), ("10.0.0.5", 5000, 5000));
        assert_eq!(endpoints("localhost:5001"), ("localhost", 5001, 5001));
    }

    #[test]
    fn only_a_port_that_does_not_speak_tls_falls_back_to_plain_http() {
        use std::io::{Error, ErrorKind};
        let not_tls = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(speaks_no_tls(&not_tls));
        assert!(speaks_no_tls(&Error::from(ErrorKind::UnexpectedEof)));
        let untrusted = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(!speaks_no_tls(&untrusted), "a certificate that does not verify must not downgrade");
        assert!(!speaks_no_tls(&Error::from(ErrorKind::TimedOut)));
    }
}
