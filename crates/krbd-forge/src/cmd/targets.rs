use super::CacheArgs;
use krbd_build::target;

/// List the Debian kernel releases apt offers headers for (generic -amd64 flavour), newest
/// first: whether apt also has the exact source, whether the headers are already in the
/// cache, and which one `build` picks by default.
#[derive(Debug, clap::Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    cache: CacheArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TargetsArgs) -> i32 {
    let available = match target::available() {
        Ok(a) => a,
        Err(e) => return super::build::report_error(&e, args.json),
    };
    let cached = args
        .cache
        .open()
        .map(|c| krbd_build::pipeline::cached_sysroots(&c))
        .unwrap_or_default();
    let default = available.iter().find(|a| a.source_available).map(|a| a.release.clone());
    if args.json {
        let rows: Vec<serde_json::Value> = available
            .iter()
            .map(|a| {
                serde_json::json!({
                    "release": a.release,
                    "version": a.version,
                    "source_available": a.source_available,
                    "cached": cached.contains(&a.release.to_string()),
                    "default": Some(&a.release) == default.as_ref(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return 0;
    }
    println!("{:<28} {:<22} {:<8} {:<7}", "RELEASE", "DEBIAN VERSION", "SOURCE", "CACHED");
    for a in &available {
        println!(
            "{:<28} {:<22} {:<8} {:<7}{}",
            a.release.as_str(),
            a.version,
            if a.source_available { "yes" } else { "no" },
            if cached.contains(&a.release.to_string()) { "yes" } else { "" },
            if Some(&a.release) == default.as_ref() { "  (default)" } else { "" }
        );
    }
    0
}
