//! Everything the store derives from a message file's bytes: header size, Date, the BLAKE3
//! content hash and the cache record (envelope and MIME structure). Used by append, by
//! reconstruct and by verify, so all three agree byte for byte.

use crate::codec::cache::{self, CacheEntry, CachePart, ENVELOPE_FIELDS, Envelope};
use crate::message::{self, DateTime};

/// What a message file tells about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// Bytes of the header block including the blank separator line (where the body starts).
    pub header_size: u32,
    /// The Date header, if it parses.
    pub sent_date: Option<DateTime>,
    /// The topmost Received header's date, if it parses.
    pub received_date: Option<DateTime>,
    /// BLAKE3 of the bytes.
    pub content_hash: [u8; 32],
    /// [`prefix_hash`] of the bytes.
    pub prefix_hash: u64,
    /// The encoded cache record (see `formats/cache.md`).
    pub cache_record: Vec<u8>,
    /// Size of the message in bytes.
    pub size: u64,
}

/// BLAKE3 of a message file's bytes (what a content check needs).
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Whether a message file's mtime stands for its internal date (the toolkit keeps the two
/// equal, and a file whose mtime changed is read again): equal, or the date lies more than
/// a day after `now`. Such a date is no delivery time, and it may be past what the file
/// system can store (ext4 stops at 2446, or 2038 with small inodes: the mtime is clamped),
/// so it is never compared with the mtime, and a repair cannot set it back forever.
pub fn mtime_matches(mtime: i64, internal_date: i64, now: i64) -> bool {
    mtime == internal_date || internal_date > now.saturating_add(86_400)
}

/// Bytes covered by [`prefix_hash`]: a message's first 512 bytes (one disk sector), or all
/// of a shorter message.
pub const PREFIX_LEN: usize = 512;

/// The prefix hash of a message (`formats/index.md`, "Prefix hash"): XXH3-64 (seed 0) of
/// its first `min(size, 512)` bytes, with 0 (which means "unknown" in a record) mapped to
/// one. Cheap enough to compute at every sector of a raw device, so carving can find where
/// a known message starts with one hash per sector; a candidate is confirmed by the
/// BLAKE3 of its whole size.
pub fn prefix_hash(bytes: &[u8]) -> u64 {
    let head = &bytes[..bytes.len().min(PREFIX_LEN)];
    match xxhash_rust::xxh3::xxh3_64(head) {
        0 => 1,
        h => h,
    }
}

fn env_slots<'a>(e: &'a message::Envelope<'_>) -> Envelope<'a> {
    let mut out: Envelope<'a> = [None; ENVELOPE_FIELDS];
    for (slot, (_, v)) in out.iter_mut().zip(e.fields()) {
        *slot = v;
    }
    out
}

/// Whether [`derive()`] parses the `Received:` date (another pass over the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Not needed (the file's mtime or the caller gives the date).
    Skip,
    /// Parse it.
    Parse,
}

/// Derive everything for message `uid` from its bytes. Never fails: a file that is not a
/// parsable message gets an empty envelope and a single `text/plain` part covering it.
/// The `Received:` date costs another pass over the header; it is computed only when
/// `want_received` (reconstruct needs it only for a file whose mtime is unusable).
pub fn derive(uid: u32, bytes: &[u8], received: Received) -> Derived {
    let want_received = received == Received::Parse;
    let mut cache_record = Vec::with_capacity(512);
    let sent_date;
    let split;
    match message::parse_structure(bytes) {
        Ok(structure) => {
            // Part 0 is the whole message: its header is the message's.
            split = match structure.parts.first() {
                Some(p) => message::Split { header_len: p.header_len as usize, body_offset: p.body_offset as usize },
                None => message::split(bytes),
            };
            let header = bytes.get(..split.header_len).unwrap_or_default();
            let fallback;
            let envelope = match structure.parts.first().and_then(|p| p.envelope.as_ref()) {
                Some(e) => e,
                None => {
                    fallback = message::Envelope::from_header(header);
                    &fallback
                }
            };
            sent_date = envelope.date.as_deref().and_then(message::parse_date);
            let parts: Vec<CachePart<'_>> = structure
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| CachePart {
                    parent: p.parent,
                    depth: p.depth,
                    header_offset: p.header_offset,
                    header_len: p.header_len,
                    body_offset: p.body_offset,
                    body_len: p.body_len,
                    body_lines: p.body_lines,
                    media_type: &p.media_type,
                    media_subtype: &p.media_subtype,
                    params: p.params.iter().map(|(k, v)| (&k[..], &v[..])).collect(),
                    id: p.id.as_deref(),
                    description: p.description.as_deref(),
                    encoding: p.encoding.as_deref(),
                    disposition: p.disposition.as_deref(),
                    disposition_params: p.disposition_params.iter().map(|(k, v)| (&k[..], &v[..])).collect(),
                    language: p.language.as_deref(),
                    location: p.location.as_deref(),
                    md5: p.md5.as_deref(),
                    // Part 0's envelope is the record's own; only encapsulated messages
                    // carry one on the part.
                    envelope: if i == 0 { None } else { p.envelope.as_ref().map(env_slots) },
                })
                .collect();
            let entry = CacheEntry { uid, envelope: env_slots(envelope), parts };
            cache::encode(&entry, &mut cache_record);
        }
        Err(_) => {
            split = message::split(bytes);
            let header = bytes.get(..split.header_len).unwrap_or_default();
            let envelope = message::Envelope::from_header(header);
            sent_date = envelope.date.as_deref().and_then(message::parse_date);
            let entry = CacheEntry {
                uid,
                envelope: env_slots(&envelope),
                parts: vec![CachePart {
                    media_type: b"text",
                    media_subtype: b"plain",
                    body_offset: split.body_offset as u64,
                    body_len: (bytes.len() - split.body_offset.min(bytes.len())) as u64,
                    body_lines: message::count_lines(bytes.get(split.body_offset..).unwrap_or_default()),
                    header_len: split.header_len as u64,
                    ..CachePart::default()
                }],
            };
            cache::encode(&entry, &mut cache_record);
        }
    }
    let header = bytes.get(..split.header_len).unwrap_or_default();
    let received_date = if want_received { message::received_date(header) } else { None };
    Derived {
        header_size: u32::try_from(split.body_offset).unwrap_or(u32::MAX),
        sent_date,
        received_date,
        content_hash: content_hash(bytes),
        prefix_hash: prefix_hash(bytes),
        cache_record,
        size: bytes.len() as u64,
    }
}
