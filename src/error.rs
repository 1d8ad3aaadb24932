//! The library's error type, and the wording of failures for administrators.
//!
//! The M-Store administration guide names three symptoms of trouble: "i/o error", "unable to open database" and
//! "unable to read configuration file". Every such failure here names the path, the cause
//! (permission, missing, corrupt) and, where there is one, the fix.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An operating-system call failed on `path`.
    #[error("i/o error: cannot {op} {}: {}", path.display(), describe_io(source, path))]
    Io {
        /// What we were doing ("open", "read", "write", "rename", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes do not follow its format.
    #[error("{}: corrupt at byte offset {offset}: {what}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first damage seen.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// A file was written by a newer (or unknown) version of its format.
    #[error("{}: unsupported format version {version} (this build reads version {supported})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        version: u16,
        /// Version this build understands.
        supported: u16,
    },
    /// A domain or mailbox name is not acceptable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// "domain", "mailbox name", "user name", "flag name".
        what: &'static str,
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The mailbox is not in the mailbox list.
    #[error("mailbox {name:?} does not exist in domain {domain}")]
    NoSuchMailbox {
        /// Domain.
        domain: String,
        /// Mailbox name.
        name: String,
    },
    /// The mailbox already exists.
    #[error("mailbox {name:?} already exists in domain {domain}")]
    MailboxExists {
        /// Domain.
        domain: String,
        /// Mailbox name.
        name: String,
    },
    /// The named partition is not configured.
    #[error("partition {name:?} is not configured (add `partition-{name}: /path` to {})", config.display())]
    NoSuchPartition {
        /// Partition name.
        name: String,
        /// Configuration file to fix.
        config: PathBuf,
    },
    /// No message with this UID in the mailbox.
    #[error("no message with UID {uid} in {mailbox}")]
    NoSuchMessage {
        /// The mailbox (domain and name).
        mailbox: String,
        /// The UID asked for.
        uid: u32,
    },
    /// More user flags than the index has bits for.
    #[error("mailbox {mailbox} already uses all {max} user flags; cannot add {flag:?}")]
    TooManyUserFlags {
        /// The mailbox.
        mailbox: String,
        /// The flag that did not fit.
        flag: String,
        /// The limit.
        max: usize,
    },
    /// The mailbox's files need repair before this operation can go on.
    #[error("{reason}; repair it with: {fix}")]
    NeedsRepair {
        /// What is wrong.
        reason: String,
        /// The command that repairs it.
        fix: String,
    },
    /// An argument or state that the caller must change.
    #[error("{0}")]
    Invalid(String),
    /// The databases: a damaged log, a refused commit, a missing backup.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    /// Wrap an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    /// A corruption finding.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt { path: path.into(), offset, what: what.into() }
    }
}

/// Helper to attach an operation and path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Map the error into [`Error::Io`].
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

/// The cause of an I/O error on `path` in an administrator's words: "missing", "permission
/// denied" with the owner and mode of the file (or of the first parent directory that
/// exists), or the system's message.
pub fn describe_io(err: &std::io::Error, path: &Path) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => "missing (no such file or directory)".to_string(),
        ErrorKind::PermissionDenied => {
            let who = current_ids();
            match owner_and_mode(path) {
                Some((p, desc)) => format!("permission denied ({} is {desc}; running as {who})", p.display()),
                None => format!("permission denied (running as {who})"),
            }
        }
        _ => err.to_string(),
    }
}

fn current_ids() -> String {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    format!("uid {uid} gid {gid}")
}

/// The command that gives `paths` (and everything below them) back to the runtime user:
/// `chown -R user:group path...` (the guide's fix for permission problems).
pub fn chown_fix(user: &str, group: &str, paths: &[&Path]) -> String {
    let mut s = format!("chown -R {user}:{group}");
    for p in paths {
        s.push(' ');
        s.push_str(&crate::util::shell_quote(&p.to_string_lossy()));
    }
    s
}

/// "owned by uid U gid G, mode 0MMM" for `path` or its nearest existing ancestor.
pub fn owner_and_mode(path: &Path) -> Option<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut p = Some(path);
    while let Some(cur) = p {
        if let Ok(m) = std::fs::symlink_metadata(cur) {
            return Some((
                cur.to_path_buf(),
                format!("owned by uid {} gid {}, mode {:04o}", m.uid(), m.gid(), m.mode() & 0o7777),
            ));
        }
        p = cur.parent();
    }
    None
}

/// What can go wrong with the databases beyond plain I/O.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DbError {
    /// A log record that had reached stable storage is damaged.
    #[error(
        "unable to open database: transaction log {} is corrupt at byte offset {offset} (LSN {lsn}): {what}; transactions affected: {affected}; run msdb_repair",
        path.display()
    )]
    LogCorrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte offset.
        offset: u64,
        /// LSN the damaged record should carry.
        lsn: u64,
        /// What is wrong.
        what: String,
        /// Transactions that cannot be replayed past it.
        affected: String,
    },
    /// Log records that every snapshot already includes are damaged: nothing is lost, but
    /// the log must be set aside before anything is appended.
    #[error(
        "unable to open database: transaction log {} is damaged at byte offset {offset} (LSN {lsn}): {what}; the snapshots already include those records, so no committed transaction is lost; run msdb_recover",
        path.display()
    )]
    NeedsRecovery {
        /// Segment file.
        path: PathBuf,
        /// Byte offset.
        offset: u64,
        /// LSN of the damaged record.
        lsn: u64,
        /// What is wrong.
        what: String,
    },
    /// The log does not reach back to the oldest snapshot's checkpoint.
    #[error(
        "unable to open database: the transaction log in {} starts at LSN {have} but the snapshots need it from LSN {need}; run msdb_repair",
        dir.display()
    )]
    LogGap {
        /// Database home.
        dir: PathBuf,
        /// First LSN needed.
        need: u64,
        /// First LSN present.
        have: u64,
    },
    /// An earlier write or fsync failed; nothing more is committed.
    #[error(
        "database environment {} refuses commits after a failed write or fsync ({cause}); restart the program (opening the databases again recovers them)",
        dir.display()
    )]
    Poisoned {
        /// Database home.
        dir: PathBuf,
        /// The failure.
        cause: String,
    },
    /// A commit through an environment opened read-only.
    #[error(
        "database environment {} was opened read-only (by a command that only reads); nothing can be committed through it",
        dir.display()
    )]
    ReadOnly {
        /// Database home.
        dir: PathBuf,
    },
    /// The batch this transaction was part of failed.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// A recovery, restore or repair was interrupted while installing a state.
    #[error(
        "an interrupted recovery or restore left INSTALL in the database home {}; run msdb_recover to finish it",
        dir.display()
    )]
    InstallPending {
        /// Database home.
        dir: PathBuf,
    },
    /// A key or value is too large.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No usable backup.
    #[error("{0}")]
    Backup(String),
    /// A recovery mode refused what it found (strict recovery and a torn tail).
    #[error("{0}")]
    Refused(String),
}
