//! What a build gets from the host, so that what works for `pip` on the host works in the build
//! behind a TLS-intercepting proxy or a private index: the CA bundle, the proxy variables and
//! pip's index settings. [`HostSettings::gather`] reads the host (the only I/O here);
//! [`HostSettings::plan`] decides, as data, what a build on the host or in a container gets.
//!
//! The CA bundle and pip.conf reach a build container as read-only bind mounts, which a
//! container commit does not capture, and the variables are given to each phase's exec only:
//! neither is baked into the release image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Variables forwarded from the host as they are, both cases: proxies and pip's index settings.
pub const FORWARDED: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
];

/// Variables pointing TLS clients (OpenSSL, pip, requests) at the CA bundle.
pub const CA_VARS: &[&str] = &["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"];

/// The host's usual CA bundles, Debian's first.
pub const HOST_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/// Where a build container finds the host's CA bundle (bind-mounted, read-only).
pub const CONTAINER_CA: &str = "/etc/slipway/ca-certificates.crt";
/// Where a build container finds the host's pip.conf (bind-mounted, read-only).
pub const CONTAINER_PIP_CONF: &str = "/etc/slipway/pip.conf";
/// Where a build container finds the host's `PIP_FIND_LINKS` directories (`<dir>/0`, `1`, ...).
pub const CONTAINER_FIND_LINKS: &str = "/etc/slipway/find-links";

/// Why the build's host settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildEnvError {
    /// A CA bundle named by the user does not exist or is not a file.
    #[error(
        "the CA bundle {} named by {by} is not a readable file: fix the path (a PEM file of CA certificates), or unset it to use the host's bundle",
        path.display()
    )]
    MissingCaBundle {
        /// The file.
        path: PathBuf,
        /// `SLIPWAY_CA_CERTS` or `apps set --ca-certs`.
        by: &'static str,
    },
}

/// Where the CA bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `SLIPWAY_CA_CERTS=FILE` in slipway's environment.
    EnvOverride(PathBuf),
    /// `slipway apps set APP --ca-certs FILE`.
    AppSetting(PathBuf),
    /// The host's own bundle (`SSL_CERT_FILE`, else the first of [`HOST_BUNDLES`] present).
    Host(PathBuf),
    /// None was found.
    None,
}

/// What slipway read from the host for one build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    /// slipway's own environment (only the variables this module reads).
    pub env: BTreeMap<String, String>,
    /// The app's `--ca-certs` setting.
    pub app_ca: Option<PathBuf>,
    /// Files that exist, among those named in `env`, `app_ca`, [`HOST_BUNDLES`] and the pip
    /// configuration files.
    pub files: Vec<PathBuf>,
    /// The user's pip.conf candidates, in pip's order (`~/.config/pip/pip.conf`, `~/.pip/pip.conf`).
    pub user_pip_confs: Vec<PathBuf>,
    /// Directories that exist, among the local paths in `PIP_FIND_LINKS`.
    pub dirs: Vec<PathBuf>,
}

/// Where a build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSite {
    /// On the host (local runtime): host paths are used as they are.
    Host,
    /// In a build container: files are bind-mounted read-only at fixed paths.
    Container,
}

/// A read-only bind mount into a build container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host file.
    pub source: PathBuf,
    /// Where it appears in the container.
    pub target: String,
}

/// What a build gets: variables for each phase, and (in a container) the files they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    /// `NAME=value` for each build phase.
    pub vars: Vec<(String, String)>,
    /// Bind mounts for a build container (always empty on the host).
    pub mounts: Vec<BindMount>,
    /// The CA bundle used, for the progress line.
    pub ca: Option<PathBuf>,
}

impl BuildEnv {
    /// The variables as `NAME=value`, for an exec or a `Command`.
    pub fn env_list(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl HostSettings {
    /// Reads slipway's environment and checks which files exist.
    pub fn gather(app_ca: Option<&Path>) -> Self {
        let mut env = BTreeMap::new();
        let wanted =
            FORWARDED.iter().chain(&["SLIPWAY_CA_CERTS", "SSL_CERT_FILE", "PIP_CONFIG_FILE", "HOME"]);
        for name in wanted {
            if let Ok(v) = std::env::var(name) {
                env.insert((*name).to_owned(), v);
            }
        }
        let home = env.get("HOME").map(PathBuf::from);
        let user_pip_confs: Vec<PathBuf> =
            home.iter().flat_map(|h| [h.join(".config/pip/pip.conf"), h.join(".pip/pip.conf")]).collect();
        let mut candidates: Vec<PathBuf> = HOST_BUNDLES.iter().map(PathBuf::from).collect();
        candidates.extend(
            ["SLIPWAY_CA_CERTS", "SSL_CERT_FILE", "PIP_CONFIG_FILE"]
                .iter()
                .filter_map(|k| env.get(*k).filter(|v| !v.is_empty()).map(PathBuf::from)),
        );
        candidates.extend(app_ca.map(Path::to_owned));
        candidates.extend(user_pip_confs.iter().cloned());
        candidates.extend(["/etc/pip.conf", "/etc/xdg/pip/pip.conf"].map(PathBuf::from));
        let files = candidates.into_iter().filter(|p| p.is_file()).collect();
        let dirs = env
            .get("PIP_FIND_LINKS")
            .map(|v| {
                v.split_whitespace().map(PathBuf::from).filter(|p| p.is_absolute() && p.is_dir()).collect()
            })
            .unwrap_or_default();
        Self { env, app_ca: app_ca.map(Path::to_owned), files, user_pip_confs, dirs }
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Which CA bundle a build trusts: `SLIPWAY_CA_CERTS`, then the app's setting, then the
    /// host's. A bundle the user named that is missing is an error, never a silent fallback.
    pub fn ca_source(&self) -> Result<CaSource, BuildEnvError> {
        let named = [
            (self.var("SLIPWAY_CA_CERTS").map(PathBuf::from), "SLIPWAY_CA_CERTS"),
            (self.app_ca.clone(), "apps set --ca-certs"),
        ];
        for (path, by) in named {
            if let Some(path) = path {
                if !self.exists(&path) {
                    return Err(BuildEnvError::MissingCaBundle { path, by });
                }
                return Ok(if by == "SLIPWAY_CA_CERTS" {
                    CaSource::EnvOverride(path)
                } else {
                    CaSource::AppSetting(path)
                });
            }
        }
        let host = self
            .var("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(HOST_BUNDLES.iter().map(PathBuf::from))
            .find(|p| self.exists(p));
        Ok(host.map_or(CaSource::None, CaSource::Host))
    }

    /// The pip configuration file a build gets: `PIP_CONFIG_FILE`, else the user's, else the
    /// machine's (`/etc/pip.conf`, `/etc/xdg/pip/pip.conf`).
    fn pip_conf(&self) -> Option<PathBuf> {
        let explicit = self.var("PIP_CONFIG_FILE").map(PathBuf::from);
        explicit
            .into_iter()
            .chain(self.user_pip_confs.iter().cloned())
            .chain(["/etc/pip.conf", "/etc/xdg/pip/pip.conf"].map(PathBuf::from))
            .find(|p| self.exists(p))
    }

    /// `PIP_FIND_LINKS` as a build container sees it: each local directory of the host is
    /// lent read-only under [`CONTAINER_FIND_LINKS`]; URLs stay as they are.
    fn lend_find_links(&self, value: &str, mounts: &mut Vec<BindMount>) -> String {
        let mut out = Vec::new();
        for entry in value.split_whitespace() {
            let path = PathBuf::from(entry);
            if self.dirs.contains(&path) {
                let target = format!("{CONTAINER_FIND_LINKS}/{}", mounts.len());
                mounts.push(BindMount { source: path, target: target.clone() });
                out.push(target);
            } else if !path.is_absolute() {
                out.push(entry.to_owned());
            }
        }
        out.join(" ")
    }

    /// What a build at `site` gets.
    pub fn plan(&self, site: BuildSite) -> Result<BuildEnv, BuildEnvError> {
        let mut out = BuildEnv::default();
        for name in FORWARDED {
            if let Some(v) = self.env.get(*name) {
                let v = match (*name, site) {
                    ("PIP_FIND_LINKS", BuildSite::Container) => self.lend_find_links(v, &mut out.mounts),
                    _ => v.clone(),
                };
                out.vars.push(((*name).to_owned(), v));
            }
        }
        let ca = match self.ca_source()? {
            CaSource::EnvOverride(p) | CaSource::AppSetting(p) | CaSource::Host(p) => Some(p),
            CaSource::None => None,
        };
        if let Some(ca) = &ca {
            let inside = match site {
                BuildSite::Host => ca.display().to_string(),
                BuildSite::Container => {
                    out.mounts.push(BindMount { source: ca.clone(), target: CONTAINER_CA.to_owned() });
                    CONTAINER_CA.to_owned()
                }
            };
            for name in CA_VARS {
                out.vars.push(((*name).to_owned(), inside.clone()));
            }
        }
        out.ca = ca;
        if let Some(conf) = self.pip_conf() {
            let inside = match site {
                BuildSite::Host => conf.display().to_string(),
                BuildSite::Container => {
                    out.mounts
                        .push(BindMount { source: conf.clone(), target: CONTAINER_PIP_CONF.to_owned() });
                    CONTAINER_PIP_CONF.to_owned()
                }
            };
            out.vars.push(("PIP_CONFIG_FILE".to_owned(), inside));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)], files: &[&str]) -> HostSettings {
        HostSettings {
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            app_ca: None,
            files: files.iter().map(PathBuf::from).collect(),
            user_pip_confs: vec![PathBuf::from("/root/.config/pip/pip.conf")],
            dirs: vec![],
        }
    }

    fn var<'a>(b: &'a BuildEnv, name: &str) -> Option<&'a str> {
        b.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_container_build_gets_the_host_bundle_mounted_and_pointed_to() {
        let s = settings(&[], &["/etc/ssl/certs/ca-certificates.crt"]);
        let b = s.plan(BuildSite::Container).unwrap();
        assert_eq!(
            b.mounts,
            [BindMount { source: "/etc/ssl/certs/ca-certificates.crt".into(), target: CONTAINER_CA.into() }]
        );
        for name in CA_VARS {
            assert_eq!(var(&b, name), Some(CONTAINER_CA), "{name}");
        }
    }

    #[test]
    fn a_host_build_uses_the_bundle_where_it_is_without_mounts() {
        let s = settings(&[], &["/etc/ssl/certs/ca-certificates.crt"]);
        let b = s.plan(BuildSite::Host).unwrap();
        assert!(b.mounts.is_empty());
        assert_eq!(var(&b, "PIP_CERT"), Some("/etc/ssl/certs/ca-certificates.crt"));
    }

    #[test]
    fn slipway_ca_certs_beats_the_app_setting_which_beats_the_host() {
        let mut s = settings(
            &[("SLIPWAY_CA_CERTS", "/srv/corp.pem")],
            &["/srv/corp.pem", "/srv/app.pem", "/etc/ssl/certs/ca-certificates.crt"],
        );
        s.app_ca = Some("/srv/app.pem".into());
        assert_eq!(s.ca_source().unwrap(), CaSource::EnvOverride("/srv/corp.pem".into()));
        s.env.clear();
        assert_eq!(s.ca_source().unwrap(), CaSource::AppSetting("/srv/app.pem".into()));
        s.app_ca = None;
        assert_eq!(s.ca_source().unwrap(), CaSource::Host("/etc/ssl/certs/ca-certificates.crt".into()));
        s.files.clear();
        assert_eq!(s.ca_source().unwrap(), CaSource::None);
        assert!(s.plan(BuildSite::Container).unwrap().vars.is_empty());
    }

    #[test]
    fn a_named_bundle_that_is_missing_is_refused_not_ignored() {
        let s = settings(&[("SLIPWAY_CA_CERTS", "/nope.pem")], &["/etc/ssl/certs/ca-certificates.crt"]);
        let err = s.plan(BuildSite::Container).unwrap_err().to_string();
        assert!(err.contains("/nope.pem") && err.contains("SLIPWAY_CA_CERTS"), "{err}");
    }

    #[test]
    fn proxies_and_pip_index_settings_are_forwarded_in_both_cases() {
        let s = settings(
            &[
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("no_proxy", "localhost"),
                ("PIP_INDEX_URL", "https://pypi.corp/simple"),
                ("PIP_EXTRA_INDEX_URL", "https://extra/simple"),
                ("PIP_FIND_LINKS", "https://wheels.corp/"),
                ("SECRET_TOKEN", "x"),
            ],
            &[],
        );
        let b = s.plan(BuildSite::Container).unwrap();
        assert_eq!(var(&b, "HTTPS_PROXY"), Some("http://proxy:3128"));
        assert_eq!(var(&b, "no_proxy"), Some("localhost"));
        assert_eq!(var(&b, "PIP_INDEX_URL"), Some("https://pypi.corp/simple"));
        assert_eq!(var(&b, "PIP_EXTRA_INDEX_URL"), Some("https://extra/simple"));
        assert_eq!(var(&b, "PIP_FIND_LINKS"), Some("https://wheels.corp/"));
        assert_eq!(var(&b, "SECRET_TOKEN"), None, "only the listed variables cross");
    }

    #[test]
    fn pip_conf_is_the_explicit_one_then_the_users_then_the_machines() {
        let mut s = settings(&[], &["/root/.config/pip/pip.conf", "/etc/pip.conf"]);
        let b = s.plan(BuildSite::Container).unwrap();
        assert_eq!(var(&b, "PIP_CONFIG_FILE"), Some(CONTAINER_PIP_CONF));
        assert_eq!(b.mounts[0].source, PathBuf::from("/root/.config/pip/pip.conf"));
        s.files = vec!["/etc/pip.conf".into()];
        assert_eq!(var(&s.plan(BuildSite::Host).unwrap(), "PIP_CONFIG_FILE"), Some("/etc/pip.conf"));
        s.env.insert("PIP_CONFIG_FILE".into(), "/srv/pip.conf".into());
        s.files.push("/srv/pip.conf".into());
        assert_eq!(var(&s.plan(BuildSite::Host).unwrap(), "PIP_CONFIG_FILE"), Some("/srv/pip.conf"));
    }

    #[test]
    fn local_find_links_directories_are_lent_to_a_container_and_urls_pass() {
        let mut s = settings(&[("PIP_FIND_LINKS", "/opt/wheels https://wheels.corp/ /gone")], &[]);
        s.dirs = vec!["/opt/wheels".into()];
        let b = s.plan(BuildSite::Container).unwrap();
        assert_eq!(var(&b, "PIP_FIND_LINKS"), Some("/etc/slipway/find-links/0 https://wheels.corp/"));
        assert_eq!(
            b.mounts,
            [BindMount { source: "/opt/wheels".into(), target: "/etc/slipway/find-links/0".into() }]
        );
        let host = s.plan(BuildSite::Host).unwrap();
        assert_eq!(var(&host, "PIP_FIND_LINKS"), Some("/opt/wheels https://wheels.corp/ /gone"));
    }
}
