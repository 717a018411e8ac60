//! The Cloud Native Buildpacks Buildpack API contract (0.7 to 0.12), as data: what slipway
//! reads from and hands to a buildpack. No I/O here but [`tree`]'s read-only walk and tar
//! writer; [`crate::lifecycle`] runs the phases, for both runtimes.
//!
//! Spec: <https://github.com/buildpacks/spec/blob/main/buildpack.md>.
//!
//! - [`api`]: the Buildpack API versions run, and what differs between them.
//! - [`descriptor`]: `buildpack.toml` (api, id, version, targets, `[[order]]`).
//! - [`order`]: order groups, composites replaced by their groups.
//! - [`detect`]: detect's exit codes and build plan, and the buildpack plan build receives.
//! - [`resolve`]: build plan resolution for a group; build.toml `[[unmet]]`.
//! - [`layer`]: `<layer>.toml` and its `[types]` launch/build/cache.
//! - [`layer_env`]: a layer's env files as changes to the environment.
//! - [`launch`]: `launch.toml` processes and labels, and the launcher script that runs them.
//! - [`mod@env`]: the argv and `CNB_*` variables of each phase and the layer environment script.
//! - [`platform`]: the platform directory's `env/` and the source include/exclude filter.
//! - [`tree`]: a buildpack's files, listed without following a symlink out of its tree.

pub mod api;
pub mod descriptor;
pub mod detect;
pub mod env;
pub mod launch;
pub mod layer;
pub mod layer_env;
pub mod order;
pub mod platform;
pub mod resolve;
pub mod tree;
