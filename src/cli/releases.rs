//! `slipway releases APP`: the release history.

use crate::cli::Exit;
use crate::ids::AppName;
use crate::progress::format_duration;
use crate::state::Home;

/// Arguments of `slipway releases`.
#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    pub app: AppName,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// List releases, newest first.
pub fn run(home: &Home, args: &ReleasesArgs) -> anyhow::Result<Exit> {
    home.load_app(&args.app)?;
    let mut releases = home.list_releases(&args.app)?;
    releases.reverse();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&releases)?);
        return Ok(Exit::Ok);
    }
    println!("{:<6} {:<8} {:<20} {:<9} PHASES", "ID", "COMMIT", "CREATED", "STATUS");
    for r in &releases {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created_at),
        );
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|p| {
                let short = p.name.split_whitespace().next().unwrap_or("").to_lowercase();
                format!("{short} {}", format_duration(std::time::Duration::from_millis(p.millis)))
            })
            .collect();
        let status = serde_json::to_value(r.status)?.as_str().unwrap_or("").to_owned();
        println!(
            "{:<6} {:<8} {:<20} {:<9} {}",
            r.id,
            r.commit.short(),
            when.to_string(),
            status,
            phases.join(", ")
        );
        if let Some(e) = &r.error {
            println!("       error: {}", e.lines().next().unwrap_or(""));
        }
    }
    Ok(Exit::Ok)
}
