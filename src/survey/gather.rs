//! Gather what a mailbox's old files still hold — every part that verifies, record by
//! record — and list its directory. Nothing here reads a message file.

use std::fs::File;
use std::path::Path;

use crate::codec::changelog::{self, LogEnd, LogHeaderInfo, LogRecord};
use crate::codec::header::{self, HeaderFixedInfo, MailboxHeader};
use crate::codec::index::{self, IndexHeaderInfo, MessageRecord};
use crate::codec::{FormatError, ReadAt, cache};
use crate::io::{Contents, FileSource, ReadBuf};
use crate::layout::{self, CACHE_FILE, EntryKind, HEADER_FILE, INDEX_FILE, LOG_FILE};
use crate::store::{Mailbox, MailboxPlace};

/// A map keyed by UID (FxHash: UIDs are small integers from our own files, and these
/// maps are probed once or twice per message).
pub type UidMap<V> = std::collections::HashMap<u32, V, rustc_hash::FxBuildHasher>;

/// Index records by UID: sorted, one per UID, looked up by binary search. An index is
/// already in UID order, so a consistent mailbox's records are taken as they are, with no
/// copy and no hashing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordSet(Vec<MessageRecord>);

impl RecordSet {
    /// From records in any order; of two records with the same UID the later one wins.
    pub fn from_unsorted(mut v: Vec<MessageRecord>) -> RecordSet {
        if !v.is_sorted_by(|a, b| a.uid < b.uid) {
            // Reverse, then a stable sort and a dedup that keeps the first of equals:
            // the last record of each UID in the original order survives.
            v.reverse();
            v.sort_by_key(|r| r.uid);
            v.dedup_by_key(|r| r.uid);
        }
        RecordSet(v)
    }
    /// The record of `uid`.
    pub fn get(&self, uid: &u32) -> Option<&MessageRecord> {
        position(&self.0, *uid).map(|i| &self.0[i])
    }
    /// Whether `uid` has a record.
    pub fn contains_key(&self, uid: &u32) -> bool {
        self.get(uid).is_some()
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// No record.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The records, in UID order.
    pub fn values(&self) -> std::slice::Iter<'_, MessageRecord> {
        self.0.iter()
    }
    /// Their UIDs, ascending.
    pub fn uids(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|r| r.uid)
    }
    /// The highest UID with a record.
    pub fn last_uid(&self) -> Option<u32> {
        self.0.last().map(|r| r.uid)
    }
    /// The records, in UID order.
    pub fn as_slice(&self) -> &[MessageRecord] {
        &self.0
    }
    /// The records, in UID order, taken.
    pub fn into_vec(self) -> Vec<MessageRecord> {
        self.0
    }
}

/// Where `uid` is in `recs` (sorted by UID, one record per UID). UIDs are mostly dense, so
/// `uid - first` is tried first: one memory access where a binary search over a large
/// mailbox's records makes a dozen dependent ones, each a likely cache miss (a worker
/// looks up every file it reads). Record `i` has a UID of at least `first + i`, so a miss
/// there leaves only the records before it to search.
fn position(recs: &[MessageRecord], uid: u32) -> Option<usize> {
    let guess = uid.checked_sub(recs.first()?.uid)? as usize;
    match recs.get(guess) {
        Some(r) if r.uid == uid => Some(guess),
        _ => recs[..guess.min(recs.len())].binary_search_by_key(&uid, |r| r.uid).ok(),
    }
}

/// The messages a log knows as live, by UID. While the log is replayed: their records in
/// one vector and a table from UID to position (16 bytes per message besides the record;
/// a table of whole records would be sized in powers of two of 136-byte entries, 288 MB
/// for a log of a million messages). Once replayed ([`LogState::freeze`]): the records
/// alone, sorted by UID in chunks of [`CHUNK`], looked up by binary search (the table, 34 MB
/// at a million messages, is let go), which a merge that has passed them lets go of
/// ([`LogState::release_below`]): a rebuild never holds the log's records and the new
/// ones whole at once.
#[derive(Debug, Default)]
pub struct LogState {
    recs: Vec<MessageRecord>,
    at: UidMap<usize>,
    /// Frozen: the records in UID order, a chunk at a time (`recs` and `at` empty).
    chunks: Vec<parking_lot::RwLock<Box<[MessageRecord]>>>,
    /// The first UID of each chunk.
    firsts: Vec<u32>,
    /// Live records when frozen (released ones included).
    frozen_len: usize,
    frozen: bool,
}

/// Records per chunk of a frozen [`LogState`] (8 MiB: above `io::MMAP_FROM`, so that a
/// chunk let go of goes back to the system).
const CHUNK: usize = 65_536;

impl Clone for LogState {
    fn clone(&self) -> LogState {
        LogState {
            recs: self.recs.clone(),
            at: self.at.clone(),
            chunks: self.chunks.iter().map(|c| parking_lot::RwLock::new(c.read().clone())).collect(),
            firsts: self.firsts.clone(),
            frozen_len: self.frozen_len,
            frozen: self.frozen,
        }
    }
}

impl LogState {
    /// Room for `n` messages.
    fn reserve(&mut self, n: usize) {
        self.recs.reserve(n);
        self.at.reserve(n);
    }

    /// Sort the live records by UID into chunks and let go of the table and of the
    /// forgotten records.
    pub fn freeze(&mut self) {
        self.freeze_in(CHUNK);
    }

    /// [`LogState::freeze`] in chunks of `chunk` records (tests use small ones).
    pub(crate) fn freeze_in(&mut self, chunk: usize) {
        let chunk = chunk.max(1);
        if self.frozen {
            return;
        }
        let mut recs = std::mem::take(&mut self.recs);
        self.at = UidMap::default();
        recs.retain(|r| r.uid != 0);
        // One record per UID: an unstable sort, in place.
        recs.sort_unstable_by_key(|r| r.uid);
        self.frozen_len = recs.len();
        // Chunks cut from the end, so that the vector shrinks as they are made.
        let mut chunks = Vec::with_capacity(recs.len().div_ceil(chunk));
        while !recs.is_empty() {
            let at = (recs.len() - 1) / chunk * chunk;
            chunks.push(recs.split_off(at).into_boxed_slice());
            recs.shrink_to(at);
        }
        chunks.reverse();
        self.firsts = chunks.iter().map(|c| c[0].uid).collect();
        self.chunks = chunks.into_iter().map(parking_lot::RwLock::new).collect();
        self.frozen = true;
    }

    /// Back to the replay's form (to change a frozen state, which nothing does but tests).
    fn thaw(&mut self) {
        if !self.frozen {
            return;
        }
        let recs: Vec<MessageRecord> = self.values().collect();
        *self = LogState::default();
        for r in recs {
            self.insert(r.uid, r);
        }
    }

    /// Let go of the records of UIDs below `uid` (a frozen state's whole chunks): a
    /// merge that has passed them. They are no longer found, though still counted.
    pub fn release_below(&self, uid: u32) {
        let whole = self.firsts.partition_point(|&f| f < uid).saturating_sub(1);
        for c in &self.chunks[..whole] {
            if !c.read().is_empty() {
                *c.write() = Box::new([]);
            }
        }
    }

    /// The record of `uid`.
    pub fn get(&self, uid: &u32) -> Option<MessageRecord> {
        if self.frozen {
            let c = self.firsts.partition_point(|&f| f <= *uid).checked_sub(1)?;
            let chunk = self.chunks[c].read();
            return position(&chunk, *uid).map(|i| chunk[i]);
        }
        self.at.get(uid).map(|&i| self.recs[i])
    }

    /// The record of `uid`, to change.
    pub fn get_mut(&mut self, uid: &u32) -> Option<&mut MessageRecord> {
        self.thaw();
        self.at.get(uid).map(|&i| &mut self.recs[i])
    }

    /// Whether `uid` is live.
    pub fn contains_key(&self, uid: &u32) -> bool {
        self.get(uid).is_some()
    }

    /// Set the record of `uid` (`r.uid`).
    pub fn insert(&mut self, uid: u32, r: MessageRecord) {
        self.thaw();
        match self.at.get(&uid) {
            Some(&i) => self.recs[i] = r,
            None => {
                self.at.insert(uid, self.recs.len());
                self.recs.push(r);
            }
        }
    }

    /// Forget `uid` (its record stays in the vector, unreachable, marked with UID 0: a
    /// record a log can never hold).
    pub fn remove(&mut self, uid: &u32) {
        self.thaw();
        if let Some(i) = self.at.remove(uid) {
            self.recs[i].uid = 0;
        }
    }

    /// Live messages.
    pub fn len(&self) -> usize {
        if self.frozen { self.frozen_len } else { self.at.len() }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live records (those not released): in the order the log first gave each, in
    /// UID order once frozen.
    pub fn values(&self) -> impl Iterator<Item = MessageRecord> + '_ {
        let replayed = self.recs.iter().filter(|r| r.uid != 0).copied();
        let frozen = self.chunks.iter().flat_map(|c| c.read().to_vec());
        replayed.chain(frozen)
    }

    /// The live UIDs.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.values().map(|r| r.uid)
    }

    /// The live records in UID order, taken: a frozen state's chunks are freed one by one
    /// as they are passed.
    pub fn into_sorted(mut self) -> impl Iterator<Item = MessageRecord> {
        self.freeze();
        self.chunks.into_iter().flat_map(|c| c.into_inner().into_vec())
    }
}

/// What the change log says, replayed from every record that verifies.
#[derive(Clone, Debug, Default)]
pub struct LogView {
    /// Its header.
    pub header: LogHeaderInfo,
    /// State of each message the log knows as live.
    pub state: LogState,
    /// Messages the log saw expunged, with the modseq of the expunge.
    pub expunged: UidMap<u64>,
    /// User flag names by slot.
    pub flag_names: Vec<Option<String>>,
    /// Highest UID the log knows of.
    pub last_uid: u32,
    /// Whether a LAST_UID record was read (every compaction writes one): without it the
    /// log does not know the last UID, only a floor.
    pub saw_last_uid: bool,
    /// Highest sequence number.
    pub seq: u64,
    /// Domain and name, from the last NAME record.
    pub name: Option<(String, String)>,
    /// Flag changes of messages whose MESSAGE record did not survive: (modseq, system
    /// flags, user flags) of the newest, by UID. Applied over the index record when it is
    /// older (`gather`).
    pub flags_only: UidMap<(u64, crate::flags::SystemFlags, crate::flags::UserFlags)>,
}

/// The cache file, as far as a cheap look tells.
#[derive(Clone, Debug, Default)]
pub struct CacheView {
    /// Header verifies and belongs to this mailbox, and the file is at least as long as
    /// the index says.
    pub usable: bool,
    /// Why not.
    pub problem: Option<String>,
    /// Current length.
    pub len: u64,
    /// Unique id in its header.
    pub unique_id: Option<[u8; 16]>,
}

/// Everything the old files of a mailbox still hold.
#[derive(Debug, Default)]
pub struct OldState {
    /// The header file, if it verifies completely.
    pub header: Option<MailboxHeader>,
    /// Its fixed part, if that verifies.
    pub header_fixed: Option<HeaderFixedInfo>,
    /// What is wrong with the header file, if anything.
    pub header_problem: Option<String>,
    /// The index header, if it verifies.
    pub index_header: Option<IndexHeaderInfo>,
    /// Index records whose checksum holds, by UID.
    pub index_records: RecordSet,
    /// What is wrong with the index, if anything (`None`: strictly valid).
    pub index_problem: Option<String>,
    /// The index decoded whole, every record (it may still disagree with header and log).
    pub index_decodes: bool,
    /// The change log's view, if its header verifies.
    pub log: Option<LogView>,
    /// What is wrong with the log, if anything (a torn tail alone is not a problem).
    pub log_problem: Option<String>,
    /// Where the log's torn tail starts, if it ends in one (a last record cut short or
    /// damaged with nothing valid after it).
    pub log_torn: Option<u64>,
    /// The kind byte of the torn record, if its head was still there.
    pub log_torn_kind: Option<u8>,
    /// Whether the log lacks records that the index or header saw in it (cut or altered
    /// inside what was committed; `log_problem` says how).
    pub log_short: bool,
    /// The cache.
    pub cache: CacheView,
    /// Set when header, index and log are all consistent (what [`Mailbox::open`]
    /// accepts): `index_records` is then the exact live state (index + log tail).
    pub current: Option<Current>,
}

/// A consistent mailbox's live state, besides its records (which are `index_records`).
#[derive(Clone, Debug)]
pub struct Current {
    /// The header, flag names replayed from the log.
    pub header: MailboxHeader,
    /// The index header.
    pub index: IndexHeaderInfo,
    /// Last UID.
    pub last_uid: u32,
    /// Highest sequence number applied.
    pub seq: u64,
}

/// What the directory holds.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Message files: (uid, file name).
    pub messages: Vec<u32>,
    /// Temporary files of interrupted writes.
    pub temps: Vec<String>,
    /// Entries that are neither messages, store files nor sub-mailboxes.
    pub strays: Vec<String>,
    /// Which store files exist.
    pub has_header: bool,
    /// `ms.index` exists.
    pub has_index: bool,
    /// `ms.cache` exists.
    pub has_cache: bool,
    /// `ms.log` exists.
    pub has_log: bool,
}

/// The index problem of an index that verifies on its own but does not fit header and log.
const INDEX_MISMATCH: &str = "ms.index does not match ms.header or ms.log";

/// What is wrong with a damaged file: its full path, the error and the byte offset.
fn describe(dir: &Path, file: &str, e: &FormatError) -> String {
    format!("{}: {e} (byte offset {})", dir.join(file).display(), e.offset())
}

/// List a mailbox directory (file types come from the listing; nothing is stat'ed).
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    list_with(dir, |_| {})
}

/// [`list`], also handing each sub-mailbox directory's name to `subdir`. Entries are read
/// with `getdents64` into one buffer (no allocation per entry); types come from the
/// entries, and only a file system that does not report them costs a `statx` per entry.
pub fn list_with(dir: &Path, mut subdir: impl FnMut(&str)) -> std::io::Result<Listing> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, StatxFlags};
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = [const { std::mem::MaybeUninit::<u8>::uninit() }; 32 * 1024];
    let mut entries = RawDir::new(&fd, &mut buf);
    let mut l = Listing::default();
    while let Some(e) = entries.next() {
        let e = e?;
        let cname = e.file_name();
        let bytes = cname.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let kind = || match e.file_type() {
            FileType::Unknown => rustix::fs::statx(&fd, cname, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE)
                .map(|st| FileType::from_raw_mode(st.stx_mode.into()))
                .unwrap_or(FileType::Unknown),
            t => t,
        };
        let text = || String::from_utf8_lossy(bytes).into_owned();
        match layout::classify(bytes) {
            EntryKind::Message(uid) => {
                if kind() == FileType::RegularFile {
                    l.messages.push(uid);
                } else {
                    l.strays.push(text());
                }
            }
            EntryKind::StoreFile => match bytes {
                b"ms.header" => l.has_header = true,
                b"ms.index" => l.has_index = true,
                b"ms.cache" => l.has_cache = true,
                b"ms.log" => l.has_log = true,
                _ => {}
            },
            EntryKind::Temp => l.temps.push(text()),
            EntryKind::SubMailbox => {
                if kind() == FileType::Directory {
                    subdir(&text());
                } else {
                    l.strays.push(text());
                }
            }
            EntryKind::Stray => l.strays.push(text()),
        }
    }
    l.messages.sort_unstable();
    l.temps.sort();
    l.strays.sort();
    Ok(l)
}

/// Open `name` in the mailbox directory: relative to its open descriptor when there is
/// one (no path walk), else by path.
fn open_in(dir: &Path, fd: Option<&File>, name: &str) -> std::io::Result<File> {
    match fd {
        Some(d) => crate::io::open_at(d, name),
        // Never through a link, as by descriptor (verify reads without a directory fd).
        None => {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            Ok(File::from(rustix::fs::open(dir.join(name), flags, Mode::empty())?))
        }
    }
}

/// Read a whole store file into `buf` (mapped instead if `map` allows and it is large).
fn read_file<'b>(f: &File, map: crate::io::Map, buf: &'b mut ReadBuf) -> std::io::Result<Contents<'b>> {
    // Its real content, not its apparent size: a sparse file stops at a hole.
    let len = crate::io::content_len(f)?;
    crate::io::read_file_into(f, len, map, buf)
}

/// What cannot be read, described with its path.
fn cannot_read(dir: &Path, name: &str, e: &std::io::Error) -> String {
    let path = dir.join(name);
    format!("cannot read {}: {}", path.display(), crate::error::describe_io(e, &path))
}

/// Read the header file into `buf`, with a missing file as `None` and other errors
/// described.
fn read_opt<'b>(
    dir: &Path,
    fd: Option<&File>,
    name: &str,
    buf: &'b mut ReadBuf,
) -> std::result::Result<Option<Contents<'b>>, String> {
    match open_in(dir, fd, name).and_then(|f| read_file(&f, crate::io::Map::Never, buf)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cannot_read(dir, name, &e)),
    }
}

/// Open a store file to be read a window at a time.
fn open_source(dir: &Path, fd: Option<&File>, name: &str) -> std::io::Result<FileSource> {
    FileSource::new(open_in(dir, fd, name)?)
}

impl LogView {
    /// An empty view, its table sized for a log of `log_len` bytes of message records at
    /// most (sized once, so it never holds its old and new buckets at the same time while
    /// it grows; the length is the file's real content, not a count read from it).
    fn sized_for(log_len: u64) -> LogView {
        let mut v = LogView::default();
        v.state.reserve((log_len / MESSAGE_RECORD_LEN).min(u32::MAX as u64) as usize);
        v
    }

    /// Apply one verified record, in log order.
    fn apply(&mut self, seq: u64, rec: LogRecord) {
        let v = self;
        v.seq = v.seq.max(seq);
        match rec {
            LogRecord::Name { domain, name } => v.name = Some((domain, name)),
            LogRecord::FlagName { slot, name } => {
                let slot = slot as usize;
                if v.flag_names.len() <= slot {
                    v.flag_names.resize(slot + 1, None);
                }
                v.flag_names[slot] = Some(name);
            }
            LogRecord::Message(m) => {
                v.last_uid = v.last_uid.max(m.uid);
                if v.flags_only.get(&m.uid).is_some_and(|f| f.0 <= m.modseq) {
                    v.flags_only.remove(&m.uid);
                }
                if v.expunged.get(&m.uid).is_none_or(|&e| e < m.modseq) {
                    v.expunged.remove(&m.uid);
                }
                v.state.insert(m.uid, m);
            }
            LogRecord::Flags { uid, system_flags, user_flags, modseq } => {
                if let Some(r) = v.state.get_mut(&uid) {
                    if modseq >= r.modseq {
                        r.system_flags = system_flags;
                        r.user_flags = user_flags;
                        r.modseq = modseq;
                    }
                } else if v.flags_only.get(&uid).is_none_or(|f| f.0 <= modseq) {
                    v.flags_only.insert(uid, (modseq, system_flags, user_flags));
                }
            }
            LogRecord::Expunge { uid, modseq } => {
                if v.flags_only.get(&uid).is_some_and(|f| f.0 <= modseq) {
                    v.flags_only.remove(&uid);
                }
                if v.state.get(&uid).is_none_or(|r| r.modseq <= modseq) {
                    v.state.remove(&uid);
                    v.expunged.insert(uid, modseq);
                }
            }
            LogRecord::LastUid { last_uid, .. } => {
                v.last_uid = v.last_uid.max(last_uid);
                v.saw_last_uid = true;
            }
        }
    }
}

/// Bytes of one MESSAGE record of a log (head, body, CRC): the most a log of `n` bytes
/// can describe is `n` over this.
const MESSAGE_RECORD_LEN: u64 = (16 + crate::format::changelog::MESSAGE_BODY_LEN + 4) as u64;

/// Replay every verified record of a log, read a window at a time: the outer error is the
/// read's, the inner one the log header's.
fn replay_source(
    log: &dyn ReadAt,
    mut also: impl FnMut(u64, u64),
) -> std::io::Result<std::result::Result<(changelog::LogScan, LogView), FormatError>> {
    let mut v = LogView::sized_for(log.len());
    let scan = changelog::scan_source(log, |off, seq, rec| {
        also(off, seq);
        v.apply(seq, rec);
    })?;
    Ok(scan.map(|scan| {
        v.header = scan.header.clone();
        (scan, v)
    }))
}

/// Read and salvage a mailbox's header, index, log and cache header.
///
/// Fast path: when header, index and log are all consistent (what [`Mailbox::open`]
/// accepts), each is decoded once and the live state stands in for both the index and the
/// log (they agree). The log is replayed record by record only when that fails, or when a
/// message file has no live record (it may be the leftover of an interrupted expunge).
///
/// `dir_fd`, the mailbox directory opened (the lock's), lets files be opened relative to
/// it. Index and log are decoded as they are read, a window at a time; the header (and a
/// damaged index, to be salvaged) is read into buffers each thread keeps from mailbox to
/// mailbox.
pub fn gather(place: &MailboxPlace, listing: &Listing, dir_fd: Option<&File>) -> OldState {
    thread_local! {
        static BUFS: std::cell::RefCell<[ReadBuf; 2]> = std::cell::RefCell::default();
    }
    BUFS.with_borrow_mut(|bufs| {
        let [hb, ib] = bufs;
        let st = gather_in(place, listing, dir_fd, hb, ib);
        // A buffer grown by a huge mailbox is not kept for the rest of the run.
        for b in bufs.iter_mut().filter(|b| b.capacity() > 4 << 20) {
            *b = ReadBuf::default();
        }
        st
    })
}

fn gather_in(
    place: &MailboxPlace,
    listing: &Listing,
    fd: Option<&File>,
    hb: &mut ReadBuf,
    ib: &mut ReadBuf,
) -> OldState {
    let dir = &place.dir;
    let mut st = OldState::default();
    let header_bytes = read_opt(dir, fd, HEADER_FILE, hb);
    let index = open_source(dir, fd, INDEX_FILE);
    // Logs are read, never mapped (an append may truncate a torn tail under a reader).
    let log = open_source(dir, fd, LOG_FILE);
    st.cache = cache_view(dir, fd);

    if let (Ok(Some(h)), Ok(i), Ok(l)) = (&header_bytes, &index, &log) {
        if let Some(consistent) = gather_consistent(place, listing, h, i, l, st.cache.clone()) {
            return consistent;
        }
    }
    gather_header(&mut st, dir, header_bytes);
    gather_index(&mut st, dir, index, ib);
    gather_log(&mut st, dir, log);
    let id = st.header_fixed.as_ref().map(|h| h.unique_id).or(st.index_header.as_ref().map(|h| h.unique_id));
    if let Some(id) = id {
        st.cache_check(id);
    } else {
        st.cache.usable = false;
        st.cache.problem.get_or_insert_with(|| format!("{CACHE_FILE} cannot be checked without a header"));
    }
    st
}

/// A consistent mailbox (header, index and log open as a [`Mailbox`]): its live state,
/// with the log kept for what it alone knows (expunges, names) when some listed file has
/// no record. `None` when they do not open together.
fn gather_consistent(
    place: &MailboxPlace,
    listing: &Listing,
    h: &[u8],
    i: &FileSource,
    l: &FileSource,
    cache: CacheView,
) -> Option<OldState> {
    let mut st = OldState { cache, ..OldState::default() };
    let mut mb = Mailbox::from_sources(place.clone(), h, i, l, None).ok()?;
    let all_live = listing.messages.iter().all(|u| mb.record(*u).is_some());
    st.log_torn = mb.log_torn();
    st.log_torn_kind = st.log_torn.and_then(|o| torn_kind(l, o));
    let header = mb.header().clone();
    st.header_fixed = Some(header.fixed_info());
    st.index_header = Some(mb.index_header().clone());
    st.index_records = RecordSet::from_unsorted(mb.take_records());
    let mut head = [0u8; crate::format::changelog::HEADER_LEN];
    let log_header = match l.read_at(0, &mut head) {
        Ok(_) => changelog::decode_header(&head).unwrap_or_default(),
        Err(_) => LogHeaderInfo::default(),
    };
    st.log = Some(if all_live {
        LogView {
            header: log_header,
            flag_names: header.flags.clone(),
            last_uid: mb.last_uid(),
            saw_last_uid: true,
            seq: mb.highest_modseq(),
            name: Some((header.domain.clone(), header.name.clone())),
            ..LogView::default()
        }
    } else {
        match replay_source(l, |_, _| {}) {
            Ok(Ok((_, mut v))) => {
                // The live state already holds every record; keep the log for what it
                // alone knows (expunges, names).
                v.state = LogState::default();
                v
            }
            _ => LogView { header: log_header, ..LogView::default() },
        }
    });
    st.cache_check(header.unique_id);
    st.current = Some(Current {
        header: header.clone(),
        index: mb.index_header().clone(),
        last_uid: mb.last_uid(),
        seq: mb.highest_modseq(),
    });
    st.header = Some(header);
    Some(st)
}

/// The header as the old files have it, or why not.
fn gather_header(st: &mut OldState, dir: &Path, header_bytes: std::result::Result<Option<Contents<'_>>, String>) {
    match header_bytes {
        Err(e) => st.header_problem = Some(e),
        Ok(None) => st.header_problem = Some(format!("{HEADER_FILE} is missing")),
        Ok(Some(b)) => match MailboxHeader::decode(&b) {
            Ok(h) => {
                st.header_fixed = Some(h.fixed_info());
                st.header = Some(h);
            }
            Err(e) => {
                st.header_problem = Some(describe(dir, HEADER_FILE, &e));
                st.header_fixed = header::decode_fixed(&b).ok();
            }
        },
    }
}

/// The index records, salvaged record by record if the index is damaged, or why not.
/// A sound index is decoded as it is read; a damaged one is read whole (into `buf`) to be
/// salvaged.
fn gather_index(st: &mut OldState, dir: &Path, index: std::io::Result<FileSource>, buf: &mut ReadBuf) {
    let decoded = index.and_then(|src| Ok((index::decode_source(&src)?, src)));
    match decoded {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            st.index_problem = Some(format!("{INDEX_FILE} is missing"))
        }
        Err(e) => st.index_problem = Some(cannot_read(dir, INDEX_FILE, &e)),
        Ok((Ok((h, recs)), _)) => {
            st.index_header = Some(h);
            st.index_records = RecordSet::from_unsorted(recs);
            st.index_decodes = true;
            // Strictly valid on its own, yet not consistent with header and log.
            st.index_problem = Some(INDEX_MISMATCH.to_string());
        }
        Ok((Err(e), src)) => {
            st.index_problem = Some(describe(dir, INDEX_FILE, &e));
            match read_file(src.file(), crate::io::Map::Allow, buf) {
                Ok(b) => {
                    let s = index::salvage(&b);
                    st.index_header = s.header;
                    st.index_records = RecordSet::from_unsorted(s.records.into_iter().map(|(_, r)| r).collect());
                }
                Err(e) => st.index_problem = Some(cannot_read(dir, INDEX_FILE, &e)),
            }
        }
    }
}

/// What the change log holds, replayed past a torn tail (a window at a time), and whether
/// it lost what index or header saw.
fn gather_log(st: &mut OldState, dir: &Path, log: std::io::Result<FileSource>) {
    let log = match log {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            st.log_problem = Some(format!("{LOG_FILE} is missing"));
            return;
        }
        Err(e) => {
            st.log_problem = Some(cannot_read(dir, LOG_FILE, &e));
            return;
        }
    };
    let mut watch = CoverageWatch::of(st);
    let (scan, mut view) = match replay_source(&log, |off, seq| watch.see(off, seq)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            st.log_problem = Some(describe(dir, LOG_FILE, &e));
            return;
        }
        Err(e) => {
            st.log_problem = Some(cannot_read(dir, LOG_FILE, &e));
            return;
        }
    };
    match &scan.end {
        LogEnd::Clean => {}
        LogEnd::TornTail { offset, .. } => {
            st.log_torn = Some(*offset);
            st.log_torn_kind = torn_kind(&log, *offset);
        }
        LogEnd::Corrupt { offset, error } => {
            st.log_problem = Some(format!("{}: {error} (byte offset {offset})", dir.join(LOG_FILE).display()))
        }
    }
    if st.log_problem.is_none() {
        match watch.problem(&log, &scan) {
            Err(e) => st.log_problem = Some(cannot_read(dir, LOG_FILE, &e)),
            Ok(p) => {
                st.log_problem = p.map(|(who, cov, p)| {
                    format!(
                        "{}: {p} ({who} saw {} bytes up to record {}): changes committed there may be lost",
                        dir.join(LOG_FILE).display(),
                        cov.len,
                        cov.seq
                    )
                });
                st.log_short = st.log_problem.is_some();
            }
        }
        if st.log_short && st.index_problem.as_deref() == Some(INDEX_MISMATCH) {
            // The index is sound: it is the log that lost what it saw.
            st.index_problem = None;
        }
    }
    // A flag change whose message's MESSAGE record was lost still applies over an older
    // index record of the same message.
    for (uid, (modseq, sf, uf)) in std::mem::take(&mut view.flags_only) {
        if let Some(r) = st.index_records.get(&uid).filter(|r| r.modseq < modseq) {
            let r = MessageRecord { system_flags: sf, user_flags: uf, modseq, ..*r };
            view.state.insert(uid, r);
        }
    }
    view.state.freeze();
    st.log = Some(view);
}

/// The kind byte of the record at `offset`, if the log holds it.
fn torn_kind(log: &dyn ReadAt, offset: u64) -> Option<u8> {
    crate::codec::bytes_at::<1>(log, offset + 4).ok().flatten().map(|[k]| k)
}

/// What the index's checkpoint and the header saw of the log (those that verify), each
/// with a probe fed by the scan of the log: whether the log still holds it.
pub struct CoverageWatch {
    seen: Vec<(&'static str, [u8; 16], changelog::LogCoverage, changelog::CoverageProbe)>,
}

impl CoverageWatch {
    /// The coverages `st`'s index header and header record.
    pub fn of(st: &OldState) -> CoverageWatch {
        let index = st.index_header.as_ref().map(|h| (INDEX_FILE, h.unique_id, h.log_coverage()));
        let header = st.header_fixed.as_ref().map(|h| (HEADER_FILE, h.unique_id, h.log));
        let seen = [index, header]
            .into_iter()
            .flatten()
            .map(|(who, id, cov)| (who, id, cov, changelog::CoverageProbe::new(cov)))
            .collect();
        CoverageWatch { seen }
    }

    /// Call for every valid record of the scan (offset, seq).
    pub fn see(&mut self, offset: u64, seq: u64) {
        for (_, _, _, p) in &mut self.seen {
            p.see(offset, seq);
        }
    }

    /// Whether the log (`log`, scanned as `scan`) still holds what index and header saw
    /// of it (those of the same log: same unique id); the first that it does not, as
    /// (file, its coverage, the problem).
    pub fn problem(
        &self,
        log: &dyn ReadAt,
        scan: &changelog::LogScan,
    ) -> std::io::Result<Option<(&'static str, changelog::LogCoverage, changelog::CoverageProblem)>> {
        for (who, id, cov, probe) in &self.seen {
            if *id != scan.header.unique_id {
                continue;
            }
            let crc = changelog::crc_ending_at(log, cov.len)?;
            if let Some(p) = probe.check(cov, crc, scan) {
                return Ok(Some((who, *cov, p)));
            }
        }
        Ok(None)
    }
}

/// The cache header and length (records are checked when used).
fn cache_view(dir: &Path, fd: Option<&File>) -> CacheView {
    let cache_path = dir.join(CACHE_FILE);
    let mut v = CacheView::default();
    match open_in(dir, fd, CACHE_FILE) {
        Ok(f) => {
            v.len = crate::io::file_size(&f).unwrap_or(0);
            let mut head = [0u8; crate::format::cache::HEADER_LEN];
            if std::io::Read::read_exact(&mut &f, &mut head).is_err() {
                v.problem = Some(format!("{CACHE_FILE} is shorter than its header"));
                return v;
            }
            match cache::decode_header(&head) {
                Ok((id, _)) => {
                    v.usable = true;
                    v.unique_id = Some(id);
                }
                Err(e) => v.problem = Some(describe(dir, CACHE_FILE, &e)),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => v.problem = Some(format!("{CACHE_FILE} is missing")),
        Err(e) => {
            v.problem =
                Some(format!("cannot read {}: {}", cache_path.display(), crate::error::describe_io(&e, &cache_path)))
        }
    }
    v
}

impl OldState {
    /// The cache is usable only if it belongs to this mailbox and is as long as the index
    /// says.
    fn cache_check(&mut self, unique_id: [u8; 16]) {
        if !self.cache.usable {
            return;
        }
        if self.cache.unique_id != Some(unique_id) {
            self.cache.usable = false;
            self.cache.problem = Some(format!("{CACHE_FILE} belongs to another mailbox"));
            return;
        }
        let need = self.index_header.as_ref().map(|h| h.cache_len).unwrap_or(0);
        if self.cache.len < need {
            self.cache.usable = false;
            self.cache.problem = Some(format!("{CACHE_FILE} is {} bytes, the index refers to {need}", self.cache.len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: u32, size: u64) -> MessageRecord {
        MessageRecord { uid, size, ..MessageRecord::default() }
    }

    #[test]
    fn position_finds_every_uid_of_dense_and_sparse_records_and_no_other() {
        // Dense runs (the guess hits), gaps (the guess lands past the record), and UIDs
        // below, between and above the records.
        for uids in [vec![], vec![7], vec![1, 2, 3, 4], vec![3, 4, 5, 9, 10, 40, 41, 42, 1000], vec![2, 4, 6, 8, 10]] {
            let recs: Vec<MessageRecord> = uids.iter().map(|&u| rec(u, u as u64)).collect();
            for uid in 0..1100 {
                assert_eq!(position(&recs, uid), uids.iter().position(|&u| u == uid), "uid {uid} in {uids:?}");
            }
        }
    }

    #[test]
    fn record_set_sorts_and_keeps_the_last_record_of_a_uid() {
        let s = RecordSet::from_unsorted(vec![rec(5, 1), rec(2, 1), rec(5, 2), rec(9, 1), rec(2, 3)]);
        assert_eq!(s.values().map(|r| (r.uid, r.size)).collect::<Vec<_>>(), [(2, 3), (5, 2), (9, 1)]);
        assert_eq!(s.get(&5).map(|r| r.size), Some(2));
        assert!(s.get(&3).is_none() && !s.contains_key(&10) && s.contains_key(&9));
        let sorted = RecordSet::from_unsorted(vec![rec(1, 1), rec(4, 1)]);
        assert_eq!(sorted.len(), 2);
        assert!(RecordSet::default().is_empty());
    }

    /// A log's state as a replay leaves it: UIDs out of order, records replaced and
    /// forgotten, over several chunks once frozen.
    fn replayed() -> (LogState, std::collections::BTreeMap<u32, u64>) {
        let mut st = LogState::default();
        let mut want = std::collections::BTreeMap::new();
        for i in 0..(3 * CHUNK as u32 + 17) {
            // A permutation of 1..: 7919 is prime to the count.
            let uid = 1 + (i * 7919) % (3 * CHUNK as u32 + 17);
            st.insert(uid, rec(uid, 1));
            want.insert(uid, 1);
        }
        for uid in (5..3000).step_by(7) {
            st.insert(uid, rec(uid, 2));
            want.insert(uid, 2);
        }
        for uid in (10..20000).step_by(13) {
            st.remove(&uid);
            want.remove(&uid);
        }
        (st, want)
    }

    #[test]
    fn a_frozen_log_state_finds_what_the_replayed_one_found_in_uid_order() {
        let (mut st, want) = replayed();
        let all = |st: &LogState| st.values().map(|r| (r.uid, r.size)).collect::<std::collections::BTreeMap<_, _>>();
        assert_eq!(all(&st), want);
        st.freeze();
        assert!(st.chunks.len() > 2 && st.recs.is_empty() && st.at.is_empty(), "frozen into chunks");
        assert_eq!(st.len(), want.len());
        let uids: Vec<u32> = st.keys().collect();
        assert!(uids.windows(2).all(|w| w[0] < w[1]), "UID order");
        assert_eq!(all(&st), want);
        for uid in 0..(3 * CHUNK as u32 + 30) {
            assert_eq!(st.get(&uid).map(|r| r.size), want.get(&uid).copied(), "UID {uid}");
            assert_eq!(st.contains_key(&uid), want.contains_key(&uid));
        }
        // Changed after freezing (nothing but tests does): still right.
        st.insert(2, rec(2, 9));
        st.remove(&3);
        assert_eq!((st.get(&2).map(|r| r.size), st.get(&3)), (Some(9), None));
    }

    #[test]
    fn releasing_lets_go_of_whole_chunks_below_a_uid_and_nothing_at_or_above_it() {
        let (mut st, want) = replayed();
        st.freeze();
        let second = st.firsts[1];
        // Inside the second chunk: only the first chunk is wholly below.
        let cut = second + 5;
        st.release_below(cut);
        assert!(st.chunks[0].read().is_empty() && !st.chunks[1].read().is_empty());
        for (&uid, &size) in &want {
            let got = st.get(&uid).map(|r| r.size);
            if uid < second {
                assert_eq!(got, None, "UID {uid} let go");
            } else {
                assert_eq!(got, Some(size), "UID {uid} kept");
            }
        }
        assert_eq!(st.len(), want.len(), "still counted");
        st.release_below(u32::MAX);
        let last = *want.keys().last().expect("records");
        assert!(st.get(&last).is_some(), "the chunk holding the UID reached is kept");
        // A state that was never frozen lets go of nothing.
        let (unfrozen, _) = replayed();
        unfrozen.release_below(u32::MAX);
        assert_eq!(unfrozen.len(), want.len());
        assert!(unfrozen.get(&1).is_some());
    }
}
