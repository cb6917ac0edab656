//! Command line through the binary: `list`, `export` / `import` (a migration from file-durable to
//! acid, with each conflict policy), `plugins`, and `--help` with examples on every subcommand.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn cli(mode: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .args(args)
        .env("DS_STORAGE__MODE", mode)
        .env("DS_STORAGE__DATA_DIR", dir)
        .env("DS_STORAGE__ACID_SHARD_COUNT", "2")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

struct Snapshot {
    body: Vec<u8>,
    closed: bool,
    ttl: Option<String>,
    content_type: String,
    next: String,
}

fn snapshot(s: &Server, name: &str) -> Snapshot {
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let h = c.head(s.url(&format!("/v1/stream/{name}"))).send().unwrap();
    assert_eq!(h.status(), 200, "{name}");
    let r = c.get(s.url(&format!("/v1/stream/{name}"))).send().unwrap();
    Snapshot {
        closed: h.headers().contains_key("stream-closed"),
        ttl: h.headers().get("stream-ttl").map(|v| v.to_str().unwrap().to_string()),
        content_type: h.headers()["content-type"].to_str().unwrap().to_string(),
        next: h.headers()["stream-next-offset"].to_str().unwrap().to_string(),
        body: r.bytes().unwrap().to_vec(),
    }
}

const NAMES: [&str; 5] = ["t/text", "t/json", "t/closed", "t/ttl", "t/fork"];

#[test]
fn export_from_file_durable_import_into_acid() {
    let a = tempdir::Dir::new();
    let b = tempdir::Dir::new();
    let before: Vec<Snapshot> = {
        let s = Server::start(&[
            ("DS_STORAGE__MODE", "file-durable"),
            ("DS_STORAGE__DATA_DIR", a.path.to_str().unwrap()),
        ]);
        let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let put = |name: &str, ct: &str, body: &str, extra: &[(&str, &str)]| {
            let mut r = c
                .put(s.url(&format!("/v1/stream/{name}")))
                .header("Content-Type", ct)
                .body(body.to_string());
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            assert!(r.send().unwrap().status().is_success());
        };
        put("t/text", "text/plain", "one ", &[]);
        for part in ["two ", "three"] {
            c.post(s.url("/v1/stream/t/text"))
                .header("Content-Type", "text/plain")
                .body(part)
                .send()
                .unwrap();
        }
        put("t/json", "application/json", r#"[{"a":1},{"b":[2,3]}]"#, &[]);
        c.post(s.url("/v1/stream/t/json"))
            .header("Content-Type", "application/json")
            .body(r#""x""#)
            .send()
            .unwrap();
        put("t/closed", "application/octet-stream", "bin", &[("Stream-Closed", "true")]);
        put("t/ttl", "text/plain", "lives", &[("Stream-TTL", "3600")]);
        put("t/fork", "text/plain", "+fork", &[("Stream-Forked-From", "/v1/stream/t/text")]);
        let snaps = NAMES.iter().map(|n| snapshot(&s, n)).collect();
        // While the server runs, the data directory is locked.
        let busy = cli("file-durable", &a.path, &["list"]);
        assert!(!busy.status.success() && text(&busy).contains("in use"), "{}", text(&busy));
        assert!(text(&busy).contains("--url"), "the lock error points to --url: {}", text(&busy));
        // The running server answers instead, its URL given with or without the base path.
        for url in [
            format!("http://127.0.0.1:{}", s.port),
            format!("http://127.0.0.1:{}/v1/stream/", s.port),
        ] {
            let live = cli("file-durable", &a.path, &["list", "--url", &url, "--prefix", "t/"]);
            assert!(live.status.success(), "{}", text(&live));
            for n in NAMES {
                assert!(String::from_utf8_lossy(&live.stdout).contains(n), "{}", text(&live));
            }
            assert!(text(&live).contains(&format!("{} streams", NAMES.len())), "{}", text(&live));
            let out = cli("file-durable", &a.path, &["export", "--url", &url, "--prefix", "t/text"]);
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("t/text"),
                "export --url {url}: {}",
                text(&out)
            );
        }
        snaps
    };
    let listed = cli("file-durable", &a.path, &["list", "--prefix", "t/"]);
    assert!(listed.status.success(), "{}", text(&listed));
    for n in NAMES {
        assert!(String::from_utf8_lossy(&listed.stdout).contains(n), "{}", text(&listed));
    }
    // The column is named as the listing API names it.
    assert!(
        String::from_utf8_lossy(&listed.stdout).starts_with("name\tcontent_type\ttail_offset\t"),
        "{}",
        text(&listed)
    );
    let one = cli("file-durable", &a.path, &["list", "--prefix", "t/closed"]);
    assert!(
        text(&one).contains("1 stream\n") || text(&one).ends_with("1 stream"),
        "{}",
        text(&one)
    );
    let file = a.path.join("export.jsonl");
    let out = cli("file-durable", &a.path, &["export", "--output", file.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("exported 5 streams"), "{}", text(&out));
    let first = std::fs::read_to_string(&file).unwrap();
    assert!(
        first.starts_with(r#"{"#) && first.lines().next().unwrap().contains("\"version\":2"),
        "versioned format"
    );

    let out = cli("acid", &b.path, &["import", "--input", file.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("imported 5 streams"), "{}", text(&out));
    let again = cli("acid", &b.path, &["import", "--input", file.to_str().unwrap()]);
    assert!(
        !again.status.success() && text(&again).contains("already exist"),
        "fail is the default: {}",
        text(&again)
    );
    let skip = cli(
        "acid",
        &b.path,
        &["import", "--input", file.to_str().unwrap(), "--on-conflict", "skip"],
    );
    assert!(skip.status.success() && text(&skip).contains("skipped 5"), "{}", text(&skip));
    let replace = cli(
        "acid",
        &b.path,
        &["import", "--input", file.to_str().unwrap(), "--on-conflict", "replace"],
    );
    assert!(
        replace.status.success() && text(&replace).contains("imported 5"),
        "{}",
        text(&replace)
    );

    let s = Server::start(&[
        ("DS_STORAGE__MODE", "acid"),
        ("DS_STORAGE__DATA_DIR", b.path.to_str().unwrap()),
        ("DS_STORAGE__ACID_SHARD_COUNT", "2"),
    ]);
    for (n, want) in NAMES.iter().zip(before.iter()) {
        let got = snapshot(&s, n);
        assert_eq!(got.body, want.body, "{n}: bytes");
        assert_eq!(got.closed, want.closed, "{n}: closure");
        assert_eq!(got.ttl, want.ttl, "{n}: ttl");
        assert_eq!(got.content_type, want.content_type, "{n}: content type");
        assert_eq!(got.next, want.next, "{n}: offsets are preserved");
    }
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        vec![],
        vec!["serve"],
        vec!["list"],
        vec!["export"],
        vec!["import"],
        vec!["plugins"],
        vec!["config", "check"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
            .args(&args)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{sub:?}: {t}");
        if !sub.is_empty() && sub != ["serve"] && sub != ["plugins"] {
            assert!(t.contains("Examples"), "{sub:?} --help shows examples: {t}");
        }
    }
}

#[test]
fn plugins_lists_every_bundled_plugin() {
    let out = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .arg("plugins")
        .output()
        .unwrap();
    let t = text(&out);
    for needle in [
        "durable-streams-plugin-memory",
        "durable-streams-plugin-file",
        "durable-streams-plugin-acid",
        "mode file-durable",
        "synced",
        "ABI 1.0.0",
    ] {
        assert!(t.contains(needle), "{needle}: {t}");
    }
    // Issue 15 item 9: the template (a skeleton to copy) is not installed as a production mode.
    assert!(!t.contains("mode template") && !t.contains("plugin-template"), "{t}");
}
