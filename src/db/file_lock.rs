//! One process per SQLite file (README, Settings): a lock on `<path>.lock`, held while serving.
//!
//! The lock is the operating system's advisory file lock (`flock` on Unix), so it ends with the
//! process however it ends (`kill -9` included) and a restart on the same file always works. The
//! holder writes its pid into the file, so that a second process can say who holds it. Within one
//! process the claim is shared: the binary claims its file before its runtime starts (so that a
//! refusal is the only line it prints, whatever `RUST_LOG` says) and `app::run` claims it again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::config::DatabaseUrl;

/// The claim on a SQLite file; dropping its last holder in this process (or the process ending)
/// releases it.
#[derive(Debug, Clone)]
pub struct FileClaim(Arc<Held>);

#[derive(Debug)]
struct Held {
    _file: File,
    path: PathBuf,
}

impl FileClaim {
    /// The lock file (`<database path>.lock`).
    pub fn path(&self) -> &Path {
        &self.0.path
    }
}

/// The claims this process holds, by lock file: a second claim on a held file shares the first.
static HELD: Mutex<Option<HashMap<PathBuf, Weak<Held>>>> = Mutex::new(None);

/// Claims `database` for this process: `None` on PostgreSQL and for an in-memory SQLite (nothing
/// to share); an error saying the database is "in use", with the holder's pid when known, while
/// another process holds it.
pub fn claim(database: &DatabaseUrl) -> anyhow::Result<Option<FileClaim>> {
    let DatabaseUrl::Sqlite(raw) = database else {
        return Ok(None);
    };
    let Some(db_path) = file_path(raw) else {
        return Ok(None);
    };
    let path = PathBuf::from(format!("{db_path}.lock"));
    // No truncation on open: the file may hold the current holder's pid.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open lock file {}: {e}", path.display()))?;
    // The same file under another spelling (`./x.db`, a symlink) is the same claim.
    let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let held = held.get_or_insert_with(HashMap::new);
    if let Some(shared) = held.get(&key).and_then(Weak::upgrade) {
        return Ok(Some(FileClaim(shared)));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = holder_pid(&mut file)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            anyhow::bail!(
                "database sqlite://{raw} is in use by another beema-webhooks process{holder}"
            );
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
    // The pid is only a courtesy for the message above: failing to write it is no reason to stop.
    let _ = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|_| file.flush());
    let claim = Arc::new(Held { _file: file, path });
    held.retain(|_, w| w.strong_count() > 0);
    held.insert(key, Arc::downgrade(&claim));
    Ok(Some(FileClaim(claim)))
}

/// The file behind a SQLite path or `file:` URI; `None` for an in-memory database.
fn file_path(raw: &str) -> Option<&str> {
    let (path, query) = match raw.strip_prefix("file:") {
        Some(uri) => {
            let (p, q) = uri.split_once('?').unwrap_or((uri, ""));
            (p, q)
        }
        None => (raw, ""),
    };
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!in_memory).then_some(path)
}

/// The pid the holder wrote into the lock file, if it did already.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether another process could claim `lock` now (a second open file description stands in
    /// for it: `flock` locks conflict between descriptions, even within one process).
    fn free_for_another_process(lock: &Path) -> bool {
        File::open(lock).unwrap().try_lock().is_ok()
    }

    #[test]
    fn one_claim_per_file_shared_in_process_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("x.db").to_string_lossy().into_owned();
        let url = DatabaseUrl::Sqlite(db_path.clone());
        let first = claim(&url).unwrap().expect("a file is claimed");
        let lock = first.path().to_path_buf();
        assert_eq!(lock, Path::new(&format!("{db_path}.lock")));
        let written = std::fs::read_to_string(&lock).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        assert!(!free_for_another_process(&lock));

        // This process again (the binary, then `app::run`): the same claim.
        let again = claim(&url).unwrap().expect("shared");
        assert!(Arc::ptr_eq(&first.0, &again.0));
        drop(first);
        assert!(
            !free_for_another_process(&lock),
            "held while one holder is left"
        );
        drop(again);
        assert!(
            free_for_another_process(&lock),
            "free once the last is dropped"
        );

        // Held by someone else: refused, naming the database and the pid written in the file.
        let other = File::open(&lock).unwrap();
        other.try_lock().unwrap();
        std::fs::write(&lock, "4242\n").unwrap();
        let refused = claim(&url).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!("database sqlite://{db_path} is in use by another beema-webhooks process (pid 4242)")
        );
        drop(other);
        assert!(claim(&url).unwrap().is_some(), "free again once released");
    }

    #[test]
    fn nothing_to_claim_in_memory_or_on_postgres() {
        for raw in [
            ":memory:",
            "file::memory:?cache=shared",
            "file:x?mode=memory",
        ] {
            assert!(
                claim(&DatabaseUrl::Sqlite(raw.into())).unwrap().is_none(),
                "{raw}"
            );
        }
        let pg = DatabaseUrl::Postgres("postgres://u@h/db".into());
        assert!(claim(&pg).unwrap().is_none());
        assert_eq!(file_path("file:data/x.db?mode=rwc"), Some("data/x.db"));
        assert_eq!(file_path("x.db"), Some("x.db"));
    }
}
