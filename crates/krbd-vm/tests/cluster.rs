//! The whole boot test with a real Ceph cluster: the default target's kernel maps an RBD
//! image through the set under test and pushes I/O through it. One cluster per test binary.

mod common;

use common::*;
use krbd_progress::Silent;
use krbd_vm::{run_boot_test, BootTestSpec, Cluster, ClusterSpec};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static CLUSTER_DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

extern "C" fn tear_down_cluster() {
    if let Some(Ok(c)) = CLUSTER.get() {
        c.shutdown();
    }
    if let Some(d) = CLUSTER_DIR.get() {
        let _ = std::fs::remove_dir_all(d.path());
    }
}

/// Started once for this test binary; torn down at exit (statics are never dropped).
fn cluster() -> &'static Cluster {
    let c = CLUSTER.get_or_init(|| {
        let dir = CLUSTER_DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
        // SAFETY: registers a plain function; it only touches the static above.
        unsafe { libc::atexit(tear_down_cluster) };
        let spec = ClusterSpec { dir: dir.path().join("ceph"), osds: 1, start_timeout: Duration::from_secs(180) };
        Cluster::start(&spec, &Silent).map_err(|e| e.to_string())
    });
    match c {
        Ok(c) => c,
        Err(e) => panic!("cluster did not start: {e}"),
    }
}

#[test]
fn stock_set_maps_and_moves_data_through_a_real_cluster() {
    let started = Instant::now();
    let cluster = cluster();
    let netns = cluster.netns().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let work = tmp.path().join("work");
    let spec = BootTestSpec {
        image_deb: image_deb(),
        release: Some(release().into()),
        modules: stock_set(&mods),
        busybox: PathBuf::from("/bin/busybox"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        work_dir: work.clone(),
        timeout: Duration::from_secs(300),
        memory_mb: 1024,
        init_override: None,
        cluster: Some(cluster),
    };
    let report = match run_boot_test(&spec, &Silent) {
        Ok(r) => r,
        Err(e) => panic!("boot test failed: {e}"),
    };
    let c = report.cluster.as_ref().expect("cluster report");
    assert!(report.passed, "{:#?}", report);
    for step in ["net", "map", "size", "pattern", "mkfs", "mount", "files", "umount", "unmap", "map_host", "unmap_host"]
    {
        assert!(c.steps.iter().any(|s| s.name == step && s.ok), "step {step}: {:#?}", c.steps);
    }
    assert!(c.guest_device_sha256.is_some());
    assert_eq!(c.guest_device_sha256, c.host_export_sha256);
    assert_eq!(c.guest_read_sha256.as_deref(), Some(c.host_written_sha256.as_str()));
    assert!(c.kernel_messages.iter().any(|l| l.contains("capacity 16777216")), "{:#?}", c.kernel_messages);
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "QEMU left running");
    // The tap of this guest is gone; the cluster's namespace stays for other tests.
    let links = std::process::Command::new("ip").args(["-n", &netns, "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("ktap"), "{}", String::from_utf8_lossy(&links.stdout));
    eprintln!("cluster boot test took {:?} (guest {:.1} s)", started.elapsed(), report.elapsed_secs);
}

#[test]
fn a_cluster_of_our_own_is_torn_down_completely() {
    // A second, private cluster: after shutdown no daemon of it runs and its namespace is gone.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ceph");
    let spec = ClusterSpec { dir: dir.clone(), osds: 1, start_timeout: Duration::from_secs(180) };
    let c = Cluster::start(&spec, &Silent).unwrap_or_else(|e| panic!("{e}"));
    let netns = c.netns().to_string();
    assert!(!processes_mentioning(&dir.display().to_string()).is_empty());
    drop(c);
    assert!(processes_mentioning(&dir.display().to_string()).is_empty(), "daemons left running");
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&netns));
}
