//! The survey: what is on disk, read without trusting it. Shared by `reconstruct`,
//! `verify`, `estimate` and (through reconstruct) `rescue`; nothing here writes a store
//! file (the listing cache, a cache of directory listings, is the one file it may
//! replace, and only for a run that may write).
//!
//! - [`discover`]: which mailboxes a run covers, by the argument rules of the M-Store
//!   administration guide, from the mailbox list and from what is on disk.
//! - [`listcache`]: the directory listing cache (`formats/listings.md`).
//! - [`gather`]: per mailbox, list the directory and read what its header, index, change
//!   log and cache still hold, record by record, past damage.
//!
//! The record-by-record readers themselves are the codecs' (`crate::codec`), which also
//! serve rescue's catalog of files found in `lost+found`.

pub mod discover;
pub mod gather;
pub mod listcache;
