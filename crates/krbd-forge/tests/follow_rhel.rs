//! `krbd-forge follow` of an RHEL-family line against a local YUM mirror served from
//! 127.0.0.1: a binary repository listing kernel-devel RPMs and a source repository
//! listing the kernel source RPMs, both made by createrepo_c over the real RPM fixtures of
//! rhel_build.rs (Debian's kernel of the default target repackaged with rpmbuild), the
//! binary one's repomd.xml signed with a throwaway archive key. First one kernel-devel is
//! offered: follow builds it from exactly those packages (`build --repo`), checks it against
//! the kernel-devel's symbols, packages a kmod RPM and publishes it with the meta package
//! pinning its kernel into the signed YUM repository, where dnf (repo_gpgcheck) sees both. A rerun does nothing. Then a second
//! kernel-devel and one whose source RPM no repository has appear: `follow plan` lists their
//! jobs (no boot test), the second is built and published alone, the third is recorded as
//! failed with its reason and not published. A repomd.xml changed after signing stops
//! discovery. Every URL the build could fall back to (the vaults) points at the local server.

mod common;

use common::rhel::{fixture, fixture_release, Target};
use common::{forge, run};
use krbd_testsupport::http::StaticServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The binary (`bin/`) and source (`src/`) repositories, an empty `vault/`, served.
struct Mirror {
    www: PathBuf,
    gnupg: PathBuf,
    server: StaticServer,
}

impl Mirror {
    fn new(dir: &Path) -> Mirror {
        let www = dir.join("www");
        for d in ["bin/Packages", "src/Packages", "vault"] {
            std::fs::create_dir_all(www.join(d)).unwrap();
        }
        let gnupg = dir.join("gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let gpg = |args: &[&str]| run(Command::new("gpg").env("GNUPGHOME", &gnupg).arg("--batch").args(args));
        for uid in ["krbd test archive <archive@localhost>", "krbd test repository <repo@localhost>"] {
            gpg(&["--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"]);
        }
        std::fs::write(dir.join("archive.asc"), gpg(&["--armor", "--export", "archive@localhost"])).unwrap();
        std::fs::write(dir.join("repo.asc"), gpg(&["--armor", "--export", "repo@localhost"])).unwrap();
        let secret = gpg(&["--armor", "--export-secret-keys", "repo@localhost"]);
        std::fs::write(dir.join("repo-secret.asc"), secret).unwrap();
        let server = StaticServer::start(&www, None);
        Mirror { www, gnupg, server }
    }

    /// Adds RPMs (hard links) to `repo` (`bin` or `src`) and regenerates its repodata; the
    /// binary repository's repomd.xml is signed.
    fn offer(&self, repo: &str, rpms: &[PathBuf]) {
        for rpm in rpms {
            let dest = self.www.join(repo).join("Packages").join(rpm.file_name().unwrap());
            if !dest.exists() && std::fs::hard_link(rpm, &dest).is_err() {
                std::fs::copy(rpm, &dest).unwrap();
            }
        }
        run(Command::new("createrepo_c").arg("--quiet").arg(self.www.join(repo)));
        if repo == "bin" {
            let repodata = self.www.join("bin/repodata");
            run(Command::new("gpg").env("GNUPGHOME", &self.gnupg).current_dir(&repodata).args([
                "--batch",
                "--yes",
                "--armor",
                "-u",
                "archive@localhost",
                "--detach-sign",
                "-o",
                "repomd.xml.asc",
                "repomd.xml",
            ]));
        }
    }

    /// The requests since `from` (an index into the log).
    fn requests_since(&self, from: usize) -> Vec<String> {
        self.server.requests().into_iter().skip(from).collect()
    }
}

/// The fixture's two RPMs of `t`, in the folder `www` lays them out in.
fn rpms(t: &Target, www: &Path) -> (PathBuf, PathBuf) {
    let base = www.join("rocky/9.2");
    (
        base.join("AppStream/x86_64/os/Packages/k").join(t.devel()),
        base.join("BaseOS/source/tree/Packages/k").join(t.srpm()),
    )
}

/// A kernel-devel RPM of `t`'s version and `pkgrelease` holding nothing: the repository
/// lists it, but no repository or vault has its source RPM, so its build fails.
fn orphan_devel(dir: &Path, t: &Target, pkgrelease: &str) -> PathBuf {
    let work = dir.join("orphan");
    std::fs::create_dir_all(&work).unwrap();
    let spec = work.join("p.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: kernel-devel\nVersion: {}\nRelease: {pkgrelease}\nSummary: orphan\nLicense: GPL\n\
             BuildArch: x86_64\nSource0: kernel-{}-{pkgrelease}.src.rpm\n%description\norphan\n%files\n",
            t.upstream, t.upstream
        ),
    )
    .unwrap();
    run(Command::new("rpmbuild")
        .args(["-bb", "--quiet", "--nodeps", "--define", &format!("_topdir {}", work.display())])
        .args(["--define", &format!("_rpmdir {}", work.display())])
        .args(["--define", "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm"])
        .arg(&spec));
    work.join(format!("kernel-devel-{}-{pkgrelease}.x86_64.rpm", t.upstream))
}

/// The follow configuration: the mirror's repositories, the 6.12-style series of the
/// fixture's kernel, the YUM repository to publish into.
fn config(dir: &Path, mirror: &Mirror, series: &str) -> PathBuf {
    let text = format!(
        "state_dir = \"state\"\ncache_dir = \"{cache}\"\n\
         [publish]\nyum_dir = \"repo/yum\"\nsigning_key = \"{key}\"\n\
         [[rhel]]\nrepo = \"{bin}\"\nsource_repo = \"{src}\"\narchive_key = \"{archive}\"\nseries = [\"{series}\"]\n",
        cache = common::cache_dir().display(),
        key = dir.join("repo-secret.asc").display(),
        archive = dir.join("archive.asc").display(),
        bin = mirror.server.url("bin"),
        src = mirror.server.url("src"),
    );
    let path = dir.join("follow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `follow` with `args`; returns the exit code, stdout's JSON and stderr.
fn follow(ctx: &Ctx, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut cmd = forge();
    // A build may fall back to the vaults: they are the local server's empty folder.
    for site in ["CENTOS", "BUILDLOGS", "ROCKY", "ALMA"] {
        cmd.env(format!("KRBD_FORGE_MIRROR_{site}"), ctx.mirror.server.url("vault"));
    }
    cmd.arg("follow").args(args).arg("--config").arg(&ctx.config).arg("--json");
    let out = cmd.output().expect("run follow");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn status(ctx: &Ctx) -> Vec<Value> {
    let (code, json, err) = follow(ctx, &["status"]);
    assert_eq!(code, Some(0), "status: {err}");
    json["releases"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], release: &str) -> &'a Value {
    rows.iter().find(|r| r["release"] == release).unwrap_or_else(|| panic!("{release} not in {rows:#?}"))
}

fn stages(row: &Value) -> Vec<String> {
    row["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap().to_string()).collect()
}

/// The packages in the published YUM repository (`name-version-release`), as rpm reads
/// their files.
fn published(ctx: &Ctx) -> Vec<String> {
    let dir = ctx.dir.join("repo/yum/current/Packages");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
        .map(|p| {
            run(Command::new("rpm").args(["-qp", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n"]).arg(p)).trim().to_string()
        })
        .collect();
    names.sort();
    names
}

/// What dnf, with repo_gpgcheck against the publishing key, lists as available from the
/// published repository (served over HTTP from 127.0.0.1).
fn dnf_available(ctx: &Ctx) -> String {
    let server = StaticServer::start(&ctx.dir.join("repo/yum"), None);
    let host = ctx.dir.join("dnf");
    let reposdir = host.join("repos.d");
    std::fs::create_dir_all(&reposdir).unwrap();
    let repo = format!(
        "[krbd-forge]\nname=krbd-forge\nbaseurl={}\ngpgcheck=0\nrepo_gpgcheck=1\ngpgkey=file://{}\n",
        server.url("current/"),
        ctx.dir.join("repo.asc").display()
    );
    std::fs::write(reposdir.join("krbd-forge.repo"), repo).unwrap();
    let out = Command::new("dnf")
        .env("LC_ALL", "C.UTF-8")
        .arg(format!("--installroot={}", host.join("root").display()))
        .arg(format!("--setopt=reposdir={}", reposdir.display()))
        .arg(format!("--setopt=cachedir={}", host.join("cache").display()))
        .args(["--releasever=9", "--assumeyes", "--refresh", "--setopt=metadata_expire=0"])
        .args(["list", "--available"])
        .output()
        .expect("run dnf");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dnf list --available:\n{text}");
    assert!(
        server.requests().iter().any(|r| r.contains("repomd.xml.asc")),
        "dnf read the repository's signature: {:?}",
        server.requests()
    );
    text
}

/// The kmod RPM's name and the meta package's name-version-release for `t`'s kernel.
fn kmod_and_meta(t: &Target) -> (String, String) {
    (
        format!("kmod-krbd-forge-{}", t.el.to_lowercase().replace('_', "-")),
        format!("krbd-forge-kernel-{}-{}", t.upstream, t.pkgrelease),
    )
}

struct Ctx {
    t0: Instant,
    dir: PathBuf,
    mirror: Mirror,
    config: PathBuf,
}

impl Ctx {
    fn say(&self, what: &str) {
        eprintln!("[{:>6.1} s] {what}", self.t0.elapsed().as_secs_f64());
    }
}

#[test]
fn follows_a_local_yum_mirror_release_by_release() {
    let t0 = Instant::now();
    let (first, www1) = fixture();
    let (second, www2) = fixture_release("284.2.el9_2");
    let tmp = tempfile::Builder::new().prefix("krbd-follow-rhel.").tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let (devel1, srpm1) = rpms(&first, &www1);
    let (devel2, srpm2) = rpms(&second, &www2);
    mirror.offer("bin", &[devel1]);
    mirror.offer("src", &[srpm1, srpm2]);
    // The fixture's kernel series (`6.12` of `6.12.118`).
    let series: Vec<&str> = first.upstream.split('.').take(2).collect();
    let config = config(tmp.path(), &mirror, &series.join("."));
    let ctx = Ctx { t0, dir: tmp.path().to_path_buf(), mirror, config };
    ctx.say(&format!("fixtures and mirror ready, offering {}", first.el));

    let line = format!("rhel/127.0.0.1:{}/{}", ctx.mirror.server.port, series.join("."));
    let rows = first_release_published(&ctx, &first, &line);
    rerun_does_nothing(&ctx, &rows);
    let orphan = orphan_devel(&ctx.dir, &first, "284.3.el9_2");
    let orphan_release = format!("{}-284.3.el9_2.x86_64", first.upstream);
    ctx.mirror.offer("bin", &[devel2, orphan]);
    only_the_new_ones_are_worked(&ctx, &rows, &first, &second, &orphan_release);
    a_repomd_changed_after_signing_is_refused(&ctx);
}

/// One kernel-devel offered: built from the repositories' packages, checked, packaged as a
/// kmod RPM, published; dnf sees it.
fn first_release_published(ctx: &Ctx, first: &Target, line: &str) -> Vec<Value> {
    let started = Instant::now();
    let (code, json, err) = follow(ctx, &["run"]);
    assert_eq!(code, Some(0), "first run: {err}\n{json:#}");
    assert_eq!(json["discovered"][0]["release"], first.el.as_str(), "{json:#}");
    assert_eq!(json["discovered"][0]["family"], "rhel");
    assert_eq!(json["discovered"][0]["line"], line);
    assert_eq!(json["published"][0]["release"], first.el.as_str(), "{json:#}");
    ctx.say(&format!("{} built, checked, packaged, published ({:.1} s)", first.el, started.elapsed().as_secs_f64()));

    let rows = status(ctx);
    let r = row(&rows, &first.el);
    assert_eq!(
        (r["state"].as_str(), r["line"].as_str(), r["family"].as_str()),
        (Some("published"), Some(line), Some("rhel"))
    );
    assert_eq!(stages(r), ["build", "check", "package", "publish"], "no boot test for RHEL: {r:#}");
    assert!(r["stages"].as_array().unwrap().iter().all(|s| s["verdict"] == "ok"), "{r:#}");
    // The release built is the one discovered: the kernel-devel input is the package the
    // signed repository lists, by its sha256.
    let devel_input = r["inputs"].as_array().unwrap().iter().find(|i| i["role"] == "kernel-devel").expect("inputs");
    assert_eq!(devel_input["sha256"], r["index_sha256"], "{r:#}");
    let log = ctx.mirror.requests_since(0);
    assert!(log.iter().any(|l| l.contains(&format!("/bin/Packages/{}", first.devel()))), "{log:?}");
    assert!(log.iter().any(|l| l.contains(&format!("/src/Packages/{}", first.srpm()))), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("/vault/")), "nothing from the vaults: {log:?}");

    // The kmod RPM and the meta package pinning its kernel (docs/repositories.md).
    let (kmod, meta) = kmod_and_meta(first);
    let packages = published(ctx);
    assert_eq!(packages.len(), 2, "{packages:?}");
    assert!(packages.iter().any(|p| p.starts_with(&format!("{kmod}-"))), "{packages:?}");
    assert!(packages.contains(&meta), "{packages:?}");
    let available = dnf_available(ctx);
    assert!(available.contains(&kmod), "dnf lists {kmod}:\n{available}");
    assert!(available.contains("krbd-forge-kernel.x86_64") && available.contains(&first.pkgrelease), "{available}");
    ctx.say("dnf verified the repository's signature and lists the kmod RPM and the meta package");
    rows
}

fn rerun_does_nothing(ctx: &Ctx, rows: &[Value]) {
    let started = Instant::now();
    let from = ctx.mirror.server.requests().len();
    let (code, json, err) = follow(ctx, &["run"]);
    assert_eq!(code, Some(0), "rerun: {err}");
    assert_eq!(json["discovered"].as_array().unwrap().len(), 0, "{json:#}");
    assert_eq!(json["published"].as_array().unwrap().len(), 0, "{json:#}");
    assert_eq!(json["already_handled"], 1);
    assert_eq!(status(ctx), rows, "a rerun changes nothing");
    // Only the signed index was asked for: its primary data is unchanged (cached by sha256).
    let log = ctx.mirror.requests_since(from);
    assert!(log.iter().all(|l| l.contains("/bin/repodata/repomd.xml")), "{log:?}");
    ctx.say(&format!("rerun: nothing to do ({:.1} s)", started.elapsed().as_secs_f64()));
}

/// A second kernel-devel and an orphan appear: planned, then only they are worked; the
/// second is published, the orphan fails with its reason.
fn only_the_new_ones_are_worked(ctx: &Ctx, rows: &[Value], first: &Target, second: &Target, orphan: &str) {
    let (code, plan, err) = follow(ctx, &["plan"]);
    assert_eq!(code, Some(0), "plan: {err}");
    let jobs = plan["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
    for release in [second.el.as_str(), orphan] {
        let want: Vec<String> = ["build", "check", "package"].iter().map(|s| format!("{release}/{s}")).collect();
        let have: Vec<&str> = ids.iter().copied().filter(|i| i.starts_with(&format!("{release}/"))).collect();
        assert_eq!(have, want, "{plan:#}");
    }
    let build = jobs.iter().find(|j| j["id"] == format!("{}/build", second.el)).unwrap();
    let command = build["command"].as_str().unwrap();
    let repos = format!("--repo {} --repo {}", ctx.mirror.server.url("bin"), ctx.mirror.server.url("src"));
    assert!(command.contains(&repos), "the build fetches from the followed repositories: {command}");
    let check = jobs.iter().find(|j| j["id"] == format!("{}/check", second.el)).unwrap();
    assert!(check["command"].as_str().unwrap().contains(&format!("--kernel {} --repo ", second.el)), "{check:#}");
    ctx.say(&format!("plan lists {} jobs", jobs.len()));

    let started = Instant::now();
    let from = ctx.mirror.server.requests().len();
    let (code, json, err) = follow(ctx, &["run"]);
    assert_eq!(code, Some(20), "one release failed: {err}\n{json:#}");
    let published_now: Vec<&str> =
        json["published"].as_array().unwrap().iter().filter_map(|r| r["release"].as_str()).collect();
    assert_eq!(published_now, [second.el.as_str()], "{json:#}");
    let failed = &json["failed"][0];
    assert_eq!(failed["release"], orphan, "{json:#}");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("build: ") && reason.contains("source RPM"), "{reason}");
    ctx.say(&format!("{} published, {orphan} failed ({:.1} s)", second.el, started.elapsed().as_secs_f64()));

    // Only the new ones were worked: the first release's record is untouched and none of
    // its packages was asked for again.
    let now = status(ctx);
    assert_eq!(row(&now, &first.el), row(rows, &first.el));
    let log = ctx.mirror.requests_since(from);
    assert!(!log.iter().any(|l| l.contains(&first.devel()) || l.contains(&first.srpm())), "{log:?}");
    let o = row(&now, orphan);
    assert_eq!(o["state"], "failed");
    assert!(o["reason"].as_str().is_some_and(|r| r.contains("source RPM")), "{o:#}");
    assert_eq!(stages(o), ["build"], "{o:#}");
    assert_eq!(row(&now, &second.el)["state"], "published");

    let packages = published(ctx);
    assert_eq!(packages.len(), 4, "the two proven releases, not the orphan: {packages:?}");
    let available = dnf_available(ctx);
    for t in [first, second] {
        let (kmod, meta) = kmod_and_meta(t);
        assert!(packages.contains(&meta), "{packages:?}");
        assert!(available.contains(&kmod), "dnf lists {kmod}:\n{available}");
    }
    assert!(!available.contains("284.3"), "{available}");
    let (code, plan, _) = follow(ctx, &["plan"]);
    assert_eq!((code, plan["jobs"].as_array().map(Vec::len)), (Some(0), Some(0)), "nothing pending: {plan:#}");
}

/// repomd.xml changed after it was signed: discovery refuses it, nothing is recorded.
fn a_repomd_changed_after_signing_is_refused(ctx: &Ctx) {
    let before = status(ctx);
    let repomd = ctx.mirror.www.join("bin/repodata/repomd.xml");
    let text = std::fs::read_to_string(&repomd).unwrap();
    std::fs::remove_file(&repomd).unwrap();
    std::fs::write(&repomd, text.replacen("<revision>", "<revision>1", 1)).unwrap();
    let (code, json, err) = follow(ctx, &["run"]);
    assert_eq!(code, Some(4), "{err}\n{json:#}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("signature"), "{json:#}");
    assert_eq!(status(ctx), before);
    ctx.say("a repomd.xml changed after signing is refused");
}
