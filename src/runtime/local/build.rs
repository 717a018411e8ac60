//! Steps 1 and 2 on the local runtime: extract the commit into a root-only staging folder,
//! hand it to the app's user, and move it into place; then link the mount.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::{LocalError, io_err};
use crate::ids::{AppName, ReleaseId};
use crate::plan::DeployPlan;
use crate::source::Repo;
use crate::state::{Home, atomic};

/// Extract the commit and write the plan the supervisor will run.
pub(super) fn build(home: &Home, plan: &DeployPlan, repo: &Repo) -> Result<(), LocalError> {
    let app_paths = home.app(&plan.app);
    // Extraction happens where the app's user cannot reach, so that it cannot plant symlinks
    // for the extraction to follow; only the finished tree moves into its territory.
    let staging = app_paths.staging_dir().join(plan.release.to_string());
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    let app_dir = staging.join("app");
    fs::create_dir_all(&app_dir).map_err(io_err(&app_dir))?;
    fs::create_dir_all(staging.join("home")).map_err(io_err(staging.join("home")))?;
    repo.extract(&plan.commit, &app_dir)?;
    let plan_path = staging.join("plan.json");
    atomic::write_json(&plan_path, plan).map_err(io_err(&plan_path))?;
    if let Some(user) = &plan.run_as {
        for dir in [staging.join("app"), staging.join("home")] {
            user.chown_tree(&dir).map_err(io_err(&dir))?;
        }
    }
    let dest = app_paths.release(plan.release).dir().to_owned();
    fs::create_dir_all(app_paths.releases_dir()).map_err(io_err(app_paths.releases_dir()))?;
    fs::rename(&staging, &dest).map_err(io_err(&dest))?;
    atomic::sync_dir(&app_paths.releases_dir()).map_err(io_err(app_paths.releases_dir()))
}

/// Link `../mount` and `~/mount` to the app's persistent filesystem, mounting it first if a
/// reboot unmounted it. With the mount disabled there are no links: `../mount` is absent.
/// Called before every start of a release's processes, so that a mount enabled or disabled
/// since the deploy applies from the next start on. Returns whether the mount is attached.
pub fn attach_mount(home: &Home, app: &AppName, release: ReleaseId) -> Result<bool, LocalError> {
    let app_paths = home.app(app);
    let paths = app_paths.release(release);
    let links =
        [(Path::new("../../mount"), paths.mount_link()), (Path::new("../mount"), paths.home().join("mount"))];
    let attached = crate::mount::attach(&app_paths)?.is_some();
    for (target, at) in links {
        unlink(&at)?;
        if attached {
            // Relative links keep working if the whole home directory moves.
            symlink(target, &at).map_err(io_err(&at))?;
        }
    }
    Ok(attached)
}

fn unlink(at: &Path) -> Result<(), LocalError> {
    match fs::symlink_metadata(at) {
        Ok(_) => fs::remove_file(at).map_err(io_err(at)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(at)(e)),
    }
}
