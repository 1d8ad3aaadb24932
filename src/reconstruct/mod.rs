//! `reconstruct`: rebuild the header, index, cache and change-log files of mailboxes from
//! their message files, keeping every flag and date that survived.
//!
//! Pipeline (one planner, N workers, bounded memory):
//!
//! ```text
//! discover (select targets) ──► plan (per mailbox, in order: lock, list the directory,
//!   salvage header/index/log/cache)  ──bounded channel of file tasks──►  workers:
//!   stat, or open + fstat + read + parse + hash, cache record out  ──► the worker that
//!   finishes a mailbox's last file merges (merge.rs) and writes (write.rs)
//! ```
//!
//! Many small mailboxes and one huge mailbox both keep every worker busy: tasks are single
//! files, not mailboxes. Reports are put back in mailbox order before printing.

pub mod discover;
pub mod merge;
pub mod plan;
pub mod report;
mod write;

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

pub use discover::{Selection, Target};
use merge::{Derived, FileInfo, FileOutcome, MergeInput};
use plan::{Listing, OldState};
pub use report::{MailboxReport, RunReport, Status};

use crate::error::{Error, Result};
use crate::io::{Bytes, LockMode, MailboxLock};
use crate::layout::{self, CACHE_FILE};
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
    /// Allow memory-mapping large files.
    pub mmap: bool,
}

/// Progress callbacks (a progress bar in the CLI; nothing in tests).
pub trait Progress: Sync {
    /// Planning starts: this many mailboxes.
    fn start(&self, _mailboxes: u64) {}
    /// A mailbox is done; `messages` files were looked at.
    fn mailbox_done(&self, _messages: u64) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

enum CacheSink {
    /// Dry run: count bytes only.
    Discard { pos: u64 },
    /// Append to the existing `ms.cache` (it verified).
    Append { out: BufWriter<File>, pos: u64 },
    /// Write a new cache file, renamed into place when the mailbox is written.
    Rewrite { out: BufWriter<File>, pos: u64, tmp: std::path::PathBuf },
}

impl CacheSink {
    fn put(&mut self, rec: &[u8]) -> std::io::Result<u64> {
        let (pos, out) = match self {
            CacheSink::Discard { pos } => (pos, None),
            CacheSink::Append { out, pos } | CacheSink::Rewrite { out, pos, .. } => (pos, Some(out)),
        };
        let at = *pos;
        if let Some(o) = out {
            o.write_all(rec)?;
        }
        *pos += rec.len() as u64;
        Ok(at)
    }
}

struct Job {
    order: usize,
    place: MailboxPlace,
    target: Target,
    old: OldState,
    listing: Listing,
    read_all: bool,
    old_cache: Option<Bytes>,
    sink: Mutex<Option<CacheSink>>,
    sink_error: Mutex<Option<String>>,
    outcomes: Mutex<Vec<FileOutcome>>,
    remaining: AtomicUsize,
    bytes_read: AtomicU64,
    _lock: Option<MailboxLock>,
}

struct Shared<'a> {
    store: &'a Store,
    domain: String,
    opts: &'a Options,
    reports: Mutex<Vec<Option<MailboxReport>>>,
    registrations: Mutex<Vec<MailboxEntry>>,
    progress: &'a dyn Progress,
}

/// Run reconstruct over a selection.
pub fn run(store: &Store, sel: &Selection, opts: &Options, progress: &dyn Progress) -> Result<RunReport> {
    let (targets, notes) = discover::select(store, sel)?;
    let domain = layout::domain(&sel.domain)?;
    let threads = if opts.threads > 0 { opts.threads } else { store.config().worker_threads() };
    progress.start(targets.len() as u64);
    let shared = Shared {
        store,
        domain: domain.clone(),
        opts,
        reports: Mutex::new((0..targets.len()).map(|_| None).collect()),
        registrations: Mutex::new(Vec::new()),
        progress,
    };
    let (tx, rx) = crossbeam::channel::bounded::<(Arc<Job>, u32)>(threads * 512);
    crossbeam::scope(|s| {
        for _ in 0..threads {
            let rx = rx.clone();
            let shared = &shared;
            s.spawn(move |_| {
                for (job, uid) in rx.iter() {
                    let outcome = process_file(&job, uid, shared.opts);
                    job.outcomes.lock().push(outcome);
                    if job.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        finalize(shared, &job);
                    }
                }
            });
        }
        drop(rx);
        for (order, target) in targets.into_iter().enumerate() {
            match prepare(&shared, order, target) {
                Ok(Some(job)) => {
                    let job = Arc::new(job);
                    if job.listing.messages.is_empty() {
                        finalize(&shared, &job);
                    } else {
                        for &uid in &job.listing.messages {
                            if tx.send((job.clone(), uid)).is_err() {
                                break;
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err((t, e)) => {
                    let r = MailboxReport::failed(&domain, &t, e.to_string());
                    shared.reports.lock()[order] = Some(r);
                    progress.mailbox_done(0);
                }
            }
        }
        drop(tx);
    })
    .map_err(|_| Error::Invalid("a reconstruct worker thread panicked".into()))?;

    let regs = shared.registrations.into_inner();
    let mut reports: Vec<MailboxReport> = shared.reports.into_inner().into_iter().flatten().collect();
    if !regs.is_empty() && !opts.dry_run {
        if let Err(e) = store.mailbox_list().change(&regs, &[]) {
            for r in reports.iter_mut().filter(|r| r.registered) {
                r.status = Status::Failed(format!("rebuilt, but registering it in the mailbox list failed: {e}"));
            }
        }
    }
    Ok(RunReport { domain, dry_run: opts.dry_run, notes, mailboxes: reports })
}

/// Lock, list and salvage one mailbox; `None` when it was handled entirely here.
fn prepare(shared: &Shared<'_>, order: usize, target: Target) -> std::result::Result<Option<Job>, (Target, Error)> {
    let store = shared.store;
    let dir = match discover::target_dir(store, &shared.domain, &target) {
        Ok(d) => d,
        Err(e) => return Err((target, e)),
    };
    let place = MailboxPlace {
        domain: shared.domain.clone(),
        name: target.name.clone(),
        partition: target.partition.clone(),
        dir: dir.clone(),
        config_path: store.config().path.clone(),
        durability: store.config().durability,
    };
    if !target.on_disk && !dir.is_dir() {
        let r = write::recreate_missing(&place, &target, shared.opts.dry_run);
        shared.reports.lock()[order] = Some(r);
        shared.progress.mailbox_done(0);
        return Ok(None);
    }
    let lock = match MailboxLock::acquire(&dir, LockMode::Wait) {
        Ok(l) => l,
        Err(e) => return Err((target, Error::io("lock mailbox", &dir, e))),
    };
    let listing = match plan::list(&dir) {
        Ok(l) => l,
        Err(e) => return Err((target, Error::io("list mailbox directory", &dir, e))),
    };
    let old = plan::gather(&place, &listing);
    let read_all = shared.opts.verify_content || !old.cache.usable;
    // Mapped (not read) when large: only the records of re-read messages are touched.
    let old_cache = if old.cache.usable { crate::io::read_file(&dir.join(CACHE_FILE)).ok() } else { None };
    let sink = if shared.opts.dry_run {
        CacheSink::Discard {
            pos: if old.cache.usable { old.cache.len } else { crate::format::cache::HEADER_LEN as u64 },
        }
    } else if old.cache.usable {
        match std::fs::OpenOptions::new().append(true).open(dir.join(CACHE_FILE)) {
            Ok(f) => CacheSink::Append { out: BufWriter::with_capacity(256 * 1024, f), pos: old.cache.len },
            Err(e) => return Err((target, Error::io("open", dir.join(CACHE_FILE), e))),
        }
    } else {
        let tmp = dir.join(crate::io::temp_name(CACHE_FILE));
        let unique_id = merge_unique_id(&old, &target);
        let generation = old.index_header.as_ref().map(|h| h.generation).unwrap_or(0) + 1;
        let header = crate::codec::cache::encode_header(&unique_id, generation);
        let made = File::create(&tmp).and_then(|f| {
            let mut out = BufWriter::with_capacity(256 * 1024, f);
            out.write_all(&header)?;
            Ok(out)
        });
        match made {
            Ok(out) => CacheSink::Rewrite { out, pos: header.len() as u64, tmp },
            Err(e) => return Err((target, Error::io("create", &tmp, e))),
        }
    };
    let n = listing.messages.len();
    Ok(Some(Job {
        order,
        place,
        target,
        old,
        listing,
        read_all,
        old_cache,
        sink: Mutex::new(Some(sink)),
        sink_error: Mutex::new(None),
        outcomes: Mutex::new(Vec::with_capacity(n)),
        remaining: AtomicUsize::new(n),
        bytes_read: AtomicU64::new(0),
        _lock: Some(lock),
    }))
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

fn stat_at(path: &std::path::Path) -> std::io::Result<(u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.len(), m.mtime()))
}

/// Look at one message file: stat only when its record can be trusted on metadata, else
/// open, read, parse and hash it.
fn process_file(job: &Job, uid: u32, opts: &Options) -> FileOutcome {
    let path = job.place.dir.join(layout::message_file_name(uid));
    let best = merge::candidates(&job.old, uid, true, true).into_iter().next().map(|c| c.1);
    if !job.read_all {
        match stat_at(&path) {
            Ok((size, mtime)) => {
                if let Some(r) = best {
                    if r.size == size && r.internal_date == mtime && size > 0 {
                        return FileOutcome::Matched(FileInfo { uid, size, mtime });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileOutcome::Vanished { uid },
            Err(e) => return FileOutcome::Unreadable { uid, error: crate::error::describe_io(&e, &path) },
        }
    }
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileOutcome::Vanished { uid },
        Err(e) => return FileOutcome::Unreadable { uid, error: crate::error::describe_io(&e, &path) },
    };
    let (size, mtime) = match file.metadata() {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            (m.len(), m.mtime())
        }
        Err(e) => return FileOutcome::Unreadable { uid, error: e.to_string() },
    };
    let info = FileInfo { uid, size, mtime };
    if size == 0 {
        return FileOutcome::Empty(info);
    }
    let bytes = match crate::io::read_file_at(&file, size, opts.mmap) {
        Ok(b) => b,
        Err(e) => return FileOutcome::Unreadable { uid, error: crate::error::describe_io(&e, &path) },
    };
    drop(file);
    job.bytes_read.fetch_add(size, Ordering::Relaxed);
    let d = crate::store::derive::derive(uid, &bytes);
    // A record that already describes this content keeps its cache record when that
    // record is byte-for-byte what we would write.
    let keep_cache = !matches!(*job.sink.lock(), Some(CacheSink::Rewrite { .. }))
        && best.is_some_and(|r| {
            r.content_hash == d.content_hash
                && job.old_cache.as_deref().is_some_and(|c| {
                    let (o, l) = (r.cache_offset as usize, r.cache_len as usize);
                    o.checked_add(l).and_then(|e| c.get(o..e)) == Some(&d.cache_record[..])
                })
        });
    let cache = if keep_cache {
        None
    } else {
        let mut sink = job.sink.lock();
        match sink.as_mut().map(|s| s.put(&d.cache_record)) {
            Some(Ok(at)) => Some((at, d.cache_record.len() as u32)),
            Some(Err(e)) => {
                *job.sink_error.lock() = Some(e.to_string());
                None
            }
            None => None,
        }
    };
    FileOutcome::Read(
        info,
        Derived {
            content_hash: d.content_hash,
            header_size: d.header_size,
            sent_date: d.sent_date,
            received_date: d.received_date,
            cache,
        },
    )
}

fn finalize(shared: &Shared<'_>, job: &Job) {
    let mut outcomes = std::mem::take(&mut *job.outcomes.lock());
    outcomes.sort_by_key(FileOutcome::uid);
    let listed = job.target.entry.as_ref().map(|e| (e.unique_id, e.uid_validity, e.created));
    let input = MergeInput {
        domain: &shared.domain,
        name: job.place.name.as_str(),
        listed,
        now: now(),
        fresh_id: merge_unique_id(&job.old, &job.target),
    };
    let merged = merge::merge(&job.old, &input, &outcomes);
    let sink = job.sink.lock().take();
    let report = write::finish(shared.opts, job, merged, sink, &outcomes);
    if report.registered {
        if let Some(e) = &report.entry {
            shared.registrations.lock().push(e.clone());
        }
    }
    shared.progress.mailbox_done(outcomes.len() as u64);
    shared.reports.lock()[job.order] = Some(report);
}
