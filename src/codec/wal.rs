//! The database transaction log: parse and encode segment headers and records (layout in
//! [`crate::format::wal`], spec in `formats/wal.md`).
//!
//! Everything here works on bytes already in memory and never panics on any input:
//! lengths are checked against the bytes present before they are used, and nothing is
//! allocated by a length read from the file (records borrow their keys and values).
//! Deciding what a damaged log *means* (torn tail or mid-log corruption) is the job of
//! [`crate::db::log`], from the facts this module returns.

use zerocopy::IntoBytes;

use super::{FormatError, check_magic_version, read_at, slice};
use crate::format::wal::{
    CheckpointBody, CommitBody, DeleteHead, MAGIC, MAX_RECORD_LEN, PutHead, RECORD_ALIGN, RECORD_HEADER_LEN,
    RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader, VERSION, rtype,
};
use crate::format::{I64, U16, U32, U64, crc};

/// Largest key of a PUT or DELETE (as in snapshots).
pub const MAX_KEY_LEN: usize = crate::format::dbsnap::MAX_KEY_LEN as usize;
/// Largest value of a PUT (as in snapshots).
pub const MAX_VALUE_LEN: usize = crate::format::dbsnap::MAX_VALUE_LEN as usize;

/// A segment header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentHeaderInfo {
    /// Salt of the segment (non-zero).
    pub salt: u32,
    /// Segment number.
    pub segment: u64,
    /// LSN of the first record.
    pub first_lsn: u64,
    /// Where the previous segment's valid records end (0: none).
    pub prev_end: u64,
    /// CRC of the previous segment's last valid record (0: none).
    pub prev_crc: u32,
    /// Salt of the previous segment (0: none).
    pub prev_salt: u32,
    /// Creation time.
    pub created: i64,
    /// Flags (`FLAG_NEW_TIMELINE`).
    pub flags: u32,
}

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Set `key` of database `db` to `value`.
    Put {
        /// Database id (1 mailboxes, 2 subscriptions).
        db: u8,
        /// Key.
        key: &'a [u8],
        /// Value.
        value: &'a [u8],
    },
    /// Remove `key` of database `db`.
    Delete {
        /// Database id.
        db: u8,
        /// Key.
        key: &'a [u8],
    },
    /// Commit of the transaction whose `op_count` operations precede this record.
    Commit {
        /// Operations of the transaction.
        op_count: u32,
        /// Commit time (seconds since the epoch).
        time: i64,
    },
    /// Checkpoint: snapshots include everything up to `checkpoint_lsn`.
    Checkpoint {
        /// LSN the snapshots include.
        checkpoint_lsn: u64,
        /// When taken.
        time: i64,
    },
}

impl Body<'_> {
    /// The record type byte.
    pub fn rtype(&self) -> u8 {
        match self {
            Body::Put { .. } => rtype::PUT,
            Body::Delete { .. } => rtype::DELETE,
            Body::Commit { .. } => rtype::COMMIT,
            Body::Checkpoint { .. } => rtype::CHECKPOINT,
        }
    }

    fn db(&self) -> u8 {
        match self {
            Body::Put { db, .. } | Body::Delete { db, .. } => *db,
            _ => 0,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Body::Put { key, value, .. } => 8 + key.len() + value.len(),
            Body::Delete { key, .. } => 8 + key.len(),
            Body::Commit { .. } | Body::Checkpoint { .. } => 16,
        }
    }
}

/// A decoded record, borrowing its key and value from the log bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Bytes of the record, padding and CRC included.
    pub len: u32,
    /// Salt of its segment.
    pub salt: u32,
    /// CRC of the previous record (or segment header).
    pub prev_crc: u32,
    /// Log sequence number.
    pub lsn: u64,
    /// Transaction id.
    pub txn: u64,
    /// Highest LSN the writer knew durable.
    pub synced_lsn: u64,
    /// This record's CRC.
    pub crc: u32,
    /// What it says.
    pub body: Body<'a>,
}

/// Bytes a record with `body` takes on disk (header, body, padding, CRC).
pub fn record_len(body: &Body<'_>) -> usize {
    (RECORD_HEADER_LEN + body.body_len() + 4).next_multiple_of(RECORD_ALIGN)
}

/// Encode a segment header.
pub fn encode_segment_header(h: &SegmentHeaderInfo) -> Vec<u8> {
    let mut raw = SegmentHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(SEGMENT_HEADER_LEN as u16),
        salt: U32::new(h.salt),
        segment: U64::new(h.segment),
        first_lsn: U64::new(h.first_lsn),
        prev_end: U64::new(h.prev_end),
        prev_crc: U32::new(h.prev_crc),
        prev_salt: U32::new(h.prev_salt),
        created: I64::new(h.created),
        flags: U32::new(h.flags),
        crc: U32::new(0),
    };
    raw.crc = U32::new(crc(&raw.as_bytes()[..SEGMENT_HEADER_LEN - 4]));
    raw.as_bytes().to_vec()
}

/// Decode a segment header; returns it with its CRC (the chain seed of the first record).
pub fn decode_segment_header(bytes: &[u8]) -> Result<(SegmentHeaderInfo, u32), FormatError> {
    slice(bytes, 0, SEGMENT_HEADER_LEN, "segment header")?;
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let h: &SegmentHeader = read_at(bytes, 0, "segment header")?;
    let computed = crc(&h.as_bytes()[..SEGMENT_HEADER_LEN - 4]);
    if computed != h.crc.get() {
        return Err(FormatError::Checksum { offset: 0, what: "segment header", stored: h.crc.get(), computed });
    }
    if usize::from(h.header_len.get()) != SEGMENT_HEADER_LEN {
        return Err(FormatError::invalid(10, format!("segment header_len {} is not 64", h.header_len.get())));
    }
    if h.salt.get() == 0 {
        return Err(FormatError::invalid(12, "segment salt is zero"));
    }
    if h.first_lsn.get() == 0 {
        return Err(FormatError::invalid(24, "segment first_lsn is zero"));
    }
    Ok((
        SegmentHeaderInfo {
            salt: h.salt.get(),
            segment: h.segment.get(),
            first_lsn: h.first_lsn.get(),
            prev_end: h.prev_end.get(),
            prev_crc: h.prev_crc.get(),
            prev_salt: h.prev_salt.get(),
            created: h.created.get(),
            flags: h.flags.get(),
        },
        h.crc.get(),
    ))
}

/// Append one record to `out`; returns its CRC (the next record's `prev_crc`).
pub fn encode_record(
    out: &mut Vec<u8>,
    salt: u32,
    prev_crc: u32,
    lsn: u64,
    txn: u64,
    synced_lsn: u64,
    body: &Body<'_>,
) -> u32 {
    let start = out.len();
    let len = record_len(body);
    let head = RecordHeader {
        len: U32::new(len as u32),
        rtype: body.rtype(),
        db: body.db(),
        reserved: U16::new(0),
        salt: U32::new(salt),
        prev_crc: U32::new(prev_crc),
        lsn: U64::new(lsn),
        txn: U64::new(txn),
        synced_lsn: U64::new(synced_lsn),
    };
    out.extend_from_slice(head.as_bytes());
    match body {
        Body::Put { key, value, .. } => {
            out.extend_from_slice(
                PutHead { key_len: U32::new(key.len() as u32), value_len: U32::new(value.len() as u32) }.as_bytes(),
            );
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        Body::Delete { key, .. } => {
            out.extend_from_slice(DeleteHead { key_len: U32::new(key.len() as u32), reserved: U32::new(0) }.as_bytes());
            out.extend_from_slice(key);
        }
        Body::Commit { op_count, time } => {
            out.extend_from_slice(
                CommitBody { op_count: U32::new(*op_count), reserved: U32::new(0), time: I64::new(*time) }.as_bytes(),
            );
        }
        Body::Checkpoint { checkpoint_lsn, time } => {
            out.extend_from_slice(
                CheckpointBody { checkpoint_lsn: U64::new(*checkpoint_lsn), time: I64::new(*time) }.as_bytes(),
            );
        }
    }
    out.resize(start + len - 4, 0);
    let c = crc(&out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
    c
}

/// Decode the record at `offset` of `bytes` on its own: length, type, reserved bytes,
/// body lengths, zero padding, CRC, and that it carries `salt`. The chain (`prev_crc`,
/// consecutive LSNs) is the caller's to check.
pub fn decode_record(bytes: &[u8], offset: usize, salt: u32) -> Result<Record<'_>, FormatError> {
    let at = offset as u64;
    let head: &RecordHeader = read_at(bytes, offset, "record header")?;
    let len = head.len.get();
    if head.rtype == 0 {
        return Err(FormatError::invalid(at, "type 0: not a record (zeroed or unwritten space)"));
    }
    if (len as usize) < RECORD_HEADER_LEN + 4 + 8 || len > MAX_RECORD_LEN || len as usize % RECORD_ALIGN != 0 {
        return Err(FormatError::invalid(at, format!("impossible record length {len}")));
    }
    let rec = slice(bytes, offset, len as usize, "record")?;
    let body_end = rec.len() - 4;
    let stored = u32::from_le_bytes([rec[body_end], rec[body_end + 1], rec[body_end + 2], rec[body_end + 3]]);
    let computed = crc(&rec[..body_end]);
    if computed != stored {
        return Err(FormatError::Checksum { offset: at, what: "log record", stored, computed });
    }
    if head.salt.get() != salt {
        return Err(FormatError::invalid(at, format!("record salt {:08x} is not the segment's {salt:08x}", head.salt)));
    }
    if head.reserved.get() != 0 {
        return Err(FormatError::invalid(at + 6, "reserved bytes are not zero"));
    }
    let b = &rec[RECORD_HEADER_LEN..body_end];
    let (body, used) = match head.rtype {
        rtype::PUT | rtype::DELETE => {
            if !matches!(head.db, 1 | 2) {
                return Err(FormatError::invalid(at + 5, format!("unknown database id {}", head.db)));
            }
            let klen = u32::from_le_bytes(b.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0xff; 4])) as usize;
            let second = u32::from_le_bytes(b.get(4..8).and_then(|s| s.try_into().ok()).unwrap_or([0xff; 4])) as usize;
            if klen > MAX_KEY_LEN {
                return Err(FormatError::invalid(at + 40, format!("key of {klen} bytes is too long")));
            }
            if head.rtype == rtype::PUT {
                if second > MAX_VALUE_LEN {
                    return Err(FormatError::invalid(at + 44, format!("value of {second} bytes is too long")));
                }
                let key = b.get(8..8 + klen).ok_or_else(|| FormatError::invalid(at, "key runs past the record"))?;
                let value = b
                    .get(8 + klen..8 + klen + second)
                    .ok_or_else(|| FormatError::invalid(at, "value runs past the record"))?;
                (Body::Put { db: head.db, key, value }, 8 + klen + second)
            } else {
                if second != 0 {
                    return Err(FormatError::invalid(at + 44, "reserved bytes are not zero"));
                }
                let key = b.get(8..8 + klen).ok_or_else(|| FormatError::invalid(at, "key runs past the record"))?;
                (Body::Delete { db: head.db, key }, 8 + klen)
            }
        }
        rtype::COMMIT | rtype::CHECKPOINT => {
            if head.db != 0 {
                return Err(FormatError::invalid(at + 5, "database id of a commit or checkpoint is not zero"));
            }
            let x = b.get(..8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
            let t = b.get(8..16).and_then(|s| s.try_into().ok()).map(i64::from_le_bytes);
            let (Some(x), Some(time)) = (x, t) else {
                return Err(FormatError::invalid(at, "record too short for its type"));
            };
            if head.rtype == rtype::COMMIT {
                if x >> 32 != 0 {
                    return Err(FormatError::invalid(at + 44, "reserved bytes are not zero"));
                }
                (Body::Commit { op_count: x as u32, time }, 16)
            } else {
                (Body::Checkpoint { checkpoint_lsn: x, time }, 16)
            }
        }
        other => return Err(FormatError::invalid(at + 4, format!("unknown record type {other}"))),
    };
    if (RECORD_HEADER_LEN + used + 4).next_multiple_of(RECORD_ALIGN) != len as usize {
        return Err(FormatError::invalid(at, format!("record length {len} does not fit its body of {used} bytes")));
    }
    if b[used..].iter().any(|&x| x != 0) {
        return Err(FormatError::invalid(at + (RECORD_HEADER_LEN + used) as u64, "padding is not zero"));
    }
    if head.lsn.get() == 0 {
        return Err(FormatError::invalid(at + 16, "LSN 0"));
    }
    Ok(Record {
        len,
        salt,
        prev_crc: head.prev_crc.get(),
        lsn: head.lsn.get(),
        txn: head.txn.get(),
        synced_lsn: head.synced_lsn.get(),
        crc: stored,
        body,
    })
}

/// The records of one segment region, checked as a chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordsScan<'a> {
    /// `(file offset, record)`, in order.
    pub records: Vec<(u64, Record<'a>)>,
    /// File offset right after the last valid record.
    pub valid_end: u64,
    /// CRC of the last valid record (the chain seed given when there is none).
    pub last_crc: u32,
    /// LSN the next record must carry.
    pub next_lsn: u64,
    /// Why reading stopped before the end of the bytes (`None`: the valid records end
    /// exactly where the bytes, or the limit, end).
    pub stop: Option<FormatError>,
}

/// Read the chain of records in `bytes`, which start at file offset `base` of a segment
/// with `salt`; the first must have `prev_crc` and `next_lsn`. Reading stops at the first
/// record that does not verify or does not continue the chain, or at `limit` bytes.
pub fn scan_records(bytes: &[u8], base: u64, salt: u32, prev_crc: u32, next_lsn: u64, limit: usize) -> RecordsScan<'_> {
    let limit = limit.min(bytes.len());
    let region = &bytes[..limit];
    let mut out = RecordsScan { records: Vec::new(), valid_end: base, last_crc: prev_crc, next_lsn, stop: None };
    let mut pos = 0usize;
    while pos < region.len() {
        let at = base + pos as u64;
        let rec = match decode_record(region, pos, salt) {
            Ok(r) => r,
            Err(e) => {
                out.stop = Some(e.shifted(base));
                break;
            }
        };
        if rec.prev_crc != out.last_crc {
            out.stop = Some(FormatError::invalid(at + 12, "record does not continue the checksum chain"));
            break;
        }
        if rec.lsn != out.next_lsn {
            out.stop =
                Some(FormatError::invalid(at + 16, format!("LSN {} where {} was expected", rec.lsn, out.next_lsn)));
            break;
        }
        pos += rec.len as usize;
        out.last_crc = rec.crc;
        out.next_lsn = rec.lsn + 1;
        out.valid_end = base + pos as u64;
        out.records.push((at, rec));
    }
    out
}

/// Every record in `bytes` (file offset `base`) that verifies on its own with `salt` and
/// has an LSN of at least `min_lsn`, at 8-byte aligned file offsets from `from`: what is
/// left readable past damage. At most `cap` are returned; the count of all is second.
pub fn find_records_after(
    bytes: &[u8],
    base: u64,
    from: u64,
    salt: u32,
    min_lsn: u64,
    cap: usize,
) -> (Vec<(u64, Record<'_>)>, usize) {
    let mut found = Vec::new();
    let mut count = 0;
    let mut off = from.saturating_sub(base).next_multiple_of(RECORD_ALIGN as u64);
    let salt_bytes = salt.to_le_bytes();
    while (off as usize).saturating_add(RECORD_HEADER_LEN) <= bytes.len() {
        let p = off as usize;
        // Cheap filter first: the salt at bytes 8..12 of a record head.
        if bytes.get(p + 8..p + 12) == Some(&salt_bytes[..]) {
            if let Ok(r) = decode_record(bytes, p, salt) {
                if r.lsn >= min_lsn {
                    count += 1;
                    if found.len() < cap {
                        found.push((base + off, r));
                    }
                    off += u64::from(r.len);
                    continue;
                }
            }
        }
        off += RECORD_ALIGN as u64;
    }
    (found, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeaderInfo {
        SegmentHeaderInfo {
            salt: 0x5a17_0001,
            segment: 3,
            first_lsn: 10,
            prev_end: 4096,
            prev_crc: 77,
            prev_salt: 9,
            created: 1_700_000_000,
            flags: 0,
        }
    }

    fn segment() -> Vec<u8> {
        let h = header();
        let mut b = encode_segment_header(&h);
        let (_, mut prev) = decode_segment_header(&b).expect("header");
        let bodies = [
            Body::Put { db: 1, key: b"example.com\0user/joe", value: &[7; 41] },
            Body::Delete { db: 2, key: b"example.com\0joe\0x" },
            Body::Commit { op_count: 2, time: 1_700_000_001 },
            Body::Checkpoint { checkpoint_lsn: 12, time: 1_700_000_002 },
            Body::Put { db: 2, key: b"", value: b"" },
        ];
        for (i, body) in bodies.iter().enumerate() {
            let lsn = 10 + i as u64;
            prev = encode_record(&mut b, h.salt, prev, lsn, if i < 3 { 10 } else { 0 }, 9, body);
        }
        b
    }

    #[test]
    fn round_trip_and_chain() {
        let b = segment();
        let (h, hcrc) = decode_segment_header(&b).expect("header");
        assert_eq!(h, header());
        let s = scan_records(&b[64..], 64, h.salt, hcrc, h.first_lsn, usize::MAX);
        assert_eq!(s.stop, None);
        assert_eq!(s.records.len(), 5);
        assert_eq!(s.valid_end, b.len() as u64);
        assert_eq!(s.next_lsn, 15);
        for (off, r) in &s.records {
            assert_eq!(*off % 8, 0);
            let mut again = Vec::new();
            encode_record(&mut again, r.salt, r.prev_crc, r.lsn, r.txn, r.synced_lsn, &r.body);
            assert_eq!(&again[..], &b[*off as usize..*off as usize + r.len as usize]);
        }
        assert_eq!(s.records[0].1.body, Body::Put { db: 1, key: b"example.com\0user/joe", value: &[7; 41] });
    }

    #[test]
    fn every_flip_of_a_record_is_caught_and_nothing_panics() {
        let b = segment();
        let (h, hcrc) = decode_segment_header(&b).expect("header");
        let n = scan_records(&b[64..], 64, h.salt, hcrc, h.first_lsn, usize::MAX).records.len();
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut m = b.clone();
                m[i] ^= 1 << bit;
                match decode_segment_header(&m) {
                    Err(_) => assert!(i < 64, "flip at {i} broke the header only"),
                    Ok((h2, c2)) => {
                        assert!(i >= 64, "flip at {i} in the header was accepted");
                        let s = scan_records(&m[64..], 64, h2.salt, c2, h2.first_lsn, usize::MAX);
                        assert!(s.records.len() < n, "flip at byte {i} bit {bit} accepted");
                        assert!(s.stop.is_some());
                    }
                }
            }
        }
        for cut in 0..b.len() {
            if let Ok((h2, c2)) = decode_segment_header(&b[..cut]) {
                let s = scan_records(&b[64..cut], 64, h2.salt, c2, h2.first_lsn, usize::MAX);
                assert!(s.valid_end <= cut as u64);
            }
        }
    }

    #[test]
    fn zeros_are_never_a_record_and_shuffles_are_rejected() {
        let z = vec![0u8; 256];
        assert!(decode_record(&z, 0, 1).is_err());
        let b = segment();
        let (h, hcrc) = decode_segment_header(&b).expect("header");
        let s = scan_records(&b[64..], 64, h.salt, hcrc, h.first_lsn, usize::MAX);
        // Swap the first two records: each still verifies alone, the chain does not.
        let (o0, r0) = s.records[0];
        let (o1, r1) = s.records[1];
        let mut m = b[..64].to_vec();
        m.extend_from_slice(&b[o1 as usize..o1 as usize + r1.len as usize]);
        m.extend_from_slice(&b[o0 as usize..o0 as usize + r0.len as usize]);
        let t = scan_records(&m[64..], 64, h.salt, hcrc, h.first_lsn, usize::MAX);
        assert!(t.records.is_empty() && t.stop.is_some());
        // A record under another salt (a stale segment's bytes) is rejected.
        assert!(decode_record(&b, o0 as usize, h.salt ^ 1).is_err());
        // Past damage, the later records are found again.
        let mut d = b.clone();
        d[o0 as usize + 50] ^= 1;
        let (found, count) = find_records_after(&d, 0, o0 + 8, h.salt, 0, 10);
        assert_eq!(count, 4);
        assert_eq!(found[0].1.lsn, 11);
    }
}
