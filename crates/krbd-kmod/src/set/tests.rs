//! The set model on folders made here: small ELF objects with the sections the checks read
//! (`.modinfo`, `.note.gnu.build-id`, and a stand-in for debug information).

use super::report::{BuildReport, InputRecord, ModuleRecord, Toolchain, REPORT_FORMAT};
use super::*;
use std::path::Path;

const RELEASE: &str = "6.12.117+deb12-amd64";

/// A relocatable x86-64 ELF object with the given sections (name, contents).
fn elf(sections: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_at = Vec::new();
    for (name, _) in sections.iter().chain([(".shstrtab", Vec::new())].iter()) {
        name_at.push(names.len() as u32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let mut contents: Vec<Vec<u8>> = sections.iter().map(|(_, d)| d.clone()).collect();
    contents.push(names);
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for c in &contents {
        offsets.push(64 + data.len() as u64);
        data.extend_from_slice(c);
        data.resize(data.len().div_ceil(8) * 8, 0);
    }
    let count = contents.len() as u16 + 1;
    let mut out = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // entry
    out.extend_from_slice(&0u64.to_le_bytes()); // phoff
    out.extend_from_slice(&(64 + data.len() as u64).to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 0, 0, 64, count, count - 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&data);
    out.extend_from_slice(&[0u8; 64]);
    for (i, c) in contents.iter().enumerate() {
        let kind: u32 = if i + 1 == contents.len() { 3 } else { 1 }; // SHT_STRTAB, SHT_PROGBITS
        out.extend_from_slice(&name_at[i].to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // addr
        out.extend_from_slice(&offsets[i].to_le_bytes());
        out.extend_from_slice(&(c.len() as u64).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]); // link, info
        out.extend_from_slice(&1u64.to_le_bytes()); // addralign
        out.extend_from_slice(&0u64.to_le_bytes()); // entsize
    }
    out
}

/// Module `name` for `release`: the full copy (with a debug section) and its stripped copy.
fn module(name: &str, release: &str) -> (Vec<u8>, Vec<u8>) {
    built_module(name, release, name.len() as u8)
}

/// Module `name` for `release` whose GNU build-id starts with `build`.
fn built_module(name: &str, release: &str, build: u8) -> (Vec<u8>, Vec<u8>) {
    let modinfo =
        format!("name={name}\0vermagic={release} SMP preempt mod_unload modversions \0srcversion=SRC{name}\0");
    let mut note = vec![4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0];
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&[build, 0xbb, 0xcc, 0xdd]);
    let base = vec![(".modinfo", modinfo.into_bytes()), (".note.gnu.build-id", note)];
    let mut full = base.clone();
    full.push((".debug_info", vec![0x55; 256]));
    (elf(&full), elf(&base))
}

fn record(spec: ModuleSpec, full: &[u8], stripped: &[u8], release: &str) -> ModuleRecord {
    ModuleRecord {
        name: spec.name.to_string(),
        file: spec.file_name(),
        stripped_file: spec.stripped_file(),
        vermagic: format!("{release} SMP preempt mod_unload modversions "),
        srcversion: format!("SRC{}", spec.name),
        depends: String::new(),
        size: full.len() as u64,
        stripped_size: stripped.len() as u64,
        sha256: sha256_hex(full),
    }
}

fn report(release: &str, modules: Vec<ModuleRecord>) -> BuildReport {
    BuildReport {
        format: REPORT_FORMAT,
        tool: "krbd-forge 0.1.0".into(),
        release: release.into(),
        build_key: "0123456789abcdef".into(),
        cache_hit: false,
        inputs: Vec::new(),
        compiler: Toolchain { cc: "gcc-12".into(), kernel_cc: "gcc-12".into(), host_cc: "gcc-12".into() },
        jobs: 1,
        series: None,
        prep: None,
        stages: Vec::new(),
        check: None,
        modules,
    }
}

fn write_report(dir: &Path, report: &BuildReport) {
    std::fs::write(dir.join(REPORT_FILE), serde_json::to_vec_pretty(report).unwrap()).unwrap();
}

/// An out folder as the build publishes it.
fn out_folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join(STRIPPED_DIR)).unwrap();
    let mut records = Vec::new();
    for spec in MODULES {
        let (full, stripped) = module(spec.name, RELEASE);
        std::fs::write(d.path().join(spec.file_name()), &full).unwrap();
        std::fs::write(d.path().join(spec.stripped_file()), &stripped).unwrap();
        records.push(record(spec, &full, &stripped, RELEASE));
    }
    write_report(d.path(), &report(RELEASE, records));
    d
}

fn read_report(dir: &Path) -> BuildReport {
    serde_json::from_slice(&std::fs::read(dir.join(REPORT_FILE)).unwrap()).unwrap()
}

const FULL: OpenOptions = OpenOptions { copy: ModuleCopy::Full, require_report: true };
const STRIPPED: OpenOptions = OpenOptions { copy: ModuleCopy::Stripped, require_report: true };

#[test]
fn a_complete_out_folder_opens_with_either_copy() {
    let d = out_folder();
    let full = ModuleSet::open(d.path(), &FULL).unwrap();
    assert_eq!(full.release, RELEASE);
    assert_eq!(full.modules.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), MODULE_NAMES);
    assert_eq!(full.modules[0].path, d.path().join("libceph.ko"));
    assert!(full.report.is_some());
    let stripped = ModuleSet::open(d.path(), &STRIPPED).unwrap();
    assert_eq!(stripped.modules[2].path, d.path().join("stripped/rbd.ko"));
    assert!(stripped.modules[2].bytes.len() < full.modules[2].bytes.len());
}

#[test]
fn inputs_chosen_by_a_relation_record_it_and_reports_without_one_still_open() {
    let d = out_folder();
    let mut r = read_report(d.path());
    let kbuild = |relation: Option<&str>| InputRecord {
        role: "kbuild".into(),
        name: "linux-kbuild-6.1".into(),
        version: Some("6.1.192-3".into()),
        relation: relation.map(str::to_string),
        sha256: "ab".repeat(32),
        signature: None,
    };
    r.inputs = vec![kbuild(Some("linux-kbuild-6.1 (>= 6.1.170-3)"))];
    write_report(d.path(), &r);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join(REPORT_FILE)).unwrap()).unwrap();
    assert_eq!(json["inputs"][0]["relation"], "linux-kbuild-6.1 (>= 6.1.170-3)");
    let opened = ModuleSet::open(d.path(), &FULL).unwrap();
    assert_eq!(opened.report.unwrap().report.inputs, r.inputs);

    // Written before relations were recorded (or for an input not chosen by one): no field.
    r.inputs = vec![kbuild(None)];
    write_report(d.path(), &r);
    let text = String::from_utf8(std::fs::read(d.path().join(REPORT_FILE)).unwrap()).unwrap();
    assert!(!text.contains("\"relation\""), "{text}");
    assert_eq!(ModuleSet::open(d.path(), &FULL).unwrap().report.unwrap().report.inputs, r.inputs);
}

#[test]
fn a_missing_module_is_refused() {
    let d = out_folder();
    std::fs::remove_file(d.path().join("ceph.ko")).unwrap();
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(matches!(&err, SetError::MissingModule { file, .. } if file == "ceph.ko"), "{err}");
    assert!(err.to_string().contains("ceph.ko is missing"), "{err}");
    // The stripped copy is checked against its full module, so that is needed too.
    let err = ModuleSet::open(d.path(), &STRIPPED).unwrap_err();
    assert!(matches!(&err, SetError::MissingModule { file, .. } if file == "ceph.ko"), "{err}");
}

#[test]
fn a_changed_module_is_refused_by_its_sha256() {
    let d = out_folder();
    let path = d.path().join("rbd.ko");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    for options in [FULL, STRIPPED] {
        let err = ModuleSet::open(d.path(), &options).unwrap_err();
        assert!(matches!(&err, SetError::Sha256Mismatch { path: p, .. } if *p == path), "{err}");
        assert!(err.to_string().contains("does not match its build report: sha256"), "{err}");
    }
}

#[test]
fn a_stripped_copy_of_another_build_is_refused_by_its_build_id() {
    let d = out_folder();
    let (_, other) = built_module("ceph", RELEASE, 0xee);
    std::fs::write(d.path().join("stripped/ceph.ko"), other).unwrap();
    let err = ModuleSet::open(d.path(), &STRIPPED).unwrap_err();
    assert!(matches!(err, SetError::FieldMismatch { field: "GNU build-id", .. }), "{err}");
}

#[test]
fn a_symlink_leading_outside_is_refused() {
    let d = out_folder();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("ceph.ko");
    std::fs::rename(d.path().join("ceph.ko"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, d.path().join("ceph.ko")).unwrap();
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(matches!(&err, SetError::Escapes { path, .. } if *path == d.path().join("ceph.ko")), "{err}");
    // A link that stays inside the folder is fine.
    std::fs::remove_file(d.path().join("ceph.ko")).unwrap();
    std::fs::rename(&outside, d.path().join("ceph-real.ko")).unwrap();
    std::os::unix::fs::symlink("ceph-real.ko", d.path().join("ceph.ko")).unwrap();
    ModuleSet::open(d.path(), &FULL).expect("a link inside the folder");
}

#[test]
fn report_names_that_leave_the_folder_are_refused() {
    let d = out_folder();
    let mut r = read_report(d.path());
    r.modules[2].file = "../rbd.ko".into();
    write_report(d.path(), &r);
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(matches!(&err, SetError::NotInside { file, .. } if file == "../rbd.ko"), "{err}");
    r.modules[2].file = "/etc/rbd.ko".into();
    write_report(d.path(), &r);
    assert!(matches!(ModuleSet::open(d.path(), &FULL).unwrap_err(), SetError::NotInside { .. }));
}

#[test]
fn a_folder_in_place_of_a_module_is_refused() {
    let d = out_folder();
    std::fs::remove_file(d.path().join("rbd.ko")).unwrap();
    std::fs::create_dir(d.path().join("rbd.ko")).unwrap();
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(matches!(err, SetError::NotAFile { .. }), "{err}");
}

#[test]
fn a_module_of_another_release_is_refused() {
    let d = out_folder();
    let (full, stripped) = module("ceph", "6.1.0-99-amd64");
    std::fs::write(d.path().join("ceph.ko"), &full).unwrap();
    std::fs::write(d.path().join("stripped/ceph.ko"), &stripped).unwrap();
    let mut r = read_report(d.path());
    r.modules[1] = record(CEPH, &full, &stripped, "6.1.0-99-amd64");
    write_report(d.path(), &r);
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(
        matches!(&err, SetError::WrongRelease { expected, found, .. } if expected == RELEASE && found == "6.1.0-99-amd64"),
        "{err}"
    );
    // Without a report the first module names the release, and the rest must agree.
    std::fs::remove_file(d.path().join(REPORT_FILE)).unwrap();
    let any = OpenOptions { copy: ModuleCopy::Full, require_report: false };
    assert!(matches!(ModuleSet::open(d.path(), &any).unwrap_err(), SetError::WrongRelease { .. }));
}

#[test]
fn a_report_that_is_not_one_is_refused() {
    let d = out_folder();
    let mut r = read_report(d.path());
    r.release = "6.12 117".into();
    write_report(d.path(), &r);
    assert!(matches!(ModuleSet::open(d.path(), &FULL).unwrap_err(), SetError::NotARelease { .. }));
    r.release = RELEASE.into();
    r.modules.remove(1);
    write_report(d.path(), &r);
    assert!(matches!(ModuleSet::open(d.path(), &FULL).unwrap_err(), SetError::IncompleteReport { .. }));
    std::fs::write(d.path().join(REPORT_FILE), b"{\"format\": 1").unwrap();
    assert!(matches!(ModuleSet::open(d.path(), &FULL).unwrap_err(), SetError::BadReport { .. }));
}

#[test]
fn without_a_report_the_folder_is_refused_only_when_one_is_required() {
    let d = out_folder();
    std::fs::remove_file(d.path().join(REPORT_FILE)).unwrap();
    let err = ModuleSet::open(d.path(), &FULL).unwrap_err();
    assert!(matches!(err, SetError::NoReport { .. }), "{err}");
    let any = OpenOptions { copy: ModuleCopy::Full, require_report: false };
    let set = ModuleSet::open(d.path(), &any).unwrap();
    assert_eq!(set.release, RELEASE);
    assert!(set.report.is_none());
    let err = ModuleSet::open(Path::new("/nonexistent/krbd"), &any).unwrap_err();
    assert!(matches!(err, SetError::NotAFolder { .. }), "{err}");
}

/// The layout of an unpacked installer tarball: the stripped copies under the top-level
/// names, the report and a manifest.
fn unpacked_tarball() -> tempfile::TempDir {
    let out = out_folder();
    let d = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    for spec in MODULES {
        let bytes = std::fs::read(out.path().join(spec.stripped_file())).unwrap();
        std::fs::write(d.path().join(spec.file_name()), &bytes).unwrap();
        manifest += &format!("{}  {}\n", sha256_hex(&bytes), spec.file_name());
    }
    std::fs::copy(out.path().join(REPORT_FILE), d.path().join(REPORT_FILE)).unwrap();
    std::fs::write(d.path().join(MANIFEST_FILE), manifest).unwrap();
    d
}

#[test]
fn an_unpacked_tarball_opens_when_its_manifest_vouches_for_the_stripped_copies() {
    let d = unpacked_tarball();
    for options in [FULL, STRIPPED] {
        let set = ModuleSet::open(d.path(), &options).unwrap();
        assert_eq!(set.modules[0].path, d.path().join("libceph.ko"));
    }
    std::fs::remove_file(d.path().join(MANIFEST_FILE)).unwrap();
    let err = ModuleSet::open(d.path(), &STRIPPED).unwrap_err();
    assert!(matches!(err, SetError::Sha256Mismatch { .. }), "{err}");
}

#[test]
fn an_unparseable_module_without_a_report_is_a_bad_module() {
    let d = out_folder();
    std::fs::remove_file(d.path().join(REPORT_FILE)).unwrap();
    std::fs::write(d.path().join("libceph.ko"), b"not an ELF file").unwrap();
    let any = OpenOptions { copy: ModuleCopy::Full, require_report: false };
    let err = ModuleSet::open(d.path(), &any).unwrap_err();
    assert!(matches!(err, SetError::BadModule { .. }), "{err}");
    assert!(err.to_string().contains("not a usable kernel module"), "{err}");
}

#[test]
fn a_module_under_another_name_is_refused() {
    let d = out_folder();
    std::fs::remove_file(d.path().join(REPORT_FILE)).unwrap();
    std::fs::copy(d.path().join("ceph.ko"), d.path().join("rbd.ko")).unwrap();
    let any = OpenOptions { copy: ModuleCopy::Full, require_report: false };
    let err = ModuleSet::open(d.path(), &any).unwrap_err();
    assert!(matches!(err, SetError::WrongModule { expected: "rbd", .. }), "{err}");
}
