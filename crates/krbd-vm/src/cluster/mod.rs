//! A throwaway Ceph cluster (one mon, one mgr, memstore OSDs, cephx) from Debian's
//! packages, inside a network namespace of its own, and the guest side of the RBD test.
//!
//! Why a namespace: the cluster's maps carry the addresses its daemons bind, and a guest
//! cannot reach the host's 127.0.0.1. So the daemons bind 10.254.0.1 on the namespace's
//! loopback, and each guest gets a tap device of its own in the namespace (`netns.rs`).
//! Nothing leaves the namespace. Every daemon runs in the foreground as our child, dies
//! with us (PR_SET_PDEATHSIG), and is killed and reaped by [`Cluster::shutdown`] or on drop
//! ([`crate::process`]). The configuration files come from `config.rs`; one guest's share
//! of the cluster is a [`GuestSession`].

mod config;
mod netns;
mod session;

pub use config::MsMode;
pub use session::{pattern, ClusterReport, GuestSession, GuestStep};

use self::config::CLUSTER_IP;
use self::session::POOL;
use crate::process::{die_with_parent, run_with_timeout, Daemons, Spawner};
use crate::{ClusterFailure, ClusterStep, VmError};
use krbd_progress::{Listener, Unit};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Modules of the target's package that the guest needs for the cluster test: the NIC
/// QEMU emulates, ext4 (which also mounts the ext2 that busybox's mke2fs makes), and rbd
/// (taken from the package only when the set under test has none).
pub const GUEST_SUPPORT_MODULES: [&str; 3] = ["e1000", "ext4", "rbd"];

/// The tools the cluster needs on the host.
const TOOLS: [&str; 8] = ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool", "ip"];

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
    daemons: Daemons,
    spawner: Spawner,
    netns_alive: Mutex<bool>,
    next_guest: AtomicU32,
}

fn failed(step: ClusterStep) -> impl FnOnce(ClusterFailure) -> VmError {
    move |failure| VmError::cluster(step, failure)
}

fn io_failed(step: ClusterStep) -> impl FnOnce(std::io::Error) -> VmError {
    move |e| VmError::cluster(step, ClusterFailure::Io(e))
}

fn write_file(path: PathBuf, text: &str) -> Result<(), VmError> {
    std::fs::write(&path, text)
        .map_err(|source| VmError::cluster(ClusterStep::WriteConfig, ClusterFailure::WriteFile { path, source }))
}

/// A fresh UUID from the kernel.
fn new_uuid(step: ClusterStep) -> Result<String, VmError> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(io_failed(step))?.trim().to_string())
}

impl Cluster {
    /// Starts mon, mgr and `spec.osds` memstore OSDs in a new network namespace, creates the
    /// `rbd` pool (client I/O then waits for its PGs to peer).
    pub fn start(spec: &ClusterSpec, listener: &dyn Listener) -> Result<Cluster, VmError> {
        if let Some(tool) = TOOLS.into_iter().find(|t| crate::qemu::find_program(Path::new(t)).is_none()) {
            return Err(VmError::CephToolMissing { tool });
        }
        netns::remove_stale_namespaces();
        let netns = netns::new_name();
        std::fs::create_dir_all(&spec.dir).map_err(io_failed(ClusterStep::CreateFolder))?;
        let dir = std::fs::canonicalize(&spec.dir).map_err(io_failed(ClusterStep::CreateFolder))?;
        netns::add(&netns)?;
        let cluster = Cluster {
            netns,
            conf: dir.join("ceph.conf"),
            dir,
            admin_key: String::new(),
            daemons: Daemons::default(),
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
        netns::set_up_loopback(&self.netns)?;
        let fsid = self.write_config()?;
        let deadline = Instant::now() + spec.start_timeout;
        self.start_monitor(&fsid, deadline)?;
        listener.task_progress(1);
        self.start_manager()?;
        self.start_osds(spec.osds, deadline)?;
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

    /// Makes the folders, the keys, the keyrings and ceph.conf. Returns the fsid.
    fn write_config(&mut self) -> Result<String, VmError> {
        let d = self.dir.clone();
        for sub in ["run", "log", "mon.a", "mgr.x"] {
            std::fs::create_dir_all(d.join(sub)).map_err(io_failed(ClusterStep::CreateFolders))?;
        }
        let fsid = new_uuid(ClusterStep::MakeFsid)?;
        let mon_key = self.gen_key()?;
        self.admin_key = self.gen_key()?;
        let admin_keyring = config::admin_keyring(&self.admin_key);
        write_file(d.join("admin.keyring"), &admin_keyring)?;
        write_file(d.join("mon.keyring"), &config::mon_keyring(&mon_key, &admin_keyring))?;
        write_file(self.conf.clone(), &config::ceph_conf(&fsid, &d))?;
        Ok(fsid)
    }

    /// Makes the monitor's store, starts `mon.a` and waits until it answers.
    fn start_monitor(&self, fsid: &str, deadline: Instant) -> Result<(), VmError> {
        let monmap = self.dir.join("monmap");
        let t = Duration::from_secs(60);
        run_with_timeout(
            Command::new("monmaptool")
                .args(["--create", "--fsid", fsid, "--addv", "a", &config::mon_addr()])
                .arg(&monmap),
            t,
        )
        .map_err(|e| VmError::cluster(ClusterStep::Monmaptool, ClusterFailure::Command(e)))?;
        run_with_timeout(
            Command::new("ceph-mon")
                .args(["--mkfs", "-i", "a", "-c"])
                .arg(&self.conf)
                .arg("--monmap")
                .arg(&monmap)
                .arg("--keyring")
                .arg(self.dir.join("mon.keyring")),
            t,
        )
        .map_err(|e| VmError::cluster(ClusterStep::MonMkfs, ClusterFailure::Command(e)))?;
        self.spawn_daemon("mon.a", &["ceph-mon", "-f", "-i", "a"])?;
        self.wait_for("the monitor to answer", deadline, |c| c.ceph(&["mon", "stat"]).is_ok())
    }

    /// Gives `mgr.x` its key and starts it.
    fn start_manager(&self) -> Result<(), VmError> {
        let mgr_keyring = self.ceph(&config::MGR_AUTH)?;
        write_file(self.dir.join("mgr.x/keyring"), &mgr_keyring)?;
        self.spawn_daemon("mgr.x", &["ceph-mgr", "-f", "-i", "x"])
    }

    /// Creates `count` OSDs, starts them and waits until all are up.
    fn start_osds(&self, count: u32, deadline: Instant) -> Result<(), VmError> {
        // OSD ids and keys first (cheap, through the mon), then mkfs in parallel (~2 s each).
        let mut osds = Vec::new();
        for _ in 0..count {
            osds.push(self.register_osd()?);
        }
        self.mkfs_osds(&osds)?;
        for (id, _) in &osds {
            self.spawn_daemon(&format!("osd.{id}"), &["ceph-osd", "-f", "-i", id])?;
        }
        let want = count as u64;
        self.wait_for("all OSDs to be up", deadline, |c| {
            c.ceph_json(&["osd", "stat"]).ok().and_then(|v| v["num_up_osds"].as_u64()) == Some(want)
        })
    }

    /// A new OSD id from the monitor, its folder and its keyring. Returns (id, uuid).
    fn register_osd(&self) -> Result<(String, String), VmError> {
        let uuid = new_uuid(ClusterStep::MakeOsdUuid)?;
        let id = self.ceph(&["osd", "new", &uuid])?.trim().to_string();
        if id.parse::<u32>().is_err() {
            return Err(VmError::cluster(ClusterStep::Ceph("osd new".into()), ClusterFailure::UnexpectedAnswer(id)));
        }
        std::fs::create_dir_all(self.dir.join(format!("osd.{id}"))).map_err(io_failed(ClusterStep::CreateOsdFolder))?;
        let name = format!("osd.{id}");
        let mut auth = vec!["auth", "get-or-create", &name];
        auth.extend(config::OSD_CAPS);
        let keyring = self.ceph(&auth)?;
        write_file(self.dir.join(format!("osd.{id}/keyring")), &keyring)?;
        Ok((id, uuid))
    }

    /// `ceph-osd --mkfs` for every OSD, in parallel.
    fn mkfs_osds(&self, osds: &[(String, String)]) -> Result<(), VmError> {
        let mkfs_failed = failed(ClusterStep::OsdMkfs);
        let results: Vec<Result<(), ClusterFailure>> = std::thread::scope(|s| {
            let handles: Vec<_> = osds
                .iter()
                .map(|(id, uuid)| {
                    s.spawn(move || {
                        // mkfs talks to the mon, so it runs inside the namespace too.
                        let mut cmd = netns::exec(&self.netns, "ceph-osd");
                        cmd.args(["--mkfs", "-i", id, "--osd-uuid", uuid, "-c"]).arg(&self.conf);
                        run_with_timeout(&mut cmd, Duration::from_secs(120))
                            .map(|_| ())
                            .map_err(ClusterFailure::Command)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(Err(ClusterFailure::ThreadPanicked))).collect()
        });
        results.into_iter().collect::<Result<(), _>>().map_err(mkfs_failed)
    }

    fn gen_key(&self) -> Result<String, VmError> {
        let out = run_with_timeout(Command::new("ceph-authtool").arg("--gen-print-key"), Duration::from_secs(30))
            .map_err(|e| VmError::cluster(ClusterStep::GenerateKey, ClusterFailure::Command(e)))?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    fn spawn_daemon(&self, name: &str, argv: &[&str]) -> Result<(), VmError> {
        let mut cmd = netns::exec(&self.netns, argv[0]);
        cmd.args(&argv[1..]).arg("-c").arg(&self.conf);
        let log = self.dir.join("log").join(format!("{name}.stderr"));
        let err = std::fs::File::create(&log).map_err(io_failed(ClusterStep::CreateDaemonLog))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        die_with_parent(&mut cmd);
        let child = self.spawner.spawn(cmd).map_err(|e| {
            VmError::cluster(ClusterStep::StartDaemon(name.to_string()), ClusterFailure::SpawnDaemon(e))
        })?;
        self.daemons.push(name, child);
        Ok(())
    }

    /// The `ceph` CLI inside the namespace, with timeouts on both sides.
    fn ceph(&self, args: &[&str]) -> Result<String, VmError> {
        let mut cmd = netns::exec(&self.netns, "ceph");
        cmd.arg("-c").arg(&self.conf).args(["--connect-timeout", "15"]).args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(60))
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .map_err(|e| VmError::cluster(ClusterStep::Ceph(args.join(" ")), ClusterFailure::Command(e)))
    }

    fn ceph_json(&self, args: &[&str]) -> Result<serde_json::Value, VmError> {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.ceph(&a)?;
        serde_json::from_str(&out)
            .map_err(|e| VmError::cluster(ClusterStep::Ceph(args.join(" ")), ClusterFailure::BadJson(e)))
    }

    fn rbd(&self, args: &[&str]) -> Result<Vec<u8>, VmError> {
        let mut cmd = netns::exec(&self.netns, "rbd");
        cmd.arg("-c").arg(&self.conf).args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(120))
            .map_err(|e| VmError::cluster(ClusterStep::Rbd(args.join(" ")), ClusterFailure::Command(e)))
    }

    /// Polls `ok` until it holds; fails when a daemon exits, a signal comes, or `deadline`
    /// passes.
    fn wait_for(&self, what: &'static str, deadline: Instant, ok: impl Fn(&Cluster) -> bool) -> Result<(), VmError> {
        let log_dir = self.dir.join("log");
        loop {
            if let Some(dead) = self.daemons.first_dead() {
                return Err(VmError::cluster(
                    ClusterStep::WaitFor(what),
                    ClusterFailure::DaemonExited { daemon: dead.name, status: dead.status, log_dir },
                ));
            }
            if crate::interrupt::interrupted() {
                return Err(VmError::Interrupted);
            }
            if ok(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(VmError::cluster(ClusterStep::WaitFor(what), ClusterFailure::NotReachedInTime { log_dir }));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
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
        self.daemons.kill_all();
        self.spawner.stop();
        if let Ok(mut alive) = self.netns_alive.lock() {
            if *alive {
                netns::delete(&self.netns);
                *alive = false;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
