//! `mstore verify`: a read-only forensic scan of a store.
//!
//! Read-only by construction: it opens files with `O_RDONLY` only, takes no lock, writes
//! no temporary file. For every mailbox in scope it checks the header, index, change log
//! and cache checksums record by record; the index against the message files (missing,
//! extra, size, and — unless `--quick` — the BLAKE3 content hash, i.e. bit rot); the cache
//! against the index; the mailbox list against what is on disk; owners against the runtime
//! user. Every finding carries the path, the byte offset where known, and the exact
//! command that repairs it. The scan runs on the same pipeline as reconstruct
//! (`scan`); findings are put back in mailbox order.

mod bounded;
mod losses;

use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Serialize;

use crate::codec::changelog::{self, LogEnd};
use crate::codec::header::{self, MailboxHeader};
use crate::codec::index;
use crate::codec::{FormatError, cache};
use crate::error::{Error, Result};
use crate::finding::{Finding, Severity};
use crate::layout::{self, CACHE_FILE, HEADER_FILE, INDEX_FILE, LOG_FILE};
use crate::privs::RuntimeIds;
use crate::store::derive::mtime_matches;
use crate::store::{MailboxPlace, Store};
use crate::survey::discover::{self, Selection, Target};
use crate::survey::gather::{self, Listing, OldState, RecordSet};
use crate::util::shell_quote;

pub mod links;

/// A store file's bytes for the detailed findings: never through a link, never more than
/// its real content (a sparse file stops at a hole: see [`crate::io::content_len`]).
fn read_store_file(path: PathBuf) -> std::io::Result<Vec<u8>> {
    crate::fs::Fs::read(&crate::fs::RealFs, &path)
}

/// What to scan.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Domain; `None`: every domain of the store.
    pub domain: Option<String>,
    /// With mailboxes: include every mailbox below each.
    pub recursive: bool,
    /// Mailboxes (all of the domain when empty).
    pub mailboxes: Vec<String>,
}

/// How to scan.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Metadata only: do not read message bodies.
    pub quick: bool,
    /// Worker threads (0: from the configuration).
    pub threads: usize,
    /// I/O threads, reading ahead of the workers (`None`: `scan::DEFAULT_IO_THREADS`;
    /// 0: the workers read).
    pub io_threads: Option<usize>,
}

pub use crate::report::{NoProgress, Progress};

/// The result of a scan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Every finding, in mailbox order.
    pub findings: Vec<Finding>,
    /// Mailboxes scanned.
    pub mailboxes: u64,
    /// Message files looked at.
    pub messages: u64,
    /// Bytes of message files read and hashed.
    pub bytes_read: u64,
    /// Whether bodies were read.
    pub quick: bool,
    /// Parts of the store that could not be scanned at all.
    pub errors: Vec<String>,
}

impl VerifyReport {
    /// Exit status: 0 clean, 4 findings, 8 could not scan (some part).
    pub fn exit(&self) -> crate::report::Exit {
        if !self.errors.is_empty() {
            crate::report::Exit::Error
        } else if self.findings.is_empty() {
            crate::report::Exit::Ok
        } else {
            crate::report::Exit::Unrepaired
        }
    }
}

/// One verify run over its scope: what every mailbox shares (the pipeline's planner).
struct StoreScan<'a> {
    store: &'a Store,
    opts: &'a Options,
    ids: Option<RuntimeIds>,
    findings: Mutex<Vec<Option<Vec<Finding>>>>,
    messages: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    progress: &'a dyn Progress,
}

struct Job {
    order: usize,
    place: MailboxPlace,
    listing: Listing,
    expected: RecordSet,
    dirfd: Option<File>,
    findings: Mutex<Vec<Finding>>,
    /// Findings of the message files, by UID once the mailbox is done (each file is
    /// checked as it is read: nothing per file is kept but what is wrong with it), of each
    /// kind at most `bounded::MAX_LISTED_PER_KIND` whole.
    file_findings: Mutex<bounded::Bounded>,
}

enum FileCheck {
    Meta { size: u64, mtime: i64, uid: u32, gid: u32 },
    Read { size: u64, mtime: i64, hash: [u8; 32], uid: u32, gid: u32 },
    Missing,
    Unreadable(String),
}

/// Open the store of `config` and scan `scope`. A database that cannot be opened (the
/// guide's "unable to open database") is itself a finding, with its repair; the mailboxes
/// then cannot be checked against the list, which makes the scan incomplete (exit 8).
pub fn run_config(
    config: crate::config::Config,
    scope: &Scope,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let conf = shell_quote(&config.path.to_string_lossy());
    let home = config.database_path.display().to_string();
    // A link in the database home is never opened: say so instead of failing to open it.
    let db_links = links::in_database_home(&config);
    if !db_links.is_empty() {
        let mut r = VerifyReport { quick: opts.quick, findings: db_links, ..VerifyReport::default() };
        r.errors.push(
            "mailboxes not scanned: the database home holds symbolic links, which are never followed; remove them (the fixes above) and run verify again".into(),
        );
        return Ok(r);
    }
    // Verify writes nothing: the databases are opened read-only too.
    match Store::open_read_only(config) {
        Ok(st) => run(&st, scope, opts, progress),
        // A database that does not open: damage (the log, or a snapshot it names), reported
        // with where it is.
        Err(e @ (Error::Db(_) | Error::Corrupt { .. })) => {
            let mut r = VerifyReport { quick: opts.quick, ..VerifyReport::default() };
            let mut f = Finding::at(Severity::Error, "db-corrupt", home, e.to_string());
            if let Error::Corrupt { path, offset, .. }
            | Error::Db(crate::db::DbError::LogCorrupt { path, offset, .. }) = &e
            {
                f.path = path.display().to_string();
                f.offset = Some(*offset);
            }
            r.findings.push(f.fix(format!("msdb_repair -f {conf}")));
            r.errors.push(
                "mailboxes not scanned: the mailbox list cannot be opened until the databases are repaired".into(),
            );
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

/// Scan `scope` of `store`.
pub fn run(store: &Store, scope: &Scope, opts: &Options, progress: &dyn Progress) -> Result<VerifyReport> {
    let mut report = VerifyReport { quick: opts.quick, ..VerifyReport::default() };
    let ids = crate::privs::resolve(store.config()).ok();
    let domains: Vec<String> = match &scope.domain {
        Some(d) => vec![layout::domain(d)?],
        None => all_domains(store)?,
    };
    let threads = if opts.threads > 0 { opts.threads } else { store.config().worker_threads() };
    let mut targets: Vec<(String, Target)> = Vec::new();
    for d in &domains {
        let sel = Selection {
            domain: d.clone(),
            user: None,
            recursive: scope.recursive || scope.mailboxes.is_empty(),
            mailboxes: scope.mailboxes.clone(),
        };
        match discover::select(store, &sel, threads, crate::survey::listcache::Mode::Read) {
            Ok((ts, notes)) => {
                for n in notes.into_iter().filter(|n| n.error) {
                    report.errors.push(n.message);
                }
                targets.extend(ts.into_iter().map(|t| (d.clone(), t)));
            }
            Err(e) => report.errors.push(format!("{d}: {e}")),
        }
    }
    progress.start(targets.len() as u64);
    let shared = StoreScan {
        store,
        opts,
        ids,
        findings: Mutex::new((0..targets.len()).map(|_| None).collect()),
        messages: Default::default(),
        bytes: Default::default(),
        progress,
    };
    report.mailboxes = targets.len() as u64;
    let io = opts.io_threads.unwrap_or(crate::scan::DEFAULT_IO_THREADS);
    crate::scan::run(&shared, targets, crate::scan::Threads { cpu: threads, io })
        .map_err(|e| Error::Invalid(format!("verify: {e}")))?;
    report.findings = cap_per_file(shared.findings.into_inner().into_iter().flatten().flatten().collect());
    for f in links::outside_mailboxes(store, &domains, scope.domain.is_none()) {
        // A registered mailbox directory that is a link was reported by its own scan.
        if !report.findings.iter().any(|g| g.kind == f.kind && g.path == f.path) {
            report.findings.push(f);
        }
    }
    for d in &domains {
        report.findings.extend(losses::findings(store, d, scope));
    }
    if scope.domain.is_none() {
        report.findings.extend(database_findings(store));
    }
    report.messages = shared.messages.into_inner();
    report.bytes_read = shared.bytes.into_inner();
    Ok(report)
}

/// Findings listed at most for one file; the rest are counted in one more finding.
pub const MAX_FINDINGS_PER_FILE: usize = 100;

/// Keep the first [`MAX_FINDINGS_PER_FILE`] findings of each file and count the rest in
/// one finding of the same kind, so a garbage file costs a bounded report.
fn cap_per_file(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(findings.len().min(1 << 16));
    let mut extra: Vec<(usize, Finding)> = Vec::new();
    for f in findings {
        let n = seen.entry(f.path.clone()).or_insert(0);
        *n += 1;
        if *n <= MAX_FINDINGS_PER_FILE {
            out.push(f);
        } else if *n == MAX_FINDINGS_PER_FILE + 1 {
            extra.push((out.len(), f));
        }
    }
    // Each summary goes right after the last listed finding of its file.
    for (at, mut f) in extra.into_iter().rev() {
        let more = seen.get(&f.path).copied().unwrap_or(0) - MAX_FINDINGS_PER_FILE;
        f.offset = None;
        f.uid = None;
        f.message = format!("{more} more findings for this file not listed (the first {MAX_FINDINGS_PER_FILE} are)");
        out.insert(at, f);
    }
    out
}

/// The databases and their transaction log (what `msdb_verify` checks), as findings.
fn database_findings(store: &Store) -> Vec<Finding> {
    use crate::db::verify::Status;
    let cfg = store.config();
    let conf = shell_quote(&cfg.path.to_string_lossy());
    let home = cfg.database_path.display().to_string();
    let r = match crate::db::verify::verify(&crate::fs::RealFs, &cfg.database_path) {
        Ok(r) => r,
        Err(e) => {
            return vec![
                Finding::at(Severity::Error, "db-unreadable", home, e.to_string())
                    .fix(format!("msdb_verify -f {conf}")),
            ];
        }
    };
    let mut out = Vec::new();
    let fix = match r.status {
        Status::Clean => return out,
        Status::TornTail => format!("msdb_recover -f {conf}"),
        Status::Corrupt => format!("msdb_repair -f {conf}"),
    };
    let sev = if r.status == Status::Corrupt { Severity::Error } else { Severity::Warning };
    for sn in &r.snapshots {
        if let Some(e) = &sn.error {
            out.push(Finding::at(sev, "db-snapshot", sn.file.display().to_string(), e.clone()).fix(fix.clone()));
        }
    }
    if let Some(d) = &r.damage {
        let at = d.at();
        let mut f = Finding::at(
            if d.is_corrupt() { Severity::Error } else { Severity::Warning },
            if d.is_corrupt() { "db-log-corrupt" } else { "db-log-torn-tail" },
            at.file.display().to_string(),
            d.describe(),
        )
        .fix(fix.clone());
        f.offset = Some(at.offset);
        out.push(f);
    }
    if out.is_empty() {
        let what =
            if r.problems.is_empty() { "damage that recovery repairs".to_string() } else { r.problems.join("; ") };
        out.push(Finding::at(sev, "db-damage", home, what).fix(fix));
    }
    out
}

/// Every domain the mailbox list or any partition knows.
pub fn all_domains(store: &Store) -> Result<Vec<String>> {
    let mut d: Vec<String> = store.list(None)?.into_iter().map(|e| e.domain).collect();
    for root in store.config().partitions.values() {
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) && layout::domain(&name).is_ok_and(|x| x == name) {
                    d.push(name);
                }
            }
        }
    }
    // A domain whose every mailbox was lost still has its ledger.
    d.extend(crate::ledger::domains(store.config()));
    d.sort();
    d.dedup();
    Ok(d)
}

impl StoreScan<'_> {
    fn fix(&self, place: &MailboxPlace, extra: &str) -> String {
        format!(
            "reconstruct -f {}{extra} {} {}",
            shell_quote(&self.store.config().path.to_string_lossy()),
            place.domain,
            shell_quote(place.name.as_str())
        )
    }
}

impl StoreScan<'_> {
    /// Record the findings of a mailbox that cannot be scanned further.
    fn done_early(&self, order: usize, findings: Vec<Finding>) -> Option<Job> {
        self.findings.lock()[order] = Some(findings);
        self.progress.mailbox_done(0);
        None
    }

    /// Stray and temporary files, links in place of store files, and store files with the
    /// wrong owner, each with its fix.
    fn leftover_findings(&self, place: &MailboxPlace, listing: &Listing) -> Vec<Finding> {
        let dir = &place.dir;
        let mk = |sev, kind, path: PathBuf, msg: String| mailbox_finding(place, sev, kind, path, msg);
        let mut findings = Vec::new();
        for s in &listing.strays {
            if links::is_link(&dir.join(s)) {
                findings.push(links::finding(&dir.join(s)).fix(format!(
                    "rm -- {} && {}",
                    shell_quote(&dir.join(s).to_string_lossy()),
                    self.fix(place, "")
                )));
                continue;
            }
            findings.push(
                mk(
                    Severity::Warning,
                    "stray-file",
                    dir.join(s),
                    "not a message file, store file or sub-mailbox".into(),
                )
                .fix(self.fix(place, " --quarantine")),
            );
        }
        for t in &listing.temps {
            findings.push(
                mk(Severity::Warning, "temp-file", dir.join(t), "temporary file left by an interrupted write".into())
                    .fix(self.fix(place, " --quarantine")),
            );
        }
        for name in [HEADER_FILE, INDEX_FILE, CACHE_FILE, LOG_FILE] {
            if links::is_link(&dir.join(name)) {
                findings.push(links::finding(&dir.join(name)).fix(format!(
                    "rm -- {} && {}",
                    shell_quote(&dir.join(name).to_string_lossy()),
                    self.fix(place, "")
                )));
            }
        }
        if let Some(ids) = &self.ids {
            for name in [HEADER_FILE, INDEX_FILE, CACHE_FILE, LOG_FILE, ""] {
                let p = if name.is_empty() { dir.clone() } else { dir.join(name) };
                if let Ok(m) = std::fs::symlink_metadata(&p) {
                    use std::os::unix::fs::MetadataExt;
                    if let Some(f) = owner_finding(ids, &p, m.uid(), m.gid(), self.store) {
                        findings.push(f);
                    }
                }
            }
        }
        findings
    }
}

impl crate::scan::Planner for StoreScan<'_> {
    type Target = (String, Target);
    type Job = Job;
    type Loaded = (u32, Loaded);

    fn plan(&self, order: usize, (domain, target): (String, Target)) -> Option<Job> {
        let mut findings = Vec::new();
        let dir = match discover::target_dir(self.store, &domain, &target) {
            Ok(d) => d,
            Err(e) => {
                findings.push(Finding::at(Severity::Error, "partition", target.partition.clone(), e.to_string()));
                return self.done_early(order, findings);
            }
        };
        let place = MailboxPlace {
            domain: domain.clone(),
            name: target.name.clone(),
            partition: target.partition.clone(),
            dir: dir.clone(),
            config_path: self.store.config().path.clone(),
            durability: self.store.config().durability,
            fs: std::sync::Arc::clone(self.store.fs()),
        };
        let mk = |sev, kind, path: PathBuf, msg: String| mailbox_finding(&place, sev, kind, path, msg);
        if target.entry.is_none() {
            findings.push(
                mk(
                    Severity::Error,
                    "not-registered",
                    dir.clone(),
                    "mailbox on disk but missing from the mailbox list".into(),
                )
                .fix(self.fix(&place, "")),
            );
        }
        if links::is_link(&dir) {
            // Never followed: what it points to is not this mailbox's directory.
            findings.push(links::finding(&dir));
            return self.done_early(order, findings);
        }
        if !target.on_disk {
            findings.push(
                mk(
                    Severity::Error,
                    "directory-missing",
                    dir.clone(),
                    "registered in the mailbox list, but its directory is missing".into(),
                )
                .fix(self.fix(&place, "")),
            );
            return self.done_early(order, findings);
        }
        let listing = match target.hint.as_ref() {
            Some(h) => (*h.listing).clone(),
            None => match gather::list(&dir) {
                Ok(l) => l,
                Err(e) => {
                    findings.push(mk(
                        Severity::Error,
                        "directory-unreadable",
                        dir.clone(),
                        format!("cannot list: {}", crate::error::describe_io(&e, &dir)),
                    ));
                    return self.done_early(order, findings);
                }
            },
        };
        let mut old = gather::gather(&place, &listing, None);
        let fix = self.fix(&place, "");
        for f in structural_findings(&place, &old, &target) {
            findings.push(f.fix(fix.clone()));
        }
        let expected = expected_records(&mut old);
        // A damaged cache record is only seen by a run that compares records with the
        // messages: --verify-content.
        let cache_fix = self.fix(&place, " --verify-content");
        findings.extend(cache_findings(&place, &old, &expected).into_iter().map(|f| f.fix(cache_fix.clone())));
        findings.extend(self.leftover_findings(&place, &listing));
        let dirfd = File::open(&dir).ok();
        Some(Job {
            order,
            place,
            listing,
            expected,
            dirfd,
            findings: Mutex::new(findings),
            file_findings: Mutex::new(bounded::Bounded::default()),
        })
    }

    fn files(&self, job: &Job) -> usize {
        job.listing.messages.len()
    }

    fn run_len(&self, _job: &Job) -> usize {
        if self.opts.quick { 256 } else { 16 }
    }

    fn prefetches(&self, job: &Job) -> bool {
        !self.opts.quick && job.dirfd.is_some()
    }

    fn prefetch(&self, job: &Job, i: usize) -> usize {
        let Some(dir) = job.dirfd.as_ref() else { return 0 };
        let name = layout::MessageName::new(job.listing.messages[i]);
        crate::io::prefetch_at(dir, name.as_c_str()) as usize
    }

    fn load(&self, job: &Job, i: usize) -> (u32, Loaded) {
        let uid = job.listing.messages[i];
        (uid, load_file(job, uid, self.opts.quick))
    }

    fn held(&self, (_, l): &(u32, Loaded)) -> usize {
        match l {
            Loaded::Read { bytes, .. } => bytes.held(),
            Loaded::Checked(_) => 0,
        }
    }

    fn process(&self, job: &Job, _start: usize, loaded: Vec<(u32, Loaded)>) {
        let last_uid = job.expected.last_uid().unwrap_or(0);
        let (mut local, mut one) = (Vec::new(), Vec::new());
        for (uid, l) in loaded {
            self.check_file(job, uid, &check_file(l, &self.bytes), last_uid, &mut one);
            local.extend(one.drain(..).map(|f| (uid, f)));
        }
        if !local.is_empty() {
            job.file_findings.lock().append(local);
        }
    }

    fn finish(&self, job: &Job) {
        let mut findings = std::mem::take(&mut *job.findings.lock());
        let mut per_file = std::mem::take(&mut *job.file_findings.lock());
        let files = job.listing.messages.len() as u64;
        self.messages.fetch_add(files, std::sync::atomic::Ordering::Relaxed);
        let mk = |sev, kind, uid: u32, msg: String| self.message_finding(job, sev, kind, uid, msg);
        // Indexed UIDs with no file listed (both sorted).
        let listed = &job.listing.messages;
        for uid in job.expected.uids().filter(|u| listed.binary_search(u).is_err()) {
            per_file.push(
                uid,
                mk(Severity::Error, "message-missing", uid, "the index lists this message but its file is gone".into()),
            );
        }
        // In UID order, as a file's findings were made.
        findings.extend(per_file.into_findings(&job.place.dir.display().to_string()));
        self.findings.lock()[job.order] = Some(findings);
        self.progress.mailbox_done(files);
    }
}

impl StoreScan<'_> {
    /// A finding about message file `uid` of `job`'s mailbox, with the mailbox's fix.
    fn message_finding(&self, job: &Job, sev: Severity, kind: &'static str, uid: u32, msg: String) -> Finding {
        let mut f =
            Finding::at(sev, kind, job.place.dir.join(layout::message_file_name(uid)).display().to_string(), msg);
        f.domain = Some(job.place.domain.clone());
        f.mailbox = Some(job.place.name.to_string());
        f.uid = Some(uid);
        f.fix(self.fix(&job.place, ""))
    }

    /// The findings of one message file: vanished, unreadable, not indexed, empty, another
    /// size, another content (when read), another mtime, a wrong owner.
    fn check_file(&self, job: &Job, uid: u32, o: &FileCheck, last_uid: u32, findings: &mut Vec<Finding>) {
        let mk = |sev, kind, uid: u32, msg: String| self.message_finding(job, sev, kind, uid, msg);
        let rec = job.expected.get(&uid);
        let now = crate::util::now();
        let owner = |u: u32, g: u32| {
            self.ids.as_ref().and_then(|ids| {
                owner_finding(ids, &job.place.dir.join(layout::message_file_name(uid)), u, g, self.store).map(
                    |mut f| {
                        f.uid = Some(uid);
                        f
                    },
                )
            })
        };
        match (o, rec) {
            (FileCheck::Missing, Some(_)) => findings.push(mk(
                Severity::Error,
                "message-missing",
                uid,
                "indexed message file vanished during the scan".into(),
            )),
            (FileCheck::Missing, None) => {}
            (FileCheck::Unreadable(e), _) => {
                findings.push(mk(Severity::Error, "message-unreadable", uid, format!("cannot read: {e}")))
            }
            (FileCheck::Meta { size, uid: u, gid: g, .. } | FileCheck::Read { size, uid: u, gid: g, .. }, None) => {
                findings.extend(owner(*u, *g));
                let what = if *size == 0 {
                    "empty message file, not indexed"
                } else if uid > last_uid {
                    "message file not in the index (above the last UID)"
                } else {
                    "message file not in the index"
                };
                let mut f =
                    mk(Severity::Error, if *size == 0 { "message-empty" } else { "message-extra" }, uid, what.into());
                if *size == 0 {
                    // An empty file is no message: reconstruct moves it aside only when
                    // asked to (it never deletes, nor indexes, an empty file).
                    f.fix = Some(self.fix(&job.place, " --quarantine"));
                }
                findings.push(f);
            }
            (FileCheck::Meta { size, uid: u, gid: g, .. } | FileCheck::Read { size, uid: u, gid: g, .. }, Some(r)) => {
                findings.extend(owner(*u, *g));
                match o {
                    _ if *size != r.size => {
                        let mut f = mk(
                            Severity::Error,
                            "message-size",
                            uid,
                            format!("file is {size} bytes, the index says {}", r.size),
                        );
                        if *size == 0 {
                            // Its record is dropped and the empty file moved aside.
                            f.fix = Some(self.fix(&job.place, " --quarantine"));
                        }
                        findings.push(f)
                    }
                    FileCheck::Meta { mtime, .. } if !mtime_matches(*mtime, r.internal_date, now) => findings.push(mk(
                        Severity::Warning,
                        "message-mtime",
                        uid,
                        format!(
                            "file mtime {mtime} differs from the internal date {} (modified since it was indexed?)",
                            r.internal_date
                        ),
                    )),
                    FileCheck::Read { hash, .. } if r.content_hash != [0; 32] && *hash != r.content_hash => {
                        // Only a run that reads the bodies sees it: that run re-appends the
                        // damaged file as a new message (its old flags are reported).
                        let mut f = mk(
                            Severity::Error,
                            "message-content",
                            uid,
                            format!(
                                "content changed (bit rot?): BLAKE3 {} but the index says {}",
                                crate::util::hex(&hash[..8]),
                                crate::util::hex(&r.content_hash[..8])
                            ),
                        );
                        f.fix = Some(self.fix(&job.place, " --verify-content"));
                        findings.push(f);
                    }
                    FileCheck::Read { mtime, .. } if !mtime_matches(*mtime, r.internal_date, now) => findings.push(mk(
                        Severity::Warning,
                        "message-mtime",
                        uid,
                        format!(
                            "file mtime {mtime} differs from the internal date {} (the content is unchanged)",
                            r.internal_date
                        ),
                    )),
                    _ => {}
                }
            }
        }
    }
}

fn owner_finding(ids: &RuntimeIds, path: &std::path::Path, uid: u32, gid: u32, store: &Store) -> Option<Finding> {
    if uid == ids.uid && gid == ids.gid {
        return None;
    }
    let root = crate::doctor::store_roots(store.config())
        .into_iter()
        .find(|r| path.starts_with(r))
        .unwrap_or_else(|| path.to_path_buf());
    Some(
        Finding::at(
            Severity::Error,
            "owner",
            path.display().to_string(),
            format!(
                "{}owned by uid {uid} gid {gid}, not the runtime user {} ({}:{})",
                if uid == 0 { "root-" } else { "" },
                ids.owner(),
                ids.uid,
                ids.gid
            ),
        )
        .fix(format!("chown -R {} {}", ids.owner(), shell_quote(&root.to_string_lossy()))),
    )
}

/// The state the message files should match: the live state if the files are
/// consistent, else the newest surviving record of each UID.
/// The records every message file is checked against: the index's when the mailbox is
/// consistent (taken from `old`, not copied), else the index's and the change log's,
/// the later of each UID, without what the log expunged after it.
fn expected_records(old: &mut OldState) -> RecordSet {
    let index = std::mem::take(&mut old.index_records);
    if old.current.is_some() {
        return index;
    }
    // Both sides are in UID order: merged as they are walked, the log's chunks freed as
    // they are passed (no table of a million records).
    let Some(l) = old.log.as_mut() else { return index };
    let index = index.into_vec();
    let mut all = Vec::with_capacity(index.len().max(l.state.len()));
    let mut log = std::mem::take(&mut l.state).into_sorted().peekable();
    let mut index = index.into_iter().peekable();
    loop {
        let r = match (index.peek(), log.peek()) {
            (None, None) => break,
            (Some(_), None) => index.next(),
            (None, Some(_)) => log.next(),
            (Some(i), Some(g)) if i.uid < g.uid => index.next(),
            (Some(i), Some(g)) if g.uid < i.uid => log.next(),
            // The same UID: the later state.
            (Some(_), Some(_)) => match (index.next(), log.next()) {
                (Some(i), Some(g)) => Some(if i.modseq < g.modseq { g } else { i }),
                (i, g) => i.or(g),
            },
        };
        let Some(r) = r else { break };
        if l.expunged.get(&r.uid).is_some_and(|&e| r.modseq < e) {
            continue;
        }
        all.push(r);
    }
    RecordSet::from_unsorted(all)
}

/// A finding of mailbox `place` about `path`.
fn mailbox_finding(place: &MailboxPlace, sev: Severity, kind: &'static str, path: PathBuf, msg: String) -> Finding {
    let mut f = Finding::at(sev, kind, path.display().to_string(), msg);
    f.domain = Some(place.domain.clone());
    f.mailbox = Some(place.name.to_string());
    f
}

/// Findings about the header, index and log files, with byte offsets.
fn structural_findings(place: &MailboxPlace, old: &OldState, target: &Target) -> Vec<Finding> {
    let mk = Mk { place };
    let mut out = Vec::new();
    if old.current.is_none() {
        // Detailed, offset-precise findings for each file.
        header_findings(&mk, &mut out);
        index_findings(&mk, old, &mut out);
        log_findings(&mk, old, &mut out);
        if out.is_empty() {
            // Each file verifies on its own, but they do not fit together.
            out.push(mk.at(
                "mailbox-inconsistent",
                INDEX_FILE,
                None,
                "header, index and change log verify one by one but do not agree (unique id, UID validity or sequence)"
                    .into(),
            ));
        }
    } else if let Some(offset) = old.log_torn {
        out.push(mk.at("log-torn-tail", LOG_FILE, Some(offset), torn_message(None)));
    }
    list_findings(&mk, old, target, &mut out);
    out
}

/// Makes the findings of one mailbox's store files.
struct Mk<'a> {
    place: &'a MailboxPlace,
}

impl Mk<'_> {
    /// A finding of `kind` in `file` of the mailbox, at `offset`.
    fn at(&self, kind: &'static str, file: &str, offset: Option<u64>, msg: String) -> Finding {
        let mut f = Finding::at(Severity::Error, kind, self.place.dir.join(file).display().to_string(), msg);
        f.domain = Some(self.place.domain.clone());
        f.mailbox = Some(self.place.name.to_string());
        f.offset = offset;
        f
    }

    /// A finding from a format error, at its offset.
    fn err(&self, kind: &'static str, file: &str, e: &FormatError) -> Finding {
        self.at(kind, file, Some(e.offset()), e.to_string())
    }
}

/// `ms.header`: missing or damaged.
fn header_findings(mk: &Mk<'_>, out: &mut Vec<Finding>) {
    match read_store_file(mk.place.dir.join(HEADER_FILE)) {
        Ok(b) => {
            if let Err(e) = MailboxHeader::decode(&b) {
                let kept = if header::decode_fixed(&b).is_ok() { " (its fixed part survives)" } else { "" };
                out.push(mk.at("header-corrupt", HEADER_FILE, Some(e.offset()), format!("{e}{kept}")));
            }
        }
        Err(e) => out.push(mk.at(
            "header-missing",
            HEADER_FILE,
            None,
            crate::error::describe_io(&e, &mk.place.dir.join(HEADER_FILE)),
        )),
    }
}

/// `ms.index`: missing, its header or records damaged (capped per file, with the count of
/// the rest), bytes past its records, a cut last record.
fn index_findings(mk: &Mk<'_>, old: &OldState, out: &mut Vec<Finding>) {
    if old.index_decodes {
        // Gathering decoded it whole, a window at a time: nothing to find in it here (a
        // disagreement with header and log is the log's or the header's finding).
        return;
    }
    match read_store_file(mk.place.dir.join(INDEX_FILE)) {
        Ok(b) => {
            if let Err(e) = index::decode(&b) {
                let s = index::salvage(&b);
                if let Some(h) = &s.header_error {
                    out.push(mk.err("index-header-corrupt", INDEX_FILE, h));
                }
                // Leave room under the per-file cap for the other findings of this
                // file and the count of the rest, so the count is never capped away.
                let others = 1
                    + usize::from(s.header_error.is_some())
                    + usize::from(s.beyond_count.is_some())
                    + usize::from(s.partial_tail.is_some());
                let listed = s.damaged.len().min(MAX_FINDINGS_PER_FILE.saturating_sub(others));
                for d in &s.damaged[..listed] {
                    out.push(mk.err("index-record-corrupt", INDEX_FILE, d));
                }
                let more = s.damaged_more + (s.damaged.len() - listed) as u64;
                if more > 0 {
                    out.push(mk.at(
                        "index-record-corrupt",
                        INDEX_FILE,
                        None,
                        format!("{more} more damaged records not listed (the first {listed} are)"),
                    ));
                }
                if let Some((off, _)) = s.beyond_count {
                    let size = std::fs::symlink_metadata(mk.place.dir.join(INDEX_FILE)).map_or(0, |m| m.len());
                    out.push(mk.at(
                        "index-excess",
                        INDEX_FILE,
                        Some(off),
                        format!(
                            "the file is {size} bytes, {} past the records its header counts: not read (an index is written whole; nothing there is a record)",
                            size.saturating_sub(off)
                        ),
                    ));
                }
                if let Some((off, len)) = s.partial_tail {
                    out.push(mk.at(
                        "index-truncated",
                        INDEX_FILE,
                        Some(off),
                        format!("{len} bytes of a cut record at the end"),
                    ));
                }
                if s.header_error.is_none()
                    && s.damaged.is_empty()
                    && s.partial_tail.is_none()
                    && s.beyond_count.is_none()
                {
                    out.push(mk.err("index-corrupt", INDEX_FILE, &e));
                }
            }
        }
        Err(e) => out.push(mk.at(
            "index-missing",
            INDEX_FILE,
            None,
            crate::error::describe_io(&e, &mk.place.dir.join(INDEX_FILE)),
        )),
    }
}

/// `ms.log`: missing, corrupt, short of or altered inside what index and header saw, or
/// ending torn: one finding per damage.
fn log_findings(mk: &Mk<'_>, old: &OldState, out: &mut Vec<Finding>) {
    // Scanned a window at a time (a million messages' log is 144 MB), never held whole.
    let path = mk.place.dir.join(LOG_FILE);
    let mut watch = gather::CoverageWatch::of(old);
    let scanned = mk.place.fs.open_read(&path).and_then(|src| {
        let scan = changelog::scan_source(&*src, |off, seq, _| watch.see(off, seq))?;
        Ok(match scan {
            Ok(s) => Ok((watch.problem(&*src, &s)?, s)),
            Err(e) => Err(e),
        })
    });
    match scanned {
        Ok(scanned) => match scanned {
            Ok((coverage, s)) => {
                // One finding per damage: mid-log corruption says it all; a log that lost
                // what index or header saw is damage, not a crash, even if it ends torn.
                match (&s.end, coverage) {
                    (LogEnd::Corrupt { offset, error }, _) => {
                        out.push(mk.at("log-corrupt", LOG_FILE, Some(*offset), error.to_string()))
                    }
                    (_, Some((who, cov, p))) => {
                        use changelog::CoverageProblem as P;
                        let (kind, offset) = match p {
                            P::Short { have, .. } => ("log-short", have),
                            P::Behind { .. } => ("log-short", s.valid_end),
                            P::Altered { len } => ("log-altered", len),
                        };
                        out.push(mk.at(
                            kind,
                            LOG_FILE,
                            Some(offset),
                            format!(
                                "{p}: {who} saw {} bytes of this log up to record {}; the second copy of flags and dates is incomplete and changes committed there may be lost",
                                cov.len, cov.seq
                            ),
                        ));
                    }
                    (LogEnd::TornTail { offset, error }, None) => {
                        out.push(mk.at("log-torn-tail", LOG_FILE, Some(*offset), torn_message(Some(error))))
                    }
                    (LogEnd::Clean, None) => {}
                }
            }
            Err(e) => out.push(mk.err("log-corrupt", LOG_FILE, &e)),
        },
        Err(e) => {
            out.push(mk.at("log-missing", LOG_FILE, None, crate::error::describe_io(&e, &mk.place.dir.join(LOG_FILE))))
        }
    }
}

/// The header against the mailbox list and the mailbox's name.
fn list_findings(mk: &Mk<'_>, old: &OldState, target: &Target, out: &mut Vec<Finding>) {
    // Against the mailbox list.
    if let (Some(e), Some(h)) = (&target.entry, &old.header) {
        if e.unique_id != h.unique_id || e.uid_validity != h.uid_validity {
            out.push(mk.at(
                "list-mismatch",
                HEADER_FILE,
                None,
                format!("the mailbox list says UID validity {}, the header {}", e.uid_validity, h.uid_validity),
            ));
        }
    }
    if let Some(h) = &old.header {
        if h.name != mk.place.name.as_str() || h.domain != mk.place.domain {
            out.push(mk.at("header-name", HEADER_FILE, None, format!("the header names {}:{}", h.domain, h.name)));
        }
    }
}

/// What a torn log tail is, and what it may have cost.
fn torn_message(error: Option<&FormatError>) -> String {
    format!(
        "the last record is cut short or damaged, with nothing valid after it{}: a write cut by a crash (never committed), or damage to the last committed change, which is then lost",
        error.map(|e| format!(" ({e})")).unwrap_or_default()
    )
}

/// Cache records of every expected message: present, checksummed, naming the right UID.
fn cache_findings(place: &MailboxPlace, old: &OldState, expected: &RecordSet) -> Vec<Finding> {
    let mut out = Vec::new();
    // One finding per damaged record, of which the first are listed whole (with their
    // summary, no more than the report lists for one file).
    let mut records = bounded::Bounded::with_cap(MAX_FINDINGS_PER_FILE - 1);
    let path = place.dir.join(CACHE_FILE);
    let mk = |kind: &'static str, offset: Option<u64>, uid: Option<u32>, msg: String| {
        let mut f = Finding::at(Severity::Error, kind, path.display().to_string(), msg);
        f.domain = Some(place.domain.clone());
        f.mailbox = Some(place.name.to_string());
        f.offset = offset;
        f.uid = uid;
        f
    };
    if !old.cache.usable {
        out.push(mk("cache-corrupt", Some(0), None, old.cache.problem.clone().unwrap_or_else(|| "unusable".into())));
        return out;
    }
    let mut window = CacheWindow { path: &path, start: 0, bytes: Vec::new() };
    for r in expected.values() {
        let uid = &r.uid;
        if r.cache_len == 0 {
            continue;
        }
        let Ok((start, bytes)) = window.covering(r.cache_offset, r.cache_len) else {
            out.push(mk("cache-corrupt", None, None, "cannot read".into()));
            out.extend(records.into_findings(&path.display().to_string()));
            return out;
        };
        let at = (r.cache_offset - start) as usize;
        match cache::decode(bytes, at, Some(r.cache_len)).map_err(|e| e.shifted(start)) {
            Ok(e) if e.uid == *uid => {}
            Ok(e) => records.push(
                *uid,
                mk(
                    "cache-record-corrupt",
                    Some(r.cache_offset),
                    Some(*uid),
                    format!("the cache record at this offset names UID {}", e.uid),
                ),
            ),
            Err(e) => records.push(*uid, mk("cache-record-corrupt", Some(e.offset()), Some(*uid), e.to_string())),
        }
    }
    out.extend(records.into_findings(&path.display().to_string()));
    out
}

/// The cache file read through a window that moves forward with the records (visited in
/// UID order, the order they were appended): memory for the window, whatever the size of
/// the cache (hundreds of megabytes for a mailbox of a million messages).
struct CacheWindow<'p> {
    path: &'p Path,
    /// File offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
}

impl CacheWindow<'_> {
    /// Bytes read at a time (more for a larger record).
    const SIZE: u64 = 8 << 20;

    /// The window and its file offset, moved if it does not hold `len` bytes at `offset`
    /// (fewer at the end of the file).
    fn covering(&mut self, offset: u64, len: u32) -> std::io::Result<(u64, &[u8])> {
        let end = offset.saturating_add(u64::from(len));
        let inside = offset >= self.start && end <= self.start + self.bytes.len() as u64;
        if !inside {
            let fs = crate::fs::RealFs;
            self.bytes = crate::fs::Fs::read_at(&fs, self.path, offset, Self::SIZE.max(u64::from(len)))?;
            self.start = offset;
        }
        Ok((self.start, &self.bytes))
    }
}

/// What the I/O stage found of one message file.
enum Loaded {
    /// Stat'ed (quick), or found missing or unreadable.
    Checked(FileCheck),
    /// Read: to be hashed.
    Read { bytes: crate::io::Fetched, mtime: i64, uid: u32, gid: u32 },
}

/// The blocking part: stat (quick) or open and read one message file.
fn load_file(job: &Job, uid: u32, quick: bool) -> Loaded {
    use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, openat, statx};
    let name = layout::MessageName::new(uid);
    let Some(dir) = job.dirfd.as_ref() else {
        return Loaded::Checked(FileCheck::Unreadable("mailbox directory could not be opened".into()));
    };
    let path = || job.place.dir.join(name.as_str());
    if quick {
        return Loaded::Checked(
            match statx(
                dir,
                name.as_c_str(),
                AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC,
                StatxFlags::SIZE | StatxFlags::MTIME | StatxFlags::UID | StatxFlags::GID,
            ) {
                Ok(st) => {
                    FileCheck::Meta { size: st.stx_size, mtime: st.stx_mtime.tv_sec, uid: st.stx_uid, gid: st.stx_gid }
                }
                Err(rustix::io::Errno::NOENT) => FileCheck::Missing,
                Err(e) => FileCheck::Unreadable(crate::error::describe_io(&e.into(), &path())),
            },
        );
    }
    let file = match openat(dir, name.as_c_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Loaded::Checked(FileCheck::Missing),
        Err(e) => return Loaded::Checked(FileCheck::Unreadable(crate::error::describe_io(&e.into(), &path()))),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Loaded::Checked(FileCheck::Unreadable(e.to_string())),
    };
    use std::os::unix::fs::MetadataExt;
    match crate::io::fetch_file(&file, meta.len(), crate::io::Map::Allow, crate::io::Cache::Budget) {
        Ok(bytes) => Loaded::Read { bytes, mtime: meta.mtime(), uid: meta.uid(), gid: meta.gid() },
        Err(e) => Loaded::Checked(FileCheck::Unreadable(crate::error::describe_io(&e, &path()))),
    }
}

/// The CPU part: hash what [`load_file`] read.
fn check_file(loaded: Loaded, bytes: &std::sync::atomic::AtomicU64) -> FileCheck {
    match loaded {
        Loaded::Checked(c) => c,
        Loaded::Read { bytes: b, mtime, uid, gid } => {
            let size = b.len() as u64;
            let hash = *blake3::hash(&b).as_bytes();
            bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            FileCheck::Read { size, mtime, hash, uid, gid }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::index::MessageRecord;
    use crate::survey::gather::LogView;

    fn rec(uid: u32, modseq: u64, size: u64) -> MessageRecord {
        MessageRecord { uid, modseq, size, ..MessageRecord::default() }
    }

    #[test]
    fn expected_records_are_the_later_of_index_and_log_without_what_the_log_expunged_after() {
        let mut view = LogView::default();
        for r in [rec(2, 6, 20), rec(3, 1, 30), rec(4, 2, 41), rec(7, 1, 70)] {
            view.state.insert(r.uid, r);
        }
        view.state.freeze();
        view.expunged.insert(3, 9);
        view.expunged.insert(1, 2);
        let mut old = OldState {
            index_records: RecordSet::from_unsorted(vec![rec(1, 3, 10), rec(2, 5, 21), rec(4, 2, 40)]),
            log: Some(view),
            ..OldState::default()
        };
        let got: Vec<(u32, u64, u64)> =
            expected_records(&mut old).values().map(|r| (r.uid, r.modseq, r.size)).collect();
        // 1: expunged before its record; 2: the log's is later; 3: expunged after; 4: a tie
        // keeps the index's; 7: the log's alone.
        assert_eq!(got, [(1, 3, 10), (2, 6, 20), (4, 2, 40), (7, 1, 70)]);
        // No log: the index's records, as they are.
        let mut old = OldState { index_records: RecordSet::from_unsorted(vec![rec(5, 1, 50)]), ..OldState::default() };
        assert_eq!(expected_records(&mut old).uids().collect::<Vec<_>>(), [5]);
    }
}
