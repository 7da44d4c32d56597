//! The cluster's network namespace and the guests' tap devices, through `ip`.
//!
//! The daemons bind [`super::config::CLUSTER_IP`] on the namespace's loopback; guest K gets
//! tap `ktapK` with 10.254.K.1/24 on the host side (the guest takes 10.254.K.2 and routes
//! through it). Namespaces are named `krbd-<pid>-<n>`, so that those of a crashed run can
//! be found and removed.

use super::config::CLUSTER_IP;
use crate::process::{run_command, run_with_timeout};
use crate::VmError;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn ip(args: &[&str]) -> Result<(), VmError> {
    run_with_timeout(Command::new("ip").args(args), Duration::from_secs(30))
        .map(|_| ())
        .map_err(|source| VmError::Netns { command: format!("ip {}", args.join(" ")), source })
}

/// `ip` for teardown: runs to the end even after a signal, or the namespace would stay.
fn ip_teardown(args: &[&str]) {
    let _ = run_command(Command::new("ip").args(args), Duration::from_secs(30), false);
}

/// Deletes namespaces left by earlier runs of ours whose process is gone (after a crash).
pub(super) fn remove_stale_namespaces() {
    let Ok(out) = run_with_timeout(Command::new("ip").args(["netns", "list"]), Duration::from_secs(10)) else { return };
    for line in String::from_utf8_lossy(&out).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("krbd-") else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A name for a new namespace of this process.
pub(super) fn new_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!("krbd-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

pub(super) fn add(netns: &str) -> Result<(), VmError> {
    ip(&["netns", "add", netns])
}

/// Brings the namespace's loopback up with the address the daemons bind.
pub(super) fn set_up_loopback(netns: &str) -> Result<(), VmError> {
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "addr", "add", &format!("{CLUSTER_IP}/32"), "dev", "lo"])
}

/// Deletes the namespace (and with it every tap still in it).
pub(super) fn delete(netns: &str) {
    ip_teardown(&["netns", "del", netns]);
}

/// Creates tap `tap` in the namespace; the caller owns it from here on (see
/// [`configure_tap`] and [`delete_tap`]).
pub(super) fn add_tap(netns: &str, tap: &str) -> Result<(), VmError> {
    ip(&["-n", netns, "tuntap", "add", "dev", tap, "mode", "tap"])
}

/// Gives the tap of guest `k` its host-side address and brings it up.
pub(super) fn configure_tap(netns: &str, tap: &str, k: u32) -> Result<(), VmError> {
    ip(&["-n", netns, "addr", "add", &format!("10.254.{k}.1/24"), "dev", tap])?;
    ip(&["-n", netns, "link", "set", tap, "up"])
}

pub(super) fn delete_tap(netns: &str, tap: &str) {
    ip_teardown(&["-n", netns, "link", "del", tap]);
}

/// `program` run inside the namespace.
pub(super) fn exec(netns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns, program]);
    c
}
