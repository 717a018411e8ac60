//! Test support: an in-process API server mock (`tower-test`), as kube-rs recommends. Each test
//! scripts the requests it expects, in order, with the answers; the mock checks each method,
//! path and query, and keeps every body slipway sent, so a test can assert the exact requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::cluster::Cluster;
use super::render::{ImageRef, Manifests, RenderInput, render};
use super::settings::KubeSettings;
use crate::ids::ReleaseId;

pub(super) type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The namespace path of every request of the mock cluster.
pub(super) const NS: &str = "/namespaces/default";

/// One expected request: `METHOD /path`, query fragments (`&`-separated) it must hold, and
/// the answer.
pub(super) struct Step {
    pub(super) call: String,
    pub(super) query: &'static str,
    pub(super) answer: Answer,
}

pub(super) enum Answer {
    Json(Value),
    Text(&'static str),
    /// Echo a server-side apply's body back, as the server does with the applied object.
    Echo,
    /// An error status with its JSON body.
    Status(u16, Value),
}

pub(super) fn step(call: impl Into<String>, query: &'static str, answer: Answer) -> Step {
    Step { call: call.into(), query, answer }
}

/// What the mock saw: each call, the body of each apply by call, and every request with a
/// body as (call, content type, body).
#[derive(Default)]
pub(super) struct Seen {
    pub(super) calls: Vec<String>,
    pub(super) applied: BTreeMap<String, Value>,
    pub(super) sent: Vec<(String, String, Value)>,
}

/// Serves `script`, in order, then hands the handle back.
pub(super) fn serve(
    mut handle: Handle,
    script: Vec<Step>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<Handle> {
    tokio::spawn(async move {
        for s in script {
            let (req, send) =
                handle.next_request().await.expect("slipway stopped before the expected requests");
            let call = format!("{} {}", req.method(), req.uri().path());
            let query = req.uri().query().unwrap_or_default().to_owned();
            seen.lock().unwrap().calls.push(format!("{call}?{query}"));
            assert_eq!(call, s.call, "requests so far: {:#?}", seen.lock().unwrap().calls);
            for part in s.query.split('&').filter(|p| !p.is_empty()) {
                assert!(query.contains(part), "{call}?{query} lacks {part}");
            }
            let ct =
                req.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            let is_apply = req.method() == "PATCH" && query.contains("fieldManager=slipway");
            if is_apply {
                assert_eq!(ct, "application/apply-patch+yaml", "{call}: server-side apply");
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let (status, answer) = match s.answer {
                Answer::Json(v) => (200, serde_json::to_vec(&v).unwrap()),
                Answer::Text(t) => (200, t.as_bytes().to_vec()),
                Answer::Echo => (200, body.to_vec()),
                Answer::Status(code, v) => (code, serde_json::to_vec(&v).unwrap()),
            };
            if !body.is_empty() {
                let v: Value = serde_json::from_slice(&body).unwrap();
                if is_apply {
                    seen.lock().unwrap().applied.insert(call.clone(), v.clone());
                }
                seen.lock().unwrap().sent.push((call, ct, v));
            }
            send.send_response(Response::builder().status(status).body(Body::from(answer)).unwrap());
        }
        handle
    })
}

/// A cluster client whose API server is the mock.
pub(super) fn mock() -> (Cluster, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Cluster::new(kube::Client::new(svc, "default"), "default", Duration::from_millis(5)), handle)
}

/// The mock's next request, or None once slipway's client is gone: nothing more was sent.
pub(super) async fn nothing_more(server: tokio::task::JoinHandle<Handle>) -> Option<String> {
    let mut handle = server.await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await.expect("mock hung");
    next.map(|(req, _)| format!("{} {}", req.method(), req.uri()))
}

/// The manifests of release `release` of app `shop`: web=2 and worker=1, predeploy, a 1 GiB mount.
pub(super) fn manifests_at(release: u64, settings: &KubeSettings) -> Manifests {
    let plan = crate::plan::DeployPlan {
        app: "shop".parse().unwrap(),
        release: ReleaseId::new(release),
        commit: "a".repeat(40).parse().unwrap(),
        predeploy: Some(crate::plan::ScriptSpec::file("predeploy.sh".into(), Duration::from_secs(60))),
        release_phase: None,
        settle: Duration::from_secs(1),
        build: crate::plan::BuildKind::Buildpacks,
        platform: crate::buildpack::platform::PlatformSpec::default(),
        postdeploy: None,
        processes: vec![
            crate::plan::ProcessSpec {
                ptype: "web".parse().unwrap(),
                command: "python app.py".into(),
                instances: 2,
            },
            crate::plan::ProcessSpec {
                ptype: "worker".parse().unwrap(),
                command: "python w.py".into(),
                instances: 1,
            },
        ],
        env: BTreeMap::new(),
        run_as: None,
        mount: true,
        web_timeout: Duration::from_secs(60),
        stop_grace: Duration::from_secs(30),
        healthcheck: None,
        buildpacks: Vec::new(),
    };
    let image = ImageRef {
        reference: format!("reg:5000/slipway/shop:v{release}"),
        workdir: Some("/workspace".into()),
        launcher: true,
    };
    render(&RenderInput { plan: &plan, settings, mount_bytes: Some(1 << 30), image: &image }).unwrap()
}

/// Release v3's manifests on an RWX cluster.
pub(super) fn manifests() -> Manifests {
    manifests_at(3, &KubeSettings::default())
}

/// A Deployment that has rolled out `replicas` ready pods.
pub(super) fn ready(name: &str, replicas: i32) -> Answer {
    Answer::Json(json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "default", "generation": 2 },
        "spec": { "replicas": replicas, "selector": {}, "template": {} },
        "status": { "observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas } }))
}

/// A list of `kind` objects, each given as (name, labels).
pub(super) fn list(api_version: &str, kind: &str, items: &[(&str, Value)]) -> Answer {
    let items: Vec<Value> =
        items.iter().map(|(n, labels)| json!({ "metadata": { "name": n, "labels": labels } })).collect();
    Answer::Json(json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": items }))
}

/// What the server answers to a delete.
pub(super) fn deleted() -> Answer {
    Answer::Json(json!({ "apiVersion": "v1", "kind": "Status", "status": "Success" }))
}

/// A 404 Status, as the server answers for a missing object.
pub(super) fn not_found() -> Answer {
    Answer::Status(
        404,
        json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "not found" }),
    )
}
