//! A git commit as the source of a release: resolve a revision to a commit, read single files
//! from it, and stream its tree (`git archive`) into a folder without holding it in memory.
//! Only committed content deploys: the work tree and the index are never read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::buildpack::platform::SourceFilter;
use crate::ids::CommitSha;

/// Options that bound `git archive`'s memory: git maps pack files into memory in windows, by
/// default up to the whole pack, which on a 1 GiB repository is a 1 GiB resident set.
pub const GIT_BOUNDED_PACK_WINDOWS: [&str; 4] =
    ["-c", "core.packedGitWindowSize=4m", "-c", "core.packedGitLimit=16m"];

/// Failures reading a repository.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0} is not a git repository; pass --repo DIR with the app's repository")]
    NotARepo(PathBuf),
    #[error("revision {rev:?} does not exist in {repo}; pass --rev with a branch, tag or commit")]
    NoSuchRevision { repo: PathBuf, rev: String },
    #[error("cannot run git; install git and make sure it is on PATH")]
    Git(#[source] std::io::Error),
    #[error("git {what} failed in {repo}: {stderr}")]
    GitFailed { repo: PathBuf, what: &'static str, stderr: String },
    #[error("cannot extract commit {commit} into {dest}")]
    Extract {
        commit: CommitSha,
        dest: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A repository on this machine.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    /// Where `dir` sits inside the work tree (`apps/web/`), empty at the top. A deploy of a
    /// subdirectory deploys that subdirectory's tree, as Heroku's monorepo buildpacks do.
    prefix: String,
}

impl Repo {
    /// Open `dir` as a git repository (a work tree or a bare repository). Whether it really is
    /// one is checked by [`Self::resolve`], which needs a git process anyway.
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let dir = dir.canonicalize().map_err(|_| SourceError::NotARepo(dir.to_owned()))?;
        Ok(Self { dir, prefix: String::new() })
    }

    fn is_repo(&self) -> bool {
        self.git(&["rev-parse", "--git-dir"]).output().is_ok_and(|o| o.status.success())
    }

    /// The repository's directory, canonical.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The commit that `rev` names. Also learns where the opened folder sits in its work tree,
    /// so that a subdirectory deploys on its own.
    pub fn resolve(&mut self, rev: &str) -> Result<CommitSha, SourceError> {
        let no_such = || SourceError::NoSuchRevision { repo: self.dir.clone(), rev: rev.to_owned() };
        if rev.starts_with('-') || rev.is_empty() {
            return Err(no_such());
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .git(&["rev-parse", "--show-prefix", "--verify", "--quiet", "--end-of-options", &spec])
            .output();
        let out = out.map_err(SourceError::Git)?;
        if !out.status.success() {
            return Err(if self.is_repo() { no_such() } else { SourceError::NotARepo(self.dir.clone()) });
        }
        // Output: the prefix line (empty at the top of the work tree, absent in a bare
        // repository), then the commit.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<&str> = text.lines().collect();
        let sha = lines.pop().unwrap_or_default();
        self.prefix = lines.first().map(|p| p.trim().to_owned()).unwrap_or_default();
        sha.trim().parse().map_err(|_| no_such())
    }

    /// The contents of `paths` at `commit` (None where the commit has no such file), read with
    /// one `git cat-file --batch` rather than a process per file.
    pub fn read_files(&self, commit: &CommitSha, paths: &[&str]) -> Result<Vec<Option<String>>, SourceError> {
        use std::io::{BufRead, BufReader, Write};
        let mut child = self
            .git(&["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SourceError::Git)?;
        let request = paths.iter().fold(String::new(), |mut acc, p| {
            use std::fmt::Write as _;
            let _ = writeln!(acc, "{commit}:{}{p}", self.prefix);
            acc
        });
        let mut stdin = child.stdin.take().ok_or_else(|| self.failed("cat-file", b"no stdin"))?;
        stdin.write_all(request.as_bytes()).map_err(SourceError::Git)?;
        drop(stdin);
        let mut out =
            BufReader::new(child.stdout.take().ok_or_else(|| self.failed("cat-file", b"no stdout"))?);
        let mut files = Vec::with_capacity(paths.len());
        for _ in paths {
            let mut header = String::new();
            out.read_line(&mut header).map_err(SourceError::Git)?;
            // "<sha> blob <size>", or "<spec> missing" for a path the commit lacks.
            let mut words = header.split_whitespace();
            let (kind, size) = (words.nth(1), words.next().and_then(|s| s.parse::<usize>().ok()));
            match (kind, size) {
                (Some("blob"), Some(size)) => {
                    let mut body = vec![0; size + 1];
                    out.read_exact(&mut body).map_err(SourceError::Git)?;
                    body.pop();
                    files.push(Some(String::from_utf8_lossy(&body).into_owned()));
                }
                (Some(_), Some(size)) => {
                    let mut skip = vec![0; size + 1];
                    out.read_exact(&mut skip).map_err(SourceError::Git)?;
                    files.push(None);
                }
                _ => files.push(None),
            }
        }
        let status = child.wait().map_err(SourceError::Git)?;
        if !status.success() {
            return Err(self.failed("cat-file", b"exited with an error"));
        }
        Ok(files)
    }

    /// Stream the tree of `commit` into `dest` (which must exist and be empty): `git archive`
    /// piped into the tar crate, which refuses entries that would land outside `dest`.
    pub fn extract(&self, commit: &CommitSha, dest: &Path) -> Result<(), SourceError> {
        self.extract_filtered(commit, dest, &SourceFilter::All)
    }

    /// Like [`Self::extract`], with only the paths `filter` keeps (project.toml
    /// `include`/`exclude`): the stream is filtered on a thread between git and the unpacker.
    pub fn extract_filtered(
        &self,
        commit: &CommitSha,
        dest: &Path,
        filter: &SourceFilter,
    ) -> Result<(), SourceError> {
        let mut args = GIT_BOUNDED_PACK_WINDOWS.to_vec();
        // Run in a subdirectory, git archive takes that subdirectory's tree, with paths
        // relative to it.
        args.extend(["archive", "--format=tar", commit.as_str()]);
        let mut child = self
            .git(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SourceError::Git)?;
        let extract_err =
            |source| SourceError::Extract { commit: commit.clone(), dest: dest.to_owned(), source };
        let mut stdout =
            child.stdout.take().ok_or_else(|| extract_err(std::io::Error::other("no stdout")))?;
        let unpack = |input: &mut dyn Read| {
            let mut archive = tar::Archive::new(input);
            archive.set_preserve_permissions(true);
            archive.set_preserve_mtime(true);
            archive.set_overwrite(false);
            archive.unpack(dest)
        };
        let unpacked = if filter.is_all() {
            unpack(&mut stdout)
        } else {
            let (mut reader, writer) = std::io::pipe().map_err(extract_err)?;
            std::thread::scope(|scope| {
                let from = &mut stdout;
                let filtering = scope.spawn(move || filter.filter_tar(from, writer));
                let unpacked = unpack(&mut reader);
                // Drained so the filter never blocks on a full pipe if unpacking stopped early.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                let filtered =
                    filtering.join().unwrap_or_else(|_| Err(std::io::Error::other("filter panicked")));
                unpacked.and(filtered.map(drop))
            })
        };
        // A tar reader stops at the end-of-archive blocks, but git pads the stream to a whole
        // record after them: read to the end, or git may die of SIGPIPE on a good archive.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        drop(stdout);
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = child.wait().map_err(SourceError::Git)?;
        // git's own complaint comes first. When it says nothing, an unpack error is the cause:
        // the unpacker stopped reading and git died of SIGPIPE, which says nothing useful.
        if !status.success() && !stderr.trim().is_empty() {
            return Err(self.failed("archive", stderr.as_bytes()));
        }
        unpacked.map_err(extract_err)?;
        if !status.success() {
            return Err(self.failed("archive", status.to_string().as_bytes()));
        }
        Ok(())
    }

    /// The target of `path` (relative to the app root) at `commit` if the commit has a symlink
    /// there (mode 120000), else None: a missing path, a file or a directory.
    pub fn symlink_target(&self, commit: &CommitSha, path: &str) -> Result<Option<String>, SourceError> {
        let full = format!("{}{path}", self.prefix);
        let args = ["--literal-pathspecs", "ls-tree", "--full-tree", "-z", commit.as_str(), "--", &full];
        let out = self.git(&args).output().map_err(SourceError::Git)?;
        if !out.status.success() {
            return Err(self.failed("ls-tree", &out.stderr));
        }
        // "<mode> <type> <object>\t<path>", NUL-terminated.
        let listing = String::from_utf8_lossy(&out.stdout);
        let is_link = listing
            .split('\0')
            .filter_map(|entry| entry.split_once('\t'))
            .any(|(meta, p)| p == full && meta.starts_with("120000 "));
        if !is_link {
            return Ok(None);
        }
        Ok(self.read_files(commit, &[path])?.into_iter().next().flatten())
    }

    /// Whether `path` (relative to the deployed folder) exists in `commit`'s tree, e.g. a
    /// `Dockerfile`: in a subdirectory deploy that is the subdirectory's file, not the root's.
    pub fn has_file(&self, commit: &CommitSha, path: &str) -> Result<bool, SourceError> {
        let spec = format!("{commit}:{}{path}", self.prefix);
        let status = self
            .git(&["cat-file", "-e", "--end-of-options", &spec])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(SourceError::Git)?;
        Ok(status.success())
    }

    /// The `git archive` command writing `commit`'s tree (of the deployed folder) as a tar to
    /// stdout, limited to `paths` when given: for callers that stream it themselves, such as
    /// the Docker runtime's build context. Not yet spawned; stdin is null.
    pub fn archive_command(&self, commit: &CommitSha, paths: &[&str]) -> Command {
        let mut args = GIT_BOUNDED_PACK_WINDOWS.to_vec();
        args.extend(["archive", "--format=tar", commit.as_str()]);
        if !paths.is_empty() {
            args.push("--");
            args.extend(paths);
        }
        self.git(&args)
    }

    fn failed(&self, what: &'static str, stderr: &[u8]) -> SourceError {
        SourceError::GitFailed {
            repo: self.dir.clone(),
            what,
            stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
        }
    }

    fn git(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        // In a subdirectory deploy `dir` is that subdirectory, and git works relative to it
        // (`git archive` takes its tree).
        // The repository may belong to another user (a push as `git`, a deploy as root); we
        // only read from it, so git's ownership check would refuse for no gain.
        cmd.arg("-c").arg(format!("safe.directory={}", self.dir.display()));
        cmd.arg("-C").arg(&self.dir).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_command_is_bounded_trusts_the_repo_and_takes_only_the_given_paths() {
        let repo = Repo { dir: "/srv/repo".into(), prefix: "apps/web/".into() };
        let sha: CommitSha = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let cmd = repo.archive_command(&sha, &["bp"]);
        let args: Vec<&str> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-c",
                "safe.directory=/srv/repo",
                "-C",
                "/srv/repo",
                "-c",
                "core.packedGitWindowSize=4m",
                "-c",
                "core.packedGitLimit=16m",
                "archive",
                "--format=tar",
                "0123456789abcdef0123456789abcdef01234567",
                "--",
                "bp"
            ]
        );
    }
}
