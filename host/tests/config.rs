//! Configuration through the binary (`config check`): source order, every seed variable, and
//! one-line refusals naming the key and its source.

mod common;

use std::process::{Command, Output};

use common::tempdir;

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"));
    cmd.arg("--config-dir").arg(dir).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("DS_") || k == "RUST_LOG") {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text_of(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

#[test]
fn sources_apply_in_the_documented_order() {
    let dir = tempdir::Dir::new();
    let p = &dir.path;
    std::fs::write(p.join("default.toml"), "[server]\nport = 1000\nlong_poll_timeout_secs = 1\nsse_reconnect_interval_secs = 1\nheader_read_timeout_secs = 1\nsweep_interval_secs = 1\n").unwrap();
    std::fs::write(
        p.join("dev.toml"),
        "[server]\nlong_poll_timeout_secs = 2\nsse_reconnect_interval_secs = 2\nheader_read_timeout_secs = 2\nsweep_interval_secs = 2\n",
    )
    .unwrap();
    std::fs::write(
        p.join("local.toml"),
        "[server]\nsse_reconnect_interval_secs = 3\nheader_read_timeout_secs = 3\nsweep_interval_secs = 3\n",
    )
    .unwrap();
    let extra = p.join("extra.toml");
    std::fs::write(&extra, "[server]\nheader_read_timeout_secs = 4\nsweep_interval_secs = 4\n").unwrap();
    let out = run(
        p,
        &["--profile", "dev", "--config", extra.to_str().unwrap(), "config", "check"],
        &[("DS_SERVER__SWEEP_INTERVAL_SECS", "5")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(line(&text, "port").contains("= 1000") && line(&text, "port").contains("default.toml"));
    assert!(line(&text, "long_poll_timeout_secs").contains("= 2") && line(&text, "long_poll_timeout_secs").contains("dev.toml"));
    assert!(
        line(&text, "sse_reconnect_interval_secs").contains("= 3") && line(&text, "sse_reconnect_interval_secs").contains("local.toml")
    );
    assert!(line(&text, "header_read_timeout_secs").contains("= 4") && line(&text, "header_read_timeout_secs").contains("extra.toml"));
    assert!(
        line(&text, "sweep_interval_secs").contains("= 5") && line(&text, "sweep_interval_secs").contains("DS_SERVER__SWEEP_INTERVAL_SECS")
    );
    assert!(line(&text, "max_body_bytes").contains("built-in default"), "{text}");
}

#[test]
fn every_seed_variable_is_honoured() {
    let dir = tempdir::Dir::new();
    let vars = [
        ("DS_SERVER__PORT", "9123", "port", "9123"),
        ("DS_SERVER__LONG_POLL_TIMEOUT_SECS", "7", "long_poll_timeout_secs", "7"),
        ("DS_SERVER__SSE_RECONNECT_INTERVAL_SECS", "8", "sse_reconnect_interval_secs", "8"),
        (
            "DS_HTTP__CORS_ORIGINS",
            "https://a.example",
            "cors_origins",
            "\"https://a.example\"",
        ),
        ("DS_HTTP__STREAM_BASE_PATH", "/streams", "stream_base_path", "\"/streams\""),
        ("DS_LIMITS__MAX_MEMORY_BYTES", "1000000", "max_memory_bytes", "1000000"),
        ("DS_LIMITS__MAX_STREAM_BYTES", "2000000", "max_stream_bytes", "2000000"),
        ("DS_STORAGE__MODE", "acid", "mode", "\"acid\""),
        ("DS_STORAGE__DATA_DIR", "/tmp/somewhere", "data_dir", "\"/tmp/somewhere\""),
        ("DS_STORAGE__ACID_SHARD_COUNT", "4", "acid_shard_count", "4"),
        ("DS_STORAGE__ACID_BACKEND", "memory", "acid_backend", "\"memory\""),
        ("DS_TLS__CERT_PATH", "/tmp/c.pem", "cert_path", "\"/tmp/c.pem\""),
        ("DS_TLS__KEY_PATH", "/tmp/k.pem", "key_path", "\"/tmp/k.pem\""),
        ("DS_LOG__RUST_LOG", "warn", "rust_log", "\"warn\""),
        ("DS_STORAGE__PLUGIN_DIR", "/tmp/plugins", "plugin_dir", "\"/tmp/plugins\""),
    ];
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v, _, _)| (*k, *v)).collect();
    let out = run(&dir.path, &["config", "check"], &env);
    // The values parse; the pre-flight then finds the TLS files missing (and says only that).
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/tmp/c.pem") && err.trim().lines().count() == 1, "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    for (var, _, key, shown) in vars {
        // By the variable: a key name such as `mode` is in more than one section.
        let l = text
            .lines()
            .find(|l| l.contains(var))
            .unwrap_or_else(|| panic!("no {var} in\n{text}"));
        assert!(l.contains(&format!("{key} = {shown}")) && l.contains(var), "{var}: {l}");
    }
}

#[test]
fn rust_log_overrides_the_configured_filter() {
    let dir = tempdir::Dir::new();
    let port = common::free_port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .arg("--config-dir")
        .arg(&dir.path)
        .env("DS_SERVER__PORT", &port)
        .env("DS_LOG__RUST_LOG", "debug")
        .env("RUST_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("INFO") && !log.contains("DEBUG"),
        "RUST_LOG=error must silence info and debug:\n{log}"
    );
}

#[test]
fn mistakes_stop_startup_naming_key_and_source() {
    let dir = tempdir::Dir::new();
    std::fs::write(dir.path.join("local.toml"), "[server]\nprot = 1\n").unwrap();
    let out = run(&dir.path, &["config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.prot") && err.contains("local.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let dir = tempdir::Dir::new();
    let out = run(&dir.path, &["config", "check"], &[("DS_SERVER__PORT", "eighty")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("server.port") && err.contains("DS_SERVER__PORT"),
        "{err}"
    );
    assert!(!err.contains("in the environment"), "the source is named once: {err}");
    // A rule of the wrong shape names its key, what is wrong and where it came from.
    let bad = tempdir::Dir::new();
    std::fs::write(bad.path.join("local.toml"), "[[retention.rules]]\nprefix = \"x\"\nmax_age = 5\n").unwrap();
    let out = run(&bad.path, &["config", "check"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("retention.rules") && err.contains("max_age") && err.contains("local.toml"),
        "{err}"
    );

    let out = run(&dir.path, &[], &[("DS_LIMITS__MAX_READ_CHUNK_BYTES", "10")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("limits.max_read_chunk_bytes") && err.contains("DS_LIMITS__MAX_READ_CHUNK_BYTES"),
        "{err}"
    );

    let out = run(&dir.path, &["config", "check"], &[("DS_OTHER_TOOL", "x")]);
    assert!(
        out.status.success(),
        "DS_* variables without a section separator belong to other tools: {}",
        text_of(&out)
    );

    let out = run(&dir.path, &["--profile", "nosuch", "config", "check"], &[]);
    assert_eq!(out.status.code(), Some(2), "a missing profile file is an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("looked in the config directory") && err.contains("--config-dir"),
        "{err}"
    );
}

#[test]
fn shipped_profiles_are_valid() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let data = tempdir::Dir::new();
    let data_dir = data.path.to_str().unwrap();
    let out = run(std::path::Path::new(cfg), &["--profile", "dev", "config", "check"], &[]);
    assert!(out.status.success(), "dev: {}", String::from_utf8_lossy(&out.stderr));
    // prod names /etc/durable-streams/tls/*.pem: the pre-flight checks them.
    let out = run(
        std::path::Path::new(cfg),
        &["--profile", "prod", "config", "check"],
        &[("DS_STORAGE__DATA_DIR", data_dir)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let has_certs = std::path::Path::new("/etc/durable-streams/tls/cert.pem").exists();
    assert!(
        has_certs || (out.status.code() == Some(2) && err.contains("/etc/durable-streams/tls") && err.contains("DS_TLS__ENABLED=false")),
        "prod: {err}"
    );
    // Token mode with nothing issued yet: a warning naming the file and the command.
    assert!(err.contains("no token is issued yet") && err.contains("token issue"), "prod: {err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("# config directory "),
        "prod: where config was looked for"
    );
    let out = run(
        std::path::Path::new(cfg),
        &["--profile", "prod", "config", "check"],
        &[("DS_STORAGE__DATA_DIR", data_dir), ("DS_TLS__ENABLED", "false")],
    );
    assert!(
        out.status.success(),
        "prod behind a TLS proxy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The fault-injection endpoint is for test suites: refused with the prod profile.
    let out = run(
        std::path::Path::new(cfg),
        &["--profile", "prod", "config", "check"],
        &[
            ("DS_STORAGE__DATA_DIR", data_dir),
            ("DS_TLS__ENABLED", "false"),
            ("DS_TESTING__FAULT_INJECTION", "true"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("testing.fault_injection") && err.contains("DS_TESTING__FAULT_INJECTION"),
        "prod with the fault-injection endpoint: {err}"
    );
}

/// Issue 15 item 8: values that parse but would be wrong are refused, naming key and source.
#[test]
fn accepted_but_wrong_values_are_refused() {
    let dir = tempdir::Dir::new();
    for (var, value, key) in [
        ("DS_LOG__FORMAT", "xml", "log.format"),
        ("DS_LOG__FORMAT", "JSON", "log.format"),
        ("DS_STORAGE__ACID_SHARD_COUNT", "1025", "storage.acid_shard_count"),
        ("DS_LOG__RUST_LOG", "info,=bogus[", "log.rust_log"),
        ("DS_HTTP__CORS_ORIGINS", "app.example.com", "http.cors_origins"),
        ("DS_HTTP__CORS_ORIGINS", "https://a.example/path", "http.cors_origins"),
        ("DS_STORAGE__ACID_BACKEND", "disk", "storage.acid_backend"),
        ("DS_CONSOLE__PATH", "/v1/stream/console", "console.path"),
        ("DS_CONSOLE__PATH", "/v1", "console.path"),
        ("DS_CONSOLE__PATH", "console", "console.path"),
        ("DS_CONSOLE__PATH", "/metrics", "console.path"),
        ("DS_CONSOLE__PATH", "/con{sole}", "console.path"),
        ("DS_CONSOLE__PATH", "/ui/*rest", "console.path"),
        ("DS_CONSOLE__PATH", "/ui//x", "console.path"),
    ] {
        let data = dir.path.join("data");
        let env = [
            (var, value),
            ("DS_STORAGE__MODE", if var.contains("ACID") { "acid" } else { "memory" }),
            ("DS_STORAGE__DATA_DIR", data.to_str().unwrap()),
            ("DS_SERVER__PORT", "0"),
        ];
        for args in [&["config", "check"][..], &[][..]] {
            let out = run(&dir.path, args, &env);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{var}={value} {args:?}: {err}");
            assert!(err.contains(key) && err.contains(var), "{var}={value}: {err}");
        }
    }
    let out = run(&dir.path, &["config", "check"], &[("RUST_LOG", "=[")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("RUST_LOG"), "{err}");
    let ok = run(
        &dir.path,
        &["config", "check"],
        &[("DS_HTTP__CORS_ORIGINS", "https://a.example, http://localhost:3000")],
    );
    assert!(ok.status.success(), "{}", text_of(&ok));
}

/// Issue 15 item 8: `config check` is a pre-flight: the mode among the plugins found, the TLS
/// files, the data directory.
#[test]
fn config_check_is_a_preflight() {
    let dir = tempdir::Dir::new();
    let out = run(&dir.path, &["config", "check"], &[("DS_STORAGE__MODE", "fiel-durable")]);
    let t = text_of(&out);
    assert!(
        out.status.code() == Some(2) && t.contains("unknown storage mode 'fiel-durable'") && t.contains("looked in"),
        "{t}"
    );
    let out = run(
        &dir.path,
        &["config", "check"],
        &[
            ("DS_TLS__CERT_PATH", "/nonexistent/c.pem"),
            ("DS_TLS__KEY_PATH", "/nonexistent/k.pem"),
        ],
    );
    let t = text_of(&out);
    assert!(out.status.code() == Some(2) && t.contains("/nonexistent/c.pem"), "{t}");
    let file = dir.path.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = run(
        &dir.path,
        &["config", "check"],
        &[
            ("DS_STORAGE__MODE", "file-durable"),
            ("DS_STORAGE__DATA_DIR", file.to_str().unwrap()),
        ],
    );
    let t = text_of(&out);
    assert!(
        out.status.code() == Some(2) && t.contains("storage.data_dir") && t.contains("not a directory"),
        "{t}"
    );
    let out = run(
        &dir.path,
        &["config", "check"],
        &[
            ("DS_STORAGE__MODE", "file-durable"),
            ("DS_STORAGE__DATA_DIR", dir.path.join("new").to_str().unwrap()),
        ],
    );
    assert!(
        out.status.success(),
        "a data directory that can be created is usable: {}",
        text_of(&out)
    );
    assert!(!dir.path.join("new").exists(), "config check creates nothing");
    // TLS off under a profile that sets the files (the files are then not needed).
    let out = run(
        &dir.path,
        &["config", "check"],
        &[
            ("DS_TLS__CERT_PATH", "/nonexistent/c.pem"),
            ("DS_TLS__KEY_PATH", "/nonexistent/k.pem"),
            ("DS_TLS__ENABLED", "false"),
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
}

/// Every key is in config/default.toml (set or commented out) and its variable in the README's
/// list; every `DS_<SECTION>__<KEY>` the README names is a real key (issue 15 item 10).
#[test]
fn every_key_is_documented_and_every_documented_variable_exists() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let toml = std::fs::read_to_string(format!("{root}/config/default.toml")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let keys = durable_streams_server::config::sources::known_keys();
    for key in &keys {
        let (section, name) = key.split_once('.').unwrap();
        let in_section = toml
            .split(&format!("[{section}]"))
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap_or_else(|| panic!("no [{section}] in default.toml"));
        assert!(
            in_section.contains(&format!("\n{name} = ")) || in_section.contains(&format!("\n# {name} = ")),
            "{key} is missing from config/default.toml"
        );
        let var = durable_streams_server::config::sources::env_name(key);
        assert!(readme.contains(&format!("`{var}`")), "{var} is missing from README.md");
    }
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("DS_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[i + word.len().max(3)..];
        let Some((section, name)) = word.strip_prefix("DS_").and_then(|w| w.split_once("__")) else {
            continue;
        };
        let key = format!("{}.{}", section.to_ascii_lowercase(), name.to_ascii_lowercase());
        if key == "server.prot" {
            continue; // the README's example of a misspelt key
        }
        if let Some(plugin_key) = key.strip_prefix("storage.").filter(|_| !keys.contains(&key)) {
            // A bundled plugin's own setting: documented in default.toml's [storage].
            let flat = plugin_key.replace("__", ".");
            let last = flat.rsplit('.').next().unwrap_or(&flat);
            assert!(
                toml.contains(&format!("{last} = ")),
                "README names {word}, not in config/default.toml"
            );
            continue;
        }
        assert!(keys.contains(&key), "README names {word}, but there is no key {key}");
    }
}

/// Issue 16 prerequisite: `[storage]` keys other than mode, data_dir, plugin_dir and plugin
/// belong to the plugin, which refuses unknown or ill-typed ones naming key and source; a key
/// no plugin found could own is refused by the host; `config check` shows them.
#[test]
fn plugin_settings_are_the_plugins_to_check() {
    let dir = tempdir::Dir::new();
    let data = dir.path.join("data");
    let base = [("DS_STORAGE__MODE", "acid"), ("DS_STORAGE__DATA_DIR", data.to_str().unwrap())];
    let with = |extra: &[(&'static str, &'static str)]| [&base[..], extra].concat();

    std::fs::write(dir.path.join("local.toml"), "[storage]\nacid_shrad_count = 2\n").unwrap();
    let out = run(&dir.path, &["config", "check"], &base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("storage.acid_shrad_count") && err.contains("local.toml"),
        "{err}"
    );
    std::fs::remove_file(dir.path.join("local.toml")).unwrap();

    let out = run(&dir.path, &["config", "check"], &with(&[("DS_STORAGE__ACID_SHARD_COUNT", "many")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("storage.acid_shard_count") && err.contains("DS_STORAGE__ACID_SHARD_COUNT"),
        "{err}"
    );

    let out = run(&dir.path, &["config", "check"], &with(&[("DS_STORAGE__SHARDS", "2")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("storage.shards") && err.contains("DS_STORAGE__SHARDS"),
        "a key no plugin owns: {err}"
    );

    // The jetstream plugin refuses to run without the cluster's addresses, or with a bad one.
    for (env, needle) in [
        (vec![("DS_STORAGE__MODE", "jetstream")], "storage.jetstream.urls is not set"),
        (
            vec![
                ("DS_STORAGE__MODE", "jetstream"),
                ("DS_STORAGE__JETSTREAM__URLS", "nats://a:4222,not a url"),
            ],
            "is not a NATS address",
        ),
        (
            vec![
                ("DS_STORAGE__MODE", "jetstream"),
                ("DS_STORAGE__JETSTREAM__URLS", "nats://a:4222"),
                ("DS_STORAGE__JETSTREAM__REPLICAS", "9"),
            ],
            "storage.jetstream.replicas (from environment variable DS_STORAGE__JETSTREAM__REPLICAS)",
        ),
    ] {
        let out = run(&dir.path, &["config", "check"], &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(2) && err.contains(needle), "{env:?}: {err}");
    }

    // Another plugin's keys are left alone (switching modes by configuration alone works).
    let out = run(
        &dir.path,
        &["config", "check"],
        &[
            ("DS_STORAGE__MODE", "memory"),
            ("DS_STORAGE__ACID_SHARD_COUNT", "8"),
            ("DS_STORAGE__FILE_FAST_SYNC_INTERVAL_MS", "250"),
        ],
    );
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        line(&text, "acid_shard_count").contains("= 8") && line(&text, "acid_shard_count").contains("DS_STORAGE__ACID_SHARD_COUNT"),
        "{text}"
    );
    assert!(text.contains("checked by the storage plugin"), "{text}");
    assert!(!data.exists(), "config check opened nothing");
}

/// The template plugin shows a setting of its own, set by configuration alone.
#[test]
fn the_template_plugin_has_a_setting_of_its_own() {
    let plugins = common::plugin_dir_with("ds_template_plugin");
    let env = [
        ("DS_STORAGE__MODE", "template"),
        ("DS_STORAGE__PLUGIN_DIR", plugins.path.to_str().unwrap()),
        // The server's two internal state streams (subscriptions, keys) count too.
        ("DS_STORAGE__TEMPLATE_MAX_STREAMS", "3"),
    ];
    let s = common::Server::start(&env);
    let c = reqwest::blocking::Client::new();
    assert_eq!(c.put(s.url("/v1/stream/one")).send().unwrap().status(), 201);
    assert_eq!(
        c.put(s.url("/v1/stream/two")).send().unwrap().status(),
        507,
        "template_max_streams = 3"
    );
    drop(s);
    let bad = [env[0], env[1], ("DS_STORAGE__TEMPLATE_MAX_STREAM", "1")];
    let log = common::Server::try_start(&bad)
        .err()
        .expect("an unknown template_* key refuses start");
    assert!(
        log.contains("storage.template_max_stream") && log.contains("DS_STORAGE__TEMPLATE_MAX_STREAM"),
        "{log}"
    );
}
