//! What a supervisor reports about its processes, written atomically to the release's
//! `status.json` on every change so that `slipway ps` in any later shell can read it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::state::atomic;

/// The state of one process instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Spawned; for web, not yet accepting connections.
    Starting,
    /// Up (web: accepting TCP on its port).
    Up,
    /// Exited; waiting for its backoff delay before a restart.
    Crashed,
    /// Stopped on purpose.
    Stopped,
}

/// One process instance, e.g. `worker.2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub ptype: ProcessType,
    pub index: u32,
    pub state: ProcessState,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub restarts: u32,
    /// Unix milliseconds when the current run started.
    pub started_at_ms: Option<u64>,
    pub last_exit: Option<String>,
    /// The swarm node it runs on (swarm runtime only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// How `last_exit` begins when the process could not be started at all (exec or `chdir`
/// failed): a deploy fails at once on it rather than waiting for its web timeout.
pub const SPAWN_FAILED: &str = "cannot start: ";

impl InstanceStatus {
    /// `type.index`, as Heroku names dynos.
    pub fn name(&self) -> String {
        format!("{}.{}", self.ptype, self.index)
    }

    /// Why the last start failed before the process ran, if it did.
    pub fn spawn_error(&self) -> Option<&str> {
        self.last_exit.as_deref()?.strip_prefix(SPAWN_FAILED)
    }
}

/// Everything one release's supervisor knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub app: AppName,
    pub release: ReleaseId,
    pub supervisor_pid: u32,
    pub instances: Vec<InstanceStatus>,
}

impl SupervisorStatus {
    /// Read a status file; None if there is none or it cannot be parsed yet.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Replace the status file atomically (no fsync: it is rebuilt after a reboot).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        atomic::replace_volatile(path, &bytes)
    }

    /// The port of the first web instance.
    pub fn web_port(&self) -> Option<u16> {
        self.instances.iter().find(|i| i.ptype.is_web()).and_then(|i| i.port)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
