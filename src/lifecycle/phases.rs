//! The command of each phase as data: argv, environment and working directory of
//! `bin/detect` and `bin/build`, and the buildpack plan each build receives. Pure; the
//! buildpack contract they follow is [`crate::buildpack`].

use std::collections::BTreeMap;

use super::{Buildpack, LifecycleDirs, PhaseCommand};
use crate::buildpack::env::{BuildTarget, LAYER_ENV_SH, PhaseBuildpack};
use crate::buildpack::order::{self, Group, GroupMember, OrderError};

/// The order groups detection tries, first to last, composites replaced by their groups
/// ([`order::flatten`]). The top-level group is every buildpack that no composite names, in
/// order: those the user or the operator named are required, as `pack build --buildpack`
/// makes them, and the built-in ones optional (they apply when they detect).
pub fn groups(buildpacks: &[Buildpack]) -> Result<Vec<Group>, OrderError> {
    let named_by_composite = |id: &str| {
        buildpacks.iter().any(|b| b.descriptor.order.iter().any(|o| o.group.iter().any(|e| e.id == id)))
    };
    let top: Group = buildpacks
        .iter()
        .filter(|b| !named_by_composite(&b.descriptor.buildpack.id))
        .map(|b| GroupMember {
            id: b.descriptor.buildpack.id.clone(),
            version: Some(b.descriptor.buildpack.version.clone()),
            optional: crate::buildpacks::builtins().iter().any(|e| e.id == b.descriptor.buildpack.id),
        })
        .collect();
    let composite = |id: &str| {
        let b = buildpacks.iter().find(|b| b.descriptor.buildpack.id == id)?;
        b.descriptor.is_composite().then(|| {
            b.descriptor.order.iter().map(|o| o.group.iter().map(GroupMember::from).collect()).collect()
        })
    };
    order::flatten(&[top], &composite)
}

/// `bin/detect PLATFORM_DIR PLAN_PATH` of `bp`, with the `CNB_*` variables of its API.
pub fn detect_command(
    dirs: &LifecycleDirs,
    bp: &Buildpack,
    plan_path: &str,
    target: &BuildTarget,
    user_env: &BTreeMap<String, String>,
) -> PhaseCommand {
    let id = bp.descriptor.escaped_id();
    let phase_bp = PhaseBuildpack { escaped_id: &id, api: bp.descriptor.api };
    let cmd = dirs.build.detect_command(&phase_bp, plan_path, target);
    PhaseCommand { argv: cmd.argv, env: with_user_env(bp, user_env, cmd.env), cwd: dirs.build.app.clone() }
}

/// The user's variables first (unless the buildpack sets `clear-env`), then the phase's own,
/// which a user's variable of the same name cannot replace.
fn with_user_env(bp: &Buildpack, user_env: &BTreeMap<String, String>, own: Vec<String>) -> Vec<String> {
    if bp.descriptor.buildpack.clear_env {
        return own;
    }
    user_env.iter().map(|(k, v)| format!("{k}={v}")).chain(own).collect()
}

/// Where detect of `bp` writes its build plan.
pub fn plan_path(dirs: &LifecycleDirs, bp: &Buildpack) -> String {
    format!("{}/{}/plan.toml", dirs.scratch, bp.descriptor.escaped_id())
}

/// Where build of `bp` reads its buildpack plan.
pub fn bp_plan_path(dirs: &LifecycleDirs, bp: &Buildpack) -> String {
    format!("{}/{}/bp-plan.toml", dirs.scratch, bp.descriptor.escaped_id())
}

/// `bin/build LAYERS_DIR PLATFORM_DIR PLAN_PATH` of `bp`, its buildpack plan (`plan`, TOML)
/// written to `PLAN_PATH` first, with the `build_layers` (absolute directories of earlier
/// buildpacks' `build = true` layers) set up in its environment.
pub fn build_command(
    dirs: &LifecycleDirs,
    bp: &Buildpack,
    plan: &str,
    build_layers: &[String],
    target: &BuildTarget,
    user_env: &BTreeMap<String, String>,
) -> PhaseCommand {
    let id = bp.descriptor.escaped_id();
    let phase_bp = PhaseBuildpack { escaped_id: &id, api: bp.descriptor.api };
    let cmd = dirs.build.build_command(&phase_bp, &bp_plan_path(dirs, bp), target);
    let mut argv = vec![
        "bash".to_owned(),
        "-c".to_owned(),
        format!(
            "{LAYER_ENV_SH}printf '%s' \"$1\" > \"$2\" || exit 1; shift 2; n=$1; shift; for l in \"${{@:1:n}}\"; do slipway_layer_env \"$l\" build; done; shift \"$n\"; exec \"$@\""
        ),
        "slipway-lifecycle".to_owned(),
        plan.to_owned(),
        bp_plan_path(dirs, bp),
        build_layers.len().to_string(),
    ];
    argv.extend(build_layers.iter().cloned());
    argv.extend(cmd.argv);
    PhaseCommand { argv, env: with_user_env(bp, user_env, cmd.env), cwd: dirs.build.app.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procfile_bp() -> Buildpack {
        Buildpack::load::<std::io::Error>(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn detect_and_build_run_from_the_installed_buildpack_in_the_app_dir() {
        let dirs = LifecycleDirs::container();
        let bp = procfile_bp();
        let t = BuildTarget::host_debian12();
        let none = BTreeMap::new();
        let d = detect_command(&dirs, &bp, &plan_path(&dirs, &bp), &t, &none);
        assert_eq!(
            d.argv,
            [
                "/cnb/buildpacks/slipway_procfile/bin/detect",
                "/platform",
                "/tmp/cnb/slipway_procfile/plan.toml"
            ]
        );
        assert_eq!(d.cwd, "/workspace");
        assert!(d.env.contains(&"CNB_BUILD_PLAN_PATH=/tmp/cnb/slipway_procfile/plan.toml".to_owned()));
        let b = build_command(&dirs, &bp, "[[entries]]\n", &["/layers/x/tools".into()], &t, &none);
        assert_eq!(b.argv[4..7], ["[[entries]]\n", "/tmp/cnb/slipway_procfile/bp-plan.toml", "1"]);
        assert_eq!(b.argv[7], "/layers/x/tools");
        assert_eq!(
            b.argv[8..],
            [
                "/cnb/buildpacks/slipway_procfile/bin/build",
                "/layers/slipway_procfile",
                "/platform",
                "/tmp/cnb/slipway_procfile/bp-plan.toml"
            ]
        );
        // The wrapper writes the plan, sets up the layer, then runs build with exactly its
        // positional arguments.
        let tmp = tempfile::tempdir().unwrap();
        let plan = tmp.path().join("plan.toml");
        let out = std::process::Command::new("bash")
            .args(&b.argv[1..4])
            .args(["x = 1\n", plan.to_str().unwrap(), "1", tmp.path().to_str().unwrap()])
            .args(["printf", "%s|", "a b", "c"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|c|");
        assert_eq!(std::fs::read_to_string(&plan).unwrap(), "x = 1\n");
        assert!(b.env.contains(&"CNB_BP_PLAN_PATH=/tmp/cnb/slipway_procfile/bp-plan.toml".to_owned()));
        assert!(b.env.contains(&"CNB_LAYERS_DIR=/layers/slipway_procfile".to_owned()));
    }

    fn bp(text: &str) -> Buildpack {
        let descriptor = crate::buildpack::descriptor::BuildpackDescriptor::parse(text).unwrap();
        Buildpack { dir: "/nowhere".into(), descriptor }
    }

    #[test]
    fn named_buildpacks_are_required_builtins_optional_and_composites_expand() {
        let meta = bp("api = \"0.11\"\n[buildpack]\nid = \"x/meta\"\nversion = \"1\"\n\
                       [[order]]\n[[order.group]]\nid = \"x/a\"\n[[order.group]]\nid = \"x/b\"\noptional = true\n\
                       [[order]]\n[[order.group]]\nid = \"x/b\"\n");
        let a = bp("api = \"0.7\"\n[buildpack]\nid = \"x/a\"\nversion = \"1\"\n");
        let b = bp("api = \"0.12\"\n[buildpack]\nid = \"x/b\"\nversion = \"1\"\n");
        let g = groups(&[meta, a, b, procfile_bp()]).unwrap();
        let shown: Vec<Vec<(&str, bool)>> =
            g.iter().map(|g| g.iter().map(|m| (m.id.as_str(), m.optional)).collect()).collect();
        assert_eq!(
            shown,
            [
                vec![("x/a", false), ("x/b", true), ("slipway/procfile", true)],
                vec![("x/b", false), ("slipway/procfile", true)]
            ]
        );
    }

    #[test]
    fn user_variables_come_first_unless_the_buildpack_clears_its_env() {
        let dirs = LifecycleDirs::container();
        let t = BuildTarget::host_debian12();
        let user: BTreeMap<String, String> =
            [("BP_MODE".to_owned(), "fast".to_owned()), ("CNB_BUILDPACK_DIR".to_owned(), "/evil".to_owned())]
                .into();
        let open = bp("api = \"0.10\"\n[buildpack]\nid = \"x/open\"\nversion = \"1\"\n");
        let d = detect_command(&dirs, &open, "/p", &t, &user);
        assert_eq!(d.env[0], "BP_MODE=fast");
        // The phase's own variable comes later, so it wins where the environment is built.
        let last = d.env.iter().rposition(|e| e.starts_with("CNB_BUILDPACK_DIR=")).unwrap();
        assert_eq!(d.env[last], "CNB_BUILDPACK_DIR=/cnb/buildpacks/x_open");
        let closed =
            bp("api = \"0.10\"\n[buildpack]\nid = \"x/closed\"\nversion = \"1\"\nclear-env = true\n");
        let b = build_command(&dirs, &closed, "", &[], &t, &user);
        assert!(b.env.iter().all(|e| !e.starts_with("BP_MODE=")), "{:?}", b.env);
    }
}
