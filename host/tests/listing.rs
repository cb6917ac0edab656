//! The listing API end to end: `__ds/streams` pages over many streams (no duplicates, no gaps,
//! `limit` bounds), prefix filtering, internal streams hidden, bad parameters 400, one stream's
//! metadata as JSON, the subscription list; in token mode, only what the token may read.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;
use serde_json::Value;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn put(c: &Client, s: &Server, name: &str, headers: &[(&str, &str)]) {
    let mut req = c.put(s.url(&format!("/v1/stream/{name}"))).header("Content-Type", "text/plain");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.body("hello").send().unwrap();
    assert_eq!(r.status(), 201, "{name}");
}

fn get(c: &Client, s: &Server, path: &str) -> (u16, Value) {
    let r = c.get(s.url(&format!("/v1/stream/__ds/{path}"))).send().unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().unwrap();
    if status >= 400 {
        assert_eq!(ct, "application/problem+json", "{path}: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn pages_prefixes_bounds_and_metadata() {
    let s = Server::start(&[]);
    let c = client();
    for i in 0..250 {
        put(&c, &s, &format!("many/{i:03}"), &[]);
    }
    put(&c, &s, "other/closed", &[("Stream-Closed", "true")]);
    put(&c, &s, "other/ttl", &[("Stream-TTL", "3600")]);
    let r = c
        .put(s.url("/v1/stream/other/fork"))
        .header("Stream-Forked-From", "/v1/stream/many/000")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // A subscription keeps its state in internal `__ds/` streams.
    let r = c
        .put(s.url("/v1/stream/__ds/subscriptions/s1"))
        .header("Content-Type", "application/json")
        .body(r#"{"type": "pull-wake", "pattern": "many/*", "wake_stream": "other/wakes"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Every page of many/: 100, 100, 50; in order, no duplicates, no gaps.
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let (status, v) = get(&c, &s, &format!("streams?prefix=many/&limit=100&start_after={after}"));
        assert_eq!(status, 200);
        let names: Vec<String> = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        assert!(names.len() <= 100);
        seen.extend(names);
        pages += 1;
        match v["next_start_after"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
        assert!(pages < 10);
    }
    let expected: Vec<String> = (0..250).map(|i| format!("many/{i:03}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // Everything, in pages of 7: internal streams never appear.
    let mut all = BTreeSet::new();
    let mut after = String::new();
    loop {
        let (_, v) = get(&c, &s, &format!("streams?limit=7&start_after={after}"));
        for m in v["streams"].as_array().unwrap() {
            let n = m["name"].as_str().unwrap().to_string();
            assert!(!n.starts_with("__ds"), "internal stream listed: {n}");
            assert!(all.insert(n), "listed twice");
        }
        match v["next_start_after"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(
        all.len(),
        250 + 3,
        "{:?}",
        all.iter().filter(|n| !n.starts_with("many/")).collect::<Vec<_>>()
    );
    // Metadata fields.
    let (_, v) = get(&c, &s, "streams?prefix=other/");
    let by: std::collections::HashMap<String, Value> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert_eq!(by["other/closed"]["closed"], true);
    assert_eq!(by["other/closed"]["content_type"], "text/plain");
    assert_eq!(by["other/closed"]["bytes"], 5);
    assert_eq!(by["other/closed"]["tail_offset"], "0000000000000000_0000000000000005");
    assert_eq!(by["other/ttl"]["ttl_secs"], 3600);
    assert_eq!(by["other/fork"]["fork_source"], "many/000");
    // One stream, by path (slashes plain or encoded).
    let (status, one) = get(&c, &s, "streams/other/ttl");
    assert_eq!(status, 200);
    assert_eq!(one, by["other/ttl"]);
    assert_eq!(get(&c, &s, "streams/other%2Fttl").1, by["other/ttl"]);
    assert_eq!(get(&c, &s, "streams/other/none").0, 404);
    assert_eq!(get(&c, &s, "streams/__ds/subs").0, 400, "a reserved name");
    // Bad parameters.
    for q in ["limit=0", "limit=1001", "limit=ten", "limit=-1", "colour=blue", "prefix=%FF"] {
        assert_eq!(get(&c, &s, &format!("streams?{q}")).0, 400, "{q}");
    }
    assert_eq!(get(&c, &s, "streams?limit=1000").0, 200);
    // The subscription list.
    let (status, v) = get(&c, &s, "subscriptions");
    assert_eq!(status, 200);
    let subs = v["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"], "s1");
    assert!(subs[0].get("wake").is_some() && subs[0].get("retry").is_some());
}

#[test]
fn token_mode_lists_only_what_the_token_may_read() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let issue = |scope: &str| common::issue_token(&tokens, &[scope]);
    let admin = issue("*:all");
    let chat_admin = issue("chat/:read,admin");
    let chat_read = issue("chat/:read");
    let chat_exact = issue("chat:read,admin");
    let s = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap())]);
    let c = client();
    // Twenty unreadable names sort before the readable ones, so a cursor that stepped over
    // names it may not show would name one of them.
    let hidden: Vec<String> = (0..20).map(|i| format!("a/{i:02}")).collect();
    let all = ["chat", "chat/a", "chat/b", "chatroom/c", "zeta/d"];
    for n in hidden.iter().map(String::as_str).chain(all) {
        let r = c.put(s.url(&format!("/v1/stream/{n}"))).bearer_auth(&admin).send().unwrap();
        assert_eq!(r.status(), 201);
    }
    let names = |token: &str, query: &str| -> (u16, Vec<String>) {
        let r = c
            .get(s.url(&format!("/v1/stream/__ds/streams{query}")))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null);
        let names = v["streams"]
            .as_array()
            .map(|a| a.iter().map(|m| m["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        (status, names)
    };
    assert_eq!(names(&admin, "?prefix=c").1, ["chat", "chat/a", "chat/b", "chatroom/c"]);
    assert_eq!(names(&chat_admin, "").1, ["chat/a", "chat/b"]);
    assert_eq!(names(&chat_exact, "").1, ["chat", "chat/a", "chat/b"]);
    assert_eq!(names(&chat_exact, "?prefix=chat/").1, ["chat/a", "chat/b"]);
    // Pages of one reach every readable name, and no cursor names another stream.
    let follow = |token: &str, first: &str| -> (Vec<String>, Vec<String>) {
        let (mut seen, mut cursors) = (Vec::new(), Vec::new());
        let mut query = format!("?limit=1{first}");
        for _ in 0..50 {
            let r = c
                .get(s.url(&format!("/v1/stream/__ds/streams{query}")))
                .bearer_auth(token)
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
            for m in v["streams"].as_array().unwrap() {
                seen.push(m["name"].as_str().unwrap().to_string());
            }
            let Some(next) = v["next_start_after"].as_str() else {
                return (seen, cursors);
            };
            cursors.push(next.to_string());
            query = format!("?limit=1&start_after={next}");
        }
        panic!("no last page: {seen:?}");
    };
    for (token, first, want) in [
        (&chat_admin, "", &["chat/a", "chat/b"][..]),
        (&chat_admin, "&start_after=a/00", &["chat/a", "chat/b"]),
        (&chat_admin, "&start_after=chat/a", &["chat/b"]),
        (&chat_exact, "", &["chat", "chat/a", "chat/b"]),
        (&chat_exact, "&start_after=b", &["chat", "chat/a", "chat/b"]),
    ] {
        let (seen, cursors) = follow(token, first);
        assert_eq!(seen, want, "from {first:?}");
        assert!(
            cursors.iter().all(|c| want.contains(&c.as_str())),
            "a cursor names another stream: {cursors:?}"
        );
    }
    let (seen, _) = follow(&admin, "");
    assert_eq!(seen.len(), 25, "{seen:?}");
    // Folders come only from names the token may read.
    let grouped = |token: &str| -> (Vec<String>, Vec<String>) {
        let r = c
            .get(s.url("/v1/stream/__ds/streams?delimiter=/"))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        let of = |k: &str, f: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|m| m[f].as_str().unwrap().to_string())
                .collect()
        };
        (of("streams", "name"), of("common_prefixes", "prefix"))
    };
    assert_eq!(
        grouped(&admin),
        (
            vec!["chat".to_string()],
            ["a/", "chat/", "chatroom/", "zeta/"].map(String::from).to_vec()
        )
    );
    assert_eq!(grouped(&chat_admin), (vec![], vec!["chat/".to_string()]));
    assert_eq!(grouped(&chat_exact), (vec!["chat".to_string()], vec!["chat/".to_string()]));
    // Listing needs admin; one stream's metadata needs only read on it.
    assert_eq!(names(&chat_read, "").0, 403);
    let one = |token: &str, name: &str| {
        c.get(s.url(&format!("/v1/stream/__ds/streams/{name}")))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(one(&chat_read, "chat/a"), 200);
    assert_eq!(one(&chat_read, "chatroom/c"), 403);
    assert_eq!(one(&chat_read, "chat/missing"), 404);
    let r = c.get(s.url("/v1/stream/__ds/streams")).send().unwrap();
    assert_eq!(r.status(), 401);
}

/// `delimiter=/` (as S3's `ListObjectsV2`) in every bundled local mode: the pages together hold
/// the streams directly under a prefix and the folders below it, each once and in order, at any
/// page size; a cursor on a folder resumes after every name in it; internal streams are never
/// folders; a bad delimiter is a 400.
#[test]
fn delimiter_lists_folders_in_every_local_mode() {
    let names = common::grouped::names();
    for mode in ["memory", "file-fast", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = Server::start(&[("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap())]);
        let c = client();
        for n in &names {
            put(&c, &s, n, &[]);
        }
        let r = c
            .put(s.url("/v1/stream/__ds/subscriptions/s1"))
            .header("Content-Type", "application/json")
            .body(r#"{"type": "pull-wake", "pattern": "big/*", "wake_stream": "d00"}"#)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{mode}");
        let base = s.url("/v1/stream");
        for (prefix, limit) in [
            ("", 1),
            ("", 4),
            ("", 1000),
            ("big/", 7),
            ("big/", 100),
            ("n/", 1),
            ("n/a/", 2),
            ("f0", 3),
            ("none/", 10),
        ] {
            common::grouped::check(&c, &base, &names, prefix, limit);
        }
        let (status, v) = get(&c, &s, "streams?delimiter=/&limit=2&start_after=big/");
        assert_eq!(status, 200);
        assert_eq!(v["streams"][0]["name"], "big0", "{mode}: after the folder big/ comes big0: {v}");
        assert_eq!(v["streams"][1]["name"], "d00", "{mode}: {v}");
        assert_eq!(v["next_start_after"], "d00", "{mode}: {v}");
        let (_, v) = get(&c, &s, "streams?delimiter=/&limit=2&start_after=d11");
        assert_eq!(v["common_prefixes"][0]["prefix"], "f00/", "{mode}: folders follow d11: {v}");
        assert_eq!(v["next_start_after"], "f01/", "{mode}: a page ending on a folder names it: {v}");
        let (status, _) = get(&c, &s, &format!("streams?delimiter={}", "%2F".repeat(17)));
        assert_eq!(status, 400, "{mode}");

        // Where each append began (`__ds/records/{name}`), for rows per append.
        for body in ["bc", "def"] {
            let r = c
                .post(s.url("/v1/stream/d01"))
                .header("Content-Type", "text/plain")
                .body(body)
                .send()
                .unwrap();
            assert_eq!(r.status(), 204, "{mode}");
        }
        let off = |p: u64| format!("0000000000000000_{p:016}");
        let (status, v) = get(&c, &s, "records/d01");
        assert_eq!(status, 200, "{mode}: {v}");
        assert_eq!(v["starts"], serde_json::json!([off(0), off(5), off(7)]), "{mode}: hello, bc, def");
        let (_, v) = get(&c, &s, &format!("records/d01?offset={}&limit=1", off(5)));
        assert_eq!(v["starts"], serde_json::json!([off(5)]), "{mode}");
        let (_, v) = get(&c, &s, "records/d01?offset=now");
        assert_eq!(v["starts"], serde_json::json!([]), "{mode}");
        assert_eq!(get(&c, &s, "records/nothing").0, 404, "{mode}");
        assert_eq!(get(&c, &s, "records/d01?limit=0").0, 400, "{mode}");
    }
}

/// `__ds/whoami`: the caller's own id, label, scopes and expiry (any caller, no `admin`), what it
/// may do on a named stream, and whether it may list; 401 without a token; anyone in mode none.
#[test]
fn whoami_tells_the_caller_about_itself_only() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let reader = common::token_cli(
        &tokens,
        &["issue", "--scope", "chat/:read,create", "--label", "chat reader", "--ttl", "1h"],
    );
    let admin = common::issue_token(&tokens, &["*:all"]);
    let s = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap())]);
    let c = client();
    let who = |token: Option<&str>, query: &str| -> (u16, Value) {
        let mut req = c.get(s.url(&format!("/v1/stream/__ds/whoami{query}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
    };
    let (status, v) = who(Some(&reader), "?name=chat/room");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["kind"], "token");
    assert_eq!(v["label"], "chat reader");
    assert_eq!(v["scopes"], serde_json::json!(["chat/:read,create"]));
    assert!(v["expires_at"].as_str().is_some(), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.len() == 12 && reader.contains(&format!("{id}_")), "the token's own id: {v}");
    assert_eq!(
        v["may"],
        serde_json::json!({"read": true, "append": false, "create": true, "delete": false, "admin": false})
    );
    assert_eq!(v["may_list"], false);
    let (_, v) = who(Some(&reader), "?name=other");
    assert_eq!(v["may"]["read"], false, "{v}");
    let (_, v) = who(Some(&admin), "");
    assert_eq!(v["may_list"], true);
    assert_eq!(v["label"], Value::Null, "no label given: {v}");
    assert!(v.get("may").is_none(), "{v}");
    assert_eq!(who(None, "").0, 401);
    assert_eq!(who(Some(&reader), "?name=__ds/x").0, 400);
    assert_eq!(who(Some(&reader), "?bogus=1").0, 400);

    let open = Server::start(&[]);
    let r = c.get(open.url("/v1/stream/__ds/whoami?name=a")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["kind"], "anyone");
    assert_eq!(v["may"]["delete"], true);
}
