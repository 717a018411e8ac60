//! Steps 1 and 2 on the local runtime: write the plan to the release's root-only state,
//! extract the commit into a root-only staging folder (with the buildpacks installed beside it
//! in `cnb/`), give its `app/` and `layers/` to the app's user, move the folder into place and
//! run the buildpacks there ([`super::lifecycle`]); then link the mount.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use super::{LocalError, io_err};
use crate::ids::{AppName, ReleaseId};
use crate::plan::{BuildKind, DeployPlan};
use crate::source::Repo;
use crate::state::tree::{self, Access};
use crate::state::{Home, atomic};

/// Extract the commit and write the plan the supervisor will run.
pub(super) fn build(
    home: &Home,
    plan: &mut DeployPlan,
    repo: &Repo,
    output: crate::lifecycle::LineSink<'_>,
) -> Result<(), LocalError> {
    let app_paths = home.app(&plan.app);
    let paths = app_paths.release(plan.release);
    let user = plan.run_as.as_ref();
    // The plan decides what runs and as whom, so it lives where only root can write, and is
    // written before the folder exists: reconciliation finds a release by either.
    fs::create_dir_all(paths.state_dir()).map_err(io_err(paths.state_dir()))?;
    atomic::write_json(&paths.plan(), plan).map_err(io_err(paths.plan()))?;
    // Extraction happens where the app's user cannot reach, so that it cannot plant symlinks
    // for the extraction to follow; only the finished tree moves into its reach.
    let staging_root = app_paths.staging_dir();
    fs::create_dir_all(&staging_root).map_err(io_err(&staging_root))?;
    // state/ is root's alone (mode 0700), so a plain open is safe here.
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let staging_fd = rustix::fs::open(&staging_root, flags, rustix::fs::Mode::empty())
        .map_err(|e| io_err(&staging_root)(e.into()))?;
    let name = plan.release.to_string();
    let staging = staging_root.join(&name);
    tree::remove_tree(&staging_fd, OsStr::new(&name), &staging)?;
    let release_fd = tree::make_dir(&staging_fd, OsStr::new(&name), &staging, Access::AppReads, user)?;
    let app_dir = staging.join("app");
    fs::create_dir(&app_dir).map_err(io_err(&app_dir))?;
    if plan.build == BuildKind::Buildpacks {
        // project.toml include/exclude: the build, and so the release, sees only what they keep.
        let filter =
            plan.platform.source_filter().map_err(|e| Box::new(super::lifecycle::platform_err(plan, e)))?;
        repo.extract_filtered(&plan.commit, &app_dir, &filter)?;
    } else {
        repo.extract(&plan.commit, &app_dir)?;
    }
    let layers = staging.join("layers");
    if plan.build == BuildKind::Buildpacks {
        // Installed while the tree is root's alone: the commit's buildpacks are read before
        // the app's user can change anything in it.
        let builtins = staging_root.join(format!("{name}.builtins"));
        let staged = super::lifecycle::stage(&release_fd, &staging, plan, &builtins);
        tree::remove_tree(&staging_fd, OsStr::new(&format!("{name}.builtins")), &builtins)?;
        staged.map_err(Box::new)?;
        fs::create_dir(&layers).map_err(io_err(&layers))?;
    }
    if let Some(user) = user {
        user.chown_tree(&app_dir).map_err(io_err(&app_dir))?;
        if plan.build == BuildKind::Buildpacks {
            user.chown_tree(&layers).map_err(io_err(&layers))?;
        }
    }
    // HOME is root's and sticky: the app adds files (caches, dotfiles) but can never remove
    // or rename the `mount` link slipway keeps there.
    tree::make_dir(&release_fd, OsStr::new("home"), &staging.join("home"), Access::AppAdds, user)?;
    let releases = tree::open_or_create(home.root(), &app_paths.releases_dir(), Access::AppReads, user)?;
    tree::rename(&staging_fd, OsStr::new(&name), &releases, OsStr::new(&name), paths.dir())?;
    rustix::fs::fsync(&releases).map_err(|e| io_err(app_paths.releases_dir())(e.into()))?;
    if plan.build == BuildKind::Buildpacks {
        let built = super::lifecycle::build(home, plan, output).map_err(Box::new)?;
        // The buildpacks' process types join the plan the supervisor will run.
        let record = home.load_app(&plan.app)?;
        plan.add_buildpack_processes(&record, &built.launch.processes);
        atomic::write_json(&paths.plan(), plan).map_err(io_err(paths.plan()))?;
    }
    Ok(())
}

/// Link `../mount` and `~/mount` to the app's persistent filesystem, mounting it first if a
/// reboot unmounted it. With the mount disabled there are no links: `../mount` is absent.
/// Called before every start of a release's processes, so that a mount enabled or disabled
/// since the deploy applies from the next start on. Returns whether the mount is attached.
///
/// Both links live in root-owned directories, opened without following a symlink; a link
/// slipway did not make is refused, never replaced or followed.
pub fn attach_mount(home: &Home, app: &AppName, release: ReleaseId) -> Result<bool, LocalError> {
    let app_paths = home.app(app);
    let paths = app_paths.release(release);
    let release_fd = tree::open(home.root(), paths.dir())?;
    let home_fd = tree::child(&release_fd, OsStr::new("home"), &paths.home())?;
    let attached = crate::mount::attach(&app_paths)?.is_some();
    let links = [
        (&release_fd, Path::new("../../mount"), paths.mount_link()),
        (&home_fd, Path::new("../mount"), paths.home().join("mount")),
    ];
    for (dir, target, at) in links {
        let name = OsStr::new("mount");
        if attached {
            // Relative links keep working if the whole home directory moves.
            tree::replace_link(dir, name, target, &at)?;
        } else {
            tree::remove_link(dir, name, &at)?;
        }
    }
    Ok(attached)
}
