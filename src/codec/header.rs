//! `ms.header`: parse and encode (layout in [`crate::format::header`], spec in
//! `formats/header.md`).

use zerocopy::IntoBytes;

use super::changelog::LogCoverage;
use super::{FormatError, check_crc, check_magic_versions, read_at, read_u32, slice};
use crate::format::header::{
    FIXED_LEN, HeaderFixed, HeaderFixedV1, MAGIC, MAX_FILE_LEN, MAX_USER_FLAGS, OLDEST_VERSION, VERSION,
};
use crate::format::{I64, U16, U32, U64, crc};

/// The contents of a mailbox header file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxHeader {
    /// Unique id of the mailbox.
    pub unique_id: [u8; 16],
    /// IMAP UIDVALIDITY.
    pub uid_validity: u32,
    /// Highest UID assigned when written.
    pub last_uid: u32,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// The domain.
    pub domain: String,
    /// The mailbox name (modified UTF-7).
    pub name: String,
    /// User flag names by slot; `None` is a free slot. At most 128 slots.
    pub flags: Vec<Option<String>>,
    /// How much of `ms.log` this file saw when written (nothing in version 1 files).
    pub log: LogCoverage,
    /// No modseq above this has been given in this UID validity (0: not recorded).
    pub modseq_ceiling: u64,
}

/// The checksummed fixed part alone: what survives when the names are damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFixedInfo {
    /// Unique id of the mailbox.
    pub unique_id: [u8; 16],
    /// IMAP UIDVALIDITY.
    pub uid_validity: u32,
    /// Highest UID assigned when written.
    pub last_uid: u32,
    /// Creation time.
    pub created: i64,
    /// How much of `ms.log` the file saw when written.
    pub log: LogCoverage,
    /// No modseq above this has been given (0: not recorded).
    pub modseq_ceiling: u64,
}

impl MailboxHeader {
    /// Whether two headers name the same mailbox with the same UID validity, creation
    /// time and flag names (what reconstruct keeps; not what the file saw of the log).
    pub fn same_identity(&self, other: &MailboxHeader) -> bool {
        (self.unique_id, self.uid_validity, self.last_uid, self.created, &self.domain, &self.name, &self.flags)
            == (
                other.unique_id,
                other.uid_validity,
                other.last_uid,
                other.created,
                &other.domain,
                &other.name,
                &other.flags,
            )
    }

    /// The fixed part's information.
    pub fn fixed_info(&self) -> HeaderFixedInfo {
        HeaderFixedInfo {
            unique_id: self.unique_id,
            uid_validity: self.uid_validity,
            last_uid: self.last_uid,
            created: self.created,
            log: self.log,
            modseq_ceiling: self.modseq_ceiling,
        }
    }

    /// The slot of user flag `name` (case-insensitive, as IMAP keywords are).
    pub fn flag_slot(&self, name: &str) -> Option<usize> {
        self.flags.iter().position(|f| f.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(name)))
    }

    /// The name in slot `i`.
    pub fn flag_name(&self, i: usize) -> Option<&str> {
        self.flags.get(i).and_then(|f| f.as_deref())
    }

    /// Encode as a complete file.
    pub fn encode(&self) -> Vec<u8> {
        let slots = self.flags.len().min(MAX_USER_FLAGS);
        let domain = clip(self.domain.as_bytes(), u16::MAX as usize);
        let name = clip(self.name.as_bytes(), u16::MAX as usize);
        let mut var = Vec::new();
        var.extend_from_slice(domain);
        var.extend_from_slice(name);
        for f in &self.flags[..slots] {
            let f = clip(f.as_deref().unwrap_or("").as_bytes(), 255);
            var.push(f.len() as u8);
            var.extend_from_slice(f);
        }
        let total_len = FIXED_LEN + var.len() + 4;
        let mut fixed = HeaderFixed {
            magic: MAGIC,
            version: U16::new(VERSION),
            fixed_len: U16::new(FIXED_LEN as u16),
            total_len: U32::new(total_len as u32),
            unique_id: self.unique_id,
            uid_validity: U32::new(self.uid_validity),
            last_uid: U32::new(self.last_uid),
            created: I64::new(self.created),
            domain_len: U16::new(domain.len() as u16),
            name_len: U16::new(name.len() as u16),
            flag_slots: U16::new(slots as u16),
            reserved0: [0; 2],
            log_base: U64::new(self.log.base_seq),
            log_seq: U64::new(self.log.seq),
            log_len: U64::new(self.log.len),
            log_crc: U32::new(self.log.crc),
            reserved1: [0; 4],
            modseq_ceiling: U64::new(self.modseq_ceiling),
            reserved2: [0; 4],
            fixed_crc: U32::new(0),
        };
        fixed.fixed_crc = U32::new(crc(&fixed.as_bytes()[..FIXED_LEN - 4]));
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(fixed.as_bytes());
        out.extend_from_slice(&var);
        let c = crc(&out);
        out.extend_from_slice(&c.to_le_bytes());
        out
    }

    /// This header as a version 1 file (64-byte fixed part, no log coverage), as builds
    /// before version 2 wrote it: for tests that old stores keep opening.
    pub fn encode_v1(&self) -> Vec<u8> {
        let h = self;
        let v2 = h.encode();
        let var = &v2[FIXED_LEN..v2.len() - 4];
        let mut fixed = HeaderFixedV1 {
            magic: MAGIC,
            version: U16::new(1),
            fixed_len: U16::new(64),
            total_len: U32::new((64 + var.len() + 4) as u32),
            unique_id: h.unique_id,
            uid_validity: U32::new(h.uid_validity),
            last_uid: U32::new(h.last_uid),
            created: I64::new(h.created),
            domain_len: U16::new(h.domain.len() as u16),
            name_len: U16::new(h.name.len() as u16),
            flag_slots: U16::new(h.flags.len() as u16),
            reserved: [0; 6],
            fixed_crc: U32::new(0),
        };
        fixed.fixed_crc = U32::new(crc(&fixed.as_bytes()[..60]));
        let mut out = fixed.as_bytes().to_vec();
        out.extend_from_slice(var);
        let c = crc(&out);
        out.extend_from_slice(&c.to_le_bytes());
        out
    }

    /// Decode a complete file; any damage is an error.
    pub fn decode(bytes: &[u8]) -> Result<MailboxHeader, FormatError> {
        let (fixed, info) = decode_fixed_raw(bytes)?;
        let total = fixed.total_len as usize;
        if total != bytes.len() {
            return Err(FormatError::invalid(12, format!("total_len says {total} bytes, file has {}", bytes.len())));
        }
        let body = slice(bytes, 0, total - 4, "header body")?;
        let stored = read_u32(bytes, total - 4, "header checksum")?;
        check_crc(body, stored, 0, "header file")?;
        let mut pos = fixed.fixed_len;
        let domain = text(bytes, &mut pos, fixed.domain_len as usize, "domain")?;
        let name = text(bytes, &mut pos, fixed.name_len as usize, "mailbox name")?;
        let slots = fixed.flag_slots as usize;
        if slots > MAX_USER_FLAGS {
            return Err(FormatError::invalid(52, format!("{slots} user flag slots, at most {MAX_USER_FLAGS}")));
        }
        let mut flags = Vec::with_capacity(slots);
        for _ in 0..slots {
            let len = *slice(bytes, pos, 1, "flag name length")?.first().unwrap_or(&0) as usize;
            pos += 1;
            let f = text(bytes, &mut pos, len, "flag name")?;
            flags.push(if f.is_empty() { None } else { Some(f) });
        }
        if pos != total - 4 {
            return Err(FormatError::invalid(
                pos as u64,
                format!("{} unexpected bytes before the checksum", total - 4 - pos),
            ));
        }
        Ok(MailboxHeader {
            unique_id: info.unique_id,
            uid_validity: info.uid_validity,
            last_uid: info.last_uid,
            created: info.created,
            domain,
            name,
            flags,
            log: info.log,
            modseq_ceiling: info.modseq_ceiling,
        })
    }
}

/// Decode only the fixed part (checked by its own checksum).
pub fn decode_fixed(bytes: &[u8]) -> Result<HeaderFixedInfo, FormatError> {
    decode_fixed_raw(bytes).map(|(_, info)| info)
}

/// The fields of either version's fixed part that the rest of the file depends on.
struct FixedLens {
    fixed_len: usize,
    total_len: u32,
    domain_len: u16,
    name_len: u16,
    flag_slots: u16,
}

fn decode_fixed_raw(bytes: &[u8]) -> Result<(FixedLens, HeaderFixedInfo), FormatError> {
    let version = check_magic_versions(bytes, &MAGIC, OLDEST_VERSION, VERSION)?;
    let (lens, info) = if version == 1 {
        let fixed: &HeaderFixedV1 = read_at(bytes, 0, "header fixed part")?;
        check_crc(&fixed.as_bytes()[..60], fixed.fixed_crc.get(), 0, "header fixed part")?;
        if fixed.fixed_len.get() != 64 {
            return Err(FormatError::invalid(10, format!("fixed_len {} (expected 64)", fixed.fixed_len.get())));
        }
        let lens = FixedLens {
            fixed_len: 64,
            total_len: fixed.total_len.get(),
            domain_len: fixed.domain_len.get(),
            name_len: fixed.name_len.get(),
            flag_slots: fixed.flag_slots.get(),
        };
        let info = HeaderFixedInfo {
            unique_id: fixed.unique_id,
            uid_validity: fixed.uid_validity.get(),
            last_uid: fixed.last_uid.get(),
            created: fixed.created.get(),
            log: LogCoverage::default(),
            modseq_ceiling: 0,
        };
        (lens, info)
    } else {
        let fixed: &HeaderFixed = read_at(bytes, 0, "header fixed part")?;
        check_crc(&fixed.as_bytes()[..FIXED_LEN - 4], fixed.fixed_crc.get(), 0, "header fixed part")?;
        if fixed.fixed_len.get() as usize != FIXED_LEN {
            return Err(FormatError::invalid(
                10,
                format!("fixed_len {} (expected {FIXED_LEN})", fixed.fixed_len.get()),
            ));
        }
        let lens = FixedLens {
            fixed_len: FIXED_LEN,
            total_len: fixed.total_len.get(),
            domain_len: fixed.domain_len.get(),
            name_len: fixed.name_len.get(),
            flag_slots: fixed.flag_slots.get(),
        };
        let info = HeaderFixedInfo {
            unique_id: fixed.unique_id,
            uid_validity: fixed.uid_validity.get(),
            last_uid: fixed.last_uid.get(),
            created: fixed.created.get(),
            log: LogCoverage {
                base_seq: fixed.log_base.get(),
                seq: fixed.log_seq.get(),
                len: fixed.log_len.get(),
                crc: fixed.log_crc.get(),
            },
            modseq_ceiling: fixed.modseq_ceiling.get(),
        };
        (lens, info)
    };
    let min = lens.fixed_len as u32 + 4;
    if !(min..=MAX_FILE_LEN).contains(&lens.total_len) {
        return Err(FormatError::invalid(12, format!("total_len {} out of range", lens.total_len)));
    }
    Ok((lens, info))
}

fn text(bytes: &[u8], pos: &mut usize, len: usize, what: &'static str) -> Result<String, FormatError> {
    let s = slice(bytes, *pos, len, what)?;
    let out = std::str::from_utf8(s)
        .map_err(|_| FormatError::invalid(*pos as u64, format!("{what} is not UTF-8")))?
        .to_string();
    *pos += len;
    Ok(out)
}

fn clip(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::mutate_all;

    fn sample() -> MailboxHeader {
        MailboxHeader {
            unique_id: *b"0123456789abcdef",
            uid_validity: 1_700_000_000,
            last_uid: 42,
            created: 1_700_000_000,
            domain: "example.com".into(),
            name: "user/joe/Entw&APw-rfe".into(),
            flags: vec![Some("$Important".into()), None, Some("Junk".into())],
            log: LogCoverage { base_seq: 7, seq: 9, len: 4000, crc: 0xfeed_f00d },
            modseq_ceiling: 2048,
        }
    }

    #[test]
    fn version_1_files_still_open() {
        let h = sample();
        let v1 = h.encode_v1();
        let want = MailboxHeader { log: LogCoverage::default(), modseq_ceiling: 0, ..h };
        assert_eq!(MailboxHeader::decode(&v1), Ok(want.clone()));
        assert_eq!(decode_fixed(&v1).expect("fixed").last_uid, 42);
        assert_eq!(mutate_all(&v1, MailboxHeader::decode), 0);
        // Written again, it is version 2.
        assert_eq!(&want.encode()[8..10], &2u16.to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(&bytes[..8], b"MSHEADER");
        assert_eq!(MailboxHeader::decode(&bytes), Ok(h.clone()));
        assert_eq!(h.flag_slot("junk"), Some(2));
        assert_eq!(h.flag_name(1), None);
    }

    #[test]
    fn every_flip_and_cut_is_an_error() {
        let bytes = sample().encode();
        assert_eq!(mutate_all(&bytes, MailboxHeader::decode), 0);
    }

    #[test]
    fn fixed_part_survives_damage_to_names() {
        let mut bytes = sample().encode();
        let n = bytes.len();
        bytes[n - 8] ^= 0x40;
        assert!(matches!(MailboxHeader::decode(&bytes), Err(FormatError::Checksum { .. })));
        assert_eq!(decode_fixed(&bytes).expect("fixed part intact").last_uid, 42);
    }

    #[test]
    fn errors_name_offsets() {
        let mut bytes = sample().encode();
        bytes[8] = 9;
        assert_eq!(MailboxHeader::decode(&bytes), Err(FormatError::UnsupportedVersion { version: 9, supported: 2 }));
        let err = MailboxHeader::decode(b"garbage").expect_err("garbage");
        assert!(matches!(err, FormatError::Truncated { offset: 0, .. }), "{err:?}");
        let err = MailboxHeader::decode(b"MSINDEX\0\x01\0aaaaaaaaaa").expect_err("wrong magic");
        assert!(matches!(err, FormatError::BadMagic { .. }), "{err:?}");
    }
}
