//! Compiles the shipped patch series into the binary (so an installed `krbd-forge` needs no
//! source checkout), and the commit it was built from for `--version`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The series every build applies unless told otherwise; the one the binary carries.
const EMBEDDED: &[&str] = &["recovery-weight"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let patches = manifest.join("../../patches");
    let mut code = String::from("/// One file of a built-in series: its path inside the series, its contents.\n");
    code.push_str("pub type EmbeddedFile = (&'static str, &'static [u8]);\n");
    code.push_str("/// The built-in series: each name with its files.\n");
    code.push_str("pub const EMBEDDED_SERIES: &[(&str, &[EmbeddedFile])] = &[\n");
    for name in EMBEDDED {
        let dir = patches.join(name);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        list(&dir, Path::new(""), &mut files);
        assert!(!files.is_empty(), "{}: the shipped series is missing from the source tree", dir.display());
        files.sort();
        let _ = writeln!(code, "    ({name:?}, &[");
        for rel in files {
            let abs = dir.join(&rel).canonicalize().expect("canonical series path");
            let _ = writeln!(code, "        ({:?}, include_bytes!({:?})),", rel.to_str().expect("UTF-8 path"), abs);
        }
        code.push_str("    ]),\n");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("embedded_series.rs"), code).expect("write embedded_series.rs");
    version(&manifest);
}

/// Every file under `dir`, as paths relative to the series folder.
fn list(dir: &Path, rel: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("read series folder");
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            list(&path, &rel, files);
        } else {
            files.push(rel);
        }
    }
}

/// `KRBD_FORGE_VERSION`: the package version, with the commit of the checkout it was built
/// from when there is one (`0.1.0 (git 28abbc5e1f2a)`), else the package version alone.
fn version(manifest: &Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(manifest)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let full = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => format!("{version} (git {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=KRBD_FORGE_VERSION={full}");
    // HEAD moves on checkout, the branch's ref (or packed-refs) on commit. Only files that
    // exist: cargo reruns a script on every build for a missing one.
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch.push(PathBuf::from(dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        watch.push(PathBuf::from(&common).join("packed-refs"));
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(PathBuf::from(&common).join(head));
        }
    }
    for file in watch.iter().filter(|f| f.is_file()) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}
