//! What salvage knows of every mailbox identity, from every store file it can read
//! anywhere — the mailboxes' own files, copies in `lost+found` or a backup tree, the loss
//! ledger — recognised by content, never by name: each file says by its magic number
//! what it is, and the mailbox's unique id (in every header, index, log and cache) says
//! whose it is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::codec::changelog::{self, LogRecord};
use crate::codec::header::MailboxHeader;
use crate::codec::index::{self, MessageRecord};
use crate::ledger::{Entry, Kind};

/// A mailbox identity: unique id and UID validity (UIDs mean something only within one).
pub type Id = ([u8; 16], u32);

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `ms.header`.
    Header,
    /// `ms.index`.
    Index,
    /// `ms.cache`.
    Cache,
    /// `ms.log`.
    Log,
    /// A database snapshot (`*.db`).
    DbSnapshot,
    /// A transaction log segment (`log.<n>`).
    DbLog,
    /// A loss ledger.
    Ledger,
    /// A listing cache (nothing to recover from it).
    Listings,
    /// Starts like an RFC 5322 message (a header field).
    Message,
    /// Anything else.
    Other,
}

impl FileKind {
    /// The store file kinds carving finds, by name (the rescue journal's words).
    const NAMED: [(FileKind, &'static str); 3] =
        [(FileKind::Header, "header"), (FileKind::Index, "index"), (FileKind::Log, "log")];

    /// The name of a store file kind carving finds (`header`, `index`, `log`).
    pub fn name(self) -> &'static str {
        Self::NAMED.iter().find(|(k, _)| *k == self).map_or("other", |(_, n)| n)
    }

    /// The kind of a name [`FileKind::name`] gave.
    pub fn from_name(name: &str) -> Option<FileKind> {
        Self::NAMED.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }
}

/// Bytes [`identify`] needs.
pub const IDENTIFY_LEN: usize = 1024;

/// What a file is, from its first bytes (at least the first 1024, or all of a shorter
/// file).
pub fn identify(head: &[u8]) -> FileKind {
    let magic = head.get(..8);
    let is = |m: &[u8; 8]| magic == Some(&m[..]);
    if is(&crate::format::header::MAGIC) {
        FileKind::Header
    } else if is(&crate::format::index::MAGIC) {
        FileKind::Index
    } else if is(&crate::format::cache::MAGIC) {
        FileKind::Cache
    } else if is(&crate::format::changelog::MAGIC) {
        FileKind::Log
    } else if is(&crate::format::dbsnap::MAGIC) {
        FileKind::DbSnapshot
    } else if is(&crate::format::wal::MAGIC) {
        FileKind::DbLog
    } else if is(&crate::format::ledger::MAGIC) {
        FileKind::Ledger
    } else if is(&crate::format::listings::MAGIC) {
        FileKind::Listings
    } else if looks_like_message(head) {
        FileKind::Message
    } else {
        FileKind::Other
    }
}

/// Whether bytes start like an Internet message: a header field (`Name:` with a name of
/// printable ASCII and no space) on the first line, and no NUL in what was looked at.
pub fn looks_like_message(head: &[u8]) -> bool {
    if head.is_empty() || memchr::memchr(0, head).is_some() {
        return false;
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(colon) = memchr::memchr(b':', first) else { return false };
    colon > 0 && colon <= 76 && first[..colon].iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// What is known of one mailbox identity.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Unique id.
    pub unique_id: [u8; 16],
    /// UID validity.
    pub uid_validity: u32,
    /// Domain and mailbox name (stored form), if some source says.
    pub place: Option<(String, String)>,
    /// Highest UID ever assigned (as far as any source knows).
    pub last_uid: u32,
    /// Highest modseq any source knows.
    pub highest_modseq: u64,
    /// Creation time (header), 0 if unknown.
    pub created: i64,
    /// User flag names by slot.
    pub flag_names: Vec<Option<String>>,
    /// The live state of each message: the record with the highest modseq of any source.
    pub records: BTreeMap<u32, MessageRecord>,
    /// Messages some log saw expunged, with the modseq.
    pub expunged: HashMap<u32, u64>,
    /// Outstanding losses of the loss ledger, by UID.
    pub ledger: HashMap<u32, Entry>,
    /// Every file that contributed.
    pub sources: Vec<PathBuf>,
    /// The newest complete checkpoint found (a strictly valid index, or the compacted part
    /// of a log): every message live at its sequence number is in it, so an older record of
    /// a UID it lacks was expunged since (its expunge record compacted away), never lost.
    pub checkpoint: Option<Checkpoint>,
}

/// A complete state of a mailbox at one sequence number.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// Every change up to this sequence number is in it.
    pub seq: u64,
    /// The last UID given at that point.
    pub last_uid: u32,
    /// The UIDs live at that point, sorted.
    pub uids: Vec<u32>,
}

impl Known {
    /// Names of a record's user flags (as this identity names its slots).
    pub fn flag_names_of(&self, r: &MessageRecord) -> Vec<String> {
        r.user_flags
            .slots()
            .map(|s| self.flag_names.get(s).cloned().flatten().unwrap_or_else(|| format!("$RecoveredFlag{s}")))
            .collect()
    }

    fn offer(&mut self, r: MessageRecord) {
        if r.uid == 0 {
            return;
        }
        self.last_uid = self.last_uid.max(r.uid);
        self.highest_modseq = self.highest_modseq.max(r.modseq);
        match self.records.get(&r.uid) {
            Some(old) if old.modseq > r.modseq => {}
            // Equal modseqs: keep the one that knows its content.
            Some(old) if old.modseq == r.modseq && r.content_hash == [0; 32] && old.content_hash != [0; 32] => {}
            _ => {
                self.records.insert(r.uid, r);
            }
        }
    }

    fn name_slot(&mut self, slot: usize, name: &str) {
        if slot >= crate::format::header::MAX_USER_FLAGS || name.is_empty() {
            return;
        }
        if self.flag_names.len() <= slot {
            self.flag_names.resize(slot + 1, None);
        }
        if self.flag_names[slot].is_none() {
            self.flag_names[slot] = Some(name.to_string());
        }
    }

    /// The live records: left out are those an expunge newer than the record removed, and
    /// those a newer complete checkpoint lacks (expunged, the expunge compacted away) — unless
    /// the loss ledger says the record was lost, not expunged.
    pub fn live(&self) -> impl Iterator<Item = &MessageRecord> {
        self.records.values().filter(|r| {
            let lost = self.ledger.get(&r.uid).is_some_and(|e| e.record.content_hash == r.content_hash);
            let expunged = self.expunged.get(&r.uid).is_some_and(|&e| e >= r.modseq);
            let gone = self
                .checkpoint
                .as_ref()
                .is_some_and(|c| r.modseq <= c.seq && r.uid <= c.last_uid && c.uids.binary_search(&r.uid).is_err());
            lost || !(expunged || gone)
        })
    }

    fn offer_checkpoint(&mut self, c: Checkpoint) {
        if self.checkpoint.as_ref().is_none_or(|o| c.seq > o.seq) {
            self.checkpoint = Some(c);
        }
    }
}

/// Everything known, by identity.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// By (unique id, UID validity).
    pub known: BTreeMap<Id, Known>,
    /// Outstanding `RECREATED` entries of the loss ledgers: mailboxes recreated empty.
    pub recreated: Vec<Entry>,
    /// Index records whose identity is unknown (their header is lost), by where they were
    /// found: a header or log in the same directory may name them.
    pub orphan_records: Vec<(PathBuf, Vec<MessageRecord>)>,
}

impl Catalog {
    fn entry(&mut self, id: Id) -> &mut Known {
        self.known.entry(id).or_insert_with(|| Known { unique_id: id.0, uid_validity: id.1, ..Known::default() })
    }

    /// The identities a unique id has (several after a UID validity change).
    pub fn by_unique_id(&self, unique_id: &[u8; 16]) -> impl Iterator<Item = &Known> {
        self.known.values().filter(move |k| &k.unique_id == unique_id)
    }

    /// Add an `ms.header` file.
    pub fn add_header(&mut self, path: &Path, h: &MailboxHeader) {
        let k = self.entry((h.unique_id, h.uid_validity));
        k.place = Some((h.domain.clone(), h.name.clone()));
        k.last_uid = k.last_uid.max(h.last_uid);
        k.highest_modseq = k.highest_modseq.max(h.modseq_ceiling);
        k.created = if k.created == 0 { h.created } else { k.created.min(h.created) };
        for (slot, n) in h.flags.iter().enumerate() {
            if let Some(n) = n {
                k.name_slot(slot, n);
            }
        }
        k.sources.push(path.to_path_buf());
    }

    /// Add an `ms.header` whose flag names are damaged but whose fixed part verifies.
    pub fn add_header_fixed(&mut self, path: &Path, h: &crate::codec::header::HeaderFixedInfo) {
        let k = self.entry((h.unique_id, h.uid_validity));
        k.last_uid = k.last_uid.max(h.last_uid);
        if k.created == 0 {
            k.created = h.created;
        }
        k.sources.push(path.to_path_buf());
    }

    /// Add an `ms.index` (salvaged record by record). Returns how many records were read.
    pub fn add_index(&mut self, path: &Path, bytes: &[u8]) -> usize {
        if let Ok((h, recs)) = index::decode(bytes) {
            let mut uids: Vec<u32> = recs.iter().map(|r| r.uid).collect();
            uids.sort_unstable();
            let k = self.entry((h.unique_id, h.uid_validity));
            k.offer_checkpoint(Checkpoint { seq: h.log_seq.max(h.highest_modseq), last_uid: h.last_uid, uids });
        }
        let s = index::salvage(bytes);
        let n = s.records.len();
        match s.header {
            Some(h) => {
                let k = self.entry((h.unique_id, h.uid_validity));
                k.last_uid = k.last_uid.max(h.last_uid);
                k.highest_modseq = k.highest_modseq.max(h.highest_modseq).max(h.log_seq).max(h.modseq_ceiling);
                for (_, r) in s.records {
                    k.offer(r);
                }
                k.sources.push(path.to_path_buf());
            }
            None if n > 0 => {
                self.orphan_records.push((path.to_path_buf(), s.records.into_iter().map(|(_, r)| r).collect()))
            }
            None => {}
        }
        n
    }

    /// Add an `ms.log`. Returns how many records were read, or `None` if its header is
    /// damaged (nothing in it can be verified).
    pub fn add_log(&mut self, path: &Path, bytes: &[u8]) -> Option<usize> {
        let mut recs = Vec::new();
        let scan = changelog::scan_each(bytes, |_, seq, r| recs.push((seq, r))).ok()?;
        let h = scan.header;
        let k = self.entry((h.unique_id, h.uid_validity));
        let n = recs.len();
        // A log's first records, all at its base sequence number, are a compaction: the
        // whole live state then (a log never compacted, base 0, says nothing of the kind).
        if h.base_seq > 0 && !matches!(scan.end, changelog::LogEnd::Corrupt { .. }) {
            let mut uids: Vec<u32> = recs
                .iter()
                .take_while(|(seq, _)| *seq == h.base_seq)
                .filter_map(|(_, r)| match r {
                    LogRecord::Message(m) => Some(m.uid),
                    _ => None,
                })
                .collect();
            uids.sort_unstable();
            let last = recs
                .iter()
                .take_while(|(seq, _)| *seq == h.base_seq)
                .filter_map(|(_, r)| match r {
                    LogRecord::LastUid { last_uid, .. } => Some(*last_uid),
                    LogRecord::Message(m) => Some(m.uid),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            k.offer_checkpoint(Checkpoint { seq: h.base_seq, last_uid: last, uids });
        }
        for (seq, r) in recs {
            k.highest_modseq = k.highest_modseq.max(seq);
            match r {
                LogRecord::Name { domain, name } => k.place = Some((domain, name)),
                LogRecord::FlagName { slot, name } => k.name_slot(slot as usize, &name),
                LogRecord::Message(m) => k.offer(m),
                LogRecord::Flags { uid, system_flags, user_flags, modseq } => {
                    if let Some(r) = k.records.get_mut(&uid) {
                        if modseq >= r.modseq {
                            r.system_flags = system_flags;
                            r.user_flags = user_flags;
                            r.modseq = modseq;
                        }
                    }
                }
                LogRecord::Expunge { uid, modseq } => {
                    let e = k.expunged.entry(uid).or_insert(modseq);
                    *e = (*e).max(modseq);
                }
                LogRecord::LastUid { last_uid, .. } => k.last_uid = k.last_uid.max(last_uid),
            }
        }
        k.sources.push(path.to_path_buf());
        Some(n)
    }

    /// Add the outstanding losses of a ledger (`LOST` entries: their records are wanted).
    pub fn add_ledger(&mut self, path: &Path, outstanding: &[&Entry]) {
        for e in outstanding {
            let k = self.entry((e.unique_id, e.uid_validity));
            if k.place.is_none() {
                k.place = Some((e.domain.clone(), e.mailbox.clone()));
            }
            if e.kind == Kind::Recreated && !self.recreated.iter().any(|x| x.key() == e.key()) {
                self.recreated.push((*e).clone());
            }
            let k = self.entry((e.unique_id, e.uid_validity));
            if e.kind == Kind::Lost {
                let mut r = e.record;
                // The names travel with the entry: give them slots of this identity.
                r.user_flags = crate::flags::UserFlags(0);
                for n in &e.flag_names {
                    let slot = match k.flag_names.iter().position(|x| x.as_deref() == Some(n.as_str())) {
                        Some(s) => Some(s),
                        None => {
                            let free = (0..crate::format::header::MAX_USER_FLAGS)
                                .find(|&s| k.flag_names.get(s).is_none_or(Option::is_none));
                            if let Some(s) = free {
                                k.name_slot(s, n);
                            }
                            free
                        }
                    };
                    if let Some(s) = slot {
                        r.user_flags.set(s);
                    }
                }
                k.offer(r);
                k.ledger.insert(e.record.uid, (*e).clone());
            }
            if !k.sources.iter().any(|s| s == path) {
                k.sources.push(path.to_path_buf());
            }
        }
    }

    /// Give orphan index records (header lost) to the identity named by a header or log
    /// found in the same directory.
    pub fn adopt_orphans(&mut self) {
        let orphans = std::mem::take(&mut self.orphan_records);
        for (path, recs) in orphans {
            let dir = path.parent().map(Path::to_path_buf);
            let owner = self
                .known
                .iter()
                .filter(|(_, k)| k.sources.iter().any(|s| s.parent().map(Path::to_path_buf) == dir))
                .map(|(id, _)| *id)
                .max_by_key(|id| id.1);
            match owner {
                Some(id) => {
                    let k = self.entry(id);
                    for r in recs {
                        k.offer(r);
                    }
                    k.sources.push(path);
                }
                None => self.orphan_records.push((path, recs)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_by_content() {
        assert_eq!(identify(b"MSHEADER\x01\x00"), FileKind::Header);
        assert_eq!(identify(b"MSCHGLOG"), FileKind::Log);
        assert_eq!(identify(b"MSDBWAL\0xx"), FileKind::DbLog);
        assert_eq!(identify(b"Return-Path: <a@b>\r\nSubject: x\r\n\r\nbody"), FileKind::Message);
        assert_eq!(identify(b"From: a\nTo: b\n\nx"), FileKind::Message);
        assert_eq!(identify(b"\x7fELF\x02\x01"), FileKind::Other);
        assert_eq!(identify(b"just some text\nwith: a colon later"), FileKind::Other);
        assert_eq!(identify(b"X: \0binary"), FileKind::Other);
        assert_eq!(identify(b""), FileKind::Other);
    }

    #[test]
    fn the_newest_record_wins_and_expunges_count() {
        let mut k = Known::default();
        let r = |uid, modseq, flags| MessageRecord {
            uid,
            modseq,
            system_flags: crate::flags::SystemFlags(flags),
            content_hash: [uid as u8; 32],
            ..MessageRecord::default()
        };
        k.offer(r(1, 5, 1));
        k.offer(r(1, 3, 2));
        k.offer(r(2, 1, 0));
        k.expunged.insert(2, 4);
        assert_eq!(k.records[&1].system_flags.0, 1);
        assert_eq!(k.live().map(|r| r.uid).collect::<Vec<_>>(), [1]);
        assert_eq!(k.last_uid, 2);
        assert_eq!(k.highest_modseq, 5);
    }
}
