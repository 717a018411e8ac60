//! A real registry for tests: Debian's `docker-registry` (the CNCF distribution registry) on a
//! free loopback port, optionally serving TLS, killed on drop with its storage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Debian installs it (`.ci/run` installs the package).
pub(super) const BIN: &str = "/usr/bin/docker-registry";

/// A running registry process; the caller waits until it answers.
pub(super) struct RegistryProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(super) authority: String,
    _dir: tempfile::TempDir,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RegistryProcess {
    /// Starts one, allowing manifest deletes or not, serving TLS with `(certificate, key)`.
    pub(super) fn spawn(deletes: bool, tls: Option<(&Path, &Path)>) -> Self {
        assert!(
            PathBuf::from(BIN).is_file(),
            "{BIN} is missing: apt-get install docker-registry (.ci/run installs it); the registry cleanup is \
             tested against a real registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let authority = format!("127.0.0.1:{port}");
        let tls = tls.map_or_else(String::new, |(cert, key)| {
            format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display())
        });
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    \
                 enabled: {deletes}\nhttp:\n  addr: {authority}\n{tls}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, authority, _dir: dir }
    }
}
