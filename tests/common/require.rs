//! What a test needs that this machine may lack (root, the Docker engine). Outside CI a test
//! that cannot run says so loudly and returns; CI sets `SLIPWAY_REQUIRE_ROOT=1` and
//! `SLIPWAY_REQUIRE_DOCKER=1`, which turn that skip into a failure, so a machine that lost its
//! engine or its root can never make a run pass silently.
#![allow(dead_code, unreachable_pub)]

/// Something a test needs.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    Root,
    Docker,
}

impl Need {
    fn var(self) -> &'static str {
        match self {
            Need::Root => "SLIPWAY_REQUIRE_ROOT",
            Need::Docker => "SLIPWAY_REQUIRE_DOCKER",
        }
    }
}

/// Report a test that cannot run: panics when the need is required, else prints SKIPPED.
pub fn skip(need: Need, why: &str) {
    let var = need.var();
    assert!(std::env::var_os(var).is_none_or(|v| v != "1"), "{var}=1, but this test cannot run here: {why}");
    eprintln!("SKIPPED (this is not a pass): {why}; set {var}=1 to make it fail instead");
}

/// Whether this process runs as root; if not, the skip is reported.
pub fn root_or_skip(what: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        skip(Need::Root, &format!("{what} needs root"));
    }
    root
}
