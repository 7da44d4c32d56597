//! The loader rules against a corpus made from Debian's real modules of the default target
//! (a 6.12 kernel when written): each case edits real bytes (or the target's real symbol
//! list) and states the verdict and the exact lines that kernel logs for it.

mod support;

use krbd_kmod::loader::{
    check_set, Candidate, LogLevel, LogLine, ModuleVerdict, Outcome, SetFinding, SetOptions, SetReport,
};
use krbd_kmod::{check_files, load_target, KernelModule, SignaturePolicy, Symvers, Target, TargetSpec};
use support::*;

fn target(fx: &Fixture) -> Target {
    load_target(&TargetSpec::Headers { dir: fx.headers_dir.clone() }, None).expect("load target from headers")
}

/// The target with its symbol list edited.
fn target_without(fx: &Fixture, keep: impl Fn(&krbd_kmod::SymversEntry) -> bool) -> Target {
    let mut t = target(fx);
    let entries = t.symvers.entries.iter().filter(|e| keep(e)).cloned().collect();
    t.symvers = Symvers::from_entries(entries);
    t
}

fn cand(name: &str, elf: Vec<u8>) -> Candidate {
    Candidate { file: format!("{name}.ko"), module: KernelModule::parse(&elf).expect("parse corpus module") }
}

fn stock_set(fx: &Fixture) -> Vec<Candidate> {
    ["libceph", "ceph", "rbd"].iter().map(|n| cand(n, fx.unsigned_module(n))).collect()
}

/// The stock set with `name` replaced by `elf`.
fn set_with(fx: &Fixture, name: &str, elf: Vec<u8>) -> Vec<Candidate> {
    stock_set(fx)
        .into_iter()
        .map(|c| if c.file == format!("{name}.ko") { cand(name, elf.clone()) } else { c })
        .collect()
}

fn run(set: &[Candidate], t: &Target) -> SetReport {
    check_set(set, t, &SetOptions::default())
}

fn verdict<'a>(r: &'a SetReport, name: &str) -> &'a ModuleVerdict {
    r.modules.iter().find(|m| m.module == name).unwrap_or_else(|| panic!("no verdict for {name}"))
}

fn warn(t: &str) -> LogLine {
    LogLine { level: LogLevel::Warning, text: t.to_string() }
}
fn err(t: &str) -> LogLine {
    LogLine { level: LogLevel::Err, text: t.to_string() }
}
fn notice(t: &str) -> LogLine {
    LogLine { level: LogLevel::Notice, text: t.to_string() }
}

const UNSIGNED_NOTICE: &str =
    "libceph: module verification failed: signature and/or required key missing - tainting kernel";

fn assert_loads_quietly(r: &SetReport, names: &[&str]) {
    for n in names {
        let v = verdict(r, n);
        assert_eq!(v.verdict, Outcome::Loads, "{n}: {v:#?}");
        assert_eq!(v.errno, None);
    }
}

#[test]
fn stock_unsigned_set_loads_in_dependency_order() {
    let fx = fixture();
    let t = target(&fx);
    // Given in reverse: the check must load libceph first.
    let mut set = stock_set(&fx);
    set.reverse();
    let r = run(&set, &t);
    let order: Vec<&str> = r.modules.iter().map(|m| m.module.as_str()).collect();
    assert_eq!(order[0], "libceph");
    assert_loads_quietly(&r, &["libceph", "ceph", "rbd"]);
    assert_eq!(verdict(&r, "libceph").log, vec![notice(UNSIGNED_NOTICE)]);
    assert!(verdict(&r, "ceph").log.is_empty() && verdict(&r, "rbd").log.is_empty());
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.all_load());
}

#[test]
fn stock_signed_compressed_files_load() {
    let fx = fixture();
    let kos: Vec<_> = ["libceph", "ceph", "rbd"].iter().map(|n| fx.module_path(n)).collect();
    let r =
        check_files(&kos, &TargetSpec::Headers { dir: fx.headers_dir.clone() }, None, &SetOptions::default()).unwrap();
    assert_loads_quietly(&r, &["libceph", "ceph", "rbd"]);
    for m in &r.modules {
        assert!(m.log.is_empty(), "{m:#?}");
        assert!(m.notes.iter().any(|n| n.contains("signed")), "{m:#?}");
    }
    assert!(r.all_load());
}

#[test]
fn parsed_module_matches_what_debian_ships() {
    let fx = fixture();
    let libceph = KernelModule::parse(&fx.unsigned_module("libceph")).unwrap();
    let t = target(&fx);
    // Every export, with the CRC the headers' Module.symvers lists for net/ceph/libceph.
    let stock: Vec<_> = t.symvers.entries.iter().filter(|e| &*e.module == "net/ceph/libceph").collect();
    assert_eq!(libceph.exports.len(), stock.len());
    for e in &stock {
        let x =
            libceph.exports.iter().find(|x| x.name == e.symbol).unwrap_or_else(|| panic!("{} not exported", e.symbol));
        assert_eq!(x.crc, Some(e.crc), "{}", e.symbol);
        assert_eq!(x.gpl_only, e.gpl_only(), "{}", e.symbol);
        assert_eq!(x.namespace, e.namespace, "{}", e.symbol);
    }
    assert_eq!(libceph.depends(), vec!["libcrc32c".to_string()]);
    assert_eq!(libceph.vermagic(), Some(vermagic().as_str()));
    assert!(libceph.undefined.iter().any(|u| u.name == "crc32c"));
    // netfs has both export tables.
    let raw = std::fs::read(fx.module_path("netfs")).unwrap();
    let netfs = KernelModule::parse(&krbd_kmod::module::decompress(&raw, "netfs".as_ref()).unwrap()).unwrap();
    assert!(netfs.signature.as_ref().is_some_and(|s| s.id_type == 2));
    let netfs_stock = t.symvers.entries.iter().filter(|e| &*e.module == "fs/netfs/netfs").count();
    assert_eq!(netfs.exports.len(), netfs_stock);
    assert!(netfs.exports.iter().any(|e| e.gpl_only) && netfs.exports.iter().any(|e| !e.gpl_only));
    for e in &netfs.exports {
        assert_eq!(t.symvers.get(&e.name).map(|s| s.crc), e.crc, "{}", e.name);
    }
}

#[test]
fn vermagic_byte_flipped_is_refused() {
    let fx = fixture();
    let mut rbd = fx.unsigned_module("rbd");
    patch_in_section(&mut rbd, ".modinfo", b"SMP preempt mod_unload", b"SMP preemPt mod_unload");
    let r = run(&set_with(&fx, "rbd", rbd), &target(&fx));
    let v = verdict(&r, "rbd");
    let line = format!("rbd: version magic '{}' should be '{}'", vermagic().replace("preempt", "preemPt"), vermagic());
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOEXEC")));
    assert_eq!(v.log, vec![err(&line)]);
    assert_eq!(v.reason.as_deref(), Some(line.as_str()));
    assert_loads_quietly(&r, &["libceph", "ceph"]);
}

#[test]
fn release_changed_still_loads_under_modversions() {
    let fx = fixture();
    let mut rbd = fx.unsigned_module("rbd");
    // Another release of the same length (the section keeps its size).
    let other = krbd_kmod::corpus::bump_release(release()).expect("a release with a digit");
    patch_in_section(
        &mut rbd,
        ".modinfo",
        format!("vermagic={}", release()).as_bytes(),
        format!("vermagic={other}").as_bytes(),
    );
    let r = run(&set_with(&fx, "rbd", rbd.clone()), &target(&fx));
    assert_loads_quietly(&r, &["libceph", "ceph", "rbd"]);
    assert!(verdict(&r, "rbd").log.is_empty());

    // Without a __versions section the relaxation is gone: the kernel force-loads past
    // module_layout (CONFIG_MODULE_FORCE_LOAD=y, tainting) and then compares the whole magic.
    patch_in_section(&mut rbd, ".shstrtab", b"__versions", b"__versionz");
    let r = run(&set_with(&fx, "rbd", rbd), &target(&fx));
    let v = verdict(&r, "rbd");
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOEXEC")));
    assert_eq!(
        v.log,
        vec![
            warn("rbd: module_layout: kernel tainted."),
            warn("Disabling lock debugging due to kernel taint"),
            err(&format!("rbd: version magic '{}' should be '{}'", vermagic().replace(release(), &other), vermagic())),
        ]
    );
}

#[test]
fn one_import_crc_changed_is_refused() {
    let fx = fixture();
    let stock = KernelModule::parse(&fx.unsigned_module("rbd")).unwrap();
    // A libceph import (provided by the set's libceph) and a kernel import.
    for symbol in ["ceph_osdc_start_request", "blk_mq_alloc_tag_set"] {
        let mut rbd = fx.unsigned_module("rbd");
        let crc = stock.version_of(symbol).expect("rbd imports it");
        set_import_crc(&mut rbd, symbol, crc ^ 0x0000_0100);
        let r = run(&set_with(&fx, "rbd", rbd), &target(&fx));
        let v = verdict(&r, "rbd");
        assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("EINVAL")), "{symbol}");
        assert_eq!(
            v.log,
            vec![
                warn(&format!("rbd: disagrees about version of symbol {symbol}")),
                warn(&format!("rbd: Unknown symbol {symbol} (err -22)")),
            ]
        );
        assert_eq!(v.reason.as_deref(), Some(format!("rbd: disagrees about version of symbol {symbol}").as_str()));
        let hint = v.hint.as_deref().unwrap_or("");
        if symbol == "ceph_osdc_start_request" {
            assert!(
                hint.starts_with(
                    "ceph_osdc_start_request comes from the set's libceph: rebuild rbd with KBUILD_EXTRA_SYMBOLS"
                ),
                "{hint}"
            );
        } else {
            assert!(hint.starts_with("blk_mq_alloc_tag_set comes from the target's kernel"), "{hint}");
        }
        assert_loads_quietly(&r, &["libceph", "ceph"]);
    }
}

#[test]
fn module_layout_changed_is_refused_before_anything_else() {
    let fx = fixture();
    let mut rbd = fx.unsigned_module("rbd");
    let stock = KernelModule::parse(&rbd)
        .unwrap()
        .version_of("module_layout")
        .expect("6.12 modules still record module_layout");
    set_import_crc(&mut rbd, "module_layout", stock.wrapping_add(1));
    let r = run(&set_with(&fx, "rbd", rbd), &target(&fx));
    let v = verdict(&r, "rbd");
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOEXEC")));
    assert_eq!(v.log, vec![warn("rbd: disagrees about version of symbol module_layout")]);
    assert!(v.hint.as_deref().is_some_and(|h| h.contains("another kernel's Module.symvers")), "{v:#?}");
}

#[test]
fn symbol_removed_from_the_kernel_is_unknown() {
    let fx = fixture();
    let t = target_without(&fx, |e| e.symbol != "blk_mq_alloc_tag_set");
    let r = run(&stock_set(&fx), &t);
    let v = verdict(&r, "rbd");
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOENT")));
    assert_eq!(v.log, vec![warn("rbd: Unknown symbol blk_mq_alloc_tag_set (err -2)")]);
    assert_loads_quietly(&r, &["libceph", "ceph"]);
}

#[test]
fn symbol_removed_from_the_sets_libceph_is_unknown_to_its_users() {
    let fx = fixture();
    let mut libceph = fx.unsigned_module("libceph");
    // The export's name as the loader reads it (the ksymtab entry's string), changed.
    patch_in_section(&mut libceph, "__ksymtab_strings", b"\0ceph_osdc_start_request\0", b"\0ceph_osdc_start_requesX\0");
    let r = run(&set_with(&fx, "libceph", libceph), &target(&fx));
    assert_loads_quietly(&r, &["libceph"]);
    for user in ["ceph", "rbd"] {
        let v = verdict(&r, user);
        assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOENT")), "{user}");
        assert_eq!(v.log, vec![warn(&format!("{user}: Unknown symbol ceph_osdc_start_request (err -2)"))]);
    }
}

#[test]
fn patched_libceph_with_stale_ceph_and_rbd_is_flagged() {
    let fx = fixture();
    let mut libceph = fx.unsigned_module("libceph");
    let stock_crc = target(&fx).symvers.get("ceph_osdc_start_request").unwrap().crc;
    set_export_crc(&mut libceph, "ceph_osdc_start_request", stock_crc ^ 0x5a5a_5a5a);
    let r = run(&set_with(&fx, "libceph", libceph), &target(&fx));
    assert_loads_quietly(&r, &["libceph"]);
    for user in ["ceph", "rbd"] {
        let v = verdict(&r, user);
        assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("EINVAL")), "{user}");
        assert_eq!(
            v.log,
            vec![
                warn(&format!("{user}: disagrees about version of symbol ceph_osdc_start_request")),
                warn(&format!("{user}: Unknown symbol ceph_osdc_start_request (err -22)")),
            ]
        );
        let stale = r
            .findings
            .iter()
            .find(|f| matches!(f, SetFinding::StaleAgainstSetProvider { module, .. } if module == user))
            .unwrap_or_else(|| panic!("no stale finding for {user}: {:#?}", r.findings));
        let SetFinding::StaleAgainstSetProvider { provider, symbols, examples, message, .. } = stale else {
            unreachable!()
        };
        assert_eq!((provider.as_str(), *symbols), ("libceph", 1));
        assert_eq!(examples, &vec!["ceph_osdc_start_request".to_string()]);
        assert!(message.contains("KBUILD_EXTRA_SYMBOLS"), "{message}");
    }
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    assert!(!r.all_load());
}

#[test]
fn rbd_alone_binds_silently_to_the_stock_libceph() {
    let fx = fixture();
    let set = vec![cand("rbd", fx.unsigned_module("rbd"))];
    let r = run(&set, &target(&fx));
    // The kernel takes it without a word…
    let v = verdict(&r, "rbd");
    assert_eq!(v.verdict, Outcome::Loads);
    assert_eq!(
        v.log,
        vec![notice("rbd: module verification failed: signature and/or required key missing - tainting kernel")]
    );
    // …which is exactly what the set rule must point out.
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let SetFinding::BindsToStockModule { module, provider, symbols, .. } = &r.findings[0] else {
        panic!("{:#?}", r.findings)
    };
    let libceph_imports = KernelModule::parse(&fx.unsigned_module("rbd"))
        .unwrap()
        .undefined
        .iter()
        .filter(|u| target(&fx).symvers.get(&u.name).is_some_and(|e| &*e.module == "net/ceph/libceph"))
        .count();
    assert_eq!((module.as_str(), provider.as_str(), *symbols), ("rbd", "libceph", libceph_imports));
    assert!(libceph_imports > 10);
    assert!(!r.all_load());
}

#[test]
fn missing_dependency_module() {
    let fx = fixture();
    // A target without libcrc32c.
    let t = target_without(&fx, |e| &*e.module != "lib/libcrc32c");
    let r = run(&stock_set(&fx), &t);
    let v = verdict(&r, "libceph");
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOENT")));
    assert_eq!(v.log, vec![notice(UNSIGNED_NOTICE), warn("libceph: Unknown symbol crc32c (err -2)")]);
    assert_eq!(v.reason.as_deref(), Some("libceph: Unknown symbol crc32c (err -2)"));
    // Its users then miss every libceph symbol.
    for user in ["ceph", "rbd"] {
        let v = verdict(&r, user);
        assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("ENOENT")), "{user}");
        assert!(v.log.contains(&warn(&format!("{user}: Unknown symbol ceph_osdc_start_request (err -2)"))), "{v:#?}");
    }
    let kinds: Vec<String> =
        r.findings.iter().map(|f| serde_json::to_value(f).unwrap()["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, vec!["missing_dependency", "dependency_refused", "dependency_refused"]);
    assert_eq!(
        r.findings[0].message(),
        "libceph depends on libcrc32c, which neither the set nor the target kernel provides: add libcrc32c.ko to the set"
    );
    // With libcrc32c in the set, it loads again.
    let mut set = stock_set(&fx);
    set.push(cand("libcrc32c", fx.unsigned_module("libcrc32c")));
    let r = run(&set, &t);
    assert!(r.all_load(), "{r:#?}");
    assert_eq!(r.modules[0].module, "libcrc32c");
}

#[test]
fn out_of_tree_and_namespace_and_signature_policies() {
    let fx = fixture();
    let mut rbd = fx.unsigned_module("rbd");
    patch_in_section(&mut rbd, ".modinfo", b"\0intree=Y\0", b"\0intreX=Y\0");
    let mut t = target(&fx);
    let r = run(&set_with(&fx, "rbd", rbd.clone()), &t);
    let v = verdict(&r, "rbd");
    assert_eq!(v.verdict, Outcome::Loads);
    assert_eq!(v.log, vec![warn("rbd: loading out-of-tree module taints kernel.")]);

    // A symbol moved into a namespace rbd does not import.
    let mut entries = t.symvers.entries.clone();
    for e in entries.iter_mut().filter(|e| e.symbol == "blk_mq_alloc_tag_set") {
        e.namespace = Some("BLOCK_TEST".into());
    }
    t.symvers = Symvers::from_entries(entries);
    let r = run(&stock_set(&fx), &t);
    let v = verdict(&r, "rbd");
    assert_eq!((v.verdict, v.errno), (Outcome::Refused, Some("EINVAL")));
    assert_eq!(
        v.log,
        vec![
            err("rbd: module uses symbol (blk_mq_alloc_tag_set) from namespace BLOCK_TEST, but does not import it."),
            warn("rbd: Unknown symbol blk_mq_alloc_tag_set (err -22)"),
        ]
    );

    // Enforced signatures: unsigned refused first thing; Debian's signed modules pass the
    // offline part (trust in the key is noted, not decided).
    let mut t = target(&fx);
    t.policy.signatures = SignaturePolicy::Enforced;
    let r = run(&set_with(&fx, "rbd", rbd), &t);
    for m in &r.modules {
        assert_eq!((m.verdict, m.errno), (Outcome::Refused, Some("EKEYREJECTED")));
        assert_eq!(m.log, vec![notice("Loading of unsigned module is rejected")]);
    }
    t.policy.signatures = SignaturePolicy::Lockdown;
    let r = run(&[cand("rbd", fx.unsigned_module("rbd"))], &t);
    assert_eq!(
        r.modules[0].log,
        vec![notice("Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7")]
    );
    let signed = krbd_kmod::check::read_candidates(&[fx.module_path("libceph")]).unwrap();
    let r = run(&signed, &t);
    assert_eq!(r.modules[0].verdict, Outcome::Loads);
}

#[test]
fn struct_module_size_from_the_targets_modules() {
    let fx = fixture();
    // The image's modules tell the target's sizeof(struct module).
    let mut t = load_target(&TargetSpec::Headers { dir: fx.headers_dir.clone() }, Some(&fx.modules_dir)).unwrap();
    let size = t.struct_module_size.expect("read from a target module");
    assert_eq!(
        size,
        KernelModule::parse(&fx.unsigned_module("rbd")).unwrap().section(".gnu.linkonce.this_module").unwrap().len()
            as u64
    );
    assert!(t.has_module("netfs") && t.has_module("libcrc32c"));
    assert!(run(&stock_set(&fx), &t).all_load());
    // A kernel whose struct module differs (another config) refuses them before anything else.
    t.struct_module_size = Some(size + 64);
    let r = run(&stock_set(&fx), &t);
    for m in &r.modules {
        assert_eq!((m.verdict, m.errno), (Outcome::Refused, Some("ENOEXEC")));
        assert_eq!(
            m.log,
            vec![err(&format!(
                "module {}: .gnu.linkonce.this_module section size must match the kernel's built struct module size at run time",
                m.module
            ))]
        );
    }
}

#[test]
fn damaged_modules_are_errors_or_verdicts_never_panics() {
    let fx = fixture();
    let t = target(&fx);
    let rbd = fx.unsigned_module("rbd");
    // A fixed pseudo-random sequence (an LCG), so that failures reproduce.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut parsed = 0;
    for round in 0..300 {
        let mut bytes = rbd.clone();
        if round % 3 == 0 {
            // Truncated.
            bytes.truncate(next() % rbd.len());
        } else {
            // A few bytes changed anywhere, headers included.
            for _ in 0..(1 + next() % 8) {
                let at = if round % 3 == 1 { next() % 4096.min(bytes.len()) } else { next() % bytes.len() };
                bytes[at] = next() as u8;
            }
        }
        if let Ok(m) = KernelModule::parse(&bytes) {
            parsed += 1;
            let r = check_set(&[Candidate { file: "damaged.ko".into(), module: m }], &t, &SetOptions::default());
            assert_eq!(r.modules.len(), 1);
        }
    }
    // Most single-byte changes leave a parsable ELF: the rules ran on many of them.
    assert!(parsed > 50, "only {parsed} damaged modules parsed");
}

#[test]
fn four_column_symvers_gives_the_same_verdicts() {
    let fx = fixture();
    let text = std::fs::read_to_string(fx.headers_dir.join("Module.symvers")).unwrap();
    // The pre-5.4 form: no namespace column.
    let four: String = text.lines().map(|l| l.splitn(5, '\t').take(4).collect::<Vec<_>>().join("\t") + "\n").collect();
    let five = Symvers::parse(&text, "five").unwrap();
    let old = Symvers::parse(&four, "four").unwrap();
    assert_eq!(five.len(), old.len());
    assert!(five.entries.iter().any(|e| e.namespace.is_some()));
    assert!(old.entries.iter().all(|e| e.namespace.is_none()));
    let mut t = target(&fx);
    t.symvers = old;
    let mut rbd = fx.unsigned_module("rbd");
    set_import_crc(&mut rbd, "module_layout", 1);
    let r = run(&set_with(&fx, "rbd", rbd), &t);
    assert_loads_quietly(&r, &["libceph", "ceph"]);
    assert_eq!(verdict(&r, "rbd").log, vec![warn("rbd: disagrees about version of symbol module_layout")]);
}

#[test]
fn bootable_cases_are_built_from_the_real_modules() {
    // The cases the agreement run boots (krbd-vm tests/agreement.rs): each builds from the
    // real modules, and the check refuses exactly the edited ones.
    let fx = fixture();
    let src = krbd_kmod::corpus::CorpusSource::from_dir(&fx.modules_dir).unwrap();
    let cases = krbd_kmod::corpus::bootable_cases(&src).unwrap();
    let t = load_target(&TargetSpec::Headers { dir: fx.headers_dir.clone() }, Some(&fx.modules_dir)).unwrap();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    let refused = |name: &str| -> Vec<(String, Option<&'static str>)> {
        let c = cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"));
        let r = check_set(&c.candidates().unwrap(), &c.target(&t), &SetOptions::default());
        r.modules.iter().filter(|m| m.verdict == Outcome::Refused).map(|m| (m.module.clone(), m.errno)).collect()
    };
    let one = |m: &str, e: &'static str| vec![(m.to_string(), Some(e))];
    assert_eq!(refused("stock_signed"), vec![]);
    assert_eq!(refused("stock_unsigned"), vec![]);
    assert_eq!(refused("release_changed"), vec![]);
    assert_eq!(refused("rbd_alone"), vec![]);
    assert_eq!(refused("out_of_tree"), vec![]);
    assert_eq!(refused("dependency_in_the_set"), vec![]);
    assert_eq!(refused("vermagic_flipped"), one("rbd", "ENOEXEC"));
    assert_eq!(refused("module_layout_changed"), one("rbd", "ENOEXEC"));
    assert_eq!(refused("struct_module_size_changed"), one("rbd", "ENOEXEC"));
    assert_eq!(refused("no_versions_and_release_changed"), one("rbd", "ENOEXEC"));
    assert_eq!(refused("import_crc_changed_set_symbol"), one("rbd", "EINVAL"));
    assert_eq!(refused("import_crc_changed_kernel_symbol"), one("rbd", "EINVAL"));
    assert_eq!(refused("symbol_unknown_to_the_kernel"), one("rbd", "ENOENT"));
    let both = |e: &'static str| vec![("ceph".to_string(), Some(e)), ("rbd".to_string(), Some(e))];
    assert_eq!(refused("export_removed_from_libceph"), both("ENOENT"));
    assert_eq!(refused("export_crc_changed_in_libceph"), both("EINVAL"));
    let all = |e: &'static str| {
        vec![("libceph".to_string(), Some(e)), ("ceph".to_string(), Some(e)), ("rbd".to_string(), Some(e))]
    };
    assert_eq!(refused("missing_dependency"), all("ENOENT"));
}
