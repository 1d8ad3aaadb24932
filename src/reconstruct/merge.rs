//! The heart of reconstruct: merge what the old files still hold with what the message
//! files say, following the rules of `formats/index.md` ("How reconstruct trusts a
//! record") and the README. A pure function of its inputs, so it is tested without disks.
//!
//! Rules, in order:
//! 1. Identity: unique id and UID validity from the header file, else the index, else the
//!    change log, else the mailbox list. The last UID from the header, index and log
//!    (whichever verify); if none does, a new UID validity is issued.
//! 2. For each message file, the candidate records for its UID are the index record (if
//!    its checksum holds) and the change log's state (replayed from records that verify).
//!    The newest (highest modseq) candidate that still describes the same file — same
//!    size and BLAKE3 hash, or same size and mtime when the file was not read — is
//!    trusted: its flags and internal date are kept. An expunge logged after it means
//!    the file is the leftover of an interrupted expunge: moved aside, not indexed.
//! 3. A file with no trusted record is a new message: indexed under its UID if that is
//!    above the last UID, else re-appended under a new UID (renamed, bytes untouched).
//!    Its internal date is the file's mtime, else its `Received:` date, else `Date:`.
//! 4. A record whose file is gone or empty is dropped, and the report lists its flags.
//! 5. User flag bits whose name was lost get a placeholder name, reported; a set flag is
//!    never silently dropped.

use serde::Serialize;

use super::outcomes::Outcomes;
use crate::codec::header::MailboxHeader;
use crate::codec::index::MessageRecord;
use crate::codec::ledger::Reason;
use crate::flags::{DateSource, SystemFlags, UserFlags};
use crate::format::header::MAX_USER_FLAGS;
use crate::message::DateTime;
use crate::store::derive::mtime_matches;
use crate::survey::gather::{OldState, UidMap};

/// Size and mtime of a message file (from one `fstat` or `statx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// UID from the file name.
    pub uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
}

/// What was derived from a message file that was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Derived {
    /// BLAKE3 of the bytes.
    pub content_hash: [u8; 32],
    /// Prefix hash of the bytes (for carving).
    pub prefix_hash: u64,
    /// Header block size including the separator.
    pub header_size: u32,
    /// The Date header.
    pub sent_date: Option<DateTime>,
    /// The topmost Received header's date.
    pub received_date: Option<DateTime>,
    /// Where its cache record was written: (offset, length).
    pub cache: Option<(u64, u32)>,
}

/// What happened to one message file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Size and mtime matched the trusted record; the file was not read.
    Matched(FileInfo),
    /// The file was read and everything derived from it.
    Read(FileInfo, Derived),
    /// The file is empty.
    Empty(FileInfo),
    /// The file could not be read.
    Unreadable {
        /// UID.
        uid: u32,
        /// Why.
        error: String,
    },
    /// Listed, then gone before it could be opened.
    Vanished {
        /// UID.
        uid: u32,
    },
}

impl FileOutcome {
    /// The file's UID.
    pub fn uid(&self) -> u32 {
        match self {
            FileOutcome::Matched(f) | FileOutcome::Read(f, _) | FileOutcome::Empty(f) => f.uid,
            FileOutcome::Unreadable { uid, .. } | FileOutcome::Vanished { uid } => *uid,
        }
    }
}

/// Where a trusted state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The index record.
    Index,
    /// The change log.
    Log,
}

/// The newest candidate record for `uid` (what `candidates` would list first), without
/// allocating: the worker's per-file check.
pub fn best_candidate(old: &OldState, uid: u32) -> Option<MessageRecord> {
    let i = old.index_records.get(&uid).copied();
    let l = old.log.as_ref().and_then(|l| l.state.get(&uid));
    match (i, l) {
        (Some(a), Some(b)) => Some(if b.modseq > a.modseq { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The candidate whose state a file of `uid` would keep if it still describes the same
/// message, and the expunge that may supersede it, from the sources `id` uses (its index
/// and log, unless they belong to another identity).
fn candidates(old: &OldState, uid: u32, id: &Identity) -> Candidates {
    let (use_index, use_log) = (id.use_index, id.use_log);
    let i = if use_index { old.index_records.get(&uid).map(|r| (Source::Index, *r)) } else { None };
    let l = if use_log { old.log.as_ref().and_then(|l| l.state.get(&uid)).map(|r| (Source::Log, r)) } else { None };
    // Newest first; on a tie the index (the checkpoint both agree on) first.
    let c = match (i, l) {
        (Some(a), Some(b)) if b.1.modseq > a.1.modseq => [Some(b), Some(a)],
        (Some(a), b) => [Some(a), b],
        (None, b) => [b, None],
    };
    Candidates(c)
}

/// At most two candidate records of a UID, newest first (copies: the log's records may be
/// let go of as the merge passes them; no allocation: this runs once per message).
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidates([Option<(Source, MessageRecord)>; 2]);

impl Candidates {
    /// The newest.
    pub fn first(&self) -> Option<&(Source, MessageRecord)> {
        self.0[0].as_ref()
    }
    /// All, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &(Source, MessageRecord)> {
        self.0.iter().flatten()
    }
}

/// One change, for the report (`--json` prints them all).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The message concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// What kind of change.
    pub what: &'static str,
    /// The value before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    /// The value after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
    /// In words.
    pub detail: String,
}

/// Changes of one kind that were counted rather than kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Elided {
    /// Kind.
    pub what: &'static str,
    /// How many.
    pub count: u64,
    /// Their UIDs.
    pub uids: Vec<u32>,
}

/// The changes of a merge: every one, or (to bound memory on huge mailboxes) the first
/// `keep` of each kind with the rest counted; a change that is not kept is never built.
#[derive(Clone, Debug, Default)]
pub struct ChangeList {
    keep: usize,
    /// The changes kept.
    pub list: Vec<Change>,
    /// The changes counted.
    pub elided: Vec<Elided>,
    per_kind: std::collections::HashMap<&'static str, usize>,
}

impl ChangeList {
    /// Keep the first `keep` changes of each kind (`usize::MAX`: all).
    pub fn new(keep: usize) -> ChangeList {
        ChangeList { keep, ..ChangeList::default() }
    }

    /// Record a change; `build` gives (old, new, detail) and runs only if it is kept.
    pub fn add(
        &mut self,
        uid: Option<u32>,
        what: &'static str,
        build: impl FnOnce() -> (Option<serde_json::Value>, Option<serde_json::Value>, String),
    ) {
        let n = self.per_kind.entry(what).or_default();
        *n += 1;
        if *n <= self.keep {
            let (old, new, detail) = build();
            self.list.push(Change { uid, what, old, new, detail });
            return;
        }
        match self.elided.iter_mut().find(|e| e.what == what) {
            Some(e) => {
                e.count += 1;
                e.uids.extend(uid);
            }
            None => self.elided.push(Elided { what, count: 1, uids: uid.into_iter().collect() }),
        }
    }
}

/// Counts for the one-line summary of a mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records unchanged.
    pub kept: u64,
    /// Records rewritten from a surviving source (log, re-derived fields).
    pub rebuilt: u64,
    /// Messages indexed with no surviving record.
    pub added: u64,
    /// Records dropped (file gone or empty).
    pub dropped: u64,
    /// Messages whose old flags could not be applied.
    pub flags_lost: u64,
    /// Messages whose flags could not be known: a file at or below the last UID with no
    /// surviving record (its record, and whatever flags it held, is lost), or a change
    /// lost with a damaged last log record. At most this many more lost their flags.
    pub flags_unknown: u64,
    /// Messages whose flags and date came back from a record outside the mailbox's own
    /// files (the loss ledger, or a copy salvage found).
    pub restored: u64,
}

/// A record of a message that survived outside the mailbox's own files — in the loss
/// ledger, or wherever salvage found it (a `lost+found` index, a backup's log) — offered to
/// the merge for the message file of `record.uid` in this mailbox. It is trusted only for a
/// file it describes by size and BLAKE3 (the file is always read), and only when no record
/// of the mailbox's own files describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The record; `uid` is the UID of the file in this mailbox, `user_flags` is ignored
    /// (the names in `flag_names` are what count).
    pub record: MessageRecord,
    /// Names of its user flags.
    pub flag_names: Vec<String>,
    /// The mailbox identity (unique id, UID validity) the record's UID belongs to; `None`
    /// when the file was placed under `record.uid` for this mailbox already (salvage).
    pub origin: Option<([u8; 16], u32)>,
    /// Where it was found, for the report.
    pub source: String,
    /// The loss-ledger entry this message resolves, if any.
    pub resolves: Option<crate::codec::ledger::Entry>,
}

/// A mailbox identity to take back (salvage found the mailbox's old files elsewhere and the
/// mailbox on disk never assigned a UID since): its unique id, UID validity, last UID,
/// highest modseq and creation time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintIdentity {
    /// Unique id.
    pub unique_id: [u8; 16],
    /// UID validity.
    pub uid_validity: u32,
    /// Last UID it had assigned.
    pub last_uid: u32,
    /// Highest modseq it had given.
    pub highest_modseq: u64,
    /// Created.
    pub created: i64,
    /// Flag names by slot.
    pub flag_names: Vec<Option<String>>,
    /// The `RECREATED` ledger entry this resolves, if any.
    pub resolves: Option<crate::codec::ledger::Entry>,
}

/// Everything known about a mailbox from outside its own files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// An identity to take back.
    pub identity: Option<HintIdentity>,
    /// Records, sorted by UID (one per UID).
    pub records: Vec<Hint>,
}

impl Hints {
    /// The hint for the file of `uid`.
    pub fn get(&self, uid: u32) -> Option<&Hint> {
        self.records.binary_search_by_key(&uid, |h| h.record.uid).ok().map(|i| &self.records[i])
    }
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.identity.is_none() && self.records.is_empty()
    }
}

/// Inputs of [`merge`] beyond the old state and the files.
#[derive(Clone, Debug)]
pub struct MergeInput<'a> {
    /// Domain.
    pub domain: &'a str,
    /// Mailbox name.
    pub name: &'a str,
    /// From the mailbox list, if registered: (unique id, UID validity, created).
    pub listed: Option<([u8; 16], u32, i64)>,
    /// The mailbox list's modseq ceiling for it (0: none recorded).
    pub listed_modseq: u64,
    /// Now (seconds).
    pub now: i64,
    /// A fresh unique id to use if no source has one.
    pub fresh_id: [u8; 16],
    /// Changes kept per kind (`usize::MAX`: all).
    pub keep_changes: usize,
    /// Index a file with no surviving record under its own UID even at or below the last
    /// UID (`--keep-uids`), instead of re-appending it: right only when no expunge was in
    /// flight (an interrupted expunge's message comes back under its old UID).
    pub keep_uids: bool,
    /// Records and identity from outside the mailbox's own files.
    pub hints: Option<&'a Hints>,
    /// Let go of the log's records as the files pass them (`LogState::release_below`):
    /// the old state is then of no further use to anyone after the merge.
    pub release_log: bool,
}

/// A record the merge lets go of: what goes into the loss ledger (`formats/ledger.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// Why.
    pub reason: crate::codec::ledger::Reason,
    /// UID validity the record belongs to (0 if no source knew it).
    pub uid_validity: u32,
    /// The record as the newest source had it.
    pub record: MessageRecord,
    /// Names of its user flags, in slot order.
    pub flag_names: Vec<String>,
}

/// The rebuilt state of a mailbox.
#[derive(Clone, Debug)]
pub struct Merged {
    /// New header.
    pub header: MailboxHeader,
    /// New records, sorted by UID (cache pointers filled from derived data or old records).
    pub records: Vec<MessageRecord>,
    /// Last UID.
    pub last_uid: u32,
    /// Highest sequence number (modseq) after the merge.
    pub seq: u64,
    /// No modseq above this has been given (what the new header, index and the mailbox
    /// list record; the next writer raises it before going past).
    pub ceiling: u64,
    /// Files to rename: (old UID, new UID).
    pub renames: Vec<(u32, u32)>,
    /// Files to move aside (leftovers of expunges): UIDs.
    pub set_aside: Vec<u32>,
    /// The changes.
    pub changes: ChangeList,
    /// Summary counts.
    pub counts: Counts,
    /// Every record dropped or refused, in full (the changes may be elided; this is not).
    pub losses: Vec<Loss>,
    /// Ledger entries resolved by this merge, with the UID the message has now (0 for a
    /// `RECREATED` entry resolved by taking the old identity back).
    pub recovered: Vec<(crate::codec::ledger::Entry, u32, String)>,
    /// A new UID validity was issued because no source knew the last UID: (the old one, if
    /// any source knew it; the new one).
    pub new_validity: Option<(Option<u32>, u32)>,
    /// Whether the state differs from what the old files say (something to write).
    pub changed: bool,
    /// Whether some record's cache record moved (the index must be rewritten even if no
    /// client-visible field changed).
    pub placement_changed: bool,
    /// Whether a problem remains that reconstruct could not repair.
    pub unrepaired: bool,
}

fn flag_json(names: &[Option<String>], r: &MessageRecord) -> serde_json::Value {
    let mut v: Vec<String> = r.system_flags.names().map(str::to_string).collect();
    for slot in r.user_flags.slots() {
        v.push(names.get(slot).cloned().flatten().unwrap_or_else(|| format!("$slot{slot}")));
    }
    serde_json::json!(v)
}

fn date_json(unix: i64, offset: i16) -> serde_json::Value {
    serde_json::json!(DateTime { unix, offset_minutes: offset }.to_rfc3339())
}

/// Fields that matter to clients (everything but cache placement).
fn same_state(a: &MessageRecord, b: &MessageRecord) -> bool {
    a.uid == b.uid
        && a.system_flags == b.system_flags
        && a.user_flags == b.user_flags
        && a.internal_date == b.internal_date
        && a.internal_offset == b.internal_offset
        && a.size == b.size
        && a.content_hash == b.content_hash
        && a.header_size == b.header_size
        && a.sent_date == b.sent_date
        && a.sent_offset == b.sent_offset
        && a.modseq == b.modseq
}

/// Rule 1 and the flag names: who the mailbox is, which sources speak for it, the last
/// UID they know. Shared by [`merge`] and [`unchanged`], so both read the same identity.
struct Identity {
    unique_id: [u8; 16],
    /// UID validity from the first source that has one.
    old_validity: Option<u32>,
    created: i64,
    /// The index (its header agrees with that identity, or is lost).
    use_index: bool,
    /// The change log (its header agrees).
    use_log: bool,
    /// Highest last UID of the sources used.
    last_known: Option<u32>,
    /// When the last UID is only a floor (no whole log), the (last UID, seq) pairs of the
    /// header and index and the highest modseq ceiling: UIDs given since a pair are at
    /// most one per modseq up to the ceiling (see [`uid_bound`]).
    floors: Vec<(u32, u64)>,
    ceiling: u64,
    /// Flag names: header, then the log for slots the header lacks.
    names: Vec<Option<String>>,
}

/// The highest UID that may have been given, when the log that recorded the last ones is
/// lost: from a state (last UID `u`, seq `s`) on, each UID given took an append, which took
/// a modseq (at most `ceiling - s` of them), except UIDs skipped over message files that
/// existed (orphans, never deleted: at most `max_file_uid`). `None` if nothing bounds it.
fn uid_bound(floors: &[(u32, u64)], ceiling: u64, max_file_uid: u32) -> Option<u32> {
    if ceiling == 0 {
        return None;
    }
    floors
        .iter()
        .map(|&(u, s)| {
            let slack = u32::try_from(ceiling.saturating_sub(s)).unwrap_or(u32::MAX);
            u.max(max_file_uid).saturating_add(slack)
        })
        .min()
}

fn identity(old: &OldState, input: &MergeInput<'_>) -> Identity {
    if let Some(h) = input.hints.and_then(|h| h.identity.as_ref()) {
        return adopted_identity(old, h);
    }
    let fixed = old.header_fixed.as_ref();
    let unique_id = fixed
        .map(|h| h.unique_id)
        .or(old.index_header.as_ref().map(|h| h.unique_id))
        .or(old.log.as_ref().map(|l| l.header.unique_id))
        .or(input.listed.map(|l| l.0))
        .unwrap_or(input.fresh_id);
    let old_validity = fixed
        .map(|h| h.uid_validity)
        .or(old.index_header.as_ref().map(|h| h.uid_validity))
        .or(old.log.as_ref().map(|l| l.header.uid_validity))
        .or(input.listed.map(|l| l.1));
    let created = fixed.map(|h| h.created).or(input.listed.map(|l| l.2)).unwrap_or(input.now);
    let validity_ok = |v: u32, id: [u8; 16]| Some(v) == old_validity && id == unique_id;
    let use_index = match &old.index_header {
        Some(h) => validity_ok(h.uid_validity, h.unique_id),
        // Records of an index whose header is lost are self-describing (UID, size, hash).
        None => true,
    };
    let use_log = old.log.as_ref().is_some_and(|l| validity_ok(l.header.uid_validity, l.header.unique_id));
    let header_ok = fixed.filter(|h| Some(h.uid_validity) == old_validity);
    let index_ok = old.index_header.as_ref().filter(|_| use_index);
    let (from_header, from_index) = (header_ok.map(|h| h.last_uid), index_ok.map(|h| h.last_uid));
    // The log knows the last UID only if nothing of it is lost (a LAST_UID record, no
    // damage, no torn end: a log cut in the middle of a record looks like a crash's torn
    // write, yet may have lost any number of records before it). Else header, index and
    // what is left of the log are floors: UIDs above them may have been given and expunged
    // since, so the last UID is raised to what may have been given (`uid_bound`), or, with
    // no floor at all, a new UID validity is due.
    let log_knows = use_log
        && old.log_problem.is_none()
        && old.log_torn.is_none()
        && old.log.as_ref().is_some_and(|l| l.saw_last_uid);
    let others = from_header.or(from_index).is_some();
    let ceiling = ceilings(old, input);
    // What is left of the log: its last UID as of its compaction's base (its LAST_UID
    // record survived), a floor like the others.
    let log_floor = old.log.as_ref().filter(|l| use_log && l.saw_last_uid).map(|l| (l.last_uid, l.header.base_seq));
    let from_log = old
        .log
        .as_ref()
        .filter(|_| use_log && (log_knows || others || (ceiling > 0 && log_floor.is_some())))
        .map(|l| l.last_uid);
    let last_known = [from_header, from_index, from_log].into_iter().flatten().max();
    let floors = if log_knows {
        Vec::new()
    } else {
        let h = header_ok.map(|h| (h.last_uid, h.log.seq));
        let i = index_ok.map(|h| (h.last_uid, h.log_seq));
        [h, i, log_floor].into_iter().flatten().collect()
    };
    let mut names: Vec<Option<String>> = old.header.as_ref().map(|h| h.flags.clone()).unwrap_or_default();
    if use_log {
        if let Some(l) = &old.log {
            for (slot, n) in l.flag_names.iter().enumerate() {
                if let Some(n) = n {
                    if names.len() <= slot {
                        names.resize(slot + 1, None);
                    }
                    if names[slot].is_none() {
                        names[slot] = Some(n.clone());
                    }
                }
            }
        }
    }
    Identity { unique_id, old_validity, created, use_index, use_log, last_known, floors, ceiling, names }
}

/// The highest modseq any surviving ceiling allows (header, index, log, mailbox list): modseqs
/// up to it may have been given even where the log that recorded them is lost, so a record
/// that reconstruct creates or changes gets one above it.
fn ceilings(old: &OldState, input: &MergeInput<'_>) -> u64 {
    let h = old.header_fixed.as_ref().map_or(0, |h| h.modseq_ceiling);
    let i = old.index_header.as_ref().map_or(0, |h| h.modseq_ceiling);
    let l = old.log.as_ref().map_or(0, |l| l.header.ceiling);
    h.max(i).max(l).max(input.listed_modseq)
}

/// The ceiling a rebuilt mailbox records: never below one that survived, and room above
/// `seq` for the next writer (as [`crate::store::mailbox::modseq_headroom`] gives).
fn new_ceiling(old: &OldState, input: &MergeInput<'_>, seq: u64, records: usize) -> u64 {
    ceilings(old, input).max(seq + crate::store::mailbox::modseq_headroom(records))
}

/// The identity salvage found elsewhere, taken back: the mailbox's own files are used only
/// where they belong to it.
fn adopted_identity(old: &OldState, h: &HintIdentity) -> Identity {
    let ok = |v: u32, id: [u8; 16]| v == h.uid_validity && id == h.unique_id;
    let fixed_ok = old.header_fixed.as_ref().is_some_and(|f| ok(f.uid_validity, f.unique_id));
    let use_index = old.index_header.as_ref().is_none_or(|i| ok(i.uid_validity, i.unique_id));
    let use_log = old.log.as_ref().is_some_and(|l| ok(l.header.uid_validity, l.header.unique_id));
    let mut last = h.last_uid;
    if fixed_ok {
        last = last.max(old.header_fixed.as_ref().map_or(0, |f| f.last_uid));
    }
    if use_index {
        last = last.max(old.index_header.as_ref().map_or(0, |i| i.last_uid));
    }
    if use_log {
        last = last.max(old.log.as_ref().map_or(0, |l| l.last_uid));
    }
    // The identity's own names first, then the mailbox's files' for slots it lacks.
    let mut names = h.flag_names.clone();
    for src in [
        if fixed_ok { old.header.as_ref().map(|x| x.flags.clone()).unwrap_or_default() } else { Vec::new() },
        if use_log { old.log.as_ref().map(|l| l.flag_names.clone()).unwrap_or_default() } else { Vec::new() },
    ] {
        for (slot, n) in src.into_iter().enumerate() {
            if let Some(n) = n {
                if names.len() <= slot {
                    names.resize(slot + 1, None);
                }
                if names[slot].is_none() {
                    names[slot] = Some(n);
                }
            }
        }
    }
    Identity {
        unique_id: h.unique_id,
        old_validity: Some(h.uid_validity),
        created: h.created,
        use_index,
        use_log,
        last_known: Some(last),
        // The catalog's last UID is already the most any surviving file knew.
        floors: Vec::new(),
        ceiling: 0,
        names,
    }
}

/// The highest sequence number (modseq) any old source knows: where new ones start.
fn highest_seq(old: &OldState) -> u64 {
    let mut seq = old.log.as_ref().map(|l| l.seq).unwrap_or(0);
    if let Some(h) = &old.index_header {
        seq = seq.max(h.log_seq).max(h.highest_modseq);
    }
    if let Some(c) = &old.current {
        seq = seq.max(c.seq);
    }
    old.index_records.values().map(|r| r.modseq).fold(seq, u64::max)
}

/// What [`merge`] returns for a consistent mailbox (`old.current`) whose message files are
/// exactly its records, each matching on size and mtime — when that merge changes
/// nothing. Computed from the records alone, without a pass over the files: the no-op
/// run's finish. `None` when the merge would change something; run [`merge`] then.
///
/// The records are not copied: `records` is empty and `counts.kept` is their number.
/// Debug builds check every use against [`merge`] (see `reconstruct::finalize`).
pub fn unchanged(old: &OldState, input: &MergeInput<'_>) -> Option<Merged> {
    let c = old.current.as_ref()?;
    let log = old.log.as_ref()?;
    let id = identity(old, input);
    // Both sources used (else a change says one was ignored), the UID validity kept.
    let (true, true, Some(validity), Some(known)) = (id.use_index, id.use_log, id.old_validity, id.last_known) else {
        return None;
    };
    // Nothing only the log knows: an expunge could make a file a leftover to set aside.
    if !log.expunged.is_empty() || !log.state.is_empty() {
        return None;
    }
    // A torn tail is cut by a rewrite of the log.
    if old.log_torn.is_some() || old.log_problem.is_some() {
        return None;
    }
    let records = old.index_records.as_slice();
    let last_uid = known.max(records.last().map_or(0, |r| r.uid));
    if last_uid != c.last_uid {
        return None;
    }
    let used = records.iter().fold(0u128, |acc, r| acc | r.user_flags.0);
    if (0..MAX_USER_FLAGS).any(|slot| used & (1u128 << slot) != 0 && id.names.get(slot).is_none_or(Option::is_none)) {
        return None;
    }
    let header = MailboxHeader {
        unique_id: id.unique_id,
        uid_validity: validity,
        last_uid,
        created: id.created,
        domain: input.domain.to_string(),
        name: input.name.to_string(),
        flags: id.names,
        log: Default::default(),
        modseq_ceiling: 0,
    };
    let h = &c.header;
    if (h.unique_id, h.uid_validity, &h.flags, &h.domain, &h.name)
        != (header.unique_id, header.uid_validity, &header.flags, &header.domain, &header.name)
    {
        return None;
    }
    let seq = highest_seq(old);
    if input.hints.is_some_and(|h| h.identity.is_some()) {
        return None;
    }
    let ceiling = new_ceiling(old, input, seq, records.len());
    Some(Merged {
        header: MailboxHeader { modseq_ceiling: ceiling, ..header },
        records: Vec::new(),
        last_uid,
        seq,
        ceiling,
        renames: Vec::new(),
        set_aside: Vec::new(),
        changes: ChangeList::new(input.keep_changes),
        counts: Counts { kept: records.len() as u64, ..Counts::default() },
        losses: Vec::new(),
        recovered: Vec::new(),
        new_validity: None,
        changed: false,
        placement_changed: false,
        unrepaired: false,
    })
}

/// Merge (the outcomes are read in passes, in UID order; a failure to read them back is
/// the caller's to check, in [`Outcomes::error`], before anything is written).
pub fn merge(old: &OldState, input: &MergeInput<'_>, files: &Outcomes) -> Merged {
    let mut changes = ChangeList::new(input.keep_changes);
    // The files' UIDs, ascending (4 bytes a file): what is on disk, without the outcomes.
    let on_disk: Vec<u32> = files.iter().map(|f| f.uid()).collect();
    // 1. Identity, and the UID frame it allows.
    let id = identity(old, input);
    note_ignored_sources(old, &id, &mut changes);
    let frame = uid_frame(old, input, &id, &on_disk, &mut changes);
    let seq = highest_seq(old).max(input.hints.and_then(|h| h.identity.as_ref()).map_or(0, |i| i.highest_modseq));

    // 2-3. Files.
    let ctx = Ctx { old, input, id: &id, frame: &frame };
    let mut acc = Acc::new(changes, files.len());
    if let Some(e) = input.hints.and_then(|h| h.identity.as_ref()).and_then(|i| i.resolves.as_ref()) {
        acc.recovered.push((e.clone(), 0, "its old files, found by salvage".to_string()));
    }
    let gone = gone_records(&ctx, &on_disk);
    let log = old.log.as_ref().filter(|_| input.release_log);
    for f in files.iter() {
        take_file(&ctx, &mut acc, &f);
        if let Some(l) = log {
            l.state.release_below(f.uid());
        }
    }
    // A damaged last log record that was a flag change (its kind byte says so, if
    // nothing else of it can be trusted): one message lost that change, which one is
    // unknown.
    if old.log_torn.is_some() && old.log_torn_kind == Some(crate::format::changelog::kind::FLAGS) {
        acc.counts.flags_unknown += 1;
    }
    // 4. Records with no file.
    drop_gone(&ctx, &mut acc, &gone);
    drop(gone);
    let max_file_uid = on_disk.last().copied().unwrap_or(0);
    drop(on_disk);
    let (last_uid, renames) = place_fresh(&ctx, &mut acc, max_file_uid);
    let Acc { mut changes, counts, unrepaired, mut records, losses, recovered, pending_names, set_aside, .. } = acc;
    // One record per UID: an unstable sort gives the same order, with no buffer of half
    // the records (64 MB at 1,000,000 messages).
    records.sort_unstable_by_key(|r| r.uid);

    // 5. Flag names.
    let Identity { unique_id, created, use_log, old_validity, mut names, .. } = id;
    restore_flag_names(&mut records, &mut names, pending_names, &mut changes);
    name_lost_slots(&records, &mut names, &mut changes);

    let modseqs = assign_modseqs(old, input, use_log, seq, &mut records, &renames, &mut changes);
    let header = MailboxHeader {
        unique_id,
        uid_validity: frame.uid_validity,
        last_uid,
        created,
        domain: input.domain.to_string(),
        name: input.name.to_string(),
        flags: names,
        log: Default::default(),
        modseq_ceiling: 0,
    };
    let ceiling = new_ceiling(old, input, modseqs.seq, records.len());
    let header = MailboxHeader { modseq_ceiling: ceiling, ..header };
    let header_same = header_same(old, &header, &mut changes);
    let changed = modseqs.changed_any
        || !state_same(old, &records, last_uid)
        || !header_same
        || !renames.is_empty()
        || !set_aside.is_empty();
    Merged {
        header,
        records,
        last_uid,
        seq: modseqs.seq,
        ceiling,
        renames,
        set_aside,
        changes,
        counts,
        losses,
        recovered,
        new_validity: frame.validity_changed.then_some((old_validity, frame.uid_validity)),
        changed,
        placement_changed: modseqs.placement_changed,
        unrepaired,
    }
}

/// A change for each of the mailbox's own files whose identity disagrees (its records are
/// not used).
fn note_ignored_sources(old: &OldState, id: &Identity, changes: &mut ChangeList) {
    if old.index_header.is_some() && !id.use_index {
        changes.add(None, "index-ignored", || {
            (None, None, "ms.index belongs to another mailbox or UID validity; its records were not used".into())
        });
    }
    if old.log.is_some() && !id.use_log {
        changes.add(None, "log-ignored", || {
            (None, None, "ms.log belongs to another mailbox or UID validity; its records were not used".into())
        });
    }
}

/// The UID frame of the merge: the UID validity (kept, or new when no source knows the
/// last UID), the last UID so far, and the UID at or below which a file with no record is
/// re-appended.
struct Frame {
    uid_validity: u32,
    validity_changed: bool,
    last_uid: u32,
    reappend_limit: u32,
}

/// Choose the UID frame (see [`Frame`]), raising the last UID to what a lost log may have
/// given (see [`uid_bound`]).
fn uid_frame(
    old: &OldState,
    input: &MergeInput<'_>,
    id: &Identity,
    on_disk: &[u32],
    changes: &mut ChangeList,
) -> Frame {
    let (old_validity, last_known, ceiling) = (id.old_validity, id.last_known, id.ceiling);
    let max_file_uid = on_disk.last().copied().unwrap_or(0);
    let trusted_uids_max =
        on_disk.iter().filter_map(|&u| candidates(old, u, id).first().map(|c| c.1.uid)).max().unwrap_or(0);
    let (uid_validity, validity_changed) = match (old_validity, last_known) {
        (Some(v), Some(_)) => (v, false),
        (old_v, _) => {
            let fresh = (input.now.clamp(1, u32::MAX as i64) as u32).max(old_v.map_or(1, |v| v.saturating_add(1)));
            (fresh, true)
        }
    };
    if validity_changed {
        changes.add(None, "uidvalidity-changed", || (old_validity.map(|v| serde_json::json!(v)), Some(serde_json::json!(uid_validity)), "the last UID could not be recovered from the header, index or log: new UID validity issued, files keep their UIDs".into()));
    }
    let mut last_uid = if validity_changed { max_file_uid } else { last_known.unwrap_or(0).max(trusted_uids_max) };
    // Files at or below this, with no surviving record, are re-appended.
    let mut reappend_limit = last_known.unwrap_or(0);
    if let (false, Some(bound)) = (validity_changed, uid_bound(&id.floors, ceiling, max_file_uid)) {
        if bound > last_uid {
            let floor = last_uid;
            changes.add(None, "last-uid-bound", || {
                (
                    Some(serde_json::json!(floor)),
                    Some(serde_json::json!(bound)),
                    format!(
                        "the change log that recorded the last UIDs given is lost or damaged: UIDs up to {bound} may have been given since (one per modseq up to the ceiling {ceiling}); the last UID is raised from {floor} to {bound} so that none is given twice"
                    ),
                )
            });
            last_uid = bound;
            reappend_limit = bound;
        }
    }
    Frame { uid_validity, validity_changed, last_uid, reappend_limit }
}

/// What the file-by-file steps of [`merge`] read.
struct Ctx<'a, 'i> {
    old: &'a OldState,
    input: &'a MergeInput<'i>,
    id: &'a Identity,
    frame: &'a Frame,
}

/// What [`merge`] gathers file by file.
struct Acc {
    changes: ChangeList,
    counts: Counts,
    unrepaired: bool,
    records: Vec<MessageRecord>,
    losses: Vec<Loss>,
    recovered: Vec<(crate::codec::ledger::Entry, u32, String)>,
    /// Restored records whose user flags are still names: (index in `records`, names).
    pending_names: Vec<(usize, Vec<String>)>,
    /// Files with no record: (file UID, record, re-append).
    fresh: Vec<(u32, MessageRecord, bool)>,
    set_aside: Vec<u32>,
}

impl Acc {
    fn new(changes: ChangeList, files: usize) -> Acc {
        Acc {
            changes,
            counts: Counts::default(),
            unrepaired: false,
            records: Vec::with_capacity(files),
            losses: Vec::new(),
            recovered: Vec::new(),
            pending_names: Vec::new(),
            fresh: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// Let go of `r` (for the loss ledger).
    fn lose(&mut self, ctx: &Ctx<'_, '_>, reason: Reason, r: &MessageRecord) {
        self.losses.push(Loss {
            reason,
            uid_validity: ctx.id.old_validity.unwrap_or(0),
            record: *r,
            flag_names: flag_names_of(&ctx.id.names, r),
        });
    }
}

/// One message file as the merge sees it.
struct FileView<'f> {
    uid: u32,
    info: &'f FileInfo,
    derived: Option<&'f Derived>,
    cands: Candidates,
    /// The modseq of the log's expunge of this UID, if any.
    expunged_at: Option<u64>,
}

/// Step 3 for one file: keep, rebuild, restore or add its record, or let it go.
fn take_file(ctx: &Ctx<'_, '_>, acc: &mut Acc, f: &FileOutcome) {
    let (old, id) = (ctx.old, ctx.id);
    let uid = f.uid();
    let cands = if ctx.frame.validity_changed && !id.use_index && !id.use_log {
        Candidates::default()
    } else {
        candidates(old, uid, id)
    };
    let names = &id.names;
    match f {
        FileOutcome::Vanished { .. } => {
            if let Some((_, r)) = cands.first() {
                acc.counts.dropped += 1;
                acc.lose(ctx, Reason::Vanished, r);
                acc.changes.add(Some(uid), "dropped-missing", || {
                    (Some(flag_json(names, r)), None, "message file vanished during the run; record dropped".into())
                });
            }
        }
        FileOutcome::Empty(_) => {
            acc.unrepaired = true;
            if let Some((_, r)) = cands.first() {
                acc.counts.dropped += 1;
                acc.lose(ctx, Reason::Empty, r);
                acc.changes.add(Some(uid), "dropped-empty", || {
                    (
                        Some(flag_json(names, r)),
                        None,
                        format!(
                            "{uid}. is empty: record dropped (flags were {}), file left in place",
                            flag_json(names, r)
                        ),
                    )
                });
            } else {
                acc.changes.add(Some(uid), "empty-file", || {
                    (None, None, format!("{uid}. is empty: not indexed, left in place"))
                });
            }
        }
        FileOutcome::Unreadable { error, .. } => {
            acc.unrepaired = true;
            if let Some((src, r)) = cands.first() {
                acc.records.push(*r);
                acc.changes.add(Some(uid), "unreadable", || {
                    (None, None, format!("{uid}. cannot be read ({error}); its {src:?} record is kept unverified"))
                });
            } else {
                acc.changes.add(Some(uid), "unreadable", || {
                    (None, None, format!("{uid}. cannot be read ({error}); not indexed"))
                });
            }
        }
        FileOutcome::Matched(info) | FileOutcome::Read(info, _) => {
            let derived = match f {
                FileOutcome::Read(_, d) => Some(d),
                _ => None,
            };
            let expunged_at =
                if id.use_log { old.log.as_ref().and_then(|l| l.expunged.get(&uid).copied()) } else { None };
            take_present(ctx, acc, FileView { uid, info, derived, cands, expunged_at });
        }
    }
}

/// A file that is there: the newest record that describes it is kept (or its leftover of
/// an expunge set aside); else see [`take_undescribed`].
fn take_present(ctx: &Ctx<'_, '_>, acc: &mut Acc, fv: FileView<'_>) {
    let (info, derived) = (fv.info, fv.derived);
    let describes = |r: &MessageRecord| match derived {
        Some(d) => r.size == info.size && (r.content_hash == d.content_hash || r.content_hash == [0; 32]),
        None => r.size == info.size && mtime_matches(info.mtime, r.internal_date, ctx.input.now),
    };
    match fv.cands.iter().find(|(_, r)| describes(r)) {
        Some(&(src, r)) => keep_trusted(ctx, acc, &fv, src, &r),
        None => take_undescribed(ctx, acc, &fv),
    }
}

/// A record describes the file: keep it (with what was derived again), unless the log
/// expunged it after that record (the file is an interrupted expunge's leftover).
fn keep_trusted(ctx: &Ctx<'_, '_>, acc: &mut Acc, fv: &FileView<'_>, src: Source, r: &MessageRecord) {
    let (uid, names) = (fv.uid, &ctx.id.names);
    if fv.expunged_at.is_some_and(|e| e > r.modseq) {
        acc.set_aside.push(uid);
        acc.changes.add(Some(uid), "expunged-leftover", || expunged_leftover(uid));
        return;
    }
    let mut rec = *r;
    if let Some(d) = fv.derived {
        rec.content_hash = d.content_hash;
        rec.prefix_hash = d.prefix_hash;
        rec.header_size = d.header_size;
        rec.sent_date = d.sent_date.map(|x| x.unix);
        rec.sent_offset = d.sent_date.map(|x| x.offset_minutes).unwrap_or(0);
        if let Some((o, l)) = d.cache {
            rec.cache_offset = o;
            rec.cache_len = l;
        }
    }
    if let Some((_, newest)) = fv.cands.first().filter(|c| c.1.modseq != r.modseq) {
        if (newest.system_flags, newest.user_flags) != (r.system_flags, r.user_flags) {
            // The newer flags belong to a record that no longer describes the file: they
            // are not applied.
            acc.counts.flags_lost += 1;
        }
        acc.changes.add(Some(uid), "newest-record-mismatch", || {
            (
                Some(flag_json(names, newest)),
                Some(flag_json(names, r)),
                format!(
                    "the newest record of {uid}. describes other content; an older {src:?} record that matches was used"
                ),
            )
        });
    }
    let from_index = ctx.old.index_records.get(&uid);
    if from_index.is_some_and(|i| same_state(i, &rec)) {
        acc.counts.kept += 1;
    } else {
        acc.counts.rebuilt += 1;
        acc.changes.add(Some(uid), if src == Source::Log { "record-from-log" } else { "record-rebuilt" }, || {
            (
                from_index.map(|i| flag_json(names, i)),
                Some(flag_json(names, &rec)),
                match (src, from_index) {
                    (Source::Log, None) => {
                        "index record missing or damaged: flags and date recovered from the change log".into()
                    }
                    (Source::Log, Some(_)) => {
                        "index record out of date: flags and date taken from the change log".into()
                    }
                    _ => "index record rewritten with re-derived fields".into(),
                },
            )
        });
    }
    acc.records.push(rec);
}

/// No surviving record describes the file: its old record (if any) is let go; then it is
/// an expunge's leftover (set aside), a message salvage found a record for (restored), or
/// a new message (added, or re-appended above the last UID).
fn take_undescribed(ctx: &Ctx<'_, '_>, acc: &mut Acc, fv: &FileView<'_>) {
    let (uid, info, names) = (fv.uid, fv.info, &ctx.id.names);
    // A record from outside the mailbox's own files: only for a file that was read and
    // matches it byte for byte (size and BLAKE3).
    let hint = ctx.input.hints.and_then(|h| h.get(uid)).filter(|h| {
        h.origin.is_none_or(|(id, v)| {
            id == ctx.id.unique_id && (Some(v) == ctx.id.old_validity || v == ctx.frame.uid_validity)
        }) && fv.derived.is_some_and(|d| h.record.size == info.size && h.record.content_hash == d.content_hash)
    });
    if let Some((src, r)) = fv.cands.first() {
        let had_flags = r.system_flags.0 != 0 || r.user_flags.0 != 0;
        if had_flags {
            acc.counts.flags_lost += 1;
        }
        acc.lose(ctx, Reason::ContentChanged, r);
        acc.changes.add(Some(uid), "content-changed", || {
            (
                Some(flag_json(names, r)),
                None,
                format!(
                    "{uid}. no longer matches its {src:?} record ({}); old flags {} not applied",
                    if r.size == info.size {
                        "same size, different content hash".to_string()
                    } else {
                        format!("size {} → {}", r.size, info.size)
                    },
                    flag_json(names, r)
                ),
            )
        });
    } else if fv.expunged_at.is_some() && hint.is_none_or(|h| h.origin.is_some()) {
        acc.set_aside.push(uid);
        acc.changes.add(Some(uid), "expunged-leftover", || expunged_leftover(uid));
        return;
    }
    match (hint, fv.derived) {
        (Some(h), Some(d)) => restore_from_hint(acc, uid, h, d),
        _ => add_new(ctx, acc, fv),
    }
}

/// A file salvage found a record for: its flags (by name) and internal date restored,
/// under a new modseq.
fn restore_from_hint(acc: &mut Acc, uid: u32, h: &Hint, d: &Derived) {
    let mut rec = h.record;
    rec.uid = uid;
    rec.user_flags = UserFlags(0);
    rec.content_hash = d.content_hash;
    rec.prefix_hash = d.prefix_hash;
    rec.header_size = d.header_size;
    rec.sent_date = d.sent_date.map(|x| x.unix);
    rec.sent_offset = d.sent_date.map(|x| x.offset_minutes).unwrap_or(0);
    (rec.cache_offset, rec.cache_len) = d.cache.unwrap_or((0, 0));
    // A restored message is a change clients must see: a new modseq.
    rec.modseq = 0;
    acc.counts.restored += 1;
    if let Some(e) = &h.resolves {
        acc.recovered.push((e.clone(), uid, h.source.clone()));
    }
    acc.changes.add(Some(uid), "restored", || {
        (
            None,
            Some(serde_json::json!({
                "flags": h.record.system_flags.names().map(str::to_string).chain(h.flag_names.iter().cloned()).collect::<Vec<_>>(),
                "internal_date": date_json(h.record.internal_date, h.record.internal_offset),
            })),
            format!("{uid}. had no record here: flags and internal date restored from {}", h.source),
        )
    });
    acc.pending_names.push((acc.records.len(), h.flag_names.clone()));
    acc.records.push(rec);
}

/// A file with no record at all: a new record (no flags, the best date there is), placed
/// later by [`place_fresh`].
fn add_new(ctx: &Ctx<'_, '_>, acc: &mut Acc, fv: &FileView<'_>) {
    let (uid, info) = (fv.uid, fv.info);
    let (date, source) = pick_date(info, fv.derived, ctx.input.now);
    let d = fv.derived.copied();
    let rec = MessageRecord {
        uid,
        system_flags: SystemFlags(0),
        user_flags: UserFlags(0),
        internal_date: date.unix,
        internal_offset: date.offset_minutes,
        date_source: source,
        sent_date: d.and_then(|d| d.sent_date).map(|x| x.unix),
        sent_offset: d.and_then(|d| d.sent_date).map(|x| x.offset_minutes).unwrap_or(0),
        header_size: d.map(|d| d.header_size).unwrap_or(0),
        size: info.size,
        cache_offset: d.and_then(|d| d.cache).map(|c| c.0).unwrap_or(0),
        cache_len: d.and_then(|d| d.cache).map(|c| c.1).unwrap_or(0),
        modseq: 0,
        content_hash: d.map(|d| d.content_hash).unwrap_or([0; 32]),
        prefix_hash: d.map(|d| d.prefix_hash).unwrap_or(0),
    };
    let validity_changed = ctx.frame.validity_changed;
    let below = uid <= ctx.frame.reappend_limit;
    if fv.cands.first().is_none() && (below || validity_changed) {
        // It had a record once (its UID was given), which is lost.
        acc.counts.flags_unknown += 1;
    }
    let reappend = !validity_changed && below && !ctx.input.keep_uids;
    acc.fresh.push((uid, rec, reappend));
}

/// The records of step 4: the newest candidate of each UID not on disk, in UID order.
/// Skipped for a source whose every record has a file (the common case: counted cheaply
/// instead of a search per record). Taken before the files are, as the merge may let go
/// of the log's records as it passes them.
fn gone_records(ctx: &Ctx<'_, '_>, files: &[u32]) -> Vec<MessageRecord> {
    let (old, use_index, use_log) = (ctx.old, ctx.id.use_index, ctx.id.use_log);
    let on_disk = |u: &u32| files.binary_search(u).is_ok();
    let with_file = |has: &dyn Fn(&u32) -> bool| files.iter().filter(|u| has(u)).count();
    let mut gone: UidMap<MessageRecord> = UidMap::default();
    if use_index && with_file(&|u| old.index_records.contains_key(u)) < old.index_records.len() {
        gone.extend(old.index_records.values().filter(|r| !on_disk(&r.uid)).map(|r| (r.uid, *r)));
    }
    if use_log {
        if let Some(l) = old.log.as_ref().filter(|l| with_file(&|u| l.state.contains_key(u)) < l.state.len()) {
            for r in l.state.values().filter(|r| !on_disk(&r.uid)) {
                let g = gone.entry(r.uid).or_insert(r);
                if g.modseq < r.modseq {
                    *g = r;
                }
            }
        }
    }
    let mut gone: Vec<MessageRecord> = gone.into_values().collect();
    gone.sort_by_key(|r| r.uid);
    gone
}

/// Step 4: records with no file ([`gone_records`]) are let go, unless the log expunged
/// them.
fn drop_gone(ctx: &Ctx<'_, '_>, acc: &mut Acc, gone: &[MessageRecord]) {
    let (old, use_log, names) = (ctx.old, ctx.id.use_log, &ctx.id.names);
    for r in gone {
        let uid = r.uid;
        let expunged_later =
            use_log && old.log.as_ref().and_then(|l| l.expunged.get(&uid)).is_some_and(|&e| e > r.modseq);
        if expunged_later {
            continue;
        }
        acc.counts.dropped += 1;
        acc.lose(ctx, Reason::Gone, r);
        acc.changes.add(Some(uid), "dropped-missing", || {
            (
                Some(flag_json(names, r)),
                None,
                format!("{uid}. is gone: record dropped (flags were {})", flag_json(names, r)),
            )
        });
    }
}

/// New messages: under their UID if above the last UID, else re-appended above every UID
/// in use (files left in place included, so a rename never collides). The last UID and
/// the renames.
fn place_fresh(ctx: &Ctx<'_, '_>, acc: &mut Acc, max_file_uid: u32) -> (u32, Vec<(u32, u32)>) {
    let validity_changed = ctx.frame.validity_changed;
    let before_new = ctx.frame.last_uid;
    let mut last_uid = before_new.max(max_file_uid).max(acc.records.iter().map(|r| r.uid).max().unwrap_or(0));
    if !validity_changed && last_uid > before_new {
        acc.changes.add(None, "last-uid-raised", || {
            (
                Some(serde_json::json!(before_new)),
                Some(serde_json::json!(last_uid)),
                format!("last UID raised from {before_new} to {last_uid} for message files above it"),
            )
        });
    }
    let mut renames = Vec::new();
    for (uid, mut rec, reappend) in std::mem::take(&mut acc.fresh) {
        acc.counts.added += 1;
        if reappend {
            last_uid += 1;
            renames.push((uid, last_uid));
            acc.changes.add(Some(last_uid), "re-appended", || (Some(serde_json::json!(uid)), Some(serde_json::json!(last_uid)), format!(
                    "{uid}. has no record and its UID is not above the last UID: renamed to {last_uid}. (bytes untouched), internal date from {}",
                    rec.date_source.as_str()
                )));
            rec.uid = last_uid;
        } else if ctx.input.keep_uids && !validity_changed && uid <= before_new {
            acc.changes.add(Some(uid), "kept-uid", || {
                (
                    None,
                    Some(date_json(rec.internal_date, rec.internal_offset)),
                    format!(
                        "{uid}. had no record and its UID is not above the last UID: indexed under its own UID (--keep-uids), internal date from {}",
                        rec.date_source.as_str()
                    ),
                )
            });
        } else {
            acc.changes.add(Some(uid), "added", || {
                (
                    None,
                    Some(date_json(rec.internal_date, rec.internal_offset)),
                    format!("{uid}. had no record: indexed, internal date from {}", rec.date_source.as_str()),
                )
            });
        }
        acc.records.push(rec);
    }
    (last_uid, renames)
}

/// Restored records' flags by name: a slot of the same name, else a free slot (one no
/// record uses without a name).
fn restore_flag_names(
    records: &mut [MessageRecord],
    names: &mut Vec<Option<String>>,
    pending_names: Vec<(usize, Vec<String>)>,
    changes: &mut ChangeList,
) {
    if pending_names.is_empty() {
        return;
    }
    let unnamed = records.iter().fold(0u128, |acc, r| acc | r.user_flags.0);
    for (i, fnames) in pending_names {
        for n in fnames {
            let slot =
                names.iter().position(|x| x.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(&n))).or_else(|| {
                    let free = (0..MAX_USER_FLAGS)
                        .find(|&s| names.get(s).is_none_or(Option::is_none) && unnamed & (1u128 << s) == 0)?;
                    if names.len() <= free {
                        names.resize(free + 1, None);
                    }
                    names[free] = Some(n.clone());
                    Some(free)
                });
            match slot {
                Some(s) => records[i].user_flags.set(s),
                None => {
                    let uid = records[i].uid;
                    changes.add(Some(uid), "flag-name-no-slot", || {
                        (
                            None,
                            Some(serde_json::json!(n)),
                            format!("{uid}.: no free user flag slot for {n}; not restored"),
                        )
                    });
                }
            }
        }
    }
}

/// Names for user flag bits whose name was lost: `$RecoveredFlagN`.
fn name_lost_slots(records: &[MessageRecord], names: &mut Vec<Option<String>>, changes: &mut ChangeList) {
    let used = records.iter().fold(0u128, |acc, r| acc | r.user_flags.0);
    for slot in 0..MAX_USER_FLAGS {
        if used & (1u128 << slot) != 0 && names.get(slot).is_none_or(Option::is_none) {
            if names.len() <= slot {
                names.resize(slot + 1, None);
            }
            let placeholder = format!("$RecoveredFlag{slot}");
            let carriers = records.iter().filter(|r| r.user_flags.has(slot)).count();
            changes.add(None, "flag-name-unknown", || (None, Some(serde_json::json!(placeholder)), format!(
                    "the name of user flag slot {slot} is lost (header and log); {carriers} message(s) keep it as {placeholder}"
                )));
            names[slot] = Some(placeholder);
        }
    }
}

/// What [`assign_modseqs`] gave.
struct Modseqs {
    /// The highest modseq given.
    seq: u64,
    /// Some record's client-visible state changed.
    changed_any: bool,
    /// Some record's cache record moved.
    placement_changed: bool,
}

/// Modseqs: new and renamed records get fresh ones, above every modseq that may have been
/// given (the surviving ceilings: the log that recorded the last ones may be lost or cut);
/// a record recovered from the log keeps the modseq of the change it records. A log that
/// lost records gives every message one new modseq.
fn assign_modseqs(
    old: &OldState,
    input: &MergeInput<'_>,
    use_log: bool,
    seq: u64,
    records: &mut [MessageRecord],
    renames: &[(u32, u32)],
    changes: &mut ChangeList,
) -> Modseqs {
    let mut seq = seq.max(records.iter().map(|r| r.modseq).max().unwrap_or(0));
    let above = ceilings(old, input);
    let mut changed_any = false;
    let mut placement_changed = false;
    for r in records.iter_mut() {
        // With a consistent mailbox, `index_records` is its live state.
        let prev = old.index_records.get(&r.uid);
        if prev.is_some_and(|p| (p.cache_offset, p.cache_len) != (r.cache_offset, r.cache_len)) {
            placement_changed = true;
        }
        if prev.is_some_and(|p| same_state(p, r)) {
            continue;
        }
        changed_any = true;
        if r.modseq == 0 || renames.iter().any(|x| x.1 == r.uid) {
            seq = seq.max(above) + 1;
            r.modseq = seq;
        }
    }
    // A log that lost records (missing, cut, damaged, torn, of another UID validity) may
    // have held changes newer than what survives, under modseqs above it: which messages
    // changed since a client last looked is unknown. Every message gets one new modseq,
    // above every ceiling, so that HIGHESTMODSEQ never goes down and CONDSTORE clients
    // fetch every flag again (RFC 7162).
    let log_incomplete = !use_log || old.log_problem.is_some() || old.log_torn.is_some();
    if log_incomplete && !records.is_empty() {
        seq = seq.max(above) + 1;
        for r in records.iter_mut() {
            r.modseq = seq;
        }
        changed_any = true;
        changes.add(None, "modseqs-renewed", || {
            (
                None,
                Some(serde_json::json!(seq)),
                format!("the change log lost records: every message gets modseq {seq} so that clients fetch their flags again"),
            )
        });
    } else if log_incomplete {
        seq = seq.max(above);
    }
    Modseqs { seq, changed_any, placement_changed }
}

/// Whether the new header has the old identity, flag names and name (a change when the
/// old header named another mailbox).
fn header_same(old: &OldState, header: &MailboxHeader, changes: &mut ChangeList) -> bool {
    let same = match (&old.current, &old.header) {
        (Some(c), _) => {
            c.header.unique_id == header.unique_id
                && c.header.uid_validity == header.uid_validity
                && c.header.flags == header.flags
                && c.header.domain == header.domain
                && c.header.name == header.name
        }
        (None, Some(h)) => h.same_identity(header),
        (None, None) => false,
    };
    if !same && old.header.as_ref().is_some_and(|h| h.name != header.name || h.domain != header.domain) {
        changes.add(None, "header-name", || {
            (
                old.header.as_ref().map(|h| serde_json::json!(format!("{}:{}", h.domain, h.name))),
                Some(serde_json::json!(format!("{}:{}", header.domain, header.name))),
                "the header named another mailbox; rewritten with the registered name".into(),
            )
        });
    }
    same
}

/// Whether the records and last UID are the consistent mailbox's own.
fn state_same(old: &OldState, records: &[MessageRecord], last_uid: u32) -> bool {
    match &old.current {
        Some(c) => {
            old.index_records.len() == records.len()
                && records.iter().all(|b| old.index_records.get(&b.uid).is_some_and(|a| same_state(a, b)))
                && c.last_uid == last_uid
        }
        None => false,
    }
}

/// Names of a record's user flags, in slot order (a slot with no name as `$slotN`).
fn flag_names_of(names: &[Option<String>], r: &MessageRecord) -> Vec<String> {
    r.user_flags
        .slots()
        .map(|slot| names.get(slot).cloned().flatten().unwrap_or_else(|| format!("$slot{slot}")))
        .collect()
}

/// The change that sets aside the leftover of an interrupted expunge.
fn expunged_leftover(uid: u32) -> (Option<serde_json::Value>, Option<serde_json::Value>, String) {
    (None, None, format!("{uid}. was expunged (change log) but its file remained: moved to ms.quarantine/"))
}

/// The internal date of a message with no surviving record.
fn pick_date(info: &FileInfo, derived: Option<&Derived>, now: i64) -> (DateTime, DateSource) {
    if info.mtime > 0 && info.mtime <= now + 86_400 {
        // Keep the zone of the message's own Date header when it has one.
        let off = derived.and_then(|d| d.sent_date).map(|d| d.offset_minutes).unwrap_or(0);
        return (DateTime { unix: info.mtime, offset_minutes: off }, DateSource::FileMtime);
    }
    if let Some(d) = derived.and_then(|d| d.received_date) {
        return (d, DateSource::Received);
    }
    if let Some(d) = derived.and_then(|d| d.sent_date) {
        return (d, DateSource::DateHeader);
    }
    (DateTime { unix: now, offset_minutes: 0 }, DateSource::RebuildTime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::changelog::LogHeaderInfo;
    use crate::codec::index::IndexHeaderInfo;
    use crate::survey::gather::{Current, LogView, RecordSet};

    const ID: [u8; 16] = [7; 16];

    /// A consistent mailbox "d:box" with `uids`, as `gather::gather` reads it.
    fn consistent(uids: &[u32], flags: Vec<Option<String>>) -> OldState {
        let recs: Vec<MessageRecord> = uids
            .iter()
            .map(|&uid| MessageRecord {
                uid,
                size: 100 + uid as u64,
                internal_date: 1_700_000_000 + uid as i64,
                modseq: 3,
                user_flags: UserFlags(if uid == 2 { 1 } else { 0 }),
                ..MessageRecord::default()
            })
            .collect();
        let last = uids.iter().copied().max().unwrap_or(0);
        let header = MailboxHeader {
            unique_id: ID,
            uid_validity: 9,
            last_uid: last,
            created: 5,
            domain: "d".into(),
            name: "box".into(),
            flags: flags.clone(),
            log: Default::default(),
            modseq_ceiling: 0,
        };
        let index =
            IndexHeaderInfo { unique_id: ID, uid_validity: 9, last_uid: last, log_seq: 3, ..Default::default() };
        OldState {
            header: Some(header.clone()),
            header_fixed: Some(header.fixed_info()),
            index_header: Some(index.clone()),
            index_records: RecordSet::from_unsorted(recs),
            log: Some(LogView {
                header: LogHeaderInfo { unique_id: ID, uid_validity: 9, base_seq: 3, created: 5, ceiling: 0 },
                flag_names: flags,
                last_uid: last,
                saw_last_uid: true,
                seq: 3,
                name: Some(("d".into(), "box".into())),
                ..LogView::default()
            }),
            current: Some(Current { header, index, last_uid: last, seq: 3 }),
            ..OldState::default()
        }
    }

    fn input<'a>(name: &'a str) -> MergeInput<'a> {
        MergeInput {
            domain: "d",
            name,
            listed: None,
            listed_modseq: 0,
            now: 1_800_000_000,
            fresh_id: [1; 16],
            keep_changes: 10,
            keep_uids: false,
            hints: None,
            release_log: false,
        }
    }

    fn all_matched(old: &OldState) -> Outcomes {
        let all: Vec<FileOutcome> = old
            .index_records
            .values()
            .map(|r| FileOutcome::Matched(FileInfo { uid: r.uid, size: r.size, mtime: r.internal_date }))
            .collect();
        Outcomes::from(all)
    }

    #[test]
    fn unchanged_is_what_the_merge_gives_a_consistent_mailbox() {
        let old = consistent(&[1, 2, 5], vec![Some("$Work".into())]);
        let q = unchanged(&old, &input("box")).expect("nothing to change");
        let full = merge(&old, &input("box"), &all_matched(&old));
        assert!(!full.changed && !full.placement_changed && full.changes.list.is_empty());
        assert_eq!((q.counts, &q.header, q.last_uid, q.seq), (full.counts, &full.header, full.last_uid, full.seq));
        assert_eq!(q.counts.kept, 3);
    }

    #[test]
    fn unchanged_declines_whatever_the_merge_would_change() {
        // A set flag whose name is lost: the merge names it.
        let old = consistent(&[1, 2], vec![]);
        assert!(unchanged(&old, &input("box")).is_none());
        assert!(merge(&old, &input("box"), &all_matched(&old)).changed);
        // The header names another mailbox.
        let old = consistent(&[1, 2], vec![Some("$Work".into())]);
        assert!(unchanged(&old, &input("other")).is_none());
        assert!(merge(&old, &input("other"), &all_matched(&old)).changed);
        // The header knows a higher last UID than the live state.
        let mut old = consistent(&[1, 2], vec![Some("$Work".into())]);
        old.header_fixed.as_mut().expect("fixed").last_uid = 8;
        assert!(unchanged(&old, &input("box")).is_none());
        assert!(merge(&old, &input("box"), &all_matched(&old)).changed);
        // The log saw an expunge (a file could be its leftover).
        let mut old = consistent(&[1, 2], vec![Some("$Work".into())]);
        old.log.as_mut().expect("log").expunged.insert(4, 6);
        assert!(unchanged(&old, &input("box")).is_none());
        // The log belongs to another UID validity.
        let mut old = consistent(&[1, 2], vec![Some("$Work".into())]);
        old.log.as_mut().expect("log").header.uid_validity = 10;
        assert!(unchanged(&old, &input("box")).is_none());
        assert!(!merge(&old, &input("box"), &all_matched(&old)).changes.list.is_empty());
        // Not consistent at all.
        let mut old = consistent(&[1, 2], vec![Some("$Work".into())]);
        old.current = None;
        assert!(unchanged(&old, &input("box")).is_none());
    }

    #[test]
    fn letting_go_of_the_log_as_the_files_pass_changes_nothing_in_the_merge() {
        // The index is lost: every record comes from the log, frozen in chunks of 8.
        let uids: Vec<u32> = (1..=100).collect();
        let mut old = consistent(&uids, vec![Some("$Work".into())]);
        let from_log: Vec<MessageRecord> = old
            .index_records
            .values()
            .map(|r| MessageRecord { modseq: 4 + (r.uid % 3) as u64, user_flags: UserFlags((r.uid % 2) as _), ..*r })
            .collect();
        (old.index_records, old.index_header, old.current) = (RecordSet::default(), None, None);
        old.index_problem = Some("ms.index is missing".into());
        let log = old.log.as_mut().expect("log");
        for r in from_log {
            log.state.insert(r.uid, r);
        }
        log.seq = 6;
        log.state.freeze_in(8);
        // Every file but four (gone: in different chunks, two in one), and one new file.
        let gone = [3, 20, 21, 77];
        let info = |uid: u32| FileInfo { uid, size: 100 + uid as u64, mtime: 1_700_000_000 + uid as i64 };
        let mut files: Vec<FileOutcome> =
            uids.iter().filter(|u| !gone.contains(u)).map(|&u| FileOutcome::Matched(info(u))).collect();
        let new = Derived {
            content_hash: [7; 32],
            prefix_hash: 0,
            header_size: 10,
            sent_date: None,
            received_date: None,
            cache: None,
        };
        files.push(FileOutcome::Read(info(101), new));
        let kept = merge(&old, &input("box"), &Outcomes::from(files.clone()));
        let released = merge(&old, &MergeInput { release_log: true, ..input("box") }, &Outcomes::from(files));
        // Everything but the per-kind counts' hash order.
        let seen = |m: &Merged| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                m.records,
                m.changes.list,
                m.changes.elided,
                m.counts,
                m.losses,
                m.header,
                (m.last_uid, m.seq, m.changed)
            )
        };
        assert!(seen(&kept) == seen(&released), "the merge differs when it lets go of the log");
        assert_eq!((kept.counts.dropped, kept.records.len()), (4, 97), "{:?}", kept.counts);
        assert!(kept.records.iter().all(|r| r.modseq >= 4), "states from the log");
        let state = &old.log.as_ref().expect("log").state;
        assert!(state.get(&1).is_none() && state.get(&90).is_none(), "chunks passed were let go of");
        assert!(state.get(&100).is_some(), "the last chunk is kept");
    }
}
