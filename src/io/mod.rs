//! File I/O policy: the one mmap-or-read function, crash-safe file replacement, directory
//! fsync, and the per-mailbox advisory lock.
//!
//! Everything here is deliberately small: the rest of the crate never maps a file, never
//! renames one into place and never takes a lock except through these functions, so the
//! durability rules of `ARCHITECTURE.md` ("Writes") can be checked in one screen.

mod bytes;
mod lock;
mod write;

pub use bytes::{
    Bytes, Contents, MAP_THRESHOLD, ReadBuf, file_size, open_at, read_file, read_file_at, read_file_into, with_read_buf,
};
pub use lock::{LockMode, MailboxLock};
pub use write::{Durability, atomic_write, create_new_file, fsync_dir, rename_noreplace, set_mtime, temp_name};
