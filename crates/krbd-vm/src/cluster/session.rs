//! One guest's share of the cluster: its tap, an image for the guest to write and one the
//! host fills for the guest to read, the guest's half of the RBD test (`guest/rbd-io.sh`),
//! and the check of what the guest reported against the host's view of the images.

use super::config::CLUSTER_IP;
use super::{netns, Cluster};
use crate::guest::GuestEvent;
use crate::initramfs::ExtraFiles;
use crate::qemu::GuestNetwork;
use crate::{ClusterFailure, ClusterStep, VmError};
use krbd_formats::digest::sha256_hex;
use krbd_progress::Listener;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering;

pub(super) const POOL: &str = "rbd";
const GUEST_IMAGE_BYTES: u64 = 16 << 20;
const HOST_IMAGE_BYTES: usize = 4 << 20;
const PATTERN_BYTES: usize = 1 << 20;
/// The guest writes its pattern at this offset, in 64 KiB blocks (8 MiB).
const PATTERN_SEEK_BLOCKS: u64 = 128;
/// Guest K has the subnet 10.254.K.0/24; 10.254.0.0 is the cluster's.
const MAX_GUESTS: u32 = 250;
/// The steps of `guest/rbd-io.sh`, in order.
const GUEST_STEPS: [&str; 11] =
    ["net", "map", "size", "pattern", "mkfs", "mount", "files", "umount", "unmap", "map_host", "unmap_host"];

/// The guest's half of the cluster test (the session's variables are prepended). Each step
/// reports `KRBD|step|<name>|ok|fail|<detail>`; a failed step ends the sequence.
const GUEST_SCRIPT: &str = include_str!("../guest/rbd-io.sh");

/// One step the guest reported.
#[derive(Debug, Clone, Serialize)]
pub struct GuestStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the cluster part of a boot test found.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub pool: String,
    pub guest_image: String,
    pub host_image: String,
    pub steps: Vec<GuestStep>,
    /// sha256 of the whole guest-written image, as the guest read it through rbd.ko.
    pub guest_device_sha256: Option<String>,
    /// sha256 of the same image from the host's `rbd export`.
    pub host_export_sha256: Option<String>,
    /// sha256 of the host-written image, as written and as the guest read it.
    pub host_written_sha256: String,
    pub guest_read_sha256: Option<String>,
    /// Kernel lines logged during the cluster steps (libceph sessions, rbd capacity, ext4).
    pub kernel_messages: Vec<String>,
    pub problems: Vec<String>,
}

/// A deterministic byte pattern (xorshift64*), so that both sides know what to expect.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Cluster {
    /// Prepares one guest run: its tap device, an empty image for the guest to write, and
    /// an image the host fills before the boot for the guest to read.
    pub fn guest_session(&self, work_dir: &Path, listener: &dyn Listener) -> Result<GuestSession<'_>, VmError> {
        let k = self.next_guest.fetch_add(1, Ordering::SeqCst);
        if k > MAX_GUESTS {
            return Err(VmError::cluster(
                ClusterStep::AllocateGuestSubnet,
                ClusterFailure::TooManyGuests { limit: MAX_GUESTS },
            ));
        }
        let tap = format!("ktap{k}");
        let mut session = GuestSession {
            cluster: self,
            network: GuestNetwork { netns: self.netns.clone(), tap: tap.clone() },
            k,
            guest_image: format!("guest-{k}"),
            host_image: format!("host-{k}"),
            guest_pattern: pattern(0x6b72_6264 + k as u64, PATTERN_BYTES),
            host_pattern: pattern(0x686f_7374 + k as u64, HOST_IMAGE_BYTES),
            tap_made: false,
        };
        netns::add_tap(&self.netns, &tap)?;
        session.tap_made = true;
        netns::configure_tap(&self.netns, &tap, k)?;
        session.create_images(work_dir)?;
        listener.info(&format!(
            "images {POOL}/{} and {POOL}/{} ready; guest network 10.254.{k}.0/24 on {tap}",
            session.guest_image, session.host_image
        ));
        Ok(session)
    }
}

/// One guest's share of the cluster: released (tap and images removed) on drop.
pub struct GuestSession<'a> {
    cluster: &'a Cluster,
    pub network: GuestNetwork,
    k: u32,
    guest_image: String,
    host_image: String,
    guest_pattern: Vec<u8>,
    host_pattern: Vec<u8>,
    tap_made: bool,
}

impl GuestSession<'_> {
    /// The empty image the guest writes, and the host-written one it reads.
    fn create_images(&self, work_dir: &Path) -> Result<(), VmError> {
        self.cluster.rbd(&[
            "create",
            &format!("{POOL}/{}", self.guest_image),
            "--size",
            &format!("{}M", GUEST_IMAGE_BYTES >> 20),
            "--image-feature",
            "layering",
        ])?;
        let host_file = work_dir.join(format!("{}.bin", self.host_image));
        std::fs::write(&host_file, &self.host_pattern)
            .map_err(|e| VmError::cluster(ClusterStep::WriteHostImage, ClusterFailure::Io(e)))?;
        let host_file_s = host_file.display().to_string();
        self.cluster.rbd(&[
            "import",
            "--image-feature",
            "layering",
            &host_file_s,
            &format!("{POOL}/{}", self.host_image),
        ])?;
        Ok(())
    }

    pub fn extra_files(&self) -> ExtraFiles {
        ExtraFiles { files: vec![("pattern.bin".into(), 0o644, self.guest_pattern.clone())] }
    }

    /// Shell code for the guest's init, run after the modules are loaded.
    pub fn guest_script(&self) -> String {
        self.variables() + GUEST_SCRIPT
    }

    /// The shell variables that describe this session to a guest (MON, KEY, POOL,
    /// GUEST_IMG, HOST_IMG, GUEST_IP, GW, ...), one `NAME=value` line each, for guests
    /// that run their own steps against the cluster.
    pub fn variables(&self) -> String {
        let k = self.k;
        format!(
            "MON={CLUSTER_IP}:6789\nMON_IP={CLUSTER_IP}\nKEY={key}\nPOOL={POOL}\nGUEST_IMG={gi}\nHOST_IMG={hi}\n\
             GUEST_SIZE={GUEST_IMAGE_BYTES}\nPATTERN_SHA={ps}\nPATTERN_SEEK={PATTERN_SEEK_BLOCKS}\nPATTERN_BLOCKS={pb}\n\
             GUEST_IP=10.254.{k}.2\nGW=10.254.{k}.1\n",
            key = self.cluster.admin_key,
            gi = self.guest_image,
            hi = self.host_image,
            ps = sha256_hex(&self.guest_pattern),
            pb = PATTERN_BYTES / 65536,
        )
    }

    /// The guest's `/etc/ceph/ceph.conf` and `/etc/ceph/ceph.client.admin.keyring`, as
    /// (file name, text).
    pub fn guest_ceph_files(&self, ms_mode: super::MsMode) -> [(&'static str, String); 2] {
        [
            ("ceph.conf", super::config::guest_ceph_conf(ms_mode)),
            ("ceph.client.admin.keyring", super::config::admin_keyring(&self.cluster.admin_key)),
        ]
    }

    /// The guest's address and its gateway (the tap), e.g. ("10.254.3.2", "10.254.3.1").
    pub fn guest_addresses(&self) -> (String, String) {
        (format!("10.254.{}.2", self.k), format!("10.254.{}.1", self.k))
    }

    /// Checks the guest's steps and compares checksums with the host's view of the images.
    pub fn verify(&self, events: &[GuestEvent], listener: &dyn Listener) -> ClusterReport {
        let steps = guest_steps(events);
        let mut problems = step_problems(&steps);
        let guest_device_sha256 = reported_value(events, "device_sha256");
        let host_export_sha256 = self.host_export_sha256(&mut problems);
        if guest_device_sha256.is_some() && guest_device_sha256 != host_export_sha256 {
            problems.push(format!(
                "the guest read {:?} from its image but the host's rbd export gives {:?}",
                guest_device_sha256, host_export_sha256
            ));
        }
        let host_written_sha256 = sha256_hex(&self.host_pattern);
        let guest_read_sha256 = reported_value(events, "host_image_sha256");
        if guest_read_sha256.is_some() && guest_read_sha256.as_deref() != Some(host_written_sha256.as_str()) {
            problems.push(format!(
                "the host wrote {host_written_sha256} to {}, the guest read {:?}",
                self.host_image, guest_read_sha256
            ));
        }
        if !problems.is_empty() {
            listener.warning(&format!("cluster checks: {} problem(s)", problems.len()));
        }
        ClusterReport {
            pool: POOL.into(),
            guest_image: self.guest_image.clone(),
            host_image: self.host_image.clone(),
            steps,
            guest_device_sha256,
            host_export_sha256,
            host_written_sha256,
            guest_read_sha256,
            kernel_messages: crate::boot::kernel_messages(events, "cluster"),
            problems,
        }
    }

    /// sha256 of the guest-written image as the host's `rbd export` gives it; a failed
    /// export is a problem.
    fn host_export_sha256(&self, problems: &mut Vec<String>) -> Option<String> {
        match self.cluster.rbd(&["export", &format!("{POOL}/{}", self.guest_image), "-"]) {
            Ok(bytes) => Some(sha256_hex(&bytes)),
            Err(e) => {
                problems.push(format!("host export failed: {e}"));
                None
            }
        }
    }
}

fn guest_steps(events: &[GuestEvent]) -> Vec<GuestStep> {
    events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::Step { name, ok, detail } => {
                Some(GuestStep { name: name.clone(), ok: *ok, detail: detail.clone() })
            }
            _ => None,
        })
        .collect()
}

/// Failed steps, or, when none failed, the first step that never ran (after a failed step
/// the guest stops, so missing ones are not worth listing then).
fn step_problems(steps: &[GuestStep]) -> Vec<String> {
    let mut problems: Vec<String> =
        steps.iter().filter(|s| !s.ok).map(|s| format!("guest step {} failed: {}", s.name, s.detail)).collect();
    for wanted in GUEST_STEPS {
        if problems.is_empty() && !steps.iter().any(|s| s.name == wanted) {
            problems.push(format!("guest step {wanted} never ran"));
        }
    }
    problems
}

/// The first `value|<key>|...` the guest reported.
fn reported_value(events: &[GuestEvent], key: &str) -> Option<String> {
    events.iter().find_map(|e| match e {
        GuestEvent::Value { key: k, value } if k == key => Some(value.clone()),
        _ => None,
    })
}

impl Drop for GuestSession<'_> {
    fn drop(&mut self) {
        for img in [&self.guest_image, &self.host_image] {
            let _ = self.cluster.rbd(&["rm", "--no-progress", &format!("{POOL}/{img}")]);
        }
        if self.tap_made {
            netns::delete_tap(&self.network.netns, &self.network.tap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_seeded() {
        assert_eq!(pattern(1, 100), pattern(1, 100));
        assert_ne!(pattern(1, 100), pattern(2, 100));
        assert_eq!(pattern(3, 1001).len(), 1001);
    }

    #[test]
    fn missing_steps_count_only_when_none_failed() {
        let step = |name: &str, ok| GuestStep { name: name.into(), ok, detail: "d".into() };
        assert_eq!(step_problems(&[step("net", true)]), ["guest step map never ran"]);
        assert_eq!(step_problems(&[step("net", true), step("map", false)]), ["guest step map failed: d"]);
    }
}
