//! `slipway mount export` and `mount import`: the archive's ends outside the mount (a local
//! file written atomically, stdin, stdout) and the report on stderr. The mount side is
//! `MountFs::export` / `MountFs::import`.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::exit::Refusal;
use super::mount::refusal;
use crate::cli::Exit;
use crate::ids::AppName;
use crate::mount::{ArchiveReport, MountFs, format_size};
use crate::state::atomic;

pub(super) fn export(fs: &MountFs, app: &AppName, path: &str, file: Option<&Path>) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let report = match file.filter(|f| f.as_os_str() != "-") {
        None => {
            if io::stdout().is_terminal() {
                return Err(Refusal::Usage(format!(
                    "refusing to write an archive to a terminal; give a FILE (`slipway mount export {app} backup.tar.gz`) or redirect stdout"
                ))
                .into());
            }
            let mut gz = GzEncoder::new(BufWriter::new(io::stdout().lock()), Compression::fast());
            let report = fs.export(path, &mut gz).map_err(refusal)?;
            gz.finish().and_then(|mut w| w.flush()).context("cannot write the archive to stdout")?;
            report
        }
        // Atomically, so a failed or killed export never leaves a torn archive under the name.
        Some(file) => atomic::write_with(file, |f| {
            let mut out = BufWriter::with_capacity(1 << 20, f);
            let report = if file.extension().is_some_and(|e| e == "tar") {
                fs.export(path, &mut out).map_err(refusal)?
            } else {
                let mut gz = GzEncoder::new(&mut out, Compression::fast());
                let report = fs.export(path, &mut gz).map_err(refusal)?;
                gz.finish()?;
                report
            };
            out.flush()?;
            anyhow::Ok(report)
        })
        .with_context(|| format!("cannot write the archive {}", file.display()))?,
    };
    let to = file.map_or_else(|| "stdout".to_owned(), |f| f.display().to_string());
    eprintln!(
        "exported {} files and {} directories ({}) of app {app}'s {path} to {to} in {:.2}s",
        report.files,
        report.dirs,
        format_size(report.bytes),
        started.elapsed().as_secs_f64()
    );
    warn(&report);
    for c in &report.changed {
        eprintln!("  {} changed while it was exported; its copy may be torn", c.display());
    }
    Ok(Exit::Ok)
}

pub(super) fn import(
    fs: &MountFs,
    app: &AppName,
    file: &Path,
    dest: &str,
    json: bool,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let report = if file.as_os_str() == "-" {
        fs.import(io::stdin().lock(), dest).map_err(refusal)?
    } else {
        let input = File::open(file)
            .map_err(|e| Refusal::Usage(format!("cannot open archive {}: {e}", file.display())))?;
        fs.import(input, dest).map_err(refusal)?
    };
    eprintln!(
        "imported {} files and {} directories ({}) into app {app}'s {dest} in {:.2}s",
        report.files,
        report.dirs,
        format_size(report.bytes),
        started.elapsed().as_secs_f64()
    );
    warn(&report);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(Exit::Ok)
}

fn warn(report: &ArchiveReport) {
    for s in &report.skipped {
        eprintln!("  skipped {} (symlinks, hard links and special files are not copied)", s.display());
    }
}
