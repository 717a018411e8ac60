//! The Docker runtime's building blocks: each talks to the engine through bollard and never
//! pulls an image (no registry is reachable).
//!
//! - [`stack`]: `slipway stack import`, the offline base build/run image (debootstrap → import).
//! - [`labels`]: names, tags and labels of everything slipway creates, as pure data.
//! - [`context`]: a git commit's tree streamed as a tar build context.
//! - [`image`]: Dockerfile builds, listing and removal of release images.
//! - [`relabel`]: release labels put on a built image without a builder step.
//! - [`lifecycle`]: the build container that runs [`crate::lifecycle`] for buildpack builds.
//! - [`build_request`]: what a release image is built from, and its id.
//! - [`volume`]: the app's persistent filesystem and build cache as labelled named volumes.
//! - [`container`]: process containers: create, start, stop, list, logs.
//! - [`limits`]: the hardening of every app container, its per-app relaxations, its network.
//! - [`ledger`]: the ids of the images slipway built: the only authority for removing one.
//! - [`oneoff`]: one-off containers such as predeploy, committed as the release image.
//! - [`workspace`]: `slipway workspace` as a container holding the working copy and the mount.
//! - [`reconcile`]: removal of an app's leftovers from other releases.
//! - [`runtime`] and `ops`: [`DockerRuntime`], the [`crate::runtime::Runtime`] made of these.
//!
//! Inside a container the layout mirrors the local runtime's: the app folder is the working
//! directory, the mount volume is attached at `/mount` and at `<workdir>/../mount`, and
//! `$HOME/mount` (HOME `/home/slipway`) points at it too.

pub mod base;
pub mod body;
pub mod build_request;
pub mod container;
pub mod context;
pub mod exec;
pub mod image;
pub mod labels;
pub mod layer_export;
pub mod ledger;
pub mod lifecycle;
pub mod limits;
pub mod oneoff;
mod ops;
/// Streamed output lines and their tail, shared with the lifecycle.
pub use crate::lifecycle::output;
pub mod reconcile;
pub mod relabel;
pub mod routes;
pub mod runtime;
pub mod stack;
pub mod step_cache;
pub mod upper_dir;
pub mod volume;
pub mod workspace;

#[cfg(test)]
mod tests;

use bollard::Docker;

pub use runtime::{DockerError, DockerRuntime};

/// The uid:gid every slipway container runs as: the stack's `slipway` user.
pub const CONTAINER_USER: &str = "1000:1000";
/// The `HOME` of the stack's `slipway` user.
pub const CONTAINER_HOME: &str = "/home/slipway";
/// Where the app's persistent filesystem is attached in every container.
pub const MOUNT_PATH: &str = "/mount";
/// The default tag of the stack image made by `slipway stack import`.
pub const DEFAULT_STACK: &str = "slipway/stack:bookworm";

/// The engine could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No socket, or no permission to use it.
    #[error(
        "cannot reach the Docker engine: start it, or check DOCKER_HOST and access to /var/run/docker.sock"
    )]
    Connect {
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine accepted the connection but did not answer in time.
    #[error(
        "the Docker engine at {host} did not answer within {}: check that dockerd is running and healthy (`docker info`), or point DOCKER_HOST at a working engine",
        humantime::format_duration(*waited)
    )]
    NoAnswer {
        /// `DOCKER_HOST`, or the default socket.
        host: String,
        /// How long it was given.
        waited: std::time::Duration,
    },
    /// The engine did not answer the version handshake.
    #[error("the Docker engine did not answer `/version`: check that `docker info` works")]
    Negotiate {
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// How long the engine gets to answer the first request of a command (`/version`).
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Set once the engine failed to answer in this process: a hung engine then costs one short
/// wait per command for the repairs of all docker apps, not one per app.
static UNANSWERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Connects to the local engine (`DOCKER_HOST` or the default socket) and agrees on an API
/// version, so that an older engine (e.g. Debian's 20.10, API 1.41) accepts our requests.
/// An engine that does not answer within [`ANSWER_TIMEOUT`] is an error.
pub async fn connect() -> Result<Docker, ConnectError> {
    connect_within(ANSWER_TIMEOUT).await
}

/// [`connect`], with the engine given `wait` to answer.
pub async fn connect_within(wait: std::time::Duration) -> Result<Docker, ConnectError> {
    // Builds, imports and one-off waits answer only when they finish; bollard's timeout counts
    // until the response headers, so its 2-minute default would cut long builds short. The
    // handshake below has its own short limit instead.
    let docker = Docker::connect_with_local_defaults()
        .map_err(|source| ConnectError::Connect { source })?
        .with_timeout(std::time::Duration::from_secs(6 * 3600));
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    // Only passing repairs (shorter waits) give up at once; a command that needs the engine
    // always gives it the full time, in case it was merely slow.
    if wait < ANSWER_TIMEOUT && UNANSWERED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ConnectError::NoAnswer { host, waited: wait });
    }
    if let Ok(negotiated) = tokio::time::timeout(wait, docker.negotiate_version()).await {
        return negotiated.map_err(|source| ConnectError::Negotiate { source });
    }
    UNANSWERED.store(true, std::sync::atomic::Ordering::Relaxed);
    Err(ConnectError::NoAnswer { host, waited: wait })
}

/// Whether an engine error means "no such object" (HTTP 404).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
