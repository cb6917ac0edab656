//! Plugin loading through the real binary: refusals are one clear line; a panicking engine
//! leaves the server alive and not ready.

mod common;

use std::process::Command;

use common::{http, plugin_dir_with, status_of, Server};

#[test]
fn incompatible_plugin_is_rejected_with_one_line() {
    let dir = plugin_dir_with("ds_test_incompatible");
    let out = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .arg("plugins")
        .env("DS_STORAGE__PLUGIN_DIR", &dir.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("rejected")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("libds_test_incompatible.so") && line.contains("2.0.0") && line.contains("1.0.0"),
        "{line}"
    );
    // The server still starts on the bundled memory plugin and logs the refusal.
    let s = Server::start(&[("DS_STORAGE__PLUGIN_DIR", dir.path.to_str().unwrap())]);
    assert!(s.log_text().contains("plugin rejected"), "{}", s.log_text());
}

#[test]
fn unknown_mode_refuses_to_start_listing_modes() {
    let log = Server::try_start(&[("DS_STORAGE__MODE", "nosuch")]).err().expect("must not start");
    let line = log
        .lines()
        .find(|l| l.contains("unknown storage mode"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("'nosuch'") && line.contains("memory"), "{line}");
    assert!(!log.contains("listening"), "a wrong mode fails before the server listens: {log}");
}

#[test]
fn incompatible_plugin_cannot_be_selected() {
    let dir = plugin_dir_with("ds_test_incompatible");
    let log = Server::try_start(&[
        ("DS_STORAGE__PLUGIN_DIR", dir.path.to_str().unwrap()),
        ("DS_STORAGE__MODE", "future"),
    ])
    .err()
    .expect("must not start");
    assert!(log.contains("unknown storage mode 'future'"), "{log}");
}

#[test]
fn panicking_engine_poisons_but_server_lives() {
    let dir = plugin_dir_with("ds_test_panicky");
    let mut s = Server::start(&[
        ("DS_STORAGE__PLUGIN_DIR", dir.path.to_str().unwrap()),
        ("DS_STORAGE__MODE", "panicky"),
    ]);
    let port = s.port;
    let post = |body: &str| {
        http(port, &format!("POST /v1/stream/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
    };
    assert_eq!(status_of(&post("fine")), 204);
    let r = post("panic");
    assert_eq!(status_of(&r), 500, "{r}");
    assert!(
        r.contains("application/problem+json") && !r.contains("deliberate"),
        "5xx bodies carry no internals: {r}"
    );
    assert!(s.is_alive(), "the process must survive an engine panic");
    // The failed request is logged with its method and path (kept by the in-flight registry).
    let failed = (0..40)
        .find_map(|_| {
            let line = s.log_text().lines().find(|l| l.contains("request failed")).map(str::to_string);
            if line.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            line
        })
        .unwrap_or_else(|| panic!("no 'request failed' line: {}", s.log_text()));
    assert!(failed.contains("POST") && failed.contains("/v1/stream/x"), "{failed}");
    assert_eq!(
        status_of(&http(s.port, "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")),
        503
    );
    assert_eq!(
        status_of(&http(s.port, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")),
        200
    );
    assert_eq!(status_of(&post("fine")), 503, "a poisoned engine refuses further calls");
}

#[test]
fn readyz_is_503_until_the_engine_has_opened() {
    let dir = plugin_dir_with("ds_test_panicky");
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .env("DS_SERVER__PORT", port.to_string())
        .env("DS_SERVER__BIND_ADDRESS", "127.0.0.1")
        .env("DS_STORAGE__PLUGIN_DIR", &dir.path)
        .env("DS_STORAGE__MODE", "panicky")
        .env("PANICKY_OPEN_DELAY_MS", "1500")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| status_of(&http(port, &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")));
    let started = std::time::Instant::now();
    while get("/healthz") != 200 {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "never answered /healthz");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(get("/readyz"), 503, "not ready while the engine opens");
    assert_eq!(get("/v1/stream/x"), 503, "requests wait for the engine");
    while get("/readyz") != 200 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "never became ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
