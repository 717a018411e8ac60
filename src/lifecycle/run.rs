//! The lifecycle's sequence, written once for every runtime: detect, restore, build, export.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use super::phases::{self, build_command, detect_command, plan_path};
use super::steps::{BuiltLayer, export_script, restore_script};
use super::{BuildFor, Buildpack, Executor, LifecycleError, LineSink, PhaseResult, Tail};
use crate::buildpack::detect::{BuildPlan, DetectOutcome};
use crate::buildpack::env::BuildTarget;
use crate::buildpack::launch::LaunchToml;
use crate::buildpack::layer::LayerToml;
use crate::buildpack::resolve::{self, BuildToml, Detected, GroupFailure, Resolved};

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
    /// The kept layers ([`super::LifecycleDirs::kept`]) that the build reused as they were.
    pub unchanged: Vec<super::KeptLayer>,
}

/// What one buildpack's build left in its layers directory.
#[derive(Debug, Default)]
struct BuildResults {
    layers: Vec<BuiltLayer>,
    /// SBOM file names, which slipway does not keep.
    sboms: Vec<String>,
    build_toml: Option<String>,
    launch_toml: Option<String>,
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
    let (group, mut resolved) = cx.detect(buildpacks, output).await?;
    let ids: Vec<&str> = group.iter().map(|bp| bp.descriptor.buildpack.id.as_str()).collect();
    output(&format!("[lifecycle] detect: {} ({:.1}s)", ids.join(", "), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let escaped: Vec<String> = group.iter().map(|bp| bp.descriptor.escaped_id()).collect();
    cx.step("restore", &restore_script(dirs, &escaped)).await?;
    output(&format!("[lifecycle] restore: cached layers back ({:.1}s)", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let mut layers: Vec<BuiltLayer> = Vec::new();
    let mut launches = Vec::new();
    for bp in &group {
        let id = bp.descriptor.escaped_id();
        let plan = resolved.buildpack_plan(&bp.descriptor.buildpack.id);
        let build_layers: Vec<String> =
            layers.iter().filter(|l| l.types.build).map(|l| layer_dir(exec, l)).collect();
        // The buildpack plan is written by build's own wrapper, and everything build left is
        // read back in one command: each command the build user runs costs a process start,
        // which is most of what one more buildpack adds to a build.
        let cmd = build_command(dirs, bp, &plan.to_toml(), &build_layers, target, exec.user_env());
        let r = exec.run_phase(&cmd, &mut *output).await.map_err(|e| cx.exec_err("run build", e))?;
        if r.code != 0 {
            return Err(cx.phase("build", &bp.descriptor.buildpack.id, r));
        }
        let results = cx.read_results(&bp.descriptor.buildpack.id, &id).await?;
        let (made, sboms) = (results.layers, results.sboms);
        layers.extend(made);
        if !sboms.is_empty() {
            // Buildpack API 0.7+ "Bill of Materials": the exporter would put these in an SBOM
            // layer; slipway makes no SBOM, and says so rather than dropping them silently.
            output(&format!(
                "[lifecycle] note: {}: SBOM files skipped (slipway keeps no SBOM): {}",
                bp.descriptor.buildpack.id,
                sboms.join(", ")
            ));
        }
        // What this buildpack left unmet ([[unmet]]) goes on to the next provider of it.
        let unmet = match results.build_toml {
            Some(text) => BuildToml::parse(&bp.descriptor.buildpack.id, &text, &plan)
                .map_err(|e| LifecycleError::BuildToml(Box::new(e)))?
                .unmet_names(),
            None => Vec::new(),
        };
        resolved.after_build(&bp.descriptor.buildpack.id, &unmet);
        if let Some(text) = results.launch_toml {
            let launch = LaunchToml::parse(&bp.descriptor.buildpack.id, bp.descriptor.api, &text)?;
            for note in &launch.notes {
                output(&format!("[lifecycle] note: {note}"));
            }
            launches.push(launch);
        }
    }
    output(&format!("[lifecycle] build: {} layer(s) ({:.1}s)", layers.len(), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let exported = cx.step("export", &export_script(dirs, &escaped, &layers)).await?;
    let unchanged: Vec<super::KeptLayer> = String::from_utf8_lossy(&exported)
        .lines()
        .filter_map(|l| super::KeptLayer::parse(l.strip_prefix(super::steps::UNCHANGED)?))
        .collect();
    let launch = LaunchToml::merge(launches);
    let launch_layers = layers.iter().filter(|l| l.types.launch).map(|l| layer_dir(exec, l)).collect();
    let types: Vec<&str> = launch.processes.iter().map(|p| p.kind.as_str()).collect();
    output(&format!(
        "[lifecycle] export: processes {} ({:.1}s)",
        types.join(", "),
        t.elapsed().as_secs_f64()
    ));
    Ok(Built { group: escaped, layers, launch, launch_layers, unchanged })
}

fn group_ids(group: &[crate::buildpack::order::GroupMember]) -> String {
    group.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
}

fn layer_dir<E: Executor>(exec: &E, l: &BuiltLayer) -> String {
    format!("{}/{}", exec.dirs().build.layers_dir(&l.buildpack), l.name)
}

impl<E: Executor> Ctx<'_, E> {
    fn exec_err(&self, what: &'static str, source: E::Error) -> LifecycleError<E::Error> {
        LifecycleError::Executor { build: self.build.clone(), what, source: Box::new(source) }
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

    /// Tries the order groups in order ([`phases::groups`]); the first that passes detection
    /// and plan resolution ([`resolve::resolve`]) is used. Each buildpack's detect runs once.
    async fn detect<'b>(
        &self,
        buildpacks: &'b [Buildpack],
        output: LineSink<'_>,
    ) -> Result<(Vec<&'b Buildpack>, Resolved), E> {
        let groups = phases::groups(buildpacks)?;
        let mut runs: HashMap<String, (Detected, Tail)> = HashMap::new();
        let mut reasons = String::new();
        let mut failed_tail: Option<Box<Tail>> = None;
        let mut all_empty = true;
        'groups: for group in &groups {
            let mut detected = Vec::new();
            for member in group {
                let Some(bp) = buildpacks.iter().find(|b| b.descriptor.buildpack.id == member.id) else {
                    all_empty = false;
                    let _ = writeln!(
                        reasons,
                        "  - {}: a composite names buildpack {}, which is not given: add it with --buildpack",
                        group_ids(group),
                        member.id
                    );
                    continue 'groups;
                };
                if !runs.contains_key(&member.id) {
                    let run = self.detect_one(bp, output).await?;
                    runs.insert(member.id.clone(), run);
                }
                let (d, _) = &runs[&member.id];
                detected.push(Detected { optional: member.optional, ..d.clone() });
            }
            match resolve::resolve(&detected) {
                Ok(resolved) => {
                    let chosen = resolved
                        .group
                        .iter()
                        .filter_map(|id| buildpacks.iter().find(|b| &b.descriptor.buildpack.id == id))
                        .collect();
                    return Ok((chosen, resolved));
                }
                Err(failure) => {
                    all_empty &= failure == GroupFailure::Empty;
                    if let GroupFailure::Failed { id } | GroupFailure::Errored { id, .. } = &failure
                        && failed_tail.is_none()
                    {
                        failed_tail = runs.get(id).map(|(_, tail)| Box::new(tail.clone()));
                    }
                    let _ = writeln!(reasons, "  - {}: {failure}", group_ids(group));
                }
            }
        }
        if all_empty {
            let tried = buildpacks.iter().map(|b| b.descriptor.buildpack.id.clone()).collect::<Vec<_>>();
            return Err(LifecycleError::NothingDetected {
                build: self.build.clone(),
                tried: tried.join(", "),
            });
        }
        Err(LifecycleError::NoGroup { build: self.build.clone(), reasons, tail: failed_tail })
    }

    /// Runs detect of one buildpack: its outcome, plan and last output.
    async fn detect_one(&self, bp: &Buildpack, output: LineSink<'_>) -> Result<(Detected, Tail), E> {
        let id = bp.descriptor.buildpack.id.clone();
        let mut d = Detected {
            id: id.clone(),
            optional: true,
            outcome: DetectOutcome::Fail,
            plan: BuildPlan::default(),
        };
        if !bp.descriptor.supports(&self.target.os, &self.target.arch) {
            output(&format!("[lifecycle] detect: {id} skipped: no matching [[targets]]"));
            return Ok((d, Tail::default()));
        }
        if bp.descriptor.is_composite() {
            return Ok((d, Tail::default()));
        }
        let dirs = self.exec.dirs();
        let plan_path = plan_path(dirs, bp);
        let cmd = detect_command(dirs, bp, &plan_path, self.target, self.exec.user_env());
        let r = self.exec.run_phase(&cmd, &mut *output).await.map_err(|e| self.exec_err("run detect", e))?;
        d.outcome = DetectOutcome::from_exit_code(r.code);
        match d.outcome {
            DetectOutcome::Pass => {
                let text = self.read_file(&plan_path).await?.unwrap_or_default();
                d.plan = BuildPlan::parse(&text)
                    .map_err(|source| LifecycleError::Plan { buildpack: id.clone(), source })?;
            }
            DetectOutcome::Fail => {}
            DetectOutcome::Error(code) => {
                output(&format!("[lifecycle] detect: {id} failed with exit code {code}"));
            }
        }
        Ok((d, r.tail))
    }

    /// Runs a lifecycle step; its standard output.
    async fn step(&self, phase: &'static str, script: &str) -> Result<Vec<u8>, E> {
        let r = self.exec.run_step(script).await.map_err(|e| self.exec_err("run a lifecycle step", e))?;
        if r.code != 0 {
            return Err(self.phase(phase, "lifecycle", r));
        }
        Ok(r.stdout)
    }

    async fn capture(&self, argv: Vec<String>) -> Result<Vec<u8>, E> {
        let r = self.exec.capture(argv).await.map_err(|e| self.exec_err("read build results", e))?;
        if r.code != 0 {
            return Err(self.phase("read results", "lifecycle", r));
        }
        Ok(r.stdout)
    }

    /// The file's text, or `None` if it does not exist; read as the build user. A link the
    /// build user cannot follow fails the read, rather than passing for an absent file.
    async fn read_file(&self, path: &str) -> Result<Option<String>, E> {
        let script = "if [ -e \"$1\" ] || [ -L \"$1\" ]; then printf 'y'; cat \"$1\"; fi".to_owned();
        let out = self.capture(vec!["bash".into(), "-c".into(), script, "_".into(), path.into()]).await?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.strip_prefix('y').map(str::to_owned))
    }

    /// What buildpack `escaped`'s build left in its layers directory, read as the build user
    /// in one command: NUL-separated `key`, contents pairs. A file the build user cannot read
    /// (a link it cannot follow) fails the read, rather than passing for an absent file.
    async fn read_results(&self, bp_id: &str, escaped: &str) -> Result<BuildResults, E> {
        let dir = self.exec.dirs().build.layers_dir(escaped);
        let script = r#"emit() { printf '%s\0' "$1"; cat -- "$2" || exit 1; printf '\0'; }
cd -- "$1" || exit 1
for f in *.toml; do case "$f" in launch.toml|build.toml|store.toml|'*.toml') ;; *) emit "layer ${f%.toml}" "$f" ;; esac; done
for f in *.sbom.*; do if [ "$f" != '*.sbom.*' ]; then printf 'sbom %s\0\0' "$f"; fi; done
for f in build.toml launch.toml; do if [ -e "$f" ] || [ -L "$f" ]; then emit "$f" "$f"; fi; done
"#;
        let out = self.capture(vec!["bash".into(), "-c".into(), script.into(), "_".into(), dir]).await?;
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.split('\0');
        let mut results = BuildResults::default();
        while let (Some(key), Some(body)) = (parts.next(), parts.next()) {
            if let Some(name) = key.strip_prefix("layer ") {
                let toml = LayerToml::parse(name, body).map_err(|source| LifecycleError::Layer {
                    buildpack: bp_id.to_owned(),
                    source: Box::new(source),
                })?;
                results.layers.push(BuiltLayer {
                    buildpack: escaped.to_owned(),
                    name: name.to_owned(),
                    types: toml.types,
                    sealed: BuiltLayer::wants_seal(toml.types, &toml.metadata),
                });
            } else if let Some(name) = key.strip_prefix("sbom ") {
                results.sboms.push(name.to_owned());
            } else if key == "build.toml" {
                results.build_toml = Some(body.to_owned());
            } else if key == "launch.toml" {
                results.launch_toml = Some(body.to_owned());
            }
        }
        Ok(results)
    }
}
