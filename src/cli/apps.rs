//! `slipway apps`: create, list, info, destroy.

use std::io::IsTerminal;
use std::process::Command;

use anyhow::{Context, bail};

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::state::{AppRecord, Home, RunAs, RuntimeKind, Wait};

/// `slipway apps ...`
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Create an app (as root, also its system user `slipway-APP`)
    Create {
        app: AppName,
        /// Where its releases run
        #[arg(long, value_enum, default_value = "local")]
        runtime: RuntimeKind,
        /// The docker runtime's base image for buildpack builds [default: `$SLIPWAY_STACK`, else
        /// `slipway/stack:bookworm`, made by `slipway stack import`]
        #[arg(long, value_name = "IMAGE")]
        stack: Option<String>,
        /// The app's stable address, served by its router whatever the release: a port (on
        /// 127.0.0.1) or ADDR:PORT, e.g. 0.0.0.0:80 [default: a free port on 127.0.0.1]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Change an app's settings: its stable address, its docker container limits
    Set {
        app: AppName,
        /// The new address: a port (on 127.0.0.1) or ADDR:PORT. The router moves there at once;
        /// the old address stops answering
        #[arg(long, value_name = "ADDR", required_unless_present_any = ["memory", "pids", "allow_setuid", "cap_add"])]
        listen: Option<String>,
        #[command(flatten)]
        limits: super::limits::LimitArgs,
    },
    /// List apps
    List {
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show an app's settings
    Info {
        app: AppName,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Remove an app: processes, releases, workspace, mount (and its image), records, git repository
    Destroy {
        app: AppName,
        /// The app's name again, to confirm (asked for on a TTY)
        #[arg(long, value_name = "APP")]
        confirm: Option<String>,
    },
}

/// Run an `apps` subcommand.
pub fn run(home: &Home, cmd: AppsCommand) -> anyhow::Result<Exit> {
    match cmd {
        AppsCommand::Create { app, runtime, stack, listen } => {
            create(home, &app, runtime, stack, listen.as_deref())
        }
        AppsCommand::Set { app, listen, limits } => {
            if limits.any() {
                super::limits::set(home, &app, &limits)?;
            }
            match listen {
                Some(listen) => set_listen(home, &app, &listen),
                None => Ok(Exit::Ok),
            }
        }
        AppsCommand::List { json } => {
            let apps = home.list_apps()?;
            if json {
                let records: Vec<AppRecord> = apps.iter().filter_map(|a| home.load_app(a).ok()).collect();
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for a in apps {
                    println!("{a}");
                }
            }
            Ok(Exit::Ok)
        }
        AppsCommand::Info { app, json } => {
            let record = home.load_app(&app)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                println!("name:     {}", record.name);
                println!("runtime:  {:?}", record.runtime);
                println!("current:  {}", record.current.map_or("-".to_owned(), |r| r.to_string()));
                println!("stopped:  {}", record.stopped);
                println!(
                    "user:     {}",
                    record.run_as.as_ref().map_or("(invoking user)", |u| u.user.as_str())
                );
                println!("git:      {}", home.git_repo(&app).display());
                if let Some(listen) = record.listen {
                    println!("url:      http://{listen}/");
                }
            }
            Ok(Exit::Ok)
        }
        AppsCommand::Destroy { app, confirm } => destroy(home, &app, confirm.as_deref()),
    }
}

fn create(
    home: &Home,
    app: &AppName,
    runtime: RuntimeKind,
    stack: Option<String>,
    listen: Option<&str>,
) -> anyhow::Result<Exit> {
    let listen = match listen {
        Some(l) => crate::router::parse_listen(l).map_err(|e| Refusal::Usage(e.to_string()))?,
        None => crate::router::free_listen().context("no free port on 127.0.0.1 for the app's router")?,
    };
    crate::router::check_free(listen).map_err(|e| Refusal::Usage(format!("{e} with --listen")))?;
    let mut record = AppRecord::new(app.clone(), runtime);
    record.stack = stack;
    record.listen = Some(listen);
    if rustix::process::geteuid().is_root() {
        record.run_as = Some(ensure_user(app)?);
    }
    home.create_app(&record)?;
    let dir = home.app(app).dir().to_owned();
    restrict(&dir, record.run_as.as_ref())?;
    // App users may pass through the home and apps directories to their own tree (0711) but
    // may neither list them nor enter the root-only state.
    let modes = [
        (home.root().to_owned(), 0o711),
        (home.apps_dir(), 0o711),
        (home.state_dir(), 0o700),
        (home.app(app).state_dir().to_owned(), 0o700),
    ];
    for (path, mode) in modes {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))?;
    }
    let git = home.git_repo(app);
    let exe = std::env::current_exe().context("cannot find slipway's own path for the git hook")?;
    let root = std::path::absolute(home.root())
        .with_context(|| format!("cannot resolve {}", home.root().display()))?;
    crate::git_remote::ensure(&git, &exe, &root, app)?;
    std::fs::set_permissions(home.root().join("git"), std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .context("cannot set mode 0700 on the git directory")?;
    crate::router::ensure_running(home, &record)?;
    eprintln!("-----> Created app {app} ({runtime:?} runtime), served at http://{listen}/");
    if runtime == RuntimeKind::Docker {
        // Containers run as the stack's user, whatever host account the app has.
        eprintln!("{}", crate::runtime::docker::limits::process_user_note());
    } else if let Some(u) = &record.run_as {
        eprintln!("       its processes run as system user {} (uid {})", u.user, u.uid);
    }
    eprintln!("       next: slipway mount enable {app}; slipway deploy {app} --repo DIR");
    eprintln!("       or push: git remote add slipway {}; git push slipway main", git.display());
    Ok(Exit::Ok)
}

fn set_listen(home: &Home, app: &AppName, listen: &str) -> anyhow::Result<Exit> {
    let addr = crate::router::parse_listen(listen).map_err(|e| Refusal::Usage(e.to_string()))?;
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app} to finish"))?;
    let mut record = home.load_app(app)?;
    if record.listen == Some(addr) {
        eprintln!("-----> {app} is already served at http://{addr}/; nothing changed");
        return Ok(Exit::Ok);
    }
    let old = crate::router::relisten(home, &mut record, addr).map_err(|e| match e {
        crate::router::RouterError::Taken { .. } => Refusal::Usage(format!("{e}; nothing changed")).into(),
        other => anyhow::Error::new(other),
    })?;
    let was = old.map_or(String::new(), |o| format!(" (was http://{o}/)"));
    eprintln!("-----> {app} is now served at http://{addr}/{was}");
    Ok(Exit::Ok)
}

/// The app's tree belongs to its user with mode 0700: no other app's user can look in.
fn restrict(dir: &std::path::Path, user: Option<&RunAs>) -> anyhow::Result<()> {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
    if let Some(u) = user {
        std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))
            .with_context(|| format!("cannot give {} to {}", dir.display(), u.user))?;
        let releases = dir.join("releases");
        std::fs::create_dir_all(&releases)?;
        std::os::unix::fs::chown(&releases, Some(u.uid), Some(u.gid))?;
    }
    Ok(())
}

/// The app's system user, created if missing.
fn ensure_user(app: &AppName) -> anyhow::Result<RunAs> {
    let user = format!("slipway-{app}");
    if lookup(&user).is_none() {
        let out = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", &user])
            .output()
            .context("cannot run useradd; install the passwd package")?;
        if !out.status.success() {
            bail!("useradd {user} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    lookup(&user).with_context(|| format!("user {user} was created but cannot be found"))
}

fn lookup(user: &str) -> Option<RunAs> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    Some(RunAs { user: user.to_owned(), uid: id("-u")?, gid: id("-g")? })
}

fn destroy(home: &Home, app: &AppName, confirm: Option<&str>) -> anyhow::Result<Exit> {
    home.load_app(app)?;
    confirmed(
        app,
        confirm,
        "destroy app",
        "its releases, processes, workspace, git repository and every file in its mount",
    )?;
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app} to finish"))?;
    // Read after the lock: a deploy that held it may have switched to a new release.
    let record = home.load_app(app)?;
    let paths = home.app(app);
    let runtime = crate::runtime::AnyRuntime::for_kind(home, record.runtime)?;
    let mut releases = home.release_dirs(app)?;
    releases.extend(record.current);
    releases.sort();
    releases.dedup();
    for id in releases {
        runtime.remove(app, id, crate::plan::DEFAULT_STOP_GRACE)?;
    }
    if let crate::runtime::AnyRuntime::Docker(docker) = &runtime {
        docker.destroy_volumes(app)?;
    }
    crate::router::stop(home, app);
    crate::mount::destroy(&paths)?;
    let git = home.git_repo(app);
    for dir in [paths.dir(), paths.state_dir(), git.as_path()] {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", dir.display())),
        }
    }
    if let Some(u) = &record.run_as {
        let _ = Command::new("userdel").arg(&u.user).output();
    }
    eprintln!("-----> Destroyed app {app}");
    Ok(Exit::Ok)
}

/// Require `--confirm APP`, or the app's name typed on a TTY.
pub fn confirmed(app: &AppName, confirm: Option<&str>, action: &str, what: &str) -> anyhow::Result<()> {
    if let Some(c) = confirm {
        if c == app.as_str() {
            return Ok(());
        }
        return Err(Refusal::NotConfirmed(format!(
            "--confirm {c} does not match app {app}; nothing was changed"
        ))
        .into());
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("This will {action} {app}: {what}, irrecoverably.\nType the app name to confirm: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() == app.as_str() {
            return Ok(());
        }
    }
    Err(Refusal::NotConfirmed(format!(
        "refusing to {action} {app} without confirmation; nothing was changed. Pass --confirm {app}"
    ))
    .into())
}
