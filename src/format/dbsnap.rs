//! Raw layout of a database snapshot file (`*.db` in the database home): see
//! `formats/db.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSDBSNAP";
/// Trailer magic.
pub const END_MAGIC: [u8; 8] = *b"MSDBEND\0";
/// Current version.
pub const VERSION: u16 = 1;
/// Size of [`SnapHeader`].
pub const HEADER_LEN: usize = 64;
/// Largest key.
pub const MAX_KEY_LEN: u32 = 4096;
/// Largest value.
pub const MAX_VALUE_LEN: u32 = 1 << 20;

/// The snapshot header (`formats/db.md`, table "Snapshot header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SnapHeader {
    /// `MSDBSNAP`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Zero.
    pub reserved0: U32,
    /// Database name, NUL-padded ASCII.
    pub name: [u8; 16],
    /// Log sequence number of the checkpoint this snapshot reflects.
    pub checkpoint_lsn: U64,
    /// Number of entries.
    pub entry_count: U64,
    /// When written, seconds since the epoch.
    pub written: I64,
    /// Zero.
    pub reserved1: U32,
    /// CRC-32C of bytes 0..60.
    pub crc: U32,
}
assert_size!(SnapHeader, HEADER_LEN);

/// Head of each entry; key, value and a CRC-32C of head+key+value follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct EntryHead {
    /// Key bytes.
    pub key_len: U32,
    /// Value bytes.
    pub value_len: U32,
}
assert_size!(EntryHead, 8);

/// The trailer after the last entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SnapTrailer {
    /// `MSDBEND\0`.
    pub magic: [u8; 8],
    /// Number of entries (again).
    pub entry_count: U64,
    /// Zero.
    pub reserved: U32,
    /// CRC-32C over every byte of the file before this field.
    pub crc: U32,
}
assert_size!(SnapTrailer, 24);
