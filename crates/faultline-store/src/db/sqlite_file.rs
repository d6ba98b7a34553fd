//! The SQLite database as a file: the lock `faultline serve` holds on it, a consistent copy of
//! it taken while it is in use, and replacing it by such a copy. (docs/operations.md, "Backup
//! and restore", says why each step is done the way it is.)

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::sqlite::{Role, open_connection, path_of};
use crate::Backend;
use crate::error::{StoreError, StoreResult};

/// The files SQLite may keep beside a database file, by suffix: the write-ahead log, its index,
/// and the rollback journal. Each holds state of that one file and must never meet another.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Of those, the ones that may hold changes the database file lacks (the index only points
/// into the log).
const LOGS: [&str; 2] = ["-wal", "-journal"];

/// The database file named by a `sqlite://PATH` URL.
#[derive(Debug, Clone)]
pub struct SqliteFile {
    path: PathBuf,
}

/// What a backup holds, read from it once it passed its check.
#[derive(Debug, Clone, Copy)]
pub struct BackupCheck {
    /// The file's size in bytes.
    pub bytes: u64,
    /// The newest migration applied to it.
    pub migration: i64,
}

/// A lock of a database file: an OS lock (`flock` on Unix) on `PATH.lock` (shared by every
/// process using the database, exclusive while `faultline restore` replaces it) or on
/// `PATH.serve.lock` (the one server's), released when this is dropped or the process ends,
/// however it ends.
#[derive(Debug)]
pub struct RunningLock {
    _file: File,
}

/// Lock the file at `path` (created if missing), exclusively or shared; `None` when a lock
/// that excludes it is held elsewhere.
fn lock_file(path: &Path, exclusive: bool) -> StoreResult<Option<RunningLock>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| failed(format!("cannot open the lock file {}: {e}", path.display())))?;
    let locked = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    match locked {
        Ok(()) => Ok(Some(RunningLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(format!("cannot lock {}: {e}", path.display()))),
    }
}

impl SqliteFile {
    /// The file of a `sqlite://PATH` URL; a configuration error for any other URL.
    pub fn of_url(url: &str) -> StoreResult<SqliteFile> {
        if Backend::from_url(url)? != Backend::Sqlite {
            return Err(StoreError::Config(format!("'{}' is not a sqlite:// URL", crate::redact_url(url))));
        }
        Ok(SqliteFile { path: path_of(url)? })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PATH.lock`, the file [`RunningLock`] locks. It is never removed: a process could
    /// otherwise lock the removed file while another locks its replacement.
    pub fn lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// The database file and every file beside it that belongs to it (its log, log index,
    /// journal and lock).
    pub fn own_files(&self) -> Vec<PathBuf> {
        let sidecars = SIDECARS.iter().map(|suffix| with_suffix(&self.path, suffix));
        std::iter::once(self.path.clone())
            .chain(sidecars)
            .chain([self.lock_path(), self.server_lock_path()])
            .collect()
    }

    /// A write-ahead log or rollback journal beside the file at `path` that is not empty: the
    /// file is in use, or was when its last user stopped, and holds changes the file lacks.
    pub fn log_beside(path: &Path) -> Option<PathBuf> {
        LOGS.iter()
            .map(|suffix| with_suffix(path, suffix))
            .find(|log| std::fs::metadata(log).is_ok_and(|m| m.len() > 0))
    }

    /// `PATH.serve.lock`, which one `faultline serve` holds: one process serves a SQLite file.
    pub fn server_lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".serve.lock")
    }

    /// Take the database's lock for replacing it (`faultline restore`): `None` while any other
    /// process uses it (holds [`SqliteFile::try_lock_shared`]) or replaces it.
    pub fn try_lock(&self) -> StoreResult<Option<RunningLock>> {
        lock_file(&self.lock_path(), true)
    }

    /// Take the database's lock for using it (`serve` and every command that opens it): many
    /// may hold it at once; `None` while it is being replaced.
    pub fn try_lock_shared(&self) -> StoreResult<Option<RunningLock>> {
        lock_file(&self.lock_path(), false)
    }

    /// Take the lock only one `faultline serve` may hold; `None` when another server holds it.
    pub fn try_lock_server(&self) -> StoreResult<Option<RunningLock>> {
        lock_file(&self.server_lock_path(), true)
    }

    /// Copy the database, which may be in use, to `to`: one read transaction (`VACUUM INTO`),
    /// so the copy holds exactly the transactions committed when it began. The copy is written
    /// beside `to` under a temporary name, checked as [`SqliteFile::restore_from`] checks a
    /// backup, written to disk, then given its name: replacing `to` only when `replace`, and
    /// otherwise failing if `to` exists by then.
    pub fn backup_to(&self, to: &Path, replace: bool) -> StoreResult<BackupCheck> {
        let temporary = Temporary::beside(to, "partial")?;
        let target = temporary.path.to_str().ok_or_else(|| {
            failed(format!("cannot write {}: the backup's path must be UTF-8", to.display()))
        })?;
        {
            let source = open_connection(&self.path, Role::Reader).map_err(|e| {
                failed(format!("cannot open the SQLite database {}: {e}", self.path.display()))
            })?;
            source.execute("VACUUM INTO ?1", [target]).map_err(|e| {
                failed(format!("copying {} to {} failed: {e}", self.path.display(), temporary.path.display()))
            })?;
        }
        let migration = check_backup(&temporary.path)
            .map_err(|problem| failed(format!("the copy of {} {problem}", self.path.display())))?;
        remove_sidecars(&temporary.path)?;
        sync_file(&temporary.path)?;
        if replace {
            rename(&temporary.path, to)?;
        } else {
            match std::fs::hard_link(&temporary.path, to) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(failed(format!(
                        "{} was created while the backup ran; nothing was written to it",
                        to.display()
                    )));
                }
                // A file system without hard links: the name is checked, then taken.
                Err(_) if !to.exists() => rename(&temporary.path, to)?,
                Err(e) => return Err(failed(format!("cannot write {}: {e}", to.display()))),
            }
        }
        sync_directory_of(to)?;
        drop(temporary);
        Ok(BackupCheck { bytes: file_size(to)?, migration })
    }

    /// Replace the database by the backup `from`, which must be a faultline database that
    /// passes SQLite's `integrity_check` and was made by this version of faultline or an
    /// earlier one. `from` is copied beside the database and checked there; then the old
    /// database's log, log index and journal are removed (applied to the backup they would
    /// corrupt it) and the copy is renamed over the database, one atomic step. `_lock` is the
    /// database's [`RunningLock`]: nothing may serve the database meanwhile.
    pub fn restore_from(&self, from: &Path, _lock: &RunningLock) -> StoreResult<BackupCheck> {
        if let Some(log) = Self::log_beside(from) {
            return Err(failed(format!(
                "{} is beside {}: it holds changes the file alone lacks, so {} is not a \
                 self-contained backup; take one with `faultline backup`",
                log.display(),
                from.display(),
                from.display()
            )));
        }
        let temporary = Temporary::beside(&self.path, "restore")?;
        std::fs::copy(from, &temporary.path).map_err(|e| {
            failed(format!("cannot copy {} to {}: {e}", from.display(), temporary.path.display()))
        })?;
        let migration = check_backup(&temporary.path)
            .map_err(|problem| failed(format!("{} {problem}", from.display())))?;
        remove_sidecars(&temporary.path)?;
        sync_file(&temporary.path)?;
        remove_sidecars(&self.path)?;
        // The removals reach the disk before the rename can: never the backup with the old log.
        sync_directory_of(&self.path)?;
        rename(&temporary.path, &self.path)?;
        sync_directory_of(&self.path)?;
        drop(temporary);
        Ok(BackupCheck { bytes: file_size(&self.path)?, migration })
    }
}

/// Whether the file at `path` is a faultline database this version can open: `Ok` with its
/// newest migration, or what is wrong with it, to follow the file's name in a message. Its
/// connection is read-only, so it changes nothing; on a file in WAL mode it may leave an empty
/// log and log index beside it, which the callers remove.
fn check_backup(path: &Path) -> Result<i64, String> {
    let unreadable = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "is not a SQLite database".to_owned(),
        _ => format!("cannot be read as a SQLite database: {e}"),
    };
    let conn = open_connection(path, Role::Reader).map_err(unreadable)?;
    let problems = integrity_problems(&conn).map_err(unreadable)?;
    if let Some(first) = problems.first() {
        return Err(format!("fails SQLite's integrity_check; the first problem: {first}"));
    }
    let has_migrations: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'faultline_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !has_migrations {
        return Err("is not a faultline database (it has no faultline_migrations table)".into());
    }
    let newest: Option<i64> = conn
        .query_row("SELECT max(version) FROM faultline_migrations", [], |row| row.get(0))
        .map_err(|e| format!("cannot be read: {e}"))?;
    let known = crate::migrations::migrations(Backend::Sqlite).last().map_or(0, |(version, _)| *version);
    match newest {
        None => Err("is not a faultline database (no migration was ever applied to it)".into()),
        Some(newest) if newest > known => Err(format!(
            "was made by a newer faultline (migration {newest}; this one knows up to {known}): \
             restore it with that version"
        )),
        Some(newest) => Ok(newest),
    }
}

/// The rows of `PRAGMA integrity_check` other than its lone `ok` (at most 10).
fn integrity_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("PRAGMA integrity_check(10)")?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    let mut problems = rows.collect::<rusqlite::Result<Vec<String>>>()?;
    problems.retain(|row| row != "ok");
    Ok(problems)
}

/// A file being written under a temporary name beside its final one, removed (with anything
/// SQLite left beside it) unless it was renamed to that name first.
struct Temporary {
    path: PathBuf,
}

impl Temporary {
    fn beside(final_path: &Path, purpose: &str) -> StoreResult<Temporary> {
        let name = final_path
            .file_name()
            .ok_or_else(|| failed(format!("{} names no file", final_path.display())))?;
        let random = faultline_core::ids::random_base62(8);
        let path = final_path.with_file_name(format!(".{}.{purpose}-{random}", name.to_string_lossy()));
        Ok(Temporary { path })
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        // Once renamed, the file is no longer here; what is left is removed.
        let _ = std::fs::remove_file(&self.path);
        let _ = remove_sidecars(&self.path);
    }
}

fn remove_sidecars(path: &Path) -> StoreResult<()> {
    for sidecar in SIDECARS.iter().map(|suffix| with_suffix(path, suffix)) {
        match std::fs::remove_file(&sidecar) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("cannot remove {}: {e}", sidecar.display()))),
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> StoreResult<()> {
    std::fs::rename(from, to).map_err(|e| failed(format!("cannot write {}: {e}", to.display())))
}

fn file_size(path: &Path) -> StoreResult<u64> {
    Ok(std::fs::metadata(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?.len())
}

/// The file's content on disk, not just in the kernel's cache.
fn sync_file(path: &Path) -> StoreResult<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| failed(format!("cannot write {} to disk: {e}", path.display())))
}

/// The directory's entries (a rename) on disk.
fn sync_directory_of(path: &Path) -> StoreResult<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match File::open(directory).and_then(|dir| dir.sync_all()) {
        Ok(()) => Ok(()),
        // Not every platform can open or sync a directory; the rename itself has happened.
        Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::Unsupported) => Ok(()),
        Err(e) => Err(failed(format!("cannot write the directory {} to disk: {e}", directory.display()))),
    }
}

/// A failure of a file operation: the text names the file and what went wrong.
fn failed(message: String) -> StoreError {
    StoreError::Config(message)
}
