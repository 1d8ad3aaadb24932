//! Raw layout of the per-mailbox change log `ms.log`: see `formats/changelog.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSCHGLOG";
/// Current version (2: the header records the modseq ceiling of the compaction).
pub const VERSION: u16 = 2;
/// Oldest version still read (its header's bytes 56..60 are reserved).
pub const OLDEST_VERSION: u16 = 1;
/// Size of [`LogHeader`].
pub const HEADER_LEN: usize = 64;
/// Largest record accepted.
pub const MAX_RECORD_LEN: u32 = 4096;

/// The log header at offset 0 (`formats/changelog.md`, table "Header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LogHeader {
    /// `MSCHGLOG`.
    pub magic: [u8; 8],
    /// Format version (2; 1 is still read).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Zero.
    pub reserved0: U32,
    /// Unique id of the mailbox; also seeds every record checksum.
    pub unique_id: [u8; 16],
    /// IMAP UIDVALIDITY of the state this log describes.
    pub uid_validity: U32,
    /// Zero.
    pub reserved1: U32,
    /// Sequence number of the compaction that wrote this file.
    pub base_seq: U64,
    /// When this file was written, seconds since the epoch.
    pub created: I64,
    /// The modseq ceiling when this file was written, as an offset from `base_seq` (0: not
    /// recorded, as in version 1).
    pub ceiling_offset: U32,
    /// CRC-32C of bytes 0..60.
    pub crc: U32,
}
assert_size!(LogHeader, HEADER_LEN);

/// Start of every log record (`formats/changelog.md`, table "Record").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RecordHead {
    /// Length of the whole record, this head and the trailing CRC included.
    pub len: U32,
    /// Record kind; 0 is never a record.
    pub kind: u8,
    /// Bit 0: [`CONTINUED`] (another record of the same change follows); bit 1:
    /// [`FOLLOWS`] (not the first record of its change); other bits zero.
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; 2],
    /// Sequence number.
    pub seq: U64,
}
assert_size!(RecordHead, 16);

/// [`RecordHead::flags`] bit: the record is not the last of its change (one call's
/// records, written in one write); a reader applies a change's records only once the last
/// one verifies.
pub const CONTINUED: u8 = 1;

/// [`RecordHead::flags`] bit: the record is not the first of its change (a reader that
/// resynchronised after damage skips records up to the start of the next change).
pub const FOLLOWS: u8 = 2;

/// Record kinds.
pub mod kind {
    /// Domain and mailbox name.
    pub const NAME: u8 = 1;
    /// A user flag name in a slot.
    pub const FLAG_NAME: u8 = 2;
    /// A message's whole state (append, or a compacted snapshot).
    pub const MESSAGE: u8 = 3;
    /// A message's new flags.
    pub const FLAGS: u8 = 4;
    /// A message expunged.
    pub const EXPUNGE: u8 = 5;
    /// The last UID assigned.
    pub const LAST_UID: u8 = 6;
}

/// Body of a `MESSAGE` record: the first 124 bytes of an index record
/// ([`crate::format::index::IndexRecord`] without its checksum).
pub const MESSAGE_BODY_LEN: usize = crate::format::index::RECORD_LEN - 4;

/// Body of a `FLAGS` record.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct FlagsBody {
    /// UID.
    pub uid: U32,
    /// New system flags.
    pub system_flags: U32,
    /// New user flag bits.
    pub user_flags: [u8; 16],
    /// Modification sequence.
    pub modseq: U64,
}
assert_size!(FlagsBody, 32);

/// Body of an `EXPUNGE` record.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ExpungeBody {
    /// UID.
    pub uid: U32,
    /// Zero.
    pub reserved: U32,
    /// Modification sequence.
    pub modseq: U64,
}
assert_size!(ExpungeBody, 16);

/// Body of a `LAST_UID` record.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LastUidBody {
    /// Highest UID assigned.
    pub last_uid: U32,
    /// UID validity it belongs to.
    pub uid_validity: U32,
}
assert_size!(LastUidBody, 8);

/// Body head of a `NAME` record; the domain and name bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct NameHead {
    /// Bytes of the domain.
    pub domain_len: U16,
    /// Bytes of the mailbox name.
    pub name_len: U16,
}
assert_size!(NameHead, 4);
