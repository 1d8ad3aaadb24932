//! Writing a rebuilt mailbox: renames of re-appended files, moving aside what is set
//! aside, then the cache, index, compacted change log and header, each written to a
//! temporary file and synced, renamed into place in that order, and the directory synced.
//! Nothing is written in a dry run.

use std::io::Write as _;
use std::path::Path;

use super::merge::{Change, FileOutcome, Merged};
use super::outcomes::Outcomes;
use super::report::{MailboxReport, Status};
use super::{CacheSink, Job, Options, Target};
use crate::codec::changelog::{self, LogRecord};
use crate::codec::index::{self, IndexHeaderInfo, MessageRecord};
use crate::error::{Error, IoContext, Result};
use crate::fs::{self, Fs, TempFile};
use crate::io::Durability;
use crate::layout::{self, CACHE_FILE, HEADER_FILE, INDEX_FILE, LOG_FILE, QUARANTINE_DIR};
use crate::ledger;
use crate::store::derive::mtime_matches;
use crate::store::mailbox::{compacted_log, compacted_log_at, compacted_log_coverage};
use crate::store::{CreateParams, Mailbox, MailboxEntry, MailboxPlace};
use crate::util::now;

/// Move `dir/name` into `dir/ms.quarantine/`, never replacing anything there.
fn quarantine(fs: &dyn Fs, dir: &Path, name: &str, d: Durability) -> Result<String> {
    let q = dir.join(QUARANTINE_DIR);
    fs.create_dir_all(&q).ctx("create", &q)?;
    let mut target = name.to_string();
    for i in 1.. {
        match fs.rename_noreplace(&dir.join(name), &q.join(&target)) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && i < 10_000 => target = format!("{name}.{i}"),
            Err(e) => return Err(Error::io("move aside", dir.join(name), e)),
        }
    }
    fs::sync_dir(fs, &q, d).ctx("sync directory", &q)?;
    Ok(format!("{QUARANTINE_DIR}/{target}"))
}

fn default_entry(
    place: &MailboxPlace,
    merged_header: &crate::codec::header::MailboxHeader,
    old: Option<&MailboxEntry>,
    ceiling: u64,
) -> MailboxEntry {
    MailboxEntry {
        domain: place.domain.clone(),
        name: place.name.clone(),
        partition: place.partition.clone(),
        unique_id: merged_header.unique_id,
        uid_validity: merged_header.uid_validity,
        created: merged_header.created,
        acl: old.map(|e| e.acl.clone()).unwrap_or_else(|| match place.name.owner() {
            Some(u) => format!("{u}\tlrswipkxtecda"),
            None => "anyone\tlrs".into(),
        }),
        highest_modseq: ceiling.max(old.map_or(0, |e| e.highest_modseq)),
    }
}

/// Write (or, in a dry run, describe) the result of a merge.
pub(super) fn finish(
    opts: &Options,
    job: &Job,
    mut merged: Merged,
    sink: Option<CacheSink>,
    outcomes: &Outcomes,
    ledger_dir: &Path,
) -> MailboxReport {
    let place = &job.place;
    let mut report = new_report(job, &mut merged);
    if let Some(e) = job.sink_error.lock().take() {
        report.status = Status::Failed(format!("writing the new cache failed: {e}"));
        return report;
    }
    note_damage(job, &mut report);
    let cache_rewritten = matches!(sink, Some(CacheSink::Rewrite { .. }));
    let leftovers = leftovers(job, outcomes);
    let registration_needed = match &job.target.entry {
        None => true,
        Some(e) => e.unique_id != merged.header.unique_id || e.uid_validity != merged.header.uid_validity,
    };
    if job.target.entry.is_none() {
        report.changes.push(Change {
            uid: None,
            what: "registered",
            old: None,
            new: None,
            detail: "found on disk but missing from the mailbox list: registered again".into(),
        });
    }
    let must_write = must_write(job, &merged, outcomes, cache_rewritten, &mut report);
    let mtimes = touched_mtimes(&merged, outcomes);
    note_mtimes(opts, &mtimes, &mut report);
    let changes_files = registration_needed || !merged.set_aside.is_empty() || !mtimes.is_empty();
    // The merge and the passes above read every outcome: if they could not all be read
    // back, nothing may be written (a file whose outcome is missing would look gone).
    if let Some(e) = outcomes.error() {
        report.status = Status::Failed(format!("{}: {e}; nothing was written", place.dir.display()));
        return report;
    }

    if opts.dry_run {
        note_leftovers_kept(opts, &leftovers, &mut report);
        report.status = if must_write || changes_files { Status::WouldRepair } else { Status::Unchanged };
        return report;
    }

    let w = Writer { job, fs: &*place.fs, dir: &place.dir, d: place.durability, ledger_dir };
    let mut moved_any = false;
    let result = (|| -> Result<()> {
        // Leftovers first (they never affect the index).
        moved_any = w.leftovers(opts, &leftovers, &mut report)?;
        if !must_write && merged.set_aside.is_empty() {
            set_mtimes(w.fs, w.dir, &mtimes)?;
            if let Some(CacheSink::Append { out: Some(mut out), .. }) = sink {
                out.flush().ctx("write", &w.dir.join(CACHE_FILE))?;
            }
            return Ok(());
        }
        // What is let go of is recorded before anything is changed: a crash in between
        // leaves an entry twice at worst, never a loss without one.
        w.record_letting_go(&merged, &mut report)?;
        w.move_message_files(&merged, &mtimes)?;
        let (cache_len, cache_tmp) = w.close_cache(sink, &mut merged, outcomes, cache_rewritten)?;
        w.write_index_log_header(&mut merged, cache_len, cache_tmp)
    })();
    if result.is_ok() && !merged.recovered.is_empty() {
        w.resolve_recovered(&merged, &mut report);
    }
    match result {
        Err(e) => report.status = Status::Failed(e.to_string()),
        Ok(()) => {
            if must_write || moved_any || changes_files {
                report.status = Status::Repaired;
            }
            report.registered = registration_needed;
            report.entry = new_entry(job, &merged, registration_needed, must_write);
        }
    }
    report
}

/// The report of a mailbox before anything is written: what the merge found.
fn new_report(job: &Job, merged: &mut Merged) -> MailboxReport {
    let place = &job.place;
    MailboxReport {
        domain: place.domain.clone(),
        mailbox: place.name.to_string(),
        path: place.dir.display().to_string(),
        status: Status::Unchanged,
        messages: merged.records.len() as u64,
        bytes_read: job.bytes_read.load(std::sync::atomic::Ordering::Relaxed),
        counts: merged.counts,
        changes: std::mem::take(&mut merged.changes.list),
        elided: std::mem::take(&mut merged.changes.elided),
        problems: Vec::new(),
        registered: false,
        entry: None,
    }
}

/// One change per message file whose mtime is set back to its internal date.
fn note_mtimes(opts: &Options, mtimes: &[(u32, i64, i64)], report: &mut MailboxReport) {
    for &(uid, was, date) in mtimes {
        report.changes.push(Change {
            uid: Some(uid),
            what: "mtime-restored",
            old: Some(serde_json::json!(was)),
            new: Some(serde_json::json!(date)),
            detail: format!(
                "{uid}.: file mtime {was} {}set back to its internal date {date}",
                if opts.dry_run { "would be " } else { "" }
            ),
        });
    }
}

/// In a dry run, the leftovers that stay where they are.
fn note_leftovers_kept(opts: &Options, leftovers: &[(String, &'static str)], report: &mut MailboxReport) {
    for (name, why) in leftovers {
        report.problems.push(format!(
            "{name}: {why}: would be left in place{}",
            if opts.quarantine { " (--quarantine would move it aside)" } else { "" }
        ));
    }
}

/// The mailbox list entry to write after a successful rewrite: when the mailbox must be
/// registered, or when the list's modseq ceiling is below the mailbox's (the list keeps
/// the ceiling too: the one copy left if header, index and log are all lost).
fn new_entry(job: &Job, merged: &Merged, registration_needed: bool, must_write: bool) -> Option<MailboxEntry> {
    let old = job.target.entry.as_ref();
    let raise = must_write && old.is_some_and(|e| e.highest_modseq < merged.ceiling);
    (registration_needed || raise).then(|| default_entry(&job.place, &merged.header, old, merged.ceiling))
}

/// Whether the mailbox's files must be written (something changed, or one is damaged or
/// ends torn), with the report's lines for rewrites that are not merge changes.
fn must_write(
    job: &Job,
    merged: &Merged,
    outcomes: &Outcomes,
    cache_rewritten: bool,
    report: &mut MailboxReport,
) -> bool {
    // A message read whose cache record was not kept got a new one (appended even where
    // it lands at the offset the index already says: a cache cut short and put back).
    let cache_records_written = outcomes.iter().any(|o| matches!(o, FileOutcome::Read(_, d) if d.cache.is_some()));
    let must_write = merged.changed
        || merged.placement_changed
        || cache_records_written
        || cache_rewritten
        || job.old.header_problem.is_some()
        || job.old.index_problem.is_some()
        || job.old.log_problem.is_some()
        || job.old.log_torn.is_some();
    if (merged.placement_changed || cache_records_written) && !merged.changed && !cache_rewritten {
        report.changes.push(Change {
            uid: None,
            what: "cache-records-rebuilt",
            old: None,
            new: None,
            detail: "cache records that did not match their messages were rebuilt".into(),
        });
    }
    if job.old.log_torn.is_some() && !job.old.log_short {
        report.changes.push(Change {
            uid: None,
            what: "log-torn-tail",
            old: None,
            new: None,
            detail: format!(
                "ms.log ends in a record cut short or damaged at byte {}: rewritten without it (a write cut by a crash was never committed; if it was damage to the last committed change, that change is lost)",
                job.old.log_torn.unwrap_or(0)
            ),
        });
    }
    must_write
}

/// The damaged store files the run found, first in the report, and the message files it
/// could not read, as a problem.
fn note_damage(job: &Job, report: &mut MailboxReport) {
    let unreadable = report.changes.iter().filter(|c| c.what == "unreadable").count() as u64
        + report.elided.iter().filter(|e| e.what == "unreadable").map(|e| e.count).sum::<u64>();
    if unreadable > 0 {
        report.problems.push(format!(
            "{unreadable} message file(s) could not be read and were left as they are: `mstore doctor` reports wrong owners and modes; run reconstruct again once they are readable"
        ));
    }
    for (what, p) in
        [("header", &job.old.header_problem), ("index", &job.old.index_problem), ("change log", &job.old.log_problem)]
    {
        if let Some(p) = p {
            report.changes.insert(
                0,
                Change { uid: None, what: "damaged-file", old: None, new: None, detail: format!("{what}: {p}") },
            );
        }
    }
    if let Some(p) = &job.old.cache.problem {
        report.changes.insert(
            0,
            Change {
                uid: None,
                what: "damaged-file",
                old: None,
                new: None,
                detail: format!("cache: {p}; rebuilt from the message files"),
            },
        );
    }
}

/// Files a repair moves aside (`--quarantine`) or reports: strays, temporary files of an
/// interrupted write, empty message files.
fn leftovers(job: &Job, outcomes: &Outcomes) -> Vec<(String, &'static str)> {
    let mut leftovers: Vec<(String, &'static str)> = Vec::new();
    for s in &job.listing.strays {
        leftovers.push((s.clone(), "stray file (not a message, not a store file)"));
    }
    for t in &job.listing.temps {
        leftovers.push((t.clone(), "temporary file of an interrupted write"));
    }
    for o in outcomes.iter() {
        if let FileOutcome::Empty(f) = o {
            leftovers.push((layout::message_file_name(f.uid), "empty message file"));
        }
    }
    leftovers
}

/// Message files whose mtime is not their internal date (touched since they were
/// indexed): (UID, mtime, date). The mtime is set back (the store's invariant, where
/// Maildir tools read the date, and what the next run's stat compares); re-appended files
/// are named by their new UID, as they are renamed first.
fn touched_mtimes(merged: &Merged, outcomes: &Outcomes) -> Vec<(u32, i64, i64)> {
    let now = crate::util::now();
    let renamed_to: std::collections::HashMap<u32, u32> = merged.renames.iter().copied().collect();
    outcomes
        .iter()
        .filter_map(|o| match o {
            FileOutcome::Read(info, _) => Some(info),
            _ => None,
        })
        .filter_map(|info| {
            let uid = renamed_to.get(&info.uid).copied().unwrap_or(info.uid);
            let i = merged.records.binary_search_by_key(&uid, |r| r.uid).ok()?;
            let date = merged.records[i].internal_date;
            (!mtime_matches(info.mtime, date, now)).then_some((uid, info.mtime, date))
        })
        .collect()
}

/// The writing half of [`finish`], step by step, in the order a crash must see them.
struct Writer<'a> {
    job: &'a Job,
    fs: &'a dyn Fs,
    dir: &'a Path,
    d: Durability,
    ledger_dir: &'a Path,
}

impl Writer<'_> {
    /// Move stray and temporary files aside (`--quarantine`) or report them. Whether any
    /// was moved.
    fn leftovers(
        &self,
        opts: &Options,
        leftovers: &[(String, &'static str)],
        report: &mut MailboxReport,
    ) -> Result<bool> {
        let mut moved_any = false;
        for (name, why) in leftovers {
            if opts.quarantine {
                let moved = quarantine(self.fs, self.dir, name, self.d)?;
                moved_any = true;
                report.changes.push(Change {
                    uid: None,
                    what: "quarantined",
                    old: None,
                    new: None,
                    detail: format!("{name} ({why}) moved to {moved}"),
                });
            } else {
                report.problems.push(format!("{name}: {why}: left in place (use --quarantine to move it aside)"));
            }
        }
        Ok(moved_any)
    }

    /// The loss ledger's entries for what the merge lets go of: a new UID validity over a
    /// known one, and every record lost. Written before anything else changes.
    fn record_letting_go(&self, merged: &Merged, report: &mut MailboxReport) -> Result<()> {
        let place = &self.job.place;
        if let Some((Some(old), new)) = merged.new_validity {
            // Whatever the mailbox held under its old UID validity is not known here: the
            // ledger says so until salvage finds its old files or the loss is accepted.
            let e = ledger::Entry {
                kind: ledger::Kind::Recreated,
                reason: ledger::Reason::None,
                when: now(),
                unique_id: merged.header.unique_id,
                uid_validity: old,
                new_uid_validity: new,
                new_uid: 0,
                record: MessageRecord::default(),
                domain: place.domain.clone(),
                mailbox: place.name.as_str().to_string(),
                flag_names: Vec::new(),
                note: "its header, index and change log were all lost: a new UID validity was issued".into(),
            };
            ledger::append_at(&*place.fs, self.ledger_dir, &place.domain, &[e], self.d).map_err(|e| {
                Error::Invalid(format!(
                    "cannot record the new UID validity in the loss ledger, so the mailbox was left as it was: {e}"
                ))
            })?;
        }
        if !merged.losses.is_empty() {
            record_losses(self.ledger_dir, place, merged)?;
            report.changes.push(Change {
                uid: None,
                what: "ledger",
                old: None,
                new: Some(serde_json::json!(merged.losses.len())),
                detail: format!(
                    "{} lost message(s) recorded in the loss ledger {} (mstore verify reports them until salvage brings them back or the loss is acknowledged)",
                    merged.losses.len(),
                    self.ledger_dir.join(&place.domain).display()
                ),
            });
        }
        Ok(())
    }

    /// Rename re-appended message files, move set-aside ones into the quarantine, sync the
    /// directory, set mtimes back to internal dates.
    fn move_message_files(&self, merged: &Merged, mtimes: &[(u32, i64, i64)]) -> Result<()> {
        let (fs, dir) = (self.fs, self.dir);
        for &(from, to) in &merged.renames {
            let a = dir.join(layout::message_file_name(from));
            let b = dir.join(layout::message_file_name(to));
            fs.rename_noreplace(&a, &b).ctx("rename re-appended message", &a)?;
        }
        for &uid in &merged.set_aside {
            quarantine(fs, dir, &layout::message_file_name(uid), self.d)?;
        }
        fs::sync_dir(fs, dir, self.d).ctx("sync directory", dir)?;
        set_mtimes(fs, dir, mtimes)
    }

    /// Finish the cache: records of re-appended messages derived again under their new
    /// UID, the appended file synced or the new one written whole. Its length, and the new
    /// file to rename into place (a rewrite). After a rewrite, a record not derived again
    /// in this run points nowhere.
    fn close_cache<'t>(
        &self,
        sink: Option<CacheSink>,
        merged: &mut Merged,
        outcomes: &Outcomes,
        cache_rewritten: bool,
    ) -> Result<(u64, Option<TempFile<'t>>)> {
        let dir = self.dir;
        let mut sink = sink;
        // A re-appended message's cache record was derived under its old UID: derive it
        // again under the new one (re-appends are rare; the file is small or mapped).
        if let Some(sk) = sink.as_mut() {
            for &(_, to) in &merged.renames {
                let path = dir.join(layout::message_file_name(to));
                let bytes = self.fs.read_bytes(&path).ctx("read", &path)?;
                let dv = crate::store::derive::derive(to, &bytes, crate::store::derive::Received::Skip);
                let at = sk.put(&dv.cache_record).ctx("write", &dir.join(CACHE_FILE))?;
                if let Ok(i) = merged.records.binary_search_by_key(&to, |r| r.uid) {
                    merged.records[i].cache_offset = at;
                    merged.records[i].cache_len = dv.cache_record.len() as u32;
                }
            }
        }
        let closed = match sink {
            Some(CacheSink::Append { out, pos, .. }) => {
                if let Some(out) = out {
                    let mut f =
                        out.into_inner().map_err(|e| Error::io("write", dir.join(CACHE_FILE), e.into_error()))?;
                    fs::sync_data(f.file(), self.d).ctx("sync", &dir.join(CACHE_FILE))?;
                }
                (pos, None)
            }
            Some(CacheSink::Rewrite { out, pos }) => {
                let mut tmp = out.into_inner().map_err(|e| Error::io("write", dir.join(CACHE_FILE), e.into_error()))?;
                tmp.finish(self.d).ctx("sync", tmp.path())?;
                (pos, Some(tmp))
            }
            Some(CacheSink::Discard { pos }) => (pos, None),
            None => (self.job.old.cache.len, None),
        };
        if cache_rewritten {
            // Records not re-derived in this run have no record in the new cache. Both
            // sides are in UID order: walked together, with no set of a million UIDs.
            let mut fresh = outcomes
                .iter()
                .filter_map(|o| match o {
                    FileOutcome::Read(f, dv) if dv.cache.is_some() => Some(f.uid),
                    _ => None,
                })
                .peekable();
            let renamed: std::collections::HashSet<u32> = merged.renames.iter().map(|&(_, b)| b).collect();
            for r in merged.records.iter_mut() {
                while fresh.next_if(|&u| u < r.uid).is_some() {}
                let derived_now = fresh.next_if_eq(&r.uid).is_some();
                if !derived_now && !renamed.contains(&r.uid) {
                    r.cache_offset = 0;
                    r.cache_len = 0;
                }
            }
            if let Some(e) = outcomes.error() {
                return Err(Error::Invalid(format!("{}: {e}", dir.display())));
            }
        }
        Ok(closed)
    }

    /// The new index, compacted change log and header, each to a synced temporary file
    /// (a log or header whose bytes would not change is left as it is), then renamed into
    /// place in that order after the cache, and the directory synced.
    fn write_index_log_header(
        &self,
        merged: &mut Merged,
        cache_len: u64,
        cache_tmp: Option<TempFile<'_>>,
    ) -> Result<()> {
        let (fs, dir, d, job) = (self.fs, self.dir, self.d, self.job);
        // Cache records carry the UID; a re-appended message's record names its old UID
        // until it is re-derived, so readers fall back to the message file for it.
        let generation = job
            .old
            .index_header
            .as_ref()
            .map(|h| h.generation)
            .max(job.old.current.as_ref().map(|c| c.index.generation))
            .unwrap_or(0)
            + 1;
        // What the new (or kept) compacted log holds: the index and the header record it.
        let cov = compacted_log_coverage(&merged.header, merged.last_uid, merged.seq, &merged.records);
        merged.header.log = cov;
        let ih = IndexHeaderInfo {
            unique_id: merged.header.unique_id,
            generation,
            uid_validity: merged.header.uid_validity,
            last_uid: merged.last_uid,
            message_count: merged.records.len() as u32,
            highest_modseq: merged.seq,
            log_seq: merged.seq,
            total_size: merged.records.iter().map(|r| r.size).sum(),
            cache_len,
            written: now(),
            log_len: cov.len,
            log_crc: cov.crc,
            modseq_ceiling: merged.ceiling,
        };
        let mut temps = Vec::new();
        if let Some(t) = cache_tmp {
            temps.push((t, CACHE_FILE));
        }
        let count = merged.records.len() as u32;
        temps.push(self.stream(INDEX_FILE, index::encode_header_bytes(&ih, count), &merged.records, &|b, r| {
            b.extend_from_slice(zerocopy::IntoBytes::as_bytes(&r.to_raw()))
        })?);
        let uid = merged.header.unique_id;
        let seq = merged.seq;
        let log_record =
            |b: &mut Vec<u8>, r: &MessageRecord| changelog::encode_record(b, &uid, seq, &LogRecord::Message(*r));
        // The old log, compared as if written at its own time: only its `created` field
        // would differ.
        let log_same = job.old.log_problem.is_none()
            && job.old.log_torn.is_none()
            && job.old.log.as_ref().is_some_and(|l| {
                let prefix = compacted_log_at(&merged.header, merged.last_uid, seq, &[], l.header.created);
                self.unchanged(LOG_FILE, &prefix, &merged.records, &log_record)
            });
        if !log_same {
            let prefix = compacted_log(&merged.header, merged.last_uid, seq, &[]);
            temps.push(self.stream(LOG_FILE, prefix, &merged.records, &log_record)?);
        }
        let header_bytes = merged.header.encode();
        if !(job.old.header_problem.is_none() && self.unchanged(HEADER_FILE, &header_bytes, &[], &|_, _| {})) {
            temps.push(self.stream(HEADER_FILE, header_bytes, &[], &|_, _| {})?);
        }
        for (tmp, name) in temps {
            let from = tmp.path().to_path_buf();
            tmp.persist(&dir.join(name)).ctx("rename", &from)?;
        }
        fs::sync_dir(fs, dir, d).ctx("sync directory", dir)?;
        Ok(())
    }

    /// Whether `name`'s bytes are already what [`encode`] would write: rewriting it would
    /// cost a file creation and a rename for nothing. The old file is compared as the new
    /// bytes are encoded (the lock is held: nobody changes it meanwhile).
    fn unchanged(&self, name: &str, prefix: &[u8], records: &[MessageRecord], each: &EncodeRecord<'_>) -> bool {
        // Read a window at a time: a mailbox of a million messages has a 144 MB log,
        // which mapped whole would count in the run's resident memory.
        let Ok(old) = self.fs.open_read(&self.dir.join(name)) else { return false };
        let window = old.len().clamp(4096, 1 << 20) as usize;
        let old = std::io::BufReader::with_capacity(window, crate::codec::Sequential::new(&*old));
        let mut cmp = SameBytes { old, scratch: Vec::new() };
        encode(&mut cmp, prefix, records, each).is_ok() && cmp.at_end()
    }

    /// `name` written to a new synced temporary file, to be renamed into place.
    fn stream(
        &self,
        name: &'static str,
        prefix: Vec<u8>,
        records: &[MessageRecord],
        each: &EncodeRecord<'_>,
    ) -> Result<(TempFile<'_>, &'static str)> {
        let dir = self.dir;
        let tmp = TempFile::create(self.fs, dir, name).ctx("create a temporary file in", dir)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
        let written = encode(&mut w, &prefix, records, each);
        let mut tmp = w.into_inner().map_err(|e| Error::io("write", dir.join(name), e.into_error()))?;
        written.ctx("write", tmp.path())?;
        tmp.finish(self.d).ctx("sync", tmp.path())?;
        Ok((tmp, name))
    }

    /// The ledger's `RECOVERED` entries for the losses this run brought back. The mailbox
    /// is repaired either way; a failure is a problem of the report.
    fn resolve_recovered(&self, merged: &Merged, report: &mut MailboxReport) {
        let place = &self.job.place;
        let entries: Vec<ledger::Entry> = merged
            .recovered
            .iter()
            .map(|(e, uid, from)| {
                ledger::resolution(e, ledger::Kind::Recovered, from, merged.header.uid_validity, *uid)
            })
            .collect();
        match ledger::append_at(&*place.fs, self.ledger_dir, &place.domain, &entries, self.d) {
            Ok(()) => report.changes.push(Change {
                uid: None,
                what: "ledger-resolved",
                old: None,
                new: Some(serde_json::json!(entries.len())),
                detail: format!("{} loss(es) of the loss ledger resolved: the messages are back", entries.len()),
            }),
            // Verify still sees the messages present and does not report them.
            Err(e) => report.problems.push(format!("the loss ledger was not updated: {e}")),
        }
    }
}

/// Encodes one record of an index or log into a buffer.
type EncodeRecord<'f> = dyn Fn(&mut Vec<u8>, &MessageRecord) + 'f;

/// `prefix`, then every record through `each`: index and log are streamed in runs of
/// records, never built whole in memory.
fn encode(
    out: &mut dyn std::io::Write,
    prefix: &[u8],
    records: &[MessageRecord],
    each: &EncodeRecord<'_>,
) -> std::io::Result<()> {
    out.write_all(prefix)?;
    let mut buf = Vec::with_capacity(64 << 10);
    for run in records.chunks(256) {
        buf.clear();
        for r in run {
            each(&mut buf, r);
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

/// Append a `LOST` ledger entry for every record the merge let go of, in batches.
fn record_losses(ledger_dir: &Path, place: &MailboxPlace, merged: &Merged) -> Result<()> {
    let when = now();
    for batch in merged.losses.chunks(4096) {
        let entries: Vec<ledger::Entry> = batch
            .iter()
            .map(|l| ledger::Entry {
                kind: ledger::Kind::Lost,
                reason: l.reason,
                when,
                unique_id: merged.header.unique_id,
                uid_validity: l.uid_validity,
                new_uid_validity: 0,
                new_uid: 0,
                record: l.record,
                domain: place.domain.clone(),
                mailbox: place.name.as_str().to_string(),
                flag_names: l.flag_names.clone(),
                note: String::new(),
            })
            .collect();
        ledger::append_at(&*place.fs, ledger_dir, &place.domain, &entries, place.durability).map_err(|e| {
            Error::Invalid(format!(
                "cannot record {} lost message(s) in the loss ledger, so the mailbox was left as it was: {e}",
                merged.losses.len()
            ))
        })?;
    }
    Ok(())
}

/// Set message files' mtimes back to their internal dates: (uid, was, date).
fn set_mtimes(fs: &dyn Fs, dir: &Path, mtimes: &[(u32, i64, i64)]) -> Result<()> {
    for &(uid, _, date) in mtimes {
        let path = dir.join(layout::message_file_name(uid));
        fs.open_write(&path).and_then(|mut f| f.set_mtime(date)).ctx("set the mtime of", &path)?;
    }
    Ok(())
}

/// A writer that compares what is written with a file's bytes instead of writing: an
/// error at the first difference (so encoding stops there).
struct SameBytes<R> {
    old: R,
    scratch: Vec<u8>,
}

impl<R: std::io::Read> SameBytes<R> {
    /// Whether the old file ends exactly where the new bytes ended.
    fn at_end(&mut self) -> bool {
        let mut one = [0u8; 1];
        matches!(self.old.read(&mut one), Ok(0))
    }
}

impl<R: std::io::Read> std::io::Write for SameBytes<R> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.scratch.resize(buf.len(), 0);
        self.old.read_exact(&mut self.scratch)?;
        if self.scratch != buf {
            return Err(std::io::Error::other("differs"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A registered mailbox whose directory is gone: recreate it empty, with a new UID
/// validity (its messages are lost; UIDs must not be reused).
pub(super) fn recreate_missing(
    place: &MailboxPlace,
    target: &Target,
    dry_run: bool,
    ledger_dir: &Path,
) -> MailboxReport {
    let mut report = MailboxReport::failed(&place.domain, target, String::new());
    report.path = place.dir.display().to_string();
    // A directory that cannot be looked at (a parent without search permission) is not
    // missing: recreating it would issue a new UID validity over live messages. A symbolic
    // link (dangling, or to something else than a directory) is never followed or replaced.
    match place.fs.metadata(&place.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            report.status = Status::Failed(Error::io("look at mailbox directory", &place.dir, e).to_string());
            return report;
        }
        Ok(m) if m.is_symlink => {
            let e = fs::symlink_refused(&place.dir);
            report.status = Status::Failed(Error::io("look at mailbox directory", &place.dir, e).to_string());
            return report;
        }
        _ => {}
    }
    let old_validity = target.entry.as_ref().map(|e| e.uid_validity).unwrap_or(0);
    let validity = (now().clamp(1, u32::MAX as i64) as u32).max(old_validity.saturating_add(1));
    report.changes.push(Change {
        uid: None,
        what: "recreated",
        old: Some(serde_json::json!(old_validity)),
        new: Some(serde_json::json!(validity)),
        detail: format!(
            "directory {} is missing: {}recreated empty with a new UID validity",
            place.dir.display(),
            if dry_run { "would be " } else { "" }
        ),
    });
    if dry_run {
        report.status = Status::WouldRepair;
        return report;
    }
    let unique_id = target.entry.as_ref().map(|e| e.unique_id).unwrap_or_else(crate::util::random_id);
    let entry = ledger::Entry {
        kind: ledger::Kind::Recreated,
        reason: ledger::Reason::None,
        when: now(),
        unique_id,
        uid_validity: old_validity,
        new_uid_validity: validity,
        new_uid: 0,
        record: MessageRecord::default(),
        domain: place.domain.clone(),
        mailbox: place.name.as_str().to_string(),
        flag_names: Vec::new(),
        note: format!("directory {} was missing", place.dir.display()),
    };
    if let Err(e) = ledger::append_at(&*place.fs, ledger_dir, &place.domain, &[entry], place.durability) {
        report.status = Status::Failed(format!(
            "directory {} is missing, and recording that in the loss ledger failed, so it was not recreated: {e}",
            place.dir.display()
        ));
        return report;
    }
    let params = CreateParams {
        unique_id,
        uid_validity: validity,
        created: target.entry.as_ref().map(|e| e.created).unwrap_or_else(now),
    };
    match Mailbox::create(place.clone(), params) {
        Ok(mb) => {
            report.status = Status::Repaired;
            report.registered = true;
            report.entry = Some(default_entry(place, mb.header(), target.entry.as_ref(), 0));
        }
        Err(e) => report.status = Status::Failed(e.to_string()),
    }
    report
}
