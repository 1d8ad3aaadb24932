//! `ms.header`: parse and encode (layout in [`crate::format::header`], spec in
//! `formats/header.md`).

use zerocopy::IntoBytes;

use super::{FormatError, check_crc, check_magic_version, read_at, read_u32, slice};
use crate::format::header::{HeaderFixed, MAGIC, MAX_FILE_LEN, MAX_USER_FLAGS, VERSION};
use crate::format::{I64, U16, U32, crc};

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
}

impl MailboxHeader {
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
        let total_len = 64 + var.len() + 4;
        let mut fixed = HeaderFixed {
            magic: MAGIC,
            version: U16::new(VERSION),
            fixed_len: U16::new(64),
            total_len: U32::new(total_len as u32),
            unique_id: self.unique_id,
            uid_validity: U32::new(self.uid_validity),
            last_uid: U32::new(self.last_uid),
            created: I64::new(self.created),
            domain_len: U16::new(domain.len() as u16),
            name_len: U16::new(name.len() as u16),
            flag_slots: U16::new(slots as u16),
            reserved: [0; 6],
            fixed_crc: U32::new(0),
        };
        fixed.fixed_crc = U32::new(crc(&fixed.as_bytes()[..60]));
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(fixed.as_bytes());
        out.extend_from_slice(&var);
        let c = crc(&out);
        out.extend_from_slice(&c.to_le_bytes());
        out
    }

    /// Decode a complete file; any damage is an error.
    pub fn decode(bytes: &[u8]) -> Result<MailboxHeader, FormatError> {
        let (fixed, info) = decode_fixed_raw(bytes)?;
        let total = fixed.total_len.get() as usize;
        if total != bytes.len() {
            return Err(FormatError::invalid(12, format!("total_len says {total} bytes, file has {}", bytes.len())));
        }
        let body = slice(bytes, 0, total - 4, "header body")?;
        let stored = read_u32(bytes, total - 4, "header checksum")?;
        check_crc(body, stored, 0, "header file")?;
        let mut pos = 64usize;
        let domain = text(bytes, &mut pos, fixed.domain_len.get() as usize, "domain")?;
        let name = text(bytes, &mut pos, fixed.name_len.get() as usize, "mailbox name")?;
        let slots = fixed.flag_slots.get() as usize;
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
        })
    }
}

/// Decode only the fixed part (checked by its own checksum).
pub fn decode_fixed(bytes: &[u8]) -> Result<HeaderFixedInfo, FormatError> {
    decode_fixed_raw(bytes).map(|(_, info)| info)
}

fn decode_fixed_raw(bytes: &[u8]) -> Result<(&HeaderFixed, HeaderFixedInfo), FormatError> {
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let fixed: &HeaderFixed = read_at(bytes, 0, "header fixed part")?;
    check_crc(&fixed.as_bytes()[..60], fixed.fixed_crc.get(), 0, "header fixed part")?;
    if fixed.fixed_len.get() != 64 {
        return Err(FormatError::invalid(10, format!("fixed_len {} (expected 64)", fixed.fixed_len.get())));
    }
    let total = fixed.total_len.get();
    if !(68..=MAX_FILE_LEN).contains(&total) {
        return Err(FormatError::invalid(12, format!("total_len {total} out of range")));
    }
    Ok((
        fixed,
        HeaderFixedInfo {
            unique_id: fixed.unique_id,
            uid_validity: fixed.uid_validity.get(),
            last_uid: fixed.last_uid.get(),
            created: fixed.created.get(),
        },
    ))
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
        }
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
        assert_eq!(MailboxHeader::decode(&bytes), Err(FormatError::UnsupportedVersion { version: 9, supported: 1 }));
        let err = MailboxHeader::decode(b"garbage").expect_err("garbage");
        assert!(matches!(err, FormatError::Truncated { offset: 0, .. }), "{err:?}");
        let err = MailboxHeader::decode(b"MSINDEX\0\x01\0aaaaaaaaaa").expect_err("wrong magic");
        assert!(matches!(err, FormatError::BadMagic { .. }), "{err:?}");
    }
}
