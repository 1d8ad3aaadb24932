//! Read policy: the one mmap-or-read function (the only `unsafe` of the crate), the
//! reusable read buffer of the scanning threads, `openat` relative to a directory, and
//! whether writes are synced.
//!
//! Writes, renames, locks and directory fsyncs are not here: they go through
//! [`crate::fs::Fs`], so the crash tests see every one of them.

mod bytes;
mod content;
mod write;

pub use bytes::{
    Bytes, Contents, Fetched, MAP_THRESHOLD, Map, ReadBuf, fetch_file, file_size, open_at, read_file, read_file_at,
    read_file_into, with_read_buf,
};
pub use content::{HOLE_BUDGET, content_len};
pub use write::Durability;
