//! The proof that an unpatched build reproduces its kernel's own modules, shared by every
//! test that builds a Debian target with `--series none`.

use super::{input_deb, stock_module, Built};
use krbd_kmod::KernelModule;
use std::collections::BTreeMap;
use std::path::Path;

/// The Ceph kernel modules every build makes.
pub const MODULES: [&str; 3] = ["libceph", "ceph", "rbd"];

/// A module of an out folder (`rbd.ko`, `stripped/rbd.ko`), parsed.
pub fn module(out: &Path, file: &str) -> KernelModule {
    let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    KernelModule::parse(&bytes).expect("parse built module")
}

/// Every imported symbol's CRC (`__versions`), by name.
pub fn crcs(m: &KernelModule) -> BTreeMap<String, u32> {
    m.versions.iter().map(|v| (v.name.clone(), v.crc)).collect()
}

/// Panics unless the unpatched `built` set of `release` equals the stock modules of the
/// linux-image package it was built against: vermagic, every `__versions` CRC, `depends`,
/// and the `.text` of the stripped copies, byte for byte.
pub fn assert_reproduces_stock(built: &Built, release: &str) {
    assert_eq!(built.report["release"], release);
    let image = input_deb(&built.report, "image");
    for name in MODULES {
        let ours = module(&built.out, &format!("{name}.ko"));
        let stock = KernelModule::parse(&stock_module(&image, name)).expect("parse stock module");
        assert_eq!(ours.vermagic(), stock.vermagic(), "{release} {name}: vermagic");
        assert!(ours.vermagic().unwrap_or("").starts_with(&format!("{release} ")), "{release} {name}: vermagic");
        let (a, b) = (crcs(&ours), crcs(&stock));
        assert!(!b.is_empty(), "{release} {name}: the stock module has modversions");
        assert_eq!(a, b, "{release} {name}: every imported symbol's CRC equals the stock module's");
        let stripped = module(&built.out, &format!("stripped/{name}.ko"));
        assert!(stripped.section(".debug_info").is_none(), "{name}: stripped copy has no debug info");
        let (ours_text, stock_text) = (stripped.section(".text"), stock.section(".text"));
        assert!(ours_text.is_some_and(|t| !t.is_empty()), "{release} {name}: has .text");
        assert!(ours_text == stock_text, "{release} {name}: .text is byte-identical to the stock module's");
        assert_eq!(ours.info("depends"), stock.info("depends"), "{release} {name}: depends");
    }
}
