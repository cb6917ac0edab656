//! Access control across streams: a subscription's glob, explicit streams and wake stream must
//! lie inside the caller's `admin` scope (refused whole otherwise, nothing created); a
//! subscription over other streams cannot be read, changed or deleted; an export holds only the
//! streams the token may read (and its subscriptions); an import reaching outside the scope is
//! refused before anything is written.

mod common;

use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn issue(tokens: &std::path::Path, scope: &str) -> String {
    common::issue_token(tokens, &[scope])
}

struct Env {
    _dir: tempdir::Dir,
    tokens: std::path::PathBuf,
    s: Server,
    c: Client,
    admin: String,
    chat_admin: String,
    chat_rw: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempdir::Dir::new();
        let tokens = dir.path.join("tokens.json");
        let admin = issue(&tokens, "*:all");
        let chat_admin = issue(&tokens, "chat/:all");
        let chat_rw = issue(&tokens, "chat/:read,append,create,delete");
        let s = Server::start(&[("DS_AUTH__MODE", "token"), ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap())]);
        let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Env {
            _dir: dir,
            tokens,
            s,
            c,
            admin,
            chat_admin,
            chat_rw,
        }
    }

    fn put_stream(&self, name: &str) {
        let r = self
            .c
            .put(self.s.url(&format!("/v1/stream/{name}")))
            .bearer_auth(&self.admin)
            .header("Content-Type", "text/plain")
            .body(format!("data of {name}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{name}");
    }

    fn sub(&self, token: &str, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> u16 {
        let mut req = self
            .c
            .request(method, self.s.url(&format!("/v1/stream/__ds/subscriptions/{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        req.send().unwrap().status().as_u16()
    }
}

fn pull(pattern: Option<&str>, streams: &[&str], wake: &str) -> serde_json::Value {
    let mut v = serde_json::json!({"type": "pull-wake", "wake_stream": wake});
    if let Some(p) = pattern {
        v["pattern"] = p.into();
    }
    if !streams.is_empty() {
        v["streams"] = streams.into();
    }
    v
}

#[test]
fn subscriptions_keep_to_the_callers_scope() {
    let e = Env::new();
    for n in ["chat/a", "chat/b", "other/x"] {
        e.put_stream(n);
    }
    use reqwest::Method as M;
    // Inside: created.
    assert_eq!(
        e.sub(&e.chat_admin, M::PUT, "mine", Some(pull(Some("chat/*"), &[], "chat/wakes"))),
        201
    );
    // Outside, one way or another: refused whole, nothing created.
    let outside = [
        ("every name", pull(Some("*"), &[], "chat/wakes")),
        ("a string prefix", pull(Some("chat*"), &[], "chat/wakes")),
        ("a deep glob", pull(Some("**"), &[], "chat/wakes")),
        ("a stream", pull(Some("chat/*"), &["other/x"], "chat/wakes")),
        ("the wake stream", pull(Some("chat/*"), &[], "other/wakes")),
    ];
    for (what, body) in outside {
        assert_eq!(e.sub(&e.chat_admin, M::PUT, "theirs", Some(body)), 403, "{what}");
        assert_eq!(e.sub(&e.admin, M::GET, "theirs", None), 404, "{what}: nothing created");
    }
    // Without admin at all: no subscription route.
    assert_eq!(e.sub(&e.chat_rw, M::GET, "mine", None), 403);
    assert_eq!(e.sub(&e.chat_rw, M::PUT, "rw", Some(pull(Some("chat/*"), &[], "chat/w"))), 403);
    // Someone else's subscription: not readable, changeable or deletable, and answered exactly as
    // a missing one (404), so its id cannot be probed; taking its id answers 403.
    assert_eq!(e.sub(&e.admin, M::PUT, "ops", Some(pull(Some("other/*"), &[], "other/wakes"))), 201);
    let add = serde_json::json!({"streams": ["chat/a"]});
    let claim = serde_json::json!({"worker": "w"});
    for id in ["ops", "nosuch"] {
        assert_eq!(e.sub(&e.chat_admin, M::GET, id, None), 404, "{id}");
        assert_eq!(e.sub(&e.chat_admin, M::DELETE, id, None), 404, "{id}");
        assert_eq!(
            e.sub(&e.chat_admin, M::POST, &format!("{id}/streams"), Some(add.clone())),
            404,
            "{id}"
        );
        assert_eq!(
            e.sub(&e.chat_admin, M::DELETE, &format!("{id}/streams/other%2Fx"), None),
            404,
            "{id}"
        );
        assert_eq!(
            e.sub(&e.chat_admin, M::POST, &format!("{id}/claim"), Some(claim.clone())),
            404,
            "{id}"
        );
    }
    assert_eq!(
        e.sub(&e.chat_admin, M::PUT, "ops", Some(pull(Some("chat/*"), &[], "chat/wakes"))),
        403
    );
    assert_eq!(e.sub(&e.admin, M::GET, "ops", None), 200, "still there");
    // Its own: streams inside may be added, outside not.
    assert_eq!(
        e.sub(
            &e.chat_admin,
            M::POST,
            "mine/streams",
            Some(serde_json::json!({"streams": ["other/x"]}))
        ),
        403
    );
    assert_eq!(
        e.sub(
            &e.chat_admin,
            M::POST,
            "mine/streams",
            Some(serde_json::json!({"streams": ["chat/b"]}))
        ),
        204
    );
    assert_eq!(e.sub(&e.chat_admin, M::GET, "mine", None), 200);
    assert_eq!(e.sub(&e.chat_admin, M::DELETE, "mine", None), 204);
    // A subscription whose configuration lies inside, with a stream added later outside: the
    // added link counts.
    assert_eq!(e.sub(&e.admin, M::PUT, "mixed", Some(pull(Some("chat/*"), &[], "chat/wakes"))), 201);
    assert_eq!(
        e.sub(
            &e.admin,
            M::POST,
            "mixed/streams",
            Some(serde_json::json!({"streams": ["other/x"]}))
        ),
        204
    );
    assert_eq!(e.sub(&e.chat_admin, M::GET, "mixed", None), 404);
    assert_eq!(e.sub(&e.chat_admin, M::DELETE, "mixed", None), 404);
    let listed =
        e.c.get(e.s.url("/v1/stream/__ds/subscriptions"))
            .bearer_auth(&e.chat_admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
    assert!(!listed.contains("mixed"), "{listed}");
}

#[test]
fn export_and_import_keep_to_the_callers_scope() {
    let e = Env::new();
    for n in ["chat/a", "chat/b", "other/x"] {
        e.put_stream(n);
    }
    use reqwest::Method as M;
    assert_eq!(e.sub(&e.admin, M::PUT, "mine", Some(pull(Some("chat/*"), &[], "chat/wakes"))), 201);
    assert_eq!(e.sub(&e.admin, M::PUT, "ops", Some(pull(Some("other/*"), &[], "other/wakes"))), 201);
    let export = |token: &str, query: &str| {
        let r =
            e.c.get(e.s.url(&format!("/v1/stream/__ds/export{query}")))
                .bearer_auth(token)
                .send()
                .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, scoped) = export(&e.chat_admin, "");
    assert_eq!(status, 200);
    assert!(scoped.contains("data of chat/a") || scoped.contains("\"chat/a\""), "{scoped}");
    assert!(scoped.contains("\"chat/b\""), "{scoped}");
    assert!(!scoped.contains("other/x"), "a stream outside the scope was exported: {scoped}");
    assert!(scoped.contains("\"mine\""), "its subscription is exported");
    assert!(!scoped.contains("\"ops\""), "another's subscription was exported");
    let (_, whole) = export(&e.admin, "");
    assert!(whole.contains("other/x") && whole.contains("\"ops\""));
    assert_eq!(export(&e.chat_rw, "").0, 403, "export needs admin");

    let import = |token: &str, body: &str, query: &str| {
        e.c.post(e.s.url(&format!("/v1/stream/__ds/import{query}")))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // The whole export renamed: it would create other/y, outside the scope: refused, nothing written.
    let renamed = whole.replace("other/x", "other/y").replace("chat/a", "chat/c");
    assert_eq!(import(&e.chat_admin, &renamed, ""), 403);
    let head = |name: &str| {
        e.c.head(e.s.url(&format!("/v1/stream/{name}")))
            .bearer_auth(&e.admin)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!((head("other/y"), head("chat/c")), (404, 404));
    // Its own subscription renamed to the id of another's: replacing it is refused.
    let hijack = scoped.replace("\"mine\"", "\"ops\"");
    assert_ne!(hijack, scoped);
    assert_eq!(import(&e.chat_admin, &hijack, "?on_conflict=replace"), 403);
    assert_eq!(e.sub(&e.admin, M::GET, "ops", None), 200);
    // Replacing streams needs delete on them: without it, refused whole.
    let no_delete = issue(&e.tokens, "chat/:read,create,admin");
    assert_eq!(import(&no_delete, &scoped, "?on_conflict=replace"), 403);
    // Its own export, replacing: needs delete too, which it has.
    assert_eq!(import(&e.chat_admin, &scoped, "?on_conflict=replace"), 200);
    // The admin's renamed export goes in.
    assert_eq!(import(&e.admin, &renamed, "?on_conflict=skip"), 200);
    assert_eq!((head("other/y"), head("chat/c")), (200, 200));
}

#[test]
fn an_import_cannot_fork_what_the_token_may_not_read() {
    let e = Env::new();
    // A token that may create (but not read) under in/, and read and create under pub/.
    let dropper = common::issue_token(&e.tokens, &["in/:create,admin", "pub/:read,create"]);
    e.put_stream("in/secret");
    let r =
        e.c.put(e.s.url("/v1/stream/pub/leak"))
            .bearer_auth(&e.admin)
            .header("Stream-Forked-From", "/v1/stream/in/secret")
            .send()
            .unwrap();
    assert_eq!(r.status(), 201);
    let whole =
        e.c.get(e.s.url("/v1/stream/__ds/export"))
            .bearer_auth(&e.admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
    let crafted = whole.replace("pub/leak", "pub/leak2");
    let r =
        e.c.post(e.s.url("/v1/stream/__ds/import?on_conflict=skip"))
            .bearer_auth(&dropper)
            .body(crafted)
            .send()
            .unwrap();
    assert_eq!(r.status(), 403, "a fork of in/secret, which the token may not read");
    let r = e.c.head(e.s.url("/v1/stream/pub/leak2")).bearer_auth(&e.admin).send().unwrap();
    assert_eq!(r.status(), 404);
}
