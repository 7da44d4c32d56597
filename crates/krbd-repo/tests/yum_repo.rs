//! The YUM/DNF repository as dnf itself reads it (dnf is a Debian package too): with
//! `repo_gpgcheck=1` it loads the signed metadata from 127.0.0.1 and lists the published
//! kmod RPM; a tampered repomd.xml, or a key it does not trust, makes it fail.

mod common;

use common::{built_set, ship, text, throwaway_signer};
use krbd_progress::Silent;
use krbd_repo::YumRepo;
use krbd_testsupport::http::StaticServer;
use std::path::Path;
use std::process::{Command, Output};

/// `dnf` in an install root of its own with one repository: ours.
fn dnf(dir: &Path, url: &str, key: &Path, args: &[&str]) -> Output {
    let repos = dir.join("repos.d");
    std::fs::create_dir_all(&repos).unwrap();
    let repo = format!(
        "[krbd-forge]\nname=krbd-forge test\nbaseurl={url}\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=1\ngpgkey=file://{}\nmetadata_expire=0\n",
        key.display()
    );
    std::fs::write(repos.join("krbd-forge.repo"), repo).unwrap();
    Command::new("dnf")
        .env("LC_ALL", "C.UTF-8")
        .arg(format!("--installroot={}", dir.join("root").display()))
        .arg(format!("--setopt=reposdir={}", repos.display()))
        .arg(format!("--setopt=cachedir={}", dir.join("cache").display()))
        .args(["--releasever=9", "--assumeyes", "--setopt=skip_if_unavailable=False"])
        .args(args)
        .output()
        .expect("run dnf")
}

#[test]
fn dnf_verifies_the_signed_repository_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (signer, public) = throwaway_signer(d, "yum");
    let set = built_set(None, &d.join("out"));
    let rpm = ship(&set, krbd_ship::Format::Rpm, &d.join("rpms"));
    let repo = YumRepo { root: d.join("repo") };
    let published = repo.publish(std::slice::from_ref(&rpm), &signer, &Silent).expect("publish");
    assert_eq!((published.generation, published.added.len()), (1, 1));
    let pkg = published.added[0].clone();
    assert!(repo.contains(&pkg.name, &pkg.version).unwrap());
    signer.stop_agent();

    let server = StaticServer::start(&repo.root, None);
    let url = server.url("current/");
    let ok = dnf(&d.join("dnf"), &url, &public, &["makecache"]);
    assert!(ok.status.success(), "dnf makecache:\n{}", text(&ok));
    assert!(
        server.requests().iter().any(|r| r.contains("repomd.xml.asc")),
        "signature fetched: {:?}",
        server.requests()
    );
    let query = dnf(&d.join("dnf"), &url, &public, &["repoquery", "--qf", "%{name} %{version}-%{release}", &pkg.name]);
    assert!(text(&query).contains(&format!("{} {}", pkg.name, pkg.version)), "dnf repoquery:\n{}", text(&query));

    // A key dnf was not given: refused.
    let (_, stranger) = throwaway_signer(d, "stranger");
    let refused = dnf(&d.join("dnf-stranger"), &url, &stranger, &["makecache"]);
    assert!(!refused.status.success(), "a repository signed by another key must be refused:\n{}", text(&refused));
    assert!(text(&refused).contains("repomd.xml GPG signature verification error"), "{}", text(&refused));

    // repomd.xml changed after signing: refused.
    let repomd = repo.root.join("current/repodata/repomd.xml");
    let body = std::fs::read_to_string(&repomd).unwrap();
    std::fs::remove_file(&repomd).unwrap();
    std::fs::write(&repomd, body.replacen("<revision>", "<revision>1", 1).replacen("<repomd", "<repomd ", 1)).unwrap();
    let refused = dnf(&d.join("dnf-tampered"), &url, &public, &["makecache"]);
    assert!(!refused.status.success(), "a tampered repomd.xml must be refused:\n{}", text(&refused));
    assert!(text(&refused).contains("repomd.xml GPG signature verification error"), "{}", text(&refused));
}
