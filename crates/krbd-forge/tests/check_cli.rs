//! `krbd-forge check` end to end, on Debian's real modules and headers of the default target.

#[path = "../../krbd-kmod/tests/support/mod.rs"]
mod support;

use assert_cmd::Command;
use support::*;

fn forge() -> Command {
    Command::cargo_bin("krbd-forge").expect("the krbd-forge binary")
}

/// Writes `elf` as `<dir>/<name>.ko`.
fn write_ko(dir: &std::path::Path, name: &str, elf: &[u8]) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.ko"));
    std::fs::write(&p, elf).expect("write module");
    p
}

#[test]
fn stock_set_loads_with_headers_and_exit_0() {
    let fx = fixture();
    let out = forge()
        .arg("check")
        .args(["libceph", "ceph", "rbd"].map(|n| fx.module_path(n)))
        .arg("--headers")
        .arg(&fx.headers_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("all 3 modules load\n"), "{text}");
}

#[test]
fn a_set_folder_is_checked_as_its_three_modules() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    for name in ["libceph", "ceph", "rbd"] {
        write_ko(dir.path(), name, &fx.unsigned_module(name));
    }
    let out = forge().arg("check").arg(dir.path()).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("all 3 modules load\n"), "{text}");

    // A folder that install would refuse (rbd missing) is refused here too, as bad input.
    std::fs::remove_file(dir.path().join("rbd.ko")).unwrap();
    let out = forge().arg("check").arg(dir.path()).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("rbd.ko"), "{stderr}");
}

#[test]
fn mixed_set_is_refused_with_exit_10_and_json() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut libceph = fx.unsigned_module("libceph");
    let stock_crc = krbd_kmod::Symvers::read(&fx.headers_dir.join("Module.symvers"))
        .unwrap()
        .get("ceph_osdc_start_request")
        .unwrap()
        .crc;
    set_export_crc(&mut libceph, "ceph_osdc_start_request", stock_crc ^ 0x5a5a_5a5a);
    let mut rbd = fx.unsigned_module("rbd");
    patch_in_section(&mut rbd, ".modinfo", b"\0intree=Y\0", b"\0intreX=Y\0");
    let kos = [
        write_ko(dir.path(), "rbd", &rbd),
        write_ko(dir.path(), "libceph", &libceph),
        write_ko(dir.path(), "ceph", &fx.unsigned_module("ceph")),
    ];
    let out = forge()
        .arg("check")
        .args(&kos)
        .arg("--symvers")
        .arg(fx.headers_dir.join("Module.symvers"))
        .args(["--vermagic", &vermagic(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", String::from_utf8_lossy(&out.stderr));
    // The release moves with the archive; the snapshot does not name it.
    let stdout = String::from_utf8_lossy(&out.stdout).replace(release(), "[release]");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    insta::assert_json_snapshot!("mixed_set", json, {
        ".modules[].file" => "[file]",
    });

    // The same set as text.
    let out = forge().arg("check").args(&kos).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let text = String::from_utf8_lossy(&out.stdout)
        .replace(&dir.path().display().to_string(), "[dir]")
        .replace(release(), "[release]");
    insta::assert_snapshot!("mixed_set_text", text);
}

#[test]
fn rbd_alone_loads_but_exit_15_for_the_set_rule() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let rbd = write_ko(dir.path(), "rbd", &fx.unsigned_module("rbd"));
    let out = forge().arg("check").arg(&rbd).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(15));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rbd would bind to the target's stock libceph"), "{text}");
}

/// An rbd built against a patched libceph, checked alone: refused by the stock libceph's
/// CRCs. The advice is to load the libceph it was built with (not to rebuild it against the
/// stock one), and the set rule does not claim it would load "without a word".
#[test]
fn rbd_built_against_another_libceph_is_told_to_bring_it() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut rbd = fx.unsigned_module("rbd");
    let stock_crc = krbd_kmod::Symvers::read(&fx.headers_dir.join("Module.symvers"))
        .unwrap()
        .get("ceph_osdc_start_request")
        .unwrap()
        .crc;
    set_import_crc(&mut rbd, "ceph_osdc_start_request", stock_crc ^ 0x5a5a_5a5a);
    let rbd = write_ko(dir.path(), "rbd", &rbd);
    let out = forge().arg("check").arg(&rbd).arg("--headers").arg(&fx.headers_dir).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let hint = v["modules"][0]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("load the libceph built with rbd"), "{hint}");
    assert!(!hint.contains("rebuild rbd against the Module.symvers"), "{hint}");
    let findings = v["findings"].to_string();
    assert!(findings.contains("rbd would bind to the target's stock libceph"), "{findings}");
    assert!(!findings.contains("without a word"), "{findings}");
}

/// `--vermagic` is the kernel's string, which ends with a space; without it, it means the same.
#[test]
fn vermagic_without_its_trailing_space_means_the_same() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let kos: Vec<_> =
        ["libceph", "ceph", "rbd"].iter().map(|n| write_ko(dir.path(), n, &fx.unsigned_module(n))).collect();
    let run = |vermagic: &str| {
        let out = forge()
            .arg("check")
            .args(&kos)
            .arg("--symvers")
            .arg(fx.headers_dir.join("Module.symvers"))
            .args(["--vermagic", vermagic, "--json"])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let with_space = run(&vermagic());
    assert_eq!(with_space.0, Some(0), "{}", with_space.1);
    assert_eq!(run(vermagic().trim_end()), with_space);
}

#[test]
fn bad_inputs_have_their_exit_codes() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    // Not a headers folder: 3.
    let out = forge().arg("check").arg(fx.module_path("rbd")).arg("--headers").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Module.symvers is missing"));
    // With --json, the same as the one JSON error shape on stdout.
    let out = forge()
        .arg("check")
        .arg(fx.module_path("rbd"))
        .arg("--headers")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "target", "{v}");
    assert_eq!(v["error"]["exit_code"], 3, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("Module.symvers is missing"), "{v}");
    assert!(v["error"].as_object().unwrap().contains_key("hint"), "{v}");
    // Not a module: 5, and nothing on stdout.
    let junk = dir.path().join("junk.ko");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let out = forge().arg("check").arg(&junk).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.ko is not a usable kernel module"));
    // A missing file: 9.
    let out =
        forge().arg("check").arg(dir.path().join("nope.ko")).arg("--headers").arg(&fx.headers_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(9));
    // --symvers without --vermagic: usage error.
    let out = forge().arg("check").arg(&junk).arg("--symvers").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --help documents the exit codes.
    let out = forge().args(["check", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("   10  would-not-load        at least one module would be refused"), "{help}");
    assert!(
        help.contains("   15  set-inconsistent      check: every module loads, but the set is inconsistent"),
        "{help}"
    );
}

/// What a failed run said: stderr (its `error:` and `hint:` lines), or with `--json` the
/// JSON error's message and hint (stderr says the same again).
fn said(out: &std::process::Output, json: bool) -> String {
    if !json {
        return String::from_utf8_lossy(&out.stderr).into_owned();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    format!(
        "{}\n{}",
        v["error"]["message"].as_str().unwrap_or_default(),
        v["error"]["hint"].as_str().unwrap_or_default()
    )
}

/// Runs `args` (plus `--json` the second time) through `run`: it fails with `code` and says
/// `cause` exactly once, as text and as JSON.
fn assert_cause_once(
    run: impl Fn(&[&std::ffi::OsStr]) -> std::process::Output,
    args: &[&std::ffi::OsStr],
    cause: &str,
    code: i32,
) {
    for json in [false, true] {
        let mut all = args.to_vec();
        if json {
            all.push("--json".as_ref());
        }
        let out = run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{all:?}: {stderr}");
        for text in [said(&out, json), stderr.into_owned()] {
            assert_eq!(text.matches(cause).count(), 1, "{all:?} should say {cause:?} once:\n{text}");
        }
    }
}

/// A folder anyone may enter, holding a copy of the binary, a module, a folder nobody may
/// read, an empty folder and a plain file: the inputs of the directory errors.
struct Places {
    dir: tempfile::TempDir,
}

impl Places {
    fn new(rbd: &[u8]) -> Places {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(assert_cmd::cargo::cargo_bin("krbd-forge"), p.join("krbd-forge")).unwrap();
        write_ko(p, "rbd", rbd);
        std::fs::create_dir(p.join("noperm")).unwrap();
        std::fs::set_permissions(p.join("noperm"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::create_dir(p.join("empty")).unwrap();
        std::fs::write(p.join("afile"), b"a file, not a folder").unwrap();
        Places { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the copied binary as an unprivileged user (root reads any folder), through
    /// setpriv when the tests run as root.
    fn run_unprivileged(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        use std::os::unix::fs::MetadataExt;
        let bin = self.path("krbd-forge");
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let mut cmd = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
            c
        } else {
            std::process::Command::new(&bin)
        };
        cmd.args(args).env("HOME", self.dir.path()).output().expect("run krbd-forge")
    }
}

fn run_forge(args: &[&std::ffi::OsStr]) -> std::process::Output {
    forge().args(args).output().unwrap()
}

/// The default target release, as `targets --json` names it.
fn default_release() -> String {
    let out = forge().args(["targets", "--json"]).output().unwrap();
    let targets: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let default = targets.as_array().unwrap().iter().find(|t| t["default"] == true).expect("a default target");
    default["release"].as_str().unwrap().to_string()
}

/// #13 point 8: a missing folder is refused before anything is fetched for --kernel, and
/// says its cause once.
#[test]
fn a_missing_folder_says_its_cause_once_before_fetching() {
    let release = default_release();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let args = [missing.as_os_str(), "--kernel".as_ref(), release.as_ref()];
    let check = |a: &[&std::ffi::OsStr]| forge().arg("check").args(a).output().unwrap();
    assert_cause_once(check, &args, "No such file or directory (os error 2)", 9);
    // Nothing was resolved or fetched for the release: the error is all that is said.
    let out = check(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("error: cannot read {}: ", missing.display())), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// #13 point 8: a folder without read permission, as a set or as --headers, says
/// "Permission denied" once.
#[test]
fn an_unreadable_folder_says_its_cause_once() {
    let fx = fixture();
    let places = Places::new(&fx.unsigned_module("rbd"));
    let run = |a: &[&std::ffi::OsStr]| places.run_unprivileged(a);
    let (noperm, rbd, empty) = (places.path("noperm"), places.path("rbd.ko"), places.path("empty"));
    let denied = "Permission denied (os error 13)";
    assert_cause_once(run, &["check".as_ref(), noperm.as_os_str(), "--headers".as_ref(), empty.as_os_str()], denied, 9);
    assert_cause_once(run, &["check".as_ref(), rbd.as_os_str(), "--headers".as_ref(), noperm.as_os_str()], denied, 9);
}

/// #13 point 8: a folder with no modules in it names the first missing one, once.
#[test]
fn a_folder_without_modules_says_so_once() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let args = [dir.path().as_os_str(), "--headers".as_ref(), fx.headers_dir.as_os_str()];
    let check = |a: &[&std::ffi::OsStr]| run_forge(&[&["check".as_ref()], a].concat());
    assert_cause_once(check, &args, "libceph.ko is missing", 5);
}

/// #13 point 8: a file where a folder is expected (a set path with a trailing `/`,
/// --headers, --modules-dir) says "Not a directory" once, with the environment's exit code.
#[test]
fn a_file_where_a_folder_is_expected_says_its_cause_once() {
    let fx = fixture();
    let places = Places::new(&fx.unsigned_module("rbd"));
    let (afile, rbd) = (places.path("afile"), places.path("rbd.ko"));
    let slashed = std::ffi::OsString::from(format!("{}/", afile.display()));
    let headers = fx.headers_dir.as_os_str();
    let not_dir = "Not a directory (os error 20)";
    let check = |a: &[&std::ffi::OsStr]| run_forge(&[&["check".as_ref()], a].concat());
    assert_cause_once(check, &[slashed.as_os_str(), "--headers".as_ref(), headers], not_dir, 9);
    assert_cause_once(check, &[rbd.as_os_str(), "--headers".as_ref(), afile.as_os_str()], not_dir, 9);
    assert_cause_once(
        check,
        &[rbd.as_os_str(), "--headers".as_ref(), headers, "--modules-dir".as_ref(), afile.as_os_str()],
        not_dir,
        9,
    );
    // The cache folder of --kernel is the same kind of error: the environment's, not a bug.
    let release = default_release();
    assert_cause_once(
        check,
        &[rbd.as_os_str(), "--kernel".as_ref(), release.as_ref(), "--cache-dir".as_ref(), afile.as_os_str()],
        not_dir,
        9,
    );
}
