//! Commands run inside a running container (`docker exec`), and files put into one.

use std::io;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::UploadToContainerOptions;
use futures_util::StreamExt;

use super::body::{self, BodyWriter};
use super::output::{LineSink, Tail};

/// What to do with an exec's output.
pub enum ExecOutput<'a> {
    /// Pass both streams, line by line, to a sink (and keep the tail).
    Stream(LineSink<'a>),
    /// Keep stdout whole (for small files such as a TOML); stderr goes to the tail.
    Capture,
}

/// A finished exec.
#[derive(Debug, Clone, Default)]
pub struct ExecResult {
    /// The exit code (-1 if the engine did not report one).
    pub code: i64,
    /// The last output lines.
    pub tail: Tail,
    /// Stdout, with [`ExecOutput::Capture`].
    pub stdout: Vec<u8>,
}

/// One command to run in a container.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv.
    pub cmd: Vec<String>,
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<String>,
    /// `uid:gid` or a user name.
    pub user: String,
    /// The working directory.
    pub workdir: String,
}

/// Runs `spec` in `container` and waits for it.
pub async fn exec(
    docker: &Docker,
    container: &str,
    spec: &ExecSpec,
    mut output: ExecOutput<'_>,
) -> Result<ExecResult, bollard::errors::Error> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(spec.cmd.clone()),
                env: Some(spec.env.clone()),
                user: Some(spec.user.clone()),
                working_dir: Some(spec.workdir.clone()),
                ..Default::default()
            },
        )
        .await?;
    let mut result = ExecResult::default();
    let mut quiet = |_: &str| {};
    if let StartExecResults::Attached { output: mut out, .. } = docker.start_exec(&created.id, None).await? {
        while let Some(item) = out.next().await {
            let (is_stdout, bytes) = match item? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => (true, message),
                LogOutput::StdErr { message } => (false, message),
                LogOutput::StdIn { .. } => continue,
            };
            match &mut output {
                ExecOutput::Stream(sink) => {
                    result.tail.push_chunk(&String::from_utf8_lossy(&bytes), &mut **sink);
                }
                ExecOutput::Capture if is_stdout => result.stdout.extend_from_slice(&bytes),
                ExecOutput::Capture => result.tail.push_chunk(&String::from_utf8_lossy(&bytes), &mut quiet),
            }
        }
    }
    match &mut output {
        ExecOutput::Stream(sink) => result.tail.finish(&mut **sink),
        ExecOutput::Capture => result.tail.finish(&mut quiet),
    }
    result.code = docker.inspect_exec(&created.id).await?.exit_code.unwrap_or(-1);
    Ok(result)
}

/// Why files could not be put into a container.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The tar could not be written (e.g. an unreadable file).
    #[error("cannot archive files for {path} in container {container}")]
    Archive {
        /// The container.
        container: String,
        /// The destination directory.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The engine refused the archive.
    #[error("the Docker engine could not extract files into {path} in container {container}")]
    Engine {
        /// The container.
        container: String,
        /// The destination directory.
        path: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// Extracts the tar that `write` produces into directory `path` of `container`, streaming.
pub async fn upload<F>(docker: &Docker, container: &str, path: &str, write: F) -> Result<(), UploadError>
where
    F: FnOnce(&mut tar::Builder<BodyWriter>) -> io::Result<()> + Send + 'static,
{
    let (writer, stream) = body::pipe();
    let task = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        let r = write(&mut builder).and_then(|()| builder.finish());
        match (r, builder.into_inner()) {
            (Ok(()), Ok(mut w)) => io::Write::flush(&mut w),
            (Err(e), Ok(w)) => {
                w.fail(io::Error::other("archive failed"));
                Err(e)
            }
            (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
        }
    });
    let options = UploadToContainerOptions { path: path.to_owned(), ..Default::default() };
    let sent = docker.upload_to_container(container, Some(options), bollard::body_try_stream(stream)).await;
    let archived = task.await.map_err(io::Error::other).and_then(|r| r);
    archived.map_err(|source| UploadError::Archive {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    sent.map_err(|source| UploadError::Engine {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// Appends a directory `name` (root's, `mode`) to an upload.
pub fn append_dir(builder: &mut tar::Builder<BodyWriter>, name: &str, mode: u32) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder.append_data(&mut header, name, io::empty())
}

/// Appends one in-memory file to a tar.
pub fn append_file(
    builder: &mut tar::Builder<BodyWriter>,
    name: &str,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}
