//! The cluster a swarm app runs on: its registry and the manager's engine endpoint, set by
//! `slipway cluster set` and kept in the home's root-only state (`state/cluster.json`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::state::{Home, atomic};

/// Where swarm apps are pushed and run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `HOST:PORT` of the registry every node pulls from.
    pub registry: String,
    /// The swarm manager's engine, e.g. `tcp://10.0.0.2:2375`; None: the local engine
    /// (`DOCKER_HOST` or the default socket), which must then be a manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
}

/// Why the cluster settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster is set: run `slipway cluster set --registry HOST:PORT [--docker-host URL]` first")]
    NotSet,
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid cluster settings; run `slipway cluster set` again", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid registry {given:?}: give HOST:PORT, e.g. registry.internal:5000 (no scheme, no path)")]
    BadRegistry { given: String },
    #[error("invalid --docker-host {given:?}: give tcp://HOST:PORT or unix:///path/to/docker.sock")]
    BadDockerHost { given: String },
}

/// The settings file.
pub fn path(home: &Home) -> PathBuf {
    home.state_dir().join("cluster.json")
}

/// The stored settings, or [`ClusterError::NotSet`].
pub fn load(home: &Home) -> Result<ClusterSettings, ClusterError> {
    let path = path(home);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ClusterError::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ClusterError::NotSet),
        Err(source) => Err(ClusterError::Io { action: "read", path, source }),
    }
}

/// Check and store the settings atomically.
pub fn save(home: &Home, settings: &ClusterSettings) -> Result<(), ClusterError> {
    validate(settings)?;
    let dir = home.state_dir();
    std::fs::create_dir_all(&dir).map_err(|source| ClusterError::Io {
        action: "create",
        path: dir,
        source,
    })?;
    let path = path(home);
    atomic::write_json(&path, settings).map_err(|source| ClusterError::Io { action: "write", path, source })
}

/// Refuse settings that could not name an image or reach an engine.
pub fn validate(settings: &ClusterSettings) -> Result<(), ClusterError> {
    let r = &settings.registry;
    let ok = r.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !ok {
        return Err(ClusterError::BadRegistry { given: r.clone() });
    }
    if let Some(h) = &settings.docker_host {
        let ok = h.strip_prefix("tcp://").is_some_and(|rest| rest.rsplit_once(':').is_some())
            || h.strip_prefix("unix:///").is_some_and(|rest| !rest.is_empty());
        if !ok {
            return Err(ClusterError::BadDockerHost { given: h.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(registry: &str, host: Option<&str>) -> ClusterSettings {
        ClusterSettings { registry: registry.to_owned(), docker_host: host.map(str::to_owned) }
    }

    #[test]
    fn accepts_host_port_and_engine_urls() {
        validate(&settings("127.0.0.1:5000", None)).unwrap();
        validate(&settings("registry.internal:443", Some("tcp://10.0.0.2:2375"))).unwrap();
        validate(&settings("reg:5000", Some("unix:///run/docker.sock"))).unwrap();
    }

    #[test]
    fn refuses_schemes_paths_and_missing_ports() {
        for bad in ["http://reg:5000", "reg", "reg:0", "reg:5000/x", ":5000", "reg:port"] {
            assert!(matches!(validate(&settings(bad, None)), Err(ClusterError::BadRegistry { .. })), "{bad}");
        }
        for bad in ["10.0.0.2:2375", "tcp://host", "unix://", "ssh://h:22"] {
            assert!(
                matches!(validate(&settings("r:1", Some(bad))), Err(ClusterError::BadDockerHost { .. })),
                "{bad}"
            );
        }
    }
}
