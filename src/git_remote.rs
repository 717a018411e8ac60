//! `git push` deploys: each app has a bare repository whose `pre-receive` hook deploys a push
//! of its deploy branch (`main` unless `apps set --deploy-branch` says otherwise), as Dokku and
//! Heroku do. One branch per app, so that two branches pushed at once cannot both deploy and
//! leave the deploy branch naming a commit that is not running.
//!
//! The hook runs before git updates the ref, with the pushed objects readable (git's
//! quarantine), so a deploy that fails rejects the push: the branch keeps naming the commit
//! that is running. The deploy's progress lines reach the pusher as `remote:` lines.
//!
//! Parsing the hook's input and choosing what to deploy are pure; [`ensure`] writes the
//! repository and its hook.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ids::{AppName, CommitSha};
use crate::state::atomic;

/// The deploy branch of an app that was given none.
pub const DEFAULT_BRANCH: &str = "main";

/// Why the app's repository could not be made or a push could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitRemoteError {
    /// git is missing or failed.
    #[error("cannot create the git repository {}: {detail}; install git (apt-get install git)", path.display())]
    Init {
        /// The repository.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The hook could not be written.
    #[error("cannot write the git hook {}", path.display())]
    Hook {
        /// The hook file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The branch moved while this push waited for another.
    #[error(
        "{branch} moved to {current} while this push waited for another one; nothing was deployed: fetch, then push again"
    )]
    Moved {
        /// The branch.
        branch: String,
        /// Where it is now (`(deleted)` if gone).
        current: String,
    },
    /// A line of the hook's input was not `<old> <new> <ref>`.
    #[error("git gave the pre-receive hook a line it cannot read: {0:?}")]
    BadUpdate(String),
    /// The push deletes the deploy branch.
    #[error(
        "refusing to delete {branch}: it is this app's deploy branch and names the running commit; nothing was changed (to retire the app: slipway apps destroy)"
    )]
    DeletesDeployBranch {
        /// The branch.
        branch: String,
    },
    /// Not a name git accepts for a branch.
    #[error("{0:?} is not a branch name git accepts (e.g. main, release/2025)")]
    BadBranch(String),
}

/// Fails unless `name` is a branch name git accepts (`git check-ref-format --branch`'s rules,
/// for the plain names a deploy branch needs). Pure.
pub fn check_branch(name: &str) -> Result<(), GitRemoteError> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.strip_suffix(".lock").is_some()
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.contains("/.")
        || name == "@"
        || name.chars().any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad { Err(GitRemoteError::BadBranch(name.to_owned())) } else { Ok(()) }
}

/// One ref update of a push, as git gives it to `pre-receive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// The ref, e.g. `refs/heads/main`.
    pub name: String,
    /// What the pusher saw the ref at; `None` when the push creates it.
    pub old: Option<CommitSha>,
    /// The pushed commit; `None` when the push deletes the ref.
    pub new: Option<CommitSha>,
}

/// A push of a deploy branch to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPush {
    /// The branch, e.g. `main`.
    pub branch: String,
    /// Where the pusher saw it; `None` for a new branch.
    pub old: Option<CommitSha>,
    /// The commit to deploy.
    pub new: CommitSha,
}

impl BranchPush {
    /// Whether the branch moved (another push landed) since the pusher saw it at `old`: git
    /// would then refuse this ref update after the deploy, leaving a running commit that no
    /// branch names, so the push is refused before deploying.
    pub fn moved(&self, current: Option<&CommitSha>) -> bool {
        self.old.as_ref() != current
    }
}

/// What a push asks of slipway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPlan {
    /// The deploy branch push, if any.
    pub deploy: Option<BranchPush>,
    /// Refs that are stored without a deploy.
    pub stored: Vec<String>,
    /// Refs that the push deletes (other than the deploy branch).
    pub deleted: Vec<String>,
}

/// Reads `pre-receive`'s input: one `<old-sha> <new-sha> <ref>` line per updated ref.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>, GitRemoteError> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || GitRemoteError::BadUpdate(line.to_owned());
            let mut parts = line.split_whitespace();
            let (Some(old), Some(new), Some(name), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            // All zeros: the ref does not exist on that side (created, or deleted).
            let sha = |s: &str| {
                if s.bytes().all(|b| b == b'0') { Ok(None) } else { s.parse().map(Some).map_err(|_| bad()) }
            };
            Ok(RefUpdate { name: name.to_owned(), old: sha(old)?, new: sha(new)? })
        })
        .collect()
}

/// Picks the deploy: the push of `deploy_branch` to a commit. Other branches and tags are
/// stored only, deletions are deletions, and deleting the deploy branch is refused: it names
/// the running commit, and git refuses to delete the repository's current branch anyway.
pub fn plan_push(updates: &[RefUpdate], deploy_branch: &str) -> Result<PushPlan, GitRemoteError> {
    let deploy_ref = format!("refs/heads/{deploy_branch}");
    let mut plan = PushPlan { deploy: None, stored: Vec::new(), deleted: Vec::new() };
    for u in updates {
        match (&u.new, u.name == deploy_ref) {
            (None, true) => {
                return Err(GitRemoteError::DeletesDeployBranch { branch: deploy_branch.to_owned() });
            }
            (None, false) => plan.deleted.push(u.name.clone()),
            (Some(new), true) => {
                plan.deploy = Some(BranchPush {
                    branch: deploy_branch.to_owned(),
                    old: u.old.clone(),
                    new: new.clone(),
                });
            }
            (Some(_), false) => plan.stored.push(u.name.clone()),
        }
    }
    Ok(plan)
}

/// `s` quoted for bash: single quotes, with each `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `pre-receive` hook: it hands the push to `slipway __receive`. The binary's path is
/// recorded when the hook is written; if it has moved since, `slipway` on PATH is used.
pub fn hook_script(exe: &Path, home: &Path, app: &AppName) -> String {
    let mut s = String::from("#!/usr/bin/env bash\n");
    s.push_str("# Written by slipway: a push of the deploy branch deploys the pushed commit; a failed\n");
    s.push_str("# deploy rejects the push. `slipway apps create` writes it; edits are overwritten.\n");
    let _ = writeln!(s, "slipway={}", shell_quote(&exe.display().to_string()));
    s.push_str("[[ -x $slipway ]] || slipway=slipway\n");
    let _ = writeln!(
        s,
        "exec \"$slipway\" --home {} __receive {}",
        shell_quote(&home.display().to_string()),
        shell_quote(app.as_str())
    );
    s
}

/// Creates the bare repository at `path` (if missing) and (re)writes its hook.
pub fn ensure(path: &Path, exe: &Path, home: &Path, app: &AppName) -> Result<(), GitRemoteError> {
    if !path.join("HEAD").is_file() {
        let out = Command::new("git")
            .args(["init", "--bare", "--quiet", "--initial-branch", DEFAULT_BRANCH])
            .arg(path)
            .output()
            .map_err(|e| GitRemoteError::Init { path: path.to_owned(), detail: e.to_string() })?;
        if !out.status.success() {
            let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(GitRemoteError::Init { path: path.to_owned(), detail });
        }
    }
    let hook = path.join("hooks").join("pre-receive");
    let err = |source| GitRemoteError::Hook { path: hook.clone(), source };
    std::fs::create_dir_all(path.join("hooks")).map_err(err)?;
    atomic::write(&hook, hook_script(exe, home, app).as_bytes()).map_err(err)?;
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn sha(s: &str) -> Option<CommitSha> {
        (s != ZERO).then(|| s.parse().unwrap())
    }

    fn update(name: &str, new: &str) -> RefUpdate {
        RefUpdate { name: name.into(), old: None, new: sha(new) }
    }

    #[test]
    fn hook_input_lines_become_updates_and_zero_means_delete() {
        let input = format!("{ZERO} {A} refs/heads/main\n{A} {ZERO} refs/heads/old\n\n");
        let deleted = RefUpdate { old: sha(A), ..update("refs/heads/old", ZERO) };
        assert_eq!(parse_updates(&input).unwrap(), [update("refs/heads/main", A), deleted]);
        for bad in [
            "just-one",
            &format!("{A} {B}"),
            &format!("{A} nothex refs/heads/x"),
            &format!("{A} {B} r extra"),
        ] {
            assert!(matches!(parse_updates(bad), Err(GitRemoteError::BadUpdate(_))), "{bad}");
        }
    }

    #[test]
    fn only_the_deploy_branch_deploys_and_the_rest_is_stored() {
        let updates =
            [update("refs/heads/master", B), update("refs/heads/main", A), update("refs/tags/v1", A)];
        let plan = plan_push(&updates, "main").unwrap();
        assert_eq!(
            plan.deploy,
            Some(BranchPush { branch: "main".into(), old: None, new: A.parse().unwrap() })
        );
        assert_eq!(plan.stored, ["refs/heads/master", "refs/tags/v1"]);

        let plan = plan_push(&[update("refs/heads/master", B)], "main").unwrap();
        assert_eq!(plan.deploy, None, "master is not main");
        let plan = plan_push(&updates, "master").unwrap();
        assert_eq!(plan.deploy.map(|d| (d.branch, d.new)), Some(("master".to_owned(), B.parse().unwrap())));
        assert_eq!(plan.stored, ["refs/heads/main", "refs/tags/v1"]);
    }

    #[test]
    fn deleting_the_deploy_branch_is_refused_and_other_deletions_are_deletions() {
        let delete_main = RefUpdate { old: sha(A), ..update("refs/heads/main", ZERO) };
        assert!(matches!(
            plan_push(std::slice::from_ref(&delete_main), "main"),
            Err(GitRemoteError::DeletesDeployBranch { branch }) if branch == "main"
        ));
        let plan = plan_push(&[delete_main], "prod").unwrap();
        assert_eq!(
            (plan.deploy, plan.stored, plan.deleted),
            (None, vec![], vec!["refs/heads/main".to_owned()])
        );
    }

    #[test]
    fn branch_names_follow_gits_rules() {
        for good in ["main", "master", "release/2025", "prod-eu.1"] {
            assert!(check_branch(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "x.lock", "/a", "a/", "a//b", "a/.b", "@", "a~1", "a@{1}"]
        {
            assert!(matches!(check_branch(bad), Err(GitRemoteError::BadBranch(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_push_is_stale_when_the_branch_moved_since_the_pusher_saw_it() {
        let push = BranchPush { branch: "main".into(), old: sha(A), new: B.parse().unwrap() };
        assert!(!push.moved(sha(A).as_ref()));
        assert!(push.moved(sha(B).as_ref()), "another push landed first");
        assert!(push.moved(None), "the branch was deleted meanwhile");
        let create = BranchPush { old: None, ..push };
        assert!(!create.moved(None));
        assert!(create.moved(sha(A).as_ref()), "another push created it first");
    }

    #[test]
    fn feature_branches_and_tags_named_like_the_branch_do_not_deploy() {
        for u in [update("refs/heads/feature", A), update("refs/tags/main", A)] {
            let plan = plan_push(std::slice::from_ref(&u), "main").unwrap();
            assert_eq!(plan.deploy, None, "{u:?}");
            assert_eq!(plan.stored, std::slice::from_ref(&u.name));
        }
    }

    #[test]
    fn the_hook_quotes_paths_and_falls_back_to_path() {
        let app: AppName = "demo".parse().unwrap();
        let s = hook_script(Path::new("/opt/it's/slipway"), Path::new("/var/lib/slip way"), &app);
        assert!(s.starts_with("#!/usr/bin/env bash\n"));
        assert!(s.contains(r"slipway='/opt/it'\''s/slipway'"), "{s}");
        assert!(s.contains("[[ -x $slipway ]] || slipway=slipway"));
        assert!(s.ends_with("exec \"$slipway\" --home '/var/lib/slip way' __receive 'demo'\n"), "{s}");
    }
}
