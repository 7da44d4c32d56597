//! Exit codes: one per kind of failure, so that scripts can tell them apart.

use krbd_build::patch::SeriesError;
use krbd_build::BuildError;
use krbd_fetch::FetchError;
use std::io::ErrorKind;

pub const OK: i32 = 0;
pub const INTERNAL: i32 = 1;
pub const USAGE: i32 = 2;
pub const TARGET: i32 = 3;
pub const FETCH: i32 = 4;
pub const BAD_INPUT: i32 = 5;
pub const PATCH: i32 = 6;
pub const TOOLCHAIN: i32 = 7;
pub const COMPILE: i32 = 8;
pub const ENVIRONMENT: i32 = 9;
pub const WOULD_NOT_LOAD: i32 = 10;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage error (bad flags)
  3  unknown or unusable target: no such release, no headers/source for it, modules built in
  4  fetching packages failed (apt, network, checksum)
  5  bad input: a corrupt or truncated package, an archive entry escaping its folder, a
     tarball without the Ceph sources, an RPM without a good signature by --rpm-key
  6  the patch series is malformed or does not apply
  7  toolchain: the kernel's compiler, make or pahole is missing or differs
  8  compiling failed (the first errors and the log's path are shown)
  9  environment: no space left, no permission, read-only file system, gpgv missing
 10  the built modules would not load on the target (the loader's verdicts are shown)";

pub fn fetch_code(e: &FetchError) -> i32 {
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
        | FetchError::BadKeyFile { .. } => BAD_INPUT,
        FetchError::GpgMissing { .. } => ENVIRONMENT,
        FetchError::ChecksumMismatch { .. } | FetchError::AptFailed { .. } | FetchError::DownloadFailed { .. } => FETCH,
        FetchError::UnknownPackage { .. } | FetchError::NoAptLists => TARGET,
        FetchError::Io { source, .. } => io_code(source.kind()),
    }
}

pub fn io_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded
        | ErrorKind::PermissionDenied
        | ErrorKind::ReadOnlyFilesystem
        | ErrorKind::NotFound => ENVIRONMENT,
        _ => INTERNAL,
    }
}

pub fn build_code(e: &BuildError) -> i32 {
    match e {
        BuildError::BadRelease { .. }
        | BuildError::UnknownRelease { .. }
        | BuildError::SourceUnavailable { .. }
        | BuildError::BadHeaders { .. }
        | BuildError::ReleaseMismatch { .. }
        | BuildError::NotAModule { .. }
        | BuildError::NotCatalogued { .. } => TARGET,
        BuildError::PackageNotFound { .. } => FETCH,
        BuildError::BadFlag { .. } => USAGE,
        BuildError::BadSourceRpm { .. } => BAD_INPUT,
        BuildError::Fetch(p) => fetch_code(p),
        BuildError::NoCephSources { .. } => BAD_INPUT,
        BuildError::Series(SeriesError::Io { source, .. }) => io_code(source.kind()),
        BuildError::Series(_) => PATCH,
        BuildError::CompilerMissing { .. } | BuildError::CompilerMismatch { .. } | BuildError::ToolMissing { .. } => {
            TOOLCHAIN
        }
        BuildError::CompileFailed { .. } => COMPILE,
        BuildError::Check(_) => BAD_INPUT,
        BuildError::WouldNotLoad { .. } => WOULD_NOT_LOAD,
        BuildError::Io { source, .. } => io_code(source.kind()),
    }
}

/// A hint for I/O failures that the error's own text cannot give.
pub fn hint(e: &BuildError) -> Option<&'static str> {
    match e.io_kind()? {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            Some("no space left: free some, or point --out / --cache-dir at a larger file system")
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            Some("cannot write there: choose a writable --out / --cache-dir, or fix the permissions")
        }
        _ => None,
    }
}

/// The variant's name, for `--json` errors.
pub fn kind(code: i32) -> &'static str {
    match code {
        OK => "ok",
        USAGE => "usage",
        TARGET => "target",
        FETCH => "fetch",
        BAD_INPUT => "bad-input",
        PATCH => "patch",
        TOOLCHAIN => "toolchain",
        COMPILE => "compile",
        ENVIRONMENT => "environment",
        WOULD_NOT_LOAD => "would-not-load",
        _ => "internal",
    }
}
