//! The Kubernetes runtime: each release is an image pushed to the cluster's registry, one
//! PersistentVolumeClaim per app is the mount, predeploy is a Job, and each Procfile type is a
//! Deployment (web with a Service).
//!
//! - [`settings`]: the app's namespace, storage class, access mode and registry.
//! - [`render`]: the manifests of a release, as data (`slipway k8s render` prints them).
//! - [`cluster`]: the shell applying them through the API server (server-side apply).
//! - [`kubeconfig`]: which kubeconfig is used, and the client made from it.
//! - [`registry`]: deleting a retired release's image from the registry (HTTP API V2).
//! - [`runtime`] and `ops`: [`KubernetesRuntime`], the [`crate::runtime::Runtime`] made of these.

// Kubernetes object kinds (PersistentVolumeClaim, ReplicaSet) are the names people search for,
// written as the API and kubectl write them.
#![allow(clippy::doc_markdown)]

pub mod cluster;
pub mod kubeconfig;
#[cfg(test)]
mod mock_api;
mod ops;
pub mod registry;
pub mod render;
pub mod repair;
mod retire;
pub mod runtime;
pub mod settings;

pub use runtime::{KubeError, KubernetesRuntime};
