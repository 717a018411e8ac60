//! The records slipway keeps: one per app, one per release.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::{AppName, CommitSha, ProcessType, ReleaseId};

/// Which runtime runs an app's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Processes on this host, supervised by slipway.
    Local,
    /// Containers on the Docker engine.
    Docker,
    /// Pods on a Kubernetes cluster (a kubeconfig's current context).
    Kubernetes,
    /// Services on a Docker Swarm (`slipway cluster set`), images pushed to its registry.
    Swarm,
}

/// The system user an app's processes run as, when slipway runs as root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Give `root` and everything below it to this user, without following symlinks: the tree
    /// may hold links that point anywhere.
    pub fn chown_tree(&self, root: &std::path::Path) -> std::io::Result<()> {
        let chown = |p: &std::path::Path| std::os::unix::fs::lchown(p, Some(self.uid), Some(self.gid));
        chown(root)?;
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                chown(&path)?;
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                }
            }
        }
        Ok(())
    }
}

/// An app's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRecord {
    pub name: AppName,
    pub runtime: RuntimeKind,
    pub created_at: u64,
    /// `slipway config set` values, given to every process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Instance counts that differ from the default of one.
    #[serde(default)]
    pub scale: BTreeMap<ProcessType, u32>,
    /// The release that should be running.
    #[serde(default)]
    pub current: Option<ReleaseId>,
    /// Set by `ps stop`: the current release stays, but nothing runs until `ps start`.
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub run_as: Option<RunAs>,
    /// The repository of the last deploy, for the workspace.
    #[serde(default)]
    pub repo: Option<PathBuf>,
    /// The docker runtime's stack image (`apps create --stack`); None: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The app's stable address (`apps create --listen`), served by its router whatever the
    /// release; None for apps made before routers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// The current release's web port on 127.0.0.1, where the router sends connections. Set at
    /// the switch, in the same atomic write as `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_port: Option<u16>,
    /// The branch whose `git push` deploys (`apps set --deploy-branch`); None: `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_branch: Option<String>,
    /// How patient the router is with request bodies (`apps set --body-timeout`,
    /// `--body-min-rate`); None: the defaults.
    #[serde(default, skip_serializing_if = "BodyLimits::is_default")]
    pub body_limits: BodyLimits,
    /// The CA bundle builds trust (`apps set --ca-certs`); None: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<PathBuf>,
}

/// How long the router waits for a request body, as Apache's `mod_reqtimeout` `body=20,
/// MinRate=500` and nginx's `client_body_timeout`: a client that sends nothing for
/// `timeout_ms`, or whose body arrives slower than `min_rate` bytes per second once the first
/// `timeout_ms` are spent, gets `408` and never ties up a web worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyLimits {
    /// Milliseconds allowed between two reads, and for the whole body beyond what the rate earns.
    pub timeout_ms: u64,
    /// Bytes per second a body must keep up after `timeout_ms`; 0: no minimum.
    pub min_rate: u64,
}

impl BodyLimits {
    /// 20 s and 500 B/s, Apache's `mod_reqtimeout` defaults.
    pub const DEFAULT: Self = Self { timeout_ms: 20_000, min_rate: 500 };

    /// Whether these are the defaults (then they are not written to the record).
    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl AppRecord {
    /// A new app with default settings.
    pub fn new(name: AppName, runtime: RuntimeKind) -> Self {
        Self {
            name,
            runtime,
            created_at: now_unix(),
            env: BTreeMap::new(),
            scale: BTreeMap::new(),
            current: None,
            stopped: false,
            run_as: None,
            repo: None,
            stack: None,
            listen: None,
            web_port: None,
            deploy_branch: None,
            body_limits: BodyLimits::DEFAULT,
            ca_certs: None,
        }
    }

    /// The branch whose push deploys.
    pub fn deploy_branch(&self) -> &str {
        self.deploy_branch.as_deref().unwrap_or("main")
    }

    /// How many instances of `ptype` should run.
    pub fn instances(&self, ptype: &ProcessType) -> u32 {
        self.scale.get(ptype).copied().unwrap_or(1)
    }
}

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Being built, predeployed or started; not yet serving.
    Deploying,
    /// The running release.
    Current,
    /// Replaced by a later release; its folder or image is gone.
    Retired,
    /// A deploy that failed before the switch; it never served.
    Failed,
}

/// How long one phase of a deploy took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub millis: u64,
}

/// What slipway remembers of one release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecord {
    pub id: ReleaseId,
    pub commit: CommitSha,
    pub repo: PathBuf,
    pub created_at: u64,
    pub status: ReleaseStatus,
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub error: Option<String>,
    /// The Procfile's process types, in file order.
    #[serde(default)]
    pub process_types: Vec<ProcessType>,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
