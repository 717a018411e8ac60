//! The cluster registry's HTTP API (Docker Registry HTTP API V2), for what the engine's API
//! cannot do: find an image's manifest digest and delete it, so an old release's image leaves
//! the registry. The registry must allow deletes (`storage.delete.enabled`); HTTPS, or plain
//! HTTP to an insecure registry inside the cluster's network (`registry_http` decides).

use hyper::{Method, StatusCode};

use crate::runtime::registry_http::{self, Answer};

/// A registry request that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach the registry {registry}: {detail}; check `slipway cluster set --registry`")]
    Unreachable { registry: String, detail: String },
    #[error(
        "the registry {registry} refused to delete {repo}@{digest} ({status}): allow deletes \
         (storage: delete: enabled: true in its config.yml)"
    )]
    DeleteRefused { registry: String, repo: String, digest: String, status: u16 },
    #[error("the registry {registry} answered {status} to {method} {path}")]
    Status { registry: String, method: &'static str, path: String, status: u16 },
}

async fn request(registry: &str, method: Method, path: &str) -> Result<Answer, RegistryError> {
    registry_http::request(registry, method, path)
        .await
        .map_err(|detail| RegistryError::Unreachable { registry: registry.to_owned(), detail })
}

/// The digest of `repo:tag`, or None if the registry has no such tag.
pub async fn manifest_digest(registry: &str, repo: &str, tag: &str) -> Result<Option<String>, RegistryError> {
    let path = format!("/v2/{repo}/manifests/{tag}");
    let a = request(registry, Method::HEAD, &path).await?;
    match a.status {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => Ok(a.digest),
        s => Err(RegistryError::Status {
            registry: registry.to_owned(),
            method: "HEAD",
            path,
            status: s.as_u16(),
        }),
    }
}

/// Delete the manifest `digest` of `repo` (every tag naming it goes with it). Already gone is
/// success.
pub async fn delete_manifest(registry: &str, repo: &str, digest: &str) -> Result<(), RegistryError> {
    let path = format!("/v2/{repo}/manifests/{digest}");
    let a = request(registry, Method::DELETE, &path).await?;
    match a.status {
        s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
        s => Err(RegistryError::DeleteRefused {
            registry: registry.to_owned(),
            repo: repo.to_owned(),
            digest: digest.to_owned(),
            status: s.as_u16(),
        }),
    }
}

/// The tags of `repo` (empty when it has none).
pub async fn tags(registry: &str, repo: &str) -> Result<Vec<String>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct List {
        tags: Option<Vec<String>>,
    }
    let path = format!("/v2/{repo}/tags/list");
    let a = request(registry, Method::GET, &path).await?;
    if a.status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !a.status.is_success() {
        return Err(RegistryError::Status {
            registry: registry.to_owned(),
            method: "GET",
            path,
            status: a.status.as_u16(),
        });
    }
    let list: List = serde_json::from_slice(&a.body).map_err(|e| RegistryError::Unreachable {
        registry: registry.to_owned(),
        detail: format!("unreadable tag list: {e}"),
    })?;
    Ok(list.tags.unwrap_or_default())
}
