//! What the installer asks of the running kernel and the host's tools, behind a trait:
//! [`RealKernel`] runs modprobe, rmmod and the initramfs tools; [`SimulatedKernel`]
//! replays the same effects inside a scratch root, for tests that must not touch the
//! machine's kernel.

use crate::host::{module_file_name, TargetHost};
use krbd_kmod::KernelModule;
use std::path::Path;
use std::process::Command;

/// Loading and unloading modules, and rebuilding the initramfs.
pub trait Kernel {
    /// Loads `name` and what it depends on, as `modprobe` resolves it (modules.dep).
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), String>;
    /// Unloads `name` alone; fails while something uses it.
    fn unload(&self, host: &TargetHost, name: &str) -> Result<(), String>;
    /// Rebuilds the release's initramfs if it holds any of `names`; returns what was done.
    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, String>;
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: cannot run it: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{shown} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The machine's own kernel (only for root `/`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), String> {
        run(Command::new("modprobe").args(["-S", &host.release, name])).map(|_| ())
    }

    fn unload(&self, _host: &TargetHost, name: &str) -> Result<(), String> {
        run(Command::new("rmmod").arg(name)).map(|_| ())
    }

    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, String> {
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

/// A kernel simulated inside the root: `load` resolves the module through the root's
/// modules.dep (written by the real depmod) and creates `/sys/module/<name>` with the
/// file's srcversion and build-id note and the `holders` links that make an in-use module refuse to unload.
/// `fail_load` names a module file, by its identity (`build-id:…`/`srcversion:…`), whose
/// load fails: a fault of one set only, to test the automatic rollback.
#[derive(Debug, Default, Clone)]
pub struct SimulatedKernel {
    pub fail_load: Option<String>,
}

impl SimulatedKernel {
    fn sys_module(host: &TargetHost, name: &str) -> std::path::PathBuf {
        host.root.join("sys/module").join(name)
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

impl Kernel for SimulatedKernel {
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), String> {
        if host.loaded(name).loaded {
            return Ok(());
        }
        let dep = std::fs::read_to_string(host.modules_dir().join("modules.dep"))
            .map_err(|e| format!("modprobe: FATAL: modules.dep: {e}"))?;
        let line = dep
            .lines()
            .find(|l| l.split_once(':').is_some_and(|(p, _)| module_file_name(p.trim()) == Some(name)))
            .ok_or_else(|| {
                format!("modprobe: FATAL: Module {name} not found in directory {}", host.modules_dir().display())
            })?;
        let (path, deps) = line.split_once(':').unwrap_or((line, ""));
        // modules.dep lists dependencies deepest last; load them in reverse.
        let deps: Vec<&str> = deps.split_whitespace().collect();
        for d in deps.iter().rev() {
            if let Some(dn) = module_file_name(d) {
                self.load(host, dn)?;
            }
        }
        let file = host.modules_dir().join(path.trim());
        let module = KernelModule::read(&file).map_err(|e| format!("insmod {}: {e}", file.display()))?;
        if self.fail_load.is_some() && self.fail_load == crate::set::module_identity(&module) {
            return Err(format!("modprobe: ERROR: could not insert '{name}': Invalid argument (simulated)"));
        }
        let dir = Self::sys_module(host, name);
        std::fs::create_dir_all(dir.join("holders")).map_err(io)?;
        if let Some(sv) = module.srcversion() {
            std::fs::write(dir.join("srcversion"), format!("{sv}\n")).map_err(io)?;
        }
        if let Some(note) = module.section(".note.gnu.build-id") {
            std::fs::create_dir_all(dir.join("notes")).map_err(io)?;
            std::fs::write(dir.join("notes/.note.gnu.build-id"), note).map_err(io)?;
        }
        std::fs::write(dir.join("initstate"), "live\n").map_err(io)?;
        for d in &deps {
            if let Some(dn) = module_file_name(d) {
                let holders = Self::sys_module(host, dn).join("holders");
                std::fs::create_dir_all(&holders).map_err(io)?;
                std::fs::write(holders.join(name), "").map_err(io)?;
            }
        }
        Ok(())
    }

    fn unload(&self, host: &TargetHost, name: &str) -> Result<(), String> {
        let dir = Self::sys_module(host, name);
        if !dir.join("initstate").exists() {
            return Err(format!("rmmod: ERROR: Module {name} is not currently loaded"));
        }
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if !holders.is_empty() {
            return Err(format!("rmmod: ERROR: Module {name} is in use by: {}", holders.join(" ")));
        }
        std::fs::remove_dir_all(&dir).map_err(io)?;
        if let Ok(entries) = std::fs::read_dir(host.root.join("sys/module")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path().join("holders").join(name));
            }
        }
        Ok(())
    }

    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, String> {
        // The simulated initramfs is a list of the module files it holds, one per line.
        let image = host.abs(&format!("boot/initrd.img-{}", host.release));
        let Ok(listing) = std::fs::read_to_string(&image) else {
            return Ok(format!("no initramfs for {} in /boot: nothing to update", host.release));
        };
        if !listing.lines().any(|l| module_file_name(l.trim()).is_some_and(|n| names.contains(&n))) {
            return Ok(format!("{} does not hold the Ceph modules: left alone", image.display()));
        }
        let mut rebuilt = String::new();
        for n in names {
            if let Some(m) = host.installed(n) {
                rebuilt.push_str(&format!("{} {}\n", m.path, m.identity.unwrap_or_default()));
            }
        }
        std::fs::write(&image, rebuilt).map_err(io)?;
        Ok(format!("{} rebuilt (simulated)", image.display()))
    }
}

/// Runs depmod for the release inside the root.
pub fn depmod(host: &TargetHost) -> Result<(), String> {
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
