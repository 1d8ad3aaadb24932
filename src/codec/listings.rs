//! The directory listing cache `listings/<domain>`: parse and encode (layout in
//! [`crate::format::listings`], spec in `formats/listings.md`).

use zerocopy::IntoBytes;

use super::{FormatError, check_crc, check_magic_version, read_at, read_u32, slice};
use crate::format::listings::{
    ENTRY_LEN, HEADER_LEN, KIND_STRAY, KIND_SUBDIR, KIND_TEMP, ListingEntry, ListingsHeader, MAGIC, MAX_NAME_LEN,
    NameHeader, VERSION,
};
use crate::format::{I64, U16, U32, U64, crc};

/// What identifies a directory and dates its entries: an entry is used only while all of
/// it is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirKey {
    /// Mount id.
    pub mnt_id: u64,
    /// Device, major << 32 | minor.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// ctime (seconds, nanoseconds).
    pub ctime: (i64, u32),
    /// mtime (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// Size of the directory.
    pub size: u64,
}

/// One directory's entries, as `reconstruct` classifies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirListing {
    /// UIDs of the message files, ascending.
    pub messages: Vec<u32>,
    /// Sub-mailbox directories, ascending.
    pub subdirs: Vec<String>,
    /// Temporary files, ascending.
    pub temps: Vec<String>,
    /// Other entries, ascending.
    pub strays: Vec<String>,
    /// `HAS_*` bits of [`crate::format::listings`].
    pub flags: u32,
}

/// A whole cache file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listings {
    /// Boot id of the system that wrote it.
    pub boot_id: [u8; 16],
    /// Time written, seconds since the epoch.
    pub written: i64,
    /// Directories.
    pub entries: Vec<(DirKey, DirListing)>,
}

impl DirListing {
    /// Whether it can be encoded: sorted lists, names of 1 to 4096 bytes, known flags.
    pub fn encodable(&self) -> bool {
        let names_ok = |v: &[String]| {
            v.iter().all(|n| (1..=MAX_NAME_LEN).contains(&n.len())) && v.windows(2).all(|w| w[0] <= w[1])
        };
        self.messages.first() != Some(&0)
            && self.messages.windows(2).all(|w| w[0] < w[1])
            && names_ok(&self.subdirs)
            && names_ok(&self.temps)
            && names_ok(&self.strays)
            && self.flags & !0xf == 0
    }
}

/// Encode a whole file. Entries that are not [`DirListing::encodable`] are left out.
pub fn encode(l: &Listings) -> Vec<u8> {
    let mut body = Vec::new();
    let mut count = 0u32;
    for (k, d) in l.entries.iter().filter(|(_, d)| d.encodable()) {
        let lists = [(KIND_SUBDIR, &d.subdirs), (KIND_TEMP, &d.temps), (KIND_STRAY, &d.strays)];
        let names: usize = lists.iter().map(|(_, v)| v.len()).sum();
        let names_len: usize = lists.iter().flat_map(|(_, v)| v.iter()).map(|n| 3 + n.len()).sum();
        let e = ListingEntry {
            mnt_id: U64::new(k.mnt_id),
            dev: U64::new(k.dev),
            ino: U64::new(k.ino),
            ctime_sec: I64::new(k.ctime.0),
            mtime_sec: I64::new(k.mtime.0),
            ctime_nsec: U32::new(k.ctime.1),
            mtime_nsec: U32::new(k.mtime.1),
            size: U64::new(k.size),
            flags: U32::new(d.flags),
            message_count: U32::new(d.messages.len() as u32),
            name_count: U32::new(names as u32),
            names_len: U32::new(names_len as u32),
            reserved: [0; 8],
        };
        body.extend_from_slice(e.as_bytes());
        for uid in &d.messages {
            body.extend_from_slice(&uid.to_le_bytes());
        }
        for (kind, v) in lists {
            for n in v {
                body.extend_from_slice(NameHeader { kind, len: U16::new(n.len() as u16) }.as_bytes());
                body.extend_from_slice(n.as_bytes());
            }
        }
        count += 1;
    }
    let total_len = HEADER_LEN + body.len() + 4;
    let mut h = ListingsHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        entry_count: U32::new(count),
        boot_id: l.boot_id,
        written: I64::new(l.written),
        total_len: U64::new(total_len as u64),
        reserved: [0; 12],
        header_crc: U32::new(0),
    };
    h.header_crc = U32::new(crc(&h.as_bytes()[..60]));
    let mut out = Vec::with_capacity(total_len);
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&body);
    let c = crc(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// Decode a whole file; any damage is an error (the caller then ignores the cache).
pub fn decode(bytes: &[u8]) -> Result<Listings, FormatError> {
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let h: &ListingsHeader = read_at(bytes, 0, "listings header")?;
    check_crc(&bytes[..60], h.header_crc.get(), 0, "listings header")?;
    if h.header_len.get() as usize != HEADER_LEN {
        return Err(FormatError::invalid(10, format!("header_len {}, expected {HEADER_LEN}", h.header_len.get())));
    }
    if h.total_len.get() != bytes.len() as u64 {
        return Err(FormatError::invalid(
            40,
            format!("total_len says {} bytes, file has {}", h.total_len.get(), bytes.len()),
        ));
    }
    let end = bytes.len().checked_sub(4).filter(|&e| e >= HEADER_LEN).ok_or(FormatError::Truncated {
        offset: HEADER_LEN as u64,
        need: 4,
        have: bytes.len().saturating_sub(HEADER_LEN) as u64,
        what: "listings checksum",
    })?;
    check_crc(&bytes[..end], read_u32(bytes, end, "listings checksum")?, 0, "listings file")?;
    let body = &bytes[..end];

    let count = h.entry_count.get() as usize;
    // Every entry takes at least ENTRY_LEN bytes: cap the capacity by what is present.
    let mut entries = Vec::with_capacity(count.min((end - HEADER_LEN) / ENTRY_LEN));
    let mut pos = HEADER_LEN;
    for _ in 0..count {
        let (key, d, next) = entry_at(body, pos)?;
        entries.push((key, d));
        pos = next;
    }
    if pos != end {
        return Err(FormatError::invalid(pos as u64, format!("{} unexpected bytes after the last entry", end - pos)));
    }
    if h.reserved != [0; 12] {
        return Err(FormatError::invalid(48, "reserved bytes of the header are not zero"));
    }
    Ok(Listings { boot_id: h.boot_id, written: h.written.get(), entries })
}

/// The entry at `pos` of the checked body, and where the next one starts.
fn entry_at(body: &[u8], mut pos: usize) -> Result<(DirKey, DirListing, usize), FormatError> {
    let start = pos;
    let e: &ListingEntry = read_at(body, pos, "listing entry")?;
    pos += ENTRY_LEN;
    if e.reserved != [0; 8] {
        return Err(FormatError::invalid(start as u64 + 72, "reserved bytes of a listing entry are not zero"));
    }
    let flags = e.flags.get();
    if flags & !0xf != 0 {
        return Err(FormatError::invalid(start as u64 + 56, format!("unknown listing flags {flags:#x}")));
    }
    let n = e.message_count.get() as usize;
    let uids = slice(body, pos, n.saturating_mul(4), "message UIDs")?;
    let mut messages = Vec::with_capacity(n);
    for (i, c) in uids.chunks_exact(4).enumerate() {
        let uid = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if uid <= messages.last().copied().unwrap_or(0) {
            return Err(FormatError::invalid((pos + 4 * i) as u64, "message UIDs not strictly ascending"));
        }
        messages.push(uid);
    }
    pos += uids.len();
    let names_len = e.names_len.get() as usize;
    let names_end = pos.checked_add(names_len).filter(|&x| x <= body.len()).ok_or(FormatError::Truncated {
        offset: pos as u64,
        need: names_len as u64,
        have: body.len().saturating_sub(pos) as u64,
        what: "listing names",
    })?;
    let mut d = DirListing { messages, flags, ..DirListing::default() };
    let mut last_kind = KIND_SUBDIR;
    for _ in 0..e.name_count.get() {
        let nh: &NameHeader = read_at(&body[..names_end], pos, "listing name")?;
        let len = nh.len.get() as usize;
        if nh.kind > KIND_STRAY || nh.kind < last_kind {
            return Err(FormatError::invalid(pos as u64, format!("name kind {} out of order", nh.kind)));
        }
        if len == 0 || len > MAX_NAME_LEN {
            return Err(FormatError::invalid(pos as u64 + 1, format!("name of {len} bytes")));
        }
        let raw = slice(&body[..names_end], pos + 3, len, "listing name")?;
        let name = std::str::from_utf8(raw)
            .map_err(|_| FormatError::invalid(pos as u64 + 3, "listing name is not UTF-8"))?
            .to_string();
        let list = match nh.kind {
            KIND_SUBDIR => &mut d.subdirs,
            KIND_TEMP => &mut d.temps,
            _ => &mut d.strays,
        };
        if list.last().is_some_and(|l| *l > name) {
            return Err(FormatError::invalid(pos as u64, "listing names not in ascending order"));
        }
        list.push(name);
        last_kind = nh.kind;
        pos += 3 + len;
    }
    if pos != names_end {
        return Err(FormatError::invalid(
            pos as u64,
            format!("names_len says {names_len} bytes, names take {}", pos + names_len - names_end),
        ));
    }
    let key = DirKey {
        mnt_id: e.mnt_id.get(),
        dev: e.dev.get(),
        ino: e.ino.get(),
        ctime: (e.ctime_sec.get(), e.ctime_nsec.get()),
        mtime: (e.mtime_sec.get(), e.mtime_nsec.get()),
        size: e.size.get(),
    };
    Ok((key, d, pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::mutate_all;

    pub(crate) fn sample() -> Listings {
        let key = |i: u64| DirKey {
            mnt_id: 31,
            dev: (259 << 32) | 1,
            ino: 1000 + i,
            ctime: (1_700_000_000 + i as i64, 123_456_789),
            mtime: (1_700_000_000 + i as i64, 123_456_789),
            size: 4096,
        };
        Listings {
            boot_id: *b"0123456789abcdef",
            written: 1_700_000_100,
            entries: vec![
                (
                    key(1),
                    DirListing {
                        messages: vec![1, 2, 5, 4_000_000_000],
                        subdirs: vec!["Sent".into(), "Work &AOk-t&AOk-".into()],
                        temps: vec!["ms.tmp.index.1".into()],
                        strays: vec!["notes.txt".into()],
                        flags: 0xf,
                    },
                ),
                (key(2), DirListing::default()),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let l = sample();
        let b = encode(&l);
        assert_eq!(decode(&b), Ok(l));
    }

    #[test]
    fn entries_that_cannot_be_encoded_are_left_out() {
        let mut l = sample();
        l.entries[0].1.messages = vec![3, 2];
        let back = decode(&encode(&l)).expect("decode");
        assert_eq!(back.entries.len(), 1);
        assert_eq!(back.entries[0], l.entries[1]);
    }

    #[test]
    fn every_cut_and_bit_flip_is_an_error() {
        let b = encode(&sample());
        assert_eq!(mutate_all(&b, decode), 0);
    }

    #[test]
    fn errors_name_the_offset() {
        let mut b = encode(&sample());
        let e = decode(&b[..30]).expect_err("truncated");
        assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
        b[100] ^= 1;
        let e = decode(&b).expect_err("flipped");
        assert!(matches!(e, FormatError::Checksum { offset: 0, .. }), "{e}");
        let mut v = encode(&sample());
        v[8] = 9;
        assert!(matches!(decode(&v), Err(FormatError::UnsupportedVersion { version: 9, .. })));
    }
}
