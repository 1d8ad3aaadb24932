//! The one place that decides between mapping and reading a file (the `unsafe` of the
//! crate, with `io::limit_malloc_arenas`).
//!
//! Policy (taken from b3sum): files of [`MAP_THRESHOLD`] bytes or more are memory-mapped,
//! smaller ones are read with one `read` into a buffer, and a failed map falls back to
//! reading. Callers get [`Bytes`], which derefs to `&[u8]` either way.
//!
//! SIGBUS: a mapping faults if the file is truncated underneath it. The store never
//! truncates a message, index or cache file in place (files are written once and replaced
//! by rename, which leaves existing mappings on the old inode intact), and writers hold the
//! mailbox lock. A foreign process truncating a message file while a scan maps it is the
//! remaining risk; it is documented in ARCHITECTURE.md.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;

/// Files at least this large are mapped; smaller ones are read. Measured with the
/// reconstruct bench's floor (100,000 generated messages, 1.1 GiB, 2 threads, warm page
/// cache, 5 runs each): mapping from 16 KiB took 1.99 s (1.14 s system), from 256 KiB
/// 1.77 s (0.97 s), never 1.72 s (1.00 s): `munmap` in a threaded process costs TLB
/// shootdowns that a copy of a small file does not. Mapping stays for large files, whose
/// copy would cost memory.
pub const MAP_THRESHOLD: u64 = 256 * 1024;

/// Most bytes reserved up front for a file read without mapping (its size comes from
/// `fstat`, but a file may shrink before it is read).
const READ_CAP: u64 = 64 * 1024 * 1024;

/// The contents of a file: mapped or owned.
pub enum Bytes {
    /// A read-only private mapping of the whole file.
    Mapped(memmap2::Mmap),
    /// The file's bytes, read into memory.
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Bytes::Mapped(_) => "Mapped",
            Bytes::Owned(_) => "Owned",
        };
        write!(f, "Bytes::{kind}({} bytes)", self.len())
    }
}

/// Whether a large file may be memory-mapped rather than read (a policy decided once, from
/// the command line or by the caller's kind of file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// Map a file of [`MAP_THRESHOLD`] bytes or more.
    Allow,
    /// Always read.
    Never,
}

/// What [`fetch_file`] leaves in the page cache of a file it had to read from the device.
///
/// A file the page cache held whole before, or where the kernel cannot tell (no
/// `RWF_NOWAIT`), is always left as it was; a mapped file too (its pages cannot be dropped
/// while mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Leave it cached (a caller that reads the file again).
    Keep,
    /// Drop it again once read (`POSIX_FADV_DONTNEED`).
    DropCold,
    /// What a scan of the store does: keep what it reads from the device until this
    /// process has kept an eighth of the machine's memory of it (`cold_budget`), then drop
    /// what it reads from the device. A store that fits stays cached for the run that
    /// follows (rescue's verify after its rebuild); a larger one does not push out what
    /// the machine had cached, and costs the kernel less: a cold read of 1,000,000 files
    /// (11 GiB) took 46 s of system time with every file kept and 30 s with each
    /// dropped (wall 28.7 s against 23.6 s), while dropping each of 100,000 files (1.1
    /// GiB) cost 3 µs a file more than it saved.
    Budget,
}

/// Bytes read from the device and kept in the page cache by [`Cache::Budget`] reads so far.
static COLD_KEPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of files read from the device that [`Cache::Budget`] keeps in the page cache in
/// one process: an eighth of the machine's memory.
pub fn cold_budget() -> u64 {
    static BUDGET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let si = rustix::system::sysinfo();
        (si.totalram as u64).saturating_mul(u64::from(si.mem_unit.max(1))) / 8
    })
}

/// Whether a file of `len` bytes read from the device is dropped from the page cache.
fn drop_cold(cache: Cache, len: u64) -> bool {
    match cache {
        Cache::Keep => false,
        Cache::DropCold => true,
        Cache::Budget => over_budget(&COLD_KEPT, len, cold_budget()),
    }
}

/// Count `len` more bytes kept in `kept`, unless that passes `budget`: then they are to
/// be dropped (`true`), and so is everything after.
fn over_budget(kept: &std::sync::atomic::AtomicU64, len: u64, budget: u64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    kept.fetch_update(Relaxed, Relaxed, |k| k.checked_add(len).filter(|&t| t <= budget)).is_err()
}

/// Open `path` and return its contents, mapped or read according to the policy above.
pub fn read_file(path: &Path) -> std::io::Result<Bytes> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    read_file_at(&file, len, Map::Allow)
}

/// Contents of an already opened file whose length the caller took from one `fstat`
/// (so a scan pays for exactly one `open` and one `fstat` per file). `mapping` lets the
/// caller turn mapping off altogether.
pub fn read_file_at(file: &File, len: u64, mapping: Map) -> std::io::Result<Bytes> {
    if mapping == Map::Allow && len >= MAP_THRESHOLD {
        if let Ok(map) = map(file) {
            // The file may have shrunk between fstat and mmap; the map covers the size at
            // mapping time, so a length check here keeps callers honest.
            if map.len() as u64 == len {
                return Ok(Bytes::Mapped(map));
            }
        }
    }
    read_small(file, len).map(Bytes::Owned)
}

/// Read the file's `len` bytes (its size from the caller's `fstat`): one `read` for a file
/// that has not changed since, into a buffer that is not zeroed first. A file that shrank
/// meanwhile is an `UnexpectedEof` error; bytes appended meanwhile are not read (message
/// files are written once, so neither happens to a healthy store). The allocation is
/// capped, so a lying size cannot reserve memory the file does not fill.
fn read_small(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len.min(READ_CAP) as usize);
    let got = file.take(len).read_to_end(&mut buf)?;
    if (got as u64) < len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read"));
    }
    Ok(buf)
}

/// The contents of a file read by [`read_file_into`]: mapped, or in the caller's buffer.
pub enum Contents<'b> {
    /// A read-only private mapping of the whole file.
    Mapped(memmap2::Mmap),
    /// The file's bytes, in the caller's buffer.
    Read(&'b [u8]),
    /// A file too large for the reusable buffer, read into its own.
    Owned(Vec<u8>),
}

impl Deref for Contents<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Contents::Mapped(m) => m,
            Contents::Read(b) => b,
            Contents::Owned(v) => v,
        }
    }
}

/// One page of a [`ReadBuf`].
#[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// A read buffer kept from file to file by a scanning thread: one allocation per thread
/// instead of one per file. It is page-aligned on purpose. Measured (reconstruct full
/// rebuild, perf): reading into one reused heap buffer made the kernel's copy to user
/// space (`_copy_to_iter`) 3.4 times as expensive as reading into fresh allocations
/// (22 % of CPU against 6.5 %); a page-aligned buffer brings it back to 6.5 %. The likely
/// cause is 4 KiB aliasing between the page-aligned page cache and a destination a few
/// bytes past a page boundary.
#[derive(Default)]
pub struct ReadBuf {
    pages: Vec<Page>,
}

impl ReadBuf {
    /// Bytes held.
    pub fn capacity(&self) -> usize {
        self.pages.len() * 4096
    }

    /// The first `n` bytes, after growing the buffer if it is smaller: into a fresh
    /// allocation (the old bytes are not worth copying), zeroed by the allocator
    /// (`calloc`, which does not write memory fresh from the kernel), rounded up to a
    /// power of two pages up to [`POOL_BUF_MAX`] so that pooled buffers soon fit most files
    /// and are rarely allocated again. Measured (perf, warm full rebuild): growing in place
    /// (`Vec::resize`: a copy and a `memset`) cost 3 % of the user time.
    fn fit(&mut self, n: usize) -> std::io::Result<&mut [u8]> {
        let pages = n.div_ceil(4096);
        if self.pages.len() < pages {
            let grown = pages.next_power_of_two().min(POOL_BUF_MAX / 4096).max(pages);
            self.pages = <Page as zerocopy::FromZeros>::new_vec_zeroed(grown)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        }
        Ok(&mut zerocopy::IntoBytes::as_mut_bytes(&mut self.pages[..])[..n])
    }
}

/// Open `name` in the open directory `dir` for reading, relative to it (no path walk),
/// not following a symbolic link.
pub fn open_at<P: rustix::path::Arg>(dir: impl std::os::fd::AsFd, name: P) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let fd = openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())?;
    Ok(File::from(fd))
}

/// Size of an open file: one `statx` asking for the size only.
pub fn file_size(file: &File) -> std::io::Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    Ok(statx(file, c"", AtFlags::EMPTY_PATH, StatxFlags::SIZE)?.stx_size)
}

/// Run `f` with this thread's [`ReadBuf`] (each scanning worker keeps one). A buffer grown
/// past 4 MiB (a huge file read without mapping) is dropped afterwards, so it does not pin
/// that memory for the rest of the run.
pub fn with_read_buf<R>(f: impl FnOnce(&mut ReadBuf) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<ReadBuf> = std::cell::RefCell::default();
    }
    BUF.with_borrow_mut(|buf| {
        let r = f(buf);
        if buf.capacity() > 4 << 20 {
            *buf = ReadBuf::default();
        }
        r
    })
}

/// [`read_file_at`] into a buffer the caller keeps from file to file. Same mapping
/// policy, same checks (a file that shrank is `UnexpectedEof`); at most 64 MiB is read
/// without mapping.
pub fn read_file_into<'b>(file: &File, len: u64, mapping: Map, buf: &'b mut ReadBuf) -> std::io::Result<Contents<'b>> {
    if mapping == Map::Allow && len >= MAP_THRESHOLD {
        if let Ok(map) = map(file) {
            if map.len() as u64 == len {
                return Ok(Contents::Mapped(map));
            }
        }
    }
    if len > READ_CAP {
        // Not kept in the reusable buffer (and read as it arrives, not reserved whole).
        return read_small(file, len).map(Contents::Owned);
    }
    let n = len as usize;
    let bytes = buf.fit(n)?;
    let mut reader = file;
    reader.read_exact(bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read")
        } else {
            e
        }
    })?;
    Ok(Contents::Read(bytes))
}

/// A file's contents fetched by one thread (an I/O thread of `scan`) for another
/// to work on: mapped, or read into a page-aligned buffer taken from a pool (the thread's
/// own, then one shared by all threads) and given back when dropped (so a run allocates a
/// few buffers, not one per file, and the copy out of the page cache lands page-aligned,
/// see [`ReadBuf`]).
pub struct Fetched(FetchedInner);

enum FetchedInner {
    Mapped(memmap2::Mmap),
    Read(ReadBuf, usize),
    Owned(Vec<u8>),
}

/// Buffers given back by dropped [`Fetched`] values, beyond what each thread keeps for
/// itself ([`LOCAL`]).
static POOL: parking_lot::Mutex<Pool> = parking_lot::Mutex::new(Pool::new(POOL_BYTES));

thread_local! {
    /// Buffers this thread gave back, taken again first: a warm scan's worker reads its
    /// next file into a buffer still in its own core's cache, and takes no lock. With one
    /// pool for all threads, one profile of a warm full rebuild of 100,000 messages had
    /// the copy out of the page cache cost 60 % more per byte than the floor's, and the
    /// pool's lock and buffer list a further 2 % of the run: cache lines moving between
    /// the cores. Alternating pairs against the floor: 1.28 instead of 1.31 (medians).
    static LOCAL: std::cell::RefCell<Pool> = const { std::cell::RefCell::new(Pool::new(LOCAL_POOL_BYTES)) };
}

/// Most bytes of idle buffers a thread keeps in [`LOCAL`]: a run of files in flight on
/// one worker (16 files of the usual size), not a read-ahead's worth.
const LOCAL_POOL_BYTES: usize = 1 << 20;

/// A buffer of at least `pages` pages: this thread's own first, then the shared pool's.
fn take_buf(pages: usize) -> Option<ReadBuf> {
    LOCAL.try_with(|l| l.borrow_mut().take(pages)).ok().flatten().or_else(|| POOL.lock().take(pages))
}

/// Give `b` back: to this thread's pool if it has room, else to the shared one.
fn give_buf(b: &mut ReadBuf) {
    let _ = LOCAL.try_with(|l| l.borrow_mut().give(b));
    if b.capacity() > 0 {
        POOL.lock().give(b);
    }
}

/// Most bytes of idle buffers kept in the pool, and the largest buffer kept (bigger ones
/// are freed; files from [`MAP_THRESHOLD`] up are mapped, not read). Bounded by bytes, not
/// by count: a scan loads hundreds of small files ahead, and a pool of 64 buffers of any
/// size sent most of them back to the allocator, to be zeroed again for the next files
/// (`memset` in `calloc`: 4 % of a warm verify's user time).
const POOL_BYTES: usize = 8 << 20;
const POOL_BUF_MAX: usize = MAP_THRESHOLD as usize;
/// Size classes of pooled buffers: 1, 2, 4, ... pages, up to [`POOL_BUF_MAX`].
const CLASSES: usize = (POOL_BUF_MAX / 4096).trailing_zeros() as usize + 1;

/// Idle read buffers by size class, so that a small file does not take (and the budget
/// count) a large buffer, nor a large file throw a small one away.
struct Pool {
    classes: [Vec<ReadBuf>; CLASSES],
    /// Bytes held by the buffers of `classes`.
    bytes: usize,
    /// Most bytes it keeps.
    limit: usize,
}

impl Pool {
    const fn new(limit: usize) -> Self {
        Pool { classes: [const { Vec::new() }; CLASSES], bytes: 0, limit }
    }

    /// A buffer of at least `pages` pages, of the smallest class that has one.
    fn take(&mut self, pages: usize) -> Option<ReadBuf> {
        let first = pages.max(1).next_power_of_two().trailing_zeros() as usize;
        let b = self.classes.get_mut(first..)?.iter_mut().find_map(Vec::pop)?;
        self.bytes -= b.capacity();
        Some(b)
    }

    /// Keep `b` (leaving an empty buffer in its place) if it is of a class and there is
    /// room.
    fn give(&mut self, b: &mut ReadBuf) {
        let (pages, cap) = (b.pages.len(), b.capacity());
        if !pages.is_power_of_two() || cap > POOL_BUF_MAX || self.bytes + cap > self.limit {
            return;
        }
        if let Some(class) = self.classes.get_mut(pages.trailing_zeros() as usize) {
            self.bytes += cap;
            class.push(std::mem::take(b));
        }
    }
}

impl Deref for Fetched {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            FetchedInner::Mapped(m) => m,
            FetchedInner::Read(b, n) => &zerocopy::IntoBytes::as_bytes(&b.pages[..])[..*n],
            FetchedInner::Owned(v) => v,
        }
    }
}

impl Fetched {
    /// Memory it holds: the whole buffer (a pooled buffer grown for an earlier, larger
    /// file keeps its size), not only the file's bytes. What a read-ahead budget counts.
    pub fn held(&self) -> usize {
        match &self.0 {
            FetchedInner::Mapped(m) => m.len(),
            FetchedInner::Read(b, _) => b.capacity(),
            FetchedInner::Owned(v) => v.capacity(),
        }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if let FetchedInner::Read(b, _) = &mut self.0 {
            give_buf(b);
        }
    }
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            FetchedInner::Mapped(_) => "Mapped",
            FetchedInner::Read(..) => "Read",
            FetchedInner::Owned(_) => "Owned",
        };
        write!(f, "Fetched::{kind}({} bytes)", self.len())
    }
}

/// [`read_file_into`] for a file another thread will work on: same mapping policy and
/// checks, the buffer from the shared pool. A file to be mapped is mapped populated
/// (`MAP_POPULATE`): every page is read in now, by this thread, so the thread that works
/// on it never waits for the device on a page fault (on a cold cache, a worker faulting
/// in a mapping page by page ran at queue depth 1 and doubled the run's time).
///
/// `cache`: whether what had to be read from the device stays in the page cache.
pub fn fetch_file(file: &File, len: u64, mapping: Map, cache: Cache) -> std::io::Result<Fetched> {
    if mapping == Map::Allow && len >= MAP_THRESHOLD {
        if let Ok(map) = map_populated(file) {
            if map.len() as u64 == len {
                return Ok(Fetched(FetchedInner::Mapped(map)));
            }
        }
    }
    if len > READ_CAP {
        return read_small(file, len).map(|v| Fetched(FetchedInner::Owned(v)));
    }
    let mut buf = take_buf(len.div_ceil(4096) as usize).unwrap_or_default();
    let n = len as usize;
    let bytes = buf.fit(n)?;
    // What the page cache holds is taken without waiting; the rest is read. A prefetched
    // file is read at once: it was asked of the device already, and whether it was cached
    // before says nothing about the cache (see [`prefetched`]).
    let prefetched = PREFETCHED.with(std::cell::Cell::get);
    let cached = if prefetched { None } else { read_cached(file, bytes) };
    let from = cached.unwrap_or(0);
    use std::os::unix::fs::FileExt;
    file.read_exact_at(&mut bytes[from..], from as u64).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read")
        } else {
            e
        }
    })?;
    if (prefetched || cached.is_some_and(|c| c < n)) && drop_cold(cache, len) {
        // Advice only: a failure changes nothing that was read.
        let _ = rustix::fs::fadvise(file, 0, std::num::NonZeroU64::new(len), rustix::fs::Advice::DontNeed);
    }
    Ok(Fetched(FetchedInner::Read(buf, n)))
}

/// Most bytes of one file [`prefetch_at`] asks for: the rest of a larger file is read when
/// it is loaded (a file this large is mapped, populated by the thread that loads it).
pub const PREFETCH_MAX: u64 = 4 << 20;

thread_local! {
    /// This thread is loading files [`prefetch_at`] asked for (see [`prefetched`]).
    static PREFETCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, which loads files that [`prefetch_at`] asked the kernel for: [`fetch_file`]
/// reads them without probing the page cache first (they are in it, or on their way), does
/// not count them in [`page_cache_misses`] (they would all look cached, and tell nothing
/// about whether the rest of the scan needs its I/O threads), and counts them as read
/// from the device for [`Cache::Budget`].
pub fn prefetched<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PREFETCHED.with(|p| p.set(self.0));
        }
    }
    let _reset = Reset(PREFETCHED.with(|p| p.replace(true)));
    f()
}

/// Whether this thread is in [`prefetched`].
#[cfg(test)]
pub(crate) fn in_prefetched() -> bool {
    PREFETCHED.with(std::cell::Cell::get)
}

/// Ask the kernel to start reading message file `name` of the open directory `dir` into
/// the page cache, and return without waiting for it (`posix_fadvise(POSIX_FADV_WILLNEED)`,
/// at most [`PREFETCH_MAX`] bytes): the bytes asked for, 0 when it cannot be opened (the
/// load that follows reports why). Opened relative to `dir`, not following a symbolic
/// link, read-only, and closed at once. Counted in [`page_cache_misses`] by whether its
/// first page was cached.
///
/// One thread asking ahead keeps the device as busy as many threads blocked in `read`,
/// at a fraction of their CPU: the kernel completes the requests without waking anyone,
/// and the worker that reads the file later finds it in memory (README, "Cold page
/// cache").
pub fn prefetch_at(dir: impl std::os::fd::AsFd, name: &std::ffi::CStr) -> u64 {
    let Ok(file) = open_at(dir, name) else { return 0 };
    let len = file_size(&file).unwrap_or(0).min(PREFETCH_MAX);
    // Whether its first page is cached already is what [`page_cache_misses`] counts for
    // it: the loads of prefetched files are not counted (they all look cached), and a scan
    // must still tell a warm cache, where asking costs more than it gives, from a cold one.
    if len > 0 {
        let _ = read_cached(&file, &mut [0u8; 1]);
    }
    if let Some(n) = std::num::NonZeroU64::new(len) {
        // Advice only: a failure leaves the read to the load.
        let _ = rustix::fs::fadvise(&file, 0, Some(n), rustix::fs::Advice::WillNeed);
    }
    len
}

/// Files read by [`fetch_file`], and those of them the page cache did not hold whole:
/// what tells a scan whether its reader threads help (a cold device) or only hand over
/// what a worker could have read at once (a warm cache). See [`page_cache_misses`].
static READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static MISSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Files [`fetch_file`] read so far in this process, and how many of them were not in the
/// page cache whole (counted when the kernel can tell: `preadv2` with `RWF_NOWAIT`).
pub fn page_cache_misses() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (READS.load(Relaxed), MISSES.load(Relaxed))
}

/// Count `reads` file reads of which `misses` were not in the page cache, as if
/// [`fetch_file`] had made them (tests of the judgement, without a cold device).
#[cfg(test)]
pub(crate) fn count_reads_for_test(reads: u64, misses: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    READS.fetch_add(reads, Relaxed);
    MISSES.fetch_add(misses, Relaxed);
}

/// Read into `bytes` from the start of `file` what the page cache holds, without waiting
/// for the device (`preadv2(RWF_NOWAIT)`): the count read (0 if the first page is not
/// cached; `None` where the kernel cannot tell). Counted in [`page_cache_misses`].
fn read_cached(file: &File, bytes: &mut [u8]) -> Option<usize> {
    if bytes.is_empty() {
        return Some(0);
    }
    let want = bytes.len();
    let got = rustix::io::preadv2(file, &mut [std::io::IoSliceMut::new(bytes)], 0, rustix::io::ReadWriteFlags::NOWAIT);
    match got {
        Ok(k) => {
            count_read(k < want);
            Some(k)
        }
        Err(rustix::io::Errno::AGAIN) => {
            count_read(true);
            Some(0)
        }
        // Not supported here (an old kernel, a file system without it): not counted.
        Err(_) => None,
    }
}

/// Hits counted by this thread and not yet added to [`READS`]: two workers adding to
/// one counter at every file moved its cache line between their cores. A miss is added at once, with the hits before it, so a cold start is
/// seen as soon as it was before; hits are added every [`HITS_BATCH`].
const HITS_BATCH: u64 = 32;

/// Count one read of [`read_cached`] (see [`page_cache_misses`]).
fn count_read(missed: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    thread_local! {
        static HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let pending = HITS.try_with(|h| h.get()).unwrap_or(0);
    if !missed && pending + 1 < HITS_BATCH {
        let _ = HITS.try_with(|h| h.set(pending + 1));
        return;
    }
    let _ = HITS.try_with(|h| h.set(0));
    READS.fetch_add(pending + 1, Relaxed);
    if missed {
        MISSES.fetch_add(1, Relaxed);
    }
}

#[expect(unsafe_code, reason = "memory-mapping a file is inherently unsafe")]
fn map_populated(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: as for `map` below.
    unsafe { memmap2::MmapOptions::new().populate().map(file) }
}

#[expect(unsafe_code, reason = "memory-mapping a file is inherently unsafe")]
fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private. Files the store maps are never
    // modified or truncated in place by the store itself (they are replaced by rename);
    // see the module documentation for the remaining SIGBUS risk from foreign writers.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_pool_gives_the_smallest_buffer_that_fits_and_keeps_a_bounded_number_of_bytes() {
        let mut pool = Pool::new(POOL_BYTES);
        let mut b = ReadBuf::default();
        b.fit(5000).expect("fit");
        assert_eq!(b.capacity(), 2 * 4096, "5,000 bytes take two pages");
        b.fit(3 * 4096 + 1).expect("fit");
        assert_eq!(b.capacity(), 4 * 4096, "four pages");
        let mut five = ReadBuf::default();
        five.fit(4 * 4096 + 1).expect("fit");
        assert_eq!(five.capacity(), 8 * 4096, "five pages rounded up to a power of two");
        assert_eq!(five.fit(8 * 4096).expect("fit").len(), 8 * 4096, "and it fits eight without growing");
        assert_eq!(five.capacity(), 8 * 4096);
        pool.give(&mut b);
        assert_eq!((b.capacity(), pool.bytes), (0, 4 * 4096), "kept, and counted");
        let mut small = ReadBuf::default();
        small.fit(1).expect("fit");
        pool.give(&mut small);
        // A file of one page takes the one-page buffer, not the four-page one, whichever
        // came back last.
        let mut later = ReadBuf::default();
        later.fit(2 * 4096 + 1).expect("fit");
        pool.give(&mut later);
        assert_eq!(pool.take(1).map(|b| b.capacity()), Some(4096));
        assert_eq!(pool.take(1).map(|b| b.capacity()), Some(4 * 4096), "the next smallest");
        // Two pages: no buffer of that class; the next larger one is given.
        assert_eq!(pool.take(2).map(|b| b.capacity()), Some(4 * 4096));
        assert!(pool.take(1).is_none());
        assert_eq!(pool.bytes, 0);
        // A buffer of another size (a file between classes, too large to pool) is not kept.
        let mut odd = ReadBuf::default();
        odd.fit(POOL_BUF_MAX + 1).expect("fit");
        pool.give(&mut odd);
        assert_eq!((odd.capacity() > POOL_BUF_MAX, pool.bytes), (true, 0));
        // Beyond its byte bound, buffers given back go back to the allocator.
        for _ in 0..POOL_BYTES / POOL_BUF_MAX + 3 {
            let mut big = ReadBuf::default();
            big.fit(POOL_BUF_MAX).expect("fit");
            pool.give(&mut big);
        }
        assert_eq!(pool.bytes, POOL_BYTES);
        assert_eq!(pool.classes.iter().map(Vec::len).sum::<usize>(), POOL_BYTES / POOL_BUF_MAX);
    }

    #[test]
    fn a_thread_takes_back_its_own_buffers_first_and_keeps_a_bounded_number_of_bytes() {
        // On a thread of its own, so that this thread's pool starts empty.
        std::thread::spawn(|| {
            let local_bytes = || LOCAL.with_borrow(|l| l.bytes);
            let mut b = ReadBuf::default();
            b.fit(3 * 4096).expect("fit");
            let at = b.pages.as_ptr();
            give_buf(&mut b);
            assert_eq!((b.capacity(), local_bytes()), (0, 4 * 4096), "kept by this thread");
            let again = take_buf(3).expect("a buffer");
            assert_eq!(again.pages.as_ptr(), at, "the same buffer, from this thread's pool");
            assert_eq!(local_bytes(), 0);
            // Past its bound, what a thread gives back goes to the shared pool (or to the
            // allocator), never grows its own.
            for _ in 0..LOCAL_POOL_BYTES / POOL_BUF_MAX + 2 {
                let mut big = ReadBuf::default();
                big.fit(POOL_BUF_MAX).expect("fit");
                give_buf(&mut big);
                assert_eq!(big.capacity(), 0, "given to one pool or the other");
            }
            assert_eq!(local_bytes(), LOCAL_POOL_BYTES);
            // A file read through `fetch_file` on this thread lands in one of its buffers.
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("m");
            std::fs::write(&p, vec![b'x'; 5000]).expect("write");
            let f = File::open(&p).expect("open");
            let fetched = fetch_file(&f, 5000, Map::Never, Cache::Keep).expect("fetch");
            assert_eq!(&fetched[..], &[b'x'; 5000][..]);
            assert_eq!(local_bytes(), LOCAL_POOL_BYTES - POOL_BUF_MAX, "taken from this thread's pool");
            drop(fetched);
            assert_eq!(local_bytes(), LOCAL_POOL_BYTES, "and given back to it");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn hits_are_counted_in_batches_and_a_miss_at_once_with_the_hits_before_it() {
        std::thread::spawn(|| {
            // Other tests count too, at the same time: only lower bounds can be checked.
            let (r0, m0) = page_cache_misses();
            for _ in 0..HITS_BATCH - 1 {
                count_read(false);
            }
            count_read(true);
            let (r1, m1) = page_cache_misses();
            assert!(r1 - r0 >= HITS_BATCH && m1 - m0 >= 1, "reads {r0}..{r1}, misses {m0}..{m1}");
            for _ in 0..HITS_BATCH {
                count_read(false);
            }
            assert!(page_cache_misses().0 - r1 >= HITS_BATCH, "a full batch of hits is added");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn read_file_into_reuses_one_buffer_and_checks_the_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut buf = ReadBuf::default();
        for (i, n) in [5000usize, 1, 0, 4095, 4096, 4097, 300_000, 17].into_iter().enumerate() {
            let p = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..n).map(|k| (k * 7 + i) as u8).collect();
            std::fs::write(&p, &data).expect("write");
            let f = File::open(&p).expect("open");
            let got = read_file_into(&f, n as u64, Map::Allow, &mut buf).expect("read");
            assert_eq!(&got[..], &data[..], "size {n}");
            assert_eq!(matches!(got, Contents::Mapped(_)), n as u64 >= MAP_THRESHOLD);
        }
        // A file shorter than its fstat said (it shrank in between) is an error.
        let p = dir.path().join("short");
        std::fs::write(&p, b"abc").expect("write");
        let f = File::open(&p).expect("open");
        let e = read_file_into(&f, 10, Map::Never, &mut buf).err().expect("shrank");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn fetched_files_come_back_whole_even_in_reused_buffers() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, n) in [5000usize, 1, 0, 4096, 300_000, 17, 9000].into_iter().enumerate() {
            let p = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..n).map(|k| (k * 13 + i) as u8).collect();
            std::fs::write(&p, &data).expect("write");
            let f = File::open(&p).expect("open");
            let got = fetch_file(&f, n as u64, Map::Allow, Cache::Keep).expect("fetch");
            assert_eq!(&got[..], &data[..], "size {n}");
            assert_eq!(matches!(got.0, FetchedInner::Mapped(_)), n as u64 >= MAP_THRESHOLD, "size {n}");
            // Its buffer goes back to the pool (not asserted: other tests' threads take
            // from the same pool at the same time); the next fetch may reuse it dirty,
            // and must still return exactly the file's bytes.
            drop(got);
        }
        let p = dir.path().join("short");
        std::fs::write(&p, b"abc").expect("write");
        let f = File::open(&p).expect("open");
        assert_eq!(
            fetch_file(&f, 10, Map::Allow, Cache::DropCold).expect_err("shrank").kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }

    /// Whether the page cache holds the first page of `f` (`RWF_NOWAIT`), `None` where the
    /// kernel cannot tell.
    fn first_page_cached(f: &File) -> Option<bool> {
        let mut b = [0u8; 1];
        match rustix::io::preadv2(f, &mut [std::io::IoSliceMut::new(&mut b)], 0, rustix::io::ReadWriteFlags::NOWAIT) {
            Ok(n) => Some(n == 1),
            Err(rustix::io::Errno::AGAIN) => Some(false),
            Err(_) => None,
        }
    }

    #[test]
    fn a_scan_keeps_what_it_reads_from_the_device_up_to_its_budget_then_drops_it() {
        let kept = std::sync::atomic::AtomicU64::new(0);
        assert!(!over_budget(&kept, 600, 1000));
        assert!(!over_budget(&kept, 400, 1000), "up to the budget exactly is kept");
        assert!(over_budget(&kept, 1, 1000));
        assert_eq!(kept.load(std::sync::atomic::Ordering::Relaxed), 1000, "what is dropped is not counted as kept");
        let kept = std::sync::atomic::AtomicU64::new(0);
        assert!(over_budget(&kept, 2000, 1000), "a file larger than the whole budget is dropped");
        assert!(!over_budget(&kept, 10, 1000), "a smaller one after it still fits");
        assert!(!drop_cold(Cache::Keep, u64::MAX) && drop_cold(Cache::DropCold, 1));
        assert!(cold_budget() > 0);
    }

    /// A 20,000-byte file `name` in `dir`, written and synced (so its pages can be dropped):
    /// its bytes and the file, open.
    fn synced_file(dir: &std::path::Path, name: &str) -> (Vec<u8>, File) {
        let p = dir.join(name);
        let data: Vec<u8> = (0..20_000u32).map(|k| (k % 251) as u8).collect();
        std::fs::write(&p, &data).expect("write");
        let f = File::open(&p).expect("open");
        f.sync_all().expect("fsync");
        (data, f)
    }

    /// Drop `f` from the page cache.
    fn evict(f: &File) {
        rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
    }

    /// Drop `f` from the page cache; `false` (and a line saying the test is skipped) where
    /// that cannot be done or seen: a file system whose pages cannot be dropped (tmpfs), or
    /// no `RWF_NOWAIT`. Said rather than passed silently.
    fn evicted(f: &File) -> bool {
        evict(f);
        let seen = first_page_cached(f) == Some(false);
        if !seen {
            eprintln!("skipped: the page cache of the test file cannot be observed or dropped");
        }
        seen
    }

    #[test]
    fn a_file_read_from_the_device_is_dropped_again_and_a_cached_one_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, f) = synced_file(dir.path(), "m");
        if !evicted(&f) {
            return;
        }
        // Read from the device, kept: cached afterwards.
        assert_eq!(&fetch_file(&f, data.len() as u64, Map::Never, Cache::Keep).expect("fetch")[..], &data[..]);
        assert_eq!(first_page_cached(&f), Some(true), "Keep keeps");
        // Cached before: DropCold leaves it.
        assert_eq!(&fetch_file(&f, data.len() as u64, Map::Never, Cache::DropCold).expect("fetch")[..], &data[..]);
        assert_eq!(first_page_cached(&f), Some(true), "a file cached before is left cached");
        // Read from the device with DropCold: gone from the page cache again.
        evict(&f);
        assert_eq!(&fetch_file(&f, data.len() as u64, Map::Never, Cache::DropCold).expect("fetch")[..], &data[..]);
        assert_eq!(first_page_cached(&f), Some(false), "what was read cold is dropped again");
    }

    #[test]
    fn prefetch_brings_a_file_into_the_page_cache_and_never_follows_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("7.");
        let (data, f) = synced_file(dir.path(), "7.");
        let dirf = File::open(dir.path()).expect("open dir");
        // The attacks: a link named like a message file, to a file of root's (here: to the
        // message itself, which would be read through it), and a name that is not there.
        std::os::unix::fs::symlink(&p, dir.path().join("8.")).expect("symlink");
        assert_eq!(prefetch_at(&dirf, c"8."), 0, "a symbolic link is not followed");
        assert_eq!(prefetch_at(&dirf, c"9."), 0);
        // Larger than PREFETCH_MAX (sparse): only that much is asked for.
        let big = File::create(dir.path().join("10.")).expect("create");
        big.set_len(PREFETCH_MAX + 4096).expect("set_len");
        assert_eq!(prefetch_at(&dirf, c"10."), PREFETCH_MAX);
        if !evicted(&f) {
            return;
        }
        assert_eq!(prefetch_at(&dirf, c"7."), data.len() as u64);
        // Asked, not waited for: it arrives.
        let t = std::time::Instant::now();
        while first_page_cached(&f) != Some(true) && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(first_page_cached(&f), Some(true), "prefetched into the page cache");
        // Loaded as prefetched, it counts as read from the device: DropCold drops it,
        // though it was in the page cache when read.
        assert!(!in_prefetched());
        let got = prefetched(|| {
            assert!(in_prefetched());
            fetch_file(&f, data.len() as u64, Map::Never, Cache::DropCold).expect("fetch")
        });
        assert!(!in_prefetched(), "the flag is reset");
        assert_eq!(&got[..], &data[..]);
        assert_eq!(first_page_cached(&f), Some(false), "a prefetched file is dropped as one read cold");
    }

    #[test]
    fn small_files_are_read_large_ones_mapped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small");
        let large = dir.path().join("large");
        std::fs::write(&small, b"hello").expect("write");
        let mut f = File::create(&large).expect("create");
        f.write_all(&vec![7u8; MAP_THRESHOLD as usize]).expect("write");
        drop(f);
        let s = read_file(&small).expect("read small");
        assert!(matches!(s, Bytes::Owned(_)), "small file must be read: {s:?}");
        assert_eq!(&*s, b"hello");
        let l = read_file(&large).expect("read large");
        assert!(matches!(l, Bytes::Mapped(_)), "large file must be mapped: {l:?}");
        assert_eq!(l.len(), MAP_THRESHOLD as usize);
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(read_file(&empty).expect("read empty").len(), 0);
    }
}
