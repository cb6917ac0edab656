//! The offline commands refusing what they cannot do well (issue 15 items 5-7, 9): data in use,
//! a different acid shard count, a misspelt data directory, data of another mode, the memory
//! mode, incomplete exports, and imports that fail part way (rolled back).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn run(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn env<'a>(mode: &'a str, dir: &'a Path) -> Vec<(&'a str, &'a str)> {
    vec![("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap())]
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A valid export of `streams` (name, text body).
fn export_of(streams: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let mut out = String::from("{\"format\":\"durable-streams-export\",\"version\":1}\n");
    let mut bytes = 0;
    for (name, body) in streams {
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        out += &format!("{{\"type\":\"stream\",\"name\":\"{name}\",\"content_type\":\"text/plain\",\"ttl_secs\":null,\"expires_at_ms\":null,\"closed\":true}}\n");
        out += &format!("{{\"type\":\"data\",\"name\":\"{name}\",\"base64\":\"{b64}\"}}\n");
        out += &format!("{{\"type\":\"end\",\"name\":\"{name}\",\"tail\":{},\"closed\":true}}\n", body.len());
        bytes += body.len();
    }
    out += &format!("{{\"type\":\"summary\",\"streams\":{},\"bytes\":{bytes}}}\n", streams.len());
    out
}

/// Item 5: a second process on a running acid server's data is told the data is in use, not
/// that it is corrupt.
#[test]
fn acid_data_in_use_is_not_called_corrupt() {
    let dir = tempdir::Dir::new();
    let _s = Server::start(&env("acid", &dir.path));
    let out = run(&env("acid", &dir.path), &["list"], None);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("in use by another process"), "{t}");
    assert!(!t.contains("corrupt") && !t.contains("move it aside"), "{t}");
}

/// Item 6: the shard count is recorded with the data; another count is refused with one line,
/// and no command (read-only or not) creates shard files for it.
#[test]
fn acid_shard_count_is_recorded_and_enforced() {
    let dir = tempdir::Dir::new();
    let two = [env("acid", &dir.path), vec![("DS_STORAGE__ACID_SHARD_COUNT", "2")]].concat();
    let four = [env("acid", &dir.path), vec![("DS_STORAGE__ACID_SHARD_COUNT", "4")]].concat();
    let out = run(&two, &["import"], Some(&export_of(&[("a", "x")])));
    assert!(out.status.success(), "{}", text(&out));
    let before = files_under(&dir.path);
    assert_eq!(before.iter().filter(|f| f.ends_with(".redb")).count(), 2, "{before:?}");
    for args in [&["list"][..], &["export"][..]] {
        let out = run(&four, args, None);
        let t = text(&out);
        assert!(!out.status.success(), "{args:?}: {t}");
        assert!(
            t.contains("written with storage.acid_shard_count = 2, but it is set to 4"),
            "{args:?}: {t}"
        );
        assert_eq!(files_under(&dir.path), before, "{args:?} created no file");
    }
    let err = Server::try_start(&four).err().expect("the server refuses another count");
    assert!(err.contains("acid_shard_count = 2"), "{err}");
    assert_eq!(files_under(&dir.path), before);
    let out = run(&two, &["list"], None);
    assert!(out.status.success() && text(&out).contains("1 stream\n"), "{}", text(&out));
    // The default (0) takes the recorded count: data made with 4 shards, the default of
    // earlier versions, opens as it was after an upgrade.
    let default = [env("acid", &dir.path), vec![("DS_STORAGE__ACID_SHARD_COUNT", "0")]].concat();
    let out = run(&default, &["list"], None);
    assert!(out.status.success() && text(&out).contains("1 stream\n"), "{}", text(&out));
    assert_eq!(files_under(&dir.path), before, "no shard added");
    let fresh = tempdir::Dir::new();
    let out = run(&env("acid", &fresh.path), &["import"], Some(&export_of(&[("a", "x")])));
    assert!(out.status.success(), "{}", text(&out));
    let made = files_under(&fresh.path);
    assert_eq!(
        made.iter().filter(|f| f.ends_with(".redb")).count(),
        1,
        "new data: one shard {made:?}"
    );
}

/// Item 7: `list` and `export` refuse a data directory without the mode's data (a misspelt
/// path, or another mode's data) and create nothing.
#[test]
fn read_only_commands_refuse_missing_or_foreign_data() {
    let dir = tempdir::Dir::new();
    let missing = dir.path.join("dta");
    for mode in ["file-durable", "file-fast", "acid"] {
        let out = run(&env(mode, &missing), &["list"], None);
        let t = text(&out);
        assert!(!out.status.success() && t.contains("no ") && t.contains("data in"), "{mode}: {t}");
        assert!(!missing.exists(), "{mode}: a misspelt data_dir is not created");
    }
    let out = run(&env("file-durable", &dir.path), &["import"], Some(&export_of(&[("f", "x")])));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&env("acid", &dir.path), &["list"], None);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("holds file-mode data"), "{t}");
    assert!(!dir.path.join("acid").exists(), "acid created nothing");
}

/// Item 7: the memory mode keeps nothing between processes: list / export / import refuse it.
#[test]
fn offline_commands_refuse_the_memory_mode() {
    let dir = tempdir::Dir::new();
    for (args, stdin) in [
        (&["list"][..], None),
        (&["export"][..], None),
        (&["import"][..], Some(export_of(&[("m", "x")]))),
    ] {
        let out = run(&env("memory", &dir.path), args, stdin.as_deref());
        let t = text(&out);
        assert!(
            !out.status.success() && t.contains("keeps no data between processes"),
            "{args:?}: {t}"
        );
    }
}

/// Item 7: a truncated export, a wrong summary and an empty input are refused before the
/// engine is opened; nothing is created.
#[test]
fn incomplete_exports_are_refused_whole() {
    let dir = tempdir::Dir::new();
    let full = export_of(&[("a", "one"), ("b", "two")]);
    let lines: Vec<&str> = full.lines().collect();
    let cut_before_end = lines[..lines.len() - 2].join("\n") + "\n";
    let no_summary = lines[..lines.len() - 1].join("\n") + "\n";
    let wrong_summary = full.replace("\"streams\":2", "\"streams\":3");
    for (what, input, needle) in [
        ("cut before its end record", cut_before_end, "no end record"),
        ("no summary", no_summary, "no summary"),
        ("wrong summary", wrong_summary, "the summary says 3 streams"),
        ("empty input", String::new(), "empty"),
    ] {
        for mode in ["file-durable", "acid"] {
            let out = run(&env(mode, &dir.path), &["import"], Some(&input));
            let t = text(&out);
            assert!(!out.status.success() && t.contains(needle), "{what} ({mode}): {t}");
            assert!(files_under(&dir.path).is_empty(), "{what} ({mode}): nothing created");
        }
    }
}

/// Item 7: an import that fails part way leaves nothing behind; with `replace`, the streams it
/// replaced are restored.
#[test]
fn a_failed_import_is_rolled_back() {
    for mode in ["file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let small = [env(mode, &dir.path), vec![("DS_LIMITS__MAX_STREAM_BYTES", "10")]].concat();
        let out = run(&small, &["import"], Some(&export_of(&[("keep", "old")])));
        assert!(out.status.success(), "{}", text(&out));
        // "big" exceeds the stream limit after "new" and "keep" were written.
        let input = export_of(&[("new", "fine"), ("keep", "replaced"), ("big", "far too large for ten")]);
        let out = run(&small, &["import", "--on-conflict", "replace"], Some(&input));
        let t = text(&out);
        assert!(!out.status.success() && t.contains("rolled back"), "{mode}: {t}");
        assert!(t.contains("restored the 1 stream"), "{mode}: {t}");
        let s = Server::start(&small);
        let c = Client::new();
        let status = |n: &str| c.get(s.url(&format!("/v1/stream/{n}"))).send().unwrap().status().as_u16();
        assert_eq!(status("new"), 404, "{mode}: written then removed");
        assert_eq!(status("big"), 404, "{mode}");
        let keep = c.get(s.url("/v1/stream/keep")).send().unwrap();
        assert_eq!(keep.text().unwrap(), "old", "{mode}: the replaced stream is restored");
    }
}

/// Item 9: errors for a missing `--input` or an unwritable `--output` name the path.
#[test]
fn transfer_errors_name_the_path() {
    let dir = tempdir::Dir::new();
    let out = run(
        &env("file-durable", &dir.path),
        &["import", "--input", "/nonexistent/in.jsonl"],
        None,
    );
    let t = text(&out);
    assert!(!out.status.success() && t.contains("--input /nonexistent/in.jsonl"), "{t}");
    let out = run(
        &env("file-durable", &dir.path),
        &["export", "--output", "/nonexistent/out.jsonl"],
        None,
    );
    let t = text(&out);
    assert!(!out.status.success() && t.contains("--output /nonexistent/out.jsonl"), "{t}");
}

/// Item 9: `plugins` with nothing found says where it looked.
#[test]
fn plugins_with_nothing_found_says_where_it_looked() {
    let dir = tempdir::Dir::new();
    let bin = dir.path.join("durable-streams-server");
    std::fs::copy(env!("CARGO_BIN_EXE_durable-streams-server"), &bin).unwrap();
    let out = Command::new(&bin).arg("plugins").current_dir(&dir.path).output().unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("no plugin found; looked in") && t.contains(dir.path.to_str().unwrap()),
        "{t}"
    );
}
