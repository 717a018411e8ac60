//! `apps set APP --ca-certs FILE|host`: the CA bundle the app's builds trust, for networks
//! whose TLS is intercepted by their own certificate authority (see `crate::build_env`).

use std::path::PathBuf;

use crate::cli::exit::Refusal;
use crate::ids::AppName;
use crate::state::{Home, Wait};

/// Records the app's CA bundle: an absolute path to a PEM file, or `host` for the host's own.
pub fn set(home: &Home, app: &AppName, value: &str) -> anyhow::Result<()> {
    let path = parse(value).map_err(Refusal::Usage)?;
    if let Some(p) = &path {
        let text = std::fs::read(p).map_err(|e| {
            Refusal::Usage(format!(
                "--ca-certs {}: cannot read it ({e}); give a PEM file of CA certificates",
                p.display()
            ))
        })?;
        if !text.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(Refusal::Usage(format!(
                "--ca-certs {}: no `-----BEGIN CERTIFICATE-----` in it; give a PEM file of CA certificates",
                p.display()
            ))
            .into());
        }
    }
    let _lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app} to finish"))?;
    let mut record = home.load_app(app)?;
    record.ca_certs.clone_from(&path);
    home.save_app(&record)?;
    match path {
        Some(p) => eprintln!("-----> {app}'s builds trust {} from the next deploy", p.display()),
        None => eprintln!("-----> {app}'s builds trust the host's CA bundle from the next deploy"),
    }
    Ok(())
}

/// `host` → None; otherwise an absolute path.
fn parse(value: &str) -> Result<Option<PathBuf>, String> {
    if value == "host" {
        return Ok(None);
    }
    let p = PathBuf::from(value);
    if !p.is_absolute() {
        return Err(format!("--ca-certs {value}: give an absolute path (or `host` for the host's bundle)"));
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resets_and_paths_must_be_absolute() {
        assert_eq!(parse("host").unwrap(), None);
        assert_eq!(parse("/etc/corp.pem").unwrap(), Some(PathBuf::from("/etc/corp.pem")));
        assert!(parse("corp.pem").unwrap_err().contains("absolute"));
    }
}
