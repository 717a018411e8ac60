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

/// Prove that `shared` is one filesystem on every ready node, with tasks of `image` (the
/// stack, as the nodes pull it). The writer runs as root: it also hands the mount's root to
/// the containers' user, as the docker runtime does on its host.
pub async fn prove(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
    shared: &SharedMount,
    image: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), SharedError> {
    let nodes = ready_nodes(docker).await?;
    let name_of = |id: &str| nodes.iter().find(|(n, _)| n == id).map_or(id.to_owned(), |(_, h)| h.clone());
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
    let mut write = spec::job_service(
        spec::job_name(app, release, "mountcheck-write"),
        &input(format!("chown 1000:1000 /mount && printf %s {token} > {marker}")),
        Some(&writer),
    );
    if let Some(c) = write.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
        c.user = Some("0:0".to_owned());
    }
    let written = jobs::run(docker, write, 1, timeout, progress).await?;
    if let Some(o) = written.iter().find(|o| !o.succeeded()) {
        return Err(SharedError::NotShared {
            app: app.clone(),
            shared: shared.clone(),
            found: format!("a task on {writer_host} could not write to it: {}", describe(o)),
        });
    }
    // Each node reads the marker and says what it saw; the writer's node removes it last.
    let read = format!(
        "if [ \"$(cat {marker} 2>/dev/null)\" = {token} ]; then echo \"$(hostname): sees the marker\"; \
         else echo \"$(hostname): no marker; /mount holds $(ls -A /mount | wc -l) entries\"; exit 3; fi"
    );
    let mut readers = Vec::new();
    for (id, _) in &nodes {
        let spec = spec::job_service(
            spec::job_name(app, release, &format!("mountcheck-{}", &id[..id.len().min(12)])),
            &input(read.clone()),
            Some(id),
        );
        readers.push(spec);
    }
    // Every node reads at once: one round trip, not one per node.
    let runs = readers.into_iter().map(|spec| async move {
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_owned());
        let out = jobs::run(docker, spec, 1, timeout, &mut sink).await;
        out.map(|o| (o, lines))
    });
    let mut seen = Vec::new();
    let mut lines = Vec::new();
    for r in futures_util::future::join_all(runs).await {
        let (o, l) = r?;
        seen.extend(o);
        lines.extend(l);
    }
    let cleanup = spec::job_service(
        spec::job_name(app, release, "mountcheck-clean"),
        &input(format!("rm -f {marker}")),
        Some(&writer),
    );
    let _ = jobs::run(docker, cleanup, 1, timeout, &mut |_| {}).await;
    let missing: Vec<String> = seen
        .iter()
        .filter(|o| !o.succeeded())
        .map(|o| format!("{}: {}", name_of(&o.node), describe(o)))
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
