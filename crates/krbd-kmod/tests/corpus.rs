//! The loader rules against a corpus made from Debian's real 6.12.117 modules.

mod support;

use krbd_kmod::loader::{check_set, Candidate, LogLevel, Outcome, SetFinding, SetOptions, SetReport, SignaturePolicy, Target};
use krbd_kmod::{load_target, KernelModule, TargetSpec};
use support::*;

fn target(fx: &Fixture) -> Target {
    load_target(&TargetSpec::Headers { dir: fx.headers_dir.clone() }, None).expect("load target from headers")
}

fn cand(name: &str, elf: Vec<u8>) -> Candidate {
    Candidate { file: format!("{name}.ko"), module: KernelModule::parse(&elf).expect("parse corpus module") }
}

fn run(set: Vec<Candidate>, t: &Target) -> SetReport {
    check_set(&set, t, &SetOptions::default())
}

fn verdict<'a>(r: &'a SetReport, name: &str) -> &'a krbd_kmod::loader::ModuleVerdict {
    r.modules.iter().find(|m| m.module == name).unwrap_or_else(|| panic!("no verdict for {name}"))
}

#[test]
fn debug_stock() {
    let fx = fixture();
    let t = target(&fx);
    let set = ["libceph", "ceph", "rbd"].iter().map(|n| cand(n, fx.unsigned_module(n))).collect();
    let r = run(set, &t);
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
}
