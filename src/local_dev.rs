//! `slipway local`: run a directory's Procfile in the foreground, like `heroku local`, with the
//! Dash Enterprise layout: the app folder beside a `mount` folder that git never sees.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a directory cannot run locally.
#[derive(Debug, thiserror::Error)]
pub enum LocalDevError {
    #[error("{0} does not exist or is not a directory")]
    NoDir(PathBuf),
    #[error(
        "{mount} would be inside the git work tree {top}, so the persistent filesystem would be \
         version controlled.\nMove the app into its own folder beside the mount, as Dash Enterprise expects:\n\
         \n  my-project/\n  ├── app/      <- run git here (Procfile, code)\n  └── mount/    <- data, never in git\n\
         \nFor example: mkdir app && git mv <files> app/ (or move the repository one level down), then run `slipway local app`."
    )]
    MountInsideRepo { mount: PathBuf, top: PathBuf },
    #[error("cannot create {path}")]
    CreateMount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the layout check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The app folder (canonical).
    pub app_dir: PathBuf,
    /// Its sibling `mount`.
    pub mount_dir: PathBuf,
    /// Set when the app's repository commits a `mount` folder of its own.
    pub committed_mount: bool,
}

/// Check the layout of `dir` and create `../mount` if it is missing.
pub fn prepare(dir: &Path) -> Result<Layout, LocalDevError> {
    let app_dir =
        dir.canonicalize().ok().filter(|d| d.is_dir()).ok_or_else(|| LocalDevError::NoDir(dir.to_owned()))?;
    let mount_dir = app_dir.parent().unwrap_or(Path::new("/")).join("mount");
    let top = git(&app_dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    if let Some(top) = top {
        check_outside(&mount_dir, &top)?;
    }
    let committed_mount = git(&app_dir, &["ls-files", "--", "mount"]).is_some_and(|s| !s.is_empty());
    if !mount_dir.is_dir() {
        std::fs::create_dir(&mount_dir)
            .map_err(|source| LocalDevError::CreateMount { path: mount_dir.clone(), source })?;
    }
    Ok(Layout { app_dir, mount_dir, committed_mount })
}

/// Pure: refuse a mount folder that lies inside the repository's work tree.
pub fn check_outside(mount: &Path, top: &Path) -> Result<(), LocalDevError> {
    if mount.starts_with(top) {
        return Err(LocalDevError::MountInsideRepo { mount: mount.to_owned(), top: top.to_owned() });
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_inside_the_work_tree_is_refused_with_the_fix() {
        let err =
            check_outside(Path::new("/src/my-project/mount"), Path::new("/src/my-project")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("my-project/") && msg.contains("app/") && msg.contains("mount/"), "{msg}");
        assert!(check_outside(Path::new("/src/my-project/mount"), Path::new("/src/my-project/app")).is_ok());
        // A sibling whose name merely starts with the repository's is outside it.
        assert!(check_outside(Path::new("/src/app-mount"), Path::new("/src/app")).is_ok());
    }
}
