//! Where things go on the target host, and what the packages are called. The install
//! command and every package format share these, so a set installed one way is found by
//! the others.

use crate::input::BuildSet;

/// Modules go to `/lib/modules/<release>/updates/krbd-forge/`: depmod's search order puts
/// `updates` (with its subfolders) before the in-tree modules on both families (Debian's
/// depmod.d default is `search updates ubuntu built-in`, RHEL's `search updates extra
/// built-in weak-updates`), so the shipped set wins over the stock `kernel/` copies without
/// touching them. The subfolder is the one `krbd-forge install` uses
/// (`krbd_install::INSTALL_SUBDIR`), so depmod never sees two copies of a module.
pub const MODULE_SUBDIR: &str = "updates/krbd-forge";

pub fn module_dir(release: &str) -> String {
    format!("/lib/modules/{release}/{MODULE_SUBDIR}")
}

/// The absolute target path of one module file.
pub fn module_path(release: &str, file: &str) -> String {
    format!("{}/{file}", module_dir(release))
}

/// The build report (and the README of packages) lands under `/usr/share/doc/<package>/`.
pub fn doc_dir(package: &str) -> String {
    format!("/usr/share/doc/{package}")
}

/// A kernel release made safe for package names: lowercase letters, digits, `.`, `+`, `-`.
pub fn sanitize(release: &str) -> String {
    release
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') { c } else { '-' })
        .collect()
}

/// Names and versions of the packages of one set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Naming {
    /// `kmod-krbd-forge-<release>` (RHEL's kmod naming).
    pub rpm_name: String,
    /// `krbd-forge-modules-<release>`.
    pub deb_name: String,
    /// The tool's version.
    pub version: String,
    /// The build key's first 12 hex digits: one set, one revision.
    pub revision: String,
    /// `krbd-forge-<release>-<revision>`: the tarball's top folder.
    pub tarball_stem: String,
    /// The DKMS module name and version (`/usr/src/<name>-<version>/`).
    pub dkms_name: String,
    pub dkms_version: String,
}

impl Naming {
    pub fn of(set: &BuildSet) -> Naming {
        let rel = sanitize(set.release());
        let version = set.tool_version();
        let revision = set.short_key().to_string();
        Naming {
            rpm_name: format!("kmod-krbd-forge-{rel}"),
            deb_name: format!("krbd-forge-modules-{rel}"),
            tarball_stem: format!("krbd-forge-{rel}-{revision}"),
            dkms_name: "krbd-forge".into(),
            dkms_version: format!("{version}-{revision}"),
            version,
            revision,
        }
    }
}

/// The shell lines that refresh the module index after files changed. `root` is a shell
/// expression for an alternative root (dpkg's `$DPKG_ROOT`), empty for `/`.
pub fn depmod_lines(release: &str, root: &str) -> String {
    let b = if root.is_empty() { String::new() } else { format!("-b \"{root}/\" ") };
    format!(
        "if [ -d \"{root}/lib/modules/{release}\" ] && command -v depmod >/dev/null 2>&1; then\n    depmod {b}-a {release} || true\nfi\n"
    )
}
