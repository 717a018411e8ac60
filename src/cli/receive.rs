//! `slipway __receive APP`: the app repository's `pre-receive` hook (see [`crate::git_remote`]).
//! Its stderr reaches the pusher as `remote:` lines; a non-zero exit rejects the push.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::deploy::deploy_and_report;
use crate::deploy::DeployRequest;
use crate::git_remote;
use crate::ids::AppName;
use crate::plan::Overrides;
use crate::progress::Progress;
use crate::source::{Repo, SourceError};
use crate::state::{FileLock, Home, Wait};

/// Arguments of the hidden hook command.
#[derive(Debug, clap::Args)]
pub struct ReceiveArgs {
    pub app: AppName,
}

/// Keeps the push lock until git has updated the refs, which it does after this hook exits: a
/// watcher that inherits a duplicate of the lock's descriptor holds it until receive-pack (the
/// hook's parent) is gone, at most a minute. Its output goes nowhere, so git never waits on it.
fn hold_until_git_is_done(lock: &FileLock) -> anyhow::Result<()> {
    let receive_pack = std::os::unix::process::parent_id();
    if receive_pack <= 1 {
        return Ok(());
    }
    // dup(2) leaves close-on-exec unset, so the watcher inherits this one descriptor.
    let inherited = rustix::io::dup(lock).context("cannot share the push lock")?;
    let watch =
        format!("for _ in $(seq 1200); do kill -0 {receive_pack} 2>/dev/null || exit 0; sleep 0.05; done");
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", &watch]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe. In a session of its own it is, once this hook has
    // exited, an adopted orphan a long-lived subreaper (the App Manager serving the push) may
    // reap, apart from its own children of its own session (see `reaper::reap_adopted`).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    cmd.spawn().context("cannot start the push lock's watcher")?;
    drop(inherited);
    Ok(())
}

/// Deploy what the push sets the deploy branch to; store everything else.
pub fn run(home: &Home, args: &ReceiveArgs) -> anyhow::Result<Exit> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("cannot read the pushed refs from git")?;
    let record = home.load_app(&args.app)?;
    let branch = record.deploy_branch();
    // A refused push (deleting the deploy branch) rejects every ref of it, so nothing is
    // reported as stored.
    let plan = git_remote::plan_push(&git_remote::parse_updates(&input)?, branch)?;
    // Progress lines ignore a failed write: a pusher who hangs up must not stop a deploy.
    let progress = Progress::new(false);
    for name in &plan.stored {
        progress.note(&format!("{name}: stored, not deployed (pushes of {branch} deploy)"));
    }
    for name in &plan.deleted {
        progress.note(&format!("{name}: deleted (the running release is unaffected)"));
    }
    let Some(push) = plan.deploy else { return Ok(Exit::Ok) };
    // git runs the hook in the bare repository, with the pushed objects readable through the
    // GIT_* variables it sets; the deploy's own git commands inherit them.
    let repo: PathBuf = std::env::current_dir().context("cannot find the repository the hook runs in")?;
    // Pushes of one app take turns. A push that waited must not deploy over the one before it
    // if that one moved the branch: git would then refuse this push's ref update after the
    // deploy, and the running commit would be on no branch.
    let turn = FileLock::acquire(&home.app(&args.app).push_lock(), "the push lock", Wait::Yes, || {
        progress.note("Waiting for another push of this app to finish");
    })?;
    let current = match Repo::open(&repo)?.resolve(&format!("refs/heads/{}", push.branch)) {
        Ok(commit) => Some(commit),
        Err(SourceError::NoSuchRevision { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if push.moved(current.as_ref()) {
        let current = current.map_or_else(|| "(deleted)".to_owned(), |c| c.short().to_owned());
        return Err(git_remote::GitRemoteError::Moved { branch: push.branch, current }.into());
    }
    progress.note(&format!("Push of {} ({}) to {}", push.branch, push.new.short(), args.app));
    let req = DeployRequest {
        app: args.app.clone(),
        repo,
        rev: push.new.to_string(),
        wait: Wait::Yes,
        overrides: Overrides::default(),
    };
    hold_until_git_is_done(&turn)?;
    let app = &args.app;
    deploy_and_report(home, &req, false, || format!("push rejected: {app} was not deployed"))
}
