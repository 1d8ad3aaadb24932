//! The database environment in the database home: the mailbox list and the subscriptions
//! database, kept as snapshots (`formats/db.md`) plus a write-ahead transaction log
//! (`formats/wal.md`), and the tools around them — recovery, hot backup, verification,
//! restore and the repair ladder.
//!
//! # How a commit becomes durable
//!
//! [`Env::commit`] queues the transaction; one committing thread (the leader) takes
//! every queued transaction, takes the exclusive `flock` of the database home, catches up
//! with what other processes appended, writes all the transactions' records in one write
//! and fsyncs the segment once (**group commit**), then applies them to the in-memory
//! tables and wakes the other committers. A commit returns `Ok` only after that fsync.
//! A failed write or fsync makes the environment refuse every later commit (the tail of
//! the log is unknown; an fsync is never retried): reopen it, which recovers.
//!
//! # Readers and other processes
//!
//! Readers ([`Env::get`], [`Env::scan_prefix`]) answer from the in-memory tables after
//! catching up with the log under a shared `flock` (so they never see a write in
//! progress). Any number of processes may open the same home: writers serialise on the
//! exclusive lock, and each one reads what the others appended before it writes.
//!
//! # Checkpoints
//!
//! When a segment's worth of log has been written since the last checkpoint, the leader
//! writes every database's snapshot (temp + fsync + rename + directory fsync) and then a
//! checkpoint record. Log segments are removed only by `msdb_backup`, once a verified
//! backup holds them.
//!
//! The databases are small (the mailbox list, the subscriptions) and each environment
//! holds them in memory whole, as ordered maps.
//!
//! Every file operation goes through [`crate::fs::Fs`], so the crash tests (the dev-only
//! `mstore-testkit` crate) can record and replay them.

pub mod backup;
pub mod install;
pub mod log;
pub mod recover;
pub mod repair;
pub mod restore;
pub mod subscriptions;
pub mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};

use self::log::{Continue, Limit, Position, Replayer, Tables};
use crate::codec::wal::{self, Body, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::config::Config;
pub use crate::error::DbError;
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode, RealFs};
use crate::io::Durability;

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

    /// Position in [`Db::ALL`] (and in [`Tables::maps`]).
    pub fn index(self) -> usize {
        match self {
            Db::Mailboxes => 0,
            Db::Subscriptions => 1,
        }
    }

    /// The id in log records (`formats/wal.md`).
    pub fn id(self) -> u8 {
        self.index() as u8 + 1
    }

    /// The database of a log record id.
    pub fn from_id(id: u8) -> Option<Db> {
        Db::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }
}

/// One change of a transaction: database, key, new value (`None`: delete).
pub type Op = (Db, Vec<u8>, Option<Vec<u8>>);

/// A set of changes applied atomically by [`Env::commit`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    ops: Vec<Op>,
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

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Apply the operations to `tables`, in order.
    pub fn apply_to(&self, tables: &mut Tables) {
        for (db, k, v) in &self.ops {
            let m = &mut tables.maps[db.index()];
            match v {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        }
    }
}

/// When [`Env`]'s checkpoint writes the snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checkpoint {
    /// Only if the snapshots lag behind the log (or it ends torn).
    IfBehind,
    /// Always (an explicit checkpoint).
    Always,
}

/// How to open an environment.
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// The file system (the real one, or a simulated one in tests).
    pub fs: Arc<dyn Fs>,
    /// Whether to fsync.
    pub durability: Durability,
    /// Start a new segment once one holds this many bytes.
    pub segment_size: u64,
    /// Checkpoint once this many log bytes were written since the last checkpoint.
    pub checkpoint_bytes: u64,
}

impl EnvOptions {
    /// The real file system with 16 MiB segments.
    pub fn new(durability: Durability) -> EnvOptions {
        EnvOptions { fs: RealFs::shared(), durability, segment_size: 16 << 20, checkpoint_bytes: 16 << 20 }
    }

    /// The real file system with the configuration's settings.
    pub fn from_config(cfg: &Config) -> EnvOptions {
        EnvOptions {
            fs: RealFs::shared(),
            durability: cfg.durability,
            segment_size: cfg.log_segment_size,
            checkpoint_bytes: cfg.log_segment_size,
        }
    }
}

#[derive(Debug, Default)]
struct LogState {
    /// Where the next record goes (`None`: no segment yet).
    pos: Option<Position>,
    /// Bytes after `pos` in its segment are a torn tail: start a new segment first.
    torn: bool,
    /// Highest LSN this process knows to be on stable storage.
    synced_lsn: u64,
    /// Log bytes written by this process since its last checkpoint.
    since_checkpoint: u64,
    /// The lowest checkpoint LSN of the snapshots on disk (as this process last knew).
    snap_lsn: u64,
    /// The highest segment whose name this process made durable (by creating it, or by
    /// an fsync of the home): appending to a newer one, made by another process whose
    /// directory fsync may have failed, fsyncs the home first.
    dir_synced_segment: u64,
}

#[derive(Debug, Default)]
struct Group {
    next_ticket: u64,
    queue: Vec<(u64, Vec<Txn>)>,
    leader: bool,
    done: HashMap<u64, std::result::Result<Vec<u64>, String>>,
}

/// What an environment is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Commits, checkpoints; opening finishes an interrupted install and fsyncs what it
    /// read.
    ReadWrite,
    /// Reads only (verify, show, ls, export, dry runs): opening finishes nothing, takes
    /// the database home's lock shared only, opens nothing for writing; a commit is
    /// refused.
    ReadOnly,
}

/// An open database environment.
#[derive(Debug)]
pub struct Env {
    dir: PathBuf,
    opts: EnvOptions,
    access: Access,
    log: Mutex<LogState>,
    tables: RwLock<Tables>,
    group: Mutex<Group>,
    group_cv: Condvar,
    poisoned: Mutex<Option<String>>,
    log_syncs: AtomicU64,
    batches: AtomicU64,
}

impl Env {
    /// Open the environment in `dir` (which must exist) on the real file system.
    pub fn open(dir: &Path, durability: Durability) -> Result<Env> {
        Env::open_with(dir, EnvOptions::new(durability))
    }

    /// Create the database home if missing, then open it.
    pub fn create(dir: &Path, durability: Durability) -> Result<Env> {
        Env::create_with(dir, EnvOptions::new(durability))
    }

    /// Open with the configuration's database home and settings.
    pub fn open_config(cfg: &Config) -> Result<Env> {
        Env::open_with(&cfg.database_path, EnvOptions::from_config(cfg))
    }

    /// Create the database home if missing, then open it.
    pub fn create_with(dir: &Path, opts: EnvOptions) -> Result<Env> {
        opts.fs.create_dir_all(dir).ctx("create database home", dir)?;
        Env::open_with(dir, opts)
    }

    /// Open the environment in `dir`: load the snapshots and replay the log (finishing an
    /// interrupted install first). Mid-log corruption refuses to open.
    pub fn open_with(dir: &Path, opts: EnvOptions) -> Result<Env> {
        Env::open_for(dir, opts, Access::ReadWrite)
    }

    /// Open the environment in `dir` for reading only ([`Access::ReadOnly`]): nothing
    /// under `dir` is written, renamed, created or opened for writing. An interrupted
    /// install is an error (`msdb_recover` finishes it).
    pub fn open_read_only(dir: &Path, opts: EnvOptions) -> Result<Env> {
        Env::open_for(dir, opts, Access::ReadOnly)
    }

    /// Open the environment in `dir` for `access`.
    pub fn open_for(dir: &Path, opts: EnvOptions, access: Access) -> Result<Env> {
        let fs = Arc::clone(&opts.fs);
        let meta = fs.metadata(dir).map_err(|e| Error::io("open database home", dir, e))?;
        if !meta.is_dir {
            return Err(Error::Invalid(format!("unable to open database: {} is not a directory", dir.display())));
        }
        let env = Env {
            dir: dir.to_path_buf(),
            opts,
            access,
            log: Mutex::new(LogState::default()),
            tables: RwLock::new(Tables::default()),
            group: Mutex::new(Group::default()),
            group_cv: Condvar::new(),
            poisoned: Mutex::new(None),
            log_syncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        };
        if install::pending(&*fs, dir)? {
            if access == Access::ReadOnly {
                return Err(DbError::InstallPending { dir: dir.to_path_buf() }.into());
            }
            let _x = fs.lock(dir, LockMode::Exclusive).ctx("lock database home", dir)?;
            install::finish_pending(&*fs, dir, env.opts.durability)?;
        }
        let _l = fs.lock(dir, LockMode::Shared).ctx("lock database home", dir)?;
        let mut log = env.log.lock();
        env.full_load(&mut log)?;
        // What we read is the state we will serve: make sure it is on stable storage (a
        // writer that crashed, or failed to fsync, may have left the last segment's
        // bytes or its name in the page cache only).
        if let Some(p) = log.pos.clone() {
            if env.opts.durability == Durability::Sync && access == Access::ReadWrite {
                match fs.open_write(&p.path) {
                    Ok(mut f) => {
                        f.sync().ctx("fsync transaction log", &p.path)?;
                        fs.sync_dir(dir).ctx("fsync database home", dir)?;
                        log.dir_synced_segment = p.number;
                    }
                    // A reader without write access (or on a read-only mount) cannot fsync;
                    // it serves what it read, as any reader of the page cache would.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                        ) => {}
                    Err(e) => return Err(Error::io("open transaction log", p.path, e)),
                }
            }
            log.synced_lsn = p.next_lsn.saturating_sub(1);
        }
        drop(log);
        Ok(env)
    }

    /// The database home.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a database's snapshot.
    pub fn path(&self, db: Db) -> PathBuf {
        self.dir.join(db.file_name())
    }

    /// The options it was opened with.
    pub fn options(&self) -> &EnvOptions {
        &self.opts
    }

    /// fsyncs of the log so far (one per group commit) and batches written.
    pub fn log_stats(&self) -> (u64, u64) {
        (self.log_syncs.load(Ordering::Relaxed), self.batches.load(Ordering::Relaxed))
    }

    fn fs(&self) -> &dyn Fs {
        &*self.opts.fs
    }

    /// Value of `key`.
    pub fn get(&self, db: Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.catch_up()?;
        Ok(self.tables.read().maps[db.index()].get(key).cloned())
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, db: Db, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.catch_up()?;
        let t = self.tables.read();
        Ok(t.maps[db.index()]
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    /// A copy of every table (what a reader sees now).
    pub fn snapshot_tables(&self) -> Result<Tables> {
        self.catch_up()?;
        Ok(self.tables.read().clone())
    }

    /// Catch up with other processes' commits, unless this process is committing (its
    /// leader reads them anyway, and a reader must not wait for an fsync).
    fn catch_up(&self) -> Result<()> {
        if self.group.lock().leader {
            return Ok(());
        }
        let _l = self.fs().lock(&self.dir, LockMode::Shared).ctx("lock database home", &self.dir)?;
        if let Some(mut log) = self.log.try_lock() {
            self.refresh(&mut log, LockMode::Shared)?;
        }
        Ok(())
    }

    /// Apply `txn` atomically; durable when this returns.
    pub fn commit(&self, txn: Txn) -> Result<()> {
        self.commit_all(vec![txn]).map(|_| ())
    }

    /// Commit several independent transactions, each atomic, in this order, sharing one
    /// log write and one fsync. Returns each one's commit LSN (0 for an empty one).
    pub fn commit_all(&self, txns: Vec<Txn>) -> Result<Vec<u64>> {
        for t in &txns {
            for (_, k, v) in &t.ops {
                if k.len() > MAX_KEY_LEN {
                    return Err(DbError::TooLarge { what: "key", len: k.len(), max: MAX_KEY_LEN }.into());
                }
                if let Some(v) = v {
                    if v.len() > MAX_VALUE_LEN {
                        return Err(DbError::TooLarge { what: "value", len: v.len(), max: MAX_VALUE_LEN }.into());
                    }
                }
            }
        }
        if txns.iter().all(Txn::is_empty) {
            return Ok(vec![0; txns.len()]);
        }
        self.check_poison()?;
        let mut g = self.group.lock();
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.queue.push((ticket, txns));
        loop {
            if let Some(r) = g.done.remove(&ticket) {
                return r.map_err(|e| DbError::CommitFailed(e).into());
            }
            if g.leader {
                self.group_cv.wait(&mut g);
                continue;
            }
            g.leader = true;
            let batch = std::mem::take(&mut g.queue);
            drop(g);
            let flat: Vec<&Txn> = batch.iter().flat_map(|(_, ts)| ts.iter()).collect();
            let result = self.write_batch(&flat);
            g = self.group.lock();
            g.leader = false;
            let mut mine = None;
            match result {
                Ok(lsns) => {
                    let mut it = lsns.into_iter();
                    for (t, ts) in &batch {
                        let part: Vec<u64> = it.by_ref().take(ts.len()).collect();
                        g.done.insert(*t, Ok(part));
                    }
                }
                Err(e) => {
                    for (t, _) in &batch {
                        if *t != ticket {
                            g.done.insert(*t, Err(e.to_string()));
                        }
                    }
                    mine = Some(e);
                }
            }
            self.group_cv.notify_all();
            if let Some(e) = mine {
                return Err(e);
            }
        }
    }

    /// How it was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Refused in a read-only environment, or after a failed write or fsync.
    fn check_poison(&self) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(DbError::ReadOnly { dir: self.dir.clone() }.into());
        }
        match &*self.poisoned.lock() {
            Some(cause) => Err(DbError::Poisoned { dir: self.dir.clone(), cause: cause.clone() }.into()),
            None => Ok(()),
        }
    }

    fn poison(&self, e: &Error) {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    /// Write and fsync one batch under the exclusive lock; apply it; maybe checkpoint.
    fn write_batch(&self, batch: &[&Txn]) -> Result<Vec<u64>> {
        let _x = self.fs().lock(&self.dir, LockMode::Exclusive).ctx("lock database home", &self.dir)?;
        let mut log = self.log.lock();
        self.check_poison()?;
        self.refresh(&mut log, LockMode::Exclusive)?;
        let time = crate::util::now();
        let mut lsns = Vec::with_capacity(batch.len());
        let mut buf = Vec::new();
        let pos = self.writable_position(&mut log)?;
        let mut crc = pos.last_crc;
        let mut lsn = pos.next_lsn;
        for t in batch {
            if t.is_empty() {
                lsns.push(0);
                continue;
            }
            crc = log::encode_txn(&mut buf, pos.salt, crc, lsn, log.synced_lsn, &t.ops, time);
            lsn += t.ops.len() as u64;
            lsns.push(lsn);
            lsn += 1;
        }
        self.append(&mut log, &pos, &buf, crc, lsn)?;
        self.batches.fetch_add(1, Ordering::Relaxed);
        {
            let mut tables = self.tables.write();
            for (t, &commit_lsn) in batch.iter().zip(&lsns) {
                if commit_lsn > 0 {
                    t.apply_to(&mut tables);
                    tables.applied = tables.applied.map(|a| a.max(commit_lsn));
                }
            }
        }
        if log.since_checkpoint >= self.opts.checkpoint_bytes {
            // The batch is durable whatever happens here; a failed checkpoint poisons
            // the environment (inside) if it was an I/O error, and is retried next time
            // otherwise.
            let _ = self.checkpoint_locked(&mut log, Checkpoint::IfBehind);
        }
        Ok(lsns)
    }

    /// Append `buf` (records continuing `pos`) and fsync it; on success move the position.
    fn append(&self, log: &mut LogState, pos: &Position, buf: &[u8], last_crc: u32, next_lsn: u64) -> Result<()> {
        let fs = self.fs();
        if pos.number > log.dir_synced_segment && self.opts.durability == Durability::Sync {
            if let Err(e) = fs.sync_dir(&self.dir) {
                let e = Error::io("fsync database home", self.dir.clone(), e);
                self.poison(&e);
                return Err(e);
            }
            log.dir_synced_segment = pos.number;
        }
        let mut f = fs.open_write(&pos.path).ctx("open transaction log", &pos.path)?;
        let written = f.write_at(pos.end, buf).ctx("write transaction log", &pos.path).and_then(|()| {
            if self.opts.durability == Durability::Sync {
                self.log_syncs.fetch_add(1, Ordering::Relaxed);
                f.sync().ctx("fsync transaction log", &pos.path)
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.poison(&e);
            return Err(e);
        }
        log.pos = Some(Position { end: pos.end + buf.len() as u64, last_crc, next_lsn, ..pos.clone() });
        log.synced_lsn = next_lsn - 1;
        log.since_checkpoint += buf.len() as u64;
        Ok(())
    }

    /// The position to write at: a new segment if there is none, if the last one ends in a
    /// torn tail, or if it is full.
    fn writable_position(&self, log: &mut LogState) -> Result<Position> {
        // A segment half created (its rename or directory fsync failed) is as unknown as
        // a failed append: refuse further commits.
        self.new_position(log).inspect_err(|e| self.poison(e))
    }

    fn new_position(&self, log: &mut LogState) -> Result<Position> {
        let d = self.opts.durability;
        let fs = self.fs();
        let created = match &log.pos {
            None => {
                let number = log::list_segments(fs, &self.dir)?.last().map(|(n, _)| n + 1).unwrap_or(1);
                let first = self.tables.read().max_applied() + 1;
                let (path, salt, crc) =
                    log::create_segment(fs, &self.dir, number, first, None, log::Timeline::Continue, d)?;
                Position { number, path, salt, end: 64, last_crc: crc, next_lsn: first }
            }
            Some(p) if log.torn || p.end >= self.opts.segment_size => {
                let number = p.number + 1;
                let prev = Some((p.salt, p.end, p.last_crc));
                let (path, salt, crc) =
                    log::create_segment(fs, &self.dir, number, p.next_lsn, prev, log::Timeline::Continue, d)?;
                Position { number, path, salt, end: 64, last_crc: crc, next_lsn: p.next_lsn }
            }
            Some(p) => return Ok(p.clone()),
        };
        log.pos = Some(created.clone());
        log.torn = false;
        log.dir_synced_segment = created.number;
        Ok(created)
    }

    /// Write a checkpoint now: every snapshot at the last LSN, then a checkpoint record.
    /// Returns the checkpoint LSN.
    pub fn checkpoint(&self) -> Result<u64> {
        self.check_poison()?;
        let _x = self.fs().lock(&self.dir, LockMode::Exclusive).ctx("lock database home", &self.dir)?;
        let mut log = self.log.lock();
        self.refresh(&mut log, LockMode::Exclusive)?;
        self.checkpoint_locked(&mut log, Checkpoint::Always)
    }

    fn checkpoint_locked(&self, log: &mut LogState, when: Checkpoint) -> Result<u64> {
        let lsn = match &log.pos {
            Some(p) => p.next_lsn - 1,
            None => self.tables.read().max_applied(),
        };
        let needed = self.tables.read().max_applied() > log.snap_lsn || log.torn;
        if !needed && when == Checkpoint::IfBehind {
            return Ok(lsn);
        }
        let fs = self.fs();
        let wrote = {
            let tables = self.tables.read();
            log::write_snapshots(fs, &self.dir, &tables, lsn, self.opts.durability)
        };
        if let Err(e) = wrote {
            self.poison(&e);
            return Err(e);
        }
        self.tables.write().applied = [lsn; 2];
        log.snap_lsn = lsn;
        if log.pos.is_some() {
            let pos = self.writable_position(log)?;
            let mut buf = Vec::new();
            let body = Body::Checkpoint { checkpoint_lsn: lsn, time: crate::util::now() };
            let crc = wal::encode_record(&mut buf, pos.salt, pos.last_crc, pos.next_lsn, 0, log.synced_lsn, &body);
            self.append(log, &pos, &buf, crc, pos.next_lsn + 1)?;
        }
        log.since_checkpoint = 0;
        Ok(lsn)
    }

    /// Load everything again: snapshots, then the log.
    fn full_load(&self, log: &mut LogState) -> Result<()> {
        let tables = Tables::load(self.fs(), &self.dir)?;
        log.snap_lsn = tables.min_applied();
        let r = log::replay_onto(self.fs(), &self.dir, tables, Limit::End)?;
        if let Some(d) = &r.outcome.damage {
            if d.is_corrupt() {
                return Err(corrupt_error(d, &r.replayer));
            }
        }
        if let Some(t) = r.outcome.tolerated.first() {
            return Err(DbError::NeedsRecovery {
                path: t.file.clone(),
                offset: t.offset,
                lsn: t.lsn,
                what: t.what.clone(),
            }
            .into());
        }
        log.torn = matches!(r.outcome.damage, Some(log::Damage::TornTail(_)));
        log.pos = r.outcome.position;
        *self.tables.write() = r.replayer.tables;
        Ok(())
    }

    /// Read what other processes appended since our position (the caller holds the
    /// home's lock, shared or exclusive).
    fn refresh(&self, log: &mut LogState, held: LockMode) -> Result<()> {
        let fs = self.fs();
        if install::pending(fs, &self.dir)? {
            if held != LockMode::Exclusive {
                return Err(DbError::InstallPending { dir: self.dir.clone() }.into());
            }
            install::finish_pending(fs, &self.dir, self.opts.durability)?;
            return self.full_load(log);
        }
        let segs = log::list_segments(fs, &self.dir)?;
        let Some(pos) = log.pos.clone() else {
            return if segs.is_empty() { Ok(()) } else { self.full_load(log) };
        };
        let from: Vec<(u64, PathBuf)> = segs.into_iter().filter(|(n, _)| *n >= pos.number).collect();
        let heads = log::read_heads(fs, &from)?;
        let mut tables = self.tables.write();
        let mut rp = Replayer::new(std::mem::take(&mut *tables), Limit::End);
        let cont = log::read_log_from(fs, &heads, &pos, &mut |_, _, r| rp.visit(r));
        *tables = rp.tables;
        drop(tables);
        match cont? {
            Continue::Reload => self.full_load(log),
            Continue::Read(out) => {
                if let Some(d) = &out.damage {
                    if d.is_corrupt() {
                        let rp = Replayer::new(Tables::default(), Limit::End);
                        return Err(corrupt_error(d, &rp));
                    }
                }
                if let Some(p) = out.position {
                    if p != pos {
                        log.torn = false;
                    }
                    log.pos = Some(p);
                }
                log.torn |= matches!(out.damage, Some(log::Damage::TornTail(_)));
                Ok(())
            }
        }
    }
}

/// The error for mid-log corruption found while opening.
pub fn corrupt_error(d: &log::Damage, rp: &Replayer) -> Error {
    let at = d.at();
    let mut affected = log::txn_list(&at.later_commits);
    if let Some(t) = rp.open_txn() {
        affected = format!("{} (open at the damage), {affected}", t.txn);
    }
    DbError::LogCorrupt {
        path: at.file.clone(),
        offset: at.offset,
        lsn: at.lsn,
        what: at.what.clone(),
        affected: format!("{affected}; {} records unreadable after it", at.later_records),
    }
    .into()
}
