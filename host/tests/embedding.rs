//! Embedding (issue 15 item 9): a router built with `build_router_with_ready` inside an
//! application's runtime runs the TTL sweeper, and `Readiness::start_draining` releases its
//! long-polls, with no help from the binary.

mod common;

use std::time::{Duration, Instant};

use abi_stable::std_types::RSlice;
use durable_streams_server::{build_router_with_ready, plugin, Config, Readiness, Storage};

fn memory_storage(config: &Config) -> Storage {
    let so = common::target_dir().join("libds_plugin_memory.so");
    let p = plugin::load_one(&so).expect("bundled memory plugin");
    Storage::open(&p, "memory", &durable_streams_server::engine_config_json(config)).unwrap()
}

fn streams(storage: &Storage) -> u64 {
    let b = storage
        .call_sync(|e| e.extension(durable_streams_core::abi::ext::STATS.into(), RSlice::from(&b""[..])))
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(b.as_slice()).unwrap()["streams"]
        .as_u64()
        .unwrap()
}

#[test]
fn embedders_get_the_sweeper_and_the_drain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = Config::default();
    config.server.sweep_interval_secs = 1;
    config.server.long_poll_timeout_secs = 30;
    let storage = memory_storage(&config);
    let readiness = Readiness::new(true);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    {
        let _enter = rt.enter();
        let router = build_router_with_ready(config, storage.clone(), readiness.clone());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        rt.spawn(async move { axum::serve(listener, router).await });
    }
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{port}/v1/stream/{p}");
    // The engine also holds the server's internal state streams.
    let base = streams(&storage);
    let r = c
        .put(url("short"))
        .header("Content-Type", "text/plain")
        .header("Stream-TTL", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(streams(&storage), base + 1);
    let deadline = Instant::now() + Duration::from_secs(6);
    while streams(&storage) != base {
        assert!(Instant::now() < deadline, "the sweeper removes the expired stream");
        std::thread::sleep(Duration::from_millis(100));
    }

    let r = c.put(url("live")).header("Content-Type", "text/plain").body("x").send().unwrap();
    let tail = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    let lp = url(&format!("live?offset={tail}&live=long-poll"));
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let r = reqwest::blocking::Client::new().get(lp).send().unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    readiness.start_draining();
    let (status, waited) = waiting.join().unwrap();
    assert_eq!(status, 204);
    assert!(waited < Duration::from_secs(5), "released by start_draining, not by the timeout");
    let ready = c.get(format!("http://127.0.0.1:{port}/readyz")).send().unwrap();
    assert_eq!(ready.status(), 503);
}
