//! `slipway cluster set|show`: the registry and swarm manager that `--runtime swarm` apps use,
//! and `mount enable --mount-path|--nfs` for those apps.

use clap::{Args, Subcommand};

use super::Exit;
use super::exit::Refusal;
use crate::ids::AppName;
use crate::runtime::swarm::cluster::{self, ClusterSettings};
use crate::runtime::swarm::shared;
use crate::state::{Home, Wait};

/// `slipway cluster ...`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Set the registry every node pulls from and the swarm manager's engine
    Set {
        /// The registry, HOST:PORT; it must allow deletes (old release images are removed)
        #[arg(long, value_name = "HOST:PORT")]
        registry: String,
        /// The manager's engine, `tcp://HOST:PORT` or `unix:///path` [default: the local engine]
        #[arg(long, value_name = "URL")]
        docker_host: Option<String>,
    },
    /// Print the cluster settings
    Show {
        /// Print JSON to stdout
        #[arg(long)]
        json: bool,
    },
}

/// `mount enable` flags for swarm apps: where every node finds the app's mount.
#[derive(Debug, Args)]
pub struct SharedMountArgs {
    /// Swarm apps: an NFS export every node mounts, `ADDR:/exported/path`
    #[arg(long, value_name = "ADDR:PATH", conflicts_with = "mount_path")]
    nfs: Option<String>,
    /// Swarm apps: a directory every node has at this same path (a shared filesystem)
    #[arg(long, value_name = "DIR")]
    mount_path: Option<String>,
}

impl SharedMountArgs {
    /// The flags make sense only for swarm apps.
    pub(crate) fn refuse_outside_swarm(&self, app: &AppName) -> anyhow::Result<()> {
        if self.nfs.is_some() || self.mount_path.is_some() {
            return Err(Refusal::Usage(format!(
                "--nfs and --mount-path are for swarm apps; {app} keeps its mount on this machine"
            ))
            .into());
        }
        Ok(())
    }
}

/// Runs `slipway cluster`.
pub(crate) fn run(home: &Home, args: ClusterArgs) -> anyhow::Result<Exit> {
    match args.command {
        ClusterCommand::Set { registry, docker_host } => {
            let settings = ClusterSettings { registry, docker_host };
            cluster::save(home, &settings).map_err(|e| match e {
                cluster::ClusterError::BadRegistry { .. } | cluster::ClusterError::BadDockerHost { .. } => {
                    anyhow::Error::new(Refusal::Usage(e.to_string()))
                }
                other => other.into(),
            })?;
            eprintln!(
                "-----> swarm apps push to {} and run on {}",
                settings.registry,
                settings.docker_host.as_deref().unwrap_or("the local engine")
            );
            Ok(Exit::Ok)
        }
        ClusterCommand::Show { json } => {
            let settings = cluster::load(home)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&settings)?);
            } else {
                println!("registry     {}", settings.registry);
                println!("docker-host  {}", settings.docker_host.as_deref().unwrap_or("(the local engine)"));
            }
            Ok(Exit::Ok)
        }
    }
}

/// `mount enable` for a swarm app: record where the nodes reach the mount. The next deploy
/// proves that it is shared before it runs anything.
pub(crate) fn enable_shared(
    home: &Home,
    app: &AppName,
    size: Option<u64>,
    args: &SharedMountArgs,
) -> anyhow::Result<Exit> {
    let shared = match (&args.nfs, &args.mount_path) {
        (Some(n), None) => shared::parse_nfs(n),
        (None, Some(p)) => shared::parse_path(p),
        _ => {
            return Err(Refusal::Usage(format!(
                "{app} runs on a swarm: say where every node finds its mount, with \
                 `--mount-path DIR` (a directory every node has) or `--nfs ADDR:/export`"
            ))
            .into());
        }
    }
    .map_err(|e| Refusal::Usage(e.to_string()))?;
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for the lock of app {app}..."))?;
    let mut settings = shared::load(home, app)?;
    settings.shared = Some(shared.clone());
    shared::save(home, app, &settings)?;
    let limit = size.unwrap_or(crate::mount::DEFAULT_LIMIT);
    let record = crate::mount::MountSettings {
        enabled: true,
        limit_bytes: limit,
        mode: crate::mount::QuotaMode::Soft,
    };
    crate::mount::save_settings(&home.app(app), &record)?;
    eprintln!(
        "enabled the persistent filesystem of swarm app {app}: {shared}, at /mount and ../mount in every task"
    );
    eprintln!("       each deploy first proves that every node sees the same files");
    Ok(Exit::Ok)
}
