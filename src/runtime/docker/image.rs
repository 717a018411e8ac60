//! Release images: a fresh one per deploy, built from exactly the committed tree.
//!
//! With a `Dockerfile` in the commit, the engine builds it (its layer cache reuses unchanged
//! steps) and [`super::relabel`] then labels the result without a builder step. Without one,
//! [`super::lifecycle`] runs the buildpacks. Either way the image is tagged
//! `slipway/<app>:<release>` and labelled with app, release and commit.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};
use futures_util::StreamExt;

pub use super::build_request::{BuildRequest, ImageId};
use super::context::{self, ContextError, GitContext};
use super::labels;
use super::ledger::{self, Ledger, LedgerError, Removal};
use super::lifecycle::{self, BuildpackBuildError};
use super::output::{LineSink, Tail};
use super::relabel::{self, RelabelError};
use super::stack::StackError;
use crate::ids::{AppName, ReleaseId};
use crate::plan::BuildKind;

/// Why a release image could not be built. The running release is never touched by a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The commit's tree could not be streamed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The stack image is missing.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// A buildpack phase failed.
    #[error(transparent)]
    Lifecycle(#[from] BuildpackBuildError),
    /// The build-cache lock could not be taken.
    #[error(transparent)]
    StepCache(Box<super::step_cache::StepCacheError>),
    /// A Dockerfile instruction failed.
    #[error(
        "building {app} {release}: Dockerfile step `{step}` failed: {message}\n{tail}\
         fix the Dockerfile; FROM images must already exist in the engine, since no registry can be reached (e.g. FROM slipway/stack:bookworm)"
    )]
    DockerfileStep {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// The `Step N/M : INSTRUCTION` line, or `(before the first step)`.
        step: String,
        /// The engine's error message.
        message: String,
        /// The last output lines.
        tail: Tail,
    },
    /// The engine failed outside a Dockerfile step.
    #[error("building {app} {release}: the Docker engine failed to {what}")]
    Engine {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// What was asked of it.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The ids of the images it made could not be recorded.
    #[error("building {app} {release}: cannot record the images it made")]
    Ledger {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The built image could not be labelled.
    #[error("building {app} {release}: the built image could not be labelled")]
    Label {
        /// The app.
        app: AppName,
        /// The release.
        release: ReleaseId,
        /// Why.
        #[source]
        source: RelabelError,
    },
}

/// Why images could not be listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// slipway's record of the images it built could not be read or updated.
    #[error("cannot remove the images of {release}")]
    Ledger {
        /// The release.
        release: ReleaseId,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The lock that keeps step-image removal away from running builds.
    #[error(transparent)]
    StepCache(Box<super::step_cache::StepCacheError>),
    /// The engine failed.
    #[error("cannot {what} image {image}: check `docker info`")]
    Engine {
        /// What was asked.
        what: &'static str,
        /// The image (id, tag, or `slipway.app=<app>`).
        image: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// Builds the release image of `req.commit`: with its Dockerfile if it has one, otherwise
/// with the buildpacks. Build output goes to `output` line by line.
pub async fn build_image(
    docker: &Docker,
    req: &BuildRequest,
    output: LineSink<'_>,
) -> Result<ImageId, BuildError> {
    let kind = if context::commit_has_file(&req.source, &req.commit, DOCKERFILE)? {
        BuildKind::Dockerfile
    } else {
        BuildKind::Buildpacks
    };
    Ok(build_kind(docker, req, kind, output).await?.0)
}

/// Builds the release image as the plan says, and returns the launch.toml processes of a
/// buildpack build (none for a Dockerfile).
pub async fn build_kind(
    docker: &Docker,
    req: &BuildRequest,
    kind: BuildKind,
    output: LineSink<'_>,
) -> Result<(ImageId, Vec<crate::buildpack::launch::Process>), BuildError> {
    match kind {
        BuildKind::Dockerfile => Ok((build_dockerfile(docker, req, output).await?, Vec::new())),
        BuildKind::Buildpacks | BuildKind::Tree => {
            let built = lifecycle::build(docker, req, output).await?;
            Ok((built.id, built.launch.processes))
        }
    }
}

/// The engine's build options for a release: the tag, and removal of intermediate containers
/// even on failure (so a failed build leaves nothing running). No `labels`: the classic builder
/// would add one uncacheable step for them; [`relabel`] puts them on afterwards.
pub fn dockerfile_build_options(app: &AppName, release: ReleaseId) -> BuildImageOptions {
    BuildImageOptions {
        dockerfile: DOCKERFILE.to_owned(),
        t: Some(labels::image_tag(app, release)),
        rm: true,
        forcerm: true,
        ..Default::default()
    }
}

/// The Dockerfile's path in the build context.
pub const DOCKERFILE: &str = "Dockerfile";

/// Builds the commit's Dockerfile, streaming the tree as the context.
pub async fn build_dockerfile(
    docker: &Docker,
    req: &BuildRequest,
    output: LineSink<'_>,
) -> Result<ImageId, BuildError> {
    let mut ctx = GitContext::start(&req.source, &req.commit, req.gzip_context)?;
    let stream = ctx.take_stream().ok_or_else(|| ContextError::Archive {
        repo: req.source.dir().to_owned(),
        commit: req.commit.clone(),
        stderr: "context already taken".into(),
    })?;
    let options = dockerfile_build_options(&req.app, req.release);
    // Held until the build is done: no app's retire removes a cached step this build stands on.
    let _cache = super::step_cache::building(req.ledger.steps_lock().to_owned())
        .await
        .map_err(|e| BuildError::StepCache(Box::new(e)))?;
    let mut tail = Tail::new();
    let mut step = "(before the first step)".to_owned();
    let mut failure: Option<(String, Option<bollard::errors::Error>)> = None;
    let mut ledger_failure: Option<LedgerError> = None;
    let mut parent = String::new();
    {
        let mut infos = docker.build_image(options, None, Some(bollard::body_try_stream(stream)));
        let mut sink = |line: &str| {
            if line.starts_with("Step ") {
                line.clone_into(&mut step);
            } else if let Some(id) = ledger::step_image_of(line) {
                // The id a FROM step prints is the base image: not the build's, but the
                // parent its first step image must have.
                if !is_from_step(&step)
                    && let Err(e) = req.ledger.record_step(req.release, id, Some(parent.as_str()))
                {
                    ledger_failure.get_or_insert(e);
                }
                id.clone_into(&mut parent);
            }
            output(line);
        };
        while let Some(item) = infos.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        tail.push_chunk(text, &mut sink);
                    }
                    if let Some(detail) = info.error_detail {
                        failure = Some((detail.message.unwrap_or_default(), None));
                        break;
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    failure = Some((error, None));
                    break;
                }
                Err(e) => {
                    failure = Some((e.to_string(), Some(e)));
                    break;
                }
            }
        }
        tail.finish(&mut sink);
    }
    // git's own error (an unknown commit) explains whatever the engine then said.
    ctx.finish().await?;
    let record_err = |source| BuildError::Ledger { app: req.app.clone(), release: req.release, source };
    if let Some(e) = ledger_failure {
        return Err(record_err(e));
    }
    match failure {
        None => {}
        Some((_, Some(source)))
            if !matches!(source, bollard::errors::Error::DockerResponseServerError { .. }) =>
        {
            return Err(BuildError::Engine {
                app: req.app.clone(),
                release: req.release,
                what: "build the Dockerfile",
                source,
            });
        }
        Some((message, _)) => {
            return Err(BuildError::DockerfileStep {
                app: req.app.clone(),
                release: req.release,
                step: super::output::strip_ansi(&step).into_owned(),
                message: super::output::strip_ansi(&message).into_owned(),
                tail,
            });
        }
    }
    let tag = labels::image_tag(&req.app, req.release);
    let inspect = docker.inspect_image(&tag).await.map_err(|source| BuildError::Engine {
        app: req.app.clone(),
        release: req.release,
        what: "find the image it just built",
        source,
    })?;
    let built = ImageId::new(inspect.id.unwrap_or_else(|| tag.clone()));
    req.ledger.record_step(req.release, built.as_str(), None).map_err(record_err)?;
    let image_labels = labels::image_labels(&req.app, req.release, &req.commit);
    let (id, _) = relabel::relabel(docker, &built, &tag, &image_labels)
        .await
        .map_err(|source| BuildError::Label { app: req.app.clone(), release: req.release, source })?;
    req.ledger.record_release(req.release, id.as_str()).map_err(record_err)?;
    Ok(id)
}

/// One of an app's images, as listed from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImage {
    /// The image id.
    pub id: ImageId,
    /// Its tags (`slipway/<app>:<release>`), empty when dangling.
    pub tags: Vec<String>,
    /// Its `slipway.release` label.
    pub release: Option<ReleaseId>,
    /// Its `slipway.commit` label.
    pub commit: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Whether it carries the app's labels; if not, it was found by its tag alone.
    pub labelled: bool,
    /// Its `slipway.build` label: the build's own image (informative: removal goes by the
    /// ledger).
    pub build: Option<String>,
}

/// The app's images, newest first: every image labelled `slipway.app=<app>`, and every image
/// tagged `slipway/<app>:<release>` (a build that a killed deploy left before labelling it).
pub async fn list_images(docker: &Docker, app: &AppName) -> Result<Vec<AppImage>, ImageError> {
    let mut images: Vec<AppImage> = Vec::new();
    for filters in [labels::app_filter(app), labels::repo_filter(app)] {
        for s in summaries(docker, app, filters, "list").await? {
            if images.iter().any(|i| i.id.as_str() == s.id) {
                continue;
            }
            let tags: Vec<String> = s.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect();
            let release = labels::release_of(&s.labels).or_else(|| release_of_tags(app, &tags));
            images.push(AppImage {
                release,
                commit: s.labels.get(labels::COMMIT).cloned(),
                id: ImageId::new(s.id),
                labelled: s.labels.contains_key(labels::APP),
                build: s.labels.get(labels::BUILD).cloned(),
                tags,
                created: s.created,
            });
        }
    }
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    Ok(images)
}

/// Whether the builder's current step is a `FROM`: the id it prints is the base image's,
/// which the build did not make (the stack, another app's image).
fn is_from_step(step: &str) -> bool {
    step.split_once(" : ")
        .is_some_and(|(_, instr)| instr.trim_start().to_ascii_uppercase().starts_with("FROM "))
}

async fn summaries(
    docker: &Docker,
    app: &AppName,
    filters: HashMap<String, Vec<String>>,
    what: &'static str,
) -> Result<Vec<bollard::models::ImageSummary>, ImageError> {
    let options = ListImagesOptions { all: false, filters: Some(filters), ..Default::default() };
    docker.list_images(Some(options)).await.map_err(|source| ImageError::Engine {
        what,
        image: format!("{}={app}", labels::APP),
        source,
    })
}

/// The release named by a `slipway/<app>:<release>` tag among `tags`.
pub fn release_of_tags(app: &AppName, tags: &[String]) -> Option<ReleaseId> {
    let repo = labels::image_repo(app);
    tags.iter().find_map(|t| t.strip_prefix(&repo)?.strip_prefix(':')?.parse().ok())
}

/// Whether removing step images waits for builds that may stand on them (see `step_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPrune {
    /// Wait for every running build: `apps destroy`, a failed build's clean-up.
    Wait,
    /// If a build runs, keep the step images recorded for a later command: retire, reconcile.
    IfIdle,
}

/// Removes what slipway recorded for `release` of the app, sparing ids its other recorded
/// releases use, then forgets the release. Labels play no part: an image a Dockerfile labelled
/// `slipway.app=<app>` or `slipway.build=<id>` is never removed for it.
pub async fn remove_recorded(
    docker: &Docker,
    ledger: &Ledger,
    release: ReleaseId,
    prune: StepPrune,
) -> Result<(), ImageError> {
    let ledger_err = |source: LedgerError| ImageError::Ledger { release, source };
    let gone = ledger.load(release).map_err(ledger_err)?;
    let spare = ledger.ids_except(release).map_err(ledger_err)?;
    let removals = ledger::removals(&gone, &spare);
    let lock_err = |e: super::step_cache::StepCacheError| ImageError::StepCache(Box::new(e));
    let steps_lock = if removals.iter().all(|r| r.release_image) {
        None
    } else if prune == StepPrune::Wait {
        Some(super::step_cache::pruning(ledger.steps_lock().to_owned()).await.map_err(lock_err)?)
    } else {
        super::step_cache::pruning_if_idle(ledger.steps_lock()).map_err(lock_err)?
    };
    let mut left = ledger::ReleaseImages::default();
    for removal in removals {
        if !removal.release_image && steps_lock.is_none() {
            left.steps.push(removal.id.clone());
            if let Some(p) = &removal.parent {
                left.parents.insert(removal.id.clone(), p.clone());
            }
            continue;
        }
        if remove_one(docker, &removal).await? == Removed::KeptForChildren {
            left.bases.push(removal.id.clone());
        }
    }
    if left.steps.is_empty() && left.bases.is_empty() {
        ledger.forget(release).map_err(ledger_err)
    } else {
        // Newest first came out of `removals`; the record keeps creation order.
        left.steps.reverse();
        left.bases.reverse();
        ledger.save(release, &left).map_err(ledger_err)
    }
}

/// What became of an image slipway asked the engine to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    /// Gone, never there, or not the build's after all.
    Done,
    /// A release image that a later release's warm build stands on (`base`): the engine
    /// refuses it (409, dependent child images); the ledger keeps its id until its last child
    /// is gone ([`remove_freed_bases`]).
    KeptForChildren,
}

async fn remove_one(docker: &Docker, removal: &Removal) -> Result<Removed, ImageError> {
    if removal.release_image {
        return match remove_release_image(docker, &removal.id).await {
            Err(ImageError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 409, message },
                ..
            }) if message.contains("dependent child") => Ok(Removed::KeptForChildren),
            other => other.map(|()| Removed::Done),
        };
    }
    // A step image is shared with whatever build cached it: a tagged one is someone's image,
    // and one with children (a newer build stands on it) is refused by the engine (409).
    match docker.inspect_image(&removal.id).await {
        Ok(i) if i.repo_tags.iter().flatten().any(|t| t != "<none>:<none>") => return Ok(Removed::Done),
        Ok(_) => {}
        Err(e) if super::is_not_found(&e) => return Ok(Removed::Done),
        Err(source) => return Err(ImageError::Engine { what: "inspect", image: removal.id.clone(), source }),
    }
    // An id the build's output named must stand on the step before it (its history's second
    // entry is its parent), or it was the app's own text, not the build's image.
    if let Some(expected) = &removal.parent {
        let history = docker.image_history(&removal.id).await.map_err(|source| ImageError::Engine {
            what: "read the history of",
            image: removal.id.clone(),
            source,
        })?;
        if !history.get(1).is_some_and(|h| ledger::parent_matches(&h.id, expected)) {
            return Ok(Removed::Done);
        }
    }
    // A killed deploy's build goes on until the engine notices the client is gone and removes
    // its step container, which holds the image meanwhile: wait for that, not for children.
    for _ in 0..STEP_CONTAINER_WAITS {
        match remove_image(docker, &removal.id, false).await {
            Err(ImageError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 409, message },
                ..
            }) => {
                if !message.contains("used by") {
                    return Ok(Removed::Done);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => return other.map(|()| Removed::Done),
        }
    }
    Ok(Removed::Done)
}

/// How many half-second waits a step image gets for an abandoned build's container to go.
const STEP_CONTAINER_WAITS: u32 = 20;

/// Untags the app's release tags on an image found by its tag alone (an unlabelled build of a
/// killed deploy): the tag `slipway/<app>:<release>` is slipway's to remove, while the image
/// stays for any other tag, and goes with the release's recorded ids otherwise.
/// Returns whether it untagged anything.
pub async fn untag_release_tags(
    docker: &Docker,
    app: &AppName,
    image: &AppImage,
    keep: &[ReleaseId],
) -> Result<bool, ImageError> {
    let mut untagged = false;
    let orphan =
        |t: &String| release_of_tags(app, std::slice::from_ref(t)).is_some_and(|r| !keep.contains(&r));
    for tag in image.tags.iter().filter(|t| orphan(t)) {
        untagged = true;
        // No pruning: a killed warm build's image stands on the current release's build
        // image, untagged once predeploy's image took its tag, which the engine would remove
        // along with it (see `base`).
        let options = RemoveImageOptions { force: false, noprune: true, ..Default::default() };
        match docker.remove_image(tag, Some(options), None).await {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(source) => return Err(ImageError::Engine { what: "untag", image: tag.clone(), source }),
        }
    }
    Ok(untagged)
}

/// Removes the recorded release images that lost their tag (the build's image, once
/// predeploy's commit took its tag) when nothing stands on them: a release image is tagged
/// when made, so an untagged one is superseded.
pub async fn prune_superseded(docker: &Docker, ledger: &Ledger) -> Result<(), ImageError> {
    for release in ledger.releases() {
        let recorded = ledger.load(release).map_err(|source| ImageError::Ledger { release, source })?;
        // A build image the next build may start from is not superseded, only untagged.
        for id in recorded.release.into_iter().filter(|id| !recorded.bases.contains(id)) {
            remove_one(docker, &Removal { id, release_image: false, parent: None }).await?;
        }
    }
    Ok(())
}

/// Removes a release image by id or tag (forced: a release's tag goes whatever holds it), but
/// never its untagged parent: the engine would prune it with its last child, and that parent
/// may be the build image the current release's next build starts from (`base`). The parents
/// slipway made are in its ledger and go by their own id ([`remove_freed_bases`]).
pub async fn remove_release_image(docker: &Docker, image: &str) -> Result<(), ImageError> {
    let options = RemoveImageOptions { force: true, noprune: true, ..Default::default() };
    match docker.remove_image(image, Some(options), None).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(source) => Err(ImageError::Engine { what: "remove", image: image.to_owned(), source }),
    }
}

/// Removes the build images of removed releases that later builds stood on, now that nothing
/// stands on them any more (those still with children stay recorded). Newest first, so a
/// freed chain goes in one pass.
pub async fn remove_freed_bases(docker: &Docker, ledger: &Ledger) -> Result<(), ImageError> {
    for release in ledger.releases().into_iter().rev() {
        let recorded = ledger.load(release).map_err(|source| ImageError::Ledger { release, source })?;
        if recorded.only_bases() {
            remove_recorded(docker, ledger, release, StepPrune::IfIdle).await?;
        }
    }
    Ok(())
}

/// Removes an image by id or tag; a missing image is not an error.
pub async fn remove_image(docker: &Docker, image: &str, force: bool) -> Result<(), ImageError> {
    let options = RemoveImageOptions { force, noprune: false, ..Default::default() };
    match docker.remove_image(image, Some(options), None).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(source) => Err(ImageError::Engine { what: "remove", image: image.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_builds_are_tagged_and_clean_up_on_failure_without_a_label_step() {
        let app: AppName = "demo".parse().unwrap();
        let o = dockerfile_build_options(&app, ReleaseId::new(5));
        assert_eq!(o.t.as_deref(), Some("slipway/demo:v5"));
        assert_eq!(o.dockerfile, "Dockerfile");
        assert!(o.rm && o.forcerm);
        // Labels as build options cost the classic builder an uncacheable step.
        assert_eq!(o.labels, None);
    }

    #[test]
    fn the_id_after_a_from_step_is_the_base_image_not_one_the_build_made() {
        assert!(is_from_step("Step 1/3 : FROM slipway/stack:bookworm"));
        assert!(is_from_step("Step 4/9 : from other AS builder"));
        assert!(!is_from_step("Step 2/3 : RUN echo FROM x"));
        assert!(!is_from_step("(before the first step)"));
    }

    #[test]
    fn an_unlabelled_build_is_found_by_its_release_tag() {
        let app: AppName = "demo".parse().unwrap();
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(release_of_tags(&app, &tags(&["slipway/demo:v7"])), Some(ReleaseId::new(7)));
        assert_eq!(release_of_tags(&app, &tags(&["slipway/demo2:v7", "slipway/demo:latest"])), None);
        assert_eq!(release_of_tags(&app, &tags(&[])), None);
    }
}
