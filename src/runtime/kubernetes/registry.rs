//! Removing a retired release's image from the cluster's registry (Docker Registry HTTP API
//! V2). The API deletes manifests, not tags: slipway reads the tag's digest with a `HEAD`
//! that accepts every manifest type the engine pushes (without those Accept types a registry
//! may answer with the digest of a converted schema-1 manifest, which it then cannot delete),
//! and deletes by that digest. A digest is shared by every tag naming it: a rebuild of the same
//! commit can give the current release the very same digest, so that one is kept.
//!
//! What to do is decided as data ([`plan_delete`]); [`delete_tag`] is the shell around it. It
//! speaks HTTPS, or plain HTTP to a registry that does not speak TLS (kind's local registry, a
//! registry in `insecure-registries`), as `registry_http` decides; an authenticated registry
//! answers with a status that the caller turns into a warning.

use hyper::{Method, StatusCode};

use crate::ids::{AppName, ReleaseId};
use crate::runtime::registry_http;

/// A release's image in the registry: `<authority>/<repository>:<tag>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryImage {
    /// `host[:port]` to connect to (without a port: HTTPS on 443, then HTTP on 80).
    pub authority: String,
    /// The repository path, e.g. `apps/slipway/shop`.
    pub repository: String,
    pub tag: String,
}

impl std::fmt::Display for RegistryImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.authority, self.repository, self.tag)
    }
}

/// Where `release`'s image is, for a registry setting `HOST[:PORT][/PATH]` (as validated by
/// `settings`): the image `publish` pushed, `<registry>/slipway/<app>:<release>`.
pub fn locate(registry: &str, app: &AppName, release: ReleaseId) -> RegistryImage {
    let (host, path) = registry.split_once('/').unwrap_or((registry, ""));
    let authority = host.to_owned();
    let repository = if path.is_empty() { format!("slipway/{app}") } else { format!("{path}/slipway/{app}") };
    RegistryImage { authority, repository, tag: release.to_string() }
}

/// What to do with a retired tag, given its digest and the kept release's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletePlan {
    /// The tag is not in the registry (never pushed, or already deleted).
    Gone,
    /// The kept release's tag names the same manifest: deleting it would delete both.
    Shared { digest: String },
    /// Delete the manifest by this digest.
    Delete { digest: String },
}

/// Decides from the two `HEAD` answers. Pure.
pub fn plan_delete(retired: Option<&str>, kept: Option<&str>) -> DeletePlan {
    match (retired, kept) {
        (None, _) => DeletePlan::Gone,
        (Some(d), Some(k)) if d == k => DeletePlan::Shared { digest: d.to_owned() },
        (Some(d), _) => DeletePlan::Delete { digest: d.to_owned() },
    }
}

/// What [`delete_tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The manifest went (or was not there any more when deleted).
    Manifest {
        digest: String,
    },
    Gone,
    Shared {
        digest: String,
    },
}

/// The registry would not, or could not, delete a retired image. Never fails a deploy: the
/// caller warns with this message.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach the registry at {authority}: {detail}")]
    Unreachable { authority: String, detail: String },
    #[error(
        "the registry refused to delete {image} ({status} Method Not Allowed): deletes are disabled; enable them \
         (`storage: delete: enabled: true` in its config.yml, REGISTRY_STORAGE_DELETE_ENABLED=true for the registry \
         image) and run its garbage collector to free the space"
    )]
    DeletesDisabled { image: String, status: u16 },
    #[error("the registry answered {status} to {method} {path} for {image}{hint}")]
    Status { image: String, method: &'static str, path: String, status: u16, hint: &'static str },
    #[error("the registry answered HEAD {path} for {image} without a Docker-Content-Digest header")]
    NoDigest { image: String, path: String },
}

/// Deletes `retired`'s manifest unless `kept` (the release that stays) names the same one.
pub async fn delete_tag(
    retired: &RegistryImage,
    kept: Option<&RegistryImage>,
) -> Result<Deleted, RegistryError> {
    let old = digest(retired).await?;
    let keep = match kept {
        Some(k) if old.is_some() => digest(k).await?,
        _ => None,
    };
    match plan_delete(old.as_deref(), keep.as_deref()) {
        DeletePlan::Gone => Ok(Deleted::Gone),
        DeletePlan::Shared { digest } => Ok(Deleted::Shared { digest }),
        DeletePlan::Delete { digest } => {
            let path = format!("/v2/{}/manifests/{digest}", retired.repository);
            let (status, _) = request(&retired.authority, Method::DELETE, &path).await?;
            match status {
                s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(Deleted::Manifest { digest }),
                StatusCode::METHOD_NOT_ALLOWED => Err(RegistryError::DeletesDisabled {
                    image: retired.to_string(),
                    status: status.as_u16(),
                }),
                s => Err(status_error(retired, "DELETE", path, s)),
            }
        }
    }
}

/// The tag's manifest digest, or None if the registry has no such tag.
pub async fn digest(image: &RegistryImage) -> Result<Option<String>, RegistryError> {
    let path = format!("/v2/{}/manifests/{}", image.repository, image.tag);
    let (status, digest) = request(&image.authority, Method::HEAD, &path).await?;
    match status {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => {
            digest.map(Some).ok_or_else(|| RegistryError::NoDigest { image: image.to_string(), path })
        }
        s => Err(status_error(image, "HEAD", path, s)),
    }
}

fn status_error(
    image: &RegistryImage,
    method: &'static str,
    path: String,
    status: StatusCode,
) -> RegistryError {
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "; slipway does not log in to registries: remove old tags with the registry's own retention policy"
        }
        _ => "",
    };
    RegistryError::Status { image: image.to_string(), method, path, status: status.as_u16(), hint }
}

/// One request; the status and the Docker-Content-Digest header.
async fn request(
    authority: &str,
    method: Method,
    path: &str,
) -> Result<(StatusCode, Option<String>), RegistryError> {
    let a = registry_http::request(authority, method, path)
        .await
        .map_err(|detail| RegistryError::Unreachable { authority: authority.to_owned(), detail })?;
    Ok((a.status, a.digest))
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
