//! The registry cleanup against a real registry: Debian's `docker-registry` (the CNCF
//! distribution registry, as the cluster's own would be) on a loopback port, images pushed to
//! it over its HTTP API as `docker push` writes them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::runtime::registry_process::RegistryProcess;

const SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn locate_names_the_pushed_image() {
    let app: AppName = "shop".parse().unwrap();
    let at = |r: &str| locate(r, &app, ReleaseId::new(4)).to_string();
    assert_eq!(at("localhost:5001"), "localhost:5001/slipway/shop:v4");
    assert_eq!(at("reg.example.com/team/apps"), "reg.example.com/team/apps/slipway/shop:v4");
    let img = locate("10.0.0.5:5000/apps", &app, ReleaseId::new(2));
    assert_eq!((img.authority.as_str(), img.repository.as_str()), ("10.0.0.5:5000", "apps/slipway/shop"));
}

#[test]
fn a_digest_the_kept_release_shares_is_not_deleted() {
    assert_eq!(plan_delete(None, Some("sha256:a")), DeletePlan::Gone);
    assert_eq!(
        plan_delete(Some("sha256:a"), Some("sha256:a")),
        DeletePlan::Shared { digest: "sha256:a".into() }
    );
    assert_eq!(
        plan_delete(Some("sha256:a"), Some("sha256:b")),
        DeletePlan::Delete { digest: "sha256:a".into() }
    );
    assert_eq!(plan_delete(Some("sha256:a"), None), DeletePlan::Delete { digest: "sha256:a".into() });
}

/// A registry process on a free loopback port, killed on drop with its storage.
struct Registry {
    process: RegistryProcess,
    authority: String,
}

impl Registry {
    async fn start(deletes: bool) -> Self {
        let process = RegistryProcess::spawn(deletes, None);
        let authority = process.authority.clone();
        let r = Self { process, authority };
        for _ in 0..100 {
            if matches!(r.call(Method::GET, "/v2/", &[], Vec::new()).await, Ok((200, _))) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not answer on {}", r.process.authority);
    }

    /// One request with a body; the status and the Location header.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(uri).header("host", &self.authority);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let location =
            resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        resp.into_body().collect().await.unwrap();
        Ok((status, location))
    }

    async fn blob(&self, repo: &str, content: &[u8]) -> (String, usize) {
        let digest = format!("sha256:{:x}", Sha256::digest(content));
        let (status, location) =
            self.call(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).await.unwrap();
        assert_eq!(status, 202);
        // The Location may be absolute; the request line wants the path and query.
        let path = location.split_once(&self.authority).map_or(location.as_str(), |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = format!("{path}{sep}digest={digest}");
        let (status, _) = self
            .call(Method::PUT, &put, &[("content-type", "application/octet-stream")], content.to_vec())
            .await
            .unwrap();
        assert_eq!(status, 201, "blob upload");
        (digest, content.len())
    }

    /// Pushes a one-layer schema-2 image as `repo:tag`; its manifest digest.
    async fn push(&self, repo: &str, tag: &str, config: &str) -> String {
        let (cfg, cfg_size) = self.blob(repo, config.as_bytes()).await;
        let (layer, layer_size) = self.blob(repo, b"a layer").await;
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": SCHEMA2,
            "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "size": cfg_size, "digest": cfg },
            "layers": [{ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer_size, "digest": layer }],
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let digest = format!("sha256:{:x}", Sha256::digest(&body));
        let (status, _) = self
            .call(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"), &[("content-type", SCHEMA2)], body)
            .await
            .unwrap();
        assert_eq!(status, 201, "manifest push");
        digest
    }

    fn image(&self, app: &AppName, release: u64) -> RegistryImage {
        locate(&format!("{}/team", self.authority), app, ReleaseId::new(release))
    }
}

#[tokio::test]
async fn the_retired_tag_leaves_a_real_registry_and_the_current_one_stays() {
    let reg = Registry::start(true).await;
    let app: AppName = "shop".parse().unwrap();
    let repo = reg.image(&app, 1).repository;
    let v1 = reg.push(&repo, "v1", r#"{"release":"v1"}"#).await;
    let v2 = reg.push(&repo, "v2", r#"{"release":"v2"}"#).await;
    assert_ne!(v1, v2);

    assert_eq!(digest(&reg.image(&app, 1)).await.unwrap(), Some(v1.clone()), "HEAD gives the pushed digest");
    let done = delete_tag(&reg.image(&app, 1), Some(&reg.image(&app, 2))).await.unwrap();
    assert_eq!(done, Deleted::Manifest { digest: v1 });
    assert_eq!(digest(&reg.image(&app, 1)).await.unwrap(), None, "v1 is gone from the registry");
    assert_eq!(digest(&reg.image(&app, 2)).await.unwrap(), Some(v2.clone()), "v2 stays");

    // A second retire of the same release (a retry after a crash) has nothing to do.
    assert_eq!(delete_tag(&reg.image(&app, 1), Some(&reg.image(&app, 2))).await.unwrap(), Deleted::Gone);

    // A rebuild with the same digest: deleting v3's manifest would take v2 with it.
    let v3 = reg.push(&repo, "v3", r#"{"release":"v2"}"#).await;
    assert_eq!(v3, v2);
    let kept = delete_tag(&reg.image(&app, 3), Some(&reg.image(&app, 2))).await.unwrap();
    assert_eq!(kept, Deleted::Shared { digest: v2.clone() });
    assert_eq!(digest(&reg.image(&app, 2)).await.unwrap(), Some(v2), "the current release still pulls");
}

#[tokio::test]
async fn a_registry_without_deletes_is_named_with_the_setting_to_change() {
    let reg = Registry::start(false).await;
    let app: AppName = "shop".parse().unwrap();
    let repo = reg.image(&app, 1).repository;
    let v1 = reg.push(&repo, "v1", r#"{"release":"v1"}"#).await;
    let err = delete_tag(&reg.image(&app, 1), None).await.unwrap_err();
    assert!(matches!(err, RegistryError::DeletesDisabled { status: 405, .. }), "{err}");
    assert!(err.to_string().contains("delete: enabled: true"), "{err}");
    assert_eq!(digest(&reg.image(&app, 1)).await.unwrap(), Some(v1), "nothing was lost");
}

#[tokio::test]
async fn an_unreachable_registry_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let img = locate(&format!("127.0.0.1:{port}"), &"shop".parse().unwrap(), ReleaseId::new(1));
    let err = delete_tag(&img, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}
