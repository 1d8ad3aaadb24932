//! The transaction log on disk: segment files, reading them in order with every check of
//! `formats/wal.md` ("Recovery rules"), telling a torn tail from mid-log corruption, and
//! replaying committed transactions into tables.
//!
//! Reading is streaming: one segment in memory at a time, records borrowed from it and
//! handed to a visitor (usually a [`Replayer`]).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Db;
use crate::codec::wal::{
    self, Body, Record, SegmentHeaderInfo, decode_segment_header, encode_segment_header, find_records_after,
    scan_records,
};
use crate::codec::{FormatError, dbsnap};
use crate::error::{Error, IoContext, Result};
use crate::format::wal::{FLAG_NEW_TIMELINE, SEGMENT_HEADER_LEN};
use crate::fs::Fs;
use crate::io::Durability;

/// File name prefix of log segments.
pub const SEGMENT_PREFIX: &str = "log.";

/// File name of segment `n`: `log.` and 16 lower-case hex digits.
pub fn segment_name(n: u64) -> String {
    format!("{SEGMENT_PREFIX}{n:016x}")
}

/// The number of a segment file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(SEGMENT_PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The segment files of `dir`, by number.
pub fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let names = fs.list(dir).ctx("list database home", dir)?;
    Ok(names.iter().filter_map(|n| parse_segment_name(n).map(|num| (num, dir.join(n)))).collect())
}

/// What was read back of one damaged snapshot ([`Tables::load_salvaging`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SnapSalvage {
    /// Database name.
    pub db: &'static str,
    /// The snapshot file.
    pub file: PathBuf,
    /// Its checkpoint LSN, when the header is intact.
    pub checkpoint_lsn: Option<u64>,
    /// How many entries it held, when the header (or the trailer) is intact.
    pub entry_count: Option<u64>,
    /// Entries read back (their own checksums hold).
    pub salvaged: usize,
    /// Bytes no intact header, entry or trailer accounts for.
    pub unreadable_bytes: u64,
}

/// One key/value table per database.
pub type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// The contents of every database, and the LSN each one includes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Entries, indexed like [`Db::ALL`].
    pub maps: [Table; 2],
    /// Per database: transactions committed up to this LSN are included.
    pub applied: [u64; 2],
}

/// A snapshot file's bytes; `None` when it does not exist (an empty database).
fn read_snapshot(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>> {
    match fs.read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("open database", path, e)),
    }
}

impl Tables {
    /// Load every snapshot of `dir` (a missing snapshot is an empty database at LSN 0).
    pub fn load(fs: &dyn Fs, dir: &Path) -> Result<Tables> {
        let mut t = Tables::default();
        for db in Db::ALL {
            let path = dir.join(db.file_name());
            let Some(bytes) = read_snapshot(fs, &path)? else { continue };
            let snap = dbsnap::decode(&bytes).map_err(|e| e.at(&path))?;
            if snap.name != db.name() {
                return Err(Error::corrupt(
                    &path,
                    16,
                    format!("snapshot of database {:?} where {:?} belongs", snap.name, db.name()),
                ));
            }
            t.applied[db.index()] = snap.checkpoint_lsn;
            t.maps[db.index()] = snap.entries.into_iter().collect();
        }
        Ok(t)
    }

    /// [`Tables::load`], but a snapshot that does not decode is salvaged entry by entry
    /// (`dbsnap::salvage`) instead of refused: its intact entries are kept, its LSN is its
    /// header's (0 when the header is damaged too), and what was read is returned.
    pub fn load_salvaging(fs: &dyn Fs, dir: &Path) -> Result<(Tables, Vec<SnapSalvage>)> {
        let mut t = Tables::default();
        let mut salvaged = Vec::new();
        for db in Db::ALL {
            let path = dir.join(db.file_name());
            let Some(bytes) = read_snapshot(fs, &path)? else { continue };
            if let Ok(snap) = dbsnap::decode(&bytes) {
                if snap.name == db.name() {
                    t.applied[db.index()] = snap.checkpoint_lsn;
                    t.maps[db.index()] = snap.entries.into_iter().collect();
                    continue;
                }
            }
            let got = dbsnap::salvage(&bytes);
            let header = got.header.filter(|h| h.name == db.name());
            t.applied[db.index()] = header.as_ref().map_or(0, |h| h.checkpoint_lsn);
            t.maps[db.index()] = got.entries.iter().cloned().collect();
            salvaged.push(SnapSalvage {
                db: db.name(),
                file: path,
                checkpoint_lsn: header.as_ref().map(|h| h.checkpoint_lsn),
                entry_count: header.as_ref().map(|h| h.entry_count).or(got.trailer_count),
                salvaged: got.entries.len(),
                unreadable_bytes: got.unreadable.iter().map(|r| r.1).sum(),
            });
        }
        Ok((t, salvaged))
    }

    /// The lowest LSN any database includes.
    pub fn min_applied(&self) -> u64 {
        self.applied.iter().copied().min().unwrap_or(0)
    }

    /// The highest LSN any database includes.
    pub fn max_applied(&self) -> u64 {
        self.applied.iter().copied().max().unwrap_or(0)
    }

    /// A digest of the contents (not of the LSNs): equal contents, equal digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for m in &self.maps {
            h.update(&(m.len() as u64).to_le_bytes());
            for (k, v) in m {
                h.update(&(k.len() as u64).to_le_bytes());
                h.update(k);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v);
            }
        }
        *h.finalize().as_bytes()
    }

    /// Number of entries in all databases.
    pub fn entries(&self) -> usize {
        self.maps.iter().map(BTreeMap::len).sum()
    }
}

/// Write every database's snapshot at `lsn` (temp + fsync + rename + directory fsync).
pub fn write_snapshots(fs: &dyn Fs, dir: &Path, tables: &Tables, lsn: u64, durability: Durability) -> Result<()> {
    for db in Db::ALL {
        write_snapshot(fs, dir, &db.file_name(), db, &tables.maps[db.index()], lsn, durability)?;
    }
    Ok(())
}

/// Write one snapshot as `dir/name` atomically.
pub fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    db: Db,
    table: &Table,
    lsn: u64,
    durability: Durability,
) -> Result<()> {
    let snap = dbsnap::Snapshot {
        name: db.name().to_string(),
        checkpoint_lsn: lsn,
        written: crate::util::now(),
        entries: table.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    let bytes = dbsnap::encode(&snap);
    crate::fs::atomic_write(fs, dir, name, &bytes, durability).ctx("write database snapshot", &dir.join(name))
}

/// A segment's header as found on disk.
#[derive(Clone, Debug)]
pub struct SegHead {
    /// Segment number (from the file name).
    pub number: u64,
    /// The file.
    pub path: PathBuf,
    /// The header, if it verifies.
    pub header: Result<(SegmentHeaderInfo, u32), FormatError>,
    /// File size.
    pub len: u64,
}

impl SegHead {
    fn new_timeline(&self) -> bool {
        matches!(&self.header, Ok((h, _)) if h.flags & FLAG_NEW_TIMELINE != 0)
    }
}

/// Read the header of every segment in `segs`.
pub fn read_heads(fs: &dyn Fs, segs: &[(u64, PathBuf)]) -> Result<Vec<SegHead>> {
    let mut out = Vec::with_capacity(segs.len());
    for (n, p) in segs {
        let len = fs.metadata(p).ctx("open transaction log", p)?.len;
        let head = fs.read_at(p, 0, SEGMENT_HEADER_LEN as u64).ctx("read transaction log", p)?;
        let mut header = decode_segment_header(&head);
        if let Ok((h, _)) = &header {
            if h.segment != *n {
                header =
                    Err(FormatError::invalid(16, format!("segment number {} in file {}", h.segment, segment_name(*n))));
            }
        }
        out.push(SegHead { number: *n, path: p.clone(), header, len });
    }
    Ok(out)
}

/// Index of the first segment of the active timeline: the last segment whose header says
/// it starts a new timeline, else the first.
pub fn timeline_start(heads: &[SegHead]) -> usize {
    heads.iter().rposition(SegHead::new_timeline).unwrap_or(0)
}

/// A record, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecInfo {
    /// Segment file.
    pub file: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// LSN.
    pub lsn: u64,
    /// Transaction id.
    pub txn: u64,
    /// `put`, `delete`, `commit`, `checkpoint`.
    pub kind: &'static str,
    /// Commit or checkpoint time.
    pub time: Option<i64>,
    /// For a commit: what its transaction did, from its operation records that could be
    /// read (empty when they were in the damaged bytes).
    pub ops: Vec<String>,
}

impl RecInfo {
    fn of(file: &Path, offset: u64, r: &Record<'_>) -> RecInfo {
        let (kind, time) = match r.body {
            Body::Put { .. } => ("put", None),
            Body::Delete { .. } => ("delete", None),
            Body::Commit { time, .. } => ("commit", Some(time)),
            Body::Checkpoint { time, .. } => ("checkpoint", Some(time)),
        };
        RecInfo { file: file.to_path_buf(), offset, lsn: r.lsn, txn: r.txn, kind, time, ops: Vec::new() }
    }

    /// One line for a lost transaction: its id, commit time and what it did.
    pub fn describe_txn(&self) -> String {
        let when = self.time.map(|t| format!(" committed {}", crate::util::utc_stamp(t))).unwrap_or_default();
        let what = if self.ops.is_empty() {
            "its operations were in the damaged bytes".to_string()
        } else {
            self.ops.join("; ")
        };
        format!("transaction {}{when} (LSN {}): {what}", self.txn, self.lsn)
    }
}

/// Most operations named per transaction in a report.
const OPS_NAMED: usize = 20;

/// The operations of transactions met in a run of records, for the commit records that end
/// them (see [`RecInfo::ops`]).
#[derive(Default)]
pub struct TxnOps(HashMap<u64, (Vec<String>, usize)>);

impl TxnOps {
    /// Note record `r`; for a commit, its [`RecInfo`] with the operations seen before it.
    pub fn see(&mut self, file: &Path, offset: u64, r: &Record<'_>) -> Option<RecInfo> {
        let op = match r.body {
            Body::Put { db, key, .. } => describe_op(Change::Put, db, key),
            Body::Delete { db, key } => describe_op(Change::Delete, db, key),
            Body::Commit { .. } => {
                let mut info = RecInfo::of(file, offset, r);
                if let Some((ops, more)) = self.0.remove(&r.txn) {
                    info.ops = ops;
                    if more > 0 {
                        info.ops.push(format!("and {more} more operations"));
                    }
                }
                return Some(info);
            }
            Body::Checkpoint { .. } => return None,
        };
        let e = self.0.entry(r.txn).or_default();
        if e.0.len() < OPS_NAMED {
            e.0.push(op);
        } else {
            e.1 += 1;
        }
        None
    }
}

/// A change to a key of a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Created or replaced.
    Put,
    /// Deleted.
    Delete,
}

/// What a put or delete did, in the administrator's words.
pub fn describe_op(change: Change, db: u8, key: &[u8]) -> String {
    let parts: Vec<String> =
        key.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).escape_debug().to_string()).collect();
    let k = parts.join(" ");
    match (super::Db::from_id(db), change) {
        (Some(super::Db::Mailboxes), Change::Put) => format!("mailbox {k} created or changed"),
        (Some(super::Db::Mailboxes), Change::Delete) => format!("mailbox {k} deleted"),
        (Some(super::Db::Subscriptions), Change::Put) => format!("subscription {k} added"),
        (Some(super::Db::Subscriptions), Change::Delete) => format!("subscription {k} removed"),
        (None, Change::Put) => format!("put {k} in database {db}"),
        (None, Change::Delete) => format!("delete {k} from database {db}"),
    }
}

/// What became of a transaction that was not replayed for want of a commit record: an
/// uncommitted one discarded, or one whose commit record would be the first damaged record
/// (it may have been committed: then it is lost), with what it did.
pub fn discarded_line(t: &TxnInfo) -> String {
    let what = if t.ops.is_empty() { String::new() } else { format!(": {}", t.ops.join(", ")) };
    if t.commit_in_damage {
        format!(
            "transaction {} ({} records from LSN {}) may have been committed and is lost if it was: its commit record would be at LSN {}, where the damage begins{what}",
            t.txn,
            t.records,
            t.first_lsn,
            t.first_lsn + u64::from(t.records)
        )
    } else {
        format!("discarded uncommitted transaction {} ({} records from LSN {}){what}", t.txn, t.records, t.first_lsn)
    }
}

/// One line per transaction of `recs` (see [`RecInfo::describe_txn`]), then how many more
/// there were (`total`) than listed.
pub fn txn_lines(recs: &[RecInfo], total: usize, indent: &str) -> String {
    let mut s = String::new();
    for r in recs {
        s += &format!("{indent}{}\n", r.describe_txn());
    }
    if total > recs.len() {
        s += &format!("{indent}… and {} more\n", total - recs.len());
    }
    s
}

/// Where the readable log stops, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamageAt {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset of the first byte that is not a valid record.
    pub offset: u64,
    /// The LSN the record there should carry.
    pub lsn: u64,
    /// What is wrong.
    pub what: String,
    /// Bytes of the segment from `offset` to its end (or to where the next segment says
    /// it ends).
    pub bytes: u64,
    /// Commit records still readable after the damage (their transactions cannot be
    /// replayed in order: they are lost unless the damage is repaired); at most 1000.
    pub later_commits: Vec<RecInfo>,
    /// Records still readable after the damage.
    pub later_records: usize,
}

/// Damage of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Damage {
    /// The end of the last segment is not a valid record, and nothing after it shows
    /// that it had been on stable storage: a write cut by a crash. Normal recovery
    /// drops it (its transactions were never acknowledged).
    TornTail(DamageAt),
    /// A record that had been on stable storage (a later record says so, or a later
    /// segment follows it) does not verify: committed transactions are damaged.
    Corrupt(DamageAt),
}

impl Damage {
    /// The place.
    pub fn at(&self) -> &DamageAt {
        match self {
            Damage::TornTail(d) | Damage::Corrupt(d) => d,
        }
    }

    /// Whether this is mid-log corruption.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Damage::Corrupt(_))
    }

    /// One line for an administrator.
    pub fn describe(&self) -> String {
        let d = self.at();
        let kind = match self {
            Damage::TornTail(_) => "torn final record",
            Damage::Corrupt(_) => "mid-log corruption",
        };
        let mut s = format!(
            "{kind} in {} at byte offset {} (LSN {}): {}; {} bytes unreadable",
            d.file.display(),
            d.offset,
            d.lsn,
            d.what,
            d.bytes
        );
        if d.later_records > 0 {
            s += &format!(
                "; {} valid records follow, with {} commits (transactions {})",
                d.later_records,
                d.later_commits.len(),
                txn_list(&d.later_commits)
            );
        }
        s
    }
}

/// "12, 15, 19" (at most 20, then "…").
pub fn txn_list(recs: &[RecInfo]) -> String {
    let mut s: Vec<String> = recs.iter().take(20).map(|r| r.txn.to_string()).collect();
    if recs.len() > 20 {
        s.push(format!("… {} more", recs.len() - 20));
    }
    if s.is_empty() { "none".to_string() } else { s.join(", ") }
}

/// Where a writer continues: right after the last valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Segment number.
    pub number: u64,
    /// Segment file.
    pub path: PathBuf,
    /// Its salt.
    pub salt: u32,
    /// Byte offset after the last valid record.
    pub end: u64,
    /// CRC of the last valid record (or of the header).
    pub last_crc: u32,
    /// LSN of the next record.
    pub next_lsn: u64,
}

/// Per-segment facts, for `msdb_verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegReport {
    /// File.
    pub file: PathBuf,
    /// Number.
    pub number: u64,
    /// LSN of its first record.
    pub first_lsn: u64,
    /// Valid records read.
    pub records: u64,
    /// Byte offset after the last valid record.
    pub valid_end: u64,
    /// File size.
    pub len: u64,
    /// Bytes after the end the next segment names: a torn tail left by a crash and
    /// abandoned (never read) by the recovery that started the next segment.
    pub abandoned: u64,
}

impl SegReport {
    /// Segment `h`, read from `base` (nothing valid yet) to its length `len`, whose valid
    /// records must end at `limit` (what lies beyond is abandoned).
    fn new(h: &SegHead, first_lsn: u64, base: u64, len: u64, limit: Option<u64>) -> SegReport {
        SegReport {
            file: h.path.clone(),
            number: h.number,
            first_lsn,
            records: 0,
            valid_end: base,
            len,
            abandoned: limit.map(|l| len.saturating_sub(l)).unwrap_or(0),
        }
    }
}

/// What reading the log found.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    /// Where a writer continues (`None`: no segment).
    pub position: Option<Position>,
    /// Damage, if reading stopped at any.
    pub damage: Option<Damage>,
    /// Segments read.
    pub segments: Vec<SegReport>,
    /// Segments of earlier timelines (not read).
    pub superseded: Vec<PathBuf>,
    /// The visitor stopped the reading.
    pub stopped: bool,
    /// LSN of the first record of the first segment read.
    pub first_lsn: Option<u64>,
    /// Damage skipped because every snapshot already includes the records it hit (the
    /// reading resynchronised past it). Such a log must not be appended to: recovery
    /// starts a new timeline after it.
    pub tolerated: Vec<DamageAt>,
}

/// Why an incremental read could not continue from its position (the log was replaced:
/// the caller reloads from the snapshots).
#[derive(Debug)]
pub enum Continue {
    /// Read on.
    Read(Box<ReadOutcome>),
    /// The position's segment is gone, changed, or a new timeline started.
    Reload,
}

/// A visitor of records: `Ok(true)` to go on, `Ok(false)` to stop before the next one,
/// `Err(what)` if the record is valid alone but makes no sense where it is.
pub type Visit<'v> = dyn FnMut(&Path, u64, &Record<'_>) -> std::result::Result<bool, String> + 'v;

/// Read the active timeline, from the segment holding LSN `from` (the first segment if
/// none does; pass 0 to read every segment of the timeline). Damage to records at or
/// below `tolerate_below` (which the snapshots include) is noted in
/// [`ReadOutcome::tolerated`] and read past, where the log can be resynchronised.
pub fn read_log(
    fs: &dyn Fs,
    heads: &[SegHead],
    from: u64,
    tolerate_below: u64,
    visit: &mut Visit<'_>,
) -> Result<ReadOutcome> {
    let timeline = timeline_start(heads);
    let start = heads
        .iter()
        .enumerate()
        .skip(timeline)
        .rfind(|(_, h)| matches!(&h.header, Ok((i, _)) if i.first_lsn <= from))
        .map(|(i, _)| i)
        .unwrap_or(timeline);
    let mut out = ReadOutcome {
        superseded: heads[..timeline].iter().map(|h| h.path.clone()).collect(),
        ..ReadOutcome::default()
    };
    read_segments(fs, heads, ReadFrom { start, resume: None, tolerate_below }, visit, &mut out)?;
    Ok(out)
}

/// Read on from `pos` (an earlier reading's end), if the log still continues from it.
pub fn read_log_from(fs: &dyn Fs, heads: &[SegHead], pos: &Position, visit: &mut Visit<'_>) -> Result<Continue> {
    let Some(i) = heads.iter().position(|h| h.number == pos.number) else { return Ok(Continue::Reload) };
    if heads[i + 1..].iter().any(SegHead::new_timeline) {
        return Ok(Continue::Reload);
    }
    match &heads[i].header {
        Ok((h, _)) if h.salt == pos.salt && heads[i].len >= pos.end => {}
        _ => return Ok(Continue::Reload),
    }
    let mut out = ReadOutcome::default();
    read_segments(fs, heads, ReadFrom { start: i, resume: Some(pos), tolerate_below: 0 }, visit, &mut out)?;
    Ok(Continue::Read(Box::new(out)))
}

/// Where [`read_segments`] starts: the index of the first segment, the position to resume
/// from inside it (an incremental read), and the LSN up to which every database already
/// holds the records (damage below it is tolerated).
struct ReadFrom<'p> {
    start: usize,
    resume: Option<&'p Position>,
    tolerate_below: u64,
}

fn read_segments(
    fs: &dyn Fs,
    heads: &[SegHead],
    from: ReadFrom<'_>,
    visit: &mut Visit<'_>,
    out: &mut ReadOutcome,
) -> Result<()> {
    let ReadFrom { start, resume, tolerate_below } = from;
    // (salt, valid_end, last_crc, next_lsn) of the previous segment read, if it can be
    // checked against the next one.
    let mut prev: Option<(u32, u64, u32, u64)> = None;
    let mut expect_lsn = resume.map(|r| r.next_lsn).unwrap_or(0);
    for i in start..heads.len() {
        let h = &heads[i];
        let is_last = i + 1 == heads.len();
        let all_checkpointed = all_checkpointed(heads, i, tolerate_below);
        let (info, hcrc) = match check_head(heads, i, prev, expect_lsn, all_checkpointed, out) {
            HeadCheck::Read(info, hcrc) => (info, hcrc),
            HeadCheck::Skip => {
                prev = None;
                continue;
            }
            HeadCheck::Stop => {
                later_segments(fs, heads, i + 1, out)?;
                return Ok(());
            }
        };
        let limit = limit_of(heads, i);
        let (base, seed_crc, seed_lsn) = match resume {
            Some(r) if i == start => (r.end, r.last_crc, r.next_lsn),
            _ => (SEGMENT_HEADER_LEN as u64, hcrc, info.first_lsn),
        };
        let bytes = fs.read_at(&h.path, base, u64::MAX).ctx("read transaction log", &h.path)?;
        let file_len = base + bytes.len() as u64;
        out.first_lsn.get_or_insert(seed_lsn);
        let mut report = SegReport::new(h, info.first_lsn, base, file_len, limit);
        // Stop reading at `valid_end`, to go on from `end` next time.
        let stop_at = |out: &mut ReadOutcome, mut report: SegReport, valid_end: u64, end| {
            report.valid_end = valid_end;
            out.segments.push(report);
            out.position = Some(position(h, &info, end));
        };
        let expected_end = limit.unwrap_or(file_len);
        let mut end = (base, seed_crc, seed_lsn);
        // Read runs of chained records; past damage the snapshots already include,
        // resynchronise on the next record that verifies on its own.
        let (damage_off, damage_lsn, what) = loop {
            let from = (end.0 - base) as usize;
            let max = expected_end.saturating_sub(end.0) as usize;
            let scan = scan_records(bytes.get(from..).unwrap_or_default(), end.0, info.salt, end.1, end.2, max);
            for (off, rec) in &scan.records {
                match visit(&h.path, *off, rec) {
                    Ok(true) => {}
                    Ok(false) => {
                        out.stopped = true;
                        stop_at(out, report, end.0, end);
                        return Ok(());
                    }
                    Err(what) => {
                        let left = expected_end.saturating_sub(*off);
                        out.damage = Some(Damage::Corrupt(damage_at(&h.path, *off, rec.lsn, what, left)));
                        stop_at(out, report, *off, end);
                        return Ok(());
                    }
                }
                report.records += 1;
                end = (off + u64::from(rec.len), rec.crc, rec.lsn + 1);
            }
            if end.0 == expected_end {
                break (None, end.2, String::new());
            }
            let what = scan.stop.as_ref().map(ToString::to_string).unwrap_or_default();
            if end.2 <= tolerate_below {
                // Damage every database already holds: go on past it.
                match next_verified(&bytes, base, end, info.salt, tolerate_below, expected_end) {
                    Some(next) => {
                        out.tolerated.push(damage_at(&h.path, end.0, end.2, what, next.0 - end.0));
                        end = next;
                        continue;
                    }
                    None if is_last || all_checkpointed => {
                        out.tolerated.push(damage_at(&h.path, end.0, end.2, what, expected_end - end.0));
                        break (Some(end.0), end.2, String::from("tolerated"));
                    }
                    None => {}
                }
            }
            break (Some(end.0), end.2, what);
        };
        report.valid_end = end.0;
        out.position = Some(position(h, &info, end));
        expect_lsn = end.2;
        let seg = SegRead { h, info, bytes: &bytes, base, limit, file_len };
        match judge_end(fs, heads, i, &seg, Stopped { damage_off, damage_lsn, what, end }, report, out)? {
            Next::Go(p) => prev = p,
            Next::Done => return Ok(()),
        }
    }
    Ok(())
}

/// Whether every record of segment `i` is below the LSN the next segment starts at, and
/// every database's snapshot already holds them (LSN at or below `tolerate_below`).
fn all_checkpointed(heads: &[SegHead], i: usize, tolerate_below: u64) -> bool {
    let next_first = heads.get(i + 1).and_then(|n| n.header.as_ref().ok()).map(|(n, _)| n.first_lsn);
    next_first.is_some_and(|f| f.saturating_sub(1) <= tolerate_below)
}

/// Past damage at `end` (offset, CRC, LSN) of a segment whose bytes start at `base`: the
/// next record that verifies on its own, if the snapshots already hold everything before
/// it and it lies before `expected_end`, as the position to go on reading from.
fn next_verified(
    bytes: &[u8],
    base: u64,
    end: (u64, u32, u64),
    salt: u32,
    tolerate_below: u64,
    expected_end: u64,
) -> Option<(u64, u32, u64)> {
    let (found, _) = find_records_after(bytes, base, end.0, salt, end.2, 1);
    let (off, r) = found.first()?;
    (r.lsn.saturating_sub(1) <= tolerate_below && *off < expected_end).then_some((*off, r.prev_crc, r.lsn))
}

/// Where the valid records of segment `i` must end: the next segment says so (unless it
/// starts a new timeline, or there is none).
fn limit_of(heads: &[SegHead], i: usize) -> Option<u64> {
    match &heads.get(i + 1)?.header {
        Ok((n, _)) if n.flags & FLAG_NEW_TIMELINE == 0 => Some(n.prev_end),
        _ => None,
    }
}

/// One segment as [`read_segments`] read it.
struct SegRead<'a> {
    h: &'a SegHead,
    info: SegmentHeaderInfo,
    bytes: &'a [u8],
    /// Offset of `bytes[0]` in the file.
    base: u64,
    /// Where the next segment says this one's valid records end.
    limit: Option<u64>,
    file_len: u64,
}

/// Where a segment's records stopped verifying (`None`: they run to where they must end),
/// the LSN there, why, and the (offset, CRC, next LSN) after the last valid record.
struct Stopped {
    damage_off: Option<u64>,
    damage_lsn: u64,
    what: String,
    end: (u64, u32, u64),
}

/// After [`judge_end`]: read the next segment (checked against this one, if it can be),
/// or stop.
enum Next {
    Go(Option<(u32, u64, u32, u64)>),
    Done,
}

/// Judge how segment `i` ended: whole, damage the snapshots make harmless, damage before
/// where the next segment says it ends (corruption), a damaged or new-timeline next
/// header, or a torn tail (the last segment, nothing readable after the damage) versus
/// corruption (valid records follow it).
fn judge_end(
    fs: &dyn Fs,
    heads: &[SegHead],
    i: usize,
    seg: &SegRead<'_>,
    stopped: Stopped,
    report: SegReport,
    out: &mut ReadOutcome,
) -> Result<Next> {
    let SegRead { h, info, bytes, base, limit, file_len } = *seg;
    let Stopped { damage_off, damage_lsn, what, end } = stopped;
    let is_last = i + 1 == heads.len();
    let expected_end = limit.unwrap_or(file_len);
    match damage_off {
        None => {
            out.segments.push(report);
            Ok(Next::Go(Some((info.salt, end.0, end.1, end.2))))
        }
        Some(_) if what == "tolerated" => {
            out.segments.push(report);
            Ok(Next::Go(None))
        }
        Some(off) if limit.is_some() => {
            let l = expected_end;
            let what = if l > file_len {
                format!("segment is {file_len} bytes but the next segment says its records end at {l}")
            } else if what.is_empty() {
                format!("records end at {off} but the next segment says they end at {l}")
            } else {
                what
            };
            let mut d = damage_at(&h.path, off, damage_lsn, what, l.saturating_sub(off));
            later_in_segment(bytes, base, &h.path, info.salt, off, damage_lsn, &mut d);
            out.damage = Some(Damage::Corrupt(d));
            out.segments.push(report);
            later_segments(fs, heads, i + 1, out)?;
            Ok(Next::Done)
        }
        Some(_) if !is_last => {
            // The next header is damaged or starts a new timeline: this segment ends
            // where its valid records end; the next one is judged on its own.
            out.segments.push(report);
            Ok(Next::Go(None))
        }
        Some(off) => {
            let mut d = damage_at(&h.path, off, damage_lsn, what, file_len - off);
            let proof = later_in_segment(bytes, base, &h.path, info.salt, off, damage_lsn, &mut d);
            out.damage = Some(if proof { Damage::Corrupt(d) } else { Damage::TornTail(d) });
            out.segments.push(report);
            Ok(Next::Go(None))
        }
    }
}

/// What the checks of a segment's header, and of its link to the segment before, decided.
enum HeadCheck {
    /// Read its records.
    Read(SegmentHeaderInfo, u32),
    /// Damaged, but every record of it is in the snapshots: noted as tolerated; go on.
    Skip,
    /// Damaged: noted in `out.damage`; reading ends here.
    Stop,
}

/// Check segment `i`'s header and that it continues `prev` (salt, end, CRC and LSN of the
/// segment read before), unless it starts a new timeline.
fn check_head(
    heads: &[SegHead],
    i: usize,
    prev: Option<(u32, u64, u32, u64)>,
    expect_lsn: u64,
    all_checkpointed: bool,
    out: &mut ReadOutcome,
) -> HeadCheck {
    let h = &heads[i];
    let is_last = i + 1 == heads.len();
    let (info, hcrc) = match &h.header {
        Ok(x) => *x,
        Err(e) => {
            let what = format!("segment header: {e}");
            if !is_last && all_checkpointed {
                // Every record of this segment is in the snapshots: note it, go on.
                out.tolerated.push(damage_at(&h.path, 0, expect_lsn, what, h.len));
                return HeadCheck::Skip;
            }
            out.damage = Some(Damage::Corrupt(damage_at(&h.path, 0, expect_lsn, what, h.len)));
            return HeadCheck::Stop;
        }
    };
    if let Some((psalt, pend, pcrc, plsn)) = prev {
        if info.flags & FLAG_NEW_TIMELINE == 0
            && (info.prev_salt != psalt || info.prev_crc != pcrc || info.first_lsn != plsn || info.prev_end != pend)
        {
            let what = format!(
                "segment does not continue the previous one (it names LSN {}, end {}, salt {:08x}; the previous ends at LSN {}, offset {}, salt {:08x})",
                info.first_lsn, info.prev_end, info.prev_salt, plsn, pend, psalt
            );
            if !is_last && all_checkpointed {
                out.tolerated.push(damage_at(&h.path, 0, plsn, what, h.len));
                return HeadCheck::Skip;
            }
            out.damage = Some(Damage::Corrupt(damage_at(&h.path, 0, plsn, what, h.len)));
            return HeadCheck::Stop;
        }
    }
    HeadCheck::Read(info, hcrc)
}

fn position(h: &SegHead, info: &SegmentHeaderInfo, end: (u64, u32, u64)) -> Position {
    Position { number: h.number, path: h.path.clone(), salt: info.salt, end: end.0, last_crc: end.1, next_lsn: end.2 }
}

fn damage_at(file: &Path, offset: u64, lsn: u64, what: String, bytes: u64) -> DamageAt {
    DamageAt {
        file: file.to_path_buf(),
        offset,
        lsn,
        what: if what.is_empty() { "not a valid record".to_string() } else { what },
        bytes,
        later_commits: Vec::new(),
        later_records: 0,
    }
}

/// Records readable after `from` in this segment; returns whether one of them proves the
/// damaged bytes had been on stable storage (its writer knew an LSN at or past the
/// damage to be synced).
fn later_in_segment(
    bytes: &[u8],
    base: u64,
    file: &Path,
    salt: u32,
    from: u64,
    next_lsn: u64,
    d: &mut DamageAt,
) -> bool {
    let (found, count) = find_records_after(bytes, base, from, salt, next_lsn, 100_000);
    d.later_records += count;
    let mut proof = false;
    let mut ops = TxnOps::default();
    for (off, r) in &found {
        proof |= r.synced_lsn >= next_lsn;
        if let Some(info) = ops.see(file, *off, r) {
            if d.later_commits.len() < 1000 {
                d.later_commits.push(info);
            }
        }
    }
    proof
}

/// Count what later segments hold (they cannot be replayed past the damage).
fn later_segments(fs: &dyn Fs, heads: &[SegHead], from: usize, out: &mut ReadOutcome) -> Result<()> {
    let Some(Damage::Corrupt(d)) = out.damage.as_mut() else { return Ok(()) };
    for h in heads.iter().skip(from).filter(|h| !h.new_timeline()) {
        let Ok((info, hcrc)) = &h.header else { continue };
        let bytes = fs.read(&h.path).ctx("read transaction log", &h.path)?;
        let scan = scan_records(
            bytes.get(SEGMENT_HEADER_LEN..).unwrap_or_default(),
            64,
            info.salt,
            *hcrc,
            info.first_lsn,
            usize::MAX,
        );
        d.later_records += scan.records.len();
        let mut ops = TxnOps::default();
        for (off, r) in &scan.records {
            if let Some(info) = ops.see(&h.path, *off, r) {
                if d.later_commits.len() < 1000 {
                    d.later_commits.push(info);
                }
            }
        }
    }
    Ok(())
}

/// Where replay stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limit {
    /// Replay every committed transaction.
    #[default]
    End,
    /// Only transactions committed at or before this LSN.
    Lsn(u64),
    /// Only transactions committed at or before this time (seconds since the epoch).
    Time(i64),
}

/// A transaction that was not replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxnInfo {
    /// Transaction id.
    pub txn: u64,
    /// LSN of its first record.
    pub first_lsn: u64,
    /// Its records that were read.
    pub records: u32,
    /// LSN of its commit record, if it has one.
    pub commit_lsn: Option<u64>,
    /// What its operation records that were read did (at most 20 named).
    pub ops: Vec<String>,
    /// Its commit record would be the first damaged record: it may have been committed,
    /// and is lost if it was.
    pub commit_in_damage: bool,
}

struct PendingOp {
    db: Db,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// Replays committed transactions into [`Tables`]; a visitor for [`read_log`].
pub struct Replayer {
    /// The tables, updated as commits are read.
    pub tables: Tables,
    /// Where to stop.
    pub limit: Limit,
    /// LSN, transaction and time of the last commit applied (or skipped as already in the
    /// snapshots).
    pub last_commit: Option<(u64, u64, i64)>,
    /// Commits applied to at least one table.
    pub applied: u64,
    /// Commits read (applied or already in the snapshots).
    pub commits: u64,
    /// Uncommitted transactions discarded.
    pub discarded: Vec<TxnInfo>,
    /// The first commit not replayed because of the limit.
    pub stopped_at: Option<TxnInfo>,
    /// LSN of the last checkpoint record read, and the LSN it names.
    pub last_checkpoint: Option<(u64, u64)>,
    /// LSN of the last record read.
    pub last_lsn: u64,
    pending: Vec<PendingOp>,
    pending_txn: u64,
    pending_first: u64,
    pending_count: u32,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").field("last_commit", &self.last_commit).field("commits", &self.commits).finish()
    }
}

impl Replayer {
    /// Replay on top of `tables`.
    pub fn new(tables: Tables, limit: Limit) -> Replayer {
        Replayer {
            tables,
            limit,
            last_commit: None,
            applied: 0,
            commits: 0,
            discarded: Vec::new(),
            stopped_at: None,
            last_checkpoint: None,
            last_lsn: 0,
            pending: Vec::new(),
            pending_txn: 0,
            pending_first: 0,
            pending_count: 0,
        }
    }

    /// The transaction whose records were read last but that has no commit (yet).
    pub fn open_txn(&self) -> Option<TxnInfo> {
        (self.pending_count > 0).then(|| TxnInfo {
            txn: self.pending_txn,
            first_lsn: self.pending_first,
            records: self.pending_count,
            commit_lsn: None,
            ops: self
                .pending
                .iter()
                .take(OPS_NAMED)
                .map(|op| {
                    describe_op(if op.value.is_some() { Change::Put } else { Change::Delete }, op.db.id(), &op.key)
                })
                .collect(),
            commit_in_damage: false,
        })
    }

    /// Drop the open transaction (at the end of a log, it can never commit).
    pub fn discard_open(&mut self) {
        if let Some(t) = self.open_txn() {
            if t.first_lsn > self.tables.min_applied() {
                self.discarded.push(t);
            }
        }
        self.pending.clear();
        self.pending_count = 0;
    }

    /// Visit one record.
    pub fn visit(&mut self, r: &Record<'_>) -> std::result::Result<bool, String> {
        match r.body {
            Body::Put { db, key, value } => self.op(r, db, key, Some(value))?,
            Body::Delete { db, key } => self.op(r, db, key, None)?,
            Body::Commit { op_count, time } => {
                let beyond = match self.limit {
                    Limit::End => false,
                    Limit::Lsn(n) => r.lsn > n,
                    Limit::Time(t) => time > t,
                };
                if beyond {
                    self.stopped_at = Some(TxnInfo {
                        txn: r.txn,
                        first_lsn: self.pending_first,
                        records: self.pending_count + 1,
                        commit_lsn: Some(r.lsn),
                        ops: Vec::new(),
                        commit_in_damage: false,
                    });
                    return Ok(false);
                }
                if r.lsn <= self.tables.min_applied() {
                    // In every snapshot already (and possibly read past damage that the
                    // snapshots make harmless): nothing to apply or check.
                    self.pending.clear();
                    self.pending_count = 0;
                    self.commits += 1;
                    self.last_commit = Some((r.lsn, r.txn, time));
                    self.last_lsn = r.lsn;
                    return Ok(true);
                }
                if self.pending_count != op_count || (op_count > 0 && self.pending_txn != r.txn) {
                    return Err(format!(
                        "commit of transaction {} names {op_count} operations but {} of it precede it",
                        r.txn,
                        if self.pending_txn == r.txn { self.pending_count } else { 0 }
                    ));
                }
                if op_count > 0 && self.pending_first + u64::from(op_count) != r.lsn {
                    return Err(format!("operations of transaction {} are not right before its commit", r.txn));
                }
                let mut any = false;
                for op in self.pending.drain(..) {
                    let i = op.db.index();
                    if r.lsn > self.tables.applied[i] {
                        any = true;
                        match op.value {
                            Some(v) => self.tables.maps[i].insert(op.key, v),
                            None => self.tables.maps[i].remove(&op.key),
                        };
                    }
                }
                for i in 0..self.tables.applied.len() {
                    if r.lsn > self.tables.applied[i] {
                        self.tables.applied[i] = r.lsn;
                    }
                }
                self.pending_count = 0;
                self.commits += 1;
                self.applied += u64::from(any);
                self.last_commit = Some((r.lsn, r.txn, time));
            }
            Body::Checkpoint { checkpoint_lsn, .. } => {
                self.discard_open();
                if checkpoint_lsn >= r.lsn {
                    return Err(format!("checkpoint record names LSN {checkpoint_lsn}, not before itself"));
                }
                self.last_checkpoint = Some((r.lsn, checkpoint_lsn));
            }
        }
        self.last_lsn = r.lsn;
        Ok(true)
    }

    fn op(&mut self, r: &Record<'_>, db: u8, key: &[u8], value: Option<&[u8]>) -> std::result::Result<(), String> {
        let db = Db::from_id(db).ok_or_else(|| format!("unknown database id {db}"))?;
        if self.pending_count == 0 || self.pending_txn != r.txn {
            self.discard_open();
            self.pending_txn = r.txn;
            self.pending_first = r.lsn;
            if r.txn != r.lsn && r.lsn > self.tables.min_applied() {
                return Err(format!("transaction {} starts at LSN {}", r.txn, r.lsn));
            }
        }
        self.pending_count += 1;
        // Records already in every snapshot need no copy (a checkpoint never splits a
        // transaction, so the whole transaction is in them).
        if r.lsn > self.tables.min_applied() {
            self.pending.push(PendingOp { db, key: key.to_vec(), value: value.map(<[u8]>::to_vec) });
        }
        Ok(())
    }
}

/// Replay every committed transaction of the active timeline of `dir` on top of its
/// snapshots: the state normal recovery reaches, without writing anything.
#[derive(Debug)]
pub struct Replay {
    /// The tables reached.
    pub replayer: Replayer,
    /// What reading found.
    pub outcome: ReadOutcome,
    /// Segment heads.
    pub heads: Vec<SegHead>,
}

/// Load snapshots and replay the log of `dir` up to `limit` (stopping at any damage).
pub fn replay_dir(fs: &dyn Fs, dir: &Path, limit: Limit) -> Result<Replay> {
    let tables = Tables::load(fs, dir)?;
    replay_onto(fs, dir, tables, limit)
}

/// Replay the log of `dir` on top of `tables`.
pub fn replay_onto(fs: &dyn Fs, dir: &Path, tables: Tables, limit: Limit) -> Result<Replay> {
    let segs = list_segments(fs, dir)?;
    let heads = read_heads(fs, &segs)?;
    let from = tables.min_applied() + 1;
    let tolerate = tables.min_applied();
    let mut replayer = Replayer::new(tables, limit);
    let outcome = read_log(fs, &heads, from, tolerate, &mut |_, _, r| replayer.visit(r))?;
    check_coverage(dir, &replayer.tables, &outcome)?;
    Ok(Replay { replayer, outcome, heads })
}

/// The log must hold every transaction after the oldest snapshot's checkpoint.
pub fn check_coverage(dir: &Path, tables: &Tables, outcome: &ReadOutcome) -> Result<()> {
    if let Some(first) = outcome.first_lsn {
        let need = tables.min_applied() + 1;
        if first > need {
            return Err(super::DbError::LogGap { dir: dir.to_path_buf(), need, have: first }.into());
        }
    }
    Ok(())
}

/// Whether a new segment continues the log before it or starts a new timeline (after an
/// install: nothing before it is replayed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeline {
    /// Its header names the end of the segment before, and is checked against it.
    Continue,
    /// It starts a new timeline (`FLAG_NEW_TIMELINE`).
    New,
}

/// Create segment `number` (temp + fsync + rename + directory fsync) whose first record
/// will be `first_lsn`, continuing `prev` (its salt, valid end and last CRC) or starting
/// a new timeline.
pub fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    number: u64,
    first_lsn: u64,
    prev: Option<(u32, u64, u32)>,
    timeline: Timeline,
    durability: Durability,
) -> Result<(PathBuf, u32, u32)> {
    let mut salt = 0;
    while salt == 0 {
        let r = crate::util::random_id();
        salt = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
    }
    let (prev_salt, prev_end, prev_crc) = prev.unwrap_or((0, 0, 0));
    let info = SegmentHeaderInfo {
        salt,
        segment: number,
        first_lsn,
        prev_end,
        prev_crc,
        prev_salt,
        created: crate::util::now(),
        flags: if timeline == Timeline::New { FLAG_NEW_TIMELINE } else { 0 },
    };
    let bytes = encode_segment_header(&info);
    let name = segment_name(number);
    let path = dir.join(&name);
    crate::fs::atomic_write(fs, dir, &name, &bytes, durability).ctx("create transaction log segment", &path)?;
    let (_, hcrc) = decode_segment_header(&bytes).map_err(|e| e.at(&path))?;
    Ok((path, salt, hcrc))
}

/// Encode one transaction's records (operations, then the commit) into `out`.
pub fn encode_txn(
    out: &mut Vec<u8>,
    salt: u32,
    prev_crc: u32,
    first_lsn: u64,
    synced_lsn: u64,
    ops: &[super::Op],
    time: i64,
) -> u32 {
    let mut crc = prev_crc;
    let txn = first_lsn;
    for (i, (db, key, value)) in ops.iter().enumerate() {
        let body = match value {
            Some(v) => Body::Put { db: db.id(), key, value: v },
            None => Body::Delete { db: db.id(), key },
        };
        crc = wal::encode_record(out, salt, crc, first_lsn + i as u64, txn, synced_lsn, &body);
    }
    let commit = Body::Commit { op_count: ops.len() as u32, time };
    wal::encode_record(out, salt, crc, first_lsn + ops.len() as u64, txn, synced_lsn, &commit)
}
