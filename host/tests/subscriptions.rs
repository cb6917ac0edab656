//! Subscriptions survive a restart in the middle of a delivery: the retry schedule, the wake
//! (same generation, same wake id), the cursors and the signing key all come back from the
//! engine; nothing is lost and nothing is delivered to a stale generation.

mod common;

use std::time::{Duration, Instant};

use common::webhook::Receiver;
use common::{tempdir, Server};
use reqwest::blocking::Client;

fn js(r: reqwest::blocking::Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().unwrap()).unwrap()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn restart_mid_delivery(mode: &str) {
    let dir = tempdir::Dir::new();
    let env = [
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap()),
        ("DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP", "true"),
    ];
    let rx = Receiver::start();
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut s = Server::start(&env);
    let sub_url = |s: &Server| s.url("/v1/stream/__ds/subscriptions/durable");
    let r = c
        .put(sub_url(&s))
        .header("content-type", "application/json")
        .body(serde_json::json!({"type": "webhook", "pattern": "ev/*", "webhook": {"url": format!("http://127.0.0.1:{}/hook", rx.port)}, "lease_ttl_ms": 60000}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let kid_before = js(r)["webhook"]["signing"]["kid"].as_str().unwrap().to_string();
    c.put(s.url("/v1/stream/ev/a"))
        .header("content-type", "text/plain")
        .body("payload")
        .send()
        .unwrap();
    wait_for("a failed delivery", 10, || !rx.seen.lock().unwrap().is_empty());
    wait_for("the retry to be recorded", 10, || {
        js(c.get(sub_url(&s)).send().unwrap())["status"] == "failed"
    });
    let (gen, wake) = {
        let seen = rx.seen.lock().unwrap();
        (
            seen[0].1["generation"].as_u64().unwrap(),
            seen[0].1["wake_id"].as_str().unwrap().to_string(),
        )
    };
    // Crash in the middle of the retry schedule.
    s.child.kill().unwrap();
    let _ = s.child.wait();
    *rx.succeed.lock().unwrap() = true;
    let failed_attempts = rx.seen.lock().unwrap().len();
    let s = Server::start(&env);
    wait_for("the retried delivery after restart", 90, || {
        rx.seen.lock().unwrap().len() > failed_attempts
    });
    let seen = rx.seen.lock().unwrap().clone();
    for (_, body) in &seen {
        assert_eq!(
            body["generation"].as_u64(),
            Some(gen),
            "{mode}: every delivery carries the wake's generation, never a stale or skipped one"
        );
        assert_eq!(body["wake_id"].as_str(), Some(wake.as_str()), "{mode}: the same wake is retried");
    }
    let (sig, body) = seen.last().unwrap().clone();
    assert!(
        sig.contains(&format!("kid={kid_before}")),
        "{mode}: the signing key survived the restart: {sig}"
    );
    let tail = body["streams"][0]["tail_offset"].as_str().unwrap().to_string();
    wait_for("the auto-ack", 10, || {
        let v = js(c.get(sub_url(&s)).send().unwrap());
        v["status"] == "active" && v["streams"][0]["acked_offset"] == tail.as_str()
    });
    let jwks = js(c.get(s.url("/v1/stream/__ds/jwks.json")).send().unwrap());
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid_before.as_str()));
}

#[test]
fn webhook_restart_mid_delivery_file_durable() {
    restart_mid_delivery("file-durable");
}

#[test]
fn webhook_restart_mid_delivery_acid() {
    restart_mid_delivery("acid");
}

/// Error paths of the control API: bad tokens, stale wakes, deleted subscriptions, bad input.
#[test]
fn control_api_refuses_bad_tokens_stale_wakes_and_deleted_subscriptions() {
    let s = Server::start(&[("DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP", "true")]);
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let sub = s.url("/v1/stream/__ds/subscriptions/pw");
    let code = |r: reqwest::blocking::Response| -> (u16, String) {
        let st = r.status().as_u16();
        (st, js(r)["error"]["code"].as_str().unwrap_or("").to_string())
    };
    c.put(s.url("/v1/stream/wake/q"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .unwrap();
    let body = serde_json::json!({"type": "pull-wake", "pattern": "jobs/*", "wake_stream": "wake/q", "lease_ttl_ms": 1000}).to_string();
    assert_eq!(
        c.put(&sub)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap()
            .status(),
        201
    );
    // Same id, different configuration.
    let other = serde_json::json!({"type": "pull-wake", "pattern": "other/*", "wake_stream": "wake/q"}).to_string();
    assert_eq!(
        code(c.put(&sub).header("content-type", "application/json").body(other).send().unwrap()),
        (409, "SUBSCRIPTION_EXISTS".into())
    );
    // Bad input.
    for bad in [
        r#"{"type":"pull-wake","pattern":"a/*"}"#,
        r#"{"type":"nope","pattern":"a/*"}"#,
        r#"{"type":"webhook","streams":[]}"#,
        "not json",
        r#"{"type":"pull-wake","pattern":"a/*","wake_stream":"w","lease_ttl_ms":5}"#,
    ] {
        let r = c
            .put(s.url("/v1/stream/__ds/subscriptions/bad"))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Nothing pending yet.
    assert_eq!(
        code(c.post(format!("{sub}/claim")).body(r#"{"worker":"w1"}"#).send().unwrap()),
        (409, "NO_PENDING_WORK".into())
    );
    c.put(s.url("/v1/stream/jobs/1"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .unwrap();
    let mut claimed = serde_json::Value::Null;
    for _ in 0..50 {
        let r = c.post(format!("{sub}/claim")).body(r#"{"worker":"w1"}"#).send().unwrap();
        if r.status() == 200 {
            claimed = js(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = claimed["token"].as_str().expect("claimed").to_string();
    let ack = serde_json::json!({"wake_id": claimed["wake_id"], "generation": claimed["generation"], "done": false}).to_string();
    // No token, a forged token, and a stale generation.
    assert_eq!(code(c.post(format!("{sub}/ack")).body(ack.clone()).send().unwrap()).0, 401);
    assert_eq!(
        code(
            c.post(format!("{sub}/ack"))
                .bearer_auth(format!("{token}x"))
                .body(ack.clone())
                .send()
                .unwrap()
        )
        .0,
        401
    );
    let stale = serde_json::json!({"wake_id": claimed["wake_id"], "generation": claimed["generation"].as_u64().unwrap() + 1}).to_string();
    assert_eq!(
        code(c.post(format!("{sub}/ack")).bearer_auth(&token).body(stale).send().unwrap()),
        (409, "FENCED".into())
    );
    // A heartbeat ack works; after deletion the same ack fails and nothing advances.
    assert_eq!(
        c.post(format!("{sub}/ack"))
            .bearer_auth(&token)
            .body(ack.clone())
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(c.delete(&sub).send().unwrap().status(), 204);
    assert_eq!(
        code(c.post(format!("{sub}/ack")).bearer_auth(&token).body(ack).send().unwrap()).0,
        404
    );
    assert_eq!(c.get(&sub).send().unwrap().status(), 404);
    assert_eq!(c.delete(&sub).send().unwrap().status(), 404);
}
