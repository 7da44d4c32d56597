//! The cluster's configuration files: ceph.conf and the keyrings. Every daemon binds
//! [`CLUSTER_IP`] on the namespace's loopback; data, sockets and logs stay in the cluster's
//! folder; one memstore OSD is enough for a pool (size 1, no redundancy warnings).

use std::path::Path;

/// The address every daemon binds, on the namespace's loopback.
pub(super) const CLUSTER_IP: &str = "10.254.0.1";

/// The monitor's address vector (msgr2 and legacy).
pub(super) fn mon_addr() -> String {
    format!("[v2:{CLUSTER_IP}:3300,v1:{CLUSTER_IP}:6789]")
}

/// client.admin's keyring, with every capability.
pub(super) fn admin_keyring(admin_key: &str) -> String {
    let admin_caps =
        "\tcaps mon = \"allow *\"\n\tcaps osd = \"allow *\"\n\tcaps mgr = \"allow *\"\n\tcaps mds = \"allow *\"\n";
    format!("[client.admin]\n\tkey = {admin_key}\n{admin_caps}")
}

/// The monitor's keyring: its own key and client.admin's, for `ceph-mon --mkfs`.
pub(super) fn mon_keyring(mon_key: &str, admin_keyring: &str) -> String {
    format!("[mon.]\n\tkey = {mon_key}\n\tcaps mon = \"allow *\"\n{admin_keyring}")
}

/// The arguments of `ceph auth get-or-create` for the manager `mgr.x`.
pub(super) const MGR_AUTH: [&str; 9] =
    ["auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"];

/// The capabilities of an OSD's key (after `auth get-or-create osd.N`).
pub(super) const OSD_CAPS: [&str; 6] = ["mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *"];

/// ceph.conf for a cluster with id `fsid` whose files live under `dir`.
pub(super) fn ceph_conf(fsid: &str, dir: &Path) -> String {
    let dd = dir.display();
    format!(
        "[global]
fsid = {fsid}
mon host = {mon_host}
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
mon data avail crit = 1
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
mon allow pool delete = true
mon max osd = 100000
mon debug no require bluestore for ec overwrites = true
osd pool default erasure code profile = plugin=jerasure technique=reed_sol_van k=2 m=1 crush-failure-domain=osd
osd op num shards = 1
osd op num threads per shard = 2
[mon]
keyring = {dd}/mon.keyring
[mgr]
keyring = {dd}/$name/keyring
[osd]
keyring = {dd}/$name/keyring
",
        mon_host = mon_addr()
    )
}

/// How the guest's kernel client talks to the cluster: msgr2 in `crc` or `secure` mode,
/// or the legacy (msgr1) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MsMode {
    Crc,
    Secure,
    Legacy,
}

impl MsMode {
    /// The krbd `ms_mode=` map option.
    pub fn map_option(self) -> &'static str {
        match self {
            MsMode::Crc => "ms_mode=crc",
            MsMode::Secure => "ms_mode=secure",
            MsMode::Legacy => "ms_mode=legacy",
        }
    }
}

/// The guest's ceph.conf: the monitor, client.admin's keyring in /etc/ceph, and the client
/// settings of Ceph's own krbd QA (`rbd default features = 37`: layering, exclusive-lock,
/// deep-flatten; the Pacific default 61 changes discard and namespace results), with every
/// `rbd map` using `ms_mode`. The CLIs' own log lines go to their log file only: Pacific's
/// CLIs print spurious ones on stderr now and then (`monclient: get_auth_request but no
/// auth handler is set up` at exit), which would break cram tests' exact output.
pub(super) fn guest_ceph_conf(ms_mode: MsMode) -> String {
    format!(
        "[global]
mon host = {mon_host}
ms bind ipv6 = false
keyring = /etc/ceph/ceph.client.admin.keyring
[client]
rbd default features = 37
rbd default map options = {opt}
log to stderr = false
log file = /var/log/ceph/$name.$pid.log
admin socket = /var/run/ceph/$cluster-$name.$pid.asok
",
        mon_host = mon_addr(),
        opt = ms_mode.map_option()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_binds_the_namespace_address_and_keeps_files_in_the_folder() {
        let conf = ceph_conf("f00", Path::new("/c"));
        assert!(conf.contains("mon host = [v2:10.254.0.1:3300,v1:10.254.0.1:6789]\n"), "{conf}");
        assert!(conf.contains("public addr = 10.254.0.1\n"), "{conf}");
        assert!(conf.contains("log file = /c/log/$name.log\n"), "{conf}");
        assert!(mon_keyring("M", &admin_keyring("A")).contains("[client.admin]\n\tkey = A\n"));
    }
}
