//! The lifecycle's sequence, written once for every runtime: detect, restore, build, export.

use std::time::Instant;

use super::phases::{self, bp_plan_path, build_command, detect_command, plan_path};
use super::steps::{BuiltLayer, export_script, restore_script};
use super::{BuildFor, Buildpack, Executor, LifecycleError, LineSink, PhaseResult};
use crate::buildpack::detect::{BuildPlan, DetectOutcome};
use crate::buildpack::env::BuildTarget;
use crate::buildpack::launch::LaunchToml;
use crate::buildpack::layer::LayerToml;

/// What a build left: its layers and processes, for the runtime to launch from.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The buildpacks that ran, escaped ids in order.
    pub group: Vec<String>,
    /// Every layer the buildpacks made (those without `launch = true` are gone by now).
    pub layers: Vec<BuiltLayer>,
    /// The merged launch.toml processes.
    pub launch: LaunchToml,
    /// The absolute directories of the launch layers, in buildpack order.
    pub launch_layers: Vec<String>,
}

struct Ctx<'a, E: Executor> {
    exec: &'a E,
    build: &'a BuildFor,
    target: &'a BuildTarget,
}

type Result<T, E> = std::result::Result<T, LifecycleError<<E as Executor>::Error>>;

/// Runs the buildpacks through every phase; see the module docs of [`super`].
pub async fn run<E: Executor>(
    exec: &E,
    build: &BuildFor,
    buildpacks: &[Buildpack],
    target: &BuildTarget,
    output: LineSink<'_>,
) -> Result<Built, E> {
    let cx = Ctx { exec, build, target };
    let dirs = exec.dirs();
    let t = Instant::now();
    exec.prepare(buildpacks).await.map_err(|e| cx.exec_err("prepare the build", e))?;
    output(&format!(
        "[lifecycle] prepare: source and {} buildpack(s) ready ({:.1}s)",
        buildpacks.len(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let group = cx.detect(buildpacks, output).await?;
    let ids: Vec<&str> = group.iter().map(|(bp, _)| bp.descriptor.buildpack.id.as_str()).collect();
    output(&format!("[lifecycle] detect: {} ({:.1}s)", ids.join(", "), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let escaped: Vec<String> = group.iter().map(|(bp, _)| bp.descriptor.escaped_id()).collect();
    cx.step("restore", &restore_script(dirs, &escaped)).await?;
    output(&format!("[lifecycle] restore: cached layers back ({:.1}s)", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let plans = phases::resolve_plans(&group);
    let mut layers: Vec<BuiltLayer> = Vec::new();
    let mut launches = Vec::new();
    for ((bp, _), plan) in group.iter().zip(plans) {
        let id = bp.descriptor.escaped_id();
        let build_layers: Vec<String> =
            layers.iter().filter(|l| l.types.build).map(|l| layer_dir(exec, l)).collect();
        cx.write_file(&bp_plan_path(dirs, bp), &plan.to_toml()).await?;
        let cmd = build_command(dirs, bp, &build_layers, target);
        let r = exec.run_phase(&cmd, &mut *output).await.map_err(|e| cx.exec_err("run build", e))?;
        if r.code != 0 {
            return Err(cx.phase("build", &bp.descriptor.buildpack.id, r));
        }
        layers.extend(cx.read_layers(&bp.descriptor.buildpack.id, &id).await?);
        let launch_path = format!("{}/launch.toml", dirs.build.layers_dir(&id));
        if let Some(text) = cx.read_file(&launch_path).await? {
            launches.push(LaunchToml::parse(&bp.descriptor.buildpack.id, &text)?);
        }
    }
    output(&format!("[lifecycle] build: {} layer(s) ({:.1}s)", layers.len(), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    cx.step("export", &export_script(dirs, &escaped, &layers)).await?;
    let launch = LaunchToml::merge(launches);
    let launch_layers = layers.iter().filter(|l| l.types.launch).map(|l| layer_dir(exec, l)).collect();
    let types: Vec<&str> = launch.processes.iter().map(|p| p.kind.as_str()).collect();
    output(&format!(
        "[lifecycle] export: processes {} ({:.1}s)",
        types.join(", "),
        t.elapsed().as_secs_f64()
    ));
    Ok(Built { group: escaped, layers, launch, launch_layers })
}

fn layer_dir<E: Executor>(exec: &E, l: &BuiltLayer) -> String {
    format!("{}/{}", exec.dirs().build.layers_dir(&l.buildpack), l.name)
}

impl<E: Executor> Ctx<'_, E> {
    fn exec_err(&self, what: &'static str, source: E::Error) -> LifecycleError<E::Error> {
        LifecycleError::Executor { build: self.build.clone(), what, source }
    }

    fn phase(&self, phase: &'static str, buildpack: &str, r: PhaseResult) -> LifecycleError<E::Error> {
        LifecycleError::Phase {
            build: self.build.clone(),
            phase,
            buildpack: buildpack.to_owned(),
            code: r.code,
            tail: Box::new(r.tail),
        }
    }

    /// Tries the groups in order; the first in which a buildpack passes is used.
    async fn detect<'b>(
        &self,
        buildpacks: &'b [Buildpack],
        output: LineSink<'_>,
    ) -> Result<Vec<(&'b Buildpack, BuildPlan)>, E> {
        for group in phases::groups(buildpacks) {
            let passed = self.detect_group(&group, output).await?;
            if !passed.is_empty() {
                return Ok(passed);
            }
        }
        let tried = buildpacks.iter().map(|b| b.descriptor.buildpack.id.clone()).collect::<Vec<_>>();
        Err(LifecycleError::NothingDetected { build: self.build.clone(), tried: tried.join(", ") })
    }

    /// Detect of one group, every member optional: those that pass, with their plans.
    async fn detect_group<'b>(
        &self,
        group: &[&'b Buildpack],
        output: LineSink<'_>,
    ) -> Result<Vec<(&'b Buildpack, BuildPlan)>, E> {
        let dirs = self.exec.dirs();
        let mut passed = Vec::new();
        for &bp in group {
            if !bp.descriptor.supports(&self.target.os, &self.target.arch) {
                output(&format!(
                    "[lifecycle] detect: {} skipped: no matching [[targets]]",
                    bp.descriptor.buildpack.id
                ));
                continue;
            }
            let plan_path = plan_path(dirs, bp);
            let cmd = detect_command(dirs, bp, &plan_path, self.target);
            let r =
                self.exec.run_phase(&cmd, &mut *output).await.map_err(|e| self.exec_err("run detect", e))?;
            match DetectOutcome::from_exit_code(r.code) {
                DetectOutcome::Pass => {
                    let text = self.read_file(&plan_path).await?.unwrap_or_default();
                    let plan = BuildPlan::parse(&text).map_err(|source| LifecycleError::Plan {
                        buildpack: bp.descriptor.buildpack.id.clone(),
                        source,
                    })?;
                    passed.push((bp, plan));
                }
                DetectOutcome::Fail => {}
                DetectOutcome::Error(_) => return Err(self.phase("detect", &bp.descriptor.buildpack.id, r)),
            }
        }
        Ok(passed)
    }

    async fn step(&self, phase: &'static str, script: &str) -> Result<(), E> {
        let r = self.exec.run_step(script).await.map_err(|e| self.exec_err("run a lifecycle step", e))?;
        if r.code != 0 {
            return Err(self.phase(phase, "lifecycle", r));
        }
        Ok(())
    }

    async fn capture(&self, argv: Vec<String>) -> Result<Vec<u8>, E> {
        let r = self.exec.capture(argv).await.map_err(|e| self.exec_err("read build results", e))?;
        if r.code != 0 {
            return Err(self.phase("read results", "lifecycle", r));
        }
        Ok(r.stdout)
    }

    /// The file's text, or `None` if it does not exist; read as the build user.
    async fn read_file(&self, path: &str) -> Result<Option<String>, E> {
        let script = "if [ -f \"$1\" ]; then printf 'y'; cat \"$1\"; fi".to_owned();
        let out = self.capture(vec!["bash".into(), "-c".into(), script, "_".into(), path.into()]).await?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.strip_prefix('y').map(str::to_owned))
    }

    /// Writes a file as the build user.
    async fn write_file(&self, path: &str, text: &str) -> Result<(), E> {
        let script = "printf '%s' \"$1\" > \"$2\"".to_owned();
        self.capture(vec!["bash".into(), "-c".into(), script, "_".into(), text.into(), path.into()]).await?;
        Ok(())
    }

    /// The layers buildpack `escaped` left, by their `<layer>.toml`.
    async fn read_layers(&self, bp_id: &str, escaped: &str) -> Result<Vec<BuiltLayer>, E> {
        let dir = self.exec.dirs().build.layers_dir(escaped);
        let list = "cd \"$1\" && for f in *.toml; do case \"$f\" in launch.toml|build.toml|store.toml|'*.toml') ;; *) printf '%s\\n' \"${f%.toml}\" ;; esac; done".to_owned();
        let out = self.capture(vec!["bash".into(), "-c".into(), list, "_".into(), dir.clone()]).await?;
        let mut layers = Vec::new();
        for name in String::from_utf8_lossy(&out).lines().filter(|l| !l.is_empty()) {
            let text = self.read_file(&format!("{dir}/{name}.toml")).await?.unwrap_or_default();
            let toml = LayerToml::parse(name, &text).map_err(|source| LifecycleError::Layer {
                buildpack: bp_id.to_owned(),
                source: Box::new(source),
            })?;
            layers.push(BuiltLayer {
                buildpack: escaped.to_owned(),
                name: name.to_owned(),
                types: toml.types,
            });
        }
        Ok(layers)
    }
}
