//! The access-control tests' shared setup: a server in `token` mode with an admin token issued
//! by the real CLI and a JWT keys file, and small request helpers. No test lives here.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};

use crate::common::{jwt, tempdir, token_cli, Server};

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

pub fn issue(tokens: &std::path::Path, scopes: &[&str], ttl: Option<&str>) -> String {
    let mut args = vec!["issue"];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    if let Some(t) = ttl {
        args.extend(["--ttl", t]);
    }
    token_cli(tokens, &args)
}

pub fn id_of(token: &str) -> &str {
    &token[4..16]
}

/// A server in `token` mode; `admin` holds `*:all`; `jwt` signs with the key `ed1` in `jwt_keys`.
pub struct Fixture {
    _dir: tempdir::Dir,
    pub tokens: std::path::PathBuf,
    pub jwt_keys: std::path::PathBuf,
    pub jwt: jwt::Keys,
    pub server: Server,
    pub admin: String,
}

pub fn fixture() -> Fixture {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let admin = issue(&tokens, &["*:all"], None);
    let jwt_keys = dir.path.join("jwks.json");
    let jwt = jwt::Keys::new();
    jwt.write(&jwt_keys, "ed1");
    let server = Server::start(&[
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
        ("DS_AUTH__JWT_KEYS_FILE", jwt_keys.to_str().unwrap()),
        ("DS_SERVER__LONG_POLL_TIMEOUT_MS", "200"),
        ("RUST_LOG", "debug"),
    ]);
    Fixture {
        _dir: dir,
        tokens,
        jwt_keys,
        jwt,
        server,
        admin,
    }
}

pub fn with(req: RequestBuilder, auth: &Auth) -> RequestBuilder {
    match auth {
        Auth::None => req,
        Auth::Header(h) => req.header("Authorization", h.as_str()),
    }
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Header(String),
}

pub fn bearer(t: &str) -> Auth {
    Auth::Header(format!("Bearer {t}"))
}

/// The stream's bytes as the admin reads them (None: no such stream).
pub fn content(f: &Fixture, name: &str) -> Option<String> {
    let r = client()
        .get(f.server.url(&format!("/v1/stream/{name}?offset=-1")))
        .bearer_auth(&f.admin)
        .send()
        .unwrap();
    (r.status() == 200).then(|| r.text().unwrap())
}

pub fn seed(f: &Fixture, name: &str) {
    let c = client();
    let r = c
        .put(f.server.url(&format!("/v1/stream/{name}")))
        .bearer_auth(&f.admin)
        .header("Content-Type", "text/plain")
        .body("seed")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "seed {name}");
}

/// A well-formed export of `names` (each a text stream holding `x`), as `__ds/import` takes it.
pub fn export_of(names: &[&str]) -> String {
    let mut out = String::from("{\"format\":\"durable-streams-export\",\"version\":2}\n");
    for n in names {
        let rec = |v: serde_json::Value| format!("{v}\n");
        out += &rec(serde_json::json!({"type": "stream", "name": n, "content_type": "text/plain", "closed": false, "start": 0}));
        out += &rec(serde_json::json!({"type": "data", "name": n, "base64": "eA=="}));
        out += &rec(serde_json::json!({"type": "end", "name": n, "tail": 1, "closed": false}));
    }
    out + &format!(
        "{}\n",
        serde_json::json!({"type": "summary", "streams": names.len(), "bytes": names.len(), "subscriptions": 0})
    )
}
