//! `slipway run APP -- CMD...`: a one-off command in the current release, mount attached.

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::oneoff::OneOff;
use crate::runtime::AnyRuntime;
use crate::state::Home;

/// Arguments of `slipway run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub app: AppName,
    /// The command: one argument is a bash command line (as Heroku's `run` takes it); several
    /// are a program and its arguments, run exactly as given
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Run the command and exit with its status.
pub fn run(home: &Home, args: &RunArgs) -> anyhow::Result<Exit> {
    let app = &args.app;
    let record = home.load_app(app)?;
    let current = record.current.with_context(|| format!("{app} has no release yet; deploy it first"))?;
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    let command =
        OneOff::from_args(args.command.clone()).ok_or_else(|| Refusal::Usage("no command given".into()))?;
    let code = runtime.run_oneoff(&record, current, &command)?;
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(u8::try_from(code).unwrap_or(1)) })
}
