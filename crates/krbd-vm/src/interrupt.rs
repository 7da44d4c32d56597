//! Ctrl-C and SIGTERM: the front end may install a handler that only sets a flag; the
//! waiting loops (QEMU, cluster start, helper commands) see it, kill what they run, and
//! return [`crate::VmError::Interrupted`], so that the cluster and its namespace are torn
//! down by the normal drop path instead of being left behind.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the flag-setting handler for SIGINT, SIGTERM and SIGHUP (process-wide; for the
/// binary, not for library users that have their own).
pub fn install_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a signal asked us to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
