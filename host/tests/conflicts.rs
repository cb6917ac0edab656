//! Conflicts through the binary: closure with idempotent producers (section 5.2.1) and 409
//! bodies that name the rule that clashed, so clients can classify them.

mod common;

use common::Server;
use reqwest::blocking::{Client, Response};

fn post(c: &Client, s: &Server, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = c
        .post(s.url("/v1/stream/c"))
        .header("Content-Type", "text/plain")
        .body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().unwrap()
}

fn producer(id: &'static str, seq: &'static str) -> [(&'static str, &'static str); 3] {
    [("Producer-Id", id), ("Producer-Epoch", "0"), ("Producer-Seq", seq)]
}

fn problem(r: Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    (status, headers, serde_json::from_slice(&r.bytes().unwrap()).unwrap())
}

/// Issue 15 item 1: another producer's close-only on a stream closed by producer A is a 409
/// with `Stream-Closed: true` (so is A's next seq); A's closing tuple and a plain close-only stay 204.
#[test]
fn another_producers_close_on_a_closed_stream_is_409() {
    for mode in ["memory", "file-durable", "acid"] {
        let dir = common::tempdir::Dir::new();
        let s = Server::start(&[("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap())]);
        let c = Client::new();
        c.put(s.url("/v1/stream/c")).header("Content-Type", "text/plain").send().unwrap();
        let closing = [producer("A", "0").as_slice(), &[("Stream-Closed", "true")]].concat();
        assert_eq!(post(&c, &s, "final", &closing).status(), 200, "{mode}: A closes");
        for (who, seq) in [("B", "0"), ("A", "1")] {
            let hs = [producer(who, seq).as_slice(), &[("Stream-Closed", "true")]].concat();
            let (status, headers, body) = problem(post(&c, &s, "", &hs));
            assert_eq!(status, 409, "{mode}: {who} seq {seq} close-only");
            assert_eq!(headers["stream-closed"], "true");
            assert_eq!(body["conflict"], "closed");
        }
        let again = post(&c, &s, "final", &closing);
        assert_eq!(again.status(), 204, "{mode}: the closing tuple again");
        assert_eq!(again.headers()["stream-closed"], "true");
        let plain = post(&c, &s, "", &[("Stream-Closed", "true")]);
        assert_eq!(plain.status(), 204, "{mode}: close-only without producer headers");
    }
}

/// Issue 15 item 2: each 409 names its rule in plain words and with the client error code,
/// beside the protocol headers.
#[test]
fn conflicts_name_the_rule_that_clashed() {
    let s = Server::start(&[]);
    let c = Client::new();
    c.put(s.url("/v1/stream/c")).header("Content-Type", "text/plain").send().unwrap();

    assert_eq!(post(&c, &s, "a", &[("Stream-Seq", "2")]).status(), 204);
    let (status, _, body) = problem(post(&c, &s, "b", &[("Stream-Seq", "10")]));
    assert_eq!(
        (status, &body["conflict"], &body["code"]),
        (409, &"sequence".into(), &"CONFLICT_SEQ".into())
    );
    assert!(body["detail"].as_str().unwrap().starts_with("sequence"), "{body}");

    assert_eq!(post(&c, &s, "p", &producer("P", "0")).status(), 200);
    let (status, headers, body) = problem(post(&c, &s, "q", &producer("P", "5")));
    assert_eq!((status, &body["conflict"]), (409, &"sequence".into()), "producer sequence gap");
    assert_eq!(headers["producer-expected-seq"], "1");
    assert_eq!(headers["producer-received-seq"], "5");

    let (status, _, body) = problem(
        c.post(s.url("/v1/stream/c"))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, &body["conflict"], &body["code"]),
        (409, &"content type".into(), &"CONTENT_TYPE_MISMATCH".into())
    );

    let (status, _, body) = problem(
        c.put(s.url("/v1/stream/c"))
            .header("Content-Type", "application/json")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, &body["conflict"], &body["code"]),
        (409, &"exists".into(), &"CONFLICT_EXISTS".into())
    );

    assert_eq!(post(&c, &s, "", &[("Stream-Closed", "true")]).status(), 204);
    let (status, headers, body) = problem(post(&c, &s, "late", &[]));
    assert_eq!(
        (status, &body["conflict"], &body["code"]),
        (409, &"closed".into(), &"STREAM_CLOSED".into())
    );
    assert_eq!(headers["stream-closed"], "true");
    assert!(headers.contains_key("stream-next-offset"));
}
