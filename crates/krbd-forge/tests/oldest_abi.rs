//! Hosts rarely run the newest ABI. apt's index keeps only the newest linux-kbuild-6.1,
//! while the headers of older ABIs depend on `linux-kbuild-6.1 (>= their version)`: the
//! build must follow that relation as apt does. The oldest 6.1 ABI that `targets` calls
//! buildable, built unpatched, must reproduce its own stock modules.

mod common;

use common::*;
use krbd_fetch::relation::Relation;
use krbd_fetch::version;
use serde_json::Value;

/// `krbd-forge targets --json`, as the user sees it.
fn targets() -> Vec<Value> {
    let out = forge().args(["targets", "--json"]).output().expect("run targets");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    v.as_array().expect("a list of targets").clone()
}

/// The oldest 6.1 ABI (by Debian version) that `targets` lists as buildable.
fn oldest_buildable_six_one(rows: &[Value]) -> &Value {
    rows.iter()
        .filter(|t| t["buildable"] == true && t["release"].as_str().is_some_and(|r| r.starts_with("6.1.")))
        .min_by(|a, b| version::compare(a["version"].as_str().unwrap_or(""), b["version"].as_str().unwrap_or("")))
        .expect("apt offers a buildable 6.1 ABI")
}

/// `name=version` satisfies `relation`, by the parser and dpkg's order (not by the code under
/// test's own choice).
fn satisfies(relation: &str, name: &str, version: &str) -> bool {
    let r: Relation = relation.parse().unwrap_or_else(|e| panic!("{relation}: {e}"));
    r.alternatives.iter().any(|a| a.allows(name, version))
}

/// What apt itself installs for the headers of `releases` at once (`apt-get install
/// --simulate`, one call: each parses all of apt's lists): `Some` map of package name to
/// version when apt can satisfy every relation, `None` when it cannot. Packages already
/// installed on this machine are not listed.
fn apt_would_install(releases: &[&str]) -> Option<std::collections::BTreeMap<String, String>> {
    let out = std::process::Command::new("apt-get")
        .args(["install", "--simulate", "--no-install-recommends"])
        .args(releases.iter().map(|r| format!("linux-headers-{r}")))
        .env("LC_ALL", "C")
        .output()
        .expect("run apt-get install --simulate");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `Inst linux-kbuild-6.1 (6.1.192-3 Debian-Security:12/oldstable-security [amd64])`,
    // with `[installed version]` before the parenthesis for upgrades.
    let inst = text.lines().filter_map(|l| l.strip_prefix("Inst ")).filter_map(|l| {
        let name = l.split_whitespace().next()?;
        let version = l.split_once('(')?.1.split_whitespace().next()?;
        Some((name.to_string(), version.to_string()))
    });
    Some(inst.collect())
}

#[test]
fn every_listed_release_says_whether_it_builds_as_apt_would_resolve_it() {
    let rows = targets();
    for t in &rows {
        let release = t["release"].as_str().expect("release");
        match t["buildable"].as_bool() {
            Some(true) => {
                assert!(t["why"].is_null(), "{release}: {t}");
                let (kbuild, relation) =
                    (t["kbuild"].as_str().expect("kbuild"), t["kbuild_relation"].as_str().unwrap());
                let (name, version) = kbuild.split_once('=').expect("name=version");
                assert!(satisfies(relation, name, version), "{release}: {kbuild} does not satisfy {relation}");
            }
            Some(false) => assert!(t["why"].as_str().is_some_and(|w| !w.is_empty()), "{release}: {t}"),
            None => panic!("{release}: no buildable field: {t}"),
        }
    }
    // apt is the oracle: where it can install the 6.1 ABIs' headers (and the image and
    // source of each version exist), targets must call them buildable and choose apt's
    // kbuild. All in one apt call; one by one only when apt refuses the lot.
    let six_one: Vec<&Value> =
        rows.iter().filter(|t| t["release"].as_str().is_some_and(|r| r.starts_with("6.1."))).collect();
    let names: Vec<&str> = six_one.iter().filter_map(|t| t["release"].as_str()).collect();
    let all_at_once = apt_would_install(&names);
    for t in six_one {
        let release = t["release"].as_str().unwrap();
        let Some(installs) = all_at_once.clone().or_else(|| apt_would_install(&[release])) else {
            assert_eq!(t["buildable"], false, "{release}: apt cannot install its headers: {t}");
            continue;
        };
        if t["source_available"] == true {
            assert_eq!(t["buildable"], true, "{release}: apt installs its headers ({installs:?}), targets says {t}");
        }
        if let Some((name, version)) = installs.iter().find(|(n, _)| n.starts_with("linux-kbuild-")) {
            assert_eq!(t["kbuild"], format!("{name}={version}"), "{release}: apt chooses another kbuild");
        }
    }
}

#[test]
fn the_oldest_six_one_abi_builds_and_reproduces_its_stock_modules() {
    let rows = targets();
    let oldest = oldest_buildable_six_one(&rows);
    let release = oldest["release"].as_str().unwrap();
    let version = oldest["version"].as_str().unwrap();

    // `targets RELEASE` names the chosen kbuild and the relation it satisfies.
    let out = forge().args(["targets", release]).output().expect("run targets RELEASE");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let kbuild = oldest["kbuild"].as_str().unwrap();
    let relation = oldest["kbuild_relation"].as_str().unwrap();
    assert!(text.contains(kbuild) && text.contains(&format!("satisfies {relation}")), "{text}");

    let built = build(&["--kernel", release, "--series", "none"]);
    assert_reproduces_stock(&built, release);

    // What was fetched and built against is what the report records: the kbuild chosen for
    // the relation, the image and the source of the ABI's own version.
    let inputs = built.report["inputs"].as_array().expect("inputs");
    let input = |role: &str| inputs.iter().find(|i| i["role"] == role).unwrap_or_else(|| panic!("no {role} input"));
    let k = input("kbuild");
    assert_eq!(format!("{}={}", k["name"].as_str().unwrap(), k["version"].as_str().unwrap()), kbuild);
    assert_eq!(k["relation"], relation);
    assert!(satisfies(relation, k["name"].as_str().unwrap(), k["version"].as_str().unwrap()));
    for role in ["headers", "headers-common", "image", "source"] {
        assert_eq!(input(role)["version"], version, "{role}");
    }
    assert!(input("headers-common")["relation"].as_str().is_some_and(|r| r.contains(&format!("(= {version})"))));
}

/// An apt configuration that sees Debian's archive as this machine's apt does, plus a local
/// flat repository holding the given `Packages` stanzas: only apt-cache reads it (nothing
/// reaches the network; the local index is made by `apt-get update` from a file: URI).
struct LocalApt {
    dir: tempfile::TempDir,
}

impl LocalApt {
    fn with_packages(stanzas: &str) -> LocalApt {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |rel: &str| dir.path().join(rel);
        for sub in ["repo", "lists/partial", "cache/archives/partial", "parts-empty"] {
            std::fs::create_dir_all(p(sub)).unwrap();
        }
        std::fs::write(p("repo/Packages"), stanzas).unwrap();
        std::fs::write(p("sources.list"), format!("deb [trusted=yes] file:{} ./\n", p("repo").display())).unwrap();
        let conf = |parts: &str| {
            format!(
                "Dir::State::Lists \"{}\";\nDir::Cache \"{}\";\nDir::Etc::SourceList \"{}\";\n\
                 Dir::Etc::SourceParts \"{parts}\";\nAPT::Sandbox::User \"root\";\n",
                p("lists").display(),
                p("cache").display(),
                p("sources.list").display()
            )
        };
        // First only the local repository, so that `update` touches nothing else ...
        std::fs::write(p("update.conf"), conf(&p("parts-empty").display().to_string())).unwrap();
        let update = std::process::Command::new("apt-get")
            .args(["update", "-q"])
            .env("APT_CONFIG", p("update.conf"))
            .output()
            .expect("apt-get update of a local repository");
        assert!(update.status.success(), "{}", String::from_utf8_lossy(&update.stderr));
        // ... then the machine's own Debian sources, with the lists apt already has.
        for e in std::fs::read_dir("/var/lib/apt/lists").unwrap().flatten() {
            let name = e.file_name();
            if name.to_string_lossy().contains("_Packages") || name.to_string_lossy().ends_with("Release") {
                std::os::unix::fs::symlink(e.path(), p("lists").join(&name)).unwrap();
            }
        }
        std::fs::write(p("apt.conf"), conf("/etc/apt/sources.list.d")).unwrap();
        LocalApt { dir }
    }

    fn forge(&self) -> assert_cmd::Command {
        let mut c = forge();
        c.env("APT_CONFIG", self.dir.path().join("apt.conf"));
        c
    }
}

#[test]
fn a_release_nothing_satisfies_is_listed_with_why_and_build_exits_3() {
    // An ABI whose headers need a newer kbuild than any apt knows.
    let apt = LocalApt::with_packages(
        "Package: linux-headers-6.1.0-99-amd64\nSource: linux\nVersion: 6.1.999-1\nArchitecture: amd64\n\
         Depends: linux-headers-6.1.0-99-common (= 6.1.999-1), linux-kbuild-6.1 (>= 6.1.999-1), gcc-12\n\
         Filename: ./h.deb\nSize: 1\nSHA256: 00\nDescription: headers\n\n\
         Package: linux-headers-6.1.0-99-common\nSource: linux\nVersion: 6.1.999-1\nArchitecture: all\n\
         Filename: ./c.deb\nSize: 1\nSHA256: 00\nDescription: common\n\n",
    );
    let relation = "linux-kbuild-6.1 (>= 6.1.999-1)";
    let out = apt.forge().args(["targets", "--json"]).output().expect("run targets");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let row = rows.as_array().unwrap().iter().find(|t| t["release"] == "6.1.0-99-amd64").expect("the local ABI");
    assert_eq!(row["buildable"], false, "{row}");
    let why = row["why"].as_str().unwrap_or("");
    assert!(why.contains(relation) && why.contains("linux-kbuild-6.1="), "{why}");
    assert_ne!(row["default"], true);
    let text = apt.forge().arg("targets").output().expect("run targets");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("6.1.0-99-amd64") && l.split_whitespace().nth(2) == Some("no")),
        "{text}"
    );

    let out_dir = tempfile::tempdir().unwrap();
    let build = apt
        .forge()
        .args(["build", "--json", "--kernel", "6.1.0-99-amd64", "--series", "none", "--out"])
        .arg(out_dir.path())
        .output()
        .expect("run build");
    assert_eq!(build.status.code(), Some(3), "{}", String::from_utf8_lossy(&build.stderr));
    let failure: Value = serde_json::from_slice(&build.stdout).expect("JSON failure");
    let message = failure["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(relation) && message.contains("apt-get update"), "{failure}");
    assert!(std::fs::read_dir(out_dir.path()).unwrap().next().is_none(), "nothing written");
}
