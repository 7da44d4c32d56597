//! Shared by the repository tests: a throwaway signing key, module sets built through the
//! shared test cache and packed by krbd-ship, a private apt root, and running tools.

#![allow(dead_code)]

use krbd_repo::Signer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use krbd_testsupport::run_ok as run;

/// stdout and stderr of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A throwaway ed25519 key made in one gpg home, exported armored and imported through
/// [`Signer::import`] into `dir/gnupg` (a short path: gpg-agent's socket lives there).
/// Returns the signer and the armored public key's file.
pub fn throwaway_signer(dir: &Path, name: &str) -> (Signer, PathBuf) {
    let maker = dir.join(format!("{name}-maker"));
    std::fs::create_dir_all(&maker).unwrap();
    let gpg = |home: &Path| {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(home).args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]);
        c
    };
    run(gpg(&maker).args([
        "--quick-gen-key",
        &format!("krbd-forge test {name} <{name}@example.invalid>"),
        "ed25519",
        "sign",
        "never",
    ]));
    let secret = dir.join(format!("{name}-secret.asc"));
    run(gpg(&maker).arg("--armor").arg("--output").arg(&secret).args(["--export-secret-keys"]));
    let _ = Command::new("gpgconf").arg("--homedir").arg(&maker).args(["--kill", "gpg-agent"]).status();
    let signer = Signer::import(&secret, &dir.join(format!("{name}-gpg")), None).expect("import the throwaway key");
    let public = dir.join(format!("{name}.asc"));
    std::fs::write(&public, signer.public_key_armored().expect("export the public key")).unwrap();
    // The import started an agent; signing starts it again on demand.
    signer.stop_agent();
    (signer, public)
}

pub fn cache_root() -> PathBuf {
    krbd_testsupport::test_cache_dir().join("forge-cache")
}

/// The out folder of a set built (unpatched) for `release` through the shared test cache;
/// `None`: the default target. A cache hit once any test has built it.
pub fn built_set(release: Option<&str>, dir: &Path) -> PathBuf {
    let opts = krbd_build::BuildOptions {
        inputs: krbd_build::Inputs::Debian { release: release.map(|r| r.parse().expect("a kernel release")) },
        source_tarball: None,
        series: None,
        out_root: dir.to_path_buf(),
        cache: krbd_fetch::cache::Cache::open(cache_root()).expect("open the test cache"),
        jobs: 2,
    };
    krbd_build::build(&opts, &krbd_progress::Silent).expect("build the set").out
}

/// krbd-ship's package of `format` for the set in `set_out`, written into `dir`.
pub fn ship(set_out: &Path, format: krbd_ship::Format, dir: &Path) -> PathBuf {
    let opts = krbd_ship::PackageOptions {
        format,
        compression: krbd_ship::Compression::Xz,
        out_dir: dir.to_path_buf(),
        mtime: Some(1_700_000_000),
        maintainer: "Test Maintainer <test@example.invalid>".into(),
        installer: None,
        cache_root: None,
        host_docs: None,
        debug: false,
        signing: None,
    };
    krbd_ship::package(set_out, &opts, &krbd_progress::Silent).expect("package the set").path
}

/// `apt-cache show <spec>`'s records from the host's real Debian index, one per version.
pub fn apt_records(spec: &str) -> Vec<String> {
    let out = run(Command::new("apt-cache").args(["show", spec]));
    out.split("\n\n").map(str::trim).filter(|r| !r.is_empty()).map(|r| format!("{r}\n")).collect()
}

/// A field of a deb822 record.
pub fn field<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// An apt configuration of its own under one folder: sources, lists, cache, dpkg status;
/// nothing of the host's apt state is read or written.
pub struct AptRoot {
    pub dir: PathBuf,
}

impl AptRoot {
    /// `sources`: the sources.list lines; `status`: the dpkg status file's text.
    pub fn new(dir: &Path, sources: &str, status: &str) -> AptRoot {
        for d in ["etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for d in ["var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("etc/apt/sources.list"), sources).unwrap();
        std::fs::write(dir.join("var/lib/dpkg/status"), status).unwrap();
        AptRoot { dir: dir.into() }
    }

    /// `apt-get` with this root's configuration; not checked.
    pub fn apt_get(&self, args: &[&str]) -> Output {
        let d = self.dir.display();
        Command::new("apt-get")
            .env("LC_ALL", "C.UTF-8")
            .args(["-o", &format!("Dir={d}"), "-o", &format!("Dir::State::status={d}/var/lib/dpkg/status")])
            .args(["-o", &format!("Dir::Etc::Trusted={d}/etc/apt/trusted.gpg")])
            .args(["-o", &format!("Dir::Etc::TrustedParts={d}/etc/apt/trusted.gpg.d")])
            .args(["-o", "APT::Architecture=amd64", "-o", "APT::Architectures=amd64"])
            .args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=0"])
            .args(["-o", "Acquire::Languages=none", "-o", "APT::Get::List-Cleanup=0"])
            .args(args)
            .output()
            .expect("run apt-get")
    }
}
