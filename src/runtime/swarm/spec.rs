//! The swarm objects of an app, as data: names, labels, image references, mounts and the
//! service specs of process types, predeploy and one-off jobs. No I/O here.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, HealthConfig, Mount, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use serde::{Deserialize, Serialize};

use crate::health::HealthPath;
use crate::ids::{AppName, ProcessType, ReleaseId};
use crate::runtime::docker::container::WEB_PORT;
use crate::runtime::docker::labels::{APP, KIND, PROCESS, RELEASE};
use crate::runtime::docker::{CONTAINER_HOME, CONTAINER_USER, MOUNT_PATH};

/// Label value of [`KIND`] on the services of process types.
pub const KIND_PROCESS: &str = "swarm-process";
/// Label value of [`KIND`] on run-to-completion jobs (predeploy, one-offs, checks, cleanup).
pub const KIND_JOB: &str = "swarm-job";

/// How every node reaches the app's persistent filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SharedMount {
    /// An NFS export, mounted by each node's engine through the `local` volume driver.
    Nfs { addr: String, path: String },
    /// A directory every node has at the same path (the operator's shared filesystem).
    Path { dir: String },
}

impl std::fmt::Display for SharedMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nfs { addr, path } => write!(f, "nfs {addr}:{path}"),
            Self::Path { dir } => write!(f, "the shared path {dir}"),
        }
    }
}

/// The service of a process type: one per type, kept across releases (updated in place).
pub fn service_name(app: &AppName, ptype: &ProcessType) -> String {
    format!("slipway-{app}-{ptype}")
}

/// The service of a release's job, e.g. `predeploy`.
pub fn job_name(app: &AppName, release: ReleaseId, what: &str) -> String {
    format!("slipway-{app}-{release}-{what}")
}

/// The repository of an app's images in the registry (without the tag).
pub fn image_repo(app: &AppName) -> String {
    format!("slipway/{app}")
}

/// The image of a release as the nodes pull it.
pub fn image_ref(registry: &str, app: &AppName, release: ReleaseId) -> String {
    format!("{registry}/{}:{release}", image_repo(app))
}

/// The volume name of an NFS mount on each node.
pub fn nfs_volume_name(app: &AppName) -> String {
    format!("slipway-{app}-mount")
}

/// Labels of every service of an app.
pub fn labels(
    app: &AppName,
    release: ReleaseId,
    kind: &str,
    ptype: Option<&ProcessType>,
) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (APP.to_owned(), app.to_string()),
        (RELEASE.to_owned(), release.to_string()),
        (KIND.to_owned(), kind.to_owned()),
    ]);
    if let Some(t) = ptype {
        l.insert(PROCESS.to_owned(), t.to_string());
    }
    l
}

/// The mounts that put the shared filesystem at `/mount` and `<workdir>/../mount`.
pub fn mounts(app: &AppName, shared: &SharedMount, workdir: &str) -> Vec<Mount> {
    let mut targets = vec![MOUNT_PATH.to_owned()];
    if let Some(parent) = std::path::Path::new(workdir).parent() {
        let sibling = parent.join("mount").display().to_string();
        if sibling != MOUNT_PATH {
            targets.push(sibling);
        }
    }
    targets
        .into_iter()
        .map(|target| match shared {
            SharedMount::Path { dir } => Mount {
                target: Some(target),
                source: Some(dir.clone()),
                typ: Some(MountType::BIND),
                ..Default::default()
            },
            SharedMount::Nfs { addr, path } => Mount {
                target: Some(target),
                source: Some(nfs_volume_name(app)),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    driver_config: Some(MountVolumeOptionsDriverConfig {
                        name: Some("local".to_owned()),
                        options: Some(HashMap::from([
                            ("type".to_owned(), "nfs".to_owned()),
                            ("o".to_owned(), format!("addr={addr},rw,nfsvers=4")),
                            ("device".to_owned(), format!(":{path}")),
                        ])),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
        .collect()
}

/// What a task of the app runs: image, command, environment and the mount.
#[derive(Debug, Clone)]
pub struct TaskInput<'a> {
    pub app: &'a AppName,
    pub release: ReleaseId,
    pub image: String,
    pub workdir: String,
    /// The container's CMD (the image's entrypoint stays).
    pub args: Vec<String>,
    /// Config vars as `NAME=value`.
    pub env: Vec<String>,
    /// `DYNO`, where `{{.Task.Slot}}` becomes the replica's number.
    pub dyno: String,
    pub shared: Option<&'a SharedMount>,
    pub stop_grace: Duration,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn task_spec(input: &TaskInput<'_>, web: bool, restart: TaskSpecRestartPolicyConditionEnum) -> TaskSpec {
    let mut env = vec![format!("HOME={CONTAINER_HOME}")];
    if web {
        env.push(format!("PORT={WEB_PORT}"));
    }
    env.extend(input.env.iter().cloned());
    env.push(format!("DYNO={}", input.dyno));
    TaskSpec {
        container_spec: Some(TaskSpecContainerSpec {
            image: Some(input.image.clone()),
            args: Some(input.args.clone()),
            env: Some(env),
            user: Some(CONTAINER_USER.to_owned()),
            dir: Some(input.workdir.clone()),
            mounts: input.shared.map(|s| mounts(input.app, s, &input.workdir)),
            stop_grace_period: Some(nanos(input.stop_grace)),
            init: Some(true),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(restart),
            delay: Some(nanos(Duration::from_secs(1))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The health check swarm gates `start-first` on: web must accept connections on `$PORT`, and
/// answer `path` with 2xx/3xx when one is set. Bash's `/dev/tcp`: the stack has no curl.
pub fn web_health(path: Option<&HealthPath>, start_period: Duration) -> HealthConfig {
    let probe = match path {
        // The path is the app's own setting; quoted all the same, it stays one word.
        Some(p) => format!(
            "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' '{}' >&3 \
             && read -r _ code _ <&3 && [[ $code == [23]* ]]",
            p.as_str().replace('\'', r"'\''")
        ),
        None => "exec 3<>/dev/tcp/127.0.0.1/$PORT".to_owned(),
    };
    HealthConfig {
        test: Some(vec!["CMD".to_owned(), "bash".to_owned(), "-c".to_owned(), probe]),
        interval: Some(nanos(Duration::from_secs(1))),
        timeout: Some(nanos(Duration::from_secs(3))),
        retries: Some(3),
        start_period: Some(nanos(start_period)),
        ..Default::default()
    }
}

/// What the web service publishes and how it is checked.
#[derive(Debug, Clone, Copy)]
pub struct WebService<'a> {
    /// The port each node running a replica publishes (host mode).
    pub port: u16,
    /// The app's health check path, if it has one.
    pub healthcheck: Option<&'a HealthPath>,
    /// How long a new replica has to pass before swarm counts its failures.
    pub start_period: Duration,
    /// The swarm's ready, active nodes: a host-mode port admits one replica per node.
    pub nodes: usize,
}

/// The order in which swarm replaces a service's replicas. The new one first keeps the old
/// serving until its successor is healthy, but a web replica can only start first on a node
/// whose port is free: with a replica on every node, it would wait forever, so the old one
/// stops first there, one at a time, the others serving meanwhile.
pub fn update_order(replicas: u32, web: Option<&WebService<'_>>) -> ServiceSpecUpdateConfigOrderEnum {
    match web {
        Some(w) if usize::try_from(replicas).unwrap_or(usize::MAX) >= w.nodes => {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        }
        _ => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
    }
}

/// The service of one process type at a release.
pub fn process_service(
    input: &TaskInput<'_>,
    ptype: &ProcessType,
    replicas: u32,
    web: Option<WebService<'_>>,
) -> ServiceSpec {
    let mut task = task_spec(input, web.is_some(), TaskSpecRestartPolicyConditionEnum::ANY);
    if let (Some(c), Some(w)) = (task.container_spec.as_mut(), web) {
        c.health_check = Some(web_health(w.healthcheck, w.start_period));
    }
    let order = update_order(replicas, web.as_ref());
    ServiceSpec {
        name: Some(service_name(input.app, ptype)),
        labels: Some(labels(input.app, input.release, KIND_PROCESS, Some(ptype))),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(replicas)) }),
            ..Default::default()
        }),
        // One replica at a time (see `update_order`; one at a time also because a host-mode
        // port admits one replica per node). A replica that fails within `monitor` rolls the
        // whole service back; later failures are slipway's settle period's
        // (rollout::settle), so swarm's own watch can be short.
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            order: Some(order),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(Duration::from_secs(1))),
            ..Default::default()
        }),
        // A rollback replaces replicas that are failing: each stops first, which frees its
        // node's port for the old release's replica, one at a time so the rest keep serving.
        // Starting first, all at once, needed a free node per replica and could leave the old
        // release's replicas pending behind the failing ones' ports.
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            order: Some(ServiceSpecRollbackConfigOrderEnum::STOP_FIRST),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(Duration::from_secs(1))),
            ..Default::default()
        }),
        endpoint_spec: web.map(|w| EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(i64::from(WEB_PORT)),
                published_port: Some(i64::from(w.port)),
                // Each node running a replica publishes it: the routing mesh (ingress) needs
                // IPVS, which not every kernel has; an operator's load balancer spreads load.
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A run-to-completion job (one task, never restarted), optionally pinned to a node.
pub fn job_service(name: String, input: &TaskInput<'_>, node: Option<&str>) -> ServiceSpec {
    let mut task = task_spec(input, false, TaskSpecRestartPolicyConditionEnum::NONE);
    if let Some(id) = node {
        task.placement = Some(TaskSpecPlacement {
            constraints: Some(vec![format!("node.id=={id}")]),
            ..Default::default()
        });
    }
    ServiceSpec {
        name: Some(name),
        labels: Some(labels(input.app, input.release, KIND_JOB, None)),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: Some(1),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A run-to-completion job with one task on every node that can run tasks; each task's
/// hostname is its node's, so what it prints says where it ran.
// bollard models the API's empty `GlobalJob: {}` object as a map of units.
#[allow(clippy::zero_sized_map_values)]
pub fn global_job_service(name: String, input: &TaskInput<'_>) -> ServiceSpec {
    let mut task = task_spec(input, false, TaskSpecRestartPolicyConditionEnum::NONE);
    if let Some(c) = task.container_spec.as_mut() {
        c.hostname = Some("{{.Node.Hostname}}".to_owned());
    }
    ServiceSpec {
        name: Some(name),
        labels: Some(labels(input.app, input.release, KIND_JOB, None)),
        task_template: Some(task),
        mode: Some(ServiceSpecMode { global_job: Some(HashMap::new()), ..Default::default() }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(app: &'a AppName, shared: Option<&'a SharedMount>) -> TaskInput<'a> {
        TaskInput {
            app,
            release: "v3".parse().unwrap(),
            image: image_ref("reg:5000", app, "v3".parse().unwrap()),
            workdir: "/workspace".to_owned(),
            args: vec!["bash".to_owned(), "-c".to_owned(), "python3 app.py".to_owned()],
            env: vec!["A=1".to_owned()],
            dyno: "web.{{.Task.Slot}}".to_owned(),
            shared,
            stop_grace: Duration::from_secs(5),
        }
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn web_service_updates_start_first_behind_its_health_check() {
        let app: AppName = "shop".parse().unwrap();
        let shared = SharedMount::Path { dir: "/srv/shared/shop".to_owned() };
        let web: ProcessType = "web".parse().unwrap();
        let health = HealthPath::parse("/up").unwrap();
        let w = WebService {
            port: 30080,
            healthcheck: Some(&health),
            start_period: Duration::from_secs(30),
            nodes: 3,
        };
        let s = process_service(&input(&app, Some(&shared)), &web, 2, Some(w));
        assert_eq!(s.name.as_deref(), Some("slipway-shop-web"));
        let l = s.labels.unwrap();
        assert_eq!(l[RELEASE], "v3");
        assert_eq!(l[PROCESS], "web");
        let u = s.update_config.unwrap();
        assert_eq!(u.order, Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST));
        assert_eq!(u.failure_action, Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK));
        let r = s.rollback_config.unwrap();
        assert_eq!((r.parallelism, r.order), (Some(1), Some(ServiceSpecRollbackConfigOrderEnum::STOP_FIRST)));
        assert_eq!(s.mode.unwrap().replicated.unwrap().replicas, Some(2));
        let c = s.task_template.unwrap().container_spec.unwrap();
        assert_eq!(c.image.as_deref(), Some("reg:5000/slipway/shop:v3"));
        let env = c.env.unwrap();
        assert!(env.contains(&"PORT=5000".to_owned()) && env.contains(&"DYNO=web.{{.Task.Slot}}".to_owned()));
        let probe = c.health_check.unwrap().test.unwrap().join(" ");
        assert!(probe.contains("GET %s HTTP/1.0") && probe.contains("'/up'"), "{probe}");
        let m = c.mounts.unwrap();
        // The app folder's sibling is /mount itself here; elsewhere it is a second target.
        assert_eq!(m.len(), 1);
        let nested = mounts(&app, &shared, "/home/slipway/app");
        let targets: Vec<_> = nested.iter().filter_map(|m| m.target.as_deref()).collect();
        assert_eq!(targets, ["/mount", "/home/slipway/mount"]);
        assert!(
            m.iter()
                .all(|m| m.source.as_deref() == Some("/srv/shared/shop") && m.typ == Some(MountType::BIND))
        );
        let port = &s.endpoint_spec.unwrap().ports.unwrap()[0];
        assert_eq!((port.target_port, port.published_port), (Some(5000), Some(30080)));
    }

    #[test]
    fn web_on_every_node_stops_the_old_replica_first_and_other_types_never_do() {
        let w = |nodes| WebService { port: 30080, healthcheck: None, start_period: Duration::ZERO, nodes };
        assert_eq!(update_order(2, Some(&w(3))), ServiceSpecUpdateConfigOrderEnum::START_FIRST);
        assert_eq!(update_order(3, Some(&w(3))), ServiceSpecUpdateConfigOrderEnum::STOP_FIRST);
        assert_eq!(update_order(4, Some(&w(3))), ServiceSpecUpdateConfigOrderEnum::STOP_FIRST);
        assert_eq!(update_order(1, Some(&w(0))), ServiceSpecUpdateConfigOrderEnum::STOP_FIRST);
        assert_eq!(update_order(5, None), ServiceSpecUpdateConfigOrderEnum::START_FIRST);
    }

    #[test]
    fn worker_service_has_no_port_and_nfs_mounts_name_the_export() {
        let app: AppName = "shop".parse().unwrap();
        let shared = SharedMount::Nfs { addr: "10.0.0.9".to_owned(), path: "/exports/shop".to_owned() };
        let worker: ProcessType = "worker".parse().unwrap();
        let s = process_service(&input(&app, Some(&shared)), &worker, 1, None);
        assert!(s.endpoint_spec.is_none());
        let c = s.task_template.unwrap().container_spec.unwrap();
        assert!(c.health_check.is_none());
        let m = &c.mounts.unwrap()[0];
        assert_eq!(m.source.as_deref(), Some("slipway-shop-mount"));
        let opts = m.volume_options.clone().unwrap().driver_config.unwrap().options.unwrap();
        assert_eq!(opts["type"], "nfs");
        assert_eq!(opts["device"], ":/exports/shop");
        assert!(opts["o"].starts_with("addr=10.0.0.9,"));
    }

    #[test]
    fn jobs_run_once_and_can_be_pinned() {
        let app: AppName = "shop".parse().unwrap();
        let s =
            job_service(job_name(&app, "v3".parse().unwrap(), "predeploy"), &input(&app, None), Some("n1"));
        assert_eq!(s.name.as_deref(), Some("slipway-shop-v3-predeploy"));
        let mode = s.mode.unwrap().replicated_job.unwrap();
        assert_eq!(mode.total_completions, Some(1));
        let t = s.task_template.unwrap();
        assert_eq!(t.restart_policy.unwrap().condition, Some(TaskSpecRestartPolicyConditionEnum::NONE));
        assert_eq!(t.placement.unwrap().constraints.unwrap(), vec!["node.id==n1".to_owned()]);
        assert_eq!(s.labels.unwrap()[KIND], KIND_JOB);
        let g = global_job_service(job_name(&app, "v3".parse().unwrap(), "check"), &input(&app, None));
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["Mode"], serde_json::json!({ "GlobalJob": {} }));
        assert_eq!(json["TaskTemplate"]["ContainerSpec"]["Hostname"], "{{.Node.Hostname}}");
        assert_eq!(json["TaskTemplate"]["RestartPolicy"]["Condition"], "none");
    }
}
