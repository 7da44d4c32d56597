//! What can stop a boot test, an agreement run or a cluster from reaching a verdict, and
//! the kind of each failure, which front ends turn into exit codes ([`VmError::kind`]).

use crate::bzimage::BzImageError;
use crate::process::CommandError;
use krbd_kmod::corpus::CorpusError;
use krbd_kmod::{CheckError, ModuleError};
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can stop a boot test from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("kernel package {deb}: {reason}")]
    KernelPackage { deb: PathBuf, reason: String },
    /// The package holds kernels, but not the release asked for.
    #[error("kernel package {deb}: no boot/vmlinuz-{release} in it (it has: {}); check --kernel against the package", .found.join(", "))]
    KernelNotInPackage { deb: PathBuf, release: String, found: Vec<String> },
    /// The target's headers folder (for the agreement run's check side).
    #[error("kernel package {dir}: {source}")]
    TargetHeaders { dir: PathBuf, source: Box<CheckError> },
    #[error("kernel image: {source}")]
    BzImage {
        #[from]
        source: BzImageError,
    },
    #[error("cannot decompress {what}: {reason}")]
    Decompress { what: String, reason: String },
    #[error("module {origin}: {source}")]
    BadModule { origin: String, source: ModuleError },
    /// The bad-module corpus could not be made from the target's modules.
    #[error("module {origin}: {source}")]
    Corpus { origin: String, source: Box<CorpusError> },
    /// The check's load order names a module the corpus case does not hold.
    #[error("module {case}: the check names module {module} that the case does not hold")]
    CorpusModuleUnknown { case: String, module: String },
    #[error("modules folder {dir}: cannot read it: {source}")]
    OurModulesUnreadable { dir: PathBuf, source: std::io::Error },
    #[error("modules folder {dir}: {file}: {source}")]
    OurModuleUnreadable { dir: PathBuf, file: String, source: std::io::Error },
    #[error("modules folder {dir}: two files hold module {module}")]
    OurModuleTwice { dir: PathBuf, module: String },
    #[error("modules folder {dir}: no .ko files in it; pass the folder that holds libceph.ko, ceph.ko and rbd.ko")]
    NoOurModules { dir: PathBuf },
    #[error("module {module} (needed by {needed_by}) is neither in our set nor in the linux-image package of {release}, nor built in; add it to the modules folder")]
    MissingDependency { module: String, needed_by: String, release: String },
    #[error("modules depend on each other in a cycle through {module} (reached from {via})")]
    DependencyCycle { module: String, via: String },
    #[error(
        "busybox {path}: cannot read it ({source}); install busybox-static (scripts/install-deps.sh) or pass --busybox"
    )]
    BusyboxUnreadable { path: PathBuf, source: std::io::Error },
    #[error("busybox {path}: {problem}")]
    BusyboxUnusable { path: PathBuf, problem: BusyboxProblem },
    #[error("building the initramfs failed: {source}")]
    Initramfs { source: std::io::Error },
    #[error("QEMU ({program}) not found or not runnable ({path_env}); install qemu-system-x86 (scripts/install-deps.sh) or pass --qemu")]
    QemuMissing { program: PathBuf, path_env: String },
    #[error("QEMU ({program}) not found or not runnable (spawn failed: {source}); install qemu-system-x86 (scripts/install-deps.sh) or pass --qemu")]
    QemuSpawn { program: PathBuf, source: std::io::Error },
    #[error("wait for qemu: {source}")]
    QemuWait { source: std::io::Error },
    #[error("the guest did not finish within {seconds} s (QEMU killed); last report: {last_report}; serial log {serial_log}, relevant lines:\n{}", .lines.join("\n"))]
    GuestTimeout { seconds: u64, last_report: String, serial_log: PathBuf, lines: Vec<String> },
    #[error("QEMU exited ({status}) before the guest finished; serial log {serial_log}; QEMU said: {qemu_stderr}; relevant lines:\n{}", .lines.join("\n"))]
    GuestDied { status: String, qemu_stderr: String, serial_log: PathBuf, lines: Vec<String> },
    #[error("interrupted by a signal; QEMU and the cluster were stopped")]
    Interrupted,
    /// A file or folder of the run (work folder, kernel, initramfs, QEMU's stderr).
    #[error("{action} {path}: {source}")]
    Io { action: IoAction, path: PathBuf, source: std::io::Error },
    /// A Ceph tool the cluster needs is not installed.
    #[error("Ceph cluster: looking for the Ceph tools failed: {tool} is not in PATH; install ceph-mon ceph-osd ceph-mgr ceph-common iproute2 (scripts/install-deps.sh)")]
    CephToolMissing { tool: &'static str },
    /// Building the suite guest's root file system (debootstrap, mkfs.ext4) failed.
    #[error("building the guest root: {step} failed ({detail}); log {log}; check that the Debian mirror answers and debootstrap is installed (scripts/install-deps.sh)")]
    GuestRoot { step: &'static str, log: PathBuf, detail: String },
    /// The suite folder cannot be read.
    #[error("suite folder {dir}: cannot read it: {source}")]
    SuiteUnreadable { dir: PathBuf, source: std::io::Error },
    /// The suite folder holds no `*.sh` or `*.t`.
    #[error("suite folder {dir}: no tests in it (workunit scripts *.sh, cram tests *.t)")]
    SuiteEmpty { dir: PathBuf },
    /// `--test` names a test the suite does not have.
    #[error("suite folder {dir}: no test {name} (it has: {})", .available.join(", "))]
    SuiteTestUnknown { dir: PathBuf, name: String, available: Vec<String> },
    /// The guest's results disk is not a readable tar.
    #[error("the suite's results disk {path}: {source}")]
    SuiteResults { path: PathBuf, source: std::io::Error },
    #[error("Ceph cluster: {step} failed: {failure}")]
    Cluster {
        step: ClusterStep,
        #[source]
        failure: ClusterFailure,
    },
    /// An `ip` command for the cluster's network namespace or a guest's tap.
    #[error("network namespace: {command} failed: {source}; boot tests with --cluster need root and iproute2")]
    Netns { command: String, source: CommandError },
}

/// What was done to a file or folder when [`VmError::Io`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoAction {
    Create,
    Write,
    Read,
    Lock,
}

impl std::fmt::Display for IoAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoAction::Create => "create",
            IoAction::Write => "write",
            IoAction::Read => "read",
            IoAction::Lock => "lock",
        })
    }
}

/// Why a readable busybox cannot be used in the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusyboxProblem {
    #[error("not a 64-bit ELF executable")]
    NotElf64,
    #[error("bad ELF")]
    BadElf,
    #[error("bad ELF program headers")]
    BadProgramHeaders,
    #[error("it is dynamically linked; install busybox-static (scripts/install-deps.sh)")]
    DynamicallyLinked,
}

/// The host-side step of bringing up or using the cluster that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStep {
    CreateFolder,
    CreateFolders,
    MakeFsid,
    WriteConfig,
    Monmaptool,
    MonMkfs,
    MakeOsdUuid,
    CreateOsdFolder,
    OsdMkfs,
    GenerateKey,
    CreateDaemonLog,
    /// Starting the daemon of this name (`mon.a`, `osd.0`, ...).
    StartDaemon(String),
    /// Waiting for a state of the cluster ("the monitor to answer", "all OSDs to be up").
    WaitFor(&'static str),
    /// A `ceph` command with these arguments.
    Ceph(String),
    /// An `rbd` command with these arguments.
    Rbd(String),
    AllocateGuestSubnet,
    WriteHostImage,
}

impl std::fmt::Display for ClusterStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterStep::CreateFolder => f.write_str("create folder"),
            ClusterStep::CreateFolders => f.write_str("create folders"),
            ClusterStep::MakeFsid => f.write_str("make an fsid"),
            ClusterStep::WriteConfig => f.write_str("write config"),
            ClusterStep::Monmaptool => f.write_str("monmaptool"),
            ClusterStep::MonMkfs => f.write_str("ceph-mon --mkfs"),
            ClusterStep::MakeOsdUuid => f.write_str("make an OSD uuid"),
            ClusterStep::CreateOsdFolder => f.write_str("create OSD folder"),
            ClusterStep::OsdMkfs => f.write_str("ceph-osd --mkfs"),
            ClusterStep::GenerateKey => f.write_str("ceph-authtool --gen-print-key"),
            ClusterStep::CreateDaemonLog => f.write_str("create daemon log"),
            ClusterStep::StartDaemon(name) => f.write_str(name),
            ClusterStep::WaitFor(what) => write!(f, "waiting for {what}"),
            ClusterStep::Ceph(args) => write!(f, "ceph {args}"),
            ClusterStep::Rbd(args) => write!(f, "rbd {args}"),
            ClusterStep::AllocateGuestSubnet => f.write_str("allocate a guest subnet"),
            ClusterStep::WriteHostImage => f.write_str("write the host image file"),
        }
    }
}

/// Why a [`ClusterStep`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFailure {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("{path}: {source}")]
    WriteFile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Command(#[source] CommandError),
    #[error("cannot start: {0}")]
    SpawnDaemon(#[source] std::io::Error),
    #[error("unexpected answer {0:?}")]
    UnexpectedAnswer(String),
    #[error("bad JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    #[error("{daemon} ({status}) exited; see its log under {log_dir}")]
    DaemonExited { daemon: String, status: ExitStatus, log_dir: PathBuf },
    #[error("not reached in time; logs under {log_dir}")]
    NotReachedInTime { log_dir: PathBuf },
    #[error("thread panicked")]
    ThreadPanicked,
    #[error("more than {limit} guests on one cluster")]
    TooManyGuests { limit: u32 },
}

/// The kind of a [`VmError`]: what a front end needs to choose an exit code or a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmErrorKind {
    /// The package has no kernel of the asked release.
    UnknownTarget,
    /// A corrupt or unusable package, module, modules folder or kernel image, or a set whose
    /// dependencies cannot be met.
    BadInput,
    /// Something of the host is missing or failed: QEMU, busybox-static, the Ceph tools,
    /// iproute2, root for the namespace, the work folder.
    Environment,
    /// The guest never finished: timeout, or QEMU exited early.
    Guest,
    /// The throwaway Ceph cluster did not start or a Ceph command failed.
    Cluster,
    /// A signal asked us to stop.
    Interrupted,
}

impl VmError {
    /// What kind of failure this is.
    pub fn kind(&self) -> VmErrorKind {
        match self {
            VmError::KernelNotInPackage { .. } => VmErrorKind::UnknownTarget,
            VmError::KernelPackage { .. }
            | VmError::TargetHeaders { .. }
            | VmError::BzImage { .. }
            | VmError::Decompress { .. }
            | VmError::BadModule { .. }
            | VmError::Corpus { .. }
            | VmError::CorpusModuleUnknown { .. }
            | VmError::OurModulesUnreadable { .. }
            | VmError::OurModuleUnreadable { .. }
            | VmError::OurModuleTwice { .. }
            | VmError::NoOurModules { .. }
            | VmError::MissingDependency { .. }
            | VmError::DependencyCycle { .. }
            | VmError::SuiteUnreadable { .. }
            | VmError::SuiteEmpty { .. }
            | VmError::SuiteTestUnknown { .. } => VmErrorKind::BadInput,
            VmError::BusyboxUnreadable { .. }
            | VmError::BusyboxUnusable { .. }
            | VmError::Initramfs { .. }
            | VmError::QemuMissing { .. }
            | VmError::QemuSpawn { .. }
            | VmError::QemuWait { .. }
            | VmError::Io { .. }
            | VmError::CephToolMissing { .. }
            | VmError::Netns { .. }
            | VmError::GuestRoot { .. } => VmErrorKind::Environment,
            VmError::GuestTimeout { .. } | VmError::GuestDied { .. } | VmError::SuiteResults { .. } => {
                VmErrorKind::Guest
            }
            VmError::Cluster { .. } => VmErrorKind::Cluster,
            VmError::Interrupted => VmErrorKind::Interrupted,
        }
    }

    /// [`VmError::Cluster`] for `step`.
    pub(crate) fn cluster(step: ClusterStep, failure: ClusterFailure) -> VmError {
        VmError::Cluster { step, failure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kinds_come_from_variants_and_messages_stay() {
        let e = VmError::KernelNotInPackage {
            deb: "/p.deb".into(),
            release: "6.1.0-9-amd64".into(),
            found: vec!["6.1.0-10-amd64".into(), "6.1.0-11-amd64".into()],
        };
        assert_eq!(e.kind(), VmErrorKind::UnknownTarget);
        assert_eq!(
            e.to_string(),
            "kernel package /p.deb: no boot/vmlinuz-6.1.0-9-amd64 in it (it has: 6.1.0-10-amd64, 6.1.0-11-amd64); \
             check --kernel against the package"
        );
        let e = VmError::CephToolMissing { tool: "ceph-mon" };
        assert_eq!(e.kind(), VmErrorKind::Environment);
        assert!(e.to_string().starts_with("Ceph cluster: looking for the Ceph tools failed: ceph-mon is not in PATH"));
        let e = VmError::cluster(
            ClusterStep::WaitFor("the monitor to answer"),
            ClusterFailure::NotReachedInTime { log_dir: "/c/log".into() },
        );
        assert_eq!(e.kind(), VmErrorKind::Cluster);
        assert_eq!(
            e.to_string(),
            "Ceph cluster: waiting for the monitor to answer failed: not reached in time; logs under /c/log"
        );
        let e = VmError::Netns {
            command: "ip netns add x".into(),
            source: CommandError::TimedOut {
                command: "\"ip\" \"netns\" \"add\" \"x\"".into(),
                after: Duration::from_secs(30),
            },
        };
        assert_eq!(e.kind(), VmErrorKind::Environment);
        assert!(e
            .to_string()
            .contains("ip netns add x failed: \"ip\" \"netns\" \"add\" \"x\": no answer within 30 s (killed)"));
    }

    #[test]
    fn io_errors_keep_their_source() {
        let e = VmError::Io {
            action: IoAction::Write,
            path: "/w/initramfs.cpio.gz".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.kind(), VmErrorKind::Environment);
        assert!(e.to_string().starts_with("write /w/initramfs.cpio.gz: "), "{e}");
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(source.map(std::io::Error::kind), Some(std::io::ErrorKind::PermissionDenied));
    }
}
