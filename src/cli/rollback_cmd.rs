//! `slipway rollback APP [RELEASE]`: deploy an earlier release's commit again.

use crate::cli::Exit;
use crate::cli::deploy::deploy_and_report;
use crate::deploy::DeployRequest;
use crate::ids::{AppName, ReleaseId};
use crate::plan::Overrides;
use crate::progress::Progress;
use crate::state::{Home, Wait};

/// Arguments of `slipway rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    pub app: AppName,
    /// The release to bring back, e.g. v3 [default: the one that ran before the current one]
    pub release: Option<ReleaseId>,
    /// Fail at once (exit 4) if another deploy of the app is running, instead of waiting
    #[arg(long)]
    pub no_wait: bool,
    /// Allow a release without `web` to replace one that serves web (as `deploy --allow-no-web`)
    #[arg(long)]
    pub allow_no_web: bool,
    /// Print the outcome as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Roll back and report.
pub fn run(home: &Home, args: &RollbackArgs) -> anyhow::Result<Exit> {
    home.load_app(&args.app)?;
    let releases = home.list_releases(&args.app)?;
    let target = crate::rollback::target(&args.app, &releases, args.release)?;
    Progress::new(false).note(&format!(
        "Rolling {} back to {} (commit {}, from {})",
        args.app,
        target.id,
        target.commit.short(),
        target.repo.display()
    ));
    let req = DeployRequest {
        app: args.app.clone(),
        repo: target.repo.clone(),
        rev: target.commit.to_string(),
        wait: if args.no_wait { Wait::No } else { Wait::Yes },
        overrides: Overrides { allow_no_web: args.allow_no_web, ..Overrides::default() },
    };
    let (app, to) = (&args.app, target.id);
    deploy_and_report(home, &req, args.json, || format!("cannot roll {app} back to {to}"))
}
