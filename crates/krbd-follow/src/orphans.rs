//! Processes a killed run left behind. Every stage child runs with
//! [`OWNER_ENV`]`=<state folder>` in its environment, which its own children (make, the
//! compilers, QEMU, the Ceph daemons) inherit. A stage child also gets SIGTERM when its
//! follow process dies (PR_SET_PDEATHSIG, see [`crate::job::run_child`]) and passes it on,
//! but a grandchild can still outlive both. The next run, once it holds the state's lock
//! (so no live run of this state can own such a process), stops every process that carries
//! the marker before it redoes a stage, so that nothing of the killed attempt writes into
//! the state's folders or the cache while the stage runs again.

use krbd_progress::Listener;
use std::path::Path;
use std::time::{Duration, Instant};

/// The environment variable naming the state folder a stage child works for.
pub const OWNER_ENV: &str = "KRBD_FOLLOW_STATE";

/// How long the leftovers get to end on SIGTERM (a boot test tears down its cluster and
/// network namespace) before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(30);

/// The marker entry (`KRBD_FOLLOW_STATE=/var/lib/krbd-forge`) of `state_dir`'s children.
pub fn owner_value(state_dir: &Path) -> String {
    state_dir.display().to_string()
}

/// The pids of the processes whose environment carries `state_dir`'s marker, apart from
/// this process.
pub fn marked_processes(state_dir: &Path) -> Vec<i32> {
    let wanted = format!("{OWNER_ENV}={}", owner_value(state_dir));
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| u32::try_from(pid).is_ok_and(|p| p != me))
        .filter(|pid| {
            // Unreadable (gone, or another user's): not ours.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == wanted.as_bytes()))
        })
        .filter(|pid| !is_zombie(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// A zombie has ended already; only its parent's wait removes it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// Stops what a killed run of `state_dir` left running: SIGTERM, then SIGKILL to what is
/// still there after [`TERM_GRACE`]. Returns how many processes were found.
pub fn stop_leftovers(state_dir: &Path, listener: &dyn Listener) -> usize {
    let found = marked_processes(state_dir);
    if found.is_empty() {
        return 0;
    }
    listener.warning(&format!(
        "stopping {} process(es) left running by a killed follow run: {}",
        found.len(),
        found.iter().map(i32::to_string).collect::<Vec<_>>().join(" ")
    ));
    signal_all(&found, libc::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline {
        if marked_processes(state_dir).is_empty() {
            return found.len();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stubborn = marked_processes(state_dir);
    listener.warning(&format!("{} of them did not end on SIGTERM: SIGKILL", stubborn.len()));
    signal_all(&stubborn, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !marked_processes(state_dir).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    found.len()
}

fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: a plain syscall; a pid that ended meanwhile only yields ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn marked_children_are_found_and_stopped_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let spawn = |state: &Path| {
            Command::new("sleep").arg("300").env(OWNER_ENV, owner_value(state)).stdout(Stdio::null()).spawn().unwrap()
        };
        let mut ours = spawn(dir.path());
        let mut theirs = spawn(other.path());
        assert_eq!(marked_processes(dir.path()), vec![ours.id() as i32]);
        let listener = krbd_progress::Recorder::default();
        // The child is reaped by the wait below, so count it as gone once it is a zombie.
        let waiter = std::thread::spawn(move || ours.wait().unwrap());
        assert_eq!(stop_leftovers(dir.path(), &listener), 1);
        assert_eq!(waiter.join().unwrap().code(), None, "ended by a signal");
        assert!(marked_processes(dir.path()).is_empty());
        assert_eq!(marked_processes(other.path()), vec![theirs.id() as i32], "another state's child lives on");
        theirs.kill().unwrap();
        let _ = theirs.wait();
        assert!(listener.messages().iter().any(|m| m.contains("left running by a killed follow run")));
    }
}
