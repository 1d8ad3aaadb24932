//! `ms.cache`: parse and encode (layout in [`crate::format::cache`], spec in
//! `formats/cache.md`). Decoding borrows every string from the file's bytes.

use zerocopy::IntoBytes;

use super::{FormatError, check_crc, check_magic_version, read_at, read_u32, slice};
use crate::format::cache::{
    ABSENT, CacheHeader, HEADER_LEN, MAGIC, MAX_RECORD_LEN, PART_HAS_ENVELOPE, PartFixed, RecordHead, VERSION,
};
use crate::format::{U16, U32, U64, crc};

/// Number of envelope fields, in RFC 3501 ENVELOPE order: Date, Subject, From, Sender,
/// Reply-To, To, Cc, Bcc, In-Reply-To, Message-ID, plus References.
pub const ENVELOPE_FIELDS: usize = 11;
/// Names of the envelope fields, in stored order.
pub const ENVELOPE_NAMES: [&str; ENVELOPE_FIELDS] =
    ["Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To", "Message-ID", "References"];

/// Parameters of a part: (name, value) pairs borrowed from the file.
pub type Params<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Unfolded raw values of the envelope fields; `None` when the header is absent.
pub type Envelope<'a> = [Option<&'a [u8]>; ENVELOPE_FIELDS];

/// One MIME part as cached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachePart<'a> {
    /// Index of the parent part (`None` for part 0).
    pub parent: Option<u32>,
    /// Depth, 0 for the whole message.
    pub depth: u16,
    /// Offset of the part's header in the message.
    pub header_offset: u64,
    /// Length of the part's header.
    pub header_len: u64,
    /// Offset of the body.
    pub body_offset: u64,
    /// Length of the body.
    pub body_len: u64,
    /// Lines in the body.
    pub body_lines: u64,
    /// Media type (lower case), e.g. `text`.
    pub media_type: &'a [u8],
    /// Media subtype (lower case), e.g. `plain`.
    pub media_subtype: &'a [u8],
    /// Content-Type parameters.
    pub params: Params<'a>,
    /// Content-ID.
    pub id: Option<&'a [u8]>,
    /// Content-Description.
    pub description: Option<&'a [u8]>,
    /// Content-Transfer-Encoding.
    pub encoding: Option<&'a [u8]>,
    /// Content-Disposition value.
    pub disposition: Option<&'a [u8]>,
    /// Content-Disposition parameters.
    pub disposition_params: Params<'a>,
    /// Content-Language.
    pub language: Option<&'a [u8]>,
    /// Content-Location.
    pub location: Option<&'a [u8]>,
    /// Content-MD5.
    pub md5: Option<&'a [u8]>,
    /// Envelope of an encapsulated message (the child of a message/rfc822 part).
    pub envelope: Option<Envelope<'a>>,
}

/// One message's cache record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheEntry<'a> {
    /// UID.
    pub uid: u32,
    /// The message's envelope.
    pub envelope: Envelope<'a>,
    /// MIME parts in pre-order; part 0 is the whole message.
    pub parts: Vec<CachePart<'a>>,
}

/// Encode the cache file header.
pub fn encode_header(unique_id: &[u8; 16], generation: u64) -> Vec<u8> {
    let mut h = CacheHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        reserved0: U32::new(0),
        unique_id: *unique_id,
        generation: U64::new(generation),
        reserved1: [0; 20],
        crc: U32::new(0),
    };
    h.crc = U32::new(crc(&h.as_bytes()[..HEADER_LEN - 4]));
    h.as_bytes().to_vec()
}

/// Decode the cache file header: `(unique_id, generation)`.
pub fn decode_header(bytes: &[u8]) -> Result<([u8; 16], u64), FormatError> {
    check_magic_version(bytes, &MAGIC, VERSION)?;
    let h: &CacheHeader = read_at(bytes, 0, "cache header")?;
    check_crc(&h.as_bytes()[..HEADER_LEN - 4], h.crc.get(), 0, "cache header")?;
    Ok((h.unique_id, h.generation.get()))
}

fn put_str(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        Some(s) => {
            let s = &s[..s.len().min((MAX_RECORD_LEN / 4) as usize)];
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
}

fn put_params(out: &mut Vec<u8>, params: &[(&[u8], &[u8])]) {
    let n = params.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    for (k, v) in &params[..n] {
        put_str(out, Some(k));
        put_str(out, Some(v));
    }
}

/// Append the encoding of `entry` to `out`; returns the record's length. Oversized
/// records are cut to the parts that fit in [`MAX_RECORD_LEN`].
pub fn encode(entry: &CacheEntry<'_>, out: &mut Vec<u8>) -> u32 {
    let start = out.len();
    let parts = entry.parts.len().min(u16::MAX as usize);
    out.extend_from_slice(
        RecordHead { len: U32::new(0), uid: U32::new(entry.uid), part_count: U16::new(0), reserved: U16::new(0) }
            .as_bytes(),
    );
    for f in &entry.envelope {
        put_str(out, *f);
    }
    let mut written = 0u16;
    for p in &entry.parts[..parts] {
        let before = out.len();
        let fixed = PartFixed {
            parent: U32::new(p.parent.unwrap_or(u32::MAX)),
            depth: U16::new(p.depth),
            flags: U16::new(if p.envelope.is_some() { PART_HAS_ENVELOPE } else { 0 }),
            header_offset: U64::new(p.header_offset),
            header_len: U64::new(p.header_len),
            body_offset: U64::new(p.body_offset),
            body_len: U64::new(p.body_len),
            body_lines: U64::new(p.body_lines),
        };
        out.extend_from_slice(fixed.as_bytes());
        put_str(out, Some(p.media_type));
        put_str(out, Some(p.media_subtype));
        put_params(out, &p.params);
        for s in [p.id, p.description, p.encoding, p.disposition] {
            put_str(out, s);
        }
        put_params(out, &p.disposition_params);
        for s in [p.language, p.location, p.md5] {
            put_str(out, s);
        }
        if let Some(env) = &p.envelope {
            for f in env {
                put_str(out, *f);
            }
        }
        if out.len() - start + 4 > MAX_RECORD_LEN as usize {
            out.truncate(before);
            break;
        }
        written += 1;
    }
    let len = (out.len() - start + 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 10].copy_from_slice(&written.to_le_bytes());
    let c = crc(&out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
    len
}

struct Reader<'a> {
    rec: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn str(&mut self) -> Result<Option<&'a [u8]>, FormatError> {
        let len = read_u32(self.rec, self.pos, "cache string length").map_err(|e| self.rebase(e))?;
        self.pos += 4;
        if len == ABSENT {
            return Ok(None);
        }
        let s = slice(self.rec, self.pos, len as usize, "cache string").map_err(|e| self.rebase(e))?;
        self.pos += len as usize;
        Ok(Some(s))
    }
    fn params(&mut self) -> Result<Params<'a>, FormatError> {
        let n = slice(self.rec, self.pos, 2, "parameter count").map_err(|e| self.rebase(e))?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        self.pos += 2;
        // Each parameter takes at least 8 bytes: cap the allocation by what is left.
        let mut v = Vec::with_capacity(n.min((self.rec.len() - self.pos) / 8));
        for _ in 0..n {
            let k = self.str()?.unwrap_or_default();
            let val = self.str()?.unwrap_or_default();
            v.push((k, val));
        }
        Ok(v)
    }
    fn envelope(&mut self) -> Result<Envelope<'a>, FormatError> {
        let mut e: Envelope<'a> = [None; ENVELOPE_FIELDS];
        for f in &mut e {
            *f = self.str()?;
        }
        Ok(e)
    }
    fn rebase(&self, e: FormatError) -> FormatError {
        match e {
            FormatError::Truncated { offset, need, have, what } => {
                FormatError::Truncated { offset: offset + self.base as u64, need, have, what }
            }
            other => other,
        }
    }
}

/// Decode the record at `offset` of a cache file (`len` from the index, if known, must
/// match the record's own length).
pub fn decode(bytes: &[u8], offset: usize, expect_len: Option<u32>) -> Result<CacheEntry<'_>, FormatError> {
    let head: &RecordHead = read_at(bytes, offset, "cache record head")?;
    let len = head.len.get();
    if len < 16 + 4 * ENVELOPE_FIELDS as u32 || len > MAX_RECORD_LEN {
        return Err(FormatError::invalid(offset as u64, format!("cache record length {len} out of range")));
    }
    if expect_len.is_some_and(|e| e != len) {
        return Err(FormatError::invalid(
            offset as u64,
            format!("cache record length {len}, index says {expect_len:?}"),
        ));
    }
    let rec = slice(bytes, offset, len as usize, "cache record")?;
    let n = rec.len();
    let stored = u32::from_le_bytes([rec[n - 4], rec[n - 3], rec[n - 2], rec[n - 1]]);
    check_crc(&rec[..n - 4], stored, offset, "cache record")?;
    let body = &rec[..n - 4];
    let mut r = Reader { rec: body, pos: std::mem::size_of::<RecordHead>(), base: offset };
    let envelope = r.envelope()?;
    let count = head.part_count.get() as usize;
    let fixed_len = std::mem::size_of::<PartFixed>();
    let mut parts = Vec::with_capacity(count.min(body.len() / fixed_len));
    for i in 0..count {
        let f: &PartFixed = read_at(body, r.pos, "cache part").map_err(|e| r.rebase(e))?;
        r.pos += fixed_len;
        let parent = match f.parent.get() {
            u32::MAX => None,
            p if (p as usize) < i => Some(p),
            p => return Err(FormatError::invalid((offset + r.pos) as u64, format!("part {i} has parent {p}"))),
        };
        let mut p = CachePart {
            parent,
            depth: f.depth.get(),
            header_offset: f.header_offset.get(),
            header_len: f.header_len.get(),
            body_offset: f.body_offset.get(),
            body_len: f.body_len.get(),
            body_lines: f.body_lines.get(),
            media_type: r.str()?.unwrap_or_default(),
            media_subtype: r.str()?.unwrap_or_default(),
            params: r.params()?,
            ..CachePart::default()
        };
        p.id = r.str()?;
        p.description = r.str()?;
        p.encoding = r.str()?;
        p.disposition = r.str()?;
        p.disposition_params = r.params()?;
        p.language = r.str()?;
        p.location = r.str()?;
        p.md5 = r.str()?;
        if f.flags.get() & PART_HAS_ENVELOPE != 0 {
            p.envelope = Some(r.envelope()?);
        }
        parts.push(p);
    }
    if r.pos != body.len() {
        return Err(FormatError::invalid((offset + r.pos) as u64, "unexpected bytes at the end of a cache record"));
    }
    Ok(CacheEntry { uid: head.uid.get(), envelope, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CacheEntry<'static> {
        let mut env: Envelope<'static> = [None; ENVELOPE_FIELDS];
        env[0] = Some(b"Mon, 1 Jan 2024 10:00:00 +0000");
        env[1] = Some(b"");
        env[2] = Some(b"Joe <joe@example.com>");
        let mut inner = env;
        inner[1] = Some(b"forwarded");
        CacheEntry {
            uid: 7,
            envelope: env,
            parts: vec![
                CachePart {
                    media_type: b"multipart",
                    media_subtype: b"mixed",
                    params: vec![(b"boundary", b"XyZ")],
                    header_len: 100,
                    body_offset: 101,
                    body_len: 900,
                    body_lines: 30,
                    ..CachePart::default()
                },
                CachePart {
                    parent: Some(0),
                    depth: 1,
                    media_type: b"text",
                    media_subtype: b"plain",
                    params: vec![(b"charset", b"utf-8")],
                    encoding: Some(b"quoted-printable"),
                    disposition: Some(b"inline"),
                    disposition_params: vec![(b"filename", b"a b.txt")],
                    ..CachePart::default()
                },
                CachePart {
                    parent: Some(0),
                    depth: 1,
                    media_type: b"message",
                    media_subtype: b"rfc822",
                    ..CachePart::default()
                },
                CachePart {
                    parent: Some(2),
                    depth: 2,
                    media_type: b"text",
                    media_subtype: b"plain",
                    envelope: Some(inner),
                    md5: Some(b"Q2hlY2sgSW50ZWdyaXR5IQ=="),
                    ..CachePart::default()
                },
            ],
        }
    }

    #[test]
    fn round_trip_at_an_offset() {
        let mut b = encode_header(&[3; 16], 9);
        let off = b.len();
        let len = encode(&sample(), &mut b);
        assert_eq!(len as usize, b.len() - off);
        assert_eq!(decode_header(&b), Ok(([3; 16], 9)));
        assert_eq!(decode(&b, off, Some(len)), Ok(sample()));
    }

    #[test]
    fn every_flip_and_cut_is_caught() {
        let mut b = Vec::new();
        encode(&sample(), &mut b);
        assert_eq!(crate::codec::testutil::mutate_all(&b, |x| decode(x, 0, None).map(|e| e.uid)), 0);
    }

    #[test]
    fn wrong_length_from_index_is_an_error() {
        let mut b = Vec::new();
        let len = encode(&sample(), &mut b);
        assert!(decode(&b, 0, Some(len + 1)).is_err());
    }
}
