//! The file-system interface of the database code.
//!
//! Every byte the databases read or write, every fsync, rename, truncate, directory fsync
//! and lock goes through [`Fs`], so the crash tests can substitute a recording,
//! fault-injecting in-memory file system ([`super::sim::SimFs`]) for the real one
//! ([`RealFs`]) and see the exact sequence of operations a workload performs.
//!
//! The interface is deliberately small and path-based. A file opened for writing
//! ([`FsFile`]) is written and fsynced through the same handle: an fsync through another
//! descriptor may not report an earlier write-back error (Linux reports such errors once,
//! to the descriptors open when they happened).

use std::any::Any;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::Durability;

/// What [`Fs::metadata`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// A directory.
    pub is_dir: bool,
    /// Size in bytes (files).
    pub len: u64,
}

/// A file open for writing.
pub trait FsFile: Send {
    /// Write all of `data` at `offset` (extending the file if needed).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// fsync the file's data and size.
    fn sync(&mut self) -> io::Result<()>;
    /// Truncate or extend to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// A held lock; released when dropped.
pub struct FsLock(#[allow(dead_code)] Box<dyn Any + Send>);

impl FsLock {
    /// Wrap whatever releases the lock on drop.
    pub fn new(guard: Box<dyn Any + Send>) -> FsLock {
        FsLock(guard)
    }
}

impl Debug for FsLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsLock")
    }
}

/// The file operations of the database code.
pub trait Fs: Send + Sync + Debug {
    /// Metadata of `path` (following symlinks).
    fn metadata(&self, path: &Path) -> io::Result<Meta>;
    /// Create `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// At most `max` bytes from `offset` (fewer at the end of the file).
    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>>;
    /// Open for writing: `create` makes a new empty file (truncating an existing one),
    /// otherwise the file must exist.
    fn open_write(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>>;
    /// Rename a file or directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// fsync a directory, so that creations, renames and removals in it are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the advisory lock of directory `dir`: exclusive (writers) or shared (readers);
    /// blocks until granted.
    fn lock(&self, dir: &Path, exclusive: bool) -> io::Result<FsLock>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// A shared handle to the real file system.
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }
}

struct RealFile(std::fs::File);

impl FsFile for RealFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(data, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Fs for RealFs {
    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        let m = std::fs::metadata(path)?;
        Ok(Meta { is_dir: m.is_dir(), len: m.len() })
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let want = len.saturating_sub(offset).min(max);
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(want as usize);
        f.take(want).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn open_write(&self, path: &Path, create: bool) -> io::Result<Box<dyn FsFile>> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).mode(0o640);
        if create {
            o.create(true).truncate(true);
        }
        Ok(Box::new(RealFile(o.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        crate::io::fsync_dir(dir)
    }

    fn lock(&self, dir: &Path, exclusive: bool) -> io::Result<FsLock> {
        use rustix::fs::{FlockOperation, flock};
        let file = std::fs::File::open(dir)?;
        let op = if exclusive { FlockOperation::LockExclusive } else { FlockOperation::LockShared };
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(FsLock::new(Box::new(file))),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Write `data` as the new file `path` (created or truncated) and fsync it (unless
/// syncing is off). The caller syncs the directory.
pub fn write_new(fs: &dyn Fs, path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
    let mut f = fs.open_write(path, true)?;
    f.write_at(0, data)?;
    if durability == Durability::Sync {
        f.sync()?;
    }
    Ok(())
}

/// fsync `dir` unless syncing is off.
pub fn sync_dir(fs: &dyn Fs, dir: &Path, durability: Durability) -> io::Result<()> {
    match durability {
        Durability::Sync => fs.sync_dir(dir),
        Durability::NoSync => Ok(()),
    }
}

/// Replace `dir/name` with `data`: temp file, fsync, rename, fsync of `dir` (the store's
/// rule for every file anything relies on).
pub fn atomic_write(fs: &dyn Fs, dir: &Path, name: &str, data: &[u8], durability: Durability) -> io::Result<()> {
    let tmp = dir.join(crate::io::temp_name(name));
    if let Err(e) = write_new(fs, &tmp, data, durability) {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs.rename(&tmp, &dir.join(name)) {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    sync_dir(fs, dir, durability)
}

/// Whether `path` exists (any error other than "not found" is returned).
pub fn exists(fs: &dyn Fs, path: &Path) -> io::Result<bool> {
    match fs.metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every file below `dir` (relative paths, sorted; directories are descended into).
pub fn walk_files(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for name in fs.list(&dir.join(&rel))? {
            let p = rel.join(&name);
            if fs.metadata(&dir.join(&p))?.is_dir {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Remove `dir` and everything below it.
pub fn remove_tree(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    for name in fs.list(dir)? {
        let p = dir.join(name);
        if fs.metadata(&p)?.is_dir {
            remove_tree(fs, &p)?;
        } else {
            fs.remove_file(&p)?;
        }
    }
    fs.remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fs_round_trip_and_locks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = RealFs;
        atomic_write(&fs, dir.path(), "a", b"hello world", Durability::Sync).expect("write");
        assert_eq!(fs.read(&dir.path().join("a")).expect("read"), b"hello world");
        assert_eq!(fs.read_at(&dir.path().join("a"), 6, 100).expect("read"), b"world");
        assert_eq!(fs.read_at(&dir.path().join("a"), 60, 100).expect("read"), b"");
        assert_eq!(fs.list(dir.path()).expect("ls"), vec!["a".to_string()]);
        let mut f = fs.open_write(&dir.path().join("a"), false).expect("open");
        f.write_at(11, b"!").expect("append");
        f.set_len(5).expect("truncate");
        f.sync().expect("sync");
        assert_eq!(fs.read(&dir.path().join("a")).expect("read"), b"hello");
        let shared1 = fs.lock(dir.path(), false).expect("shared");
        let shared2 = fs.lock(dir.path(), false).expect("shared again");
        drop((shared1, shared2));
        let _ex = fs.lock(dir.path(), true).expect("exclusive");
        fs.create_dir_all(&dir.path().join("x/y")).expect("mkdir");
        write_new(&fs, &dir.path().join("x/y/z"), b"1", Durability::NoSync).expect("write");
        assert_eq!(walk_files(&fs, dir.path()).expect("walk"), vec![PathBuf::from("a"), PathBuf::from("x/y/z")]);
        remove_tree(&fs, &dir.path().join("x")).expect("rm");
        assert!(!exists(&fs, &dir.path().join("x")).expect("exists"));
    }
}
