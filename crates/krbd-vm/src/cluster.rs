//! A throwaway Ceph cluster (one mon, one mgr, memstore OSDs, cephx) from Debian's
//! packages, inside a network namespace of its own, and the guest side of the RBD test.
//!
//! Why a namespace: the cluster's maps carry the addresses its daemons bind, and a guest
//! cannot reach the host's 127.0.0.1. So the daemons bind 10.254.0.1 on the namespace's
//! loopback, and each guest gets a tap device of its own in the namespace (10.254.K.1/24 on
//! the host side, 10.254.K.2 in the guest, routed to 10.254.0.1). Nothing leaves the
//! namespace. Every daemon runs in the foreground as our child, dies with us
//! (PR_SET_PDEATHSIG), and is killed and reaped by [`Cluster::shutdown`] or on drop.

use crate::guest::GuestEvent;
use crate::initramfs::ExtraFiles;
use crate::qemu::{die_with_parent, ChildGuard, GuestNetwork};
use crate::VmError;
use krbd_formats::digest::sha256_hex;
use krbd_progress::{Listener, Unit};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Modules of the target's package that the guest needs for the cluster test: the NIC
/// QEMU emulates, ext4 (which also mounts the ext2 that busybox's mke2fs makes), and rbd
/// (taken from the package only when the set under test has none).
pub const GUEST_SUPPORT_MODULES: [&str; 3] = ["e1000", "ext4", "rbd"];

/// The address every daemon binds, on the namespace's loopback.
const CLUSTER_IP: &str = "10.254.0.1";
const POOL: &str = "rbd";
const GUEST_IMAGE_BYTES: u64 = 16 << 20;
const HOST_IMAGE_BYTES: usize = 4 << 20;
const PATTERN_BYTES: usize = 1 << 20;
/// The guest writes its pattern at this offset, in 64 KiB blocks (8 MiB).
const PATTERN_SEEK_BLOCKS: u64 = 128;

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Folder for config, keyrings, daemon data and logs (created; left in place).
    pub dir: PathBuf,
    pub osds: u32,
    /// Limit for reaching a usable state (mon answering, all OSDs up).
    pub start_timeout: Duration,
}

/// A running cluster. Shared by reference between boot tests; each test gets its own tap
/// and images through [`Cluster::guest_session`].
pub struct Cluster {
    netns: String,
    dir: PathBuf,
    conf: PathBuf,
    admin_key: String,
    daemons: Mutex<Vec<(String, ChildGuard)>>,
    spawner: Spawner,
    netns_alive: Mutex<bool>,
    next_guest: AtomicU32,
}

type SpawnRequest = (Command, std::sync::mpsc::Sender<std::io::Result<std::process::Child>>);

/// Starts the daemons from one thread that lives as long as the cluster. PR_SET_PDEATHSIG
/// fires when the *thread* that forked exits, so spawning from whichever (test) thread
/// happens to start the cluster would kill the daemons when that thread ends.
struct Spawner {
    tx: Mutex<Option<std::sync::mpsc::Sender<SpawnRequest>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    fn new() -> Spawner {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
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

    fn spawn(&self, cmd: Command) -> std::io::Result<std::process::Child> {
        let gone = || std::io::Error::other("the cluster's spawner thread is gone");
        let (reply_tx, reply_rx) = std::sync::mpsc::channel();
        {
            let tx = self.tx.lock().map_err(|_| gone())?;
            tx.as_ref().ok_or_else(gone)?.send((cmd, reply_tx)).map_err(|_| gone())?;
        }
        reply_rx.recv().map_err(|_| gone())?
    }

    /// Call only after every daemon is dead.
    fn stop(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// One step the guest reported.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStep {
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
    pub steps: Vec<ClusterStep>,
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

fn cluster_err(step: &str) -> impl Fn(String) -> VmError + '_ {
    move |reason| VmError::Cluster { step: step.to_string(), reason }
}

/// Runs a command with a hard timeout; returns stdout. Never leaves the process behind.
/// Stops early when a signal asked us to (see [`crate::interrupt`]).
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>, String> {
    run_command(cmd, timeout, true)
}

fn run_command(cmd: &mut Command, timeout: Duration, interruptible: bool) -> Result<Vec<u8>, String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: cannot start: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let guard = ChildGuard(Some(child));
    let out_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let err_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let start = Instant::now();
    let mut guard = guard;
    let status = loop {
        let Some(c) = guard.0.as_mut() else { return Err(format!("{shown}: lost the child")) };
        match c.try_wait() {
            Ok(Some(s)) => {
                guard.0 = None;
                break s;
            }
            Ok(None) if interruptible && crate::interrupt::interrupted() => {
                drop(guard);
                return Err(format!("{shown}: interrupted (killed)"));
            }
            Ok(None) if start.elapsed() > timeout => {
                drop(guard);
                return Err(format!("{shown}: no answer within {} s (killed)", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{shown}: {status}: {}", String::from_utf8_lossy(&err).trim()));
    }
    Ok(out)
}

/// `ip` for teardown: runs to the end even after a signal, or the namespace would stay.
fn ip_teardown(args: &[&str]) {
    let _ = run_command(Command::new("ip").args(args), Duration::from_secs(30), false);
}

fn ip(args: &[&str]) -> Result<(), VmError> {
    run_with_timeout(Command::new("ip").args(args), Duration::from_secs(30))
        .map(|_| ())
        .map_err(|reason| VmError::Netns { step: format!("ip {}", args.join(" ")), reason })
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

/// Deletes namespaces left by earlier runs of ours whose process is gone (after a crash).
fn remove_stale_namespaces() {
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

impl Cluster {
    /// Starts mon, mgr and `spec.osds` memstore OSDs in a new network namespace, creates the
    /// `rbd` pool (client I/O then waits for its PGs to peer).
    pub fn start(spec: &ClusterSpec, listener: &dyn Listener) -> Result<Cluster, VmError> {
        for tool in ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool", "ip"] {
            if crate::qemu::find_program(Path::new(tool)).is_none() {
                return Err(VmError::Cluster {
                    step: "looking for the Ceph tools".into(),
                    reason: format!("{tool} is not in PATH; install ceph-mon ceph-osd ceph-mgr ceph-common iproute2 (scripts/install-deps.sh)"),
                });
            }
        }
        remove_stale_namespaces();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let netns = format!("krbd-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        std::fs::create_dir_all(&spec.dir).map_err(|e| cluster_err("create folder")(e.to_string()))?;
        let dir = std::fs::canonicalize(&spec.dir).map_err(|e| cluster_err("create folder")(e.to_string()))?;
        ip(&["netns", "add", &netns])?;
        let cluster = Cluster {
            netns: netns.clone(),
            conf: dir.join("ceph.conf"),
            dir,
            admin_key: String::new(),
            daemons: Mutex::new(Vec::new()),
            spawner: Spawner::new(),
            netns_alive: Mutex::new(true),
            next_guest: AtomicU32::new(1),
        };
        // From here on, an error drops `cluster`, which tears down what exists.
        listener.task_start("starting a throwaway Ceph cluster", Some(4), Unit::Steps);
        let result = cluster.bring_up(spec, listener);
        listener.task_finish();
        result
    }

    fn bring_up(mut self, spec: &ClusterSpec, listener: &dyn Listener) -> Result<Cluster, VmError> {
        ip(&["-n", &self.netns, "link", "set", "lo", "up"])?;
        ip(&["-n", &self.netns, "addr", "add", &format!("{CLUSTER_IP}/32"), "dev", "lo"])?;
        let d = self.dir.clone();
        for sub in ["run", "log", "mon.a", "mgr.x"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| cluster_err("create folders")(e.to_string()))?;
        }
        let fsid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map_err(|e| cluster_err("make an fsid")(e.to_string()))?
            .trim()
            .to_string();
        let mon_key = self.gen_key()?;
        self.admin_key = self.gen_key()?;
        let admin_caps =
            "\tcaps mon = \"allow *\"\n\tcaps osd = \"allow *\"\n\tcaps mgr = \"allow *\"\n\tcaps mds = \"allow *\"\n";
        let admin_keyring = format!("[client.admin]\n\tkey = {}\n{admin_caps}", self.admin_key);
        let write = |p: PathBuf, s: &str| {
            std::fs::write(&p, s).map_err(|e| cluster_err("write config")(format!("{}: {e}", p.display())))
        };
        write(d.join("admin.keyring"), &admin_keyring)?;
        write(d.join("mon.keyring"), &format!("[mon.]\n\tkey = {mon_key}\n\tcaps mon = \"allow *\"\n{admin_keyring}"))?;
        let dd = d.display();
        write(
            self.conf.clone(),
            &format!(
                "[global]
fsid = {fsid}
mon host = [v2:{CLUSTER_IP}:3300,v1:{CLUSTER_IP}:6789]
public addr = {CLUSTER_IP}
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {dd}/admin.keyring
run dir = {dd}/run
admin socket = {dd}/run/$name.$pid.asok
pid file = {dd}/run/$name.pid
log file = {dd}/log/$name.log
mon data = {dd}/$name
mgr data = {dd}/$name
osd data = {dd}/$name
osd objectstore = memstore
memstore device bytes = 536870912
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
osd op num shards = 1
osd op num threads per shard = 2
[mon]
keyring = {dd}/mon.keyring
[mgr]
keyring = {dd}/$name/keyring
[osd]
keyring = {dd}/$name/keyring
"
            ),
        )?;
        let mon_addr = format!("[v2:{CLUSTER_IP}:3300,v1:{CLUSTER_IP}:6789]");
        let monmap = d.join("monmap");
        let t = Duration::from_secs(60);
        run_with_timeout(
            Command::new("monmaptool").args(["--create", "--fsid", &fsid, "--addv", "a", &mon_addr]).arg(&monmap),
            t,
        )
        .map_err(cluster_err("monmaptool"))?;
        run_with_timeout(
            Command::new("ceph-mon")
                .args(["--mkfs", "-i", "a", "-c"])
                .arg(&self.conf)
                .arg("--monmap")
                .arg(&monmap)
                .arg("--keyring")
                .arg(d.join("mon.keyring")),
            t,
        )
        .map_err(cluster_err("ceph-mon --mkfs"))?;
        self.spawn_daemon("mon.a", &["ceph-mon", "-f", "-i", "a"])?;
        let deadline = Instant::now() + spec.start_timeout;
        self.wait_for("the monitor to answer", deadline, |c| c.ceph(&["mon", "stat"]).is_ok())?;
        listener.task_progress(1);

        let mgr_keyring = self.ceph(&[
            "auth",
            "get-or-create",
            "mgr.x",
            "mon",
            "allow profile mgr",
            "osd",
            "allow *",
            "mds",
            "allow *",
        ])?;
        write(d.join("mgr.x/keyring"), &mgr_keyring)?;
        self.spawn_daemon("mgr.x", &["ceph-mgr", "-f", "-i", "x"])?;

        // OSD ids and keys first (cheap, through the mon), then mkfs in parallel (~2 s each).
        let mut osds = Vec::new();
        for _ in 0..spec.osds {
            let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
                .map_err(|e| cluster_err("make an OSD uuid")(e.to_string()))?
                .trim()
                .to_string();
            let id = self.ceph(&["osd", "new", &uuid])?.trim().to_string();
            if id.parse::<u32>().is_err() {
                return Err(cluster_err("ceph osd new")(format!("unexpected answer {id:?}")));
            }
            std::fs::create_dir_all(d.join(format!("osd.{id}")))
                .map_err(|e| cluster_err("create OSD folder")(e.to_string()))?;
            let keyring = self.ceph(&[
                "auth",
                "get-or-create",
                &format!("osd.{id}"),
                "mon",
                "allow profile osd",
                "mgr",
                "allow profile osd",
                "osd",
                "allow *",
            ])?;
            write(d.join(format!("osd.{id}/keyring")), &keyring)?;
            osds.push((id, uuid));
        }
        let conf = self.conf.clone();
        let this = &self;
        let mkfs_results: Vec<Result<(), VmError>> = std::thread::scope(|s| {
            let handles: Vec<_> = osds
                .iter()
                .map(|(id, uuid)| {
                    let conf = &conf;
                    s.spawn(move || {
                        // mkfs talks to the mon, so it runs inside the namespace too.
                        run_with_timeout(
                            this.in_netns("ceph-osd").args(["--mkfs", "-i", id, "--osd-uuid", uuid, "-c"]).arg(conf),
                            Duration::from_secs(120),
                        )
                        .map(|_| ())
                        .map_err(cluster_err("ceph-osd --mkfs"))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(cluster_err("ceph-osd --mkfs")("thread panicked".into()))))
                .collect()
        });
        for r in mkfs_results {
            r?;
        }
        for (id, _) in &osds {
            self.spawn_daemon(&format!("osd.{id}"), &["ceph-osd", "-f", "-i", id])?;
        }
        let want = spec.osds as u64;
        self.wait_for("all OSDs to be up", deadline, |c| {
            c.ceph_json(&["osd", "stat"]).ok().and_then(|v| v["num_up_osds"].as_u64()) == Some(want)
        })?;
        listener.task_progress(2);

        self.ceph(&["osd", "pool", "create", POOL, "8", "8"])?;
        self.ceph(&["osd", "pool", "application", "enable", POOL, "rbd"])?;
        // No wait for active+clean here: `ceph pg stat` needs the mgr, which under load takes
        // 20 s and more to load its Python modules. Client I/O (the host's `rbd create`
        // and the guest's map) waits for the PGs to peer by itself.
        listener.task_progress(3);
        listener.info(&format!("Ceph cluster up in namespace {} at {CLUSTER_IP} ({} OSDs)", self.netns, spec.osds));
        Ok(self)
    }

    fn gen_key(&self) -> Result<String, VmError> {
        let out = run_with_timeout(Command::new("ceph-authtool").arg("--gen-print-key"), Duration::from_secs(30))
            .map_err(cluster_err("ceph-authtool --gen-print-key"))?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    fn in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, program]);
        c
    }

    fn spawn_daemon(&self, name: &str, argv: &[&str]) -> Result<(), VmError> {
        let mut cmd = self.in_netns(argv[0]);
        cmd.args(&argv[1..]).arg("-c").arg(&self.conf);
        let log = self.dir.join("log").join(format!("{name}.stderr"));
        let err = std::fs::File::create(&log).map_err(|e| cluster_err("create daemon log")(e.to_string()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        die_with_parent(&mut cmd);
        let child = self.spawner.spawn(cmd).map_err(|e| cluster_err(name)(format!("cannot start: {e}")))?;
        if let Ok(mut d) = self.daemons.lock() {
            d.push((name.to_string(), ChildGuard(Some(child))));
        }
        Ok(())
    }

    /// The `ceph` CLI inside the namespace, with timeouts on both sides.
    fn ceph(&self, args: &[&str]) -> Result<String, VmError> {
        let mut cmd = self.in_netns("ceph");
        cmd.arg("-c").arg(&self.conf).args(["--connect-timeout", "15"]).args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(60))
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .map_err(cluster_err(&format!("ceph {}", args.join(" "))))
    }

    fn ceph_json(&self, args: &[&str]) -> Result<serde_json::Value, VmError> {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.ceph(&a)?;
        serde_json::from_str(&out)
            .map_err(|e| cluster_err(&format!("ceph {}", args.join(" ")))(format!("bad JSON: {e}")))
    }

    fn rbd(&self, args: &[&str]) -> Result<Vec<u8>, VmError> {
        let mut cmd = self.in_netns("rbd");
        cmd.arg("-c").arg(&self.conf).args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(120)).map_err(cluster_err(&format!("rbd {}", args.join(" "))))
    }

    fn wait_for(&self, what: &str, deadline: Instant, ok: impl Fn(&Cluster) -> bool) -> Result<(), VmError> {
        loop {
            if let Some(dead) = self.dead_daemon() {
                return Err(cluster_err(&format!("waiting for {what}"))(format!(
                    "{dead} exited; see its log under {}",
                    self.dir.join("log").display()
                )));
            }
            if crate::interrupt::interrupted() {
                return Err(VmError::Interrupted);
            }
            if ok(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(cluster_err(&format!("waiting for {what}"))(format!(
                    "not reached in time; logs under {}",
                    self.dir.join("log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn dead_daemon(&self) -> Option<String> {
        let mut d = self.daemons.lock().ok()?;
        for (name, g) in d.iter_mut() {
            if let Some(c) = g.0.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    return Some(format!("{name} ({s})"));
                }
            }
        }
        None
    }

    /// The namespace the cluster lives in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Runs the `ceph` CLI as client.admin inside the cluster's namespace and returns its
    /// stdout: for tests that shape the cluster (pools, CRUSH, temps) and fetch its maps
    /// (`osd getmap -o FILE`). Each call is limited to 60 s; files are host paths.
    pub fn ceph_command(&self, args: &[&str]) -> Result<String, VmError> {
        self.ceph(args)
    }

    /// The monitor's data folder. Its `store.db` holds every full map and incremental
    /// (prefix `osdmap`, keys `N` and `full_N`); read it with `ceph-kvstore-tool` only
    /// after [`Cluster::shutdown`], since the running monitor holds the store's lock.
    pub fn mon_data_dir(&self) -> PathBuf {
        self.dir.join("mon.a")
    }

    /// Kills and reaps every daemon and deletes the namespace. Idempotent.
    pub fn shutdown(&self) {
        if let Ok(mut d) = self.daemons.lock() {
            d.clear(); // each guard kills and reaps its daemon
        }
        self.spawner.stop();
        if let Ok(mut alive) = self.netns_alive.lock() {
            if *alive {
                ip_teardown(&["netns", "del", &self.netns]);
                *alive = false;
            }
        }
    }

    /// Prepares one guest run: its tap device, an empty image for the guest to write, and
    /// an image the host fills before the boot for the guest to read.
    pub fn guest_session(&self, work_dir: &Path, listener: &dyn Listener) -> Result<GuestSession<'_>, VmError> {
        let k = self.next_guest.fetch_add(1, Ordering::SeqCst);
        if k > 250 {
            return Err(cluster_err("allocate a guest subnet")("more than 250 guests on one cluster".into()));
        }
        let tap = format!("ktap{k}");
        let session = GuestSession {
            cluster: self,
            network: GuestNetwork { netns: self.netns.clone(), tap: tap.clone() },
            k,
            guest_image: format!("guest-{k}"),
            host_image: format!("host-{k}"),
            guest_pattern: pattern(0x6b72_6264 + k as u64, PATTERN_BYTES),
            host_pattern: pattern(0x686f_7374 + k as u64, HOST_IMAGE_BYTES),
            tap_made: false,
        };
        let mut session = session;
        ip(&["-n", &self.netns, "tuntap", "add", "dev", &tap, "mode", "tap"])?;
        session.tap_made = true;
        ip(&["-n", &self.netns, "addr", "add", &format!("10.254.{k}.1/24"), "dev", &tap])?;
        ip(&["-n", &self.netns, "link", "set", &tap, "up"])?;
        self.rbd(&[
            "create",
            &format!("{POOL}/{}", session.guest_image),
            "--size",
            &format!("{}M", GUEST_IMAGE_BYTES >> 20),
            "--image-feature",
            "layering",
        ])?;
        let host_file = work_dir.join(format!("{}.bin", session.host_image));
        std::fs::write(&host_file, &session.host_pattern)
            .map_err(|e| cluster_err("write the host image file")(e.to_string()))?;
        let host_file_s = host_file.display().to_string();
        self.rbd(&["import", "--image-feature", "layering", &host_file_s, &format!("{POOL}/{}", session.host_image)])?;
        listener.info(&format!(
            "images {POOL}/{} and {POOL}/{} ready; guest network 10.254.{k}.0/24 on {tap}",
            session.guest_image, session.host_image
        ));
        Ok(session)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
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

    /// Checks the guest's steps and compares checksums with the host's view of the images.
    pub fn verify(&self, events: &[GuestEvent], listener: &dyn Listener) -> ClusterReport {
        let steps: Vec<ClusterStep> = events
            .iter()
            .filter(|e| e.kind == "step")
            .map(|e| ClusterStep {
                name: e.fields.first().cloned().unwrap_or_default(),
                ok: e.fields.get(1).map(String::as_str) == Some("ok"),
                detail: e.fields.get(2).cloned().unwrap_or_default(),
            })
            .collect();
        let value = |key: &str| {
            events
                .iter()
                .find(|e| e.kind == "value" && e.fields.first().map(String::as_str) == Some(key))
                .and_then(|e| e.fields.get(1))
                .map(|v| v.trim().to_string())
        };
        let mut problems: Vec<String> =
            steps.iter().filter(|s| !s.ok).map(|s| format!("guest step {} failed: {}", s.name, s.detail)).collect();
        // After a failed step the guest stops; list missing steps only when none failed.
        for wanted in
            ["net", "map", "size", "pattern", "mkfs", "mount", "files", "umount", "unmap", "map_host", "unmap_host"]
        {
            if problems.is_empty() && !steps.iter().any(|s| s.name == wanted) {
                problems.push(format!("guest step {wanted} never ran"));
            }
        }
        let guest_device_sha256 = value("device_sha256");
        let host_export_sha256 = match self.cluster.rbd(&["export", &format!("{POOL}/{}", self.guest_image), "-"]) {
            Ok(bytes) => Some(sha256_hex(&bytes)),
            Err(e) => {
                problems.push(format!("host export failed: {e}"));
                None
            }
        };
        if guest_device_sha256.is_some() && guest_device_sha256 != host_export_sha256 {
            problems.push(format!(
                "the guest read {:?} from its image but the host's rbd export gives {:?}",
                guest_device_sha256, host_export_sha256
            ));
        }
        let host_written_sha256 = sha256_hex(&self.host_pattern);
        let guest_read_sha256 = value("host_image_sha256");
        if guest_read_sha256.is_some() && guest_read_sha256.as_deref() != Some(host_written_sha256.as_str()) {
            problems.push(format!(
                "the host wrote {host_written_sha256} to {}, the guest read {:?}",
                self.host_image, guest_read_sha256
            ));
        }
        let kernel_messages = events
            .iter()
            .filter(|e| e.kind == "dmesg" && e.fields.first().map(String::as_str) == Some("cluster"))
            .filter_map(|e| e.fields.get(1))
            .map(|l| crate::guest::strip_timestamp(l).to_string())
            .collect();
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
            kernel_messages,
            problems,
        }
    }
}

impl Drop for GuestSession<'_> {
    fn drop(&mut self) {
        for img in [&self.guest_image, &self.host_image] {
            let _ = self.cluster.rbd(&["rm", "--no-progress", &format!("{POOL}/{img}")]);
        }
        if self.tap_made {
            ip_teardown(&["-n", &self.network.netns, "link", "del", &self.network.tap]);
        }
    }
}

/// The guest's half of the cluster test (variables are prepended). Each step reports
/// `KRBD|step|<name>|ok|fail|<detail>`; a failed step ends the sequence.
const GUEST_SCRIPT: &str = r#"
step() { say "step|$1|$2|$3"; }
rbd_map() {
    before=" $(ls /sys/bus/rbd/devices 2>/dev/null | tr '\n' ' ') "
    err=$( (echo "$MON name=admin,secret=$KEY $1 $2 -" > /sys/bus/rbd/add_single_major) 2>&1 ) || { echo "ERR $err"; return 1; }
    for id in $(ls /sys/bus/rbd/devices); do
        case "$before" in *" $id "*) ;; *) echo "$id"; return 0;; esac
    done
    echo "ERR no new device under /sys/bus/rbd/devices"; return 1
}
wait_dev() { n=0; while [ ! -b "$1" ]; do n=$((n+1)); [ $n -gt 200 ] && return 1; sleep 0.1; done; }
drop_caches() { blockdev --flushbufs "$1" 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; }
cluster_io() {
    ip link set lo up
    ip link set eth0 up 2>/tmp/err || { step net fail "no eth0: $(oneline </tmp/err)"; return; }
    ip addr add $GUEST_IP/24 dev eth0
    ip route add default via $GW
    n=0
    until ping -c 1 -W 2 $MON_IP >/dev/null 2>&1; do
        n=$((n+1)); [ $n -ge 60 ] && { step net fail "no reply from $MON_IP"; return; }
        sleep 1
    done
    step net ok "$MON_IP answers"
    id=$(rbd_map $POOL $GUEST_IMG)
    case "$id" in ERR*|"") step map fail "$id"; return;; esac
    dev=/dev/rbd$id
    wait_dev $dev || { step map fail "$dev did not appear"; return; }
    step map ok "$dev"
    size=$(( $(cat /sys/block/rbd$id/size) * 512 ))
    if [ "$size" = "$GUEST_SIZE" ]; then step size ok "$size"; else step size fail "$size bytes, expected $GUEST_SIZE"; fi
    dd if=/pattern.bin of=$dev bs=65536 seek=$PATTERN_SEEK oflag=direct conv=fsync 2>/tmp/err || { step pattern fail "write: $(oneline </tmp/err)"; return; }
    drop_caches $dev
    got=$(dd if=$dev bs=65536 skip=$PATTERN_SEEK count=$PATTERN_BLOCKS iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$PATTERN_SHA" ]; then step pattern ok "$got"; else step pattern fail "read back $got, wrote $PATTERN_SHA"; return; fi
    mke2fs -F $dev >/tmp/err 2>&1 || { step mkfs fail "$(oneline </tmp/err)"; return; }
    step mkfs ok "ext2 by busybox mke2fs"
    mount -t ext4 $dev /mnt 2>/tmp/err || { step mount fail "$(oneline </tmp/err)"; return; }
    step mount ok "ext4 driver"
    cp /pattern.bin /mnt/pattern.bin && echo "written by the guest" > /mnt/hello.txt && sync
    umount /mnt || { step umount fail "first unmount"; return; }
    drop_caches $dev
    mount -t ext4 $dev /mnt 2>/tmp/err || { step files fail "remount: $(oneline </tmp/err)"; return; }
    got=$(sha256sum /mnt/pattern.bin | cut -d' ' -f1)
    hello=$(cat /mnt/hello.txt)
    if [ "$got" = "$PATTERN_SHA" ] && [ "$hello" = "written by the guest" ]; then step files ok "2 files survived a remount"; else step files fail "pattern.bin $got, hello.txt '$hello'"; fi
    umount /mnt && step umount ok "" || { step umount fail ""; return; }
    drop_caches $dev
    say "value|device_sha256|$(dd if=$dev bs=1048576 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
    err=$( (echo "$id" > /sys/bus/rbd/remove_single_major) 2>&1 ) && step unmap ok "$dev" || { step unmap fail "$err"; return; }
    id=$(rbd_map $POOL $HOST_IMG)
    case "$id" in ERR*|"") step map_host fail "$id"; return;; esac
    wait_dev /dev/rbd$id || { step map_host fail "/dev/rbd$id did not appear"; return; }
    step map_host ok "/dev/rbd$id"
    say "value|host_image_sha256|$(dd if=/dev/rbd$id bs=1048576 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
    err=$( (echo "$id" > /sys/bus/rbd/remove_single_major) 2>&1 ) && step unmap_host ok "" || step unmap_host fail "$err"
}
cluster_io
report_dmesg cluster
"#;

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
    fn run_with_timeout_kills() {
        let t = Instant::now();
        let err = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("killed"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let out = run_with_timeout(Command::new("echo").arg("hi"), Duration::from_secs(10)).unwrap();
        assert_eq!(out, b"hi\n");
    }
}
