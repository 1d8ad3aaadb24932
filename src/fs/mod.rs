//! The file-system layer: every write, fsync, rename, removal, directory creation and lock
//! of the store and of the databases goes through [`Fs`].
//!
//! Two implementations ship: [`RealFs`] (the operating system) and, in the dev-only test
//! kit, a recording, fault-injecting, crash-materialising one. Because every mutating
//! call passes here, the crash tests see the exact sequence of operations a workload
//! performs (mailbox appends, flag changes, expunges, checkpoints and reconstruct's
//! rewrite as well as database commits), and the rules of `ARCHITECTURE.md` ("Writes",
//! "Creating and opening files") are kept in one place:
//!
//! - one crash-safe replacement ([`atomic_write`]: temp file, fsync, rename, directory
//!   fsync) and one never-replacing creation ([`create_new_file`], `RENAME_NOREPLACE`);
//! - every file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` under an unpredictable name
//!   ([`temp_name`]), mode [`FILE_MODE`] set on the descriptor (the umask cannot widen
//!   it); directories get [`DIR_MODE`] the same way;
//! - store files are opened with `O_NOFOLLOW` and must be regular files: a writer never
//!   writes through a symbolic link, and says which path was one;
//! - a write that fails removes its own temporary file ([`TempFile`]);
//! - one lock ([`Fs::lock`] with a [`LockMode`]): `flock` on a directory, opened without
//!   following a symbolic link.
//!
//! The interface is path-based and small. A file opened for writing ([`FsFile`]) is
//! written and fsynced through the same handle: an fsync through another descriptor may
//! not report an earlier write-back error (Linux reports such errors once, to the
//! descriptors open when they happened).
//!
//! Reads on the hot paths of reconstruct and verify (one `openat` per message relative to
//! the locked directory's descriptor, then `io::read_file_into` or a map) stay on real
//! descriptors: [`FsLock::dir`] hands out the locked directory for them. They only read.

mod real;

use std::any::Any;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

pub use real::RealFs;

pub use crate::io::Durability;

/// Mode of every file the toolkit creates (owner read-write, group read): set on the
/// descriptor after creation, so the umask neither narrows nor widens it.
pub const FILE_MODE: u32 = 0o640;

/// Mode of every directory the toolkit creates (owner all, group search and read).
pub const DIR_MODE: u32 = 0o750;

/// What [`Fs::metadata`] reports. Symbolic links are never followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// A directory.
    pub is_dir: bool,
    /// A symbolic link (not followed).
    pub is_symlink: bool,
    /// Size in bytes (files).
    pub len: u64,
}

impl Meta {
    /// A regular file (neither a directory nor a symbolic link).
    pub fn is_file(&self) -> bool {
        !self.is_dir && !self.is_symlink
    }
}

/// How a lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Readers: any number at once, none while a writer holds it.
    Shared,
    /// Writers: one at a time, and no reader.
    Exclusive,
}

/// A file open for writing.
pub trait FsFile: Send {
    /// Write all of `data` at `offset` (extending the file if needed).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// fsync the file's data and metadata.
    fn sync(&mut self) -> io::Result<()>;
    /// fsync the file's data and size (`fdatasync`): enough for an append.
    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }
    /// Truncate or extend to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Current size.
    fn size(&self) -> io::Result<u64>;
    /// Set the modification (and access) time, in seconds since the epoch.
    fn set_mtime(&mut self, secs: i64) -> io::Result<()>;
}

/// A held lock; released when dropped.
pub struct FsLock {
    dir: Option<std::fs::File>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl FsLock {
    /// A lock held by an open directory (`flock`): released when the descriptor closes.
    pub fn by_descriptor(dir: std::fs::File) -> FsLock {
        FsLock { dir: Some(dir), _guard: None }
    }

    /// A lock held by whatever releases it on drop (a simulated file system's), with the
    /// real directory descriptor if there is one.
    pub fn by_guard(guard: Box<dyn Any + Send + Sync>, dir: Option<std::fs::File>) -> FsLock {
        FsLock { dir, _guard: Some(guard) }
    }

    /// The locked directory, open, when it is a real one (for `openat`/`statx` relative
    /// to it on the read paths).
    pub fn dir(&self) -> Option<&std::fs::File> {
        self.dir.as_ref()
    }
}

impl Debug for FsLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsLock")
    }
}

/// The file operations of the store and the databases.
pub trait Fs: Send + Sync + Debug {
    /// Metadata of `path`, not following a symbolic link.
    fn metadata(&self, path: &Path) -> io::Result<Meta>;
    /// Create `dir` and its missing parents, each with [`DIR_MODE`]. `dir` itself must
    /// not be a symbolic link.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file (a regular file, not through a symbolic link).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The whole file, mapped or read (`io::read_file`'s policy on the real file system).
    fn read_bytes(&self, path: &Path) -> io::Result<crate::io::Bytes> {
        self.read(path).map(crate::io::Bytes::Owned)
    }
    /// At most `max` bytes from `offset` (fewer at the end of the file).
    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>>;
    /// The file opened once, to be read by offset a window at a time (a regular file, not
    /// through a symbolic link): what a reader that must not hold a large file whole uses.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn crate::codec::ReadAt + Send>> {
        Ok(Box::new(self.read(path)?))
    }
    /// Create a new empty file: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode [`FILE_MODE`]. Fails
    /// with `AlreadyExists` if anything (a symbolic link included) is at `path`.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Open an existing regular file for writing, not through a symbolic link.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Rename a file or directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Rename a file or directory; fails with `AlreadyExists` if `to` exists.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file (or a symbolic link: never what it points to).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// fsync a directory, so that creations, renames and removals in it are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the advisory lock of directory `dir` (`flock`); blocks until granted. A `dir`
    /// that is a symbolic link is refused.
    fn lock(&self, dir: &Path, mode: LockMode) -> io::Result<FsLock>;
}

/// The error for a store path that is a symbolic link: never followed.
pub fn symlink_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link; M-Store never follows or writes through one in the store (remove it, or move the real file or directory there)",
            path.display()
        ),
    )
}

/// An unpredictable temporary name for `name` in its directory: `ms.tmp.<name>.<16 random
/// hex digits>`. The `ms.tmp.` prefix is one no message file, mailbox directory or format
/// file ever has, so a leftover is recognisable; the random part means nobody can plant
/// a file (or a symbolic link) where the next write will create its own.
pub fn temp_name(name: &str) -> String {
    format!("{}{}", temp_prefix(name), crate::util::hex(&random_bytes::<8>()))
}

/// The prefix of every temporary name [`temp_name`] gives `name`.
pub fn temp_prefix(name: &str) -> String {
    format!("ms.tmp.{name}.")
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut filled = 0;
    while filled < N {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // No getrandom(2): fall back to what differs between processes and calls.
                let seed = blake3::hash(format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes());
                b.copy_from_slice(&seed.as_bytes()[..N]);
                break;
            }
        }
    }
    b
}

/// A temporary file being written in `dir`, removed on drop unless it was renamed into
/// place ([`TempFile::persist`]). Created with [`Fs::create_new`] under [`temp_name`].
pub struct TempFile<'a> {
    fs: FsRef<'a>,
    path: PathBuf,
    file: Option<Box<dyn FsFile>>,
    len: u64,
}

/// The file system a [`TempFile`] removes itself through.
enum FsRef<'a> {
    Borrowed(&'a dyn Fs),
    Shared(std::sync::Arc<dyn Fs>),
}

impl<'a> std::ops::Deref for FsRef<'a> {
    type Target = dyn Fs + 'a;
    fn deref(&self) -> &(dyn Fs + 'a) {
        match self {
            FsRef::Borrowed(f) => *f,
            FsRef::Shared(f) => &**f,
        }
    }
}

impl<'a> TempFile<'a> {
    /// Create the temporary file for `name` in `dir`.
    pub fn create(fs: &'a dyn Fs, dir: &Path, name: &str) -> io::Result<TempFile<'a>> {
        TempFile::create_in(FsRef::Borrowed(fs), dir, name)
    }

    /// [`TempFile::create`] holding its own handle of the file system (to live in a
    /// structure of its own).
    pub fn create_shared(fs: std::sync::Arc<dyn Fs>, dir: &Path, name: &str) -> io::Result<TempFile<'static>> {
        TempFile::create_in(FsRef::Shared(fs), dir, name)
    }

    fn create_in(fs: FsRef<'a>, dir: &Path, name: &str) -> io::Result<TempFile<'a>> {
        for _ in 0..8 {
            let path = dir.join(temp_name(name));
            match fs.create_new(&path) {
                Ok(f) => return Ok(TempFile { fs, path, file: Some(f), len: 0 }),
                // Someone else's file under our random name: draw another.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("no free temporary name in {}", dir.display())))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&mut self) -> io::Result<&mut Box<dyn FsFile>> {
        self.file.as_mut().ok_or_else(|| io::Error::other("temporary file already closed"))
    }

    /// Append `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let at = self.len;
        self.file()?.write_at(at, data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set its modification time.
    pub fn set_mtime(&mut self, secs: i64) -> io::Result<()> {
        self.file()?.set_mtime(secs)
    }

    /// fsync it (unless syncing is off) and close it: it is ready to be renamed.
    pub fn finish(&mut self, d: Durability) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            if d == Durability::Sync {
                f.sync()?;
            }
        }
        Ok(())
    }

    /// Rename it to `to`, replacing whatever file is there ([`TempFile::finish`] first).
    pub fn persist(mut self, to: &Path) -> io::Result<()> {
        self.file = None;
        self.fs.rename(&self.path, to)?;
        self.path = PathBuf::new();
        Ok(())
    }

    /// Rename it to `to` unless something is there: `Ok(false)` (and the temporary file
    /// removed) if `to` exists.
    pub fn persist_noreplace(mut self, to: &Path) -> io::Result<bool> {
        self.file = None;
        match self.fs.rename_noreplace(&self.path, to) {
            Ok(()) => {
                self.path = PathBuf::new();
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            // Our own temporary file, never renamed into place: nothing refers to it.
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

impl std::io::Write for TempFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TempFile::write(self, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file open for writing at a position: `std::io::Write` over [`FsFile`] (wrap it in a
/// `BufWriter` for many small writes).
pub struct Appender {
    file: Box<dyn FsFile>,
    pos: u64,
}

impl Appender {
    /// Write from `pos` on.
    pub fn new(file: Box<dyn FsFile>, pos: u64) -> Appender {
        Appender { file, pos }
    }

    /// The file.
    pub fn file(&mut self) -> &mut dyn FsFile {
        &mut *self.file
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> u64 {
        self.pos
    }
}

impl std::io::Write for Appender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// fsync `file` unless syncing is off.
pub fn sync_file(file: &mut dyn FsFile, durability: Durability) -> io::Result<()> {
    match durability {
        Durability::Sync => file.sync(),
        Durability::NoSync => Ok(()),
    }
}

/// fdatasync `file` unless syncing is off.
pub fn sync_data(file: &mut dyn FsFile, durability: Durability) -> io::Result<()> {
    match durability {
        Durability::Sync => file.sync_data(),
        Durability::NoSync => Ok(()),
    }
}

/// Write `data` as the new file `path` (which must not exist) and fsync it (unless
/// syncing is off). The caller syncs the directory. A failed write removes the file.
pub fn write_new(fs: &dyn Fs, path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
    let mut f = fs.create_new(path)?;
    let r = f.write_at(0, data).and_then(|()| sync_file(&mut *f, durability));
    drop(f);
    if r.is_err() {
        let _ = fs.remove_file(path);
    }
    r
}

/// fsync `dir` unless syncing is off.
pub fn sync_dir(fs: &dyn Fs, dir: &Path, durability: Durability) -> io::Result<()> {
    match durability {
        Durability::Sync => fs.sync_dir(dir),
        Durability::NoSync => Ok(()),
    }
}

/// Replace `dir/name` with `data`: temp file, fsync, rename, fsync of `dir` (the store's
/// rule for every file anything relies on). A failure removes the temporary file.
pub fn atomic_write(fs: &dyn Fs, dir: &Path, name: &str, data: &[u8], durability: Durability) -> io::Result<()> {
    let mut tmp = TempFile::create(fs, dir, name)?;
    tmp.write(data)?;
    tmp.finish(durability)?;
    tmp.persist(&dir.join(name))?;
    sync_dir(fs, dir, durability)
}

/// Create `dir/name` holding `data` with modification time `mtime` (seconds), without
/// ever replacing an existing file: written under a temporary name, synced, then renamed
/// with `RENAME_NOREPLACE`. Returns `Ok(false)` (and removes the temporary file) if `name`
/// already exists. The caller syncs the directory (once for a batch).
pub fn create_new_file(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    data: &[u8],
    mtime: Option<i64>,
    durability: Durability,
) -> io::Result<bool> {
    let mut tmp = TempFile::create(fs, dir, name)?;
    tmp.write(data)?;
    if let Some(t) = mtime {
        tmp.set_mtime(t)?;
    }
    tmp.finish(durability)?;
    tmp.persist_noreplace(&dir.join(name))
}

/// Whether `path` exists (as anything, a symbolic link included; any error other than
/// "not found" is returned).
pub fn exists(fs: &dyn Fs, path: &Path) -> io::Result<bool> {
    match fs.metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every file below `dir` (relative paths, sorted; directories are descended into,
/// symbolic links are listed as files and never followed).
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

/// Remove `dir` and everything below it (a symbolic link is removed, never followed).
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
mod tests;
