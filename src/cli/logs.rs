//! `slipway logs APP [TYPE[.N]] [-n N] [-f]`.

use crate::cli::Exit;
use crate::ids::AppName;
use crate::runtime::AnyRuntime;
use crate::state::Home;

/// Arguments of `slipway logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub app: AppName,
    /// A process type (`worker`) or one instance (`worker.2`); all processes if omitted
    pub process: Option<String>,
    /// How many lines to show
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
    /// Keep printing new lines as they arrive
    #[arg(short, long)]
    pub follow: bool,
}

/// Print logs, merged across instances in time order.
pub fn run(home: &Home, args: &LogsArgs) -> anyhow::Result<Exit> {
    let record = home.load_app(&args.app)?;
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    runtime.logs(
        &record,
        args.process.as_deref(),
        args.lines,
        args.follow,
        &mut crate::runtime::StdoutLines,
    )?;
    Ok(Exit::Ok)
}
