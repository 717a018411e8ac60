//! The everyday commands of a kubernetes app against the API server mock: the exact requests
//! of `ps`, `logs -f`, `ps scale`, `ps restart` and `apps destroy`, and a ReadWriteOnce app's
//! rollout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::runtime::kubernetes::mock_api::{
    Answer, NS, Seen, deleted, list, manifests_at, mock, nothing_more, ready, serve, step,
};
use crate::runtime::kubernetes::settings::{AccessMode, KubeSettings};

fn app(current: &str) -> AppRecord {
    serde_json::from_value(
        json!({ "name": "shop", "runtime": "kubernetes", "created_at": 0, "current": current }),
    )
    .unwrap()
}

fn pod(name: &str, ptype: &str, release: &str, phase: &str, ready: bool, waiting: Option<&str>) -> Value {
    let state = match waiting {
        Some(reason) => json!({ "waiting": { "reason": reason } }),
        None => json!({ "running": {} }),
    };
    json!({ "metadata": { "name": name, "labels": {
                "slipway.dev/app": "shop", "slipway.dev/type": ptype, "slipway.dev/release": release } },
            "status": { "phase": phase, "containerStatuses": [{ "name": ptype, "image": "i", "imageID": "",
                "ready": ready, "restartCount": 2, "state": state,
                "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] } })
}

fn pods(items: &[Value]) -> Answer {
    Answer::Json(json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items }))
}

/// The pods `ps` and `logs` list: the app's, without script Jobs' pods.
const APP_PODS: &str = "labelSelector=slipway.dev%2Fapp%3Dshop%2C%21slipway.dev%2Frole";

#[tokio::test]
async fn ps_lists_the_current_releases_pods_numbered_by_type() {
    let (cluster, handle) = mock();
    let script = vec![step(
        format!("GET /api/v1{NS}/pods"),
        APP_PODS,
        pods(&[
            pod("shop-web-b", "web", "v3", "Running", true, None),
            pod("shop-web-a", "web", "v3", "Running", true, None),
            pod("shop-worker-a", "worker", "v3", "Running", false, Some("CrashLoopBackOff")),
            // A pod of the old release still terminating is not the release's.
            pod("shop-web-old", "web", "v2", "Running", true, None),
        ]),
    )];
    let server = serve(handle, script, Arc::new(Mutex::new(Seen::default())));
    let report = processes(&cluster, &app("v3"), ReleaseId::new(3)).await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
    let shown: Vec<(String, ProcessState)> =
        report.instances.iter().map(|i| (format!("{}.{}", i.ptype, i.index), i.state)).collect();
    assert_eq!(
        shown,
        [
            ("web.1".to_owned(), ProcessState::Up),
            ("web.2".to_owned(), ProcessState::Up),
            ("worker.1".to_owned(), ProcessState::Crashed)
        ]
    );
    assert!(report.running);
    assert_eq!(report.instances[2].restarts, 2);
    assert_eq!(report.instances[2].last_exit.as_deref(), Some("exit 137 (OOMKilled)"));
}

/// Collects the lines a `logs` call writes.
#[derive(Default)]
struct Lines(Vec<String>);

impl crate::runtime::LogSink for Lines {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.0.push(line.to_owned());
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_follow_streams_every_matching_pod_with_its_instance() {
    let (cluster, handle) = mock();
    let script = vec![
        step(
            format!("GET /api/v1{NS}/pods"),
            APP_PODS,
            pods(&[
                pod("shop-web-a", "web", "v3", "Running", true, None),
                pod("shop-web-b", "web", "v3", "Running", true, None),
                pod("shop-worker-a", "worker", "v3", "Running", true, None),
            ]),
        ),
        step(
            format!("GET /api/v1{NS}/pods/shop-web-a/log"),
            "follow=true&tailLines=50",
            Answer::Text("GET / 200\n"),
        ),
        step(
            format!("GET /api/v1{NS}/pods/shop-web-b/log"),
            "follow=true&tailLines=50",
            Answer::Text("GET /x 404\n"),
        ),
    ];
    let server = serve(handle, script, Arc::new(Mutex::new(Seen::default())));
    let mut sink = Lines::default();
    logs(&cluster, &app("v3"), Some("web"), 50, true, &mut sink).await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None, "worker's log is not read");
    let mut lines = sink.0;
    lines.sort();
    assert_eq!(lines, ["web.1| GET / 200", "web.2| GET /x 404"]);

    // An instance that does not exist is named, with nothing streamed.
    let (cluster, handle) = mock();
    let script = vec![step(
        format!("GET /api/v1{NS}/pods"),
        APP_PODS,
        pods(&[pod("shop-web-a", "web", "v3", "Running", true, None)]),
    )];
    let server = serve(handle, script, Arc::new(Mutex::new(Seen::default())));
    let err = logs(&cluster, &app("v3"), Some("web.2"), 50, true, &mut Lines::default()).await.unwrap_err();
    assert!(err.to_string().contains("web.2"), "{err}");
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
}

#[tokio::test]
async fn scale_and_restart_patch_only_what_they_change() {
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let web = format!("PATCH /apis/apps/v1{NS}/deployments/shop-web");
    let script = vec![step(&web, "", ready("shop-web", 3)), step(&web, "", ready("shop-web", 3))];
    let server = serve(handle, script, seen.clone());
    cluster.scale("shop-web", 3).await.unwrap();
    cluster.restart("shop-web").await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
    let seen = seen.lock().unwrap();
    let (_, ct, body) = &seen.sent[0];
    assert_eq!(ct, "application/merge-patch+json");
    assert_eq!(*body, json!({ "spec": { "replicas": 3 } }), "scale writes the replicas and nothing else");
    let (_, ct, body) = &seen.sent[1];
    assert_eq!(ct, "application/merge-patch+json");
    let at = &body["spec"]["template"]["metadata"]["annotations"]["slipway.dev/restarted-at"];
    assert!(at.as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "restart changes the pod template only: {body}");
}

#[tokio::test]
async fn destroy_deletes_every_labelled_object_and_the_claim() {
    let (cluster, handle) = mock();
    let labels = json!({ "slipway.dev/app": "shop" });
    let script = vec![
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            list(
                "apps/v1",
                "DeploymentList",
                &[("shop-web", labels.clone()), ("shop-worker", labels.clone())],
            ),
        ),
        step(format!("DELETE /apis/apps/v1{NS}/deployments/shop-web"), "", deleted()),
        step(format!("DELETE /apis/apps/v1{NS}/deployments/shop-worker"), "", deleted()),
        step(format!("DELETE /api/v1{NS}/services/shop-web"), "", deleted()),
        step(
            format!("GET /apis/batch/v1{NS}/jobs"),
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            list("batch/v1", "JobList", &[("shop-predeploy-v3", labels)]),
        ),
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-predeploy-v3"), "", deleted()),
        step(format!("DELETE /api/v1{NS}/persistentvolumeclaims/shop-mount"), "", deleted()),
    ];
    let server = serve(handle, script, Arc::new(Mutex::new(Seen::default())));
    cluster.delete_app(&"shop".parse().unwrap()).await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
}

#[tokio::test]
async fn a_read_write_once_app_is_pinned_to_one_node_and_recreated() {
    let settings = KubeSettings { access_mode: AccessMode::Rwo, ..KubeSettings::default() };
    let mut m = manifests_at(3, &settings);
    m.predeploy = None;
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let script = vec![
        step(
            format!("PATCH /api/v1{NS}/persistentvolumeclaims/shop-mount"),
            "fieldManager=slipway",
            Answer::Echo,
        ),
        step(format!("PATCH /apis/apps/v1{NS}/deployments/shop-web"), "fieldManager=slipway", Answer::Echo),
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-worker"),
            "fieldManager=slipway",
            Answer::Echo,
        ),
        step(format!("PATCH /api/v1{NS}/services/shop-web"), "fieldManager=slipway", Answer::Echo),
        step(format!("GET /apis/apps/v1{NS}/deployments/shop-web"), "", ready("shop-web", 2)),
        step(format!("GET /apis/apps/v1{NS}/deployments/shop-worker"), "", ready("shop-worker", 1)),
        step(format!("GET /apis/apps/v1{NS}/deployments"), "", list("apps/v1", "DeploymentList", &[])),
    ];
    let server = serve(handle, script, seen.clone());
    cluster.apply_claim(m.claim.as_ref().unwrap()).await.unwrap();
    cluster.roll_out(&"shop".parse().unwrap(), &m, Duration::from_secs(10)).await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
    let seen = seen.lock().unwrap();
    let claim = &seen.applied[&format!("PATCH /api/v1{NS}/persistentvolumeclaims/shop-mount")];
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    for d in ["shop-web", "shop-worker"] {
        let sent = &seen.applied[&format!("PATCH /apis/apps/v1{NS}/deployments/{d}")];
        assert_eq!(sent["spec"]["strategy"], json!({ "type": "Recreate" }), "{d}");
        let term = &sent["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(term["topologyKey"], json!("kubernetes.io/hostname"), "{d}");
        assert_eq!(term["labelSelector"]["matchLabels"], json!({ "slipway.dev/app": "shop" }), "{d}");
    }
    // Said by `apps create`, `k8s render` and each deploy's mount step.
    let warning = crate::runtime::kubernetes::settings::RWO_WARNING;
    assert!(
        warning.starts_with("WARNING") && warning.contains("pinned") && warning.contains("recreates"),
        "{warning}"
    );
}
