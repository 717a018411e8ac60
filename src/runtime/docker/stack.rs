//! The stack image: the base image every build and process container starts from, made
//! offline by `slipway stack import` because no registry can be reached.
//!
//! It is a Debian root filesystem made by `debootstrap --variant=minbase` from a Debian mirror
//! (the machine's own, by default deb.debian.org), with bash, python3 (with venv and pip, for
//! the `slipway/python` buildpack) and a non-root user
//! `slipway` (uid 1000, HOME /home/slipway, `~/mount` → `/mount`), streamed as a tar into the
//! engine's image import (`POST /images/create?fromSrc=-`, what `docker import` does).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::body::{self, BodyWriter};
use super::output::Tail;
use super::{DEFAULT_STACK, is_not_found};

/// Label on the stack image saying which Debian suite it holds.
pub const STACK_LABEL: &str = "slipway.stack";
/// Label on the stack image saying which slipway stack recipe made it.
pub const STACK_VERSION_LABEL: &str = "slipway.stack.version";
/// The current recipe: 2 added python3-venv and python3-pip. An image with an older (or no)
/// version is imported again by `slipway stack import`, even without `--force`.
pub const STACK_VERSION: &str = "2";

/// What `slipway stack import` should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImport {
    /// The image tag, e.g. `slipway/stack:bookworm`.
    pub tag: String,
    /// The Debian mirror debootstrap downloads from.
    pub mirror: String,
    /// The Debian suite.
    pub suite: String,
    /// Re-import even when the tag exists.
    pub force: bool,
}

impl Default for StackImport {
    fn default() -> Self {
        Self {
            tag: DEFAULT_STACK.to_owned(),
            mirror: "http://deb.debian.org/debian".to_owned(),
            suite: "bookworm".to_owned(),
            force: false,
        }
    }
}

/// What `import_stack` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackOutcome {
    /// The tag already existed; nothing was done.
    Present {
        /// The existing image's id.
        id: String,
    },
    /// A new image was imported.
    Imported {
        /// The new image's id.
        id: String,
    },
}

/// Why the stack image could not be made or found.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// debootstrap needs root for chroot and device nodes.
    #[error("`slipway stack import` must run as root: debootstrap needs chroot")]
    NotRoot,
    /// A required program is not installed.
    #[error("{tool} not found on PATH: install {tool}: apt-get install {package}")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package holding it.
        package: &'static str,
    },
    /// The engine could not say whether the image exists.
    #[error("cannot inspect image {tag}: check that `docker info` works")]
    Inspect {
        /// The stack tag.
        tag: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The image is missing.
    #[error(
        "stack image {tag} not found: run `slipway stack import` (or pass --stack with an existing image)"
    )]
    NotFound {
        /// The stack tag.
        tag: String,
    },
    /// The scratch directory could not be created or written.
    #[error("cannot prepare the root filesystem in {}: check free space in $TMPDIR", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step's program could not be started.
    #[error("cannot start {step}")]
    Spawn {
        /// The step.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step exited non-zero.
    #[error(
        "{step} failed ({status}); its last output:\n{tail}check the mirror with --mirror and network access to it"
    )]
    StepFailed {
        /// The step.
        step: &'static str,
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its last output lines.
        tail: Tail,
    },
    /// The root filesystem could not be archived.
    #[error("cannot archive the root filesystem at {}", path.display())]
    Tar {
        /// The file being archived.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The engine refused the import.
    #[error("the Docker engine could not import {tag}: see the engine's message below")]
    Import {
        /// The stack tag.
        tag: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// The id of the image tagged `tag`, if it exists.
pub async fn stack_image_id(docker: &Docker, tag: &str) -> Result<Option<String>, StackError> {
    match docker.inspect_image(tag).await {
        Ok(img) => Ok(Some(img.id.unwrap_or_default())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(source) => Err(StackError::Inspect { tag: tag.to_owned(), source }),
    }
}

/// The `slipway.stack.version` label of the image tagged `tag`, if it exists and has one.
pub async fn stack_version(docker: &Docker, tag: &str) -> Result<Option<String>, StackError> {
    match docker.inspect_image(tag).await {
        Ok(img) => Ok(img.config.and_then(|c| c.labels).and_then(|l| l.get(STACK_VERSION_LABEL).cloned())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(source) => Err(StackError::Inspect { tag: tag.to_owned(), source }),
    }
}

/// The stack image's id, or an error telling the user to run `slipway stack import`.
pub async fn ensure_stack(docker: &Docker, tag: &str) -> Result<String, StackError> {
    stack_image_id(docker, tag).await?.ok_or_else(|| StackError::NotFound { tag: tag.to_owned() })
}

/// The debootstrap command line for `opts`, rooted at `dir`.
pub fn debootstrap_argv(opts: &StackImport, dir: &Path) -> Vec<String> {
    vec![
        "debootstrap".to_owned(),
        "--variant=minbase".to_owned(),
        "--include=bash,python3,python3-venv,python3-pip,ca-certificates,git".to_owned(),
        opts.suite.clone(),
        dir.display().to_string(),
        opts.mirror.clone(),
    ]
}

/// Run inside the new root with chroot: the non-root user, the CNB directories and a smaller
/// image. `~/mount` is a link so that it resolves wherever the mount volume is attached.
pub const CUSTOMIZE_SCRIPT: &str = r"set -eu
useradd --uid 1000 --user-group --create-home --home-dir /home/slipway --shell /bin/bash slipway
ln -s /mount /home/slipway/mount
chown -h slipway:slipway /home/slipway/mount
install -d -o slipway -g slipway /workspace /layers /cache
install -d /cnb/buildpacks /platform/env
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
";

/// The Dockerfile-style changes applied at import (`docker import --change`).
pub fn import_changes(opts: &StackImport) -> Vec<String> {
    vec![
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        "ENV LANG=C.UTF-8".to_owned(),
        format!("LABEL {STACK_LABEL}={}", opts.suite),
        format!("LABEL {STACK_VERSION_LABEL}={STACK_VERSION}"),
        // The CNB platform spec reads the target distro from these labels.
        "LABEL io.buildpacks.base.distro.name=debian".to_owned(),
        "LABEL io.buildpacks.base.distro.version=12".to_owned(),
        "CMD [\"bash\"]".to_owned(),
    ]
}

/// Makes the stack image (or reports that `opts.tag` exists), printing one line per phase
/// with its duration to `progress`.
pub async fn import_stack(
    docker: &Docker,
    opts: &StackImport,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<StackOutcome, StackError> {
    if !opts.force
        && let Some(id) = stack_image_id(docker, &opts.tag).await?
    {
        let version = stack_version(docker, &opts.tag).await?;
        if version.as_deref() == Some(STACK_VERSION) {
            progress(&format!(
                "stack image {} already exists ({}); use --force to rebuild it",
                opts.tag,
                short(&id)
            ));
            return Ok(StackOutcome::Present { id });
        }
        progress(&format!(
            "stack image {} ({}) is stack version {}, not {STACK_VERSION} (python3-venv, python3-pip): importing it again",
            opts.tag,
            short(&id),
            version.as_deref().unwrap_or("1")
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(StackError::NotRoot);
    }
    which::which("debootstrap")
        .map_err(|_| StackError::MissingTool { tool: "debootstrap", package: "debootstrap" })?;
    which::which("chroot").map_err(|_| StackError::MissingTool { tool: "chroot", package: "coreutils" })?;

    let work = WorkDir::create()?;
    let root = work.path.join("rootfs");

    let t = Instant::now();
    progress(&format!(
        "debootstrap {} (minbase + bash, python3, python3-venv, python3-pip, ca-certificates, git) from {}",
        opts.suite, opts.mirror
    ));
    let argv = debootstrap_argv(opts, &root);
    run_step("debootstrap", &argv).await?;
    progress(&format!("  root filesystem ready ({:.1}s)", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let chroot = [
        "chroot".to_owned(),
        root.display().to_string(),
        "/bin/bash".into(),
        "-c".into(),
        CUSTOMIZE_SCRIPT.into(),
    ];
    run_step("adding user slipway (chroot)", &chroot).await?;
    progress(&format!("  user slipway (uid 1000) added ({:.1}s)", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    progress(&format!("importing into the Docker engine as {}", opts.tag));
    import_rootfs(docker, opts, &root).await?;
    let id = ensure_stack(docker, &opts.tag).await?;
    progress(&format!("  imported {} ({}) ({:.1}s)", opts.tag, short(&id), t.elapsed().as_secs_f64()));
    Ok(StackOutcome::Imported { id })
}

/// Streams `root` as a tar into `POST /images/create?fromSrc=-`.
async fn import_rootfs(docker: &Docker, opts: &StackImport, root: &Path) -> Result<(), StackError> {
    let (repo, tag) = opts.tag.rsplit_once(':').map_or((opts.tag.as_str(), "latest"), |(r, t)| (r, t));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        message: Some(format!("slipway stack import: debootstrap {} from {}", opts.suite, opts.mirror)),
        changes: import_changes(opts),
        ..Default::default()
    };
    let (writer, stream) = body::pipe();
    let dir = root.to_owned();
    let tar_task = tokio::task::spawn_blocking(move || write_rootfs_tar(&dir, writer));
    let mut responses = docker.create_image(Some(options), Some(bollard::body_try_stream(stream)), None);
    let mut engine_err = None;
    while let Some(item) = responses.next().await {
        if let Err(source) = item {
            engine_err = Some(source);
            break;
        }
    }
    drop(responses);
    let tar_result =
        tar_task.await.map_err(|e| StackError::Tar { path: root.to_owned(), source: io::Error::other(e) })?;
    // A tar error explains an engine error ("unexpected EOF"), so it is reported first.
    tar_result?;
    match engine_err {
        Some(source) => Err(StackError::Import { tag: opts.tag.clone(), source }),
        None => Ok(()),
    }
}

/// Writes `root` as a tar, leaving out the contents of /dev, /proc and /sys, which the engine
/// provides to every container.
fn write_rootfs_tar(root: &Path, writer: BodyWriter) -> Result<(), StackError> {
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    let result = append_tree(&mut builder, root, Path::new(""));
    match result.and_then(|()| {
        builder.finish().map_err(|source| StackError::Tar { path: root.to_owned(), source })?;
        Ok(())
    }) {
        Ok(()) => {
            if let Ok(mut w) = builder.into_inner() {
                let _ = io::Write::flush(&mut w);
            }
            Ok(())
        }
        Err(e) => {
            if let Ok(w) = builder.into_inner() {
                w.fail(io::Error::other("the root filesystem could not be archived"));
            }
            Err(e)
        }
    }
}

fn append_tree(builder: &mut tar::Builder<BodyWriter>, root: &Path, rel: &Path) -> Result<(), StackError> {
    let dir = root.join(rel);
    let tar_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StackError::Tar { path, source }
    };
    let mut entries: Vec<_> =
        std::fs::read_dir(&dir).map_err(tar_err(&dir))?.collect::<Result<_, _>>().map_err(tar_err(&dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = rel.join(entry.file_name());
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(tar_err(&path))?;
        if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            continue;
        }
        builder.append_path_with_name(&path, &name).map_err(tar_err(&path))?;
        let skip_contents =
            rel.as_os_str().is_empty() && ["dev", "proc", "sys"].iter().any(|d| entry.file_name() == *d);
        if meta.is_dir() && !skip_contents {
            append_tree(builder, root, &name)?;
        }
    }
    Ok(())
}

/// Runs one external step, keeping its output for the error message (and for `-v`).
async fn run_step(step: &'static str, argv: &[String]) -> Result<Tail, StackError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| StackError::Spawn { step, source })?;
    let mut tail = Tail::new();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(StackError::Spawn { step, source: io::Error::other("no output pipes") });
    };
    let mut out = BufReader::new(out).lines();
    let mut err = BufReader::new(err).lines();
    let (mut out_open, mut err_open) = (true, true);
    let mut sink = |l: &str| tracing::debug!(step, "{l}");
    while out_open || err_open {
        let line = tokio::select! {
            l = out.next_line(), if out_open => l.map(|l| l.or_else(|| { out_open = false; None })),
            l = err.next_line(), if err_open => l.map(|l| l.or_else(|| { err_open = false; None })),
        };
        match line {
            Ok(Some(l)) => tail.push_chunk(&format!("{l}\n"), &mut sink),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    let status = child.wait().await.map_err(|source| StackError::Spawn { step, source })?;
    if status.success() { Ok(tail) } else { Err(StackError::StepFailed { step, status, tail }) }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// A scratch directory removed on drop, even when the import fails.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create() -> Result<Self, StackError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("slipway-stack-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|source| StackError::WorkDir { path: path.clone(), source })?;
        Ok(Self { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove the stack scratch directory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debootstrap_is_minbase_with_bash_python_venv_pip_certificates_and_git() {
        let opts = StackImport { mirror: "http://mirror.example/debian".into(), ..StackImport::default() };
        assert_eq!(
            debootstrap_argv(&opts, Path::new("/tmp/r")),
            [
                "debootstrap",
                "--variant=minbase",
                "--include=bash,python3,python3-venv,python3-pip,ca-certificates,git",
                "bookworm",
                "/tmp/r",
                "http://mirror.example/debian"
            ]
        );
    }

    #[test]
    fn import_sets_path_and_labels_the_suite() {
        let changes = import_changes(&StackImport::default());
        assert!(changes.iter().any(|c| c.starts_with("ENV PATH=/usr/local/sbin")));
        assert!(changes.contains(&"LABEL slipway.stack=bookworm".to_owned()));
        assert!(changes.contains(&format!("LABEL slipway.stack.version={STACK_VERSION}")));
    }

    #[test]
    fn the_customize_script_adds_uid_1000_and_the_mount_link() {
        assert!(CUSTOMIZE_SCRIPT.contains("--uid 1000"));
        assert!(CUSTOMIZE_SCRIPT.contains("ln -s /mount /home/slipway/mount"));
    }
}
