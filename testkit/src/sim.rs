//! Test support: an in-memory file system that records every operation, injects faults,
//! and materialises what a power cut at any point would leave on disk.
//!
//! [`SimFs`] implements [`Fs`]. With recording on, each mutating call appends an [`Op`]
//! to its trace (writes with their bytes, fsyncs, renames, truncates, directory fsyncs);
//! workloads add [`Mark`]s (a commit issued, a commit acknowledged). [`CrashSweep`] then
//! walks the trace and, for any point, builds the disk a power cut there would leave:
//!
//! - **Data** of a file is what its last fsync made durable, plus (for the random
//!   variants) a random subset of the writes made since, each applied whole or torn:
//!   cut short, or with 512-byte sectors left old, zero-filled or filled with garbage.
//! - **Names** (create, rename, unlink, mkdir) follow the journaling model: they reach
//!   the disk in the order they were made; an fsync of a directory makes every earlier
//!   name operation up to the last one in that directory durable; a crash keeps a random
//!   prefix of the rest. A file's fsync does not make its name durable.
//!
//! A failed fsync (injected) makes nothing durable. Locks are real (a lock table with a
//! condition variable), so threads of one test contend like processes would.
//!
//! This module is test support (used by the crash tests and `cargo xtask crash`); the
//! database code itself only ever sees [`Fs`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::Rng;
use mstore::fs::{Fs, FsFile, FsLock, LockMode, Meta};

/// A file system image: directories and files with their bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// Every directory.
    pub dirs: BTreeSet<PathBuf>,
    /// Every file.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Modification times set explicitly (seconds), by file.
    pub mtimes: BTreeMap<PathBuf, i64>,
}

impl Image {
    /// A digest of the whole image (to recognise identical crash states).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for d in &self.dirs {
            h.update(d.as_os_str().as_encoded_bytes());
            h.update(&[0]);
        }
        for (p, b) in &self.files {
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(&[1]);
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
        for (p, t) in &self.mtimes {
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(&[2]);
            h.update(&t.to_le_bytes());
        }
        *h.finalize().as_bytes()
    }
}

/// A workload's note in the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Transaction number `n` (0-based, in issue order) is about to be committed.
    Issue(usize),
    /// Transaction number `n` was acknowledged (its commit returned `Ok`).
    Ack(usize),
    /// Any other event of the workload.
    Note(u32),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A directory was created.
    Mkdir(PathBuf),
    /// A new empty file (inode `ino`) was linked at `path`, replacing any file there.
    Create {
        /// Where.
        path: PathBuf,
        /// Its inode.
        ino: usize,
    },
    /// Bytes written at an offset.
    Write {
        /// Inode.
        ino: usize,
        /// Offset.
        offset: u64,
        /// The bytes.
        data: Arc<Vec<u8>>,
    },
    /// Truncated or extended.
    SetLen {
        /// Inode.
        ino: usize,
        /// New size.
        len: u64,
    },
    /// Modification time set (seconds).
    SetMtime {
        /// Inode.
        ino: usize,
        /// The time.
        secs: i64,
    },
    /// A successful fsync of a file.
    Fsync(usize),
    /// A rename (file or directory).
    Rename {
        /// From.
        from: PathBuf,
        /// To.
        to: PathBuf,
    },
    /// A file was removed.
    Unlink(PathBuf),
    /// An empty directory was removed.
    Rmdir(PathBuf),
    /// A successful fsync of a directory.
    DirFsync(PathBuf),
    /// A workload's mark.
    Mark(Mark),
}

/// Which calls fail, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The 1-based number of the call that fails (every [`Fs`] method call and every
    /// write, sync or truncate through an open file counts as one).
    pub at: u64,
    /// Fail every call from `at` on, not only that one.
    pub persistent: bool,
}

/// The names of a file system: directories and which inode each file name points to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ns {
    pub(crate) dirs: BTreeSet<PathBuf>,
    pub(crate) files: BTreeMap<PathBuf, usize>,
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn parent_of(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Ns {
    fn parent_ok(&self, p: &Path) -> io::Result<()> {
        let parent = parent_of(p);
        if parent.as_os_str().is_empty() || parent == Path::new("/") || self.dirs.contains(&parent) {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    pub(crate) fn mkdir(&mut self, p: &Path) -> io::Result<()> {
        self.parent_ok(p)?;
        if self.dirs.contains(p) || self.files.contains_key(p) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        self.dirs.insert(p.to_path_buf());
        Ok(())
    }

    pub(crate) fn link(&mut self, p: &Path, ino: usize) -> io::Result<()> {
        self.parent_ok(p)?;
        if self.dirs.contains(p) {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        self.files.insert(p.to_path_buf(), ino);
        Ok(())
    }

    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.parent_ok(to)?;
        if let Some(ino) = self.files.get(from).copied() {
            if self.dirs.contains(to) {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            self.files.remove(from);
            self.files.insert(to.to_path_buf(), ino);
            return Ok(());
        }
        if !self.dirs.contains(from) {
            return Err(not_found());
        }
        if self.files.contains_key(to) || to.starts_with(from) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        if self.dirs.contains(to) && self.has_children(to) {
            return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
        }
        let moved_dirs: Vec<PathBuf> = self.dirs.iter().filter(|d| d.starts_with(from)).cloned().collect();
        let moved_files: Vec<(PathBuf, usize)> =
            self.files.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        self.dirs.remove(to);
        for d in moved_dirs {
            self.dirs.remove(&d);
            let rel = d.strip_prefix(from).map(Path::to_path_buf).unwrap_or_default();
            self.dirs.insert(if rel.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rel) });
        }
        for (p, i) in moved_files {
            self.files.remove(&p);
            let rel = p.strip_prefix(from).map(Path::to_path_buf).unwrap_or_default();
            self.files.insert(to.join(rel), i);
        }
        Ok(())
    }

    fn has_children(&self, d: &Path) -> bool {
        self.dirs.iter().any(|x| x != d && x.starts_with(d)) || self.files.keys().any(|f| f.starts_with(d))
    }

    pub(crate) fn unlink(&mut self, p: &Path) -> io::Result<()> {
        self.files.remove(p).map(|_| ()).ok_or_else(not_found)
    }

    pub(crate) fn rmdir(&mut self, p: &Path) -> io::Result<()> {
        if !self.dirs.contains(p) {
            return Err(not_found());
        }
        if self.has_children(p) {
            return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
        }
        self.dirs.remove(p);
        Ok(())
    }

    pub(crate) fn apply(&mut self, op: &Op) {
        // Replaying an operation that succeeded when it was recorded, in the same order
        // relative to every other name operation: it succeeds again.
        let _ = match op {
            Op::Mkdir(p) => self.mkdir(p),
            Op::Create { path, ino } => self.link(path, *ino),
            Op::Rename { from, to } => self.rename(from, to),
            Op::Unlink(p) => self.unlink(p),
            Op::Rmdir(p) => self.rmdir(p),
            _ => Ok(()),
        };
    }
}

#[derive(Debug, Default)]
struct Inner {
    ns: Ns,
    data: Vec<Vec<u8>>,
    mtimes: Vec<Option<i64>>,
    trace: Vec<Op>,
    recording: bool,
    calls: u64,
    fault: Option<Fault>,
    faults_hit: u64,
    sync_delay: std::time::Duration,
}

impl Inner {
    /// Count a call and decide whether it fails.
    fn call(&mut self, kind: CallKind) -> io::Result<()> {
        self.calls += 1;
        let Some(f) = self.fault else { return Ok(()) };
        if self.calls == f.at || (f.persistent && self.calls > f.at) {
            self.faults_hit += 1;
            return Err(match kind {
                CallKind::Write => io::Error::from(rustix::io::Errno::NOSPC),
                CallKind::Other => io::Error::from(rustix::io::Errno::IO),
            });
        }
        Ok(())
    }

    fn record(&mut self, op: Op) {
        if self.recording {
            self.trace.push(op);
        }
    }
}

#[derive(Clone, Copy)]
enum CallKind {
    Write,
    Other,
}

#[derive(Debug, Default)]
struct LockTable {
    held: Mutex<HashMap<PathBuf, (usize, bool)>>,
    cv: Condvar,
}

struct SimLockGuard {
    table: Arc<LockTable>,
    dir: PathBuf,
    exclusive: bool,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut held = self.table.held.lock();
        if let Some(e) = held.get_mut(&self.dir) {
            if self.exclusive {
                e.1 = false;
            } else {
                e.0 = e.0.saturating_sub(1);
            }
            if *e == (0, false) {
                held.remove(&self.dir);
            }
        }
        self.table.cv.notify_all();
    }
}

/// The in-memory, recording, fault-injecting file system.
#[derive(Debug, Default)]
pub struct SimFs {
    inner: Arc<Mutex<Inner>>,
    locks: Arc<LockTable>,
}

struct SimFile {
    inner: Arc<Mutex<Inner>>,
    ino: usize,
}

impl FsFile for SimFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut g = self.inner.lock();
        let failed = g.call(CallKind::Write);
        // A failed write (ENOSPC) may still have written a part: keep the first half.
        let data = if failed.is_err() { &data[..data.len() / 2] } else { data };
        if !data.is_empty() {
            let file = &mut g.data[self.ino];
            let end = offset as usize + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[offset as usize..end].copy_from_slice(data);
            let ino = self.ino;
            g.record(Op::Write { ino, offset, data: Arc::new(data.to_vec()) });
        }
        failed
    }

    fn sync(&mut self) -> io::Result<()> {
        let delay = {
            let mut g = self.inner.lock();
            g.call(CallKind::Other)?;
            let ino = self.ino;
            g.record(Op::Fsync(ino));
            g.sync_delay
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        g.data[self.ino].resize(len as usize, 0);
        let ino = self.ino;
        g.record(Op::SetLen { ino, len });
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        Ok(g.data[self.ino].len() as u64)
    }

    fn set_mtime(&mut self, secs: i64) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        let ino = self.ino;
        g.mtimes[ino] = Some(secs);
        g.record(Op::SetMtime { ino, secs });
        Ok(())
    }
}

impl SimFs {
    /// An empty file system (only `/`).
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// A file system holding `image`, all of it durable.
    pub fn from_image(image: &Image) -> SimFs {
        let fs = SimFs::new();
        {
            let mut g = fs.inner.lock();
            g.ns.dirs = image.dirs.clone();
            for (p, b) in &image.files {
                let ino = g.data.len();
                g.data.push(b.clone());
                g.mtimes.push(image.mtimes.get(p).copied());
                g.ns.files.insert(p.clone(), ino);
            }
        }
        fs
    }

    /// The current contents (what a reader sees now, synced or not).
    pub fn image(&self) -> Image {
        let g = self.inner.lock();
        Image {
            dirs: g.ns.dirs.clone(),
            files: g.ns.files.iter().map(|(p, &i)| (p.clone(), g.data[i].clone())).collect(),
            mtimes: g.ns.files.iter().filter_map(|(p, &i)| Some((p.clone(), g.mtimes[i]?))).collect(),
        }
    }

    /// Start recording: returns the image the trace starts from.
    pub fn start_recording(&self) -> Image {
        let img = self.image();
        // Renumber inodes to the image's order, so the trace and a fresh
        // `SimFs::from_image(&img)` agree on inode numbers.
        let mut g = self.inner.lock();
        let mut data = Vec::new();
        let mut mtimes = Vec::new();
        let mut files = BTreeMap::new();
        for (p, b) in &img.files {
            files.insert(p.clone(), data.len());
            data.push(b.clone());
            mtimes.push(img.mtimes.get(p).copied());
        }
        g.ns.files = files;
        g.data = data;
        g.mtimes = mtimes;
        g.trace.clear();
        g.recording = true;
        img
    }

    /// Stop recording and take the trace.
    pub fn take_trace(&self) -> Vec<Op> {
        let mut g = self.inner.lock();
        g.recording = false;
        std::mem::take(&mut g.trace)
    }

    /// Add a workload mark to the trace.
    pub fn mark(&self, m: Mark) {
        self.inner.lock().record(Op::Mark(m));
    }

    /// Fail calls from now on as `fault` says (its `at` counts calls from the start).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.inner.lock().fault = fault;
    }

    /// Make every file fsync take this long (as a disk would), outside the file system's
    /// own lock.
    pub fn set_sync_delay(&self, d: std::time::Duration) {
        self.inner.lock().sync_delay = d;
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.inner.lock().calls
    }

    /// How many calls failed by injection.
    pub fn faults_hit(&self) -> u64 {
        self.inner.lock().faults_hit
    }

    /// Replace a file's bytes directly (for corruption tests; not recorded).
    pub fn poke(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut g = self.inner.lock();
        let ino = *g.ns.files.get(path).ok_or_else(not_found)?;
        g.data[ino] = bytes;
        Ok(())
    }
}

impl Fs for SimFs {
    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        if g.ns.dirs.contains(path) || path == Path::new("/") {
            return Ok(Meta { is_dir: true, is_symlink: false, len: 0 });
        }
        let ino = *g.ns.files.get(path).ok_or_else(not_found)?;
        Ok(Meta { is_dir: false, is_symlink: false, len: g.data[ino].len() as u64 })
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(c) = cur {
            if c.as_os_str().is_empty() || c == Path::new("/") || g.ns.dirs.contains(c) {
                break;
            }
            if g.ns.files.contains_key(c) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            missing.push(c.to_path_buf());
            cur = c.parent();
        }
        for d in missing.into_iter().rev() {
            g.ns.mkdir(&d)?;
            g.record(Op::Mkdir(d));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        if !(g.ns.dirs.contains(dir) || dir == Path::new("/")) {
            return Err(not_found());
        }
        let mut out: Vec<String> =
            g.ns.dirs
                .iter()
                .map(PathBuf::as_path)
                .chain(g.ns.files.keys().map(PathBuf::as_path))
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        let ino = *g.ns.files.get(path).ok_or_else(not_found)?;
        Ok(g.data[ino].clone())
    }

    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        let ino = *g.ns.files.get(path).ok_or_else(not_found)?;
        let d = &g.data[ino];
        let start = (offset as usize).min(d.len());
        let end = start.saturating_add(max.min(usize::MAX as u64) as usize).min(d.len());
        Ok(d[start..end].to_vec())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        if g.ns.files.contains_key(path) || g.ns.dirs.contains(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let ino = g.data.len();
        g.ns.link(path, ino)?;
        g.data.push(Vec::new());
        g.mtimes.push(None);
        g.record(Op::Create { path: path.to_path_buf(), ino });
        Ok(Box::new(SimFile { inner: Arc::clone(&self.inner), ino }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        let ino = *g.ns.files.get(path).ok_or_else(not_found)?;
        Ok(Box::new(SimFile { inner: Arc::clone(&self.inner), ino }))
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        if g.ns.files.contains_key(to) || g.ns.dirs.contains(to) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        g.ns.rename(from, to)?;
        g.record(Op::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        g.ns.rename(from, to)?;
        g.record(Op::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        g.ns.unlink(path)?;
        g.record(Op::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        g.ns.rmdir(path)?;
        g.record(Op::Rmdir(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        g.call(CallKind::Other)?;
        if !(g.ns.dirs.contains(dir) || dir == Path::new("/")) {
            return Err(not_found());
        }
        g.record(Op::DirFsync(dir.to_path_buf()));
        Ok(())
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> io::Result<FsLock> {
        let exclusive = mode == LockMode::Exclusive;
        {
            let mut g = self.inner.lock();
            g.call(CallKind::Other)?;
            if !(g.ns.dirs.contains(dir) || dir == Path::new("/")) {
                return Err(not_found());
            }
        }
        let mut held = self.locks.held.lock();
        loop {
            let e = held.entry(dir.to_path_buf()).or_insert((0, false));
            let free = if exclusive { *e == (0, false) } else { !e.1 };
            if free {
                if exclusive {
                    e.1 = true;
                } else {
                    e.0 += 1;
                }
                break;
            }
            self.locks.cv.wait(&mut held);
        }
        let guard = SimLockGuard { table: Arc::clone(&self.locks), dir: dir.to_path_buf(), exclusive };
        Ok(FsLock::by_guard(Box::new(guard), None))
    }
}

/// How a crash state treats the writes not yet made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Only what was fsynced (and name operations made durable) survives.
    SyncedOnly,
    /// Everything survives, as if the cut came right after the last write reached disk.
    Everything,
    /// A random subset of unsynced writes survives, some torn; a random prefix of the
    /// undurable name operations survives.
    Random,
}

#[derive(Clone, Debug, Default)]
struct InodeModel {
    durable: Vec<u8>,
    current: Vec<u8>,
    durable_mtime: Option<i64>,
    current_mtime: Option<i64>,
    /// Trace indexes of `Write`/`SetLen`/`SetMtime` operations since the last fsync.
    pending: Vec<usize>,
}

/// Walks a trace and builds the crash state at each point.
#[derive(Debug)]
pub struct CrashSweep<'a> {
    trace: &'a [Op],
    point: usize,
    ns_durable: Ns,
    ns_current: Ns,
    /// Trace indexes of name operations not yet durable, in order.
    ns_pending: Vec<usize>,
    inodes: Vec<InodeModel>,
    issued: usize,
    acked: usize,
}

impl<'a> CrashSweep<'a> {
    /// Start at point 0 (nothing of the trace happened yet) from `initial`, all durable.
    pub fn new(initial: &Image, trace: &'a [Op]) -> CrashSweep<'a> {
        let mut ns = Ns { dirs: initial.dirs.clone(), files: BTreeMap::new() };
        let mut inodes = Vec::new();
        for (p, b) in &initial.files {
            ns.files.insert(p.clone(), inodes.len());
            let t = initial.mtimes.get(p).copied();
            inodes.push(InodeModel {
                durable: b.clone(),
                current: b.clone(),
                durable_mtime: t,
                current_mtime: t,
                pending: Vec::new(),
            });
        }
        CrashSweep {
            trace,
            point: 0,
            ns_durable: ns.clone(),
            ns_current: ns,
            ns_pending: Vec::new(),
            inodes,
            issued: 0,
            acked: 0,
        }
    }

    /// Operations applied so far (the crash point).
    pub fn point(&self) -> usize {
        self.point
    }

    /// Transactions issued (a commit call started) before this point.
    pub fn issued(&self) -> usize {
        self.issued
    }

    /// Transactions acknowledged before this point.
    pub fn acked(&self) -> usize {
        self.acked
    }

    /// Whether the trace has more operations.
    pub fn has_next(&self) -> bool {
        self.point < self.trace.len()
    }

    /// The operation at the current point (the next to happen), if any.
    pub fn next_op(&self) -> Option<&'a Op> {
        self.trace.get(self.point)
    }

    /// Apply the next operation.
    pub fn advance(&mut self) {
        let Some(op) = self.trace.get(self.point) else { return };
        let idx = self.point;
        self.point += 1;
        match op {
            Op::Mkdir(_) | Op::Rename { .. } | Op::Unlink(_) | Op::Rmdir(_) => {
                self.ns_current.apply(op);
                self.ns_pending.push(idx);
            }
            Op::Create { ino, .. } => {
                while self.inodes.len() <= *ino {
                    self.inodes.push(InodeModel::default());
                }
                self.ns_current.apply(op);
                self.ns_pending.push(idx);
            }
            Op::Write { ino, offset, data } => {
                if let Some(m) = self.inodes.get_mut(*ino) {
                    apply_write(&mut m.current, *offset, data);
                    m.pending.push(idx);
                }
            }
            Op::SetLen { ino, len } => {
                if let Some(m) = self.inodes.get_mut(*ino) {
                    m.current.resize(*len as usize, 0);
                    m.pending.push(idx);
                }
            }
            Op::SetMtime { ino, secs } => {
                if let Some(m) = self.inodes.get_mut(*ino) {
                    m.current_mtime = Some(*secs);
                    m.pending.push(idx);
                }
            }
            Op::Fsync(ino) => {
                if let Some(m) = self.inodes.get_mut(*ino) {
                    m.durable = m.current.clone();
                    m.durable_mtime = m.current_mtime;
                    m.pending.clear();
                }
            }
            Op::DirFsync(dir) => {
                let last = self.ns_pending.iter().rposition(|&i| touches(&self.trace[i], dir));
                if let Some(last) = last {
                    for &i in &self.ns_pending[..=last] {
                        self.ns_durable.apply(&self.trace[i]);
                    }
                    self.ns_pending.drain(..=last);
                }
            }
            Op::Mark(Mark::Issue(n)) => self.issued = self.issued.max(n + 1),
            Op::Mark(Mark::Ack(n)) => self.acked = self.acked.max(n + 1),
            Op::Mark(Mark::Note(_)) => {}
        }
    }

    /// Whether a crash here can leave anything but the synced state (some write or name
    /// operation is not yet durable).
    pub fn has_undurable(&self) -> bool {
        !self.ns_pending.is_empty() || self.inodes.iter().any(|m| !m.pending.is_empty())
    }

    /// The disk after a power cut at the current point.
    pub fn materialise(&self, variant: Variant, rng: &mut Rng) -> Image {
        let mut ns = self.ns_durable.clone();
        let keep = match variant {
            Variant::SyncedOnly => 0,
            Variant::Everything => self.ns_pending.len(),
            Variant::Random => rng.below(self.ns_pending.len() as u64 + 1) as usize,
        };
        for &i in &self.ns_pending[..keep] {
            ns.apply(&self.trace[i]);
        }
        let p_keep = [25, 50, 80][rng.below(3) as usize];
        let mut files = BTreeMap::new();
        let mut mtimes = BTreeMap::new();
        for (path, &ino) in &ns.files {
            let m = match self.inodes.get(ino) {
                Some(m) => m,
                None => continue,
            };
            let (bytes, mtime) = match variant {
                Variant::SyncedOnly => (m.durable.clone(), m.durable_mtime),
                Variant::Everything => (m.current.clone(), m.current_mtime),
                Variant::Random => {
                    let mut b = m.durable.clone();
                    let mut t = m.durable_mtime;
                    for &i in &m.pending {
                        if rng.below(100) >= p_keep {
                            continue;
                        }
                        match &self.trace[i] {
                            Op::Write { offset, data, .. } => torn_write(&mut b, *offset, data, rng),
                            Op::SetLen { len, .. } => b.resize(*len as usize, 0),
                            Op::SetMtime { secs, .. } => t = Some(*secs),
                            _ => {}
                        }
                    }
                    (b, t)
                }
            };
            files.insert(path.clone(), bytes);
            if let Some(t) = mtime {
                mtimes.insert(path.clone(), t);
            }
        }
        Image { dirs: ns.dirs, files, mtimes }
    }
}

fn apply_write(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[offset as usize..end].copy_from_slice(data);
}

/// Apply `data` at `offset` as a power cut might have left it: whole (half the time), cut
/// short, or sector by sector (512-byte sectors of the file) new, old, zeroed or garbage.
fn torn_write(file: &mut Vec<u8>, offset: u64, data: &[u8], rng: &mut Rng) {
    match rng.below(4) {
        0 | 1 => apply_write(file, offset, data),
        2 => {
            let cut = rng.below(data.len() as u64 + 1) as usize;
            apply_write(file, offset, &data[..cut]);
        }
        _ => {
            let start = offset as usize;
            let end = start + data.len();
            let mut sector = start - start % 512;
            if file.len() < end {
                // The file grew: unwritten sectors of the new part read as zeros.
                file.resize(end, 0);
            }
            while sector < end {
                let lo = sector.max(start);
                let hi = (sector + 512).min(end);
                match rng.below(4) {
                    0 => file[lo..hi].copy_from_slice(&data[lo - start..hi - start]),
                    1 => {} // old contents (or zeros past the old end)
                    2 => file[lo..hi].fill(0),
                    _ => {
                        for b in &mut file[lo..hi] {
                            *b = rng.below(256) as u8;
                        }
                    }
                }
                sector += 512;
            }
        }
    }
}

fn touches(op: &Op, dir: &Path) -> bool {
    let parent = |p: &Path| p.parent() == Some(dir);
    match op {
        Op::Mkdir(p) | Op::Unlink(p) | Op::Rmdir(p) => parent(p),
        Op::Create { path, .. } => parent(path),
        Op::Rename { from, to } => parent(from) || parent(to),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mstore::fs::atomic_write;
    use mstore::io::Durability;

    #[test]
    fn names_need_a_directory_fsync_and_data_needs_a_file_fsync() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let img0 = fs.start_recording();
        // Unsynced file: name and data may both vanish.
        let mut f = fs.create_new(Path::new("/d/a")).expect("create");
        f.write_at(0, b"hello").expect("write");
        // Atomic write: both durable.
        atomic_write(&fs, Path::new("/d"), "b", b"bytes", Durability::Sync).expect("atomic");
        let trace = fs.take_trace();
        let mut sweep = CrashSweep::new(&img0, &trace);
        let mut rng = Rng::new(1);
        while sweep.has_next() {
            sweep.advance();
        }
        let synced = sweep.materialise(Variant::SyncedOnly, &mut rng);
        assert_eq!(synced.files.get(Path::new("/d/b")).map(Vec::as_slice), Some(&b"bytes"[..]));
        // The directory fsync of the atomic write made the earlier creation of `a`
        // durable too (journal order), but not its data.
        assert_eq!(synced.files.get(Path::new("/d/a")).map(Vec::as_slice), Some(&b""[..]));
        let all = sweep.materialise(Variant::Everything, &mut rng);
        assert_eq!(all.files.get(Path::new("/d/a")).map(Vec::as_slice), Some(&b"hello"[..]));
        assert_eq!(all, fs.image());
    }

    #[test]
    fn crash_before_directory_fsync_can_lose_a_rename() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let img0 = fs.start_recording();
        let mut f = fs.create_new(Path::new("/d/t")).expect("create");
        f.write_at(0, b"x").expect("write");
        f.sync().expect("sync");
        fs.rename(Path::new("/d/t"), Path::new("/d/f")).expect("rename");
        let trace = fs.take_trace();
        let mut sweep = CrashSweep::new(&img0, &trace);
        while sweep.has_next() {
            sweep.advance();
        }
        let synced = sweep.materialise(Variant::SyncedOnly, &mut Rng::new(2));
        assert!(synced.files.is_empty(), "{synced:?}");
        let mut seen = BTreeSet::new();
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let img = sweep.materialise(Variant::Random, &mut rng);
            seen.insert(img.files.keys().cloned().collect::<Vec<_>>());
        }
        assert!(seen.len() >= 2, "random prefixes of name operations: {seen:?}");
    }

    #[test]
    fn torn_writes_and_faults() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let mut f = fs.create_new(Path::new("/d/a")).expect("create");
        f.write_at(0, &[1u8; 2000]).expect("write");
        f.sync().expect("sync");
        let img0 = fs.start_recording();
        let mut f = fs.open_write(Path::new("/d/a")).expect("open");
        f.write_at(2000, &[2u8; 3000]).expect("write");
        let trace = fs.take_trace();
        let mut sweep = CrashSweep::new(&img0, &trace);
        sweep.advance();
        sweep.advance();
        let mut rng = Rng::new(4);
        let mut shapes = BTreeSet::new();
        for _ in 0..200 {
            let img = sweep.materialise(Variant::Random, &mut rng);
            let b = &img.files[Path::new("/d/a")];
            assert!(b[..2000].iter().all(|&x| x == 1), "synced bytes damaged");
            shapes.insert((b.len(), b[2000..].iter().filter(|&&x| x == 0).count() > 0));
        }
        assert!(shapes.len() >= 3, "{shapes:?}");
        fs.set_fault(Some(Fault { at: fs.calls() + 2, persistent: false }));
        let mut g = fs.open_write(Path::new("/d/a")).expect("open");
        let e = g.sync().expect_err("second call fails");
        assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()));
        g.sync().expect("only once");
        fs.set_fault(Some(Fault { at: fs.calls() + 1, persistent: true }));
        let e = g.write_at(0, b"zz").expect_err("write fails");
        assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::NOSPC.raw_os_error()));
        assert!(fs.read(Path::new("/d/a")).is_err(), "persistent fault");
        assert_eq!(fs.faults_hit(), 3);
    }

    #[test]
    fn directory_rename_moves_the_subtree() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/b/x.partial/sub")).expect("mkdir");
        mstore::fs::write_new(&fs, Path::new("/b/x.partial/sub/f"), b"1", Durability::Sync).expect("w");
        fs.rename(Path::new("/b/x.partial"), Path::new("/b/x")).expect("rename");
        assert_eq!(fs.read(Path::new("/b/x/sub/f")).expect("read"), b"1");
        assert_eq!(fs.list(Path::new("/b")).expect("ls"), vec!["x".to_string()]);
        let _l1 = fs.lock(Path::new("/b"), LockMode::Shared).expect("shared");
        let _l2 = fs.lock(Path::new("/b"), LockMode::Shared).expect("shared");
    }
}
