//! The root scripts the buildpack lifecycle runs in its build container between phases, as
//! pure functions of the build's directories and layers, so they are tested as text.

// Scripts are assembled line by line with `push_str(&format!(..))`, which reads like the
// script it builds; the extra allocations do not matter here.
#![allow(clippy::format_push_string)]

use super::CONTAINER_USER;
use super::lifecycle::{CACHE_DIR, SCRATCH};
use crate::buildpack::env::BuildDirs;
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
}

/// The root script that saves `cache = true` layers and drops layers not for launch.
pub fn export_script(dirs: &BuildDirs, built: &[String], layers: &[BuiltLayer]) -> String {
    let mut s = String::from("set -eu\n");
    for bp in built {
        s.push_str(&format!(
            "rm -rf {c}\ninstall -d -o 1000 -g 1000 {c}\n",
            c = q(&format!("{CACHE_DIR}/{bp}"))
        ));
    }
    for l in layers {
        let dir = format!("{}/{}", dirs.layers_dir(&l.buildpack), l.name);
        let fate = l.types.fate();
        if fate.cache {
            s.push_str(&format!(
                "for p in {d} {t}; do if [ -e \"$p\" ]; then cp -a \"$p\" {c}/; fi; done\n",
                d = q(&dir),
                t = q(&format!("{dir}.toml")),
                c = q(&format!("{CACHE_DIR}/{}", l.buildpack))
            ));
        }
        if !fate.export {
            s.push_str(&format!("rm -rf {} {}\n", q(&dir), q(&format!("{dir}.toml"))));
        }
    }
    s.push_str(&format!("rm -rf {SCRATCH}\n"));
    s
}

/// The root script that hands the source and layer directories to the build user.
pub fn prepare_script(dirs: &BuildDirs, buildpacks: &[String]) -> String {
    let mut s = format!("set -eu\nchown -R {CONTAINER_USER} {}\n", q(&dirs.app));
    s.push_str(&format!("chmod -R a+rX {}\n", q(&dirs.buildpacks)));
    for bp in buildpacks {
        s.push_str(&format!(
            "install -d -o 1000 -g 1000 {} {}\n",
            q(&dirs.layers_dir(bp)),
            q(&format!("{SCRATCH}/{bp}"))
        ));
    }
    s.push_str(&format!("install -d -o 1000 -g 1000 {} {}/env\n", q(SCRATCH), q(&dirs.platform)));
    s
}

/// The root script that brings back the cached layers of the buildpacks in the group.
pub fn restore_script(dirs: &BuildDirs, group: &[String]) -> String {
    let mut s = String::from("set -eu\n");
    for bp in group {
        s.push_str(&format!(
            "if [ -d {c} ]; then cp -a {c}/. {l}/; fi\nchown 1000:1000 {l}\n",
            c = q(&format!("{CACHE_DIR}/{bp}")),
            l = q(&dirs.layers_dir(bp))
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
        }
    }

    #[test]
    fn export_caches_cache_layers_and_drops_non_launch_layers() {
        let s = export_script(
            &BuildDirs::default(),
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
        let s = restore_script(&BuildDirs::default(), &["slipway_procfile".into()]);
        assert!(s.contains("cp -a '/cache/slipway_procfile'/. '/layers/slipway_procfile'/"));
    }
}
