//! Supervising the processes we start (QEMU, Ceph daemons, helper commands): none may
//! outlive us. Each child dies with the thread that spawned it (PR_SET_PDEATHSIG), is killed
//! and reaped when its guard is dropped, and helper commands run with a hard timeout.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kills and reaps a child when dropped.
pub(crate) struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Makes the child die with the thread that spawned it, so a crash of ours leaves no QEMU
/// or Ceph daemon behind.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Why a helper command did not give its output. `command` is the command line as shown
/// in messages.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{command}: cannot start: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("{command}: interrupted (killed)")]
    Interrupted { command: String },
    #[error("{command}: no answer within {} s (killed)", .after.as_secs())]
    TimedOut { command: String, after: Duration },
    #[error("{command}: {status}: {stderr}")]
    Failed { command: String, status: ExitStatus, stderr: String },
    #[error("{command}: lost the child")]
    LostChild { command: String },
    #[error("{command}: {source}")]
    Wait { command: String, source: std::io::Error },
}

/// Runs a command with a hard timeout; returns stdout. Never leaves the process behind.
/// Stops early when a signal asked us to (see [`crate::interrupt`]).
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>, CommandError> {
    run_command(cmd, timeout, true)
}

/// [`run_with_timeout`], optionally deaf to signals (for teardown, which must finish).
pub(crate) fn run_command(cmd: &mut Command, timeout: Duration, interruptible: bool) -> Result<Vec<u8>, CommandError> {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn { command: command.clone(), source })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_timeout(ChildGuard(Some(child)), &command, timeout, interruptible)?;
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(CommandError::Failed { command, status, stderr: String::from_utf8_lossy(&err).trim().to_string() });
    }
    Ok(out)
}

/// Reads a pipe to its end on a thread of its own, so that a chatty child never blocks.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(mut s) = pipe {
            let _ = s.read_to_end(&mut b);
        }
        b
    })
}

/// Waits for the guarded child; kills it (by dropping the guard) on timeout or signal.
fn wait_with_timeout(
    mut guard: ChildGuard,
    command: &str,
    timeout: Duration,
    interruptible: bool,
) -> Result<ExitStatus, CommandError> {
    let start = Instant::now();
    let command = || command.to_string();
    loop {
        let Some(c) = guard.0.as_mut() else { return Err(CommandError::LostChild { command: command() }) };
        match c.try_wait() {
            Ok(Some(s)) => {
                guard.0 = None;
                return Ok(s);
            }
            Ok(None) if interruptible && crate::interrupt::interrupted() => {
                return Err(CommandError::Interrupted { command: command() });
            }
            Ok(None) if start.elapsed() > timeout => {
                return Err(CommandError::TimedOut { command: command(), after: timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(source) => return Err(CommandError::Wait { command: command(), source }),
        }
    }
}

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// Starts long-running children (the Ceph daemons) from one thread that lives as long as
/// they should. PR_SET_PDEATHSIG fires when the *thread* that forked exits, so spawning from
/// whichever (test) thread happens to start the cluster would kill the daemons when that
/// thread ends.
pub(crate) struct Spawner {
    tx: Mutex<Option<Sender<SpawnRequest>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    pub(crate) fn new() -> Spawner {
        let (tx, rx) = channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("krbd-cluster-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok();
        Spawner { tx: Mutex::new(Some(tx)), thread: Mutex::new(thread) }
    }

    pub(crate) fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let gone = || std::io::Error::other("the cluster's spawner thread is gone");
        let (reply_tx, reply_rx) = channel();
        {
            let tx = self.tx.lock().map_err(|_| gone())?;
            tx.as_ref().ok_or_else(gone)?.send((cmd, reply_tx)).map_err(|_| gone())?;
        }
        reply_rx.recv().map_err(|_| gone())?
    }

    /// Call only after every child it started is dead.
    pub(crate) fn stop(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Named long-running children (the cluster's daemons), each killed and reaped on removal.
#[derive(Default)]
pub(crate) struct Daemons(Mutex<Vec<(String, ChildGuard)>>);

/// A daemon that exited on its own.
pub(crate) struct DeadDaemon {
    pub name: String,
    pub status: ExitStatus,
}

impl Daemons {
    pub(crate) fn push(&self, name: &str, child: Child) {
        if let Ok(mut d) = self.0.lock() {
            d.push((name.to_string(), ChildGuard(Some(child))));
        }
    }

    /// The first daemon that is no longer running.
    pub(crate) fn first_dead(&self) -> Option<DeadDaemon> {
        let mut d = self.0.lock().ok()?;
        for (name, g) in d.iter_mut() {
            if let Some(c) = g.0.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Some(DeadDaemon { name: name.clone(), status });
                }
            }
        }
        None
    }

    /// Kills and reaps every daemon.
    pub(crate) fn kill_all(&self) {
        if let Ok(mut d) = self.0.lock() {
            d.clear(); // each guard kills and reaps its daemon
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_with_timeout_kills() {
        let t = Instant::now();
        let err = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let out = run_with_timeout(Command::new("echo").arg("hi"), Duration::from_secs(10)).unwrap();
        assert_eq!(out, b"hi\n");
    }
}
