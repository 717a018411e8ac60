//! What an app's containers may do: the hardening every process and one-off container gets
//! (issue 11 §3), and the per-app settings that relax it (`apps set APP --memory … --pids …
//! --allow-setuid --cap-add CAP`), kept in the root-only `state/<app>/docker/limits.json`.
//!
//! By default a container runs with `no-new-privileges` (a setuid binary gives no euid 0),
//! every capability dropped (processes run as uid 1000, which needs none: no `mknod`, no
//! setuid-root files in the mount), 512 MiB of memory and 512 processes, on a network of its
//! own app, so that no container reaches another app's.

use std::path::PathBuf;

use bollard::models::HostConfig;
use serde::{Deserialize, Serialize};

use crate::ids::AppName;
use crate::state::{Home, atomic};

/// Default memory limit of a container: 512 MiB.
pub const DEFAULT_MEMORY: u64 = 512 * 1024 * 1024;
/// Default process (pids) limit of a container.
pub const DEFAULT_PIDS: u64 = 512;

/// An app's container limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in bytes; `None`: unlimited.
    pub memory: Option<u64>,
    /// Process limit; `None`: unlimited.
    pub pids: Option<u64>,
    /// Let setuid binaries raise privileges (no `no-new-privileges`).
    #[serde(default)]
    pub allow_setuid: bool,
    /// Capabilities added back after dropping them all, e.g. `NET_BIND_SERVICE`.
    #[serde(default)]
    pub cap_add: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: Some(DEFAULT_MEMORY),
            pids: Some(DEFAULT_PIDS),
            allow_setuid: false,
            cap_add: Vec::new(),
        }
    }
}

/// Why the limits could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// The file could not be read, parsed or written.
    #[error("cannot {action} the container limits in {}: check the state directory", path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A capability name slipway does not know.
    #[error("unknown capability {0:?}: use a name from capabilities(7) without CAP_, e.g. NET_BIND_SERVICE")]
    Capability(String),
}

fn path(home: &Home, app: &AppName) -> PathBuf {
    home.app(app).state_dir().join("docker").join("limits.json")
}

/// The app's limits (the defaults if it never set any).
pub fn load(home: &Home, app: &AppName) -> Result<Limits, LimitsError> {
    let path = path(home, app);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LimitsError::Io {
            action: "parse",
            path,
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Limits::default()),
        Err(source) => Err(LimitsError::Io { action: "read", path, source }),
    }
}

/// Saves the app's limits; they apply to containers made from then on.
pub fn save(home: &Home, app: &AppName, limits: &Limits) -> Result<(), LimitsError> {
    let path = path(home, app);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LimitsError::Io {
            action: "create the directory of",
            path: path.clone(),
            source,
        })?;
    }
    atomic::write_json(&path, limits).map_err(|source| LimitsError::Io { action: "write", path, source })
}

/// A capability name as the engine takes it (`NET_BIND_SERVICE`), checked.
pub fn parse_capability(name: &str) -> Result<String, LimitsError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return Err(LimitsError::Capability(name.to_owned()));
    }
    Ok(bare.to_owned())
}

/// What `apps create` says about who a docker app's processes run as: the truth, uid 1000
/// inside hardened containers, not the app's host account.
pub fn process_user_note() -> String {
    format!(
        "       its processes run in containers as the stack's user `slipway` (uid {}, not a host account), \
         with no capabilities, no-new-privileges, {} MiB of memory and {DEFAULT_PIDS} processes each; see `slipway apps set --help`",
        super::CONTAINER_USER.split(':').next().unwrap_or("1000"),
        DEFAULT_MEMORY >> 20,
    )
}

/// The name of the app's own network: `slipway-<app>`.
pub fn network_name(app: &AppName) -> String {
    format!("slipway-{app}")
}

/// Puts the limits and the app's network on a container's host config.
pub fn apply(limits: &Limits, app: &AppName, host: &mut HostConfig) {
    host.cap_drop = Some(vec!["ALL".to_owned()]);
    host.cap_add = (!limits.cap_add.is_empty()).then(|| limits.cap_add.clone());
    host.security_opt = (!limits.allow_setuid).then(|| vec!["no-new-privileges:true".to_owned()]);
    host.memory = limits.memory.and_then(|m| i64::try_from(m).ok());
    // Swap as much as memory: the limit is the limit, not twice it.
    host.memory_swap = host.memory;
    host.pids_limit = limits.pids.and_then(|p| i64::try_from(p).ok());
    host.network_mode = Some(network_name(app));
}

/// The same as `docker run` flags, for the interactive one-off that goes through the CLI.
pub fn run_flags(limits: &Limits, app: &AppName) -> Vec<String> {
    let mut flags = vec!["--cap-drop".to_owned(), "ALL".to_owned()];
    for cap in &limits.cap_add {
        flags.extend(["--cap-add".to_owned(), cap.clone()]);
    }
    if !limits.allow_setuid {
        flags.extend(["--security-opt".to_owned(), "no-new-privileges:true".to_owned()]);
    }
    if let Some(m) = limits.memory {
        flags.extend(["--memory".to_owned(), m.to_string(), "--memory-swap".to_owned(), m.to_string()]);
    }
    if let Some(p) = limits.pids {
        flags.extend(["--pids-limit".to_owned(), p.to_string()]);
    }
    flags.extend(["--network".to_owned(), network_name(app)]);
    flags
}

/// Creates the app's own bridge network if it is missing. Containers on different bridge
/// networks cannot reach each other: the engine isolates them.
pub async fn ensure_network(docker: &bollard::Docker, app: &AppName) -> Result<(), bollard::errors::Error> {
    let name = network_name(app);
    match docker.inspect_network(&name, None::<bollard::query_parameters::InspectNetworkOptions>).await {
        Ok(_) => return Ok(()),
        Err(e) if !super::is_not_found(&e) => return Err(e),
        Err(_) => {}
    }
    let body = bollard::models::NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".to_owned()),
        labels: Some(super::labels::volume_labels(app, super::labels::Kind::Process)),
        ..Default::default()
    };
    match docker.create_network(body).await {
        // 409: made meanwhile by another command of the same app.
        Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the app's network (for `apps destroy`); a missing one is fine. A one-off run with
/// `--rm` is removed by the engine a moment after it exits, and holds the network until then.
pub async fn remove_network(docker: &bollard::Docker, app: &AppName) -> Result<(), bollard::errors::Error> {
    let mut tries = 20;
    loop {
        match docker.remove_network(&network_name(app)).await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 403 | 409, .. })
                if tries > 0 =>
            {
                tries -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) if !super::is_not_found(&e) => return Err(e),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        "demo".parse().unwrap()
    }

    #[test]
    fn by_default_containers_drop_every_capability_and_cannot_gain_privileges() {
        let mut host = HostConfig::default();
        apply(&Limits::default(), &app(), &mut host);
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.cap_add, None);
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_owned()]));
        assert_eq!(host.memory, Some(512 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.pids_limit, Some(512));
        assert_eq!(host.network_mode.as_deref(), Some("slipway-demo"));
    }

    #[test]
    fn each_point_is_relaxed_by_its_own_setting() {
        let limits =
            Limits { memory: None, pids: None, allow_setuid: true, cap_add: vec!["NET_BIND_SERVICE".into()] };
        let mut host = HostConfig::default();
        apply(&limits, &app(), &mut host);
        assert_eq!(host.cap_add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
        assert_eq!((host.security_opt, host.memory, host.pids_limit), (None, None, None));
        assert_eq!(
            run_flags(&limits, &app()),
            ["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--network", "slipway-demo"]
        );
    }

    #[test]
    fn capabilities_are_named_as_the_engine_takes_them() {
        assert_eq!(parse_capability("cap_net_bind_service").unwrap(), "NET_BIND_SERVICE");
        assert_eq!(parse_capability("SYS_PTRACE").unwrap(), "SYS_PTRACE");
        assert!(parse_capability("net bind").is_err());
        assert!(parse_capability("").is_err());
    }
}
