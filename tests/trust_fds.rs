//! Nothing leaks into an app's processes (issue 11 §3): a descriptor the calling shell left
//! open reaches none of the processes slipway starts, so an app can never write through it
//! to a file only root may open.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Repo, Slipway, describe};

/// Run `slipway ARGS` from a shell that holds `file` open for appending as descriptor 7.
fn with_fd7(s: &Slipway, file: &Path, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .args(["-c", r#"exec 7>>"$1"; shift; exec "$@""#, "with-fd7"])
        .arg(file)
        .arg(BIN)
        .arg("--home")
        .arg(s.home.path())
        .args(args)
        .env_remove("SLIPWAY_HOME")
        .output()
        .unwrap()
}

/// Every process on the machine that holds `file` open, as `pid (command)`.
fn holders(file: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t == file) {
                let comm = std::fs::read_to_string(proc_entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!(
                    "{} ({})",
                    proc_entry.file_name().to_string_lossy(),
                    comm.replace('\0', " ")
                ));
            }
        }
    }
    found
}

#[test]
fn a_descriptor_left_open_by_the_calling_shell_reaches_no_process_of_the_app() {
    let s = Slipway::new();
    let app = s.app("fds");
    let repo = Repo::from_fixture("seed-demo");
    repo.write(
        "Procfile",
        "web: python3 app.py\nworker: python3 worker.py\nleak: (echo leaked-by-process >&7) 2>/dev/null; exec sleep 1000\n",
    );
    repo.write("predeploy.sh", "(echo leaked-by-predeploy >&7) 2>/dev/null; true\n");
    repo.commit("processes that try descriptor 7");
    let secret_dir = tempfile::Builder::new().prefix("slipway-rootonly").tempdir().unwrap();
    let secret = secret_dir.path().join("secret.log");
    std::fs::write(&secret, "").unwrap();

    let deployed = with_fd7(&s, &secret, &["deploy", &app, "--repo", repo.path()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    let ran = with_fd7(&s, &secret, &["run", &app, "--", "(echo leaked-by-run >&7) 2>&1; ls /proc/self/fd"]);
    assert!(ran.status.success(), "{}", describe(&ran));
    let listed = String::from_utf8_lossy(&ran.stdout);
    assert!(listed.contains("Bad file descriptor"), "run could write to descriptor 7: {listed}");
    let restarted = with_fd7(&s, &secret, &["ps", "restart", &app]);
    assert!(restarted.status.success(), "{}", describe(&restarted));
    s.ok(&["workspace", "create", &app]);
    let ws = with_fd7(
        &s,
        &secret,
        &["workspace", "run", &app, "--", "(echo leaked-by-workspace >&7) 2>/dev/null; true"],
    );
    assert!(ws.status.success(), "{}", describe(&ws));

    // The leak process has had its chance; the supervisor, the router and every process run.
    let ps = s.ps(&app);
    assert_eq!(ps["instances"].as_array().unwrap().len(), 3, "{ps}");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "",
        "a process wrote through the inherited descriptor"
    );
    assert_eq!(holders(&secret), Vec::<String>::new(), "processes hold the caller's descriptor");
}
