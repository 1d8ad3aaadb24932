//! Raw on-disk structures, one module per format, the equivalent of a C header file.
//!
//! Every struct here is `#[repr(C)]`, made of little-endian zerocopy field types of
//! alignment 1, so it can be read in place from any offset of a mapped file; its size is
//! asserted at compile time. The specs under `formats/` are the source of truth and each
//! struct's documentation links to its table. Parsing and encoding live in
//! [`crate::codec`], never here.
//!
//! Conventions shared by all formats (see `formats/README.md`):
//! - all multi-byte integers are little-endian;
//! - every file starts with an 8-byte ASCII magic and a `u16` version;
//! - checksums are CRC-32C (Castagnoli) and sit in the last 4 bytes of what they cover;
//! - reserved bytes are written as zero and ignored when read.

pub mod cache;
pub mod changelog;
pub mod dbsnap;
pub mod header;
pub mod index;
pub mod ledger;
pub mod listings;
pub mod wal;

pub use zerocopy::little_endian::{I16, I64, U16, U32, U64};

/// CRC-32C of `data`.
pub fn crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// CRC-32C of `data`, continuing from `seed`.
pub fn crc_append(seed: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(seed, data)
}

/// Assert at compile time that a raw struct has the size its spec gives.
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
        const _: () = assert!(core::mem::align_of::<$t>() == 1);
    };
}
pub(crate) use assert_size;
