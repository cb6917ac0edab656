//! The system under faults: three NATS nodes and two server hosts in network namespaces of their
//! own (`ds-netns`), the hosts in the `jetstream` mode on the three nodes; the test's own
//! namespace reaches every member, as clients do.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ds_netns::Net;

pub const NODES: [&str; 3] = ["n0", "n1", "n2"];
pub const HOSTS: [&str; 2] = ["h0", "h1"];
const HOST_PORT: u16 = 4437;

pub struct System {
    pub net: Net,
    dir: PathBuf,
    host_pids: Vec<u32>,
    /// Extra environment of every host (e.g. access control).
    host_env: Vec<(String, String)>,
}

/// How the hosts run: a clock offset per host (`faketime`, e.g. "+180" seconds), and extra
/// environment for every host.
#[derive(Clone, Default)]
pub struct Setup {
    pub skew: Vec<(&'static str, &'static str)>,
    pub host_env: Vec<(String, String)>,
}

fn get(url: &str) -> Option<String> {
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let r = c.get(url).send().ok()?;
    r.status().is_success().then(|| r.text().ok()).flatten()
}

impl System {
    /// Starts everything as `setup` says.
    pub fn start(setup: &Setup) -> System {
        let mut members: Vec<&str> = NODES.to_vec();
        members.extend(HOSTS);
        let net = Net::create(&members).unwrap_or_else(|e| panic!("the fault tests need network namespaces: {e}"));
        let dir = std::env::temp_dir().join(format!("ds-partitions-{}-{}", std::process::id(), net.tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sys = System {
            net,
            dir,
            host_pids: Vec::new(),
            host_env: setup.host_env.clone(),
        };
        let bin = ds_nats_cluster::server_binary();
        let routes: Vec<String> = NODES.iter().map(|n| format!("nats-route://{}:6222", sys.net.ip(n))).collect();
        for n in NODES {
            let ip = sys.net.ip(n);
            let conf = sys.dir.join(format!("{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: {n}\nlisten: {ip}:4222\nhttp: {ip}:8222\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\", max_memory_store: 256MB, max_file_store: 4GB }}\ncluster {{ name: dsfault, listen: {ip}:6222, routes: [{}] }}\n",
                    sys.dir.join(n).display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            let log = std::fs::File::create(sys.dir.join(format!("{n}.log"))).unwrap();
            let mut cmd = sys.net.command(n, bin.to_str().unwrap());
            cmd.arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log);
            sys.net.start(&mut cmd).unwrap();
        }
        for n in NODES {
            sys.wait(&format!("http://{}:8222/healthz", sys.net.ip(n)), Duration::from_secs(60), n);
        }
        for h in HOSTS {
            let faketime = setup.skew.iter().find(|(name, _)| *name == h).map(|(_, s)| *s);
            sys.start_host(h, faketime);
        }
        sys
    }

    fn wait(&self, url: &str, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        while get(url).is_none() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join(format!("{what}.log"))).unwrap_or_default();
                panic!("{what} did not become ready ({url}); its log ends:\n{}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_host(&mut self, h: &str, faketime: Option<&str>) {
        let urls: Vec<String> = NODES.iter().map(|n| format!("nats://{}:4222", self.net.ip(n))).collect();
        let bin = env!("CARGO_BIN_EXE_durable-streams-server");
        let mut cmd = match faketime {
            Some(offset) => {
                // The wall clock only: timers (monotonic) run as they do.
                let mut c = self.net.command(h, "faketime");
                c.args(["-f", offset, bin]).env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
            None => self.net.command(h, bin),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{h}.log")))
            .unwrap();
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config-dir")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
            .env("DS_SERVER__PORT", HOST_PORT.to_string())
            .env("DS_SERVER__BIND_ADDRESS", self.net.ip(h))
            .env("DS_STORAGE__MODE", "jetstream")
            .env("DS_STORAGE__DATA_DIR", self.dir.join(format!("{h}-data")))
            .env("DS_STORAGE__JETSTREAM__URLS", urls.join(","))
            .env("DS_STORAGE__JETSTREAM__NAMESPACE", "fault")
            .env("DS_STORAGE__JETSTREAM__SHARDS", "2")
            .env("DS_STORAGE__APPEND_LANES", "4")
            .env("DS_LOG__FORMAT", "text")
            .env("RUST_LOG", "warn")
            // Webhooks go to a receiver on the host's own loopback (`hooks`); the delivery
            // lease moves within a fault's few seconds.
            .env("DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP", "true")
            .env("DS_SUBSCRIPTIONS__DELIVERY_LEASE_SECS", "3")
            .envs(self.host_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log);
        self.host_pids.push(self.net.start(&mut cmd).unwrap());
        self.wait(&format!("{}/readyz", self.url(h)), Duration::from_secs(60), h);
    }

    /// For a run that did not resume: every host's thread stacks (with `gdb`, when present) and
    /// every log (hosts and nodes) and every node's JetStream view (`/jsz`) copied into `out`.
    pub fn diagnose(&self, out: &std::path::Path) {
        for (h, pid) in HOSTS.iter().zip(&self.host_pids) {
            let stacks = Command::new("gdb")
                .args(["-batch", "-p", &pid.to_string(), "-ex", "thread apply all bt"])
                .output();
            if let Ok(o) = stacks {
                let _ = std::fs::write(out.join(format!("{h}-stacks.txt")), [o.stdout, o.stderr].concat());
            }
        }
        for n in NODES {
            let jsz = get(&format!("http://{}:8222/jsz?accounts=true&streams=true", self.net.ip(n)));
            let _ = std::fs::write(out.join(format!("{n}-jsz.json")), jsz.unwrap_or_default());
        }
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(e.path(), out.join(e.file_name()));
            }
        }
    }

    /// The base URL of host `h`.
    pub fn url(&self, h: &str) -> String {
        format!("http://{}:{HOST_PORT}", self.net.ip(h))
    }

    /// The node leading JetStream stream `stream` (e.g. `fault_d0`), as some node reports it.
    pub fn stream_leader(&self, stream: &str) -> Option<String> {
        NODES.iter().find_map(|n| {
            let text = get(&format!("http://{}:8222/jsz?accounts=true&streams=true", self.net.ip(n)))?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["account_details"].as_array()?.iter().find_map(|a| {
                a["stream_detail"].as_array()?.iter().find_map(|s| {
                    (s["name"] == stream)
                        .then(|| s["cluster"]["leader"].as_str().map(str::to_string))
                        .flatten()
                })
            })
        })
    }

    /// The JetStream meta leader's node name, as node `n` sees it.
    pub fn meta_leader(&self) -> Option<String> {
        NODES.iter().find_map(|n| {
            let text = get(&format!("http://{}:8222/jsz", self.net.ip(n)))?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["meta_cluster"]["leader"].as_str().map(str::to_string)
        })
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for System {
    fn drop(&mut self) {
        for pid in std::mem::take(&mut self.host_pids) {
            self.net.kill(pid);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("partitions: logs kept in {}", self.dir.display());
        }
    }
}
