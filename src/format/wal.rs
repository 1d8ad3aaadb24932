//! Raw layout of the database transaction log (`log.<16 hex digits>` segment files in the
//! database home): see `formats/wal.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, U64, assert_size};

/// Segment file magic.
pub const MAGIC: [u8; 8] = *b"MSDBWAL\0";
/// Current version.
pub const VERSION: u16 = 1;
/// Size of [`SegmentHeader`]; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Size of [`RecordHeader`].
pub const RECORD_HEADER_LEN: usize = 40;
/// Every record's length is a multiple of this (zero padding before the CRC).
pub const RECORD_ALIGN: usize = 8;
/// Largest record: a PUT of the largest key and value (`formats/db.md` limits) with its
/// header, lengths and CRC, rounded up.
pub const MAX_RECORD_LEN: u32 = (RECORD_HEADER_LEN as u32) + 8 + 4096 + (1 << 20) + 8;
/// Segment flag: this segment starts a new timeline; segments numbered below it are
/// superseded (kept only as evidence) and are never replayed.
pub const FLAG_NEW_TIMELINE: u32 = 1;

/// Record types (`formats/wal.md`, table "Record types"). 0 is reserved: zero-filled
/// space is never a record.
pub mod rtype {
    /// Set a key of a database to a value.
    pub const PUT: u8 = 1;
    /// Remove a key of a database.
    pub const DELETE: u8 = 2;
    /// Commit the transaction: its operations are the records right before this one.
    pub const COMMIT: u8 = 3;
    /// A checkpoint: every database snapshot includes the transactions up to an LSN.
    pub const CHECKPOINT: u8 = 4;
}

/// The segment header at offset 0 (`formats/wal.md`, table "Segment header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SegmentHeader {
    /// `MSDBWAL\0`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Random, non-zero, chosen when the segment is created; in every record of it.
    pub salt: U32,
    /// Segment number (also in the file name).
    pub segment: U64,
    /// LSN of the first record of this segment.
    pub first_lsn: U64,
    /// File offset where the valid records of the previous segment end (0: none).
    pub prev_end: U64,
    /// CRC of the last valid record of the previous segment (0: none).
    pub prev_crc: U32,
    /// Salt of the previous segment (0: none).
    pub prev_salt: U32,
    /// When created, seconds since the epoch.
    pub created: I64,
    /// `FLAG_NEW_TIMELINE` or 0.
    pub flags: U32,
    /// CRC-32C of bytes 0..60.
    pub crc: U32,
}
assert_size!(SegmentHeader, SEGMENT_HEADER_LEN);

/// The head of every record (`formats/wal.md`, table "Record"); the body, zero padding and
/// a CRC-32C of everything before it follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RecordHeader {
    /// Bytes of the whole record, CRC included; a multiple of 8.
    pub len: U32,
    /// Record type ([`rtype`]); 0 is never a record.
    pub rtype: u8,
    /// Database of a PUT or DELETE (1 mailboxes, 2 subscriptions), else 0.
    pub db: u8,
    /// Zero.
    pub reserved: U16,
    /// The segment's salt.
    pub salt: U32,
    /// CRC of the previous record of the segment (of the segment header for the first).
    pub prev_crc: U32,
    /// Log sequence number: the previous record's plus one.
    pub lsn: U64,
    /// Transaction id (LSN of the transaction's first record; 0 for a checkpoint).
    pub txn: U64,
    /// Highest LSN the writer knew to be on stable storage when it wrote this record.
    pub synced_lsn: U64,
}
assert_size!(RecordHeader, RECORD_HEADER_LEN);

/// Body head of a PUT; key and value follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct PutHead {
    /// Key bytes (at most 4096).
    pub key_len: U32,
    /// Value bytes (at most 1 MiB).
    pub value_len: U32,
}
assert_size!(PutHead, 8);

/// Body head of a DELETE; the key follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DeleteHead {
    /// Key bytes (at most 4096).
    pub key_len: U32,
    /// Zero.
    pub reserved: U32,
}
assert_size!(DeleteHead, 8);

/// Body of a COMMIT.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct CommitBody {
    /// Number of PUT/DELETE records of the transaction, right before this record.
    pub op_count: U32,
    /// Zero.
    pub reserved: U32,
    /// Commit time, seconds since the epoch.
    pub time: I64,
}
assert_size!(CommitBody, 16);

/// Body of a CHECKPOINT.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct CheckpointBody {
    /// Every database snapshot includes the transactions committed up to this LSN.
    pub checkpoint_lsn: U64,
    /// When the checkpoint was taken, seconds since the epoch.
    pub time: I64,
}
assert_size!(CheckpointBody, 16);
