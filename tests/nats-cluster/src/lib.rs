//! A real NATS JetStream cluster on loopback for tests: `nats-server` processes (installed by
//! `scripts/nats.sh install`, which `make test` runs), each with its own store directory,
//! routed to each other; nodes can be killed, stopped (SIGSTOP), resumed and restarted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which release to run: `DS_NATS_SERVER` (a path) wins, else the `current` install, else the
/// `minimum` one (see `scripts/nats.sh`).
pub fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DS_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/nats.sh")).args(["path", "current"]).output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!("nats-server is not installed: run `scripts/nats.sh install` (make test does)"),
    }
}

struct Node {
    name: String,
    client: u16,
    http: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster; every node is killed on drop and its directory removed.
pub struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    bin: PathBuf,
}

fn port_pair_free(p: u16) -> bool {
    TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// Ports outside the kernel's ephemeral range (so an outgoing connection cannot take one while
/// a node is down), chosen at random and checked free.
fn pick_ports(n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64 ^ now_nanos();
    let mut x = seed | 1;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 20000 + (x % 12000) as u16;
        if !out.contains(&p) && port_pair_free(p) {
            out.push(p);
        }
    }
    out
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl Cluster {
    /// Starts `n` nodes (3 for a real quorum) and waits until JetStream is ready on each. Ports
    /// are picked at random and checked free, but another test may take one before a node binds
    /// it: a node that stops on "address already in use" makes a fresh start on other ports.
    pub fn start(n: usize) -> Cluster {
        for _ in 0..4 {
            let c = Self::start_once(n);
            match c.try_wait_ready(Duration::from_secs(60)) {
                Ok(()) => return c,
                Err((_, log)) if log.contains("address already in use") => continue,
                Err((name, log)) => panic!("NATS node {name} did not become ready:\n{log}"),
            }
        }
        panic!("NATS nodes kept finding their ports taken (4 tries)");
    }

    fn start_once(n: usize) -> Cluster {
        let bin = server_binary();
        let dir = std::env::temp_dir().join(format!("ds-nats-{}-{}", std::process::id(), now_nanos()));
        std::fs::create_dir_all(&dir).unwrap();
        let ports = pick_ports(n * 3);
        let routes: Vec<String> = (0..n).map(|i| format!("nats-route://127.0.0.1:{}", ports[n + i])).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            let conf = dir.join(format!("{name}.conf"));
            let cluster = if n > 1 {
                format!(
                    "cluster {{ name: dstest, listen: 127.0.0.1:{}, routes: [{}] }}",
                    ports[n + i],
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            std::fs::write(
                &conf,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\", max_memory_store: 256MB, max_file_store: 8GB }}\n{cluster}\n",
                    ports[i],
                    ports[2 * n + i],
                    store.display()
                ),
            )
            .unwrap();
            nodes.push(Node {
                log: dir.join(format!("{name}.log")),
                name,
                client: ports[i],
                http: ports[2 * n + i],
                conf,
                child: None,
            });
        }
        let mut c = Cluster { nodes, dir, bin };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        node.child = Some(child);
    }

    /// `nats://...` addresses of every node, comma-separated (for `storage.jetstream.urls`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node answers `/healthz` with JetStream current.
    pub fn wait_ready(&self, limit: Duration) {
        if let Err((name, log)) = self.try_wait_ready(limit) {
            panic!("NATS node {name} did not become ready:\n{log}");
        }
    }

    /// As [`Cluster::wait_ready`]; a node not ready in time, or stopped by a fatal error, is
    /// named with its log.
    fn try_wait_ready(&self, limit: Duration) -> Result<(), (String, String)> {
        let deadline = Instant::now() + limit;
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let ok = http_get(n.http, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"));
                if ok {
                    break;
                }
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                if Instant::now() > deadline || log.contains("[FTL]") {
                    return Err((n.name.clone(), log));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn signal(&self, i: usize, sig: &str) {
        if let Some(c) = &self.nodes[i].child {
            Command::new("kill").args([sig, &c.id().to_string()]).status().unwrap();
        }
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts node `i` on the same ports and store.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// SIGSTOP: the node hangs (neither dead nor answering).
    pub fn pause(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal(i, "-CONT");
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
