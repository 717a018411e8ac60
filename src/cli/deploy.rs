//! `slipway deploy APP`: deploy a commit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::Exit;
use crate::deploy::{DeployRequest, deploy};
use crate::ids::AppName;
use crate::plan::Overrides;
use crate::progress::Progress;
use crate::state::{Home, Wait};

/// Arguments of `slipway deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    pub app: AppName,
    /// The app's git repository [default: the current directory]
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// The revision to deploy: a branch, tag or commit
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Fail at once (exit 4) if another deploy of the app is running, instead of waiting
    #[arg(long)]
    pub no_wait: bool,
    /// Time limit of the predeploy script [default: project.toml's, else 10m]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub predeploy_timeout: Option<Duration>,
    /// How long the new web process has to answer HTTP [default: 60s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub web_timeout: Option<Duration>,
    /// A path web must answer with 2xx or 3xx before the switch, such as /up [default:
    /// project.toml's [io.slipway] healthcheck, else GET / answering below 500 is enough]
    #[arg(long, value_name = "PATH")]
    pub healthcheck: Option<crate::health::HealthPath>,
    /// How long the new release must stay healthy, with no process crashing, before the
    /// switch, like Dokku's `CHECKS_WAIT` [default: project.toml's [io.slipway] settle, else 1s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub settle: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL when stopping processes [default: 30s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub stop_grace: Option<Duration>,
    /// An extra buildpack directory (buildpack.toml, bin/) for an app without a Dockerfile;
    /// repeat it to run several, in order, before slipway's Procfile buildpack. Replaces
    /// project.toml's [[io.buildpacks.group]]
    #[arg(long = "buildpack", value_name = "DIR")]
    pub buildpacks: Vec<PathBuf>,
    /// Deploy a Procfile without web even though the running release serves web (the app will
    /// answer 503); for git push, set `allow-no-web = true` under `[io.slipway]` in project.toml
    #[arg(long)]
    pub allow_no_web: bool,
    /// Print the outcome as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Deploy and report.
pub fn run(home: &Home, args: &DeployArgs) -> anyhow::Result<Exit> {
    // Absolute now: the build runs later, and must not depend on where it was asked from.
    let buildpacks = args
        .buildpacks
        .iter()
        .map(|d| {
            std::path::absolute(d).with_context(|| format!("cannot resolve --buildpack {}", d.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let req = DeployRequest {
        app: args.app.clone(),
        repo: args.repo.clone(),
        rev: args.rev.clone(),
        wait: if args.no_wait { Wait::No } else { Wait::Yes },
        overrides: Overrides {
            predeploy_timeout: args.predeploy_timeout,
            web_timeout: args.web_timeout,
            stop_grace: args.stop_grace,
            healthcheck: args.healthcheck.clone(),
            settle: args.settle,
            buildpacks,
            allow_no_web: args.allow_no_web,
        },
    };
    let app = &args.app;
    deploy_and_report(home, &req, args.json, || format!("cannot deploy {app}"))
}

/// Runs a deploy and reports it: with `json` the outcome on stdout, else the release's web
/// address and the app's stable one on stderr. `deploy`, `rollback` and pushes all end here.
pub fn deploy_and_report(
    home: &Home,
    req: &DeployRequest,
    json: bool,
    failed: impl FnOnce() -> String,
) -> anyhow::Result<Exit> {
    let mut progress = Progress::new(false);
    let outcome = deploy(home, req, &mut progress).with_context(failed)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(Exit::Ok);
    }
    if let Some(port) = outcome.web_port {
        progress.detail(&format!("web: http://127.0.0.1:{port}/ (this release)"));
    }
    if let Some(url) = &outcome.url {
        progress.detail(&format!("app: {url} (stays across deploys)"));
    }
    Ok(Exit::Ok)
}
