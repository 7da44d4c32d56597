//! What the installer asks of the running kernel and the host's tools, behind a trait:
//! [`RealKernel`] runs modprobe, rmmod and the initramfs tools; the tests' simulated kernel
//! (`SimulatedKernel`, only in test builds) replays the same effects inside a scratch root.

use crate::host::{module_file_name, TargetHost};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Why loading, unloading, depmod or an initramfs rebuild failed. The texts are the
/// tools' own where the tools print them.
#[derive(Debug, thiserror::Error)]
pub enum KernelOpError {
    #[error("{command} failed ({status}): {stderr}")]
    Failed { command: String, status: ExitStatus, stderr: String },
    #[error("{command}: cannot run it: {source}")]
    CannotRun {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("modprobe: FATAL: modules.dep: {source}")]
    NoModulesDep {
        #[source]
        source: std::io::Error,
    },
    #[error("modprobe: FATAL: Module {name} not found in directory {}", dir.display())]
    NotInModulesDep { name: String, dir: PathBuf },
    #[error("insmod {}: {source}", path.display())]
    BadModule {
        path: PathBuf,
        #[source]
        source: krbd_kmod::ModuleError,
    },
    #[error("modprobe: ERROR: could not insert '{name}': Invalid argument (simulated)")]
    SimulatedLoadFailure { name: String },
    #[error("rmmod: ERROR: Module {name} is not currently loaded")]
    NotLoaded { name: String },
    #[error("rmmod: ERROR: Module {name} is in use by: {}", holders.join(" "))]
    InUse { name: String, holders: Vec<String> },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loading and unloading modules, and rebuilding the initramfs.
pub trait Kernel {
    /// Loads `name` and what it depends on, as `modprobe` resolves it (modules.dep).
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), KernelOpError>;
    /// Unloads `name` alone; fails while something uses it.
    fn unload(&self, host: &TargetHost, name: &str) -> Result<(), KernelOpError>;
    /// Rebuilds the release's initramfs if it holds any of `names`; returns what was done.
    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, KernelOpError>;
}

/// Runs a tool; its stdout when it succeeds.
fn run(cmd: &mut Command) -> Result<String, KernelOpError> {
    let command = format!("{cmd:?}");
    let out = match cmd.output() {
        Ok(out) => out,
        Err(source) => return Err(KernelOpError::CannotRun { command, source }),
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(KernelOpError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The machine's own kernel (only for root `/`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), KernelOpError> {
        run(Command::new("modprobe").args(["-S", &host.release, name])).map(|_| ())
    }

    fn unload(&self, _host: &TargetHost, name: &str) -> Result<(), KernelOpError> {
        run(Command::new("rmmod").arg(name)).map(|_| ())
    }

    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, KernelOpError> {
        let debian = host.abs(&format!("boot/initrd.img-{}", host.release));
        let redhat = host.abs(&format!("boot/initramfs-{}.img", host.release));
        let (image, lister, updater): (_, &str, Vec<String>) = if debian.is_file() {
            (debian, "lsinitramfs", vec!["update-initramfs".into(), "-u".into(), "-k".into(), host.release.clone()])
        } else if redhat.is_file() {
            (redhat, "lsinitrd", vec!["dracut".into(), "-f".into(), "--kver".into(), host.release.clone()])
        } else {
            return Ok(format!("no initramfs for {} in /boot: nothing to update", host.release));
        };
        let listing = run(Command::new(lister).arg(&image))?;
        let inside = listing.lines().any(|l| module_file_name(l.trim()).is_some_and(|n| names.contains(&n)));
        if !inside {
            return Ok(format!("{} does not hold the Ceph modules: left alone", image.display()));
        }
        run(Command::new(&updater[0]).args(&updater[1..]))?;
        Ok(format!("{} rebuilt with {}", image.display(), updater[0]))
    }
}

/// Runs depmod for the release inside the root.
pub fn depmod(host: &TargetHost) -> Result<(), KernelOpError> {
    let mut cmd = Command::new(depmod_program());
    cmd.arg("-a");
    if !host.is_live_root() {
        cmd.arg("-b").arg(&host.root);
    }
    cmd.arg(&host.release);
    run(&mut cmd).map(|_| ())
}

fn depmod_program() -> &'static str {
    // /sbin is not on every user's PATH (Debian's non-root PATH lacks it).
    ["/usr/sbin/depmod", "/sbin/depmod"].into_iter().find(|p| Path::new(p).is_file()).unwrap_or("depmod")
}
