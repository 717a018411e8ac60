//! `slipway workspace`: a working copy of the app beside its persistent filesystem.

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::oneoff::OneOff;
use crate::state::Home;
use crate::workspace::{self, Created};

/// `slipway workspace ...`
#[derive(Debug, clap::Subcommand)]
pub enum WorkspaceCommand {
    /// Clone the app's repository at its deployed commit, with the app's mount at ../mount
    Create { app: AppName },
    /// Open bash in the workspace
    Shell { app: AppName },
    /// Run a command in the workspace: one argument is a bash command line, several are a
    /// program and its arguments, run exactly as given
    Run {
        app: AppName,
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Remove the working copy; the mount and every file in it stay
    Delete { app: AppName },
}

/// Run a `workspace` subcommand.
pub fn run(home: &Home, cmd: WorkspaceCommand) -> anyhow::Result<Exit> {
    match cmd {
        WorkspaceCommand::Create { app } => {
            match workspace::create(home, &app)? {
                Created::New(info) => {
                    eprintln!("-----> Created the workspace of {app} at commit {}", info.commit.short());
                    eprintln!("       {}", info.path.display());
                    if info.mount_attached {
                        eprintln!("       the app's persistent filesystem is at ../mount and ~/mount");
                    } else {
                        eprintln!(
                            "       no persistent filesystem: enable one with `slipway mount enable {app}`"
                        );
                    }
                }
                Created::AlreadyThere(path) => {
                    eprintln!("-----> {app} already has a workspace at {}", path.display());
                }
            }
            Ok(Exit::Ok)
        }
        WorkspaceCommand::Shell { app } => exec(home, &app, "exec bash"),
        WorkspaceCommand::Run { app, command } => {
            let command =
                OneOff::from_args(command).ok_or_else(|| Refusal::Usage("no command given".into()))?;
            exec(home, &app, &command.script())
        }
        WorkspaceCommand::Delete { app } => {
            if workspace::delete(home, &app)? {
                eprintln!("-----> Deleted the workspace of {app}; its persistent filesystem is kept");
            } else {
                eprintln!("-----> {app} has no workspace; nothing to delete");
            }
            Ok(Exit::Ok)
        }
    }
}

fn exec(home: &Home, app: &AppName, script: &str) -> anyhow::Result<Exit> {
    let code = workspace::run(home, app, script)?;
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(u8::try_from(code).unwrap_or(1)) })
}
