//! `slipway apps migrate APP`: bring an app from the layout of an earlier slipway, where
//! `apps/APP` and everything below it but the mount's contents belonged to the app's user and
//! a release's plan, status, pid and lock files lay in its folder, to the current one
//! (see `state::layout`), keeping its mount, records and settings.
//!
//! Nothing in the old tree is trusted, since the app's user could have planted anything
//! there: the old supervisors are found in `/proc` (`old_supervisors`), every process of the
//! user is killed, `apps/APP` is taken back through a descriptor before anything below it is
//! touched, and the old releases and workspace are removed by descriptors without following a
//! link. Then the current release's commit is deployed again, into the new layout.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::Context;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::cli::Exit;
use crate::cli::deploy::deploy_and_report;
use crate::cli::exit::Refusal;
use crate::deploy::DeployRequest;
use crate::ids::AppName;
use crate::plan::Overrides;
use crate::state::tree::{self, Access};
use crate::state::{Home, RunAs, Wait};

/// Names of the old trees while they are being removed; one left by an interrupted migration
/// is removed by the next.
const ASIDE: &str = ".slipway-migrate-";

/// The old trees below `apps/APP` that are replaced; `mount` stays.
const REPLACED: [&str; 2] = ["releases", "workspace"];

/// Who owns what in `apps/APP`, as found (symlinks not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    pub dir_uid: u32,
    pub dir_mode: u32,
    pub releases_uid: Option<u32>,
    pub workspace_uid: Option<u32>,
    /// A tree an interrupted migration set aside is still there.
    pub leftovers: bool,
}

/// Which slipway made an app's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Root's, mode 0750: nothing to do.
    Current,
    /// The app's user owns part of it (or a migration was interrupted): migrate.
    Earlier,
}

/// Classify a survey of `apps/APP` for an app whose user has `app_uid`. An owner that is
/// neither root nor the app's user is no layout slipway ever made: `Err((what, uid))`.
pub fn classify(s: &Survey, app_uid: u32) -> Result<Layout, (&'static str, u32)> {
    let owners =
        [("apps/APP", Some(s.dir_uid)), ("releases", s.releases_uid), ("workspace", s.workspace_uid)];
    if let Some((what, Some(uid))) = owners.iter().find(|(_, u)| u.is_some_and(|u| u != 0 && u != app_uid)) {
        return Err((what, *uid));
    }
    let all_root = owners.iter().all(|(_, u)| u.is_none_or(|u| u == 0));
    if all_root && !s.leftovers && s.dir_mode & 0o7777 == 0o750 {
        Ok(Layout::Current)
    } else {
        Ok(Layout::Earlier)
    }
}

/// Migrate `app`, then deploy its current commit again.
pub fn run(home: &Home, app: &AppName) -> anyhow::Result<Exit> {
    if !rustix::process::geteuid().is_root() {
        return Err(Refusal::Usage(format!(
            "`apps migrate` gives {app}'s tree back to root and stops its processes, so it must run as root: \
             sudo slipway --home {} apps migrate {app}",
            home.root().display()
        ))
        .into());
    }
    home.load_app(app)?;
    let lock = home.lock_app(app, Wait::Yes, || eprintln!("waiting for a deploy of {app} to finish"))?;
    let record = home.load_app(app)?;
    let Some(user) = record.run_as.clone() else {
        return Err(Refusal::Usage(format!(
            "app {app} has no system user of its own (it was created without root), so there is no \
             earlier layout to migrate; nothing changed"
        ))
        .into());
    };
    // A user whose uid changed behind slipway's back is not this app's any more: its uid's
    // processes may be someone else's.
    if !crate::users::still_ours(&user)? {
        anyhow::bail!("the system user {} of app {app} is gone; nothing changed", user.user);
    }
    let dir = home.app(app).dir().to_owned();
    let apps = tree::open(home.root(), &home.apps_dir())?;
    let app_dir = open_app_dir(&apps, app, &dir)?;
    let survey = survey(&app_dir, &dir)?;
    match classify(&survey, user.uid) {
        Err((what, uid)) => {
            return Err(Refusal::Usage(format!(
                "{what} of app {app} in {} is owned by uid {uid}, neither root nor the app's user {} \
                 (uid {}): no slipway made that. Inspect it; nothing changed",
                dir.display(),
                user.user,
                user.uid
            ))
            .into());
        }
        Ok(Layout::Current) => {
            eprintln!("-----> {app} already uses the current layout; nothing changed");
            return Ok(Exit::Ok);
        }
        Ok(Layout::Earlier) => {}
    }
    eprintln!("-----> Migrating {app} to the current layout");
    let grace = crate::plan::DEFAULT_STOP_GRACE;
    let stopped = super::old_supervisors::stop(home.root(), app, grace)?;
    for id in &stopped {
        eprintln!("       stopped the supervisor of {id}");
    }
    // Daemonized processes escaped their supervisor; until every process of the user is gone,
    // one could still rename entries in the tree.
    crate::users::kill_all(&user)?;
    for id in home.release_ids(app)?.into_iter().chain(stopped) {
        if let Some(cg) = crate::supervise::cgroup::path(home.root(), app, id) {
            crate::supervise::cgroup::remove(&cg);
        }
    }
    take_back(&app_dir, &dir, &user)?;
    recreate(home, app, &user)?;
    drop(lock);
    let Some(current) = record.current else {
        eprintln!("-----> Migrated {app}; it has no current release to deploy again");
        return Ok(Exit::Ok);
    };
    let release = home.load_release(app, current)?;
    eprintln!(
        "-----> Migrated {app}'s tree; deploying {current}'s commit {} again from {}",
        release.commit.short(),
        release.repo.display()
    );
    let req = DeployRequest {
        app: app.clone(),
        repo: release.repo.clone(),
        rev: release.commit.to_string(),
        wait: Wait::Yes,
        overrides: Overrides::default(),
    };
    deploy_and_report(home, &req, false, || {
        format!(
            "{app}'s tree is migrated, but deploying {current}'s commit again failed; fix the cause and \
             run `slipway rollback {app} {current}` or `slipway deploy {app}`"
        )
    })
}

/// `apps/APP`, opened without following a link. `apps/` is root's, so the app cannot swap it.
fn open_app_dir(apps: &OwnedFd, app: &AppName, dir: &Path) -> anyhow::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(apps, app.as_str(), flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::LOOP | Errno::NOTDIR) => Err(Refusal::Usage(format!(
            "{} is not a directory (a symlink or a file?); no slipway made that. Inspect it; nothing changed",
            dir.display()
        ))
        .into()),
        Err(e) => Err(std::io::Error::from(e)).with_context(|| format!("cannot open {}", dir.display())),
    }
}

fn survey(app_dir: &OwnedFd, dir: &Path) -> anyhow::Result<Survey> {
    let st = rustix::fs::fstat(app_dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    let owner = |name: &str| match rustix::fs::statat(app_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st.st_uid)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(std::io::Error::from(e))
            .with_context(|| format!("cannot inspect {}", dir.join(name).display())),
    };
    let leftovers = tree::names(app_dir, dir)?.iter().any(|n| is_aside(n));
    Ok(Survey {
        dir_uid: st.st_uid,
        dir_mode: st.st_mode,
        releases_uid: owner("releases")?,
        workspace_uid: owner("workspace")?,
        leftovers,
    })
}

fn is_aside(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(ASIDE))
}

/// Give `apps/APP` to root (the app keeps read access through its group), then move the old
/// releases and workspace aside and remove them, never following a link in them.
fn take_back(app_dir: &OwnedFd, dir: &Path, user: &RunAs) -> anyhow::Result<()> {
    // From here on the app's user can no longer rename or add entries in apps/APP.
    tree::set_access(app_dir, dir, Access::AppReads, Some(user))?;
    for name in REPLACED {
        let aside = OsString::from(format!("{ASIDE}{name}"));
        if rustix::fs::statat(app_dir, name, AtFlags::SYMLINK_NOFOLLOW).is_err() {
            continue;
        }
        // An older aside of the same name (an interrupted run) goes first: renameat would not
        // replace a non-empty directory.
        tree::remove_tree(app_dir, &aside, &dir.join(&aside))?;
        tree::rename(app_dir, OsStr::new(name), app_dir, &aside, &dir.join(name))?;
    }
    for name in tree::names(app_dir, dir)?.into_iter().filter(|n| is_aside(n)) {
        tree::remove_tree(app_dir, &name, &dir.join(&name))?;
    }
    // The app could have swapped its mount for a link before it lost the directory; releases
    // link to it, so only a real directory (or mount point) is kept.
    match rustix::fs::statat(app_dir, "mount", AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            anyhow::bail!(
                "{} is not a directory, so it is not the app's persistent filesystem; the tree is \
                 migrated but nothing was deployed. Inspect it, move it away as root, then run \
                 `slipway apps migrate` again",
                dir.join("mount").display()
            );
        }
        _ => Ok(()),
    }
}

/// The app's new tree, as `apps create` makes it.
fn recreate(home: &Home, app: &AppName, user: &RunAs) -> anyhow::Result<()> {
    let paths = home.app(app);
    for d in [paths.history_dir(), paths.logs_dir(), paths.release_state_dir()] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    tree::open_or_create(home.root(), &paths.releases_dir(), Access::AppReads, Some(user))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: u32 = 1234;

    fn survey(dir_uid: u32, releases: Option<u32>, workspace: Option<u32>) -> Survey {
        Survey {
            dir_uid,
            dir_mode: 0o40750,
            releases_uid: releases,
            workspace_uid: workspace,
            leftovers: false,
        }
    }

    #[test]
    fn a_tree_of_roots_with_mode_0750_is_current() {
        assert_eq!(classify(&survey(0, Some(0), None), APP), Ok(Layout::Current));
        assert_eq!(classify(&survey(0, Some(0), Some(0)), APP), Ok(Layout::Current));
    }

    #[test]
    fn any_part_owned_by_the_app_or_an_interrupted_migration_is_the_earlier_layout() {
        let old = Survey { dir_mode: 0o40700, ..survey(APP, Some(APP), Some(APP)) };
        assert_eq!(classify(&old, APP), Ok(Layout::Earlier));
        assert_eq!(classify(&survey(0, Some(APP), None), APP), Ok(Layout::Earlier));
        assert_eq!(classify(&survey(0, Some(0), Some(APP)), APP), Ok(Layout::Earlier));
        let interrupted = Survey { leftovers: true, ..survey(0, Some(0), None) };
        assert_eq!(classify(&interrupted, APP), Ok(Layout::Earlier));
        let wrong_mode = Survey { dir_mode: 0o40700, ..survey(0, Some(0), None) };
        assert_eq!(classify(&wrong_mode, APP), Ok(Layout::Earlier));
    }

    #[test]
    fn a_stranger_owning_any_part_is_refused() {
        assert_eq!(classify(&survey(999, Some(APP), None), APP), Err(("apps/APP", 999)));
        assert_eq!(classify(&survey(APP, Some(999), None), APP), Err(("releases", 999)));
        assert_eq!(classify(&survey(0, Some(0), Some(7)), APP), Err(("workspace", 7)));
    }
}
