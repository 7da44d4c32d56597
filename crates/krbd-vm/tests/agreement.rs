//! The real kernel against the offline check: the bad-module corpus of krbd_kmod::corpus,
//! made from the default target's own modules, loaded into the default target's kernel in
//! one guest. Every module's verdict and kernel messages must equal what the check says.

mod common;

use common::*;
use krbd_progress::Silent;
use krbd_vm::agreement::{run_agreement, AgreementSpec};
use std::path::PathBuf;

#[test]
fn kernel_and_check_agree_on_every_corpus_module() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let spec = AgreementSpec {
        image_deb: image_deb(),
        release: Some(release().into()),
        headers_dir: krbd_testsupport::kmod_corpus().headers_dir,
        busybox: PathBuf::from("/bin/busybox"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        work_dir: work.clone(),
        timeout: std::time::Duration::from_secs(480),
        memory_mb: 1024,
    };
    let report = run_agreement(&spec, &Silent).unwrap_or_else(|e| panic!("agreement run failed: {e}"));
    let disagreements: Vec<String> = report
        .disagreements()
        .map(|m| format!("{}/{}: {}\n  kernel: {:?}", m.case, m.module, m.differences.join("; "), m.kernel.all_lines))
        .collect();
    assert!(
        disagreements.is_empty(),
        "{} of {} modules disagree:\n{}",
        disagreements.len(),
        report.modules_total,
        disagreements.join("\n")
    );
    assert_eq!(report.guest_release.as_deref(), Some(release()));

    // The count is every module of every case of the corpus, each one compared.
    let pkg = package();
    let images = krbd_kmod::corpus::SOURCE_MODULES.iter().map(|n| (n.to_string(), pkg.modules[*n].raw.clone()));
    let cases =
        krbd_kmod::corpus::bootable_cases(&krbd_kmod::corpus::CorpusSource::from_images(images).unwrap()).unwrap();
    let expected: usize = cases.iter().map(|c| c.modules.len()).sum();
    assert_eq!(report.modules_total, expected);
    assert_eq!(report.modules.len(), expected);
    assert_eq!(report.modules_agreeing, expected);
    assert!(report.all_agree);
    assert!(
        report.cases.iter().all(|c| c.tainted_before.is_some() && c.unload_failed.is_empty()),
        "{:#?}",
        report.cases
    );

    // The corpus is not trivially agreeable: the kernel refused modules for several
    // reasons, and printed its once-per-boot lines once.
    let refused = report.modules.iter().filter(|m| m.kernel.loaded == Some(false)).count();
    assert!(refused >= 10, "only {refused} refusals");
    for marker in [
        "version magic",
        "disagrees about version of symbol module_layout",
        "Unknown symbol crc32c",
        "struct module size",
        "out-of-tree",
    ] {
        assert!(
            report.modules.iter().any(|m| m.kernel.lines.iter().any(|l| l.text.contains(marker))),
            "no kernel line with {marker:?}"
        );
    }
    let notices = report
        .modules
        .iter()
        .flat_map(|m| &m.kernel.lines)
        .filter(|l| l.text.contains("module verification failed"))
        .count();
    assert_eq!(notices, 1, "the unsigned-module notice is printed once per boot");
    assert!(
        report.accelerator.starts_with("tcg: ") || report.accelerator.starts_with("kvm: "),
        "{}",
        report.accelerator
    );
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "QEMU left running");
    eprintln!(
        "{}/{} modules agree ({} cases, guest {:.1} s, {})",
        report.modules_agreeing,
        report.modules_total,
        report.cases.len(),
        report.elapsed_secs,
        report.accelerator
    );
}
