//! The `durable-streams-server` binary: command line, logging, then the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use durable_streams_core::abi::Capabilities;
use durable_streams_server::{cli, open_storage_for, plugin, Config, ConfigLoadOptions, OpenIntent};

/// mimalloc rather than glibc's malloc: allocation and free were about a quarter of a host's CPU
/// per append (BENCHMARKS.md, issue 26). Library users choose their own allocator.
#[global_allocator]
static ALLOCATOR: durable_streams_alloc::Mimalloc = durable_streams_alloc::Mimalloc;

/// Durable Streams protocol server with plugin storage engines.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  durable-streams-server\n  durable-streams-server --profile prod\n  DS_STORAGE__MODE=memory DS_SERVER__PORT=8080 durable-streams-server serve\n  durable-streams-server plugins"
)]
struct Cli {
    /// Configuration profile: loads config/<profile>.toml over config/default.toml.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Extra configuration file, applied after the profile and config/local.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory holding default.toml, profiles and local.toml.
    #[arg(long, global = true, default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the protocol (the default).
    #[command(
        after_help = "Examples:\n  durable-streams-server serve\n  DS_STORAGE__MODE=file-durable DS_STORAGE__DATA_DIR=./data durable-streams-server serve"
    )]
    Serve,
    /// List every plugin found, with its modes and capabilities, and why any was rejected.
    #[command(
        after_help = "Examples:\n  durable-streams-server plugins\n  DS_STORAGE__PLUGIN_DIR=/opt/ds/plugins durable-streams-server plugins\n  durable-streams-server plugins check target/release/libmy_engine.so --mode my-mode"
    )]
    Plugins {
        #[command(subcommand)]
        action: Option<PluginsCommand>,
    },
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Access tokens for `auth.mode = "token"` (kept in auth.tokens_file; a running server
    /// picks up changes within a second).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the streams in the configured engine (offline: stop the server first for file modes).
    #[command(
        after_help = "Examples:\n  DS_STORAGE__MODE=file-durable DS_STORAGE__DATA_DIR=./data durable-streams-server list\n  durable-streams-server list --prefix chat/"
    )]
    List {
        /// Only streams whose name starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// A running server to list (its scheme, host and port, the stream base path optional),
        /// through its listing API; else the configured engine's files (server stopped).
        #[arg(long)]
        url: Option<String>,
        /// With --url: an access token with admin (auth.mode = "token").
        #[arg(long, env = "DS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Export streams (data and offsets, content type, lifetime, closure, forks, producer state)
    /// and subscriptions as versioned JSON lines: from a running server with --url, else from
    /// the configured engine's files (server stopped).
    #[command(
        after_help = "Examples:\n  durable-streams-server export --url http://127.0.0.1:4437 --output backup.jsonl\n  DS_STORAGE__MODE=file-durable durable-streams-server export --output streams.jsonl\n  durable-streams-server export --prefix chat/ > chat.jsonl"
    )]
    Export {
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, default_value = "")]
        prefix: String,
        /// A running server to export from (its scheme, host and port; the stream base path is
        /// http.stream_base_path).
        #[arg(long)]
        url: Option<String>,
        /// With --url: an access token with admin over every name (auth.mode = "token").
        #[arg(long, env = "DS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Import an export: into a running server with --url, else into the configured engine's
    /// files (server stopped). Migrates between engines; offsets and producer state are kept.
    #[command(
        after_help = "Examples:\n  durable-streams-server import --url http://127.0.0.1:4437 --input backup.jsonl\n  DS_STORAGE__MODE=acid durable-streams-server import --input streams.jsonl\n  durable-streams-server import --input streams.jsonl --on-conflict replace"
    )]
    Import {
        /// Read from here instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// What to do when a stream (or subscription) already exists.
        #[arg(long, value_enum, default_value = "fail")]
        on_conflict: cli::Conflict,
        /// A running server to import into.
        #[arg(long)]
        url: Option<String>,
        /// With --url: an access token with admin over every name (auth.mode = "token").
        #[arg(long, env = "DS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// The conformance kit: load a plugin .so as the server would and run the engine contract
    /// suite against one of its modes (plus crash-and-reopen cases if the mode is durable).
    /// Prints `N passed, N failed`; exits 1 if any case fails.
    #[command(
        after_help = "Examples:\n  durable-streams-server plugins check target/debug/libmy_engine.so --mode my-mode\n  durable-streams-server plugins check /opt/ds/plugins/libds_plugin_file.so --mode file-durable"
    )]
    Check {
        /// Path to the plugin's .so file.
        path: PathBuf,
        /// The storage mode to check.
        #[arg(long)]
        mode: String,
        /// Scratch directory for the engines' data (a fresh temporary one by default).
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token and print it (the only time it is shown; only its hash is kept).
    #[command(
        after_help = "Examples:\n  durable-streams-server token issue --scope 'chat/:read,append' --ttl 1h\n  durable-streams-server token issue --scope '*:all' --label ops\n  durable-streams-server token issue --scope 'logs/:read' --scope 'logs/app/:append' --ttl 30d"
    )]
    Issue {
        /// PREFIX:OPERATIONS, repeatable. Operations: read, append, create, delete, admin, all.
        /// A prefix ending in '/' covers the names under it; otherwise that name and the names
        /// under it ('chat' covers chat and chat/x, not chatroom); '*' covers every name.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime: a number with s, m, h or d (none: until revoked).
        #[arg(long)]
        ttl: Option<String>,
        /// A note shown by `token list`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the tokens: id, scopes, expiry, revoked.
    List,
    /// Revoke a token by its id (the 12 characters after `dst_`).
    Revoke { id: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration and where each value came from; exit 2 if it is invalid.
    #[command(
        after_help = "Examples:\n  durable-streams-server config check\n  durable-streams-server --profile prod config check\n  DS_SERVER__PORT=8080 durable-streams-server config check"
    )]
    Check,
}

fn init_logging(config: &Config, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn list_plugins(config: &Config) -> ExitCode {
    let (ok, bad) = plugin::discover(plugin::loader_bundled_dir().as_deref(), config.storage.plugin_dir.as_deref());
    for p in &ok {
        println!(
            "{} {} (ABI {}) at {}",
            p.info.name,
            p.info.version,
            p.info.abi_version,
            p.path.display()
        );
        for m in p.info.modes.iter() {
            println!(
                "  mode {:<14} capabilities: {}  {}",
                m.mode,
                m.capabilities.names().join(","),
                m.description
            );
        }
    }
    for r in &bad {
        println!("rejected {}: {}", r.path.display(), r.reason);
    }
    if ok.is_empty() {
        println!(
            "no plugin found; looked in {}",
            durable_streams_server::preflight::plugin_places(config)
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Opens the configured engine and runs an offline command against it. Modes that keep nothing
/// between processes (memory) are refused: there would be nothing to list, and an import would
/// be thrown away.
fn offline(
    config: &Config,
    intent: OpenIntent,
    command: &'static str,
    f: impl FnOnce(&plugin::Storage) -> Result<(), cli::TransferError>,
) -> ExitCode {
    let storage = match open_storage_for(config, intent) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            if e.to_string().contains("in use by another process") {
                eprintln!("durable-streams-server: while the server runs, ask it instead: `{command} --url http://HOST:PORT` (list, export and import take --url)");
            }
            return ExitCode::FAILURE;
        }
    };
    let result = if storage.capabilities().contains(Capabilities::DURABLE) {
        f(&storage)
    } else {
        Err(cli::TransferError::NotDurable {
            mode: config.storage.mode.clone(),
            command,
        })
    };
    let _ = storage.call_sync(|e| e.shutdown());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses early, before any engine is opened.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("durable-streams-server: {e}");
    ExitCode::FAILURE
}

fn exported(d: cli::Exported) {
    eprintln!(
        "exported {}, {} bytes, {}",
        cli::count(d.streams, "stream"),
        d.bytes,
        cli::count(d.subscriptions, "subscription")
    );
}

/// `export --url`: the running server writes it; a file is checked complete afterwards.
fn remote_export(config: &Config, server: &cli::RemoteTarget, output: Option<PathBuf>, prefix: &str) -> ExitCode {
    let base = config.base_path();
    let url = &server.url;
    let Some(path) = output else {
        return match cli::remote_export(server, base, prefix, &mut std::io::stdout().lock()) {
            Ok(n) => {
                eprintln!("exported {n} bytes from {url}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    };
    let written = std::fs::File::create(&path)
        .map_err(|source| cli::TransferError::Output {
            path: path.clone(),
            source,
        })
        .and_then(|f| cli::remote_export(server, base, prefix, &mut std::io::BufWriter::new(f)))
        .and_then(|_| cli::check(&mut std::io::BufReader::new(std::fs::File::open(&path)?)));
    match written {
        Ok(plan) => {
            eprintln!(
                "exported {}, {} bytes, {} from {url}",
                cli::count(plan.streams.len(), "stream"),
                plan.bytes,
                cli::count(plan.subscriptions.len(), "subscription")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            fail(e)
        }
    }
}

fn export_command(config: &Config, output: Option<PathBuf>, prefix: String, server: Option<cli::RemoteTarget>) -> ExitCode {
    if let Some(server) = server {
        return remote_export(config, &server, output, &prefix);
    }
    let Some(path) = output else {
        return offline(config, OpenIntent::ReadExisting, "export", |s| {
            exported(cli::export(s, &prefix, &mut std::io::stdout().lock())?);
            Ok(())
        });
    };
    let file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(source) => return fail(cli::TransferError::Output { path, source }),
    };
    let code = offline(config, OpenIntent::ReadExisting, "export", |s| {
        let mut out = std::io::BufWriter::new(file);
        let done = cli::export(s, &prefix, &mut out).map_err(|e| match e {
            cli::TransferError::Io(source) => cli::TransferError::Output {
                path: path.clone(),
                source,
            },
            other => other,
        })?;
        exported(done);
        Ok(())
    });
    if code != ExitCode::SUCCESS {
        let _ = std::fs::remove_file(&path);
    }
    code
}

fn import_command(config: &Config, input: Option<PathBuf>, on_conflict: cli::Conflict, server: Option<cli::RemoteTarget>) -> ExitCode {
    let scratch = std::env::temp_dir();
    // Standard input is kept in a scratch file: the export is read once to check it whole,
    // then again to import it.
    let (path, temp) = match input {
        Some(p) => (p, None),
        None => {
            let p = scratch.join(format!("ds-import-stdin-{}.jsonl", std::process::id()));
            let copied = std::fs::File::create(&p).and_then(|mut f| std::io::copy(&mut std::io::stdin().lock(), &mut f));
            if let Err(source) = copied {
                let _ = std::fs::remove_file(&p);
                return fail(cli::TransferError::Output { path: p, source });
            }
            (p.clone(), Some(p))
        }
    };
    let plan = std::fs::File::open(&path)
        .map_err(|source| cli::TransferError::Input {
            path: path.clone(),
            source,
        })
        .and_then(|f| cli::check(&mut std::io::BufReader::new(f)));
    let code = match (plan, server) {
        (Err(e), _) => fail(e),
        (Ok(_), Some(server)) => match cli::remote_import(&server, config.base_path(), &path, on_conflict) {
            Ok(r) => {
                let n = |k: &str| r[k].as_u64().unwrap_or(0) as usize;
                eprintln!(
                    "imported {} into {}, skipped {}, replaced {}, {}",
                    cli::count(n("imported"), "stream"),
                    server.url,
                    r["skipped"],
                    r["replaced"],
                    cli::count(n("subscriptions"), "subscription")
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        (Ok(plan), None) => offline(config, OpenIntent::Write, "import", |s| {
            let r = cli::import(s, &plan, &path, on_conflict, &scratch, &cli::LogSink(s))?;
            eprintln!(
                "imported {}, skipped {}, replaced {}, {}",
                cli::count(r.imported, "stream"),
                r.skipped,
                r.replaced,
                cli::count(r.subscriptions, "subscription")
            );
            if r.without_writer_state > 0 {
                eprintln!(
                    "note: this engine cannot restore producer state: {} streams were imported with their bytes and closure only",
                    r.without_writer_state
                );
            }
            Ok(())
        }),
    };
    if let Some(t) = temp {
        let _ = std::fs::remove_file(t);
    }
    code
}

/// Where configuration was looked for, and which of its files were there (for `config check`,
/// the start log and a failed load).
fn config_places(dir: &std::path::Path, profile: Option<&str>) -> (String, bool) {
    let shown = std::fs::canonicalize(dir)
        .or_else(|_| std::env::current_dir().map(|c| c.join(dir)))
        .unwrap_or_else(|_| dir.to_path_buf());
    let mut files = vec!["default.toml".to_string()];
    files.extend(profile.map(|p| format!("{p}.toml")));
    files.push("local.toml".into());
    let listed: Vec<String> = files
        .iter()
        .map(|f| format!("{f} {}", if dir.join(f).is_file() { "found" } else { "absent" }))
        .collect();
    let has_default = dir.join("default.toml").is_file();
    (format!("config directory {} ({})", shown.display(), listed.join(", ")), has_default)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (places, has_default) = config_places(&cli.config_dir, cli.profile.as_deref());
    let opts = ConfigLoadOptions {
        config_dir: Some(cli.config_dir.clone()),
        profile: cli.profile.clone(),
        config_file: cli.config.clone(),
        ignore_env: false,
    };
    let (config, settings) = match Config::load_with_sources(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            // A file that was asked for and is missing: say where it was looked for.
            if e.to_string().contains("not found") {
                eprintln!("durable-streams-server: looked in the {places}; --config-dir names the directory holding default.toml and the profiles");
            }
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config(ConfigCommand::Check)) = &cli.command {
        println!("# {places}");
        if !has_default {
            println!("# no default.toml there: built-in defaults and DS_* variables only (--config-dir names another directory)");
        }
        print!("{}", durable_streams_server::config::sources::render(&config, &settings));
        for w in durable_streams_server::preflight::warnings(&config) {
            eprintln!("durable-streams-server: warning: {w}");
        }
        let problems = durable_streams_server::preflight::check(&config);
        if problems.is_empty() {
            println!(
                "# configuration is valid: mode {:?} found, TLS files and data directory usable",
                config.storage.mode
            );
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            eprintln!("durable-streams-server: {p}");
        }
        println!("# {} problem(s): the server would not start", problems.len());
        return ExitCode::from(2);
    }
    let filter = match config.log_filter() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Offline commands keep stderr for their own output.
    let filter = if !matches!(cli.command, None | Some(Command::Serve)) && std::env::var_os("RUST_LOG").is_none() {
        "warn".to_string()
    } else {
        filter
    };
    init_logging(&config, &filter);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Plugins { action: None } => list_plugins(&config),
        Command::Plugins {
            action: Some(PluginsCommand::Check { path, mode, scratch }),
        } => {
            let scratch = scratch.unwrap_or_else(|| std::env::temp_dir().join(format!("ds-plugin-check-{}", std::process::id())));
            let result = cli::kit::check(&path, &mode, &scratch, &config);
            let _ = std::fs::remove_dir_all(&scratch);
            match result {
                Ok(report) => {
                    println!("{}", report.render());
                    if report.failed() == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("durable-streams-server: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Config(_) => ExitCode::SUCCESS,
        Command::Token(t) => {
            let path = config.auth.tokens_path(&config.storage.data_dir);
            // Name the file: from another directory, another data_dir means another file.
            let shown = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            match (&t, path.exists()) {
                (TokenCommand::Issue { .. }, false) => eprintln!("tokens file {} (new)", shown.display()),
                (_, false) => eprintln!(
                    "warning: tokens file {} does not exist (auth.tokens_file, or <storage.data_dir>/auth/tokens.json: is this the server's data_dir?)",
                    shown.display()
                ),
                _ => eprintln!("tokens file {}", shown.display()),
            }
            let result = match t {
                TokenCommand::Issue { scopes, ttl, label } => cli::tokens::issue(&path, &scopes, ttl.as_deref(), &label),
                TokenCommand::List => cli::tokens::list(&path),
                TokenCommand::Revoke { id } => cli::tokens::revoke(&path, &id),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("durable-streams-server: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::List {
            prefix,
            url: Some(url),
            token,
        } => match cli::remote_list(
            &cli::RemoteTarget { url, token },
            config.base_path(),
            &prefix,
            &mut std::io::stdout().lock(),
        ) {
            Ok(n) => {
                eprintln!("{}", cli::count(n, "stream"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("durable-streams-server: {e}");
                ExitCode::FAILURE
            }
        },
        Command::List { prefix, url: None, .. } => offline(&config, OpenIntent::ReadExisting, "list", |s| {
            let n = cli::list(s, &prefix, &mut std::io::stdout().lock())?;
            eprintln!("{}", cli::count(n, "stream"));
            Ok(())
        }),
        Command::Export {
            output,
            prefix,
            url,
            token,
        } => export_command(&config, output, prefix, url.map(|url| cli::RemoteTarget { url, token })),
        Command::Import {
            input,
            on_conflict,
            url,
            token,
        } => import_command(&config, input, on_conflict, url.map(|url| cli::RemoteTarget { url, token })),
        Command::Serve => {
            if has_default {
                tracing::info!("configuration from the {places}");
            } else {
                tracing::warn!("configuration: no default.toml in the {places}; running on built-in defaults and DS_* variables (--config-dir names the directory)");
            }
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("durable-streams-server: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(durable_streams_server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("durable-streams-server: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}
