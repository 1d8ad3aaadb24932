//! Raw layout of the mailbox header file `ms.header`: see `formats/header.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSHEADER";
/// Current version.
pub const VERSION: u16 = 1;
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
assert_size!(HeaderFixed, 64);
