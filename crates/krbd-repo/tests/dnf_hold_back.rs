//! What dnf holds back with the RPM meta package (docs/repositories.md): kernels are
//! installonly, so only the meta package's `Conflicts` on newer kernels keep one out.
//!
//! The kernel side is small packages built with rpmbuild in RHEL's shape (`kernel`
//! requiring `kernel-core` of its version, `kernel-core` providing `kernel-uname-r` and
//! `installonlypkg(kernel)`), with kmods pinned like krbd-ship's (`kernel-uname-r =`); the
//! meta packages are `meta_rpm`'s, published with the kmods into our signed YUM repository
//! on 127.0.0.1; dnf 4 resolves in an install root of its own.

mod common;

use common::{run, text, throwaway_signer};
use krbd_progress::Silent;
use krbd_repo::{kmod_package_name, meta_rpm, RpmKernel, YumRepo};
use krbd_testsupport::http::StaticServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Two kernels of one stream, older first (synthetic, shaped like el9's).
const KERNELS: [(&str, &str); 2] = [("5.14.0", "100.el9"), ("5.14.0", "200.el9")];

fn uname(v: &str, r: &str) -> String {
    format!("{v}-{r}.x86_64")
}

/// An empty package with these header lines, built by rpmbuild into `out`.
fn shaped_rpm(out: &Path, name: &str, version: &str, release: &str, lines: &str) -> PathBuf {
    let work = out.join(format!(".{name}-{version}-{release}"));
    std::fs::create_dir_all(&work).unwrap();
    let spec = work.join("p.spec");
    std::fs::write(&spec, format!("Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: shaped\nLicense: GPL\nBuildArch: x86_64\n{lines}\n%description\nshaped\n%files\n")).unwrap();
    run(Command::new("rpmbuild")
        .args(["-bb", "--quiet", "--define", &format!("_topdir {}", work.display())])
        .args([
            "--define",
            &format!("_rpmdir {}", out.display()),
            "--define",
            "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm",
        ])
        .arg(&spec));
    out.join(format!("{name}-{version}-{release}.x86_64.rpm"))
}

fn dnf(dir: &Path, repos: &str, args: &[&str]) -> Output {
    let reposdir = dir.join("repos.d");
    std::fs::create_dir_all(&reposdir).unwrap();
    std::fs::write(reposdir.join("test.repo"), repos).unwrap();
    Command::new("dnf")
        .env("LC_ALL", "C.UTF-8")
        .arg(format!("--installroot={}", dir.join("root").display()))
        .arg(format!("--setopt=reposdir={}", reposdir.display()))
        .arg(format!("--setopt=cachedir={}", dir.join("cache").display()))
        // --refresh: metadata_expire=0 alone still trusts a cache written in the same second
        // (its age, 0 s, is not over 0), so a publish right after a dnf run went unseen.
        .args(["--releasever=9", "--assumeyes", "--refresh", "--setopt=metadata_expire=0"])
        .args(args)
        .output()
        .expect("run dnf")
}

fn installed(dir: &Path) -> Vec<String> {
    let out = run(Command::new("rpm").arg("--root").arg(dir.join("root")).args([
        "-qa",
        "--qf",
        "%{NAME}-%{VERSION}-%{RELEASE}\n",
    ]));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn dnf_keeps_a_kernel_without_a_proven_set_out_and_installs_one_with_its_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let distro = d.join("distro");
    let ours = d.join("ours");
    let mut kmods = Vec::new();
    let mut metas = Vec::new();
    for (v, r) in KERNELS {
        let u = uname(v, r);
        shaped_rpm(
            &distro,
            "kernel-core",
            v,
            r,
            &format!("Provides: kernel-uname-r = {u}\nProvides: installonlypkg(kernel)"),
        );
        shaped_rpm(
            &distro,
            "kernel",
            v,
            r,
            &format!("Requires: kernel-core = {v}-{r}\nProvides: installonlypkg(kernel)"),
        );
        kmods.push(shaped_rpm(&ours, &kmod_package_name(&u), "0.1.0", "1", &format!("Requires: kernel-uname-r = {u}")));
        metas.push(meta_rpm(&RpmKernel { release: u }, &ours).expect("meta rpm"));
    }
    // Built again for the same kernel: the same bytes (a republish is no conflict).
    let again = meta_rpm(&RpmKernel { release: uname(KERNELS[0].0, KERNELS[0].1) }, &d.join("again")).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&metas[0]).unwrap(), "meta_rpm is reproducible");
    run(Command::new("createrepo_c").arg("--quiet").arg(&distro));

    let (signer, public) = throwaway_signer(d, "dnfhold");
    let repo = YumRepo { root: d.join("repo") };
    repo.publish(&[kmods[0].clone(), metas[0].clone()], &signer, &Silent).unwrap();
    let server = StaticServer::start(&repo.root, None);
    let repos = format!(
        "[distro]\nname=distro\nbaseurl=file://{}\ngpgcheck=0\n\n[krbd-forge]\nname=krbd-forge\nbaseurl={}\ngpgcheck=0\nrepo_gpgcheck=1\ngpgkey=file://{}\n",
        distro.display(),
        server.url("current/"),
        public.display()
    );
    let (v0, r0) = KERNELS[0];
    let (v1, r1) = KERNELS[1];
    let host = d.join("host");
    let first = dnf(&host, &repos, &["install", &format!("kernel-{v0}-{r0}"), "krbd-forge-kernel"]);
    assert!(first.status.success(), "dnf install:\n{}", text(&first));
    let before = installed(&host);
    assert!(before.contains(&format!("krbd-forge-kernel-{v0}-{r0}")), "{before:?}");

    // No proven set for the newer kernel: best=False skips it, best=True refuses the upgrade.
    let skip = dnf(&host, &repos, &["--setopt=best=False", "upgrade"]);
    assert!(skip.status.success() && text(&skip).contains("Skipping packages with conflicts"), "{}", text(&skip));
    let strict = dnf(&host, &repos, &["--setopt=best=True", "upgrade"]);
    assert!(!strict.status.success() && text(&strict).contains("conflicts with kernel"), "{}", text(&strict));
    assert_eq!(installed(&host), before, "the host stays on its proven pair");

    // The proven set for the newer kernel: one transaction brings kernel, kmod and meta.
    repo.publish(&[kmods[1].clone(), metas[1].clone()], &signer, &Silent).unwrap();
    signer.stop_agent();
    let up = dnf(&host, &repos, &["--setopt=best=True", "upgrade"]);
    assert!(up.status.success(), "dnf upgrade:\n{}", text(&up));
    let after = installed(&host);
    for want in [
        format!("kernel-core-{v1}-{r1}"),
        format!("{}-0.1.0-1", kmod_package_name(&uname(v1, r1))),
        format!("krbd-forge-kernel-{v1}-{r1}"),
    ] {
        assert!(after.contains(&want), "{want} installed by the upgrade: {after:?}\n{}", text(&up));
    }
    assert!(after.contains(&format!("kernel-core-{v0}-{r0}")), "the older kernel stays (installonly): {after:?}");
}
