//! Crash-safe writes: temp file + fsync + rename + fsync of the directory.
//!
//! The rule of the store (ARCHITECTURE.md, "Writes"): a file that other files or users rely
//! on is never rewritten in place. A new version is written to a temporary name in the same
//! directory, synced, renamed over the old one, and the directory is synced so the rename
//! itself survives a power cut. [`Durability::NoSync`] skips the syncs; it exists for
//! generated corpora and benchmarks only and is never the default.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether writes are synced to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync files and directories (the default, and the only safe choice).
    #[default]
    Sync,
    /// Skip every fsync: for generated corpora and benchmarks, never for real mail.
    NoSync,
}

impl Durability {
    /// fsync `file` unless syncing is off.
    pub fn sync_file(self, file: &File) -> std::io::Result<()> {
        match self {
            Durability::Sync => file.sync_all(),
            Durability::NoSync => Ok(()),
        }
    }

    /// fsync the directory `dir` unless syncing is off.
    pub fn sync_dir(self, dir: &Path) -> std::io::Result<()> {
        match self {
            Durability::Sync => fsync_dir(dir),
            Durability::NoSync => Ok(()),
        }
    }
}

/// The temporary name used while `name` is being written in its directory. It starts with
/// `ms.tmp.`, a prefix no message file, mailbox directory or format file ever has, so a
/// leftover from a crash is recognisable.
pub fn temp_name(name: &str) -> String {
    format!("ms.tmp.{name}.{}", std::process::id())
}

/// Replace `dir/name` with `data`: temp file, fsync, rename, fsync of `dir`.
pub fn atomic_write(dir: &Path, name: &str, data: &[u8], durability: Durability) -> std::io::Result<()> {
    let tmp = dir.join(temp_name(name));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp)?;
        file.write_all(data)?;
        durability.sync_file(&file)?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))?;
        durability.sync_dir(dir)
    })();
    if result.is_err() {
        // Our own temporary file, never renamed into place: nothing else refers to it.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Create `dir/name` holding `data` with modification time `mtime` (seconds), without
/// ever replacing an existing file: written under a temporary name, synced, then renamed
/// with `RENAME_NOREPLACE`. Returns `Ok(false)` (and removes the temporary file) if `name`
/// already exists. The caller syncs the directory (once for a batch).
pub fn create_new_file(
    dir: &Path,
    name: &str,
    data: &[u8],
    mtime: Option<i64>,
    durability: Durability,
) -> std::io::Result<bool> {
    let tmp = dir.join(temp_name(name));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp)?;
    let written = (|| {
        file.write_all(data)?;
        if let Some(t) = mtime {
            set_mtime(&file, t)?;
        }
        durability.sync_file(&file)
    })();
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match rename_noreplace(&tmp, &dir.join(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // File systems without RENAME_NOREPLACE: link + unlink gives the same guarantee.
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Set the modification (and access) time of an open file to `secs` since the epoch.
pub fn set_mtime(file: &File, secs: i64) -> std::io::Result<()> {
    use rustix::fs::{Timespec, Timestamps, futimens};
    let ts = Timespec { tv_sec: secs, tv_nsec: 0 };
    futimens(file, &Timestamps { last_access: ts, last_modification: ts })?;
    Ok(())
}

/// fsync a directory, so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        atomic_write(dir.path(), "f", b"one", Durability::Sync).expect("write 1");
        atomic_write(dir.path(), "f", b"two", Durability::Sync).expect("write 2");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn create_new_file_never_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(create_new_file(dir.path(), "1.", b"first", Some(1_000_000_000), Durability::NoSync).expect("create"));
        assert!(!create_new_file(dir.path(), "1.", b"second", None, Durability::NoSync).expect("create again"));
        assert_eq!(std::fs::read(dir.path().join("1.")).expect("read"), b"first");
        let meta = std::fs::metadata(dir.path().join("1.")).expect("stat");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mtime(), 1_000_000_000);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "temporary file left behind");
    }
}
