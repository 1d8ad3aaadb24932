//! The parallel pipeline shared by `reconstruct` and `verify`: plan each mailbox, spread
//! its message files over every worker in runs, finish the mailbox when its last run is
//! done.
//!
//! Two queues: mailboxes to plan (fed in order by the calling thread, bounded) and runs of
//! files (fed by whichever worker planned the mailbox). Workers take files first and plan
//! only when no run is waiting, so planning never gets far ahead of the files and memory
//! stays bounded, while planning itself (lock, list, read the small files) runs on every
//! core. Tasks are runs of files, not mailboxes, so many small mailboxes and one huge
//! mailbox both keep every worker busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What a pipeline does with mailboxes and files.
pub trait Planner: Sync {
    /// A mailbox to plan.
    type Target: Send;
    /// A planned mailbox: holds its files' outcomes until it is finished.
    type Job: Send + Sync;
    /// What [`Planner::load`] fetched of one file (its metadata, its bytes), for
    /// [`Planner::process`].
    type Loaded: Send;

    /// Plan one mailbox (`order` is its position, for reports in order). `None` when it
    /// was handled entirely here (nothing to scan, or an error reported).
    fn plan(&self, order: usize, target: Self::Target) -> Option<Self::Job>;
    /// Number of message files of a planned mailbox.
    fn files(&self, job: &Self::Job) -> usize;
    /// Files per run for this mailbox (small when files are read, large when stat'ed).
    fn run_len(&self, job: &Self::Job) -> usize;
    /// The blocking part of file `i` of the mailbox (`statx`, open, read): whatever waits
    /// for the device. Runs on an I/O thread ahead of the CPU workers, or on a CPU worker
    /// that has nothing loaded to work on.
    fn load(&self, job: &Self::Job, i: usize) -> Self::Loaded;
    /// Bytes of memory a loaded file holds (the I/O threads stop loading ahead past a
    /// budget of them).
    fn held(&self, _loaded: &Self::Loaded) -> usize {
        0
    }
    /// Whether the files of this mailbox are read whole, so that the I/O threads only ask
    /// the kernel for them ([`Planner::prefetch`]) and the CPU workers load them from the
    /// page cache, instead of the I/O threads loading them. No by default.
    fn prefetches(&self, _job: &Self::Job) -> bool {
        false
    }
    /// Ask the kernel to start reading file `i` without waiting ([`crate::io::prefetch_at`]);
    /// the bytes asked for (counted against the budget until the file is loaded).
    fn prefetch(&self, _job: &Self::Job, _i: usize) -> usize {
        0
    }
    /// Process files `start..start + loaded.len()` of the mailbox, loaded (the CPU part).
    fn process(&self, job: &Self::Job, start: usize, loaded: Vec<Self::Loaded>);
    /// Called once, after every file of the mailbox was processed.
    fn finish(&self, job: &Self::Job);
}

/// Threads of a run: CPU parallelism and I/O parallelism, chosen apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threads {
    /// CPU workers (`-j`): they process loaded files, plan mailboxes, and load a run
    /// themselves when nothing loaded is waiting (so a warm run never waits for a hand-over).
    pub cpu: usize,
    /// I/O threads: they plan mailboxes and load runs of files ahead of the CPU workers
    /// (blocking `statx`, `open`, `read`), so that up to this many requests are in flight
    /// on a cold device. 0: the CPU workers do all.
    pub io: usize,
}

/// Default number of I/O threads: enough requests in flight to keep a solid-state or
/// virtual disk busy (they reach their best throughput around a queue depth of 32; fio
/// on this project's VM: 105,000 IOPS at depth 32, 16,000 at depth 1), and harmless on a
/// spinning disk, whose elevator and NCQ sort a deep queue by position. See the README's
/// Performance section for the measurements behind it.
pub const DEFAULT_IO_THREADS: usize = 32;

/// Most bytes loaded ahead of the CPU workers (read buffers and mapped files waiting to
/// be processed), whatever the number of I/O threads. A run being loaded is handed over
/// in chunks of at most [`CHUNK_BYTES`], so a thread holds little beyond its chunk.
const BUDGET_BYTES: usize = 32 << 20;
/// Threads that finish mailboxes when there are I/O threads: a rebuilt mailbox's files are
/// written and synced (`fsync` of each file and of the directory) there, not on a CPU
/// worker, whose core would idle while the device syncs.
const FINISHERS: usize = 2;
/// Bytes after which an I/O thread hands over what it loaded of a run so far.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes counted per loaded file on top of what it holds and of its own size (its
/// outcome), so that runs of small metadata-only results are bounded too (counted at 64
/// bytes rather than their 200, a metadata-only rebuild of a 1,000,000-message mailbox
/// queued 104 MB of them).
const PER_FILE: usize = 64;

struct Planned<J> {
    job: J,
    remaining: AtomicUsize,
}

/// A run of files `start..end` of a planned mailbox.
type Run<J> = (Arc<Planned<J>>, usize, usize);
/// A loaded chunk: a run's files `start..start + items.len()`, and the bytes they hold.
type Chunk<J, L> = (Arc<Planned<J>>, usize, Vec<L>, usize);
/// A run whose files were asked of the kernel, and the bytes asked for.
type Ready<J> = (Run<J>, usize);

/// Run `planner` over `targets` with `threads` workers. Returns when every mailbox is
/// finished. A panic in a worker is reported as `Err`.
///
/// The targets are all in memory already, so a worker that finds no run waiting takes
/// the next target itself: no thread has to be woken to hand one over (a feeding thread,
/// woken once per mailbox, used to preempt a worker each time).
///
/// With I/O threads, runs of files are loaded by them ahead of the CPU workers and handed
/// over in chunks (at most `BUDGET_BYTES` loaded ahead); a CPU worker with no loaded
/// chunk waiting takes a run and loads it itself. Mailboxes are then finished by
/// [`FINISHERS`] threads of their own, so that a CPU worker does not wait for the device
/// to sync what a rebuild wrote.
///
/// One I/O thread starts with the workers; the others only once they can help (see
/// [`Pipeline::want_all_io`]): the page cache was found cold, or a mailbox's files are
/// loaded rather than prefetched (metadata, mostly, whose misses nothing counts). Warm,
/// 32 I/O threads standing aside still cost a full rebuild of 100,000 messages about
/// 0.05 s over its four processes (`--io-threads 0` was faster in 17 of 18 alternating
/// pairs, `--io-threads 1` as fast as 0).
pub fn run<P: Planner>(planner: &P, targets: Vec<P::Target>, threads: Threads) -> Result<(), String> {
    Pipeline::new(planner, targets, threads).run()
}

/// What the workers of one [`run`] share.
struct Pipeline<'a, P: Planner> {
    planner: &'a P,
    /// CPU workers (at least one).
    cpu: usize,
    /// I/O threads.
    io: usize,
    /// Threads that finish mailboxes (0: the worker that processed a mailbox's last file
    /// finishes it). See [`FINISHERS`].
    finishers: usize,
    /// Mailboxes whose every file was processed, to finish. `None` is a wake-up.
    finish_tx: crossbeam::channel::Sender<Option<Arc<Planned<P::Job>>>>,
    /// See `finish_tx`.
    finish_rx: crossbeam::channel::Receiver<Option<Arc<Planned<P::Job>>>>,
    /// The targets not yet taken, with their order.
    targets: parking_lot::Mutex<std::iter::Enumerate<std::vec::IntoIter<P::Target>>>,
    /// Runs of files to load. `None` is a wake-up: a worker waiting for runs re-checks
    /// whether the work is done.
    file_tx: crossbeam::channel::Sender<Option<Run<P::Job>>>,
    /// See `file_tx`.
    file_rx: crossbeam::channel::Receiver<Option<Run<P::Job>>>,
    /// Chunks loaded by the I/O threads, to process.
    chunk_tx: crossbeam::channel::Sender<Chunk<P::Job, P::Loaded>>,
    /// See `chunk_tx`.
    chunk_rx: crossbeam::channel::Receiver<Chunk<P::Job, P::Loaded>>,
    /// Runs the I/O threads prefetched, for a CPU worker to load and process.
    ready_tx: crossbeam::channel::Sender<Ready<P::Job>>,
    /// See `ready_tx`.
    ready_rx: crossbeam::channel::Receiver<Ready<P::Job>>,
    /// Bytes loaded ahead and not yet processed; I/O threads wait while it is over budget.
    budget: parking_lot::Mutex<usize>,
    /// Signalled when `budget` goes down (or everyone must stop).
    room: parking_lot::Condvar,
    /// Mailboxes being planned plus runs and chunks queued or being worked on.
    busy: AtomicUsize,
    /// Every target was taken.
    drained: AtomicBool,
    /// A worker panicked: the others stop instead of waiting for its work forever (the
    /// panic reaches the caller through the scope).
    failed: AtomicBool,
    /// The page cache holds the files being read: the I/O threads stand aside and the CPU
    /// workers read for themselves (a hand-over costs more than a read from memory; see
    /// [`Pipeline::observe`]).
    warm: AtomicBool,
    /// Reads and misses of [`crate::io::page_cache_misses`] when the page cache was last
    /// judged.
    judged: parking_lot::Mutex<(u64, u64)>,
    /// Where I/O threads wait while the cache is warm.
    aside: parking_lot::Mutex<()>,
    /// Signalled when the cache turns cold (or everyone must stop).
    cold: parking_lot::Condvar,
    /// The I/O threads beyond the first were asked for ([`Pipeline::want_all_io`]).
    more_io: parking_lot::Mutex<bool>,
    /// Signalled when they are, or when the work ends (the thread that started the run
    /// waits on it to start them).
    more_io_cv: parking_lot::Condvar,
    /// I/O threads started so far.
    io_started: AtomicUsize,
}

/// Files read between two judgements of the page cache.
const JUDGE_EVERY: u64 = 256;
/// Reads not found in the page cache, within one judgement's window, that start every I/O
/// thread at once (a cold start should not wait for a whole window of misses).
const EARLY_MISSES: u64 = 16;

/// A worker that stops, whether done or panicking, wakes the waiting ones: a worker may
/// have swallowed the wake-up meant for another on its way out.
struct OnExit<'p, 'a, P: Planner>(&'p Pipeline<'a, P>);

impl<P: Planner> Drop for OnExit<'_, '_, P> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::SeqCst);
        }
        self.0.wake_all();
    }
}

impl<'a, P: Planner> Pipeline<'a, P> {
    /// The shared state of a run of `planner` over `targets`, nothing taken yet.
    fn new(planner: &'a P, targets: Vec<P::Target>, threads: Threads) -> Self {
        let (file_tx, file_rx) = crossbeam::channel::unbounded::<Option<Run<P::Job>>>();
        let (chunk_tx, chunk_rx) = crossbeam::channel::unbounded::<Chunk<P::Job, P::Loaded>>();
        let (ready_tx, ready_rx) = crossbeam::channel::unbounded::<Ready<P::Job>>();
        let finishers = if threads.io > 0 { FINISHERS } else { 0 };
        // Bounded: a mailbox waiting to be finished holds its files' outcomes.
        let (finish_tx, finish_rx) = crossbeam::channel::bounded(2 * FINISHERS);
        Pipeline {
            planner,
            cpu: threads.cpu.max(1),
            io: threads.io,
            finishers,
            finish_tx,
            finish_rx,
            targets: parking_lot::Mutex::new(targets.into_iter().enumerate()),
            file_tx,
            file_rx,
            chunk_tx,
            chunk_rx,
            ready_tx,
            ready_rx,
            budget: parking_lot::Mutex::new(0usize),
            room: parking_lot::Condvar::new(),
            busy: AtomicUsize::new(0),
            drained: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            warm: AtomicBool::new(false),
            judged: parking_lot::Mutex::new(crate::io::page_cache_misses()),
            aside: parking_lot::Mutex::new(()),
            cold: parking_lot::Condvar::new(),
            more_io: parking_lot::Mutex::new(false),
            more_io_cv: parking_lot::Condvar::new(),
            io_started: AtomicUsize::new(0),
        }
    }

    /// Run the workers: the CPU workers, one I/O thread and the finishers at once, the
    /// other I/O threads when asked for (see [`run`]); returns when all is done.
    fn run(&self) -> Result<(), String> {
        let p = self;
        crossbeam::scope(|s| {
            let io_thread = move |_: &crossbeam::thread::Scope<'_>| {
                p.io_started.fetch_add(1, Ordering::SeqCst);
                p.io_work();
            };
            for _ in 0..p.cpu {
                s.spawn(move |_| p.cpu_work());
            }
            for _ in 0..p.io.min(1) {
                s.spawn(io_thread);
            }
            for _ in 0..p.finishers {
                s.spawn(move |_| p.finish_work());
            }
            if p.io > 1 && p.wait_for_more_io() {
                for _ in 1..p.io {
                    s.spawn(io_thread);
                }
            }
        })
        .map_err(|_| "a worker thread panicked".to_string())
    }

    /// Start the rest of the I/O threads (once): the device has requests to keep in
    /// flight. Asked for when the page cache is found cold ([`Pipeline::observe`]) and
    /// when a mailbox is planned whose files are loaded rather than prefetched: what such
    /// a load reads (metadata, mostly) does not tell warm from cold, so the run keeps them
    /// all, as a cold no-op needs them.
    fn want_all_io(&self) {
        let mut m = self.more_io.lock();
        if !*m {
            *m = true;
            self.more_io_cv.notify_all();
        }
    }

    /// Wait until the other I/O threads are asked for (`true`) or the work has ended.
    fn wait_for_more_io(&self) -> bool {
        let mut m = self.more_io.lock();
        loop {
            if *m {
                return true;
            }
            if self.failed.load(Ordering::SeqCst)
                || (self.drained.load(Ordering::SeqCst) && self.busy.load(Ordering::SeqCst) == 0)
            {
                return false;
            }
            // Bounded: the end is also signalled, but a timed wait cannot miss it.
            self.more_io_cv.wait_for(&mut m, std::time::Duration::from_millis(50));
        }
    }

    /// Judge the page cache from the last [`JUDGE_EVERY`] files read: warm when fewer than
    /// 2 % were not cached whole, cold again when more than 10 % were not. Cold, the I/O
    /// threads keep requests in flight on the device; warm, they stand aside, since
    /// handing a file read from memory to another thread costs more than reading it (the
    /// warm full rebuild of 100,000 messages took 1.38 times as long with 32 I/O threads
    /// as with none). A scan that reads only metadata never judges, and keeps them.
    fn observe(&self) {
        let (reads, misses) = crate::io::page_cache_misses();
        let mut j = self.judged.lock();
        let (r, m) = (reads.saturating_sub(j.0), misses.saturating_sub(j.1));
        if m >= EARLY_MISSES {
            // Cold enough, whatever the judgement will be: the device needs requests in
            // flight now, not after a whole window of reads.
            self.want_all_io();
        }
        if r < JUDGE_EVERY {
            return;
        }
        *j = (reads, misses);
        drop(j);
        if m * 50 < r {
            self.warm.store(true, Ordering::SeqCst);
        } else if m * 10 > r {
            self.want_all_io();
            if self.warm.swap(false, Ordering::SeqCst) {
                let _g = self.aside.lock();
                self.cold.notify_all();
            }
        }
    }

    /// An I/O thread waits while the cache is warm (and work remains).
    fn stand_aside(&self) {
        let mut g = self.aside.lock();
        while self.warm.load(Ordering::SeqCst)
            && !self.failed.load(Ordering::SeqCst)
            && !(self.drained.load(Ordering::SeqCst) && self.busy.load(Ordering::SeqCst) == 0)
        {
            // Bounded: the end of the work is also signalled, but a timed wait cannot miss it.
            self.cold.wait_for(&mut g, std::time::Duration::from_millis(50));
        }
    }

    /// Wake every worker waiting for a run or for room in the budget.
    fn wake_all(&self) {
        for _ in 0..self.cpu + self.io {
            let _ = self.file_tx.send(None);
        }
        for _ in 0..self.finishers {
            // A full queue wakes its finishers anyway.
            let _ = self.finish_tx.try_send(None);
        }
        self.room.notify_all();
        {
            let _g = self.aside.lock();
            self.cold.notify_all();
        }
        let _m = self.more_io.lock();
        self.more_io_cv.notify_all();
    }

    /// One unit of work done. The last one, once every target is taken, wakes the workers
    /// waiting for runs so that they see the end. (SeqCst pairs with the waiter's store of
    /// `drained` and load of `busy`: one of the two sees the other.)
    fn done_one(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 && self.drained.load(Ordering::SeqCst) {
            self.wake_all();
        }
    }

    /// Plan one mailbox and queue its files in runs (or finish it at once if it has none).
    fn plan_one(&self, order: usize, target: P::Target) {
        let planner = self.planner;
        if let Some(job) = planner.plan(order, target) {
            let n = planner.files(&job);
            let len = planner.run_len(&job).max(1);
            let planned = Arc::new(Planned { job, remaining: AtomicUsize::new(n) });
            if n == 0 {
                self.finish(&planned);
                return;
            }
            if !planner.prefetches(&planned.job) {
                // Its files are loaded (metadata, mostly), which never tells warm from cold.
                self.want_all_io();
            }
            let mut start = 0;
            while start < n {
                let end = (start + len).min(n);
                self.busy.fetch_add(1, Ordering::SeqCst);
                // Cannot fail: this worker holds a receiver.
                let _ = self.file_tx.send(Some((planned.clone(), start, end)));
                start = end;
            }
        }
    }

    /// Take the next target and plan it; `false` when there is none left.
    fn plan_next(&self) -> bool {
        // Taking it and counting it busy under the lock, so that no one sees "drained
        // and idle" while it is being planned.
        let next = {
            let mut t = self.targets.lock();
            let next = t.next();
            match next {
                Some(_) => self.busy.fetch_add(1, Ordering::SeqCst),
                None => {
                    self.drained.store(true, Ordering::SeqCst);
                    0
                }
            };
            next
        };
        match next {
            Some((order, target)) => {
                self.plan_one(order, target);
                self.done_one();
                true
            }
            None => false,
        }
    }

    /// Process loaded files `start..` of a mailbox; after its last, finish the mailbox or
    /// hand it to a finisher.
    fn process(&self, planned: &Arc<Planned<P::Job>>, start: usize, items: Vec<P::Loaded>) {
        let n = items.len();
        self.planner.process(&planned.job, start, items);
        if planned.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            self.finish(planned);
        }
        self.done_one();
    }

    /// Finish a mailbox whose every file was processed, or hand it to a finisher.
    fn finish(&self, planned: &Arc<Planned<P::Job>>) {
        if self.finishers == 0 {
            self.planner.finish(&planned.job);
            return;
        }
        self.busy.fetch_add(1, Ordering::SeqCst);
        let mut job = Some(planned.clone());
        // Waits while the finishers are behind (bounded memory), unless one failed.
        while let Err(e) = self.finish_tx.send_timeout(job.take(), std::time::Duration::from_millis(50)) {
            match e {
                crossbeam::channel::SendTimeoutError::Timeout(j) if !self.failed.load(Ordering::SeqCst) => job = j,
                _ => break,
            }
        }
    }

    /// A finisher: finishes the mailboxes handed to it (writing and syncing a rebuilt
    /// mailbox's files waits for the device), until all is done.
    fn finish_work(&self) {
        let _guard = OnExit(self);
        loop {
            if self.failed.load(Ordering::SeqCst) {
                break;
            }
            match self.finish_rx.recv() {
                Ok(Some(planned)) => {
                    self.planner.finish(&planned.job);
                    self.done_one();
                }
                Ok(None) => {
                    if self.drained.load(Ordering::SeqCst) && self.busy.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Process a chunk an I/O thread loaded, and give its bytes back to the budget.
    fn process_chunk(&self, (planned, start, items, held): Chunk<P::Job, P::Loaded>) {
        self.process(&planned, start, items);
        let mut b = self.budget.lock();
        *b -= held;
        drop(b);
        self.room.notify_one();
    }

    /// A CPU worker loads a run the I/O threads prefetched (from the page cache, mostly),
    /// gives its bytes back to the budget, and processes it.
    fn load_prefetched(&self, ((planned, start, end), asked): Ready<P::Job>) {
        let items: Vec<P::Loaded> =
            crate::io::prefetched(|| (start..end).map(|i| self.planner.load(&planned.job, i)).collect());
        let mut b = self.budget.lock();
        *b -= asked;
        drop(b);
        self.room.notify_one();
        self.process(&planned, start, items);
    }

    /// A CPU worker loads a run itself, and processes it.
    fn load_and_process(&self, (planned, start, end): Run<P::Job>) {
        let items: Vec<P::Loaded> = (start..end).map(|i| self.planner.load(&planned.job, i)).collect();
        self.observe();
        self.process(&planned, start, items);
    }

    /// A CPU worker: loaded chunks first, then runs, then planning; until all is done.
    fn cpu_work(&self) {
        let _guard = OnExit(self);
        loop {
            if self.failed.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(ready) = self.ready_rx.try_recv() {
                self.load_prefetched(ready);
                continue;
            }
            if let Ok(chunk) = self.chunk_rx.try_recv() {
                self.process_chunk(chunk);
                continue;
            }
            match self.file_rx.try_recv() {
                Ok(Some(run)) => {
                    self.load_and_process(run);
                    continue;
                }
                Ok(None) => continue,
                Err(_) => {}
            }
            if self.plan_next() {
                continue;
            }
            if self.busy.load(Ordering::SeqCst) == 0 {
                break;
            }
            // Others are still planning, loading or processing: wait for their chunks or
            // runs, or for the wake-up at the end.
            crossbeam::channel::select! {
                recv(self.ready_rx) -> r => if let Ok(r) = r { self.load_prefetched(r) },
                recv(self.chunk_rx) -> c => if let Ok(c) = c { self.process_chunk(c) },
                recv(self.file_rx) -> r => match r {
                    Ok(Some(run)) => self.load_and_process(run),
                    Ok(None) => {}
                    Err(_) => break,
                },
            }
        }
    }

    /// Wait for room in the budget (or for a failure).
    fn wait_for_room(&self) {
        let mut b = self.budget.lock();
        while *b >= BUDGET_BYTES && !self.failed.load(Ordering::SeqCst) {
            self.room.wait(&mut b);
        }
    }

    /// An I/O thread asks the kernel for a run's files, once there is room in the budget,
    /// and hands the run to the CPU workers to load: the requests are in flight without a
    /// thread blocked on each, and the worker reads what it parses into its own cache.
    fn prefetch_ahead(&self, (planned, start, end): Run<P::Job>) {
        self.wait_for_room();
        let asked: usize = (start..end).map(|i| self.planner.prefetch(&planned.job, i) + PER_FILE).sum();
        *self.budget.lock() += asked;
        // Cannot fail: this thread's scope holds the receiver's owners.
        let _ = self.ready_tx.send(((planned, start, end), asked));
        self.observe();
    }

    /// An I/O thread takes a run ahead of the CPU workers: asks the kernel for its files,
    /// or loads them.
    fn ahead(&self, run: Run<P::Job>) {
        if self.planner.prefetches(&run.0.job) { self.prefetch_ahead(run) } else { self.load_ahead(run) }
    }

    /// An I/O thread loads a run in chunks, waiting for room in the budget before each.
    fn load_ahead(&self, (planned, start, end): Run<P::Job>) {
        let mut at = start;
        while at < end {
            self.wait_for_room();
            let from = at;
            let mut items = Vec::new();
            let mut held = 0;
            while at < end && held < CHUNK_BYTES {
                let l = self.planner.load(&planned.job, at);
                held += self.planner.held(&l) + PER_FILE + std::mem::size_of::<P::Loaded>();
                items.push(l);
                at += 1;
            }
            if at < end {
                // The rest of the run is another unit of work.
                self.busy.fetch_add(1, Ordering::SeqCst);
            }
            *self.budget.lock() += held;
            // Cannot fail: this thread's scope holds the receiver's owners.
            let _ = self.chunk_tx.send((planned.clone(), from, items, held));
            self.observe();
        }
    }

    /// An I/O thread: loads runs ahead, plans when none is waiting; until all is done.
    fn io_work(&self) {
        let _guard = OnExit(self);
        loop {
            if self.failed.load(Ordering::SeqCst) {
                break;
            }
            self.stand_aside();
            match self.file_rx.try_recv() {
                Ok(Some(run)) => {
                    self.ahead(run);
                    continue;
                }
                Ok(None) => continue,
                Err(_) => {}
            }
            if self.plan_next() {
                continue;
            }
            if self.busy.load(Ordering::SeqCst) == 0 {
                break;
            }
            match self.file_rx.recv() {
                Ok(Some(run)) => self.ahead(run),
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}

/// Walk a tree with `threads` workers: `visit` handles one node and pushes its children
/// onto the vector it is given. Returns when every node was visited. Used for discovery,
/// where listing directories one after another would leave every other core idle.
pub fn walk<T: Send>(roots: Vec<T>, threads: usize, visit: impl Fn(T, &mut Vec<T>) + Sync) {
    struct State<T> {
        todo: Vec<T>,
        busy: usize,
        /// A visit panicked: everyone stops (the panic reaches the caller through the scope).
        failed: bool,
    }
    /// Marks one visit done, even when it panics, so no worker waits forever.
    struct Done<'a, T> {
        state: &'a parking_lot::Mutex<State<T>>,
        changed: &'a parking_lot::Condvar,
        children: Vec<T>,
    }
    impl<T> Drop for Done<'_, T> {
        fn drop(&mut self) {
            let mut s = self.state.lock();
            s.busy -= 1;
            s.failed |= std::thread::panicking();
            s.todo.append(&mut self.children);
            drop(s);
            self.changed.notify_all();
        }
    }
    let state = parking_lot::Mutex::new(State { todo: roots, busy: 0, failed: false });
    let changed = parking_lot::Condvar::new();
    let work = || {
        loop {
            let node = {
                let mut s = state.lock();
                loop {
                    if s.failed {
                        return;
                    }
                    if let Some(n) = s.todo.pop() {
                        s.busy += 1;
                        break n;
                    }
                    if s.busy == 0 {
                        return;
                    }
                    changed.wait(&mut s);
                }
            };
            let mut done = Done { state: &state, changed: &changed, children: Vec::new() };
            visit(node, &mut done.children);
        }
    };
    if threads <= 1 {
        return work();
    }
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    struct Count {
        done: Mutex<Vec<(usize, usize)>>,
        /// Bytes each loaded file claims to hold (large: chunks are split, the budget fills).
        held: usize,
        /// Threads that processed files, and threads that finished mailboxes.
        processed_on: Mutex<std::collections::HashSet<std::thread::ThreadId>>,
        finished_on: Mutex<std::collections::HashSet<std::thread::ThreadId>>,
        /// The I/O threads prefetch (`Planner::prefetches`) instead of loading.
        prefetch: bool,
        /// Threads that loaded files.
        loaded_on: Mutex<std::collections::HashSet<std::thread::ThreadId>>,
    }
    struct Job {
        order: usize,
        n: usize,
        seen: AtomicUsize,
        loaded: AtomicUsize,
        /// Each file's prefetches, and its loads in the prefetched context.
        prefetched: Vec<AtomicUsize>,
        loaded_prefetched: Vec<AtomicUsize>,
    }
    impl Planner for Count {
        type Target = usize;
        type Job = Job;
        type Loaded = usize;
        fn plan(&self, order: usize, n: usize) -> Option<Job> {
            let zeros = || (0..n).map(|_| AtomicUsize::new(0)).collect();
            (order % 5 != 4).then(|| Job {
                order,
                n,
                seen: AtomicUsize::new(0),
                loaded: AtomicUsize::new(0),
                prefetched: zeros(),
                loaded_prefetched: zeros(),
            })
        }
        fn files(&self, j: &Job) -> usize {
            j.n
        }
        fn run_len(&self, _: &Job) -> usize {
            7
        }
        fn load(&self, j: &Job, i: usize) -> usize {
            j.loaded.fetch_add(1, Ordering::Relaxed);
            if crate::io::in_prefetched() {
                j.loaded_prefetched[i].fetch_add(1, Ordering::Relaxed);
            }
            self.loaded_on.lock().insert(std::thread::current().id());
            i
        }
        fn held(&self, _: &usize) -> usize {
            self.held
        }
        fn prefetches(&self, _: &Job) -> bool {
            self.prefetch
        }
        fn prefetch(&self, j: &Job, i: usize) -> usize {
            j.prefetched[i].fetch_add(1, Ordering::Relaxed);
            self.held
        }
        fn process(&self, j: &Job, s: usize, loaded: Vec<usize>) {
            assert_eq!(loaded, (s..s + loaded.len()).collect::<Vec<_>>(), "files handed over in order");
            j.seen.fetch_add(loaded.len(), Ordering::Relaxed);
            self.processed_on.lock().insert(std::thread::current().id());
        }
        fn finish(&self, j: &Job) {
            self.finished_on.lock().insert(std::thread::current().id());
            assert_eq!(j.loaded.load(Ordering::Relaxed), j.n, "every file loaded once before the finish");
            for (p, l) in j.prefetched.iter().zip(&j.loaded_prefetched) {
                let (p, l) = (p.load(Ordering::Relaxed), l.load(Ordering::Relaxed));
                assert!(p <= 1 && l == p, "a file prefetched {p} times, loaded as prefetched {l} times");
            }
            self.done.lock().push((j.order, j.seen.load(Ordering::Relaxed)));
        }
    }

    /// Reads one real file per message, from the page cache.
    struct Reads {
        file: std::path::PathBuf,
        by_io: AtomicUsize,
        done: AtomicUsize,
        /// Prefetch (the file is `m` in `dir`) instead of loading on the I/O threads.
        prefetch: Option<std::fs::File>,
        prefetched: AtomicUsize,
    }
    impl Planner for Reads {
        type Target = usize;
        type Job = usize;
        type Loaded = usize;
        fn plan(&self, _: usize, n: usize) -> Option<usize> {
            Some(n)
        }
        fn files(&self, j: &usize) -> usize {
            *j
        }
        fn run_len(&self, _: &usize) -> usize {
            16
        }
        fn load(&self, _: &usize, _: usize) -> usize {
            if std::thread::current().name() == Some("io") {
                self.by_io.fetch_add(1, Ordering::Relaxed);
            }
            let f = std::fs::File::open(&self.file).expect("open");
            crate::io::fetch_file(&f, 3000, crate::io::Map::Never, crate::io::Cache::Keep).expect("read").len()
        }
        fn process(&self, _: &usize, _: usize, loaded: Vec<usize>) {
            assert!(loaded.iter().all(|&n| n == 3000));
            self.done.fetch_add(loaded.len(), Ordering::Relaxed);
            if self.prefetch.is_some() {
                // Parsing takes time: the I/O threads stay ahead, and the CPU workers never
                // load a run themselves (whose reads would tell the cache is warm).
                std::thread::sleep(std::time::Duration::from_micros(10 * loaded.len() as u64));
            }
        }
        fn finish(&self, _: &usize) {}
        fn prefetches(&self, _: &usize) -> bool {
            self.prefetch.is_some()
        }
        fn prefetch(&self, _: &usize, _: usize) -> usize {
            self.prefetched.fetch_add(1, Ordering::Relaxed);
            self.prefetch.as_ref().map_or(0, |d| crate::io::prefetch_at(d, c"m") as usize)
        }
    }

    #[test]
    fn with_the_files_in_the_page_cache_the_io_threads_stand_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m");
        std::fs::write(&file, [7u8; 3000]).expect("write");
        let _ = std::fs::read(&file);
        for prefetch in [false, true] {
            let dirf = prefetch.then(|| std::fs::File::open(dir.path()).expect("open dir"));
            stand_aside_when_warm(Reads {
                file: file.clone(),
                by_io: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
                prefetch: dirf,
                prefetched: AtomicUsize::new(0),
            });
        }
    }

    fn stand_aside_when_warm(r: Reads) {
        let targets = vec![2000; 10];
        let p = Pipeline::new(&r, targets, Threads { cpu: 2, io: 8 });
        let pp = &p;
        std::thread::scope(|s| {
            for _ in 0..pp.cpu {
                s.spawn(move || pp.cpu_work());
            }
            for _ in 0..pp.io {
                std::thread::Builder::new().name("io".into()).spawn_scoped(s, move || pp.io_work()).expect("spawn");
            }
            for _ in 0..pp.finishers {
                s.spawn(move || pp.finish_work());
            }
        });
        assert_eq!(r.done.load(Ordering::Relaxed), 20_000, "every file processed once");
        // Whatever else the test process reads meanwhile, these files are all cached.
        assert!(p.warm.load(Ordering::SeqCst), "judged warm");
        let by_io = r.by_io.load(Ordering::Relaxed);
        assert!(by_io < 10_000, "the I/O threads kept loading a warm cache: {by_io} of 20,000 files");
        let prefetched = r.prefetched.load(Ordering::Relaxed);
        assert!(prefetched < 10_000, "the I/O threads kept prefetching a warm cache: {prefetched} of 20,000 files");
    }

    /// Files that are all cold (`cold`) or all cached, as far as the judgement of the page
    /// cache can tell; loads and processes nothing but counts.
    struct Judged {
        cold: bool,
        done: AtomicUsize,
    }
    impl Planner for Judged {
        type Target = usize;
        type Job = usize;
        type Loaded = ();
        fn plan(&self, _: usize, n: usize) -> Option<usize> {
            Some(n)
        }
        fn files(&self, j: &usize) -> usize {
            *j
        }
        fn run_len(&self, _: &usize) -> usize {
            16
        }
        fn load(&self, _: &usize, _: usize) {
            // What `io::fetch_file` counts: a read, probed unless the file was prefetched.
            if !crate::io::in_prefetched() {
                crate::io::count_reads_for_test(1, u64::from(self.cold));
            }
        }
        fn process(&self, _: &usize, _: usize, loaded: Vec<()>) {
            self.done.fetch_add(loaded.len(), Ordering::Relaxed);
        }
        fn finish(&self, _: &usize) {}
        fn prefetches(&self, _: &usize) -> bool {
            true
        }
        fn prefetch(&self, _: &usize, _: usize) -> usize {
            // What `io::prefetch_at` counts: one read of the file's first page, a miss
            // when it is not cached.
            crate::io::count_reads_for_test(1, u64::from(self.cold));
            0
        }
    }

    /// Run a pipeline with its own thread start-up; the I/O threads it started.
    fn io_threads_started<P: Planner>(planner: &P, targets: Vec<P::Target>, threads: Threads) -> usize {
        let p = Pipeline::new(planner, targets, threads);
        p.run().expect("run");
        p.io_started.load(Ordering::SeqCst)
    }

    #[test]
    fn the_io_threads_beyond_the_first_start_only_where_they_help() {
        // Files read whole and cached: the workers read them; one I/O thread starts (it
        // judges the cache), the other seven never do.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m");
        std::fs::write(&file, [7u8; 3000]).expect("write");
        let _ = std::fs::read(&file);
        let reads = Reads {
            file,
            by_io: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            prefetch: Some(std::fs::File::open(dir.path()).expect("open dir")),
            prefetched: AtomicUsize::new(0),
        };
        assert_eq!(io_threads_started(&reads, vec![2000; 10], Threads { cpu: 2, io: 8 }), 1, "warm");
        assert_eq!(reads.done.load(Ordering::Relaxed), 20_000);
        // The same, with every read a hit as the planner itself counts them.
        let warm = Judged { cold: false, done: AtomicUsize::new(0) };
        assert_eq!(io_threads_started(&warm, vec![2000; 10], Threads { cpu: 2, io: 8 }), 1, "all cached");
        assert_eq!(warm.done.load(Ordering::Relaxed), 20_000);
        // The same files found cold: every I/O thread.
        let cold = Judged { cold: true, done: AtomicUsize::new(0) };
        assert_eq!(io_threads_started(&cold, vec![2000; 10], Threads { cpu: 2, io: 8 }), 8, "cold");
        assert_eq!(cold.done.load(Ordering::Relaxed), 20_000);
        // Files whose metadata is all that is read (a no-op): cold or warm cannot be told,
        // so every I/O thread, at once.
        let stat = Count {
            done: Mutex::new(Vec::new()),
            held: 0,
            processed_on: Mutex::default(),
            finished_on: Mutex::default(),
            prefetch: false,
            loaded_on: Mutex::default(),
        };
        assert_eq!(io_threads_started(&stat, vec![50; 20], Threads { cpu: 2, io: 8 }), 8, "metadata");
        // No I/O threads asked for: none.
        let none = Judged { cold: true, done: AtomicUsize::new(0) };
        assert_eq!(io_threads_started(&none, vec![100; 3], Threads { cpu: 2, io: 0 }), 0, "none");
        assert_eq!(none.done.load(Ordering::Relaxed), 300);
    }

    #[test]
    fn every_file_is_processed_once_and_every_mailbox_finished_once() {
        let mixes = [(1, 0, 0), (2, 0, 0), (5, 0, 0), (1, 1, 0), (2, 4, 0), (2, 3, 300 << 10), (1, 8, 9 << 20)];
        for (prefetch, (cpu, io, held)) in [false, true].into_iter().flat_map(|p| mixes.map(|m| (p, m))) {
            let c = Count {
                done: Mutex::new(Vec::new()),
                held,
                processed_on: Mutex::default(),
                finished_on: Mutex::default(),
                prefetch,
                loaded_on: Mutex::default(),
            };
            let sizes: Vec<usize> = (0..200).map(|i| (i * 37) % 101).collect();
            run(&c, sizes.clone(), Threads { cpu, io }).expect("run");
            let loaded_on = c.loaded_on.into_inner();
            // With I/O threads, mailboxes are finished (written, synced) by finishers, never
            // on a thread that processes files.
            let (processed_on, finished_on) = (c.processed_on.into_inner(), c.finished_on.into_inner());
            if prefetch {
                // The I/O threads only ask for files: every load is a CPU worker's.
                assert!(loaded_on.is_subset(&processed_on), "cpu {cpu} io {io}: an I/O thread loaded a file");
            }
            if io > 0 {
                assert!(
                    processed_on.is_disjoint(&finished_on),
                    "cpu {cpu} io {io}: finished where files are processed"
                );
                assert!(finished_on.len() <= FINISHERS);
            }
            let mut done = c.done.into_inner();
            done.sort_unstable();
            let expect: Vec<(usize, usize)> =
                sizes.iter().enumerate().filter(|(i, _)| i % 5 != 4).map(|(i, &n)| (i, n)).collect();
            assert_eq!(done, expect, "cpu {cpu} io {io} held {held} prefetch {prefetch}");
        }
    }

    #[test]
    fn a_panicking_worker_fails_the_run_instead_of_hanging_it() {
        struct Boom {
            /// 0: a load panics, 1: a process, 2: a finish.
            at: u8,
            /// The I/O threads prefetch instead of loading.
            prefetch: bool,
        }
        impl Planner for Boom {
            type Target = usize;
            type Job = usize;
            type Loaded = ();
            fn plan(&self, _: usize, n: usize) -> Option<usize> {
                Some(n)
            }
            fn files(&self, j: &usize) -> usize {
                *j
            }
            fn run_len(&self, _: &usize) -> usize {
                3
            }
            fn load(&self, j: &usize, i: usize) {
                assert!(!(self.at == 0 && *j == 40 && i == 10), "boom");
            }
            fn process(&self, j: &usize, s: usize, _: Vec<()>) {
                assert!(!(self.at == 1 && *j == 40 && s == 9), "boom");
            }
            fn finish(&self, j: &usize) {
                assert!(!(self.at == 2 && *j == 40), "boom");
            }
            fn prefetches(&self, _: &usize) -> bool {
                self.prefetch
            }
            fn prefetch(&self, _: &usize, _: usize) -> usize {
                100
            }
        }
        for (at, prefetch) in [(0, false), (1, false), (2, false), (0, true), (1, true), (2, true)] {
            for (cpu, io) in [(1, 0), (2, 0), (4, 0), (1, 2), (2, 8)] {
                let r = run(&Boom { at, prefetch }, (0..100).collect(), Threads { cpu, io });
                assert!(r.is_err(), "cpu {cpu} io {io} at {at} prefetch {prefetch}");
            }
        }
    }

    #[test]
    fn walk_visits_every_node_once() {
        for threads in [1, 2, 4] {
            // Node n has children 2n+1 and 2n+2 below 1000.
            let seen = Mutex::new(Vec::new());
            walk(vec![0u32], threads, |n, out| {
                seen.lock().push(n);
                out.extend([2 * n + 1, 2 * n + 2].into_iter().filter(|&c| c < 1000));
            });
            let mut v = seen.into_inner();
            v.sort_unstable();
            assert_eq!(v, (0..1000).collect::<Vec<_>>(), "threads {threads}");
        }
        walk(Vec::<u32>::new(), 2, |_, _| panic!("no node"));
    }
}
