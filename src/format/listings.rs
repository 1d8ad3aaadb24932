//! Raw layout of the directory listing cache `listings/<domain>`: see
//! `formats/listings.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, U64, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSLISTNG";
/// Current version.
pub const VERSION: u16 = 1;
/// Size of [`ListingsHeader`].
pub const HEADER_LEN: usize = 64;
/// Size of [`ListingEntry`].
pub const ENTRY_LEN: usize = 80;
/// Longest name kept (longer ones make the directory uncacheable).
pub const MAX_NAME_LEN: usize = 4096;
/// Name kinds.
pub const KIND_SUBDIR: u8 = 0;
/// A temporary file `ms.tmp.*`.
pub const KIND_TEMP: u8 = 1;
/// An entry that is neither a message, a store file nor a sub-mailbox.
pub const KIND_STRAY: u8 = 2;
/// Flag bits: which store files the directory holds.
pub const HAS_HEADER: u32 = 1;
/// `ms.index` present.
pub const HAS_INDEX: u32 = 2;
/// `ms.cache` present.
pub const HAS_CACHE: u32 = 4;
/// `ms.log` present.
pub const HAS_LOG: u32 = 8;

/// The file header at offset 0 (`formats/listings.md`, table "File header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ListingsHeader {
    /// `MSLISTNG`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Entries that follow.
    pub entry_count: U32,
    /// Boot id of the system that wrote the file.
    pub boot_id: [u8; 16],
    /// Time written, seconds since the epoch.
    pub written: I64,
    /// Length of the whole file, trailing checksum included.
    pub total_len: U64,
    /// Zero.
    pub reserved: [u8; 12],
    /// CRC-32C of bytes 0..60.
    pub header_crc: U32,
}
assert_size!(ListingsHeader, HEADER_LEN);

/// The fixed part of one entry (`formats/listings.md`, table "Entry").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ListingEntry {
    /// Mount id.
    pub mnt_id: U64,
    /// Device, major << 32 | minor.
    pub dev: U64,
    /// Inode number.
    pub ino: U64,
    /// ctime, seconds.
    pub ctime_sec: I64,
    /// mtime, seconds.
    pub mtime_sec: I64,
    /// ctime, nanoseconds.
    pub ctime_nsec: U32,
    /// mtime, nanoseconds.
    pub mtime_nsec: U32,
    /// Size of the directory.
    pub size: U64,
    /// `HAS_*` bits.
    pub flags: U32,
    /// UIDs that follow.
    pub message_count: U32,
    /// Names that follow the UIDs.
    pub name_count: U32,
    /// Bytes of those names.
    pub names_len: U32,
    /// Zero.
    pub reserved: [u8; 8],
}
assert_size!(ListingEntry, ENTRY_LEN);

/// A name's own header: kind, then length.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct NameHeader {
    /// `KIND_*`.
    pub kind: u8,
    /// Bytes of the name that follow.
    pub len: U16,
}
assert_size!(NameHeader, 3);
