use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::health::HealthPath;
use crate::plan::{ProcessSpec, ScriptSpec};

fn plan() -> DeployPlan {
    DeployPlan {
        app: "shop".parse().unwrap(),
        release: ReleaseId::new(3),
        commit: "a".repeat(40).parse().unwrap(),
        predeploy: Some(ScriptSpec::file("predeploy.sh".into(), Duration::from_secs(120))),
        release_phase: None,
        settle: Duration::from_secs(1),
        build: crate::plan::BuildKind::Buildpacks,
        postdeploy: None,
        processes: vec![
            ProcessSpec { ptype: "web".parse().unwrap(), command: "python app.py".into(), instances: 2 },
            ProcessSpec {
                ptype: "Queue_worker".parse().unwrap(),
                command: "python w.py".into(),
                instances: 1,
            },
        ],
        env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
        run_as: None,
        mount: true,
        web_timeout: Duration::from_secs(60),
        stop_grace: Duration::from_secs(30),
        healthcheck: Some(HealthPath::parse("/up").unwrap()),
        buildpacks: Vec::new(),
        platform: crate::buildpack::platform::PlatformSpec::default(),
    }
}

fn image() -> ImageRef {
    ImageRef {
        reference: "reg.example:5000/slipway/shop:v3".into(),
        workdir: Some("/workspace".into()),
        launcher: true,
    }
}

fn render_with(plan: &DeployPlan, settings: &KubeSettings, mount: Option<u64>) -> Manifests {
    render(&RenderInput { plan, settings, mount_bytes: mount, image: &image() }).unwrap()
}

#[test]
fn claim_is_read_write_many_with_the_mount_size_and_storage_class() {
    let settings = KubeSettings { storage_class: Some("efs-sc".into()), ..KubeSettings::default() };
    let m = render_with(&plan(), &settings, Some(5 << 30));
    let claim = m.claim.unwrap();
    assert_eq!(claim.metadata.name.as_deref(), Some("shop-mount"));
    assert_eq!(claim.metadata.labels.unwrap()[LABEL_APP], "shop");
    let spec = claim.spec.unwrap();
    assert_eq!(spec.access_modes.unwrap(), ["ReadWriteMany"]);
    assert_eq!(spec.storage_class_name.as_deref(), Some("efs-sc"));
    assert_eq!(spec.resources.unwrap().requests.unwrap()["storage"].0, (5u64 << 30).to_string());
}

#[test]
fn predeploy_job_runs_once_with_the_claim_at_mount() {
    let m = render_with(&plan(), &KubeSettings::default(), Some(1 << 30));
    let job = m.predeploy.unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("shop-predeploy-v3"));
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(120));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.volumes.unwrap()[0].persistent_volume_claim.as_ref().unwrap().claim_name, "shop-mount");
    let c = &pod.containers[0];
    assert_eq!(c.args.as_deref().unwrap(), ["bash", "predeploy.sh"]);
    // /workspace's sibling is /mount itself: one mount point, which ~/mount links to.
    let paths: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|v| v.mount_path.as_str()).collect();
    assert_eq!(paths, ["/mount"]);
    assert_eq!(pod.security_context.unwrap().fs_group, Some(1000));
    assert!(pod.affinity.is_none());
}

#[test]
fn a_dockerfile_app_folder_elsewhere_gets_its_sibling_mount_too() {
    let img = ImageRef { reference: "x".into(), workdir: Some("/srv/app".into()), launcher: false };
    let plan = plan();
    let m = render(&RenderInput {
        plan: &plan,
        settings: &KubeSettings::default(),
        mount_bytes: Some(1),
        image: &img,
    })
    .unwrap();
    let c = &m.deployments[0].spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    let paths: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|v| v.mount_path.as_str()).collect();
    assert_eq!(paths, ["/mount", "/srv/mount"]);
    assert_eq!(c.args.as_deref().unwrap(), ["bash", "-c", "python app.py"]);
}

#[test]
fn each_type_is_a_deployment_gated_by_readiness_and_web_gets_a_service() {
    let m = render_with(&plan(), &KubeSettings::default(), Some(1 << 30));
    let names: Vec<_> = m.deployments.iter().map(|d| d.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["shop-web", "shop-queue-worker"]);
    let web = m.deployments[0].spec.as_ref().unwrap();
    assert_eq!(web.replicas, Some(2));
    assert_eq!(web.revision_history_limit, Some(0));
    assert_eq!(web.strategy.as_ref().unwrap().type_.as_deref(), Some("RollingUpdate"));
    // The selector leaves the release out: it is immutable, and each release updates the pods.
    let selector = web.selector.match_labels.as_ref().unwrap();
    assert_eq!(selector[LABEL_TYPE], "web");
    assert!(!selector.contains_key(LABEL_RELEASE));
    let tmpl = web.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!((tmpl[LABEL_APP].as_str(), tmpl[LABEL_RELEASE].as_str()), ("shop", "v3"));
    let c = &web.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.args.as_deref().unwrap(), ["web"]);
    let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(probe.path.as_deref(), Some("/up"));
    let env: Vec<_> =
        c.env.as_ref().unwrap().iter().map(|e| (e.name.as_str(), e.value.as_deref().unwrap())).collect();
    assert!(
        env.contains(&("PORT", "5000"))
            && env.contains(&("GREETING", "hi"))
            && env.contains(&("DYNO", "web"))
    );
    let worker = &m.deployments[1].spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert!(worker.readiness_probe.is_none() && worker.ports.is_none());
    let svc = m.service.unwrap();
    assert_eq!(svc.metadata.name.as_deref(), Some("shop-web"));
    assert_eq!(svc.spec.unwrap().selector.unwrap()[LABEL_TYPE], "web");
}

#[test]
fn without_a_health_check_readiness_is_accepting_tcp() {
    let mut p = plan();
    p.healthcheck = None;
    let m = render_with(&p, &KubeSettings::default(), None);
    let c = &m.deployments[0].spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert!(c.readiness_probe.as_ref().unwrap().tcp_socket.is_some());
    assert!(m.claim.is_none() && c.volume_mounts.is_none(), "no mount enabled: no claim, no volume");
}

#[test]
fn read_write_once_pins_every_pod_to_one_node_and_recreates() {
    let settings = KubeSettings { access_mode: AccessMode::Rwo, ..KubeSettings::default() };
    let m = render_with(&plan(), &settings, Some(1 << 30));
    assert_eq!(m.claim.unwrap().spec.unwrap().access_modes.unwrap(), ["ReadWriteOnce"]);
    let affinity = |pod: &PodSpec| {
        let term = &pod
            .affinity
            .as_ref()
            .unwrap()
            .pod_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()[0];
        (
            term.topology_key.clone(),
            term.label_selector.as_ref().unwrap().match_labels.as_ref().unwrap()[LABEL_APP].clone(),
        )
    };
    let expected = ("kubernetes.io/hostname".to_owned(), "shop".to_owned());
    assert_eq!(affinity(m.predeploy.unwrap().spec.unwrap().template.spec.as_ref().unwrap()), expected);
    for d in &m.deployments {
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
        assert_eq!(affinity(spec.template.spec.as_ref().unwrap()), expected);
    }
}

#[test]
fn types_that_cannot_name_a_deployment_are_refused() {
    let mut p = plan();
    p.processes[1].ptype = "_hidden".parse().unwrap();
    let err = render(&RenderInput {
        plan: &p,
        settings: &KubeSettings::default(),
        mount_bytes: None,
        image: &image(),
    })
    .unwrap_err();
    assert!(matches!(err, RenderError::BadType { .. }), "{err}");
    p.processes[1].ptype = "WEB".parse().unwrap();
    let err = render(&RenderInput {
        plan: &p,
        settings: &KubeSettings::default(),
        mount_bytes: None,
        image: &image(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("\"shop-web\""), "{err}");
}

#[test]
fn yaml_is_one_document_per_object_in_apply_order() {
    let m = render_with(&plan(), &KubeSettings::default(), Some(1 << 30));
    let yaml = m.to_yaml().unwrap();
    let kinds: Vec<_> = yaml.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Deployment", "Deployment", "Service"]);
    assert_eq!(yaml.matches("---\n").count(), 5);
    assert!(yaml.contains("apiVersion: batch/v1") && yaml.contains("apiVersion: apps/v1"), "{yaml}");
}

#[test]
fn a_release_line_runs_as_a_bash_command_and_a_script_file_by_path() {
    let release = ScriptSpec {
        path: "release".into(),
        timeout: Duration::from_secs(60),
        command: Some("./migrate && echo ok".into()),
    };
    assert_eq!(super::script_args(&release), ["bash", "-c", "./migrate && echo ok"]);
    let file = ScriptSpec::file("predeploy.sh".into(), Duration::from_secs(60));
    assert_eq!(super::script_args(&file), ["bash", "predeploy.sh"]);
    assert_eq!(super::ScriptRole::Release.as_str(), "release");
}
