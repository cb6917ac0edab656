//! Test support: runs the real `durable-streams-server` binary on a free port.

#![allow(dead_code)]

pub mod browser;
pub mod grouped;
pub mod jwt;
pub mod webhook;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's target directory for this profile (where the bundled plugins are built).
pub fn target_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_durable-streams-server"));
    bin.parent().unwrap().to_path_buf()
}

/// A test plugin `.so`, copied alone into a fresh directory (to use as `storage.plugin_dir`).
pub fn plugin_dir_with(lib: &str) -> tempdir::Dir {
    let src = target_dir().join(format!("lib{lib}.so"));
    assert!(
        src.exists(),
        "{} is missing: run `cargo build --workspace` first (make test does)",
        src.display()
    );
    let dir = tempdir::Dir::new();
    std::fs::copy(&src, dir.path.join(src.file_name().unwrap())).unwrap();
    dir
}

pub mod tempdir {
    use std::path::PathBuf;

    /// A directory removed on drop.
    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!("ds-test-{}-{}", std::process::id(), rand_suffix()));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        t ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running server process, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
    _logdir: tempdir::Dir,
}

impl Server {
    /// Starts the binary with `DS_*` overrides and waits until `/healthz` answers.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::try_start(env).unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// Like `start`, but returns the log on failure to start.
    pub fn try_start(env: &[(&str, &str)]) -> Result<Server, String> {
        Self::spawn(env, false)
    }

    /// Starts a TLS server (readiness is checked by the process staying up and the port accepting).
    pub fn try_start_tls(env: &[(&str, &str)]) -> Result<Server, String> {
        Self::spawn(env, true)
    }

    fn spawn(env: &[(&str, &str)], tls: bool) -> Result<Server, String> {
        let port = free_port();
        let logdir = tempdir::Dir::new();
        let log = logdir.path.join("server.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config-dir")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
            .env("DS_SERVER__PORT", port.to_string())
            .env("DS_SERVER__BIND_ADDRESS", "127.0.0.1")
            .env("DS_LOG__FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            let up = if tls {
                std::fs::read_to_string(&log).unwrap_or_default().contains(" ready")
            } else {
                http(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 200")
            };
            if up {
                return Ok(Server {
                    port,
                    child,
                    log,
                    _logdir: logdir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(std::fs::read_to_string(&log).unwrap_or_default())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes and returns whatever comes back before the server closes or 5 s pass.
pub fn http(port: u16, raw: &str) -> String {
    http_bytes(port, raw.as_bytes())
}

pub fn http_bytes(port: u16, raw: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(raw).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP response.
pub fn status_of(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A handle on a running server's port, usable from other threads.
pub struct ServerRef {
    pub port: u16,
}

impl ServerRef {
    pub fn post(&self, c: &reqwest::blocking::Client, name: &str, w: usize, seq: u64, body: Vec<u8>) -> Result<u16, reqwest::Error> {
        c.post(format!("http://127.0.0.1:{}/v1/stream/{name}", self.port))
            .header("Content-Type", "application/octet-stream")
            .header("Producer-Id", format!("writer-{w}"))
            .header("Producer-Epoch", "0")
            .header("Producer-Seq", seq.to_string())
            .body(body)
            .send()
            .map(|r| r.status().as_u16())
    }
}

/// Two real hosts on the `jetstream` mode of `urls` (a test cluster), namespace `ns`, with
/// `extra` overrides.
pub fn jetstream_hosts(urls: &str, ns: &str, extra: &[(&str, &str)]) -> (Server, Server) {
    let mut env = vec![
        ("DS_STORAGE__MODE", "jetstream"),
        ("DS_STORAGE__JETSTREAM__URLS", urls),
        ("DS_STORAGE__JETSTREAM__NAMESPACE", ns),
        ("DS_STORAGE__JETSTREAM__SHARDS", "2"),
        // Several append lanes, so the cross-host tests also check order and uniqueness with
        // groups in flight together.
        ("DS_STORAGE__APPEND_LANES", "4"),
    ];
    env.extend_from_slice(extra);
    (Server::start(&env), Server::start(&env))
}

/// The value of the unlabelled metric `name` of the server on `port` (0 when absent).
pub fn metric(port: u16, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Polls `cond` every 50 ms until it holds; fails the test after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the binary's command line (`export`, `import`, ...) with the memory engine configured.
pub fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(args)
        .env("DS_STORAGE__MODE", "memory")
        .output()
        .unwrap()
}

/// Runs `token ARGS` (`issue`, `list`, `revoke`) with the real CLI against the token file
/// `tokens`; returns stdout (the token, for `issue`).
pub fn token_cli(tokens: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .arg("--config-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .arg("token")
        .args(args)
        .env("DS_AUTH__TOKENS_FILE", tokens)
        .output()
        .unwrap();
    assert!(out.status.success(), "token {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Issues an access token with the real CLI (`token issue --scope ...`) into the token file
/// `tokens`; returns the token.
pub fn issue_token(tokens: &std::path::Path, scopes: &[&str]) -> String {
    let mut args = vec!["issue"];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    token_cli(tokens, &args)
}
