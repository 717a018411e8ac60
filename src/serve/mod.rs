//! The App Manager: `slipway serve`, an HTTP API (axum) whose handlers call the same library
//! functions as the CLI, git push over HTTP, and the embedded web UI.

pub mod apps;
pub mod archive;
pub mod assets;
pub mod auth;
pub mod conditional;
pub mod deploys;
pub mod errors;
pub mod files;
pub mod git_http;
pub mod mount;
pub mod openapi;
pub mod server;
pub mod stream;
pub mod tokens;
pub mod upload;

pub use server::{ServeError, detach, ensure_running, is_running, run, stop};
pub use tokens::{Principal, TokenError, TokenStore};
