//! [`RecFs`]: the real file system under one directory, recorded and fault-injecting.
//!
//! Every mutating call is passed to `mstore::fs::RealFs` and, when it succeeds, appended
//! to a trace of [`Op`]s (the same operations [`crate::sim::SimFs`] records), with inode
//! numbers kept by a model of the names under the root. Whole programs run on it
//! unchanged: reconstruct reads its message files through real descriptors (mmap,
//! `openat`), and what it writes goes through here. [`crate::sim::CrashSweep`] then
//! builds the disk a power cut at any point would leave, and [`materialise`] writes that
//! disk into a real directory.
//!
//! Faults ([`FaultPlan`]): the n-th write, fsync, or any mutating call fails with ENOSPC
//! or EIO (a failed write may have written its first half, as a real one may).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mstore::fs::{Fs, FsFile, FsLock, LockMode, Meta, RealFs};
use parking_lot::Mutex;

use crate::sim::{Image, Mark, Ns, Op};

/// Which calls fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOn {
    /// Writes to files (`write_at`).
    Write,
    /// fsyncs of files and directories.
    Sync,
    /// Any mutating call: creations, writes, truncations, renames, removals, fsyncs.
    Any,
}

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    /// Which calls count.
    pub on: FaultOn,
    /// The 1-based number, among the calls that count, of the first that fails.
    pub at: u64,
    /// Fail every counted call from `at` on (a full disk), not only that one.
    pub persistent: bool,
    /// The error: ENOSPC or EIO (`rustix::io::Errno`).
    pub errno: rustix::io::Errno,
}

#[derive(Debug, Default)]
struct State {
    ns: Ns,
    next_ino: usize,
    trace: Vec<Op>,
    recording: bool,
    counted: [u64; 3],
    fault: Option<FaultPlan>,
    faults_hit: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Sync,
    Other,
}

impl State {
    /// Count a mutating call; whether it fails.
    fn call(&mut self, kind: Kind) -> io::Result<()> {
        self.counted[2] += 1;
        match kind {
            Kind::Write => self.counted[0] += 1,
            Kind::Sync => self.counted[1] += 1,
            Kind::Other => {}
        }
        let Some(f) = self.fault else { return Ok(()) };
        let n = match (f.on, kind) {
            (FaultOn::Write, Kind::Write) => self.counted[0],
            (FaultOn::Sync, Kind::Sync) => self.counted[1],
            (FaultOn::Any, _) => self.counted[2],
            _ => return Ok(()),
        };
        if n == f.at || (f.persistent && n > f.at) {
            self.faults_hit += 1;
            return Err(io::Error::from(f.errno));
        }
        Ok(())
    }

    fn record(&mut self, op: Op) {
        if self.recording {
            self.trace.push(op);
        }
    }
}

/// The recording, fault-injecting real file system under `root`.
#[derive(Debug)]
pub struct RecFs {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

struct RecFile {
    inner: Box<dyn FsFile>,
    ino: usize,
    state: Arc<Mutex<State>>,
}

impl FsFile for RecFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut g = self.state.lock();
        let failed = g.call(Kind::Write);
        let data = if failed.is_err() { &data[..data.len() / 2] } else { data };
        if !data.is_empty() {
            self.inner.write_at(offset, data)?;
            let ino = self.ino;
            g.record(Op::Write { ino, offset, data: Arc::new(data.to_vec()) });
        }
        failed
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Sync)?;
        self.inner.sync()?;
        let ino = self.ino;
        g.record(Op::Fsync(ino));
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Sync)?;
        self.inner.sync_data()?;
        let ino = self.ino;
        g.record(Op::Fsync(ino));
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        self.inner.set_len(len)?;
        let ino = self.ino;
        g.record(Op::SetLen { ino, len });
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn set_mtime(&mut self, secs: i64) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        self.inner.set_mtime(secs)?;
        let ino = self.ino;
        g.record(Op::SetMtime { ino, secs });
        Ok(())
    }
}

/// Every directory and file below `root` (not following links), with the bytes and
/// modification times of the files; `root` and its ancestors are directories of the image.
pub fn image_of(root: &Path) -> io::Result<Image> {
    use std::os::unix::fs::MetadataExt;
    let mut img = Image::default();
    for a in root.ancestors() {
        if !a.as_os_str().is_empty() && a != Path::new("/") {
            img.dirs.insert(a.to_path_buf());
        }
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p)?;
            if m.is_dir() {
                img.dirs.insert(p.clone());
                stack.push(p);
            } else if m.is_file() {
                img.files.insert(p.clone(), std::fs::read(&p)?);
                img.mtimes.insert(p, m.mtime());
            }
        }
    }
    Ok(img)
}

/// Write the part of `img` below `from` into the (empty or missing) directory `to`, every
/// path rebased from `from` to `to`. Files keep their recorded modification times.
pub fn materialise(img: &Image, from: &Path, to: &Path) -> io::Result<()> {
    let rebase = |p: &Path| p.strip_prefix(from).ok().map(|rel| to.join(rel));
    std::fs::create_dir_all(to)?;
    for d in &img.dirs {
        if let Some(t) = rebase(d) {
            std::fs::create_dir_all(t)?;
        }
    }
    for (p, b) in &img.files {
        let Some(t) = rebase(p) else { continue };
        std::fs::write(&t, b)?;
        if let Some(&secs) = img.mtimes.get(p) {
            let f = std::fs::File::options().write(true).open(&t)?;
            let ts = rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 };
            rustix::fs::futimens(&f, &rustix::fs::Timestamps { last_access: ts, last_modification: ts })?;
        }
    }
    Ok(())
}

impl RecFs {
    /// Record what happens below `root`; the image the trace starts from is returned by
    /// [`RecFs::start_recording`].
    pub fn new(root: &Path) -> RecFs {
        RecFs { root: root.to_path_buf(), state: Arc::new(Mutex::new(State::default())) }
    }

    /// The directory recorded.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Start recording from what is on disk now: returns that image (inodes numbered in
    /// its order, as [`crate::sim::CrashSweep`] numbers them).
    pub fn start_recording(&self) -> io::Result<Image> {
        let img = image_of(&self.root)?;
        let mut g = self.state.lock();
        g.ns = Ns { dirs: img.dirs.clone(), files: BTreeMap::new() };
        for (i, p) in img.files.keys().enumerate() {
            g.ns.files.insert(p.clone(), i);
        }
        g.next_ino = img.files.len();
        g.trace.clear();
        g.recording = true;
        Ok(img)
    }

    /// Stop recording and take the trace.
    pub fn take_trace(&self) -> Vec<Op> {
        let mut g = self.state.lock();
        g.recording = false;
        std::mem::take(&mut g.trace)
    }

    /// Add a workload mark to the trace.
    pub fn mark(&self, m: Mark) {
        self.state.lock().record(Op::Mark(m));
    }

    /// Inject `fault` (counting calls from now on), or none.
    pub fn set_fault(&self, fault: Option<FaultPlan>) {
        let mut g = self.state.lock();
        g.counted = [0; 3];
        g.fault = fault;
    }

    /// How many calls failed by injection.
    pub fn faults_hit(&self) -> u64 {
        self.state.lock().faults_hit
    }

    /// Mutating calls made since the last [`RecFs::set_fault`]: (writes, syncs, all).
    pub fn calls(&self) -> (u64, u64, u64) {
        let c = self.state.lock().counted;
        (c[0], c[1], c[2])
    }

    fn ino_of(&self, g: &mut State, path: &Path) -> usize {
        match g.ns.files.get(path) {
            Some(&i) => i,
            None => {
                // A file this model did not see made (outside the root, or before the
                // recording): give it an inode of its own.
                let i = g.next_ino;
                g.next_ino += 1;
                i
            }
        }
    }
}

impl Fs for RecFs {
    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        RealFs.metadata(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        let mut missing = Vec::new();
        for a in dir.ancestors() {
            if a.as_os_str().is_empty() || a == Path::new("/") || g.ns.dirs.contains(a) {
                break;
            }
            missing.push(a.to_path_buf());
        }
        if !missing.is_empty() {
            g.call(Kind::Other)?;
        }
        let r = RealFs.create_dir_all(dir);
        for d in missing.into_iter().rev() {
            if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) && g.ns.mkdir(&d).is_ok() {
                g.record(Op::Mkdir(d));
            }
        }
        r
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }

    fn read_bytes(&self, path: &Path) -> io::Result<mstore::io::Bytes> {
        RealFs.read_bytes(path)
    }

    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        RealFs.read_at(path, offset, max)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        let inner = RealFs.create_new(path)?;
        let ino = g.next_ino;
        g.next_ino += 1;
        if g.ns.link(path, ino).is_ok() {
            g.record(Op::Create { path: path.to_path_buf(), ino });
        }
        Ok(Box::new(RecFile { inner, ino, state: Arc::clone(&self.state) }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let inner = RealFs.open_write(path)?;
        let mut g = self.state.lock();
        let ino = self.ino_of(&mut g, path);
        Ok(Box::new(RecFile { inner, ino, state: Arc::clone(&self.state) }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        RealFs.rename(from, to)?;
        if g.ns.rename(from, to).is_ok() {
            g.record(Op::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        }
        Ok(())
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        RealFs.rename_noreplace(from, to)?;
        if g.ns.rename(from, to).is_ok() {
            g.record(Op::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        RealFs.remove_file(path)?;
        if g.ns.unlink(path).is_ok() {
            g.record(Op::Unlink(path.to_path_buf()));
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Other)?;
        RealFs.remove_dir(path)?;
        if g.ns.rmdir(path).is_ok() {
            g.record(Op::Rmdir(path.to_path_buf()));
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.state.lock();
        g.call(Kind::Sync)?;
        RealFs.sync_dir(dir)?;
        g.record(Op::DirFsync(dir.to_path_buf()));
        Ok(())
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> io::Result<FsLock> {
        RealFs.lock(dir, mode)
    }
}
