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

#[cfg(test)]
mod tests {
    use super::*;

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
