//! `slipway run APP -- CMD...`: a one-off command in the current release, mount attached.

use anyhow::Context;

use crate::cli::Exit;
use crate::ids::AppName;
use crate::runtime::AnyRuntime;
use crate::state::Home;

/// Arguments of `slipway run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub app: AppName,
    /// The command; its words are joined and run by `bash -c`, as Heroku's `run` does
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Run the command and exit with its status.
pub fn run(home: &Home, args: &RunArgs) -> anyhow::Result<Exit> {
    let app = &args.app;
    let record = home.load_app(app)?;
    let current = record.current.with_context(|| format!("{app} has no release yet; deploy it first"))?;
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    let code = runtime.run_oneoff(&record, current, &args.command.join(" "))?;
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(u8::try_from(code).unwrap_or(1)) })
}
