//! `apps set APP --memory … --pids … --allow-setuid … --cap-add …`: the docker runtime's
//! per-app relaxations of its container hardening.

use anyhow::Context;

use crate::ids::AppName;
use crate::runtime::docker::limits::{self, Limits};
use crate::state::Home;

/// The container limit flags of `apps set`; each applies to containers made from then on
/// (the next deploy, `ps restart`, `run`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Docker runtime: memory limit of each container, e.g. 512M or 2G, or `none`
    /// [default: 512M]
    #[arg(long, value_name = "SIZE|none", value_parser = parse_memory)]
    pub memory: Option<Limit>,
    /// Docker runtime: process (pids) limit of each container, or `none` [default: 512]
    #[arg(long, value_name = "N|none", value_parser = parse_pids)]
    pub pids: Option<Limit>,
    /// Docker runtime: let setuid binaries raise privileges (turns off no-new-privileges)
    #[arg(long, value_name = "BOOL")]
    pub allow_setuid: Option<bool>,
    /// Docker runtime: add back a capability after all are dropped, e.g. `NET_BIND_SERVICE`;
    /// repeatable; `--cap-add none` clears the list
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
}

/// A limit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

fn parse_memory(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    crate::mount::parse_size(s).map(|b| Limit(Some(b))).map_err(|e| e.to_string())
}

fn parse_pids(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Limit(Some(n))),
        _ => Err(format!("{s:?} is not a positive number of processes or `none`")),
    }
}

impl LimitArgs {
    /// Whether any limit flag was given.
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.pids.is_some()
            || self.allow_setuid.is_some()
            || !self.cap_add.is_empty()
    }

    /// The app's limits with these flags applied.
    fn applied(&self, mut l: Limits) -> anyhow::Result<Limits> {
        if let Some(Limit(m)) = self.memory {
            l.memory = m;
        }
        if let Some(Limit(p)) = self.pids {
            l.pids = p;
        }
        if let Some(a) = self.allow_setuid {
            l.allow_setuid = a;
        }
        if self.cap_add.iter().any(|c| c == "none") {
            l.cap_add.clear();
        }
        for cap in self.cap_add.iter().filter(|c| *c != "none") {
            let cap = limits::parse_capability(cap)?;
            if !l.cap_add.contains(&cap) {
                l.cap_add.push(cap);
            }
        }
        Ok(l)
    }
}

/// Records the app's new limits (under its lock) and says what they are.
pub fn set(home: &Home, app: &AppName, args: &LimitArgs) -> anyhow::Result<()> {
    home.load_app(app)?;
    let _lock = home.lock_app(app, crate::state::Wait::Yes, || {
        eprintln!("waiting for a deploy of {app} to finish");
    })?;
    let current = limits::load(home, app)?;
    let next = args.applied(current)?;
    limits::save(home, app, &next).with_context(|| format!("cannot save the container limits of {app}"))?;
    let show = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |n| n.to_string());
    eprintln!(
        "-----> {app}'s containers: memory {} bytes, pids {}, setuid {}, capabilities {}; applies to containers made from now on (deploy or `ps restart {app}`)",
        show(next.memory),
        show(next.pids),
        if next.allow_setuid { "allowed" } else { "refused (no-new-privileges)" },
        if next.cap_add.is_empty() { "none".to_owned() } else { next.cap_add.join(",") },
    );
    Ok(())
}
