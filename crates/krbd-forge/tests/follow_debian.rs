//! `krbd-forge follow` against a local APT mirror served from 127.0.0.1: made with
//! apt-ftparchive from Debian's real packages of the two newest 6.12 ABIs that `targets`
//! lists, signed with a throwaway key. First only the older ABI is offered: follow builds,
//! proves (check, boot-test --cluster) and publishes it; a rerun does nothing; then the
//! newer ABI appears and follow is killed (SIGKILL, through the test-hooks crash point) at
//! every stage boundary and in publish, each next run going one step further, until the
//! newer one is published too (its boot test run once). A series that does not apply
//! fails every release, which is recorded with its reason and not published. `follow plan`'s
//! jobs, run as plain command lines in another folder, are published by `follow publish`. A
//! second run beside a running one exits 21. Follow killed while its build child compiles
//! leaves nothing running and resumes into a fresh folder, publishing once; a failed release
//! waits for `follow retry`.

mod common;

use common::{forge, run, two_newest_612};
use krbd_testsupport::http::StaticServer;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One ABI's packages, as `targets RELEASE --json` resolves them.
struct Abi {
    release: String,
    debs: Vec<PathBuf>,
}

/// The five packages of `release`, from the shared caches (downloaded once when missing).
fn abi(release: &str) -> Abi {
    let out = forge().args(["targets", release, "--json"]).output().expect("resolve");
    let t: Value = serde_json::from_slice(&out.stdout).expect("targets RELEASE --json");
    let debs = ["headers", "headers_common", "kbuild", "image", "source"]
        .iter()
        .map(|role| {
            let p = &t[role];
            let cached = common::cache_dir().join("debs").join(format!("{}.deb", p["sha256"].as_str().unwrap()));
            if cached.is_file() {
                cached
            } else {
                krbd_testsupport::debian_package(p["name"].as_str().unwrap(), p["version"].as_str())
            }
        })
        .collect();
    Abi { release: release.to_string(), debs }
}

/// The distribution's kernel meta package of `abi`'s line (`linux-image-6.12-amd64`) when
/// apt offers it at exactly `abi`'s version (apt keeps only the newest meta version).
fn line_meta_deb(abi: &Abi) -> Option<PathBuf> {
    let mut parts = abi.release.split(['.', '-', '+']);
    let name = format!("linux-image-{}.{}-amd64", parts.next()?, parts.next()?);
    let version = abi.debs.iter().find_map(|d| {
        let out = Command::new("dpkg-deb").args(["-f"]).arg(d).arg("Version").output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    })?;
    let shown = Command::new("apt-cache").args(["show", "--no-all-versions", &name]).output().ok()?;
    let offered = String::from_utf8_lossy(&shown.stdout).lines().any(|l| l == format!("Version: {version}"));
    offered.then(|| krbd_testsupport::debian_package(&name, Some(&version)))
}

/// A signed APT mirror in a folder, served from 127.0.0.1.
struct Mirror {
    root: PathBuf,
    gnupg: PathBuf,
    server: StaticServer,
}

impl Mirror {
    fn new(dir: &Path) -> Mirror {
        let root = dir.join("mirror");
        let gnupg = dir.join("gnupg");
        std::fs::create_dir_all(root.join("pool/main")).unwrap();
        std::fs::create_dir_all(root.join("dists/bookworm/main/binary-amd64")).unwrap();
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        for uid in ["krbd test archive <archive@localhost>", "krbd test repository <repo@localhost>"] {
            run(Command::new("gpg").env("GNUPGHOME", &gnupg).args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign",
                "never",
            ]));
        }
        let public =
            run(Command::new("gpg").env("GNUPGHOME", &gnupg).args(["--armor", "--export", "archive@localhost"]));
        std::fs::write(dir.join("archive.asc"), public).unwrap();
        let secret = run(Command::new("gpg").env("GNUPGHOME", &gnupg).args([
            "--armor",
            "--export-secret-keys",
            "repo@localhost",
        ]));
        std::fs::write(dir.join("repo-secret.asc"), secret).unwrap();
        let server = StaticServer::start(&root, None);
        Mirror { root, gnupg, server }
    }

    /// Adds `abi`'s packages (hard links into the pool) and regenerates the signed index.
    fn offer(&self, abi: &Abi) {
        for deb in &abi.debs {
            let name = format!("{}.deb", krbd_formats::digest::sha256_file(deb, |_| {}).unwrap());
            let dest = self.root.join("pool/main").join(name);
            if !dest.exists() && std::fs::hard_link(deb, &dest).is_err() {
                std::fs::copy(deb, &dest).unwrap();
            }
        }
        let packages = run(Command::new("apt-ftparchive").arg("packages").arg("pool").current_dir(&self.root));
        let dists = self.root.join("dists/bookworm");
        std::fs::write(dists.join("main/binary-amd64/Packages"), packages).unwrap();
        let release = run(Command::new("apt-ftparchive")
            .args([
                "-o",
                "APT::FTPArchive::Release::Codename=bookworm",
                "-o",
                "APT::FTPArchive::Release::Suite=bookworm",
            ])
            .args([
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64",
            ])
            .args(["release", "dists/bookworm"])
            .current_dir(&self.root));
        std::fs::write(dists.join("Release"), release).unwrap();
        for (flag, out) in [("--clearsign", "InRelease"), ("--detach-sign", "Release.gpg")] {
            let _ = std::fs::remove_file(dists.join(out));
            run(Command::new("gpg")
                .env("GNUPGHOME", &self.gnupg)
                .args(["--batch", "--armor", "-u", "archive@localhost", flag, "-o", out, "Release"])
                .current_dir(&dists));
        }
    }
}

/// A follow configuration in `dir` following the mirror's 6.12 line.
fn config(dir: &Path, mirror: &Mirror, extra: &str, boot_test: bool) -> PathBuf {
    let text = format!(
        "state_dir = \"state\"\ncache_dir = \"{cache}\"\n{extra}\n\
         [proofs]\nboot_test_cluster = {boot_test}\n\
         [publish]\napt_dir = \"repo/apt\"\nsigning_key = \"{key}\"\n\
         [[debian]]\nmirror = \"{url}\"\nsuites = [\"bookworm\"]\narchive_key = \"{archive}\"\nseries = [\"6.12\"]\n",
        cache = common::cache_dir().display(),
        key = mirror.root.parent().unwrap().join("repo-secret.asc").display(),
        archive = mirror.root.parent().unwrap().join("archive.asc").display(),
        url = mirror.server.url("/"),
    );
    let path = dir.join("follow.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// `follow` with `args`; returns the exit status, stdout's JSON and stderr.
fn follow(config: &Path, args: &[&str], crash_at: Option<&str>) -> (std::process::ExitStatus, Value, String) {
    let mut cmd = forge();
    cmd.arg("follow").args(args).arg("--config").arg(config).arg("--json");
    if let Some(point) = crash_at {
        cmd.env("KRBD_FOLLOW_CRASH_AT", point);
    }
    let out = cmd.output().expect("run follow");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status, json, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn status(config: &Path) -> Vec<Value> {
    let (st, json, err) = follow(config, &["status"], None);
    assert!(st.success(), "status: {err}");
    json["releases"].as_array().cloned().unwrap_or_default()
}

fn release_row<'a>(rows: &'a [Value], release: &str) -> &'a Value {
    rows.iter().find(|r| r["release"] == release).unwrap_or_else(|| panic!("{release} not in {rows:?}"))
}

/// The names of the packages the APT repository publishes now.
fn published(config: &Path) -> Vec<String> {
    let cfg = krbd_follow::FollowConfig::load(config).unwrap();
    let repo = krbd_follow::publish::Publisher::apt_repo(&cfg).unwrap();
    repo.packages().map(|p| p.into_iter().map(|p| p.name).collect()).unwrap_or_default()
}

/// What the phases of the test share.
struct Ctx {
    t0: Instant,
    dir: PathBuf,
    mirror: Mirror,
}

#[test]
fn follows_a_local_mirror_release_by_release() {
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new().prefix("krbd-follow-test.").tempdir().unwrap();
    let (older, newer) = two_newest_612();
    let (older, newer) = (abi(&older), abi(&newer));
    let mirror = Mirror::new(tmp.path());
    mirror.offer(&older);
    let ctx = Ctx { t0, dir: tmp.path().to_path_buf(), mirror };
    let cfg = config(&ctx.dir.join("follow"), &ctx.mirror, "", true);
    eprintln!("[{:>5.1} s] mirror ready, offering {}", t0.elapsed().as_secs_f64(), older.release);
    let rows = first_release_published(&ctx, &cfg, &older);
    rerun_does_nothing(&ctx, &cfg, &rows);
    let newer = newer_published_after_kills(&ctx, &cfg, &rows, &older, newer);
    a_series_that_does_not_apply_fails(&ctx);
    planned_jobs_run_elsewhere_are_published(&ctx, &newer);
}

/// Only the older ABI offered: built, checked, boot-tested, packaged, published.
fn first_release_published(ctx: &Ctx, cfg: &Path, older: &Abi) -> Vec<Value> {
    let (st, json, err) = follow(cfg, &["run"], None);
    assert!(st.success(), "first run: {err}\n{json}");
    assert_eq!(json["published"][0]["release"], older.release.as_str(), "{json}");
    let rows = status(cfg);
    let row = release_row(&rows, &older.release);
    assert_eq!(row["state"], "published");
    let stages: Vec<&str> = row["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["build", "check", "boot-test", "package", "publish"]);
    assert!(row["stages"].as_array().unwrap().iter().all(|s| s["verdict"] == "ok"), "{row}");
    assert!(row["inputs"].as_array().unwrap().iter().any(|i| i["role"] == "source"), "inputs recorded: {row}");
    let modules_pkg = format!("krbd-forge-modules-{}", older.release);
    assert!(published(cfg).contains(&modules_pkg), "{:?}", published(cfg));
    eprintln!("[{:>5.1} s] {} built, proven and published", ctx.t0.elapsed().as_secs_f64(), older.release);

    rows
}

fn rerun_does_nothing(ctx: &Ctx, cfg: &Path, rows: &[Value]) {
    let rerun = Instant::now();
    let (st, json, err) = follow(cfg, &["run"], None);
    assert!(st.success(), "rerun: {err}");
    assert_eq!((json["discovered"].as_array().unwrap().len(), json["published"].as_array().unwrap().len()), (0, 0));
    assert_eq!(json["already_handled"], 1);
    assert_eq!(status(cfg), rows, "a rerun changes nothing");
    eprintln!(
        "[{:>5.1} s] rerun: nothing to do ({:.1} s)",
        ctx.t0.elapsed().as_secs_f64(),
        rerun.elapsed().as_secs_f64()
    );
}

/// The newer ABI appears; follow is killed at every boundary until it is published.
fn newer_published_after_kills(ctx: &Ctx, cfg: &Path, rows: &[Value], older: &Abi, newer: Abi) -> Abi {
    let mut newer = newer;
    let meta = line_meta_deb(&newer);
    newer.debs.extend(meta.clone());
    ctx.mirror.offer(&newer);
    let crash_points = [
        "discovered",
        "staged:build",
        "recorded:build",
        "staged:check",
        "recorded:check",
        "staged:boot-test",
        "recorded:boot-test",
        "staged:package",
        "recorded:package",
        "published",
    ];
    for point in crash_points {
        let (st, _, err) = follow(cfg, &["run"], Some(point));
        assert_eq!(st.signal(), Some(9), "killed at {point}: {st:?}\n{err}");
        if point == "recorded:boot-test" {
            // The run before was killed with the boot test's results in place: recorded, not rerun.
            assert!(err.contains("boot-test: finished results found"), "adopted, not redone: {err}");
            assert!(!err.contains(&format!("boot-test {}", newer.release)), "no second boot test: {err}");
        }
        let row = status(cfg).into_iter().find(|r| r["release"] == newer.release.as_str()).expect("newer recorded");
        assert_eq!(row["state"], "pending", "after a kill at {point}: {row}");
        eprintln!("[{:>5.1} s] killed at {point}", ctx.t0.elapsed().as_secs_f64());
    }
    let (st, json, err) = follow(cfg, &["run"], None);
    assert!(st.success(), "the run after the kills: {err}\n{json}");
    assert_eq!(json["published"][0]["release"], newer.release.as_str(), "{json}");
    let after = status(cfg);
    assert_eq!(release_row(&after, &older.release), release_row(rows, &older.release), "the older one untouched");
    assert_eq!(release_row(&after, &newer.release)["state"], "published");
    assert!(published(cfg).contains(&format!("krbd-forge-modules-{}", newer.release)));
    if let Some(meta) = &meta {
        // The line's meta package follows the distribution's once its kernel is proven.
        let kernel_meta = meta.file_name().unwrap().to_str().unwrap().split('_').next().unwrap().to_string();
        assert!(published(cfg).contains(&format!("krbd-forge-{kernel_meta}")), "{:?}", published(cfg));
        assert_eq!(json["line_meta"].as_array().map(Vec::len), Some(1), "{json}");
    }
    eprintln!("[{:>5.1} s] {} published after 10 kills", ctx.t0.elapsed().as_secs_f64(), newer.release);

    newer
}

/// A series that does not apply (more context than the matcher's fuzz drops, none of it in
/// any kernel), in `dir`.
fn non_applying_series(dir: &Path) -> PathBuf {
    let bad = dir.join("bad-series");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("series"), "0001-no-such-context.patch\n").unwrap();
    std::fs::write(
        bad.join("0001-no-such-context.patch"),
        "From: test\nSubject: [PATCH] context that no kernel has\n\n---\n--- a/net/ceph/osdmap.c\n+++ b/net/ceph/osdmap.c\n\
         @@ -1,8 +1,9 @@\n no kernel has 1\n no kernel has 2\n no kernel has 3\n no kernel has 4\n+int krbd_never;\n          no kernel has 5\n no kernel has 6\n no kernel has 7\n no kernel has 8\n",
    )
    .unwrap();
    bad
}

fn a_series_that_does_not_apply_fails(ctx: &Ctx) {
    // Every release fails at build, with the reason, and is not published.
    let bad = non_applying_series(&ctx.dir);
    let bad_cfg = config(&ctx.dir.join("bad"), &ctx.mirror, &format!("series = \"{}\"", bad.display()), false);
    let (st, json, err) = follow(&bad_cfg, &["run"], None);
    assert_eq!(st.code(), Some(20), "{err}\n{json}");
    assert_eq!(json["failed"].as_array().unwrap().len(), 2, "{json}");
    for row in status(&bad_cfg) {
        assert_eq!(row["state"], "failed", "{row}");
        let reason = row["reason"].as_str().unwrap();
        assert!(reason.starts_with("build: ") && reason.contains("apply"), "{reason}");
        assert_eq!(row["stages"][0]["kind"], "patch", "{row}");
    }
    assert!(published(&bad_cfg).is_empty(), "nothing published");
    let (st, json, _) = follow(&bad_cfg, &["run"], None);
    assert!(st.success() && json["already_handled"] == 2, "failed releases are handled: {json}");
    eprintln!("[{:>5.1} s] a series that does not apply: both failed, recorded", ctx.t0.elapsed().as_secs_f64());
}

fn planned_jobs_run_elsewhere_are_published(ctx: &Ctx, newer: &Abi) {
    // The same work as CI jobs: plan, each job's command line run in a runner's folder with
    // the runner's own apt, the outputs published back.
    let ci_cfg = config(&ctx.dir.join("ci"), &ctx.mirror, "", false);
    let (st, plan, err) = follow(&ci_cfg, &["plan"], None);
    assert!(st.success(), "plan: {err}");
    let jobs = plan["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(jobs.len(), 6, "build, check and package of both releases: {ids:?}");
    assert_eq!(jobs[1]["needs"], jobs[0]["id"], "check needs build");
    let runner = ctx.dir.join("runner");
    let mut outputs = Vec::new();
    for job in jobs {
        let out = runner.join(job["output"].as_str().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("job.json"), job.to_string()).unwrap();
        let args: Vec<&str> = job["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let o = forge().args(&args).current_dir(&runner).output().unwrap();
        assert!(o.status.success(), "{}: {}", job["command"], String::from_utf8_lossy(&o.stderr));
        std::fs::write(out.join("result.json"), &o.stdout).unwrap();
        outputs.push(out);
    }
    let mut publish = vec!["publish"];
    publish.extend(outputs.iter().map(|o| o.to_str().unwrap()));
    let (st, json, err) = follow(&ci_cfg, &publish, None);
    assert!(st.success(), "publish of CI outputs: {err}\n{json}");
    assert_eq!(json["published"].as_array().unwrap().len(), 2, "{json}");
    for row in status(&ci_cfg) {
        let stages: Vec<&str> =
            row["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
        assert_eq!(
            (row["state"].as_str().unwrap(), stages),
            ("published", vec!["build", "check", "package", "publish"])
        );
    }
    assert!(published(&ci_cfg).contains(&format!("krbd-forge-modules-{}", newer.release)));
    eprintln!("[{:>5.1} s] planned jobs run elsewhere, published by follow publish", ctx.t0.elapsed().as_secs_f64());
}

#[test]
fn a_second_run_beside_a_running_one_exits_21() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("follow.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[publish]\napt_dir = \"repo\"\nsigning_key = \"k.asc\"\n\
         [[debian]]\nmirror = \"http://127.0.0.1:9/\"\nsuites = [\"bookworm\"]\narchive_key = \"a.asc\"\nseries = [\"6.12\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let lock = std::fs::File::create(dir.path().join("state/lock")).unwrap();
    lock.lock().unwrap();
    let (st, json, err) = follow(&cfg, &["run"], None);
    assert_eq!(st.code(), Some(21), "{err}");
    assert_eq!(json["error"]["kind"], "follow-locked", "{json}");
    assert!(err.contains("another follow run holds the lock"), "{err}");
    drop(lock);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(&cfg).unwrap().replace("suites", "suits")).unwrap();
    let (st, json, _) = follow(&bad, &["run"], None);
    assert_eq!(st.code(), Some(2));
    assert!(json["error"]["message"].as_str().unwrap().contains("suits"), "the unknown key is named: {json}");
}

/// A copy of the shipped series whose first patch's message carries a token of this run:
/// a series digest no cache has seen, so that the build really compiles.
fn fresh_series(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../patches/recovery-weight");
    let copy = dir.join("recovery-weight");
    run(Command::new("cp").arg("-r").arg(&shipped).arg(&copy));
    let variant = copy.join("linux-6.1-6.12");
    let first = std::fs::read_to_string(variant.join("series")).unwrap();
    let first = variant.join(first.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap().trim());
    let text = std::fs::read_to_string(&first).unwrap();
    let token = format!("\n\nTest-Run: {:?}\n---\n", std::time::SystemTime::now());
    std::fs::write(&first, text.replacen("\n---\n", &token, 1)).unwrap();
    copy
}

/// The command name of `pid` (`make`, `cc1`), if it still runs.
fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_string())
}

/// Polls `done` every 200 ms for up to `secs`; whether it came true.
fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + std::time::Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    done()
}

/// kill -9 of follow while its build child compiles: the child and its compilers end with
/// it, the lock goes with it, the half-done build is not taken as done, and the next run
/// builds again into a fresh folder and publishes the release once, with every recorded
/// artifact equal to the file on disk.
#[test]
fn a_run_killed_while_its_build_compiles_resumes_cleanly() {
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new().prefix("krbd-follow-midstage.").tempdir().unwrap();
    let (_, newest) = two_newest_612();
    let abi = abi(&newest);
    let mirror = Mirror::new(tmp.path());
    mirror.offer(&abi);
    let series = fresh_series(tmp.path());
    let cfg = config(&tmp.path().join("follow"), &mirror, &format!("series = \"{}\"", series.display()), false);
    let loaded = krbd_follow::FollowConfig::load(&cfg).unwrap();
    let log = std::fs::File::create(tmp.path().join("killed-run.log")).unwrap();
    // A std Command (assert_cmd's only runs to the end), with forge()'s environment.
    let mut killed = Command::new(assert_cmd::cargo::cargo_bin("krbd-forge"))
        .env("KRBD_FORGE_CACHE", common::cache_dir())
        .env_remove("XDG_CACHE_HOME")
        .args(["follow", "run", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let compiling = wait_until(900, || {
        krbd_follow::orphans::marked_processes(&loaded.state_dir)
            .into_iter()
            .any(|p| comm(p).is_some_and(|c| c == "make" || c.starts_with("cc1") || c == "gcc-12"))
    });
    let log_text = || std::fs::read_to_string(tmp.path().join("killed-run.log")).unwrap_or_default();
    assert!(compiling, "the build child compiles: {}", log_text());
    let running = krbd_follow::orphans::marked_processes(&loaded.state_dir);
    killed.kill().unwrap(); // SIGKILL
    assert_eq!(killed.wait().unwrap().signal(), Some(9));
    eprintln!(
        "[{:>5.1} s] follow killed while {} processes of its build ran",
        t0.elapsed().as_secs_f64(),
        running.len()
    );

    // The stage child gets SIGTERM with its parent's death, make with the child's, the
    // compilers from make: nothing of the killed attempt runs on, without any next run.
    let gone = wait_until(30, || krbd_follow::orphans::marked_processes(&loaded.state_dir).is_empty());
    let left: Vec<_> =
        krbd_follow::orphans::marked_processes(&loaded.state_dir).into_iter().map(|p| (p, comm(p))).collect();
    assert!(gone, "processes of the killed run still running: {left:?}");
    let lock = std::fs::File::open(loaded.state_dir.join("lock")).unwrap();
    lock.try_lock().expect("the kernel released the killed run's lock");
    drop(lock);
    let row = status(&cfg).into_iter().find(|r| r["release"] == newest.as_str()).expect("recorded");
    assert_eq!(
        (row["state"].as_str(), row["stages"][0]["verdict"].as_str()),
        (Some("pending"), Some("running")),
        "{row}"
    );
    let job = krbd_follow::run::job_root(&loaded.out_dir, &release_row_typed(&loaded, &newest));
    assert!(!job.join("build").exists(), "no build results from a killed build");
    eprintln!("[{:>5.1} s] children ended, lock free, build not done", t0.elapsed().as_secs_f64());

    let (st, json, err) = follow(&cfg, &["run"], None);
    assert!(st.success(), "the run after the kill: {err}\n{json}");
    assert_eq!(json["published"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["published"][0]["release"], newest.as_str(), "{json}");
    assert!(!err.contains("finished results found"), "the half-done build was redone, not adopted: {err}");
    consistent_after_resume(&loaded, &cfg, &newest, &job);
    let (st, json, _) = follow(&cfg, &["run"], None);
    assert!(st.success() && json["published"].as_array().is_some_and(Vec::is_empty), "published once: {json}");
    eprintln!("[{:>5.1} s] {newest} published once after the kill", t0.elapsed().as_secs_f64());
}

/// The state's row of `release` as the library reads it.
fn release_row_typed(config: &krbd_follow::FollowConfig, release: &str) -> krbd_follow::state::ReleaseRow {
    let state = krbd_follow::state::State::open(&krbd_follow::state_path(config)).unwrap();
    state.releases().unwrap().into_iter().find(|r| r.release == release).unwrap()
}

/// Every stage ok, every recorded artifact the file on disk, no attempt's folder left, and
/// the repository holding the package stage's .deb (one modules package, byte-equal).
fn consistent_after_resume(config: &krbd_follow::FollowConfig, cfg: &Path, release: &str, job: &Path) {
    let row = release_row_typed(config, release);
    assert_eq!(row.state, krbd_follow::state::ReleaseState::Published);
    for stage in &row.stages {
        assert_eq!(stage.verdict, krbd_follow::state::Verdict::Ok, "{stage:?}");
        for a in &stage.artifacts {
            let sha = krbd_formats::digest::sha256_file(&a.path, |_| {}).unwrap_or_default();
            assert_eq!(sha, a.sha256, "{} as recorded", a.path.display());
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(job)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "attempt folders left: {leftovers:?}");
    let package = row.stage("package").unwrap();
    let deb = package.artifacts.iter().find(|a| a.path.extension().is_some_and(|e| e == "deb")).expect("a .deb");
    let name = format!("krbd-forge-modules-{release}");
    let repo = krbd_follow::publish::Publisher::apt_repo(config).unwrap();
    let ours: Vec<_> = repo.packages().unwrap().into_iter().filter(|p| p.name == name).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].sha256, deb.sha256, "the published .deb is the package stage's");
    assert!(published(cfg).contains(&name));
}

/// A failed release is not worked again by later runs until `follow retry` marks it
/// pending; `status` says how; a release the state does not know is a usage error.
#[test]
fn a_failed_release_waits_for_retry() {
    let tmp = tempfile::Builder::new().prefix("krbd-follow-retry.").tempdir().unwrap();
    let (_, newest) = two_newest_612();
    let mirror = Mirror::new(tmp.path());
    mirror.offer(&abi(&newest));
    let bad = non_applying_series(tmp.path());
    let cfg = config(&tmp.path().join("follow"), &mirror, &format!("series = \"{}\"", bad.display()), false);
    let (st, json, err) = follow(&cfg, &["run"], None);
    assert_eq!(st.code(), Some(20), "{err}\n{json}");
    let (st, json, err) = follow(&cfg, &["run"], None);
    assert!(st.success() && json["already_handled"] == 1, "not worked again: {json}");
    assert!(!err.contains(&format!("build {newest}")), "no build: {err}");
    let row = release_row(&status(&cfg), &newest).clone();
    assert_eq!(row["retry"], format!("krbd-forge follow retry {newest}").as_str(), "{row}");
    let text = forge().args(["follow", "status", "--config"]).arg(&cfg).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("1 failed") && text.contains(&format!("follow retry {newest}")), "{text}");

    let (st, json, _) = follow(&cfg, &["retry", "6.12.0+deb12-nosuch"], None);
    assert_eq!((st.code(), json["error"]["kind"].as_str()), (Some(2), Some("usage")), "{json}");
    assert_eq!(release_row(&status(&cfg), &newest)["state"], "failed", "an unknown name changes nothing");
    let (st, json, err) = follow(&cfg, &["retry", "--all-failed"], None);
    assert!(st.success(), "{err}");
    assert_eq!(json["retried"][0]["release"], newest.as_str(), "{json}");
    assert_eq!(json["retried"][0]["from_stage"], "build", "{json}");
    assert_eq!(release_row(&status(&cfg), &newest)["state"], "pending");
    let (st, json, err) = follow(&cfg, &["run"], None);
    assert_eq!(st.code(), Some(20), "worked again, failing again: {err}\n{json}");
    assert!(err.contains(&format!("build {newest}")), "built again: {err}");
    assert_eq!(json["failed"][0]["release"], newest.as_str(), "{json}");
}
