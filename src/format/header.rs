//! Raw layout of the mailbox header file `ms.header`: see `formats/header.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSHEADER";
/// Current version (2: the fixed part records the log coverage and the modseq ceiling).
pub const VERSION: u16 = 2;
/// Oldest version still read (a 64-byte fixed part, [`HeaderFixedV1`]).
pub const OLDEST_VERSION: u16 = 1;
/// Number of user flag slots (bits in an index record).
pub const MAX_USER_FLAGS: usize = 128;
/// Upper bound on the whole file (names are capped, so a valid file is far smaller).
pub const MAX_FILE_LEN: u32 = 64 * 1024;

/// The fixed part at offset 0 (`formats/header.md`, table "Fixed part").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct HeaderFixed {
    /// `MSHEADER`.
    pub magic: [u8; 8],
    /// Format version (2).
    pub version: U16,
    /// Size of this fixed part (104).
    pub fixed_len: U16,
    /// Length of the whole file, trailing checksum included.
    pub total_len: U32,
    /// The mailbox's unique id: random at creation, kept across renames.
    pub unique_id: [u8; 16],
    /// IMAP UIDVALIDITY.
    pub uid_validity: U32,
    /// Highest UID ever assigned when this file was written (a floor for the next UID).
    pub last_uid: U32,
    /// Creation time of the mailbox, seconds since the epoch.
    pub created: I64,
    /// Bytes of the domain that follows the fixed part.
    pub domain_len: U16,
    /// Bytes of the mailbox name that follows the domain.
    pub name_len: U16,
    /// Number of user flag slots that follow the name (at most 128).
    pub flag_slots: U16,
    /// Zero.
    pub reserved0: [u8; 2],
    /// `base_seq` of the `ms.log` this file was written against.
    pub log_base: U64,
    /// Sequence number of that log's last record when this file was written.
    pub log_seq: U64,
    /// Where that record ends (bytes of the log this file saw).
    pub log_len: U64,
    /// Stored CRC of that record.
    pub log_crc: U32,
    /// Zero.
    pub reserved1: [u8; 4],
    /// No modseq above this has been given in this UID validity.
    pub modseq_ceiling: U64,
    /// Zero.
    pub reserved2: [u8; 4],
    /// CRC-32C of bytes 0..100.
    pub fixed_crc: U32,
}
assert_size!(HeaderFixed, FIXED_LEN);

/// Size of [`HeaderFixed`].
pub const FIXED_LEN: usize = 104;

/// The fixed part of a version 1 file (`formats/header.md`, "Version 1"): still read.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct HeaderFixedV1 {
    /// `MSHEADER`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this fixed part (64).
    pub fixed_len: U16,
    /// Length of the whole file, trailing checksum included.
    pub total_len: U32,
    /// The mailbox's unique id: random at creation, kept across renames.
    pub unique_id: [u8; 16],
    /// IMAP UIDVALIDITY.
    pub uid_validity: U32,
    /// Highest UID ever assigned when this file was written (a floor for the next UID).
    pub last_uid: U32,
    /// Creation time of the mailbox, seconds since the epoch.
    pub created: I64,
    /// Bytes of the domain that follows the fixed part.
    pub domain_len: U16,
    /// Bytes of the mailbox name that follows the domain.
    pub name_len: U16,
    /// Number of user flag slots that follow the name (at most 128).
    pub flag_slots: U16,
    /// Zero.
    pub reserved: [u8; 6],
    /// CRC-32C of bytes 0..60.
    pub fixed_crc: U32,
}
assert_size!(HeaderFixedV1, 64);
