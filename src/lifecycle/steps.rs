//! The lifecycle's own steps between phases (restore cached layers, export: save cache layers
//! and drop the rest), as bash scripts that are pure functions of the build's directories and
//! layers, so they are tested as text. A build container runs them as root and hands results
//! to the build user (`owner`); the local runtime runs them as the app's user (no `owner`), so
//! root never touches what the app's user wrote.

// Scripts are assembled line by line with `push_str(&format!(..))`, which reads like the
// script it builds; the extra allocations do not matter here.
#![allow(clippy::format_push_string)]

use super::LifecycleDirs;
use crate::buildpack::launch::shell_quote as q;
use crate::buildpack::layer::LayerTypes;

/// A layer left by a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The escaped buildpack id.
    pub buildpack: String,
    /// The layer name.
    pub name: String,
    /// Its `[types]`.
    pub types: LayerTypes,
    /// A `launch` + `cache` layer whose buildpack promises never to change it in place once
    /// built (`[metadata] "io.slipway.sealed" = true`: it reuses it as is, or removes and
    /// rebuilds it): a runtime with a layer store keeps it there, read-only, and links it
    /// into later builds instead of copying it.
    pub sealed: bool,
}

/// The `[metadata]` key of a `<layer>.toml` that asks for [`BuiltLayer::sealed`].
pub const SEALED_KEY: &str = "io.slipway.sealed";

/// A sealed layer found in place when the build starts: the build container was started from
/// the previous release's image, which holds it (see [`wipe_script`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeptLayer {
    /// The escaped buildpack id.
    pub buildpack: String,
    /// The layer name.
    pub name: String,
}

impl KeptLayer {
    /// Reads `<escaped buildpack id>/<layer>`; `None` for anything else (a name that could
    /// leave the layers directory included).
    pub fn parse(text: &str) -> Option<Self> {
        let (bp, name) = text.split_once('/')?;
        let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
        (plain(bp) && plain(name) && !bp.starts_with('.'))
            .then(|| Self { buildpack: bp.into(), name: name.into() })
    }
}

impl std::fmt::Display for KeptLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.buildpack, self.name)
    }
}

/// What export prints (one line each) for a kept layer that the build reused as it was.
pub const UNCHANGED: &str = "unchanged ";

impl BuiltLayer {
    /// Whether the layer's toml asks to be sealed (and may be: launch and cache).
    pub fn wants_seal(types: LayerTypes, metadata: &toml::Table) -> bool {
        types.launch && types.cache && metadata.get(SEALED_KEY).and_then(toml::Value::as_bool) == Some(true)
    }
}

/// The root script that saves `cache = true` layers and drops layers not for launch.
///
/// With [`LifecycleDirs::kept`] layers, a sealed one that is still the directory restore found
/// (same inode and change time, to the nanosecond: the buildpack neither removed nor replaced
/// it; an inode number alone may be reused by a new directory) is reported on stdout as
/// [`UNCHANGED`]`<bp>/<layer>` and not copied again: its copy in the cache, made when it was
/// built, is spared (copied only if missing).
pub fn export_script(dirs: &LifecycleDirs, built: &[String], layers: &[BuiltLayer]) -> String {
    let mut s = String::from("set -eu\n");
    let kept = dirs.kept.as_deref().unwrap_or_default();
    let marks = kept_marks_dir(dirs);
    let spare = q(&format!("{}/.slipway-spare", dirs.cache));
    let unchanged =
        |l: &BuiltLayer| kept.iter().any(|k| k.buildpack == l.buildpack && k.name == l.name) && l.sealed;
    if !kept.is_empty() {
        s.push_str(&format!("rm -rf {spare}\n"));
    }
    for (i, l) in layers.iter().enumerate().filter(|(_, l)| unchanged(l)) {
        let dir = q(&format!("{}/{}", dirs.build.layers_dir(&l.buildpack), l.name));
        let mark = q(&format!("{marks}/{}/{}", l.buildpack, l.name));
        let c = format!("{}/{}", dirs.cache, l.buildpack);
        s.push_str(&format!(
            "u{i}=0\nif [ -d {dir} ] && [ ! -L {dir} ] && [ -f {mark} ] && [ \"$(stat -c '%i %z' {dir})\" = \"$(cat {mark})\" ]; then \
             u{i}=1; printf '%s\\n' {line}; install -d {spare}/{bp}; \
             for p in {cl} {ct}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then mv \"$p\" {spare}/{bp}/; fi; done; fi\n",
            line = q(&format!("{UNCHANGED}{}/{}", l.buildpack, l.name)),
            bp = q(&l.buildpack),
            cl = q(&format!("{c}/{}", l.name)),
            ct = q(&format!("{c}/{}.toml", l.name)),
        ));
    }
    for bp in built {
        // store.toml is the buildpack's own memory between builds (Buildpack API 0.10):
        // saved with its cache, brought back by restore.
        s.push_str(&format!(
            "rm -rf {c}\ninstall -d{o} {c}\nif [ -f {st} ]; then cp -a {st} {c}/; fi\n",
            c = q(&format!("{}/{bp}", dirs.cache)),
            o = owner_flags(dirs),
            st = q(&format!("{}/store.toml", dirs.build.layers_dir(bp)))
        ));
        if !kept.is_empty() {
            s.push_str(&format!(
                "if [ -d {spare}/{b} ]; then for p in {spare}/{b}/* {spare}/{b}/.[!.]*; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then mv \"$p\" {c}/; fi; done; fi\n",
                b = q(bp),
                c = q(&format!("{}/{bp}", dirs.cache)),
            ));
        }
    }
    if !kept.is_empty() {
        s.push_str(&format!("rm -rf {spare}\n"));
    }
    for (i, l) in layers.iter().enumerate() {
        let dir = format!("{}/{}", dirs.build.layers_dir(&l.buildpack), l.name);
        let fate = l.types.fate();
        // With a store, a sealed layer is kept there by the runtime (not copied here), and a
        // cache-only layer is moved back, not copied; other launch + cache layers are copied,
        // as the release keeps them too.
        let (save, verb) = match &dirs.store {
            Some(_) if l.sealed => (false, ""),
            Some(_) if !fate.export => (fate.cache, "mv"),
            _ => (fate.cache, "cp -a"),
        };
        if save {
            let c = q(&format!("{}/{}", dirs.cache, l.buildpack));
            // An unchanged kept layer is copied only if the cache lost it.
            let guard = if unchanged(l) {
                format!("if [ \"$u{i}\" = 0 ] || [ ! -e {c}/{n} ]; then ", n = q(&l.name))
            } else {
                String::new()
            };
            let end = if guard.is_empty() { "" } else { "fi\n" };
            s.push_str(&format!(
                "{guard}for p in {d} {t}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then {verb} \"$p\" {c}/; fi; done\n{end}",
                d = q(&dir),
                t = q(&format!("{dir}.toml")),
            ));
        }
        if !fate.export {
            s.push_str(&format!("rm -rf {} {}\n", q(&dir), q(&format!("{dir}.toml"))));
        }
    }
    s.push_str(&format!("rm -rf {}\n", q(&dirs.scratch)));
    if dirs.kept.is_some() {
        s.push_str(&format!("rm -rf {}\n", q(&marks)));
    }
    if dirs.owner.is_some() {
        // A build container becomes the image: the app's config in /platform/env stays out.
        s.push_str(&format!("find {}/env -mindepth 1 -delete\n", q(&dirs.build.platform)));
    }
    s
}

fn owner_flags(dirs: &LifecycleDirs) -> String {
    dirs.owner
        .as_ref()
        .map(|o| {
            let (u, g) = o.split_once(':').unwrap_or((o, o));
            format!(" -o {u} -g {g}")
        })
        .unwrap_or_default()
}

/// The script that makes each buildpack's layers and scratch directories (and, with an
/// `owner`, hands the source to the build user and opens the buildpacks to it).
pub fn prepare_script(dirs: &LifecycleDirs, buildpacks: &[String]) -> String {
    let mut s = String::from("set -eu\n");
    let o = owner_flags(dirs);
    if let Some(owner) = &dirs.owner {
        s.push_str(&format!("chown -R {owner} {}\n", q(&dirs.build.app)));
        s.push_str(&format!("chmod -R a+rX {}\n", q(&dirs.build.buildpacks)));
        // The platform directory is root's and read-only to the build user: a buildpack may
        // not change what the platform tells the next one.
        s.push_str(&format!(
            "install -d -o 0 -g 0 -m 0755 {p} {p}/env\nchown -R 0:0 {p}/env\nfind {p}/env -type f -exec chmod 0444 {{}} +\n",
            p = q(&dirs.build.platform)
        ));
    }
    s.push_str(&format!("install -d{o} {}\n", q(&dirs.scratch)));
    for bp in buildpacks {
        s.push_str(&format!(
            "install -d{o} {} {}\n",
            q(&dirs.build.layers_dir(bp)),
            q(&format!("{}/{bp}", dirs.scratch))
        ));
    }
    s
}

/// Where restore notes the inode of each kept layer for export: root's, and not in the image.
fn kept_marks_dir(dirs: &LifecycleDirs) -> String {
    format!("{}.kept", dirs.scratch)
}

/// The root script that readies a build container started from the previous release's image:
/// everything that build left goes (source, buildpacks, platform files, launcher, scratch
/// and temporary files, every layer) except the `kept` sealed layers and their
/// `<layer>.toml`, which the buildpack then finds as if restore had brought them back. It
/// runs before the source and buildpacks are put in place; `temp_dirs` (`/tmp`, `/var/tmp`)
/// are emptied too. `rm -rf` and `find -delete` never follow a link the previous build may
/// have left.
pub fn wipe_script(dirs: &LifecycleDirs, launcher: &str, temp_dirs: &[&str]) -> String {
    let kept = dirs.kept.as_deref().unwrap_or_default();
    let mut s = String::from("set -eu\nshopt -s dotglob nullglob\n");
    let emptied = [dirs.build.app.as_str(), &dirs.build.buildpacks, &dirs.build.platform];
    for dir in emptied.iter().chain(temp_dirs) {
        s.push_str(&format!(
            "if [ -d {d} ] && [ ! -L {d} ]; then find {d} -mindepth 1 -delete; fi\n",
            d = q(dir)
        ));
    }
    s.push_str(&format!("rm -rf {} {}\n", q(launcher), q(&kept_marks_dir(dirs))));
    let layers = q(&dirs.build.layers);
    let mut cases = String::new();
    let mut bps: Vec<&str> = kept.iter().map(|k| k.buildpack.as_str()).collect();
    bps.dedup();
    for bp in bps {
        let names: Vec<String> = kept
            .iter()
            .filter(|k| k.buildpack == bp)
            .flat_map(|k| [q(&k.name), q(&format!("{}.toml", k.name))])
            .collect();
        cases.push_str(&format!(
            "{b}) if [ -L \"$d\" ]; then rm -f \"$d\"; continue; fi; for p in \"$d\"/*; do case \"${{p##*/}}\" in {n}) ;; *) rm -rf \"$p\" ;; esac; done ;; ",
            b = q(bp),
            n = names.join("|")
        ));
    }
    s.push_str(&format!(
        "for d in {layers}/*; do case \"${{d##*/}}\" in {cases}*) rm -rf \"$d\" ;; esac; done\n"
    ));
    s
}

/// The root script that brings back the cached layers of the buildpacks in the group.
pub fn restore_script(dirs: &LifecycleDirs, group: &[String]) -> String {
    let mut s = String::from("set -eu\n");
    for bp in group {
        let (c, l) = (q(&format!("{}/{bp}", dirs.cache)), q(&dirs.build.layers_dir(bp)));
        let Some(store) = &dirs.store else {
            let kept: Vec<&KeptLayer> = dirs.kept.iter().flatten().filter(|k| &k.buildpack == bp).collect();
            if kept.is_empty() {
                s.push_str(&format!("if [ -d {c} ]; then cp -a {c}/. {l}/; fi\n"));
            } else {
                // The kept layers stay as the image has them (export compares their inode and
                // ctime with those noted here); only the rest of the cache is copied in.
                let marks = q(&format!("{}/{bp}", kept_marks_dir(dirs)));
                s.push_str(&format!("install -d -m 0700 {marks}\n"));
                let mut names = Vec::new();
                for k in &kept {
                    let dir = q(&format!("{}/{}", dirs.build.layers_dir(bp), k.name));
                    s.push_str(&format!(
                        "if [ -d {dir} ] && [ ! -L {dir} ]; then stat -c '%i %z' {dir} >{marks}/{n}; fi\n",
                        n = q(&k.name)
                    ));
                    names.push(q(&k.name));
                    names.push(q(&format!("{}.toml", k.name)));
                }
                s.push_str(&format!(
                    "if [ -d {c} ]; then for p in {c}/* {c}/.[!.]*; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then \
                     case \"${{p##*/}}\" in {names}) ;; *) cp -a \"$p\" {l}/ ;; esac; fi; done; fi\n",
                    names = names.join("|")
                ));
            }
            if let Some(owner) = &dirs.owner {
                s.push_str(&format!("chown {owner} {l}\n"));
            }
            continue;
        };
        // Sealed layers are linked: `<layer>` -> `<store>/<bp>/<layer>/vN/<layer>`, beside a
        // copy of its `<layer>.toml`, which the buildpack may rewrite; the content is read-only
        // to it. Then the app's own cached layers are moved in (export moves or copies them
        // back), except a name the store already gave: the app's cache, which its running
        // processes can write, never stands in for a sealed layer.
        s.push_str(&format!(
            "for d in {st}/*/; do d=${{d%/}}; n=${{d##*/}}; v=$(readlink \"$d/current\" 2>/dev/null) || continue; \
             case \"$v\" in v[0-9]*) ;; *) continue ;; esac; \
             if [ -d \"$d/$v/$n\" ] && [ -f \"$d/$v/$n.toml\" ] && [ ! -e {l}/\"$n\" ] && [ ! -L {l}/\"$n\" ]; then \
             cp \"$d/$v/$n.toml\" {l}/; ln -s \"$d/$v/$n\" {l}/; fi; done\n",
            st = q(&format!("{store}/{bp}"))
        ));
        s.push_str(&format!(
            "if [ -d {c} ]; then for p in {c}/* {c}/.[!.]*; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then \
             if [ -e {l}/\"${{p##*/}}\" ] || [ -L {l}/\"${{p##*/}}\" ]; then rm -rf \"$p\"; else mv \"$p\" {l}/; fi; fi; done; fi\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, launch: bool, build: bool, cache: bool) -> BuiltLayer {
        BuiltLayer {
            buildpack: "acme_tools".into(),
            name: name.into(),
            types: LayerTypes { launch, build, cache },
            sealed: false,
        }
    }

    fn store_dirs() -> LifecycleDirs {
        let mut dirs = LifecycleDirs::container();
        dirs.owner = None;
        dirs.store = Some("/h/apps/a/layers".into());
        dirs
    }

    #[test]
    fn with_a_store_sealed_layers_are_left_to_the_runtime_and_cache_layers_moved() {
        let mut venv = layer("venv", true, false, true);
        venv.sealed = true;
        let s = export_script(
            &store_dirs(),
            &["acme_tools".into()],
            &[venv, layer("pip", false, false, true), layer("tools", true, false, true)],
        );
        assert!(!s.contains("'/layers/acme_tools/venv'"), "a sealed layer is not copied: {s}");
        assert!(s.contains("for p in '/layers/acme_tools/pip' '/layers/acme_tools/pip.toml'; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then mv "));
        assert!(s.contains("for p in '/layers/acme_tools/tools' '/layers/acme_tools/tools.toml'; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then cp -a "));
        let r = restore_script(&store_dirs(), &["acme_tools".into()]);
        assert!(r.contains("rm -rf \"$p\"; else mv \"$p\" '/layers/acme_tools'/;"), "{r}");
        let (link, take) = (r.find("ln -s").unwrap(), r.find("mv \"$p\"").unwrap());
        assert!(link < take, "sealed layers are linked before the app's cache is taken: {r}");
        assert!(r.contains("for d in '/h/apps/a/layers/acme_tools'/*/; do"), "{r}");
        assert!(!r.contains("cp -a"), "nothing is copied whole: {r}");
        for script in [s, r] {
            let status = std::process::Command::new("bash").args(["-n", "-c", &script]).status().unwrap();
            assert!(status.success(), "{script}");
        }
    }

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("bash").args(["-c", script]).output().unwrap();
        assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"))
    }

    fn sealed_venv() -> BuiltLayer {
        BuiltLayer {
            buildpack: "py".into(),
            name: "venv".into(),
            types: LayerTypes { launch: true, build: false, cache: true },
            sealed: true,
        }
    }

    /// A warm build's directories in a temp dir, started from an "image" that holds a sealed
    /// `venv` (kept), another launch layer, another buildpack's layer and the last build's
    /// source, buildpacks, platform env and launcher; the cache has an older venv and pip's.
    fn warm_tree() -> (tempfile::TempDir, LifecycleDirs) {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s).to_str().unwrap().to_owned();
        let dirs = LifecycleDirs {
            build: crate::buildpack::env::BuildDirs {
                app: p("workspace"),
                layers: p("layers"),
                platform: p("platform"),
                buildpacks: p("cnb/buildpacks"),
            },
            cache: p("cache"),
            scratch: p("scratch"),
            owner: None,
            store: None,
            kept: Some(vec![KeptLayer { buildpack: "py".into(), name: "venv".into() }]),
        };
        for (f, text) in [
            ("layers/py/venv/bin/python", "image"),
            ("layers/py/venv.toml", "key = 1"),
            ("layers/py/tools/x", "old launch layer"),
            ("layers/py/tools.toml", ""),
            ("layers/procfile/run/x", ""),
            ("workspace/old.txt", ""),
            ("workspace/.hidden", ""),
            ("cnb/buildpacks/py/bin/build", ""),
            ("cnb/launcher", ""),
            ("platform/env/SECRET", "x"),
            ("tmp/left", ""),
            ("cache/py/venv/bin/python", "cache"),
            ("cache/py/venv.toml", "key = 1"),
            ("cache/py/pip-cache/wheel", "whl"),
            ("cache/py/pip-cache.toml", ""),
        ] {
            write(&t.path().join(f), text);
        }
        std::os::unix::fs::symlink("/etc", t.path().join("layers/py/link")).unwrap();
        (t, dirs)
    }

    #[test]
    fn a_warm_build_keeps_only_the_sealed_layers_and_restores_the_rest_of_the_cache() {
        let (t, dirs) = warm_tree();
        let tmp = t.path().join("tmp");
        sh(&wipe_script(&dirs, &format!("{}/cnb/launcher", t.path().display()), &[tmp.to_str().unwrap()]));
        let names = |d: &str| {
            let mut v: Vec<String> = std::fs::read_dir(t.path().join(d))
                .map(|r| r.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        assert_eq!(names("layers"), ["py"], "another buildpack's layers go");
        assert_eq!(names("layers/py"), ["venv", "venv.toml"], "the link and the other layer go too");
        for empty in ["workspace", "cnb/buildpacks", "platform", "tmp"] {
            assert!(names(empty).is_empty(), "{empty}: {:?}", names(empty));
        }
        assert_eq!(names("cnb"), ["buildpacks"], "the launcher goes");
        assert!(std::path::Path::new("/etc/passwd").is_file(), "a link is removed, never followed");

        sh(&restore_script(&dirs, &["py".into()]));
        assert_eq!(
            read(&t.path().join("layers/py/venv/bin/python")),
            "image",
            "the kept venv is not copied over"
        );
        assert_eq!(
            read(&t.path().join("layers/py/pip-cache/wheel")),
            "whl",
            "the rest of the cache comes back"
        );
        let pip = BuiltLayer {
            buildpack: "py".into(),
            name: "pip-cache".into(),
            types: LayerTypes { launch: false, build: false, cache: true },
            sealed: false,
        };
        let out = sh(&export_script(&dirs, &["py".into()], &[sealed_venv(), pip]));
        assert_eq!(out, "unchanged py/venv\n");
        assert_eq!(
            read(&t.path().join("cache/py/venv/bin/python")),
            "cache",
            "its cached copy is spared, not copied again"
        );
        assert_eq!(read(&t.path().join("cache/py/pip-cache/wheel")), "whl");
        assert!(!t.path().join("layers/py/pip-cache").exists(), "a cache-only layer stays out of the image");
        assert!(!t.path().join("scratch.kept").exists(), "the marks stay out of the image");
        assert!(!t.path().join("cache/.slipway-spare").exists());
    }

    #[test]
    fn a_kept_layer_the_buildpack_rebuilt_is_cached_again_and_not_reported_unchanged() {
        let (t, dirs) = warm_tree();
        let tmp = t.path().join("tmp");
        sh(&wipe_script(&dirs, "/nonexistent/launcher", &[tmp.to_str().unwrap()]));
        sh(&restore_script(&dirs, &["py".into()]));
        // The buildpack removes and rebuilds it (a sealed layer is never changed in place).
        std::fs::remove_dir_all(t.path().join("layers/py/venv")).unwrap();
        write(&t.path().join("layers/py/venv/bin/python"), "rebuilt");
        assert_eq!(sh(&export_script(&dirs, &["py".into()], &[sealed_venv()])), "", "nothing unchanged");
        assert_eq!(read(&t.path().join("cache/py/venv/bin/python")), "rebuilt");

        // Without its mark (restore never saw it), a kept layer is not taken for unchanged.
        let (t, dirs) = warm_tree();
        assert_eq!(sh(&export_script(&dirs, &["py".into()], &[sealed_venv()])), "");
        assert_eq!(read(&t.path().join("cache/py/venv/bin/python")), "image");
    }

    #[test]
    fn only_a_launch_cache_layer_that_asks_is_sealed() {
        let meta: toml::Table = toml::from_str("\"io.slipway.sealed\" = true").unwrap();
        let lc = LayerTypes { launch: true, build: false, cache: true };
        assert!(BuiltLayer::wants_seal(lc, &meta));
        assert!(!BuiltLayer::wants_seal(lc, &toml::Table::new()));
        assert!(!BuiltLayer::wants_seal(LayerTypes { launch: false, ..lc }, &meta));
        assert!(!BuiltLayer::wants_seal(LayerTypes { cache: false, ..lc }, &meta));
    }

    #[test]
    fn export_caches_cache_layers_and_drops_non_launch_layers() {
        let s = export_script(
            &LifecycleDirs::container(),
            &["acme_tools".into()],
            &[
                layer("run", true, false, false),
                layer("deps", true, false, true),
                layer("tmp", false, true, true),
            ],
        );
        assert!(s.contains("rm -rf '/cache/acme_tools'\ninstall -d -o 1000 -g 1000 '/cache/acme_tools'\n"));
        assert!(s.contains("for p in '/layers/acme_tools/deps' '/layers/acme_tools/deps.toml'; do"));
        assert!(s.contains("rm -rf '/layers/acme_tools/tmp' '/layers/acme_tools/tmp.toml'\n"));
        assert!(!s.contains("rm -rf '/layers/acme_tools/run'"));
        assert!(!s.contains("for p in '/layers/acme_tools/run'"));
    }

    #[test]
    fn restore_copies_each_group_member_back() {
        let s = restore_script(&LifecycleDirs::container(), &["slipway_procfile".into()]);
        assert!(s.contains("cp -a '/cache/slipway_procfile'/. '/layers/slipway_procfile'/"));
        assert!(s.contains("chown 1000:1000 '/layers/slipway_procfile'"));
    }

    #[test]
    fn without_an_owner_nothing_is_chowned() {
        let mut dirs = LifecycleDirs::container();
        dirs.owner = None;
        let all = [
            restore_script(&dirs, &["a".into()]),
            prepare_script(&dirs, &["a".into()]),
            export_script(&dirs, &["a".into()], &[layer("run", true, false, true)]),
        ];
        for s in all {
            assert!(!s.contains("chown") && !s.contains(" -o "), "{s}");
            let status = std::process::Command::new("bash").args(["-n", "-c", &s]).status().unwrap();
            assert!(status.success());
        }
    }
}
