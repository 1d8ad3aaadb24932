//! Raw layout of the cache file `ms.cache`: see `formats/cache.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSCACHE\0";
/// Current version.
pub const VERSION: u16 = 1;
/// Size of [`CacheHeader`].
pub const HEADER_LEN: usize = 64;
/// A string length meaning "absent" (NIL), as opposed to empty.
pub const ABSENT: u32 = u32::MAX;
/// Largest record accepted.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// The cache header at offset 0 (`formats/cache.md`, table "Header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct CacheHeader {
    /// `MSCACHE\0`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Zero.
    pub reserved0: U32,
    /// Unique id of the mailbox.
    pub unique_id: [u8; 16],
    /// Generation of the index rewrite that started this file.
    pub generation: U64,
    /// Zero.
    pub reserved1: [u8; 20],
    /// CRC-32C of bytes 0..60.
    pub crc: U32,
}
assert_size!(CacheHeader, HEADER_LEN);

/// Start of every cache record (`formats/cache.md`, table "Record").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RecordHead {
    /// Length of the whole record, this head and the trailing CRC included.
    pub len: U32,
    /// UID of the message.
    pub uid: U32,
    /// Number of MIME parts that follow the envelope.
    pub part_count: U16,
    /// Zero.
    pub reserved: U16,
}
assert_size!(RecordHead, 12);

/// Fixed start of each MIME part (`formats/cache.md`, table "Part").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct PartFixed {
    /// Index of the parent part, or `u32::MAX` for part 0.
    pub parent: U32,
    /// Nesting depth (part 0 is 0).
    pub depth: U16,
    /// Bit 0: an envelope follows this part's strings.
    pub flags: U16,
    /// Offset of the part's header block in the message.
    pub header_offset: U64,
    /// Length of that header block.
    pub header_len: U64,
    /// Offset of the part's body.
    pub body_offset: U64,
    /// Length of the body.
    pub body_len: U64,
    /// Lines in the body.
    pub body_lines: U64,
}
assert_size!(PartFixed, 48);

/// [`PartFixed::flags`] bit: an envelope follows.
pub const PART_HAS_ENVELOPE: u16 = 1;
