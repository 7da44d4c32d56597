use super::exit::{help_with_table, ExitCode, Failure};
use super::terminal::Terminal;
use krbd_ship::host::HostDocs;
use krbd_ship::sign::SigningKey;
use krbd_ship::{Compression, Format, HostFormat, HostPackageOptions, PackageOptions, ShipError};
use std::path::{Path, PathBuf};

/// Package a built module set for the target host, from a build's out folder
/// (OUT/<release>/ with libceph.ko, ceph.ko, rbd.ko and build-report.json):
///
///   rpm   a kmod RPM: Requires `kernel-uname-r = <release>` and `kernel(sym) = 0x<crc>`
///         for every symbol the set imports, Provides `kmod(*.ko)` and `ksym(sym)`;
///         %post/%postun run weak-modules (when present) and depmod.
///   deb   a .deb that Depends on linux-image-<release>; postinst/postrm run depmod.
///   tar   a tarball laid out like the out folder, plus MANIFEST.sha256, a README and the
///         host-side installer (bin/krbd-host, from --installer).
///   dkms  a DKMS source tree (usr/src/krbd-forge-<version>/: the patched sources from
///         the build's cache entry, dkms.conf, Makefile and Kbuild) as a tarball to unpack
///         at /.
///   host-deb, host-rpm
///         the host package krbd-forge-host, once per host and independent of any kernel
///         (no OUT_FOLDER): /usr/sbin/krbd-host (from --installer), its man pages
///         (section 8) and bash/zsh/fish completions, and the kernel hook that runs
///         `krbd-host preflight` when a kernel is installed (.deb:
///         /etc/kernel/postinst.d/krbd-forge; .rpm: the kernel-install plugin
///         /usr/lib/kernel/install.d/99-krbd-forge.install).
///
/// Modules go to /lib/modules/<release>/updates/, which depmod searches before the
/// kernel's own. The same input gives the same bytes (--mtime / SOURCE_DATE_EPOCH). With
/// --sign-key the modules are signed in the kernel's scheme first (openssl CLI).
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(PACKAGE_HELP))]
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

    /// The host-side binary for the tarball and the host package: krbd-host, built for
    /// glibc 2.17 by scripts/build-target-binary.sh (the tarball and the host package also
    /// carry its man pages and completions).
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
    #[arg(long, value_enum, value_name = "HASH", default_value = "sha256", requires = "sign_key")]
    sign_hash: SignHashArg,

    /// The .deb's Maintainer field.
    #[arg(long, value_name = "NAME <EMAIL>", default_value = "krbd-forge <krbd-forge@localhost>")]
    maintainer: String,

    /// The time stamp of every file in the package and of the package itself (the RPM's
    /// build time), in seconds since the epoch. [default: when the build published the set,
    /// the modification time of its build-report.json; host packages: the installer's]
    #[arg(long, value_name = "EPOCH", env = "SOURCE_DATE_EPOCH")]
    mtime: Option<u32>,

    #[command(flatten)]
    cache: super::CacheArgs,

    /// Print what was written as JSON on stdout.
    #[arg(long)]
    json: bool,
}

const PACKAGE_HELP: &str = "\
Bad input (5) here: no build report, a module missing or changed since the build, an
unusable installer or signing key, the build's patched sources not in the cache (dkms).
Toolchain (7): openssl is missing (signing).";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Rpm,
    Deb,
    Tar,
    Dkms,
    HostDeb,
    HostRpm,
}

/// The digests the kernel's module signing supports (krbd_ship::sign::HASHES).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SignHashArg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl SignHashArg {
    /// The digest's name, as openssl and the kernel spell it.
    fn name(self) -> &'static str {
        match self {
            SignHashArg::Sha1 => "sha1",
            SignHashArg::Sha224 => "sha224",
            SignHashArg::Sha256 => "sha256",
            SignHashArg::Sha384 => "sha384",
            SignHashArg::Sha512 => "sha512",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompressionArg {
    Xz,
    Gzip,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Self {
        match arg {
            CompressionArg::Xz => Compression::Xz,
            CompressionArg::Gzip => Compression::Gzip,
        }
    }
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
            for p in std::iter::once(key).chain(args.sign_cert.iter()) {
                if !p.is_file() {
                    return Err(Usage(format!("{}: no such file", p.display())));
                }
            }
            Some(SigningKey { key: key.clone(), cert: args.sign_cert.clone(), hash: args.sign_hash.name().to_string() })
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
        FormatArg::HostDeb | FormatArg::HostRpm => return Err(Usage("the host package takes no OUT_FOLDER".into())),
    };
    let cache_root = args.cache.cache_dir.clone().unwrap_or_else(krbd_fetch::cache::Cache::default_root);
    Ok((
        set,
        PackageOptions {
            format,
            compression: args.compression.into(),
            out_dir: args.out.clone(),
            mtime: args.mtime,
            maintainer: args.maintainer.clone(),
            installer: if format == Format::Tar { args.installer.clone() } else { None },
            host_docs: (format == Format::Tar && args.installer.is_some()).then(host_docs),
            cache_root: Some(cache_root),
            debug: args.with_debug,
            signing,
        },
    ))
}

/// The exit code of each shipping error; a new variant needs one line here.
pub fn code(e: &ShipError) -> ExitCode {
    match e {
        ShipError::ToolMissing { .. } => ExitCode::Toolchain,
        ShipError::Io { source, .. } => ExitCode::of_io(source.kind()),
        ShipError::Set(set) => set.io_kind().map_or(ExitCode::BadInput, ExitCode::of_io),
        _ => ExitCode::BadInput,
    }
}

/// krbd-host's man pages and completions, generated from its clap definitions.
fn host_docs() -> HostDocs {
    use clap::CommandFactory;
    use krbd_host::generate::{completion, man_pages, Shell};
    let cmd = krbd_host::cli::Cli::command();
    HostDocs {
        man_pages: man_pages(cmd.clone(), krbd_host::cli::MAN_SECTION),
        bash: completion(cmd.clone(), Shell::Bash),
        zsh: completion(cmd.clone(), Shell::Zsh),
        fish: completion(cmd, Shell::Fish),
    }
}

/// The host package's options: the installer is required, an out folder is refused.
fn host_options(args: &PackageArgs, format: HostFormat) -> Result<HostPackageOptions, Usage> {
    if let Some(set) = &args.set {
        return Err(Usage(format!(
            "the host package carries no module set, only krbd-host and its hooks: drop {}",
            set.display()
        )));
    }
    if args.sign_key.is_some() || args.with_debug {
        return Err(Usage("--sign-key and --with-debug apply to module packages, not the host package".into()));
    }
    let installer = args.installer.clone().ok_or_else(|| {
        Usage("the host package needs --installer PATH (krbd-host built by scripts/build-target-binary.sh)".into())
    })?;
    if args.maintainer.contains('\n') {
        return Err(Usage("--maintainer must be one line".into()));
    }
    Ok(HostPackageOptions {
        format,
        installer,
        docs: host_docs(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        compression: args.compression.into(),
        out_dir: args.out.clone(),
        mtime: args.mtime,
        maintainer: args.maintainer.clone(),
    })
}

pub fn run(args: PackageArgs) -> ExitCode {
    let terminal = Terminal::new(args.json);
    let host_format = match args.format {
        FormatArg::HostDeb => Some(HostFormat::Deb),
        FormatArg::HostRpm => Some(HostFormat::Rpm),
        _ => None,
    };
    let result = match host_format {
        Some(format) => match host_options(&args, format) {
            Ok(opts) => krbd_ship::package_host(&opts, &terminal),
            Err(Usage(msg)) => return Failure::new(ExitCode::Usage, msg).report(args.json),
        },
        None => match options(&args) {
            Ok((set, opts)) => krbd_ship::package(&set, &opts, &terminal),
            Err(Usage(msg)) => return Failure::new(ExitCode::Usage, msg).report(args.json),
        },
    };
    match result {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            let target = if outcome.release.is_empty() { String::new() } else { format!(" for {}", outcome.release) };
            eprintln!(
                "wrote {} ({} bytes{}): {} {}{target}",
                outcome.path.display(),
                outcome.size,
                if outcome.signed { ", modules signed" } else { "" },
                outcome.name,
                outcome.version,
            );
            if args.json {
                super::exit::print_json(&outcome)
            } else {
                ExitCode::Ok
            }
        }
        Err(e) => Failure::from_error(code(&e), &e).report(args.json),
    }
}

#[cfg(test)]
mod tests {
    use super::SignHashArg;
    use clap::ValueEnum;

    #[test]
    fn sign_hashes_are_the_ones_signing_supports() {
        let names: Vec<&str> = SignHashArg::value_variants().iter().map(|h| h.name()).collect();
        assert_eq!(names, krbd_ship::sign::HASHES);
        for h in SignHashArg::value_variants() {
            assert_eq!(h.to_possible_value().map(|v| v.get_name().to_string()), Some(h.name().to_string()));
        }
    }
}
