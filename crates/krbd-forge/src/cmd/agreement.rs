//! `krbd-forge boot-test --agreement`: the real kernel against `krbd-forge check` on the
//! bad-module corpus (krbd_vm::agreement).

use super::boot_test::{fail, fail_vm, publish_report, target_release, BootTestArgs};
use super::exit::ExitCode;
use super::terminal::Terminal;
use krbd_host::outln;
use krbd_vm::agreement::{run_agreement, AgreementReport, AgreementSpec};
use krbd_vm::VmError;
use std::path::PathBuf;
use std::time::Duration;

/// The headers and the image package: given, or through the cache like `check --kernel`.
fn target_files(args: &BootTestArgs, release: &str, listener: &Terminal) -> Result<(PathBuf, PathBuf), ExitCode> {
    if let (Some(headers), Some(image)) = (&args.headers, &args.image_deb) {
        return Ok((headers.clone(), image.clone()));
    }
    let release = krbd_build::KernelRelease::parse(release).map_err(|e| super::build::report_error(&e, args.json))?;
    let cache = args.cache.open().map_err(|e| super::build::report_error(&e.into(), args.json))?;
    let mut stages = krbd_build::Stages::default();
    let prepared = krbd_build::prepare_debian(&cache, Some(&release), false, &mut stages, listener)
        .map_err(|e| super::build::report_error(&e, args.json))?;
    let headers = args.headers.clone().unwrap_or(prepared.headers.dir);
    let image = args.image_deb.clone().unwrap_or(prepared.debs.image);
    Ok((headers, image))
}

pub fn run(args: BootTestArgs) -> ExitCode {
    let listener = Terminal::new(args.json);
    let json = args.json;
    krbd_vm::interrupt::install_handler();
    if krbd_vm::qemu::find_program(&args.qemu).is_none() {
        let e =
            VmError::QemuMissing { program: args.qemu.clone(), path_env: std::env::var("PATH").unwrap_or_default() };
        return fail_vm(json, "qemu", &e);
    }
    let release = match target_release(&args) {
        Ok(release) => release,
        Err(code) => return code,
    };
    let (headers_dir, image_deb) = match target_files(&args, &release, &listener) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("krbd-agreement.").tempdir() {
            Ok(d) => d.keep(),
            Err(e) => {
                return fail(json, ExitCode::Environment, "work-dir", &format!("cannot create a work folder: {e}"))
            }
        },
    };
    super::boot_test::remember_accel_verdicts(&args.cache);
    let spec = AgreementSpec {
        image_deb,
        release: Some(release),
        headers_dir,
        busybox: args.busybox.clone(),
        qemu: args.qemu.clone(),
        work_dir: work_dir.clone(),
        timeout: Duration::from_secs(args.timeout),
        memory_mb: args.memory,
    };
    let report = match run_agreement(&spec, &listener) {
        Ok(r) => r,
        Err(e) => return fail_vm(json, "agreement", &e),
    };
    publish_report(&report, &work_dir.join("agreement.json"), json, print_human);
    if report.all_agree {
        ExitCode::Ok
    } else {
        ExitCode::Disagreement
    }
}

fn print_human(r: &AgreementReport) {
    outln!(
        "kernel {} ({}), {} corpus cases, guest {:.1} s",
        r.kernel_release,
        r.accelerator,
        r.cases.len(),
        r.elapsed_secs
    );
    for c in &r.cases {
        let rows: Vec<_> = r.modules.iter().filter(|m| m.case == c.name).collect();
        let verdicts: Vec<String> = rows
            .iter()
            .map(|m| {
                let state = match m.kernel.loaded {
                    Some(true) => "loads",
                    Some(false) => "refused",
                    None => "not tried",
                };
                format!("{} {state}{}", m.module, if m.agree { "" } else { " (DISAGREE)" })
            })
            .collect();
        outln!("  {:<34} {}", c.name, verdicts.join(", "));
    }
    for s in &r.skipped_cases {
        outln!("  skipped: {s}");
    }
    outln!("{}/{} modules agree", r.modules_agreeing, r.modules_total);
    for m in r.disagreements() {
        outln!("DISAGREE {}/{}:", m.case, m.module);
        for d in &m.differences {
            outln!("    {d}");
        }
        outln!("    kernel: loaded {:?}, insmod: {}", m.kernel.loaded, m.kernel.insmod_output);
        for l in &m.kernel.lines {
            outln!("      {:?}: {}", l.level, l.text);
        }
        outln!("    check:  {:?} {}", m.check.verdict, m.check.errno.unwrap_or(""));
        for l in &m.check.lines {
            outln!("      {:?}: {}", l.level, l.text);
        }
    }
    outln!("serial log: {}", r.serial_log.display());
}
