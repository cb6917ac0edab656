//! Disk full, on a small tmpfs in a private mount namespace: the append fails with 507
//! problem+json and leaves nothing partial, reads keep working, a subscription change (an
//! append to the server's own log) is refused and leaves nothing, writes work again once space
//! is freed (no restart), and later acknowledged appends survive a restart. A compaction that
//! runs out of space leaves the old segments in place and the server serving, and succeeds once
//! space is back. Skipped, with the reason printed, where mount namespaces are not permitted.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, status_of, tempdir};
use reqwest::blocking::Client;

/// Holds a private mount namespace with a tmpfs mounted at `mount`.
struct Namespace {
    holder: Child,
    mount: std::path::PathBuf,
}

impl Namespace {
    fn new(mount: &std::path::Path, size: &str) -> Result<Namespace, String> {
        let script = format!(
            "mount -t tmpfs -o size={size} tmpfs '{}' && touch '{}/.ready' && exec sleep 600",
            mount.display(),
            mount.display()
        );
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("unshare not available: {e}"))?;
        let mut ns = Namespace {
            holder,
            mount: mount.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if ns.inside(".ready").exists() {
                return Ok(ns);
            }
            if let Ok(Some(status)) = ns.holder.try_wait() {
                return Err(format!("cannot mount a tmpfs in a private namespace ({status})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("namespace did not come up".into())
    }

    /// A path inside the namespace's tmpfs, seen from outside through /proc.
    fn inside(&self, rel: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{}/root{}/{rel}", self.holder.id(), self.mount.display()))
    }

    fn server(&self, mode: &str, port: u16) -> Child {
        self.server_with(mode, port, &[])
    }

    fn server_with(&self, mode: &str, port: u16, env: &[(&str, &str)]) -> Child {
        Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "-m", "--"])
            .arg(env!("CARGO_BIN_EXE_durable-streams-server"))
            .env("DS_SERVER__PORT", port.to_string())
            .env("DS_SERVER__BIND_ADDRESS", "127.0.0.1")
            .env("DS_STORAGE__MODE", mode)
            .env("DS_STORAGE__DATA_DIR", self.mount.join("data"))
            .env("DS_STORAGE__ACID_SHARD_COUNT", "1")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if status_of(&http(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not become ready");
}

fn disk_full(mode: &str) {
    let dir = tempdir::Dir::new();
    let ns = match Namespace::new(&dir.path, "12m") {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED disk-full test for {mode}: {why}");
            return;
        }
    };
    // Fill most of the filesystem with a file we can remove later.
    std::fs::write(ns.inside("filler"), vec![0u8; 7 << 20]).unwrap();
    let port = free_port();
    let mut server = ns.server(mode, port);
    wait_ready(port);
    let c = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/stream/full");
    assert_eq!(
        c.put(&url)
            .header("Content-Type", "application/octet-stream")
            .send()
            .unwrap()
            .status(),
        201
    );
    let chunk = |i: u32| -> Vec<u8> { (0..65536u32).map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8).collect() };
    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut refused = false;
    for i in 0..400 {
        let r = c
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .body(chunk(i))
            .send()
            .unwrap();
        match r.status().as_u16() {
            204 => acked.push(chunk(i)),
            507 => {
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                refused = true;
                break;
            }
            other => panic!("{mode}: unexpected status {other}: {}", r.text().unwrap_or_default()),
        }
    }
    assert!(refused, "{mode}: the filesystem never filled up");
    assert!(!acked.is_empty(), "{mode}: nothing fit before the disk filled");
    let expect = |acked: &Vec<Vec<u8>>| acked.concat();
    // Reads keep working and show exactly the acknowledged appends.
    let body = c.get(&url).send().unwrap();
    assert_eq!(body.status(), 200);
    let mut got = Vec::new();
    let mut resp = body;
    loop {
        let next = resp.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let done = resp.headers().contains_key("stream-up-to-date");
        got.extend_from_slice(&resp.bytes().unwrap());
        if done {
            break;
        }
        resp = c.get(format!("{url}?offset={next}")).send().unwrap();
    }
    assert!(
        got == expect(&acked),
        "{mode}: reads after ENOSPC must show exactly the acknowledged data"
    );
    // A change to the subscriptions (an append to their internal log) is refused cleanly too,
    // and leaves no subscription behind. The last bytes of the filesystem go first, so that
    // even a small record cannot fit.
    let _ = std::fs::write(ns.inside("filler2"), vec![0u8; 12 << 20]);
    // What is left of the log's last allocated page takes smaller and smaller appends until
    // not even a one-byte record fits.
    for size in [500usize, 100, 20, 1] {
        for i in 0..64 {
            let r = c
                .post(&url)
                .header("Content-Type", "application/octet-stream")
                .body(vec![b'.'; size])
                .send()
                .unwrap();
            match r.status().as_u16() {
                204 => acked.push(vec![b'.'; size]),
                507 => break,
                other => panic!("{mode}: small append {i} of {size} bytes got {other}"),
            }
        }
    }
    let sub_url = format!("http://127.0.0.1:{port}/v1/stream/__ds/subscriptions/full-sub");
    let sub = r#"{"type":"pull-wake","pattern":"full*","wake_stream":"full-wake"}"#;
    let put_sub = || c.put(&sub_url).header("Content-Type", "application/json").body(sub).send().unwrap();
    let r = put_sub();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json", "{mode}: {status}");
    assert!(
        matches!(status, 503 | 507),
        "{mode}: a subscription change on a full disk got {status}"
    );
    assert_eq!(
        c.get(&sub_url).send().unwrap().status(),
        404,
        "{mode}: a refused change leaves nothing"
    );
    // Creates racing on the full disk (file-durable and acid commit them in groups) are each
    // refused cleanly, and leave no stream behind.
    let refused: Vec<(String, u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                s.spawn(move || {
                    let name = format!("http://127.0.0.1:{port}/v1/stream/full-new-{i}");
                    let r = c
                        .put(&name)
                        .header("Content-Type", "text/plain")
                        .body("x".repeat(2000))
                        .send()
                        .unwrap();
                    let ct = r
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    (name, r.status().as_u16(), ct)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (name, status, ct) in &refused {
        assert!(matches!(status, 503 | 507), "{mode}: a create on a full disk got {status}");
        assert_eq!(ct, "application/problem+json", "{mode}: {name}");
        assert_eq!(
            c.head(name).send().unwrap().status(),
            404,
            "{mode}: a refused create leaves nothing"
        );
    }
    std::fs::remove_file(ns.inside("filler2")).unwrap();
    // Free space without restarting: writes work again.
    std::fs::remove_file(ns.inside("filler")).unwrap();
    let r = put_sub();
    assert_eq!(
        r.status(),
        201,
        "{mode}: the subscription once space is back: {}",
        r.text().unwrap_or_default()
    );
    let r = c.put(&refused[0].0).header("Content-Type", "text/plain").send().unwrap();
    assert_eq!(r.status(), 201, "{mode}: a create once space is back");
    let mut resumed = false;
    for i in 1000..1010 {
        let r = c
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .body(chunk(i))
            .send()
            .unwrap();
        if r.status() == 204 {
            acked.push(chunk(i));
            resumed = true;
        } else {
            panic!(
                "{mode}: after freeing space the append got {}: {}",
                r.status(),
                r.text().unwrap_or_default()
            );
        }
    }
    assert!(resumed);
    // Everything acknowledged survives a crash and restart on the same filesystem.
    server.kill().unwrap();
    let _ = server.wait();
    let port2 = free_port();
    let mut server2 = ns.server(mode, port2);
    wait_ready(port2);
    let url2 = format!("http://127.0.0.1:{port2}/v1/stream/full");
    let mut got = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let r = c.get(format!("{url2}?offset={offset}")).send().unwrap();
        assert_eq!(r.status(), 200);
        offset = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let done = r.headers().contains_key("stream-up-to-date");
        got.extend_from_slice(&r.bytes().unwrap());
        if done {
            break;
        }
    }
    assert!(
        got == expect(&acked),
        "{mode}: after restart {} bytes, expected {}",
        got.len(),
        expect(&acked).len()
    );
    let _ = server2.kill();
    let _ = server2.wait();
    println!(
        "{mode}: disk full handled: {} appends acknowledged, 507 on overflow, resumed after freeing space",
        acked.len()
    );
}

#[test]
fn disk_full_file_durable() {
    disk_full("file-durable");
}

#[test]
fn disk_full_file_fast() {
    disk_full("file-fast");
}

#[test]
fn disk_full_acid() {
    disk_full("acid");
}

/// Fills the filesystem: big writes, then smaller ones, until not even one byte fits.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for size in [1 << 20, 64 << 10, 4096, 512, 1] {
        while f.write_all(&vec![0u8; size]).is_ok() {}
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compaction_on_a_full_disk_file_durable() {
    let mode = "file-durable";
    let dir = tempdir::Dir::new();
    let ns = match Namespace::new(&dir.path, "8m") {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED compaction disk-full test: {why}");
            return;
        }
    };
    let env = [
        ("DS_STORAGE__FILE_SEGMENT_BYTES", "65536"),
        ("DS_STORAGE__FILE_COMPACT_INTERVAL_MS", "500"),
        ("DS_STORAGE__FILE_COMPACT_DEAD_PERCENT", "30"),
    ];
    let port = free_port();
    let mut server = ns.server_with(mode, port, &env);
    wait_ready(port);
    let c = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let url = |name: &str| format!("http://127.0.0.1:{port}/v1/stream/{name}");
    let put = |name: &str, body: Vec<u8>| {
        c.put(url(name))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .unwrap()
            .status()
    };
    // Kept and doomed data side by side in every segment: each compaction output holds kept
    // bytes (tens of KiB), more than the space left below.
    assert_eq!(put("keep", Vec::new()), 201);
    let mut kept = Vec::new();
    for i in 0..16u8 {
        assert_eq!(put(&format!("doomed{i}"), vec![i; 24 << 10]), 201);
        let part = vec![b'k' ^ i; 24 << 10];
        let r = c
            .post(url("keep"))
            .header("Content-Type", "application/octet-stream")
            .body(part.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
        kept.extend_from_slice(&part);
    }
    // Full, but for a little room for the deletes' records.
    std::fs::write(ns.inside("reserve"), vec![0u8; 16 << 10]).unwrap();
    fill(&ns.inside("filler"));
    std::fs::remove_file(ns.inside("reserve")).unwrap();
    for i in 0..16u8 {
        assert_eq!(c.delete(url(&format!("doomed{i}"))).send().unwrap().status(), 204);
    }
    fill(&ns.inside("filler2"));
    wait_for("a compaction failed for lack of space", || {
        common::metric(port, "ds_storage_compaction_failures") > 0
    });
    let leftovers: Vec<String> = std::fs::read_dir(ns.inside("data/file"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".compacting"))
        .collect();
    assert!(leftovers.is_empty(), "a failed compaction left {leftovers:?}");
    let read = |port: u16, name: &str| {
        let r = c.get(format!("http://127.0.0.1:{port}/v1/stream/{name}?offset=-1")).send().unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    assert_eq!(
        read(port, "keep"),
        (200, kept.clone()),
        "{mode}: reads go on while compaction cannot"
    );
    std::fs::remove_file(ns.inside("filler2")).unwrap();
    std::fs::remove_file(ns.inside("filler")).unwrap();
    wait_for("a compaction succeeded once space was back", || {
        common::metric(port, "ds_storage_compactions") > 0
    });
    let reclaimed = common::metric(port, "ds_storage_compacted_bytes");
    assert!(reclaimed > 0);
    assert_eq!(read(port, "keep"), (200, kept.clone()));
    server.kill().unwrap();
    let _ = server.wait();
    let port2 = free_port();
    let mut server2 = ns.server_with(mode, port2, &env);
    wait_ready(port2);
    assert_eq!(read(port2, "keep"), (200, kept.clone()), "{mode}: after a restart");
    assert_eq!(read(port2, "doomed3").0, 404);
    let _ = server2.kill();
    let _ = server2.wait();
    println!("{mode}: compaction on a full disk failed cleanly, then reclaimed {reclaimed} bytes once space was back");
}
