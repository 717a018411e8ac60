//! What a release image is built from, and the id the engine gives it: shared by the
//! Dockerfile build ([`super::image`]), the buildpack build ([`super::lifecycle`]) and the
//! relabelling ([`super::relabel`]), so none of them depends on another for these.

use std::fmt;
use std::path::PathBuf;

use super::ledger::Ledger;
use crate::ids::{AppName, CommitSha, ReleaseId};
use crate::source::Repo;

/// An engine image id (`sha256:...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageId(String);

impl ImageId {
    /// Wraps an id the engine returned.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a release image is built from.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The app.
    pub app: AppName,
    /// The release being built.
    pub release: ReleaseId,
    /// The commit whose tree is built.
    pub commit: CommitSha,
    /// The git repository holding the commit (a subdirectory deploy's folder, resolved).
    pub source: Repo,
    /// The stack image that buildpack builds start from (`--stack`).
    pub stack: String,
    /// The app's current release, when it was a buildpack build: a buildpack build may start
    /// from its build image instead of the stack (see `base`).
    pub previous: Option<ReleaseId>,
    /// Buildpack directories (each with `buildpack.toml` and `bin/`), run in order; the
    /// Procfile buildpack at the repo root of slipway is normally last.
    pub buildpacks: Vec<PathBuf>,
    /// Gzip the build context (smaller upload, more CPU).
    pub gzip_context: bool,
    /// Where the ids of the images the build makes are recorded as slipway's.
    pub ledger: Ledger,
    /// What the buildpack phases get from the host: CA bundle, proxies, pip settings.
    pub host_env: crate::build_env::BuildEnv,
    /// A buildpack build's `/platform/env` files and source filter (project.toml, app config).
    pub platform: crate::buildpack::platform::BuildPlatform,
}
