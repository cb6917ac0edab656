//! The `durable-streams-server` binary: command line, logging, then the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use durable_streams_server::{plugin, Config, ConfigLoadOptions};

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
    Serve,
    /// List every plugin found, with its modes and capabilities, and why any was rejected.
    Plugins,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration and where each value came from; exit 2 if it is invalid.
    #[command(
        after_help = "Examples:\n  durable-streams-server config check\n  durable-streams-server --profile prod config check\n  DS_SERVER__PORT=8080 durable-streams-server config check"
    )]
    Check,
}

fn init_logging(config: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| config.log.rust_log.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config(ConfigCommand::Check)) = &cli.command {
        print!("{}", durable_streams_server::config::sources::render(&config, &settings));
        println!("# configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Plugins => list_plugins(&config),
        Command::Config(_) => ExitCode::SUCCESS,
        Command::Serve => {
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
                    ExitCode::FAILURE
                }
            }
        }
    }
}
