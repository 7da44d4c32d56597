use super::build::BuildFailure;
use super::exit::ExitCode;
use super::CacheArgs;
use krbd_build::patch::{SeriesError, SeriesSource};
use krbd_build::rhel::catalog::{self, Distro, Mirror, RhelRelease};
use krbd_build::target;
use krbd_build::BuildError;
use krbd_build::KernelRelease;
use krbd_host::outln;

/// List the Debian kernel releases apt offers headers for (generic -amd64 flavour), newest
/// first: whether `build` can build it from apt's index as it is (and if not, why), whether
/// apt also has the exact source, whether the headers are already in the cache, and which
/// one `build` picks by default (the newest buildable one). Packages are chosen as apt
/// chooses them: the headers' Depends relations (`linux-kbuild-6.1 (>= 6.1.170-3)`) are
/// met by the highest version apt knows that satisfies them. With a RELEASE, show what it
/// resolves to: the exact Debian packages with the relation each one satisfies, or for
/// CentOS/Rocky/Alma 7-9 releases
/// (3.10.0-957.el7.x86_64) the source RPM and kernel-devel RPM URLs, in the order tried,
/// the series variant `build` would apply (or that there is none, and what `--series none`
/// builds instead) and the compiler the distribution built the kernel with.
#[derive(Debug, clap::Args)]
#[command(after_long_help = krbd_host::exit::table())]
pub struct TargetsArgs {
    /// A release to resolve instead of listing.
    #[arg(value_name = "RELEASE")]
    release: Option<String>,

    /// RHEL family: resolve against this mirror, as DISTRO=URL (centos, buildlogs, rocky,
    /// alma; repeatable).
    #[arg(long, value_name = "DISTRO=URL", value_parser = super::build::parse_mirror)]
    mirror: Vec<Mirror>,

    /// RHEL family: only this distro's vaults (centos, rocky, alma).
    #[arg(long, value_name = "DISTRO")]
    distro: Option<Distro>,

    /// RHEL family: the series whose variant for RELEASE is shown, as `build --series`
    /// takes it.
    #[arg(long, value_name = "SERIES", default_value = "recovery-weight")]
    series: String,

    #[command(flatten)]
    cache: CacheArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn resolve_one(args: &TargetsArgs, release: &str) -> ExitCode {
    if catalog::is_rhel_release(release) {
        let mirrors = match super::build::mirrors(&args.mirror) {
            Ok(m) => m,
            Err(message) => return super::build::report_usage(&message, args.json),
        };
        let r = match catalog::resolve(release, &mirrors, args.distro) {
            Ok(r) => r,
            Err(e) => return super::build::report_error(&e, args.json),
        };
        let patch = match rhel_patch_plan(args, &r.release) {
            Ok(plan) => plan,
            Err(failure) => return failure.report(args.json),
        };
        if args.json {
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            v["kind"] = "rhel".into();
            v["patch"] = patch;
            v["compiler"] = r.release.distribution_compiler().map(|(_, text)| text).into();
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return ExitCode::Ok;
        }
        outln!("{} (el{}, minor release {})", r.release.release, r.release.el, r.os_minor);
        outln!("source RPM {}:", r.release.srpm_name());
        for l in &r.srpm {
            outln!("  {:<7} {:<9} {}", l.distro.name(), l.repo, l.url);
        }
        outln!("kernel-devel RPM {}:", r.release.devel_name());
        for l in &r.devel_rpm {
            outln!("  {:<7} {:<9} {}", l.distro.name(), l.repo, l.url);
        }
        for b in &r.browse {
            outln!("also kept below (time-stamped folders): {b}");
        }
        outln!("{}", patch["summary"].as_str().unwrap_or_default());
        if let Some((_, compiler)) = r.release.distribution_compiler() {
            outln!("compiler: {compiler} (checked before anything is downloaded)");
        }
        return ExitCode::Ok;
    }
    let resolved = KernelRelease::parse(release).and_then(|rel| {
        let cache = args.cache.open()?;
        target::resolve_cached(&cache, Some(&rel), true)
    });
    match resolved {
        Ok(t) => {
            if args.json {
                let mut v = serde_json::to_value(&t).unwrap_or_default();
                v["kind"] = "debian".into();
                outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return ExitCode::Ok;
            }
            outln!("{} (Debian {})", t.release, t.headers.version);
            let source = t.source.iter().map(|s| ("source", s));
            let all = [
                ("headers", &t.headers),
                ("headers-common", &t.headers_common),
                ("kbuild", &t.kbuild),
                ("image", &t.image),
            ]
            .into_iter()
            .chain(source);
            for (role, p) in all {
                outln!("  {role:<15} {}={}  sha256 {}", p.name, p.version, p.sha256);
                if let Some(relation) = t.relations.get(role) {
                    outln!("  {:<15} satisfies {relation}", "");
                }
            }
            ExitCode::Ok
        }
        Err(e) => super::build::report_error(&e, args.json),
    }
}

/// What `build` would patch an RHEL-family release with: `series`, `variant` (null when the
/// series has none for it), the `variants` it has, and a one-line `summary`.
fn rhel_patch_plan(args: &TargetsArgs, release: &RhelRelease) -> Result<serde_json::Value, BuildFailure> {
    let cache = args.cache.open()?;
    let stock =
        format!("`build --kernel {} --series none` builds its stock libceph, ceph and rbd, unpatched", release.release);
    let Some(series) = super::series::find_series(&args.series, &cache)? else {
        let summary = format!("patch series: none; {stock}");
        return Ok(serde_json::json!({ "series": null, "variant": null, "variants": [], "summary": summary }));
    };
    let variants: Vec<serde_json::Value> = match &series {
        SeriesSource::Variants { variants, .. } => {
            variants.iter().map(|v| serde_json::json!({ "name": v.name, "releases": v.releases })).collect()
        }
        SeriesSource::Plain(_) => Vec::new(),
    };
    let json = |name: &str, variant: serde_json::Value, summary: String| serde_json::json!({ "series": name, "variant": variant, "variants": variants, "summary": summary });
    match series.select(&release.release) {
        Ok((s, Some(v))) => {
            let summary = format!("patch series {}: variant {} ({})", args.series, v.name, v.description);
            let name = s.name.split('/').next().unwrap_or(&s.name);
            Ok(json(name, serde_json::json!({ "name": v.name, "description": v.description }), summary))
        }
        Ok((s, None)) => {
            let summary = format!("patch series {}: applied as it is (it has no variants)", s.name);
            Ok(json(&s.name, serde_json::Value::Null, summary))
        }
        Err(SeriesError::NoVariant { series: name, known, .. }) => {
            let summary = format!(
                "patch series {name}: no variant for this release, so no patched modules can be built for it \
                 (its variants fit: {}); {stock}",
                known.join("; ")
            );
            Ok(json(&name, serde_json::Value::Null, summary))
        }
        Err(e) => Err(BuildError::from(e).into()),
    }
}

pub fn run(args: TargetsArgs) -> ExitCode {
    if let Some(r) = args.release.clone() {
        return resolve_one(&args, &r);
    }
    let available = match target::available() {
        Ok(a) => a,
        Err(e) => return super::build::report_error(&e, args.json),
    };
    let cached = args.cache.open().map(|c| krbd_build::cache_listing::cached_sysroots(&c)).unwrap_or_default();
    let default = available.iter().find(|a| a.buildable).map(|a| a.release.clone());
    if args.json {
        let rows: Vec<serde_json::Value> = available
            .iter()
            .map(|a| {
                serde_json::json!({
                    "release": a.release,
                    "version": a.version,
                    "source_available": a.source_available,
                    "buildable": a.buildable,
                    "why": a.why,
                    "kbuild": a.kbuild,
                    "kbuild_relation": a.kbuild_relation,
                    "cached": cached.contains(&a.release.to_string()),
                    "default": Some(&a.release) == default.as_ref(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return ExitCode::Ok;
    }
    outln!("{:<28} {:<22} {:<9} {:<8} {:<7}", "RELEASE", "DEBIAN VERSION", "BUILDABLE", "SOURCE", "CACHED");
    for a in &available {
        outln!(
            "{:<28} {:<22} {:<9} {:<8} {:<7}{}",
            a.release.as_str(),
            a.version,
            if a.buildable { "yes" } else { "no" },
            if a.source_available { "yes" } else { "no" },
            if cached.contains(&a.release.to_string()) { "yes" } else { "" },
            if Some(&a.release) == default.as_ref() { "  (default)" } else { "" }
        );
    }
    // Why a release cannot be built, below the table: the reasons are long.
    for a in available.iter().filter(|a| !a.buildable) {
        outln!("\n{}: {}", a.release, a.why.as_deref().unwrap_or("cannot be resolved"));
    }
    ExitCode::Ok
}
