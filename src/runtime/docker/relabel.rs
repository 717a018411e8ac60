//! Release labels put on a built image without one more builder step.
//!
//! The classic builder turns labels (a `LABEL` line, or the `labels` build option) into a step
//! that commits a container, and the labels name the release, so that step misses the cache on
//! every deploy. On a fuse-overlayfs engine a commit diffs the whole image tree: about 2.4 s,
//! which doubled a cached redeploy. Instead the built image's config is issued again with the
//! labels through `POST /images/load`, its layers listed as blank entries: an engine with the
//! graph-driver image store skips every layer it already holds (by chain id) without reading
//! it, so the load takes milliseconds whatever the image's size. The CNB's imgutil saves images
//! to a daemon the same way. An engine with the containerd image store needs every layer's
//! content, so there (or if the load is refused) a container of the image is committed with the
//! labels instead: slower, but it works on every engine.
//!
//! The release image names the build's image in its `slipway.build` label, for people; what
//! removing the release takes (that image and the step images only it used) is decided by the
//! ids recorded in [`super::ledger`], never by this label.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody, ImageConfig, ImageInspect};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, ImportImageOptions, RemoveContainerOptions,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::build_request::ImageId;
use super::labels::Labels;

/// Why an image could not be relabelled.
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    /// The engine failed.
    #[error("cannot {what} image {image} to label it: check `docker info`")]
    Engine {
        /// What was asked.
        what: &'static str,
        /// The image.
        image: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine described the image without its layers.
    #[error("the engine described image {image} without its layers (RootFS): check `docker info`")]
    NoLayers {
        /// The image.
        image: String,
    },
}

/// How the labels got onto the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A config-only load: no container, no diff.
    Load,
    /// A commit of a created (never started) container.
    Commit,
}

/// The image's config as the engine stores it (the image spec's JSON, whose sha256 is the
/// image id), with `labels` added to its own. The history is left out: the engine keeps none
/// for loaded images that it could check against their layers.
pub fn labelled_config(inspect: &ImageInspect, labels: &Labels) -> Option<Vec<u8>> {
    edited_config(inspect, |config| config.labels = Some(merged_labels(inspect, labels)))
}

/// The image's config as the engine stores it, changed by `edit`.
fn edited_config(inspect: &ImageInspect, edit: impl FnOnce(&mut ImageConfig)) -> Option<Vec<u8>> {
    let layers = inspect.root_fs.as_ref()?.layers.clone()?;
    let mut config = inspect.config.clone().unwrap_or_default();
    edit(&mut config);
    let mut doc = json!({
        "architecture": inspect.architecture.clone().unwrap_or_else(|| "amd64".into()),
        "os": inspect.os.clone().unwrap_or_else(|| "linux".into()),
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": layers },
    });
    let fields = [("created", &inspect.created), ("author", &inspect.author), ("variant", &inspect.variant)];
    for (key, value) in fields {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            doc[key] = Value::String(v.clone());
        }
    }
    serde_json::to_vec(&doc).ok()
}

/// The image's own labels with `labels` added (and winning). Every `slipway.*` label the
/// build set (a Dockerfile `LABEL slipway.app=…`) is dropped: only slipway names its resources.
fn merged_labels(inspect: &ImageInspect, labels: &Labels) -> HashMap<String, String> {
    let mut all = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    all.retain(|k, _| !k.starts_with("slipway."));
    all.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

fn engine(image: &ImageId, what: &'static str) -> impl FnOnce(bollard::errors::Error) -> RelabelError {
    let image = image.as_str().to_owned();
    move |source| RelabelError::Engine { what, image, source }
}

/// A `docker save`-format archive of one image: its config, a manifest tagging it `tag`, and a
/// blank entry for each of its `layers` layers (the engine already holds them).
pub fn load_archive(config: &[u8], tag: &str, layers: usize) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_image(&mut tar, config, tag, layers, None)?;
    tar.into_inner()
}

/// Appends to a `docker save`-format archive the image's config, a blank entry for each of
/// its first `blanks` layers (the engine already holds them) and the manifest tagging it
/// `tag`, whose layers end with `last` when the archive already holds that entry.
pub(super) fn append_image<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    config: &[u8],
    tag: &str,
    blanks: usize,
    last: Option<&str>,
) -> std::io::Result<()> {
    let digest = format!("{:x}", Sha256::digest(config));
    let mut names: Vec<String> = (0..blanks).map(|i| format!("blank_{i}")).collect();
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    add(&format!("{digest}.json"), config)?;
    for blank in &names {
        add(blank, &[])?;
    }
    names.extend(last.map(str::to_owned));
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{digest}.json"),
        "RepoTags": [tag],
        "Layers": names,
    }]))?;
    add("manifest.json", &manifest)
}

/// Whether the engine stores images in containerd, where a load must carry every layer.
fn uses_containerd_store(driver_status: Option<&Vec<Vec<String>>>) -> bool {
    driver_status.into_iter().flatten().any(|pair| {
        pair.first().is_some_and(|k| k == "driver-type")
            && pair.get(1).is_some_and(|v| v == "io.containerd.snapshotter.v1")
    })
}

/// Whether the engine stores images in containerd (asked of the engine).
pub(super) async fn containerd_store(docker: &Docker) -> bool {
    docker.info().await.is_ok_and(|i| uses_containerd_store(i.driver_status.as_ref()))
}

/// Tags `image` (an id) as `tag` with `labels` added (and `slipway.build=<image>`).
pub async fn relabel(
    docker: &Docker,
    image: &ImageId,
    tag: &str,
    labels: &Labels,
) -> Result<(ImageId, Method), RelabelError> {
    let inspect = docker.inspect_image(image.as_str()).await.map_err(engine(image, "inspect"))?;
    let layers = inspect.root_fs.as_ref().and_then(|r| r.layers.as_ref()).map_or(0, Vec::len);
    if layers == 0 {
        return Err(RelabelError::NoLayers { image: image.as_str().into() });
    }
    // The loaded image has no parent, so the build's own image stays, untagged, holding its
    // chain of step images (the layer cache); the label lets the release's removal take it.
    let mut labels = labels.clone();
    labels.insert(super::labels::BUILD.to_owned(), image.as_str().to_owned());
    let containerd = containerd_store(docker).await;
    let loaded = match labelled_config(&inspect, &labels).filter(|_| !containerd) {
        Some(config) => load(docker, &config, tag, layers).await,
        None => None,
    };
    match loaded {
        Some(id) => Ok((id, Method::Load)),
        None => Ok((commit(docker, image, tag, &inspect, &labels).await?, Method::Commit)),
    }
}

/// Issues `image` again as `tag` with its environment set to `env`, by a config-only load:
/// a commit merges the container's environment (the app's config) into the image's, which
/// must never hold it. `None` when the engine refused the load (the containerd image store).
pub async fn reissue_with_env(
    docker: &Docker,
    image: &ImageId,
    tag: &str,
    env: Vec<String>,
) -> Option<ImageId> {
    let inspect = docker.inspect_image(image.as_str()).await.ok()?;
    let layers = inspect.root_fs.as_ref().and_then(|r| r.layers.as_ref()).map_or(0, Vec::len);
    let config = edited_config(&inspect, |c| c.env = Some(env))?;
    load(docker, &config, tag, layers).await
}

/// The config-only load; `None` when the engine refused it (the caller commits instead).
async fn load(docker: &Docker, config: &[u8], tag: &str, layers: usize) -> Option<ImageId> {
    let archive = bytes::Bytes::from(load_archive(config, tag, layers).ok()?);
    load_tagged(docker, futures_util::stream::once(async { Ok(archive) }), config, tag).await
}

/// Loads the archive `body` streams, whose image has `config` and is tagged `tag`: the new
/// image's id, or `None` when the engine refused it.
pub(super) async fn load_tagged(
    docker: &Docker,
    body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    config: &[u8],
    tag: &str,
) -> Option<ImageId> {
    let options = ImportImageOptions { quiet: true, ..Default::default() };
    let mut replies = docker.import_image(options, bollard::body_try_stream(body), None);
    while let Some(reply) = replies.next().await {
        match reply {
            Ok(info) if info.error_detail.is_some() => return None,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("config-only load of {tag} refused: {e}");
                return None;
            }
        }
    }
    let inspect = docker.inspect_image(tag).await.ok()?;
    let want = format!("sha256:{:x}", Sha256::digest(config));
    inspect.id.filter(|id| *id == want).map(ImageId::new)
}

/// The portable way: a created container of the image, committed with the labels.
pub(super) async fn commit(
    docker: &Docker,
    image: &ImageId,
    tag: &str,
    inspect: &ImageInspect,
    labels: &Labels,
) -> Result<ImageId, RelabelError> {
    let body = ContainerCreateBody { image: Some(image.as_str().to_owned()), ..Default::default() };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(engine(image, "create a container of"))?;
    let config = ContainerConfig { labels: Some(merged_labels(inspect, labels)), ..Default::default() };
    let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let options = CommitContainerOptions {
        container: Some(created.id.clone()),
        repo: Some(repo.to_owned()),
        tag: Some(tag_part.to_owned()),
        pause: false,
        ..Default::default()
    };
    let committed = docker.commit_container(options, config).await.map_err(engine(image, "commit"));
    let rm = RemoveContainerOptions { force: true, ..Default::default() };
    let _ = docker.remove_container(&created.id, Some(rm)).await;
    Ok(ImageId::new(committed?.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageInspectRootFs;

    fn inspect() -> ImageInspect {
        ImageInspect {
            id: Some("sha256:abc".into()),
            architecture: Some("amd64".into()),
            os: Some("linux".into()),
            created: Some("2026-11-24T22:00:00Z".into()),
            config: Some(ImageConfig {
                cmd: Some(vec!["bash".into()]),
                working_dir: Some("/app".into()),
                labels: Some(HashMap::from([
                    ("slipway.stack".into(), "bookworm".into()),
                    ("org.example".into(), "kept".into()),
                ])),
                ..Default::default()
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(vec!["sha256:l1".into(), "sha256:l2".into()]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_config_keeps_the_image_and_adds_the_labels() {
        let labels = Labels::from([("slipway.release".into(), "v3".into())]);
        let config: Value = serde_json::from_slice(&labelled_config(&inspect(), &labels).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:l1", "sha256:l2"]));
        assert_eq!(config["config"]["Cmd"], json!(["bash"]));
        assert_eq!(config["config"]["WorkingDir"], "/app");
        assert_eq!(config["config"]["Labels"]["slipway.release"], "v3");
        assert_eq!(config["config"]["Labels"]["org.example"], "kept");
        assert!(config["config"]["Labels"].get("slipway.stack").is_none(), "build-time slipway.* labels go");
        assert_eq!(config["created"], "2026-11-24T22:00:00Z");
        assert!(config.get("author").is_none());
    }

    #[test]
    fn an_image_without_layers_has_no_config_to_load() {
        let mut i = inspect();
        i.root_fs = None;
        assert!(labelled_config(&i, &Labels::new()).is_none());
    }

    #[test]
    fn the_archive_names_the_config_by_digest_and_blanks_every_layer() {
        let bytes = load_archive(b"{}", "slipway/demo:v3", 2).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            entries.push((e.path().unwrap().display().to_string(), text));
        }
        let digest = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(entries[0], (format!("{digest}.json"), "{}".to_owned()));
        assert_eq!(entries[1], ("blank_0".to_owned(), String::new()));
        assert_eq!(entries[2], ("blank_1".to_owned(), String::new()));
        let manifest: Value = serde_json::from_str(&entries[3].1).unwrap();
        assert_eq!(manifest[0]["Config"], format!("{digest}.json"));
        assert_eq!(manifest[0]["RepoTags"], json!(["slipway/demo:v3"]));
        assert_eq!(manifest[0]["Layers"], json!(["blank_0", "blank_1"]));
    }

    #[test]
    fn only_the_containerd_snapshotter_needs_full_layers() {
        let graph = vec![vec!["Backing Filesystem".to_owned(), "extfs".to_owned()]];
        let containerd = vec![vec!["driver-type".to_owned(), "io.containerd.snapshotter.v1".to_owned()]];
        assert!(!uses_containerd_store(Some(&graph)));
        assert!(!uses_containerd_store(None));
        assert!(uses_containerd_store(Some(&containerd)));
    }
}
