//! OpenPGP signatures of an RPM, checked against a key the user gives.
//!
//! The cryptography is left to `gpgv` (Debian's `gpgv` package, which apt itself needs):
//! the signature packet and the bytes it signs go to a private temporary folder and
//! `gpgv --status-fd` says GOODSIG, BADSIG or NO_PUBKEY. What is signed depends on the tag:
//! - `RSA` (268) and `DSA` (267), the header signatures rpm >= 4.0 writes: the main header
//!   blob, from its magic to the end of its data store.
//! - `PGP` (1002) and `GPG` (1005), the legacy ones: the main header followed by the
//!   compressed payload.
//!
//! The key id a package names is read from the signature packet here (version 3: a fixed
//! field; version 4: the issuer or issuer-fingerprint subpacket), so a package signed by
//! another key is told apart without asking gpgv, and unverified packages can still say
//! who signed them.

use super::RpmPackage;
use crate::error::FetchError;
use krbd_formats::rpm::tag::{SIG_DSA, SIG_GPG, SIG_PGP, SIG_RSA};
use serde::{Deserialize, Serialize};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The signature tags, in the order they are checked, with their report names.
const SIGNATURE_TAGS: [(u32, &str); 4] = [(SIG_RSA, "rsa"), (SIG_DSA, "dsa"), (SIG_PGP, "pgp"), (SIG_GPG, "gpg")];

/// A public key file made ready for `gpgv`: a plain binary keyring in a private folder,
/// and the ids of its keys and subkeys.
#[derive(Debug)]
pub struct RpmKeyring {
    source: PathBuf,
    /// Holds the keyring; removed when the keyring is dropped.
    _dir: tempfile::TempDir,
    keyring: PathBuf,
    key_ids: Vec<String>,
}

impl RpmKeyring {
    /// Reads a public key file, armored (`RPM-GPG-KEY-*`) or binary, through `gpg` in a
    /// throwaway home, and exports it as the plain keyring `gpgv` reads.
    pub fn load(path: &Path) -> Result<RpmKeyring, FetchError> {
        let bad = |reason: String| FetchError::BadKeyFile { path: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(FetchError::io("read", path))?;
        if !meta.is_file() {
            return Err(bad("not a file".into()));
        }
        let dir = tempfile::Builder::new()
            .prefix("krbd-rpmkey-")
            .tempdir()
            .map_err(FetchError::io("create a folder in", std::env::temp_dir()))?;
        let home = dir.path().join("home");
        std::fs::create_dir(&home).map_err(FetchError::io("create folder", &home))?;
        set_private(&home)?;
        let _agent = StopAgent(&home);
        let gpg = |args: &[&std::ffi::OsStr]| run_tool("gpg", "gnupg", &home, args);
        let imported = gpg(&["--import".as_ref(), path.as_os_str()])?;
        if !imported.status.success() {
            return Err(bad(format!("gpg could not import it: {}", last_line(&imported.stderr))));
        }
        let keyring = dir.path().join("keyring.gpg");
        let exported = gpg(&["--export".as_ref(), "--output".as_ref(), keyring.as_os_str()])?;
        let listed = gpg(&["--with-colons".as_ref(), "--list-keys".as_ref()])?;
        let key_ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|l| l.starts_with("pub:") || l.starts_with("sub:"))
            .filter_map(|l| l.split(':').nth(4))
            .map(|id| id.to_ascii_lowercase())
            .collect();
        if !exported.status.success() || key_ids.is_empty() {
            return Err(bad("it holds no OpenPGP public key".into()));
        }
        Ok(RpmKeyring { source: path.to_path_buf(), _dir: dir, keyring, key_ids })
    }

    /// Checks a detached signature (armored or binary) of `data` with `gpgv` against this
    /// keyring: `Err` says why it is not a good signature by one of its keys.
    pub fn verify_detached(&self, signature: &[u8], data: &[u8]) -> Result<(), String> {
        let work = tempfile::Builder::new().prefix("krbd-detached-").tempdir().map_err(|e| e.to_string())?;
        set_private(work.path()).map_err(|e| e.to_string())?;
        let (sig_path, data_path) = (work.path().join("data.sig"), work.path().join("data"));
        std::fs::write(&sig_path, signature).map_err(|e| e.to_string())?;
        std::fs::write(&data_path, data).map_err(|e| e.to_string())?;
        let args = ["--status-fd".as_ref(), "1".as_ref(), "--keyring".as_ref(), self.keyring.as_os_str()];
        let out = run_tool(
            "gpgv",
            "gpgv",
            work.path(),
            &[&args[..], &[sig_path.as_os_str(), data_path.as_os_str()]].concat(),
        )
        .map_err(|e| e.to_string())?;
        let status = String::from_utf8_lossy(&out.stdout);
        let has = |w: &str| status.lines().any(|l| l.starts_with(&format!("[GNUPG:] {w}")));
        if out.status.success() && has("GOODSIG ") && has("VALIDSIG ") {
            return Ok(());
        }
        Err(if has("BADSIG ") {
            "the signature does not match the signed bytes".into()
        } else if has("NO_PUBKEY ") {
            format!("signed by a key that {} does not hold", self.source.display())
        } else {
            last_line(&out.stderr)
        })
    }

    /// The key file as given.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The 16-hex-digit ids of its keys and subkeys, lower case.
    pub fn key_ids(&self) -> &[String] {
        &self.key_ids
    }
}

/// One OpenPGP signature a package carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSignature {
    /// `rsa`, `dsa` (header signatures), `pgp`, `gpg` (header and payload).
    pub tag: String,
    /// The signer's key id (16 hex digits), when the packet names one.
    pub key_id: Option<String>,
}

/// What is known of a package's signatures, for build reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureStatus {
    /// `verified` (a good signature by the given key), `not verified` (no key was given),
    /// `unsigned`.
    pub status: String,
    pub signatures: Vec<PackageSignature>,
}

impl RpmPackage {
    /// The OpenPGP signatures in the signature header, with the key ids they name.
    pub fn signatures(&self) -> Vec<PackageSignature> {
        SIGNATURE_TAGS
            .iter()
            .filter_map(|(tag, name)| {
                let packet = self.signature_header.bin(*tag)?;
                Some(PackageSignature { tag: name.to_string(), key_id: issuer_key_id(packet) })
            })
            .collect()
    }

    /// The status to report when no key was given: the signatures are listed, not checked.
    pub fn unverified_signature_status(&self) -> SignatureStatus {
        let signatures = self.signatures();
        SignatureStatus { status: if signatures.is_empty() { "unsigned" } else { "not verified" }.into(), signatures }
    }

    /// Checks the package's signatures with `gpgv` against `keyring`. Every signature made
    /// by a key of the keyring must be good, and there must be at least one.
    pub fn verify_signature(&self, keyring: &RpmKeyring) -> Result<SignatureStatus, FetchError> {
        let signatures = self.signatures();
        if signatures.is_empty() {
            return Err(FetchError::NotSigned { path: self.path.clone() });
        }
        let ours: Vec<&(u32, &str)> = SIGNATURE_TAGS
            .iter()
            .zip(signatures_by_tag(self))
            .filter_map(|(t, key_id)| key_id.filter(|id| keyring.key_ids.contains(id)).map(|_| t))
            .collect();
        // A signature whose packet names no key id (rare) is tried with gpgv too.
        let unnamed: Vec<&(u32, &str)> = SIGNATURE_TAGS
            .iter()
            .filter(|(tag, _)| self.signature_header.bin(*tag).is_some_and(|p| issuer_key_id(p).is_none()))
            .collect();
        if ours.is_empty() && unnamed.is_empty() {
            return Err(self.signed_by_another_key(&signatures, keyring));
        }
        let work = tempfile::Builder::new()
            .prefix("krbd-rpmsig-")
            .tempdir()
            .map_err(FetchError::io("create a folder in", std::env::temp_dir()))?;
        set_private(work.path())?;
        let mut good = 0;
        for (tag, name) in ours.iter().chain(unnamed.iter()).map(|t| **t) {
            let Some(packet) = self.signature_header.bin(tag) else { continue };
            let sig_path = work.path().join(format!("{name}.sig"));
            std::fs::write(&sig_path, packet).map_err(FetchError::io("write", &sig_path))?;
            let data_path = work.path().join(format!("{name}.data"));
            self.write_signed_bytes(tag, &data_path)?;
            let out = run_tool(
                "gpgv",
                "gpgv",
                work.path(),
                &[
                    "--status-fd".as_ref(),
                    "1".as_ref(),
                    "--keyring".as_ref(),
                    keyring.keyring.as_os_str(),
                    sig_path.as_os_str(),
                    data_path.as_os_str(),
                ],
            )?;
            let status = String::from_utf8_lossy(&out.stdout);
            let word =
                |w: &str| status.lines().find_map(|l| l.strip_prefix("[GNUPG:] ")?.strip_prefix(w).map(str::trim));
            let key_id = issuer_key_id(packet).unwrap_or_else(|| "unknown".into());
            if out.status.success() && word("GOODSIG ").is_some() {
                good += 1;
            } else if word("NO_PUBKEY ").is_some() && unnamed.iter().any(|(t, _)| *t == tag) {
                // An unnamed signature by a key we do not hold: not ours, not bad.
                continue;
            } else {
                let detail = if word("BADSIG ").is_some() {
                    "the signature does not match the signed bytes".to_string()
                } else {
                    last_line(&out.stderr)
                };
                return Err(FetchError::BadSignature { path: self.path.clone(), tag: name, key_id, detail });
            }
        }
        if good == 0 {
            return Err(self.signed_by_another_key(&signatures, keyring));
        }
        Ok(SignatureStatus { status: "verified".into(), signatures })
    }

    fn signed_by_another_key(&self, signatures: &[PackageSignature], keyring: &RpmKeyring) -> FetchError {
        let named: Vec<String> =
            signatures.iter().map(|s| s.key_id.clone().unwrap_or_else(|| "unknown".into())).collect();
        FetchError::SignedByAnotherKey {
            path: self.path.clone(),
            package_key_ids: named.join(", "),
            keyring: keyring.source.clone(),
            keyring_key_ids: keyring.key_ids.join(", "),
        }
    }

    /// Writes what the signature in `tag` covers.
    fn write_signed_bytes(&self, tag: u32, to: &Path) -> Result<(), FetchError> {
        let mut out = std::fs::File::create(to).map_err(FetchError::io("create", to))?;
        out.write_all(&self.header.raw).map_err(FetchError::io("write", to))?;
        if tag == SIG_PGP || tag == SIG_GPG {
            let mut file = std::fs::File::open(&self.path).map_err(FetchError::io("open", &self.path))?;
            file.seek(SeekFrom::Start(self.payload_offset)).map_err(FetchError::io("seek", &self.path))?;
            std::io::copy(&mut file, &mut out).map_err(FetchError::io("copy the payload to", to))?;
        }
        out.flush().map_err(FetchError::io("write", to))
    }
}

/// The key id each signature tag names, in [`SIGNATURE_TAGS`] order (`None` when the tag
/// is absent or names no key).
fn signatures_by_tag(rpm: &RpmPackage) -> Vec<Option<String>> {
    SIGNATURE_TAGS.iter().map(|(tag, _)| rpm.signature_header.bin(*tag).and_then(issuer_key_id)).collect()
}

/// Runs an OpenPGP tool with a private home; a missing tool says which package has it.
fn run_tool(
    program: &'static str,
    package: &'static str,
    home: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<std::process::Output, FetchError> {
    Command::new(program)
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--no-tty"].iter().filter(|_| program == "gpg"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FetchError::GpgMissing { program, package },
            _ => FetchError::Io { op: "run", path: PathBuf::from(program), source: e },
        })
}

/// gpg may start an agent for a home; it is stopped with the home, on every path out.
struct StopAgent<'a>(&'a Path);

impl Drop for StopAgent<'_> {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.0)
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// gpg refuses (warns about) homes others can read.
fn set_private(dir: &Path) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(FetchError::io("chmod", dir))
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()
}

/// The issuer key id of an OpenPGP signature packet (RFC 4880 §5.2), lower-case hex.
pub fn issuer_key_id(packet: &[u8]) -> Option<String> {
    let body = packet_body(packet, 2)?;
    match *body.first()? {
        3 => body.get(7..15).map(hex::encode),
        4 => {
            let hashed_len = u16::from_be_bytes([*body.get(4)?, *body.get(5)?]) as usize;
            let hashed = body.get(6..6 + hashed_len)?;
            let at = 6 + hashed_len;
            let unhashed_len = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]) as usize;
            let unhashed = body.get(at + 2..at + 2 + unhashed_len)?;
            issuer_in(hashed).or_else(|| issuer_in(unhashed))
        }
        _ => None,
    }
}

/// The body of the first packet in `data` when its tag is `want`.
fn packet_body(data: &[u8], want: u8) -> Option<&[u8]> {
    let first = *data.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let (tag, start, len): (u8, usize, usize) = if first & 0x40 != 0 {
        let l1 = *data.get(1)? as usize;
        match l1 {
            0..=191 => (first & 0x3f, 2, l1),
            192..=223 => (first & 0x3f, 3, ((l1 - 192) << 8) + *data.get(2)? as usize + 192),
            255 => (first & 0x3f, 6, u32::from_be_bytes(data.get(2..6)?.try_into().ok()?) as usize),
            // Partial body lengths: not used for signature packets.
            _ => return None,
        }
    } else {
        let tag = (first >> 2) & 0x0f;
        match first & 3 {
            0 => (tag, 2, *data.get(1)? as usize),
            1 => (tag, 3, u16::from_be_bytes([*data.get(1)?, *data.get(2)?]) as usize),
            2 => (tag, 5, u32::from_be_bytes(data.get(1..5)?.try_into().ok()?) as usize),
            _ => (tag, 1, data.len() - 1),
        }
    };
    if tag != want {
        return None;
    }
    data.get(start..start.checked_add(len)?)
}

/// Issuer (16) or issuer fingerprint (33) in a run of signature subpackets.
fn issuer_in(mut sub: &[u8]) -> Option<String> {
    let mut fingerprint = None;
    while let Some(&o) = sub.first() {
        let (head, len): (usize, usize) = match o {
            0..=191 => (1, o as usize),
            192..=254 => (2, ((o as usize - 192) << 8) + *sub.get(1)? as usize + 192),
            255 => (5, u32::from_be_bytes(sub.get(1..5)?.try_into().ok()?) as usize),
        };
        let packet = sub.get(head..head.checked_add(len)?)?;
        let (kind, data) = (packet.first()? & 0x7f, &packet[1..]);
        match kind {
            16 if data.len() == 8 => return Some(hex::encode(data)),
            // Version 4 fingerprints are 20 bytes; the key id is their last 8.
            33 if data.len() == 21 && data[0] == 4 => fingerprint = Some(hex::encode(&data[13..])),
            _ => {}
        }
        sub = &sub[head + len..];
    }
    fingerprint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_issuer_subpacket_is_found_in_the_unhashed_area() {
        // Old-format tag 2, one-byte length; v4, binary sig, RSA, SHA-256; no hashed
        // subpackets; one unhashed issuer subpacket; then (absent) MPIs.
        let mut body = vec![4, 0, 1, 8, 0, 0, 0, 10, 9, 16];
        body.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04]);
        let mut packet = vec![0x88, body.len() as u8];
        packet.extend_from_slice(&body);
        assert_eq!(issuer_key_id(&packet).as_deref(), Some("deadbeef01020304"));
    }

    #[test]
    fn garbage_and_truncated_packets_name_no_key() {
        assert_eq!(issuer_key_id(&[]), None);
        assert_eq!(issuer_key_id(&[0x00, 1, 2]), None);
        assert_eq!(issuer_key_id(&[0x88, 200, 4]), None);
        // A public key packet (tag 6), not a signature.
        assert_eq!(issuer_key_id(&[0x98, 1, 4]), None);
    }
}
