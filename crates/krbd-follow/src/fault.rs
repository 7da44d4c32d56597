//! Crash points for the follow tests: with the `test-hooks` feature (never in shipped
//! builds), `KRBD_FOLLOW_CRASH_AT=<point>` makes the process kill itself (SIGKILL) at that
//! point, as `kill -9` there would. Points: `discovered`, `staged:<stage>` (a stage's
//! results renamed into place, not yet recorded), `recorded:<stage>` (recorded, the next
//! stage not begun), `published` (the repository switched, the release not yet marked
//! published).

/// The variable naming the crash point.
pub const CRASH_ENV: &str = "KRBD_FOLLOW_CRASH_AT";

/// Kills the process if [`CRASH_ENV`] names `point` (only with the `test-hooks` feature).
pub fn crash_point(point: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var(CRASH_ENV).is_ok_and(|s| s == point) {
        // SAFETY: plain syscalls; the process ends here, as it would under `kill -9`.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = point;
}
