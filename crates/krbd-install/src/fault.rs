//! Fault injection for the installer's own tests: a crash point that kills the process at a
//! chosen step, and a kernel simulated inside a scratch root. Compiled only with the
//! `test-hooks` feature, which release builds and shipped binaries never enable, so the
//! variables below mean nothing to an installer on a customer host.
//!
//! - `KRBD_INSTALL_CRASH_AFTER=<point>`: the process kills itself (SIGKILL) right after the
//!   journal records step `<point>` (a [`crate::Step`] name), or inside the steps that change
//!   several modules, after one of them: `swapped:<module>`, `unloaded:<module>`,
//!   `loaded:<module>`, `reload-unloaded:<module>`, `rollback-restored:<module>`,
//!   `rollback-unloaded:<module>`, `rollback-loaded:<module>`.
//! - `KRBD_INSTALL_SIMULATE_KERNEL=1`: drive a [`SimulatedKernel`] under the root (sysfs
//!   files there) instead of modprobe/rmmod.
//! - `KRBD_INSTALL_SIMULATE_FAIL_LOAD=<identity>`: with the simulated kernel, loading the
//!   module file with this identity (`srcversion:…`/`build-id:…`) fails.

use crate::simulated::SimulatedKernel;

/// Names the crash point at which the process kills itself.
pub const CRASH_ENV: &str = "KRBD_INSTALL_CRASH_AFTER";
/// `1`: run against a kernel simulated inside the root.
pub const SIMULATE_ENV: &str = "KRBD_INSTALL_SIMULATE_KERNEL";
/// With the simulated kernel: the identity of the module file whose load fails.
pub const SIMULATE_FAIL_ENV: &str = "KRBD_INSTALL_SIMULATE_FAIL_LOAD";

/// Kills the process (SIGKILL) if [`CRASH_ENV`] names `point`, as a crash or `kill -9`
/// there would.
pub fn crash_point(point: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|s| s == point) {
        // SAFETY: plain syscalls; the process ends here, as it would under `kill -9`.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The simulated kernel, if [`SIMULATE_ENV`] asks for it.
pub fn simulated_kernel_from_env() -> Option<SimulatedKernel> {
    std::env::var(SIMULATE_ENV)
        .is_ok_and(|v| v == "1")
        .then(|| SimulatedKernel { fail_load: std::env::var(SIMULATE_FAIL_ENV).ok() })
}
