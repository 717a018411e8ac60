//! The cluster shell against an in-process API server mock (`tower-test`), as kube-rs
//! recommends: every request slipway sends is checked, in order, with its body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::runtime::kubernetes::render::{ImageRef, RenderInput, render};
use crate::runtime::kubernetes::settings::KubeSettings;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request: method and path, query fragments (`&`-separated) it must hold, and
/// the answer.
struct Step {
    call: &'static str,
    query: &'static str,
    answer: Answer,
}

enum Answer {
    Json(Value),
    Text(&'static str),
    /// Echo a server-side apply's body back, as the server does with the applied object.
    Echo,
}

fn step(call: &'static str, query: &'static str, answer: Answer) -> Step {
    Step { call, query, answer }
}

/// What the mock saw: each call, and the body of each apply by path.
#[derive(Default)]
struct Seen {
    calls: Vec<String>,
    applied: BTreeMap<String, Value>,
}

fn serve(mut handle: Handle, script: Vec<Step>, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<Handle> {
    tokio::spawn(async move {
        for s in script {
            let (req, send) =
                handle.next_request().await.expect("slipway stopped before the expected requests");
            let call = format!("{} {}", req.method(), req.uri().path());
            let query = req.uri().query().unwrap_or_default().to_owned();
            seen.lock().unwrap().calls.push(call.clone());
            assert_eq!(call, s.call, "requests so far: {:#?}", seen.lock().unwrap().calls);
            for part in s.query.split('&').filter(|p| !p.is_empty()) {
                assert!(query.contains(part), "{call}?{query} lacks {part}");
            }
            let is_apply = req.method() == "PATCH" && query.contains("fieldManager=slipway");
            if is_apply {
                let ct = req.headers()["content-type"].to_str().unwrap().to_owned();
                assert_eq!(ct, "application/apply-patch+yaml", "{call}: server-side apply");
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let answer = match s.answer {
                Answer::Json(v) => serde_json::to_vec(&v).unwrap(),
                Answer::Text(t) => t.as_bytes().to_vec(),
                Answer::Echo => body.to_vec(),
            };
            if is_apply {
                seen.lock().unwrap().applied.insert(call, serde_json::from_slice(&body).unwrap());
            }
            send.send_response(Response::builder().body(Body::from(answer)).unwrap());
        }
        handle
    })
}

fn manifests() -> Manifests {
    let plan = crate::plan::DeployPlan {
        app: "shop".parse().unwrap(),
        release: ReleaseId::new(3),
        commit: "a".repeat(40).parse().unwrap(),
        predeploy: Some(crate::plan::ScriptSpec::file("predeploy.sh".into(), Duration::from_secs(60))),
        release_phase: None,
        settle: Duration::from_secs(1),
        build: crate::plan::BuildKind::Buildpacks,
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
        platform: crate::buildpack::platform::PlatformSpec::default(),
    };
    let image = ImageRef {
        reference: "reg:5000/slipway/shop:v3".into(),
        workdir: Some("/workspace".into()),
        launcher: true,
    };
    render(&RenderInput {
        plan: &plan,
        settings: &KubeSettings::default(),
        mount_bytes: Some(1 << 30),
        image: &image,
    })
    .unwrap()
}

const NS: &str = "/namespaces/default";

fn job_status(status: &Value) -> Answer {
    Answer::Json(json!({ "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "shop-predeploy-v3", "namespace": "default" }, "status": *status }))
}

fn running_pod() -> Answer {
    Answer::Json(json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        { "metadata": { "name": "shop-predeploy-v3-x7k2p", "namespace": "default" }, "status": { "phase": "Running" } }
    ] }))
}

fn ready(name: &str, replicas: i32) -> Answer {
    Answer::Json(json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "default", "generation": 2 },
        "spec": { "replicas": replicas, "selector": {}, "template": {} },
        "status": { "observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas } }))
}

fn mock() -> (Cluster, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Cluster::new(kube::Client::new(svc, "default"), "default", Duration::from_millis(5)), handle)
}

/// The mock's next request, or None once slipway's client is gone: nothing more was sent.
async fn nothing_more(server: tokio::task::JoinHandle<Handle>) -> Option<String> {
    let mut handle = server.await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await.expect("mock hung");
    next.map(|(req, _)| format!("{} {}", req.method(), req.uri()))
}

#[tokio::test]
async fn a_deploy_applies_the_claim_then_the_job_and_updates_deployments_only_after_it_succeeded() {
    let m = manifests();
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let pvc = format!("PATCH /api/v1{NS}/persistentvolumeclaims/shop-mount").leak() as &'static str;
    let job = format!("PATCH /apis/batch/v1{NS}/jobs/shop-predeploy-v3").leak() as &'static str;
    let get_job = format!("GET /apis/batch/v1{NS}/jobs/shop-predeploy-v3").leak() as &'static str;
    let script = vec![
        step(pvc, "fieldManager=slipway&force=true", Answer::Echo),
        step(job, "fieldManager=slipway&force=true", Answer::Echo),
        step(
            format!("GET /api/v1{NS}/pods").leak() as &'static str,
            "slipway.dev%2Frole%3Dpredeploy",
            running_pod(),
        ),
        step(
            format!("GET /api/v1{NS}/pods/shop-predeploy-v3-x7k2p/log").leak() as &'static str,
            "follow=true",
            Answer::Text("migrating\nmigrated 3 tables\n"),
        ),
        step(get_job, "", job_status(&json!({ "active": 1 }))),
        step(get_job, "", job_status(&json!({ "succeeded": 1 }))),
        // roll_out checks the Job on the server again before it writes a Deployment.
        step(get_job, "", job_status(&json!({ "succeeded": 1 }))),
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-web").leak() as &'static str,
            "fieldManager=slipway",
            Answer::Echo,
        ),
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-worker").leak() as &'static str,
            "fieldManager=slipway",
            Answer::Echo,
        ),
        step(
            format!("PATCH /api/v1{NS}/services/shop-web").leak() as &'static str,
            "fieldManager=slipway",
            Answer::Echo,
        ),
        step(
            format!("GET /apis/apps/v1{NS}/deployments/shop-web").leak() as &'static str,
            "",
            ready("shop-web", 2),
        ),
        step(
            format!("GET /apis/apps/v1{NS}/deployments/shop-worker").leak() as &'static str,
            "",
            ready("shop-worker", 1),
        ),
        step(
            format!("GET /apis/apps/v1{NS}/deployments").leak() as &'static str,
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            Answer::Json(
                json!({ "apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [
                { "metadata": { "name": "shop-web" } }, { "metadata": { "name": "shop-worker" } },
                { "metadata": { "name": "shop-clock" } } ] }),
            ),
        ),
        // A type the new Procfile dropped.
        step(
            format!("DELETE /apis/apps/v1{NS}/deployments/shop-clock").leak() as &'static str,
            "",
            Answer::Json(json!({
            "apiVersion": "v1", "kind": "Status", "status": "Success" })),
        ),
    ];
    let server = serve(handle, script, seen.clone());
    let lines = Mutex::new(Vec::new());
    cluster.apply_claim(m.claim.as_ref().unwrap()).await.unwrap();
    cluster
        .run_job(m.predeploy.as_ref().unwrap(), Duration::from_secs(10), &|l| {
            lines.lock().unwrap().push(l.to_owned());
        })
        .await
        .unwrap();
    assert_eq!(*lines.lock().unwrap(), ["migrating", "migrated 3 tables"], "the Job's log is streamed");
    cluster.roll_out(&"shop".parse().unwrap(), &m, Duration::from_secs(10)).await.unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);

    let seen = seen.lock().unwrap();
    let claim = &seen.applied[pvc];
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], json!((1u64 << 30).to_string()));
    let job = &seen.applied[job];
    assert_eq!(job["spec"]["backoffLimit"], json!(0));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], json!("Never"));
    assert_eq!(
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        json!("shop-mount")
    );
    let web = &seen.applied[&format!("PATCH /apis/apps/v1{NS}/deployments/shop-web")];
    assert_eq!(web["spec"]["template"]["metadata"]["labels"]["slipway.dev/release"], json!("v3"));
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!("reg:5000/slipway/shop:v3"));
    assert_eq!(*web, serde_json::to_value(&m.deployments[0]).unwrap(), "the rendered Deployment, as is");
}

#[tokio::test]
async fn a_failed_job_stops_the_deploy_before_any_deployment_is_written() {
    let m = manifests();
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let get_job = format!("GET /apis/batch/v1{NS}/jobs/shop-predeploy-v3").leak() as &'static str;
    let failed = job_status(&json!({ "failed": 1, "conditions": [{ "type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }] }));
    let failed_again = job_status(&json!({ "failed": 1 }));
    let script = vec![
        step(
            format!("PATCH /apis/batch/v1{NS}/jobs/shop-predeploy-v3").leak() as &'static str,
            "force=true",
            Answer::Echo,
        ),
        step(format!("GET /api/v1{NS}/pods").leak() as &'static str, "", running_pod()),
        step(
            format!("GET /api/v1{NS}/pods/shop-predeploy-v3-x7k2p/log").leak() as &'static str,
            "",
            Answer::Text("no such table\n"),
        ),
        step(get_job, "", failed),
        step(get_job, "", failed_again),
    ];
    let server = serve(handle, script, seen.clone());
    let err =
        cluster.run_job(m.predeploy.as_ref().unwrap(), Duration::from_secs(10), &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("BackoffLimitExceeded"), "{err}");
    assert!(err.to_string().contains("the running Deployments are untouched"), "{err}");
    // Even a caller that goes on to roll out is refused by the server-side check.
    let err = cluster.roll_out(&"shop".parse().unwrap(), &m, Duration::from_secs(10)).await.unwrap_err();
    assert!(matches!(err, ClusterError::PredeployNotSucceeded { .. }), "{err}");
    drop(cluster);
    assert_eq!(nothing_more(server).await, None, "no Deployment or Service request after a failed Job");
    assert!(seen.lock().unwrap().calls.iter().all(|c| !c.contains("deployments") && !c.contains("services")));
}

#[tokio::test]
async fn a_rollout_that_never_gets_ready_fails_with_the_counts() {
    let mut m = manifests();
    m.predeploy = None;
    m.deployments.truncate(1);
    m.service = None;
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stuck = Answer::Json(json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "shop-web", "generation": 2 }, "spec": { "replicas": 2, "selector": {}, "template": {} },
        "status": { "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
            "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                             "message": "ReplicaSet \"shop-web-5d\" has timed out progressing." }] } }));
    let script = vec![
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-web").leak() as &'static str,
            "",
            Answer::Echo,
        ),
        step(format!("GET /apis/apps/v1{NS}/deployments/shop-web").leak() as &'static str, "", stuck),
    ];
    let server = serve(handle, script, seen);
    let err = cluster.roll_out(&"shop".parse().unwrap(), &m, Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().contains("has timed out progressing"), "{err}");
    drop(cluster);
    assert_eq!(nothing_more(server).await, None, "nothing pruned after a failed rollout");
}
