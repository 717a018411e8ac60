//! `slipway k8s render`, and the kubernetes flags of `apps create`.

// Doc comments here are `--help` text, where backticks around Kubernetes kinds would show.
#![allow(clippy::doc_markdown)]

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Exit;
use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::plan::{self, Overrides, PlanInput};
use crate::progress::Progress;
use crate::runtime::kubernetes::render::{self, ImageRef, RenderInput};
use crate::runtime::kubernetes::runtime::{mount_bytes, registry_repo};
use crate::runtime::kubernetes::settings::{self, AccessMode, KubeSettings};
use crate::source::Repo;
use crate::state::{Home, RuntimeKind};

/// `slipway k8s ...`
#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Print the manifests (YAML) a deploy of a kubernetes app would apply, without a cluster:
    /// for GitOps, or to review before `slipway deploy`
    Render {
        app: AppName,
        /// The revision to render [default: the current release's commit, else HEAD]
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// The git repository [default: the app's last deployed one, else its push repository]
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
    },
}

/// The `apps create` flags of kubernetes apps.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeCreateArgs {
    /// Kubernetes: the namespace of the app's resources [default: default]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubernetes: the storage class of the mount's claim (ReadWriteMany: EFS, Azure Files,
    /// Filestore...) [default: the cluster's default class]
    #[arg(long, value_name = "SC")]
    pub storage_class: Option<String>,
    /// Kubernetes: rwx (every node mounts the claim) or rwo (one node: every pod pinned to it,
    /// Deployments recreated) [default: rwx]
    #[arg(long, value_enum, value_name = "MODE")]
    pub access_mode: Option<AccessMode>,
    /// Kubernetes: the registry release images are pushed to and pulled from
    /// (HOST, HOST:PORT or HOST:PORT/PATH) [default: none: the cluster must have the local tag]
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
}

impl KubeCreateArgs {
    /// The settings of a new app of `runtime`; None for other runtimes, which refuse the flags.
    pub fn settings(&self, runtime: RuntimeKind) -> Result<Option<KubeSettings>, Refusal> {
        let given = self.namespace.is_some()
            || self.storage_class.is_some()
            || self.access_mode.is_some()
            || self.registry.is_some();
        if runtime != RuntimeKind::Kubernetes {
            return if given {
                Err(Refusal::Usage(
                    "--namespace, --storage-class, --access-mode and --registry are for --runtime kubernetes"
                        .into(),
                ))
            } else {
                Ok(None)
            };
        }
        let defaults = KubeSettings::default();
        let s = KubeSettings {
            namespace: self.namespace.clone().unwrap_or(defaults.namespace),
            storage_class: self.storage_class.clone(),
            access_mode: self.access_mode.unwrap_or_default(),
            registry: self.registry.clone(),
        };
        s.validate().map_err(|e| Refusal::Usage(e.to_string()))?;
        Ok(Some(s))
    }
}

pub use crate::runtime::kubernetes::settings::RWO_WARNING;

/// Run a `k8s` subcommand.
pub fn run(home: &Home, cmd: K8sCommand) -> anyhow::Result<Exit> {
    match cmd {
        K8sCommand::Render { app, rev, repo } => render_cmd(home, &app, rev.as_deref(), repo),
    }
}

fn render_cmd(home: &Home, app: &AppName, rev: Option<&str>, repo: Option<PathBuf>) -> anyhow::Result<Exit> {
    let record = home.load_app(app)?;
    let settings = settings::load(home, app)?;
    let dir = repo.or_else(|| record.repo.clone()).unwrap_or_else(|| home.git_repo(app));
    let mut repo = Repo::open(&dir)?;
    // Without --rev: the running release as it is, else what a push of HEAD would deploy.
    let current = record.current.and_then(|c| home.load_release(app, c).ok()).filter(|_| rev.is_none());
    let (release, commit) = match &current {
        Some(r) => (r.id, r.commit.clone()),
        None => (home.next_release_id(app)?, repo.resolve(rev.unwrap_or("HEAD"))?),
    };
    let progress = Progress::new(true);
    let (procfile, project) = crate::deploy::read_config(&repo, &commit, &progress)
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("cannot read the config of commit {}", commit.short()))?;
    if let Some(p) = &project {
        crate::deploy::scripts_stay_in_app(&repo, &commit, p).map_err(|e| anyhow::anyhow!(e))?;
    }
    let mount_enabled = crate::mount::settings(&home.app(app))?.is_some_and(|s| s.enabled);
    let dockerfile = repo.has_file(&commit, "Dockerfile")?;
    let plan = plan::plan(&PlanInput {
        app: &record,
        release,
        commit: commit.clone(),
        procfile: &procfile,
        project: project.as_ref(),
        mount_enabled,
        overrides: &Overrides { allow_no_web: true, ..Overrides::default() },
        running_web: None,
        has_dockerfile: dockerfile,
    })?;
    let local = crate::runtime::docker::labels::image_tag(app, release);
    let image = ImageRef {
        reference: settings
            .registry
            .as_ref()
            .map_or(local, |r| format!("{}:{release}", registry_repo(r, app))),
        // A buildpack image's app folder is /workspace; a Dockerfile's is known once built.
        workdir: (!dockerfile).then(|| "/workspace".to_owned()),
        launcher: !dockerfile,
    };
    let mount_bytes = mount_bytes(home, &plan)?;
    let manifests =
        render::render(&RenderInput { plan: &plan, settings: &settings, mount_bytes, image: &image })?;
    let yaml = manifests.to_yaml().context("cannot write the manifests as YAML")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# slipway k8s render {app}: release {release} from commit {}", commit.short())?;
    out.write_all(yaml.as_bytes())?;
    if settings.access_mode == AccessMode::Rwo {
        eprintln!("{RWO_WARNING}");
    }
    if !mount_enabled {
        eprintln!("note: no mount enabled (`slipway mount enable {app} --size SIZE`): no claim rendered");
    }
    Ok(Exit::Ok)
}
