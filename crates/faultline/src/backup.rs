//! `faultline backup` and `faultline restore` (SQLite), and the lock `faultline serve` holds on
//! its SQLite database so that a restore cannot replace it underneath. What is copied, checked
//! and renamed, and how, is the store's (`faultline_store::SqliteFile`); this module checks the
//! command line and says what happened.

use std::path::{Path, PathBuf};

use clap::Args;
use faultline_store::{Backend, BackupCheck, RunningLock, SqliteFile, StoreError};

use crate::{Failed, config};

#[derive(Args)]
pub struct BackupArgs {
    /// The file to write the copy to; refused if it exists, unless --force.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A backup written by `faultline backup`.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
}

/// `faultline backup --to FILE [--force]`.
pub fn backup(args: &BackupArgs, database_url: &str) -> Result<(), Failed> {
    let database = sqlite_database(database_url, Operation::Backup)?;
    if !database.path().is_file() {
        return Err(Failed::Config(format!(
            "there is no SQLite database at {}; check {}",
            database.path().display(),
            config::setting("database_url")
        )));
    }
    let to = &args.to;
    if to.is_dir() {
        return Err(Failed::Config(format!("--to {} is a directory; name a file in it", to.display())));
    }
    check_directory_of(to, |directory| format!("--to: the directory {directory} does not exist"))?;
    if names_one_of(to, &database.own_files()) {
        return Err(Failed::Config(format!(
            "--to {} is the database or one of its files; name another file",
            to.display()
        )));
    }
    if let Some(log) = SqliteFile::log_beside(to) {
        return Err(Failed::Config(format!(
            "{} is beside {}: that file looks like a database in use; name another file",
            log.display(),
            to.display()
        )));
    }
    if to.exists() && !args.force {
        return Err(Failed::Config(format!(
            "{} exists; name a new file, or add --force to replace it",
            to.display()
        )));
    }
    let check = database.backup_to(to, args.force).map_err(failed)?;
    eprintln!(
        "faultline: wrote {} ({}): a copy of {} at migration {}",
        to.display(),
        size(&check),
        database.path().display(),
        check.migration
    );
    Ok(())
}

/// `faultline restore --from FILE`.
pub fn restore(args: &RestoreArgs, database_url: &str) -> Result<(), Failed> {
    let database = sqlite_database(database_url, Operation::Restore)?;
    let from = &args.from;
    if !from.is_file() {
        let what = if from.is_dir() { "is a directory" } else { "does not exist" };
        return Err(Failed::Config(format!("--from {} {what}; name a backup file", from.display())));
    }
    check_directory_of(database.path(), |directory| {
        format!(
            "the database's directory {directory} does not exist; check {}",
            config::setting("database_url")
        )
    })?;
    if names_one_of(from, &database.own_files()) {
        return Err(Failed::Config(format!(
            "--from {} is the database to restore, or one of its files; name a backup",
            from.display()
        )));
    }
    let Some(lock) = database.try_lock().map_err(failed)? else {
        return Err(Failed::Runtime(format!(
            "{} is in use: a running `faultline serve`, another command on it (keys, demo, migrate, \
             ...) or another restore holds {}; stop it, then restore; nothing was changed",
            database.path().display(),
            database.lock_path().display()
        )));
    };
    let check = database.restore_from(from, &lock).map_err(failed)?;
    eprintln!(
        "faultline: restored {} from {} ({}, migration {})",
        database.path().display(),
        from.display(),
        size(&check),
        check.migration
    );
    Ok(())
}

/// For `faultline serve`: the locks of its SQLite database, to hold until it stops (none on
/// PostgreSQL, where `faultline restore` does not run): the shared lock every user of the
/// database holds, and the one server's.
pub fn hold_running_lock(database_url: &str) -> Result<Vec<RunningLock>, Failed> {
    let mut held = hold_using_lock(database_url)?;
    if held.is_empty() {
        return Ok(held);
    }
    let database = sqlite_file(database_url)?;
    match database.try_lock_server().map_err(lock_failed)? {
        Some(lock) => held.push(lock),
        None => {
            return Err(Failed::Runtime(format!(
                "{} is in use: another `faultline serve` holds {}; one process serves a SQLite \
                 database (several replicas need PostgreSQL)",
                database.path().display(),
                database.server_lock_path().display()
            )));
        }
    }
    Ok(held)
}

/// For every command that opens a SQLite database: the lock that keeps `faultline restore`
/// from replacing it meanwhile, to hold until the command ends (none on PostgreSQL).
pub fn hold_using_lock(database_url: &str) -> Result<Vec<RunningLock>, Failed> {
    if !matches!(Backend::from_url(database_url), Ok(Backend::Sqlite)) {
        return Ok(Vec::new());
    }
    let database = sqlite_file(database_url)?;
    match database.try_lock_shared().map_err(lock_failed)? {
        Some(lock) => Ok(vec![lock]),
        None => Err(Failed::Runtime(format!(
            "{} is being replaced by a `faultline restore` (it holds {}); try again when it is done",
            database.path().display(),
            database.lock_path().display()
        ))),
    }
}

fn lock_failed(err: StoreError) -> Failed {
    Failed::Runtime(format!("{err} (the database is set by {})", crate::config::setting("database_url")))
}

#[derive(Clone, Copy)]
enum Operation {
    Backup,
    Restore,
}

/// The SQLite database of `database_url`; on PostgreSQL, the tool to use instead.
fn sqlite_database(database_url: &str, operation: Operation) -> Result<SqliteFile, Failed> {
    if matches!(Backend::from_url(database_url), Ok(Backend::Postgres)) {
        return Err(Failed::Config(
            match operation {
                Operation::Backup => {
                    "backup copies a SQLite database; on PostgreSQL use `pg_dump -Fc` \
                     (docs/operations.md, \"Backup and restore\")"
                }
                Operation::Restore => {
                    "restore replaces a SQLite database; on PostgreSQL restore a `pg_dump -Fc` archive \
                     with `pg_restore` (docs/operations.md, \"Backup and restore\")"
                }
            }
            .to_owned(),
        ));
    }
    sqlite_file(database_url)
}

fn sqlite_file(database_url: &str) -> Result<SqliteFile, Failed> {
    SqliteFile::of_url(database_url)
        .map_err(|e| Failed::Config(format!("{}: {e}", config::setting("database_url"))))
}

/// Exit 2, saying `missing` of it, unless the directory `path` would be in exists.
fn check_directory_of(path: &Path, missing: impl Fn(String) -> String) -> Result<(), Failed> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
            Err(Failed::Config(missing(parent.display().to_string())))
        }
        _ => Ok(()),
    }
}

/// Whether `path` names the same file as one of `files`, through links and relative paths.
fn names_one_of(path: &Path, files: &[PathBuf]) -> bool {
    let path = resolved(path);
    files.iter().any(|file| resolved(file) == path)
}

/// `path` with its directory (and the file itself, if it exists) resolved to an absolute path.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(file) = std::fs::canonicalize(path) {
        return file;
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(directory), Some(name)) => directory.join(name),
        _ => path.to_owned(),
    }
}

fn failed(err: StoreError) -> Failed {
    Failed::Runtime(err.to_string())
}

/// The backup's size, for people: `3.2 MiB, 3,356,672 bytes`.
fn size(check: &BackupCheck) -> String {
    let bytes = check.bytes;
    let grouped = bytes
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| String::from_utf8_lossy(c))
        .collect::<Vec<_>>()
        .join(",");
    let (value, unit) = match bytes {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GiB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MiB"),
        b => (b as f64 / 1024.0, "KiB"),
    };
    format!("{value:.1} {unit}, {grouped} bytes")
}
