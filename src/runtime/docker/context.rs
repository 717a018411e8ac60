//! Build contexts: a git commit's tree streamed as a tar, never held whole in memory.
//!
//! `git archive --format=tar <sha>` writes exactly the committed tree (no untracked files, no
//! `.git`), and its stdout is handed to the engine chunk by chunk. With `gzip`, the stream goes
//! through flate2 on a blocking thread first, which trades CPU for a smaller upload.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::body;
use crate::buildpack::platform::SourceFilter;
use crate::ids::CommitSha;
use crate::source::Repo;

/// Why a commit's tree could not be streamed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// git could not be started.
    #[error("cannot run git in {}: install git (apt-get install git)", repo.display())]
    Spawn {
        /// The repository.
        repo: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `git archive` failed, e.g. an unknown commit.
    #[error("git archive of {commit} in {} failed: {stderr}; check that the commit exists in that repository", repo.display())]
    Archive {
        /// The repository.
        repo: PathBuf,
        /// The commit.
        commit: CommitSha,
        /// What git said.
        stderr: String,
    },
    /// git could not read the repository.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// A directory of the commit could not be written out.
    #[error("cannot write {path} of {commit} to {}: check free space in the temporary directory", dest.display())]
    Unpack {
        /// The directory in the commit.
        path: String,
        /// The commit.
        commit: CommitSha,
        /// Where it was being written.
        dest: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A commit's tree, streaming. Hand [`GitContext::take_stream`] to the engine, then call
/// [`GitContext::finish`] to learn whether git succeeded.
pub struct GitContext {
    repo: PathBuf,
    commit: CommitSha,
    child: tokio::process::Child,
    stream: Option<BoxStream<'static, Result<Bytes, io::Error>>>,
}

impl std::fmt::Debug for GitContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitContext")
            .field("repo", &self.repo)
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

impl GitContext {
    /// Starts `git archive` of `commit` in `source` (through [`Repo`], the one git layer); gzip-compresses the stream when `gzip`.
    pub fn start(source: &Repo, commit: &CommitSha, gzip: bool) -> Result<Self, ContextError> {
        Self::start_filtered(source, commit, gzip, &SourceFilter::All)
    }

    /// Like [`Self::start`], keeping only the paths `filter` keeps (project.toml
    /// `include`/`exclude` of a buildpack build): filtered on a blocking thread as it streams.
    pub fn start_filtered(
        source: &Repo,
        commit: &CommitSha,
        gzip: bool,
        filter: &SourceFilter,
    ) -> Result<Self, ContextError> {
        let repo = source.dir();
        let mut child = tokio::process::Command::from(source.archive_command(commit, &[]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ContextError::Spawn { repo: repo.to_owned(), source })?;
        let stdout = child.stdout.take().ok_or_else(|| ContextError::Spawn {
            repo: repo.to_owned(),
            source: io::Error::other("no stdout pipe"),
        })?;
        let stream: BoxStream<'static, Result<Bytes, io::Error>> = if !filter.is_all() {
            let (mut writer, stream) = body::pipe();
            let reader = tokio_util::io::SyncIoBridge::new(stdout);
            let filter = filter.clone();
            tokio::task::spawn_blocking(move || {
                let result = if gzip {
                    let mut enc = flate2::write::GzEncoder::new(&mut writer, flate2::Compression::fast());
                    filter.filter_tar(reader, &mut enc).and_then(|_| enc.finish().map(drop))
                } else {
                    filter.filter_tar(reader, &mut writer).map(drop)
                };
                if let Err(e) = result {
                    writer.fail(e);
                }
            });
            Box::pin(stream)
        } else if gzip {
            let (mut writer, stream) = body::pipe();
            let mut reader = tokio_util::io::SyncIoBridge::new(stdout);
            tokio::task::spawn_blocking(move || {
                let mut enc = flate2::write::GzEncoder::new(&mut writer, flate2::Compression::fast());
                let result = io::copy(&mut reader, &mut enc).and_then(|_| enc.finish().map(drop));
                if let Err(e) = result {
                    writer.fail(e);
                }
            });
            Box::pin(stream)
        } else {
            Box::pin(ReaderStream::with_capacity(stdout, 64 * 1024))
        };
        Ok(Self { repo: repo.to_owned(), commit: commit.clone(), child, stream: Some(stream) })
    }

    /// The tar (or tar.gz) bytes; can be taken once.
    pub fn take_stream(&mut self) -> Option<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static> {
        self.stream.take()
    }

    /// Waits for git and reports its failure, if any.
    pub async fn finish(mut self) -> Result<(), ContextError> {
        drop(self.stream.take());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| ContextError::Spawn { repo: self.repo.clone(), source })?;
        if status.success() {
            Ok(())
        } else {
            Err(ContextError::Archive {
                repo: self.repo,
                commit: self.commit,
                stderr: stderr.trim().to_owned(),
            })
        }
    }
}

/// Writes the directory `path` of `commit`'s tree to `dest/<path>`, e.g. a buildpack committed
/// with the app. For small trees: git's output is read whole.
pub async fn extract_dir(
    source: &Repo,
    commit: &CommitSha,
    path: &str,
    dest: &Path,
) -> Result<(), ContextError> {
    let repo = source.dir();
    let out = tokio::process::Command::from(source.archive_command(commit, &[path]))
        .output()
        .await
        .map_err(|source| ContextError::Spawn { repo: repo.to_owned(), source })?;
    if !out.status.success() {
        return Err(ContextError::Archive {
            repo: repo.to_owned(),
            commit: commit.clone(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    archive.set_preserve_permissions(true);
    archive.unpack(dest).map_err(|source| ContextError::Unpack {
        path: path.to_owned(),
        commit: commit.clone(),
        dest: dest.to_owned(),
        source,
    })
}

/// Whether `path` exists in the deployed folder of `commit` (e.g. a `Dockerfile`).
pub fn commit_has_file(source: &Repo, commit: &CommitSha, path: &str) -> Result<bool, ContextError> {
    Ok(source.has_file(commit, path)?)
}
