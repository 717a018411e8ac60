//! What slipway itself created in the engine for an app, recorded under the root-only
//! `state/<app>/docker/images/<release>.json`: the authority for what may be removed.
//!
//! Labels are no authority: a Dockerfile `LABEL slipway.app=… slipway.build=<any image>` puts
//! them on whatever it builds, and once made an app delete another app's image or the stack
//! (issue 11 §2). Labels and tags only *find* candidates; an image is removed only if its id
//! is recorded here. Step images are recorded while the build streams them, so a build that
//! fails or is killed (`kill -9`) still leaves the ids of what it made.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::{AppName, ReleaseId};
use crate::state::{Home, atomic};

/// The images one release's build, predeploy and labelling made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseImages {
    /// Release images (`slipway/<app>:<release>`: the labelled build, predeploy's commit),
    /// in creation order. Their ids hash slipway's own labels, so no other image shares them.
    #[serde(default)]
    pub release: Vec<String>,
    /// The build's own images and its Dockerfile step images, in creation order. Cached steps
    /// may be shared with other builds, so these go only when nothing stands on them.
    #[serde(default)]
    pub steps: Vec<String>,
    /// For step ids read from the build's output, the parent each must have: the output also
    /// carries the app's own `RUN echo ' ---> <id>'`, so an id whose parent is not the
    /// previous step's image is not the build's and is never removed for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parents: BTreeMap<String, String>,
    /// A buildpack build's own image, which the next build may start from (see `base`): kept
    /// while its release is, even once predeploy's image took the tag (so not superseded),
    /// and after, while a later build committed on it stands on it (the engine refuses to
    /// remove an image with children; a loaded one shares layers, not a parent); then it goes
    /// by this id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<String>,
}

impl ReleaseImages {
    /// Whether all that is left of the release are images later builds stand on: nothing of
    /// it is running or could be, so reconciliation has nothing to report for it.
    pub fn only_bases(&self) -> bool {
        self.release.is_empty() && self.steps.is_empty() && !self.bases.is_empty()
    }

    fn add(list: &mut Vec<String>, id: &str) -> bool {
        if id.is_empty() || list.iter().any(|i| i == id) {
            return false;
        }
        list.push(id.to_owned());
        true
    }
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A ledger file could not be read, parsed or written.
    #[error("cannot {action} slipway's record of the images it built, {}: check the state directory's permissions", path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The ledger of one app.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
    steps_lock: PathBuf,
}

impl Ledger {
    /// The ledger of `app` under `home`.
    pub fn of(home: &Home, app: &AppName) -> Self {
        Self {
            dir: home.app(app).state_dir().join("docker").join("images"),
            steps_lock: super::step_cache::lock_path(home),
        }
    }

    /// A ledger kept in `dir` (tests).
    pub fn at(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), steps_lock: dir.join("steps.lock") }
    }

    /// The lock that keeps step-image removal and builds apart (see `step_cache`).
    pub fn steps_lock(&self) -> &Path {
        &self.steps_lock
    }

    fn path(&self, release: ReleaseId) -> PathBuf {
        self.dir.join(format!("{release}.json"))
    }

    /// The record of `release` (empty if none).
    pub fn load(&self, release: ReleaseId) -> Result<ReleaseImages, LedgerError> {
        let path = self.path(release);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LedgerError::Io {
                action: "parse",
                path,
                source: io::Error::other(e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ReleaseImages::default()),
            Err(source) => Err(LedgerError::Io { action: "read", path, source }),
        }
    }

    /// Replaces the record of `release`: what is left of it after a partial removal.
    pub fn save(&self, release: ReleaseId, images: &ReleaseImages) -> Result<(), LedgerError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| LedgerError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path(release);
        atomic::write_json(&path, images).map_err(|source| LedgerError::Io { action: "write", path, source })
    }

    /// Records a release image of `release`.
    pub fn record_release(&self, release: ReleaseId, id: &str) -> Result<(), LedgerError> {
        let mut r = self.load(release)?;
        if ReleaseImages::add(&mut r.release, id) {
            self.save(release, &r)?;
        }
        Ok(())
    }

    /// Records a buildpack build's image of `release` as one a later build may start from
    /// (it is a release image too: [`Ledger::record_release`]).
    pub fn record_base(&self, release: ReleaseId, id: &str) -> Result<(), LedgerError> {
        let mut r = self.load(release)?;
        if ReleaseImages::add(&mut r.bases, id) {
            self.save(release, &r)?;
        }
        Ok(())
    }

    /// Records a build or step image of `release`; `parent` is the image it must stand on
    /// when the id was read from build output rather than asked of the engine.
    pub fn record_step(&self, release: ReleaseId, id: &str, parent: Option<&str>) -> Result<(), LedgerError> {
        let mut r = self.load(release)?;
        if ReleaseImages::add(&mut r.steps, id) {
            if let Some(p) = parent {
                r.parents.insert(id.to_owned(), p.to_owned());
            }
            self.save(release, &r)?;
        }
        Ok(())
    }

    /// The releases with a record.
    pub fn releases(&self) -> Vec<ReleaseId> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut all: Vec<ReleaseId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        all.sort();
        all
    }

    /// Forgets `release`, once its images are gone.
    pub fn forget(&self, release: ReleaseId) -> Result<(), LedgerError> {
        let path = self.path(release);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(LedgerError::Io { action: "remove", path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Every id recorded for a release other than `gone`: what removing `gone` must spare.
    pub fn ids_except(&self, gone: ReleaseId) -> Result<BTreeSet<String>, LedgerError> {
        let mut ids = BTreeSet::new();
        for r in self.releases().into_iter().filter(|r| *r != gone) {
            let images = self.load(r)?;
            ids.extend(images.release);
            ids.extend(images.steps);
            ids.extend(images.bases);
        }
        Ok(ids)
    }
}

/// One image to remove and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The recorded id.
    pub id: String,
    /// Release images go even when tagged (their tag is the release's own); step images go
    /// only when untagged and nothing stands on them.
    pub release_image: bool,
    /// The parent a step image must have to be the build's (see [`ReleaseImages::parents`]).
    pub parent: Option<String>,
}

/// Whether an image whose engine-reported parent is `actual` (`sha256:…`, or empty) stands on
/// `expected` (a short or full id).
pub fn parent_matches(actual: &str, expected: &str) -> bool {
    let actual = actual.trim_start_matches("sha256:");
    let expected = expected.trim_start_matches("sha256:");
    !expected.is_empty() && actual.starts_with(expected)
}

/// What removing a release takes, newest first (children before their parents), sparing
/// every id that another recorded release still uses.
pub fn removals(gone: &ReleaseImages, spare: &BTreeSet<String>) -> Vec<Removal> {
    let bases = gone.bases.iter().rev().filter(|id| !gone.release.contains(id));
    let release = gone.release.iter().rev().chain(bases).map(|id| Removal {
        id: id.clone(),
        release_image: true,
        parent: None,
    });
    let steps = gone.steps.iter().rev().map(|id| Removal {
        id: id.clone(),
        release_image: false,
        parent: gone.parents.get(id).cloned(),
    });
    release.chain(steps).filter(|r| !spare.contains(&r.id)).collect()
}

/// The image id a classic-builder output line names (` ---> 3f2a…`), unless it names a
/// container (` ---> Running in …`) or a cache hit notice.
pub fn step_image_of(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> ")?.trim();
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_images_are_read_from_the_builder_output_but_containers_are_not() {
        assert_eq!(step_image_of(" ---> 3f2a9c1d0b7e"), Some("3f2a9c1d0b7e"));
        assert_eq!(step_image_of(" ---> Running in 0123456789ab"), None);
        assert_eq!(step_image_of(" ---> Using cache"), None);
        assert_eq!(step_image_of("Step 2/3 : RUN true"), None);
        assert_eq!(step_image_of(" ---> abc"), None);
    }

    #[test]
    fn removals_go_newest_first_and_spare_what_other_releases_recorded() {
        let gone = ReleaseImages {
            release: vec!["sha256:built".into(), "sha256:predeployed".into()],
            steps: vec!["s1".into(), "s2".into(), "shared".into()],
            parents: BTreeMap::from([("s2".to_owned(), "s1".to_owned())]),
            bases: vec![],
        };
        let spare = BTreeSet::from(["shared".to_owned()]);
        let ids: Vec<(String, bool, Option<String>)> =
            removals(&gone, &spare).into_iter().map(|r| (r.id, r.release_image, r.parent)).collect();
        assert_eq!(
            ids,
            [
                ("sha256:predeployed".to_owned(), true, None),
                ("sha256:built".to_owned(), true, None),
                ("s2".to_owned(), false, Some("s1".to_owned())),
                ("s1".to_owned(), false, None),
            ]
        );
    }

    #[test]
    fn a_step_read_from_output_counts_only_if_it_stands_on_the_previous_step() {
        assert!(parent_matches("sha256:3f2a9c1d0b7e55", "3f2a9c1d0b7e"));
        assert!(parent_matches("sha256:3f2a9c1d0b7e55", "sha256:3f2a9c1d0b7e55"));
        assert!(!parent_matches("sha256:aaaa", "3f2a9c1d0b7e"));
        assert!(!parent_matches("", "3f2a9c1d0b7e"));
        assert!(!parent_matches("sha256:3f2a", ""));
    }

    #[test]
    fn the_ledger_records_each_id_once_and_forgets_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::at(dir.path());
        let v2 = ReleaseId::new(2);
        ledger.record_step(v2, "s1", Some("base")).unwrap();
        ledger.record_step(v2, "s1", None).unwrap();
        ledger.record_release(v2, "sha256:img").unwrap();
        ledger.record_step(ReleaseId::new(3), "s9", None).unwrap();
        assert_eq!(
            ledger.load(v2).unwrap(),
            ReleaseImages {
                release: vec!["sha256:img".into()],
                steps: vec!["s1".into()],
                parents: BTreeMap::from([("s1".to_owned(), "base".to_owned())]),
                bases: vec![],
            }
        );
        assert_eq!(ledger.releases(), [v2, ReleaseId::new(3)]);
        assert_eq!(ledger.ids_except(v2).unwrap(), BTreeSet::from(["s9".to_owned()]));
        ledger.forget(v2).unwrap();
        assert_eq!(ledger.load(v2).unwrap(), ReleaseImages::default());
    }
}
