//! `slipway buildpack package OUT`: slipway's built-in buildpacks written out in the form
//! `pack build --buildpack` takes (a directory, or a `.tgz`, holding buildpack.toml and bin/ at
//! its root), so an image built by `pack` keeps slipway's Procfile, predeploy and mount contract.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::buildpacks::{EmbeddedBuildpack, builtins};
use crate::cli::Exit;

/// `slipway buildpack ...`.
#[derive(Debug, clap::Subcommand)]
pub enum BuildpackCommand {
    /// Write the built-in buildpacks into OUT (a new or empty directory), one per id, for
    /// `pack build --buildpack OUT/<id>`
    Package(PackageArgs),
}

/// Arguments of `slipway buildpack package`.
#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// A new or empty directory to write into
    pub out: PathBuf,
    /// Write each buildpack as `<id>.tgz` (buildpack.toml and bin/ at the archive's root)
    /// instead of a directory
    #[arg(long)]
    pub tgz: bool,
    /// Print what was written as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Runs a `buildpack` subcommand.
pub fn run(command: &BuildpackCommand) -> anyhow::Result<Exit> {
    match command {
        BuildpackCommand::Package(args) => package(args),
    }
}

fn package(args: &PackageArgs) -> anyhow::Result<Exit> {
    let t = std::time::Instant::now();
    let out = &args.out;
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} is not empty: give a new or empty directory, nothing was written", out.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // Written beside OUT, then renamed into place: a failure leaves no half-written buildpack.
    let stage = tempfile::Builder::new()
        .prefix(".slipway-package-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let mut written = Vec::new();
    for bp in builtins() {
        let name = bp.id.replace('/', "_");
        let path = if args.tgz {
            let file = stage.path().join(format!("{name}.tgz"));
            write_tgz(bp, &file).with_context(|| format!("cannot write {}", file.display()))?;
            format!("{name}.tgz")
        } else {
            let dir = stage.path().join(&name);
            bp.write_to(&dir).with_context(|| format!("cannot write {}", dir.display()))?;
            name
        };
        written.push((bp.id, out.join(path)));
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("cannot replace the empty {}", out.display()))?;
    }
    let stage = stage.keep();
    std::fs::set_permissions(&stage, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::rename(&stage, out)
        .with_context(|| format!("cannot move the buildpacks to {}", out.display()))?;
    eprintln!(
        "buildpack package: {} buildpack(s) in {} ({:.1}s)",
        written.len(),
        out.display(),
        t.elapsed().as_secs_f64()
    );
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let list: Vec<_> = written.iter().map(|(id, p)| serde_json::json!({ "id": id, "path": p })).collect();
        writeln!(stdout, "{:#}", serde_json::json!({ "buildpacks": list }))?;
    } else {
        for (id, p) in &written {
            writeln!(stdout, "{id}\t{}", p.display())?;
        }
    }
    Ok(Exit::Ok)
}

/// A gzip tar with buildpack.toml and bin/ at its root, as `pack` reads a buildpack archive.
fn write_tgz(bp: &EmbeddedBuildpack, path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut dirs: Vec<&str> =
        bp.files.iter().filter_map(|(name, _, _)| Path::new(name).parent()?.to_str()).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs.into_iter().filter(|d| !d.is_empty()) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    }
    for (name, text, mode) in bp.files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(*mode);
        header.set_size(text.len() as u64);
        tar.append_data(&mut header, name, text.as_bytes())?;
    }
    tar.into_inner()?.finish()?.sync_all()
}
