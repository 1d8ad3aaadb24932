//! RFC 5322 / MIME parsing of one message, without copying.
//!
//! Everything here works on a `&[u8]` holding one whole message file (usually a
//! memory map) and hands back slices of it. Bytes are copied only where the
//! result must differ from the file: unfolding a folded header field,
//! lower-casing a media type or parameter name, undoing quoted-string escapes
//! and joining RFC 2231 continuations. Those results are `Cow::Owned`;
//! everything else is `Cow::Borrowed`.
//!
//! # Map
//!
//! - [`header`]: where the header block ends ([`split`]), its fields
//!   ([`fields`], [`field`]) and unfolding ([`unfold`]).
//! - [`envelope`]: the eleven fields of an IMAP `ENVELOPE` ([`Envelope`]),
//!   found in one pass.
//! - [`date`]: `Date:` and `Received:` dates ([`parse_date`],
//!   [`received_date`]) and their RFC 3339 / IMAP renderings ([`DateTime`]).
//! - [`params`]: `Content-Type` / `Content-Disposition` values with their
//!   parameters ([`parse_content_type`]), RFC 2231 continuations joined.
//! - [`mime`]: the MIME tree an IMAP `BODYSTRUCTURE` needs
//!   ([`parse_structure`]).
//!
//! # Invariants
//!
//! - No input makes any function here panic, overflow or recurse: the MIME
//!   walk uses an explicit stack, its depth is capped at [`MAX_DEPTH`] and its
//!   size at [`MAX_PARTS`]; the date parser saturates huge digit strings.
//! - No allocation is sized by a length read from the message: vectors grow
//!   only with items actually found, and those counts are capped.
//! - Line ends may be CRLF or LF, mixed freely in one file. A bare CR is an
//!   ordinary byte.
//! - 8-bit and NUL bytes are carried through, never rejected, never decoded.
//!
//! # Errors
//!
//! Only [`parse_structure`] can fail, and only when the bytes are not a
//! message at all (see [`MessageError`]). Every other malformation is
//! tolerated the way mail software tolerates it: a garbage header line is
//! skipped, a broken multipart becomes a leaf, a date that cannot be made
//! sense of is `None`.

pub mod date;
pub mod envelope;
pub mod header;
pub mod mime;
pub mod params;

#[cfg(test)]
mod tests;

pub use date::{DateTime, parse_date, received_date};
pub use envelope::{Envelope, EnvelopeField};
pub use header::{Field, Fields, Split, field, fields, split, unfold};
pub use mime::{MAX_DEPTH, MAX_PARTS, Part, PartKind, Structure, parse_structure};
pub use params::{ContentValue, parse_content_type, parse_disposition};

/// Why a byte string cannot be parsed as a message at all.
///
/// Damage *inside* a message (garbage lines, broken boundaries, bad dates) is
/// never an error; it is tolerated and shows up as missing or default values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input has no bytes (a zero-length message file).
    #[error("empty message: the file has no bytes")]
    Empty,
    /// The header block (bytes `0..header_len`) holds no header field at all:
    /// a binary or zero-filled file, or one that starts with a blank line.
    #[error("not a message: no header field in bytes 0..{header_len}")]
    NoHeaderFields {
        /// Length of the (field-less) header block; the body starts after it.
        header_len: usize,
    },
}

/// Line ends (LF) in `body`: IMAP's "size in text lines" of a body part. Counted with
/// `bytecount`'s SIMD count, about twice as fast here as `memchr`'s (measured at 20 and
/// 10 GB/s); every text part of every message is counted, so it shows in a rebuild.
pub fn count_lines(body: &[u8]) -> u64 {
    bytecount::count(body, b'\n') as u64
}
