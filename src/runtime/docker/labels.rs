//! Names and labels of everything slipway creates in the engine, as pure data.
//!
//! Every image, container and volume carries `slipway.app` and `slipway.kind`; those that
//! belong to one release also carry `slipway.release`. Reconciliation finds leftovers by these
//! labels alone, so the names below are for people and the labels are for slipway.

use std::collections::HashMap;

use crate::ids::{AppName, CommitSha, ProcessType, ReleaseId};

/// Label naming the app a resource belongs to.
pub const APP: &str = "slipway.app";
/// Label naming the release (`v3`) a resource belongs to.
pub const RELEASE: &str = "slipway.release";
/// Label holding the full commit sha an image was built from.
pub const COMMIT: &str = "slipway.commit";
/// Label on a relabelled release image naming the build's own (unlabelled) image, which holds
/// the build's chain of step images; removing the release removes that chain too.
pub const BUILD: &str = "slipway.build";
/// Label holding a process container's Procfile type.
pub const PROCESS: &str = "slipway.process";
/// Label holding a process container's index within its type (1-based).
pub const INDEX: &str = "slipway.index";
/// Label on a buildpack-built image listing its launch process types, comma-separated.
pub const PROCESSES: &str = "slipway.processes";
/// Label saying what a resource is for; see [`Kind`].
pub const KIND: &str = "slipway.kind";

/// What a labelled resource is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A release image.
    Image,
    /// A build container (buildpack detect/build).
    Build,
    /// A one-off container, e.g. predeploy.
    OneOff,
    /// A long-running Procfile process container.
    Process,
    /// The app's persistent filesystem volume.
    Mount,
    /// The app's buildpack cache volume.
    Cache,
    /// The app's workspace container (`slipway workspace`).
    Workspace,
}

impl Kind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Build => "build",
            Kind::OneOff => "oneoff",
            Kind::Process => "process",
            Kind::Mount => "mount",
            Kind::Cache => "cache",
            Kind::Workspace => "workspace",
        }
    }
}

/// A label map, as bollard takes it.
pub type Labels = HashMap<String, String>;

fn base(app: &AppName, kind: Kind) -> Labels {
    HashMap::from([(APP.to_owned(), app.to_string()), (KIND.to_owned(), kind.as_str().to_owned())])
}

/// Labels of a release image.
pub fn image_labels(app: &AppName, release: ReleaseId, commit: &CommitSha) -> Labels {
    let mut l = base(app, Kind::Image);
    l.insert(RELEASE.to_owned(), release.to_string());
    l.insert(COMMIT.to_owned(), commit.to_string());
    l
}

/// Labels of a process container.
pub fn process_labels(app: &AppName, release: ReleaseId, ptype: &ProcessType, index: u32) -> Labels {
    let mut l = base(app, Kind::Process);
    l.insert(RELEASE.to_owned(), release.to_string());
    l.insert(PROCESS.to_owned(), ptype.to_string());
    l.insert(INDEX.to_owned(), index.to_string());
    l
}

/// Labels of a build or one-off container working for `release`.
pub fn release_labels(app: &AppName, release: ReleaseId, kind: Kind) -> Labels {
    let mut l = base(app, kind);
    l.insert(RELEASE.to_owned(), release.to_string());
    l
}

/// Labels of an app-wide volume (the mount or the build cache).
pub fn volume_labels(app: &AppName, kind: Kind) -> Labels {
    base(app, kind)
}

/// Labels of the app's workspace container: it belongs to no release, so reconciliation
/// never takes it for a leftover of one.
pub fn workspace_labels(app: &AppName) -> Labels {
    base(app, Kind::Workspace)
}

/// Engine filters (`label=k=v`) selecting everything of an app.
pub fn app_filter(app: &AppName) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{APP}={app}")])])
}

/// Engine filters selecting the images tagged in the app's repository, `slipway/<app>`.
pub fn repo_filter(app: &AppName) -> HashMap<String, Vec<String>> {
    HashMap::from([("reference".to_owned(), vec![image_repo(app)])])
}

/// Engine filters selecting everything of one release of an app.
pub fn release_filter(app: &AppName, release: ReleaseId) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{APP}={app}"), format!("{RELEASE}={release}")])])
}

/// Engine filters selecting one kind of resource of an app.
pub fn kind_filter(app: &AppName, kind: Kind) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{APP}={app}"), format!("{KIND}={}", kind.as_str())])])
}

/// The repository of an app's images: `slipway/<app>`.
pub fn image_repo(app: &AppName) -> String {
    format!("slipway/{app}")
}

/// The tag of a release image: `slipway/<app>:<release>`.
pub fn image_tag(app: &AppName, release: ReleaseId) -> String {
    format!("{}:{release}", image_repo(app))
}

/// The name of a process container: `slipway-<app>-<release>-<type>-<n>`.
///
/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`; every part here is already restricted to
/// that set by its typed id.
pub fn container_name(app: &AppName, release: ReleaseId, ptype: &ProcessType, index: u32) -> String {
    format!("slipway-{app}-{release}-{ptype}-{index}")
}

/// The name of a build or one-off container; `what` tells them apart (`build`, `predeploy`).
pub fn task_container_name(app: &AppName, release: ReleaseId, what: &str) -> String {
    format!("slipway-{app}-{release}-{what}")
}

/// The name of the app's workspace container: `slipway-<app>-workspace`.
pub fn workspace_container_name(app: &AppName) -> String {
    format!("slipway-{app}-workspace")
}

/// The name of the app's persistent filesystem volume: `slipway-<app>-mount`.
pub fn mount_volume_name(app: &AppName) -> String {
    format!("slipway-{app}-mount")
}

/// The name of the app's buildpack cache volume: `slipway-<app>-cache`.
pub fn cache_volume_name(app: &AppName) -> String {
    format!("slipway-{app}-cache")
}

/// Reads the release a resource belongs to from its labels, if it has a valid one.
pub fn release_of<S: std::hash::BuildHasher>(labels: &HashMap<String, String, S>) -> Option<ReleaseId> {
    labels.get(RELEASE).and_then(|r| r.parse().ok())
}

/// Reads a resource's kind from its labels.
pub fn kind_of<S: std::hash::BuildHasher>(labels: &HashMap<String, String, S>) -> Option<Kind> {
    let k = labels.get(KIND)?;
    [Kind::Image, Kind::Build, Kind::OneOff, Kind::Process, Kind::Mount, Kind::Cache, Kind::Workspace]
        .into_iter()
        .find(|c| c.as_str() == k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        "demo".parse().unwrap()
    }
    fn sha() -> CommitSha {
        "0123456789abcdef0123456789abcdef01234567".parse().unwrap()
    }

    #[test]
    fn image_labels_name_app_release_and_commit() {
        let l = image_labels(&app(), ReleaseId::new(3), &sha());
        assert_eq!(l["slipway.app"], "demo");
        assert_eq!(l["slipway.release"], "v3");
        assert_eq!(l["slipway.commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(l["slipway.kind"], "image");
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn image_labels_name_app_release_commit_and_kind() {
        let l = image_labels(&app(), ReleaseId::new(3), &sha());
        assert_eq!(l["slipway.app"], "demo");
        assert_eq!(l["slipway.release"], "v3");
        assert_eq!(l["slipway.commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(l["slipway.kind"], "image");
    }

    #[test]
    fn process_labels_name_type_and_index() {
        let l = process_labels(&app(), ReleaseId::new(7), &"worker".parse().unwrap(), 2);
        assert_eq!(l["slipway.process"], "worker");
        assert_eq!(l["slipway.index"], "2");
        assert_eq!(l["slipway.release"], "v7");
        assert_eq!(l["slipway.kind"], "process");
    }

    #[test]
    fn names_follow_the_documented_patterns() {
        let web: ProcessType = "web".parse().unwrap();
        assert_eq!(image_tag(&app(), ReleaseId::new(12)), "slipway/demo:v12");
        assert_eq!(container_name(&app(), ReleaseId::new(12), &web, 1), "slipway-demo-v12-web-1");
        assert_eq!(task_container_name(&app(), ReleaseId::new(2), "predeploy"), "slipway-demo-v2-predeploy");
        assert_eq!(mount_volume_name(&app()), "slipway-demo-mount");
        assert_eq!(cache_volume_name(&app()), "slipway-demo-cache");
        assert_eq!(workspace_container_name(&app()), "slipway-demo-workspace");
    }

    #[test]
    fn filters_select_by_label() {
        assert_eq!(app_filter(&app())["label"], vec!["slipway.app=demo"]);
        assert_eq!(
            release_filter(&app(), ReleaseId::new(4))["label"],
            vec!["slipway.app=demo", "slipway.release=v4"]
        );
        assert_eq!(kind_filter(&app(), Kind::Mount)["label"], vec!["slipway.app=demo", "slipway.kind=mount"]);
    }

    #[test]
    fn labels_read_back() {
        let l = process_labels(&app(), ReleaseId::new(9), &"web".parse().unwrap(), 1);
        assert_eq!(release_of(&l), Some(ReleaseId::new(9)));
        assert_eq!(kind_of(&l), Some(Kind::Process));
        assert_eq!(release_of(&volume_labels(&app(), Kind::Mount)), None);
        let ws = workspace_labels(&app());
        assert_eq!((release_of(&ws), kind_of(&ws)), (None, Some(Kind::Workspace)));
    }
}
