//! Database snapshot files: parse and encode (layout in [`crate::format::dbsnap`], spec in
//! `formats/db.md`). A snapshot is a sorted list of key/value entries, each with its own
//! checksum, so a damaged snapshot can be salvaged entry by entry.

use zerocopy::IntoBytes;

use super::{FormatError, check_crc, check_magic_version, read_at, read_u32, slice};
use crate::format::dbsnap::{
    END_MAGIC, EntryHead, HEADER_LEN, MAGIC, MAX_KEY_LEN, MAX_VALUE_LEN, SnapHeader, SnapTrailer, VERSION,
};
use crate::format::{I64, U16, U32, U64, crc, crc_append};

/// A decoded snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Database name.
    pub name: String,
    /// Log sequence number of the checkpoint.
    pub checkpoint_lsn: u64,
    /// When written.
    pub written: i64,
    /// Entries, sorted by key, keys unique.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Encode a snapshot file. Entries must be sorted with unique keys.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let mut name = [0u8; 16];
    let n = s.name.len().min(16);
    name[..n].copy_from_slice(&s.name.as_bytes()[..n]);
    let mut h = SnapHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        reserved0: U32::new(0),
        name,
        checkpoint_lsn: U64::new(s.checkpoint_lsn),
        entry_count: U64::new(s.entries.len() as u64),
        written: I64::new(s.written),
        reserved1: U32::new(0),
        crc: U32::new(0),
    };
    h.crc = U32::new(crc(&h.as_bytes()[..HEADER_LEN - 4]));
    let mut out = h.as_bytes().to_vec();
    for (k, v) in &s.entries {
        let start = out.len();
        out.extend_from_slice(
            EntryHead { key_len: U32::new(k.len() as u32), value_len: U32::new(v.len() as u32) }.as_bytes(),
        );
        out.extend_from_slice(k);
        out.extend_from_slice(v);
        let c = crc(&out[start..]);
        out.extend_from_slice(&c.to_le_bytes());
    }
    let mut t = SnapTrailer {
        magic: END_MAGIC,
        entry_count: U64::new(s.entries.len() as u64),
        crc: U32::new(0),
        reserved: U32::new(0),
    };
    let partial = crc_append(crc(&out), &t.as_bytes()[..20]);
    t.crc = U32::new(partial);
    out.extend_from_slice(t.as_bytes());
    out
}

/// What the 64-byte header of a snapshot says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapHeaderInfo {
    /// Database name.
    pub name: String,
    /// Log sequence number of the checkpoint.
    pub checkpoint_lsn: u64,
    /// Entries that follow.
    pub entry_count: u64,
    /// When written.
    pub written: i64,
}

/// Decode and check (magic, version, CRC) the header alone: enough to learn a snapshot's
/// checkpoint LSN without reading its entries.
pub fn decode_header(bytes: &[u8]) -> Result<SnapHeaderInfo, FormatError> {
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let h: &SnapHeader = read_at(bytes, 0, "snapshot header")?;
    check_crc(&h.as_bytes()[..HEADER_LEN - 4], h.crc.get(), 0, "snapshot header")?;
    let name_end = h.name.iter().position(|&b| b == 0).unwrap_or(16);
    let name =
        std::str::from_utf8(&h.name[..name_end]).map_err(|_| FormatError::invalid(16, "database name is not UTF-8"))?;
    Ok(SnapHeaderInfo {
        name: name.to_string(),
        checkpoint_lsn: h.checkpoint_lsn.get(),
        entry_count: h.entry_count.get(),
        written: h.written.get(),
    })
}

/// Decode a snapshot strictly.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    let head = decode_header(bytes)?;
    let name = head.name.as_str();
    let count = head.entry_count;
    let mut entries = Vec::with_capacity((count as usize).min(bytes.len() / 12));
    let mut pos = HEADER_LEN;
    let mut prev: Option<&[u8]> = None;
    for _ in 0..count {
        let e: &EntryHead = read_at(bytes, pos, "snapshot entry")?;
        let (kl, vl) = (e.key_len.get(), e.value_len.get());
        if kl > MAX_KEY_LEN || vl > MAX_VALUE_LEN {
            return Err(FormatError::invalid(pos as u64, format!("entry key {kl} / value {vl} bytes too long")));
        }
        let total = 8 + kl as usize + vl as usize;
        let covered = slice(bytes, pos, total, "snapshot entry")?;
        check_crc(covered, read_u32(bytes, pos + total, "entry checksum")?, pos, "snapshot entry")?;
        let key = &covered[8..8 + kl as usize];
        if prev.is_some_and(|p| p >= key) {
            return Err(FormatError::invalid(pos as u64, "entries out of order"));
        }
        prev = Some(key);
        entries.push((key.to_vec(), covered[8 + kl as usize..].to_vec()));
        pos += total + 4;
    }
    let t: &SnapTrailer = read_at(bytes, pos, "snapshot trailer")?;
    if t.magic != END_MAGIC || t.entry_count.get() != count {
        return Err(FormatError::invalid(pos as u64, "bad snapshot trailer"));
    }
    let computed = crc_append(crc(&bytes[..pos]), &t.as_bytes()[..20]);
    if computed != t.crc.get() {
        return Err(FormatError::Checksum { offset: pos as u64, what: "snapshot", stored: t.crc.get(), computed });
    }
    if pos + std::mem::size_of::<SnapTrailer>() != bytes.len() {
        return Err(FormatError::invalid((pos + 24) as u64, "bytes after the snapshot trailer"));
    }
    Ok(Snapshot { name: name.to_string(), checkpoint_lsn: head.checkpoint_lsn, written: head.written, entries })
}

/// What [`salvage`] read from a damaged snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// The header, when it is intact.
    pub header: Option<SnapHeaderInfo>,
    /// Every entry whose own checksum holds, in file order (duplicate or out-of-order keys
    /// are kept once, the first seen).
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Byte ranges `(offset, length)` no intact entry, header or trailer accounts for.
    pub unreadable: Vec<(u64, u64)>,
    /// The trailer was found intact (its entry count, when so).
    pub trailer_count: Option<u64>,
}

/// Read whatever survives of a damaged snapshot: the header if intact, and every entry
/// whose checksum holds, resynchronising byte by byte past damage. Work is bounded by the
/// file: checksums over at most 64 times its length are tried, the rest is unreadable.
pub fn salvage(bytes: &[u8]) -> Salvaged {
    let mut out = Salvaged { header: decode_header(bytes).ok(), ..Salvaged::default() };
    let mut seen = std::collections::HashSet::new();
    let mut budget = bytes.len().saturating_mul(64);
    let mut pos = HEADER_LEN.min(bytes.len());
    let mut bad_from: Option<usize> = None;
    let end = bytes.len();
    while pos < end {
        let entry = read_at::<EntryHead>(bytes, pos, "snapshot entry").ok().and_then(|e| {
            let (kl, vl) = (e.key_len.get() as usize, e.value_len.get() as usize);
            if kl > MAX_KEY_LEN as usize || vl > MAX_VALUE_LEN as usize {
                return None;
            }
            let total = 8 + kl + vl;
            if pos + total + 4 > end || budget < total {
                return None;
            }
            budget -= total;
            let covered = &bytes[pos..pos + total];
            let stored = read_u32(bytes, pos + total, "entry checksum").ok()?;
            (crc(covered) == stored).then_some((covered, kl, total))
        });
        match entry {
            Some((covered, kl, total)) => {
                if let Some(b) = bad_from.take() {
                    out.unreadable.push((b as u64, (pos - b) as u64));
                }
                let key = covered[8..8 + kl].to_vec();
                if seen.insert(key.clone()) {
                    out.entries.push((key, covered[8 + kl..].to_vec()));
                }
                pos += total + 4;
            }
            None if bytes[pos..].starts_with(&END_MAGIC) && end - pos >= std::mem::size_of::<SnapTrailer>() => {
                if let Some(b) = bad_from.take() {
                    out.unreadable.push((b as u64, (pos - b) as u64));
                }
                if let Ok(t) = read_at::<SnapTrailer>(bytes, pos, "snapshot trailer") {
                    if crc_append(crc(&bytes[..pos]), &t.as_bytes()[..20]) == t.crc.get() {
                        out.trailer_count = Some(t.entry_count.get());
                    }
                }
                pos += std::mem::size_of::<SnapTrailer>();
            }
            None => {
                bad_from.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    if let Some(b) = bad_from {
        out.unreadable.push((b as u64, (end - b) as u64));
    }
    if out.header.is_none() && !bytes.is_empty() {
        out.unreadable.insert(0, (0, HEADER_LEN.min(bytes.len()) as u64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_keeps_every_intact_entry_around_damage() {
        let s = sample();
        let mut b = encode(&s);
        assert_eq!(salvage(&b).entries, s.entries, "an intact snapshot salvages whole");
        assert!(salvage(&b).unreadable.is_empty());
        // Damage the first entry's key: the others survive, the header too.
        b[HEADER_LEN + 9] ^= 0x40;
        let got = salvage(&b);
        assert_eq!(got.header.as_ref().map(|h| h.checkpoint_lsn), Some(s.checkpoint_lsn));
        assert_eq!(got.entries, s.entries[1..].to_vec());
        assert_eq!(got.unreadable.len(), 1);
        assert_eq!(got.unreadable[0].0, HEADER_LEN as u64);
        // A damaged header loses only the header.
        let mut b = encode(&s);
        b[33] ^= 1;
        let got = salvage(&b);
        assert!(got.header.is_none());
        assert_eq!(got.entries, s.entries);
        // Garbage of any length: no panic, nothing salvaged.
        for n in [0, 1, 63, 64, 65, 500] {
            let g: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            assert!(salvage(&g).entries.is_empty());
        }
    }

    fn sample() -> Snapshot {
        Snapshot {
            name: "mailboxes".into(),
            checkpoint_lsn: 42,
            written: 1_700_000_000,
            entries: vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), Vec::new()),
                (b"example.com\0user/joe".to_vec(), vec![7; 40]),
            ],
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode(&sample())), Ok(sample()));
    }

    #[test]
    fn every_flip_and_cut_is_caught() {
        assert_eq!(crate::codec::testutil::mutate_all(&encode(&sample()), decode), 0);
    }
}
