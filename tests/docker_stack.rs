//! `slipway stack import` through the real binary and the real Docker engine.
//!
//! The import is cached by tag, so the first test run pays for debootstrap (about 40 s) and
//! later ones reuse the image. A file lock shared with the library's engine tests keeps
//! parallel tests from importing twice.

#[path = "common/require.rs"]
mod require;

use std::path::Path;
use std::process::{Command, Output};

const SOCKET: &str = "/var/run/docker.sock";

fn engine_present() -> bool {
    if std::env::var_os("DOCKER_HOST").is_some() || Path::new(SOCKET).exists() {
        true
    } else {
        require::skip(require::Need::Docker, &format!("no Docker engine ({SOCKET} missing)"));
        false
    }
}

fn slipway(args: &[&str], path: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args).env("SLIPWAY_HOME", std::env::temp_dir().join("slipway-docker-stack-test-home"));
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.output().expect("run slipway")
}

/// Holds the lock the library's engine tests also take around the import.
fn import_lock() -> std::fs::File {
    let lock = std::fs::File::create(std::env::temp_dir().join("slipway-test-stack-import.lock"))
        .expect("create the stack import lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock the stack import");
    lock
}

#[test]
fn stack_import_makes_the_image_once_and_then_reuses_it() {
    if !engine_present() {
        return;
    }
    let lock = import_lock();
    let first = slipway(&["stack", "import"], None);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = slipway(&["stack", "import"], None);
    drop(lock);
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("stack image slipway/stack:bookworm already exists"), "{stderr}");
    let id = String::from_utf8_lossy(&second.stdout).trim().to_owned();
    assert!(id.starts_with("sha256:"), "the image id is printed on stdout: {id}");
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), id);

    let run = Command::new("docker")
        .args(["run", "--rm", "--user", "1000:1000", "slipway/stack:bookworm", "bash", "-c"])
        .arg("id -un && python3 -c 'import ssl; print(ssl.OPENSSL_VERSION[:7])' && test -s /etc/ssl/certs/ca-certificates.crt && echo certs")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "slipway\nOpenSSL\ncerts\n");
}

#[test]
fn stack_import_without_debootstrap_says_how_to_install_it() {
    if !engine_present() || !require::root_or_skip("hiding debootstrap from a stack import") {
        return;
    }
    // debootstrap lives in /usr/sbin; a PATH without it stands for a machine without it. The
    // tag does not exist, so the import cannot be skipped as cached.
    let out = slipway(&["stack", "import", "--tag", "slipway/no-such-stack:test"], Some("/usr/bin:/bin"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("install debootstrap: apt-get install debootstrap"), "{stderr}");
}
