//! The command-line client: `faultline faults …` and `faultline sites …` talk to a running
//! faultline over its HTTP API, with an API key, as any other API client does. Nothing here
//! opens the database or reads the service's settings.
//!
//! - this file: the commands' arguments, what each one asks the API, and exit codes;
//! - `api.rs`: the HTTP requests, the error envelope, following list cursors;
//! - `render.rs`: tables and the one-fault view.
//!
//! Usage and examples: `docs/cli.md`.

mod api;
mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use api::{Api, Failure, Listing};

/// Where `faultline serve` listens when nothing else is configured (`listen` in
/// `default-config.toml`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The service and the credential, on every client command.
#[derive(Args)]
pub struct Connection {
    /// Base URL of the faultline service.
    #[arg(long, env = "FAULTLINE_URL", default_value = DEFAULT_URL)]
    url: String,
    /// API key (flk_…) to act with; never printed.
    #[arg(
        long,
        env = "FAULTLINE_KEY",
        hide_env_values = true,
        value_parser = non_empty()
    )]
    key: String,
    /// `table` for people, `json` for the API's answer unchanged.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

fn non_empty() -> clap::builder::NonEmptyStringValueParser {
    clap::builder::NonEmptyStringValueParser::new()
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum FaultsCommand {
    /// List faults, newest first.
    List(FaultsList),
    /// Show one fault with its comments.
    Get {
        /// The fault's id (flt_…).
        #[arg(value_parser = non_empty())]
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Resolve a fault, optionally adding a comment in the same step.
    Resolve {
        /// The fault's id (flt_…).
        #[arg(value_parser = non_empty())]
        id: String,
        /// A comment added with the resolve.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Add a comment to a fault.
    Comment {
        /// The fault's id (flt_…).
        #[arg(value_parser = non_empty())]
        id: String,
        /// The comment (1 to 2000 characters).
        text: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Args)]
pub struct FaultsList {
    /// unresolved or resolved (comma list).
    #[arg(long)]
    status: Option<String>,
    /// LOW, MEDIUM, HIGH, CRITICAL or WARNING (comma list; any case).
    #[arg(long)]
    severity: Option<String>,
    /// A site id (or any element of the ancestry path, or a resource id).
    #[arg(long)]
    site: Option<String>,
    /// A fault type, e.g. wantunnel (comma list).
    #[arg(long = "type")]
    fault_type: Option<String>,
    /// Text in the message or the cause (case-insensitive).
    #[arg(long)]
    q: Option<String>,
    /// How many faults at most; past 100, the pages are followed.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Table: each fault's id first, and messages whole (rows wider than 120 columns).
    #[arg(long)]
    wide: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Subcommand)]
pub enum SitesCommand {
    /// List sites by name, with their status, last heartbeat and open faults.
    List(SitesList),
}

#[derive(Args)]
pub struct SitesList {
    /// online, offline or unknown (comma list).
    #[arg(long)]
    status: Option<String>,
    /// Text in the site's name or id.
    #[arg(long)]
    q: Option<String>,
    /// How many sites at most; past 100, the pages are followed.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    #[command(flatten)]
    connection: Connection,
}

/// A client command, as `main` hands it over.
pub enum Command {
    Faults(FaultsCommand),
    Sites(SitesCommand),
}

/// Run a client command; the exit code is 0, 1 (the API refused, or could not be reached) or 2
/// (a usage error: clap's own, or a `--url`/`--key` that cannot be used).
pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // The API's own words may hold anything: printed as safe, one-line text.
            eprintln!("error: {}", render::one_line(&failure.to_string()));
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Faults(FaultsCommand::List(args)) => {
            let api = Api::new(&args.connection.url, &args.connection.key)?;
            let severity = args.severity.map(|s| s.to_ascii_uppercase());
            let filters = [
                ("status", args.status),
                ("severity", severity),
                ("site", args.site),
                ("type", args.fault_type),
                ("q", args.q),
            ];
            let listing = api.list(&["fault"], &present(&filters), args.limit).await?;
            match args.connection.output {
                Output::Json => print_json_listing(&listing),
                Output::Table => {
                    let faults = listing.parse::<render::FaultRow>()?;
                    print(&render::faults_table(&faults, jiff::Timestamp::now(), args.wide));
                    note_more(&listing, "faults");
                    Ok(())
                }
            }
        }
        Command::Faults(FaultsCommand::Get { id, connection }) => {
            let api = Api::new(&connection.url, &connection.key)?;
            let body = api.get(&["fault", &id]).await?;
            print_fault(&body, connection.output)
        }
        Command::Faults(FaultsCommand::Resolve { id, comment, connection }) => {
            let api = Api::new(&connection.url, &connection.key)?;
            let body = match comment {
                Some(comment) => serde_json::json!({ "comment": comment }),
                None => serde_json::json!({}),
            };
            let answer = api.post(&["fault", &id, "resolve"], &body).await?;
            print_fault(&answer, connection.output)
        }
        Command::Faults(FaultsCommand::Comment { id, text, connection }) => {
            let api = Api::new(&connection.url, &connection.key)?;
            let answer =
                api.post(&["fault", &id, "comment"], &serde_json::json!({ "comment": text })).await?;
            print_fault(&answer, connection.output)
        }
        Command::Sites(SitesCommand::List(args)) => {
            let api = Api::new(&args.connection.url, &args.connection.key)?;
            let filters = [("status", args.status), ("q", args.q)];
            let listing = api.list(&["sites"], &present(&filters), args.limit).await?;
            match args.connection.output {
                Output::Json => print_json_listing(&listing),
                Output::Table => {
                    let sites = listing.parse::<render::SiteRow>()?;
                    print(&render::sites_table(&sites, jiff::Timestamp::now()));
                    note_more(&listing, "sites");
                    Ok(())
                }
            }
        }
    }
}

/// The filters given, as query pairs.
fn present<'a>(filters: &'a [(&'static str, Option<String>)]) -> Vec<(&'static str, &'a str)> {
    filters.iter().filter_map(|(name, value)| value.as_deref().map(|v| (*name, v))).collect()
}

fn print_fault(body: &[u8], output: Output) -> Result<(), Failure> {
    match output {
        Output::Json => print_bytes(body),
        Output::Table => {
            let fault: render::FaultRow = serde_json::from_slice(body)
                .map_err(|e| Failure::Other(format!("the service's answer is not a fault: {e}")))?;
            print(&render::fault_detail(&fault, jiff::Timestamp::now()));
            Ok(())
        }
    }
}

fn print_json_listing(listing: &Listing) -> Result<(), Failure> {
    print_bytes(&listing.json())
}

/// Past the rows shown, more match: say so on stderr, so that stdout stays the table.
fn note_more(listing: &Listing, what: &str) {
    if listing.meta.has_more {
        eprintln!("({} {what} shown; more match: raise --limit or narrow the filter)", listing.meta.count);
    }
}

fn print(text: &str) {
    // A closed pipe (`| head`) ends the output quietly.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The API's bytes as they came, ending with a newline.
fn print_bytes(body: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(body);
    if !body.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
    Ok(())
}
