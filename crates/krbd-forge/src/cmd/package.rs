use super::exit;
use super::terminal::Terminal;
use krbd_ship::sign::{SigningKey, HASHES};
use krbd_ship::{Compression, Format, PackageOptions, ShipError};
use std::path::{Path, PathBuf};

/// Package a built module set for the target host, from a build's out folder
/// (OUT/<release>/ with libceph.ko, ceph.ko, rbd.ko and build-report.json):
///
///   rpm   a kmod RPM: Requires `kernel-uname-r = <release>` and `kernel(sym) = 0x<crc>`
///         for every symbol the set imports, Provides `kmod(*.ko)` and `ksym(sym)`;
///         %post/%postun run weak-modules (when present) and depmod.
///   deb   a .deb that Depends on linux-image-<release>; postinst/postrm run depmod.
///   tar   a tarball laid out like the out folder, plus MANIFEST.sha256, a README and the
///         target-side installer (bin/krbd-forge, from --installer).
///   dkms  a DKMS source tree (usr/src/krbd-forge-<version>/: the patched sources from
///         the build's cache entry, dkms.conf, Makefile and Kbuild) as a tarball to unpack
///         at /.
///
/// Modules go to /lib/modules/<release>/updates/, which depmod searches before the
/// kernel's own. The same input gives the same bytes (--mtime / SOURCE_DATE_EPOCH). With
/// --sign-key the modules are signed in the kernel's scheme first (openssl CLI).
#[derive(Debug, clap::Args)]
#[command(after_long_help = PACKAGE_EXIT_CODES)]
pub struct PackageArgs {
    /// The package format.
    #[arg(long, value_enum)]
    format: FormatArg,

    /// The build's out folder. [default: the only OUT/<release>/ below ./out]
    #[arg(value_name = "OUT_FOLDER")]
    set: Option<PathBuf>,

    /// Where the package is written.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    out: PathBuf,

    /// Compression of the payload/archives.
    #[arg(long, value_enum, default_value = "xz")]
    compression: CompressionArg,

    /// The target-side krbd-forge for the tarball (built for glibc 2.17 by
    /// scripts/build-target-binary.sh).
    #[arg(long, value_name = "PATH", env = "KRBD_FORGE_INSTALLER")]
    installer: Option<PathBuf>,

    /// Ship the modules with their debug information (8x larger; default: the
    /// debug-stripped copies from stripped/, as distributions ship modules).
    #[arg(long)]
    with_debug: bool,

    /// Sign the modules with this private key (PEM) before packing.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,

    /// The signing key's X.509 certificate (PEM). [default: read from --sign-key]
    #[arg(long, value_name = "CERT", requires = "sign_key")]
    sign_cert: Option<PathBuf>,

    /// The signature's digest.
    #[arg(long, value_name = "HASH", default_value = "sha256", requires = "sign_key")]
    sign_hash: String,

    /// The .deb's Maintainer field.
    #[arg(long, value_name = "NAME <EMAIL>", default_value = "krbd-forge <krbd-forge@localhost>")]
    maintainer: String,

    /// The time stamp of every file in the package, in seconds since the epoch.
    #[arg(long, value_name = "EPOCH", env = "SOURCE_DATE_EPOCH", default_value = "0")]
    mtime: u32,

    #[command(flatten)]
    cache: super::CacheArgs,

    /// Print what was written as JSON on stdout.
    #[arg(long)]
    json: bool,
}

const PACKAGE_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage error (bad flags)
  5  bad input: no build report, a module missing or changed since the build, an unusable
     installer or signing key, the build's patched sources not in the cache (dkms)
  7  toolchain: openssl is missing (signing)
  9  environment: no space left, no permission, read-only file system";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Rpm,
    Deb,
    Tar,
    Dkms,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompressionArg {
    Xz,
    Gzip,
}

/// A usage problem found while validating the flags.
struct Usage(String);

fn default_set() -> Result<PathBuf, Usage> {
    let out = Path::new("out");
    let mut found: Vec<PathBuf> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(krbd_ship::input::REPORT_FILE).is_file())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Usage("no out folder given and none below ./out: pass OUT_FOLDER (a build's out/<release>/)".into())),
        _ => Err(Usage(format!(
            "several builds below ./out ({}): pass the one to package as OUT_FOLDER",
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn options(args: &PackageArgs) -> Result<(PathBuf, PackageOptions), Usage> {
    let set = match &args.set {
        Some(p) => p.clone(),
        None => default_set()?,
    };
    let signing = match &args.sign_key {
        Some(key) => {
            if !HASHES.contains(&args.sign_hash.as_str()) {
                return Err(Usage(format!("--sign-hash {}: use one of {}", args.sign_hash, HASHES.join(", "))));
            }
            for p in std::iter::once(key).chain(args.sign_cert.iter()) {
                if !p.is_file() {
                    return Err(Usage(format!("{}: no such file", p.display())));
                }
            }
            Some(SigningKey { key: key.clone(), cert: args.sign_cert.clone(), hash: args.sign_hash.clone() })
        }
        None => None,
    };
    if args.maintainer.contains('\n') {
        return Err(Usage("--maintainer must be one line".into()));
    }
    let format = match args.format {
        FormatArg::Rpm => Format::Rpm,
        FormatArg::Deb => Format::Deb,
        FormatArg::Tar => Format::Tar,
        FormatArg::Dkms => Format::Dkms,
    };
    let cache_root = args.cache.cache_dir.clone().unwrap_or_else(krbd_fetch::cache::Cache::default_root);
    Ok((
        set,
        PackageOptions {
            format,
            compression: match args.compression {
                CompressionArg::Xz => Compression::Xz,
                CompressionArg::Gzip => Compression::Gzip,
            },
            out_dir: args.out.clone(),
            mtime: args.mtime,
            maintainer: args.maintainer.clone(),
            installer: if format == Format::Tar { args.installer.clone() } else { None },
            cache_root: Some(cache_root),
            debug: args.with_debug,
            signing,
        },
    ))
}

pub fn code(e: &ShipError) -> i32 {
    match e {
        ShipError::ToolMissing { .. } => exit::TOOLCHAIN,
        ShipError::Io { source, .. } => exit::io_code(source.kind()),
        _ => exit::BAD_INPUT,
    }
}

pub fn run(args: PackageArgs) -> i32 {
    let terminal = Terminal::new(args.json);
    let (set, opts) = match options(&args) {
        Ok(v) => v,
        Err(Usage(msg)) => {
            eprintln!("error: {msg}");
            if args.json {
                let v = serde_json::json!({"error": {"kind": "usage", "exit_code": 2, "message": msg}});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            return 2;
        }
    };
    match krbd_ship::package(&set, &opts, &terminal) {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "wrote {} ({} bytes{}): {} {} for {}",
                outcome.path.display(),
                outcome.size,
                if outcome.signed { ", modules signed" } else { "" },
                outcome.name,
                outcome.version,
                outcome.release
            );
            if args.json {
                println!("{}", serde_json::to_string_pretty(&outcome).unwrap_or_default());
            }
            exit::OK
        }
        Err(e) => {
            let code = code(&e);
            let message = e.to_string();
            eprintln!("error: {message}");
            if args.json {
                let v = serde_json::json!({"error": {"kind": exit::kind(code), "exit_code": code, "message": message}});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            code
        }
    }
}
