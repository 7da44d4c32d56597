//! Module signing in the kernel's scheme: the ELF image, then a detached PKCS#7 (CMS)
//! signature over it, then `struct module_signature` (all zero but `id_type` = 2 and the
//! big-endian signature length), then `~Module signature appended~\n`.
//!
//! The CMS blob is made by the openssl CLI with the options the kernel's `sign-file` uses:
//! binary content, no signed attributes, no certificates, no S/MIME capabilities, the
//! signer named by issuer and serial number. RSA PKCS#1 v1.5 signatures are deterministic,
//! so the result is byte-identical to `sign-file`'s for the same key.

use crate::error::ShipError;
use crate::input::BuildSet;
use krbd_kmod::module::{split_signature, MODULE_SIG_MAGIC};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub const HASHES: [&str; 5] = ["sha1", "sha224", "sha256", "sha384", "sha512"];

/// A user's signing key, validated.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The private key (PEM); may also hold the certificate, like the kernel's signing_key.pem.
    pub key: PathBuf,
    /// The X.509 certificate (PEM); `None`: read it from `key`.
    pub cert: Option<PathBuf>,
    /// One of [`HASHES`].
    pub hash: String,
}

/// Signs `elf` (an unsigned module image) and returns the signed image.
pub fn sign_module(elf: &[u8], key: &SigningKey, module: &str) -> Result<Vec<u8>, ShipError> {
    let fail = |reason: String| ShipError::SignFailed { module: module.to_string(), reason };
    let cert = key.cert.as_ref().unwrap_or(&key.key);
    let mut child = Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-noattr", "-nocerts", "-nosmimecap", "-outform", "DER", "-md"])
        .arg(&key.hash)
        .arg("-signer")
        .arg(cert)
        .arg("-inkey")
        .arg(&key.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ShipError::ToolMissing { tool: "openssl".into(), package: "openssl".into(), why: "sign modules".into() }
            }
            _ => fail(format!("cannot run openssl: {e}")),
        })?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail("no pipe to openssl".into()))?;
    let input = elf.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut sig = Vec::new();
    let mut err = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut sig).map_err(|e| fail(e.to_string()))?;
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let _ = writer.join();
    if !status.success() || sig.is_empty() {
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output").to_string();
        return Err(fail(format!(
            "openssl cms -sign failed ({status}): {first}; check that --sign-key is a PEM private key and --sign-cert its X.509 certificate"
        )));
    }
    let mut out = Vec::with_capacity(elf.len() + sig.len() + 40);
    out.extend_from_slice(elf);
    out.extend_from_slice(&sig);
    // struct module_signature: algo, hash, id_type (2: PKCS#7), signer_len, key_id_len,
    // pad[3], sig_len (big-endian).
    out.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(sig.len() as u32).to_be_bytes());
    out.extend_from_slice(MODULE_SIG_MAGIC);
    Ok(out)
}

/// Signs every module of the set in place (an existing signature is replaced).
pub fn sign_set(set: &mut BuildSet, key: &SigningKey) -> Result<(), ShipError> {
    for m in &mut set.modules {
        let elf = match split_signature(&m.bytes) {
            Ok((elf, _)) => elf.to_vec(),
            Err(e) => return Err(ShipError::SignFailed { module: m.file_name(), reason: e.to_string() }),
        };
        let signed = sign_module(&elf, key, &m.file_name())?;
        m.parsed = krbd_kmod::KernelModule::parse(&signed)
            .map_err(|e| ShipError::SignFailed { module: m.file_name(), reason: e.to_string() })?;
        m.bytes = signed;
    }
    Ok(())
}
