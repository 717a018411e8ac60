//! Reconciliation on the cluster: the plan as data, then the exact requests against the API
//! server mock.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::runtime::kubernetes::mock_api::{
    Answer, NS, Seen, deleted, list, manifests_at, mock, not_found, nothing_more, ready, serve, step,
};
use crate::runtime::kubernetes::settings::KubeSettings;

fn f(name: &str, release: &str) -> Found {
    Found { name: name.into(), release: Some(release.into()) }
}

fn labels(release: &str) -> serde_json::Value {
    json!({ "slipway.dev/app": "shop", "slipway.dev/release": release })
}

#[test]
fn a_healthy_app_needs_no_repair() {
    let m = manifests_at(2, &KubeSettings::default());
    let current = Some(Current { release: ReleaseId::new(2), manifests: &m });
    let plan =
        plan_sweep(current, &[f("shop-predeploy-v2", "v2")], &[f("shop-web", "v2"), f("shop-worker", "v2")]);
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn leftovers_of_a_killed_deploy_are_planned_for_removal() {
    let m = manifests_at(2, &KubeSettings::default());
    let current = Some(Current { release: ReleaseId::new(2), manifests: &m });
    let plan = plan_sweep(
        current,
        &[f("shop-predeploy-v2", "v2"), f("shop-predeploy-v3", "v3"), f("shop-release-v3", "v3")],
        &[f("shop-web", "v3"), f("shop-worker", "v2"), f("shop-clock", "v1")],
    );
    assert_eq!(
        plan,
        SweepPlan {
            delete_jobs: vec!["shop-predeploy-v3".into(), "shop-release-v3".into()],
            delete_deployments: vec!["shop-clock".into()],
            roll_back: true,
            delete_service: false,
        }
    );
}

#[test]
fn without_a_current_release_everything_but_the_claim_goes() {
    let plan = plan_sweep(None, &[f("shop-predeploy-v1", "v1")], &[f("shop-web", "v1")]);
    assert_eq!(
        plan,
        SweepPlan {
            delete_jobs: vec!["shop-predeploy-v1".into()],
            delete_deployments: vec!["shop-web".into()],
            roll_back: false,
            delete_service: true,
        }
    );
}

#[test]
fn a_dropped_web_type_takes_its_service_with_it() {
    let mut m = manifests_at(2, &KubeSettings::default());
    m.deployments.retain(|d| d.metadata.name.as_deref() == Some("shop-worker"));
    m.service = None;
    let current = Some(Current { release: ReleaseId::new(2), manifests: &m });
    let plan = plan_sweep(current, &[], &[f("shop-web", "v1"), f("shop-worker", "v2")]);
    assert_eq!(plan.delete_deployments, ["shop-web"]);
    assert!(plan.delete_service && !plan.roll_back, "{plan:?}");
}

#[tokio::test]
async fn the_next_command_removes_a_killed_deploys_jobs_and_dropped_types_and_puts_current_back() {
    let current = manifests_at(2, &KubeSettings::default());
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let script = vec![
        step(
            format!("GET /apis/batch/v1{NS}/jobs"),
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            list(
                "batch/v1",
                "JobList",
                &[
                    ("shop-predeploy-v2", labels("v2")),
                    ("shop-predeploy-v3", labels("v3")),
                    ("shop-release-v3", labels("v3")),
                ],
            ),
        ),
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            list(
                "apps/v1",
                "DeploymentList",
                &[("shop-web", labels("v3")), ("shop-worker", labels("v2")), ("shop-clock", labels("v1"))],
            ),
        ),
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-predeploy-v3"), "", deleted()),
        // Already gone (deleted by hand, or by a sweep that was itself killed): fine.
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-release-v3"), "", not_found()),
        step(format!("DELETE /apis/apps/v1{NS}/deployments/shop-clock"), "", deleted()),
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-web"),
            "fieldManager=slipway&force=true",
            Answer::Echo,
        ),
        step(
            format!("PATCH /apis/apps/v1{NS}/deployments/shop-worker"),
            "fieldManager=slipway&force=true",
            Answer::Echo,
        ),
        // Applied, not waited for: the controllers bring the pods back.
        step(format!("PATCH /api/v1{NS}/services/shop-web"), "fieldManager=slipway", Answer::Echo),
    ];
    let server = serve(handle, script, seen.clone());
    let kept = Current { release: ReleaseId::new(2), manifests: &current };
    let plan = cluster.sweep(&"shop".parse().unwrap(), Some(kept)).await.unwrap();
    assert!(plan.roll_back);
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
    let seen = seen.lock().unwrap();
    let web = &seen.applied[&format!("PATCH /apis/apps/v1{NS}/deployments/shop-web")];
    assert_eq!(web["metadata"]["labels"]["slipway.dev/release"], json!("v2"), "the current release is back");
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], json!("reg:5000/slipway/shop:v2"));
    let propagation: Vec<_> = seen
        .sent
        .iter()
        .filter(|(c, _, _)| c.starts_with("DELETE"))
        .map(|(_, _, b)| b["propagationPolicy"].clone())
        .collect();
    assert_eq!(propagation, vec![json!("Background"); 3], "a Job's pods go with it");
}

#[tokio::test]
async fn a_healthy_app_is_only_read() {
    let current = manifests_at(2, &KubeSettings::default());
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let script = vec![
        step(
            format!("GET /apis/batch/v1{NS}/jobs"),
            "",
            list("batch/v1", "JobList", &[("shop-predeploy-v2", labels("v2"))]),
        ),
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            "",
            list("apps/v1", "DeploymentList", &[("shop-web", labels("v2")), ("shop-worker", labels("v2"))]),
        ),
    ];
    let server = serve(handle, script, seen);
    let kept = Current { release: ReleaseId::new(2), manifests: &current };
    let plan = cluster.sweep(&"shop".parse().unwrap(), Some(kept)).await.unwrap();
    assert!(plan.is_empty());
    drop(cluster);
    assert_eq!(nothing_more(server).await, None, "no write to a healthy app");
}

#[tokio::test]
async fn discarding_a_release_whose_rollout_failed_puts_the_old_deployments_back() {
    let current = manifests_at(2, &KubeSettings::default());
    let (cluster, handle) = mock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let by_release = "labelSelector=slipway.dev%2Fapp%3Dshop%2Cslipway.dev%2Frelease%3Dv3";
    let script = vec![
        step(
            format!("GET /apis/batch/v1{NS}/jobs"),
            by_release,
            list("batch/v1", "JobList", &[("shop-predeploy-v3", labels("v3"))]),
        ),
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-predeploy-v3"), "", deleted()),
        // Did v3's rollout begin? Its web Deployment says so.
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            by_release,
            list("apps/v1", "DeploymentList", &[("shop-web", labels("v3"))]),
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
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            "labelSelector=slipway.dev%2Fapp%3Dshop",
            list(
                "apps/v1",
                "DeploymentList",
                &[("shop-web", labels("v2")), ("shop-worker", labels("v2")), ("shop-cron", labels("v3"))],
            ),
        ),
        // A type only v3 had.
        step(format!("DELETE /apis/apps/v1{NS}/deployments/shop-cron"), "", deleted()),
    ];
    let server = serve(handle, script, seen.clone());
    let kept = Current { release: ReleaseId::new(2), manifests: &current };
    cluster
        .discard(&"shop".parse().unwrap(), ReleaseId::new(3), Some(kept), Duration::from_secs(10))
        .await
        .unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None);
    let seen = seen.lock().unwrap();
    let worker = &seen.applied[&format!("PATCH /apis/apps/v1{NS}/deployments/shop-worker")];
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("reg:5000/slipway/shop:v2")
    );
}

#[tokio::test]
async fn retiring_a_release_that_was_switched_away_from_only_deletes_its_jobs() {
    let current = manifests_at(3, &KubeSettings::default());
    let (cluster, handle) = mock();
    let by_release = "labelSelector=slipway.dev%2Fapp%3Dshop%2Cslipway.dev%2Frelease%3Dv2";
    let script = vec![
        step(
            format!("GET /apis/batch/v1{NS}/jobs"),
            by_release,
            list(
                "batch/v1",
                "JobList",
                &[("shop-predeploy-v2", labels("v2")), ("shop-postdeploy-v2", labels("v2"))],
            ),
        ),
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-predeploy-v2"), "", deleted()),
        step(format!("DELETE /apis/batch/v1{NS}/jobs/shop-postdeploy-v2"), "", deleted()),
        step(
            format!("GET /apis/apps/v1{NS}/deployments"),
            by_release,
            list("apps/v1", "DeploymentList", &[]),
        ),
    ];
    let server = serve(handle, script, Arc::new(Mutex::new(Seen::default())));
    let kept = Current { release: ReleaseId::new(3), manifests: &current };
    cluster
        .discard(&"shop".parse().unwrap(), ReleaseId::new(2), Some(kept), Duration::from_secs(10))
        .await
        .unwrap();
    drop(cluster);
    assert_eq!(nothing_more(server).await, None, "the running Deployments are not touched");
}
