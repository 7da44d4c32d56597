use crate::patch::SeriesError;
use krbd_fetch::FetchError;
use std::path::PathBuf;

/// Everything that can stop a build. The CLI maps each variant to a documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{release:?} is not a kernel release ({reason})")]
    BadRelease { release: String, reason: String },

    #[error("apt offers no kernel {release}{}", near_list(.near))]
    UnknownRelease { release: String, near: Vec<String> },

    #[error(
        "no vault location is known for {release}: {reason}; pass the packages with --srpm FILE and --devel-rpm FILE"
    )]
    NotCatalogued { release: String, reason: String },

    #[error("none of the places {what} of {release} should be could serve it:\n  {}\npoint the mirror at a copy (--mirror DISTRO=URL) or pass the file", tried.join("\n  "))]
    PackageNotFound { release: String, what: &'static str, tried: Vec<String> },

    /// Some place a package should be at could not be asked (refused, no such host, timed
    /// out, an HTTP error), and no other place had it.
    #[error("{what} of {release} could not be fetched:{}", mirror_failures(.failed, .not_found))]
    MirrorFailed { release: String, what: &'static str, failed: Vec<MirrorFailure>, not_found: Vec<String> },

    /// A file the request names (a source tarball, a source RPM, a kernel-devel RPM) is
    /// not there, or is not a regular file.
    #[error("{path}: no such file")]
    InputNotFound { path: PathBuf },

    #[error("{package}: {reason}")]
    BadSourceRpm { package: PathBuf, reason: String },

    #[error("apt has no {package}={version}, the source of {release}; pass the tarball with --source-tarball")]
    SourceUnavailable { release: String, package: String, version: String },

    /// Nothing apt's index holds satisfies one of the headers package's relations.
    #[error(
        "nothing apt knows satisfies `{relation}`, which the headers of {release} depend on ({}); run `apt-get update`, or add to apt's sources a suite that still carries it (snapshot.debian.org keeps every version); `krbd-forge targets` lists the releases that build",
        known_versions(.known)
    )]
    Unsatisfiable { release: String, relation: String, known: Vec<String> },

    /// The headers package lacks a relation every Debian kernel's headers have.
    #[error("the headers of {release} depend on no {what} package; is it a Debian kernel's headers package?")]
    NoRelation { release: String, what: &'static str },

    #[error(transparent)]
    Fetch(#[from] FetchError),

    #[error("{archive}: no Ceph sources in it (missing {}); is this a Linux source tarball?", missing.join(", "))]
    NoCephSources { archive: PathBuf, missing: Vec<String> },

    #[error(transparent)]
    Series(#[from] SeriesError),

    #[error("{headers}: not a usable kernel headers folder ({reason})")]
    BadHeaders { headers: PathBuf, reason: String },

    #[error("--kernel {requested} does not match the headers in {headers}, which are for {found}")]
    ReleaseMismatch { requested: String, found: String, headers: PathBuf },

    #[error(
        "{release} has {option}={value}; krbd-forge builds it only as a module (=m), so there is nothing to replace"
    )]
    NotAModule { release: String, option: String, value: String },

    #[error(
        "the kernel was built with `{compiler}`, which is not installed; install it with `apt-get install {package}`"
    )]
    CompilerMissing { compiler: String, package: String },

    #[error("the kernel was built with {wanted:?} but `{compiler}` is {found:?}; modules built with another compiler may not load or may misbehave{}", advice.as_deref().map(|a| format!("; {a}")).unwrap_or_default())]
    CompilerMismatch {
        compiler: String,
        wanted: String,
        found: String,
        /// What to install or where to run instead, when known.
        advice: Option<String>,
    },

    #[error(
        "{release} was built with {wanted}, like every kernel of its distribution release, and this host's gcc is {}; {advice} (nothing was downloaded)",
        found.as_deref().map_or("not installed".to_string(), |f| format!("{f:?}"))
    )]
    DistributionCompiler { release: String, wanted: String, found: Option<String>, advice: String },

    #[error("`{tool}` is needed ({why}); install it with `apt-get install {package}`")]
    ToolMissing { tool: String, package: String, why: String },

    #[error("compiling {module} failed; the full log is {log}:\n{}", first_errors.join("\n"))]
    CompileFailed { module: String, log: PathBuf, first_errors: Vec<String> },

    #[error(transparent)]
    Check(#[from] krbd_kmod::CheckError),

    #[error("the modules built for {release} would not load there:\n  {}", verdicts.join("\n  "))]
    WouldNotLoad { release: String, verdicts: Vec<String> },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One mirror that failed the same way for one or more URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFailure {
    /// The vault it stands for: `centos`, `rocky`, `alma` (the name a mirror override takes).
    pub site: &'static str,
    /// `scheme://host[:port]` of the URLs.
    pub origin: String,
    /// What went wrong, once for all its URLs.
    pub detail: String,
    pub urls: Vec<String>,
}

/// Each failing mirror once with its reason and the URLs it was asked for, then the places
/// that answered "not found".
fn mirror_failures(failed: &[MirrorFailure], not_found: &[String]) -> String {
    let mut s = String::new();
    for f in failed {
        s += &format!("\n  the {} mirror {} failed: {}; asked for", f.site, f.origin, f.detail);
        for url in &f.urls {
            s += &format!("\n    {url}");
        }
    }
    for url in not_found {
        s += &format!("\n  not found: {url}");
    }
    s
}

fn near_list(near: &[String]) -> String {
    if near.is_empty() {
        "; `krbd-forge targets` lists what can be built".into()
    } else {
        format!("; near ones: {} (`krbd-forge targets` lists all)", near.join(", "))
    }
}

impl BuildError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io { op, path, source }
    }

    /// The I/O error kind underneath, to tell "no space" or "no permission" apart.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            BuildError::Io { source, .. } => Some(source.kind()),
            BuildError::Fetch(p) => p.io_kind(),
            BuildError::Series(SeriesError::Io { source, .. }) => Some(source.kind()),
            _ => None,
        }
    }
}

fn known_versions(known: &[String]) -> String {
    if known.is_empty() {
        "apt knows no version of it".to_string()
    } else {
        format!("apt knows only {}", known.join(", "))
    }
}
