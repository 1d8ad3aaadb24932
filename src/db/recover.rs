//! `msdb_recover`: bring the databases to their last committed state from the snapshots
//! and the transaction log, and the explicit recovery modes beyond it.
//!
//! - **Normal**: replay every committed transaction after each snapshot's checkpoint,
//!   discard uncommitted ones, tolerate only a torn final record (reported), refuse on
//!   mid-log corruption (naming file, offset and LSN). Then make the state durable: fsync
//!   the log, start a new segment after a torn tail (the torn bytes stay, unread, as
//!   evidence), write the snapshots and a checkpoint record.
//! - **Strict**: as normal, but any damage, a torn tail included, refuses.
//! - **Point-in-time**: stop at the first bad record wherever it is, and install the state
//!   reached there (`install.rs`), reporting the commits dropped.
//! - **To an LSN or a time**: replay only transactions committed up to it, and install
//!   that state (the later log is moved into quarantine).
//! - **Catastrophic**: start from the last good backup's snapshots, replay the backup's
//!   log and then the live log after it, as far as it verifies, and install that.
//!
//! Everything runs under the exclusive lock of the database home.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::log::{self, Damage, Limit, Position, RecInfo, Replayer, SegHead, Tables, TxnInfo};
use super::{DbError, install};
use crate::codec::wal;
use crate::error::{Error, IoContext, Result};
use crate::format::wal::SEGMENT_HEADER_LEN;
use crate::fs::{Fs, LockMode};
use crate::io::Durability;

/// Which recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Replay everything committed; tolerate only a torn final record.
    #[default]
    Normal,
    /// Replay everything committed; refuse on any damage.
    Strict,
    /// Stop at the first bad record and open there.
    PointInTime,
    /// Stop after the last transaction committed at or before `limit`.
    Until(Limit),
    /// From the backup in this directory plus the live log after it.
    Catastrophic(PathBuf),
    /// Ignore the snapshots: replay the whole log from its first record, stopping at the
    /// first bad one (for damaged snapshots when no segment was ever removed).
    Rebuild,
}

/// Options of a recovery.
#[derive(Clone, Debug)]
pub struct RecoverOptions {
    /// The mode.
    pub mode: Mode,
    /// fsync or not.
    pub durability: Durability,
    /// Find and report, write nothing.
    pub dry_run: bool,
}

/// What a recovery found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoverReport {
    /// Database home.
    pub dir: PathBuf,
    /// Checkpoint LSN of each snapshot before recovery (mailboxes, subscriptions).
    pub snapshot_lsn: [u64; 2],
    /// Damage found in the log.
    pub damage: Option<Damage>,
    /// Committed transactions read from the log.
    pub commits: u64,
    /// Of those, replayed onto a snapshot (the rest were already in it).
    pub replayed: u64,
    /// The last commit in the recovered state: LSN, transaction, time.
    pub last_commit: Option<(u64, u64, i64)>,
    /// LSN the recovered state includes.
    pub lsn: u64,
    /// Uncommitted transactions discarded.
    pub discarded: Vec<TxnInfo>,
    /// Committed transactions not in the recovered state (after the point recovered to,
    /// or readable past the damage); at most 1000 listed.
    pub dropped: Vec<RecInfo>,
    /// How many committed transactions were dropped (may exceed the list).
    pub dropped_count: usize,
    /// Entries in all databases after recovery.
    pub entries: usize,
    /// Where what was replaced went.
    pub quarantine: Option<PathBuf>,
    /// What was done, in order.
    pub actions: Vec<String>,
    /// Whether anything was wrong (damage found, an install finished, transactions
    /// discarded or dropped).
    pub repaired: bool,
    /// Damaged snapshots a rebuild read entry by entry, and what it read of each.
    pub salvaged: Vec<log::SnapSalvage>,
    /// Losses a rebuild cannot count (entries of a damaged snapshot the log does not hold,
    /// or transactions between the snapshots and the start of the log), with what to do.
    pub uncounted: Option<String>,
    /// BLAKE3 of the recovered contents.
    #[serde(serialize_with = "hex32")]
    pub digest: [u8; 32],
}

fn hex32<S: serde::Serializer>(d: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::util::hex(d))
}

impl RecoverReport {
    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "database home {}: snapshots at LSN {} (mailboxes), {} (subscriptions)\n",
            self.dir.display(),
            self.snapshot_lsn[0],
            self.snapshot_lsn[1]
        );
        match &self.damage {
            None => s += "log: clean\n",
            Some(d) => s += &format!("log: {}\n", d.describe()),
        }
        s += &format!(
            "replayed {} committed transactions ({} read; the others were already in the snapshots)\n",
            self.replayed, self.commits
        );
        for t in &self.discarded {
            s += &log::discarded_line(t);
            s += "\n";
        }
        if self.dropped_count > 0 {
            s += &format!("dropped {} committed transactions:\n", self.dropped_count);
            s += &log::txn_lines(&self.dropped, self.dropped_count, "  ");
        }
        for a in &self.actions {
            s += &format!("{a}\n");
        }
        if let Some(u) = &self.uncounted {
            s += &format!("{u}\n");
        }
        s += &format!("databases at LSN {}: {} entries\n", self.lsn, self.entries);
        s
    }
}

/// Recover the databases of `dir`.
pub fn recover(fs: &dyn Fs, dir: &Path, opts: &RecoverOptions) -> Result<RecoverReport> {
    fs.metadata(dir).map_err(|e| Error::io("open database home", dir, e))?;
    let _x = fs.lock(dir, LockMode::Exclusive).ctx("lock database home", dir)?;
    recover_locked(fs, dir, opts)
}

/// [`recover`] for a caller that already holds the exclusive lock.
pub fn recover_locked(fs: &dyn Fs, dir: &Path, opts: &RecoverOptions) -> Result<RecoverReport> {
    let d = opts.durability;
    let mut report = RecoverReport { dir: dir.to_path_buf(), ..RecoverReport::default() };
    if install::pending(fs, dir)? {
        if opts.dry_run {
            report.actions.push(format!("would finish the interrupted install ({})", install::MARKER));
        } else {
            install::finish_pending(fs, dir, d)?;
            report.actions.push(format!("finished an interrupted install ({})", install::MARKER));
        }
        report.repaired = true;
    }
    let limit = match &opts.mode {
        Mode::Until(l) => *l,
        _ => Limit::End,
    };
    let (mut rp, outcome, heads, from_backup) = match &opts.mode {
        Mode::Catastrophic(backup) => {
            let (rp, outcome, heads) = read_catastrophic(fs, dir, backup, &mut report)?;
            (rp, outcome, heads, true)
        }
        _ => {
            let (rp, outcome, heads) = read_live(fs, dir, &opts.mode, limit, &mut report)?;
            (rp, outcome, heads, false)
        }
    };
    refuse_damage(&opts.mode, &outcome, &rp)?;
    report.commits = rp.commits;
    report.replayed = rp.applied;
    report.damage = outcome.damage.clone();
    let stopped_early = rp.stopped_at.is_some();
    account_losses(fs, &heads, &mut rp, &outcome, &mut report)?;
    let pos = outcome.position.clone();
    // The LSN the state includes: everything read (normal), or up to just before the
    // transaction the limit stopped at.
    let lsn = match (&rp.stopped_at, &pos) {
        (Some(s), _) => s.first_lsn.saturating_sub(1),
        (None, Some(p)) => p.next_lsn - 1,
        (None, None) => 0,
    }
    .max(rp.tables.max_applied());
    report.lsn = lsn;
    report.last_commit = rp.last_commit;
    report.entries = rp.tables.entries();
    report.digest = rp.tables.digest();
    report.repaired |= from_backup
        || report.uncounted.is_some()
        || !report.salvaged.is_empty()
        || outcome.damage.is_some()
        || !outcome.tolerated.is_empty()
        || !report.discarded.is_empty()
        || report.dropped_count > 0;
    let needs_install = from_backup
        || opts.mode == Mode::Rebuild
        || stopped_early
        || !outcome.tolerated.is_empty()
        || matches!(&outcome.damage, Some(Damage::Corrupt(_)));
    if opts.dry_run {
        report.actions.push(if needs_install {
            format!("would install the state at LSN {lsn}, moving the log and snapshots into {}/", install::QUARANTINE)
        } else {
            format!("would write the snapshots at LSN {lsn}")
        });
        return Ok(report);
    }
    let mut tables = rp.tables;
    if needs_install {
        install_state(fs, dir, &opts.mode, tables, lsn, d, &mut report)?;
        return Ok(report);
    }
    let torn = matches!(outcome.damage, Some(Damage::TornTail(_)));
    // The snapshots need rewriting if a commit is missing from one of them.
    let last_commit = rp.last_commit.map(|c| c.0).unwrap_or(0);
    let stale = report.snapshot_lsn.iter().any(|&s| s < last_commit);
    finish_normal(fs, dir, &mut tables, Ending { pos, torn, stale, lsn }, d, &mut report)?;
    Ok(report)
}

/// The recoveries that must not go on: a limit before what the snapshots include, and
/// damage the mode does not accept (strict: any; normal and to a point: mid-log
/// corruption), with the error that says what to run.
fn refuse_damage(mode: &Mode, outcome: &log::ReadOutcome, rp: &Replayer) -> Result<()> {
    if let Some(stop) = &rp.stopped_at {
        if stop.commit_lsn.unwrap_or(0) <= rp.tables.max_applied() {
            return Err(Error::Invalid(format!(
                "the snapshots already include transaction {} committed after the point asked for; use --catastrophic with an older backup",
                stop.txn
            )));
        }
    }
    if *mode == Mode::Strict {
        if let Some(t) = outcome.tolerated.first() {
            return Err(Error::Db(DbError::Refused(format!(
                "strict recovery refuses: {} is damaged at byte offset {} (LSN {}): {} (the snapshots include those records; msdb_recover without --strict sets the log aside)",
                t.file.display(),
                t.offset,
                t.lsn,
                t.what
            ))));
        }
    }
    let refuse = match (mode, &outcome.damage) {
        (_, None) => false,
        (Mode::Strict, Some(_)) => true,
        (Mode::Normal | Mode::Until(_), Some(d)) => d.is_corrupt(),
        (Mode::PointInTime | Mode::Catastrophic(_) | Mode::Rebuild, Some(_)) => false,
    };
    if refuse {
        let d = outcome.damage.as_ref().expect("refuse implies damage");
        return Err(match (mode, d) {
            (Mode::Strict, Damage::TornTail(_)) => Error::Db(DbError::Refused(format!(
                "strict recovery refuses: {}; run msdb_recover without --strict to drop the torn record",
                d.describe()
            ))),
            _ => super::corrupt_error(d, rp),
        });
    }
    Ok(())
}

/// What the recovered state leaves out, into the report: transactions discarded
/// uncommitted (or whose commit record is the first damaged one), commits readable past
/// damage, commits after the point a limit stopped at, damage the snapshots make harmless.
fn account_losses(
    fs: &dyn Fs,
    heads: &[SegHead],
    rp: &mut Replayer,
    outcome: &log::ReadOutcome,
    report: &mut RecoverReport,
) -> Result<()> {
    let stopped_early = rp.stopped_at.is_some();
    if !stopped_early {
        rp.discard_open();
    }
    report.discarded = rp.discarded.clone();
    if let Some(d) = &outcome.damage {
        let at = d.at().lsn;
        for t in &mut report.discarded {
            t.commit_in_damage = t.first_lsn + u64::from(t.records) == at;
        }
    }
    let in_snapshots = report.snapshot_lsn.iter().copied().min().unwrap_or(0);
    if let Some(d) = &outcome.damage {
        let lost: Vec<RecInfo> = d.at().later_commits.iter().filter(|c| c.lsn > in_snapshots).cloned().collect();
        report.dropped_count += lost.len();
        report.dropped.extend(lost);
    }
    for t in &outcome.tolerated {
        report.actions.push(format!(
            "{} is damaged at byte offset {} (LSN {}): {}; the snapshots already include those records",
            t.file.display(),
            t.offset,
            t.lsn,
            t.what
        ));
    }
    if stopped_early {
        let (list, count) = commits_after(fs, heads, rp.stopped_at.as_ref().map(|s| s.first_lsn).unwrap_or(0))?;
        report.dropped.extend(list);
        report.dropped_count += count;
    }
    report.dropped.truncate(1000);
    Ok(())
}

/// Install `tables` as the state at `lsn` (a new log timeline; what it replaces goes into
/// the quarantine, named for the mode).
fn install_state(
    fs: &dyn Fs,
    dir: &Path,
    mode: &Mode,
    mut tables: Tables,
    lsn: u64,
    d: Durability,
    report: &mut RecoverReport,
) -> Result<()> {
    tables.applied = [lsn; 2];
    let reason = match mode {
        Mode::Catastrophic(_) => "catastrophic".to_string(),
        Mode::PointInTime => "point-in-time".to_string(),
        Mode::Rebuild => "rebuild".to_string(),
        Mode::Until(Limit::Lsn(n)) => format!("to-lsn-{n}"),
        Mode::Until(Limit::Time(_)) => "to-time".to_string(),
        _ => "recover".to_string(),
    };
    let q = install::install(fs, dir, &tables, lsn, &reason, d)?;
    report.actions.push(format!(
        "installed the state at LSN {lsn} and started a new log timeline; the replaced log and snapshots are in {}",
        q.display()
    ));
    report.quarantine = Some(q);
    Ok(())
}

/// Read the live snapshots and log for a recovery in `mode` (all but catastrophic): the
/// replayer with the recovered tables, what reading found, and the segment heads. A
/// rebuild salvages damaged snapshots and replays the whole readable log over them.
fn read_live(
    fs: &dyn Fs,
    dir: &Path,
    mode: &Mode,
    limit: Limit,
    report: &mut RecoverReport,
) -> Result<(Replayer, log::ReadOutcome, Vec<SegHead>)> {
    let rebuild = *mode == Mode::Rebuild;
    let (tables, salvaged) =
        if rebuild { Tables::load_salvaging(fs, dir)? } else { (Tables::load(fs, dir)?, Vec::new()) };
    report.snapshot_lsn = tables.applied;
    if let Limit::Lsn(n) = limit {
        if tables.max_applied() > n {
            return Err(Error::Invalid(format!(
                "the snapshots already include LSN {} (past {n}); to go back further, use --catastrophic with an older backup",
                tables.max_applied()
            )));
        }
    }
    let segs = log::list_segments(fs, dir)?;
    let heads = log::read_heads(fs, &segs)?;
    let (from, tolerate) = if rebuild { (0, 0) } else { (tables.min_applied() + 1, tables.min_applied()) };
    // A rebuild replays the whole readable log over what the snapshots still hold:
    // puts and deletes are idempotent, so the result is right for every key the log
    // touches, and the snapshots' own entries stand for the rest.
    let floors = tables.applied;
    let mut start = tables;
    if rebuild {
        start.applied = [0; 2];
    }
    let mut rp = Replayer::new(start, limit);
    let outcome = log::read_log(fs, &heads, from, tolerate, &mut |_, _, r| rp.visit(r))?;
    if rebuild {
        for (a, f) in rp.tables.applied.iter_mut().zip(floors) {
            *a = (*a).max(f);
        }
        report.uncounted = rebuild_losses(&salvaged, floors, &outcome);
        report.salvaged = salvaged;
    } else {
        log::check_coverage(dir, &rp.tables, &outcome)?;
    }
    Ok((rp, outcome, heads))
}

/// What a rebuild lost and cannot name: entries of a damaged snapshot that the log does
/// not hold again (unless the log reaches back to LSN 1, when it holds everything), and
/// transactions between what the snapshots include and the first record of the log.
fn rebuild_losses(salvaged: &[log::SnapSalvage], floors: [u64; 2], outcome: &log::ReadOutcome) -> Option<String> {
    let from_start = outcome.first_lsn == Some(1);
    let mut parts = Vec::new();
    let mut mailboxes = false;
    for s in salvaged {
        if from_start || s.entry_count == Some(s.salvaged as u64) {
            continue;
        }
        mailboxes |= s.db == "mailboxes";
        let gone = match s.entry_count {
            Some(n) => format!("up to {} of its {n} entries are gone", n.saturating_sub(s.salvaged as u64)),
            None => "an unknown number of its entries are gone (its header is damaged too)".to_string(),
        };
        let log = match outcome.first_lsn {
            Some(f) => format!("the log reaches back only to LSN {f}"),
            None => "no log record is readable".to_string(),
        };
        parts.push(format!(
            "{} is damaged ({} bytes unreadable): {} entries were read back, {gone}, and {log}",
            s.file.display(),
            s.unreadable_bytes,
            s.salvaged
        ));
    }
    let floor = floors.iter().copied().min().unwrap_or(0);
    if parts.is_empty() {
        if let Some(f) = outcome.first_lsn.filter(|&f| f > floor + 1) {
            mailboxes = true;
            parts.push(format!(
                "the log starts at LSN {f} but the snapshots include only LSN {floor}: what was committed in between is gone"
            ));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let fix = if mailboxes {
        "; mailboxes no longer listed are still on disk: `reconstruct -r DOMAIN` registers them again"
    } else {
        "; subscriptions no longer listed must be made again"
    };
    Some(format!("committed transactions were lost and cannot be counted: {}{fix}", parts.join("; ")))
}

/// Normal ending: make the log durable, close a torn tail with a new segment, write the
/// snapshots at `lsn` and a checkpoint record.
/// Where a normal recovery's reading ended, and what that leaves to do.
struct Ending {
    /// Where a writer continues (`None`: no segment).
    pos: Option<Position>,
    /// The log ends in a torn record: close it with a new segment.
    torn: bool,
    /// A snapshot lacks a commit: write them again.
    stale: bool,
    /// The LSN the recovered state includes.
    lsn: u64,
}

fn finish_normal(
    fs: &dyn Fs,
    dir: &Path,
    tables: &mut Tables,
    end: Ending,
    d: Durability,
    report: &mut RecoverReport,
) -> Result<()> {
    let Ending { pos, torn, stale, lsn } = end;
    let Some(mut pos) = pos else {
        if stale {
            log::write_snapshots(fs, dir, tables, lsn, d)?;
            report.actions.push(format!("wrote the snapshots at LSN {lsn}"));
        }
        return Ok(());
    };
    if d == Durability::Sync {
        let mut f = fs.open_write(&pos.path).ctx("open transaction log", &pos.path)?;
        f.sync().ctx("fsync transaction log", &pos.path)?;
        fs.sync_dir(dir).ctx("fsync database home", dir)?;
    }
    if torn {
        let number = pos.number + 1;
        let prev = Some((pos.salt, pos.end, pos.last_crc));
        let (path, salt, crc) = log::create_segment(fs, dir, number, pos.next_lsn, prev, log::Timeline::Continue, d)?;
        report.actions.push(format!(
            "left the torn bytes after offset {} of {} unread and started segment {}",
            pos.end,
            pos.path.display(),
            path.display()
        ));
        pos = Position { number, path, salt, end: SEGMENT_HEADER_LEN as u64, last_crc: crc, next_lsn: pos.next_lsn };
    }
    if stale || torn {
        log::write_snapshots(fs, dir, tables, lsn, d)?;
        tables.applied = [lsn; 2];
        let mut buf = Vec::new();
        let body = wal::Body::Checkpoint { checkpoint_lsn: lsn, time: crate::util::now() };
        wal::encode_record(&mut buf, pos.salt, pos.last_crc, pos.next_lsn, 0, lsn, &body);
        let mut f = fs.open_write(&pos.path).ctx("open transaction log", &pos.path)?;
        f.write_at(pos.end, &buf).ctx("write transaction log", &pos.path)?;
        if d == Durability::Sync {
            f.sync().ctx("fsync transaction log", &pos.path)?;
        }
        report.actions.push(format!("wrote the snapshots and a checkpoint at LSN {lsn}"));
    }
    Ok(())
}

/// Commit records with LSN at or after `from` in the active timeline (however far the
/// log verifies).
fn commits_after(fs: &dyn Fs, heads: &[SegHead], from: u64) -> Result<(Vec<RecInfo>, usize)> {
    let mut list = Vec::new();
    let mut count = 0;
    let mut ops = log::TxnOps::default();
    log::read_log(fs, heads, from, 0, &mut |file, off, r| {
        if r.lsn >= from {
            if let Some(info) = ops.see(file, off, r) {
                count += 1;
                if list.len() < 1000 {
                    list.push(info);
                }
            }
        }
        Ok(true)
    })?;
    Ok((list, count))
}

/// Catastrophic recovery's reading: the backup's snapshots and log, then the live log
/// from where the backup's ends (when the live log continues it).
fn read_catastrophic(
    fs: &dyn Fs,
    dir: &Path,
    backup: &Path,
    report: &mut RecoverReport,
) -> Result<(Replayer, log::ReadOutcome, Vec<SegHead>)> {
    let r = log::replay_dir(fs, backup, Limit::End)?;
    report.actions.push(format!("started from the backup {}", backup.display()));
    let tables = Tables::load(fs, backup)?;
    report.snapshot_lsn = tables.applied;
    if let Some(d) = &r.outcome.damage {
        return Err(DbError::Backup(format!("backup {} is damaged: {}", backup.display(), d.describe())).into());
    }
    let mut rp = r.replayer;
    rp.discard_open();
    let Some(bpos) = r.outcome.position.clone() else {
        return Ok((rp, r.outcome, r.heads));
    };
    let live_segs = log::list_segments(fs, dir).unwrap_or_default();
    let live = log::read_heads(fs, &live_segs)?;
    let same = live.iter().find(|h| {
        h.number == bpos.number && h.len >= bpos.end && matches!(&h.header, Ok((i, _)) if i.salt == bpos.salt)
    });
    let Some(same) = same else {
        report.actions.push("the live log does not continue the backup's; nothing of it replayed".to_string());
        return Ok((rp, r.outcome, r.heads));
    };
    let pos = Position { path: same.path.clone(), ..bpos };
    let from: Vec<SegHead> = live.iter().filter(|h| h.number >= pos.number).cloned().collect();
    match log::read_log_from(fs, &from, &pos, &mut |_, _, rec| rp.visit(rec))? {
        log::Continue::Read(out) => {
            report.actions.push(format!("replayed the live log after LSN {}", pos.next_lsn - 1));
            Ok((rp, *out, from))
        }
        log::Continue::Reload => {
            report.actions.push("the live log does not continue the backup's; nothing of it replayed".to_string());
            Ok((rp, r.outcome, r.heads))
        }
    }
}

/// The recovered state of `dir` without writing anything: snapshots plus every commit
/// of the log (stopping at damage). Used on backup copies.
pub fn recovered_state(fs: &dyn Fs, dir: &Path) -> Result<(Tables, u64, Option<Damage>)> {
    let r = log::replay_dir(fs, dir, Limit::End)?;
    let lsn = r.outcome.position.as_ref().map(|p| p.next_lsn - 1).unwrap_or(r.replayer.tables.max_applied());
    Ok((r.replayer.tables, lsn, r.outcome.damage))
}
