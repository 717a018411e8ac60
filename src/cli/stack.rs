//! `slipway stack import`: make the base build/run image offline.

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::runtime::docker::stack::{self, StackImport, StackOutcome};
use crate::runtime::docker::{self as engine, DEFAULT_STACK};

use super::Exit;

/// `slipway stack ...`
#[derive(Debug, Args)]
pub struct StackArgs {
    #[command(subcommand)]
    command: StackCommand,
}

#[derive(Debug, Subcommand)]
enum StackCommand {
    /// Build the stack image from Debian packages with debootstrap, and import it into Docker
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The image tag to create
    #[arg(long, default_value = DEFAULT_STACK, value_name = "IMAGE")]
    tag: String,
    /// The Debian mirror to download packages from
    #[arg(long, default_value = "http://deb.debian.org/debian", value_name = "URL")]
    mirror: String,
    /// The Debian suite
    #[arg(long, default_value = "bookworm", hide = true)]
    suite: String,
    /// Rebuild even if the tag exists
    #[arg(long)]
    force: bool,
}

/// Runs `slipway stack`.
pub(crate) fn run(args: StackArgs) -> anyhow::Result<Exit> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        match args.command {
            StackCommand::Import(a) => import(a).await,
        }
    })
}

async fn import(a: ImportArgs) -> anyhow::Result<Exit> {
    let docker = engine::connect().await?;
    let opts = StackImport { tag: a.tag, mirror: a.mirror, suite: a.suite, force: a.force };
    let mut progress = |line: &str| eprintln!("-----> {line}");
    let outcome = stack::import_stack(&docker, &opts, &mut progress)
        .await
        .with_context(|| format!("cannot import the stack image {}", opts.tag))?;
    // The image id on stdout, for scripts; the progress went to stderr.
    let (StackOutcome::Imported { id } | StackOutcome::Present { id }) = outcome;
    println!("{id}");
    Ok(Exit::Ok)
}
