//! `msdb_verify`: read-only verification of a database home — every snapshot entry and
//! every record of every log segment — telling a torn tail from mid-log corruption.
//!
//! Exit statuses (see the README): 0 clean; 2 only a torn final record (or an
//! interrupted install), which normal recovery handles; 4 corruption (a damaged snapshot,
//! mid-log corruption, a gap in the log); 8 the check itself could not run.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::log::{self, Damage, Limit, Replayer, SegReport, Tables, TxnInfo};
use super::{Db, install};
use crate::codec::dbsnap;
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode};

/// Overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything verifies.
    Clean,
    /// Only a torn final record, damage in records every snapshot already includes, or an
    /// unfinished install: normal recovery repairs it without losing an acknowledged
    /// transaction.
    TornTail,
    /// Something that had been committed is damaged or missing.
    Corrupt,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Clean => "clean",
            Status::TornTail => "torn tail or damage that normal recovery repairs without loss",
            Status::Corrupt => "corrupt",
        })
    }
}

/// One snapshot file.
#[derive(Clone, Debug, Serialize)]
pub struct SnapReport {
    /// File.
    pub file: PathBuf,
    /// Whether it exists.
    pub present: bool,
    /// Checkpoint LSN, if it decoded.
    pub checkpoint_lsn: Option<u64>,
    /// Entries, if it decoded.
    pub entries: Option<usize>,
    /// The first damage, if any.
    pub error: Option<String>,
}

/// What `msdb_verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Database home.
    pub dir: PathBuf,
    /// Verdict.
    pub status: Status,
    /// Snapshots.
    pub snapshots: Vec<SnapReport>,
    /// Segments of the active timeline.
    pub segments: Vec<SegReport>,
    /// Segments of earlier timelines (kept as evidence, never replayed).
    pub superseded: Vec<PathBuf>,
    /// Damage of the log.
    pub damage: Option<Damage>,
    /// LSN of the last valid record.
    pub end_lsn: u64,
    /// Valid records.
    pub records: u64,
    /// Committed transactions.
    pub commits: u64,
    /// The last commit: LSN, transaction, time.
    pub last_commit: Option<(u64, u64, i64)>,
    /// Uncommitted transactions (discarded by recovery).
    pub uncommitted: Vec<TxnInfo>,
    /// Problems (each one makes the status at least torn tail).
    pub problems: Vec<String>,
    /// Facts worth knowing that are not problems.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// The exit status for it.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Clean => 0,
            Status::TornTail => 2,
            Status::Corrupt => 4,
        }
    }

    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}: {}\n",
            self.dir.display(),
            match self.status {
                Status::Clean => "clean",
                Status::TornTail => "torn tail or damage that normal recovery (msdb_recover) repairs without loss",
                Status::Corrupt => "CORRUPT",
            }
        );
        for sn in &self.snapshots {
            match (&sn.error, sn.present) {
                (Some(e), _) => s += &format!("  {}: {e}\n", sn.file.display()),
                (None, false) => s += &format!("  {}: absent (empty database)\n", sn.file.display()),
                (None, true) => {
                    s += &format!(
                        "  {}: ok, {} entries, checkpoint LSN {}\n",
                        sn.file.display(),
                        sn.entries.unwrap_or(0),
                        sn.checkpoint_lsn.unwrap_or(0)
                    )
                }
            }
        }
        for g in &self.segments {
            s += &format!(
                "  {}: {} records from LSN {}, {} of {} bytes valid{}\n",
                g.file.display(),
                g.records,
                g.first_lsn,
                g.valid_end,
                g.len,
                if g.abandoned > 0 {
                    format!(" ({} bytes of an old torn tail, abandoned)", g.abandoned)
                } else {
                    String::new()
                }
            );
        }
        s += &format!("  log: {} records, {} commits, last LSN {}\n", self.records, self.commits, self.end_lsn);
        if let Some(d) = &self.damage {
            s += &format!("  {}\n", d.describe());
        }
        for t in &self.uncommitted {
            s += &format!("  {}\n", log::discarded_line(t).replace("discarded uncommitted", "uncommitted"));
        }
        for p in &self.problems {
            s += &format!("  problem: {p}\n");
        }
        for n in &self.notes {
            s += &format!("  note: {n}\n");
        }
        s
    }
}

/// Verify the database home `dir` (read-only; takes the shared lock so no write is in
/// progress while it reads).
pub fn verify(fs: &dyn Fs, dir: &Path) -> Result<VerifyReport> {
    let meta = fs.metadata(dir).map_err(|e| Error::io("open database home", dir, e))?;
    if !meta.is_dir {
        return Err(Error::Invalid(format!("unable to open database: {} is not a directory", dir.display())));
    }
    let _l = fs.lock(dir, LockMode::Shared).ctx("lock database home", dir)?;
    verify_locked(fs, dir)
}

/// [`verify`] without taking the lock (for a copy nobody else uses, or a caller holding it).
pub fn verify_locked(fs: &dyn Fs, dir: &Path) -> Result<VerifyReport> {
    let mut found = Found { status: Status::Clean, problems: Vec::new() };
    let (tables, snapshots) = load_snapshots(fs, dir, &mut found)?;
    if install::pending(fs, dir)? {
        found.status = found.status.max(Status::TornTail);
        found
            .problems
            .push(format!("an install was interrupted ({} exists): msdb_recover finishes it", install::MARKER));
    }
    let segs = log::list_segments(fs, dir)?;
    let heads = log::read_heads(fs, &segs)?;
    let snapshots_ok = snapshots.iter().all(|s| s.error.is_none());
    let tolerate = if snapshots_ok { tables.min_applied() } else { 0 };
    let mut rp = Replayer::new(tables, Limit::End);
    let mut records = 0u64;
    let outcome = log::read_log(fs, &heads, 0, tolerate, &mut |_, _, r| {
        records += 1;
        rp.visit(r)
    })?;
    rp.discard_open();
    let end_lsn = outcome.position.as_ref().map(|p| p.next_lsn - 1).unwrap_or(0);
    log_problems(dir, &rp, &outcome, &mut found);
    missing_records(dir, !segs.is_empty(), &snapshots, end_lsn, &outcome, &mut found);
    let notes = log_notes(fs, dir, &outcome)?;
    let mut uncommitted = rp.discarded;
    if let Some(d) = &outcome.damage {
        let at = d.at().lsn;
        for t in &mut uncommitted {
            t.commit_in_damage = t.first_lsn + u64::from(t.records) == at;
        }
    }
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        status: found.status,
        snapshots,
        segments: outcome.segments,
        superseded: outcome.superseded,
        damage: outcome.damage,
        end_lsn,
        records,
        commits: rp.commits,
        last_commit: rp.last_commit,
        uncommitted,
        problems: found.problems,
        notes,
    })
}

/// What verification found so far: the worst status and the problems.
struct Found {
    status: Status,
    problems: Vec<String>,
}

/// Every snapshot, decoded strictly: the tables and a report per snapshot.
fn load_snapshots(fs: &dyn Fs, dir: &Path, found: &mut Found) -> Result<(Tables, Vec<SnapReport>)> {
    let mut tables = Tables::default();
    let mut snapshots = Vec::new();
    for db in Db::ALL {
        let file = dir.join(db.file_name());
        let mut r = SnapReport { file: file.clone(), present: true, checkpoint_lsn: None, entries: None, error: None };
        match fs.read(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.present = false,
            Err(e) => return Err(Error::io("open database", file, e)),
            Ok(bytes) => match dbsnap::decode(&bytes) {
                Ok(snap) if snap.name == db.name() => {
                    r.checkpoint_lsn = Some(snap.checkpoint_lsn);
                    r.entries = Some(snap.entries.len());
                    tables.applied[db.index()] = snap.checkpoint_lsn;
                    tables.maps[db.index()] = snap.entries.into_iter().collect();
                }
                Ok(snap) => r.error = Some(format!("holds database {:?}, not {:?}", snap.name, db.name())),
                Err(e) => r.error = Some(e.at(&file).to_string()),
            },
        }
        if let Some(e) = &r.error {
            found.problems.push(e.clone());
            found.status = Status::Corrupt;
        }
        snapshots.push(r);
    }
    Ok((tables, snapshots))
}

/// Damage of the log: tolerated (the snapshots hold it), torn, corrupt, or a gap before
/// what the snapshots include.
fn log_problems(dir: &Path, rp: &Replayer, outcome: &log::ReadOutcome, found: &mut Found) {
    for t in &outcome.tolerated {
        found.problems.push(format!(
            "{} is damaged at byte offset {} (LSN {}): {}; every snapshot already includes those records, so no committed transaction is lost: msdb_recover moves the damaged log aside and starts a new one",
            t.file.display(),
            t.offset,
            t.lsn,
            t.what
        ));
        found.status = found.status.max(Status::TornTail);
    }
    match &outcome.damage {
        Some(Damage::Corrupt(_)) => found.status = Status::Corrupt,
        Some(Damage::TornTail(_)) => found.status = found.status.max(Status::TornTail),
        None => {}
    }
    if let Err(e) = log::check_coverage(dir, &rp.tables, outcome) {
        found.problems.push(e.to_string());
        found.status = Status::Corrupt;
    }
}

/// A snapshot that includes an LSN past the end of an undamaged log: committed records
/// are missing (the log was cut or replaced).
fn missing_records(
    dir: &Path,
    has_segments: bool,
    snapshots: &[SnapReport],
    end_lsn: u64,
    outcome: &log::ReadOutcome,
    found: &mut Found,
) {
    for (db, sn) in Db::ALL.iter().zip(snapshots) {
        if let Some(c) = sn.checkpoint_lsn {
            if has_segments && c > end_lsn && outcome.damage.is_none() {
                found.problems.push(format!(
                    "{} includes LSN {c} but the log ends at LSN {end_lsn}: committed log records are missing",
                    dir.join(db.file_name()).display()
                ));
                found.status = Status::Corrupt;
            }
        }
    }
}

/// Harmless things worth saying: torn bytes an earlier recovery left unread, segments of
/// an earlier timeline, leftover temporary files.
fn log_notes(fs: &dyn Fs, dir: &Path, outcome: &log::ReadOutcome) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for g in &outcome.segments {
        if g.abandoned > 0 {
            notes.push(format!(
                "{} ends with {} bytes of a torn write that an earlier recovery left unread",
                g.file.display(),
                g.abandoned
            ));
        }
    }
    if !outcome.superseded.is_empty() {
        notes.push(format!(
            "{} segments of an earlier timeline (before a point-in-time recovery or restore) are not replayed",
            outcome.superseded.len()
        ));
    }
    for name in fs.list(dir).ctx("list database home", dir)? {
        if name.starts_with("ms.tmp.") || (name.starts_with("install.") && !install::pending(fs, dir)?) {
            notes.push(format!("leftover temporary file {name} (from an interrupted write; harmless)"));
        }
    }
    Ok(notes)
}
