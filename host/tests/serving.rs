//! Serving through the binary: TLS with a certificate made in the test, HTTP/2 by ALPN, and the
//! graceful drain on SIGTERM (long-polls answered 204, SSE ended, exit within the grace period).

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{tempdir, Server};
use reqwest::blocking::Client;

#[test]
fn tls_with_http2_by_alpn() {
    let dir = tempdir::Dir::new();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path.join("cert.pem");
    let key_path = dir.path.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let s = Server::try_start_tls(&[
        ("DS_TLS__CERT_PATH", cert_path.to_str().unwrap()),
        ("DS_TLS__KEY_PATH", key_path.to_str().unwrap()),
    ])
    .unwrap();
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let c = Client::builder()
        .add_root_certificate(root)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", s.port);
    let r = c
        .put(format!("{base}/v1/stream/tls"))
        .header("Content-Type", "text/plain")
        .body("secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "HTTP/2 negotiated by ALPN");
    let r = c.get(format!("{base}/v1/stream/tls")).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.text().unwrap(), "secret");
    // Plain HTTP on the TLS port is not served.
    let plain = common::http(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
}

#[test]
fn missing_tls_files_refuse_start() {
    let log = Server::try_start(&[
        ("DS_TLS__CERT_PATH", "/nonexistent/cert.pem"),
        ("DS_TLS__KEY_PATH", "/nonexistent/key.pem"),
    ])
    .err()
    .expect("must not start");
    assert!(log.contains("TLS") && log.contains("/nonexistent/cert.pem"), "{log}");
}

#[test]
fn sigterm_drains_long_polls_and_sse_then_exits() {
    let mut s = Server::start(&[("DS_SERVER__LONG_POLL_TIMEOUT_SECS", "30"), ("DS_SERVER__SHUTDOWN_GRACE_SECS", "5")]);
    let c = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let r = c
        .put(s.url("/v1/stream/d"))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .unwrap();
    let tail = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    let lp_url = s.url(&format!("/v1/stream/d?offset={tail}&live=long-poll"));
    let long_poll = std::thread::spawn(move || {
        let started = Instant::now();
        let r = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
            .get(lp_url)
            .send()
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    let sse_url = s.url("/v1/stream/d?offset=-1&live=sse");
    let sse = std::thread::spawn(move || {
        let mut r = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
            .get(sse_url)
            .send()
            .unwrap();
        let mut text = String::new();
        let ended_cleanly = r.read_to_string(&mut text).is_ok();
        (ended_cleanly, text)
    });
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    let (status, waited) = long_poll.join().unwrap();
    assert_eq!(status, 204, "a waiting long-poll is answered when draining");
    assert!(waited < Duration::from_secs(5), "answered promptly, not at the 30 s timeout");
    let (clean, text) = sse.join().unwrap();
    assert!(
        clean && text.contains("event: control"),
        "SSE ends cleanly after its last control event: {text}"
    );
    let code = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "must exit within the grace period");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "clean exit: {code:?}");
    assert!(s.log_text().contains("draining"), "{}", s.log_text());
}

#[test]
fn json_log_lines_on_request() {
    let s = Server::start(&[("DS_LOG__FORMAT", "json"), ("RUST_LOG", "debug,hyper=info")]);
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    c.put(s.url("/v1/stream/logged")).send().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let log = s.log_text();
    let mut saw_request = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["span"]["http.request.method"] == "PUT" && v["fields"]["http.response.status_code"] == 201 {
            saw_request = true;
        }
    }
    assert!(saw_request, "a request event with OpenTelemetry field names:\n{log}");
}
