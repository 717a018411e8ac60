//! Where requests go now: the ports of the current release's healthy web instances, and how
//! patient to be with request bodies.
//!
//! Every request asks, so that it goes to the release current when it arrives. The answer is
//! cached behind a stat of each file it comes from (the app record, and on the local runtime
//! the supervisor's status file): both are replaced by a rename on every change, so an
//! unchanged stat means unchanged contents, and a request costs two stats, not reads. On the
//! docker runtime the engine is asked about once a second, and at once when the release changes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::ids::{AppName, ReleaseId};
use crate::state::{BodyLimits, Home, RuntimeKind};
use crate::supervise::status::{ProcessState, SupervisorStatus};

/// How often the engine is asked where a docker release's web containers listen.
const DOCKER_EVERY: Duration = Duration::from_secs(1);

/// What a request needs to know: where web listens, and the body limits.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Ports on 127.0.0.1 of the current release's web instances; empty: nothing to send to.
    pub(crate) ports: Arc<[u16]>,
    /// The app's request body limits.
    pub(crate) limits: BodyLimits,
}

/// Which version of a file was read: a rename makes a new inode, a write a new mtime.
type Stamp = (u64, u64, i64, i64, u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

/// The web ports read from a release's status file, and which version of the file it was.
type StatusSeen = (ReleaseId, Stamp, Arc<[u16]>);

/// The part of the app record the router uses.
#[derive(Debug, Clone)]
struct RecordView {
    runtime: RuntimeKind,
    /// The release to serve: None with no release, or after `ps stop`.
    serving: Option<ReleaseId>,
    web_port: Option<u16>,
    limits: BodyLimits,
}

/// The web ports a supervisor's status offers: its instances that are up, or, when none is
/// (all restarting), every web port it knows, since a status may lag its processes. Pure.
pub(crate) fn local_web_ports(status: &SupervisorStatus) -> Vec<u16> {
    let web = || status.instances.iter().filter(|i| i.ptype.is_web());
    let up: Vec<u16> = web().filter(|i| i.state == ProcessState::Up).filter_map(|i| i.port).collect();
    if up.is_empty() { web().filter_map(|i| i.port).collect() } else { up }
}

/// The router's view of its app, cached behind stats.
pub(crate) struct Target {
    home: Home,
    app: AppName,
    record: Mutex<Option<(Stamp, RecordView)>>,
    status: Mutex<Option<StatusSeen>>,
    docker: Mutex<Option<(ReleaseId, Arc<[u16]>)>>,
    docker_wanted: Notify,
}

impl Target {
    pub(crate) fn new(home: Home, app: AppName) -> Self {
        Self {
            home,
            app,
            record: Mutex::new(None),
            status: Mutex::new(None),
            docker: Mutex::new(None),
            docker_wanted: Notify::new(),
        }
    }

    fn view(&self) -> Option<RecordView> {
        let path = self.home.app(&self.app).record();
        let now = stamp(&path);
        let mut seen = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(now), Some((then, view))) = (now, seen.as_ref())
            && now == *then
        {
            return Some(view.clone());
        }
        let record = self.home.load_app(&self.app).ok()?;
        let view = RecordView {
            runtime: record.runtime,
            serving: record.current.filter(|_| !record.stopped),
            web_port: record.web_port,
            limits: record.body_limits,
        };
        *seen = now.map(|n| (n, view.clone()));
        Some(view)
    }

    /// Where a request arriving now goes.
    pub(crate) fn route(&self) -> Route {
        let Some(view) = self.view() else {
            return Route { ports: Arc::from([]), limits: BodyLimits::DEFAULT };
        };
        let ports = match view.serving {
            None => Arc::from([]),
            Some(release) => {
                let found = match view.runtime {
                    RuntimeKind::Local => self.local_ports(release),
                    RuntimeKind::Docker => self.docker_ports(release),
                    // Served on the cluster (a Kubernetes Service, or the swarm's nodes), not on
                    // this machine.
                    RuntimeKind::Kubernetes | RuntimeKind::Swarm => None,
                };
                // Until the instances are known (a status not yet written, the engine not yet
                // asked), the record's web port: web.1, which the switch checked.
                found.filter(|p| !p.is_empty()).unwrap_or_else(|| view.web_port.into_iter().collect())
            }
        };
        Route { ports, limits: view.limits }
    }

    fn local_ports(&self, release: ReleaseId) -> Option<Arc<[u16]>> {
        let path = self.home.app(&self.app).release(release).status();
        let now = stamp(&path)?;
        let mut seen = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((r, then, ports)) = seen.as_ref()
            && *r == release
            && *then == now
        {
            return Some(ports.clone());
        }
        let status = SupervisorStatus::read(&path).filter(|s| s.release == release)?;
        let ports: Arc<[u16]> = local_web_ports(&status).into();
        *seen = Some((release, now, ports.clone()));
        Some(ports)
    }

    fn docker_ports(&self, release: ReleaseId) -> Option<Arc<[u16]>> {
        let seen = self.docker.lock().unwrap_or_else(PoisonError::into_inner);
        match seen.as_ref() {
            Some((r, ports)) if *r == release => Some(ports.clone()),
            _ => {
                self.docker_wanted.notify_one();
                None
            }
        }
    }

    /// Keeps the docker release's web ports fresh: once a second, and at once when a request
    /// finds the release changed. Runs for the router's life; engine errors are retried.
    pub(crate) async fn follow_docker(self: Arc<Self>, log: super::log::RouterLog) {
        let mut docker = None;
        loop {
            if let Some(RecordView { runtime: RuntimeKind::Docker, serving: Some(release), .. }) = self.view()
            {
                if docker.is_none() {
                    docker =
                        crate::runtime::docker::connect().await.map_err(|e| log.every("docker", &e)).ok();
                }
                if let Some(d) = &docker {
                    match crate::runtime::docker::routes::web_ports(d, &self.app, release).await {
                        Ok(ports) => {
                            *self.docker.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some((release, ports.into()));
                        }
                        Err(e) => log.every("docker", &e),
                    }
                }
            }
            let _ = tokio::time::timeout(DOCKER_EVERY, self.docker_wanted.notified()).await;
        }
    }

    /// Whether the app runs on the docker runtime.
    pub(crate) fn is_docker(&self) -> bool {
        self.view().is_some_and(|v| v.runtime == RuntimeKind::Docker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AppRecord;
    use crate::supervise::status::InstanceStatus;

    fn instance(ptype: &str, index: u32, state: ProcessState, port: Option<u16>) -> InstanceStatus {
        InstanceStatus {
            ptype: ptype.parse().unwrap(),
            index,
            state,
            pid: None,
            port,
            restarts: 0,
            started_at_ms: None,
            last_exit: None,
            node: None,
        }
    }

    fn status(release: ReleaseId, instances: Vec<InstanceStatus>) -> SupervisorStatus {
        SupervisorStatus { app: "tgt".parse().unwrap(), release, supervisor_pid: 1, instances }
    }

    #[test]
    fn up_web_instances_get_traffic_and_restarting_ones_do_not() {
        let s = status(
            ReleaseId::new(1),
            vec![
                instance("web", 1, ProcessState::Up, Some(4001)),
                instance("web", 2, ProcessState::Crashed, Some(4002)),
                instance("web", 3, ProcessState::Up, Some(4003)),
                instance("worker", 1, ProcessState::Up, None),
            ],
        );
        assert_eq!(local_web_ports(&s), [4001, 4003]);
        let none_up = status(ReleaseId::new(1), vec![instance("web", 1, ProcessState::Starting, Some(4001))]);
        assert_eq!(local_web_ports(&none_up), [4001], "a lagging status is still tried");
    }

    #[test]
    fn the_route_follows_every_rewrite_of_the_record_and_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_owned());
        let app: AppName = "tgt".parse().unwrap();
        let mut record = AppRecord::new(app.clone(), RuntimeKind::Local);
        home.create_app(&record).unwrap();
        let target = Target::new(home.clone(), app.clone());
        assert!(target.route().ports.is_empty(), "no release yet");

        let v1 = ReleaseId::new(1);
        record.current = Some(v1);
        for port in [4001, 4002] {
            record.web_port = Some(port);
            home.save_app(&record).unwrap();
            assert_eq!(&*target.route().ports, [port], "no status yet: the record's port");
            assert_eq!(&*target.route().ports, [port], "read from the cache");
        }
        let status_path = home.app(&app).release(v1).status();
        std::fs::create_dir_all(status_path.parent().unwrap()).unwrap();
        let mut s = status(v1, vec![instance("web", 1, ProcessState::Up, Some(4002))]);
        s.write(&status_path).unwrap();
        assert_eq!(&*target.route().ports, [4002]);
        s.instances.push(instance("web", 2, ProcessState::Up, Some(4005)));
        s.write(&status_path).unwrap();
        assert_eq!(&*target.route().ports, [4002, 4005], "scaled up");

        record.body_limits = BodyLimits { timeout_ms: 1000, min_rate: 0 };
        home.save_app(&record).unwrap();
        assert_eq!(target.route().limits, record.body_limits);
        record.stopped = true;
        home.save_app(&record).unwrap();
        assert!(target.route().ports.is_empty(), "ps stop");
    }
}
