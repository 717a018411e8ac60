//! `slipway local [DIR]`: the Procfile in the foreground, output prefixed by process type,
//! Ctrl-C stops everything gracefully. When one process exits, all stop (foreman's rule), so a
//! crash is seen at once rather than hidden by a restart.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::Exit;
use crate::config;
use crate::local_dev;
use crate::plan::ScriptSpec;
use crate::supervise::process::{self, ProcessEnv};

/// Arguments of `slipway local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// The app folder (holding the Procfile) [default: .]
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Run project.toml's predeploy script first
    #[arg(long)]
    pub predeploy: bool,
    /// The web process's PORT
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Extra environment for every process
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Grace between SIGTERM and SIGKILL on stop
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub stop_grace: Duration,
}

/// Run the Procfile until Ctrl-C or until a process exits.
pub fn run(args: &LocalArgs) -> anyhow::Result<Exit> {
    let layout = local_dev::prepare(&args.dir)?;
    if layout.committed_mount {
        eprintln!(
            "warning: {} commits a `mount` folder; the persistent filesystem is never in git. \
             Remove it with `git rm -r --cached mount`",
            layout.app_dir.display()
        );
    }
    let procfile = config::load_procfile(&layout.app_dir)?;
    let project = config::load_project_toml(&layout.app_dir)?;
    let mut env = BTreeMap::new();
    for pair in &args.env {
        let (k, v) = pair.split_once('=').with_context(|| format!("expected KEY=VALUE, got {pair:?}"))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    let home = std::env::var_os("HOME").map_or_else(|| layout.app_dir.clone(), PathBuf::from);
    let penv = ProcessEnv { cwd: layout.app_dir.clone(), home, env, run_as: None, launcher: None };
    eprintln!("-----> {} with ../mount = {}", layout.app_dir.display(), layout.mount_dir.display());
    if args.predeploy {
        if let Some(script) = project.as_ref().and_then(|p| p.project.predeploy.clone()) {
            eprintln!("-----> Running predeploy {script}");
            let spec = ScriptSpec { path: script, timeout: crate::plan::DEFAULT_PREDEPLOY_TIMEOUT };
            crate::runtime::local::run_script(&penv, &spec, None, &mut |l| eprintln!("       {l}"))?;
        } else {
            eprintln!("-----> --predeploy: project.toml names no predeploy script");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let names: Vec<(String, String, Option<u16>)> = procfile
        .entries()
        .iter()
        .map(|e| (e.ptype.to_string(), e.command.clone(), e.ptype.is_web().then_some(args.port)))
        .collect();
    let code = rt.block_on(run_all(&penv, &names, args.stop_grace))?;
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(code) })
}

async fn run_all(
    penv: &ProcessEnv,
    procs: &[(String, String, Option<u16>)],
    grace: Duration,
) -> anyhow::Result<u8> {
    let color = std::io::stdout().is_terminal();
    let width = procs.iter().map(|(n, ..)| n.len() + 2).max().unwrap_or(5);
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::unbounded_channel::<(String, i32)>();
    let mut children = Vec::new();
    for (i, (name, command, port)) in procs.iter().enumerate() {
        let label = format!("{name}.1");
        let mut extra = vec![("DYNO", label.clone())];
        if let Some(p) = port {
            extra.push(("PORT", p.to_string()));
        }
        let mut child = tokio::process::Command::from(penv.command(command, &extra, true))
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        let prefix = if color {
            format!("\x1b[{}m{label:<width$}|\x1b[0m ", 31 + (i % 6))
        } else {
            format!("{label:<width$}| ")
        };
        print_line(&prefix, &format!("started with pid {}", child.id().unwrap_or(0)));
        for out in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    print_line(&prefix, &line);
                }
            });
        }
        let pid = child.id().unwrap_or(0);
        let tx = exit_tx.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
                    process::signal_group(pid, rustix::process::Signal::KILL);
                    let _ = tx.send((label, code));
                }
                _ = &mut stop_rx => process::stop_group(pid, grace, &mut child).await,
            }
        });
        children.push((stop_tx, task));
    }
    drop(exit_tx);
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let code = tokio::select! {
        _ = int.recv() => { eprintln!("-----> SIGINT received, stopping all processes"); 0 }
        _ = term.recv() => { eprintln!("-----> SIGTERM received, stopping all processes"); 0 }
        Some((label, code)) = exit_rx.recv() => {
            eprintln!("-----> {label} exited with code {code}, stopping all processes");
            u8::try_from(code).unwrap_or(1)
        }
    };
    for (stop, task) in children {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(code)
}

fn print_line(prefix: &str, line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{prefix}{line}");
    let _ = out.flush();
}

fn boxed(
    r: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> Box<dyn tokio::io::AsyncRead + Unpin + Send> {
    Box::new(r)
}
