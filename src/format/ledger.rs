//! Raw layout of the loss ledger `ledger/<domain>`: see `formats/ledger.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{I64, U16, U32, assert_size};

/// File magic.
pub const MAGIC: [u8; 8] = *b"MSLEDGER";
/// Current version.
pub const VERSION: u16 = 1;
/// Size of [`LedgerHeader`].
pub const HEADER_LEN: usize = 64;
/// Size of [`EntryHead`].
pub const ENTRY_HEAD_LEN: usize = 48;
/// Bytes of an index record an entry carries (every field but its CRC).
pub const RECORD_BODY_LEN: usize = 124;
/// Smallest entry: head, record, empty strings, no flag names, CRC.
pub const MIN_ENTRY_LEN: usize = ENTRY_HEAD_LEN + RECORD_BODY_LEN + 2 + 2 + 1 + 2 + 4;
/// Largest entry.
pub const MAX_ENTRY_LEN: usize = 65536;

/// Entry kinds (`formats/ledger.md`, "Kinds").
pub mod kind {
    /// A record a repair dropped.
    pub const LOST: u8 = 1;
    /// A mailbox recreated empty.
    pub const RECREATED: u8 = 2;
    /// A loss resolved: the message (or the mailbox's identity) is back.
    pub const RECOVERED: u8 = 3;
    /// A loss accepted by an administrator.
    pub const ACKNOWLEDGED: u8 = 4;
}

/// Reasons of a `LOST` entry (`formats/ledger.md`, "Reasons").
pub mod reason {
    /// The message file is gone.
    pub const GONE: u8 = 1;
    /// The message file is empty.
    pub const EMPTY: u8 = 2;
    /// The file's bytes no longer match the record.
    pub const CONTENT_CHANGED: u8 = 3;
    /// The file vanished during the run.
    pub const VANISHED: u8 = 4;
}

/// The file header at offset 0 (`formats/ledger.md`, table "Header").
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LedgerHeader {
    /// `MSLEDGER`.
    pub magic: [u8; 8],
    /// Format version (1).
    pub version: U16,
    /// Size of this header (64).
    pub header_len: U16,
    /// Zero.
    pub reserved0: U32,
    /// When the file was created, seconds since the epoch.
    pub created: I64,
    /// Zero.
    pub reserved1: [u8; 36],
    /// CRC-32C of bytes 0..60.
    pub crc: U32,
}
assert_size!(LedgerHeader, HEADER_LEN);

/// The fixed start of an entry (`formats/ledger.md`, table "Entry", offsets 0..48).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct EntryHead {
    /// Bytes of the whole entry, CRC included.
    pub len: U32,
    /// [`kind`]; never 0.
    pub kind: u8,
    /// [`reason`] for `LOST`, else 0.
    pub reason: u8,
    /// Zero.
    pub reserved0: U16,
    /// Time of the event, seconds since the epoch.
    pub when: I64,
    /// The mailbox's unique id.
    pub unique_id: [u8; 16],
    /// UID validity of the record.
    pub uid_validity: U32,
    /// `RECREATED`: the new UID validity; `RECOVERED`: where the message is now.
    pub new_uid_validity: U32,
    /// `RECOVERED`: the UID it came back under; `RECREATED`: the last UID known before.
    pub new_uid: U32,
    /// Zero.
    pub reserved1: U32,
}
assert_size!(EntryHead, ENTRY_HEAD_LEN);
