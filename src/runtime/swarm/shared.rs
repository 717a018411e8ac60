//! A swarm app's own settings (`state/<app>/swarm.json`): how every node reaches its mount,
//! and the port its web replicas publish on every node. And the proof, before each deploy,
//! that the mount really is one filesystem: a task on one node writes a marker, a task on
//! every node reads it back.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{NodeSpecAvailabilityEnum, NodeState};
use serde::{Deserialize, Serialize};

use super::jobs::{self, JobError, Outcome};
use super::spec::{self, SharedMount, TaskInput};
use crate::ids::{AppName, ReleaseId};
use crate::state::{Home, atomic};

/// What slipway keeps about a swarm app besides its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmApp {
    /// `mount enable --mount-path` or `--nfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedMount>,
    /// Chosen at the first deploy, kept for every later one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_port: Option<u16>,
}

/// Why the settings or the proof failed.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{app}'s mount is enabled but no node can reach it: run `slipway mount enable {app} --mount-path DIR` \
         (a directory every node has) or `--nfs ADDR:PATH`"
    )]
    NotConfigured { app: AppName },
    #[error("the mount of {app} ({shared}) is not shared across the swarm, so the deploy stops: {found}")]
    NotShared { app: AppName, shared: SharedMount, found: String },
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("cannot list the swarm's nodes")]
    Nodes(#[source] bollard::errors::Error),
    #[error("invalid --nfs {given:?}: give ADDR:/exported/path")]
    BadNfs { given: String },
    #[error("invalid --mount-path {given:?}: give an absolute directory path without `..`")]
    BadPath { given: String },
}

fn path(home: &Home, app: &AppName) -> PathBuf {
    home.app(app).state_dir().join("swarm.json")
}

/// The app's settings (defaults when none were saved).
pub fn load(home: &Home, app: &AppName) -> Result<SwarmApp, SharedError> {
    let path = path(home, app);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| SharedError::Io {
            action: "parse",
            path,
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SwarmApp::default()),
        Err(source) => Err(SharedError::Io { action: "read", path, source }),
    }
}

/// Replace the app's settings atomically.
pub fn save(home: &Home, app: &AppName, settings: &SwarmApp) -> Result<(), SharedError> {
    let path = path(home, app);
    atomic::write_json(&path, settings).map_err(|source| SharedError::Io { action: "write", path, source })
}

/// `--nfs ADDR:PATH`, checked.
pub fn parse_nfs(given: &str) -> Result<SharedMount, SharedError> {
    let bad = || SharedError::BadNfs { given: given.to_owned() };
    let (addr, path) = given.split_once(":/").ok_or_else(bad)?;
    let ok_addr = !addr.is_empty() && addr.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
    // Commas would add options of their own to the driver's `o=`.
    if !ok_addr || path.contains(',') || path.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(SharedMount::Nfs { addr: addr.to_owned(), path: format!("/{path}") })
}

/// `--mount-path DIR`, checked: the same path on every node.
pub fn parse_path(given: &str) -> Result<SharedMount, SharedError> {
    let p = std::path::Path::new(given);
    let ok = p.is_absolute()
        && p.components().all(|c| !matches!(c, std::path::Component::ParentDir))
        && p != std::path::Path::new("/")
        && !given.contains(',');
    if !ok {
        return Err(SharedError::BadPath { given: given.to_owned() });
    }
    Ok(SharedMount::Path { dir: given.trim_end_matches('/').to_owned() })
}

/// The ids and hostnames of the nodes that can run tasks now.
pub async fn ready_nodes(docker: &Docker) -> Result<Vec<(String, String)>, SharedError> {
    let nodes = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(SharedError::Nodes)?;
    Ok(nodes
        .into_iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY))
        .filter(|n| n.spec.as_ref().and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::ACTIVE))
        .filter_map(|n| {
            let host = n.description.and_then(|d| d.hostname).unwrap_or_default();
            Some((n.id?, host))
        })
        .collect())
}

/// How long a reader looks for the marker once the writer's task runs (the write itself takes
/// a moment after that): the whole cost of a refusal, never of a success.
const READ_PATIENCE_TENTHS: u32 = 30;

/// Prove that `shared` is one filesystem on every ready node, with tasks of `image` (the
/// stack, as the nodes pull it). A writer task on one node writes a random marker and stays
/// up; once it runs, one global job reads the marker on every node at once; then the writer
/// is removed, and its stop removes the marker. Two service round trips, whatever the number
/// of nodes. The writer runs as root: it also hands the mount's root to the containers' user,
/// as the docker runtime does on its host.
pub async fn prove(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
    shared: &SharedMount,
    image: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), SharedError> {
    let nodes = ready_nodes(docker).await?;
    let Some((writer, writer_host)) = nodes.first().cloned() else {
        return Err(SharedError::NotShared {
            app: app.clone(),
            shared: shared.clone(),
            found: "no node is ready".into(),
        });
    };
    let token = format!("{:016x}", rand_u64());
    let marker = format!("/mount/.slipway-shared-check-{token}");
    let input = |args: String| TaskInput {
        app,
        release,
        image: image.to_owned(),
        workdir: "/".to_owned(),
        args: vec!["bash".to_owned(), "-c".to_owned(), args],
        env: Vec::new(),
        dyno: "check".to_owned(),
        shared: Some(shared),
        stop_grace: Duration::from_secs(5),
    };
    let timeout = Duration::from_secs(300);
    // Markers of an interrupted check go first (rm never follows a link the app made). The
    // writer then waits to be stopped; its stop (or, as a backstop, ten minutes) removes the
    // marker, so no deploy waits for that cleanup.
    let writer_name = spec::job_name(app, release, "mountcheck-write");
    let mut write = spec::job_service(
        writer_name.clone(),
        &input(format!(
            "rm -f /mount/.slipway-shared-check-*; chown 1000:1000 /mount && printf %s {token} > {marker} || exit 1; \
             trap 'rm -f {marker}; exit 0' TERM; sleep 600 & wait $!; rm -f {marker}"
        )),
        Some(&writer),
    );
    if let Some(c) = write.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
        c.user = Some("0:0".to_owned());
    }
    let not_written = |o: &Outcome| SharedError::NotShared {
        app: app.clone(),
        shared: shared.clone(),
        found: format!("a task on {writer_host} could not write to it: {}", describe(o)),
    };
    if let Err(o) = jobs::start(docker, write, timeout).await? {
        jobs::remove(docker, &writer_name).await;
        return Err(not_written(&o));
    }
    // Every node reads at once, retrying briefly: the writer's task runs a moment before its
    // write lands.
    let read = format!(
        "for _ in $(seq 1 {READ_PATIENCE_TENTHS}); do \
           if [ \"$(cat {marker} 2>/dev/null)\" = {token} ]; then echo \"$(hostname): sees the marker\"; exit 0; fi; \
           sleep 0.1; done; \
         echo \"$(hostname): no marker; /mount holds $(ls -A /mount | wc -l) entries\"; exit 3"
    );
    let readers = spec::global_job_service(spec::job_name(app, release, "mountcheck-read"), &input(read));
    let mut lines = Vec::new();
    let mut sink = |l: &str| lines.push(l.to_owned());
    let seen = jobs::run_draining(docker, readers, nodes.len(), timeout, jobs::DRAIN_CHECK, &mut sink).await;
    // A writer that ended early (it could not write) explains every reader's miss.
    let writer_ended = jobs::ended(docker, &writer_name).await;
    jobs::remove(docker, &writer_name).await;
    if let Some(o) = writer_ended?.iter().find(|o| !o.succeeded()) {
        return Err(not_written(o));
    }
    let seen = seen?;
    let missing: Vec<String> = nodes
        .iter()
        .filter_map(|(id, host)| match seen.iter().find(|o| o.node == *id) {
            Some(o) if o.succeeded() => None,
            Some(o) => Some(format!("{host}: {}", describe(o))),
            None => Some(format!("{host}: ran no reader")),
        })
        .collect();
    if !missing.is_empty() {
        return Err(SharedError::NotShared {
            app: app.clone(),
            shared: shared.clone(),
            found: format!(
                "a marker written by a task on {writer_host} was not read back on every node ({}); what the nodes said: {}",
                missing.join("; "),
                lines.join(" | ")
            ),
        });
    }
    progress(&format!(
        "{shared} is shared: a marker written on {writer_host} was read on all {} nodes",
        nodes.len()
    ));
    Ok(())
}

fn describe(o: &Outcome) -> String {
    match (&o.error, o.code) {
        (_, Some(3)) => "the marker was not there".to_owned(),
        (Some(e), _) => format!("{:?}: {e}", o.state).to_lowercase(),
        (_, Some(c)) => format!("exit code {c}"),
        (None, None) => format!("{:?}", o.state).to_lowercase(),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Randomly keyed per process: enough to keep two checks' markers apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfs_and_paths_are_checked() {
        assert_eq!(
            parse_nfs("10.0.0.9:/exports/shop").unwrap(),
            SharedMount::Nfs { addr: "10.0.0.9".into(), path: "/exports/shop".into() }
        );
        for bad in ["10.0.0.9", "10.0.0.9:exports", ":/x", "a b:/x", "h:/x,soft"] {
            assert!(parse_nfs(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_path("/srv/shared/shop/").unwrap(),
            SharedMount::Path { dir: "/srv/shared/shop".into() }
        );
        for bad in ["srv/x", "/", "/srv/../etc", "/a,b"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }
}
