//! The command of each phase as data: argv, environment and working directory of
//! `bin/detect` and `bin/build`, and the buildpack plan each build receives. Pure; the
//! buildpack contract they follow is [`crate::buildpack`].

use super::{Buildpack, LifecycleDirs, PhaseCommand};
use crate::buildpack::detect::{BuildPlan, BuildpackPlan};
use crate::buildpack::env::{BuildTarget, LAYER_ENV_SH};

/// The order groups detection tries, first to last; the first group that passes is used.
/// slipway has one group today: every buildpack, each optional, in order.
pub fn groups(buildpacks: &[Buildpack]) -> Vec<Vec<&Buildpack>> {
    vec![buildpacks.iter().collect()]
}

/// `bin/detect` of `bp`, writing its build plan to `plan_path`.
pub fn detect_command(
    dirs: &LifecycleDirs,
    bp: &Buildpack,
    plan_path: &str,
    target: &BuildTarget,
) -> PhaseCommand {
    let id = bp.descriptor.escaped_id();
    PhaseCommand {
        argv: vec![format!("{}/bin/detect", dirs.build.buildpack_dir(&id))],
        env: dirs.build.detect_env(&id, plan_path, target),
        cwd: dirs.build.app.clone(),
    }
}

/// Where detect of `bp` writes its build plan.
pub fn plan_path(dirs: &LifecycleDirs, bp: &Buildpack) -> String {
    format!("{}/{}/plan.toml", dirs.scratch, bp.descriptor.escaped_id())
}

/// Where build of `bp` reads its buildpack plan.
pub fn bp_plan_path(dirs: &LifecycleDirs, bp: &Buildpack) -> String {
    format!("{}/{}/bp-plan.toml", dirs.scratch, bp.descriptor.escaped_id())
}

/// The buildpack plans of a group that passed detection, one per buildpack, in order.
pub fn resolve_plans(group: &[(&Buildpack, BuildPlan)]) -> Vec<BuildpackPlan> {
    group.iter().map(|(_, plan)| plan.buildpack_plan()).collect()
}

/// `bin/build` of `bp`, with the `build_layers` (absolute directories of earlier buildpacks'
/// `build = true` layers) set up in its environment first.
pub fn build_command(
    dirs: &LifecycleDirs,
    bp: &Buildpack,
    build_layers: &[String],
    target: &BuildTarget,
) -> PhaseCommand {
    let id = bp.descriptor.escaped_id();
    let mut argv = vec![
        "bash".to_owned(),
        "-c".to_owned(),
        format!(
            "{LAYER_ENV_SH}build=$1; shift; for l in \"$@\"; do slipway_layer_env \"$l\" build; done; exec \"$build\""
        ),
        "slipway-lifecycle".to_owned(),
        format!("{}/bin/build", dirs.build.buildpack_dir(&id)),
    ];
    argv.extend(build_layers.iter().cloned());
    PhaseCommand {
        argv,
        env: dirs.build.build_env(&id, &bp_plan_path(dirs, bp), target),
        cwd: dirs.build.app.clone(),
    }
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
        let d = detect_command(&dirs, &bp, &plan_path(&dirs, &bp), &t);
        assert_eq!(d.argv, ["/cnb/buildpacks/slipway_procfile/bin/detect"]);
        assert_eq!(d.cwd, "/workspace");
        assert!(d.env.contains(&"CNB_BUILD_PLAN_PATH=/tmp/cnb/slipway_procfile/plan.toml".to_owned()));
        let b = build_command(&dirs, &bp, &["/layers/x/tools".into()], &t);
        assert_eq!(b.argv[4], "/cnb/buildpacks/slipway_procfile/bin/build");
        assert_eq!(b.argv[5], "/layers/x/tools");
        assert!(b.env.contains(&"CNB_BP_PLAN_PATH=/tmp/cnb/slipway_procfile/bp-plan.toml".to_owned()));
        assert!(b.env.contains(&"CNB_LAYERS_DIR=/layers/slipway_procfile".to_owned()));
    }

    #[test]
    fn one_group_of_every_buildpack_in_order() {
        let bps = [procfile_bp(), procfile_bp()];
        let g = groups(&bps);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].len(), 2);
    }
}
