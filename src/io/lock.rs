//! The per-mailbox advisory lock: `flock` on the mailbox directory itself.
//!
//! Every writer of a mailbox (the store API, reconstruct, import) holds the exclusive lock
//! for as long as it changes any file of the mailbox. Readers do not lock: the files they
//! read are replaced atomically by rename, and logs are append-only with checksummed records.
//! Locking the directory (rather than a lock file) means locking creates nothing on disk.

use std::fs::File;
use std::path::{Path, PathBuf};

/// How to wait for the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Block until the lock is free.
    Wait,
    /// Fail at once with `WouldBlock` if another process holds it.
    NoWait,
}

/// A held exclusive lock; released on drop.
#[derive(Debug)]
pub struct MailboxLock {
    _dir: File,
    path: PathBuf,
}

impl MailboxLock {
    /// Take the exclusive lock on directory `dir`.
    pub fn acquire(dir: &Path, mode: LockMode) -> std::io::Result<MailboxLock> {
        use rustix::fs::{FlockOperation, flock};
        let file = File::open(dir)?;
        let op = match mode {
            LockMode::Wait => FlockOperation::LockExclusive,
            LockMode::NoWait => FlockOperation::NonBlockingLockExclusive,
        };
        loop {
            match flock(&file, op) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(MailboxLock { _dir: file, path: dir.to_path_buf() })
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory (for `*at` calls relative to it).
    pub fn dir(&self) -> &File {
        &self._dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_directory_is_refused_until_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = MailboxLock::acquire(dir.path(), LockMode::Wait).expect("first lock");
        let err = MailboxLock::acquire(dir.path(), LockMode::NoWait).expect_err("second lock must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        drop(held);
        MailboxLock::acquire(dir.path(), LockMode::NoWait).expect("lock after release");
    }
}
