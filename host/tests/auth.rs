//! Access control end to end: tokens issued with the real CLI, a real server in `token` mode,
//! every route and method against every kind of credential (a table), refused requests leaving
//! nothing behind, path spellings that must not escape a scope, forks, the query-parameter form
//! for reads, revocation without restart, CORS, and the open health endpoints.

mod common;
#[path = "auth/fixture.rs"]
mod fixture;

use std::time::Duration;

use common::{jwt, tempdir, token_cli, wait_until, Server};
use fixture::{bearer, client, content, fixture, id_of, issue, seed, with, Auth};
use reqwest::Method;

/// What a credential may do in the matrix: a column of expected statuses.
#[derive(Clone, Copy)]
enum Class {
    /// Refused before anything: 401.
    Unauthenticated,
    /// Valid, scope `chatroom/` only.
    Sibling,
    /// Valid, `chat/:read`.
    ChatRead,
    /// Valid, `chat/:read,append,create,delete`.
    ChatAll,
    /// Valid, `*:all`.
    Admin,
    /// Valid, `x/:admin` and `chat/:read`: admin on another prefix only.
    PrefixAdmin,
}

#[test]
fn every_route_against_every_credential() {
    let f = fixture();
    let t = &f.tokens;
    let chat_all = issue(t, &["chat/:read,append,create,delete"], None);
    let chat_read = issue(t, &["chat/:read"], None);
    let sibling = issue(t, &["chatroom/:all"], None);
    let prefix_admin = issue(t, &["x/:admin", "chat/:read"], None);
    let expired = issue(t, &["*:all"], Some("1s"));
    let revoked = issue(t, &["*:all"], None);
    token_cli(t, &["revoke", id_of(&revoked)]);
    let mut tampered = chat_all.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    // Application-minted JWTs against the keys file (an Ed25519 key and an HS256 secret).
    let keys = &f.jwt;
    let jwt_all = keys.ed("ed1", &["chat/:read,append,create,delete"], 300);
    let jwt_read = keys.hs("hs1", &["chat/:read"], 300);
    let jwt_admin = keys.ed("ed1", &["*:all"], 300);
    let jwt_prefix_admin = keys.hs("hs1", &["x/:admin", "chat/:read"], 300);
    let jwt_sibling = keys.hs("hs1", &["chatroom/:all"], 300);
    let jwt_expired = keys.ed("ed1", &["*:all"], -3600);
    let jwt_other_key = jwt::Keys::new().ed("ed1", &["*:all"], 300);
    let jwt_none = jwt::unsigned(&["*:all"]);
    let jwt_tampered = jwt::with_payload_of(&jwt_read, &jwt::unsigned(&["*:all"]));
    let jwt_confused = keys.confused(&["*:all"]);
    std::thread::sleep(Duration::from_millis(1200)); // `expired` is now past, the server reloaded
    use Class::*;
    let creds: Vec<(&str, Auth, Class)> = vec![
        ("none", Auth::None, Unauthenticated),
        ("malformed", Auth::Header("Bearer not-a-token".into()), Unauthenticated),
        ("basic", Auth::Header("Basic dXNlcjpwYXNz".into()), Unauthenticated),
        ("expired", bearer(&expired), Unauthenticated),
        ("revoked", bearer(&revoked), Unauthenticated),
        ("tampered", bearer(&tampered), Unauthenticated),
        ("jwt-expired", bearer(&jwt_expired), Unauthenticated),
        ("jwt-other-key", bearer(&jwt_other_key), Unauthenticated),
        ("jwt-alg-none", bearer(&jwt_none), Unauthenticated),
        ("jwt-tampered-payload", bearer(&jwt_tampered), Unauthenticated),
        ("jwt-hs256-with-ed-public-key", bearer(&jwt_confused), Unauthenticated),
        ("sibling", bearer(&sibling), Sibling),
        ("jwt-sibling", bearer(&jwt_sibling), Sibling),
        ("chat-read", bearer(&chat_read), ChatRead),
        ("jwt-chat-read", bearer(&jwt_read), ChatRead),
        ("chat-all", bearer(&chat_all), ChatAll),
        ("jwt-chat-all", bearer(&jwt_all), ChatAll),
        ("admin", bearer(&f.admin), Admin),
        ("jwt-admin", bearer(&jwt_admin), Admin),
        ("prefix-admin", bearer(&prefix_admin), PrefixAdmin),
        ("jwt-prefix-admin", bearer(&jwt_prefix_admin), PrefixAdmin),
    ];
    // (route label, method, path, body, expected status for: a refused credential, a sibling
    // prefix, chat read-only, chat read/write, admin, admin on another prefix + chat read)
    type Row = (&'static str, Method, &'static str, Option<&'static str>, [u16; 6]);
    // Imports that name what no route could (refused whole, before any scope is looked at).
    let traversal: &'static str = Box::leak(fixture::export_of(&["chat/../secret/q"]).into_boxed_str());
    let internal: &'static str = Box::leak(fixture::export_of(&["__ds/state/keys"]).into_boxed_str());
    const U: u16 = 401;
    const F: u16 = 403;
    let rows: Vec<Row> = vec![
        ("read", Method::GET, "/v1/stream/chat/s?offset=-1", None, [U, F, 200, 200, 200, 200]),
        ("head", Method::HEAD, "/v1/stream/chat/s", None, [U, F, 200, 200, 200, 200]),
        ("append", Method::POST, "/v1/stream/chat/s", Some("x"), [U, F, F, 204, 204, F]),
        ("create", Method::PUT, "/v1/stream/chat/new-{i}", None, [U, F, F, 201, 201, F]),
        ("delete", Method::DELETE, "/v1/stream/chat/del-{i}", None, [U, F, F, 204, 204, F]),
        (
            "subscription",
            Method::GET,
            "/v1/stream/__ds/subscriptions/nope",
            None,
            // The sibling has admin over its own prefix: the route answers (no such subscription).
            [U, 404, F, F, 404, 404],
        ),
        // The sibling's export holds only its own prefix (tests/auth_scoped.rs checks what is in it).
        ("export", Method::GET, "/v1/stream/__ds/export", None, [U, 200, F, F, 200, 200]),
        (
            "long-poll",
            Method::GET,
            "/v1/stream/chat/s?offset=now&live=long-poll",
            None,
            [U, F, 204, 204, 204, 204],
        ),
        (
            "sse",
            Method::GET,
            "/v1/stream/chat/s?offset=now&live=sse",
            None,
            [U, F, 200, 200, 200, 200],
        ),
        ("close", Method::POST, "/v1/stream/chat/close-{i}", Some(""), [U, F, F, 204, 204, F]),
        ("fork", Method::PUT, "/v1/stream/chat/fork-{i}", None, [U, F, F, 201, 201, F]),
        (
            "metadata",
            Method::GET,
            "/v1/stream/__ds/streams/chat/s",
            None,
            [U, F, 200, 200, 200, 200],
        ),
        ("listing", Method::GET, "/v1/stream/__ds/streams", None, [U, 200, F, F, 200, 200]),
        ("tokens", Method::GET, "/v1/stream/__ds/tokens", None, [U, 200, F, F, 200, 200]),
        // Issuing a `chat/` token needs admin over `chat/`: read there plus admin elsewhere is not it.
        (
            "token-issue",
            Method::POST,
            "/v1/stream/__ds/tokens",
            Some(r#"{"scopes": ["chat/:read"], "ttl_secs": 60}"#),
            [U, F, F, F, 201, F],
        ),
        // Revoking a `chat/:read` token (a fresh one per credential): admin over `chat/` only;
        // outside the admin scope it answers as a missing token would.
        (
            "token-revoke",
            Method::DELETE,
            "/v1/stream/__ds/tokens/{victim}",
            None,
            [U, 404, F, F, 204, 404],
        ),
        (
            "import",
            Method::POST,
            "/v1/stream/__ds/import",
            Some("not an export"),
            [U, 400, F, F, 400, 400],
        ),
        (
            "import-traversal",
            Method::POST,
            "/v1/stream/__ds/import",
            Some(traversal),
            [U, 400, F, F, 400, 400],
        ),
        (
            "import-internal",
            Method::POST,
            "/v1/stream/__ds/import?on_conflict=replace",
            Some(internal),
            [U, 400, F, F, 400, 400],
        ),
        ("jwks", Method::GET, "/v1/stream/__ds/jwks.json", None, [200; 6]),
        ("metrics", Method::GET, "/metrics", None, [U, F, F, F, 200, F]),
        ("healthz", Method::GET, "/healthz", None, [200; 6]),
        ("readyz", Method::GET, "/readyz", None, [200; 6]),
    ];
    let secrets: Vec<String> = [
        &chat_all,
        &chat_read,
        &sibling,
        &expired,
        &revoked,
        &tampered,
        &f.admin,
        &prefix_admin,
    ]
    .iter()
    .map(|t| t[17..].to_string())
    .chain(
        [
            &jwt_all,
            &jwt_read,
            &jwt_admin,
            &jwt_sibling,
            &jwt_expired,
            &jwt_other_key,
            &jwt_tampered,
            &jwt_prefix_admin,
        ]
        .iter()
        .map(|t| t.rsplit('.').next().unwrap().to_string()),
    )
    .collect();
    seed(&f, "chat/s");
    let c = client();
    let mut checked = 0;
    for (label, method, path, body, want) in &rows {
        for (i, (cred, auth, class)) in creds.iter().enumerate() {
            let want = want[*class as usize];
            let mut path = path.replace("{i}", &i.to_string());
            let mut victim = String::new();
            match *label {
                "delete" => seed(&f, &format!("chat/del-{i}")),
                "close" => seed(&f, &format!("chat/close-{i}")),
                "token-revoke" => {
                    victim = issue(t, &["chat/:read"], None);
                    path = path.replace("{victim}", id_of(&victim));
                }
                _ => {}
            }
            let before = content(&f, "chat/s");
            let mut req = with(c.request(method.clone(), f.server.url(&path)), auth);
            if let Some(b) = body {
                req = req.header("Content-Type", "text/plain").body(*b);
            }
            match *label {
                "close" => req = req.header("Stream-Closed", "true"),
                "fork" => req = req.header("Stream-Forked-From", "/v1/stream/chat/s"),
                _ => {}
            }
            let r = req.send().unwrap();
            let status = r.status().as_u16();
            assert_eq!(status, want, "{label} {method} {path} with {cred}");
            checked += 1;
            // No answer of the server, whatever it is, may run as a page on its origin.
            let csp = r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
            assert!(
                csp.as_deref()
                    .is_some_and(|c| c.starts_with("sandbox") && c.contains("default-src 'none'")),
                "{label} with {cred}: no sandboxing CSP ({csp:?})"
            );
            if *label == "token-revoke" {
                let kept = client()
                    .get(f.server.url("/v1/stream/chat/s?offset=-1"))
                    .bearer_auth(&victim)
                    .send()
                    .unwrap()
                    .status();
                if status == 204 {
                    wait_until(Duration::from_secs(5), "the revoked victim to be refused", || {
                        client()
                            .get(f.server.url("/v1/stream/chat/s?offset=-1"))
                            .bearer_auth(&victim)
                            .send()
                            .unwrap()
                            .status()
                            == 401
                    });
                } else {
                    assert_eq!(kept, 200, "{cred} revoked a token outside its admin scope");
                }
            }
            if status == 401 {
                let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
                assert!(
                    challenge.is_some_and(|c| c.starts_with("Bearer")),
                    "{label} with {cred}: 401 without a Bearer challenge"
                );
            }
            if status == 401 || status == 403 {
                assert_eq!(r.headers()["content-type"], "application/problem+json", "{label} with {cred}");
                let text = r.text().unwrap();
                for secret in &secrets {
                    assert!(!text.contains(secret.as_str()), "{label} with {cred}: the answer echoes a token");
                }
                // Nothing was written by a refused request.
                assert_eq!(content(&f, "chat/s"), before, "{label} with {cred} changed chat/s");
                match *label {
                    "create" | "fork" => assert_eq!(content(&f, &path["/v1/stream/".len()..]), None, "{cred} created {path}"),
                    "close" => {
                        let r = c.head(f.server.url(&path)).bearer_auth(&f.admin).send().unwrap();
                        assert!(!r.headers().contains_key("stream-closed"), "{cred} closed {path}");
                    }
                    "delete" => assert!(content(&f, &format!("chat/del-{i}")).is_some(), "{cred} deleted {path}"),
                    _ => {}
                }
            }
            if label.starts_with("import-") {
                // Refused whole: nothing of it anywhere.
                assert_eq!(content(&f, "secret/q"), None, "{cred}: {label} wrote secret/q");
                let listed = client()
                    .get(f.server.url("/v1/stream/__ds/streams?prefix=chat/"))
                    .bearer_auth(&f.admin)
                    .send()
                    .unwrap()
                    .text()
                    .unwrap();
                assert!(!listed.contains(".."), "{cred}: {label} left {listed}");
            }
        }
    }
    assert_eq!(checked, rows.len() * creds.len());
    // No log line carries a token (the server logs every request at debug here).
    let log = f.server.log_text();
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log carries a token");
    }
    println!(
        "auth matrix: {} routes x {} credentials = {checked} requests",
        rows.len(),
        creds.len()
    );
}

#[test]
fn jwt_keys_rotate_without_restart() {
    let f = fixture();
    let old = f.jwt.ed("ed1", &["*:all"], 300);
    let url = f.server.url("/v1/stream/rot?offset=-1");
    let c = client();
    let status = |t: &str| c.get(&url).bearer_auth(t).send().unwrap().status().as_u16();
    seed(&f, "rot");
    assert_eq!(status(&old), 200);
    // The operator replaces the keys file: a new key in, the old one out.
    let next = jwt::Keys::new();
    next.write(&f.jwt_keys, "ed2");
    let new = next.ed("ed2", &["*:all"], 300);
    // A token naming a key the server has not seen makes it look at the file at once.
    assert_eq!(status(&new), 200);
    wait_until(Duration::from_secs(5), "the old key to be dropped", || status(&old) == 401);
    // A damaged keys file keeps the keys loaded before.
    std::fs::write(&f.jwt_keys, "{not json").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status(&new), 200);
    wait_until(Duration::from_secs(5), "the damage is logged", || {
        f.server.log_text().contains("JWT keys file unreadable")
    });
    // The keys file removed: no key, so no JWT is accepted (the remembered ones included).
    std::fs::remove_file(&f.jwt_keys).unwrap();
    wait_until(Duration::from_secs(5), "JWTs refused once the keys file is gone", || {
        status(&new) == 401
    });
}

#[test]
fn path_spellings_cannot_escape_a_scope() {
    let f = fixture();
    let chat = issue(&f.tokens, &["chat:read,append,create"], None);
    seed(&f, "chatroom/x");
    seed(&f, "secret");
    let c = client();
    let status = |m: Method, path: &str| {
        c.request(m, f.server.url(path))
            .bearer_auth(&chat)
            .header("Content-Type", "text/plain")
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // A string prefix is not a path prefix.
    assert_eq!(status(Method::GET, "/v1/stream/chatroom/x?offset=-1"), 403);
    assert_eq!(status(Method::PUT, "/v1/stream/chatroom/y"), 403);
    // Dot segments and empty segments, plain or percent-encoded, are refused as names (400),
    // before any stream is touched.
    for p in [
        "/v1/stream/chat/../secret?offset=-1",
        "/v1/stream/chat/%2E%2E/secret?offset=-1",
        "/v1/stream/chat%2F..%2Fsecret?offset=-1",
        "/v1/stream/chat//secret?offset=-1",
    ] {
        let s = status(Method::GET, p);
        assert!(s == 400 || s == 404 || s == 403, "{p}: {s}");
        assert_ne!(s, 200, "{p} escaped the scope");
    }
    // Percent-encoded letters decode to the same name the scope sees: allowed and consistent.
    assert_eq!(status(Method::PUT, "/v1/stream/%63hat/enc"), 201);
    assert_eq!(content(&f, "chat/enc").as_deref(), Some(""));
    // A Unicode look-alike (Cyrillic 'с') is another name.
    assert_eq!(status(Method::PUT, "/v1/stream/%D1%81hat/x"), 403);
    // The name itself and names under it.
    assert_eq!(status(Method::PUT, "/v1/stream/chat"), 201);
    assert_eq!(status(Method::PUT, "/v1/stream/chat/a/b"), 201);
    // A fork reads its source: create on the new name is not enough.
    let fork = |from: &str, to: &str| {
        c.put(f.server.url(&format!("/v1/stream/{to}")))
            .bearer_auth(&chat)
            .header("Content-Type", "text/plain")
            .header("Stream-Forked-From", format!("/v1/stream/{from}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(fork("secret", "chat/stolen"), 403);
    assert_eq!(content(&f, "chat/stolen"), None);
    assert_eq!(fork("chat", "chat/copy"), 201);
}

#[test]
fn query_token_for_reads_revocation_and_cors() {
    let f = fixture();
    let reader = issue(&f.tokens, &["feed/:read"], None);
    seed(&f, "feed/a");
    let c = client();
    // EventSource's form: the token in the query, for reads only.
    let r = c
        .get(f.server.url(&format!("/v1/stream/feed/a?offset=-1&access_token={reader}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // An answer given for a credential is for that client only: no shared cache may keep it.
    assert!(r.headers()["cache-control"].to_str().unwrap().starts_with("private,"));
    assert_eq!(r.text().unwrap(), "seed");
    let r = c
        .get(f.server.url("/v1/stream/feed/a?offset=-1"))
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"].to_str().unwrap().starts_with("private,"));
    let r = c
        .get(f.server.url(&format!("/v1/stream/feed/a?offset=-1&live=sse&access_token={reader}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    drop(r);
    let r = c
        .post(f.server.url(&format!("/v1/stream/feed/a?access_token={}", f.admin)))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "a write never takes its token from the query");
    assert!(!f.server.log_text().contains(&reader[17..]), "the query token is not logged");
    // Revoked while the server runs: refused within a couple of seconds, no restart.
    token_cli(&f.tokens, &["revoke", id_of(&reader)]);
    wait_until(Duration::from_secs(5), "the revocation is seen", || {
        c.get(f.server.url("/v1/stream/feed/a?offset=-1"))
            .bearer_auth(&reader)
            .send()
            .unwrap()
            .status()
            == 401
    });
    // A token issued now works at once (well, within the reload second).
    let fresh = issue(&f.tokens, &["feed/:read"], None);
    wait_until(Duration::from_secs(5), "the new token is seen", || {
        c.get(f.server.url("/v1/stream/feed/a?offset=-1"))
            .bearer_auth(&fresh)
            .send()
            .unwrap()
            .status()
            == 200
    });
    // CORS: a preflight asking for Authorization is answered without a token.
    let r = c
        .request(Method::OPTIONS, f.server.url("/v1/stream/feed/a"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "preflight: {}", r.status());
    let allowed = r.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    // A token file damaged while the server runs: the tokens loaded before keep working (and
    // the damage is logged); a fixed file is read again.
    let saved = std::fs::read(&f.tokens).unwrap();
    std::fs::write(&f.tokens, b"{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r = c
        .get(f.server.url("/v1/stream/feed/a?offset=-1"))
        .bearer_auth(&fresh)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "a damaged token file must not lock everyone out");
    wait_until(Duration::from_secs(5), "the damage is logged", || {
        f.server.log_text().contains("token file unreadable")
    });
    std::fs::write(&f.tokens, saved).unwrap();
    // The token list names ids, never tokens.
    let listed = token_cli(&f.tokens, &["list"]);
    assert!(listed.contains(id_of(&reader)) && !listed.contains(&reader[17..]));
}

#[test]
fn none_mode_is_open_and_a_bad_token_file_refuses_to_start() {
    let open = Server::start(&[]);
    let r = client().put(open.url("/v1/stream/anyone")).body("hello").send().unwrap();
    assert_eq!(r.status(), 201);
    // Open mode: anyone could ask the same, so shared caches (CDNs) may keep reads.
    let r = client().get(open.url("/v1/stream/anyone?offset=-1")).send().unwrap();
    assert!(r.headers()["cache-control"].to_str().unwrap().starts_with("public,"));
    let dir = tempdir::Dir::new();
    let bad = dir.path.join("tokens.json");
    std::fs::write(&bad, "not json").unwrap();
    let log = Server::try_start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", bad.to_str().unwrap())])
        .err()
        .expect("a malformed token file refuses to start");
    assert!(log.contains("tokens.json"), "{log}");
    let log = Server::try_start(&[("DS_AUTH__MODE", "tokens")])
        .err()
        .expect("a bad mode refuses to start");
    assert!(log.contains("auth.mode"), "{log}");
    // A JWT keys file that is missing, not a JWKS, or holds a key of another kind.
    let keys = dir.path.join("jwks.json");
    for (text, why) in [
        (None, "missing"),
        (Some("{}"), "not a JWKS"),
        (Some(r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#), "a short HS256 secret"),
        (
            Some(
                r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
            ),
            "a P-256 key",
        ),
    ] {
        if let Some(t) = text {
            std::fs::write(&keys, t).unwrap();
        }
        let log = Server::try_start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__JWT_KEYS_FILE", keys.to_str().unwrap())])
            .err()
            .unwrap_or_else(|| panic!("a JWT keys file with {why} refuses to start"));
        assert!(log.contains("JWT keys file"), "{why}: {log}");
    }
}

#[test]
fn export_and_import_over_http_carry_a_token() {
    let f = fixture();
    seed(&f, "kept/a");
    let reader = issue(&f.tokens, &["kept/:read"], None);
    let url = f.server.url("");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_durable-streams-server"));
        cmd.arg("--config-dir")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
            .args(args);
        cmd.env_remove("DS_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // Without a token, or with one lacking admin: refused, and the CLI says the server's answer.
    let out = run(&["export", "--url", &url], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["export", "--url", &url, "--token", &reader], &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the admin token, as an option or from DS_TOKEN.
    let out = run(&["export", "--url", &url, "--token", &f.admin], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let export = String::from_utf8(out.stdout).unwrap();
    assert!(export.contains("kept/a"), "{export}");
    let dir = tempdir::Dir::new();
    let file = dir.path.join("export.jsonl");
    std::fs::write(&file, export.replace("kept/a", "kept/b")).unwrap();
    let out = run(
        &["import", "--url", &url, "--input", file.to_str().unwrap()],
        &[("DS_TOKEN", &f.admin)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(content(&f, "kept/b").as_deref(), Some("seed"));
    let listed = String::from_utf8_lossy(&run(&["export", "--help"], &[]).stdout).to_string();
    assert!(!listed.contains(&f.admin[17..]), "the help never shows a token");
}
