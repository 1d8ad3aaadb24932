//! M-Store: the storage layer of an IMAP message store and the repair kit around it.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of this crate.

#![deny(unsafe_code)]

pub mod cli;
pub mod codec;
pub mod config;
pub mod db;
pub mod doctor;
pub mod error;
pub mod estimate;
pub mod finding;
pub mod flags;
pub mod format;
pub mod fs;
pub mod import;
pub mod io;
pub mod layout;
pub mod ledger;
pub mod message;
pub mod privs;
pub mod reconstruct;
pub mod report;
pub mod rescue;
pub mod scan;
pub mod store;
pub mod survey;
pub mod synth;
pub mod uidset;
pub mod util;
pub mod verify;

pub use error::{Error, Result};
