//! The deploy flow, written once for every runtime: lock, resolve, plan, then build, attach the
//! mount, predeploy, start, switch, retire, postdeploy. Anything that fails before the switch
//! discards the new release and leaves the running one untouched.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, Procfile, project_toml};
use crate::ids::{AppName, CommitSha, ReleaseId};
use crate::plan::{self, DeployPlan, Overrides, PlanInput};
use crate::progress::{Progress, format_duration};
use crate::runtime::{AnyRuntime, DeployError, RuntimeError, reconcile_app};
use crate::source::{Repo, SourceError};
use crate::state::{FileLock, Home, Phase, ReleaseRecord, ReleaseStatus, StateError, Wait, now_unix};

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub app: AppName,
    pub repo: PathBuf,
    pub rev: String,
    pub wait: Wait,
    pub overrides: Overrides,
}

/// What a successful deploy did; `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub app: AppName,
    pub release: ReleaseId,
    pub commit: CommitSha,
    pub previous: Option<ReleaseId>,
    pub web_port: Option<u16>,
    /// The app's stable address (its router), which outlives this release.
    pub url: Option<String>,
    pub phases: Vec<Phase>,
    /// A postdeploy failure is reported, not rolled back.
    pub postdeploy_error: Option<String>,
}

/// Failures before anything was built.
#[derive(Debug, thiserror::Error)]
pub enum DeployFlowError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Failed(#[from] DeployError),
    #[error(transparent)]
    Reconcile(#[from] crate::runtime::ReconcileError),
}

/// Deploy `req`, reporting progress: take the app's lock (waiting as `req.wait` says), then
/// [`deploy_locked`].
pub fn deploy(
    home: &Home,
    req: &DeployRequest,
    progress: &mut Progress,
) -> Result<DeployOutcome, DeployFlowError> {
    let app = &req.app;
    let lock = home.lock_app(app, req.wait, || {
        progress.note(&format!(
            "waiting for another deploy of {app} to finish (use --no-wait to refuse instead)"
        ));
    })?;
    deploy_locked(home, req, lock, progress)
}

/// Deploy `req` while holding `lock`, the app's lock (from [`Home::lock_app`]), which is
/// released when the deploy ends. The App Manager takes the lock first, so that a refusal is
/// its answer's status rather than a line of its stream.
pub fn deploy_locked(
    home: &Home,
    req: &DeployRequest,
    lock: FileLock,
    progress: &mut Progress,
) -> Result<DeployOutcome, DeployFlowError> {
    let _lock = lock;
    let app = &req.app;
    reconcile_app(home, app)?;
    let record = home.load_app(app)?;
    let runtime = AnyRuntime::for_kind(home, record.runtime)?;
    let mut repo = Repo::open(&req.repo)?;
    let commit = repo.resolve(&req.rev)?;
    let release = home.next_release_id(app)?;
    let _span =
        tracing::info_span!("deploy", app = %app, release = %release, commit = %commit.short()).entered();
    let fail = |phase: &'static str, e: Box<dyn std::error::Error + Send + Sync>| DeployError {
        app: app.clone(),
        release,
        phase,
        source: e,
    };
    progress.note(&format!(
        "Deploying {app} {release} from commit {} of {}",
        commit.short(),
        repo.dir().display()
    ));
    let (procfile, project) = read_config(&repo, &commit, progress).map_err(|e| fail("config", e))?;
    if let Some(p) = &project {
        scripts_stay_in_app(&repo, &commit, p).map_err(|e| fail("config", e))?;
    }
    let mount_enabled = crate::mount::settings(&home.app(app))
        .map_err(|e| fail("config", e.into()))?
        .is_some_and(|s| s.enabled);
    // What is serving now: a Procfile without web would retire it at the switch.
    let running_web = record.current.filter(|id| {
        home.load_release(app, *id).is_ok_and(|r| r.process_types.iter().any(crate::ids::ProcessType::is_web))
    });
    let has_dockerfile = repo.has_file(&commit, "Dockerfile").map_err(|e| fail("config", e.into()))?;
    let mut plan = plan::plan(&PlanInput {
        app: &record,
        release,
        commit: commit.clone(),
        procfile: &procfile,
        project: project.as_ref(),
        mount_enabled,
        overrides: &req.overrides,
        running_web,
        has_dockerfile,
    })
    .map_err(|e| fail("config", e.into()))?;
    let mut rec = ReleaseRecord {
        id: release,
        commit: commit.clone(),
        repo: repo.dir().to_owned(),
        created_at: now_unix(),
        status: ReleaseStatus::Deploying,
        phases: Vec::new(),
        error: None,
        process_types: plan.processes.iter().map(|p| p.ptype.clone()).collect(),
    };
    home.save_release(app, &rec)?;
    tracing::debug!(?plan, "planned");
    match build_and_start(&runtime, &mut plan, &repo, progress) {
        Ok(started) => {
            // A buildpack build may have added process types (launch.toml) beside the
            // Procfile's; the switch saves the record.
            rec.process_types = plan.processes.iter().map(|p| p.ptype.clone()).collect();
            let previous = switch(home, &runtime, &plan, started.web_port, &mut rec, progress)?;
            let postdeploy_error = plan.postdeploy.as_ref().and_then(|script| {
                let r = progress.phase(&format!("Running postdeploy {}", script.path), |p| {
                    runtime.run_script(&plan, script, p)
                });
                r.err().map(|e| {
                    let msg = format!("{e:#}");
                    progress.note(&format!("WARNING: postdeploy failed; {release} stays live: {msg}"));
                    msg
                })
            });
            rec.phases = phases(progress);
            rec.error.clone_from(&postdeploy_error);
            home.save_release(app, &rec)?;
            progress.note(&format!("{app} {release} is live ({} in all)", total(progress)));
            Ok(DeployOutcome {
                app: app.clone(),
                release,
                commit,
                previous,
                web_port: started.web_port,
                url: record.listen.map(|l| format!("http://{l}/")),
                phases: rec.phases.clone(),
                postdeploy_error,
            })
        }
        Err((phase, e)) => {
            let _ = runtime.remove(app, release, plan.stop_grace);
            rec.status = ReleaseStatus::Failed;
            rec.error = Some(format!("{phase}: {e}"));
            rec.phases = phases(progress);
            home.save_release(app, &rec)?;
            Err(fail(phase, Box::new(e)).into())
        }
    }
}

fn build_and_start(
    runtime: &AnyRuntime,
    plan: &mut DeployPlan,
    repo: &Repo,
    progress: &mut Progress,
) -> Result<crate::runtime::Started, (&'static str, RuntimeError)> {
    progress
        .phase(&format!("Building {} from {}", plan.release, plan.commit.short()), |p| {
            runtime.build(plan, repo, p)
        })
        .map_err(|e| ("build", e))?;
    let plan = &*plan;
    progress
        .phase(
            if plan.mount {
                "Attaching the persistent filesystem"
            } else {
                "Skipping the persistent filesystem: none is enabled (`slipway mount enable` creates one)"
            },
            |p| runtime.attach_mount(plan, p),
        )
        .map_err(|e| ("mount", e))?;
    if let Some(script) = &plan.predeploy {
        progress
            .phase(&format!("Running predeploy {}", script.path), |p| runtime.run_script(plan, script, p))
            .map_err(|e| ("predeploy", e))?;
    }
    if let Some(release) = &plan.release_phase {
        // Heroku's release phase: once per deploy, with the mount, before anything starts.
        progress
            .phase(&format!("Running {}", release.shown()), |p| runtime.run_script(plan, release, p))
            .map_err(|e| ("release", e))?;
    }
    let types: Vec<String> = plan.processes.iter().map(|p| format!("{}={}", p.ptype, p.instances)).collect();
    progress
        .phase(&format!("Starting processes {}", types.join(" ")), |p| runtime.start(plan, p))
        .map_err(|e| ("start", e))
}

/// The switch: make the new release current (the commit point), then retire the old one.
fn switch(
    home: &Home,
    runtime: &AnyRuntime,
    plan: &DeployPlan,
    web_port: Option<u16>,
    rec: &mut ReleaseRecord,
    progress: &mut Progress,
) -> Result<Option<ReleaseId>, StateError> {
    let app = &plan.app;
    let mut record = home.load_app(app)?;
    let previous = record.current.replace(plan.release);
    record.stopped = false;
    // The router reads both from this one atomic write: new connections go to the new release
    // from here on, while open ones finish on the old release until it is retired below.
    record.web_port = web_port;
    home.save_app(&record)?;
    tracing::info!(previous = ?previous.map(|p| p.to_string()), "switched");
    if let Err(e) = crate::router::ensure_running(home, &record) {
        progress.note(&format!("WARNING: {e:#}; the app is served on its web port only"));
    }
    rec.status = ReleaseStatus::Current;
    home.save_release(app, rec)?;
    if let Some(old) = previous {
        // The record first: a crash before the folder is gone leaves a retired record whose
        // folder the next command removes, never a "current" record that is not current.
        if let Ok(mut old_rec) = home.load_release(app, old) {
            old_rec.status = ReleaseStatus::Retired;
            home.save_release(app, &old_rec)?;
        }
        let retired =
            progress.phase(&format!("Retiring {old}"), |_| runtime.remove(app, old, plan.stop_grace));
        if let Err(e) = retired {
            progress.note(&format!("WARNING: {old} did not stop cleanly ({e}); the next command retries"));
        }
    }
    Ok(previous)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The commit's Procfile and project.toml, parsed; project.toml's warnings go to `progress`.
pub(crate) fn read_config(
    repo: &Repo,
    commit: &CommitSha,
    progress: &Progress,
) -> Result<(Procfile, Option<project_toml::ProjectToml>), BoxError> {
    let mut files = repo.read_files(commit, &[config::PROCFILE, config::PROJECT_TOML])?.into_iter();
    let (procfile_text, project_text) = (files.next().flatten(), files.next().flatten());
    let text = procfile_text
        .ok_or_else(|| config::ConfigError::NoProcfile { path: PathBuf::from(config::PROCFILE) })?;
    let procfile = Procfile::parse(&text)?;
    for w in procfile.warnings() {
        progress.note(&format!("WARNING: {w}"));
    }
    let project = match project_text {
        None => None,
        Some(text) => {
            let parsed = project_toml::parse(&text)?;
            for w in &parsed.warnings {
                progress.note(&format!("WARNING: {w}"));
            }
            Some(parsed.project)
        }
    };
    Ok((procfile, project))
}

/// Refuses a predeploy or postdeploy path that a committed symlink leads out of the app, before
/// anything is built or run.
pub(crate) fn scripts_stay_in_app(
    repo: &Repo,
    commit: &CommitSha,
    project: &project_toml::ProjectToml,
) -> Result<(), BoxError> {
    let scripts = [("predeploy", &project.predeploy), ("postdeploy", &project.postdeploy)];
    for (key, path) in scripts {
        if let Some(path) = path {
            config::script_path::resolve(key, path, |p| repo.symlink_target(commit, p))??;
        }
    }
    Ok(())
}

fn phases(progress: &Progress) -> Vec<Phase> {
    progress
        .phases()
        .iter()
        .map(|(name, d)| Phase {
            name: name.clone(),
            millis: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        })
        .collect()
}

fn total(progress: &Progress) -> String {
    format_duration(progress.phases().iter().map(|(_, d)| *d).sum::<Duration>())
}
