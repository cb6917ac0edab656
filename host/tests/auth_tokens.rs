//! Access tokens managed over HTTP (`__ds/tokens`): never broader or longer-lived than the
//! issuer, a fresh token never cached, revocation within a second. (What a prefix-admin token
//! may and may not manage is in `auth_attacks.rs` and the matrix in `auth.rs`.)

mod common;
#[path = "auth/fixture.rs"]
mod fixture;

use std::time::Duration;

use common::wait_until;
use fixture::{client, fixture, id_of, issue, seed};

#[test]
fn tokens_over_http_never_broader_than_the_issuer() {
    let f = fixture();
    let chat_admin = issue(&f.tokens, &["chat/:all"], None);
    let chat_rw = issue(&f.tokens, &["chat/:read,append,create,delete"], None);
    seed(&f, "chat/x/1");
    seed(&f, "chat/a");
    let c = client();
    let url = f.server.url("/v1/stream/__ds/tokens");
    let post = |who: &str, body: &str| {
        let r = c
            .post(&url)
            .bearer_auth(who)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status == 201 {
            // A freshly issued token is never kept by a cache.
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        (status, r.text().unwrap())
    };
    // Inside the issuer's scopes (equal included): issued, and it works at once.
    let (status, text) = post(&chat_admin, r#"{"scopes": ["chat/x/:read"], "ttl_secs": 600, "label": "reader"}"#);
    assert_eq!(status, 201, "{text}");
    let made: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reader = made["token"].as_str().unwrap().to_string();
    assert!(made.get("hash").is_none());
    let read = |t: &str, name: &str| {
        c.get(f.server.url(&format!("/v1/stream/{name}?offset=-1")))
            .bearer_auth(t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read(&reader, "chat/x/1"), 200);
    assert_eq!(read(&reader, "chat/a"), 403);
    assert_eq!(post(&chat_admin, r#"{"scopes": ["chat/:all"]}"#).0, 201);
    // Broader in names or operations, or without admin: refused.
    for body in [
        r#"{"scopes": ["*:read"]}"#,
        r#"{"scopes": ["chatroom/:read"]}"#,
        r#"{"scopes": ["chat:read"]}"#,
    ] {
        assert_eq!(post(&chat_admin, body).0, 403, "{body}");
    }
    assert_eq!(post(&chat_rw, r#"{"scopes": ["chat/:read"]}"#).0, 403, "no admin");
    // Bad requests.
    for body in ["not json", r#"{"scopes": []}"#, r#"{"scopes": ["chat/:fly"]}"#, r#"{"scope": "x"}"#] {
        assert_eq!(post(&chat_admin, body).0, 400, "{body}");
    }
    // A list shows only what the caller could have issued, never a hash.
    let listed = c.get(&url).bearer_auth(&chat_admin).send().unwrap().text().unwrap();
    assert!(listed.contains(id_of(&reader)) && listed.contains(id_of(&chat_rw)), "{listed}");
    assert!(!listed.contains(id_of(&f.admin)), "a broader token was listed: {listed}");
    assert!(!listed.contains("hash"));
    // Revoking: not a broader token; its own, yes (refused within a second).
    let delete = |who: &str, id: &str| c.delete(format!("{url}/{id}")).bearer_auth(who).send().unwrap().status().as_u16();
    // One outside the caller's admin scope answers as if it did not exist.
    assert_eq!(delete(&chat_admin, id_of(&f.admin)), 404);
    assert_eq!(delete(&chat_admin, "000000000000"), 404);
    assert_eq!(delete(&chat_admin, id_of(&reader)), 204);
    wait_until(Duration::from_secs(5), "the revoked token to be refused", || {
        read(&reader, "chat/x/1") == 401
    });
    // A JWT with a minute left issues nothing that outlives it.
    let jwt = f.jwt.ed("ed1", &["chat/:all"], 60);
    let (status, text) = post(&jwt, r#"{"scopes": ["chat/:read"], "ttl_secs": 86400}"#);
    assert_eq!(status, 201, "{text}");
    let made: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expires = made["expires_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(expires <= now + 61_000, "outlives the issuing JWT: {expires} vs {now}");
}
