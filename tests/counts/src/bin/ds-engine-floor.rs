//! `ds-engine-floor`: the floor under fsynced appends (issue 28): one-route axum (as `ds-floor`)
//! in front of a bundled engine linked in-process, with the least group commit there is. A POST's
//! body goes down a channel to one thread, which takes every append queued at that moment (no
//! wait for stragglers), hands them to the engine's `append_many` (one write and one sync for
//! file-durable, one transaction for acid) and answers each with its new tail. No catalogue, no
//! producers, no limits, no metrics, no layers: what a server that syncs each acknowledged
//! append cannot avoid paying (axum, the engine, the kernel), measured in the same rounds as the
//! server (`scripts/bench-peers.sh`, `PEERS=engine-floor`). It answers PUT (create) and POST
//! (append) only, for `ds-bench --scenario appends --no-verify`; `/readyz` answers 200.
//!
//!     ds-engine-floor --mode file-durable --data-dir /tmp/floor --port 4438

use std::sync::mpsc;

use abi_stable::std_types::{RResult, RSlice};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use clap::Parser;
use durable_streams_core::abi::AppendRequest;
use durable_streams_server::Storage;
use tokio::sync::oneshot;

#[path = "../requests.rs"]
mod requests;

#[global_allocator]
static ALLOC: durable_streams_alloc::Mimalloc = durable_streams_alloc::Mimalloc;

const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "cross-origin"),
    ("content-security-policy", "sandbox; default-src 'none'; frame-ancestors 'none'"),
];
const NEXT: HeaderName = HeaderName::from_static("stream-next-offset");

#[derive(Parser)]
#[command(about = "axum + an engine + the least group commit: the floor under fsynced appends")]
struct Args {
    #[arg(long, default_value = "file-durable")]
    mode: String,
    #[arg(long)]
    data_dir: std::path::PathBuf,
    #[arg(long, default_value_t = 4438)]
    port: u16,
}

/// One append waiting for its group.
struct Pending {
    name: String,
    body: Bytes,
    done: oneshot::Sender<Option<u64>>,
}

#[derive(Clone)]
struct Floor {
    storage: Storage,
    appends: mpsc::Sender<Pending>,
}

/// The group commit: every append queued when the previous group is done, in one call.
fn commit_groups(storage: Storage, queue: mpsc::Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let reqs: Vec<AppendRequest<'_>> = group.iter().map(|p| requests::append_octets(&p.name, &p.body)).collect();
        let results = storage.call_sync(|e| RResult::ROk(e.append_many(RSlice::from(&reqs[..]))));
        drop(reqs);
        match results {
            Ok(results) => {
                for (p, r) in group.into_iter().zip(results.iter()) {
                    let _ = p.done.send(r.as_ref().into_result().ok().map(|o| o.tail));
                }
            }
            Err(_) => group.into_iter().for_each(|p| {
                let _ = p.done.send(None);
            }),
        }
    }
}

fn answer(status: StatusCode, tail: Option<u64>) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    if let Some(t) = tail {
        h.insert(NEXT, HeaderValue::from_str(&format!("0000000000000000_{t:016}")).expect("digits"));
    }
    for (name, value) in SECURITY {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    resp
}

async fn stream(State(floor): State<Floor>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let name = parts.uri.path().strip_prefix("/v1/stream/").unwrap_or_default().to_string();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return answer(StatusCode::BAD_REQUEST, None);
    };
    match parts.method {
        Method::PUT => {
            let storage = floor.storage.clone();
            let created = tokio::task::spawn_blocking(move || storage.call_sync(|e| e.create(&requests::create_octets(&name)))).await;
            match created {
                Ok(Ok(_)) => answer(StatusCode::CREATED, Some(0)),
                _ => answer(StatusCode::CONFLICT, None),
            }
        }
        Method::POST => {
            let (done, answered) = oneshot::channel();
            if floor.appends.send(Pending { name, body, done }).is_err() {
                return answer(StatusCode::SERVICE_UNAVAILABLE, None);
            }
            match answered.await {
                Ok(Some(tail)) => answer(StatusCode::NO_CONTENT, Some(tail)),
                _ => answer(StatusCode::INTERNAL_SERVER_ERROR, None),
            }
        }
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, None),
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut config = durable_streams_server::Config::default();
    config.storage.mode = args.mode.clone();
    config.storage.data_dir = args.data_dir.clone();
    let storage = durable_streams_server::engines::open_linked(&config).map_err(std::io::Error::other)?;
    let (appends, queue) = mpsc::channel();
    let committer = storage.clone();
    std::thread::spawn(move || commit_groups(committer, queue));
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route("/v1/stream/{*name}", any(stream))
        .with_state(Floor { storage, appends });
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
        axum::serve(listener, app).await
    })
}
