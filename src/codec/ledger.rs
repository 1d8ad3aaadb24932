//! The loss ledger `ledger/<domain>`: parse and encode (layout in
//! [`crate::format::ledger`], spec in `formats/ledger.md`).

use zerocopy::{FromBytes, IntoBytes};

use super::{FormatError, check_crc, check_magic_version, read_at, slice};
use crate::codec::index::MessageRecord;
use crate::format::index::{IndexRecord, RECORD_LEN};
use crate::format::ledger::{
    ENTRY_HEAD_LEN, EntryHead, HEADER_LEN, LedgerHeader, MAGIC, MAX_ENTRY_LEN, MIN_ENTRY_LEN, RECORD_BODY_LEN, VERSION,
    kind,
};
use crate::format::{I64, U16, U32, crc};

/// What an entry says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A record a repair dropped.
    Lost,
    /// A mailbox recreated empty.
    Recreated,
    /// A loss resolved.
    Recovered,
    /// A loss accepted by an administrator.
    Acknowledged,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Lost => kind::LOST,
            Kind::Recreated => kind::RECREATED,
            Kind::Recovered => kind::RECOVERED,
            Kind::Acknowledged => kind::ACKNOWLEDGED,
        }
    }
    fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            kind::LOST => Kind::Lost,
            kind::RECREATED => Kind::Recreated,
            kind::RECOVERED => Kind::Recovered,
            kind::ACKNOWLEDGED => Kind::Acknowledged,
            _ => return None,
        })
    }
}

/// Why a record was dropped (`formats/ledger.md`, "Reasons").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Not a `LOST` entry.
    None,
    /// The message file is gone.
    Gone,
    /// The message file is empty.
    Empty,
    /// The file's bytes no longer match the record.
    ContentChanged,
    /// The file vanished during the run.
    Vanished,
}

impl Reason {
    fn code(self) -> u8 {
        use crate::format::ledger::reason as r;
        match self {
            Reason::None => 0,
            Reason::Gone => r::GONE,
            Reason::Empty => r::EMPTY,
            Reason::ContentChanged => r::CONTENT_CHANGED,
            Reason::Vanished => r::VANISHED,
        }
    }
    fn from_code(c: u8) -> Option<Reason> {
        use crate::format::ledger::reason as r;
        Some(match c {
            0 => Reason::None,
            r::GONE => Reason::Gone,
            r::EMPTY => Reason::Empty,
            r::CONTENT_CHANGED => Reason::ContentChanged,
            r::VANISHED => Reason::Vanished,
            _ => return None,
        })
    }
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "",
            Reason::Gone => "message file gone",
            Reason::Empty => "message file empty",
            Reason::ContentChanged => "message file no longer holds these bytes",
            Reason::Vanished => "message file vanished during reconstruct",
        }
    }
}

/// One ledger entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What happened.
    pub kind: Kind,
    /// Why (`LOST` only).
    pub reason: Reason,
    /// When, seconds since the epoch.
    pub when: i64,
    /// The mailbox's unique id.
    pub unique_id: [u8; 16],
    /// UID validity of the record.
    pub uid_validity: u32,
    /// `RECREATED`: the new UID validity; `RECOVERED`: where the message is now.
    pub new_uid_validity: u32,
    /// `RECOVERED`: its UID now; `RECREATED`: the last UID known before.
    pub new_uid: u32,
    /// The record (all zero for `RECREATED`).
    pub record: MessageRecord,
    /// Domain.
    pub domain: String,
    /// Mailbox name (modified UTF-7).
    pub mailbox: String,
    /// Names of the record's user flags, in slot order.
    pub flag_names: Vec<String>,
    /// Free text: where the bytes came from, or who accepted the loss.
    pub note: String,
}

/// What identifies the loss an entry is about: (unique id, UID validity, UID, BLAKE3).
pub type Key = ([u8; 16], u32, u32, [u8; 32]);

impl Entry {
    /// The key that later entries resolve.
    pub fn key(&self) -> Key {
        (self.unique_id, self.uid_validity, self.record.uid, self.record.content_hash)
    }
}

/// A new ledger file's header.
pub fn encode_header(created: i64) -> Vec<u8> {
    let mut h = LedgerHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        reserved0: U32::new(0),
        created: I64::new(created),
        reserved1: [0; 36],
        crc: U32::new(0),
    };
    h.crc = U32::new(crc(&h.as_bytes()[..HEADER_LEN - 4]));
    h.as_bytes().to_vec()
}

/// Check a ledger header; returns when the file was created.
pub fn decode_header(bytes: &[u8]) -> Result<i64, FormatError> {
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let h: &LedgerHeader = read_at(bytes, 0, "ledger header")?;
    check_crc(&h.as_bytes()[..HEADER_LEN - 4], h.crc.get(), 0, "ledger header")?;
    if h.header_len.get() as usize != HEADER_LEN {
        return Err(FormatError::invalid(10, format!("header_len {} (expected {HEADER_LEN})", h.header_len)));
    }
    Ok(h.created.get())
}

fn put_str16(out: &mut Vec<u8>, s: &str, max: usize) {
    let b = truncate_utf8(s, max);
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &[u8] {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// Append the encoding of `e` to `out`. Strings too long for the format are cut (domain
/// 255 bytes, mailbox 4096, note 8192, flag names 255); the flag names are the ones given,
/// at most 128, each at least one byte (an empty name is written as `$`).
pub fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    let start = out.len();
    let head = EntryHead {
        len: U32::new(0),
        kind: e.kind.code(),
        reason: if e.kind == Kind::Lost { e.reason.code() } else { 0 },
        reserved0: U16::new(0),
        when: I64::new(e.when),
        unique_id: e.unique_id,
        uid_validity: U32::new(e.uid_validity),
        new_uid_validity: U32::new(e.new_uid_validity),
        new_uid: U32::new(e.new_uid),
        reserved1: U32::new(0),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&e.record.to_raw().as_bytes()[..RECORD_BODY_LEN]);
    put_str16(out, &e.domain, 255);
    put_str16(out, &e.mailbox, 4096);
    let names = &e.flag_names[..e.flag_names.len().min(128)];
    out.push(names.len() as u8);
    for n in names {
        let b = truncate_utf8(n, 255);
        let b: &[u8] = if b.is_empty() { b"$" } else { b };
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    put_str16(out, &e.note, 8192);
    let len = (out.len() - start + 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let c = crc(&out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
}

/// A cursor over an entry's variable part.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let s = slice(self.bytes, self.pos, n, what).map_err(|e| match e {
            FormatError::Truncated { need, have, what, .. } => {
                FormatError::Truncated { offset: (self.base + self.pos) as u64, need, have, what }
            }
            other => other,
        })?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn text(&mut self, n: usize, what: &'static str) -> Result<String, FormatError> {
        let at = (self.base + self.pos) as u64;
        let b = self.take(n, what)?;
        std::str::from_utf8(b).map(str::to_string).map_err(|_| FormatError::invalid(at, format!("{what} is not UTF-8")))
    }
}

/// Decode the entry at `offset`: the entry and its length.
pub fn decode_entry(bytes: &[u8], offset: usize) -> Result<(Entry, usize), FormatError> {
    let head: &EntryHead = read_at(bytes, offset, "ledger entry head")?;
    let at = offset as u64;
    let Some(kind) = Kind::from_code(head.kind) else {
        return Err(FormatError::invalid(at, format!("entry kind {} (0 is zero-filled space)", head.kind)));
    };
    let len = head.len.get() as usize;
    if !(MIN_ENTRY_LEN..=MAX_ENTRY_LEN).contains(&len) {
        return Err(FormatError::invalid(at, format!("entry length {len} out of range")));
    }
    let raw = slice(bytes, offset, len, "ledger entry")?;
    let stored = u32::from_le_bytes([raw[len - 4], raw[len - 3], raw[len - 2], raw[len - 1]]);
    check_crc(&raw[..len - 4], stored, offset, "ledger entry")?;
    let reason = Reason::from_code(head.reason)
        .filter(|r| (kind == Kind::Lost) == (*r != Reason::None))
        .ok_or_else(|| FormatError::invalid(at + 5, format!("reason {} for a {kind:?} entry", head.reason)))?;
    let mut rec = [0u8; RECORD_LEN];
    rec[..RECORD_BODY_LEN].copy_from_slice(&raw[ENTRY_HEAD_LEN..ENTRY_HEAD_LEN + RECORD_BODY_LEN]);
    let record = IndexRecord::read_from_bytes(&rec[..])
        .map(|r| MessageRecord::from_raw(&r))
        .map_err(|_| FormatError::invalid(at + ENTRY_HEAD_LEN as u64, "record: layout error"))?;
    let mut c = Cursor { bytes: &raw[..len - 4], pos: ENTRY_HEAD_LEN + RECORD_BODY_LEN, base: offset };
    let n = c.u16("domain length")? as usize;
    let domain = c.text(n, "domain")?;
    let n = c.u16("mailbox length")? as usize;
    let mailbox = c.text(n, "mailbox name")?;
    let count = c.u8("flag name count")? as usize;
    if count > 128 {
        return Err(FormatError::invalid(at, format!("{count} flag names (at most 128)")));
    }
    let mut flag_names = Vec::with_capacity(count);
    for _ in 0..count {
        let n = c.u8("flag name length")? as usize;
        if n == 0 {
            return Err(FormatError::invalid((offset + c.pos) as u64, "empty flag name"));
        }
        flag_names.push(c.text(n, "flag name")?);
    }
    let n = c.u16("note length")? as usize;
    let note = c.text(n, "note")?;
    if c.pos != len - 4 {
        return Err(FormatError::invalid(
            (offset + c.pos) as u64,
            format!("{} bytes after the note, before the checksum", len - 4 - c.pos),
        ));
    }
    let e = Entry {
        kind,
        reason,
        when: head.when.get(),
        unique_id: head.unique_id,
        uid_validity: head.uid_validity.get(),
        new_uid_validity: head.new_uid_validity.get(),
        new_uid: head.new_uid.get(),
        record,
        domain,
        mailbox,
        flag_names,
        note,
    };
    Ok((e, len))
}

/// Everything readable in a ledger.
#[derive(Clone, Debug, Default)]
pub struct LedgerScan {
    /// When the file was created.
    pub created: i64,
    /// Valid entries in file order: (offset, entry).
    pub entries: Vec<(u64, Entry)>,
    /// Damage skipped over (a torn last entry included).
    pub skipped: Vec<FormatError>,
    /// Whether the damage is only a cut-short last entry (a crash during an append).
    pub torn_tail_only: bool,
}

/// Read a ledger: a bad header is an error; a damaged entry is skipped and the reader
/// resynchronises on the next offset where a whole entry verifies.
pub fn scan(bytes: &[u8]) -> Result<LedgerScan, FormatError> {
    let created = decode_header(bytes)?;
    let mut s = LedgerScan { created, ..LedgerScan::default() };
    let mut off = HEADER_LEN;
    let mut last_valid_after_damage = false;
    while off < bytes.len() {
        match decode_entry(bytes, off) {
            Ok((e, len)) => {
                s.entries.push((off as u64, e));
                if !s.skipped.is_empty() {
                    last_valid_after_damage = true;
                }
                off += len;
            }
            Err(e) => {
                s.skipped.push(e);
                match (off + 1..bytes.len()).find(|&o| plausible(bytes, o) && decode_entry(bytes, o).is_ok()) {
                    Some(next) => off = next,
                    None => break,
                }
            }
        }
    }
    s.torn_tail_only = s.skipped.len() == 1 && !last_valid_after_damage;
    Ok(s)
}

/// A cheap test before a full decode while resynchronising: a known kind and a length in
/// range that fits in the file.
fn plausible(bytes: &[u8], o: usize) -> bool {
    let Some(h) = bytes.get(o..o + 6) else { return false };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    Kind::from_code(h[4]).is_some() && (MIN_ENTRY_LEN..=MAX_ENTRY_LEN).contains(&len) && o + len <= bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::mutate_all;
    use crate::flags::{SystemFlags, UserFlags};

    pub(crate) fn sample() -> Vec<Entry> {
        let record = MessageRecord {
            uid: 7,
            system_flags: SystemFlags(SystemFlags::SEEN),
            user_flags: UserFlags(0b101),
            internal_date: 1_700_000_000,
            internal_offset: -300,
            size: 4321,
            modseq: 9,
            content_hash: [7; 32],
            prefix_hash: 0xfeed,
            ..MessageRecord::default()
        };
        let lost = Entry {
            kind: Kind::Lost,
            reason: Reason::Gone,
            when: 1_800_000_000,
            unique_id: [3; 16],
            uid_validity: 42,
            new_uid_validity: 0,
            new_uid: 0,
            record,
            domain: "example.com".into(),
            mailbox: "user/joe".into(),
            flag_names: vec!["$Work".into(), "Ünïcode".into()],
            note: String::new(),
        };
        let recreated = Entry {
            kind: Kind::Recreated,
            reason: Reason::None,
            new_uid_validity: 43,
            new_uid: 99,
            record: MessageRecord::default(),
            flag_names: vec![],
            ..lost.clone()
        };
        let recovered = Entry {
            kind: Kind::Recovered,
            reason: Reason::None,
            new_uid_validity: 42,
            new_uid: 7,
            note: "lost+found/#1234".into(),
            ..lost.clone()
        };
        vec![lost, recreated, recovered]
    }

    fn file() -> Vec<u8> {
        let mut b = encode_header(1_700_000_000);
        for e in sample() {
            encode_entry(&mut b, &e);
        }
        b
    }

    #[test]
    fn round_trip() {
        let s = scan(&file()).expect("scan");
        assert_eq!(s.created, 1_700_000_000);
        assert!(s.skipped.is_empty());
        let got: Vec<Entry> = s.entries.into_iter().map(|(_, e)| e).collect();
        assert_eq!(got, sample());
    }

    #[test]
    fn every_flip_is_caught_and_never_panics() {
        let b = file();
        // Any single flip leaves either an error (header) or fewer valid entries.
        let n = sample().len();
        let mut m = b.clone();
        for i in 0..m.len() {
            for bit in 0..8 {
                m[i] ^= 1 << bit;
                if let Ok(s) = scan(&m) {
                    assert!(s.entries.len() < n && !s.skipped.is_empty(), "flip at {i} bit {bit} accepted");
                }
                m[i] ^= 1 << bit;
            }
        }
        mutate_all(&b, |x| scan(x).map(|_| ()));
    }

    #[test]
    fn torn_tail_and_damage_in_the_middle() {
        let b = file();
        let s = scan(&b[..b.len() - 10]).expect("scan");
        assert_eq!(s.entries.len(), 2);
        assert!(s.torn_tail_only);
        let first_len = u32::from_le_bytes(b[HEADER_LEN..HEADER_LEN + 4].try_into().expect("4")) as usize;
        let mut m = b.clone();
        m[HEADER_LEN + 60] ^= 0x10;
        let s = scan(&m).expect("scan");
        assert_eq!(s.entries.len(), 2, "the two entries after the damage are read");
        assert_eq!(s.entries[0].0 as usize, HEADER_LEN + first_len);
        assert!(!s.torn_tail_only);
        assert_eq!(s.skipped[0].offset(), HEADER_LEN as u64);
    }

    #[test]
    fn zero_fill_is_never_an_entry() {
        let mut b = file();
        b.extend_from_slice(&[0; 600]);
        let s = scan(&b).expect("scan");
        assert_eq!(s.entries.len(), 3);
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let mut e = sample()[0].clone();
        e.note = "é".repeat(5000);
        e.flag_names = vec![String::new(), "x".repeat(300)];
        let mut b = encode_header(0);
        encode_entry(&mut b, &e);
        let s = scan(&b).expect("scan");
        let got = &s.entries[0].1;
        assert_eq!(got.note.len(), 8192);
        assert_eq!(got.flag_names, vec!["$".to_string(), "x".repeat(255)]);
    }
}
