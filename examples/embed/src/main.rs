//! An application with its own routes that mounts the Durable Streams protocol, using an engine
//! linked in-process (`InMemoryStorage` here; `FileStorage` and `AcidStorage` the same way).
//!
//! `cargo run` serves on 127.0.0.1:4438; `cargo run -- --self-test` serves on a free port, runs
//! a create / append / read round trip against itself plus the app's own route, and exits.

use std::io::{Read, Write};
use std::net::TcpStream;

use axum::routing::get;
use axum::Router;
use durable_streams_server::engines::open_linked;
use durable_streams_server::{build_router_with_ready, Config, ConfigLoadOptions, Readiness};

fn request(port: u16, raw: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::main]
async fn main() {
    let self_test = std::env::args().any(|a| a == "--self-test");
    // Configuration as the server loads it (defaults, config files, DS_* variables).
    let mut config = Config::load(&ConfigLoadOptions {
        ignore_env: false,
        ..Default::default()
    })
    .expect("configuration");
    config.storage.mode = std::env::var("EMBED_MODE").unwrap_or_else(|_| "memory".into());
    println!(
        "engine type for memory mode: {}",
        std::any::type_name::<durable_streams_server::InMemoryStorage>()
    );
    let storage = open_linked(&config).expect("engine");
    let readiness = Readiness::new(false);
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the host application" }))
        .merge(build_router_with_ready(config, storage, readiness.clone()));
    let listener = tokio::net::TcpListener::bind(if self_test { "127.0.0.1:0" } else { "127.0.0.1:4438" })
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    readiness.set_ready(true);
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    if !self_test {
        println!("listening on http://127.0.0.1:{port} (protocol at /v1/stream, app route at /hello)");
        server.await.unwrap();
        return;
    }
    let checks = tokio::task::spawn_blocking(move || {
        let put = request(port, "PUT /v1/stream/embedded HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
        assert!(put.starts_with("HTTP/1.1 201"), "{put}");
        let post = request(port, "POST /v1/stream/embedded HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
        assert!(post.starts_with("HTTP/1.1 204"), "{post}");
        let get = request(port, "GET /v1/stream/embedded HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(get.starts_with("HTTP/1.1 200") && get.ends_with("hello"), "{get}");
        let ready = request(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let hello = request(port, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(hello.ends_with("hello from the host application"), "{hello}");
    })
    .await;
    match checks {
        Ok(()) => println!("embed self-test passed"),
        Err(e) => {
            eprintln!("embed self-test failed: {e}");
            std::process::exit(1);
        }
    }
}
