//! `mstore estimate`: how long a repair of the store will take on this machine, before
//! running it, from a sample of the administrator's own store.
//!
//! Read-only and lock-free, like `mstore verify`: the databases are opened read-only, every
//! mailbox directory in scope is listed (that gives the message count, and times the
//! listing a repair does too), and a sample of a few thousand message files is measured
//! in three passes:
//!
//! 1. `statx` of as many files, in runs of [`STAT_CLUSTER`] neighbours, [`IO_DEPTH`] in
//!    flight (what a no-op does per message);
//! 2. open and `posix_fadvise(DONTNEED)` (drop what the page cache holds of it, so the read
//!    is cold where the kernel lets it be), then read whole as a repair does: one thread
//!    asks the kernel for each file ahead ([`crate::io::prefetch_at`]) while as many
//!    threads as the repair's CPU workers read them: the device's part of a full rebuild or
//!    a verify, and the kernel's CPU time for it;
//! 3. read again (now from the page cache) and parse and hash as a rebuild does, then
//!    read again and hash as verify does, each on as many threads as the repair's CPU
//!    workers (so whatever else takes the cores now is seen too): with pass 2's CPU
//!    time, the CPU part. Each file
//!    is then dropped from the page cache again (`DONTNEED`), so the sample pollutes
//!    nothing.
//!
//! The sample is spread over the whole scope in clusters of [`CLUSTER`] consecutive
//! messages of one mailbox, at random positions: a repair reads a mailbox's files in UID
//! order, so neighbouring files (their inodes and data, usually written one after the
//! other) are read together, and a cluster keeps that locality where single random files
//! would not.
//!
//! Each run's prediction is the larger of its device time (the read pass's wall time) and
//! its CPU time (the CPU time of the read pass, which is the kernel's, plus that of the
//! run's warm pass less a warm read pass, shared by the machine's cores), each the
//! sample's scaled by the message count, plus [`OVERLAP_LOSS`] of the smaller one, plus
//! the listing: the pipeline overlaps the two (I/O threads ask for files ahead of the CPU
//! workers), so the larger one bounds it. The error bar is twice the standard error over
//! clusters plus [`DRIFT`] for a machine whose speed drifts between runs.
//!
//! What it does not see: a cold `statx` costs an inode-table read that the page cache
//! keeps across the sample (dropping it needs root: `echo 3 > /proc/sys/vm/drop_caches`),
//! so on a warm machine the no-op prediction is a warm one; directories listed here are
//! warm for the repair that follows.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::layout;
use crate::report::{Exit, Render};
use crate::store::Store;
use crate::survey::listcache::{Extent, ListCache, Mode, stat_dir};

/// Requests kept in flight while sampling: what a repair keeps ([`crate::scan::DEFAULT_IO_THREADS`]).
pub const IO_DEPTH: usize = crate::scan::DEFAULT_IO_THREADS;
/// Consecutive messages of one mailbox sampled together.
pub const CLUSTER: usize = 16;
/// Consecutive messages of one mailbox stat'ed together (pass 1). With clusters of 16,
/// the no-op was predicted 1.6-1.85 times its cold time (each cluster paid for inode-table
/// blocks that a whole mailbox's run reads ahead in one request).
pub const STAT_CLUSTER: usize = 512;
/// Relative error added for a machine whose speed drifts from one run to the next (10-20 %
/// over a minute on a shared virtual machine).
pub const DRIFT: f64 = 0.15;
/// Part of the smaller of a run's device and CPU parts not hidden behind the larger. None
/// since the I/O threads only ask the kernel for the files a run reads whole and the
/// workers read them (`Planner::prefetch`), and the CPU part counts each file's copy once
/// (the warm passes less a warm read pass): against three cold runs of 100,000 messages
/// (2026-12-07 afternoon), a tenth predicted the rebuild at 1.04-1.14 of its time and
/// verify at 1.06-1.27, nothing at 0.97-1.07 and 0.98-1.17. (Before: a tenth, when the
/// I/O threads read the files and the workers worked on them after; a quarter when the
/// CPU part left out the kernel's work of the cold reads.)
pub const OVERLAP_LOSS: f64 = 0.0;

/// What to estimate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Domains (empty: the whole store).
    pub domains: Vec<String>,
    /// Message files to sample (at least one cluster).
    pub sample: usize,
    /// CPU workers a repair will use (0: the configuration's `threads`, else one per core).
    pub threads: usize,
    /// Seed of the sample's positions.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { domains: Vec::new(), sample: 10_000, threads: 0, seed: 1 }
    }
}

/// One predicted run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    /// `rebuild`, `noop`, `verify`, `rescue`.
    pub run: &'static str,
    /// What the run is.
    pub what: &'static str,
    /// Predicted wall time, seconds.
    pub seconds: f64,
    /// Relative error bar (0.2: ±20 %).
    pub error: f64,
    /// What bounds it: `device` or `cpu`.
    pub bound: &'static str,
    /// Its device part, seconds.
    pub device_seconds: f64,
    /// Its CPU part, seconds: the CPU time it needs (the kernel's cold reads and its own
    /// work) shared by the machine's cores.
    pub cpu_seconds: f64,
}

/// The estimate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Estimate {
    /// Mailboxes in scope (registered and listed).
    pub mailboxes: u64,
    /// Message files in scope.
    pub messages: u64,
    /// Their bytes, estimated from the sample.
    pub bytes_estimated: u64,
    /// Files sampled.
    pub sampled: u64,
    /// Bytes of the files sampled.
    pub sampled_bytes: u64,
    /// CPU workers assumed.
    pub threads: usize,
    /// Requests in flight assumed.
    pub io_depth: usize,
    /// Seconds listing every mailbox directory in scope took.
    pub listing_seconds: f64,
    /// Mailbox directories whose listing the domain's listing cache holds, current
    /// (`formats/listings.md`): a no-op takes them from there instead of listing them.
    pub listings_cached: u64,
    /// Seconds of the sample's `statx` pass, read pass, and CPU pass.
    pub sample_stat_seconds: f64,
    /// See above.
    pub sample_read_seconds: f64,
    /// See above.
    pub sample_cpu_seconds: f64,
    /// CPU time (user and system, every thread of this process) of the sample's cold read
    /// pass and of the cold lookups of its files' inodes before it: what the kernel spends
    /// reading from the device, which on few cores competes with the repair's own work.
    pub sample_read_cpu_seconds: f64,
    /// CPU time of the warm rebuild pass (read, parse and hash) less that of reading
    /// alone (counted in `sample_read_cpu_seconds`).
    pub sample_rebuild_cpu_seconds: f64,
    /// CPU time of the warm verify pass (read and hash) less that of reading alone.
    pub sample_verify_cpu_seconds: f64,
    /// Cores of this machine (the I/O threads' kernel work and the workers share them).
    pub cores: usize,
    /// The predictions.
    pub predictions: Vec<Prediction>,
    /// Mailboxes that could not be listed (path: error), not counted.
    pub errors: Vec<String>,
}

/// Estimate a repair of `opts.domains` (all when empty) of `store`.
pub fn run(store: &Store, opts: &Options) -> Result<Estimate> {
    let mut est = Estimate::default();
    let threads = if opts.threads > 0 { opts.threads } else { store.config().worker_threads() };
    est.threads = threads;
    est.io_depth = IO_DEPTH;
    let boxes = list_boxes(store, opts, &mut est)?;
    est.mailboxes = boxes.len() as u64;
    est.messages = boxes.iter().map(|b| b.1.len() as u64).sum();
    if est.messages == 0 {
        est.predictions = predict(&est, &[]);
        return Ok(est);
    }
    let clusters = pick_clusters(&boxes, opts.sample.max(1), CLUSTER, opts.seed);
    let files = cluster_files(&boxes, &clusters);
    let dirs: Vec<Option<OwnedFd>> = boxes.iter().map(|(d, _)| open_dir(d).ok()).collect();

    // Pass 1: statx, IO_DEPTH in flight, in long runs of neighbouring files (a no-op
    // stats every file of a mailbox in order: the inode table is read ahead in large
    // pieces, which short clusters would not see); then the read sample's own files, not
    // timed (a repair reads the inodes of a mailbox's files together, ahead of their data).
    let stat_files = cluster_files(&boxes, &pick_clusters(&boxes, opts.sample.max(1), STAT_CLUSTER, opts.seed ^ 1));
    let t = Instant::now();
    parallel(&stat_files, IO_DEPTH, |&(b, uid, _)| stat_message(dirs[b].as_ref(), uid));
    // Per file of the read sample, as every pass is scaled by it.
    est.sample_stat_seconds = t.elapsed().as_secs_f64() * files.len() as f64 / stat_files.len().max(1) as f64;
    // The kernel's CPU time for these lookups is part of a cold read's (a repair looks up
    // each file's inode before reading it): counted with pass 2's.
    let c = process_cpu();
    parallel(&files, IO_DEPTH, |&(b, uid, _)| stat_message(dirs[b].as_ref(), uid));
    let lookup_cpu = process_cpu() - c;

    // Pass 2: out of the page cache (not timed), then read whole as a repair reads a cold
    // store: one thread asks the kernel for the files in order, the repair's CPU workers
    // read them (`scan`, `Planner::prefetch`).
    parallel(&files, IO_DEPTH, |&(b, uid, _)| {
        if let Some(f) = open_message(dirs[b].as_ref(), uid) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
    });
    let t = Instant::now();
    let c = process_cpu();
    std::thread::scope(|s| {
        s.spawn(|| {
            for &(b, uid, _) in &files {
                if let Some(d) = dirs[b].as_ref() {
                    crate::io::prefetch_at(d, layout::MessageName::new(uid).as_c_str());
                }
            }
        });
        parallel(&files, threads, |&(b, uid, _)| {
            if let Some(f) = open_message(dirs[b].as_ref(), uid) {
                let len = crate::io::content_len(&f).unwrap_or(0);
                let _ = crate::io::prefetched(|| {
                    crate::io::fetch_file(&f, len, crate::io::Map::Allow, crate::io::Cache::Keep)
                });
            }
        });
    });
    est.sample_read_seconds = t.elapsed().as_secs_f64();
    est.sample_read_cpu_seconds = process_cpu() - c + lookup_cpu;

    // Pass 3: warm.
    let warm = warm_passes(&files, &dirs, threads, clusters.len());
    let (per_cluster, rebuild_wall, verify_wall) = (warm.per_cluster, warm.rebuild_wall, warm.verify_wall);
    est.sample_cpu_seconds = rebuild_wall + verify_wall;
    est.sample_rebuild_cpu_seconds = warm.rebuild_cpu;
    est.sample_verify_cpu_seconds = warm.verify_cpu;
    est.cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    est.sampled = per_cluster.iter().map(|c| c.files).sum();
    est.sampled_bytes = per_cluster.iter().map(|c| c.bytes).sum();
    est.bytes_estimated =
        if est.sampled > 0 { (est.sampled_bytes as f64 / est.sampled as f64 * est.messages as f64) as u64 } else { 0 };
    est.predictions = predict(&est, &per_cluster);
    Ok(est)
}

/// The files of `clusters`: (mailbox, UID, cluster).
fn cluster_files(
    boxes: &[(std::path::PathBuf, Vec<u32>)],
    clusters: &[(usize, usize, usize)],
) -> Vec<(usize, u32, usize)> {
    clusters
        .iter()
        .enumerate()
        .flat_map(|(c, &(b, start, n))| boxes[b].1[start..start + n].iter().map(move |&uid| (b, uid, c)))
        .collect()
}

/// The message UIDs of every mailbox directory in scope, listed as a repair lists them
/// (the listing's time and what could not be listed go into `est`).
fn list_boxes(store: &Store, opts: &Options, est: &mut Estimate) -> Result<Vec<(std::path::PathBuf, Vec<u32>)>> {
    let mut entries = Vec::new();
    if opts.domains.is_empty() {
        entries = store.list(None)?;
    } else {
        for d in &opts.domains {
            entries.extend(store.list(Some(&layout::domain(d)?))?);
        }
    }
    // List every mailbox directory (as a repair does): the message count, and its time.
    let t = Instant::now();
    let mut boxes: Vec<(std::path::PathBuf, Vec<u32>)> = Vec::new();
    let mut caches: std::collections::HashMap<String, ListCache> = std::collections::HashMap::new();
    for e in &entries {
        let place = store.place(e)?;
        let cache = caches
            .entry(place.domain.clone())
            .or_insert_with(|| ListCache::load(store, &place.domain, Mode::Read, Extent::Subtrees));
        if stat_dir(&place.dir).is_ok_and(|st| cache.lookup(&st).is_some()) {
            est.listings_cached += 1;
        }
        match crate::survey::gather::list(&place.dir) {
            Ok(l) => boxes.push((place.dir, l.messages)),
            Err(err) => est.errors.push(crate::error::describe_io(&err, &place.dir)),
        }
    }
    est.listing_seconds = t.elapsed().as_secs_f64();
    Ok(boxes)
}

/// The warm passes over the sample, on as many threads as the repair's CPU workers (so
/// that what other processes take of the cores is seen too): read + parse and hash
/// (rebuild), then read + BLAKE3 (verify). Per-cluster thread times (for the error bar)
/// and the two passes' wall and CPU times.
fn warm_passes(files: &[(usize, u32, usize)], dirs: &[Option<OwnedFd>], threads: usize, clusters: usize) -> Warm {
    let per_cluster: Vec<parking_lot::Mutex<ClusterCost>> =
        (0..clusters).map(|_| parking_lot::Mutex::new(ClusterCost::default())).collect();
    let t = Instant::now();
    let c = process_cpu();
    parallel(files, threads, |&(b, uid, c)| {
        let Some(f) = open_message(dirs[b].as_ref(), uid) else { return };
        let t0 = Instant::now();
        let len = crate::io::content_len(&f).unwrap_or(0);
        let Ok(bytes) = crate::io::fetch_file(&f, len, crate::io::Map::Allow, crate::io::Cache::Keep) else { return };
        std::hint::black_box(crate::store::derive::derive(uid, &bytes, crate::store::derive::Received::Skip));
        let dt = t0.elapsed().as_secs_f64();
        let mut pc = per_cluster[c].lock();
        pc.files += 1;
        pc.bytes += len;
        pc.rebuild += dt;
    });
    let rebuild_wall = t.elapsed().as_secs_f64();
    let rebuild_cpu = process_cpu() - c;
    let t = Instant::now();
    let c = process_cpu();
    parallel(files, threads, |&(b, uid, c)| {
        let Some(f) = open_message(dirs[b].as_ref(), uid) else { return };
        let t0 = Instant::now();
        let len = crate::io::content_len(&f).unwrap_or(0);
        if let Ok(bytes) = crate::io::fetch_file(&f, len, crate::io::Map::Allow, crate::io::Cache::Keep) {
            std::hint::black_box(blake3::hash(&bytes));
        }
        per_cluster[c].lock().verify += t0.elapsed().as_secs_f64();
    });
    let verify_wall = t.elapsed().as_secs_f64();
    let verify_cpu = process_cpu() - c;
    // The reading alone (open, copy out of the page cache), which the cold read pass has
    // counted already: taken off both passes, so that a file's copy is counted once.
    let c = process_cpu();
    parallel(files, threads, |&(b, uid, _)| {
        let Some(f) = open_message(dirs[b].as_ref(), uid) else { return };
        let len = crate::io::content_len(&f).unwrap_or(0);
        std::hint::black_box(crate::io::fetch_file(&f, len, crate::io::Map::Allow, crate::io::Cache::Keep).ok());
    });
    let read_cpu = process_cpu() - c;
    let (rebuild_cpu, verify_cpu) = ((rebuild_cpu - read_cpu).max(0.0), (verify_cpu - read_cpu).max(0.0));
    // Out of the page cache again, so the sample pollutes nothing; not timed (dropping
    // costs a few microseconds a file, which verify does not spend on a store that fits
    // its budget: `io::Cache::Budget`).
    parallel(files, threads, |&(b, uid, _)| {
        if let Some(f) = open_message(dirs[b].as_ref(), uid) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
    });
    let per_cluster: Vec<ClusterCost> = per_cluster.into_iter().map(|m| m.into_inner()).collect();
    Warm { per_cluster, rebuild_wall, verify_wall, rebuild_cpu, verify_cpu }
}

/// What [`warm_passes`] measured.
struct Warm {
    per_cluster: Vec<ClusterCost>,
    rebuild_wall: f64,
    verify_wall: f64,
    rebuild_cpu: f64,
    verify_cpu: f64,
}

/// CPU time used so far by every thread of this process (user and system), seconds.
fn process_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// What the CPU pass measured of one cluster.
#[derive(Clone, Copy, Debug, Default)]
struct ClusterCost {
    files: u64,
    bytes: u64,
    /// Seconds: read (warm) + parse and hash, as a rebuild does.
    rebuild: f64,
    /// Seconds: read (warm) + BLAKE3, as verify does.
    verify: f64,
}

/// Relative standard error of the per-file mean of `f` over clusters (each cluster one
/// observation, weighted by its files).
fn rel_stderr(clusters: &[ClusterCost], f: impl Fn(&ClusterCost) -> f64) -> f64 {
    let cs: Vec<&ClusterCost> = clusters.iter().filter(|c| c.files > 0).collect();
    let k = cs.len() as f64;
    let files: f64 = cs.iter().map(|c| c.files as f64).sum();
    if k < 2.0 || files == 0.0 {
        return 1.0;
    }
    let mean = cs.iter().map(|c| f(c)).sum::<f64>() / files;
    if mean <= 0.0 {
        return 0.0;
    }
    // Ratio estimator: variance of (total_c - mean * files_c) over clusters.
    let avg_files = files / k;
    let var = cs.iter().map(|c| (f(c) - mean * c.files as f64).powi(2)).sum::<f64>() / (k - 1.0);
    (var / k).sqrt() / avg_files / mean
}

fn predict(est: &Estimate, clusters: &[ClusterCost]) -> Vec<Prediction> {
    let n = est.messages as f64;
    let sampled = est.sampled as f64;
    let scale = if sampled > 0.0 { n / sampled } else { 0.0 };
    // The device part of reading every file scales with the bytes and the files alike:
    // scaled by count (the sample's size mix stands for the store's).
    let read_dev = est.sample_read_seconds * scale;
    let stat_dev = est.sample_stat_seconds * scale;
    // The CPU part: what the cores must do, the kernel's work of reading cold (a cold
    // read costs the kernel CPU time of its own: on this project's two-core VM the cold
    // read pass alone keeps one to one and a half cores busy) and the run's own work,
    // shared by the cores. Timing the warm passes' wall time alone, as an earlier model
    // did, left out the reads' CPU and predicted a cold rebuild of 100,000 messages at
    // 0.72 of its time.
    let cores = est.cores.max(1) as f64;
    let read_cpu = est.sample_read_cpu_seconds * scale;
    let rebuild_cpu = (read_cpu + est.sample_rebuild_cpu_seconds * scale) / cores;
    let verify_cpu = (read_cpu + est.sample_verify_cpu_seconds * scale) / cores;
    let size_err = rel_stderr(clusters, |c| c.bytes as f64);
    let err_of = |cpu_bound: bool, f: fn(&ClusterCost) -> f64| {
        let e = if cpu_bound { rel_stderr(clusters, f) } else { size_err };
        (2.0 * e + DRIFT).min(1.0)
    };
    let list = est.listing_seconds;
    // A no-op lists only the directories the listing cache does not hold.
    let uncached = 1.0 - est.listings_cached as f64 / (est.mailboxes.max(1) as f64);
    let noop_list = list * uncached.clamp(0.0, 1.0);
    let one = |run, what, dev: f64, cpu: f64, f: fn(&ClusterCost) -> f64| {
        let cpu_bound = cpu > dev;
        Prediction {
            run,
            what,
            // The I/O threads ask for files ahead of the workers, so the larger part bounds
            // the run (see OVERLAP_LOSS for what is added).
            seconds: list + dev.max(cpu) + OVERLAP_LOSS * dev.min(cpu),
            error: err_of(cpu_bound, f),
            bound: if cpu_bound { "cpu" } else { "device" },
            device_seconds: dev,
            cpu_seconds: cpu,
        }
    };
    let rebuild = one(
        "rebuild",
        "reconstruct, every message read and parsed (index and cache lost)",
        read_dev,
        rebuild_cpu,
        |c| c.rebuild,
    );
    let verify = one("verify", "mstore verify (every message read and hashed)", read_dev, verify_cpu, |c| c.verify);
    // A no-op stats every message: its device part is the statx pass; its CPU part a
    // fraction of a warm read (no bytes copied) that the statx pass bounds from above.
    let noop = Prediction {
        run: "noop",
        what: "reconstruct with nothing to repair (one statx per message)",
        seconds: noop_list + stat_dev,
        error: (2.0 * size_err.min(0.5) + DRIFT + 0.1).min(1.0),
        bound: "device",
        device_seconds: stat_dev,
        cpu_seconds: 0.0,
    };
    // Rescue after a disk failure: every mailbox rebuilt, then the closing verify.
    let rescue = Prediction {
        run: "rescue",
        what: "mstore rescue: every mailbox rebuilt, then verify (the worst case)",
        seconds: rebuild.seconds + verify.seconds,
        error: rebuild.error.max(verify.error),
        bound: if rebuild.bound == "cpu" || verify.bound == "cpu" { "cpu" } else { "device" },
        device_seconds: rebuild.device_seconds + verify.device_seconds,
        cpu_seconds: rebuild.cpu_seconds + verify.cpu_seconds,
    };
    vec![rebuild, noop, verify, rescue]
}

/// Up to `sample / len` clusters of `len` files (mailbox, first position, length) at
/// random positions over every message of `boxes` (a mailbox with more messages gets
/// more), not overlapping.
fn pick_clusters(
    boxes: &[(std::path::PathBuf, Vec<u32>)],
    sample: usize,
    len: usize,
    seed: u64,
) -> Vec<(usize, usize, usize)> {
    let total: usize = boxes.iter().map(|b| b.1.len()).sum();
    let want = sample.div_ceil(len).max(1);
    let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // splitmix64
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    if want * len >= total {
        // Every file: each mailbox cut into clusters.
        return boxes
            .iter()
            .enumerate()
            .flat_map(|(b, (_, m))| (0..m.len()).step_by(len).map(move |s| (b, s, len.min(m.len() - s))))
            .collect();
    }
    let mut starts: Vec<usize> = (0..want).map(|_| (next() % total as u64) as usize).collect();
    starts.sort_unstable();
    // Global position -> (mailbox, offset); clusters end at their mailbox's end.
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    let (mut b, mut base) = (0usize, 0usize);
    for s in starts {
        while s >= base + boxes[b].1.len() {
            base += boxes[b].1.len();
            b += 1;
        }
        let mut start = s - base;
        if let Some(&(pb, ps, pn)) = out.last() {
            if pb == b && start < ps + pn {
                start = ps + pn;
            }
        }
        let n = len.min(boxes[b].1.len().saturating_sub(start));
        if n > 0 {
            out.push((b, start, n));
        }
    }
    out
}

/// `statx` of message `uid`, as a no-op does it.
fn stat_message(dir: Option<&OwnedFd>, uid: u32) {
    if let Some(d) = dir {
        let _ = rustix::fs::statx(
            d,
            layout::MessageName::new(uid).as_c_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            rustix::fs::StatxFlags::SIZE | rustix::fs::StatxFlags::MTIME,
        );
    }
}

fn open_dir(dir: &std::path::Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())?)
}

/// A message file, relative to its mailbox directory, never through a link.
fn open_message(dir: Option<&OwnedFd>, uid: u32) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    let d = dir?;
    rustix::fs::openat(
        d,
        layout::MessageName::new(uid).as_c_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()
    .map(File::from)
}

/// Run `f` over `items` on `threads` threads.
fn parallel<T: Sync>(items: &[T], threads: usize, f: impl Fn(&T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while let Some(it) = items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    f(it);
                }
            });
        }
    });
}

impl Render for Estimate {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} messages in {} mailboxes, about {:.0} MiB; sampled {} messages ({:.1} MiB) in clusters of {CLUSTER}",
            self.messages,
            self.mailboxes,
            self.bytes_estimated as f64 / 1048576.0,
            self.sampled,
            self.sampled_bytes as f64 / 1048576.0
        );
        let _ = writeln!(
            s,
            "assuming {} CPU workers and {} requests in flight (the defaults); listing took {:.2} s",
            self.threads, self.io_depth, self.listing_seconds
        );
        for p in &self.predictions {
            let (lo, hi) = (p.seconds * (1.0 - p.error), p.seconds * (1.0 + p.error));
            let _ = writeln!(
                s,
                "{:<8} {:>9} (±{:.0}%: {} to {}), bound by the {}: {}",
                p.run,
                fmt_secs(p.seconds),
                p.error * 100.0,
                fmt_secs(lo),
                fmt_secs(hi),
                if p.bound == "cpu" { "CPU" } else { "device" },
                p.what
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "not counted: {e}");
        }
        s
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{:.0} h {:02.0} min", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &std::path::Path) -> Vec<(std::path::PathBuf, u64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
                let m = e.path().symlink_metadata().expect("meta");
                out.push((e.path(), m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn counts_every_message_samples_some_predicts_every_run_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let (u, g) = crate::privs::current_user_and_group();
        let cfg = crate::synth::write_config(dir.path(), &u, &g, crate::io::Durability::NoSync).expect("config");
        let st = Store::init(cfg.clone()).expect("init");
        crate::synth::populate(&st, &crate::synth::demo_cast(), 300, 5, 1).expect("populate");
        drop(st);
        let st = Store::open_read_only(cfg).expect("open");
        let on_disk: u64 = st
            .list(None)
            .expect("list")
            .iter()
            .map(|e| crate::survey::gather::list(&st.place(e).expect("place").dir).expect("ls").messages.len() as u64)
            .sum();
        let before = tree(dir.path());
        let est = run(&st, &Options { sample: 40, ..Options::default() }).expect("estimate");
        assert_eq!(tree(dir.path()), before, "estimate writes nothing, takes no lock file");
        assert_eq!(est.messages, on_disk);
        assert_eq!(est.messages, 300);
        assert!(est.sampled >= 16 && est.sampled <= 48, "sampled {}", est.sampled);
        assert!(est.sampled_bytes > 0 && est.bytes_estimated >= est.sampled_bytes);
        let runs: Vec<&str> = est.predictions.iter().map(|p| p.run).collect();
        assert_eq!(runs, ["rebuild", "noop", "verify", "rescue"]);
        for p in &est.predictions {
            assert!(p.seconds > 0.0 && p.seconds.is_finite(), "{p:?}");
            assert!(p.error > 0.0 && p.error <= 1.0, "{p:?}");
            assert!(p.bound == "cpu" || p.bound == "device", "{p:?}");
            assert!(p.seconds >= p.device_seconds.max(p.cpu_seconds) * 0.999, "{p:?}");
        }
        let text = est.text();
        assert!(
            text.contains("300 messages in") && text.contains("rebuild") && text.contains("bound by the"),
            "{text}"
        );
        // One domain only: fewer messages.
        let one = run(&st, &Options { domains: vec!["example.com".into()], sample: 40, ..Options::default() })
            .expect("estimate one domain");
        assert!(one.messages > 0 && one.messages < 300, "{}", one.messages);
    }

    #[test]
    fn the_kernels_cpu_for_cold_reads_and_the_runs_own_share_the_cores() {
        // A sample of 1,000 of 10,000 messages: read pass 1 s of wall time and 1.5 s of
        // CPU time; the warm rebuild pass 1 s of CPU time, verify 0.3 s.
        let est = Estimate {
            mailboxes: 1,
            messages: 10_000,
            sampled: 1_000,
            listing_seconds: 0.5,
            sample_read_seconds: 1.0,
            sample_read_cpu_seconds: 1.5,
            sample_rebuild_cpu_seconds: 1.0,
            sample_verify_cpu_seconds: 0.3,
            cores: 2,
            ..Estimate::default()
        };
        let by = |est: &Estimate, run: &str| predict(est, &[]).into_iter().find(|p| p.run == run).expect(run);
        let rebuild = by(&est, "rebuild");
        // Device: 10 s. CPU: (15 + 10) s over 2 cores = 12.5 s, the larger: CPU-bound.
        assert_eq!(rebuild.bound, "cpu");
        assert!(
            (rebuild.device_seconds - 10.0).abs() < 1e-9 && (rebuild.cpu_seconds - 12.5).abs() < 1e-9,
            "{rebuild:?}"
        );
        assert!((rebuild.seconds - (0.5 + 12.5 + OVERLAP_LOSS * 10.0)).abs() < 1e-9, "{rebuild:?}");
        // Verify: (15 + 3) / 2 = 9 s of CPU, under the device's 10 s.
        let verify = by(&est, "verify");
        assert_eq!(verify.bound, "device");
        assert!((verify.seconds - (0.5 + 10.0 + OVERLAP_LOSS * 9.0)).abs() < 1e-9, "{verify:?}");
        // On eight cores the same work is bound by the device.
        let wide = Estimate { cores: 8, ..est };
        let rebuild = by(&wide, "rebuild");
        assert_eq!(rebuild.bound, "device");
        assert!((rebuild.cpu_seconds - 25.0 / 8.0).abs() < 1e-9, "{rebuild:?}");
    }

    #[test]
    fn clusters_stay_inside_their_mailbox_never_overlap_and_cover_all_when_asked_for_more() {
        let boxes: Vec<(std::path::PathBuf, Vec<u32>)> = [0usize, 5, 40, 1, 300, 17]
            .iter()
            .map(|&n| (std::path::PathBuf::new(), (1..=n as u32).collect()))
            .collect();
        let total: usize = boxes.iter().map(|b| b.1.len()).sum();
        for (sample, seed, len) in
            [(1, 1, CLUSTER), (50, 2, CLUSTER), (160, 3, CLUSTER), (10_000, 4, CLUSTER), (200, 5, STAT_CLUSTER)]
        {
            let cs = pick_clusters(&boxes, sample, len, seed);
            let mut seen = std::collections::HashSet::new();
            for &(b, start, n) in &cs {
                assert!((1..=len).contains(&n) && start + n <= boxes[b].1.len(), "{b} {start} {n}");
                for i in start..start + n {
                    assert!(seen.insert((b, i)), "file ({b}, {i}) sampled twice");
                }
            }
            assert!(!cs.is_empty());
            assert!(seen.len() <= sample.div_ceil(len) * len);
            if sample >= total {
                assert_eq!(seen.len(), total, "every file once");
            }
        }
    }
}
