//! The signing key: gpg with a private `GNUPGHOME`, so that neither the user's keyring nor
//! their agent configuration takes part.

use crate::tool::{GPG, GPGCONF};
use crate::RepoError;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A signing key usable by `gpg`, in a `GNUPGHOME` that only this crate uses (mode 0700).
#[derive(Debug, Clone)]
pub struct Signer {
    gnupg_home: PathBuf,
    /// The primary key's fingerprint (40 upper-case hex digits).
    fingerprint: String,
    passphrase_file: Option<PathBuf>,
}

/// How a detached or inline signature is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignatureKind {
    /// `InRelease`: the text with its signature around it.
    Clearsigned,
    /// `Release.gpg`, `repomd.xml.asc`: an armored detached signature.
    DetachedArmored,
}

impl Signer {
    /// Imports the armored (or binary) secret key in `secret_key` into the private
    /// `gnupg_home` (created, mode 0700, when missing) and signs with it. The file must hold
    /// exactly one secret key that can sign (itself or through a subkey). `passphrase_file`:
    /// the key's passphrase, when it has one.
    pub fn import(secret_key: &Path, gnupg_home: &Path, passphrase_file: Option<&Path>) -> Result<Signer, RepoError> {
        private_home(gnupg_home)?;
        let key = secret_key.display().to_string();
        let mut show = gpg(gnupg_home);
        show.args(["--with-colons", "--import-options", "show-only", "--import"]).arg(secret_key);
        let listing = GPG.run(&mut show, "read the signing key")?;
        let fingerprint = one_signing_key(&String::from_utf8_lossy(&listing.stdout), "sec", &key)?;
        let mut import = gpg(gnupg_home);
        import.arg("--import").arg(secret_key);
        GPG.run(&mut import, "import the signing key")?;
        Ok(Signer { gnupg_home: gnupg_home.into(), fingerprint, passphrase_file: passphrase_file.map(Into::into) })
    }

    /// Signs with the secret key `key_id` (fingerprint, long key id or user id) already in
    /// the keyring `gnupg_home`; it must name exactly one key that can sign.
    pub fn from_keyring(gnupg_home: &Path, key_id: &str, passphrase_file: Option<&Path>) -> Result<Signer, RepoError> {
        let mut list = gpg(gnupg_home);
        list.args(["--with-colons", "--list-secret-keys", "--", key_id]);
        let listing = list.output().map_err(RepoError::io("run gpg on", gnupg_home))?;
        if !listing.status.success() {
            return Err(RepoError::BadKey {
                key: key_id.into(),
                reason: format!("no secret key of that name in {}", gnupg_home.display()),
            });
        }
        let fingerprint = one_signing_key(&String::from_utf8_lossy(&listing.stdout), "sec", key_id)?;
        Ok(Signer { gnupg_home: gnupg_home.into(), fingerprint, passphrase_file: passphrase_file.map(Into::into) })
    }

    /// The signing key's fingerprint (40 upper-case hex digits).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The `GNUPGHOME` the key lives in.
    pub fn gnupg_home(&self) -> &Path {
        &self.gnupg_home
    }

    /// The public key, armored: what clients put in `/etc/apt/keyrings/` (`signed-by=`) or a
    /// `.repo` file's `gpgkey=`. Every generation also carries it as `signing-key.asc`.
    pub fn public_key_armored(&self) -> Result<String, RepoError> {
        let mut export = gpg(&self.gnupg_home);
        export.args(["--armor", "--export", &self.fingerprint]);
        let out = GPG.run(&mut export, "export the public signing key")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.contains("BEGIN PGP PUBLIC KEY BLOCK") {
            return Err(RepoError::BadKey {
                key: self.fingerprint.clone(),
                reason: "gpg exported no public key".into(),
            });
        }
        Ok(text)
    }

    /// Ends the gpg-agent that signing started for this `GNUPGHOME` (gpg starts one on
    /// demand and leaves it running). Harmless when none runs.
    pub fn stop_agent(&self) {
        let mut kill = GPGCONF.command();
        kill.arg("--homedir").arg(&self.gnupg_home).args(["--kill", "gpg-agent"]);
        let _ = kill.output();
    }

    /// Signs `input` into `output` (replaced when present).
    pub(crate) fn sign(&self, input: &Path, output: &Path, kind: SignatureKind) -> Result<(), RepoError> {
        let mut cmd = gpg(&self.gnupg_home);
        cmd.args(["--yes", "--pinentry-mode", "loopback", "--digest-algo", "SHA512"]);
        if let Some(p) = &self.passphrase_file {
            cmd.arg("--passphrase-file").arg(p);
        }
        cmd.args(["--local-user", &self.fingerprint]);
        match kind {
            SignatureKind::Clearsigned => cmd.arg("--clearsign"),
            SignatureKind::DetachedArmored => cmd.args(["--armor", "--detach-sign"]),
        };
        cmd.arg("--output").arg(output).arg(input);
        GPG.run(&mut cmd, &format!("sign {}", input.display()))?;
        Ok(())
    }
}

/// `gpg --homedir <home> --batch`, nothing from the environment's GnuPG settings.
fn gpg(home: &Path) -> Command {
    let mut c = GPG.command();
    c.arg("--homedir").arg(home).args(["--batch", "--no-tty", "--no-options"]);
    c
}

/// Creates `home` if needed and makes it private: gpg refuses (warns about) homes that
/// others can read.
fn private_home(home: &Path) -> Result<(), RepoError> {
    std::fs::create_dir_all(home).map_err(RepoError::io("create the gpg home", home))?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
        .map_err(RepoError::io("make private the gpg home", home))
}

/// The fingerprint of the one primary key (record type `primary`: `sec` or `pub`) in a
/// `--with-colons` listing; it must be able to sign (capital `S` in field 12: the key with
/// its subkeys).
fn one_signing_key(colons: &str, primary: &str, key: &str) -> Result<String, RepoError> {
    let bad = |reason: &str| RepoError::BadKey { key: key.into(), reason: reason.into() };
    let mut keys: Vec<(String, bool)> = Vec::new();
    let mut want_fpr = false;
    for line in colons.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first().copied() {
            Some(t) if t == primary => {
                let can_sign = fields.get(11).is_some_and(|c| c.contains('S'));
                keys.push((String::new(), can_sign));
                want_fpr = true;
            }
            Some("fpr") if want_fpr => {
                if let (Some(last), Some(fpr)) = (keys.last_mut(), fields.get(9)) {
                    last.0 = fpr.to_ascii_uppercase();
                }
                want_fpr = false;
            }
            _ => {}
        }
    }
    match keys.as_slice() {
        [] => Err(bad("it holds no secret key")),
        [(fpr, true)] if !fpr.is_empty() => Ok(fpr.clone()),
        [(_, false)] => Err(bad("the key cannot sign (no signing capability)")),
        [_] => Err(bad("gpg listed no fingerprint")),
        _ => Err(bad("it names more than one key; name one by its fingerprint")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_one_signing_key() {
        let listing = "sec:u:255:22:AAAABBBBCCCCDDDD:1700000000:::u:::scESC:::+:::ed25519:::0:\n\
                       fpr:::::::::0123456789abcdef0123456789abcdef01234567:\n\
                       uid:u::::1700000000::X::Repo <repo@example.invalid>::::::::::0:\n";
        assert_eq!(one_signing_key(listing, "sec", "k").unwrap(), "0123456789ABCDEF0123456789ABCDEF01234567");
        let encrypt_only = listing.replace("scESC", "eE");
        assert!(matches!(one_signing_key(&encrypt_only, "sec", "k"), Err(RepoError::BadKey { .. })));
        let two = format!("{listing}{listing}");
        assert!(matches!(one_signing_key(&two, "sec", "k"), Err(RepoError::BadKey { .. })));
        assert!(matches!(one_signing_key("", "sec", "k"), Err(RepoError::BadKey { .. })));
    }
}
