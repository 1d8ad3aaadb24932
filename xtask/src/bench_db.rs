//! `cargo xtask bench db`: the databases. Numbers depend on the disk under `--dir` (fsync
//! rate above all): say which disk when quoting them.
//!
//! commits per second with one fsync per commit (one writer) and with group
//!   commit (four writers); recovery seconds per GiB of log; backup MB/s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use mstore::db::backup::{self, BackupOptions};
use mstore::db::recover::{Mode, RecoverOptions};
use mstore::db::{Db, Env, EnvOptions, Txn};
use mstore::io::Durability;

/// Options of the `db` suite.
#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// Directory to run in (on the disk to measure; default target/bench-db).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Commits for the commit-rate rows.
    #[arg(long, default_value_t = 2000)]
    pub commits: usize,
    /// MiB of log for the recovery row.
    #[arg(long, default_value_t = 256)]
    pub log_mib: u64,
    /// Mailbox-list entries for the backup row.
    #[arg(long, default_value_t = 200_000)]
    pub entries: usize,
}

fn fresh(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

fn opts(durability: Durability, segment: u64) -> EnvOptions {
    let mut o = EnvOptions::new(durability);
    o.segment_size = segment;
    o.checkpoint_bytes = u64::MAX;
    o
}

fn entry(i: usize) -> (Vec<u8>, Vec<u8>) {
    let key = format!("example{}.com\0user/u{i:07}/INBOX", i % 97).into_bytes();
    let value: Vec<u8> = (0..120).map(|k| (i * 31 + k) as u8).collect();
    (key, value)
}

pub fn db(a: &DbArgs) -> Result<()> {
    let root = a.dir.clone().unwrap_or_else(|| crate::project_root().join("target/bench-db"));
    println!(
        "db bench in {} ({} cores)",
        root.display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    commit_one_writer(a, &root)?;
    commit_four_writers(a, &root)?;
    recovery(a, &root)?;
    backup_list(a, &root)?;
    fresh(&root)?;
    std::fs::remove_dir(&root).ok();
    Ok(())
}

/// One writer, one fsync per commit.
fn commit_one_writer(a: &DbArgs, root: &Path) -> Result<()> {
    let home = root.join("commit1");
    fresh(&home)?;
    let env = Env::create_with(&home, opts(Durability::Sync, 16 << 20))?;
    let t0 = Instant::now();
    for i in 0..a.commits {
        let (k, v) = entry(i);
        let mut t = Txn::default();
        t.put(Db::Mailboxes, k, v);
        env.commit(t)?;
    }
    let s1 = t0.elapsed().as_secs_f64();
    let (syncs1, _) = env.log_stats();
    drop(env);
    println!(
        "commit, 1 writer, fsync per commit:   {:>9.0} commits/s  ({} commits, {} log fsyncs, {:.2}s)",
        a.commits as f64 / s1,
        a.commits,
        syncs1,
        s1
    );

    Ok(())
}

/// Four writers, group commit.
fn commit_four_writers(a: &DbArgs, root: &Path) -> Result<()> {
    let home = root.join("commit4");
    fresh(&home)?;
    let env = Arc::new(Env::create_with(&home, opts(Durability::Sync, 16 << 20))?);
    let per = a.commits / 4;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let env = env.clone();
            std::thread::spawn(move || -> mstore::Result<()> {
                for i in 0..per {
                    let (k, v) = entry(w * per + i);
                    let mut t = Txn::default();
                    t.put(Db::Mailboxes, k, v);
                    env.commit(t)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    let s4 = t0.elapsed().as_secs_f64();
    let (syncs4, _) = env.log_stats();
    drop(env);
    println!(
        "commit, 4 writers, group commit:      {:>9.0} commits/s  ({} commits, {} log fsyncs = {:.1} commits per fsync, {:.2}s)",
        (4 * per) as f64 / s4,
        4 * per,
        syncs4,
        (4 * per) as f64 / syncs4.max(1) as f64,
        s4
    );

    Ok(())
}

/// Recovery: a log of `log_mib` MiB, no checkpoint, replayed from LSN 1.
fn recovery(a: &DbArgs, root: &Path) -> Result<()> {
    let home = root.join("recover");
    fresh(&home)?;
    {
        let env = Env::create_with(&home, opts(Durability::NoSync, 64 << 20))?;
        let target = a.log_mib << 20;
        let mut written = 0u64;
        let mut i = 0usize;
        while written < target {
            let mut batch = Vec::with_capacity(64);
            for _ in 0..64 {
                let mut t = Txn::default();
                for _ in 0..4 {
                    let (k, mut v) = entry(i % 50_000);
                    v.resize(900, (i % 251) as u8);
                    written += (k.len() + v.len() + 52) as u64;
                    t.put(Db::Mailboxes, k, v);
                    i += 1;
                }
                batch.push(t);
            }
            env.commit_all(batch)?;
        }
    }
    let log_bytes: u64 = std::fs::read_dir(&home)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("log."))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let gib = log_bytes as f64 / (1u64 << 30) as f64;
    let t0 = Instant::now();
    let r = mstore::db::log::replay_dir(&mstore::fs::RealFs, &home, mstore::db::log::Limit::End)?;
    let replay = t0.elapsed().as_secs_f64();
    let commits = r.replayer.commits;
    drop(r);
    let t0 = Instant::now();
    let rep = mstore::db::recover::recover(
        &mstore::fs::RealFs,
        &home,
        &RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false },
    )?;
    let full = t0.elapsed().as_secs_f64();
    println!(
        "recovery (replay, warm cache):        {:>9.2} s/GiB      ({:.0} MiB of log, {} commits, {:.2}s)",
        replay / gib,
        log_bytes as f64 / (1 << 20) as f64,
        commits,
        replay
    );
    println!(
        "msdb_recover (replay + snapshots):    {:>9.2} s/GiB      ({:.2}s, {} entries written)",
        full / gib,
        full,
        rep.entries
    );

    Ok(())
}

/// Backup of a large mailbox list.
fn backup_list(a: &DbArgs, root: &Path) -> Result<()> {
    let home = root.join("backup");
    let bdir = root.join("backup-out");
    fresh(&home)?;
    fresh(&bdir)?;
    {
        let env = Env::create_with(&home, opts(Durability::NoSync, 16 << 20))?;
        let mut i = 0;
        while i < a.entries {
            let mut t = Txn::default();
            for _ in 0..1000.min(a.entries - i) {
                let (k, v) = entry(i);
                t.put(Db::Mailboxes, k, v);
                i += 1;
            }
            env.commit(t)?;
        }
        env.checkpoint()?;
    }
    let t0 = Instant::now();
    let rep = backup::backup(
        &opts(Durability::Sync, 16 << 20),
        &home,
        &BackupOptions { backup_dir: bdir.clone(), keep: 1 },
        &mut |_| {},
    )?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "msdb_backup (copy, fsync, verify):    {:>9.1} MB/s       ({} entries, {:.1} MB in {} files, {:.2}s)",
        rep.bytes as f64 / 1e6 / secs,
        rep.entries,
        rep.bytes as f64 / 1e6,
        rep.files,
        secs
    );
    Ok(())
}
