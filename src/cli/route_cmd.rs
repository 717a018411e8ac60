//! `slipway __route APP`: the app's router process (started by `apps create` and deploys), and
//! the router's and git push's settings of `apps set`.

use std::time::Duration;

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::state::{Home, Wait};

/// Arguments of the hidden router command.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    pub app: AppName,
}

/// Serve the app's address until SIGTERM.
pub fn run(home: &Home, args: &RouteArgs) -> anyhow::Result<Exit> {
    crate::router::run(home, &args.app)?;
    Ok(Exit::Ok)
}

/// `apps set` flags for git push deploys and the router's patience with request bodies.
#[derive(Debug, Default, clap::Args)]
pub struct RoutingArgs {
    /// The branch whose `git push` deploys [default: main]; pushes of other branches are stored only
    #[arg(long, value_name = "BRANCH")]
    pub deploy_branch: Option<String>,
    /// How long the router waits for more of a request body before answering 408, and how long
    /// a body may take beyond what its rate earns [default: 20s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub body_timeout: Option<Duration>,
    /// The slowest rate, in bytes per second, at which a request body may arrive once
    /// --body-timeout is spent; 0: no minimum [default: 500]
    #[arg(long, value_name = "BYTES")]
    pub body_min_rate: Option<u64>,
}

impl RoutingArgs {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        self.deploy_branch.is_none() && self.body_timeout.is_none() && self.body_min_rate.is_none()
    }
}

/// Records the given settings; the router follows the record at its next request.
pub fn set(home: &Home, app: &AppName, args: &RoutingArgs) -> anyhow::Result<()> {
    if let Some(b) = &args.deploy_branch {
        crate::git_remote::check_branch(b).map_err(|e| Refusal::Usage(e.to_string()))?;
    }
    if args.body_timeout.is_some_and(|t| t < Duration::from_millis(100)) {
        return Err(Refusal::Usage("--body-timeout must be at least 100ms".into()).into());
    }
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app} to finish"))?;
    let mut record = home.load_app(app)?;
    if let Some(b) = &args.deploy_branch {
        record.deploy_branch = (b != "main").then(|| b.clone());
    }
    if let Some(t) = args.body_timeout {
        record.body_limits.timeout_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
    }
    if let Some(r) = args.body_min_rate {
        record.body_limits.min_rate = r;
    }
    home.save_app(&record)?;
    if args.deploy_branch.is_some() {
        // The bare repository's HEAD names the deploy branch: clones check it out, and git
        // refuses to delete it, as the hook does.
        let head = format!("refs/heads/{}", record.deploy_branch());
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(home.git_repo(app))
            .args(["symbolic-ref", "HEAD", &head])
            .output()
            .context("cannot run git; install git (apt-get install git)")?;
        if !out.status.success() {
            anyhow::bail!(
                "cannot point the app repository's HEAD at {head}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    eprintln!(
        "-----> {app}: pushes of {} deploy; request bodies get {} between reads and must keep {} B/s",
        record.deploy_branch(),
        humantime::format_duration(Duration::from_millis(record.body_limits.timeout_ms)),
        record.body_limits.min_rate
    );
    Ok(())
}
