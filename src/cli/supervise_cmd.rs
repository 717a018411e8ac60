//! `slipway __supervise APP RELEASE`: the detached supervisor process (started by deploy).

use crate::cli::Exit;
use crate::ids::{AppName, ReleaseId};
use crate::state::Home;

/// Arguments of the hidden supervisor command.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    pub app: AppName,
    pub release: ReleaseId,
}

/// Run the supervisor until it is told to stop.
pub fn run(home: &Home, args: &SuperviseArgs) -> anyhow::Result<Exit> {
    // The caller (deploy's attach step, or LocalRuntime::start_of) has attached the mount.
    crate::supervise::run(home, &args.app, args.release)?;
    Ok(Exit::Ok)
}
