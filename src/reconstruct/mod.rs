//! `reconstruct`: rebuild the header, index, cache and change-log files of mailboxes from
//! their message files, keeping every flag and date that survived.
//!
//! Pipeline (`scan`: N workers, bounded memory):
//!
//! ```text
//! survey: discover (select targets) ──► gather (per mailbox: lock, list the directory, salvage
//!   header/index/log/cache) ──► runs of files: stat, or open + fstat + read + parse +
//!   hash, cache record out ──► the worker that finishes a mailbox's last run merges
//!   (merge.rs) and writes (write.rs)
//! ```
//!
//! A consistent mailbox whose files are exactly its records (the no-op case) runs
//! *quick*: one `statx` per file compared with the record at the same position, an
//! outcome kept only for a file that differs, and with none the finish is
//! [`merge::unchanged`] instead of a merge over every file.
//!
//! Reports are put back in mailbox order before printing.

pub mod merge;
pub mod outcomes;
pub mod report;
mod write;

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use crate::survey::discover::{Selection, Target};
use crate::survey::gather::{Listing, OldState};
use crate::survey::{discover, gather, listcache};
use merge::{Derived, FileInfo, FileOutcome, MergeInput};
use outcomes::Outcomes;
pub use report::{MailboxReport, RunReport, Status, StoreReport};

use crate::error::{Error, Result};
use crate::fs::{Appender, Fs, FsLock, LockMode, TempFile};
use crate::io::Bytes;
use crate::layout::{self, CACHE_FILE};
use crate::store::derive::mtime_matches;
use crate::store::{MailboxEntry, MailboxPlace, Store};
use crate::util::{now, random_id};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Report what would change; write nothing.
    pub dry_run: bool,
    /// Read and hash every message even where the index looks current.
    pub verify_content: bool,
    /// Move stray, temporary and empty files into `ms.quarantine/`.
    pub quarantine: bool,
    /// Worker threads (0: from the configuration).
    pub threads: usize,
    /// I/O threads, reading ahead of the workers (`None`: `scan::DEFAULT_IO_THREADS`;
    /// 0: the workers read).
    pub io_threads: Option<usize>,
    /// Allow memory-mapping large files.
    pub mmap: bool,
    /// Keep every change in the report (for `--json`); otherwise the first few of each
    /// kind per mailbox, the rest counted.
    pub all_changes: bool,
    /// Index files with no surviving record under their own UIDs (see
    /// [`merge::MergeInput::keep_uids`]).
    pub keep_uids: bool,
    /// A mailbox of at least this many message files keeps the outcomes of its files in
    /// an unnamed file rather than in memory (`None`: [`outcomes::SPILL_AT`]).
    pub spill_at: Option<usize>,
}

pub use crate::report::{NoProgress, Progress};

enum CacheSink {
    /// Dry run: count bytes only.
    Discard { pos: u64 },
    /// Append to the existing `ms.cache` (it verified), opened for writing only when the
    /// first record comes (a run that changes nothing opens nothing for writing).
    Append { out: Option<BufWriter<Appender>>, fs: std::sync::Arc<dyn Fs>, path: std::path::PathBuf, pos: u64 },
    /// Write a new cache file, renamed into place when the mailbox is written (removed if
    /// it never is).
    Rewrite { out: BufWriter<TempFile<'static>>, pos: u64 },
}

impl CacheSink {
    fn put(&mut self, rec: &[u8]) -> std::io::Result<u64> {
        let (pos, out) = match self {
            CacheSink::Discard { pos } => (pos, None),
            CacheSink::Append { out, fs, path, pos } => {
                if out.is_none() {
                    let described =
                        |e: std::io::Error| std::io::Error::new(e.kind(), crate::error::describe_io(&e, path));
                    let f = fs.open_write(path).map_err(described)?;
                    // Appended at the end, as O_APPEND would.
                    let end = f.size().map_err(described)?;
                    *out = Some(BufWriter::with_capacity(256 * 1024, Appender::new(f, end)));
                }
                (pos, out.as_mut())
            }
            CacheSink::Rewrite { out, pos } => {
                let at = *pos;
                out.write_all(rec)?;
                *pos += rec.len() as u64;
                return Ok(at);
            }
        };
        let at = *pos;
        if let Some(o) = out {
            o.write_all(rec)?;
        }
        *pos += rec.len() as u64;
        Ok(at)
    }
}

/// A run's outcomes, each with the cache record it still has to place (if any).
type RunOutcomes = Vec<(FileOutcome, Option<Vec<u8>>)>;

/// Cache records are placed run by run in file order, so the cache a rebuild writes is the
/// same whatever the thread count (records in UID order, like appends made them): runs that
/// finish early wait here, a few at most, until the runs before them are placed.
struct Placing {
    sink: Option<CacheSink>,
    /// Start of the next run to place.
    next: usize,
    /// Finished runs waiting for earlier ones: start → (end, outcomes).
    waiting: std::collections::BTreeMap<usize, (usize, RunOutcomes)>,
}

struct Job {
    /// Its domain in the run, and its place in that domain's report.
    slot: Slot,
    /// Who reads the message files (taken once per mailbox, not per file).
    reader: Reader,
    place: MailboxPlace,
    target: Target,
    old: OldState,
    listing: Listing,
    read_all: bool,
    /// The mailbox is consistent and its message files are exactly its records, in the
    /// same order: a run compares each file's size and mtime with the record at the same
    /// position and keeps an outcome only for a file that differs (it is then looked at
    /// as in a full run). With no outcome at all, the finish is [`merge::unchanged`].
    quick: bool,
    /// The old cache file, read (or mapped) the first time a re-read message needs it.
    old_cache: std::sync::OnceLock<Option<Bytes>>,
    /// Where new cache records go, in UID order whatever order the runs finish in.
    placing: Mutex<Placing>,
    /// Whether the cache is being written anew (every read message gets a new record).
    cache_rewrite: bool,
    sink_error: Mutex<Option<String>>,
    outcomes: Mutex<Outcomes>,
    bytes_read: AtomicU64,
    /// The locked mailbox directory, for `statx`/`openat` relative to it.
    dirfd: Option<File>,
    /// The unique id the rebuilt mailbox will carry (drawn once: a new cache's header and
    /// the new header must agree).
    unique_id: [u8; 16],
    /// What is known of it from outside its own files.
    hints: Option<std::sync::Arc<merge::Hints>>,
    _lock: Option<FsLock>,
}

impl Job {
    /// The old cache's bytes, if it is usable: read on first use (a run that re-reads no
    /// message never reads the cache).
    fn old_cache(&self) -> Option<&[u8]> {
        self.old_cache
            .get_or_init(|| {
                // Through the layer: never through a link swapped in since the cache was
                // looked at, never blocking on a FIFO.
                let path = self.place.dir.join(CACHE_FILE);
                if self.old.cache.usable { crate::fs::RealFs.read_bytes(&path).ok() } else { None }
            })
            .as_deref()
    }
}

/// One run of reconstruct over one or more domains, all their mailboxes in one pipeline:
/// what every mailbox shares (the pipeline's planner).
struct StoreRun<'a> {
    store: &'a Store,
    opts: &'a Options,
    progress: &'a dyn Progress,
    /// Where the loss ledger lives (`formats/ledger.md`).
    ledger_dir: std::path::PathBuf,
    domains: Vec<DomainRun>,
}

/// One domain of a [`StoreRun`].
struct DomainRun {
    domain: String,
    reports: Mutex<Vec<Option<MailboxReport>>>,
    registrations: Mutex<Vec<MailboxEntry>>,
    /// What is known of each mailbox from outside its own files (the loss ledger, or
    /// what salvage found).
    hints: std::collections::HashMap<crate::layout::MailboxName, std::sync::Arc<merge::Hints>>,
}

/// Where a mailbox of a [`StoreRun`] reports: its domain's index, and its place in that
/// domain's report.
#[derive(Clone, Copy, Debug)]
struct Slot {
    domain: usize,
    order: usize,
}

impl StoreRun<'_> {
    fn domain(&self, slot: Slot) -> &DomainRun {
        &self.domains[slot.domain]
    }
    fn put_report(&self, slot: Slot, r: MailboxReport) {
        self.domain(slot).reports.lock()[slot.order] = Some(r);
    }
}

/// Run reconstruct over a selection.
pub fn run(store: &Store, sel: &Selection, opts: &Options, progress: &dyn Progress) -> Result<RunReport> {
    run_with(store, sel, opts, progress, std::collections::HashMap::new())
}

/// The loss ledger's outstanding losses of `domain` as hints, by mailbox: a message file
/// put back under its old UID gets its flags and date again.
fn ledger_hints(
    store: &Store,
    domain: &str,
    notes: &mut Vec<discover::SelectionNote>,
) -> std::collections::HashMap<crate::layout::MailboxName, merge::Hints> {
    let mut out: std::collections::HashMap<crate::layout::MailboxName, merge::Hints> = Default::default();
    let l = match crate::ledger::read(store.config(), domain) {
        Ok(Some(l)) => l,
        Ok(None) => return out,
        Err(e) => {
            notes.push(discover::SelectionNote {
                message: format!("{domain}: loss ledger not read ({e}); lost messages put back get no flags from it"),
                error: false,
            });
            return out;
        }
    };
    for e in crate::ledger::outstanding(&l.entries) {
        if e.kind != crate::ledger::Kind::Lost {
            continue;
        }
        let Ok(name) = crate::layout::MailboxName::parse(&e.mailbox) else { continue };
        let when = crate::message::DateTime { unix: e.when, offset_minutes: 0 }.to_rfc3339();
        out.entry(name).or_default().records.push(merge::Hint {
            record: e.record,
            flag_names: e.flag_names.clone(),
            origin: Some((e.unique_id, e.uid_validity)),
            source: format!("the loss ledger (lost {when})"),
            resolves: Some(e.clone()),
        });
    }
    for h in out.values_mut() {
        // One hint per UID: the last recorded loss of it.
        h.records.reverse();
        h.records.sort_by_key(|x| x.record.uid);
        h.records.dedup_by_key(|x| x.record.uid);
    }
    out
}

/// [`run`] with what salvage knows of some mailboxes from outside their own files (it
/// takes precedence over the loss ledger's hints for the same UID).
pub fn run_with(
    store: &Store,
    sel: &Selection,
    opts: &Options,
    progress: &dyn Progress,
    extra: std::collections::HashMap<crate::layout::MailboxName, merge::Hints>,
) -> Result<RunReport> {
    let mut runs = run_many(store, vec![(sel.clone(), extra)], opts, progress)?;
    runs.pop().unwrap_or_else(|| Err(Error::Invalid("reconstruct: no domain".into())))
}

/// What is known of a domain's mailboxes from outside their own files, by mailbox.
pub type Hints = std::collections::HashMap<crate::layout::MailboxName, merge::Hints>;

/// Merge what salvage knows of some mailboxes (`extra`) into the loss ledger's hints: it
/// takes precedence for the same UID, and its identity over none.
fn merge_hints(
    hints: &mut std::collections::HashMap<crate::layout::MailboxName, merge::Hints>,
    extra: std::collections::HashMap<crate::layout::MailboxName, merge::Hints>,
) {
    for (name, h) in extra {
        let e = hints.entry(name).or_default();
        if h.identity.is_some() {
            e.identity = h.identity;
        }
        let mut recs = h.records;
        recs.sort_by_key(|x| x.record.uid);
        let from_ledger = std::mem::take(&mut e.records);
        let kept: Vec<merge::Hint> = from_ledger
            .into_iter()
            .filter(|l| recs.binary_search_by_key(&l.record.uid, |x| x.record.uid).is_err())
            .collect();
        recs.extend(kept);
        recs.sort_by_key(|x| x.record.uid);
        e.records = recs;
    }
}

/// Every mailbox of every domain of the store (those the mailbox list, a partition or the
/// loss ledger knows) in one run, one pipeline (`reconstruct -r` without a domain).
pub fn run_store(store: &Store, opts: &Options, progress: &dyn Progress) -> Result<StoreReport> {
    let domains = crate::verify::all_domains(store)?;
    let selections = domains
        .iter()
        .map(|d| {
            let sel = Selection { domain: d.clone(), user: None, recursive: true, mailboxes: Vec::new() };
            (sel, Hints::new())
        })
        .collect();
    let mut out = StoreReport {
        dry_run: opts.dry_run,
        notes: Vec::new(),
        domains: Vec::new(),
        errors: Vec::new(),
        repaired_store: false,
    };
    for (d, r) in domains.iter().zip(run_many(store, selections, opts, progress)?) {
        match r {
            Ok(r) => out.domains.push(r),
            Err(e) => out.errors.push(format!("{d}: {e}")),
        }
    }
    Ok(out)
}

/// Several selections (each a domain, with what salvage knows of its mailboxes) in one
/// run: every mailbox of every domain goes through one pipeline, so a store of many small
/// domains keeps every core and the device as busy as one large domain. One report per
/// selection, in order; a selection that cannot be resolved (an unknown domain, a missing
/// mailbox argument) is an `Err` of its own and does not stop the others.
pub fn run_many(
    store: &Store,
    selections: Vec<(Selection, Hints)>,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Result<RunReport>>> {
    let threads = if opts.threads > 0 { opts.threads } else { store.config().worker_threads() };
    let cache = if opts.dry_run { listcache::Mode::Read } else { listcache::Mode::ReadWrite };
    let mut run =
        StoreRun { store, opts, progress, ledger_dir: crate::ledger::dir(store.config()), domains: Vec::new() };
    // Per selection: its index in `run.domains` and its notes, or why it was not run.
    let mut picked: Vec<Result<(usize, Vec<discover::SelectionNote>)>> = Vec::new();
    let mut all_targets: Vec<(Slot, Target)> = Vec::new();
    for (sel, extra) in selections {
        let selected = layout::domain(&sel.domain)
            .and_then(|domain| discover::select(store, &sel, threads, cache).map(|t| (domain, t)));
        let (domain, (targets, mut notes)) = match selected {
            Ok(x) => x,
            Err(e) => {
                picked.push(Err(e));
                continue;
            }
        };
        let mut hints = ledger_hints(store, &domain, &mut notes);
        merge_hints(&mut hints, extra);
        let d = run.domains.len();
        all_targets.extend(targets.into_iter().enumerate().map(|(order, t)| (Slot { domain: d, order }, t)));
        run.domains.push(DomainRun {
            domain,
            reports: Mutex::new(Vec::new()),
            registrations: Mutex::new(Vec::new()),
            hints: hints.into_iter().map(|(k, v)| (k, std::sync::Arc::new(v))).collect(),
        });
        picked.push(Ok((d, notes)));
    }
    for (slot, _) in &all_targets {
        let mut r = run.domains[slot.domain].reports.lock();
        if r.len() <= slot.order {
            r.resize_with(slot.order + 1, || None);
        }
    }
    progress.start(all_targets.len() as u64);
    let io = opts.io_threads.unwrap_or(crate::scan::DEFAULT_IO_THREADS);
    // Planning writes nothing: a mailbox whose directory is gone is recreated after the
    // pipeline has run over the others.
    let (missing, present) = split_missing(&run, all_targets);
    crate::scan::run(&run, present, crate::scan::Threads { cpu: threads, io })
        .map_err(|e| Error::Invalid(format!("reconstruct: {e}")))?;
    for (slot, target, dir) in missing {
        let place = place_of(&run, slot, &target, dir);
        let r = write::recreate_missing(&place, &target, opts.dry_run, &run.ledger_dir);
        if let (true, Some(e)) = (r.registered, &r.entry) {
            run.domain(slot).registrations.lock().push(e.clone());
        }
        run.put_report(slot, r);
        progress.mailbox_done(0);
    }
    let mut domains: Vec<Option<DomainRun>> = run.domains.into_iter().map(Some).collect();
    Ok(picked
        .into_iter()
        .map(|p| {
            let (d, notes) = p?;
            let dr = domains[d].take().ok_or_else(|| Error::Invalid("reconstruct: domain taken twice".into()))?;
            Ok(domain_report(store, opts, dr, notes))
        })
        .collect())
}

/// A domain's report, once its mailboxes are done: the mailboxes found or rebuilt are
/// recorded in the mailbox list (not in a dry run).
fn domain_report(store: &Store, opts: &Options, dr: DomainRun, notes: Vec<discover::SelectionNote>) -> RunReport {
    let regs = dr.registrations.into_inner();
    let mut reports: Vec<MailboxReport> = dr.reports.into_inner().into_iter().flatten().collect();
    if !regs.is_empty() && !opts.dry_run {
        if let Err(e) = store.mailbox_list().change(&regs, &[]) {
            for r in reports.iter_mut().filter(|r| r.entry.is_some()) {
                r.status = Status::Failed(format!("rebuilt, but recording it in the mailbox list failed: {e}"));
            }
        }
    }
    RunReport { domain: dr.domain, dry_run: opts.dry_run, notes, mailboxes: reports, repaired_store: false }
}

impl crate::scan::Planner for StoreRun<'_> {
    /// A mailbox and where it reports.
    type Target = (Slot, Target);
    type Job = Job;
    type Loaded = Loaded;

    fn plan(&self, _: usize, (slot, target): (Slot, Target)) -> Option<Job> {
        match prepare(self, slot, target) {
            Ok(job) => Some(job),
            Err(b) => {
                let (t, e) = *b;
                self.put_report(slot, MailboxReport::failed(&self.domain(slot).domain, &t, e.to_string()));
                self.progress.mailbox_done(0);
                None
            }
        }
    }
    fn files(&self, job: &Job) -> usize {
        job.listing.messages.len()
    }
    fn run_len(&self, job: &Job) -> usize {
        if job.read_all { 16 } else { 256 }
    }
    fn prefetches(&self, job: &Job) -> bool {
        // Every file read whole (no record to match on metadata), through the directory.
        job.read_all && !job.quick && job.dirfd.is_some()
    }
    fn prefetch(&self, job: &Job, i: usize) -> usize {
        let Some(dir) = job.dirfd.as_ref() else { return 0 };
        let name = layout::MessageName::new(job.listing.messages[i]);
        crate::io::prefetch_at(dir, name.as_c_str()) as usize
    }
    fn load(&self, job: &Job, i: usize) -> Loaded {
        let uid = job.listing.messages[i];
        if job.quick && job.old.index_records.as_slice().get(i).is_some_and(|r| matches_record(job, uid, r)) {
            return Loaded::Same;
        }
        load_file(job, uid, self.opts)
    }
    fn held(&self, l: &Loaded) -> usize {
        match l {
            Loaded::Read { bytes, .. } => bytes.held(),
            _ => 0,
        }
    }
    fn process(&self, job: &Job, start: usize, loaded: Vec<Loaded>) {
        let end = start + loaded.len();
        let run: RunOutcomes = loaded.into_iter().filter_map(|l| derive_file(job, l)).collect();
        place_run(job, start, end, run);
    }
    fn finish(&self, job: &Job) {
        finalize(self, job);
    }
}

/// A target whose directory is gone: its place in the report, and that directory.
type Missing = (Slot, Target, std::path::PathBuf);

/// The targets whose directory is gone (and was not found anywhere: recreated empty), with
/// that directory, and the others, each with its place in the report.
fn split_missing(run: &StoreRun<'_>, targets: Vec<(Slot, Target)>) -> (Vec<Missing>, Vec<(Slot, Target)>) {
    let mut missing = Vec::new();
    let mut present = Vec::new();
    for (slot, target) in targets {
        if !target.on_disk {
            // A directory that cannot be named is reported by `prepare`.
            if let Ok(dir) = discover::target_dir(run.store, &run.domain(slot).domain, &target) {
                if !dir.is_dir() {
                    missing.push((slot, target, dir));
                    continue;
                }
            }
        }
        present.push((slot, target));
    }
    (missing, present)
}

/// Where a target's files are.
fn place_of(shared: &StoreRun<'_>, slot: Slot, target: &Target, dir: std::path::PathBuf) -> MailboxPlace {
    let config = shared.store.config();
    MailboxPlace {
        domain: shared.domain(slot).domain.clone(),
        name: target.name.clone(),
        partition: target.partition.clone(),
        dir,
        config_path: config.path.clone(),
        durability: config.durability,
        fs: std::sync::Arc::clone(shared.store.fs()),
    }
}

/// Lock, list and salvage one mailbox. Nothing of the store is written here; the one file
/// opened for writing is the temporary cache the workers stream into when the cache is
/// rewritten (removed unless the rewrite renames it into place).
fn prepare(shared: &StoreRun<'_>, slot: Slot, target: Target) -> std::result::Result<Job, Box<(Target, Error)>> {
    let store = shared.store;
    let dir = match discover::target_dir(store, &shared.domain(slot).domain, &target) {
        Ok(d) => d,
        Err(e) => return Err(Box::new((target, e))),
    };
    let place = place_of(shared, slot, &target, dir.clone());
    let fs = store.fs();
    let lock = match fs.lock(&dir, LockMode::Exclusive) {
        Ok(l) => l,
        Err(e) => return Err(Box::new((target, Error::io("lock mailbox", &dir, e)))),
    };
    let (listing, old) = match listing_and_old(&place, &target, &lock) {
        Ok(lo) => lo,
        Err(e) => return Err(Box::new((target, Error::io("list mailbox directory", &dir, e)))),
    };
    let hints = shared.domain(slot).hints.get(&target.name).cloned();
    let adopting = hints.as_ref().and_then(|h| h.identity.as_ref()).map(|i| i.unique_id);
    // A cache of another identity than the one taken back is rewritten.
    let cache_ok = old.cache.usable && adopting.is_none_or(|id| old.cache.unique_id == Some(id));
    let read_all = shared.opts.verify_content || !cache_ok || adopting.is_some();
    let quick = !read_all && adopting.is_none() && matches_index(&listing, &old);
    let unique_id = adopting.unwrap_or_else(|| merge_unique_id(&old, &target));

    let sink = match cache_sink(shared, &place, &old, cache_ok, &unique_id) {
        Ok(sink) => sink,
        Err(e) => return Err(Box::new((target, Error::io("create a new cache file in", &dir, e)))),
    };
    let n = listing.messages.len();
    Ok(Job {
        slot,
        place,
        target,
        old,
        listing,
        read_all,
        quick,
        old_cache: std::sync::OnceLock::new(),
        cache_rewrite: matches!(sink, CacheSink::Rewrite { .. }),
        placing: Mutex::new(Placing { sink: Some(sink), next: 0, waiting: Default::default() }),
        sink_error: Mutex::new(None),
        // The quick run keeps an outcome only for a file that differs from its record.
        outcomes: Mutex::new(if quick {
            Outcomes::default()
        } else {
            Outcomes::for_files(n, shared.opts.spill_at.unwrap_or(outcomes::SPILL_AT), lock.dir())
        }),
        bytes_read: AtomicU64::new(0),
        dirfd: lock.dir().and_then(|d| d.try_clone().ok()),
        reader: Reader::current(),
        unique_id,
        hints,
        _lock: Some(lock),
    })
}

/// The mailbox's listing and what its old files hold, under its lock. Discovery's listing
/// (perhaps from the listing cache) is reused if the directory has not changed since (same
/// ctime and mtime, now that the lock is held), and only if it holds a file for every
/// record the index and the log know: a record is never dropped as missing on a listing
/// from before the lock; the directory is read again first.
fn listing_and_old(place: &MailboxPlace, target: &Target, lock: &FsLock) -> std::io::Result<(Listing, OldState)> {
    let covers_records = |listing: &Listing, old: &OldState| {
        let has = |uid: u32| listing.messages.binary_search(&uid).is_ok();
        old.index_records.values().all(|r| has(r.uid)) && old.log.as_ref().is_none_or(|l| l.state.keys().all(has))
    };
    let reused = target
        .hint
        .as_ref()
        .filter(|h| {
            lock.dir().is_some_and(|d| listcache::stat_open_dir(d).is_ok_and(|k| (k.ctime, k.mtime) == h.times))
        })
        .map(|h| {
            let listing = (*h.listing).clone();
            let old = gather::gather(place, &listing, lock.dir());
            (listing, old)
        })
        .filter(|(listing, old)| covers_records(listing, old));
    Ok(match reused {
        Some(lo) => lo,
        None => {
            let listing = gather::list(&place.dir)?;
            let old = gather::gather(place, &listing, lock.dir());
            (listing, old)
        }
    })
}

/// Whether the listing is exactly the consistent mailbox's records (the quick run's
/// precondition).
fn matches_index(listing: &Listing, old: &OldState) -> bool {
    old.current.is_some()
        && listing.messages.len() == old.index_records.len()
        && listing.messages.iter().zip(old.index_records.values()).all(|(&u, r)| u == r.uid)
}

/// Where the run's cache records go: counted only (dry run), appended to a cache that
/// verified, or a new cache file written beside it.
fn cache_sink(
    shared: &StoreRun<'_>,
    place: &MailboxPlace,
    old: &OldState,
    cache_ok: bool,
    unique_id: &[u8; 16],
) -> std::io::Result<CacheSink> {
    let fs = place.fs.clone();
    let dir = &place.dir;
    Ok(if shared.opts.dry_run {
        CacheSink::Discard { pos: if cache_ok { old.cache.len } else { crate::format::cache::HEADER_LEN as u64 } }
    } else if cache_ok {
        CacheSink::Append { out: None, fs: std::sync::Arc::clone(&fs), path: dir.join(CACHE_FILE), pos: old.cache.len }
    } else {
        let generation = old.index_header.as_ref().map(|h| h.generation).unwrap_or(0) + 1;
        let header = crate::codec::cache::encode_header(unique_id, generation);
        let made = TempFile::create_shared(std::sync::Arc::clone(&fs), dir, CACHE_FILE).and_then(|f| {
            let mut out = BufWriter::with_capacity(256 * 1024, f);
            out.write_all(&header)?;
            Ok(out)
        });
        CacheSink::Rewrite { out: made?, pos: header.len() as u64 }
    })
}

/// The unique id the rebuilt mailbox will carry (same rule as the merge).
fn merge_unique_id(old: &OldState, target: &Target) -> [u8; 16] {
    old.header_fixed
        .as_ref()
        .map(|h| h.unique_id)
        .or(old.index_header.as_ref().map(|h| h.unique_id))
        .or(old.log.as_ref().map(|l| l.header.unique_id))
        .or(target.entry.as_ref().map(|e| e.unique_id))
        .unwrap_or_else(random_id)
}

/// Whether message file `uid` still has the size and mtime of its record (one `statx`):
/// the quick run's whole look at a file. Any doubt (an error, an empty file) is `false`,
/// and the file is then looked at fully.
fn matches_record(job: &Job, uid: u32, r: &crate::codec::index::MessageRecord) -> bool {
    let name = layout::MessageName::new(uid);
    let st = match job.dirfd.as_ref() {
        Some(d) => stat_at(d, name.as_c_str(), job.reader),
        None => return false,
    };
    st.is_ok_and(|(size, mtime)| size > 0 && size == r.size && mtime_matches(mtime, r.internal_date, now()))
}

/// Size and mtime of `name` in the open directory `dir`: one `statx`, asking only for
/// what is compared, with no path walk.
fn stat_at(dir: &File, name: &std::ffi::CStr, reader: Reader) -> std::io::Result<(u64, i64)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let want = StatxFlags::SIZE | StatxFlags::MTIME | StatxFlags::MODE | StatxFlags::UID | StatxFlags::GID;
    let st = statx(dir, name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC, want)?;
    reader.may_read(u32::from(st.stx_mode), st.stx_uid, st.stx_gid)?;
    Ok((st.stx_size, st.stx_mtime.tv_sec))
}

/// The effective user and group of this process, taken once per mailbox (a file matched
/// on metadata is not read, so its owner and mode are checked against them instead).
#[derive(Clone, Copy, Debug)]
struct Reader {
    euid: u32,
    egid: u32,
}

impl Reader {
    fn current() -> Reader {
        Reader { euid: rustix::process::geteuid().as_raw(), egid: rustix::process::getegid().as_raw() }
    }

    /// `PermissionDenied` for a file whose owner and mode keep this process (the runtime
    /// user) from reading it, which an IMAP server running as that user could not serve
    /// either. Root reads anything.
    fn may_read(self, mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
        if self.euid == 0 {
            return Ok(());
        }
        let bit = if uid == self.euid {
            0o400
        } else if gid == self.egid || rustix::process::getgroups().is_ok_and(|g| g.iter().any(|x| x.as_raw() == gid)) {
            0o040
        } else {
            0o004
        };
        if mode & bit == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        Ok(())
    }
}

/// Size and mtime of an open file: one `statx` asking for those two only.
fn fstat_size_mtime(file: &File) -> std::io::Result<(u64, i64)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let st = statx(file, c"", AtFlags::EMPTY_PATH, StatxFlags::SIZE | StatxFlags::MTIME)?;
    Ok((st.stx_size, st.stx_mtime.tv_sec))
}

/// What the I/O stage found of one message file.
enum Loaded {
    /// A quick run's file that matches the record at its position: no outcome.
    Same,
    /// Decided without reading it (matched its record on metadata, vanished, unreadable,
    /// empty).
    Done(FileOutcome),
    /// Read: to be parsed and hashed.
    Read { info: FileInfo, bytes: crate::io::Fetched, best: Option<crate::codec::index::MessageRecord> },
}

/// The blocking part of looking at one message file: stat only when its record can be
/// trusted on metadata, else open, fstat and read it (parsed and hashed by
/// [`derive_file`]).
fn load_file(job: &Job, uid: u32, opts: &Options) -> Loaded {
    let name = layout::MessageName::new(uid);
    let path = || job.place.dir.join(name.as_str());
    let dirfd = job.dirfd.as_ref();
    let best = merge::best_candidate(&job.old, uid);
    let unreadable = |e: &std::io::Error| {
        Loaded::Done(FileOutcome::Unreadable { uid, error: crate::error::describe_io(e, &path()) })
    };
    if !job.read_all {
        let st = match dirfd {
            Some(d) => stat_at(d, name.as_c_str(), job.reader),
            None => std::fs::symlink_metadata(path()).and_then(|m| {
                use std::os::unix::fs::MetadataExt;
                job.reader.may_read(m.mode(), m.uid(), m.gid())?;
                Ok((m.len(), m.mtime()))
            }),
        };
        match st {
            Ok((size, mtime)) => {
                if let Some(r) = best {
                    if r.size == size && mtime_matches(mtime, r.internal_date, now()) && size > 0 {
                        return Loaded::Done(FileOutcome::Matched(FileInfo { uid, size, mtime }));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Done(FileOutcome::Vanished { uid }),
            Err(e) => return unreadable(&e),
        }
    }
    let opened = match dirfd {
        Some(d) => crate::io::open_at(d, name.as_c_str()),
        None => File::open(path()),
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Done(FileOutcome::Vanished { uid }),
        Err(e) => return unreadable(&e),
    };
    let (size, mtime) = match fstat_size_mtime(&file) {
        Ok(m) => m,
        Err(e) => return unreadable(&e),
    };
    let info = FileInfo { uid, size, mtime };
    if size == 0 {
        return Loaded::Done(FileOutcome::Empty(info));
    }
    match crate::io::fetch_file(
        &file,
        size,
        if opts.mmap { crate::io::Map::Allow } else { crate::io::Map::Never },
        crate::io::Cache::Budget,
    ) {
        Ok(bytes) => Loaded::Read { info, bytes, best },
        Err(e) => unreadable(&e),
    }
}

/// The CPU part: parse and hash a file [`load_file`] read. A new cache record for it is
/// returned beside its outcome, to be placed in order by [`place_run`]. `None` for a
/// quick run's file that matched.
fn derive_file(job: &Job, loaded: Loaded) -> Option<(FileOutcome, Option<Vec<u8>>)> {
    let (info, bytes, best) = match loaded {
        Loaded::Same => return None,
        Loaded::Done(o) => return Some((o, None)),
        Loaded::Read { info, bytes, best } => (info, bytes, best),
    };
    let plausible = info.mtime > 0 && info.mtime <= now() + 86_400;
    let d = crate::store::derive::derive(
        info.uid,
        &bytes,
        if plausible { crate::store::derive::Received::Skip } else { crate::store::derive::Received::Parse },
    );
    drop(bytes);
    job.bytes_read.fetch_add(info.size, Ordering::Relaxed);
    // A record that already describes this content keeps its cache record when that
    // record is byte-for-byte what we would write.
    let keep_cache = !job.cache_rewrite
        && best.is_some_and(|r| {
            r.content_hash == d.content_hash
                && job.old_cache().is_some_and(|c| {
                    let (o, l) = (r.cache_offset as usize, r.cache_len as usize);
                    o.checked_add(l).and_then(|e| c.get(o..e)) == Some(&d.cache_record[..])
                })
        });
    let record = (!keep_cache).then_some(d.cache_record);
    Some((
        FileOutcome::Read(
            info,
            Derived {
                content_hash: d.content_hash,
                prefix_hash: d.prefix_hash,
                header_size: d.header_size,
                sent_date: d.sent_date,
                received_date: d.received_date,
                cache: None,
            },
        ),
        record,
    ))
}

/// A quick run's outcomes (the files that did not match) completed with a `Matched`
/// outcome for every other file: what a full run would have produced.
fn with_matched(job: &Job, differing: &Outcomes) -> Outcomes {
    let mut differing = differing.iter().peekable();
    let mut all = Vec::with_capacity(job.old.index_records.len());
    for r in job.old.index_records.values() {
        match differing.next_if(|o| o.uid() == r.uid) {
            Some(o) => all.push(o),
            None => all.push(FileOutcome::Matched(FileInfo { uid: r.uid, size: r.size, mtime: r.internal_date })),
        }
    }
    Outcomes::from(all)
}

/// Debug builds: the quick finish must be exactly what the full merge gives.
#[cfg(debug_assertions)]
fn check_unchanged(job: &Job, input: &merge::MergeInput<'_>, quick: &merge::Merged) {
    let input = MergeInput { release_log: false, ..input.clone() };
    let full = merge::merge(&job.old, &input, &with_matched(job, &Outcomes::default()));
    assert!(
        !full.changed
            && !full.placement_changed
            && !full.unrepaired
            && full.changes.list.is_empty()
            && full.changes.elided.is_empty()
            && full.renames.is_empty()
            && full.set_aside.is_empty()
            && full.counts == quick.counts
            && full.header == quick.header
            && (full.last_uid, full.seq) == (quick.last_uid, quick.seq),
        "quick finish differs from the merge for {}: {full:?}",
        job.place.dir.display()
    );
}

/// Hand a finished run to the cache: place its records, and those of any runs waiting
/// for it, in file order, and keep their outcomes (with where each record went) in that order.
fn place_run(job: &Job, start: usize, end: usize, run: RunOutcomes) {
    let mut placed = Vec::with_capacity(run.len());
    {
        let mut p = job.placing.lock();
        p.waiting.insert(start, (end, run));
        loop {
            let next = p.next;
            let Some((end, run)) = p.waiting.remove(&next) else { break };
            p.next = end;
            for (mut outcome, record) in run {
                if let (FileOutcome::Read(_, d), Some(rec)) = (&mut outcome, record) {
                    match p.sink.as_mut().map(|s| s.put(&rec)) {
                        Some(Ok(at)) => d.cache = Some((at, rec.len() as u32)),
                        Some(Err(e)) => *job.sink_error.lock() = Some(e.to_string()),
                        None => {}
                    }
                }
                placed.push(outcome);
            }
        }
        // Still under the placing lock: outcomes are kept in file (UID) order.
        if !placed.is_empty() {
            job.outcomes.lock().append(&mut placed);
        }
    }
}

fn finalize(shared: &StoreRun<'_>, job: &Job) {
    let mut outcomes = std::mem::take(&mut *job.outcomes.lock());
    outcomes.seal();
    let listed = job.target.entry.as_ref().map(|e| (e.unique_id, e.uid_validity, e.created));
    let input = MergeInput {
        domain: &shared.domain(job.slot).domain,
        name: job.place.name.as_str(),
        listed,
        listed_modseq: job.target.entry.as_ref().map_or(0, |e| e.highest_modseq),
        now: now(),
        fresh_id: job.unique_id,
        keep_changes: if shared.opts.all_changes { usize::MAX } else { report::DETAIL_LINES },
        keep_uids: shared.opts.keep_uids,
        hints: job.hints.as_deref(),
        // Nothing reads the log's records after the merge (the debug check below merges
        // again, without letting go).
        release_log: true,
    };
    let sink = job.placing.lock().sink.take();
    let quick = if job.quick && outcomes.is_empty() { merge::unchanged(&job.old, &input) } else { None };
    let mut report = match quick {
        Some(merged) => {
            #[cfg(debug_assertions)]
            check_unchanged(job, &input, &merged);
            let mut r = write::finish(shared.opts, job, merged, sink, &Outcomes::default(), &shared.ledger_dir);
            r.messages = job.old.index_records.len() as u64;
            r
        }
        None => {
            if job.quick {
                outcomes = with_matched(job, &outcomes);
            }
            let merged = merge::merge(&job.old, &input, &outcomes);
            write::finish(shared.opts, job, merged, sink, &outcomes, &shared.ledger_dir)
        }
    };
    if !shared.opts.all_changes {
        report.compact();
    }
    if let Some(e) = &report.entry {
        shared.domain(job.slot).registrations.lock().push(e.clone());
    }
    shared.progress.mailbox_done(job.listing.messages.len() as u64);
    shared.put_report(job.slot, report);
}
