//! The database environment in the database home: the mailbox list and the subscriptions
//! database, as sorted key/value snapshot files (`formats/db.md`).
//!
//! **Stand-in** (until the transaction log of issue 4 lands): every commit rewrites the
//! snapshot of each database it touches, temp + fsync + rename + directory fsync, under an
//! exclusive `flock` of the database home, after re-reading the snapshots so concurrent
//! processes see each other's commits. That is crash-safe for transactions touching one
//! database. Callers only see [`Env`] and [`Txn`], which the logged implementation keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::codec::dbsnap::{self, Snapshot};
use crate::error::{Error, IoContext, Result};
use crate::io::{Durability, LockMode, MailboxLock, atomic_write};

/// The databases of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Db {
    /// Mailbox list: `DOMAIN\0NAME` → entry.
    Mailboxes,
    /// Subscriptions: `DOMAIN\0USER\0NAME` → empty.
    Subscriptions,
}

impl Db {
    /// Every database.
    pub const ALL: [Db; 2] = [Db::Mailboxes, Db::Subscriptions];

    /// Name inside the snapshot header.
    pub fn name(self) -> &'static str {
        match self {
            Db::Mailboxes => "mailboxes",
            Db::Subscriptions => "subscriptions",
        }
    }

    /// File name in the database home.
    pub fn file_name(self) -> String {
        format!("{}.db", self.name())
    }
}

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// An open database environment.
#[derive(Debug)]
pub struct Env {
    dir: PathBuf,
    durability: Durability,
}

/// A set of changes applied atomically by [`Txn::commit`].
#[derive(Debug, Default)]
pub struct Txn {
    ops: Vec<(Db, Vec<u8>, Option<Vec<u8>>)>,
}

impl Txn {
    /// Set `key` to `value`.
    pub fn put(&mut self, db: Db, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((db, key, Some(value)));
    }

    /// Remove `key`.
    pub fn delete(&mut self, db: Db, key: Vec<u8>) {
        self.ops.push((db, key, None));
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl Env {
    /// Open the environment in `dir`, which must exist.
    pub fn open(dir: &Path, durability: Durability) -> Result<Env> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io("open database home", dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("unable to open database: {} is not a directory", dir.display())));
        }
        let env = Env { dir: dir.to_path_buf(), durability };
        // Check every database is readable now, so "unable to open database" surfaces at
        // open with the path, not in the middle of a command.
        for db in Db::ALL {
            env.load(db)?;
        }
        Ok(env)
    }

    /// Create the database home (and empty databases) if missing, then open it.
    pub fn create(dir: &Path, durability: Durability) -> Result<Env> {
        std::fs::create_dir_all(dir).ctx("create database home", dir)?;
        Env::open(dir, durability)
    }

    /// The database home.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a database's snapshot.
    pub fn path(&self, db: Db) -> PathBuf {
        self.dir.join(db.file_name())
    }

    fn load(&self, db: Db) -> Result<Table> {
        let path = self.path(db);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Table::new()),
            Err(e) => return Err(Error::io("open database", path, e)),
        };
        let snap = dbsnap::decode(&bytes).map_err(|e| e.at(&path))?;
        Ok(snap.entries.into_iter().collect())
    }

    /// Value of `key`.
    pub fn get(&self, db: Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.load(db)?.remove(key))
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, db: Db, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.load(db)?.into_iter().filter(|(k, _)| k.starts_with(prefix)).collect())
    }

    /// Apply `txn` atomically per database; durable when this returns.
    pub fn commit(&self, txn: Txn) -> Result<()> {
        if txn.is_empty() {
            return Ok(());
        }
        let _lock = MailboxLock::acquire(&self.dir, LockMode::Wait).ctx("lock database home", &self.dir)?;
        let mut touched: BTreeMap<Db, Table> = BTreeMap::new();
        for (db, key, value) in txn.ops {
            let table = match touched.entry(db) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(self.load(db)?),
            };
            match value {
                Some(v) => table.insert(key, v),
                None => table.remove(&key),
            };
        }
        for (db, table) in touched {
            let snap = Snapshot {
                name: db.name().to_string(),
                checkpoint_lsn: 0,
                written: crate::util::now(),
                entries: table.into_iter().collect(),
            };
            let bytes = dbsnap::encode(&snap);
            atomic_write(&self.dir, &db.file_name(), &bytes, self.durability).ctx("write database", &self.path(db))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_get_scan_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env::create(dir.path(), Durability::NoSync).expect("create");
        let mut t = Txn::default();
        t.put(Db::Mailboxes, b"a\0x".to_vec(), b"1".to_vec());
        t.put(Db::Mailboxes, b"b\0y".to_vec(), b"2".to_vec());
        t.put(Db::Subscriptions, b"a\0joe\0x".to_vec(), Vec::new());
        env.commit(t).expect("commit");
        let env = Env::open(dir.path(), Durability::NoSync).expect("reopen");
        assert_eq!(env.get(Db::Mailboxes, b"a\0x").expect("get"), Some(b"1".to_vec()));
        assert_eq!(env.scan_prefix(Db::Mailboxes, b"b\0").expect("scan").len(), 1);
        let mut t = Txn::default();
        t.delete(Db::Mailboxes, b"a\0x".to_vec());
        env.commit(t).expect("commit");
        assert_eq!(env.get(Db::Mailboxes, b"a\0x").expect("get"), None);
    }

    #[test]
    fn damaged_database_is_named_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mailboxes.db"), b"MSDBSNAP\x01\0 garbage").expect("write");
        let err = Env::open(dir.path(), Durability::NoSync).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("mailboxes.db") && text.contains("corrupt at byte offset"), "{text}");
    }
}
