//! A kernel simulated inside a scratch root, for tests that must not touch the machine's
//! kernel. Compiled only into test builds (the `test-hooks` feature, or this crate's own
//! unit tests): a shipped installer always drives the real kernel.

use crate::host::{module_file_name, TargetHost};
use crate::kernel::{Kernel, KernelOpError};
use krbd_kmod::KernelModule;
use std::path::{Path, PathBuf};

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
    fn sys_module(host: &TargetHost, name: &str) -> PathBuf {
        host.root.join("sys/module").join(name)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KernelOpError + '_ {
    move |source| KernelOpError::Io { path: path.to_path_buf(), source }
}

/// Writes a sysfs-like file under the root.
fn write(path: PathBuf, contents: impl AsRef<[u8]>) -> Result<(), KernelOpError> {
    std::fs::write(&path, contents).map_err(io_error(&path))
}

fn create_dir(path: PathBuf) -> Result<(), KernelOpError> {
    std::fs::create_dir_all(&path).map_err(io_error(&path))
}

impl Kernel for SimulatedKernel {
    fn load(&self, host: &TargetHost, name: &str) -> Result<(), KernelOpError> {
        if host.loaded(name).loaded {
            return Ok(());
        }
        let dep = std::fs::read_to_string(host.modules_dir().join("modules.dep"))
            .map_err(|source| KernelOpError::NoModulesDep { source })?;
        let line = dep
            .lines()
            .find(|l| l.split_once(':').is_some_and(|(p, _)| module_file_name(p.trim()) == Some(name)))
            .ok_or_else(|| KernelOpError::NotInModulesDep { name: name.to_string(), dir: host.modules_dir() })?;
        let (path, deps) = line.split_once(':').unwrap_or((line, ""));
        // modules.dep lists dependencies deepest last; load them in reverse.
        let deps: Vec<&str> = deps.split_whitespace().filter_map(module_file_name).collect();
        for d in deps.iter().rev() {
            self.load(host, d)?;
        }
        let file = host.modules_dir().join(path.trim());
        let module =
            KernelModule::read(&file).map_err(|source| KernelOpError::BadModule { path: file.clone(), source })?;
        if self.fail_load.is_some() && self.fail_load == crate::set::module_identity(&module) {
            return Err(KernelOpError::SimulatedLoadFailure { name: name.to_string() });
        }
        let dir = Self::sys_module(host, name);
        create_dir(dir.join("holders"))?;
        if let Some(sv) = module.srcversion() {
            write(dir.join("srcversion"), format!("{sv}\n"))?;
        }
        if let Some(note) = module.section(".note.gnu.build-id") {
            create_dir(dir.join("notes"))?;
            write(dir.join("notes/.note.gnu.build-id"), note)?;
        }
        write(dir.join("initstate"), "live\n")?;
        for d in &deps {
            let holders = Self::sys_module(host, d).join("holders");
            create_dir(holders.clone())?;
            write(holders.join(name), "")?;
        }
        Ok(())
    }

    fn unload(&self, host: &TargetHost, name: &str) -> Result<(), KernelOpError> {
        let dir = Self::sys_module(host, name);
        if !dir.join("initstate").exists() {
            return Err(KernelOpError::NotLoaded { name: name.to_string() });
        }
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if !holders.is_empty() {
            return Err(KernelOpError::InUse { name: name.to_string(), holders });
        }
        std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        if let Ok(entries) = std::fs::read_dir(host.root.join("sys/module")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path().join("holders").join(name));
            }
        }
        Ok(())
    }

    fn update_initramfs(&self, host: &TargetHost, names: &[&str]) -> Result<String, KernelOpError> {
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
        std::fs::write(&image, rebuilt).map_err(io_error(&image))?;
        Ok(format!("{} rebuilt (simulated)", image.display()))
    }
}
