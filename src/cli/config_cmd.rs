//! `slipway config`: the environment given to an app's processes.

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::state::{Home, Wait};

/// Arguments of `slipway config`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: Option<ConfigCommand>,
    /// Show every variable of this app
    #[arg(required = true)]
    pub app: Option<AppName>,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `slipway config ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Set variables and restart the processes
    Set {
        app: AppName,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Only record the change: processes get it when they next start
        #[arg(long)]
        no_restart: bool,
    },
    /// Remove variables and restart the processes
    Unset {
        app: AppName,
        #[arg(required = true)]
        keys: Vec<String>,
        /// Only record the change: processes get it when they next start
        #[arg(long)]
        no_restart: bool,
    },
    /// Print one variable's value
    Get { app: AppName, key: String },
}

/// Run `config`.
pub fn run(home: &Home, args: ConfigArgs) -> anyhow::Result<Exit> {
    match args.command {
        None => {
            let app = args.app.ok_or_else(|| Refusal::Usage("missing APP".into()))?;
            let env = home.load_app(&app)?.env;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&env)?);
            } else {
                for (k, v) in env {
                    println!("{k}={v}");
                }
            }
            Ok(Exit::Ok)
        }
        Some(ConfigCommand::Get { app, key }) => match home.load_app(&app)?.env.get(&key) {
            Some(v) => {
                println!("{v}");
                Ok(Exit::Ok)
            }
            None => Ok(Exit::Code(1)),
        },
        Some(ConfigCommand::Set { app, pairs, no_restart }) => {
            let parsed =
                pairs.iter().map(|p| parse_pair(p).map_err(Refusal::Usage)).collect::<Result<Vec<_>, _>>()?;
            change(home, &app, !no_restart, |env| {
                for (k, v) in parsed {
                    env.insert(k, v);
                }
            })
        }
        Some(ConfigCommand::Unset { app, keys, no_restart }) => change(home, &app, !no_restart, |env| {
            for k in &keys {
                env.remove(k);
            }
        }),
    }
}

fn change(
    home: &Home,
    app: &AppName,
    restart: bool,
    f: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> anyhow::Result<Exit> {
    {
        let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app}"))?;
        let mut record = home.load_app(app)?;
        f(&mut record.env);
        home.save_app(&record)?;
    }
    eprintln!("-----> Config of {app} updated");
    if restart {
        crate::cli::ps::restart_all(home, app)?;
    } else {
        eprintln!(
            "       running processes keep the old values until they restart (`slipway ps restart {app}`); \
             one-off runs and the next deploy get the new ones"
        );
    }
    Ok(Exit::Ok)
}

/// Variables slipway sets for every process, which an app's config may not replace: a wrong
/// `PATH` or `HOME` takes every process down at its next start, `PORT` is where the health gate
/// and the router look, and `USER`/`LOGNAME` name the app's user.
pub const RESERVED: &[&str] = &["PATH", "PORT", "HOME", "DYNO", "PS", "USER", "LOGNAME"];

/// `KEY=VALUE`, where KEY is a shell-safe variable name.
fn parse_pair(p: &str) -> Result<(String, String), String> {
    let (k, v) = p.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {p:?}"))?;
    let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("invalid variable name {k:?}: use letters, digits and '_'"));
    }
    if RESERVED.contains(&k) {
        return Err(format!(
            "{k} is set by slipway for each process and cannot be overridden (reserved: {}); nothing was \
             changed",
            RESERVED.join(", ")
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_validated() {
        assert_eq!(parse_pair("A_1=x=y").unwrap(), ("A_1".into(), "x=y".into()));
        assert_eq!(parse_pair("EMPTY=").unwrap().1, "");
        for bad in ["NOEQ", "1A=x", "A-B=x", "=x", "PORT=1"] {
            assert!(parse_pair(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_slipway_sets_are_refused_and_the_message_lists_them() {
        for k in RESERVED {
            let err = parse_pair(&format!("{k}=/x")).unwrap_err();
            assert!(err.contains("set by slipway") && err.contains("PATH, PORT, HOME, DYNO"), "{err}");
        }
        assert!(parse_pair("LANG=en_US.UTF-8").is_ok(), "a default the app may change");
        assert!(parse_pair("MYPATH=/x").is_ok());
    }
}
