//! IMAP flags: system flags as bits, user flags as slots of a 128-bit set, and where an
//! internal date came from.

use crate::format::header::MAX_USER_FLAGS;

/// The IMAP system flags a message can carry (stored as bits of `system_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SystemFlags(pub u32);

impl SystemFlags {
    /// `\Answered`.
    pub const ANSWERED: u32 = 1 << 0;
    /// `\Flagged`.
    pub const FLAGGED: u32 = 1 << 1;
    /// `\Deleted`.
    pub const DELETED: u32 = 1 << 2;
    /// `\Seen`.
    pub const SEEN: u32 = 1 << 3;
    /// `\Draft`.
    pub const DRAFT: u32 = 1 << 4;
    /// Every defined bit.
    pub const ALL: u32 = 0x1f;
    /// Names, in bit order.
    pub const NAMES: [(&'static str, u32); 5] = [
        ("\\Answered", Self::ANSWERED),
        ("\\Flagged", Self::FLAGGED),
        ("\\Deleted", Self::DELETED),
        ("\\Seen", Self::SEEN),
        ("\\Draft", Self::DRAFT),
    ];

    /// The bit of a system flag name (case-insensitive, with the backslash).
    pub fn bit(name: &str) -> Option<u32> {
        Self::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, b)| b)
    }

    /// Whether `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().filter(move |&(_, b)| self.0 & b != 0).map(|(n, _)| n)
    }
}

/// A set of user flag slots (bit i = slot i of the mailbox's flag names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserFlags(pub u128);

impl UserFlags {
    /// From the 16 little-endian bytes stored on disk.
    pub fn from_le_bytes(b: [u8; 16]) -> Self {
        UserFlags(u128::from_le_bytes(b))
    }
    /// To the on-disk bytes.
    pub fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
    /// Whether slot `i` is set.
    pub fn has(self, i: usize) -> bool {
        i < MAX_USER_FLAGS && self.0 & (1u128 << i) != 0
    }
    /// Set slot `i`.
    pub fn set(&mut self, i: usize) {
        if i < MAX_USER_FLAGS {
            self.0 |= 1u128 << i;
        }
    }
    /// Slots that are set.
    pub fn slots(self) -> impl Iterator<Item = usize> {
        (0..MAX_USER_FLAGS).filter(move |&i| self.has(i))
    }
    /// Number of set slots.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

/// Where an internal date came from (stored in index and log records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DateSource {
    /// Not recorded (older data).
    #[default]
    Unknown = 0,
    /// Given by whoever appended the message (APPEND, import).
    Given = 1,
    /// Taken from the message file's modification time.
    FileMtime = 2,
    /// Taken from the topmost `Received:` header.
    Received = 3,
    /// Taken from the `Date:` header.
    DateHeader = 4,
    /// Nothing better was found: the time of the rebuild.
    RebuildTime = 5,
}

impl DateSource {
    /// From the stored byte; unknown values read as [`DateSource::Unknown`].
    pub fn from_u8(b: u8) -> Self {
        match b {
            1 => DateSource::Given,
            2 => DateSource::FileMtime,
            3 => DateSource::Received,
            4 => DateSource::DateHeader,
            5 => DateSource::RebuildTime,
            _ => DateSource::Unknown,
        }
    }
    /// Human name.
    pub fn as_str(self) -> &'static str {
        match self {
            DateSource::Unknown => "unknown",
            DateSource::Given => "given",
            DateSource::FileMtime => "file-mtime",
            DateSource::Received => "received",
            DateSource::DateHeader => "date-header",
            DateSource::RebuildTime => "rebuild-time",
        }
    }
}

/// Validate a user flag name (an IMAP atom, not a system flag).
pub fn valid_user_flag(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('\\')
        && name.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}
