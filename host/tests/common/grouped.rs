//! Listing with a delimiter, checked against the plain listing: for a prefix and a page size,
//! every page of `?delimiter=/` together must hold exactly the streams directly under the
//! prefix and the folders below it (as computed from the names), in name order, each once.

#![allow(dead_code)]

use std::collections::BTreeSet;

use reqwest::blocking::Client;
use serde_json::Value;

/// What a full walk of the pages found: direct streams and folders, in answer order.
#[derive(Debug, Default)]
pub struct Walk {
    pub streams: Vec<String>,
    pub prefixes: Vec<String>,
    pub pages: usize,
}

/// Walks every page of `{base}/__ds/streams?prefix=&delimiter=/&limit=`.
pub fn walk(c: &Client, base: &str, prefix: &str, limit: usize) -> Walk {
    let mut w = Walk::default();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/__ds/streams?delimiter=/&limit={limit}&prefix={}", enc(prefix));
        if let Some(a) = &after {
            url.push_str(&format!("&start_after={}", enc(a)));
        }
        let r = c.get(url).send().unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        let streams: Vec<String> = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        let prefixes: Vec<String> = v["common_prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["prefix"].as_str().unwrap().to_string())
            .collect();
        assert!(streams.len() + prefixes.len() <= limit, "a page holds at most its limit");
        w.streams.extend(streams);
        w.prefixes.extend(prefixes);
        w.pages += 1;
        assert!(w.pages < 10_000, "no last page");
        match v["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return w,
        }
    }
}

/// The streams directly under `prefix` and the folders below it, from every name.
pub fn expected(names: &[String], prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut streams = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    for n in names.iter().filter(|n| n.starts_with(prefix)) {
        match n[prefix.len()..].find('/') {
            Some(i) => prefixes.insert(n[..prefix.len() + i + 1].to_string()),
            None => streams.insert(n.clone()),
        };
    }
    (streams.into_iter().collect(), prefixes.into_iter().collect())
}

/// Checks a walk of `prefix` in pages of `limit` against `names`.
pub fn check(c: &Client, base: &str, names: &[String], prefix: &str, limit: usize) {
    let w = walk(c, base, prefix, limit);
    let (streams, prefixes) = expected(names, prefix);
    assert_eq!(w.streams, streams, "streams directly under {prefix:?}, pages of {limit}");
    assert_eq!(w.prefixes, prefixes, "folders under {prefix:?}, pages of {limit}");
    let want = (streams.len() + prefixes.len()).div_ceil(limit).max(1);
    assert!(
        w.pages <= want + 1,
        "{} pages for {} keys in pages of {limit}",
        w.pages,
        streams.len() + prefixes.len()
    );
}

/// Names for the check: direct names, folders of several sizes (one larger than a page),
/// nested folders, and names around the delimiter's neighbours in byte order.
pub fn names() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..12 {
        v.push(format!("d{i:02}"));
    }
    for f in 0..15 {
        for i in 0..(f % 4 + 1) {
            v.push(format!("f{f:02}/{i}"));
        }
    }
    for i in 0..130 {
        v.push(format!("big/{i:03}"));
    }
    for n in [
        "big.x",
        "big0",
        "big/deep/1",
        "big/deep/2",
        "big/deeper/x/y",
        "n/a/b/c",
        "n/a/d",
        "n/e",
    ] {
        v.push(n.to_string());
    }
    v.sort();
    v
}

fn enc(s: &str) -> String {
    s.replace('%', "%25").replace('&', "%26").replace('+', "%2B").replace(' ', "%20")
}
