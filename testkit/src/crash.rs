//! Test support: crash-state enumeration for the databases (used by `tests/db_crash.rs`
//! with small bounds, and by `cargo xtask crash` for long runs).
//!
//! A [`Workload`] runs on a recording [`SimFs`]: inserts, updates and deletes in both
//! databases, segment rollovers, checkpoints, group commits, hot backups with commits
//! arriving during them. The trace holds every write, fsync, rename, truncate and
//! directory fsync, and a mark before each commit is issued and after it is
//! acknowledged. [`check`] then visits every point of the trace and, at each one,
//! several power cuts ([`Variant`]s: only synced data; everything; random subsets of the
//! unsynced writes, some torn). For each distinct crash state it runs, on a copy:
//!
//! 1. `msdb_verify` — must not report corruption (a crash only ever tears the tail);
//! 2. normal recovery — must succeed;
//! 3. the recovered contents must equal the contents after the first `m` transactions
//!    for some `m` with `acknowledged ≤ m ≤ issued` (every acknowledged commit is there
//!    whole, the state is a prefix of what was issued, nothing uncommitted is visible),
//!    and a newly opened environment must see exactly that;
//! 4. `msdb_verify` again — must be clean, and must agree with what recovery found
//!    (same last commit, torn tail reported by both or neither);
//! 5. every finished backup must check out and hold a prefix state that has every
//!    commit acknowledged before the backup started, and none after `m`;
//! 6. for every `nested_every`-th state, recovery itself is recorded and crashed at each
//!    of its points; recovering from there must reach the same contents;
//! 7. for the same states, commits after the recovery are recorded and crashed at each of
//!    their points: recovering again must keep the first recovery's contents and every
//!    commit acknowledged after it (a crash after a recovery loses nothing either).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Rng;
use crate::sim::{CrashSweep, Image, Mark, Op, SimFs, Variant};
use mstore::db::backup::{self, BackupOptions, Phase};
use mstore::db::log::Tables;
use mstore::db::recover::{Mode, RecoverOptions, recover};
use mstore::db::verify::{self, Status};
use mstore::db::{Db, Env, EnvOptions, Txn};
use mstore::io::Durability;

/// The database home inside the simulated file system.
pub const HOME: &str = "/ms/database";
/// The backup directory inside the simulated file system.
pub const BACKUPS: &str = "/ms/backup";

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Inserts, updates and deletes in both databases, one transaction per commit.
    Mixed,
    /// Tiny segments: a rollover every few commits.
    Rollover,
    /// Automatic and explicit checkpoints between commits.
    Checkpoint,
    /// Several transactions per group commit.
    GroupCommit,
    /// Hot backups with commits arriving while they copy.
    Backup,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] =
        [Workload::Mixed, Workload::Rollover, Workload::Checkpoint, Workload::GroupCommit, Workload::Backup];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Mixed => "mixed",
            Workload::Rollover => "rollover",
            Workload::Checkpoint => "checkpoint",
            Workload::GroupCommit => "group-commit",
            Workload::Backup => "backup",
        }
    }
}

/// A workload as run: where the trace starts, the trace, and the transactions in order.
#[derive(Debug)]
pub struct Recorded {
    /// Which workload.
    pub workload: Workload,
    /// The random-number seed it was generated from.
    pub seed: u64,
    /// The file system before the first operation.
    pub initial: Image,
    /// Every operation.
    pub trace: Vec<Op>,
    /// The transactions, in the order issued (which is commit order: one writer).
    pub txns: Vec<Txn>,
    /// Segment size used.
    pub segment_size: u64,
    /// Each backup made: its name, and how many transactions were acknowledged before it
    /// started (it must hold at least those).
    pub backups: Vec<(String, usize)>,
}

/// How hard to look.
#[derive(Clone, Copy, Debug)]
pub struct CheckConfig {
    /// Random variants per crash point (besides "synced only" and "everything").
    pub random_variants: usize,
    /// Crash recovery itself at every point for every n-th state checked (0: never).
    pub nested_every: usize,
    /// Seed for the random variants.
    pub seed: u64,
}

/// What was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Crash points visited.
    pub points: u64,
    /// Distinct crash states checked.
    pub states: u64,
    /// States inside a crashed recovery checked.
    pub nested_states: u64,
    /// States after commits made on a recovered home, then a crash.
    pub after_recovery_states: u64,
    /// States with a torn tail.
    pub torn: u64,
    /// States where recovery kept a commit that was not yet acknowledged.
    pub unacked_kept: u64,
    /// Finished backups checked.
    pub backups_checked: u64,
}

impl Stats {
    /// Add another run's numbers.
    pub fn add(&mut self, o: &Stats) {
        self.points += o.points;
        self.states += o.states;
        self.nested_states += o.nested_states;
        self.after_recovery_states += o.after_recovery_states;
        self.torn += o.torn;
        self.unacked_kept += o.unacked_kept;
        self.backups_checked += o.backups_checked;
    }
}

fn env_opts(fs: &Arc<SimFs>, segment_size: u64, checkpoint_bytes: u64) -> EnvOptions {
    EnvOptions { fs: fs.clone(), durability: Durability::Sync, segment_size, checkpoint_bytes }
}

/// A random transaction over a small key space (so updates and deletes hit).
pub fn random_txn(rng: &mut Rng, n: usize) -> Txn {
    let mut t = Txn::default();
    for _ in 0..1 + rng.below(4) {
        let db = if rng.below(3) == 0 { Db::Subscriptions } else { Db::Mailboxes };
        let key = format!("example.com\0k{:02}", rng.below(24)).into_bytes();
        if rng.below(4) == 0 {
            t.delete(db, key);
        } else {
            let cap = if rng.below(8) == 0 { 900 } else { 120 };
            let len = rng.below(cap) as usize;
            let mut v = format!("t{n}:").into_bytes();
            v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n as u8)));
            t.put(db, key, v);
        }
    }
    t
}

/// Run `workload` with `seed` on a recording simulated file system.
pub fn record(workload: Workload, seed: u64, txns: usize) -> mstore::Result<Recorded> {
    let fs = Arc::new(SimFs::new());
    let home = Path::new(HOME);
    let (segment_size, checkpoint_bytes) = match workload {
        Workload::Rollover => (1024, u64::MAX),
        Workload::Checkpoint => (4096, 2048),
        Workload::Backup => (2048, u64::MAX),
        _ => (8192, u64::MAX),
    };
    let opts = env_opts(&fs, segment_size, checkpoint_bytes);
    {
        // A home with some history: one committed transaction and a checkpoint.
        let env = Env::create_with(home, opts.clone())?;
        let mut t = Txn::default();
        t.put(Db::Mailboxes, b"example.com\0user/joe".to_vec(), b"initial".to_vec());
        env.commit(t)?;
        env.checkpoint()?;
    }
    let mut first = Txn::default();
    first.put(Db::Mailboxes, b"example.com\0user/joe".to_vec(), b"initial".to_vec());
    let initial = fs.start_recording();
    let mut rng = Rng::new(seed ^ (workload as u64) << 32);
    let mut issued: Vec<Txn> = vec![first];
    let mut backups = Vec::new();
    {
        let env = Env::open_with(home, opts.clone())?;
        let commit_one = |env: &Env, issued: &mut Vec<Txn>, rng: &mut Rng| -> mstore::Result<()> {
            let n = issued.len();
            let t = random_txn(rng, n);
            fs.mark(Mark::Issue(n));
            issued.push(t.clone());
            env.commit(t)?;
            fs.mark(Mark::Ack(n));
            Ok(())
        };
        match workload {
            Workload::Mixed | Workload::Rollover => {
                for _ in 0..txns {
                    commit_one(&env, &mut issued, &mut rng)?;
                }
            }
            Workload::Checkpoint => {
                for i in 0..txns {
                    commit_one(&env, &mut issued, &mut rng)?;
                    if i % 7 == 6 {
                        env.checkpoint()?;
                    }
                }
            }
            Workload::GroupCommit => {
                let mut left = txns;
                while left > 0 {
                    let k = (1 + rng.below(5) as usize).min(left);
                    let base = issued.len();
                    let batch: Vec<Txn> = (0..k).map(|j| random_txn(&mut rng, base + j)).collect();
                    for j in 0..k {
                        fs.mark(Mark::Issue(base + j));
                    }
                    issued.extend(batch.iter().cloned());
                    env.commit_all(batch)?;
                    for j in 0..k {
                        fs.mark(Mark::Ack(base + j));
                    }
                    left -= k;
                }
            }
            Workload::Backup => {
                let bopts = BackupOptions { backup_dir: PathBuf::from(BACKUPS), keep: 1 };
                let third = (txns / 3).max(1);
                for _ in 0..third {
                    commit_one(&env, &mut issued, &mut rng)?;
                }
                for _round in 0..2 {
                    let mut err = None;
                    let acked_before = issued.len();
                    {
                        let mut hook = |_: Phase| {
                            for _ in 0..2 {
                                if let Err(e) = commit_one(&env, &mut issued, &mut rng) {
                                    err = Some(e);
                                }
                            }
                        };
                        let b = backup::backup(&opts, home, &bopts, &mut hook)?;
                        backups.push((b.name, acked_before));
                    }
                    if let Some(e) = err {
                        return Err(e);
                    }
                    for _ in 0..third / 2 {
                        commit_one(&env, &mut issued, &mut rng)?;
                    }
                }
            }
        }
    }
    let trace = fs.take_trace();
    Ok(Recorded { workload, seed, initial, trace, txns: issued, segment_size, backups })
}

/// The contents after each prefix of the transactions: digest → the prefix lengths.
fn prefix_digests(txns: &[Txn]) -> HashMap<[u8; 32], Vec<usize>> {
    let mut out: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    let mut t = Tables::default();
    out.entry(t.digest()).or_default().push(0);
    for (i, tx) in txns.iter().enumerate() {
        tx.apply_to(&mut t);
        out.entry(t.digest()).or_default().push(i + 1);
    }
    out
}

/// A failed check: what, where.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Workload and seed.
    pub workload: &'static str,
    /// Seed.
    pub seed: u64,
    /// Crash point.
    pub point: usize,
    /// Variant.
    pub variant: Variant,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "workload {} seed {} crash point {} ({:?}): {}",
            self.workload, self.seed, self.point, self.variant, self.what
        )
    }
}

/// Check every crash point of `rec`.
pub fn check(rec: &Recorded, cfg: &CheckConfig) -> Result<Stats, Failure> {
    let digests = prefix_digests(&rec.txns);
    let mut stats = Stats::default();
    let mut seen: HashSet<([u8; 32], usize, usize)> = HashSet::new();
    let mut rng = Rng::new(cfg.seed ^ rec.seed.rotate_left(17));
    let mut sweep = CrashSweep::new(&rec.initial, &rec.trace);
    loop {
        stats.points += 1;
        let mut variants = vec![Variant::SyncedOnly];
        if sweep.has_undurable() {
            variants.push(Variant::Everything);
            variants.extend(std::iter::repeat_n(Variant::Random, cfg.random_variants));
        }
        for v in variants {
            let img = sweep.materialise(v, &mut rng);
            let key = (img.digest(), sweep.acked(), sweep.issued());
            if !seen.insert(key) {
                continue;
            }
            let fail = |what: String| Failure {
                workload: rec.workload.name(),
                seed: rec.seed,
                point: sweep.point(),
                variant: v,
                what,
            };
            let nested = cfg.nested_every > 0 && (stats.states as usize) % cfg.nested_every == 0;
            check_state(
                CrashState { img: &img, acked: sweep.acked(), issued: sweep.issued(), nested },
                &digests,
                rec,
                &mut rng,
                &mut stats,
            )
            .map_err(fail)?;
            stats.states += 1;
        }
        if !sweep.has_next() {
            break;
        }
        sweep.advance();
    }
    Ok(stats)
}

/// One crash state: the disk it left, how many transactions were acknowledged and issued
/// before it, and whether it is a crash during recovery from an earlier crash.
struct CrashState<'i> {
    img: &'i Image,
    acked: usize,
    issued: usize,
    nested: bool,
}

fn check_state(
    state: CrashState<'_>,
    digests: &HashMap<[u8; 32], Vec<usize>>,
    rec: &Recorded,
    rng: &mut Rng,
    stats: &mut Stats,
) -> Result<(), String> {
    let CrashState { img, acked, issued, nested } = state;
    let home = Path::new(HOME);
    let fs = Arc::new(SimFs::from_image(img));
    // The transaction committed before the recording is always there.
    let acked = acked.max(1);
    let issued = issued.max(1);
    let before = verify::verify(&*fs, home).map_err(|e| format!("msdb_verify failed to run: {e}"))?;
    if before.status == Status::Corrupt {
        return Err(format!("msdb_verify reports corruption after a crash:\n{}", before.render()));
    }
    let opts = RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false };
    let recovery_image = if nested { Some(fs.image()) } else { None };
    let rep = recover(&*fs, home, &opts).map_err(|e| format!("recovery failed: {e}\n{}", before.render()))?;
    if (before.status == Status::TornTail) != rep.damage.is_some() {
        return Err(format!(
            "msdb_verify says {:?}, recovery found {:?}",
            before.status,
            rep.damage.as_ref().map(|d| d.describe())
        ));
    }
    if before.end_lsn != rep.lsn {
        return Err(format!("msdb_verify's log ends at LSN {}, recovery's at {}", before.end_lsn, rep.lsn));
    }
    stats.torn += u64::from(rep.damage.is_some());
    let env = Env::open_with(home, env_opts(&fs, rec.segment_size, u64::MAX))
        .map_err(|e| format!("open after recovery failed: {e}"))?;
    let tables = env.snapshot_tables().map_err(|e| e.to_string())?;
    drop(env);
    let d = tables.digest();
    if d != rep.digest {
        return Err("the environment sees other contents than recovery reported".to_string());
    }
    let ms = digests.get(&d).ok_or_else(|| {
        format!("recovered contents are no prefix of the issued transactions (acked {acked}, issued {issued})")
    })?;
    let Some(&m) = ms.iter().rev().find(|&&m| m >= acked && m <= issued) else {
        return Err(format!(
            "recovered contents equal the first {ms:?} transactions, not between {acked} acknowledged and {issued} issued"
        ));
    };
    stats.unacked_kept += u64::from(m > acked);
    let after = verify::verify(&*fs, home).map_err(|e| format!("msdb_verify failed to run: {e}"))?;
    if after.status != Status::Clean {
        return Err(format!("msdb_verify after recovery:\n{}", after.render()));
    }
    // Finished backups.
    for b in backup::list_backups(&*fs, Path::new(BACKUPS)).map_err(|e| e.to_string())? {
        let (t, _) = backup::backup_state(&*fs, &b.path).map_err(|e| format!("backup {} is bad: {e}", b.name))?;
        // Every commit acknowledged before the backup started must be in it.
        let at_start = rec
            .backups
            .iter()
            .find(|(name, _)| *name == b.name)
            .map(|&(_, n)| n)
            .ok_or_else(|| format!("backup {} was not made by the workload", b.name))?;
        let held = digests.get(&t.digest()).cloned().unwrap_or_default();
        if !held.iter().any(|&x| x >= at_start && x <= m) {
            return Err(format!(
                "backup {} holds the first {held:?} transactions: not every one of the {at_start} acknowledged before it started, or more than the {m} recovered",
                b.name
            ));
        }
        stats.backups_checked += 1;
    }
    if let Some(ri) = recovery_image {
        nested_check(&ri, &rep.digest, rng, stats)?;
        commits_after_recovery(&fs.image(), &tables, rec.segment_size, rng, stats)?;
    }
    Ok(())
}

/// Commit on the recovered home `img` (whose contents are `base`), crash at every point of
/// those commits, recover: the contents must be `base` plus the first `j` new commits,
/// with every acknowledged one among them.
fn commits_after_recovery(
    img: &Image,
    base: &Tables,
    segment_size: u64,
    rng: &mut Rng,
    stats: &mut Stats,
) -> Result<(), String> {
    let home = Path::new(HOME);
    let fs = Arc::new(SimFs::from_image(img));
    let start = fs.start_recording();
    let mut txns = Vec::new();
    {
        let env = Env::open_with(home, env_opts(&fs, segment_size, u64::MAX))
            .map_err(|e| format!("open after recovery failed: {e}"))?;
        for n in 0..4 {
            let t = random_txn(rng, 10_000 + n);
            fs.mark(Mark::Issue(n));
            txns.push(t.clone());
            env.commit(t).map_err(|e| format!("commit after recovery failed: {e}"))?;
            fs.mark(Mark::Ack(n));
        }
    }
    let trace = fs.take_trace();
    let mut want = vec![base.digest()];
    let mut t = base.clone();
    for tx in &txns {
        tx.apply_to(&mut t);
        want.push(t.digest());
    }
    let opts = RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false };
    let mut sweep = CrashSweep::new(&start, &trace);
    loop {
        let mut variants = vec![Variant::SyncedOnly];
        if sweep.has_undurable() {
            variants.push(Variant::Random);
        }
        for v in variants {
            let state = SimFs::from_image(&sweep.materialise(v, rng));
            let rep = recover(&state, home, &opts).map_err(|e| {
                format!("recovery after a crash at point {} of commits after a recovery failed: {e}", sweep.point())
            })?;
            let ok = (sweep.acked()..=sweep.issued()).any(|j| want.get(j) == Some(&rep.digest));
            if !ok {
                return Err(format!(
                    "commits after a recovery, crash at point {} ({v:?}): the contents are not the recovered ones plus {} to {} of the new commits",
                    sweep.point(),
                    sweep.acked(),
                    sweep.issued()
                ));
            }
            stats.after_recovery_states += 1;
        }
        if !sweep.has_next() {
            break;
        }
        sweep.advance();
    }
    Ok(())
}

/// Crash recovery itself at every point; recovering again must reach `want`.
fn nested_check(img: &Image, want: &[u8; 32], rng: &mut Rng, stats: &mut Stats) -> Result<(), String> {
    let home = Path::new(HOME);
    let fs = SimFs::from_image(img);
    let start = fs.start_recording();
    let opts = RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false };
    recover(&fs, home, &opts).map_err(|e| format!("recorded recovery failed: {e}"))?;
    let trace = fs.take_trace();
    let mut sweep = CrashSweep::new(&start, &trace);
    loop {
        let mut variants = vec![Variant::SyncedOnly];
        if sweep.has_undurable() {
            variants.push(Variant::Random);
        }
        for v in variants {
            let state = sweep.materialise(v, rng);
            let fs2 = SimFs::from_image(&state);
            let rep = recover(&fs2, home, &opts)
                .map_err(|e| format!("recovery after a crash at point {} of recovery failed: {e}", sweep.point()))?;
            if &rep.digest != want {
                return Err(format!(
                    "recovery crashed at its point {} and rerun reached other contents",
                    sweep.point()
                ));
            }
            let v2 = verify::verify(&fs2, home).map_err(|e| e.to_string())?;
            if v2.status != Status::Clean {
                return Err(format!("msdb_verify after a rerun recovery:\n{}", v2.render()));
            }
            stats.nested_states += 1;
        }
        if !sweep.has_next() {
            break;
        }
        sweep.advance();
    }
    Ok(())
}
