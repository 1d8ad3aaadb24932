//! Test kits of the M-Store toolkit. A dev-only crate: the shipped library and binaries
//! never contain it (`mstore` has it as a dev-dependency only; `xtask` uses it for the
//! long runs).
//!
//! - [`sim`]: an in-memory file system ([`sim::SimFs`]) that implements `mstore::fs::Fs`,
//!   records every operation, injects faults, and materialises what a power cut at any
//!   point would leave ([`sim::CrashSweep`]);
//! - [`recfs`]: the real file system under a directory, recorded the same way and
//!   fault-injecting, and [`recfs::materialise`], which writes a crash state to disk;
//! - [`crash`]: the crash-state enumeration of the databases;
//! - [`mailbox_crash`]: the crash-state enumeration of a mailbox (append, flags, expunge,
//!   checkpoint, log compaction, reconstruct's rewrite) and its I/O-error runs.

pub mod crash;
pub mod mailbox_crash;
pub mod recfs;
pub mod rng;
pub mod sim;

pub use rng::Rng;
