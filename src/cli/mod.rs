//! The command line: clap derive structs here, one file per command. This is the only layer
//! (with main.rs) that uses anyhow; it turns module errors into messages and exit codes.

pub mod apps;
pub mod buildpack_cmd;
pub mod ca_certs;
pub mod cluster;
pub mod config_cmd;
pub mod deploy;
pub mod doctor_cmd;
pub mod exit;
pub mod k8s;
pub mod limits;
pub mod local;
pub mod logs;
pub mod migrate;
pub mod mount;
pub mod mount_archive;
pub mod old_supervisors;
pub mod ps;
pub mod receive;
pub mod releases;
pub mod rollback_cmd;
pub mod route_cmd;
pub mod run;
pub mod serve_cmd;
pub mod stack;
pub mod supervise_cmd;
pub mod workspace;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::state::Home;

pub use exit::{Exit, exit_code_for};

/// slipway: deploy each git commit of an app as a fresh release with a persistent filesystem.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// State directory [default: `/var/lib/slipway` as root, else `$XDG_DATA_HOME/slipway` or
    /// `~/.local/share/slipway`]
    #[arg(long, global = true, env = "SLIPWAY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print tracing diagnostics to stderr (-vv for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, inspect and destroy apps
    #[command(subcommand)]
    Apps(apps::AppsCommand),
    /// Deploy a commit: build, attach the mount, predeploy, start, switch
    Deploy(deploy::DeployArgs),
    /// Show, scale, restart, stop and start an app's processes
    Ps(ps::PsArgs),
    /// Show a process type's log (-f to follow)
    Logs(logs::LogsArgs),
    /// Run a one-off command in the current release, mount attached
    Run(run::RunArgs),
    /// List an app's releases with their commit, status and phase durations
    Releases(releases::ReleasesArgs),
    /// Deploy an earlier release's commit again (default: the one before the current one)
    Rollback(rollback_cmd::RollbackArgs),
    /// Show and change the environment given to an app's processes
    Config(config_cmd::ConfigArgs),
    /// The app's persistent filesystem: enable, disable, status and file operations
    #[command(subcommand)]
    Mount(mount::MountCommand),
    /// A working copy of the app at its deployed commit, sharing the app's mount
    #[command(subcommand)]
    Workspace(workspace::WorkspaceCommand),
    /// Run a directory's Procfile in the foreground, like `heroku local`
    Local(local::LocalArgs),
    /// The Docker runtime's base image: `stack import` makes it offline
    Stack(stack::StackArgs),
    /// The registry and swarm manager of `--runtime swarm` apps
    Cluster(cluster::ClusterArgs),
    /// Check what this machine lets slipway do, and say how to fix the rest
    Doctor(doctor_cmd::DoctorArgs),
    /// Kubernetes apps: print the manifests a deploy applies
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
    /// slipway's built-in buildpacks, for `pack build`: `buildpack package OUT`
    #[command(subcommand)]
    Buildpack(buildpack_cmd::BuildpackCommand),
    /// The App Manager: HTTP API, git push over HTTP and web UI (--detach, --stop)
    Serve(serve_cmd::ServeArgs),
    /// API tokens: show-admin, create --app, list, revoke
    #[command(subcommand)]
    Tokens(serve_cmd::TokensCommand),
    /// Internal: the supervisor of one release (started by deploy; not for people)
    #[command(hide = true, name = "__supervise")]
    Supervise(supervise_cmd::SuperviseArgs),
    /// Internal: the router of an app's stable address (started by slipway; not for people)
    #[command(hide = true, name = "__route")]
    Route(route_cmd::RouteArgs),
    /// Internal: the pre-receive hook of an app's git repository (run by git; not for people)
    #[command(hide = true, name = "__receive")]
    Receive(receive::ReceiveArgs),
}

/// Parse the command line, run the command, and map failures to documented exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        // These outlive or serve others: a reader that hung up must not kill a router, a
        // supervisor, a push's deploy halfway, or `local`'s processes without their graceful
        // stop (their writes check their errors instead).
        Command::Supervise(_) | Command::Route(_) | Command::Receive(_) | Command::Local(_) => {}
        _ => die_quietly_on_broken_pipe(),
    }
    // `--json` before any `--` (after it come a one-off command's own arguments).
    let json = std::env::args().take_while(|a| a != "--").any(|a| a == "--json");
    let home = Home::new(cli.home.clone().unwrap_or_else(Home::default_root));
    match dispatch(&home, cli.command) {
        Ok(exit) => exit.into(),
        Err(err) => {
            let code = exit_code_for(&err);
            // Ignored if stderr is gone (a pusher who hung up): the exit code still tells.
            let _ = writeln!(std::io::stderr().lock(), "error: {err:#}");
            if json {
                // A CI runner that reads stdout gets the failure as JSON too.
                let doc = serde_json::json!({ "error": format!("{err:#}"), "exit_code": code });
                let _ = writeln!(std::io::stdout().lock(), "{doc:#}");
            }
            ExitCode::from(code)
        }
    }
}

fn dispatch(home: &Home, command: Command) -> anyhow::Result<Exit> {
    // Every command first repairs what a reboot or a killed deploy left behind. A deploy
    // reconciles its own app under the app's lock, so that one is skipped here.
    match &command {
        // doctor reports on a machine as it is, even one whose state is broken.
        // The server reconciles once it listens.
        Command::Supervise(_)
        | Command::Route(_)
        | Command::Local(_)
        | Command::Doctor(_)
        | Command::Buildpack(_)
        | Command::Serve(_) => {}
        Command::Deploy(a) => crate::runtime::reconcile_all(home, Some(&a.app)),
        Command::Receive(a) => crate::runtime::reconcile_all(home, Some(&a.app)),
        Command::Rollback(a) => crate::runtime::reconcile_all(home, Some(&a.app)),
        // An app in an earlier layout cannot be reconciled; the migration makes it whole.
        Command::Apps(apps::AppsCommand::Migrate { app }) => crate::runtime::reconcile_all(home, Some(app)),
        _ => crate::runtime::reconcile_all(home, None),
    }
    // After a reboot the recorded App Manager comes back, like the routers.
    if !matches!(command, Command::Supervise(_) | Command::Route(_) | Command::Receive(_) | Command::Serve(_))
    {
        crate::serve::ensure_running(home);
    }
    match command {
        Command::Apps(c) => apps::run(home, c),
        Command::Deploy(a) => deploy::run(home, &a),
        Command::Ps(a) => ps::run(home, a),
        Command::Logs(a) => logs::run(home, &a),
        Command::Run(a) => run::run(home, &a),
        Command::Releases(a) => releases::run(home, &a),
        Command::Rollback(a) => rollback_cmd::run(home, &a),
        Command::Config(a) => config_cmd::run(home, a),
        Command::Mount(c) => mount::run(home, c),
        Command::Workspace(c) => workspace::run(home, c),
        Command::Local(a) => local::run(&a),
        Command::Stack(a) => stack::run(a),
        Command::Cluster(a) => cluster::run(home, a),
        Command::Doctor(a) => doctor_cmd::run(home, &a),
        Command::K8s(c) => k8s::run(home, c),
        Command::Buildpack(c) => buildpack_cmd::run(&c),
        Command::Serve(a) => serve_cmd::run(home, &a),
        Command::Tokens(c) => serve_cmd::tokens(home, c),
        Command::Supervise(a) => supervise_cmd::run(home, &a),
        Command::Receive(a) => receive::run(home, &a),
        Command::Route(a) => route_cmd::run(home, &a),
    }
}

/// `slipway releases APP | head -1`: when the reader of our output goes away, end as `cat` or
/// `ls` would, killed by SIGPIPE without a word, instead of panicking in `println!` (Rust
/// ignores SIGPIPE, so every write would fail with EPIPE). One switch for every command, so no
/// print needs its own handling. Children get the default disposition anyway.
fn die_quietly_on_broken_pipe() {
    // SAFETY: called once at start-up, before any thread or signal handler exists; SIG_DFL is
    // the disposition every program starts with.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "slipway=debug",
        _ => "slipway=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
