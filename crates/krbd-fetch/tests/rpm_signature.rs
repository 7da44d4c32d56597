//! RPM signatures checked against a given key: RPMs made by the real `rpmbuild` and signed
//! by the real `rpmsign` with throwaway gpg keys (Debian's `rpm` and `gnupg` packages),
//! verified through `gpgv`.

use krbd_fetch::rpm::{RpmKeyring, RpmPackage};
use krbd_fetch::FetchError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = r#"Name: sigtest
Version: 1.0
Release: 1
Summary: a package to sign
License: GPL-2.0
BuildArch: noarch

%description
original description

%install
mkdir -p %{buildroot}/usr/share/sigtest
echo payload > %{buildroot}/usr/share/sigtest/data

%files
/usr/share/sigtest
"#;

/// A gpg home with two keys, their public halves exported (one armored, one binary), and
/// an unsigned RPM. Dropping it stops the gpg-agent the key generation started.
struct Fixture {
    dir: tempfile::TempDir,
    home: PathBuf,
    unsigned: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(&self.home).args(["--kill", "all"]).status();
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-deps.sh installs it)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

impl Fixture {
    fn new() -> Fixture {
        // Under /tmp, short: the agent's socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new().prefix("krbd-sig").tempdir_in("/tmp").unwrap();
        let home = dir.path().join("g");
        std::fs::create_dir(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let f = Fixture { home: home.clone(), unsigned: dir.path().join("unsigned.rpm"), dir };
        for (uid, export, armor) in
            [("Signer A <a@example.org>", "a.asc", true), ("Signer B <b@example.org>", "b.gpg", false)]
        {
            run(f.gpg().args(["--passphrase", "", "--quick-gen-key", uid, "rsa2048", "sign", "never"]));
            let out = f.dir.path().join(export);
            let mut cmd = f.gpg();
            if armor {
                cmd.arg("--armor");
            }
            run(cmd.arg("--output").arg(&out).args(["--export", uid]));
        }
        let top = f.dir.path().join("top");
        for d in ["SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS"] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        std::fs::write(top.join("SPECS/sigtest.spec"), SPEC).unwrap();
        run(Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "__os_install_post %{nil}", "--nodeps", "-bb"])
            .arg(top.join("SPECS/sigtest.spec")));
        std::fs::copy(top.join("RPMS/noarch/sigtest-1.0-1.noarch.rpm"), &f.unsigned).unwrap();
        f
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&self.home).args(["--batch", "--no-tty"]);
        c
    }

    fn key(&self, name: &str) -> RpmKeyring {
        RpmKeyring::load(&self.dir.path().join(name)).unwrap()
    }

    /// A copy of the unsigned RPM signed by `uid` (`--rpmv3` adds the legacy
    /// header-and-payload signature next to the header signature).
    fn signed(&self, uid: &str, name: &str, extra: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::copy(&self.unsigned, &path).unwrap();
        run(Command::new("rpmsign")
            .arg("--define")
            .arg(format!("_gpg_name {uid}"))
            .arg("--define")
            .arg(format!("_gpg_path {}", self.home.display()))
            .args(["--define", "__gpg /usr/bin/gpg"])
            .args(extra)
            .arg("--addsign")
            .arg(&path));
        path
    }
}

/// Where the main header starts and how long it is, and where the signature header's
/// SHA-256 string is (offset, length), read from the raw file.
fn layout(bytes: &[u8]) -> ((usize, usize), (usize, usize)) {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let sig = 96;
    let (count, data) = (be(sig + 8), be(sig + 12));
    let store = sig + 16 + count * 16;
    let mut sha = None;
    for i in 0..count {
        let e = sig + 16 + i * 16;
        if be(e) == 273 {
            sha = Some((store + be(e + 8), 64));
        }
    }
    let sig_len = 16 + count * 16 + data;
    let header = sig + sig_len + (8 - sig_len % 8) % 8;
    let len = 16 + be(header + 8) * 16 + be(header + 12);
    ((header, len), sha.expect("rpmbuild records the header SHA-256"))
}

#[test]
fn a_good_signature_by_the_given_key_is_accepted_and_others_are_not() {
    let f = Fixture::new();
    let (a, b) = (f.key("a.asc"), f.key("b.gpg"));
    assert_eq!(a.key_ids().len(), 1);
    assert_ne!(a.key_ids(), b.key_ids());

    let signed = f.signed("Signer A", "signed.rpm", &[]);
    let rpm = RpmPackage::open(&signed).unwrap();
    let listed = rpm.signatures();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].tag, "rsa");
    assert_eq!(listed[0].key_id.as_deref(), Some(a.key_ids()[0].as_str()));
    let status = rpm.verify_signature(&a).unwrap();
    assert_eq!(status.status, "verified");
    assert_eq!(rpm.unverified_signature_status().status, "not verified");

    // Signed by A, checked against B: the error names A's key id.
    match rpm.verify_signature(&b) {
        Err(e @ FetchError::SignedByAnotherKey { .. }) => {
            let text = e.to_string();
            assert!(text.contains("signed by another key") && text.contains(&a.key_ids()[0]), "{text}");
        }
        other => panic!("expected SignedByAnotherKey, got {other:?}"),
    }

    // Unsigned, with a key given.
    let unsigned = RpmPackage::open(&f.unsigned).unwrap();
    assert_eq!(unsigned.unverified_signature_status().status, "unsigned");
    assert!(matches!(unsigned.verify_signature(&a), Err(FetchError::NotSigned { .. })));

    // Header and payload (legacy) signatures are both checked.
    let v3 = RpmPackage::open(f.signed("Signer A", "v3.rpm", &["--rpmv3"])).unwrap();
    let tags: Vec<String> = v3.signatures().into_iter().map(|s| s.tag).collect();
    assert!(tags.contains(&"rsa".to_string()) && tags.contains(&"pgp".to_string()), "{tags:?}");
    assert_eq!(v3.verify_signature(&a).unwrap().status, "verified");
}

#[test]
fn a_changed_header_byte_is_refused() {
    let f = Fixture::new();
    let a = f.key("a.asc");
    let signed = f.signed("Signer A", "signed.rpm", &[]);
    let mut bytes = std::fs::read(&signed).unwrap();
    let ((start, len), (sha_at, sha_len)) = layout(&bytes);
    let header = &mut bytes[start..start + len];
    let at = header.windows(8).position(|w| w == b"original").expect("the description is in the header");
    header[at] = b'O';

    // Only the byte changed: the unsigned header digest already catches it.
    let plain = f.dir.path().join("flipped.rpm");
    std::fs::write(&plain, &bytes).unwrap();
    assert!(matches!(RpmPackage::open(&plain), Err(FetchError::DigestMismatch { .. })));

    // A tamperer who also rewrites that digest (the signature header is not signed) is
    // caught by the OpenPGP signature alone.
    let digest = hex::encode(Sha256::digest(&bytes[start..start + len]));
    bytes[sha_at..sha_at + sha_len].copy_from_slice(digest.as_bytes());
    let tampered = f.dir.path().join("tampered.rpm");
    std::fs::write(&tampered, &bytes).unwrap();
    let rpm = RpmPackage::open(&tampered).unwrap();
    match rpm.verify_signature(&a) {
        Err(e @ FetchError::BadSignature { .. }) => {
            assert!(e.to_string().contains("tampered"), "{e}");
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn a_file_without_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("not-a-key.asc");
    std::fs::write(path, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n").unwrap();
    assert!(matches!(RpmKeyring::load(path), Err(FetchError::BadKeyFile { .. })));
}
