//! One mailbox: its header, index, cache and change log, read together, and the write
//! protocol of `formats/changelog.md` ("Write protocol") for append, flag changes and
//! expunge.
//!
//! A [`Mailbox`] holds the current state in memory: the index as of its last checkpoint
//! with every later change-log record applied. Writable handles hold the mailbox lock for
//! their whole life.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::changelog::{self, CoverageProbe, LogCoverage, LogEnd, LogHeaderInfo, LogRecord};
use crate::codec::header::MailboxHeader;
use crate::codec::index::{self, IndexHeaderInfo, MessageRecord};
use crate::codec::{FormatError, ReadAt, cache};
use crate::error::{Error, IoContext, Result};
use crate::flags::{DateSource, SystemFlags, UserFlags, valid_user_flag};
use crate::format::header::MAX_USER_FLAGS;
use crate::fs::{self, Fs, FsLock, LockMode, TempFile};
use crate::io::{Bytes, Durability};
use crate::layout::{self, CACHE_FILE, HEADER_FILE, INDEX_FILE, LOG_FILE, MailboxName};
use crate::message::DateTime;
use crate::store::derive::derive;
use crate::util::{now, shell_quote};

/// A message to append.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    /// The message, exactly as it will be stored.
    pub bytes: &'a [u8],
    /// IMAP internal date; `None` means now.
    pub internal_date: Option<DateTime>,
    /// System flags (bits of [`SystemFlags`]).
    pub system_flags: u32,
    /// User flag names.
    pub user_flags: Vec<String>,
}

/// How `store_flags` combines the given flags with the current ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    /// Set these flags, keep the others.
    Add,
    /// Clear these flags, keep the others.
    Remove,
    /// The message's flags become exactly these.
    Replace,
}

/// Identity of a mailbox: where it is and what it is called.
#[derive(Clone, Debug)]
pub struct MailboxPlace {
    /// Domain.
    pub domain: String,
    /// Name.
    pub name: MailboxName,
    /// Partition name.
    pub partition: String,
    /// Directory.
    pub dir: PathBuf,
    /// Configuration file (for the repair commands that errors print).
    pub config_path: PathBuf,
    /// Whether writes are synced.
    pub durability: Durability,
    /// The file system its files are reached through.
    pub fs: Arc<dyn Fs>,
}

impl MailboxPlace {
    /// The command that rebuilds this mailbox.
    pub fn reconstruct_command(&self) -> String {
        format!(
            "reconstruct -f {} {} {}",
            shell_quote(&self.config_path.to_string_lossy()),
            self.domain,
            shell_quote(self.name.as_str())
        )
    }

    /// `domain:name` for messages.
    pub fn label(&self) -> String {
        format!("{}:{}", self.domain, self.name)
    }

    fn needs_repair(&self, reason: String) -> Error {
        Error::NeedsRepair { reason, fix: self.reconstruct_command() }
    }

    fn damaged(&self, file: &str, e: FormatError) -> Error {
        let path = self.dir.join(file);
        self.needs_repair(format!("mailbox {} is damaged: {}", self.label(), e.at(&path)))
    }
}

/// An open mailbox.
#[derive(Debug)]
pub struct Mailbox {
    place: MailboxPlace,
    header: MailboxHeader,
    index: IndexHeaderInfo,
    records: Vec<MessageRecord>,
    last_uid: u32,
    /// Last change-log sequence number applied.
    seq: u64,
    /// Log records past the index's `log_seq`.
    log_tail: usize,
    /// Where the next log record goes (end of the valid records).
    log_end: u64,
    /// `base_seq` of the log file on disk.
    log_base: u64,
    /// Stored CRC of the log's last valid record (what a coverage records).
    log_last_crc: u32,
    /// No modseq above this has been given; raised (header first) before one would be.
    ceiling: u64,
    /// Where the log's torn tail starts, if it ends in one (cut at the next append).
    log_torn: Option<u64>,
    /// The on-disk header lacks flag names that the log holds (its last UID is brought
    /// up to date at checkpoints only: it is a floor, not the truth).
    header_dirty: bool,
    lock: Option<FsLock>,
}

/// Parameters of a new mailbox.
#[derive(Clone, Copy, Debug)]
pub struct CreateParams {
    /// Unique id.
    pub unique_id: [u8; 16],
    /// UID validity.
    pub uid_validity: u32,
    /// Creation time.
    pub created: i64,
}

/// What [`Mailbox::flag_slots`] does with a flag name the mailbox has no slot for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknown {
    /// Give it a free slot (an append or a flag added).
    Assign,
    /// Leave it out (a flag removed: nothing to remove).
    Skip,
}

impl Mailbox {
    /// Create the files of a new, empty mailbox in `place.dir` (made if missing).
    pub fn create(place: MailboxPlace, params: CreateParams) -> Result<Mailbox> {
        let dir = place.dir.clone();
        let dir = &dir;
        let fs = Arc::clone(&place.fs);
        fs.create_dir_all(dir).ctx("create mailbox directory", dir)?;
        if let Some(parent) = dir.parent() {
            fs::sync_dir(&*fs, parent, place.durability).ctx("sync directory", parent)?;
        }
        let lock = fs.lock(dir, LockMode::Exclusive).ctx("lock mailbox", dir)?;
        if fs::exists(&*fs, &dir.join(HEADER_FILE)).ctx("look at", &dir.join(HEADER_FILE))? {
            return Err(Error::Invalid(format!(
                "{} already holds a mailbox header; refusing to overwrite it (run {} to register it)",
                dir.display(),
                place.reconstruct_command()
            )));
        }
        let header = MailboxHeader {
            unique_id: params.unique_id,
            uid_validity: params.uid_validity,
            last_uid: 0,
            created: params.created,
            domain: place.domain.clone(),
            name: place.name.as_str().to_string(),
            flags: Vec::new(),
            log: LogCoverage::default(),
            modseq_ceiling: 0,
        };
        let index = IndexHeaderInfo {
            unique_id: params.unique_id,
            generation: 1,
            uid_validity: params.uid_validity,
            cache_len: crate::format::cache::HEADER_LEN as u64,
            written: now(),
            ..IndexHeaderInfo::default()
        };
        let mut mb = Mailbox {
            place,
            header,
            index,
            records: Vec::new(),
            last_uid: 0,
            seq: 0,
            log_tail: 0,
            log_end: 0,
            log_base: 0,
            log_last_crc: 0,
            ceiling: 0,
            log_torn: None,
            header_dirty: false,
            lock: Some(lock),
        };
        let d = mb.place.durability;
        let cache = cache::encode_header(&params.unique_id, 1);
        fs::atomic_write(&*fs, dir, CACHE_FILE, &cache, d).ctx("write", &dir.join(CACHE_FILE))?;
        mb.write_checkpoint_files()?;
        Ok(mb)
    }

    /// Open for reading (no lock).
    pub fn open(place: MailboxPlace) -> Result<Mailbox> {
        Mailbox::load(place, None)
    }

    /// Open for writing: takes the mailbox lock (waiting for it) and keeps it.
    pub fn open_locked(place: MailboxPlace) -> Result<Mailbox> {
        let lock = match place.fs.lock(&place.dir, LockMode::Exclusive) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(place.needs_repair(format!("mailbox directory {} is missing", place.dir.display())));
            }
            Err(e) => return Err(Error::io("lock mailbox", &place.dir, e)),
        };
        Mailbox::load(place, Some(lock))
    }

    fn read(place: &MailboxPlace, file: &str) -> Result<Bytes> {
        let path = place.dir.join(file);
        place.fs.read_bytes(&path).map_err(|e| Mailbox::read_error(place, path, e))
    }

    /// A store file that cannot be read: missing (a repair is needed), or the I/O error.
    fn read_error(place: &MailboxPlace, path: PathBuf, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            place.needs_repair(format!("mailbox {}: {} is missing", place.label(), path.display()))
        } else {
            Error::io("read", path, e)
        }
    }

    fn load(place: MailboxPlace, lock: Option<FsLock>) -> Result<Mailbox> {
        let header_bytes = Mailbox::read(&place, HEADER_FILE)?;
        // Index and log are opened once and decoded as they are read: a mailbox of a
        // million messages never holds their bytes whole. (Logs are never mapped: an
        // append may truncate a torn tail under a reader.)
        let open = |file: &str| {
            let path = place.dir.join(file);
            place.fs.open_read(&path).map_err(|e| Mailbox::read_error(&place, path, e))
        };
        let (index, log) = (open(INDEX_FILE)?, open(LOG_FILE)?);
        Mailbox::from_sources(place, &header_bytes, &*index, &*log, lock)
    }

    /// Build the state from the bytes of `ms.header`, `ms.index` and `ms.log` (what
    /// [`Mailbox::open`] reads; reconstruct passes the bytes it already holds).
    pub fn from_bytes(
        place: MailboxPlace,
        header_bytes: &[u8],
        index_bytes: &[u8],
        log_bytes: &[u8],
        lock: Option<FsLock>,
    ) -> Result<Mailbox> {
        Mailbox::from_sources(place, header_bytes, &index_bytes, &log_bytes, lock)
    }

    /// [`Mailbox::from_bytes`], with index and log read by offset (open files, decoded a
    /// window at a time).
    pub fn from_sources(
        place: MailboxPlace,
        header_bytes: &[u8],
        index_src: &dyn ReadAt,
        log_src: &dyn ReadAt,
        lock: Option<FsLock>,
    ) -> Result<Mailbox> {
        let read_err = |file: &str, e: std::io::Error| Error::io("read", place.dir.join(file), e);
        let header = MailboxHeader::decode(header_bytes).map_err(|e| place.damaged(HEADER_FILE, e))?;
        let (index, records) = index::decode_source(index_src)
            .map_err(|e| read_err(INDEX_FILE, e))?
            .map_err(|e| place.damaged(INDEX_FILE, e))?;
        if index.unique_id != header.unique_id || index.uid_validity != header.uid_validity {
            return Err(place.needs_repair(format!(
                "mailbox {}: {} belongs to another mailbox or UID validity (it differs from {})",
                place.label(),
                INDEX_FILE,
                HEADER_FILE
            )));
        }
        let log_path = place.dir.join(LOG_FILE);
        // Only the records after the index's checkpoint are kept (a compacted log's
        // records are all at or before it); every record is still verified. The probes
        // watch for the ends of what the index and the header saw of the log.
        let after = index.log_seq;
        let mut tail: Vec<(u64, LogRecord)> = Vec::new();
        let (index_cov, header_cov) = (index.log_coverage(), header.log);
        let mut probes = (CoverageProbe::new(index_cov), CoverageProbe::new(header_cov));
        let scan = changelog::scan_source(log_src, |off, seq, rec| {
            probes.0.see(off, seq);
            probes.1.see(off, seq);
            if seq > after {
                tail.push((seq, rec));
            }
        })
        .map_err(|e| read_err(LOG_FILE, e))?
        .map_err(|e| place.damaged(LOG_FILE, e))?;
        if scan.header.unique_id != header.unique_id {
            return Err(place.needs_repair(format!(
                "mailbox {}: {} belongs to another mailbox (unique id differs from {})",
                place.label(),
                LOG_FILE,
                HEADER_FILE
            )));
        }
        if let LogEnd::Corrupt { offset, error } = &scan.end {
            return Err(place.needs_repair(format!(
                "mailbox {}: {} is corrupt at byte offset {offset}: {error}",
                place.label(),
                log_path.display()
            )));
        }
        if index.log_seq < scan.header.base_seq {
            return Err(place.needs_repair(format!(
                "mailbox {}: {} (log_seq {}) is older than {} (compacted at {})",
                place.label(),
                INDEX_FILE,
                index.log_seq,
                LOG_FILE,
                scan.header.base_seq
            )));
        }
        for (who, cov, probe) in [(INDEX_FILE, &index_cov, &probes.0), (HEADER_FILE, &header_cov, &probes.1)] {
            let crc = changelog::crc_ending_at(log_src, cov.len).map_err(|e| read_err(LOG_FILE, e))?;
            if let Some(p) = probe.check(cov, crc, &scan) {
                return Err(place.needs_repair(format!(
                    "mailbox {}: {} lost committed records: {p} ({who} saw {} bytes up to record {}); the second copy of flags and dates is incomplete",
                    place.label(),
                    log_path.display(),
                    cov.len,
                    cov.seq
                )));
            }
        }
        let log_last_crc = last_record_crc(log_src, scan.valid_end).map_err(|e| read_err(LOG_FILE, e))?;
        let ceiling = index.modseq_ceiling.max(header.modseq_ceiling).max(scan.header.ceiling);
        let mut mb = Mailbox {
            last_uid: index.last_uid.max(header.last_uid),
            seq: index.log_seq,
            place,
            header,
            index,
            records,
            log_tail: 0,
            log_end: scan.valid_end,
            log_base: scan.header.base_seq,
            log_last_crc,
            ceiling,
            log_torn: match scan.end {
                LogEnd::TornTail { offset, .. } => Some(offset),
                _ => None,
            },
            header_dirty: false,
            lock,
        };
        mb.log_tail = tail.len();
        mb.apply(tail);
        Ok(mb)
    }

    /// Apply log records (in order) to the in-memory state.
    fn apply(&mut self, records: Vec<(u64, LogRecord)>) {
        let mut expunged = std::collections::HashSet::new();
        for (seq, rec) in records {
            self.seq = self.seq.max(seq);
            match rec {
                LogRecord::Name { .. } => {}
                LogRecord::FlagName { slot, name } => {
                    let slot = slot as usize;
                    if self.header.flags.len() <= slot {
                        self.header.flags.resize(slot + 1, None);
                    }
                    if self.header.flags[slot].as_deref() != Some(name.as_str()) {
                        self.header.flags[slot] = Some(name);
                        self.header_dirty = true;
                    }
                }
                LogRecord::Message(m) => {
                    expunged.remove(&m.uid);
                    self.last_uid = self.last_uid.max(m.uid);
                    match self.records.binary_search_by_key(&m.uid, |r| r.uid) {
                        Ok(i) => self.records[i] = m,
                        Err(i) => self.records.insert(i, m),
                    }
                }
                LogRecord::Flags { uid, system_flags, user_flags, modseq } => {
                    if let Ok(i) = self.records.binary_search_by_key(&uid, |r| r.uid) {
                        let r = &mut self.records[i];
                        r.system_flags = system_flags;
                        r.user_flags = user_flags;
                        r.modseq = modseq;
                    }
                }
                LogRecord::Expunge { uid, .. } => {
                    expunged.insert(uid);
                }
                LogRecord::LastUid { last_uid, .. } => self.last_uid = self.last_uid.max(last_uid),
            }
        }
        if !expunged.is_empty() {
            self.records.retain(|r| !expunged.contains(&r.uid));
        }
    }

    /// Where the change log's torn tail starts (a last record cut short or damaged, with
    /// nothing valid after it), if it has one.
    pub fn log_torn(&self) -> Option<u64> {
        self.log_torn
    }

    /// The modseq ceiling (no modseq above it has been given).
    pub fn modseq_ceiling(&self) -> u64 {
        self.ceiling
    }

    /// Where and what this mailbox is.
    pub fn place(&self) -> &MailboxPlace {
        &self.place
    }

    /// The header (with flag names replayed from the log).
    pub fn header(&self) -> &MailboxHeader {
        &self.header
    }

    /// The index header as of the last checkpoint.
    pub fn index_header(&self) -> &IndexHeaderInfo {
        &self.index
    }

    /// Current records, sorted by UID.
    pub fn records(&self) -> &[MessageRecord] {
        &self.records
    }

    /// Take the records out, leaving none: for a reader that keeps the state and drops
    /// the mailbox (no copy).
    pub fn take_records(&mut self) -> Vec<MessageRecord> {
        std::mem::take(&mut self.records)
    }

    /// The record of `uid`.
    pub fn record(&self, uid: u32) -> Option<&MessageRecord> {
        self.records.binary_search_by_key(&uid, |r| r.uid).ok().map(|i| &self.records[i])
    }

    /// Highest UID assigned.
    pub fn last_uid(&self) -> u32 {
        self.last_uid
    }

    /// Highest modification sequence.
    pub fn highest_modseq(&self) -> u64 {
        self.seq
    }

    /// UID validity.
    pub fn uid_validity(&self) -> u32 {
        self.header.uid_validity
    }

    /// Names of the user flags set in `flags`.
    pub fn user_flag_names(&self, flags: UserFlags) -> Vec<String> {
        flags
            .slots()
            .map(|i| self.header.flag_name(i).map(str::to_string).unwrap_or_else(|| format!("$slot{i}")))
            .collect()
    }

    /// The message file of `uid`, mapped or read.
    pub fn read_message(&self, uid: u32) -> Result<Bytes> {
        if self.record(uid).is_none() {
            return Err(Error::NoSuchMessage { mailbox: self.place.label(), uid });
        }
        let path = self.message_path(uid);
        self.place.fs.read_bytes(&path).ctx("read message", &path)
    }

    /// Path of the message file of `uid`.
    pub fn message_path(&self, uid: u32) -> PathBuf {
        self.place.dir.join(layout::message_file_name(uid))
    }

    /// The cache file's bytes (decode records with [`cache::decode`] at a record's
    /// `cache_offset`).
    pub fn read_cache(&self) -> Result<Bytes> {
        let path = self.place.dir.join(CACHE_FILE);
        self.place.fs.read_bytes(&path).ctx("read", &path)
    }

    fn writable(&self) -> Result<()> {
        if self.lock.is_none() {
            return Err(Error::Invalid(format!("mailbox {} was opened read-only", self.place.label())));
        }
        Ok(())
    }

    /// Slots for user flag names, assigning free ones to unknown names (or skipping
    /// them); returns the slots and the log records for newly assigned names.
    fn flag_slots(&mut self, names: &[String], unknown: Unknown) -> Result<(UserFlags, Vec<LogRecord>)> {
        let mut set = UserFlags::default();
        let mut new = Vec::new();
        for name in names {
            if !valid_user_flag(name) {
                return Err(Error::InvalidName {
                    what: "flag name",
                    name: name.clone(),
                    reason: "not an IMAP atom".into(),
                });
            }
            let slot = match self.header.flag_slot(name) {
                Some(s) => s,
                None if unknown == Unknown::Skip => continue,
                None => {
                    let free = self.header.flags.iter().position(Option::is_none).unwrap_or(self.header.flags.len());
                    if free >= MAX_USER_FLAGS {
                        return Err(Error::TooManyUserFlags {
                            mailbox: self.place.label(),
                            flag: name.clone(),
                            max: MAX_USER_FLAGS,
                        });
                    }
                    if free == self.header.flags.len() {
                        self.header.flags.push(None);
                    }
                    self.header.flags[free] = Some(name.clone());
                    self.header_dirty = true;
                    new.push(LogRecord::FlagName { slot: free as u8, name: name.clone() });
                    free
                }
            };
            set.set(slot);
        }
        Ok((set, new))
    }

    /// Append messages; returns their UIDs. Durable when this returns.
    pub fn append(&mut self, messages: &[NewMessage<'_>]) -> Result<Vec<u32>> {
        self.append_at(messages, &[])
    }

    /// [`Mailbox::append`], each message at the UID `wanted[i]` where that is above every
    /// UID given so far (else, or when `wanted` has no entry for it, at the next UID), so an
    /// import keeps the UIDs of its source without ever reusing one.
    pub fn append_at(&mut self, messages: &[NewMessage<'_>], wanted: &[Option<u32>]) -> Result<Vec<u32>> {
        self.writable()?;
        // An empty file is not a message: reconstruct drops the record of an empty file,
        // so the store must never make one.
        if let Some(i) = messages.iter().position(|m| m.bytes.is_empty()) {
            return Err(Error::Invalid(format!(
                "mailbox {}: message {} of {} is empty; an empty message cannot be appended",
                self.place.label(),
                i + 1,
                messages.len()
            )));
        }
        let dir = self.place.dir.clone();
        let d = self.place.durability;
        let fs = Arc::clone(&self.place.fs);
        let mut log = Vec::new();
        let mut cache_bytes = Vec::new();
        let cache_path = dir.join(CACHE_FILE);
        let mut cache_file = fs.open_write(&cache_path).ctx("open", &cache_path)?;
        let cache_base = cache_file.size().ctx("stat", &cache_path)?;
        let mut new_records = Vec::with_capacity(messages.len());
        let mut uids = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let (user_flags, names) = self.flag_slots(&m.user_flags, Unknown::Assign)?;
            log.extend(names);
            let date = m.internal_date.unwrap_or(DateTime { unix: now(), offset_minutes: 0 });
            // The next UID whose file does not exist yet (an orphan of an earlier crash
            // keeps its UID; we never replace a message file).
            let mut uid = self.last_uid.checked_add(1).ok_or_else(|| {
                Error::Invalid(format!(
                    "mailbox {} has used every UID; run reconstruct to reset it",
                    self.place.label()
                ))
            })?;
            if let Some(w) = wanted.get(i).copied().flatten() {
                uid = uid.max(w);
            }
            loop {
                let name = layout::message_file_name(uid);
                if fs::create_new_file(&*fs, &dir, &name, m.bytes, Some(date.unix), d)
                    .ctx("create", &dir.join(&name))?
                {
                    break;
                }
                uid = uid.checked_add(1).ok_or_else(|| Error::Invalid("UIDs exhausted".into()))?;
            }
            self.last_uid = uid;
            let derived = derive(uid, m.bytes, super::derive::Received::Skip);
            let cache_offset = cache_base + cache_bytes.len() as u64;
            cache_bytes.extend_from_slice(&derived.cache_record);
            let rec = MessageRecord {
                uid,
                system_flags: SystemFlags(m.system_flags & SystemFlags::ALL),
                user_flags,
                internal_date: date.unix,
                internal_offset: date.offset_minutes,
                date_source: DateSource::Given,
                sent_date: derived.sent_date.map(|d| d.unix),
                sent_offset: derived.sent_date.map(|d| d.offset_minutes).unwrap_or(0),
                header_size: derived.header_size,
                size: derived.size,
                cache_offset,
                cache_len: derived.cache_record.len() as u32,
                modseq: 0,
                content_hash: derived.content_hash,
                prefix_hash: derived.prefix_hash,
            };
            log.push(LogRecord::Message(rec));
            new_records.push(rec);
            uids.push(uid);
        }
        fs::sync_dir(&*fs, &dir, d).ctx("sync directory", &dir)?;
        cache_file.write_at(cache_base, &cache_bytes).ctx("write", &cache_path)?;
        drop(cache_file);
        if uids.last().copied() != Some(self.last_uid) {
            log.push(LogRecord::LastUid { last_uid: self.last_uid, uid_validity: self.header.uid_validity });
        }
        let committed = self.commit_log(log)?;
        self.apply(committed);
        self.maybe_checkpoint()?;
        Ok(uids)
    }

    /// Raise the last UID given to `last_uid` (the UIDs up to it are never given again;
    /// an import keeps its source's next UID so). Returns whether it changed.
    pub fn reserve_uids(&mut self, last_uid: u32) -> Result<bool> {
        self.writable()?;
        if last_uid <= self.last_uid {
            return Ok(false);
        }
        let committed =
            self.commit_log(vec![LogRecord::LastUid { last_uid, uid_validity: self.header.uid_validity }])?;
        self.apply(committed);
        self.maybe_checkpoint()?;
        Ok(true)
    }

    /// Change flags of `uids` (unknown UIDs are ignored). Returns how many messages changed.
    pub fn store_flags(&mut self, uids: &[u32], op: FlagOp, system: u32, user: &[String]) -> Result<usize> {
        self.writable()?;
        let (user_set, mut log) =
            self.flag_slots(user, if op == FlagOp::Remove { Unknown::Skip } else { Unknown::Assign })?;
        let system = system & SystemFlags::ALL;
        let mut changes = 0;
        for &uid in uids {
            let Some(r) = self.record(uid) else { continue };
            let (s, u) = match op {
                FlagOp::Add => (r.system_flags.0 | system, r.user_flags.0 | user_set.0),
                FlagOp::Remove => (r.system_flags.0 & !system, r.user_flags.0 & !user_set.0),
                FlagOp::Replace => (system, user_set.0),
            };
            if s != r.system_flags.0 || u != r.user_flags.0 {
                log.push(LogRecord::Flags { uid, system_flags: SystemFlags(s), user_flags: UserFlags(u), modseq: 0 });
                changes += 1;
            }
        }
        if log.is_empty() {
            return Ok(0);
        }
        let committed = self.commit_log(log)?;
        self.apply(committed);
        self.maybe_checkpoint()?;
        Ok(changes)
    }

    /// Expunge `uids`, or every message flagged `\Deleted` when `None`. Returns the UIDs
    /// expunged. Their files are unlinked once the expunge is committed.
    pub fn expunge(&mut self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        self.writable()?;
        let gone: Vec<u32> = match uids {
            None => self.records.iter().filter(|r| r.system_flags.has(SystemFlags::DELETED)).map(|r| r.uid).collect(),
            Some(list) => {
                let mut v: Vec<u32> = list.iter().copied().filter(|&u| self.record(u).is_some()).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        if gone.is_empty() {
            return Ok(gone);
        }
        let log = gone.iter().map(|&uid| LogRecord::Expunge { uid, modseq: 0 }).collect();
        let committed = self.commit_log(log)?;
        self.apply(committed);
        let fs = &*self.place.fs;
        for &uid in &gone {
            let path = self.message_path(uid);
            match fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove expunged message", path, e)),
            }
        }
        fs::sync_dir(fs, &self.place.dir, self.place.durability).ctx("sync directory", &self.place.dir)?;
        self.maybe_checkpoint()?;
        Ok(gone)
    }

    /// Number each record (seq, and modseq where it carries one), write them at the end of
    /// the valid log, cut any torn tail, and fsync: the commit point.
    fn commit_log(&mut self, records: Vec<LogRecord>) -> Result<Vec<(u64, LogRecord)>> {
        let top = self.seq + records.len() as u64;
        if top > self.ceiling {
            // The header promises no modseq above its ceiling: raise it before giving one.
            self.ceiling = top + self.headroom();
            self.write_header()?;
        }
        let mut bytes = Vec::with_capacity(records.len() * 150);
        let mut out = Vec::with_capacity(records.len());
        let uid = self.header.unique_id;
        for mut rec in records {
            self.seq += 1;
            let seq = self.seq;
            match &mut rec {
                LogRecord::Message(m) => m.modseq = seq,
                LogRecord::Flags { modseq, .. } | LogRecord::Expunge { modseq, .. } => *modseq = seq,
                _ => {}
            }
            out.push((seq, rec));
        }
        // One change: a reader applies all of these records or none.
        changelog::encode_change(&mut bytes, &uid, &out);
        let path = self.place.dir.join(LOG_FILE);
        let mut file = self.place.fs.open_write(&path).ctx("open", &path)?;
        file.write_at(self.log_end, &bytes).ctx("write", &path)?;
        let end = self.log_end + bytes.len() as u64;
        if file.size().ctx("stat", &path)? > end {
            file.set_len(end).ctx("truncate torn tail of", &path)?;
        }
        fs::sync_data(&mut *file, self.place.durability).ctx("sync", &path)?;
        self.log_end = end;
        self.log_torn = None;
        if let Some(c) = bytes.last_chunk::<4>() {
            self.log_last_crc = u32::from_le_bytes(*c);
        }
        self.log_tail += out.len();
        Ok(out)
    }

    fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.log_tail > 1024.max(self.records.len()) {
            self.checkpoint()?;
        }
        if self.header_dirty {
            self.write_header()?;
        }
        Ok(())
    }

    /// Modseqs reserved beyond the current one whenever the ceiling is raised: about two
    /// checkpoint intervals, so that the header is rewritten for it about once per
    /// checkpoint (at the checkpoint itself) and only a very large batch raises it between.
    fn headroom(&self) -> u64 {
        modseq_headroom(self.records.len())
    }

    /// What the log holds now, as a coverage.
    fn log_coverage(&self) -> LogCoverage {
        LogCoverage { base_seq: self.log_base, seq: self.seq, len: self.log_end, crc: self.log_last_crc }
    }

    fn write_header(&mut self) -> Result<()> {
        self.header.last_uid = self.last_uid;
        self.header.log = self.log_coverage();
        self.header.modseq_ceiling = self.ceiling;
        let dir = &self.place.dir;
        fs::atomic_write(&*self.place.fs, dir, HEADER_FILE, &self.header.encode(), self.place.durability)
            .ctx("write", &dir.join(HEADER_FILE))?;
        self.header_dirty = false;
        Ok(())
    }

    /// Record a new name (after the mailbox list renamed it): log record, then header.
    pub fn set_name(&mut self, name: &MailboxName) -> Result<()> {
        self.writable()?;
        if self.header.name == name.as_str() {
            return Ok(());
        }
        self.place.name = name.clone();
        self.header.name = name.as_str().to_string();
        let rec = LogRecord::Name { domain: self.header.domain.clone(), name: self.header.name.clone() };
        self.commit_log(vec![rec])?;
        self.write_header()
    }

    /// Write the index and a compacted log reflecting the current state.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.writable()?;
        let cache_path = self.place.dir.join(CACHE_FILE);
        let mut cache = self.place.fs.open_write(&cache_path).ctx("open", &cache_path)?;
        fs::sync_file(&mut *cache, self.place.durability).ctx("sync", &cache_path)?;
        self.index.cache_len = cache.size().ctx("stat", &cache_path)?;
        self.index.generation += 1;
        self.write_checkpoint_files()?;
        // Always: the header records what it saw of the new log.
        self.write_header()
    }

    /// Write `ms.index` and a compacted `ms.log` (and `ms.header` when new): temp files
    /// synced, index renamed first, then the log, then the directory synced.
    fn write_checkpoint_files(&mut self) -> Result<()> {
        let dir = self.place.dir.clone();
        let d = self.place.durability;
        self.ceiling = self.ceiling.max(self.seq + self.headroom());
        self.header.modseq_ceiling = self.ceiling;
        let log_bytes = compacted_log(&self.header, self.last_uid, self.seq, &self.records);
        let cov = changelog::coverage_of(&log_bytes, self.seq, self.seq);
        self.index.uid_validity = self.header.uid_validity;
        self.index.last_uid = self.last_uid;
        self.index.message_count = self.records.len() as u32;
        self.index.highest_modseq = self.seq;
        self.index.log_seq = self.seq;
        self.index.log_len = cov.len;
        self.index.log_crc = cov.crc;
        self.index.modseq_ceiling = self.ceiling;
        self.index.total_size = self.records.iter().map(|r| r.size).sum();
        self.index.written = now();
        let index_bytes = index::encode(&self.index, &self.records);
        let fs = Arc::clone(&self.place.fs);
        let write_tmp = |name: &str, bytes: &[u8]| -> Result<TempFile<'_>> {
            let mut tmp = TempFile::create(&*fs, &dir, name).ctx("create a temporary file in", &dir)?;
            tmp.write(bytes).ctx("write", tmp.path())?;
            tmp.finish(d).ctx("sync", tmp.path())?;
            Ok(tmp)
        };
        let tmp_index = write_tmp(INDEX_FILE, &index_bytes)?;
        let tmp_log = write_tmp(LOG_FILE, &log_bytes)?;
        let header_path = dir.join(HEADER_FILE);
        if !fs::exists(&*fs, &header_path).ctx("look at", &header_path)? {
            self.header.last_uid = self.last_uid;
            self.header.log = cov;
            self.header.modseq_ceiling = self.ceiling;
            fs::atomic_write(&*fs, &dir, HEADER_FILE, &self.header.encode(), d).ctx("write", &header_path)?;
        }
        let p = tmp_index.path().to_path_buf();
        tmp_index.persist(&dir.join(INDEX_FILE)).ctx("rename", &p)?;
        let p = tmp_log.path().to_path_buf();
        tmp_log.persist(&dir.join(LOG_FILE)).ctx("rename", &p)?;
        fs::sync_dir(&*fs, &dir, d).ctx("sync directory", &dir)?;
        self.log_end = log_bytes.len() as u64;
        self.log_torn = None;
        self.log_base = self.seq;
        self.log_last_crc = cov.crc;
        self.log_tail = 0;
        Ok(())
    }
}

/// The compacted log of a state: header, name, flag names, last UID, one MESSAGE record
/// per live message, all with sequence number `seq`.
pub fn compacted_log(header: &MailboxHeader, last_uid: u32, seq: u64, records: &[MessageRecord]) -> Vec<u8> {
    compacted_log_at(header, last_uid, seq, records, now())
}

/// [`compacted_log`] with the header's `created` time given (to compare with a log
/// already on disk).
pub fn compacted_log_at(
    header: &MailboxHeader,
    last_uid: u32,
    seq: u64,
    records: &[MessageRecord],
    created: i64,
) -> Vec<u8> {
    let uid = header.unique_id;
    let mut out = changelog::encode_header(&LogHeaderInfo {
        unique_id: uid,
        uid_validity: header.uid_validity,
        base_seq: seq,
        created,
        ceiling: header.modseq_ceiling,
    });
    out.reserve(records.len() * 144 + 256);
    changelog::encode_record(
        &mut out,
        &uid,
        seq,
        &LogRecord::Name { domain: header.domain.clone(), name: header.name.clone() },
    );
    for (slot, name) in header.flags.iter().enumerate() {
        if let Some(name) = name {
            changelog::encode_record(
                &mut out,
                &uid,
                seq,
                &LogRecord::FlagName { slot: slot as u8, name: name.clone() },
            );
        }
    }
    changelog::encode_record(&mut out, &uid, seq, &LogRecord::LastUid { last_uid, uid_validity: header.uid_validity });
    for r in records {
        changelog::encode_record(&mut out, &uid, seq, &LogRecord::Message(*r));
    }
    out
}

/// Modseqs a mailbox of `records` messages reserves above its current one whenever it
/// raises its ceiling (`formats/header.md`, "modseq_ceiling"): two checkpoint intervals.
pub fn modseq_headroom(records: usize) -> u64 {
    2 * 1024u64.max(records as u64)
}

/// The stored CRC of the record that ends at `end` of `bytes` (its last 4 bytes), 0 if
/// nothing follows the log header.
fn last_record_crc(log: &dyn ReadAt, end: u64) -> std::io::Result<u32> {
    if end <= crate::format::changelog::HEADER_LEN as u64 {
        return Ok(0);
    }
    Ok(changelog::crc_ending_at(log, end)?.map_or(0, u32::from_le_bytes))
}

/// The coverage of [`compacted_log`]`(header, last_uid, seq, records)`, computed without
/// building it: its length and the CRC of its last record.
pub fn compacted_log_coverage(
    header: &MailboxHeader,
    last_uid: u32,
    seq: u64,
    records: &[MessageRecord],
) -> LogCoverage {
    let prefix = compacted_log_at(header, last_uid, seq, &[], 0);
    let crc_of = |b: &[u8]| b.last_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
    let (len, crc) = match records.last() {
        None => (prefix.len() as u64, crc_of(&prefix)),
        Some(last) => {
            let mut one = Vec::with_capacity(144);
            changelog::encode_record(&mut one, &header.unique_id, seq, &LogRecord::Message(*last));
            (prefix.len() as u64 + one.len() as u64 * records.len() as u64, crc_of(&one))
        }
    };
    LogCoverage { base_seq: seq, seq, len, crc }
}

/// Whether `path` is a mailbox directory with a header file.
pub fn has_header(dir: &Path) -> bool {
    dir.join(HEADER_FILE).exists()
}
