//! Raw layout of the index file `ms.index`: see `formats/index.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I16, I64, U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSINDEX\0";
/// Current version (2: the header records the log coverage and the modseq ceiling).
pub const VERSION: u16 = 2;
/// Oldest version still read (its header's bytes 96..124 are reserved).
pub const OLDEST_VERSION: u16 = 1;
/// Size of [`IndexHeader`].
pub const HEADER_LEN: usize = 128;
/// Size of [`IndexRecord`].
pub const RECORD_LEN: usize = 128;
/// `sent_date` value meaning "no parsable Date header".
pub const NO_DATE: i64 = i64::MIN;

/// The index header at offset 0 (`formats/index.md`, table "Header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct IndexHeader {
    /// `MSINDEX\0`.
    pub magic: [u8; 8],
    /// Format version (2; 1 is still read).
    pub version: U16,
    /// Size of this header (128).
    pub header_len: U16,
    /// Size of one record (128).
    pub record_len: U16,
    /// Zero.
    pub reserved0: U16,
    /// Unique id of the mailbox (same as in `ms.header`).
    pub unique_id: [u8; 16],
    /// Incremented every time the index is rewritten.
    pub generation: U64,
    /// IMAP UIDVALIDITY.
    pub uid_validity: U32,
    /// Highest UID ever assigned in this UID validity.
    pub last_uid: U32,
    /// Number of records that follow.
    pub message_count: U32,
    /// Zero.
    pub reserved1: U32,
    /// Highest modification sequence of the mailbox.
    pub highest_modseq: U64,
    /// Change-log sequence number this index includes.
    pub log_seq: U64,
    /// Sum of the sizes of all messages.
    pub total_size: U64,
    /// Length of `ms.cache` that the records point into.
    pub cache_len: U64,
    /// When this index was written, seconds since the epoch.
    pub written: I64,
    /// Bytes of the `ms.log` written with this checkpoint (compacted at `log_seq`), i.e.
    /// where its last record ends; 0 in version 1 (not recorded).
    pub log_len: U64,
    /// Stored CRC of that log's last record (the one ending at `log_len`).
    pub log_crc: U32,
    /// No modseq above this was given when the checkpoint was written, nor will be before
    /// `ms.header` records a higher one; 0 in version 1.
    pub modseq_ceiling: U64,
    /// Zero.
    pub reserved2: [u8; 8],
    /// CRC-32C of bytes 0..124.
    pub crc: U32,
}
assert_size!(IndexHeader, HEADER_LEN);

/// One message (`formats/index.md`, table "Record").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct IndexRecord {
    /// IMAP UID; the message file is `<uid>.`.
    pub uid: U32,
    /// System flags, see [`crate::flags::SystemFlags`].
    pub system_flags: U32,
    /// IMAP INTERNALDATE, seconds since the epoch (also the file's mtime).
    pub internal_date: I64,
    /// Zone of the internal date, minutes east of UTC.
    pub internal_offset: I16,
    /// Zone of the sent date, minutes east of UTC.
    pub sent_offset: I16,
    /// Bytes of the header block, separator line included.
    pub header_size: U32,
    /// The Date header as seconds since the epoch, or [`NO_DATE`].
    pub sent_date: I64,
    /// Size of the message file in bytes (RFC822.SIZE).
    pub size: U64,
    /// Offset of this message's record in `ms.cache`.
    pub cache_offset: U64,
    /// Length of that record.
    pub cache_len: U32,
    /// Where the internal date came from, see [`crate::flags::DateSource`].
    pub date_source: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// User flag bits; bit i is slot i of the header file's flag names.
    pub user_flags: [u8; 16],
    /// Modification sequence of the last change to this message.
    pub modseq: U64,
    /// BLAKE3 of the message file's bytes.
    pub content_hash: [u8; 32],
    /// XXH3-64 of the message's first bytes (`formats/index.md`, "Prefix hash"); 0 unknown.
    pub prefix_hash: U64,
    /// Zero.
    pub reserved1: [u8; 4],
    /// CRC-32C of bytes 0..124.
    pub crc: U32,
}
assert_size!(IndexRecord, RECORD_LEN);
