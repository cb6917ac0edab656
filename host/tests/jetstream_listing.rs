//! Listing in the jetstream mode (scaled down from the million-stream benchmark): two real server
//! processes on one real three-node NATS cluster. Streams created through both hosts list in
//! name order, page by page, through either; once a host has listed (its name index built),
//! creates and deletes made through the other host reach its later listings, and its own show
//! at once.

mod common;

use std::time::Duration;

use common::Server;
use reqwest::blocking::Client;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn put(c: &Client, s: &Server, name: &str) {
    let r = c
        .put(s.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create {name}: {}", r.text().unwrap_or_default());
}

fn delete(c: &Client, s: &Server, name: &str) {
    let r = c.delete(s.url(&format!("/v1/stream/{name}"))).send().unwrap();
    assert_eq!(r.status(), 204, "delete {name}");
}

/// Every name under `prefix`, listed through `s` in pages of `limit`; also checks each page.
fn list_all(c: &Client, s: &Server, prefix: &str, limit: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = s.url(&format!("/v1/stream/__ds/streams?prefix={prefix}&limit={limit}"));
        if let Some(a) = &after {
            url.push_str(&format!("&start_after={a}"));
        }
        let r = c.get(url).send().unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        let page: Vec<String> = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        assert!(page.len() <= limit, "a page holds at most its limit");
        assert!(page.iter().all(|n| n.starts_with(prefix)), "only names under the prefix");
        names.extend(page);
        match v["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return names,
        }
    }
}

#[test]
fn listing_pages_through_either_host_and_follows_the_other_hosts_changes() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = common::jetstream_hosts(&cluster.urls(), "lst", &[]);
    let c = client();
    let mut expected: Vec<String> = (0..400).map(|i| format!("ls/{i:04}")).collect();
    for (i, name) in expected.iter().enumerate() {
        put(&c, if i % 2 == 0 { &a } else { &b }, name);
    }
    put(&c, &a, "other/one");
    put(&c, &b, "lt");
    expected.sort();
    assert_eq!(list_all(&c, &b, "ls/", 100), expected, "through B, pages of 100");
    assert_eq!(list_all(&c, &a, "ls/", 37), expected, "through A, pages of 37");

    // Both indexes are built: changes made through A reach B's listings.
    for i in 0..30 {
        delete(&c, &a, &format!("ls/{i:04}"));
    }
    for i in 0..20 {
        put(&c, &a, &format!("ls/9{i:03}"));
    }
    expected.retain(|n| n.as_str() >= "ls/0030");
    expected.extend((0..20).map(|i| format!("ls/9{i:03}")));
    expected.sort();
    common::wait_until(Duration::from_secs(10), "B lists A's creates and deletes", || {
        list_all(&c, &b, "ls/", 100) == expected
    });

    // A host's own changes show in its next listing at once.
    put(&c, &b, "ls/zz");
    assert!(list_all(&c, &b, "ls/", 500).contains(&"ls/zz".to_string()));
    delete(&c, &b, "ls/zz");
    assert_eq!(list_all(&c, &b, "ls/", 500), expected);

    // Folders (`delimiter=/`) through either host, at several page sizes.
    let names = common::grouped::names();
    for (i, n) in names.iter().enumerate() {
        put(&c, if i % 2 == 0 { &a } else { &b }, &format!("g/{n}"));
    }
    let mut all: Vec<String> = names.iter().map(|n| format!("g/{n}")).collect();
    all.sort();
    for (host, prefix, limit) in [(&a, "g/", 5), (&b, "g/", 1000), (&a, "g/big/", 9), (&b, "g/n/", 1), (&b, "", 2)] {
        let all_names: Vec<String> = if prefix.is_empty() {
            all.iter()
                .cloned()
                .chain(expected.iter().cloned())
                .chain(["lt".to_string(), "other/one".to_string()])
                .collect()
        } else {
            all.clone()
        };
        let mut sorted = all_names;
        sorted.sort();
        common::grouped::check(&c, &host.url("/v1/stream"), &sorted, prefix, limit);
    }

    // The jetstream mode merges appends that arrive together: it keeps no boundaries to tell.
    let r = c.get(a.url("/v1/stream/__ds/records/lt")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["starts"], serde_json::Value::Null, "{v}");
}
