//! The `faultline` command: a thin layer of argument parsing over the server and the store.
#![forbid(unsafe_code)]

mod backup;
mod client;
mod config;
mod demo;
mod keys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use faultline_server::{AppState, ServerConfig};
use faultline_store::Store;

use crate::config::{Overrides, Validated};

#[derive(Parser)]
#[command(name = "faultline", version, about = "The fault service for fleets of managed network sites")]
struct Cli {
    /// A TOML configuration file (see `faultline config default`).
    #[arg(long, env = "FAULTLINE_CONFIG", global = true)]
    config: Option<PathBuf>,
    // Under a heading of their own: global, they are in every command's help, and the API
    // client (`faults`, `sites`) ignores them.
    #[command(flatten, next_help_heading = "Service settings")]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrating the database first).
    Serve {
        /// Load a realistic demo fleet history and print a share link.
        #[arg(long, env = "FAULTLINE_DEMO")]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage customers.
    #[command(subcommand)]
    Customers(keys::CustomersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create customers with a realistic fleet fault history; prints `<customer> <API key>` lines.
    Demo(demo::DemoArgs),
    /// Manage the keys that sign access tokens.
    #[command(subcommand, name = "signing-keys")]
    SigningKeys(keys::SigningKeysCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Copy the SQLite database, while it is in use, to a new file (PostgreSQL: pg_dump).
    Backup(backup::BackupArgs),
    /// Replace the SQLite database by a backup; refused while `serve` runs on it.
    Restore(backup::RestoreArgs),
    /// List, show, resolve and comment faults on a running service (API client; docs/cli.md).
    #[command(subcommand)]
    Faults(client::FaultsCommand),
    /// List sites on a running service (API client; docs/cli.md).
    #[command(subcommand)]
    Sites(client::SitesCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the commented default configuration file.
    Default,
    /// Print the effective configuration after file, environment and flags.
    Show,
}

/// mimalloc instead of the system allocator, for Rust and (through mimalloc's `override`
/// feature, which replaces `malloc` itself) for the embedded SQLite: both allocate many small,
/// short-lived objects, which mimalloc serves from per-thread free lists more cheaply than
/// glibc's malloc. Built with `no_thp`: mimalloc would otherwise ask the kernel for transparent
/// huge pages for its memory, and each thread's heap would then keep whole huge pages resident
/// for a few small objects (the process has a thread for each SQLite connection).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Default) => {
            print!("{}", config::DEFAULT_CONFIG);
            return ExitCode::SUCCESS;
        }
        Command::Openapi => {
            print!("{}", faultline_server::openapi::document_json());
            return ExitCode::SUCCESS;
        }
        // The API client: no settings, no database, no log; only a running service's URL.
        Command::Faults(command) => return runtime().block_on(client::run(client::Command::Faults(command))),
        Command::Sites(command) => return runtime().block_on(client::run(client::Command::Sites(command))),
        _ => {}
    }
    let settings = match config::load(cli.config.as_deref(), &cli.overrides) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("faultline: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.json_logs);
    match runtime().block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed::Config(message)) => {
            eprintln!("faultline: {message}");
            ExitCode::from(2)
        }
        Err(Failed::Runtime(message)) => {
            eprintln!("faultline: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

/// Why a command failed, which decides its exit code: a setting to fix (2), or something that
/// went wrong while running (1).
enum Failed {
    Config(String),
    Runtime(String),
}

impl From<String> for Failed {
    fn from(message: String) -> Failed {
        Failed::Runtime(message)
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FAULTLINE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        // sqlx warns once per pooled connection that a database outage breaks; the outage
        // itself is logged once by the store.
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json { builder.json().init() } else { builder.init() }
}

async fn open_store(settings: &Validated) -> Result<Arc<dyn Store>, Failed> {
    faultline_store::open(&settings.database_url).await.map_err(|e| {
        let message = format!(
            "cannot open the database {}: {e} (set by {})",
            faultline_store::redact_url(&settings.database_url),
            config::setting("database_url")
        );
        match e {
            faultline_store::StoreError::Config(_) => Failed::Config(message),
            _ => Failed::Runtime(message),
        }
    })
}

async fn run(command: Command, settings: Validated) -> Result<(), Failed> {
    // Every command that opens a SQLite database holds it against a restore until it ends
    // (`serve` takes its own locks; backup reads a copy; restore takes the exclusive one).
    let _using = match &command {
        Command::Migrate
        | Command::Customers(_)
        | Command::Keys(_)
        | Command::SigningKeys(_)
        | Command::Demo(_) => backup::hold_using_lock(&settings.database_url)?,
        _ => Vec::new(),
    };
    match command {
        Command::Serve { demo } => serve(settings, demo).await,
        Command::Migrate => {
            let store = open_store(&settings).await?;
            let applied = store.applied_migrations().await.map_err(|e| e.to_string())?;
            eprintln!("faultline: database is at migration {}", applied.last().copied().unwrap_or(0));
            Ok(())
        }
        Command::Customers(cmd) => Ok(keys::customers(cmd, &*open_store(&settings).await?).await?),
        Command::Keys(cmd) => Ok(keys::keys(cmd, &*open_store(&settings).await?).await?),
        Command::SigningKeys(cmd) => Ok(keys::signing_keys(cmd, &*open_store(&settings).await?).await?),
        Command::Demo(args) => {
            Ok(demo::demo(args, &*open_store(&settings).await?, settings.retention).await?)
        }
        Command::Config(ConfigCommand::Show) => {
            println!("{settings:#?}");
            Ok(())
        }
        Command::Backup(args) => backup::backup(&args, &settings.database_url),
        Command::Restore(args) => backup::restore(&args, &settings.database_url),
        Command::Config(ConfigCommand::Default)
        | Command::Openapi
        | Command::Faults(_)
        | Command::Sites(_) => Ok(()),
    }
}

async fn serve(settings: Validated, demo: bool) -> Result<(), Failed> {
    let shutdown = shutdown_signal();
    // The port first: a port in use is found before anything is created.
    let listener = tokio::net::TcpListener::bind(settings.listen).await.map_err(|e| {
        format!("cannot listen on {}: {e} (set by {})", settings.listen, config::setting("listen"))
    })?;
    warn_if_connections_exceed_open_files(settings.max_connections);
    let _running = backup::hold_running_lock(&settings.database_url)?;
    let store = open_store(&settings).await?;
    let bootstrapped = keys::bootstrap(&*store).await?;
    if let Some((customer, secret)) = &bootstrapped {
        eprintln!(
            "faultline: new database; created customer {} and an admin API key.\n\
             faultline: the key is printed once, below. Store it now: only its hash is kept.",
            customer.id
        );
        println!("{secret}");
    }
    match (demo, &bootstrapped) {
        (true, Some((customer, _))) => {
            demo::load_for_serve(&*store, &customer.id, settings.retention).await?
        }
        (true, None) => {
            eprintln!("faultline: --demo: the database is not new; demo data is only loaded into a new one")
        }
        (false, _) => {}
    }
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let config = ServerConfig {
        default_rate_limit: settings.rate_limit,
        token_rate_limit: settings.token_rate_limit,
        body_limit: settings.body_limit,
        request_timeout: settings.request_timeout,
        shutdown_grace: settings.shutdown_grace,
        short_link_base: settings.short_link_base.clone(),
        retention: settings.retention,
        heartbeat_interval: settings.heartbeat_interval,
        heartbeat_misses: settings.heartbeat_misses,
        frame_ancestors: settings.frame_ancestors.clone(),
        alertmanager_labels: settings.alertmanager_labels.clone(),
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        body_min_rate: settings.body_min_rate,
        max_connections: settings.max_connections,
        max_concurrent_requests: settings.max_concurrent_requests,
        webhook_timeout: settings.webhook_timeout,
        webhook_retry_schedule: settings.webhook_retry_schedule.clone(),
        webhook_allowed_hosts: settings.webhook_allowed_hosts.clone(),
        ..ServerConfig::new(public_url.clone())
    };
    tracing::info!(listen = %local, public_url, database = store.backend().name(), "faultline serving");
    let state = AppState::load(store.clone(), config)
        .await
        .map_err(|e| format!("cannot load shared secrets: {e}"))?;
    if let (true, Some((customer, _))) = (demo, &bootstrapped) {
        // A week-long read-only link to the demo fleet, to open in a browser at once.
        let request = faultline_core::scope::MintRequest {
            expire_after_minutes: 7 * 24 * 60,
            scope: Default::default(),
            label: "demo".to_owned(),
        };
        let view = faultline_server::tokens::mint(&state, &customer.id, "system", request, None)
            .await
            .map_err(|e| format!("cannot mint the demo share link: {e:?}"))?;
        eprintln!("faultline: --demo: share link (read-only, 7 days): {}", view.short_link);
    }
    faultline_server::serve(listener, state, shutdown).await.map_err(|e| e.to_string())?;
    store.close().await;
    tracing::info!("faultline stopped");
    Ok(())
}

/// Each connection is a file descriptor: say so at start if `--max-connections` cannot be
/// reached before the process runs out of them (the soft `ulimit -n`; Linux's
/// `/proc/self/limits`), leaving room for the database's files and connections.
fn warn_if_connections_exceed_open_files(max_connections: usize) {
    const RESERVE: usize = 128;
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && max_connections + RESERVE > soft
    {
        tracing::warn!(
            max_connections,
            open_files = soft,
            "--max-connections is above what the open-file limit allows (it needs about {RESERVE} more for \
             the database and logs): raise `ulimit -n` or lower --max-connections"
        );
    }
}

/// SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not when the
/// future is first awaited: `serve` calls it before opening the database, so that a SIGTERM
/// during start-up (migrations, the demo's load) is kept and answered by a clean stop once the
/// server runs, instead of killing the process.
/// A signal's next delivery; never, if its handler could not be installed.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let (terminate, interrupt) = (signals.0.as_mut(), signals.1.as_mut());
            tokio::select! { () = received(terminate) => {}, () = received(interrupt) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
