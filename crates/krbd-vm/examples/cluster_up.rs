//! Starts a throwaway cluster in the given folder and keeps it until stdin closes or a line
//! is entered: for poking at it by hand (`ip netns exec <ns> ceph -c <dir>/ceph.conf -s`).

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/krbd-cluster".into());
    let spec = krbd_vm::ClusterSpec { dir: dir.into(), osds: 1, start_timeout: std::time::Duration::from_secs(120) };
    match krbd_vm::Cluster::start(&spec, &krbd_progress::Silent) {
        Ok(c) => {
            println!("up in namespace {}", c.netns());
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            c.shutdown();
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
