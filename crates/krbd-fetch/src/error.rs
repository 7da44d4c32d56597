use std::path::PathBuf;

/// What can go wrong with packages, archives and the cache.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: not a Debian package ({reason}); is the file truncated or of another kind?")]
    NotADeb { path: PathBuf, reason: String },

    #[error("{path}: member {member} is corrupt or truncated ({reason}); delete the file and fetch it again")]
    CorruptMember { path: PathBuf, member: String, reason: String },

    #[error("{path}: archive entry {entry:?} would land outside its folder ({reason}); refusing to extract it")]
    UnsafeEntry { path: PathBuf, entry: String, reason: String },

    #[error("{path}: sha256 is {actual}, apt's index says {expected}; the download is corrupt")]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String },

    #[error("{path}: not an RPM package ({reason}); is the file truncated or of another kind?")]
    NotAnRpm { path: PathBuf, reason: String },

    #[error("{path}: the RPM's {part} is corrupt or truncated ({reason}); delete the file and fetch it again")]
    CorruptRpm { path: PathBuf, part: &'static str, reason: String },

    #[error("{path}: {reason}; krbd-forge cannot read this RPM")]
    UnsupportedRpm { path: PathBuf, reason: String },

    #[error("{path}: the {digest} is {actual}, the package says {expected}; the file is corrupt or was tampered with")]
    DigestMismatch { path: PathBuf, digest: &'static str, expected: String, actual: String },

    #[error("{path}: the package carries no OpenPGP signature, but a key was given (--rpm-key); get a signed package, or build without the key to accept it unverified")]
    NotSigned { path: PathBuf },

    #[error("{path}: signed by another key: the package names key {package_key_ids}, {keyring} holds {keyring_key_ids}; give the distribution's own key")]
    SignedByAnotherKey { path: PathBuf, package_key_ids: String, keyring: PathBuf, keyring_key_ids: String },

    #[error("{path}: bad {tag} signature by key {key_id} ({detail}); the package is corrupt or was tampered with")]
    BadSignature { path: PathBuf, tag: &'static str, key_id: String, detail: String },

    #[error("{path}: not a usable OpenPGP public key file ({reason})")]
    BadKeyFile { path: PathBuf, reason: String },

    #[error("`{program}` is not installed; checking RPM signatures needs it: apt-get install {package}")]
    GpgMissing { program: &'static str, package: &'static str },

    #[error("fetching {url} failed: {detail}")]
    DownloadFailed { url: String, detail: String },

    #[error("the YUM repository metadata {url} cannot be used: {reason}")]
    BadRepodata { url: String, reason: String },

    #[error("{url}: the signature does not verify: {detail}")]
    RepodataNotVerified { url: String, detail: String },

    #[error("apt knows no package {spec}{hint}")]
    UnknownPackage { spec: String, hint: String },

    /// A package relation (`Depends`) that does not follow Debian Policy's syntax.
    #[error("cannot read the package relation `{relation}`: {reason}")]
    BadRelation { relation: String, reason: String },

    #[error("`{command}` failed: {detail}")]
    AptFailed { command: String, detail: String },

    #[error("apt has no package lists; run `apt-get update` first")]
    NoAptLists,

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| FetchError::Io { op, path, source }
    }

    /// The I/O error underneath, when there is one (to tell "no space" from "no permission").
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            FetchError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
