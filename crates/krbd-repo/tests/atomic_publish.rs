//! A publish is atomic for readers and survives `kill -9`.
//!
//! - Readers fetch `InRelease` and then every index it lists (by hash, as apt does with
//!   `Acquire-By-Hash: yes`) and every package file the index lists, over HTTP from
//!   127.0.0.1, while publishes run: every hash always matches; `apt-get update` run over
//!   and over at the same time always succeeds.
//! - A child process publishing is killed (SIGKILL) at each step it reports and at
//!   arbitrary times: the repository stays consistent and apt reads it, and the next
//!   publish cleans up and succeeds.

mod common;

use common::{text, throwaway_signer, AptRoot};
use krbd_progress::{Listener, Silent, Unit};
use krbd_repo::{meta_deb, AptRepo, KernelMeta, LineMeta, Signer};
use krbd_testsupport::http::StaticServer;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "KRBD_REPO_TEST_CHILD";

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

/// A small real .deb per number (the line meta package at version `1.<n>`).
fn deb(n: u32, dir: &Path) -> PathBuf {
    let kernel = KernelMeta {
        package: "linux-image-amd64".into(),
        version: format!("1.{n}"),
        release: format!("6.1.0-{n}-amd64"),
    };
    meta_deb(&LineMeta { kernel, maintainer: "Test <test@example.invalid>".into() }, dir).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    krbd_formats::digest::sha256_hex(bytes)
}

/// Reads the repository as apt would, through `fetch` (a path under the root → its bytes):
/// InRelease, then each index it lists by hash, then each package file the index lists.
/// Returns InRelease's hash (which generation was read) or what did not match.
fn check_consistent(fetch: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<String, String> {
    let dist = "current/dists/bookworm";
    let inrelease = fetch(&format!("{dist}/InRelease")).ok_or("no InRelease")?;
    let text = String::from_utf8_lossy(&inrelease).into_owned();
    let section = text.split("SHA256:\n").nth(1).ok_or("no SHA256 section")?;
    let entries: Vec<(&str, usize, &str)> = section
        .lines()
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?.parse().ok()?, f.next()?))
        })
        .collect();
    if entries.is_empty() {
        return Err("InRelease lists no files".into());
    }
    let mut packages = None;
    for (sha, size, name) in entries {
        let (folder, _) = name.rsplit_once('/').ok_or("a bare file name")?;
        let got =
            fetch(&format!("{dist}/{folder}/by-hash/SHA256/{sha}")).ok_or(format!("{name} by hash {sha}: missing"))?;
        if sha256(&got) != sha || got.len() != size {
            return Err(format!("{name}: by-hash content does not match {sha}"));
        }
        if name.ends_with("/Packages") {
            packages = Some(String::from_utf8_lossy(&got).into_owned());
        }
    }
    for stanza in packages.ok_or("no Packages index")?.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(&format!("{k}: "))).map(str::to_string);
        let (file, sha) = (field("Filename").ok_or("no Filename")?, field("SHA256").ok_or("no SHA256")?);
        let got = fetch(&format!("current/{file}")).ok_or(format!("{file}: missing"))?;
        if sha256(&got) != sha {
            return Err(format!("{file}: does not match its index"));
        }
    }
    Ok(sha256(&inrelease))
}

/// One HTTP GET to the test server; the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<Vec<u8>> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(conn, "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    answer.starts_with(b"HTTP/1.1 200").then(|| answer[split + 4..].to_vec())
}

#[test]
fn readers_see_one_generation_or_the_next_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (signer, public) = throwaway_signer(d, "atomic");
    let repo = repo(&d.join("repo"));
    repo.publish(&[deb(0, &d.join("debs"))], &signer, &Silent).unwrap();
    let server = StaticServer::start(&repo.root, None);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                let mut reads = 0;
                while !stop.load(Ordering::SeqCst) {
                    match check_consistent(&|p| http_get(port, p)) {
                        Ok(generation) => seen.insert(generation),
                        Err(e) => panic!("a reader saw an inconsistent repository: {e}"),
                    };
                    reads += 1;
                }
                (reads, seen.len())
            })
        })
        .collect();
    // And apt itself, updating again and again from the same repository.
    let apt = AptRoot::new(
        &d.join("apt"),
        &format!("deb [signed-by={}] {} bookworm main\n", public.display(), server.url("current")),
        "",
    );
    let apt_stop = stop.clone();
    let apt_reader = std::thread::spawn(move || {
        let mut updates = 0;
        while !apt_stop.load(Ordering::SeqCst) {
            let update = apt.apt_get(&["update"]);
            assert!(
                update.status.success() && !text(&update).contains("W:"),
                "apt-get update during publishes:\n{}",
                text(&update)
            );
            updates += 1;
        }
        updates
    });
    let publishes = 8;
    for n in 1..=publishes {
        let p = repo.publish(&[deb(n, &d.join("debs"))], &signer, &Silent).unwrap();
        assert_eq!(p.generation, u64::from(n) + 1);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(apt_reader.join().expect("apt reader") >= 2, "apt updated during the publishes");
    for r in readers {
        let (reads, generations) = r.join().expect("reader");
        assert!(generations >= 3, "readers saw {generations} generations in {reads} reads: publishes ran under them");
    }
    signer.stop_agent();
    let kept = std::fs::read_dir(repo.root.join("generations")).unwrap().count();
    assert_eq!(kept, krbd_repo::KEEP_GENERATIONS, "old generations are pruned");
    assert_eq!(repo.packages().unwrap().len(), publishes as usize + 1);
}

/// A listener that kills its own process (SIGKILL, as `kill -9` would) when a message
/// contains `at`.
struct KillAt(String);

impl KillAt {
    fn maybe_kill(&self, message: &str) {
        if message.contains(&self.0) {
            let _ = std::process::Command::new("kill").args(["-9", &std::process::id().to_string()]).status();
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

impl Listener for KillAt {
    fn warning(&self, m: &str) {
        self.maybe_kill(m);
    }
    fn info(&self, m: &str) {
        self.maybe_kill(m);
    }
    fn task_start(&self, name: &str, _: Option<u64>, _: Unit) {
        self.maybe_kill(name);
    }
    fn task_progress(&self, _: u64) {}
    fn task_finish(&self) {}
}

/// Run by the test below in a child process: one publish, with the kill point and inputs
/// from the environment (`root|gnupg home|fingerprint|deb|kill point`).
#[test]
#[ignore = "run as a child process by publish_killed_at_any_point_leaves_a_consistent_repository"]
fn child_publish() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let signer = Signer::from_keyring(Path::new(parts[1]), parts[2], None).unwrap();
    repo(Path::new(parts[0])).publish(&[PathBuf::from(parts[3])], &signer, &KillAt(parts[4].into())).unwrap();
}

fn spawn_child(repo: &AptRepo, signer: &Signer, deb: &Path, kill_at: &str) -> std::process::Child {
    let spec = format!(
        "{}|{}|{}|{}|{kill_at}",
        repo.root.display(),
        signer.gnupg_home().display(),
        signer.fingerprint(),
        deb.display()
    );
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_publish", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn publish_killed_at_any_point_leaves_a_consistent_repository() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (signer, public) = throwaway_signer(d, "crash");
    let repo = repo(&d.join("repo"));
    repo.publish(&[deb(0, &d.join("debs"))], &signer, &Silent).unwrap();
    let server = StaticServer::start(&repo.root, None);
    let apt = AptRoot::new(
        &d.join("apt"),
        &format!("deb [signed-by={}] {} bookworm main\n", public.display(), server.url("current")),
        "",
    );
    let on_disk = |p: &str| std::fs::read(repo.root.join(p)).ok();
    let n = AtomicUsize::new(1);
    let verify_after_kill = |what: &str| {
        check_consistent(&on_disk).unwrap_or_else(|e| panic!("after a kill {what}: {e}"));
        let update = apt.apt_get(&["update"]);
        assert!(
            update.status.success() && !text(&update).contains("W:"),
            "apt after a kill {what}:\n{}",
            text(&update)
        );
        // The next publish cleans up and publishes.
        let i = n.fetch_add(1, Ordering::SeqCst) as u32;
        let p = repo.publish(&[deb(1000 + i, &d.join("debs"))], &signer, &Silent).unwrap();
        let names: Vec<String> = std::fs::read_dir(repo.root.join("generations"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.parse::<u64>().is_ok()), "leftovers after the next publish: {names:?}");
        assert!(p.generation > 0 && repo.contains("krbd-forge-linux-image-amd64", &format!("1.{}", 1000 + i)).unwrap());
        check_consistent(&on_disk).unwrap();
    };
    // At each step the publish reports.
    let points = ["build generation", "indexing", "signing Release", "built", "in place", "is current"];
    for (i, point) in points.iter().enumerate() {
        let before = std::fs::read_link(repo.root.join("current")).unwrap();
        let status = spawn_child(&repo, &signer, &deb(100 + i as u32, &d.join("debs")), point).wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the child was killed at {point:?}"
        );
        let after = std::fs::read_link(repo.root.join("current")).unwrap();
        assert_eq!(before == after, *point != "is current", "{point}: current moves only with the switch");
        verify_after_kill(point);
    }
    // At arbitrary times.
    for (i, ms) in [5u64, 30, 80, 150, 300].iter().enumerate() {
        let mut child = spawn_child(&repo, &signer, &deb(200 + i as u32, &d.join("debs")), "(never)");
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        verify_after_kill(&format!("after {ms} ms"));
    }
    signer.stop_agent();
}
