//! One plain-HTTP request to a Docker registry (Registry HTTP API v2), shared by the cluster
//! runtimes that retire images from their cluster's registry.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

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

/// Sends `method path` to the registry at `authority` (`HOST:PORT`). The error is why the
/// registry could not be reached or did not answer in time, for the caller's own error.
pub async fn request(authority: &str, method: Method, path: &str) -> Result<Answer, String> {
    let go = async {
        let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority)
            .header("accept", ACCEPT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let digest =
            resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer { status, digest, body })
    };
    tokio::time::timeout(TIMEOUT, go).await.map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}
