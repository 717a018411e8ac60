//! `slipway doctor`: what this machine lets slipway do, and what to install or start for the
//! rest, like `dokku report` or `flutter doctor`. Probing is the shell ([`probe`]); turning
//! the facts into verdicts and fixes is pure ([`checks`]), so every verdict is unit-tested.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::mount::HostSupport;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Works.
    Ok,
    /// A feature is unavailable or degraded; deploys on the local runtime still work.
    Warn,
    /// Deploys cannot work until this is fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
    /// What to do about a warning or a failure.
    pub fix: Option<String>,
}

/// What was found on this machine: mostly yes-or-no facts, hence the bools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Facts {
    /// `git --version`, if git runs.
    pub git: Option<String>,
    /// Whether `bash` is on PATH.
    pub bash: bool,
    /// The home directory, or why it cannot be written.
    pub home: Result<PathBuf, String>,
    /// Root, loop devices and mkfs.ext4: what hard limits need.
    pub host: HostSupport,
    pub useradd: bool,
    /// A directory above the home without `o+x`, with its mode: app users could not reach
    /// their trees (only probed as root, where apps run as their own users).
    pub blocked: Option<(PathBuf, u32)>,
    /// The engine's version, or why it cannot be reached.
    pub docker: Result<String, String>,
    /// Whether the `docker` CLI is on PATH (interactive one-offs and workspace shells).
    pub docker_cli: bool,
    /// The default stack image, and whether the engine has it (None: not asked).
    pub stack: (String, Option<bool>),
    pub debootstrap: bool,
}

fn check(name: &'static str, level: Level, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { name, level, detail: detail.into(), fix: fix.map(str::to_owned) }
}

/// The verdicts, in the order they are shown. Pure.
pub fn checks(f: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &f.git {
        Some(v) => check("git", Level::Ok, v.clone(), None),
        None => {
            check("git", Level::Fail, "git not found: no commit can be read", Some("apt-get install git"))
        }
    });
    out.push(if f.bash {
        check("bash", Level::Ok, "runs predeploy scripts and Procfile commands", None)
    } else {
        check("bash", Level::Fail, "bash not found: no process can start", Some("apt-get install bash"))
    });
    out.push(match &f.home {
        Ok(p) => check("home", Level::Ok, format!("{} is writable", p.display()), None),
        Err(why) => check(
            "home",
            Level::Fail,
            why.clone(),
            Some("pick a writable directory with --home or SLIPWAY_HOME"),
        ),
    });
    privileges(f, &mut out);
    engine(f, &mut out);
    out
}

/// Users and the mount limit: what running as root with loop devices buys.
fn privileges(f: &Facts, out: &mut Vec<Check>) {
    out.push(if f.host.root {
        check("isolation", Level::Ok, "root: each app runs as its own system user in a 0700 tree", None)
    } else {
        check(
            "isolation",
            Level::Warn,
            "not root: every app runs as you, so apps are separated by convention only",
            Some("run slipway as root for per-app users"),
        )
    });
    if f.host.root && !f.useradd {
        out.push(check(
            "users",
            Level::Fail,
            "useradd not found: `apps create` cannot make the app's user",
            Some("apt-get install passwd"),
        ));
    }
    if f.host.root {
        out.push(match &f.blocked {
            None => check("reach", Level::Ok, "app users can pass through every parent of the home", None),
            Some((dir, mode)) => Check {
                name: "reach",
                level: Level::Fail,
                detail: format!(
                    "{} (mode {mode:o}) has no o+x: app users cannot reach their apps, so no process can start",
                    dir.display()
                ),
                fix: Some(crate::users::reach_fix(dir, *mode)),
            },
        });
    }
    out.push(match f.host.missing() {
        None => check(
            "mount limit",
            Level::Ok,
            "hard: each mount is a loop-mounted ext4 image; writers get ENOSPC",
            None,
        ),
        Some(missing) => check(
            "mount limit",
            Level::Warn,
            format!("soft ({missing}): slipway refuses puts over the limit, but processes can write past it"),
            Some("run as root with loop devices and e2fsprogs (apt-get install e2fsprogs)"),
        ),
    });
}

/// The Docker runtime: the engine, the stack image and the CLI.
fn engine(f: &Facts, out: &mut Vec<Check>) {
    match &f.docker {
        Ok(version) => {
            out.push(check("docker", Level::Ok, format!("Docker Engine {version}"), None));
            let (image, present) = &f.stack;
            match present {
                Some(true) => out.push(check("stack", Level::Ok, format!("{image} is in the engine"), None)),
                _ if f.debootstrap => out.push(check(
                    "stack",
                    Level::Warn,
                    format!("{image} is missing: buildpack builds of docker apps cannot start"),
                    Some("slipway stack import"),
                )),
                _ => out.push(check(
                    "stack",
                    Level::Warn,
                    format!("{image} is missing, and `slipway stack import` needs debootstrap"),
                    Some("apt-get install debootstrap && slipway stack import"),
                )),
            }
            if !f.docker_cli {
                out.push(check(
                    "docker cli",
                    Level::Warn,
                    "no docker CLI: `run` and `workspace shell` of docker apps need it",
                    Some("apt-get install docker.io (or docker-ce-cli)"),
                ));
            }
        }
        Err(why) => out.push(check(
            "docker",
            Level::Warn,
            format!("the docker runtime is unavailable ({why}); the local runtime works without it"),
            Some("start dockerd, or point DOCKER_HOST at an engine"),
        )),
    }
}

/// Whether nothing stops a deploy.
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.level != Level::Fail)
}

/// Probes this machine. `stack` is the image the docker runtime would use by default.
pub fn probe(home: &Path, stack: &str) -> Facts {
    let on_path = |tool: &str| which::which(tool).is_ok();
    let docker = engine_version(stack);
    Facts {
        git: Command::new("git")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        bash: on_path("bash"),
        home: writable(home),
        host: HostSupport::probe(),
        useradd: on_path("useradd"),
        blocked: if rustix::process::geteuid().is_root() {
            crate::users::blocking_parent(home)
        } else {
            None
        },
        docker_cli: on_path("docker"),
        stack: (stack.to_owned(), docker.as_ref().ok().map(|(_, has)| *has)),
        docker: docker.map(|(version, _)| version),
        debootstrap: on_path("debootstrap"),
    }
}

/// Creates `home` if needed and writes a file in it.
fn writable(home: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let probe = home.join(format!(".doctor-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in {}: {e}", home.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(home.to_owned())
}

/// The engine's version and whether it has `stack`, or why it cannot be reached.
fn engine_version(stack: &str) -> Result<(String, bool), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let connected =
            tokio::time::timeout(std::time::Duration::from_secs(15), crate::runtime::docker::connect());
        let docker =
            connected.await.map_err(|_| "no answer in 15 s".to_owned())?.map_err(|e| e.to_string())?;
        let version = docker.version().await.map_err(|e| e.to_string())?;
        let has_stack = docker.inspect_image(stack).await.is_ok();
        let described = format!(
            "{} (API {})",
            version.version.unwrap_or_else(|| "?".into()),
            version.api_version.unwrap_or_else(|| "?".into())
        );
        Ok((described, has_stack))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Facts {
        Facts {
            git: Some("git version 2.47.3".into()),
            bash: true,
            home: Ok("/var/lib/slipway".into()),
            host: HostSupport { root: true, loop_control: true, mkfs: true },
            useradd: true,
            blocked: None,
            docker: Ok("28.2.2 (API 1.50)".into()),
            docker_cli: true,
            stack: ("slipway/stack:bookworm".into(), Some(true)),
            debootstrap: true,
        }
    }

    fn level(checks: &[Check], name: &str) -> Option<Level> {
        checks.iter().find(|c| c.name == name).map(|c| c.level)
    }

    #[test]
    fn a_fully_equipped_root_machine_is_all_ok() {
        let checks = checks(&good());
        assert!(checks.iter().all(|c| c.level == Level::Ok && c.fix.is_none()), "{checks:#?}");
        assert!(healthy(&checks));
    }

    #[test]
    fn missing_git_bash_or_home_fail_with_a_fix() {
        for (facts, name) in [
            (Facts { git: None, ..good() }, "git"),
            (Facts { bash: false, ..good() }, "bash"),
            (Facts { home: Err("cannot write in /x".into()), ..good() }, "home"),
            (Facts { useradd: false, ..good() }, "users"),
        ] {
            let checks = checks(&facts);
            assert_eq!(level(&checks, name), Some(Level::Fail), "{name}");
            assert!(checks.iter().find(|c| c.name == name).unwrap().fix.is_some());
            assert!(!healthy(&checks), "{name}");
        }
    }

    #[test]
    fn a_home_below_a_closed_directory_fails_with_the_chmod_that_fixes_it() {
        let facts = Facts { blocked: Some(("/tmp/tmp.x".into(), 0o700)), ..good() };
        let checks = checks(&facts);
        let reach = checks.iter().find(|c| c.name == "reach").unwrap();
        assert_eq!(reach.level, Level::Fail);
        assert!(reach.fix.as_deref().unwrap().contains("chmod o+x /tmp/tmp.x"), "{reach:?}");
        assert!(!healthy(&checks));
    }

    #[test]
    fn an_unprivileged_machine_without_docker_still_deploys_locally() {
        let facts = Facts {
            host: HostSupport { root: false, ..good().host },
            useradd: false,
            docker: Err("connection refused".into()),
            ..good()
        };
        let checks = checks(&facts);
        assert!(healthy(&checks), "{checks:#?}");
        assert_eq!(level(&checks, "isolation"), Some(Level::Warn));
        let limit = checks.iter().find(|c| c.name == "mount limit").unwrap();
        assert!(limit.level == Level::Warn && limit.detail.contains("not root"), "{limit:?}");
        assert_eq!(level(&checks, "users"), None, "useradd only matters to root");
        assert_eq!(level(&checks, "reach"), None, "without app users, nobody else needs to reach the home");
        assert_eq!(level(&checks, "docker"), Some(Level::Warn));
        assert_eq!(level(&checks, "stack"), None, "no engine, no stack to look for");
    }

    #[test]
    fn a_missing_stack_says_how_to_import_it() {
        let facts = Facts { stack: ("s:1".into(), Some(false)), ..good() };
        let stack = checks(&facts).into_iter().find(|c| c.name == "stack").unwrap();
        assert_eq!((stack.level, stack.fix.as_deref()), (Level::Warn, Some("slipway stack import")));
        let bare = Facts { stack: ("s:1".into(), Some(false)), debootstrap: false, ..good() };
        let stack = checks(&bare).into_iter().find(|c| c.name == "stack").unwrap();
        assert!(stack.fix.unwrap().contains("apt-get install debootstrap"));
    }
}
