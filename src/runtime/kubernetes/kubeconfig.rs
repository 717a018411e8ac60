//! Which kubeconfig slipway uses: `SLIPWAY_KUBECONFIG`, else the first file of `KUBECONFIG`,
//! else `~/.kube/config`; without one, no cluster is reached and the error says how to give one.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// No kubeconfig, or one that does not give a working client.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "no kubeconfig: kubernetes apps are deployed to the cluster of a kubeconfig; set SLIPWAY_KUBECONFIG \
         (or KUBECONFIG) to one, or create ~/.kube/config. `slipway k8s render APP` prints the manifests without a cluster"
    )]
    Missing,
    #[error("cannot read kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {} does not give a usable cluster (current context, server, credentials)", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot make a Kubernetes client from kubeconfig {}", path.display())]
    Client {
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
}

/// The kubeconfig to use, if any.
pub fn path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = env("SLIPWAY_KUBECONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(list) = env("KUBECONFIG") {
        return std::env::split_paths(&list).next();
    }
    let home = PathBuf::from(env("HOME")?).join(".kube").join("config");
    home.exists().then_some(home)
}

/// A client for the kubeconfig's current context. Must run inside the tokio runtime that
/// will drive the client: it spawns the client's request buffer there.
pub async fn client() -> Result<kube::Client, KubeconfigError> {
    let path = path().ok_or(KubeconfigError::Missing)?;
    let kc = Kubeconfig::read_from(&path)
        .map_err(|source| KubeconfigError::Read { path: path.clone(), source })?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|source| KubeconfigError::Config { path: path.clone(), source })?;
    kube::Client::try_from(config).map_err(|source| KubeconfigError::Client { path, source })
}
