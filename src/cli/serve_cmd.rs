//! `slipway serve`: the App Manager (HTTP API, git over HTTP, web UI); and `slipway tokens`.

use std::net::SocketAddr;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::serve::TokenStore;
use crate::state::Home;

/// Arguments of `slipway serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: a port (on 127.0.0.1) or ADDR:PORT
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Run as a detached service, started again by any slipway command after a reboot
    #[arg(long, conflicts_with = "stop")]
    pub detach: bool,
    /// Stop the detached service (and do not start it again)
    #[arg(long)]
    pub stop: bool,
}

/// Run `serve`.
pub fn run(home: &Home, args: &ServeArgs) -> anyhow::Result<Exit> {
    if args.stop {
        let was = crate::serve::stop(home)?;
        eprintln!(
            "{}",
            if was { "-----> Stopped the App Manager" } else { "the App Manager was not running" }
        );
        return Ok(Exit::Ok);
    }
    let addr: SocketAddr = crate::router::parse_listen(&args.listen)
        .map_err(|e| Refusal::Usage(format!("{e} with --listen")))?;
    if args.detach {
        crate::serve::detach(home, addr)?;
        eprintln!(
            "-----> App Manager running at http://{addr}/ (log: {})",
            home.root().join("serve/serve.log").display()
        );
        return Ok(Exit::Ok);
    }
    crate::serve::run(home, addr)?;
    Ok(Exit::Ok)
}

/// `slipway tokens ...`
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Print the admin token (created by the first `slipway serve`)
    ShowAdmin,
    /// Create a token that reaches one app only; it is printed once and stored hashed
    Create {
        #[arg(long)]
        app: AppName,
        /// A name to tell tokens apart in `tokens list`
        #[arg(long, default_value = "token")]
        name: String,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List app tokens (never the tokens themselves)
    List {
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Revoke an app token by the id `tokens list` shows
    Revoke { id: String },
}

/// Run a `tokens` subcommand.
pub fn tokens(home: &Home, cmd: TokensCommand) -> anyhow::Result<Exit> {
    let store = TokenStore::new(home);
    match cmd {
        TokensCommand::ShowAdmin => {
            let token = store.read_admin()?.ok_or(crate::serve::TokenError::NoAdmin)?;
            println!("{token}");
        }
        TokensCommand::Create { app, name, json } => {
            home.load_app(&app)?;
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err(Refusal::Usage("--name: 1 to 100 printable characters".into()).into());
            }
            let (record, token) = store.create(&app, &name)?;
            if json {
                let doc = serde_json::json!({ "id": record.id, "app": record.app, "name": record.name, "token": token });
                println!("{doc:#}");
            } else {
                eprintln!(
                    "-----> Created token {} for app {app} (shown once; it is stored hashed):",
                    record.id
                );
                println!("{token}");
            }
        }
        TokensCommand::List { json } => {
            let all = store.list()?;
            if json {
                let shown: Vec<_> = all
                    .into_iter()
                    .map(|mut t| {
                        t.hash.clear();
                        t
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!("{:<14} {:<24} {:<20} CREATED", "ID", "APP", "NAME");
                for t in all {
                    let when = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.created_at),
                    );
                    println!("{:<14} {:<24} {:<20} {when}", t.id, t.app, t.name);
                }
            }
        }
        TokensCommand::Revoke { id } => {
            let gone = store.revoke(&id)?;
            eprintln!("-----> Revoked token {} of app {} ({})", gone.id, gone.app, gone.name);
        }
    }
    Ok(Exit::Ok)
}
