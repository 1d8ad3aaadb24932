//! Test kits of the M-Store toolkit. A dev-only crate: the shipped library and binaries
//! never contain it (`mstore` has it as a dev-dependency only; `xtask` uses it for the
//! long runs).
//!
//! - [`sim`]: an in-memory file system ([`sim::SimFs`]) that implements `mstore::fs::Fs`,
//!   records every operation, injects faults, and materialises what a power cut at any
//!   point would leave ([`sim::CrashSweep`]);
//! - [`crash`]: the crash-state enumeration of the databases.

pub mod crash;
pub mod rng;
pub mod sim;

pub use rng::Rng;
