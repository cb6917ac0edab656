//! What an attacker found in access control (issue #25), each closed and kept closed: imports
//! naming what no route could, token routes reaching past the admin scope, live reads outliving
//! their credential, JWT-issued tokens outliving their key, quotas multiplied by children or
//! starved by refusals, and small leaks (fork sources, token file mode, `crit` JWTs). The stored
//! script attack is tested in a real browser (`console.rs`) and by the matrix (`auth.rs`).

mod common;
#[path = "auth/fixture.rs"]
mod fixture;

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{tempdir, token_cli, wait_until, Server};
use fixture::{client, content, export_of, fixture, id_of, issue, seed};

fn import(f: &fixture::Fixture, who: &str, query: &str, body: String) -> (u16, String) {
    let r = client()
        .post(f.server.url(&format!("/v1/stream/__ds/import{query}")))
        .bearer_auth(who)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn listing(f: &fixture::Fixture) -> String {
    client()
        .get(f.server.url("/v1/stream/__ds/streams?limit=1000"))
        .bearer_auth(&f.admin)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn import_refuses_every_name_a_route_would_and_internal_state() {
    let f = fixture();
    let chat = issue(&f.tokens, &["chat/:all"], None);
    seed(&f, "chat/ok");
    let before = listing(&f);
    let jwks = || {
        client()
            .get(f.server.url("/v1/stream/__ds/jwks.json"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let keys_before = jwks();
    let long = format!("chat/{}", "a".repeat(20_000));
    let deep = format!("chat/{}", vec!["d"; 100].join("/"));
    let bad = [
        "chat/../secret/q",
        "chat//q",
        "chat/a\0b",
        "chat/a\nb",
        "chat/\u{1b}[31mred",
        long.as_str(),
        deep.as_str(),
        "chat/",
    ];
    for name in bad {
        // Alone, and beside a good name: refused whole either way, nothing written.
        for names in [vec![name], vec!["chat/fine", name]] {
            let (status, text) = import(&f, &chat, "", export_of(&names));
            assert_eq!(status, 400, "{:.60?}: {text}", name);
            assert!(text.contains("stream"), "{text}");
        }
    }
    // Internal names, even for `*:all` and with replace.
    for name in ["__ds/evil", "__ds/state/keys", "__ds"] {
        for query in ["", "?on_conflict=replace"] {
            let (status, text) = import(&f, &f.admin, query, export_of(&[name]));
            assert_eq!(status, 400, "{name}{query}: {text}");
        }
    }
    assert_eq!(listing(&f), before, "an import that was refused changed the listing");
    assert_eq!(content(&f, "chat/fine"), None);
    assert_eq!(jwks(), keys_before, "the webhook signing keys changed");
    // A subscription with a bad id or stream name: refused the same way.
    let sub = |id: &str, stream: &str| {
        let head = r#"{"format":"durable-streams-export","version":2}"#;
        let s = serde_json::json!({"type": "subscription", "sub": {
            "id": id, "config": {"kind": "pull-wake", "pattern": null, "streams": [stream], "webhook_url": null,
            "wake_stream": "chat/wakes", "lease_ttl_ms": 30000, "description": null},
            "links": {}, "generation": 0, "wake": null, "retry": null, "created_at_ms": 0}});
        format!("{head}\n{s}\n{}\n", r#"{"type":"summary","streams":0,"bytes":0,"subscriptions":1}"#)
    };
    assert_eq!(
        import(&f, &f.admin, "", sub("ok-id", "chat/x")).0,
        200,
        "the well-formed one imports"
    );
    assert_eq!(import(&f, &f.admin, "", sub("bad id", "chat/x")).0, 400);
    assert_eq!(import(&f, &f.admin, "", sub("ok-2", "chat/../x")).0, 400);
    assert_eq!(import(&f, &f.admin, "", sub("ok-3", "__ds/state/keys")).0, 400);
    // The offline import (the CLI, against a stopped server's data) refuses the same names.
    let dir = tempdir::Dir::new();
    let file = dir.path.join("bad.jsonl");
    std::fs::write(&file, export_of(&["chat/ok2", "__ds/state/keys"])).unwrap();
    let data = dir.path.join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args([
            "--config-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config"),
            "import",
            "--input",
        ])
        .arg(&file)
        .env("DS_STORAGE__MODE", "file-durable")
        .env("DS_STORAGE__DATA_DIR", &data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the offline import took an internal name: {err}");
    assert!(err.contains("reserved"), "{err}");
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(["--config-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/../config"), "list"])
        .env("DS_STORAGE__MODE", "file-durable")
        .env("DS_STORAGE__DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("chat/ok2"), "refused whole");
}

#[test]
fn token_routes_keep_to_the_callers_admin_scope() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let admin = issue(&tokens, &["*:all"], None);
    let x_admin = issue(&tokens, &["x/:admin", "secret/:read"], None);
    let victim = issue(&tokens, &["secret/:read"], None);
    let x_reader = issue(&tokens, &["x/:admin"], None);
    let s = Server::start(&[
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
        ("DS_AUTH__MAX_TOKENS_PER_ISSUER", "2"),
    ]);
    let c = client();
    assert_eq!(
        c.put(s.url("/v1/stream/secret/s")).bearer_auth(&admin).send().unwrap().status(),
        201
    );
    let url = s.url("/v1/stream/__ds/tokens");
    let read = |t: &str| {
        c.get(s.url("/v1/stream/secret/s?offset=-1"))
            .bearer_auth(t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let post = |t: &str, scopes: &str| {
        c.post(&url)
            .bearer_auth(t)
            .body(format!(r#"{{"scopes": [{scopes}]}}"#))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Listing: only tokens wholly inside `x/`.
    let listed = c.get(&url).bearer_auth(&x_admin).send().unwrap().text().unwrap();
    assert!(listed.contains(id_of(&x_reader)), "{listed}");
    assert!(!listed.contains(id_of(&victim)), "another prefix's token was listed: {listed}");
    assert!(!listed.contains(id_of(&admin)), "{listed}");
    // Revoking the victim: answered as a missing token, and the victim still reads.
    let del = |t: &str, id: &str| c.delete(format!("{url}/{id}")).bearer_auth(t).send().unwrap().status().as_u16();
    assert_eq!(del(&x_admin, id_of(&victim)), 404);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(read(&victim), 200, "the victim was revoked");
    // Minting for `secret/`: read there is not admin there.
    assert_eq!(post(&x_admin, r#""secret/:read""#), 403);
    // Inside its admin scope: yes, up to auth.max_tokens_per_issuer live children (its own
    // children's children included), then 409 until one is revoked.
    assert_eq!(post(&x_admin, r#""x/:admin""#), 201);
    let r = c
        .post(&url)
        .bearer_auth(&x_admin)
        .body(r#"{"scopes": ["x/a/:admin"]}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let child: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    let child_token = child["token"].as_str().unwrap().to_string();
    assert_eq!(post(&x_admin, r#""x/:admin""#), 409, "a third child");
    assert_eq!(
        post(&child_token, r#""x/a/:admin""#),
        409,
        "a grandchild counts under the same root"
    );
    assert_eq!(post(&x_reader, r#""x/:admin""#), 201, "another root has its own bound");
    assert_eq!(del(&x_admin, child["id"].as_str().unwrap()), 204);
    assert_eq!(post(&x_admin, r#""x/:admin""#), 201, "room again after a revocation");
}

/// An SSE stream read on its own thread: each chunk as it comes, then `None` at its end.
fn sse(url: String, token: &str) -> mpsc::Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    let token = token.to_string();
    std::thread::spawn(move || {
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut r = c.get(url).bearer_auth(token).send().unwrap();
        assert_eq!(r.status(), 200);
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = tx.send(Some(String::from_utf8_lossy(&buf[..n]).into_owned()));
                }
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// Waits for the SSE stream to end; returns what it carried meanwhile.
fn until_end(rx: &mpsc::Receiver<Option<String>>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(chunk)) => seen += &chunk,
            Ok(None) => return seen,
            Err(_) => panic!("the live read did not end within {within:?}; it carried {seen:?}"),
        }
    }
}

fn until_seen(rx: &mpsc::Receiver<Option<String>>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    while !seen.contains(what) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some(chunk)) => seen += &chunk,
            other => panic!("{what:?} not seen ({other:?}): {seen:?}"),
        }
    }
}

#[test]
fn live_reads_end_soon_after_their_credential_does() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let admin = issue(&tokens, &["*:all"], None);
    let keys_file = dir.path.join("jwks.json");
    let keys = common::jwt::Keys::new();
    keys.write(&keys_file, "ed1");
    let s = Server::start(&[
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
        ("DS_AUTH__JWT_KEYS_FILE", keys_file.to_str().unwrap()),
        ("DS_SERVER__LONG_POLL_TIMEOUT_MS", "30000"),
    ]);
    let c = client();
    let append = |body: &str| {
        let r = c
            .post(s.url("/v1/stream/chat/s"))
            .bearer_auth(&admin)
            .header("Content-Type", "text/plain")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    };
    assert_eq!(
        c.put(s.url("/v1/stream/chat/s"))
            .bearer_auth(&admin)
            .header("Content-Type", "text/plain")
            .send()
            .unwrap()
            .status(),
        201
    );
    let live = s.url("/v1/stream/chat/s?offset=now&live=sse");
    // 1. SSE, revoked: ends within two seconds, and carries nothing appended after.
    let reader = issue(&tokens, &["chat/:read"], None);
    let rx = sse(live.clone(), &reader);
    until_seen(&rx, "streamNextOffset");
    append("before-revoke");
    until_seen(&rx, "before-revoke");
    token_cli(&tokens, &["revoke", id_of(&reader)]);
    let revoked_at = Instant::now();
    until_end(&rx, Duration::from_secs(3));
    println!("SSE ended {:?} after its token was revoked", revoked_at.elapsed());
    // 2. SSE, expiring access token: ends at its expiry, not before.
    let short = issue(&tokens, &["chat/:read"], Some("3s"));
    let issued = Instant::now();
    let rx = sse(live.clone(), &short);
    until_seen(&rx, "streamNextOffset");
    let carried = until_end(&rx, Duration::from_secs(6));
    let lasted = issued.elapsed();
    assert!(
        lasted >= Duration::from_millis(2500),
        "ended before its expiry: {lasted:?} {carried:?}"
    );
    println!("SSE with a 3 s token ended after {lasted:?}");
    // 3. SSE, expiring JWT.
    let jwt = keys.ed("ed1", &["chat/:read"], 3);
    let rx = sse(live.clone(), &jwt);
    until_seen(&rx, "streamNextOffset");
    until_end(&rx, Duration::from_secs(6));
    // 4. Long-poll (the server waits 30 s for data): answered 401 at expiry.
    let short = issue(&tokens, &["chat/:read"], Some("2s"));
    let started = Instant::now();
    let r = c
        .get(s.url("/v1/stream/chat/s?offset=now&live=long-poll"))
        .bearer_auth(&short)
        .timeout(Duration::from_secs(20))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "a long-poll outlived its token");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // 5. Long-poll, revoked while waiting.
    let reader = issue(&tokens, &["chat/:read"], None);
    let reader_id = id_of(&reader).to_string();
    let url = s.url("/v1/stream/chat/s?offset=now&live=long-poll");
    let waiting = std::thread::spawn(move || {
        let r = client()
            .get(url)
            .bearer_auth(reader)
            .timeout(Duration::from_secs(20))
            .send()
            .unwrap();
        r.status().as_u16()
    });
    std::thread::sleep(Duration::from_millis(300));
    token_cli(&tokens, &["revoke", &reader_id]);
    let revoked_at = Instant::now();
    let status = waiting.join().unwrap();
    assert_eq!(status, 401);
    assert!(revoked_at.elapsed() < Duration::from_secs(3), "{:?}", revoked_at.elapsed());
}

#[test]
fn tokens_issued_by_a_jwt_name_it_and_die_with_its_key() {
    let f = fixture();
    let c = client();
    seed(&f, "chat/s");
    let jwt = f.jwt.ed("ed1", &["chat/:read,admin"], 600);
    let mint = |who: &str, scope: &str| -> serde_json::Value {
        let r = c
            .post(f.server.url("/v1/stream/__ds/tokens"))
            .bearer_auth(who)
            .body(format!(r#"{{"scopes": ["{scope}"]}}"#))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        serde_json::from_str(&r.text().unwrap()).unwrap()
    };
    let child = mint(&jwt, "chat/:read,admin");
    let child_token = child["token"].as_str().unwrap().to_string();
    let grandchild = mint(&child_token, "chat/:read");
    let grandchild_token = grandchild["token"].as_str().unwrap().to_string();
    assert_eq!(child["issued_by"], "jwt app-user (key ed1)");
    assert_eq!(grandchild["issued_by"], format!("token {}", child["id"].as_str().unwrap()));
    let listed = token_cli(&f.tokens, &["list"]);
    assert!(listed.contains("jwt app-user (key ed1)"), "{listed}");
    let read = |t: &str| {
        c.get(f.server.url("/v1/stream/chat/s?offset=-1"))
            .bearer_auth(t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read(&child_token), 200);
    assert_eq!(read(&grandchild_token), 200);
    // An SSE read of the grandchild's ends with the key too.
    let rx = sse(f.server.url("/v1/stream/chat/s?offset=now&live=sse"), &grandchild_token);
    until_seen(&rx, "streamNextOffset");
    // The key is replaced (a new key under the same kid): the JWT and all it issued are refused.
    common::jwt::Keys::new().write(&f.jwt_keys, "ed1");
    wait_until(Duration::from_secs(5), "the JWT's children to be refused", || {
        read(&child_token) == 401 && read(&grandchild_token) == 401 && read(&jwt) == 401
    });
    until_end(&rx, Duration::from_secs(3));
}

#[test]
fn children_share_their_roots_quota_and_refusals_do_not_starve_wakes() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let admin = issue(&tokens, &["*:all"], None);
    let root = issue(&tokens, &["chat/:all"], None);
    let s = Server::start(&[
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
        ("DS_QUOTAS__REQUESTS_PER_SECOND", "1"),
        ("DS_QUOTAS__REQUEST_BURST", "6"),
    ]);
    let c = client();
    assert_eq!(c.put(s.url("/v1/stream/chat/s")).bearer_auth(&admin).send().unwrap().status(), 201);
    let r = c
        .post(s.url("/v1/stream/__ds/tokens"))
        .bearer_auth(&root)
        .body(r#"{"scopes": ["chat/:read"]}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let child = serde_json::from_str::<serde_json::Value>(&r.text().unwrap()).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Root and child alternate: one budget of 6 (one spent issuing), not two.
    let mut ok = 0;
    for i in 0..12 {
        let who = if i % 2 == 0 { &root } else { &child };
        if c.head(s.url("/v1/stream/chat/s")).bearer_auth(who).send().unwrap().status() == 200 {
            ok += 1;
        }
    }
    assert!(ok <= 7, "the child multiplied its root's quota: {ok} of 12 served");
    // A flood of bad tokens from this address is limited...
    let refused: Vec<u16> = (0..12)
        .map(|_| {
            c.get(s.url("/v1/stream/chat/s"))
                .bearer_auth("dst_bad")
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(refused.contains(&429), "{refused:?}");
    // ...apart from the routes that need no token: a wake's callback still gets its own answer.
    let r = c
        .post(s.url("/v1/stream/__ds/subscriptions/nosuch/callback"))
        .body("{}")
        .send()
        .unwrap();
    assert_ne!(r.status(), 429, "refused credentials starved the wake routes");
}

#[test]
fn small_leaks_are_closed() {
    let f = fixture();
    let c = client();
    seed(&f, "secret/x");
    let r = c
        .put(f.server.url("/v1/stream/chat/f"))
        .bearer_auth(&f.admin)
        .header("Stream-Forked-From", "/v1/stream/secret/x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // A fork's source is named only to who may read it.
    let chat = issue(&f.tokens, &["chat/:read,admin"], None);
    let meta = |who: &str, path: &str| -> serde_json::Value {
        c.get(f.server.url(&format!("/v1/stream/__ds/{path}")))
            .bearer_auth(who)
            .send()
            .unwrap()
            .text()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap()
    };
    let one = meta(&chat, "streams/chat/f");
    assert_eq!(one["fork_source"], serde_json::Value::Null, "{one}");
    assert!(one["fork_offset"].is_string(), "still shown as a fork: {one}");
    let page = meta(&chat, "streams?prefix=chat/");
    assert_eq!(page["streams"][0]["fork_source"], serde_json::Value::Null, "{page}");
    assert_eq!(meta(&f.admin, "streams/chat/f")["fork_source"], "secret/x");
    // The token file is the server user's alone; a looser one is warned about at start.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&f.tokens).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "tokens.json is {mode:o}");
    std::fs::set_permissions(&f.tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", f.tokens.to_str().unwrap())]);
    assert!(loose.log_text().contains("chmod 600"), "no warning: {}", loose.log_text());
    // A JWT with a critical header extension is refused.
    let crit = f.jwt.ed_crit("ed1", &["chat/:read"]);
    let r = c
        .get(f.server.url("/v1/stream/chat/f?offset=-1"))
        .bearer_auth(&crit)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("crit"));
}
