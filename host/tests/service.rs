//! Running under systemd (issue 29 part 1): readiness told to the service manager over
//! `NOTIFY_SOCKET` once the engine is open (`Type=notify`), a hangup (`systemctl reload`)
//! re-reads the token file without stopping the server, and the stop is announced.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{tempdir, Server};

fn messages(sock: &UnixDatagram, until: &str) -> String {
    let mut all = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !all.contains(until) {
        if let Ok(n) = sock.recv(&mut buf) {
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            all.push('\n');
        }
    }
    all
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn readiness_reload_and_stop_reach_the_service_manager() {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let tokens = dir.path.join("tokens.json");
    let data = dir.path.join("data");
    let mut s = Server::start(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("DS_STORAGE__MODE", "file-durable"),
        ("DS_STORAGE__DATA_DIR", data.to_str().unwrap()),
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
    ]);
    let got = messages(&sock, "READY=1");
    assert!(got.contains("READY=1"), "no readiness: {got:?}");

    // A token issued while the server runs works at once after a reload, and the hangup does
    // not end the process.
    let token = common::issue_token(&tokens, &["*:all"]);
    let pid = s.child.id();
    signal(pid, "-HUP");
    let got = messages(&sock, "READY=1");
    assert!(got.contains("RELOADING=1") && got.contains("READY=1"), "{got:?}");
    assert!(s.is_alive(), "SIGHUP ended the server");
    let c = reqwest::blocking::Client::new();
    let r = c
        .put(s.url("/v1/stream/svc/a"))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(s.log_text().contains("reload (SIGHUP)"), "{}", s.log_text());

    signal(pid, "-TERM");
    let got = messages(&sock, "STOPPING=1");
    assert!(got.contains("STOPPING=1"), "{got:?}");
}
