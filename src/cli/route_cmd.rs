//! `slipway __route APP`: the app's router process (started by `apps create` and deploys).

use crate::cli::Exit;
use crate::ids::AppName;
use crate::state::Home;

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
