//! Whether a predeploy or postdeploy path stays in the app once committed symlinks are
//! followed. project.toml's parser already refuses `..` and absolute paths in the text; a
//! committed symlink (`predeploy.sh -> /usr/local/bin/x`, or a folder `scripts -> /etc`) could
//! still lead bash out of the app, so the path is walked as the kernel would walk it, with the
//! commit's links. Pure: the caller says which paths are links.

use std::collections::VecDeque;

/// Links followed before giving up, as the kernel's `ELOOP` limit.
const MAX_HOPS: u32 = 40;

/// Why a script path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptPathError {
    /// A link on the way leads outside the app.
    #[error(
        "project.toml: {key} = {path:?}: {link} is a committed symlink to {target:?}, which leads outside the app; \
         commit the script itself inside the app and name it there"
    )]
    Escapes {
        /// `predeploy` or `postdeploy`.
        key: &'static str,
        /// The path as written.
        path: String,
        /// The link that leads out, from the app root.
        link: String,
        /// Its target.
        target: String,
    },
    /// Links that point at each other.
    #[error(
        "project.toml: {key} = {path:?}: more than {MAX_HOPS} symlinks on the way (a loop?); name the script itself"
    )]
    Loop {
        /// `predeploy` or `postdeploy`.
        key: &'static str,
        /// The path as written.
        path: String,
    },
}

/// Walks `path` from the app root; `link_of(p)` gives the target of `p` (relative to the app
/// root, `/`-separated) when the commit has a symlink there. Returns the path bash will really
/// open, inside the app, or why it would leave. `link_of`'s own error is passed through.
pub fn resolve<E>(
    key: &'static str,
    path: &str,
    mut link_of: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Result<String, ScriptPathError>, E> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = split(path).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "." => {}
            ".." => {
                if done.pop().is_none() {
                    // Only a link's target can climb here: the written path has no `..`.
                    return Ok(Err(escapes(key, path, "..", "..")));
                }
            }
            _ => {
                let here = join(&done, &part);
                let Some(target) = link_of(&here)? else {
                    done.push(part);
                    continue;
                };
                hops += 1;
                if hops > MAX_HOPS {
                    return Ok(Err(ScriptPathError::Loop { key, path: path.to_owned() }));
                }
                if target.starts_with('/') || climbs_out(&done, &target) {
                    return Ok(Err(escapes(key, path, &here, &target)));
                }
                for (i, t) in split(&target).enumerate() {
                    todo.insert(i, t);
                }
            }
        }
    }
    Ok(Ok(done.join("/")))
}

fn split(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/').filter(|p| !p.is_empty()).map(str::to_owned)
}

fn join(done: &[String], part: &str) -> String {
    if done.is_empty() { part.to_owned() } else { format!("{}/{part}", done.join("/")) }
}

/// Whether `target`, read in the directory `done`, climbs above the app root.
fn climbs_out(done: &[String], target: &str) -> bool {
    let mut depth = i64::try_from(done.len()).unwrap_or(i64::MAX);
    for part in split(target) {
        match part.as_str() {
            "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn escapes(key: &'static str, path: &str, link: &str, target: &str) -> ScriptPathError {
    ScriptPathError::Escapes { key, path: path.to_owned(), link: link.to_owned(), target: target.to_owned() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;

    fn walk(path: &str, links: &[(&str, &str)]) -> Result<String, ScriptPathError> {
        let links: BTreeMap<&str, &str> = links.iter().copied().collect();
        resolve("predeploy", path, |p| Ok::<_, Infallible>(links.get(p).map(|t| (*t).to_owned()))).unwrap()
    }

    #[test]
    fn a_path_without_links_is_itself() {
        assert_eq!(walk("scripts/./pre.sh", &[]).unwrap(), "scripts/pre.sh");
    }

    #[test]
    fn links_that_stay_in_the_app_are_followed() {
        let links = [("pre.sh", "scripts/real.sh"), ("scripts", "tools"), ("tools/real.sh", "../bin/x.sh")];
        assert_eq!(walk("pre.sh", &links).unwrap(), "bin/x.sh");
    }

    #[test]
    fn a_link_out_of_the_app_is_refused_wherever_it_sits() {
        for (path, links, link) in [
            ("pre.sh", vec![("pre.sh", "/usr/bin/evil")], "pre.sh"),
            ("scripts/pre.sh", vec![("scripts", "/etc")], "scripts"),
            ("scripts/pre.sh", vec![("scripts", "../../other-app")], "scripts"),
            ("a/b/pre.sh", vec![("a/b", "../../x")], "a/b"),
            ("a/pre.sh", vec![("a", "c"), ("c", "..")], "c"),
        ] {
            let err = walk(path, &links).unwrap_err();
            assert!(matches!(&err, ScriptPathError::Escapes { link: l, .. } if l == link), "{path}: {err}");
            assert!(err.to_string().contains("leads outside the app"), "{err}");
        }
        // Climbing within the app is fine.
        assert_eq!(walk("a/b/pre.sh", &[("a/b", "../c")]).unwrap(), "c/pre.sh");
    }

    #[test]
    fn a_loop_of_links_is_refused() {
        let err = walk("a", &[("a", "b"), ("b", "a")]).unwrap_err();
        assert!(matches!(err, ScriptPathError::Loop { .. }), "{err}");
    }
}
