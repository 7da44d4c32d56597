//! From the build side's library errors to the one exit-code table (krbd_host::ExitCode)
//! and the one error report (krbd_host::Failure); the host side's are in krbd-host.

use krbd_build::patch::SeriesError;
use krbd_build::BuildError;
use krbd_fetch::FetchError;
pub use krbd_host::exit::help_with_table;
pub use krbd_host::report::print_json;
pub use krbd_host::{ExitCode, Failure};
use std::io::ErrorKind;

/// The exit code of each fetch error; a new variant needs one line here.
pub fn fetch_code(e: &FetchError) -> ExitCode {
    match e {
        FetchError::NotADeb { .. }
        | FetchError::CorruptMember { .. }
        | FetchError::UnsafeEntry { .. }
        | FetchError::NotAnRpm { .. }
        | FetchError::CorruptRpm { .. }
        | FetchError::UnsupportedRpm { .. }
        | FetchError::DigestMismatch { .. }
        | FetchError::NotSigned { .. }
        | FetchError::SignedByAnotherKey { .. }
        | FetchError::BadSignature { .. }
        | FetchError::BadKeyFile { .. }
        | FetchError::RepodataNotVerified { .. } => ExitCode::BadInput,
        FetchError::GpgMissing { .. } => ExitCode::Environment,
        FetchError::ChecksumMismatch { .. }
        | FetchError::AptFailed { .. }
        | FetchError::DownloadFailed { .. }
        | FetchError::BadRepodata { .. } => ExitCode::Fetch,
        FetchError::UnknownPackage { .. } | FetchError::BadRelation { .. } | FetchError::NoAptLists => ExitCode::Target,
        FetchError::Io { source, .. } => ExitCode::of_io(source.kind()),
    }
}

/// The exit code of each build error; a new variant needs one line here.
pub fn build_code(e: &BuildError) -> ExitCode {
    match e {
        BuildError::BadRelease { .. }
        | BuildError::UnknownRelease { .. }
        | BuildError::SourceUnavailable { .. }
        | BuildError::Unsatisfiable { .. }
        | BuildError::NoRelation { .. }
        | BuildError::BadHeaders { .. }
        | BuildError::ReleaseMismatch { .. }
        | BuildError::NotAModule { .. }
        | BuildError::NotCatalogued { .. } => ExitCode::Target,
        BuildError::PackageNotFound { .. } | BuildError::MirrorFailed { .. } => ExitCode::Fetch,
        // A named file that is not there, as when opening it fails with NotFound.
        BuildError::InputNotFound { .. } => ExitCode::Environment,
        BuildError::BadSourceRpm { .. } => ExitCode::BadInput,
        BuildError::Fetch(p) => fetch_code(p),
        BuildError::NoCephSources { .. } => ExitCode::BadInput,
        BuildError::Series(SeriesError::Io { source, .. }) => ExitCode::of_io(source.kind()),
        BuildError::Series(_) => ExitCode::Patch,
        BuildError::CompilerMissing { .. }
        | BuildError::CompilerMismatch { .. }
        | BuildError::DistributionCompiler { .. }
        | BuildError::ToolMissing { .. } => ExitCode::Toolchain,
        BuildError::CompileFailed { .. } => ExitCode::Compile,
        BuildError::Check(_) => ExitCode::BadInput,
        BuildError::WouldNotLoad { .. } => ExitCode::WouldNotLoad,
        BuildError::Io { source, .. } => ExitCode::of_io(source.kind()),
    }
}

/// A hint for what the error's own text cannot say: the flags that get past it.
pub fn hint(e: &BuildError) -> Option<String> {
    match e {
        BuildError::Series(SeriesError::NoVariant { .. }) => Some(
            "`build --series none` builds the stock libceph, ceph and rbd of this release, unpatched; \
             or pass another --series with a variant for it, or add one"
                .into(),
        ),
        BuildError::MirrorFailed { failed, .. } => {
            let mut sites: Vec<&str> = Vec::new();
            for f in failed {
                if !sites.contains(&f.site) {
                    sites.push(f.site);
                }
            }
            let overrides: Vec<String> = sites
                .iter()
                .map(|site| format!("--mirror {site}=URL (or KRBD_FORGE_MIRROR_{}=URL)", site.to_ascii_uppercase()))
                .collect();
            Some(format!("point the mirror at a reachable copy of the vault: {}", overrides.join(", ")))
        }
        _ => io_hint(e).map(String::from),
    }
}

/// A hint for I/O failures that the error's own text cannot give.
fn io_hint(e: &BuildError) -> Option<&'static str> {
    match e.io_kind()? {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            Some("no space left: free some, or point --out / --cache-dir at a larger file system")
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            Some("cannot write there: choose a writable --out / --cache-dir, or fix the permissions")
        }
        ErrorKind::NotADirectory => {
            Some("a file stands where a folder is expected: choose another --out / --cache-dir, or move the file")
        }
        _ => None,
    }
}

/// A build, fetch or patch error as the user sees it.
pub fn build_failure(e: &BuildError) -> Failure {
    Failure::from_error(build_code(e), e).with_hint(hint(e))
}

/// Reports a build error (stderr; JSON on stdout with `json`) and returns its exit code.
pub fn report_build_error(e: &BuildError, json: bool) -> ExitCode {
    build_failure(e).report(json)
}
