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

fn self_signed(dir: &tempdir::Dir) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path.join("cert.pem");
    let key_path = dir.path.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert.cert.pem(), cert_path, key_path)
}

fn location(c: &Client, url: &str, headers: &[(&str, &str)]) -> (reqwest::Version, String) {
    let mut r = c.put(url).header("Content-Type", "text/plain");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().unwrap();
    assert_eq!(r.status(), 201, "{url}");
    (r.version(), r.headers()["location"].to_str().unwrap().to_string())
}

/// Issue 15 item 3: `Location` is built from the request's scheme and authority (`:authority`
/// on HTTP/2), not always `http://` + `Host`.
#[test]
fn location_uses_the_request_scheme_and_authority() {
    let dir = tempdir::Dir::new();
    let (pem, cert_path, key_path) = self_signed(&dir);
    let s = Server::try_start_tls(&[
        ("DS_TLS__CERT_PATH", cert_path.to_str().unwrap()),
        ("DS_TLS__KEY_PATH", key_path.to_str().unwrap()),
    ])
    .unwrap();
    let root = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
    let h2 = Client::builder().add_root_certificate(root.clone()).build().unwrap();
    let h1 = Client::builder().add_root_certificate(root).http1_only().build().unwrap();
    let base = format!("https://localhost:{}/v1/stream", s.port);
    let (v, loc) = location(&h2, &format!("{base}/over-h2"), &[]);
    assert_eq!(v, reqwest::Version::HTTP_2);
    assert_eq!(loc, format!("{base}/over-h2"), "HTTP/2 over TLS");
    let (v, loc) = location(&h1, &format!("{base}/over-h1"), &[]);
    assert_eq!(v, reqwest::Version::HTTP_11);
    assert_eq!(loc, format!("{base}/over-h1"), "HTTP/1.1 over TLS");

    // Plain HTTP/2 (prior knowledge): no Host header, the authority comes from :authority.
    let plain = Server::start(&[]);
    let h2c = Client::builder().http2_prior_knowledge().build().unwrap();
    let url = plain.url("/v1/stream/h2c");
    let (v, loc) = location(&h2c, &url, &[]);
    assert_eq!(v, reqwest::Version::HTTP_2);
    assert_eq!(loc, url, "h2c keeps host and port");
    // Proxy headers are not believed unless configured.
    let forwarded = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "streams.example.com")];
    let (_, loc) = location(&Client::new(), &plain.url("/v1/stream/untrusted"), &forwarded);
    assert_eq!(loc, plain.url("/v1/stream/untrusted"));
}

#[test]
fn location_honours_proxy_headers_when_trusted() {
    let s = Server::start(&[("DS_HTTP__TRUST_PROXY_HEADERS", "true")]);
    let c = Client::new();
    let (_, loc) = location(
        &c,
        &s.url("/v1/stream/a"),
        &[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "streams.example.com")],
    );
    assert_eq!(loc, "https://streams.example.com/v1/stream/a");
    let (_, loc) = location(
        &c,
        &s.url("/v1/stream/b"),
        &[("Forwarded", "for=192.0.2.1;proto=https;host=edge.example:8443")],
    );
    assert_eq!(loc, "https://edge.example:8443/v1/stream/b");
}

/// Issue 15 item 4: after SIGTERM the server keeps accepting for the drain delay with `/readyz`
/// answering 503 (a balancer sees "not ready", never "connection refused"), then drains.
#[test]
fn sigterm_keeps_accepting_during_the_drain_delay() {
    let mut s = Server::start(&[("DS_SERVER__DRAIN_DELAY_SECS", "2"), ("DS_SERVER__SHUTDOWN_GRACE_SECS", "2")]);
    let c = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    assert_eq!(c.get(s.url("/readyz")).send().unwrap().status(), 200);
    let started = Instant::now();
    Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ready = c.get(s.url("/readyz")).send().expect("still accepting during the drain delay");
    assert_eq!(ready.status(), 503, "out of rotation");
    let put = c
        .put(s.url("/v1/stream/during-drain"))
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(put.status(), 201, "requests are still served during the delay");
    assert!(started.elapsed() < Duration::from_secs(2));
    let code = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "exits after delay + drain");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success());
    assert!(started.elapsed() >= Duration::from_secs(2), "not before the drain delay");
    assert!(
        common::http(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").is_empty(),
        "closed after exit"
    );
}

/// Issue 15 item 4: a request still open at the grace deadline is cut, and the log says so.
#[test]
fn requests_cut_at_the_grace_deadline_are_logged() {
    use std::io::Write;
    let mut s = Server::start(&[("DS_SERVER__SHUTDOWN_GRACE_SECS", "1")]);
    let c = Client::new();
    c.put(s.url("/v1/stream/slow")).header("Content-Type", "text/plain").send().unwrap();
    // An upload that never finishes its body.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.write_all(b"POST /v1/stream/slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly part")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    let started = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(6), "exits after the grace period");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = s.log_text();
    assert!(
        log.contains("request cut at the shutdown grace deadline") && log.contains("/v1/stream/slow"),
        "{log}"
    );
}

/// A TLS connection still in its handshake (here: one that never sends a ClientHello) is cut
/// with the rest at the grace deadline, not left to the handshake's own 10 s timeout.
#[test]
fn a_handshake_in_progress_is_cut_at_the_grace_deadline() {
    let dir = tempdir::Dir::new();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path.join("cert.pem");
    let key_path = dir.path.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let mut s = Server::try_start_tls(&[
        ("DS_TLS__CERT_PATH", cert_path.to_str().unwrap()),
        ("DS_TLS__KEY_PATH", key_path.to_str().unwrap()),
        ("DS_SERVER__SHUTDOWN_GRACE_SECS", "1"),
    ])
    .unwrap();
    let _silent = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    let started = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "exits after the grace period, not after the handshake timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 15 item 8: `tls.enabled = false` turns TLS off under a profile that sets the files.
#[test]
fn tls_can_be_turned_off_under_a_profile_that_sets_it() {
    let s = Server::start(&[
        ("DS_TLS__CERT_PATH", "/etc/durable-streams/tls/cert.pem"),
        ("DS_TLS__KEY_PATH", "/etc/durable-streams/tls/key.pem"),
        ("DS_TLS__ENABLED", "false"),
    ]);
    let r = Client::new().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200, "plain HTTP behind a TLS-terminating proxy");
}
