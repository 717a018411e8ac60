//! A kubernetes app's cluster settings (`apps create --runtime kubernetes --namespace
//! --storage-class --access-mode --registry`), kept in the root-only
//! `state/<app>/kubernetes/settings.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::AppName;
use crate::state::{Home, atomic};

/// How the app's PersistentVolumeClaim may be attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// ReadWriteMany: every pod on every node mounts the same filesystem (EFS, Azure Files,
    /// Filestore, CephFS, NFS).
    #[default]
    Rwx,
    /// ReadWriteOnce: one node at a time, so every pod of the app and its predeploy Job are
    /// pinned to one node and Deployments are replaced with `Recreate` (downtime at each deploy).
    Rwo,
}

impl AccessMode {
    /// The Kubernetes name of the mode.
    pub fn as_k8s(self) -> &'static str {
        match self {
            Self::Rwx => "ReadWriteMany",
            Self::Rwo => "ReadWriteOnce",
        }
    }
}

/// Said when an app is created, rendered or deployed with a ReadWriteOnce claim.
pub const RWO_WARNING: &str = "WARNING: --access-mode rwo: the mount's claim attaches to one node, so every pod and \
     Job of this app is pinned to that node and each deploy recreates the Deployments (downtime). Use a \
     ReadWriteMany storage class (EFS, Azure Files, Filestore) to spread the app across nodes.";

/// Where and how a kubernetes app runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSettings {
    /// The namespace of every resource of the app.
    pub namespace: String,
    /// The PVC's storage class; None: the cluster's default class.
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub access_mode: AccessMode,
    /// Where release images are pushed and the cluster pulls them from (`HOST[:PORT][/PATH]`);
    /// None: the cluster already has the local tag (`kind load docker-image`, `k3s ctr import`).
    #[serde(default)]
    pub registry: Option<String>,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            storage_class: None,
            access_mode: AccessMode::Rwx,
            registry: None,
        }
    }
}

/// The settings file could not be used, or a setting is not valid.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is corrupt; recreate the app, or fix the JSON by hand", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "app {app} is not a kubernetes app (no {}); create it with `slipway apps create {app} --runtime kubernetes`",
        path.display()
    )]
    Missing { app: AppName, path: PathBuf },
    #[error(
        "{what} {value:?} is not a valid Kubernetes name: use at most 63 lowercase letters, digits and '-', \
         starting and ending with a letter or digit"
    )]
    BadName { what: &'static str, value: String },
    #[error(
        "registry {0:?} must be HOST[:PORT][/PATH], without a scheme or tag, e.g. registry.example.com:5000"
    )]
    BadRegistry(String),
}

impl KubeSettings {
    /// Checks what `apps create` was given, before anything is written.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !is_dns_label(&self.namespace) {
            return Err(SettingsError::BadName { what: "namespace", value: self.namespace.clone() });
        }
        if let Some(sc) = &self.storage_class
            && !is_dns_subdomain(sc)
        {
            return Err(SettingsError::BadName { what: "storage class", value: sc.clone() });
        }
        if let Some(r) = &self.registry {
            let host = r.split('/').next().unwrap_or_default();
            let fits = !host.is_empty()
                && !r.contains("://")
                && !r.ends_with('/')
                && !r.contains('@')
                && r.split('/').skip(1).all(|p| !p.is_empty() && !p.contains(':'))
                && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:/".contains(&b));
            if !fits {
                return Err(SettingsError::BadRegistry(r.clone()));
            }
        }
        Ok(())
    }
}

/// An RFC 1123 label: what namespaces and most object names must be.
pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn path(home: &Home, app: &AppName) -> PathBuf {
    home.app(app).state_dir().join("kubernetes").join("settings.json")
}

/// The app's settings; an error names the fix when the app has none.
pub fn load(home: &Home, app: &AppName) -> Result<KubeSettings, SettingsError> {
    let path = path(home, app);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SettingsError::Missing { app: app.clone(), path })
        }
        Err(source) => Err(SettingsError::Io { action: "read", path, source }),
    }
}

/// Writes the settings atomically.
pub fn save(home: &Home, app: &AppName, settings: &KubeSettings) -> Result<(), SettingsError> {
    let path = path(home, app);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SettingsError::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
    }
    atomic::write_json(&path, settings).map_err(|source| SettingsError::Io { action: "write", path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_registries_are_checked() {
        let ok = KubeSettings {
            namespace: "team-a".into(),
            storage_class: Some("efs.csi.aws.com".into()),
            access_mode: AccessMode::Rwx,
            registry: Some("registry.example.com:5000/apps".into()),
        };
        ok.validate().unwrap();
        for bad_ns in ["Team", "-a", "a_b", ""] {
            let s = KubeSettings { namespace: bad_ns.into(), ..ok.clone() };
            assert!(
                matches!(s.validate(), Err(SettingsError::BadName { what: "namespace", .. })),
                "{bad_ns}"
            );
        }
        for bad_reg in ["https://r.example", "r.example/", "r.example/a:v1", "r.example/x@sha256", "r ex"] {
            let s = KubeSettings { registry: Some(bad_reg.into()), ..ok.clone() };
            assert!(matches!(s.validate(), Err(SettingsError::BadRegistry(_))), "{bad_reg}");
        }
    }

    #[test]
    fn settings_round_trip_and_missing_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let app: AppName = "demo".parse().unwrap();
        let err = load(&home, &app).unwrap_err().to_string();
        assert!(err.contains("--runtime kubernetes"), "{err}");
        let s = KubeSettings { access_mode: AccessMode::Rwo, ..KubeSettings::default() };
        save(&home, &app, &s).unwrap();
        assert_eq!(load(&home, &app).unwrap(), s);
    }
}
