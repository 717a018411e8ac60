//! The Docker Swarm runtime: each release is built on the local engine as the docker runtime
//! builds it, pushed to the cluster's registry, and run as swarm services on the cluster's
//! manager (`slipway cluster set`).
//!
//! - [`cluster`]: the registry and manager endpoint, in the home's root-only state.
//! - [`spec`]: names, labels, mounts and service specs, as data.
//! - [`registry`]: the registry's HTTP API (manifest digests, deletes).
//! - [`jobs`]: run-to-completion services (predeploy, one-offs, checks): wait, logs, exit code.
//! - [`rollout`]: a release's services converging, held to the settle period, rolled back.
//! - [`shared`]: the app's shared mount setting and the proof that every node sees one filesystem.
//! - [`runtime`]: [`SwarmRuntime`], the [`crate::runtime::Runtime`] made of these.
//!
//! A process type is one service (`slipway-<app>-<type>`) kept across releases: a deploy
//! updates it to the new image (`start-first`, gated by the web health check, rolled back by
//! swarm on failure), so the switch never leaves a type without replicas.

pub mod cluster;
pub mod jobs;
pub mod registry;
pub mod rollout;
pub mod runtime;
pub mod shared;
pub mod spec;

pub use runtime::{SwarmError, SwarmRuntime};
