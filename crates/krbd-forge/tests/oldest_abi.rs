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
