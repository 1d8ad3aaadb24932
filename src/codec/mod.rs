//! Parsing and encoding of the on-disk formats whose raw structs live in
//! [`crate::format`].
//!
//! Decoders check length, then magic, then version, then checksums, and never trust a
//! count or length from the file for an allocation: every capacity is capped by the bytes
//! actually present. They return [`FormatError`] with the byte offset of the damage; callers
//! attach the path with [`FormatError::at`].

pub mod cache;
pub mod changelog;
pub mod dbsnap;
pub mod header;
pub mod index;
pub mod ledger;
pub mod listings;
pub mod wal;

use std::path::Path;

/// Bytes read by offset: a file's bytes in memory, or the open file itself, read a window
/// at a time (the index and the log of a mailbox of a million messages are 128 and 144 MB:
/// decoded as they are read, neither is ever held whole).
pub trait ReadAt {
    /// Bytes there are to read.
    fn len(&self) -> u64;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` from `offset`; fewer bytes only where the bytes end (a file that shrank
    /// while being read ends early).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl ReadAt for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - from);
        buf[..n].copy_from_slice(&self[from..from + n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }
}

/// A [`ReadAt`] read from its start, as a [`std::io::Read`] (wrap it in a `BufReader`:
/// each `read` is one read of the source).
pub struct Sequential<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
}

impl<'a> Sequential<'a> {
    /// Reading `src` from offset 0.
    pub fn new(src: &'a dyn ReadAt) -> Self {
        Sequential { src, pos: 0 }
    }
}

impl std::io::Read for Sequential<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.src.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// `N` bytes at `offset`, if the source holds them.
pub fn bytes_at<const N: usize>(src: &dyn ReadAt, offset: u64) -> std::io::Result<Option<[u8; N]>> {
    let mut b = [0u8; N];
    Ok((src.read_at(offset, &mut b)? == N).then_some(b))
}

/// What is wrong with a file's bytes, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file ends before a structure it must hold.
    #[error("truncated: {what} needs {need} bytes at offset {offset}, only {have} present")]
    Truncated {
        /// Where the structure starts.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes present from `offset`.
        have: u64,
        /// What was being read.
        what: &'static str,
    },
    /// The file does not start with the magic of its format.
    #[error("bad magic {found:?}, expected {expected:?}")]
    BadMagic {
        /// The magic of the format.
        expected: String,
        /// What the file starts with.
        found: String,
    },
    /// The file has a version this build does not read.
    #[error("unsupported format version {version} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found.
        version: u16,
        /// Version supported.
        supported: u16,
    },
    /// A checksum does not match.
    #[error("checksum mismatch in {what} (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// Where the checksummed structure starts.
        offset: u64,
        /// What it is.
        what: &'static str,
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// A field holds a value the format forbids.
    #[error("{what}")]
    Invalid {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl FormatError {
    /// Byte offset of the damage.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Truncated { offset, .. }
            | FormatError::Checksum { offset, .. }
            | FormatError::Invalid { offset, .. } => *offset,
            FormatError::BadMagic { .. } => 0,
            FormatError::UnsupportedVersion { .. } => 8,
        }
    }

    /// The same error for bytes that start `base` bytes into the file (a window of it).
    pub fn shifted(self, base: u64) -> FormatError {
        match self {
            FormatError::Truncated { offset, need, have, what } => {
                FormatError::Truncated { offset: offset + base, need, have, what }
            }
            FormatError::Checksum { offset, what, stored, computed } => {
                FormatError::Checksum { offset: offset + base, what, stored, computed }
            }
            FormatError::Invalid { offset, what } => FormatError::Invalid { offset: offset + base, what },
            other => other,
        }
    }

    /// The error for the file at `path`.
    pub fn at(self, path: &Path) -> crate::Error {
        match self {
            FormatError::UnsupportedVersion { version, supported } => {
                crate::Error::UnsupportedVersion { path: path.to_path_buf(), version, supported }
            }
            other => crate::Error::corrupt(path, other.offset(), other.to_string()),
        }
    }

    pub(crate) fn invalid(offset: u64, what: impl Into<String>) -> Self {
        FormatError::Invalid { offset, what: what.into() }
    }
}

/// `bytes[offset..offset+len]` or a [`FormatError::Truncated`].
pub(crate) fn slice<'a>(
    bytes: &'a [u8],
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], FormatError> {
    offset.checked_add(len).and_then(|end| bytes.get(offset..end)).ok_or(FormatError::Truncated {
        offset: offset as u64,
        need: len as u64,
        have: bytes.len().saturating_sub(offset) as u64,
        what,
    })
}

/// A little-endian `u32` at `offset`.
pub(crate) fn read_u32(bytes: &[u8], offset: usize, what: &'static str) -> Result<u32, FormatError> {
    let s = slice(bytes, offset, 4, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Read a zerocopy struct at `offset` (by reference, no copy).
pub(crate) fn read_at<'a, T>(bytes: &'a [u8], offset: usize, what: &'static str) -> Result<&'a T, FormatError>
where
    T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    let s = slice(bytes, offset, std::mem::size_of::<T>(), what)?;
    T::ref_from_bytes(s).map_err(|_| FormatError::invalid(offset as u64, format!("{what}: layout error")))
}

/// Check magic and version at the start of a file.
pub(crate) fn check_magic_version(bytes: &[u8], magic: &[u8; 8], supported: u16) -> Result<(), FormatError> {
    let found = slice(bytes, 0, 10, "magic and version")?;
    if &found[..8] != magic {
        return Err(FormatError::BadMagic {
            expected: String::from_utf8_lossy(magic).into_owned(),
            found: String::from_utf8_lossy(&found[..8]).into_owned(),
        });
    }
    let version = u16::from_le_bytes([found[8], found[9]]);
    if version != supported {
        return Err(FormatError::UnsupportedVersion { version, supported });
    }
    Ok(())
}

/// Check magic and version at the start of a file whose format has several readable
/// versions (`oldest..=newest`); returns the version found.
pub(crate) fn check_magic_versions(
    bytes: &[u8],
    magic: &[u8; 8],
    oldest: u16,
    newest: u16,
) -> Result<u16, FormatError> {
    match check_magic_version(bytes, magic, newest) {
        Ok(()) => Ok(newest),
        Err(FormatError::UnsupportedVersion { version, .. }) if (oldest..newest).contains(&version) => Ok(version),
        Err(e) => Err(e),
    }
}

/// Verify that the CRC-32C of `covered` equals `stored`.
pub(crate) fn check_crc(covered: &[u8], stored: u32, offset: usize, what: &'static str) -> Result<(), FormatError> {
    let computed = crate::format::crc(covered);
    if computed != stored {
        return Err(FormatError::Checksum { offset: offset as u64, what, stored, computed });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Every prefix and every single-bit flip of `bytes` through `f`: it must return
    /// (Ok or Err) without panicking; returns how many flips `f` accepted as Ok.
    pub fn mutate_all<T, E>(bytes: &[u8], mut f: impl FnMut(&[u8]) -> Result<T, E>) -> usize {
        for cut in 0..bytes.len() {
            let _ = f(&bytes[..cut]);
        }
        let mut accepted = 0;
        let mut b = bytes.to_vec();
        for i in 0..b.len() {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                if f(&b).is_ok() {
                    accepted += 1;
                }
                b[i] ^= 1 << bit;
            }
        }
        accepted
    }
}
