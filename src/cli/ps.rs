//! `slipway ps`: show, scale, restart, stop and start an app's processes.

use anyhow::{Context, bail};

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::runtime::AnyRuntime;
use crate::state::{AppRecord, Home, Wait};
use crate::supervise::status::now_ms;

/// Arguments of `slipway ps`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PsArgs {
    #[command(subcommand)]
    pub command: Option<PsCommand>,
    /// The app whose processes to show
    #[arg(required = true)]
    pub app: Option<AppName>,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `slipway ps ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PsCommand {
    /// Set instance counts, e.g. `slipway ps scale demo worker=2 web=1`
    Scale {
        app: AppName,
        #[arg(required = true, value_name = "TYPE=N")]
        counts: Vec<String>,
    },
    /// Restart all processes, or those of one type
    Restart { app: AppName, ptype: Option<ProcessType> },
    /// Stop every process; the current release stays current
    Stop { app: AppName },
    /// Start the current release's processes again
    Start { app: AppName },
}

/// Run `ps`.
pub fn run(home: &Home, args: PsArgs) -> anyhow::Result<Exit> {
    match args.command {
        Some(PsCommand::Scale { app, counts }) => scale(home, &app, &counts),
        Some(PsCommand::Restart { app, ptype: Some(t) }) => {
            let (record, current) = current(home, &app)?;
            check_types(home, &app, current, std::slice::from_ref(&t))?;
            AnyRuntime::for_kind(home, record.runtime)?.restart(&record, current, Some(&t))?;
            eprintln!("-----> Restarting {t} processes of {app}");
            Ok(Exit::Ok)
        }
        Some(PsCommand::Restart { app, ptype: None }) => {
            restart_all(home, &app)?;
            Ok(Exit::Ok)
        }
        Some(PsCommand::Stop { app }) => {
            let _lock = home.lock_app(&app, Wait::Yes, || eprintln!("waiting for a deploy of {app}"))?;
            let mut record = home.load_app(&app)?;
            record.stopped = true;
            home.save_app(&record)?;
            if let Some(current) = record.current {
                AnyRuntime::for_kind(home, record.runtime)?.stop(&record, current)?;
            }
            eprintln!("-----> Stopped {app}; `slipway ps start {app}` starts it again");
            Ok(Exit::Ok)
        }
        Some(PsCommand::Start { app }) => {
            let _lock = home.lock_app(&app, Wait::Yes, || eprintln!("waiting for a deploy of {app}"))?;
            let mut record = home.load_app(&app)?;
            let current =
                record.current.with_context(|| format!("{app} has no release yet; deploy it first"))?;
            record.stopped = false;
            home.save_app(&record)?;
            AnyRuntime::for_kind(home, record.runtime)?.start_release(&record, current)?;
            refresh_route(home, &mut record)?;
            eprintln!("-----> Started {app} {current}");
            Ok(Exit::Ok)
        }
        None => {
            let app = args.app.context("missing APP")?;
            show(home, &app, args.json)
        }
    }
}

/// Restart every process of `app` so that settings such as a newly enabled mount apply now.
pub fn restart_all(home: &Home, app: &AppName) -> anyhow::Result<()> {
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app}"))?;
    let mut record = home.load_app(app)?;
    let Some(current) = record.current.filter(|_| !record.stopped) else {
        eprintln!("-----> {app} is not running; nothing to restart");
        return Ok(());
    };
    eprintln!("-----> Restarting {app} {current}");
    AnyRuntime::for_kind(home, record.runtime)?.restart(&record, current, None)?;
    refresh_route(home, &mut record)
}

/// Points the app's router at web.1's port again in case a start had to give web another one
/// (its port was taken while it was down). The caller holds the app's lock.
pub(super) fn refresh_route(home: &Home, record: &mut AppRecord) -> anyhow::Result<()> {
    let Some(current) = record.current else { return Ok(()) };
    let report = AnyRuntime::for_kind(home, record.runtime)?.processes(record, current)?;
    let port = report.instances.iter().find(|i| i.ptype.is_web() && i.index == 1).and_then(|i| i.port);
    if port.is_some() && port != record.web_port {
        record.web_port = port;
        home.save_app(record)?;
    }
    Ok(())
}

fn scale(home: &Home, app: &AppName, counts: &[String]) -> anyhow::Result<Exit> {
    let parsed = parse_counts(counts).map_err(Refusal::Usage)?;
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app}"))?;
    let mut record: AppRecord = home.load_app(app)?;
    if let Some(current) = record.current {
        let types: Vec<ProcessType> = parsed.iter().map(|(t, _)| t.clone()).collect();
        check_types(home, app, current, &types)?;
    }
    for (t, n) in &parsed {
        record.scale.insert(t.clone(), *n);
    }
    home.save_app(&record)?;
    if let Some(current) = record.current.filter(|_| !record.stopped) {
        AnyRuntime::for_kind(home, record.runtime)?.apply_scale(&record, current)?;
    }
    let shown: Vec<String> = parsed.iter().map(|(t, n)| format!("{t}={n}")).collect();
    eprintln!("-----> Scaled {app}: {}", shown.join(" "));
    Ok(Exit::Ok)
}

/// Refuse process types the release's Procfile does not define.
fn check_types(home: &Home, app: &AppName, release: ReleaseId, types: &[ProcessType]) -> anyhow::Result<()> {
    let known = home.load_release(app, release)?.process_types;
    if let Some(t) = types.iter().find(|t| !known.contains(t)) {
        let known: Vec<String> = known.iter().map(ToString::to_string).collect();
        return Err(Refusal::Usage(format!(
            "{app} has no process type {t}; its Procfile defines {}",
            known.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Parse `TYPE=N` arguments.
fn parse_counts(counts: &[String]) -> Result<Vec<(ProcessType, u32)>, String> {
    counts
        .iter()
        .map(|c| {
            let (t, n) = c.split_once('=').ok_or_else(|| format!("expected TYPE=N, got {c:?}"))?;
            let t: ProcessType = t.parse().map_err(|e| format!("{e}"))?;
            let n: u32 = n.parse().map_err(|_| format!("{c:?}: the count must be a whole number"))?;
            if n > 100 {
                return Err(format!("{c:?}: at most 100 instances per type"));
            }
            Ok((t, n))
        })
        .collect()
}

fn current(home: &Home, app: &AppName) -> anyhow::Result<(AppRecord, ReleaseId)> {
    let record = home.load_app(app)?;
    let current = record.current.with_context(|| format!("{app} has no release yet; deploy it first"))?;
    Ok((record, current))
}

#[derive(serde::Serialize)]
struct PsJson<'a> {
    app: &'a AppName,
    release: Option<ReleaseId>,
    running: bool,
    instances: Vec<InstanceJson>,
}

#[derive(serde::Serialize)]
struct InstanceJson {
    name: String,
    #[serde(flatten)]
    status: crate::supervise::status::InstanceStatus,
    uptime_secs: Option<u64>,
}

fn show(home: &Home, app: &AppName, json: bool) -> anyhow::Result<Exit> {
    let record = home.load_app(app)?;
    let Some(current) = record.current else {
        if json {
            let out = PsJson { app, release: None, running: false, instances: Vec::new() };
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{app} has no release yet; deploy it with `slipway deploy {app}`");
        }
        return Ok(Exit::Ok);
    };
    let report = AnyRuntime::for_kind(home, record.runtime)?.processes(&record, current)?;
    let running = report.running;
    let now = now_ms();
    let instances: Vec<InstanceJson> = report
        .instances
        .into_iter()
        .map(|i| InstanceJson {
            name: i.name(),
            uptime_secs: i.started_at_ms.filter(|_| i.pid.is_some()).map(|t| now.saturating_sub(t) / 1000),
            status: i,
        })
        .collect();
    if json {
        let out = PsJson { app, release: Some(current), running, instances };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Exit::Ok);
    }
    if !running {
        let why = if record.stopped { "stopped (slipway ps start to start)" } else { "down" };
        println!("=== {app} {current}: {why}");
        return Ok(Exit::Ok);
    }
    println!("=== {app} {current}");
    println!("{:<14} {:<9} {:>8} {:>6} {:>9} {:>8}", "PROCESS", "STATE", "PID", "PORT", "UPTIME", "RESTARTS");
    for i in &instances {
        let state = serde_json::to_value(i.status.state)?.as_str().unwrap_or("").to_owned();
        let pid = i.status.pid.map_or("-".into(), |p| p.to_string());
        let port = i.status.port.map_or("-".into(), |p| p.to_string());
        let up = i.uptime_secs.map_or("-".into(), format_uptime);
        println!("{:<14} {:<9} {:>8} {:>6} {:>9} {:>8}", i.name, state, pid, port, up, i.status.restarts);
    }
    if instances.is_empty() {
        bail!("the supervisor of {app} {current} reports no processes yet; retry in a moment");
    }
    Ok(Exit::Ok)
}

/// Uptime as `ps` shows it: `42s`, `5m07s`, `3h02m`, `2d04h`.
fn format_uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uptimes_read_naturally() {
        let got: Vec<String> = [0, 42, 307, 10_920, 187_200].into_iter().map(super::format_uptime).collect();
        assert_eq!(got, ["0s", "42s", "5m07s", "3h02m", "2d04h"]);
    }

    use super::*;

    #[test]
    fn scale_arguments_are_checked() {
        let ok = parse_counts(&["worker=2".into(), "web=0".into()]).unwrap();
        assert_eq!(ok[0].1, 2);
        assert_eq!(ok[1].0.as_str(), "web");
        for bad in ["worker", "worker=-1", "wo rker=1", "worker=x", "worker=101"] {
            assert!(parse_counts(&[bad.into()]).is_err(), "{bad} accepted");
        }
    }
}
