//! Whether writes are synced. The writes themselves (temp file + fsync + rename + fsync of
//! the directory, never-replacing creation, locks) live in [`crate::fs`], the one layer
//! every writer goes through.

/// Whether writes are synced to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync files and directories (the default, and the only safe choice).
    #[default]
    Sync,
    /// Skip every fsync: for generated corpora and benchmarks, never for real mail.
    NoSync,
}
