//! `ms.log`, the per-mailbox change log: parse, salvage and encode (layout in
//! [`crate::format::changelog`], spec in `formats/changelog.md`).

use zerocopy::{FromBytes, IntoBytes};

use super::index::MessageRecord;
use super::{FormatError, check_crc, check_magic_versions, read_at, slice};
use crate::flags::{SystemFlags, UserFlags};
use crate::format::changelog::{
    CONTINUED, ExpungeBody, FOLLOWS, FlagsBody, HEADER_LEN, LastUidBody, LogHeader, MAGIC, MAX_RECORD_LEN,
    MESSAGE_BODY_LEN, NameHead, OLDEST_VERSION, RecordHead, VERSION, kind,
};
use crate::format::header::MAX_USER_FLAGS;
use crate::format::index::IndexRecord;
use crate::format::{I64, U16, U32, U64, crc, crc_append};

/// The log header, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHeaderInfo {
    /// Unique id of the mailbox (seeds record checksums).
    pub unique_id: [u8; 16],
    /// UID validity of the state described.
    pub uid_validity: u32,
    /// Sequence number of the compaction that wrote the file.
    pub base_seq: u64,
    /// When written.
    pub created: i64,
    /// The modseq ceiling when written (0: not recorded); stored as an offset from
    /// `base_seq`, capped at `u32::MAX`.
    pub ceiling: u64,
}

/// How much of an `ms.log` file another file saw when it was written: the index at its
/// checkpoint, the header whenever it is written (`formats/changelog.md`, "Coverage").
/// The log's records up to `len` were committed then; they must still be there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCoverage {
    /// `base_seq` of the log file it describes.
    pub base_seq: u64,
    /// Sequence number of the last record it saw.
    pub seq: u64,
    /// Where that record ends (0: nothing recorded, as in version 1 files).
    pub len: u64,
    /// The stored CRC of that record (its last 4 bytes).
    pub crc: u32,
}

/// A log that no longer holds what a coverage says it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoverageProblem {
    /// The log's valid records end before `need` bytes (cut, or damaged inside).
    Short {
        /// Bytes of valid records at the start of the log.
        have: u64,
        /// Bytes the coverage includes.
        need: u64,
    },
    /// A record ends at `len`, but not the one that was there (or none ends there).
    Altered {
        /// Where the last covered record should end.
        len: u64,
    },
    /// The log is an older file than the one the coverage describes, and lacks records it
    /// saw.
    Behind {
        /// The log's `base_seq`.
        base_seq: u64,
        /// Highest sequence number in the log.
        have_seq: u64,
        /// The coverage's.
        need_seq: u64,
    },
}

impl std::fmt::Display for CoverageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoverageProblem::Short { have, need } => write!(
                f,
                "its valid records end at byte {have}, but {need} bytes of it were committed (cut short or damaged)"
            ),
            CoverageProblem::Altered { len } => {
                write!(f, "the committed record ending at byte {len} is not the one written there (altered)")
            }
            CoverageProblem::Behind { base_seq, have_seq, need_seq } => write!(
                f,
                "it is an older file (compacted at {base_seq}, last record {have_seq}) than the one holding record {need_seq}"
            ),
        }
    }
}

/// What a scan of a log tells about coverage, gathered while the log is read once.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoverageProbe {
    /// The coverage to check, for recording whether a record starts at its end.
    pub want: LogCoverage,
    /// Whether a valid record starts at `want.len`.
    pub boundary: bool,
    /// Highest sequence number seen.
    pub max_seq: u64,
}

impl CoverageProbe {
    /// Probe for `want` (and any other coverage with the same `len`).
    pub fn new(want: LogCoverage) -> CoverageProbe {
        CoverageProbe { want, boundary: false, max_seq: 0 }
    }

    /// Call for every valid record of the scan (offset, seq).
    pub fn see(&mut self, offset: u64, seq: u64) {
        if offset == self.want.len {
            self.boundary = true;
        }
        self.max_seq = self.max_seq.max(seq);
    }

    /// Whether the scanned log (`scan`, and `crc`, its 4 bytes before `cov.len`:
    /// [`crc_ending_at`]) still holds what `cov` says. `cov.len` must be the length this
    /// probe watched (or 0).
    pub fn check(&self, cov: &LogCoverage, crc: Option<[u8; 4]>, scan: &LogScan) -> Option<CoverageProblem> {
        check_coverage(cov, crc, scan, self.max_seq, cov.len == self.want.len && self.boundary)
    }
}

/// The 4 bytes of a log before `len`: the stored CRC of the record that ends there, if
/// one does (`None` when the log is shorter).
pub fn crc_ending_at(log: &dyn super::ReadAt, len: u64) -> std::io::Result<Option<[u8; 4]>> {
    match len.checked_sub(4) {
        Some(at) if len <= log.len() => super::bytes_at::<4>(log, at),
        _ => Ok(None),
    }
}

/// Whether a log (its 4 bytes before `cov.len` ([`crc_ending_at`]), its scan, its highest
/// seq, and whether a valid record starts at `cov.len`) still holds what `cov` says:
/// `None` when it does, when nothing was recorded, or when the log was compacted after
/// the coverage was written.
pub fn check_coverage(
    cov: &LogCoverage,
    crc: Option<[u8; 4]>,
    scan: &LogScan,
    max_seq: u64,
    record_starts_at_len: bool,
) -> Option<CoverageProblem> {
    if cov.len == 0 || scan.header.base_seq > cov.base_seq {
        return None;
    }
    if scan.header.base_seq < cov.base_seq {
        return (max_seq < cov.seq).then_some(CoverageProblem::Behind {
            base_seq: scan.header.base_seq,
            have_seq: max_seq,
            need_seq: cov.seq,
        });
    }
    if scan.valid_end < cov.len {
        return Some(CoverageProblem::Short { have: scan.valid_end, need: cov.len });
    }
    let ends_here = cov.len == scan.valid_end || record_starts_at_len;
    if !ends_here || crc != Some(cov.crc.to_le_bytes()) {
        return Some(CoverageProblem::Altered { len: cov.len });
    }
    None
}

/// The coverage of a whole, valid log (`bytes` ends with its last record) whose last
/// record has sequence number `seq`.
pub fn coverage_of(bytes: &[u8], base_seq: u64, seq: u64) -> LogCoverage {
    let n = bytes.len();
    let crc = bytes.get(n.saturating_sub(4)..).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0);
    LogCoverage { base_seq, seq, len: if n > HEADER_LEN { n as u64 } else { 0 }, crc }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    /// The mailbox's domain and name.
    Name {
        /// Domain.
        domain: String,
        /// Mailbox name.
        name: String,
    },
    /// User flag `name` lives in `slot`.
    FlagName {
        /// Slot, below 128.
        slot: u8,
        /// Flag name.
        name: String,
    },
    /// A message was appended (or, in a compacted log, exists) with this state: the
    /// same fields as its index record.
    Message(MessageRecord),
    /// A message's flags changed to these values.
    Flags {
        /// UID.
        uid: u32,
        /// New system flags.
        system_flags: SystemFlags,
        /// New user flags.
        user_flags: UserFlags,
        /// Modification sequence.
        modseq: u64,
    },
    /// A message was expunged.
    Expunge {
        /// UID.
        uid: u32,
        /// Modification sequence.
        modseq: u64,
    },
    /// The highest UID assigned so far.
    LastUid {
        /// Last UID.
        last_uid: u32,
        /// Its UID validity.
        uid_validity: u32,
    },
}

/// Encode the 64-byte log header.
pub fn encode_header(h: &LogHeaderInfo) -> Vec<u8> {
    let mut raw = LogHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        reserved0: U32::new(0),
        unique_id: h.unique_id,
        uid_validity: U32::new(h.uid_validity),
        reserved1: U32::new(0),
        base_seq: U64::new(h.base_seq),
        created: I64::new(h.created),
        ceiling_offset: U32::new(u32::try_from(h.ceiling.saturating_sub(h.base_seq)).unwrap_or(u32::MAX)),
        crc: U32::new(0),
    };
    raw.crc = U32::new(crc(&raw.as_bytes()[..HEADER_LEN - 4]));
    raw.as_bytes().to_vec()
}

/// Decode and check the header.
pub fn decode_header(bytes: &[u8]) -> Result<LogHeaderInfo, FormatError> {
    let version = check_magic_versions(bytes, &MAGIC, OLDEST_VERSION, VERSION)?;
    let raw: &LogHeader = read_at(bytes, 0, "log header")?;
    check_crc(&raw.as_bytes()[..HEADER_LEN - 4], raw.crc.get(), 0, "log header")?;
    if raw.header_len.get() as usize != HEADER_LEN {
        return Err(FormatError::invalid(10, format!("header_len {} (expected {HEADER_LEN})", raw.header_len)));
    }
    Ok(LogHeaderInfo {
        unique_id: raw.unique_id,
        uid_validity: raw.uid_validity.get(),
        base_seq: raw.base_seq.get(),
        created: raw.created.get(),
        ceiling: match (version, raw.ceiling_offset.get()) {
            (1, _) | (_, 0) => 0,
            (_, off) => raw.base_seq.get().saturating_add(u64::from(off)),
        },
    })
}

fn record_seed(unique_id: &[u8; 16]) -> u32 {
    crc(unique_id)
}

/// Where a record stands in its change (one call's records, written in one write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The only record of its change.
    Whole,
    /// The first of several ([`CONTINUED`]).
    First,
    /// Neither first nor last ([`CONTINUED`] and [`FOLLOWS`]).
    Middle,
    /// The last of several ([`FOLLOWS`]).
    Last,
}

impl Change {
    fn flags(self) -> u8 {
        match self {
            Change::Whole => 0,
            Change::First => CONTINUED,
            Change::Middle => CONTINUED | FOLLOWS,
            Change::Last => FOLLOWS,
        }
    }

    fn from_flags(f: u8) -> Change {
        match (f & CONTINUED != 0, f & FOLLOWS != 0) {
            (false, false) => Change::Whole,
            (true, false) => Change::First,
            (true, true) => Change::Middle,
            (false, true) => Change::Last,
        }
    }

    /// Whether a change starts with this record.
    pub fn starts(self) -> bool {
        matches!(self, Change::Whole | Change::First)
    }

    /// Whether its change ends with this record.
    pub fn ends(self) -> bool {
        matches!(self, Change::Whole | Change::Last)
    }
}

/// Append the encoding of `rec` with sequence number `seq` to `out`: a change of its own.
pub fn encode_record(out: &mut Vec<u8>, unique_id: &[u8; 16], seq: u64, rec: &LogRecord) {
    encode_record_in(out, unique_id, seq, rec, Change::Whole)
}

/// Append the records of one change (one call: an append of several messages, a flag
/// change of several messages, ...), marked as one ([`Change`]), so that a reader applies
/// all of them or, if the write was cut short, none.
pub fn encode_change(out: &mut Vec<u8>, unique_id: &[u8; 16], records: &[(u64, LogRecord)]) {
    let n = records.len();
    for (i, (seq, rec)) in records.iter().enumerate() {
        let c = match (i == 0, i + 1 == n) {
            (true, true) => Change::Whole,
            (true, false) => Change::First,
            (false, false) => Change::Middle,
            (false, true) => Change::Last,
        };
        encode_record_in(out, unique_id, *seq, rec, c);
    }
}

/// [`encode_record`] with the change it belongs to said.
pub fn encode_record_in(out: &mut Vec<u8>, unique_id: &[u8; 16], seq: u64, rec: &LogRecord, change: Change) {
    let start = out.len();
    let head_len = std::mem::size_of::<RecordHead>();
    // The head's length is known once the body is written in place after it.
    out.resize(start + head_len, 0);
    let k = match rec {
        LogRecord::Name { domain, name } => {
            let d = &domain.as_bytes()[..domain.len().min(1024)];
            let n = &name.as_bytes()[..name.len().min(2048)];
            out.extend_from_slice(
                NameHead { domain_len: U16::new(d.len() as u16), name_len: U16::new(n.len() as u16) }.as_bytes(),
            );
            out.extend_from_slice(d);
            out.extend_from_slice(n);
            kind::NAME
        }
        LogRecord::FlagName { slot, name } => {
            let n = &name.as_bytes()[..name.len().min(255)];
            out.extend_from_slice(&[*slot, n.len() as u8]);
            out.extend_from_slice(n);
            kind::FLAG_NAME
        }
        LogRecord::Message(m) => {
            out.extend_from_slice(&m.to_raw().as_bytes()[..MESSAGE_BODY_LEN]);
            kind::MESSAGE
        }
        LogRecord::Flags { uid, system_flags, user_flags, modseq } => {
            out.extend_from_slice(
                FlagsBody {
                    uid: U32::new(*uid),
                    system_flags: U32::new(system_flags.0),
                    user_flags: user_flags.to_le_bytes(),
                    modseq: U64::new(*modseq),
                }
                .as_bytes(),
            );
            kind::FLAGS
        }
        LogRecord::Expunge { uid, modseq } => {
            out.extend_from_slice(
                ExpungeBody { uid: U32::new(*uid), reserved: U32::new(0), modseq: U64::new(*modseq) }.as_bytes(),
            );
            kind::EXPUNGE
        }
        LogRecord::LastUid { last_uid, uid_validity } => {
            out.extend_from_slice(
                LastUidBody { last_uid: U32::new(*last_uid), uid_validity: U32::new(*uid_validity) }.as_bytes(),
            );
            kind::LAST_UID
        }
    };
    let len = (out.len() - start + 4) as u32;
    let head = RecordHead { len: U32::new(len), kind: k, flags: change.flags(), reserved: [0; 2], seq: U64::new(seq) };
    out[start..start + head_len].copy_from_slice(head.as_bytes());
    let c = crc_append(record_seed(unique_id), &out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
}

/// Decode the record at `offset`: `(seq, record, length)`.
pub fn decode_record(
    bytes: &[u8],
    offset: usize,
    unique_id: &[u8; 16],
) -> Result<(u64, LogRecord, usize), FormatError> {
    decode_record_in(bytes, offset, unique_id).map(|(seq, rec, len, _)| (seq, rec, len))
}

/// Whether a record could start at `offset`: a kind other than 0, a length in range that
/// fits in `bytes`. (No allocation, no checksum: the resynchronising scan's filter.)
fn may_start_record(bytes: &[u8], offset: usize) -> bool {
    let Some(head) = bytes.get(offset..offset + 5) else { return false };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    head[4] != 0 && (20..=MAX_RECORD_LEN).contains(&len) && offset + len as usize <= bytes.len()
}

/// [`decode_record`], with whether the record ends its change.
pub fn decode_record_in(
    bytes: &[u8],
    offset: usize,
    unique_id: &[u8; 16],
) -> Result<(u64, LogRecord, usize, Change), FormatError> {
    let head: &RecordHead = read_at(bytes, offset, "log record head")?;
    let len = head.len.get();
    if head.kind == 0 {
        return Err(FormatError::invalid(offset as u64, "record kind 0 (zeroed or preallocated space)"));
    }
    if !(20..=MAX_RECORD_LEN).contains(&len) {
        return Err(FormatError::invalid(offset as u64, format!("record length {len} out of range")));
    }
    let len = len as usize;
    let rec = slice(bytes, offset, len, "log record")?;
    let stored = u32::from_le_bytes([rec[len - 4], rec[len - 3], rec[len - 2], rec[len - 1]]);
    let computed = crc_append(record_seed(unique_id), &rec[..len - 4]);
    if stored != computed {
        return Err(FormatError::Checksum { offset: offset as u64, what: "log record", stored, computed });
    }
    if head.flags & !(CONTINUED | FOLLOWS) != 0 || head.reserved != [0, 0] {
        return Err(FormatError::invalid(offset as u64, "reserved bits of a log record head are set"));
    }
    let change = Change::from_flags(head.flags);
    let body = &rec[16..len - 4];
    let bad = |what: &str| FormatError::invalid(offset as u64, format!("{what} record: {} body bytes", body.len()));
    let text = |b: &[u8], what: &str| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| FormatError::invalid(offset as u64, format!("{what} is not UTF-8")))
    };
    let record = match head.kind {
        kind::NAME => {
            let (h, rest) = NameHead::read_from_prefix(body).map_err(|_| bad("name"))?;
            let (dl, nl) = (h.domain_len.get() as usize, h.name_len.get() as usize);
            if rest.len() != dl + nl {
                return Err(bad("name"));
            }
            LogRecord::Name { domain: text(&rest[..dl], "domain")?, name: text(&rest[dl..], "mailbox name")? }
        }
        kind::FLAG_NAME => {
            let (&slot, rest) = body.split_first().ok_or_else(|| bad("flag name"))?;
            let (&n, name) = rest.split_first().ok_or_else(|| bad("flag name"))?;
            if name.len() != n as usize || n == 0 || slot as usize >= MAX_USER_FLAGS {
                return Err(bad("flag name"));
            }
            LogRecord::FlagName { slot, name: text(name, "flag name")? }
        }
        kind::MESSAGE => {
            if body.len() != MESSAGE_BODY_LEN {
                return Err(bad("message"));
            }
            let mut raw = [0u8; crate::format::index::RECORD_LEN];
            raw[..MESSAGE_BODY_LEN].copy_from_slice(body);
            let r = IndexRecord::read_from_bytes(&raw[..]).map_err(|_| bad("message"))?;
            let m = MessageRecord::from_raw(&r);
            // Reserved bytes are written as zero: a record with others would not be the
            // record it re-encodes to.
            if m.uid == 0 {
                return Err(bad("message"));
            }
            if r.reserved0 != [0; 3] || r.reserved1 != [0; 4] {
                return Err(FormatError::invalid(offset as u64, "reserved bytes of a message record are set"));
            }
            LogRecord::Message(m)
        }
        kind::FLAGS => {
            let f = FlagsBody::read_from_bytes(body).map_err(|_| bad("flags"))?;
            LogRecord::Flags {
                uid: f.uid.get(),
                system_flags: SystemFlags(f.system_flags.get()),
                user_flags: UserFlags::from_le_bytes(f.user_flags),
                modseq: f.modseq.get(),
            }
        }
        kind::EXPUNGE => {
            let e = ExpungeBody::read_from_bytes(body).map_err(|_| bad("expunge"))?;
            if e.reserved.get() != 0 {
                return Err(FormatError::invalid(offset as u64, "reserved bytes of an expunge record are set"));
            }
            LogRecord::Expunge { uid: e.uid.get(), modseq: e.modseq.get() }
        }
        kind::LAST_UID => {
            let l = LastUidBody::read_from_bytes(body).map_err(|_| bad("last-uid"))?;
            LogRecord::LastUid { last_uid: l.last_uid.get(), uid_validity: l.uid_validity.get() }
        }
        other => return Err(FormatError::invalid(offset as u64, format!("unknown record kind {other}"))),
    };
    Ok((head.seq.get(), record, len, change))
}

/// How a log ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// Every byte belongs to a valid record.
    Clean,
    /// The last record is incomplete or damaged and nothing valid follows: an append cut
    /// short by a crash. Appending resumes at `offset`.
    TornTail {
        /// Where the torn record starts.
        offset: u64,
        /// Why it was rejected.
        error: FormatError,
    },
    /// A damaged record with valid records after it.
    Corrupt {
        /// Where the first damage starts.
        offset: u64,
        /// Why it was rejected.
        error: FormatError,
    },
}

/// Everything readable in a log.
#[derive(Debug)]
pub struct LogScan {
    /// The header.
    pub header: LogHeaderInfo,
    /// Valid records in file order: (offset, seq, record).
    pub records: Vec<(u64, u64, LogRecord)>,
    /// Offset just past the last valid record of the unbroken prefix.
    pub valid_end: u64,
    /// How the file ends.
    pub end: LogEnd,
    /// Records skipped because of damage, by offset.
    pub skipped: Vec<FormatError>,
}

/// Read a log. With a bad header nothing can be verified (the unique id seeds every
/// checksum), so that is an error; damaged records are skipped and resynchronised over,
/// never trusted.
pub fn scan(bytes: &[u8]) -> Result<LogScan, FormatError> {
    let mut records = Vec::new();
    let mut s = scan_each(bytes, |off, seq, rec| records.push((off, seq, rec)))?;
    s.records = records;
    Ok(s)
}

/// [`scan`], handing each valid record to `each` (offset, seq, record) instead of
/// collecting them: a reader that keeps only the records after its checkpoint holds no
/// copy of the rest. The returned scan's `records` is empty.
///
/// Records of one change ([`encode_change`]) are handed out together once its last record
/// verifies; a change cut short (by a crash, or by damage) is handed out not at all, and
/// at the end of the file it is a torn tail that starts where the change starts. Records
/// that continue a change whose start was not read (after damage) are skipped.
pub fn scan_each(bytes: &[u8], mut each: impl FnMut(u64, u64, LogRecord)) -> Result<LogScan, FormatError> {
    let mut scanner = LogScanner::new(bytes)?;
    scanner.feed(bytes, 0, true, &mut each);
    Ok(scanner.finish())
}

/// Bytes of a log read at a time by [`scan_source`]: a window far larger than a record.
const WINDOW: usize = 1 << 20;

/// [`scan_each`] over a log read a window at a time (an open file: the log is never held
/// whole). The outer error is the read's, the inner one the header's.
pub fn scan_source(
    src: &dyn super::ReadAt,
    each: impl FnMut(u64, u64, LogRecord),
) -> std::io::Result<Result<LogScan, FormatError>> {
    scan_windows(src, WINDOW, each)
}

/// [`scan_source`] with windows of `window` bytes (more than twice the longest record):
/// for tests and fuzzing, which split logs at every place.
#[doc(hidden)]
pub fn scan_windows(
    src: &dyn super::ReadAt,
    window: usize,
    mut each: impl FnMut(u64, u64, LogRecord),
) -> std::io::Result<Result<LogScan, FormatError>> {
    assert!(window > 2 * MAX_RECORD_LEN as usize, "a window must hold more than two records");
    let mut buf = vec![0u8; (src.len().min(window as u64)) as usize];
    let mut base = 0u64;
    let mut scanner: Option<LogScanner> = None;
    loop {
        let want = (src.len().saturating_sub(base).min(window as u64)) as usize;
        let n = src.read_at(base, &mut buf[..want])?;
        // A short read is the end (a file that shrank while read ends there).
        let eof = n < window || base + n as u64 >= src.len();
        let bytes = &buf[..n];
        let sc = match &mut scanner {
            Some(sc) => sc,
            None => match LogScanner::new(bytes) {
                Ok(sc) => scanner.insert(sc),
                Err(e) => return Ok(Err(e)),
            },
        };
        let next = sc.feed(bytes, base, eof, &mut each);
        if eof {
            break;
        }
        base = next;
    }
    Ok(Ok(scanner.map(LogScanner::finish).expect("the first window made the scanner")))
}

/// A scan of a log fed its bytes a window at a time (the state of [`scan_each`] between
/// windows).
struct LogScanner {
    s: LogScan,
    /// Where the scan stands (absolute offset).
    off: u64,
    /// Looking for the next offset where a whole valid record starts (after damage).
    resync: bool,
    first_error: Option<FormatError>,
    /// Offset of the last valid record (a damaged record before it is mid-log corruption).
    last_valid: Option<u64>,
    /// The records of a change whose last record has not been seen yet.
    open: Vec<(u64, u64, LogRecord)>,
}

impl LogScanner {
    /// Start with the header (the first window: the log's first bytes).
    fn new(first: &[u8]) -> Result<LogScanner, FormatError> {
        let header = decode_header(first)?;
        Ok(LogScanner {
            s: LogScan {
                header,
                records: Vec::new(),
                valid_end: HEADER_LEN as u64,
                end: LogEnd::Clean,
                skipped: Vec::new(),
            },
            off: HEADER_LEN as u64,
            resync: false,
            first_error: None,
            last_valid: None,
            open: Vec::new(),
        })
    }

    /// Scan on through `bytes`, the log's bytes from offset `base` (which is at or before
    /// where the scan stands), `eof` when they reach its end. Returns where the next window
    /// must start: until the end, a record is decided only with all of its longest possible
    /// length in the window.
    fn feed(&mut self, bytes: &[u8], base: u64, eof: bool, each: &mut impl FnMut(u64, u64, LogRecord)) -> u64 {
        let uid = self.s.header.unique_id;
        let end = bytes.len();
        let limit = if eof { end } else { end.saturating_sub(MAX_RECORD_LEN as usize) };
        let mut off = (self.off - base) as usize;
        while off < limit {
            if self.resync {
                // The next offset where a whole valid record starts. A cheap look at the
                // head first: most offsets of damaged or zeroed space cannot start a
                // record, and a full decode at each would make a large damaged log cost
                // far more than reading it.
                match (off..limit).find(|&o| may_start_record(bytes, o) && decode_record(bytes, o, &uid).is_ok()) {
                    Some(next) => {
                        off = next;
                        self.resync = false;
                    }
                    None => {
                        off = limit;
                        break;
                    }
                }
            }
            match decode_record_in(bytes, off, &uid) {
                Ok((seq, rec, len, change)) => {
                    let at = base + off as u64;
                    off += len;
                    if change.starts() {
                        // A change left open by a record that did not continue it: damaged.
                        self.open.clear();
                    } else if self.open.is_empty() {
                        // The rest of a change whose start was damaged: never applied.
                        continue;
                    }
                    self.open.push((at, seq, rec));
                    if change.ends() {
                        for (o, q, r) in self.open.drain(..) {
                            self.last_valid = Some(o);
                            each(o, q, r);
                        }
                        if self.first_error.is_none() {
                            self.s.valid_end = base + off as u64;
                        }
                    }
                }
                Err(e) => {
                    // A change cut by damage is applied not at all.
                    self.open.clear();
                    let e = e.shifted(base);
                    if self.first_error.is_none() {
                        self.first_error = Some(e.clone());
                    }
                    self.s.skipped.push(e);
                    self.resync = true;
                    off += 1;
                }
            }
        }
        self.off = base + off as u64;
        self.off
    }

    /// How the log ends, once every window was fed.
    fn finish(mut self) -> LogScan {
        if let Some(&(start, _, _)) = self.open.first() {
            if self.first_error.is_none() {
                self.first_error =
                    Some(FormatError::invalid(start, "a change whose last record is missing (a write cut short)"));
            }
        }
        if let Some(error) = self.first_error {
            let offset = self.s.valid_end;
            self.s.end = if self.last_valid.is_some_and(|o| o > offset) {
                LogEnd::Corrupt { offset, error }
            } else {
                LogEnd::TornTail { offset, error }
            };
        }
        self.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record scan_each hands out, and the scan, for comparison.
    fn scanned(r: Result<LogScan, FormatError>, got: Vec<(u64, u64, LogRecord)>) -> String {
        format!("{r:?} {got:?}")
    }

    #[test]
    fn a_log_read_a_window_at_a_time_scans_as_when_read_whole() {
        // A log of a few hundred records of every kind, some in multi-record changes,
        // damaged in several ways; windows from just over two records up.
        let mut log =
            encode_header(&LogHeaderInfo { unique_id: UID, uid_validity: 77, base_seq: 0, created: 1, ceiling: 2048 });
        let recs = sample_records();
        for i in 0..400u64 {
            let r = &recs[i as usize % recs.len()];
            if i % 7 == 0 {
                encode_change(&mut log, &UID, &[(i * 3 + 1, r.clone()), (i * 3 + 2, recs[2].clone())]);
            } else {
                encode_record(&mut log, &UID, i * 3 + 1, r);
            }
        }
        let n = log.len();
        let mut damaged: Vec<Vec<u8>> = vec![log.clone()];
        for at in [n / 3, n / 2 + 17, 8193, 8192 + 4096] {
            let mut d = log.clone();
            d[at] ^= 0x5a;
            damaged.push(d);
        }
        let mut zeroed = log.clone();
        zeroed[n / 4..n / 4 + 5000].fill(0);
        damaged.push(zeroed);
        damaged.push(log[..n - 9].to_vec());
        for bytes in &damaged {
            let mut whole = Vec::new();
            let want = scanned(scan_each(bytes, |o, q, r| whole.push((o, q, r))), whole);
            for window in [2 * 4096 + 1, 9000, 12_288, 65_536, 1 << 20] {
                let mut got = Vec::new();
                let scan = scan_windows(&&bytes[..], window, |o, q, r| got.push((o, q, r))).expect("read");
                assert_eq!(scanned(scan, got), want, "window {window}");
            }
        }
    }

    const UID: [u8; 16] = [9; 16];

    fn sample_records() -> Vec<LogRecord> {
        vec![
            LogRecord::Name { domain: "example.com".into(), name: "user/joe".into() },
            LogRecord::FlagName { slot: 0, name: "$Important".into() },
            LogRecord::Message(MessageRecord {
                uid: 1,
                system_flags: SystemFlags(SystemFlags::SEEN),
                user_flags: UserFlags(1),
                internal_date: 1_700_000_000,
                internal_offset: 120,
                date_source: crate::flags::DateSource::Given,
                sent_date: Some(1_600_000_000),
                modseq: 3,
                size: 1234,
                content_hash: [5; 32],
                ..MessageRecord::default()
            }),
            LogRecord::Flags { uid: 1, system_flags: SystemFlags(0), user_flags: UserFlags(0), modseq: 4 },
            LogRecord::Expunge { uid: 1, modseq: 5 },
            LogRecord::LastUid { last_uid: 1, uid_validity: 77 },
        ]
    }

    fn sample_log() -> Vec<u8> {
        let mut b =
            encode_header(&LogHeaderInfo { unique_id: UID, uid_validity: 77, base_seq: 0, created: 1, ceiling: 2048 });
        for (i, r) in sample_records().iter().enumerate() {
            encode_record(&mut b, &UID, i as u64 + 1, r);
        }
        b
    }

    #[test]
    fn round_trip() {
        let s = scan(&sample_log()).expect("scan");
        assert_eq!(s.end, LogEnd::Clean);
        let recs: Vec<LogRecord> = s.records.into_iter().map(|(_, _, r)| r).collect();
        assert_eq!(recs, sample_records());
    }

    #[test]
    fn version_1_logs_still_read_without_a_ceiling() {
        let mut b = sample_log();
        assert_eq!(scan(&b).expect("scan").header.ceiling, 2048);
        b[8..10].copy_from_slice(&1u16.to_le_bytes());
        b[56..60].fill(0);
        let c = crate::format::crc(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&c.to_le_bytes());
        let s = scan(&b).expect("version 1 scans");
        assert_eq!(s.header.ceiling, 0);
        assert_eq!(s.records.len(), sample_records().len());
    }

    #[test]
    fn torn_tail_versus_mid_log_corruption() {
        let full = sample_log();
        let s = scan(&full[..full.len() - 3]).expect("scan");
        assert!(matches!(s.end, LogEnd::TornTail { .. }), "{:?}", s.end);
        assert_eq!(s.records.len(), 5);
        let mut b = full.clone();
        b[HEADER_LEN + 20] ^= 1; // inside the first record
        let s = scan(&b).expect("scan");
        assert!(matches!(s.end, LogEnd::Corrupt { offset, .. } if offset == HEADER_LEN as u64), "{:?}", s.end);
        assert_eq!(s.records.len(), 5, "every later record is still read");
    }

    /// A log with one single-record change, then one change of three records.
    fn log_with_a_change() -> (Vec<u8>, usize) {
        let mut b =
            encode_header(&LogHeaderInfo { unique_id: UID, uid_validity: 77, base_seq: 0, created: 1, ceiling: 0 });
        encode_record(&mut b, &UID, 1, &LogRecord::Name { domain: "example.com".into(), name: "user/joe".into() });
        let start = b.len();
        let change: Vec<(u64, LogRecord)> =
            (2..5u64).map(|s| (s, LogRecord::Expunge { uid: s as u32, modseq: s })).collect();
        encode_change(&mut b, &UID, &change);
        (b, start)
    }

    #[test]
    fn a_change_is_applied_whole_or_not_at_all() {
        let (full, start) = log_with_a_change();
        let s = scan(&full).expect("scan");
        assert_eq!((s.end.clone(), s.records.len()), (LogEnd::Clean, 4));
        // Cut anywhere inside the change: none of it is read, and the tail starts where
        // the change starts (the next append overwrites it).
        for cut in start + 1..full.len() {
            let s = scan(&full[..cut]).expect("scan");
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_end, start as u64, "cut at {cut}");
            assert!(matches!(s.end, LogEnd::TornTail { offset, .. } if offset == start as u64), "{:?}", s.end);
        }
        // A damaged middle record (a sector of the write lost) with the last record
        // intact: none of the change is applied, and it is a torn tail, not corruption.
        let mut b = full.clone();
        b[start + 20 + 20] ^= 0x40;
        let s = scan(&b).expect("scan");
        assert_eq!(s.records.len(), 1);
        assert!(matches!(s.end, LogEnd::TornTail { offset, .. } if offset == start as u64), "{:?}", s.end);
        // A damaged first record: the rest of its change is skipped, and what follows
        // the change is read again (mid-log corruption).
        let mut b = full.clone();
        b[start + 10] ^= 1;
        encode_record(&mut b, &UID, 5, &LogRecord::LastUid { last_uid: 9, uid_validity: 77 });
        let s = scan(&b).expect("scan");
        let kinds: Vec<&LogRecord> = s.records.iter().map(|r| &r.2).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(matches!(kinds[1], LogRecord::LastUid { last_uid: 9, .. }));
        assert!(matches!(s.end, LogEnd::Corrupt { .. }), "{:?}", s.end);
    }

    #[test]
    fn reserved_body_bytes_are_refused() {
        // A MESSAGE record with a reserved byte set (and a checksum that matches it): the
        // record it would re-encode to is another one (fuzzing found it).
        let uid = [9u8; 16];
        let rec = LogRecord::Message(MessageRecord { uid: 1, modseq: 2, ..MessageRecord::default() });
        let mut good = Vec::new();
        encode_record_in(&mut good, &uid, 1, &rec, Change::Whole);
        assert!(decode_record(&good, 0, &uid).is_ok());
        for at in [16 + 53, 16 + 120] {
            let mut bad = good.clone();
            bad[at] = 1;
            let end = bad.len() - 4;
            let c = crc_append(record_seed(&uid), &bad[..end]);
            bad[end..].copy_from_slice(&c.to_le_bytes());
            let e = decode_record(&bad, 0, &uid).expect_err("reserved byte set");
            assert!(e.to_string().contains("reserved"), "{e}");
        }
    }

    #[test]
    fn reserved_head_bits_are_refused() {
        let (mut b, start) = log_with_a_change();
        let head_flags = HEADER_LEN + 5;
        b[head_flags] = 4;
        // The CRC covers the head: recompute it so that only the flag is wrong.
        let len = start - HEADER_LEN;
        let c = crc_append(record_seed(&UID), &b[HEADER_LEN..HEADER_LEN + len - 4]);
        b[HEADER_LEN + len - 4..HEADER_LEN + len].copy_from_slice(&c.to_le_bytes());
        assert!(decode_record(&b, HEADER_LEN, &UID).is_err());
    }

    #[test]
    fn every_flip_in_a_record_is_caught() {
        let full = sample_log();
        let n = sample_records().len();
        let mut b = full.clone();
        for i in HEADER_LEN..b.len() {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                let s = scan(&b).expect("header intact");
                assert_ne!(s.end, LogEnd::Clean, "flip at {i} bit {bit} accepted");
                assert!(s.records.len() < n || s.records.iter().map(|r| &r.2).ne(sample_records().iter()));
                b[i] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn records_from_another_mailbox_are_rejected() {
        let mut b =
            encode_header(&LogHeaderInfo { unique_id: UID, uid_validity: 1, base_seq: 0, created: 1, ceiling: 0 });
        encode_record(&mut b, &[1; 16], 1, &LogRecord::Expunge { uid: 3, modseq: 1 });
        let s = scan(&b).expect("scan");
        assert!(s.records.is_empty());
        assert!(matches!(s.end, LogEnd::TornTail { .. }));
    }

    #[test]
    fn zero_fill_is_never_a_record() {
        let mut b = sample_log();
        b.extend_from_slice(&[0; 512]);
        let s = scan(&b).expect("scan");
        assert_eq!(s.records.len(), sample_records().len());
        assert!(matches!(s.end, LogEnd::TornTail { .. }));
    }
}
