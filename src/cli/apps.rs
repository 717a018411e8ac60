//! `slipway apps`: create, list, info, destroy, migrate.

use std::io::IsTerminal;

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::state::{AppRecord, Home, RuntimeKind, Wait};

/// `slipway apps ...`
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Create an app (as root, also its own system user `slipway-APP-HASH`)
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
        #[command(flatten)]
        kube: crate::cli::k8s::KubeCreateArgs,
    },
    /// Change an app's settings: its stable address, its deploy branch, its request body limits,
    /// its docker container limits
    Set {
        app: AppName,
        /// The new address: a port (on 127.0.0.1) or ADDR:PORT. The router moves there at once;
        /// the old address stops answering
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        routing: crate::cli::route_cmd::RoutingArgs,
        #[command(flatten)]
        limits: super::limits::LimitArgs,
        /// The CA bundle the app's builds trust (a PEM file), or `host` for the host's own
        /// [default: host; `$SLIPWAY_CA_CERTS` overrides both]
        #[arg(long, value_name = "FILE|host")]
        ca_certs: Option<String>,
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
    /// Remove an app: processes, releases, workspace, mount (and its image), records, git repository,
    /// and its system user with every process still running as it
    Destroy {
        app: AppName,
        /// The app's name again, to confirm (asked for on a TTY)
        #[arg(long, value_name = "APP")]
        confirm: Option<String>,
    },
    /// Bring an app made by an earlier slipway (its tree owned by its user) to the current
    /// layout, keeping its mount and settings, and deploy its current commit again (root only)
    Migrate { app: AppName },
}

/// Run an `apps` subcommand.
pub fn run(home: &Home, cmd: AppsCommand) -> anyhow::Result<Exit> {
    match cmd {
        AppsCommand::Create { app, runtime, stack, listen, kube } => {
            let kube = kube.settings(runtime)?;
            create(home, &app, runtime, stack, listen.as_deref(), kube.as_ref())
        }
        AppsCommand::Set { app, listen, routing, limits, ca_certs } => {
            if listen.is_none() && routing.is_empty() && !limits.any() && ca_certs.is_none() {
                return Err(Refusal::Usage(
                    "nothing to set: give --listen, --deploy-branch, --body-timeout, --body-min-rate, \
                     --memory, --pids, --allow-setuid, --cap-add or --ca-certs"
                        .into(),
                )
                .into());
            }
            if !routing.is_empty() {
                crate::cli::route_cmd::set(home, &app, &routing)?;
            }
            if limits.any() {
                super::limits::set(home, &app, &limits)?;
            }
            if let Some(ca) = &ca_certs {
                super::ca_certs::set(home, &app, ca)?;
            }
            listen.map_or(Ok(Exit::Ok), |l| set_listen(home, &app, &l))
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
        AppsCommand::Migrate { app } => crate::cli::migrate::run(home, &app),
    }
}

fn create(
    home: &Home,
    app: &AppName,
    runtime: RuntimeKind,
    stack: Option<String>,
    listen: Option<&str>,
    kube: Option<&crate::runtime::kubernetes::settings::KubeSettings>,
) -> anyhow::Result<Exit> {
    if kube.is_some() && listen.is_some() {
        let why =
            "--listen is for local and docker apps: a kubernetes app is served by its Service on the cluster";
        return Err(Refusal::Usage(why.into()).into());
    }
    let listen = match listen {
        Some(l) => crate::router::parse_listen(l).map_err(|e| Refusal::Usage(e.to_string()))?,
        None => crate::router::free_listen().context("no free port on 127.0.0.1 for the app's router")?,
    };
    let listen = bound_port(listen).map_err(|e| Refusal::Usage(format!("{e} with --listen")))?;
    let mut record = AppRecord::new(app.clone(), runtime);
    record.stack = stack;
    // A kubernetes app is served by its Service on the cluster: no router on this machine.
    record.listen = kube.is_none().then_some(listen);
    if home.app(app).record().exists() {
        return Err(crate::state::StateError::AppExists(app.clone()).into());
    }
    if rustix::process::geteuid().is_root() {
        let root = home_path(home)?;
        if let Some((dir, mode)) = crate::users::blocking_parent(&root) {
            return Err(Refusal::Usage(format!(
                "cannot create {app} under {}: {}",
                root.display(),
                crate::users::reach_fix(&dir, mode)
            ))
            .into());
        }
        let user = crate::users::user_name(&root, app);
        let run_as = crate::users::create(&user).map_err(|e| match e {
            crate::users::UserError::Exists { .. } => Refusal::Usage(e.to_string()).into(),
            other => anyhow::Error::new(other),
        })?;
        record.run_as = Some(run_as);
    }
    if let Err(e) = home.create_app(&record) {
        // The user was made for this app alone; leave no user behind that no record names.
        if let Some(u) = &record.run_as
            && let Err(undo) = crate::users::remove(u)
        {
            eprintln!("warning: {undo}");
        }
        return Err(e.into());
    }
    // From here the record names the user, so a failure leaves both for `apps destroy`.
    if let Some(k) = kube {
        crate::runtime::kubernetes::settings::save(home, app, k)?;
    }
    finish_create(home, &record)?;
    match record.listen {
        Some(listen) => {
            eprintln!("-----> Created app {app} ({runtime:?} runtime), served at http://{listen}/");
        }
        None => {
            eprintln!("-----> Created app {app} ({runtime:?} runtime), served by its Service on the cluster");
        }
    }
    if runtime == RuntimeKind::Docker {
        // Containers run as the stack's user, whatever host account the app has.
        eprintln!("{}", crate::runtime::docker::limits::process_user_note());
    } else if let Some(k) = kube {
        eprintln!("       on the cluster of the kubeconfig, namespace {}", k.namespace);
        if k.access_mode == crate::runtime::kubernetes::settings::AccessMode::Rwo {
            eprintln!("       {}", crate::cli::k8s::RWO_WARNING);
        }
    } else if let Some(u) = &record.run_as {
        eprintln!("       its processes run as system user {} (uid {})", u.user, u.uid);
    }
    let git = home.git_repo(app);
    eprintln!("       next: slipway mount enable {app}; slipway deploy {app} --repo DIR");
    eprintln!("       or push: git remote add slipway {}; git push slipway main", git.display());
    Ok(Exit::Ok)
}

/// The home as an absolute path, created if missing: the name of every user of this home
/// hashes it, so it must not depend on the directory a command ran in.
fn home_path(home: &Home) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(home.root())
        .with_context(|| format!("cannot create {}", home.root().display()))?;
    std::fs::canonicalize(home.root()).with_context(|| format!("cannot resolve {}", home.root().display()))
}

/// A recorded app's tree modes, git repository and router.
fn finish_create(home: &Home, record: &AppRecord) -> anyhow::Result<()> {
    let app = &record.name;
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
    crate::router::ensure_running(home, record)?;
    Ok(())
}

fn set_listen(home: &Home, app: &AppName, listen: &str) -> anyhow::Result<Exit> {
    let addr = crate::router::parse_listen(listen).map_err(|e| Refusal::Usage(e.to_string()))?;
    // Port 0 means "any free port"; the record and the router need the one it is.
    let addr = if addr.port() == 0 {
        bound_port(addr).map_err(|e| Refusal::Usage(format!("{e} with --listen")))?
    } else {
        addr
    };
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

/// Checks that `addr` can be listened on now (so that a taken address is refused before
/// anything changes) and returns the address really bound: port 0 becomes the free port the
/// kernel picked, which is what the record and the router must use.
fn bound_port(addr: std::net::SocketAddr) -> Result<std::net::SocketAddr, crate::router::RouterError> {
    let taken = |source| crate::router::RouterError::Taken { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(taken)?;
    listener.local_addr().map_err(taken)
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
    // Checked before anything goes: a user whose uid changed behind slipway's back is not this
    // app's any more, and its uid's processes and files may be someone else's.
    let user = match &record.run_as {
        Some(u) if crate::users::still_ours(u)? => Some(u),
        _ => None,
    };
    let paths = home.app(app);
    let runtime = crate::runtime::AnyRuntime::for_kind(home, record.runtime)?;
    // Whether anything was ever built: taken before the releases go.
    let built = !home.release_ids(app)?.is_empty();
    let mut releases = home.release_dirs(app)?;
    releases.extend(record.current);
    releases.sort();
    releases.dedup();
    for id in releases {
        runtime.remove(app, id, crate::plan::DEFAULT_STOP_GRACE)?;
    }
    if let crate::runtime::AnyRuntime::Docker(docker) = &runtime {
        docker.destroy_volumes(app)?;
    } else if let Some(engine) = runtime.build_engine()
        && built
    {
        // A cluster app's images were built here: its build cache volume stays on this
        // engine. One never deployed has none, and needs no engine to go.
        if let Err(e) = engine.destroy_volumes(app) {
            eprintln!("warning: {e:#}; remove the volumes labelled slipway.app={app} by hand");
        }
    }
    // An app never deployed has nothing on a cluster, and needs no kubeconfig to go; one whose
    // deploys all failed may have left a claim, removed if the cluster can be reached.
    if let crate::runtime::AnyRuntime::Kubernetes(k) = &runtime {
        if record.current.is_some() {
            k.destroy_objects(app)?;
        } else if !home.release_ids(app)?.is_empty()
            && let Err(e) = k.destroy_objects(app)
        {
            eprintln!("warning: {e:#}; check the cluster for objects labelled slipway.dev/app={app}");
        }
    }
    crate::router::stop(home, app);
    // Daemonized processes escaped their release's process groups; they may hold the mount
    // busy, and a user cannot be removed while one runs.
    if let Some(u) = user {
        crate::users::kill_all(u)?;
    }
    crate::mount::destroy(&paths)?;
    // A token must not reach a new app that takes this name.
    crate::serve::TokenStore::new(home).revoke_app(app)?;
    let git = home.git_repo(app);
    for dir in [paths.dir(), git.as_path()] {
        remove_tree(dir)?;
    }
    // The record goes last: if the user cannot be removed, `apps destroy` can be run again.
    if let Some(u) = user {
        crate::users::remove(u).with_context(|| format!("app {app} is half destroyed"))?;
    }
    remove_tree(paths.state_dir())?;
    eprintln!("-----> Destroyed app {app}");
    Ok(Exit::Ok)
}

fn remove_tree(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
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
