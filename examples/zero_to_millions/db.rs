//! A database node: one SQLite file (WAL) behind a mutex, with a query counter and a switch
//! that makes it "die" (every query fails until it is revived).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

/// A query failed: the node is down, or SQLite said no.
#[derive(Debug)]
pub enum DbError {
    /// The node is down (killed by the journey).
    Down(String),
    /// SQLite's error.
    Sql(rusqlite::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Down(n) => write!(f, "database node {n} is down"),
            DbError::Sql(e) => write!(f, "sqlite: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sql(e)
    }
}

/// A user profile row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// User id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Free text, updated by the user.
    pub bio: String,
    /// Incremented by every update.
    pub version: u64,
}

impl Profile {
    /// The profile a fresh database holds for `id`.
    #[must_use]
    pub fn initial(id: u64) -> Self {
        Profile {
            id,
            name: format!("user{id}"),
            bio: format!("hello, I am user {id}"),
            version: 0,
        }
    }

    /// `GET /users/{id}` as JSON.
    #[must_use]
    pub fn json(&self) -> String {
        format!(
            r#"{{"id":{},"name":"{}","bio":"{}","version":{}}}"#,
            self.id, self.name, self.bio, self.version
        )
    }
}

/// One database node.
#[derive(Debug)]
pub struct DbNode {
    /// Name shown in tables (`primary`, `replica-1`, `shard-3`, ...).
    pub name: String,
    conn: Mutex<Connection>,
    queries: AtomicU64,
    reads: AtomicU64,
    down: AtomicBool,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, bio TEXT NOT NULL, version INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS photos (
        id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, status TEXT NOT NULL,
        thumb INTEGER, processed INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS assets (
        path TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL);
";

impl DbNode {
    /// Opens (creates) `dir/<name>.sqlite3`.
    ///
    /// # Errors
    /// SQLite's error.
    pub fn open(dir: &Path, name: &str) -> Result<Arc<Self>, DbError> {
        let conn = Connection::open(dir.join(format!("{name}.sqlite3")))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Arc::new(DbNode {
            name: name.to_string(),
            conn: Mutex::new(conn),
            queries: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }))
    }

    /// Runs `f` on the connection as one counted query; fails if the node is down.
    ///
    /// # Errors
    /// [`DbError::Down`], or `f`'s error.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, rusqlite::Error>,
    ) -> Result<R, DbError> {
        if self.is_down() {
            return Err(DbError::Down(self.name.clone()));
        }
        let conn = self.lock();
        self.queries.fetch_add(1, Ordering::Relaxed);
        Ok(f(&conn)?)
    }

    /// The connection, locked, without counting (bulk loads and verification).
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads profiles `ids` in one transaction (not counted as traffic).
    ///
    /// # Errors
    /// SQLite's error.
    pub fn seed_users(&self, ids: impl Iterator<Item = u64>) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO users (id, name, bio, version) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for id in ids {
                let p = Profile::initial(id);
                st.execute(params![p.id as i64, p.name, p.bio, p.version as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `SELECT` one profile.
    ///
    /// # Errors
    /// [`DbError`].
    pub fn get_user(&self, id: u64) -> Result<Option<Profile>, DbError> {
        let out = self.with(|c| read_user(c, id));
        if out.is_ok() {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Profile reads (`get_user`) served so far.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Sets a profile's bio and bumps its version; returns the new version (None: no such user).
    ///
    /// # Errors
    /// [`DbError`].
    pub fn update_bio(&self, id: u64, bio: &str) -> Result<Option<u64>, DbError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE users SET bio = ?2, version = version + 1 WHERE id = ?1 RETURNING version",
            )?
            .query_row(params![id as i64, bio], |r| r.get::<_, i64>(0))
            .optional()
            .map(|v| v.map(|v| v as u64))
        })
    }

    /// Applies replication entry `lsn` (the full new row) exactly once, in order: in one
    /// transaction with the node's applied position. Returns false if `lsn` is not the next one
    /// (already applied, or a gap).
    ///
    /// # Errors
    /// [`DbError`].
    pub fn apply(&self, lsn: u64, p: &Profile) -> Result<bool, DbError> {
        if self.is_down() {
            return Err(DbError::Down(self.name.clone()));
        }
        let mut conn = self.lock();
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tx = conn.transaction()?;
        let applied = applied_in(&tx)?;
        if lsn != applied + 1 {
            return Ok(false);
        }
        write_user(&tx, p)?;
        tx.prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES ('applied', ?1)")?
            .execute(params![lsn as i64])?;
        tx.commit()?;
        Ok(true)
    }

    /// The last replication entry applied (0: none).
    ///
    /// # Errors
    /// SQLite's error.
    pub fn applied(&self) -> Result<u64, DbError> {
        Ok(applied_in(&self.lock())?)
    }

    /// Queries served so far.
    #[must_use]
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Kills (`true`) or revives the node.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether the node is down.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

/// Reads one profile on a connection.
///
/// # Errors
/// SQLite's error.
pub fn read_user(c: &Connection, id: u64) -> Result<Option<Profile>, rusqlite::Error> {
    c.prepare_cached("SELECT name, bio, version FROM users WHERE id = ?1")?
        .query_row(params![id as i64], |r| {
            Ok(Profile {
                id,
                name: r.get(0)?,
                bio: r.get(1)?,
                version: r.get::<_, i64>(2)? as u64,
            })
        })
        .optional()
}

/// Writes one profile on a connection (insert or replace).
///
/// # Errors
/// SQLite's error.
pub fn write_user(c: &Connection, p: &Profile) -> Result<(), rusqlite::Error> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO users (id, name, bio, version) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![p.id as i64, p.name, p.bio, p.version as i64])?;
    Ok(())
}

fn applied_in(c: &Connection) -> Result<u64, rusqlite::Error> {
    Ok(c.prepare_cached("SELECT v FROM meta WHERE k = 'applied'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64)
}
