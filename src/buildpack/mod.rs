//! The Cloud Native Buildpacks Buildpack API 0.10 contract, as data: what slipway reads from
//! and hands to a buildpack. No I/O here but [`tree`]'s read-only walk; [`crate::lifecycle`]
//! runs the phases, for both runtimes.
//!
//! Spec: <https://github.com/buildpacks/spec/blob/buildpack/v0.10/buildpack.md>.
//!
//! - [`descriptor`]: `buildpack.toml` (api, id, version, targets).
//! - [`detect`]: detect's exit codes and build plan, and the buildpack plan build receives.
//! - [`layer`]: `<layer>.toml` and its `[types]` launch/build/cache.
//! - [`launch`]: `launch.toml` processes, and the launcher script that runs them.
//! - [`mod@env`]: the `CNB_*` variables of each phase and the layer environment script.
//! - [`tree`]: a buildpack's files, listed without following a symlink out of its tree.

pub mod descriptor;
pub mod detect;
pub mod env;
pub mod launch;
pub mod layer;
pub mod tree;

/// The Buildpack API version slipway's lifecycle implements.
pub const BUILDPACK_API: &str = "0.10";
