//! `slipway mount`: enable, disable, status and file operations on an app's persistent
//! filesystem. Progress goes to stderr; listings, status and `--json` to stdout.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::mount::{
    self, DisableOutcome, EnableOutcome, MountError, MountFs, Resized, StopReason, format_size,
};
use crate::runtime::AnyRuntime;
use crate::state::{AppRecord, Home, Wait};

/// `slipway mount ...`
#[derive(Debug, clap::Subcommand)]
pub enum MountCommand {
    /// Enable the app's persistent filesystem, or change the size limit of an enabled one
    Enable {
        app: AppName,
        /// Size limit: binary units, e.g. 25G (the default), 512M, 1.5G
        #[arg(long, value_name = "SIZE", value_parser = mount::parse_size)]
        size: Option<u64>,
        /// Restart the app's processes now, so that they see the mount
        #[arg(long)]
        restart: bool,
        #[command(flatten)]
        swarm: super::cluster::SharedMountArgs,
    },
    /// Delete every file irrecoverably and disable the persistent filesystem
    Disable {
        app: AppName,
        /// Confirm by repeating the app's name (asked for on a terminal otherwise)
        #[arg(long, value_name = "APP")]
        confirm: Option<String>,
    },
    /// Show whether it is enabled, its limit and its usage
    Status {
        app: AppName,
        /// Print JSON to stdout
        #[arg(long)]
        json: bool,
    },
    /// List a directory (default: the root) with sizes and modification times
    Ls {
        app: AppName,
        path: Option<String>,
        /// Print JSON to stdout
        #[arg(long)]
        json: bool,
    },
    /// Copy local files or directories in: `put APP SRC` (to the root) or `put APP SRC... DEST`;
    /// SRC `-` reads stdin
    Put {
        app: AppName,
        #[arg(required = true, num_args = 1.., value_name = "SRC... [DEST]")]
        paths: Vec<String>,
    },
    /// Copy a file or directory out, to DEST or (a file) to stdout
    Get { app: AppName, path: String, dest: Option<PathBuf> },
    /// Remove a file, a symlink or an empty directory (-r: a whole tree)
    Rm {
        app: AppName,
        path: String,
        /// Remove a directory and everything in it
        #[arg(short, long)]
        recursive: bool,
    },
    /// Create a directory and its parents
    Mkdir { app: AppName, path: String },
    /// Rename or move a file or directory; refuses to replace an existing TO
    Mv { app: AppName, from: String, to: String },
    /// Write the persistent filesystem (or --path in it) as a tar archive to FILE, or to stdout
    /// without FILE: gzip-compressed unless FILE ends in .tar. For backups and moves
    Export {
        app: AppName,
        file: Option<PathBuf>,
        /// A directory or file inside the mount to export instead of the whole of it
        #[arg(long, default_value = ".")]
        path: String,
    },
    /// Read a tar or tar.gz archive (FILE, or `-` for stdin) into DEST (default: the root).
    /// Files of the same names are replaced; nothing changes unless the whole archive is good
    Import {
        app: AppName,
        file: PathBuf,
        dest: Option<String>,
        /// Print what was imported as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// Run one `mount` subcommand.
pub fn run(home: &Home, cmd: MountCommand) -> anyhow::Result<Exit> {
    match cmd {
        MountCommand::Enable { app, size, restart, swarm } => {
            if home.load_app(&app)?.runtime == crate::state::RuntimeKind::Swarm {
                return super::cluster::enable_shared(home, &app, size, &swarm);
            }
            swarm.refuse_outside_swarm(&app)?;
            enable(home, &app, size, restart)
        }
        MountCommand::Disable { app, confirm } => disable(home, &app, confirm.as_deref()),
        MountCommand::Status { app, json } => status(home, &app, json),
        MountCommand::Ls { app, path, json } => ls(home, &app, path.as_deref().unwrap_or("."), json),
        MountCommand::Put { app, paths } => put(home, &app, &paths),
        MountCommand::Get { app, path, dest } => get(home, &app, &path, dest.as_deref()),
        MountCommand::Rm { app, path, recursive } => {
            open(home, &app)?.rm(&path, recursive).map_err(refusal)?;
            eprintln!("removed {path}");
            Ok(Exit::Ok)
        }
        MountCommand::Mkdir { app, path } => {
            open(home, &app)?.mkdir(&path).map_err(refusal)?;
            Ok(Exit::Ok)
        }
        MountCommand::Mv { app, from, to } => {
            open(home, &app)?.rename(&from, &to).map_err(refusal)?;
            eprintln!("renamed {from} to {to}");
            Ok(Exit::Ok)
        }
        MountCommand::Export { app, file, path } => {
            super::mount_archive::export(&open(home, &app)?, &app, &path, file.as_deref())
        }
        MountCommand::Import { app, file, dest, json } => super::mount_archive::import(
            &open(home, &app)?,
            &app,
            &file,
            dest.as_deref().unwrap_or("."),
            json,
        ),
    }
}

/// Bad paths and archives are bad input (exit 2); everything else keeps its own message.
pub(super) fn refusal(e: MountError) -> anyhow::Error {
    match e {
        MountError::Escape { .. }
        | MountError::InvalidPath { .. }
        | MountError::UnsafeArchive { .. }
        | MountError::BadArchive { .. }
        | MountError::ImportConflict { .. }
        | MountError::RootRename
        | MountError::IntoItself { .. }
        | MountError::Exists { .. } => Refusal::Usage(e.to_string()).into(),
        e => e.into(),
    }
}

fn open(home: &Home, app: &AppName) -> anyhow::Result<MountFs> {
    if home.load_app(app)?.runtime == crate::state::RuntimeKind::Swarm {
        return Err(Refusal::Usage(format!(
            "the mount of swarm app {app} is on the cluster's shared filesystem, not on this machine: \
             reach it with `slipway run {app} -- ls /mount` (or on the shared filesystem itself)"
        ))
        .into());
    }
    Ok(MountFs::open(&home.app(app))?)
}

fn enable(home: &Home, app: &AppName, size: Option<u64>, restart: bool) -> anyhow::Result<Exit> {
    let record = home.load_app(app)?;
    let paths = home.app(app);
    let lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for the lock of app {app}..."))?;
    let current = mount::settings(&paths)?.filter(|s| s.enabled);
    if let Some(current) = current {
        match size.filter(|s| *s != current.limit_bytes) {
            Some(new) => {
                resize(home, &record, new, restart).with_context(|| {
                    format!("cannot change the limit of app {app}'s persistent filesystem")
                })?;
                eprintln!(
                    "persistent filesystem of app {app}: limit changed from {} to {}",
                    format_size(current.limit_bytes),
                    format_size(new)
                );
            }
            None => eprintln!("persistent filesystem of app {app} is already enabled"),
        }
        return Ok(Exit::Ok);
    }
    let limit = size.unwrap_or(mount::DEFAULT_LIMIT);
    let outcome = mount::enable(&paths, limit, record.run_as.as_ref())
        .with_context(|| format!("cannot enable the persistent filesystem of app {app}"))?;
    if let EnableOutcome::Enabled { mode } = outcome {
        eprintln!(
            "enabled the persistent filesystem of app {app}: {} ({mode} limit of {})",
            paths.mount_dir().display(),
            format_size(limit)
        );
    }
    drop(lock);
    if restart {
        eprintln!("restarting the processes of app {app}...");
        crate::cli::ps::restart_all(home, app)?;
    } else {
        eprintln!(
            "processes and the workspace see it at ../mount when they next start; \
             `slipway mount enable {app} --restart` applies it now"
        );
    }
    Ok(Exit::Ok)
}

/// Change the limit of an enabled mount. A resize that needs the filesystem unmounted (a
/// shrink, or a grow the kernel will not do online) is refused unless `restart` allows
/// stopping the app's processes for it: unmounting under a running app would send its writes
/// nowhere. The caller holds the app's lock.
fn resize(home: &Home, record: &AppRecord, new: u64, restart: bool) -> anyhow::Result<()> {
    let app = &record.name;
    let paths = home.app(app);
    let reason = match mount::set_limit(&paths, new, false)? {
        Resized::Done => return Ok(()),
        Resized::NeedsStop(reason) => reason,
    };
    let why = match reason {
        StopReason::Shrink => "shrinking a hard-limited filesystem needs it unmounted",
        StopReason::NoOnlineGrow => {
            "this kernel refuses to grow a mounted filesystem (slipway lacks CAP_SYS_RESOURCE), \
             so growing needs it unmounted"
        }
    };
    if !restart {
        return Err(Refusal::Usage(format!(
            "{why}, which stops the app's processes for the resize; nothing changed. Run `slipway mount \
             enable {app} --size {} --restart` to stop them, resize, and start them again",
            mount::size_arg_up(new)
        ))
        .into());
    }
    let running = record.current.filter(|_| !record.stopped);
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    if let Some(release) = running {
        eprintln!("-----> Stopping {app} {release} to resize its persistent filesystem");
        runtime.stop(record, release)?;
    }
    let resized = mount::set_limit(&paths, new, true);
    // Started again whether or not the resize worked: a failed one changed nothing.
    if let Some(release) = running {
        eprintln!("-----> Starting {app} {release}");
        runtime.start_release(record, release)?;
        let mut record = home.load_app(app)?;
        super::ps::refresh_route(home, &mut record)?;
    }
    resized.map(drop).map_err(Into::into)
}

fn disable(home: &Home, app: &AppName, confirm: Option<&str>) -> anyhow::Result<Exit> {
    home.load_app(app)?;
    let paths = home.app(app);
    if mount::settings(&paths)?.as_ref().is_none_or(|s| !s.enabled) {
        mount::disable(&paths)?; // removes leftovers of an interrupted disable
        eprintln!("persistent filesystem of app {app} is already disabled");
        return Ok(Exit::Ok);
    }
    let doomed = mount::disable_preview(&paths)?;
    eprintln!(
        "disabling deletes every file in the persistent filesystem of app {app}, irrecoverably: \
         {} files, {} directories, {}",
        doomed.files,
        doomed.dirs,
        format_size(doomed.bytes)
    );
    let confirmed = match confirm {
        Some(given) => given == app.as_str(),
        None if io::stdin().is_terminal() => {
            eprint!("type the app's name ({app}) to confirm: ");
            let mut line = String::new();
            io::stdin().lock().read_line(&mut line)?;
            line.trim() == app.as_str()
        }
        None => false,
    };
    if !confirmed {
        return Err(Refusal::NotConfirmed(format!(
            "not confirmed, nothing was deleted; to delete these files run `slipway mount disable {app} --confirm {app}` \
             (keep a copy first with `slipway mount export {app} backup.tar.gz`)"
        ))
        .into());
    }
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for the lock of app {app}..."))?;
    match mount::disable(&paths)? {
        DisableOutcome::Disabled(gone) => eprintln!(
            "deleted {} files ({}); the persistent filesystem of app {app} is disabled. \
             Running processes lose it when they next restart",
            gone.files,
            format_size(gone.bytes)
        ),
        DisableOutcome::AlreadyDisabled => {
            eprintln!("persistent filesystem of app {app} is already disabled");
        }
    }
    Ok(Exit::Ok)
}

fn status(home: &Home, app: &AppName, json: bool) -> anyhow::Result<Exit> {
    home.load_app(app)?;
    let s = mount::status(&home.app(app))?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    let Some(mode) = s.mode.filter(|_| s.enabled) else {
        writeln!(out, "persistent filesystem of app {app}: disabled")?;
        writeln!(out, "  enable it with `slipway mount enable {app}`")?;
        return Ok(Exit::Ok);
    };
    writeln!(out, "persistent filesystem of app {app}: enabled ({mode} limit)")?;
    if let Some(path) = &s.path {
        writeln!(out, "  path   {}", path.display())?;
    }
    writeln!(
        out,
        "  used   {} of {} ({:.1}%)",
        format_size(s.used_bytes),
        format_size(s.capacity_bytes),
        s.percent
    )?;
    if mode == mount::QuotaMode::Hard {
        writeln!(
            out,
            "  limit  {} (ext4 keeps {} of it for its journal and tables)",
            format_size(s.limit_bytes),
            format_size(s.limit_bytes.saturating_sub(s.capacity_bytes))
        )?;
    }
    writeln!(out, "  files  {} in {} directories", s.files, s.dirs)?;
    if s.over_limit {
        let what = if mode == mount::QuotaMode::Hard { "FULL" } else { "OVER LIMIT" };
        writeln!(
            out,
            "  {what}: delete files, or raise the limit with `slipway mount enable {app} --size BIGGER`"
        )?;
    }
    Ok(Exit::Ok)
}

fn ls(home: &Home, app: &AppName, path: &str, json: bool) -> anyhow::Result<Exit> {
    let entries = open(home, app)?.ls(path).map_err(refusal)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    for e in entries {
        let when = u64::try_from(e.modified)
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
            .map_or_else(|_| "-".to_owned(), |t| humantime::format_rfc3339_seconds(t).to_string());
        let (flag, suffix) = match e.kind {
            mount::EntryKind::Dir => ('d', "/"),
            mount::EntryKind::Symlink => ('l', "@"),
            mount::EntryKind::File => ('-', ""),
            mount::EntryKind::Other => ('?', ""),
        };
        writeln!(out, "{flag} {:>10}  {when}  {}{suffix}", format_size(e.size), e.name)?;
    }
    Ok(Exit::Ok)
}

fn put(home: &Home, app: &AppName, paths: &[String]) -> anyhow::Result<Exit> {
    let (srcs, dest) = match paths {
        [src] => (std::slice::from_ref(src), None),
        [srcs @ .., dest] => (srcs, Some(dest.as_str())),
        [] => return Err(Refusal::Usage("give at least one SRC".into()).into()),
    };
    let fs = open(home, app)?;
    let into_dir = match dest {
        None => Some(String::new()),
        Some(d) if srcs.len() > 1 || d.ends_with('/') || fs.is_dir(d).map_err(refusal)? => {
            Some(d.trim_end_matches('/').to_owned())
        }
        Some(_) => None,
    };
    for src in srcs {
        let target = match (&into_dir, dest) {
            (Some(dir), _) => {
                let name = Path::new(src).file_name().ok_or_else(|| {
                    Refusal::Usage(format!("{src:?} has no file name; give a DEST (`put {app} {src} NAME`)"))
                })?;
                let name = name.to_string_lossy();
                if dir.is_empty() { name.into_owned() } else { format!("{dir}/{name}") }
            }
            (None, Some(d)) => d.to_owned(),
            (None, None) => unreachable!("no DEST means the root"),
        };
        if src == "-" {
            let n = fs.put_file(&mut io::stdin().lock(), &target, None).map_err(refusal)?;
            eprintln!("put stdin -> {target} ({})", format_size(n));
            continue;
        }
        let report = fs.put_local(Path::new(src), &target).map_err(refusal)?;
        eprintln!("put {src} -> {target} ({} files, {})", report.files, format_size(report.bytes));
        for s in report.skipped {
            eprintln!("  skipped {} (symlinks and special files are not copied)", s.display());
        }
    }
    Ok(Exit::Ok)
}

fn get(home: &Home, app: &AppName, path: &str, dest: Option<&Path>) -> anyhow::Result<Exit> {
    let fs = open(home, app)?;
    let Some(dest) = dest else {
        let mut out = io::stdout().lock();
        fs.get(path, &mut out).map_err(refusal)?;
        out.flush()?;
        return Ok(Exit::Ok);
    };
    let report = fs.get_to_local(path, dest).map_err(refusal)?;
    eprintln!("got {path} -> {} ({} files, {})", dest.display(), report.files, format_size(report.bytes));
    for s in report.skipped {
        eprintln!("  skipped {} (symlinks and special files are not copied)", s.display());
    }
    Ok(Exit::Ok)
}
