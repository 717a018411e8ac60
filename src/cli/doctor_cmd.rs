//! `slipway doctor`: the report of `crate::doctor`, as lines on stdout or as JSON.

use std::io::Write;

use crate::cli::Exit;
use crate::doctor::{self, Level};
use crate::state::Home;

/// Arguments of `slipway doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Exits 1 when something stops deploys (a `fail`); warnings alone exit 0.
pub fn run(home: &Home, args: &DoctorArgs) -> anyhow::Result<Exit> {
    let stack = crate::runtime::docker::runtime::default_stack();
    let checks = doctor::checks(&doctor::probe(home.root(), &stack));
    let healthy = doctor::healthy(&checks);
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "ok": healthy, "checks": checks });
        writeln!(out, "{doc:#}")?;
    } else {
        for c in &checks {
            let level = match c.level {
                Level::Ok => "ok",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            writeln!(out, "{level:<5} {:<12} {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "{:<18} fix: {fix}", "")?;
            }
        }
        let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
        if healthy {
            writeln!(out, "\nslipway can deploy on this machine")?;
        } else {
            writeln!(out, "\n{fails} problem(s) stop deploys on this machine; see the fixes above")?;
        }
    }
    Ok(if healthy { Exit::Ok } else { Exit::Code(1) })
}
