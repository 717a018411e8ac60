//! slipway: turns each git commit of an app into a fresh, running release whose persistent
//! filesystem survives every deploy. See ARCHITECTURE.md for the map.

pub mod buildpack;
pub mod buildpacks;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod detached;
pub mod doctor;
pub mod git_remote;
pub mod health;
pub mod ids;
pub mod local_dev;
pub mod mount;
pub mod oneoff;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod rollback;
pub mod router;
pub mod runtime;
pub mod serve;
pub mod source;
pub mod state;
pub mod supervise;
pub mod users;
pub mod workspace;
