//! Which image a buildpack build container starts from: the bare stack, or the previous
//! release's build image, whose sealed launch layers (a venv) the buildpack then finds in
//! place and reuses. CNB's own idea: an unchanged launch layer is taken from the previous
//! image, not rebuilt or exported again; here the committed image then holds only the small
//! diff (source, procfile layer, launcher) on top of the previous one.
//!
//! What a build image was built from is in its labels, which only slipway's commit sets
//! (a Dockerfile build is never a base: its saved plan says so, and the image must be the
//! first one the ledger recorded for the current release). A chain of such images is bounded:
//! the build rebases on the stack when the stack or the buildpacks changed, after
//! [`MAX_DEPTH`] builds, and after a build that rebuilt or dropped a kept layer (its old bytes
//! stay in a lower layer of the image, so they are carried by one release at most).
//!
//! The choice ([`choose`]) and the labels ([`labels()`]) are pure; [`previous_build`] asks the
//! engine.

use std::collections::HashMap;

use bollard::Docker;

use super::labels::{self, Labels};
use super::ledger::Ledger;
use crate::ids::{AppName, ReleaseId};
use crate::lifecycle::{Buildpack, Built, KeptLayer};

/// Label: the id of the stack image the chain of build images started from.
pub const STACK: &str = "slipway.base.stack";
/// Label: how many builds since the stack (0: built from the stack).
pub const DEPTH: &str = "slipway.base.depth";
/// Label: the buildpacks offered to the build (`id@version`, in order).
pub const BUILDPACKS: &str = "slipway.base.buildpacks";
/// Label: the sealed launch layers the image holds (`<escaped bp>/<layer>`, comma-separated).
pub const SEALED: &str = "slipway.base.sealed";
/// Label: `true` when the build rebuilt or dropped a layer it kept from its base: the next
/// build starts from the stack again.
pub const REBASE: &str = "slipway.base.rebase";

/// How many builds may stand on one another before the next starts from the stack again.
pub const MAX_DEPTH: u32 = 10;

/// What a build container starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildBase {
    /// The stack image: a full build. `why` says why not the previous image, when it had
    /// layers to reuse.
    Stack {
        /// Why the previous release's image was not used.
        why: Option<String>,
    },
    /// The previous release's build image.
    Previous {
        /// Its id.
        image: String,
        /// The depth the new image will have.
        depth: u32,
        /// The sealed layers it holds, which the build keeps.
        kept: Vec<KeptLayer>,
    },
}

impl BuildBase {
    /// The depth of the image built on this base.
    pub fn depth(&self) -> u32 {
        match self {
            Self::Stack { .. } => 0,
            Self::Previous { depth, .. } => *depth,
        }
    }

    /// The layers kept from the base (`None` for the stack).
    pub fn kept(&self) -> Option<Vec<KeptLayer>> {
        match self {
            Self::Stack { .. } => None,
            Self::Previous { kept, .. } => Some(kept.clone()),
        }
    }
}

/// The [`BUILDPACKS`] value of a build offered `buildpacks`.
pub fn buildpacks_key(buildpacks: &[Buildpack]) -> String {
    let ids: Vec<String> = buildpacks
        .iter()
        .map(|b| format!("{}@{}", b.descriptor.buildpack.id, b.descriptor.buildpack.version))
        .collect();
    ids.join(",")
}

/// Picks the base of a build on `stack_id` offered `buildpacks` (a [`buildpacks_key`]), given
/// the previous release's build image and its labels, if it has one.
pub fn choose(previous: Option<(&str, &Labels)>, stack_id: &str, buildpacks: &str) -> BuildBase {
    let Some((image, l)) = previous else { return BuildBase::Stack { why: None } };
    let stack = |why: &str| BuildBase::Stack { why: Some(why.to_owned()) };
    let get = |k: &str| l.get(k).map(String::as_str);
    let Some(depth) = get(DEPTH).and_then(|d| d.parse::<u32>().ok()) else {
        return stack("the previous image was not built by this slipway");
    };
    if get(STACK) != Some(stack_id) {
        return stack("the stack image changed");
    }
    if get(BUILDPACKS) != Some(buildpacks) {
        return stack("the buildpacks changed");
    }
    if get(REBASE) == Some("true") {
        return stack("the previous build replaced a layer it kept");
    }
    if depth + 1 >= MAX_DEPTH {
        return stack(&format!("{MAX_DEPTH} builds stand on one another"));
    }
    let Some(kept) = get(SEALED).map(parse_sealed) else {
        return stack("the previous image does not list its layers");
    };
    if kept.is_empty() {
        // Nothing to reuse (a Procfile-only app): the stack gives the smaller image, and
        // there is no warm build to miss, so nothing to say.
        return BuildBase::Stack { why: None };
    }
    BuildBase::Previous { image: image.to_owned(), depth: depth + 1, kept }
}

fn parse_sealed(text: &str) -> Vec<KeptLayer> {
    text.split(',').filter(|s| !s.is_empty()).filter_map(KeptLayer::parse).collect()
}

/// The base labels of an image built on `base` (from stack `stack_id`, offered `buildpacks`),
/// which made `built`.
pub fn labels(base: &BuildBase, stack_id: &str, buildpacks: &str, built: &Built) -> Labels {
    let sealed: Vec<String> = built
        .layers
        .iter()
        .filter(|l| l.sealed && l.types.launch)
        .map(|l| format!("{}/{}", l.buildpack, l.name))
        .collect();
    let kept = base.kept().unwrap_or_default();
    let rebase = kept.iter().any(|k| !built.unchanged.contains(k));
    HashMap::from([
        (STACK.to_owned(), stack_id.to_owned()),
        (DEPTH.to_owned(), base.depth().to_string()),
        (BUILDPACKS.to_owned(), buildpacks.to_owned()),
        (SEALED.to_owned(), sealed.join(",")),
        (REBASE.to_owned(), rebase.to_string()),
    ])
}

/// The build image of `current` (recorded in the ledger as its base: the commit of its
/// build, before predeploy's) and its labels, if the engine still has it and its labels name
/// that app and release.
pub async fn previous_build(
    docker: &Docker,
    ledger: &Ledger,
    app: &AppName,
    current: ReleaseId,
) -> Option<(String, Labels)> {
    let Some(id) = ledger.load(current).ok().and_then(|r| r.bases.into_iter().next()) else {
        tracing::debug!(app = %app, release = %current, "no recorded build image: the build starts from the stack");
        return None;
    };
    let info = match docker.inspect_image(&id).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(app = %app, release = %current, image = %id, error = %e, "the previous build image is gone");
            return None;
        }
    };
    let l = info.config.and_then(|c| c.labels).unwrap_or_default();
    let ours = l.get(labels::APP).map(String::as_str) == Some(app.as_str())
        && labels::release_of(&l) == Some(current);
    if !ours {
        tracing::debug!(app = %app, release = %current, image = %id, "the previous build image is not labelled as that release's");
    }
    ours.then_some((id, l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildpack::layer::LayerTypes;
    use crate::lifecycle::BuiltLayer;

    fn prev(depth: u32) -> Labels {
        HashMap::from([
            (STACK.to_owned(), "sha256:stack".to_owned()),
            (DEPTH.to_owned(), depth.to_string()),
            (BUILDPACKS.to_owned(), "slipway/python@0.1.0,slipway/procfile@0.1.0".to_owned()),
            (SEALED.to_owned(), "slipway_python/venv".to_owned()),
            (REBASE.to_owned(), "false".to_owned()),
        ])
    }

    const BPS: &str = "slipway/python@0.1.0,slipway/procfile@0.1.0";

    fn venv() -> KeptLayer {
        KeptLayer { buildpack: "slipway_python".into(), name: "venv".into() }
    }

    #[test]
    fn a_build_starts_from_the_previous_image_while_nothing_it_stands_on_changed() {
        let l = prev(0);
        assert_eq!(
            choose(Some(("sha256:v1", &l)), "sha256:stack", BPS),
            BuildBase::Previous { image: "sha256:v1".into(), depth: 1, kept: vec![venv()] }
        );
        assert_eq!(choose(None, "sha256:stack", BPS), BuildBase::Stack { why: None });
    }

    #[test]
    fn a_changed_stack_buildpacks_a_rebuilt_layer_or_the_depth_limit_rebase_on_the_stack() {
        let why = |l: &Labels, stack: &str, bps: &str| match choose(Some(("sha256:v1", l)), stack, bps) {
            BuildBase::Stack { why } => why.unwrap(),
            other @ BuildBase::Previous { .. } => panic!("{other:?}"),
        };
        assert!(why(&prev(0), "sha256:other", BPS).contains("stack"));
        assert!(why(&prev(0), "sha256:stack", "slipway/procfile@0.1.0").contains("buildpacks"));
        let mut rebuilt = prev(3);
        rebuilt.insert(REBASE.into(), "true".into());
        assert!(why(&rebuilt, "sha256:stack", BPS).contains("replaced"));
        assert!(why(&prev(MAX_DEPTH - 1), "sha256:stack", BPS).contains("stand on one another"));
        assert!(matches!(
            choose(Some(("sha256:v1", &prev(MAX_DEPTH - 2))), "sha256:stack", BPS),
            BuildBase::Previous { depth, .. } if depth == MAX_DEPTH - 1
        ));
        let mut unlabelled = prev(0);
        unlabelled.remove(DEPTH);
        assert!(why(&unlabelled, "sha256:stack", BPS).contains("not built by"));
        let mut empty = prev(0);
        empty.insert(SEALED.into(), String::new());
        assert_eq!(choose(Some(("sha256:v1", &empty)), "sha256:stack", BPS), BuildBase::Stack { why: None });
    }

    #[test]
    fn a_sealed_list_never_names_a_path_out_of_the_layers_directory() {
        let got = parse_sealed("slipway_python/venv,../etc/passwd,a/b/c,.x/y,/abs,ok/..,,b/.");
        assert_eq!(got, vec![venv()]);
    }

    #[test]
    fn the_labels_say_what_to_rebase_for_next_time() {
        let layer = |name: &str, sealed: bool| BuiltLayer {
            buildpack: "slipway_python".into(),
            name: name.into(),
            types: LayerTypes { launch: true, build: false, cache: sealed },
            sealed,
        };
        let base = BuildBase::Previous { image: "sha256:v1".into(), depth: 4, kept: vec![venv()] };
        let mut built = Built { layers: vec![layer("venv", true), layer("run", false)], ..Built::default() };
        built.unchanged = vec![venv()];
        let l = labels(&base, "sha256:stack", BPS, &built);
        assert_eq!(l[DEPTH], "4");
        assert_eq!(l[SEALED], "slipway_python/venv");
        assert_eq!(l[REBASE], "false");
        built.unchanged.clear();
        assert_eq!(labels(&base, "sha256:stack", BPS, &built)[REBASE], "true", "the venv was rebuilt");
        let fresh = labels(&BuildBase::Stack { why: None }, "sha256:stack", BPS, &built);
        assert_eq!((fresh[DEPTH].as_str(), fresh[REBASE].as_str()), ("0", "false"));
    }
}
