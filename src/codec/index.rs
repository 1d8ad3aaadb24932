//! `ms.index`: parse, salvage and encode (layout in [`crate::format::index`], spec in
//! `formats/index.md`).

use zerocopy::IntoBytes;

use super::changelog::LogCoverage;
use super::{FormatError, check_crc, check_magic_versions, read_at};
use crate::flags::{DateSource, SystemFlags, UserFlags};
use crate::format::index::{HEADER_LEN, IndexHeader, IndexRecord, MAGIC, NO_DATE, OLDEST_VERSION, RECORD_LEN, VERSION};
use crate::format::{I16, I64, U16, U32, U64, crc};

/// The index header, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexHeaderInfo {
    /// Unique id of the mailbox.
    pub unique_id: [u8; 16],
    /// Incremented on every rewrite.
    pub generation: u64,
    /// IMAP UIDVALIDITY.
    pub uid_validity: u32,
    /// Highest UID assigned.
    pub last_uid: u32,
    /// Number of records.
    pub message_count: u32,
    /// Highest modseq.
    pub highest_modseq: u64,
    /// Change-log sequence number included.
    pub log_seq: u64,
    /// Sum of message sizes.
    pub total_size: u64,
    /// Length of the cache file the records point into.
    pub cache_len: u64,
    /// When written.
    pub written: i64,
    /// Bytes of the compacted `ms.log` written with this checkpoint (0: not recorded).
    pub log_len: u64,
    /// Stored CRC of that log's last record.
    pub log_crc: u32,
    /// No modseq above this was given when this checkpoint was written (0: not recorded).
    pub modseq_ceiling: u64,
}

impl IndexHeaderInfo {
    /// What this checkpoint says of `ms.log`: the log compacted at `log_seq`, `log_len`
    /// bytes long.
    pub fn log_coverage(&self) -> LogCoverage {
        LogCoverage { base_seq: self.log_seq, seq: self.log_seq, len: self.log_len, crc: self.log_crc }
    }
}

/// One message's index record, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageRecord {
    /// UID.
    pub uid: u32,
    /// System flags.
    pub system_flags: SystemFlags,
    /// User flags (slots).
    pub user_flags: UserFlags,
    /// Internal date, seconds since the epoch.
    pub internal_date: i64,
    /// Its zone, minutes east of UTC.
    pub internal_offset: i16,
    /// Where the internal date came from.
    pub date_source: DateSource,
    /// Date header, seconds since the epoch, if it parsed.
    pub sent_date: Option<i64>,
    /// Zone of the Date header.
    pub sent_offset: i16,
    /// Bytes of the header block.
    pub header_size: u32,
    /// Size of the message file.
    pub size: u64,
    /// Cache record offset.
    pub cache_offset: u64,
    /// Cache record length.
    pub cache_len: u32,
    /// Modification sequence.
    pub modseq: u64,
    /// BLAKE3 of the message file.
    pub content_hash: [u8; 32],
    /// XXH3-64 of its first bytes ([`crate::store::derive::prefix_hash`]), for carving;
    /// 0 when unknown (records written before the field existed).
    pub prefix_hash: u64,
}

impl MessageRecord {
    /// The raw on-disk record, checksum filled in.
    pub fn to_raw(&self) -> IndexRecord {
        let mut r = IndexRecord {
            uid: U32::new(self.uid),
            system_flags: U32::new(self.system_flags.0),
            internal_date: I64::new(self.internal_date),
            internal_offset: I16::new(self.internal_offset),
            sent_offset: I16::new(self.sent_offset),
            header_size: U32::new(self.header_size),
            sent_date: I64::new(self.sent_date.unwrap_or(NO_DATE)),
            size: U64::new(self.size),
            cache_offset: U64::new(self.cache_offset),
            cache_len: U32::new(self.cache_len),
            date_source: self.date_source as u8,
            reserved0: [0; 3],
            user_flags: self.user_flags.to_le_bytes(),
            modseq: U64::new(self.modseq),
            content_hash: self.content_hash,
            prefix_hash: U64::new(self.prefix_hash),
            reserved1: [0; 4],
            crc: U32::new(0),
        };
        r.crc = U32::new(crc(&r.as_bytes()[..RECORD_LEN - 4]));
        r
    }

    /// Decode a raw record whose checksum the caller has checked.
    pub fn from_raw(r: &IndexRecord) -> MessageRecord {
        let sent = r.sent_date.get();
        MessageRecord {
            uid: r.uid.get(),
            system_flags: SystemFlags(r.system_flags.get()),
            user_flags: UserFlags::from_le_bytes(r.user_flags),
            internal_date: r.internal_date.get(),
            internal_offset: r.internal_offset.get(),
            date_source: DateSource::from_u8(r.date_source),
            sent_date: (sent != NO_DATE).then_some(sent),
            sent_offset: r.sent_offset.get(),
            header_size: r.header_size.get(),
            size: r.size.get(),
            cache_offset: r.cache_offset.get(),
            cache_len: r.cache_len.get(),
            modseq: r.modseq.get(),
            content_hash: r.content_hash,
            prefix_hash: r.prefix_hash.get(),
        }
    }
}

/// Encode a complete index file. `records` must be sorted by UID without duplicates.
pub fn encode(header: &IndexHeaderInfo, records: &[MessageRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * RECORD_LEN);
    out.extend_from_slice(encode_header(header, records.len() as u32).as_bytes());
    for r in records {
        out.extend_from_slice(r.to_raw().as_bytes());
    }
    out
}

/// A complete index file as version 1 (no log coverage, no modseq ceiling), as builds
/// before version 2 wrote it: for tests that old stores keep opening.
pub fn encode_v1(header: &IndexHeaderInfo, records: &[MessageRecord]) -> Vec<u8> {
    let mut b = encode(header, records);
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    b[96..HEADER_LEN - 4].fill(0);
    let c = crc(&b[..HEADER_LEN - 4]);
    b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&c.to_le_bytes());
    b
}

/// The 128 header bytes of an index of `count` records (for writers that stream the
/// records after it).
pub fn encode_header_bytes(h: &IndexHeaderInfo, count: u32) -> Vec<u8> {
    encode_header(h, count).as_bytes().to_vec()
}

fn encode_header(h: &IndexHeaderInfo, count: u32) -> IndexHeader {
    let mut raw = IndexHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        record_len: U16::new(RECORD_LEN as u16),
        reserved0: U16::new(0),
        unique_id: h.unique_id,
        generation: U64::new(h.generation),
        uid_validity: U32::new(h.uid_validity),
        last_uid: U32::new(h.last_uid),
        message_count: U32::new(count),
        reserved1: U32::new(0),
        highest_modseq: U64::new(h.highest_modseq),
        log_seq: U64::new(h.log_seq),
        total_size: U64::new(h.total_size),
        cache_len: U64::new(h.cache_len),
        written: I64::new(h.written),
        log_len: U64::new(h.log_len),
        log_crc: U32::new(h.log_crc),
        modseq_ceiling: U64::new(h.modseq_ceiling),
        reserved2: [0; 8],
        crc: U32::new(0),
    };
    raw.crc = U32::new(crc(&raw.as_bytes()[..HEADER_LEN - 4]));
    raw
}

/// Decode and check the header.
pub fn decode_header(bytes: &[u8]) -> Result<IndexHeaderInfo, FormatError> {
    let version = check_magic_versions(bytes, &MAGIC, OLDEST_VERSION, VERSION)?;
    let raw: &IndexHeader = read_at(bytes, 0, "index header")?;
    check_crc(&raw.as_bytes()[..HEADER_LEN - 4], raw.crc.get(), 0, "index header")?;
    if raw.header_len.get() as usize != HEADER_LEN || raw.record_len.get() as usize != RECORD_LEN {
        return Err(FormatError::invalid(
            10,
            format!(
                "header_len {} / record_len {} (expected {HEADER_LEN} / {RECORD_LEN})",
                raw.header_len, raw.record_len
            ),
        ));
    }
    Ok(IndexHeaderInfo {
        unique_id: raw.unique_id,
        generation: raw.generation.get(),
        uid_validity: raw.uid_validity.get(),
        last_uid: raw.last_uid.get(),
        message_count: raw.message_count.get(),
        highest_modseq: raw.highest_modseq.get(),
        log_seq: raw.log_seq.get(),
        total_size: raw.total_size.get(),
        cache_len: raw.cache_len.get(),
        written: raw.written.get(),
        // Version 1 reserved these bytes (ignored when read).
        log_len: if version >= 2 { raw.log_len.get() } else { 0 },
        log_crc: if version >= 2 { raw.log_crc.get() } else { 0 },
        modseq_ceiling: if version >= 2 { raw.modseq_ceiling.get() } else { 0 },
    })
}

/// Decode and check the record at byte `offset`.
pub fn decode_record(bytes: &[u8], offset: usize) -> Result<MessageRecord, FormatError> {
    let raw: &IndexRecord = read_at(bytes, offset, "index record")?;
    check_crc(&raw.as_bytes()[..RECORD_LEN - 4], raw.crc.get(), offset, "index record")?;
    if raw.uid.get() == 0 {
        return Err(FormatError::invalid(offset as u64, "record with UID 0"));
    }
    Ok(MessageRecord::from_raw(raw))
}

/// A whole index file, strictly: any damage is an error.
pub fn decode(bytes: &[u8]) -> Result<(IndexHeaderInfo, Vec<MessageRecord>), FormatError> {
    let (h, mut records) = decode_start(bytes, bytes.len() as u64)?;
    decode_records(&h, &bytes[HEADER_LEN..], HEADER_LEN, &mut records)?;
    Ok((h, records))
}

/// Records decoded at a time by [`decode_source`] (1 MiB of the file).
const WINDOW_RECORDS: usize = 8192;

/// [`decode`] of an index read a window at a time (an open file: its bytes are never held
/// whole, only the records). The outer error is the read's, the inner one the format's.
pub fn decode_source(
    src: &dyn super::ReadAt,
) -> std::io::Result<Result<(IndexHeaderInfo, Vec<MessageRecord>), FormatError>> {
    decode_windows(src, WINDOW_RECORDS)
}

/// [`decode_source`], `window` records at a time: for tests and fuzzing, which split an
/// index at every record.
#[doc(hidden)]
pub fn decode_windows(
    src: &dyn super::ReadAt,
    window: usize,
) -> std::io::Result<Result<(IndexHeaderInfo, Vec<MessageRecord>), FormatError>> {
    let len = src.len();
    let mut head = [0u8; HEADER_LEN];
    let n = src.read_at(0, &mut head)?;
    let (h, mut records) = match decode_start(&head[..n], len) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut buf = vec![0u8; (len - HEADER_LEN as u64).min((window.max(1) * RECORD_LEN) as u64) as usize];
    let mut off = HEADER_LEN as u64;
    while off < len {
        let want = (len - off).min(buf.len() as u64) as usize;
        let got = src.read_at(off, &mut buf[..want])?;
        if got < want {
            // The file shrank under the reader: it no longer holds what its header counts.
            let have = off + got as u64;
            return Ok(Err(count_mismatch(h.message_count as usize, have)));
        }
        if let Err(e) = decode_records(&h, &buf[..want], off as usize, &mut records) {
            return Ok(Err(e));
        }
        off += want as u64;
    }
    Ok(Ok((h, records)))
}

/// The header, checked against the file's length (`len`): the records' vector is sized
/// by the count only once the file was found to hold that many.
fn decode_start(first: &[u8], len: u64) -> Result<(IndexHeaderInfo, Vec<MessageRecord>), FormatError> {
    let h = decode_header(first)?;
    let count = h.message_count as usize;
    let expect = count.checked_mul(RECORD_LEN).and_then(|n| n.checked_add(HEADER_LEN));
    if expect.map(|e| e as u64) != Some(len) {
        return Err(count_mismatch(count, len));
    }
    Ok((h, Vec::with_capacity(count)))
}

fn count_mismatch(count: usize, len: u64) -> FormatError {
    FormatError::invalid(
        48,
        format!("message_count {count} needs {} bytes, file has {len}", HEADER_LEN + count.saturating_mul(RECORD_LEN)),
    )
}

/// Decode whole records (`bytes`, which start at file offset `at`), in UID order, after
/// those already in `records`.
fn decode_records(
    h: &IndexHeaderInfo,
    bytes: &[u8],
    at: usize,
    records: &mut Vec<MessageRecord>,
) -> Result<(), FormatError> {
    let mut prev = records.last().map_or(0, |r| r.uid);
    for (i, raw) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let off = at + i * RECORD_LEN;
        let r = decode_record(raw, 0).map_err(|e| e.shifted(off as u64))?;
        if r.uid <= prev {
            return Err(FormatError::invalid(
                off as u64,
                format!("UID {} after UID {prev}: records out of order", r.uid),
            ));
        }
        if r.uid > h.last_uid {
            return Err(FormatError::invalid(off as u64, format!("UID {} above last_uid {}", r.uid, h.last_uid)));
        }
        prev = r.uid;
        records.push(r);
    }
    Ok(())
}

/// What could be read out of a possibly damaged index.
#[derive(Debug, Default)]
pub struct IndexSalvage {
    /// The header, if it checks out.
    pub header: Option<IndexHeaderInfo>,
    /// Why the header was rejected.
    pub header_error: Option<FormatError>,
    /// Every record whose checksum holds, in file order.
    pub records: Vec<(u64, MessageRecord)>,
    /// Records that were rejected, with where and why.
    pub damaged: Vec<FormatError>,
    /// Bytes at the end too few for a whole record (a truncated file), as (offset, len).
    pub partial_tail: Option<(u64, u64)>,
    /// Bytes past the records a valid header counts, as (offset, len): never read (an
    /// index is written whole, so nothing there is a record; a file extended by damage or
    /// by hand costs one finding, not one per 128 bytes).
    pub beyond_count: Option<(u64, u64)>,
    /// Damaged records beyond the first [`MAX_DAMAGED`] listed in `damaged`.
    pub damaged_more: u64,
}

/// Damaged records listed at most by [`salvage`]; the rest are counted.
pub const MAX_DAMAGED: usize = 100;

/// Read every record that can still be trusted, record by record. Never fails.
pub fn salvage(bytes: &[u8]) -> IndexSalvage {
    let mut s = IndexSalvage::default();
    match decode_header(bytes) {
        Ok(h) => s.header = Some(h),
        Err(e) => s.header_error = Some(e),
    }
    if bytes.len() < HEADER_LEN {
        return s;
    }
    let mut body = bytes.len() - HEADER_LEN;
    if let Some(h) = &s.header {
        let counted = (h.message_count as usize).saturating_mul(RECORD_LEN);
        if body > counted {
            s.beyond_count = Some(((HEADER_LEN + counted) as u64, (body - counted) as u64));
            body = counted;
        }
    }
    let whole = body / RECORD_LEN;
    for i in 0..whole {
        let off = HEADER_LEN + i * RECORD_LEN;
        match decode_record(bytes, off) {
            Ok(r) => s.records.push((off as u64, r)),
            Err(_) if s.damaged.len() >= MAX_DAMAGED => s.damaged_more += 1,
            Err(e) => s.damaged.push(e),
        }
    }
    let rest = body % RECORD_LEN;
    if rest != 0 {
        s.partial_tail = Some(((HEADER_LEN + whole * RECORD_LEN) as u64, rest as u64));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: u32) -> MessageRecord {
        MessageRecord {
            uid,
            system_flags: SystemFlags(SystemFlags::SEEN | SystemFlags::FLAGGED),
            user_flags: UserFlags(1 << 3 | 1 << 127),
            internal_date: 1_700_000_000 + i64::from(uid),
            internal_offset: 60,
            date_source: DateSource::Given,
            sent_date: if uid % 2 == 0 { Some(1_600_000_000) } else { None },
            sent_offset: -300,
            header_size: 512,
            size: 4096 + u64::from(uid),
            cache_offset: 64 * u64::from(uid),
            cache_len: 100,
            modseq: u64::from(uid) * 3,
            content_hash: [uid as u8; 32],
            prefix_hash: 0x1234_5678_9abc_def0 ^ u64::from(uid),
        }
    }

    #[test]
    fn an_index_read_a_window_at_a_time_decodes_as_when_read_whole() {
        let (h, recs) = sample(1000);
        let good = encode(&h, &recs);
        let mut damaged = vec![good.clone(), good[..good.len() - 128].to_vec(), good[..100].to_vec()];
        for at in [HEADER_LEN + 5, HEADER_LEN + 128 * 500 + 7, good.len() - 1, 3] {
            let mut d = good.clone();
            d[at] ^= 0x40;
            damaged.push(d);
        }
        let mut swapped = good.clone();
        swapped.copy_within(HEADER_LEN + 128 * 700..HEADER_LEN + 128 * 701, HEADER_LEN + 128 * 3);
        damaged.push(swapped);
        for bytes in &damaged {
            let whole = decode(bytes);
            for window in [1, 7, 64, 999, 1000, 8192] {
                let got = decode_windows(&&bytes[..], window).expect("read");
                assert_eq!(got, whole, "window {window}");
            }
        }
    }

    fn sample(n: u32) -> (IndexHeaderInfo, Vec<MessageRecord>) {
        let h = IndexHeaderInfo {
            unique_id: [7; 16],
            generation: 3,
            uid_validity: 99,
            last_uid: n + 5,
            message_count: n,
            highest_modseq: 1000,
            log_seq: 77,
            total_size: 12345,
            cache_len: 4000,
            written: 1_700_000_000,
            log_len: 1234,
            log_crc: 0xdead_beef,
            modseq_ceiling: 5000,
        };
        (h, (1..=n).map(rec).collect())
    }

    #[test]
    fn round_trip() {
        let (h, recs) = sample(5);
        let bytes = encode(&h, &recs);
        assert_eq!(bytes.len(), HEADER_LEN + 5 * RECORD_LEN);
        assert_eq!(decode(&bytes), Ok((h, recs)));
    }

    #[test]
    fn every_flip_and_cut_is_caught() {
        let (h, recs) = sample(2);
        let bytes = encode(&h, &recs);
        assert_eq!(crate::codec::testutil::mutate_all(&bytes, decode), 0);
    }

    #[test]
    fn salvage_keeps_every_intact_record() {
        let (h, recs) = sample(10);
        let mut bytes = encode(&h, &recs);
        // Flip a bit in record 4 (uid 4) and in the header; cut the last record in half.
        bytes[HEADER_LEN + 3 * RECORD_LEN + 9] ^= 1;
        bytes[40] ^= 0x80;
        bytes.truncate(bytes.len() - RECORD_LEN / 2);
        let s = salvage(&bytes);
        assert!(s.header.is_none());
        assert!(matches!(s.header_error, Some(FormatError::Checksum { offset: 0, .. })));
        let uids: Vec<u32> = s.records.iter().map(|(_, r)| r.uid).collect();
        assert_eq!(uids, vec![1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(s.damaged.len(), 1);
        assert_eq!(s.damaged[0].offset(), (HEADER_LEN + 3 * RECORD_LEN) as u64);
        assert_eq!(s.partial_tail, Some(((HEADER_LEN + 9 * RECORD_LEN) as u64, (RECORD_LEN / 2) as u64)));
        assert_eq!(s.records[3].1, recs[4]);
    }

    #[test]
    fn version_1_files_still_open_without_coverage() {
        let (h, recs) = sample(3);
        let mut b = encode_v1(&h, &recs);
        let (h1, r1) = decode(&b).expect("version 1 decodes");
        assert_eq!(r1, recs);
        assert_eq!((h1.log_len, h1.log_crc, h1.modseq_ceiling), (0, 0, 0));
        assert_eq!(h1, IndexHeaderInfo { log_len: 0, log_crc: 0, modseq_ceiling: 0, ..h });
        b[8..10].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(decode_header(&b), Err(FormatError::UnsupportedVersion { version: 3, supported: 2 })));
    }

    #[test]
    fn count_mismatch_is_reported_not_trusted() {
        let (mut h, recs) = sample(3);
        h.message_count = u32::MAX;
        let bytes = encode(&h, &recs);
        // encode writes the real count; patch the header to lie and fix its checksum.
        let mut b = bytes.clone();
        b[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        let c = crc(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&c.to_le_bytes());
        let err = decode(&b).expect_err("lying count");
        assert_eq!(err.offset(), 48);
    }
}
