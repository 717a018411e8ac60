//! The manifests a deploy applies, as plain data: `render(plan, settings, image) ->
//! Manifests`. No I/O; `slipway k8s render` prints them and the runtime applies them.
//!
//! - one PersistentVolumeClaim per app (`<app>-mount`), when the mount is enabled;
//! - one predeploy Job per release (`<app>-predeploy-<release>`, `backoffLimit: 0`,
//!   `restartPolicy: Never`), with the claim;
//! - one Deployment per Procfile type (`<app>-<type>`), updated in place by each release so
//!   that its rollout is gated by readiness probes; `revisionHistoryLimit: 0` makes the
//!   controller delete the old ReplicaSets;
//! - one Service for web (`<app>-web`).
//!
//! The claim is at `/mount` and at `<workdir>/../mount`, and the stack's `~/mount` link points at
//! `/mount`, as in the docker runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::settings::{AccessMode, KubeSettings};
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::plan::{DeployPlan, ScriptSpec};

/// The label every resource carries with its app's name.
pub const LABEL_APP: &str = "slipway.dev/app";
/// The label with the release a resource belongs to (`v3`).
pub const LABEL_RELEASE: &str = "slipway.dev/release";
/// The label with a Deployment's Procfile type.
pub const LABEL_TYPE: &str = "slipway.dev/type";
/// The label marking a predeploy Job's pods.
pub const LABEL_ROLE: &str = "slipway.dev/role";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "slipway");
/// The port web listens on in its container (given as `PORT`), as in the docker runtime.
pub const WEB_PORT: i32 = 5000;
const CONTAINER_UID: i64 = 1000;
const CONTAINER_HOME: &str = "/home/slipway";
const MOUNT_PATH: &str = "/mount";
const VOLUME: &str = "mount";

/// The release image and how it starts processes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRef {
    /// What the cluster pulls: `<registry>/slipway/<app>:<release>`, or the local tag.
    pub reference: String,
    /// The image's working directory (the app folder), if known.
    pub workdir: Option<String>,
    /// Built by buildpacks: the CNB launcher runs a process type by its name.
    pub launcher: bool,
}

/// What `render` reads.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub plan: &'a DeployPlan,
    pub settings: &'a KubeSettings,
    /// The claim's size in bytes (`mount enable --size`), when the mount is enabled.
    pub mount_bytes: Option<u64>,
    pub image: &'a ImageRef,
}

/// Everything a deploy applies, in the order it applies them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifests {
    pub claim: Option<PersistentVolumeClaim>,
    pub predeploy: Option<Job>,
    pub deployments: Vec<Deployment>,
    pub service: Option<Service>,
}

/// A Procfile that cannot become Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "process type {ptype:?} cannot name a Kubernetes Deployment ({name:?}): on the kubernetes runtime, types must \
         start and end with a letter or digit and `<app>-<type>` must fit in 63 characters; rename it in the Procfile"
    )]
    BadType { ptype: ProcessType, name: String },
    #[error(
        "process types {a:?} and {b:?} would both be Deployment {name:?} (Kubernetes names are lowercase, '_' \
         becomes '-'); rename one in the Procfile"
    )]
    SameName { a: ProcessType, b: ProcessType, name: String },
}

/// The claim's name: `<app>-mount`.
pub fn claim_name(app: &AppName) -> String {
    format!("{app}-mount")
}

/// A script Job's name: `<app>-predeploy-<release>` (or `postdeploy`).
pub fn job_name(app: &AppName, role: ScriptRole, release: ReleaseId) -> String {
    format!("{app}-{}-{release}", role.as_str())
}

/// Which project.toml script a Job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptRole {
    Predeploy,
    /// The Procfile's `release:` command (Heroku's release phase).
    Release,
    Postdeploy,
}

impl ScriptRole {
    /// The name used in Job names and the role label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Predeploy => "predeploy",
            Self::Release => "release",
            Self::Postdeploy => "postdeploy",
        }
    }
}

/// The web Service's name: `<app>-web`.
pub fn service_name(app: &AppName) -> String {
    format!("{app}-web")
}

/// A type's Deployment name: `<app>-<type>`, lowercase with `-` for `_`.
pub fn deployment_name(app: &AppName, ptype: &ProcessType) -> Result<String, RenderError> {
    let name = format!("{app}-{}", ptype.as_str().to_ascii_lowercase().replace('_', "-"));
    let label_ok = ptype.as_str().starts_with(|c: char| c.is_ascii_alphanumeric())
        && ptype.as_str().ends_with(|c: char| c.is_ascii_alphanumeric());
    if label_ok && super::settings::is_dns_label(&name) {
        Ok(name)
    } else {
        Err(RenderError::BadType { ptype: ptype.clone(), name })
    }
}

/// Renders the manifests of `input.plan`'s release. Pure.
pub fn render(input: &RenderInput<'_>) -> Result<Manifests, RenderError> {
    let plan = input.plan;
    let mut seen: BTreeMap<String, &ProcessType> = BTreeMap::new();
    let mut deployments = Vec::new();
    for p in &plan.processes {
        let name = deployment_name(&plan.app, &p.ptype)?;
        if let Some(a) = seen.insert(name.clone(), &p.ptype) {
            return Err(RenderError::SameName { a: a.clone(), b: p.ptype.clone(), name });
        }
        deployments.push(deployment(input, &name, &p.ptype, &p.command, p.instances));
    }
    let has_web = plan.processes.iter().any(|p| p.ptype.is_web());
    Ok(Manifests {
        claim: input.mount_bytes.map(|bytes| claim(input, bytes)),
        predeploy: plan.predeploy.as_ref().map(|s| script_job(input, ScriptRole::Predeploy, s)),
        deployments,
        service: has_web.then(|| service(input)),
    })
}

impl Manifests {
    /// The manifests as one multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser_error::Error> {
        let mut docs = Vec::new();
        if let Some(c) = &self.claim {
            docs.push(serde_saphyr::to_string(c)?);
        }
        if let Some(j) = &self.predeploy {
            docs.push(serde_saphyr::to_string(j)?);
        }
        for d in &self.deployments {
            docs.push(serde_saphyr::to_string(d)?);
        }
        if let Some(s) = &self.service {
            docs.push(serde_saphyr::to_string(s)?);
        }
        Ok(docs.iter().fold(String::new(), |mut all, d| {
            all.push_str("---\n");
            all.push_str(d);
            all
        }))
    }
}

fn labels(app: &AppName, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = [(LABEL_APP, app.as_str()), MANAGED_BY]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    l
}

fn meta(input: &RenderInput<'_>, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(input.settings.namespace.clone()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn claim(input: &RenderInput<'_>, bytes: u64) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(input, &claim_name(&input.plan.app), labels(&input.plan.app, &[])),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![input.settings.access_mode.as_k8s().to_owned()]),
            storage_class_name: input.settings.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(bytes.to_string()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// How a script runs: a file by path, or the Procfile's `release:` line as a Bash command.
pub fn script_args(script: &ScriptSpec) -> Vec<String> {
    match &script.command {
        Some(line) => vec!["bash".to_owned(), "-c".to_owned(), line.clone()],
        None => vec!["bash".to_owned(), script.path.clone()],
    }
}

/// A Job that runs `script` once in the release image, with the claim: no retry
/// (`backoffLimit: 0`, `restartPolicy: Never`), killed at the script's timeout.
pub fn script_job(input: &RenderInput<'_>, role: ScriptRole, script: &ScriptSpec) -> Job {
    let plan = input.plan;
    let release = plan.release.to_string();
    let labels = labels(&plan.app, &[(LABEL_RELEASE, release.as_str()), (LABEL_ROLE, role.as_str())]);
    let args = script_args(script);
    let container = container(input, role.as_str(), args, env(input, None, role.as_str()));
    Job {
        metadata: meta(input, &job_name(&plan.app, role, plan.release), labels.clone()),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(secs(script.timeout).max(1)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(pod(input, container, "Never")),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

fn deployment(
    input: &RenderInput<'_>,
    name: &str,
    ptype: &ProcessType,
    command: &str,
    instances: u32,
) -> Deployment {
    let plan = input.plan;
    let release = plan.release.to_string();
    let selector = labels(&plan.app, &[(LABEL_TYPE, ptype.as_str())]);
    let pod_labels = labels(&plan.app, &[(LABEL_TYPE, ptype.as_str()), (LABEL_RELEASE, release.as_str())]);
    let args = if input.image.launcher {
        vec![ptype.to_string()]
    } else {
        vec!["bash".to_owned(), "-c".to_owned(), command.to_owned()]
    };
    let mut c = container(input, ptype.as_str(), args, env(input, Some(ptype), ptype.as_str()));
    if ptype.is_web() {
        c.ports = Some(vec![ContainerPort {
            container_port: WEB_PORT,
            name: Some("http".into()),
            ..ContainerPort::default()
        }]);
        c.readiness_probe = Some(readiness(plan));
    }
    let strategy = match input.settings.access_mode {
        // Zero unavailable: the old pods serve until new ones pass their readiness probe.
        AccessMode::Rwx => DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        },
        // A ReadWriteOnce claim cannot be attached by a surge pod on another node.
        AccessMode::Rwo => DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None },
    };
    let mut d_labels = selector.clone();
    d_labels.insert(LABEL_RELEASE.to_owned(), release);
    Deployment {
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([("slipway.dev/commit".to_owned(), plan.commit.to_string())])),
            ..meta(input, name, d_labels)
        },
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(instances).unwrap_or(i32::MAX)),
            revision_history_limit: Some(0),
            progress_deadline_seconds: Some(i32::try_from(secs(plan.web_timeout)).unwrap_or(i32::MAX).max(1)),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    termination_grace_period_seconds: Some(secs(plan.stop_grace)),
                    ..pod(input, c, "Always")
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service(input: &RenderInput<'_>) -> Service {
    let app = &input.plan.app;
    Service {
        metadata: meta(input, &service_name(app), labels(app, &[])),
        spec: Some(ServiceSpec {
            selector: Some(labels(app, &[(LABEL_TYPE, "web")])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Ready once web answers the health check path with 2xx/3xx, or, without one, accepts TCP:
/// the same rule as the local and docker runtimes' switch gate.
fn readiness(plan: &DeployPlan) -> Probe {
    let base = Probe {
        period_seconds: Some(2),
        failure_threshold: Some(3),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    match &plan.healthcheck {
        Some(path) => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.as_str().to_owned()),
                port: IntOrString::String("http".into()),
                ..HTTPGetAction::default()
            }),
            ..base
        },
        None => Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::String("http".into()), host: None }),
            ..base
        },
    }
}

fn env(input: &RenderInput<'_>, ptype: Option<&ProcessType>, dyno: &str) -> Vec<EnvVar> {
    let var = |k: &str, v: &str| EnvVar { name: k.to_owned(), value: Some(v.to_owned()), value_from: None };
    let mut vars: Vec<EnvVar> = input.plan.env.iter().map(|(k, v)| var(k, v)).collect();
    vars.push(var("HOME", CONTAINER_HOME));
    vars.push(var("DYNO", dyno));
    if ptype.is_some_and(ProcessType::is_web) {
        vars.push(var("PORT", &WEB_PORT.to_string()));
    }
    vars
}

fn container(input: &RenderInput<'_>, name: &str, args: Vec<String>, env: Vec<EnvVar>) -> Container {
    let mounts = input.mount_bytes.map(|_| {
        mount_targets(input.image.workdir.as_deref())
            .into_iter()
            .map(|path| VolumeMount { name: VOLUME.to_owned(), mount_path: path, ..VolumeMount::default() })
            .collect()
    });
    Container {
        name: name.to_ascii_lowercase().replace('_', "-"),
        image: Some(input.image.reference.clone()),
        args: Some(args),
        env: Some(env),
        volume_mounts: mounts,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// `/mount`, and `<workdir>/../mount` when that is elsewhere.
fn mount_targets(workdir: Option<&str>) -> Vec<String> {
    let mut targets = BTreeSet::from([MOUNT_PATH.to_owned()]);
    if let Some(parent) = workdir.and_then(|w| Path::new(w).parent()) {
        targets.insert(parent.join("mount").display().to_string());
    }
    targets.into_iter().collect()
}

fn pod(input: &RenderInput<'_>, container: Container, restart: &str) -> PodSpec {
    let app = &input.plan.app;
    PodSpec {
        containers: vec![container],
        restart_policy: Some(restart.to_owned()),
        // The stack's user owns the app folder and HOME; fsGroup makes the claim writable to it.
        security_context: Some(PodSecurityContext {
            run_as_user: Some(CONTAINER_UID),
            run_as_group: Some(CONTAINER_UID),
            fs_group: Some(CONTAINER_UID),
            run_as_non_root: Some(true),
            ..PodSecurityContext::default()
        }),
        volumes: input.mount_bytes.map(|_| {
            vec![Volume {
                name: VOLUME.to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(app),
                    read_only: None,
                }),
                ..Volume::default()
            }]
        }),
        // A ReadWriteOnce claim attaches to one node: every pod of the app (and the Job)
        // must land where the others are, or it waits forever on a Multi-Attach error.
        affinity: (input.settings.access_mode == AccessMode::Rwo).then(|| Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(LABEL_APP.to_owned(), app.to_string())])),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAffinity::default()
            }),
            ..Affinity::default()
        }),
        ..PodSpec::default()
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
