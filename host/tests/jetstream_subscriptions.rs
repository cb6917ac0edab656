//! Subscriptions with two hosts on one real three-node NATS cluster: their state lives in the
//! cluster (the control API answers the same on either host), every wake is delivered by one
//! host only, a pull-wake claimed through one host is acknowledged through the other, and when
//! the delivering host is killed (-9) the other takes delivery over within 15 s; one that is
//! shut down gracefully hands the lease over at once.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::webhook::Receiver;
use common::Server;
use reqwest::blocking::Client;

fn hosts(cluster: &ds_nats_cluster::Cluster, ns: &str) -> (Server, Server) {
    common::jetstream_hosts(&cluster.urls(), ns, &[("DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP", "true")])
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn js(r: reqwest::blocking::Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().unwrap()).unwrap()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

fn append(c: &Client, host: &Server, stream: &str, body: &str) -> String {
    let r = c
        .post(host.url(&format!("/v1/stream/{stream}")))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "append to {stream}");
    r.headers()["stream-next-offset"].to_str().unwrap().to_string()
}

/// PUT of a JSON body (a stream or a subscription) through `host`; the status.
fn put_json(c: &Client, host: &Server, path: &str, body: &serde_json::Value) -> u16 {
    let r = c.put(host.url(path)).header("Content-Type", "application/json");
    let r = if body.is_null() { r } else { r.body(body.to_string()) };
    r.send().unwrap().status().as_u16()
}

/// The host holding the delivery lease, then the other one.
fn deliverer_first(a: Server, b: Server) -> (Server, Server) {
    let delivers = |s: &Server| s.log_text().contains("this host now delivers subscription wakes");
    match (delivers(&a), delivers(&b)) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        other => panic!("exactly one host should have taken the delivery lease: {other:?}"),
    }
}

/// The acked offset of `stream` in subscription `id`, as `host` reports it.
fn acked(c: &Client, host: &Server, id: &str, stream: &str) -> Option<String> {
    let v = js(c.get(host.url(&format!("/v1/stream/__ds/subscriptions/{id}"))).send().unwrap());
    v["streams"]
        .as_array()?
        .iter()
        .find(|s| s["path"] == stream)
        .and_then(|s| s["acked_offset"].as_str().map(str::to_string))
}

#[test]
fn webhook_wakes_are_delivered_once_and_taken_over_when_the_deliverer_dies() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xsubs");
    let c = client();
    let rx = Receiver::start();
    *rx.succeed.lock().unwrap() = true;
    for (host, s) in [(&a, "ev/a"), (&b, "ev/b")] {
        assert_eq!(put_json(&c, host, &format!("/v1/stream/{s}"), &serde_json::Value::Null), 201);
    }
    let config =
        serde_json::json!({"type": "webhook", "pattern": "ev/*", "webhook": {"url": format!("http://127.0.0.1:{}/hook", rx.port)}});
    let put = |host: &Server, body: &serde_json::Value| put_json(&c, host, "/v1/stream/__ds/subscriptions/s1", body);
    assert_eq!(put(&a, &config), 201, "created through A");
    // The state is in the cluster: B answers at once, re-confirms, and refuses another config.
    let on_b = js(c.get(b.url("/v1/stream/__ds/subscriptions/s1")).send().unwrap());
    assert_eq!(on_b["id"], "s1", "B sees the subscription created through A: {on_b}");
    assert_eq!(on_b["streams"].as_array().map(Vec::len), Some(2), "both streams linked: {on_b}");
    assert_eq!(put(&b, &config), 200, "the same configuration through B is a re-confirmation");
    let mut other = config.clone();
    other["pattern"] = "other/*".into();
    assert_eq!(put(&b, &other), 409, "another configuration through B conflicts");

    // Appends through both hosts: every wake is delivered once, and the cursors reach the tails.
    let mut tails = [String::new(), String::new()];
    for i in 0..12 {
        let (host, k) = if i % 2 == 0 { (&a, 0) } else { (&b, 1) };
        tails[k] = append(&c, host, ["ev/a", "ev/b"][k], &format!("{{\"i\":{i}}}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for("both cursors at their tails", 30, || {
        acked(&c, &b, "s1", "ev/a").as_deref() == Some(tails[0].as_str())
            && acked(&c, &a, "s1", "ev/b").as_deref() == Some(tails[1].as_str())
    });
    let seen = rx.seen.lock().unwrap().clone();
    let wakes: Vec<&str> = seen.iter().filter_map(|(_, v)| v["wake_id"].as_str()).collect();
    let unique: HashSet<&&str> = wakes.iter().collect();
    assert_eq!(unique.len(), wakes.len(), "no wake was delivered twice: {wakes:?}");
    let generations: Vec<u64> = seen.iter().filter_map(|(_, v)| v["generation"].as_u64()).collect();
    assert!(
        generations.windows(2).all(|w| w[0] < w[1]),
        "generations only grow: {generations:?}"
    );
    println!("two hosts: {} wakes delivered, each once", wakes.len());

    // Kill the delivering host; the other takes delivery over.
    let (mut dead, alive) = deliverer_first(a, b);
    dead.child.kill().unwrap();
    let _ = dead.child.wait();
    let killed = Instant::now();
    let before = rx.seen.lock().unwrap().len();
    let tail = append(&c, &alive, "ev/a", "{\"after\":\"kill\"}");
    wait_for("a delivery from the surviving host", 30, || {
        rx.seen.lock().unwrap()[before..].iter().any(|(_, v)| {
            v["streams"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["path"] == "ev/a" && s["tail_offset"] == tail.as_str()))
        })
    });
    let took = killed.elapsed();
    assert!(
        alive.log_text().contains("this host now delivers subscription wakes"),
        "the survivor took the lease"
    );
    wait_for("the survivor's cursor at the tail", 10, || {
        acked(&c, &alive, "s1", "ev/a").as_deref() == Some(tail.as_str())
    });
    println!(
        "delivering host killed: the other host delivered the next wake {:.1} s later",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(15), "taken over within 15 s, not {took:?}");
}

#[test]
fn pull_wake_claimed_on_one_host_is_acknowledged_on_the_other() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xpull");
    let c = client();
    for s in ["wake/q", "jobs/1"] {
        c.put(a.url(&format!("/v1/stream/{s}")))
            .header("Content-Type", "application/json")
            .send()
            .unwrap();
    }
    let sub = serde_json::json!({"type": "pull-wake", "pattern": "jobs/*", "wake_stream": "wake/q", "lease_ttl_ms": 30000});
    assert_eq!(put_json(&c, &b, "/v1/stream/__ds/subscriptions/p1", &sub), 201);
    let tail = append(&c, &a, "jobs/1", "{\"job\":1}");
    // The wake event reaches the wake stream (written by whichever host delivers).
    wait_for("a wake event", 20, || {
        let body = c.get(b.url("/v1/stream/wake/q?offset=-1")).send().unwrap().text().unwrap();
        body.contains("\"subscription_id\":\"p1\"")
    });
    let claim = |host: &Server, worker: &str| {
        c.post(host.url("/v1/stream/__ds/subscriptions/p1/claim"))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"worker": worker}).to_string())
            .send()
            .unwrap()
    };
    let r = claim(&a, "w1");
    assert_eq!(r.status(), 200);
    let got = js(r);
    assert_eq!(got["streams"][0]["tail_offset"], tail.as_str(), "{got}");
    // The lease is held in the cluster: a second worker through B is refused.
    let r = claim(&b, "w2");
    assert_eq!(r.status(), 409);
    assert_eq!(js(r)["error"]["code"], "ALREADY_CLAIMED");
    // Acknowledged through B with the token A issued.
    let ack = serde_json::json!({"wake_id": got["wake_id"], "generation": got["generation"], "acks": [{"stream": "jobs/1", "offset": tail}], "done": true});
    let r = c
        .post(b.url("/v1/stream/__ds/subscriptions/p1/ack"))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {}", got["token"].as_str().unwrap()))
        .body(ack.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_eq!(acked(&c, &a, "p1", "jobs/1").as_deref(), Some(tail.as_str()), "A sees B's ack");
    // A stale wake is fenced on either host.
    let r = c
        .post(a.url("/v1/stream/__ds/subscriptions/p1/ack"))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {}", got["token"].as_str().unwrap()))
        .body(ack.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 409, "the finished wake is fenced on A too");
}

/// A delivering host that is shut down gracefully (SIGTERM) gives the lease up while it drains,
/// so the other host delivers the next wake without waiting out the lease (10 s).
#[test]
fn a_draining_deliverer_hands_delivery_over_at_once() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xdrain");
    let c = client();
    let rx = Receiver::start();
    *rx.succeed.lock().unwrap() = true;
    assert_eq!(put_json(&c, &a, "/v1/stream/ev/d", &serde_json::Value::Null), 201);
    let config =
        serde_json::json!({"type": "webhook", "pattern": "ev/*", "webhook": {"url": format!("http://127.0.0.1:{}/hook", rx.port)}});
    assert_eq!(put_json(&c, &a, "/v1/stream/__ds/subscriptions/s2", &config), 201);
    let first = append(&c, &a, "ev/d", "{\"i\":1}");
    wait_for("the first wake acknowledged", 30, || {
        acked(&c, &b, "s2", "ev/d").as_deref() == Some(first.as_str())
    });
    let (mut draining, alive) = deliverer_first(a, b);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &draining.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let _ = draining.child.wait();
    let stopped = Instant::now();
    let tail = append(&c, &alive, "ev/d", "{\"after\":\"drain\"}");
    wait_for("the other host's delivery", 30, || {
        acked(&c, &alive, "s2", "ev/d").as_deref() == Some(tail.as_str())
    });
    let took = stopped.elapsed();
    println!(
        "delivering host drained: the other host delivered {:.1} s later",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(8),
        "a released lease is taken over at once, not after the 10 s lease: {took:?}"
    );
}
