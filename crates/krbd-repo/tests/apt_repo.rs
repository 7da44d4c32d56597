//! The APT repository as apt itself reads it: a private apt root on 127.0.0.1 updates from
//! the signed repository, downloads a published package with matching hashes, and refuses
//! the repository once its Release is tampered with or signed by another key.

mod common;

use common::{built_set, ship, text, throwaway_signer, AptRoot};
use krbd_progress::Silent;
use krbd_repo::AptRepo;
use krbd_testsupport::http::StaticServer;
use std::path::Path;

fn repo(root: &Path) -> AptRepo {
    AptRepo {
        root: root.to_path_buf(),
        codename: "bookworm".into(),
        component: "main".into(),
        architectures: vec!["amd64".into()],
        origin: "krbd-forge-test".into(),
        label: "krbd-forge".into(),
    }
}

fn sources(key: &Path, server: &StaticServer) -> String {
    format!("deb [signed-by={}] {} bookworm main\n", key.display(), server.url("current"))
}

#[test]
fn apt_verifies_the_signed_repository_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (signer, public) = throwaway_signer(d, "repo");
    let set = built_set(None, &d.join("out"));
    let deb = ship(&set, krbd_ship::Format::Deb, &d.join("debs"));
    let repo = repo(&d.join("repo"));

    let first = repo.publish(std::slice::from_ref(&deb), &signer, &Silent).expect("publish");
    assert_eq!((first.generation, first.added.len()), (1, 1), "{first:?}");
    let pkg = first.added[0].clone();
    assert!(repo.contains(&pkg.name, &pkg.version).unwrap());
    // The same file again: nothing to do, the generation stays.
    let again = repo.publish(std::slice::from_ref(&deb), &signer, &Silent).expect("publish again");
    assert_eq!((again.generation, again.added.len(), again.unchanged.len()), (1, 0, 1));

    let server = StaticServer::start(&repo.root, None);
    let apt = AptRoot::new(&d.join("apt"), &sources(&public, &server), "");
    let update = apt.apt_get(&["update"]);
    let out = text(&update);
    assert!(update.status.success() && !out.contains("W:") && !out.contains("E:"), "apt-get update:\n{out}");
    assert!(
        server.requests().iter().any(|r| r.contains("/current/dists/bookworm/InRelease")),
        "{:?}",
        server.requests()
    );
    assert!(
        server.requests().iter().any(|r| r.contains("/by-hash/SHA256/")),
        "indices by hash: {:?}",
        server.requests()
    );
    // apt downloads the package and checks it against the signed index.
    let got = d.join("got");
    std::fs::create_dir_all(&got).unwrap();
    let fetched = apt_download(&apt, &got, &format!("{}={}", pkg.name, pkg.version));
    assert_eq!(std::fs::read(fetched).unwrap(), std::fs::read(&deb).unwrap());
    signer.stop_agent();

    // Signed by another key than the one the sources line trusts: refused.
    let (_, stranger) = throwaway_signer(d, "stranger");
    let other = AptRoot::new(&d.join("apt-stranger"), &sources(&stranger, &server), "");
    let refused = other.apt_get(&["-o", "APT::Update::Error-Mode=any", "update"]);
    assert!(!refused.status.success(), "a repository signed by another key must be refused:\n{}", text(&refused));
    assert!(text(&refused).contains("NO_PUBKEY"), "{}", text(&refused));

    // Release tampered with (a hash changed, in InRelease and Release alike): refused.
    let dist = repo.root.join("current/dists/bookworm");
    for name in ["InRelease", "Release"] {
        let path = dist.join(name);
        let body = std::fs::read_to_string(&path).unwrap();
        let tampered = body.replacen("Origin: krbd-forge-test", "Origin: krbd-forge-evil", 1);
        assert_ne!(body, tampered);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, tampered).unwrap();
    }
    let fresh = AptRoot::new(&d.join("apt-tampered"), &sources(&public, &server), "");
    let refused = fresh.apt_get(&["-o", "APT::Update::Error-Mode=any", "update"]);
    assert!(!refused.status.success(), "a tampered Release must be refused:\n{}", text(&refused));
    assert!(text(&refused).contains("BADSIG"), "{}", text(&refused));
}

/// `apt-get download <spec>` into `into`; returns the one .deb it left there.
fn apt_download(apt: &AptRoot, into: &Path, spec: &str) -> std::path::PathBuf {
    let d = apt.dir.display().to_string();
    let out = std::process::Command::new("apt-get")
        .current_dir(into)
        .env("LC_ALL", "C.UTF-8")
        .args(["-o", &format!("Dir={d}"), "-o", &format!("Dir::State::status={d}/var/lib/dpkg/status")])
        .args(["-o", "APT::Architecture=amd64", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"])
        .args(["download", spec])
        .output()
        .unwrap();
    assert!(out.status.success(), "apt-get download {spec}:\n{}", text(&out));
    std::fs::read_dir(into)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("apt-get download left a .deb")
}

#[test]
fn a_published_version_never_changes_and_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (signer, _) = throwaway_signer(d, "conflict");
    let repo = repo(&d.join("repo"));
    let meta = |maintainer: &str, out: &str| {
        let kernel = krbd_repo::KernelMeta {
            package: "linux-image-amd64".into(),
            version: "6.1.1-1".into(),
            release: "6.1.0-1-amd64".into(),
        };
        krbd_repo::meta_deb(&krbd_repo::LineMeta { kernel, maintainer: maintainer.into() }, &d.join(out)).unwrap()
    };
    let first = meta("A <a@example.invalid>", "a");
    repo.publish(std::slice::from_ref(&first), &signer, &Silent).unwrap();
    // Same name, version and architecture, other bytes: refused, nothing changes.
    let other = meta("B <b@example.invalid>", "b");
    let err = repo.publish(&[other], &signer, &Silent).unwrap_err();
    assert!(matches!(err, krbd_repo::RepoError::Conflict { .. }), "{err}");
    assert_eq!(std::fs::read_link(repo.root.join("current")).unwrap(), Path::new("generations/1"));
    // The same bytes written again (meta_deb is reproducible): unchanged.
    let again = repo.publish(&[meta("A <a@example.invalid>", "c")], &signer, &Silent).unwrap();
    assert_eq!((again.generation, again.unchanged.len()), (1, 1));
    // A staging folder and an unswitched generation, as a killed publish leaves them.
    std::fs::create_dir_all(repo.root.join("generations/.staging-7/pool")).unwrap();
    std::fs::create_dir_all(repo.root.join("generations/5")).unwrap();
    let next = repo.publish(&[meta("A <a@example.invalid>", "a")], &signer, &Silent).unwrap();
    let mut removed = next.removed_generations.clone();
    removed.sort();
    assert_eq!(removed, [".staging-7", "5"]);
    // Not a .deb: refused before anything is touched.
    let junk = d.join("junk.deb");
    std::fs::write(&junk, b"not a package").unwrap();
    let err = repo.publish(&[junk], &signer, &Silent).unwrap_err();
    assert!(matches!(err, krbd_repo::RepoError::BadPackage { .. }), "{err}");
    signer.stop_agent();
}
