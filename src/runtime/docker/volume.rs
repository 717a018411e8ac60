//! The app's persistent filesystem as a Docker named volume, and its buildpack cache.
//!
//! The mount volume `slipway-<app>-mount` is a bind of the host mount directory
//! (`AppPaths::mount_dir()`) through the `local` driver (`type=none, o=bind, device=<dir>`),
//! so containers and the host share one directory, and the loop-mounted ext4 image behind it
//! (when the hard limit is on) still enforces the quota. The directory must be writable by
//! the container user (uid 1000) or by whichever uid the integrator runs containers as.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

use super::is_not_found;
use super::labels::{self, Kind};
use crate::ids::AppName;

/// Why a volume could not be made, found or removed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The host directory behind the mount volume is missing.
    #[error("the mount directory {} of {app} does not exist: enable the mount first (`slipway mount enable {app}`)", dir.display())]
    NoHostDir {
        /// The app.
        app: AppName,
        /// The host directory.
        dir: PathBuf,
    },
    /// The volume exists but binds another directory.
    #[error("volume {volume} binds {found:?}, not {}: remove it with `docker volume rm {volume}` (no data is lost: it only points at a directory)", expected.display())]
    Mismatch {
        /// The volume.
        volume: String,
        /// The directory it should bind.
        expected: PathBuf,
        /// The directory it binds.
        found: Option<String>,
    },
    /// The volume is attached to a container.
    #[error("volume {volume} is still in use: stop the app's containers first")]
    InUse {
        /// The volume.
        volume: String,
    },
    /// The engine failed.
    #[error("cannot {what} volume {volume}: check `docker info`")]
    Engine {
        /// What was asked.
        what: &'static str,
        /// The volume.
        volume: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// The request creating the app's mount volume as a bind of `host_dir`.
pub fn mount_volume_request(app: &AppName, host_dir: &Path) -> VolumeCreateRequest {
    VolumeCreateRequest {
        name: Some(labels::mount_volume_name(app)),
        driver: Some("local".to_owned()),
        driver_opts: Some(HashMap::from([
            ("type".to_owned(), "none".to_owned()),
            ("o".to_owned(), "bind".to_owned()),
            ("device".to_owned(), host_dir.display().to_string()),
        ])),
        labels: Some(labels::volume_labels(app, Kind::Mount)),
        ..Default::default()
    }
}

/// Creates the app's mount volume if missing and returns its name; an existing volume must
/// bind the same directory.
pub async fn ensure_mount_volume(
    docker: &Docker,
    app: &AppName,
    host_dir: &Path,
) -> Result<String, VolumeError> {
    let name = labels::mount_volume_name(app);
    if !host_dir.is_dir() {
        return Err(VolumeError::NoHostDir { app: app.clone(), dir: host_dir.to_owned() });
    }
    match docker.inspect_volume(&name).await {
        Ok(v) => {
            let found = v.options.get("device").cloned();
            if found.as_deref() == Some(&*host_dir.display().to_string()) {
                Ok(name)
            } else {
                Err(VolumeError::Mismatch { volume: name, expected: host_dir.to_owned(), found })
            }
        }
        Err(e) if is_not_found(&e) => {
            docker
                .create_volume(mount_volume_request(app, host_dir))
                .await
                .map_err(|source| VolumeError::Engine { what: "create", volume: name.clone(), source })?;
            Ok(name)
        }
        Err(source) => Err(VolumeError::Engine { what: "inspect", volume: name, source }),
    }
}

/// Creates the app's buildpack cache volume if missing and returns its name.
pub async fn ensure_cache_volume(docker: &Docker, app: &AppName) -> Result<String, VolumeError> {
    let name = labels::cache_volume_name(app);
    let request = VolumeCreateRequest {
        name: Some(name.clone()),
        driver: Some("local".to_owned()),
        labels: Some(labels::volume_labels(app, Kind::Cache)),
        ..Default::default()
    };
    // Creating an existing local volume with the same options returns it unchanged.
    docker.create_volume(request).await.map_err(|source| VolumeError::Engine {
        what: "create",
        volume: name.clone(),
        source,
    })?;
    Ok(name)
}

/// Removes a volume; a missing one is not an error. Removing the mount volume leaves the
/// host directory and its files in place.
pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), VolumeError> {
    match docker.remove_volume(name, Some(RemoveVolumeOptions { force: false })).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
            Err(VolumeError::InUse { volume: name.to_owned() })
        }
        Err(source) => Err(VolumeError::Engine { what: "remove", volume: name.to_owned(), source }),
    }
}

/// The names and labels of the app's volumes.
pub async fn list_volumes(
    docker: &Docker,
    app: &AppName,
) -> Result<Vec<(String, HashMap<String, String>)>, VolumeError> {
    let options = ListVolumesOptions { filters: Some(labels::app_filter(app)) };
    let list = docker.list_volumes(Some(options)).await.map_err(|source| VolumeError::Engine {
        what: "list",
        volume: format!("{}={app}", labels::APP),
        source,
    })?;
    Ok(list.volumes.unwrap_or_default().into_iter().map(|v| (v.name, v.labels)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_volume_binds_the_host_directory() {
        let app: AppName = "demo".parse().unwrap();
        let r = mount_volume_request(&app, Path::new("/srv/slipway/apps/demo/mount"));
        assert_eq!(r.name.as_deref(), Some("slipway-demo-mount"));
        assert_eq!(r.driver.as_deref(), Some("local"));
        let o = r.driver_opts.unwrap();
        assert_eq!(o["type"], "none");
        assert_eq!(o["o"], "bind");
        assert_eq!(o["device"], "/srv/slipway/apps/demo/mount");
        assert_eq!(r.labels.unwrap()["slipway.kind"], "mount");
    }
}
