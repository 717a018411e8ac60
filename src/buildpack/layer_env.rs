//! A layer's environment files as data: from the names and contents of the files in `env/`,
//! `env.build/`, `env.launch/` (and `env.launch/<process>/`) to the changes they make.
//!
//! Rules (Buildpack API 0.10 "Environment Variable Modification Rules"): `NAME.override` (or a
//! bare `NAME`) sets, `NAME.default` sets only when unset, `NAME.prepend`/`NAME.append` join
//! with the text of `NAME.delim`, or nothing when there is no delim file.

use std::collections::BTreeMap;

/// What one file does to its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOp {
    /// Replace the value.
    Override,
    /// Set only if unset.
    Default,
    /// Put before the current value.
    Prepend,
    /// Put after the current value.
    Append,
}

/// One change to the environment, with the delimiter its directory gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvChange {
    /// The variable.
    pub name: String,
    /// What to do.
    pub op: EnvOp,
    /// The file's text.
    pub value: String,
    /// The delimiter for prepend/append (`NAME.delim`), empty if none.
    pub delim: String,
}

/// The changes of one env directory, given its `(file name, contents)`; sorted by file name
/// so the result does not depend on directory order.
pub fn changes(files: &[(String, String)]) -> Vec<EnvChange> {
    let delims: BTreeMap<&str, &str> =
        files.iter().filter_map(|(n, v)| n.strip_suffix(".delim").map(|var| (var, v.as_str()))).collect();
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .into_iter()
        .filter_map(|(file, value)| {
            let (name, op) = split(file)?;
            Some(EnvChange {
                name: name.to_owned(),
                op,
                value: value.clone(),
                delim: delims.get(name).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// A file name's variable and operation; `None` for a `.delim` file or an unusable name.
fn split(file: &str) -> Option<(&str, EnvOp)> {
    let (name, op) = match file.rsplit_once('.') {
        Some((n, "override")) => (n, EnvOp::Override),
        Some((n, "default")) => (n, EnvOp::Default),
        Some((n, "prepend")) => (n, EnvOp::Prepend),
        Some((n, "append")) => (n, EnvOp::Append),
        Some((_, "delim")) => return None,
        _ => (file, EnvOp::Override),
    };
    (!name.is_empty() && !name.contains('=')).then_some((name, op))
}

/// Applies `changes` to `env` in order.
pub fn apply(env: &mut BTreeMap<String, String>, changes: &[EnvChange]) {
    for c in changes {
        let current = env.get(&c.name).filter(|v| !v.is_empty());
        // A set but empty variable keeps its value against `.default`, as bash's `${X-...}`.
        if c.op == EnvOp::Default && env.contains_key(&c.name) {
            continue;
        }
        let value = match (c.op, current) {
            (EnvOp::Override | EnvOp::Default, _) | (EnvOp::Prepend | EnvOp::Append, None) => c.value.clone(),
            (EnvOp::Prepend, Some(cur)) => format!("{}{}{cur}", c.value, c.delim),
            (EnvOp::Append, Some(cur)) => format!("{cur}{}{}", c.delim, c.value),
        };
        env.insert(c.name.clone(), value);
    }
}

/// The env directories of a layer that apply in `phase` (`build` or `launch`) for `process`,
/// in the order they apply.
pub fn dirs_for(phase: &str, process: Option<&str>) -> Vec<String> {
    let mut dirs = vec!["env".to_owned(), format!("env.{phase}")];
    if let Some(p) = process {
        dirs.push(format!("env.{phase}/{p}"));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn each_suffix_does_what_the_spec_says() {
        let mut env: BTreeMap<String, String> =
            [("PATH", "/usr/bin"), ("KEEP", "old"), ("LIST", "a"), ("EMPTY", "")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
        let c = changes(&files(&[
            ("PATH.prepend", "/layer/bin"),
            ("PATH.delim", ":"),
            ("KEEP.default", "new"),
            ("EMPTY.default", "x"),
            ("FRESH.default", "f"),
            ("LIST.append", "b"),
            ("SET", "bare"),
            ("OVER.override", "o"),
            ("NEWLIST.append", "n"),
        ]));
        apply(&mut env, &c);
        assert_eq!(env["PATH"], "/layer/bin:/usr/bin");
        assert_eq!(env["KEEP"], "old");
        assert_eq!(env["EMPTY"], "", "a set, empty variable keeps its value against .default");
        assert_eq!(env["FRESH"], "f");
        assert_eq!(env["LIST"], "ab", "no .delim file: no delimiter");
        assert_eq!(env["SET"], "bare");
        assert_eq!(env["OVER"], "o");
        assert_eq!(env["NEWLIST"], "n");
        assert!(!env.contains_key("PATH.delim"));
    }

    #[test]
    fn per_process_directories_come_last() {
        assert_eq!(dirs_for("launch", Some("web")), ["env", "env.launch", "env.launch/web"]);
        assert_eq!(dirs_for("build", None), ["env", "env.build"]);
    }
}
