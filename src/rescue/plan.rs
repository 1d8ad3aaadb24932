//! Planning a salvage, read-only: which mailbox every known identity belongs to, what each
//! mailbox holds now (by BLAKE3), which known messages are missing from it (wanted), which
//! candidate files hold them, and under which UID each goes back.
//!
//! Rules:
//! - A mailbox takes back the identity (unique id, UID validity) its old files had when it
//!   never assigned a UID since (its own files are gone, or it was recreated empty);
//!   otherwise it keeps its own.
//! - A wanted message goes back under its own UID when the mailbox has that identity and
//!   the UID's file is missing, or holds the record's size but other bytes (damaged: the
//!   damaged file is set aside first, never overwritten); otherwise it is appended under a
//!   new UID above every UID in use (IMAP rules). Its flags and internal date come along.
//! - A file of a `lost+found` that no record knows, that starts like a message, is owned by
//!   the runtime user and whose bytes are nowhere in the store, goes to the mailbox whose
//!   directory it sat in, else to the domain's recovery mailbox `Recovered/<date>`.
//! - Content already in the mailbox is never placed again (a second run changes nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use super::catalog::{Catalog, Id, Known};
use super::survey::{Candidate, InPlace, SourceKind, Survey};
use crate::codec::index::MessageRecord;
use crate::config::Config;
use crate::flags::DateSource;
use crate::layout::{self, MailboxName};
use crate::ledger::Entry;
use crate::reconstruct::merge::{Hint, HintIdentity, Hints};

/// Which mailbox, and where.
#[derive(Clone, Debug)]
pub struct Target {
    /// Domain.
    pub domain: String,
    /// Name.
    pub name: MailboxName,
    /// Partition.
    pub partition: String,
    /// Directory.
    pub dir: PathBuf,
    /// Its entry in [`Survey::in_place`], if it is on disk.
    pub in_place: Option<usize>,
    /// The identity it will carry (its own, or one taken back); `None`: a new one.
    pub home: Option<Id>,
    /// Whether `home` is taken back from elsewhere.
    pub adopt: bool,
    /// Next UID for a message appended here.
    pub next_uid: u32,
    /// BLAKE3 of each message file on disk, by UID.
    pub present: BTreeMap<u32, [u8; 32]>,
    /// What reconstruct needs to know about it.
    pub hints: Hints,
    /// Whether anything is placed in it (it must be reconstructed).
    pub touched: bool,
}

/// A known message missing from its mailbox.
#[derive(Clone, Debug)]
pub struct Want {
    /// Index in [`Plan::targets`].
    pub target: usize,
    /// The identity its record belongs to.
    pub id: Id,
    /// The record (flags, date, size, BLAKE3).
    pub record: MessageRecord,
    /// Names of its user flags.
    pub flag_names: Vec<String>,
    /// The loss-ledger entry it resolves.
    pub ledger: Option<Entry>,
    /// Where it was found (index into [`Plan::placements`]).
    pub placed: Option<usize>,
}

/// How a file goes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Renamed out of `lost+found` (same file system): the inode comes back.
    Move,
    /// Copied (another file system, a backup tree, or a second mailbox wants it too).
    Copy,
}

/// One file to put back.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Index in [`Plan::targets`].
    pub target: usize,
    /// UID it gets.
    pub uid: u32,
    /// Index in [`Survey::candidates`].
    pub candidate: usize,
    /// Move or copy.
    pub how: How,
    /// The file now at `uid` holds other bytes (damaged): move it to `ms.quarantine/` first.
    pub set_aside: bool,
    /// Its modification time (the internal date).
    pub mtime: i64,
    /// Size and BLAKE3 it must have.
    pub size: u64,
    /// BLAKE3.
    pub hash: [u8; 32],
    /// Index in [`Plan::wants`], or `None` for a message no record knew.
    pub want: Option<usize>,
}

/// The whole plan.
#[derive(Debug, Default)]
pub struct Plan {
    /// Mailboxes concerned.
    pub targets: Vec<Target>,
    /// Known messages missing from their mailbox.
    pub wants: Vec<Want>,
    /// Files to put back, in order.
    pub placements: Vec<Placement>,
    /// BLAKE3 of each candidate that was read (by candidate index).
    pub candidate_hash: HashMap<usize, [u8; 32]>,
    /// Candidates left where they are: (index, why).
    pub left: Vec<(usize, &'static str)>,
    /// Notes.
    pub notes: Vec<String>,
}

impl Plan {
    /// Wanted messages not found anywhere.
    pub fn missing(&self) -> impl Iterator<Item = &Want> {
        self.wants.iter().filter(|w| w.placed.is_none())
    }
}

/// How to plan.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Trust a message file whose size and mtime match its record (do not hash it).
    pub quick: bool,
    /// Worker threads for hashing.
    pub threads: usize,
    /// The runtime user's uid: only its files in a `lost+found` are taken when no record
    /// knows them (`None`: any owner).
    pub runtime_uid: Option<u32>,
    /// The recovery mailbox's name for unknown messages (`Recovered/<date>`).
    pub recovered_name: String,
    /// Mailbox list entries: (domain, name) → partition.
    pub registered: HashMap<(String, MailboxName), String>,
}

/// A file read: its size, BLAKE3 and first 16 KiB (its header, for a message no record
/// knows).
type Read = (u64, [u8; 32], Vec<u8>);

fn hash_file(dir: &super::tree::Dir, name: &std::ffi::OsStr) -> std::io::Result<Read> {
    let (f, m) = dir.open_file(name)?;
    let bytes = crate::io::read_file_at(&f, m.size, crate::io::Map::Allow)?;
    let head = bytes[..bytes.len().min(16 * 1024)].to_vec();
    Ok((m.size, crate::store::derive::content_hash(&bytes), head))
}

/// Run `f` over `0..n` on `threads` threads; results in index order.
fn par_map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<parking_lot::Mutex<Option<T>>> = (0..n).map(|_| parking_lot::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1).min(n.max(1)) {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    *out[i].lock() = Some(f(i));
                }
            });
        }
    });
    out.into_iter().filter_map(|m| m.into_inner()).collect()
}

/// The directory of mailbox `name` of `domain` on `partition`.
fn target_dir(config: &Config, partition: &str, domain: &str, name: &MailboxName) -> Option<PathBuf> {
    config.partition(partition).map(|root| layout::mailbox_dir(root, domain, name))
}

/// Mailboxes of the plan by (domain, name): their index in [`Plan::targets`].
type Index = HashMap<(String, MailboxName), usize>;

impl Target {
    /// A mailbox not on disk, with no identity yet and nothing placed in it.
    fn new(domain: String, name: MailboxName, partition: String, dir: PathBuf) -> Target {
        Target {
            domain,
            name,
            partition,
            dir,
            in_place: None,
            home: None,
            adopt: false,
            next_uid: 0,
            present: BTreeMap::new(),
            hints: Hints::default(),
            touched: false,
        }
    }
}

/// Plan the salvage of what `s` found.
pub fn plan(config: &Config, s: &Survey, opts: &PlanOptions) -> Plan {
    let mut p = Plan::default();
    // 1. Targets: every mailbox on disk, and every place a known identity names.
    let mut index = add_targets_on_disk(&mut p, s);
    let mut ids_of = add_targets_of_identities(&mut p, &mut index, config, s, opts);
    // 2. What each mailbox holds now.
    hash_present(&mut p, s, opts);
    // 3. Identities, and what is wanted.
    for t in 0..p.targets.len() {
        let ids: Vec<Id> = ids_of.remove(&t).unwrap_or_default();
        decide_home(&mut p.targets[t], &ids, &s.catalog, s);
        find_wants(&mut p, t, ids, s);
    }
    // 4. Candidates: read those whose size is wanted (and every message-like file of a
    //    lost+found, which goes somewhere whatever happens).
    let heads = read_candidates(&mut p, s, opts);
    // 5. Match.
    let mut everywhere: HashSet<[u8; 32]> = p.targets.iter().flat_map(|t| t.present.values().copied()).collect();
    let unknowns = place_wanted(&mut p, s, opts, &mut everywhere);
    // Then what no wanted record knows (after every wanted message is placed: a damaged
    // copy is told from a new message by whether the good bytes came back).
    let mut u = Unknowns { config, s, opts, index, recovered_targets: HashMap::new(), heads, everywhere };
    for ci in unknowns {
        u.place(&mut p, ci);
    }
    for t in &mut p.targets {
        if t.adopt || !t.hints.records.is_empty() {
            t.touched = true;
        }
    }
    p
}

/// Step 1a: a target for every mailbox on disk (the first partition's, when it is on two).
fn add_targets_on_disk(p: &mut Plan, s: &Survey) -> Index {
    let mut index = Index::new();
    for (i, ip) in s.in_place.iter().enumerate() {
        let key = (ip.domain.clone(), ip.name.clone());
        if index.contains_key(&key) {
            p.notes.push(format!(
                "{} {}: found on two partitions; only {} is used",
                ip.domain,
                ip.name,
                ip.dir.display()
            ));
            continue;
        }
        index.insert(key, p.targets.len());
        p.targets.push(Target {
            in_place: Some(i),
            home: ip.own,
            ..Target::new(ip.domain.clone(), ip.name.clone(), ip.partition.clone(), ip.dir.clone())
        });
    }
    index
}

/// Step 1b: a target for every place a known identity names; the identities of each target.
fn add_targets_of_identities(
    p: &mut Plan,
    index: &mut Index,
    config: &Config,
    s: &Survey,
    opts: &PlanOptions,
) -> HashMap<usize, Vec<Id>> {
    let mut ids_of: HashMap<usize, Vec<Id>> = HashMap::new();
    for (id, k) in &s.catalog.known {
        let Some((domain, name)) = &k.place else {
            p.notes.push(format!(
                "{} record(s) of mailbox {} (UID validity {}) name no mailbox: left where they are",
                k.records.len(),
                crate::util::hex(&id.0),
                id.1
            ));
            continue;
        };
        let (Ok(domain), Ok(name)) = (layout::domain(domain), MailboxName::parse(name)) else { continue };
        let key = (domain.clone(), name.clone());
        let t = match index.get(&key) {
            Some(&t) => t,
            None => {
                let partition = opts.registered.get(&key).cloned().unwrap_or_else(|| config.default_partition.clone());
                let Some(dir) = target_dir(config, &partition, &domain, &name) else { continue };
                index.insert(key, p.targets.len());
                p.targets.push(Target::new(domain, name, partition, dir));
                p.targets.len() - 1
            }
        };
        ids_of.entry(t).or_default().push(*id);
    }
    ids_of
}

/// Step 2: the BLAKE3 of every message file of every target on disk, on `opts.threads`.
fn hash_present(p: &mut Plan, s: &Survey, opts: &PlanOptions) {
    let check = if opts.quick { Check::Quick } else { Check::Read };
    let hashed: Vec<BTreeMap<u32, [u8; 32]>> = par_map(p.targets.len(), opts.threads, |t| {
        let Some(ip) = p.targets[t].in_place.map(|i| &s.in_place[i]) else { return BTreeMap::new() };
        present_of(ip, &s.catalog, check)
    });
    for (t, h) in hashed.into_iter().enumerate() {
        p.targets[t].present = h;
    }
}

/// Step 3: which known messages target `t` lacks (wants), hints for those it has, and its
/// next UID; `ids` are the identities known for it, `home` already decided.
fn find_wants(p: &mut Plan, t: usize, mut ids: Vec<Id>, s: &Survey) {
    let cat = &s.catalog;
    // The identity it carries first: its records are the ones a file keeps.
    let home = p.targets[t].home;
    ids.sort_by_key(|id| Some(*id) != home);
    let (mut hints, wants) = wants_and_hints(&p.targets[t], t, &ids, s);
    let target = &mut p.targets[t];
    let max_file = target.present.keys().next_back().copied().unwrap_or(0);
    let known_last = ids
        .iter()
        .filter_map(|id| cat.known.get(id))
        .filter(|k| Some((k.unique_id, k.uid_validity)) == target.home)
        .map(|k| k.last_uid)
        .max()
        .unwrap_or(0);
    let own_last = target.in_place.map(|i| s.in_place[i].own_last_uid).unwrap_or(0);
    target.next_uid = max_file.max(known_last).max(own_last) + 1;
    hints.sort_by_key(|h| h.record.uid);
    hints.dedup_by_key(|h| h.record.uid);
    target.hints.records = hints;
    p.wants.extend(wants);
}

/// For each live record of `ids` (home first): a hint when `target` (index `t`) holds its
/// bytes and its own files do not describe them, else a want.
fn wants_and_hints(target: &Target, t: usize, ids: &[Id], s: &Survey) -> (Vec<Hint>, Vec<Want>) {
    let cat = &s.catalog;
    let home = target.home;
    let mut by_hash: HashMap<[u8; 32], u32> = HashMap::new();
    for (&uid, h) in &target.present {
        by_hash.entry(*h).or_insert(uid);
    }
    let own_id = target.in_place.and_then(|i| s.in_place[i].own);
    // The mailbox's own records count only for the identity it will carry (merge
    // ignores its files' records when it takes another identity back).
    let own_records = own_id.filter(|o| Some(*o) == home).and(target.in_place).map(|i| &s.in_place[i].own_records);
    let mut hints: Vec<Hint> = Vec::new();
    let mut wants: Vec<Want> = Vec::new();
    for id in ids {
        let k = &cat.known[id];
        for r in k.live() {
            if r.content_hash == [0; 32] {
                continue;
            }
            let ledger = k.ledger.get(&r.uid).filter(|e| e.record.content_hash == r.content_hash).cloned();
            match by_hash.get(&r.content_hash) {
                Some(&uid) => {
                    // Present. Unless the mailbox's own files describe it, its flags
                    // and date come from this record.
                    let own_describes = own_records.and_then(|o| o.get(&uid)).is_some_and(|h| *h == r.content_hash);
                    if !own_describes {
                        hints.push(hint_for(k, r, uid, "a record found by salvage", ledger));
                    }
                }
                None => wants.push(Want {
                    target: t,
                    id: *id,
                    record: *r,
                    flag_names: k.flag_names_of(r),
                    ledger,
                    placed: None,
                }),
            }
        }
    }
    (hints, wants)
}

/// Step 4: read (on `opts.threads`) every candidate whose size is wanted and every
/// message-like file of a `lost+found`; records their BLAKE3 and returns their heads.
fn read_candidates(p: &mut Plan, s: &Survey, opts: &PlanOptions) -> HashMap<usize, Vec<u8>> {
    let wanted_sizes: HashSet<u64> = p.wants.iter().map(|w| w.record.size).collect();
    let to_hash: Vec<usize> = s
        .candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            wanted_sizes.contains(&c.meta.size)
                || (c.message_like && s.sources[c.source].kind == SourceKind::LostFound && c.meta.size > 0)
        })
        .map(|(i, _)| i)
        .collect();
    let read: Vec<Option<Read>> = par_map(to_hash.len(), opts.threads, |j| {
        let c = &s.candidates[to_hash[j]];
        let root = s.sources[c.source].dir.as_ref()?;
        let dir = super::tree::descend(root, &c.rel[..c.rel.len() - 1]).ok()?;
        hash_file(&dir, c.rel.last()?).ok()
    });
    let mut heads: HashMap<usize, Vec<u8>> = HashMap::new();
    for (j, r) in read.into_iter().enumerate() {
        if let Some((size, h, head)) = r {
            if size == s.candidates[to_hash[j]].meta.size {
                p.candidate_hash.insert(to_hash[j], h);
                heads.insert(to_hash[j], head);
            }
        }
    }
    heads
}

/// Step 5: place every wanted message a read candidate holds (lost+found first, then by
/// path); returns the `lost+found` candidates no want matched, in that order.
fn place_wanted(p: &mut Plan, s: &Survey, opts: &PlanOptions, everywhere: &mut HashSet<[u8; 32]>) -> Vec<usize> {
    let mut want_by_hash: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, w) in p.wants.iter().enumerate() {
        want_by_hash.entry(w.record.content_hash).or_default().push(i);
    }
    let mut order: Vec<usize> = p.candidate_hash.keys().copied().collect();
    // lost+found before backup copies (a move brings back the very inode), then by path.
    order.sort_by_key(|&i| {
        let c = &s.candidates[i];
        (s.sources[c.source].kind != SourceKind::LostFound, c.source, c.rel.clone())
    });
    let mut unknowns: Vec<usize> = Vec::new();
    for ci in order {
        let h = p.candidate_hash[&ci];
        let c = &s.candidates[ci];
        let from_lf = s.sources[c.source].kind == SourceKind::LostFound;
        let open: Vec<usize> = want_by_hash
            .get(&h)
            .map(|v| v.iter().copied().filter(|&w| p.wants[w].placed.is_none()).collect())
            .unwrap_or_default();
        if !open.is_empty() {
            let n = open.len();
            for (k, w) in open.into_iter().enumerate() {
                let last = k + 1 == n;
                let how = if from_lf && last && movable(c, opts) { How::Move } else { How::Copy };
                place_want(p, w, ci, how);
            }
            everywhere.insert(h);
            continue;
        }
        if from_lf {
            unknowns.push(ci);
        }
    }
    unknowns
}

/// Step 6: placing the files of a `lost+found` that no wanted record knows.
struct Unknowns<'a> {
    config: &'a Config,
    s: &'a Survey,
    opts: &'a PlanOptions,
    /// Targets by (domain, name).
    index: Index,
    /// The recovery mailbox of each domain, once made.
    recovered_targets: HashMap<String, usize>,
    /// First 16 KiB of each candidate read.
    heads: HashMap<usize, Vec<u8>>,
    /// BLAKE3 of every message in the store or placed into it.
    everywhere: HashSet<[u8; 32]>,
}

impl Unknowns<'_> {
    /// The first 16 KiB of candidate `ci` (empty if it was not read).
    fn head(&self, ci: usize) -> &[u8] {
        self.heads.get(&ci).map(Vec::as_slice).unwrap_or_default()
    }

    /// Place candidate `ci` (BLAKE3 known), or note in `p.left` why it stays where it is.
    fn place(&mut self, p: &mut Plan, ci: usize) {
        let h = p.candidate_hash[&ci];
        if let Some(why) = self.why_left(ci, h) {
            p.left.push((ci, why));
            return;
        }
        let t = match self.target_of(p, ci) {
            Ok(t) => t,
            Err(why) => {
                p.left.push((ci, why));
                return;
            }
        };
        let (s, c) = (self.s, &self.s.candidates[ci]);
        let target = &mut p.targets[t];
        let uid = target.next_uid;
        target.next_uid += 1;
        target.touched = true;
        let (date, source) = date_of_unknown(self.head(ci), c.meta.mtime);
        let rec = MessageRecord {
            uid,
            internal_date: date.unix,
            internal_offset: date.offset_minutes,
            date_source: source,
            size: c.meta.size,
            content_hash: h,
            ..MessageRecord::default()
        };
        let src = format!("{} (no record knew it; internal date from {})", describe(s, c), source.as_str());
        insert_hint(
            &mut target.hints,
            Hint { record: rec, flag_names: Vec::new(), origin: None, source: src, resolves: None },
        );
        let how = if movable(c, self.opts) { How::Move } else { How::Copy };
        p.placements.push(Placement {
            target: t,
            uid,
            candidate: ci,
            how,
            set_aside: false,
            mtime: date.unix,
            size: c.meta.size,
            hash: h,
            want: None,
        });
        self.everywhere.insert(h);
    }

    /// Why candidate `ci` (BLAKE3 `h`) is not mail to put back, if it is not.
    fn why_left(&self, ci: usize, h: [u8; 32]) -> Option<&'static str> {
        let c = &self.s.candidates[ci];
        if self.everywhere.contains(&h) {
            return Some("its bytes are already in the store");
        }
        // A file fsck reconnected with its mailbox's store files, under the name of a UID
        // whose record knows other bytes that are in the store: a damaged copy of a message
        // that came back whole from elsewhere (a backup, an image). Left where it is.
        let damaged_copy = c.context.zip(c.name_uid).and_then(|(id, u)| self.s.catalog.known.get(&id)?.records.get(&u));
        if damaged_copy.is_some_and(|r| r.content_hash != h && self.everywhere.contains(&r.content_hash)) {
            return Some("a damaged copy of a message whose good bytes are in the store");
        }
        if !c.message_like {
            return Some("not a message, and no record knows its bytes");
        }
        if self.opts.runtime_uid.is_some_and(|u| u != c.meta.uid) {
            return Some("owned by another user than the runtime user: not mail of this store");
        }
        None
    }

    /// The mailbox a message no record knows goes to: the one whose directory it sat in,
    /// else the recovery mailbox of the domain its header names; `Err`: why none.
    fn target_of(&mut self, p: &mut Plan, ci: usize) -> Result<usize, &'static str> {
        let c = &self.s.candidates[ci];
        let context_target =
            c.context.and_then(|id| self.s.catalog.known.get(&id)).and_then(|k| k.place.clone()).and_then(|(d, n)| {
                let key = (layout::domain(&d).ok()?, MailboxName::parse(&n).ok()?);
                self.index.get(&key).copied()
            });
        if let Some(t) = context_target {
            return Ok(t);
        }
        let Some(domain) = guess_domain(self.head(ci), &p.targets) else {
            return Err("no domain to recover it into");
        };
        if let Some(&t) = self.recovered_targets.get(&domain) {
            return Ok(t);
        }
        let t = self.recovery_target(p, domain.clone());
        self.recovered_targets.insert(domain, t);
        Ok(t)
    }

    /// The recovery mailbox (`Recovered/<date>`) of `domain`, added to the plan unless it
    /// is there.
    fn recovery_target(&mut self, p: &mut Plan, domain: String) -> usize {
        let name = MailboxName::parse(&self.opts.recovered_name)
            .unwrap_or_else(|_| MailboxName::parse("Recovered").expect("a valid name"));
        let key = (domain.clone(), name.clone());
        if let Some(&t) = self.index.get(&key) {
            return t;
        }
        let partition = self.config.default_partition.clone();
        let dir = target_dir(self.config, &partition, &domain, &name).unwrap_or_default();
        p.targets.push(Target { next_uid: 1, ..Target::new(domain, name, partition, dir) });
        self.index.insert(key, p.targets.len() - 1);
        p.targets.len() - 1
    }
}

/// Whether a candidate may be moved rather than copied: only out of a `lost+found`, only
/// a file with one link.
fn movable(c: &Candidate, _opts: &PlanOptions) -> bool {
    c.meta.nlink == 1
}

/// Where a candidate was found, for the report.
pub fn describe(s: &Survey, c: &Candidate) -> String {
    s.sources[c.source].path.join(c.rel.iter().collect::<PathBuf>()).display().to_string()
}

fn hint_for(k: &Known, r: &MessageRecord, uid: u32, source: &str, resolves: Option<Entry>) -> Hint {
    let mut record = *r;
    record.uid = uid;
    Hint { record, flag_names: k.flag_names_of(r), origin: None, source: source.to_string(), resolves }
}

fn insert_hint(h: &mut Hints, hint: Hint) {
    match h.records.binary_search_by_key(&hint.record.uid, |x| x.record.uid) {
        Ok(i) => h.records[i] = hint,
        Err(i) => h.records.insert(i, hint),
    }
}

/// The UID a wanted message gets, and its placement (the want is marked placed).
pub fn place_want(p: &mut Plan, w: usize, ci: usize, how: How) -> usize {
    let want = p.wants[w].clone();
    let t = &mut p.targets[want.target];
    let r = want.record;
    let same_identity = t.home == Some(want.id);
    // Within one identity a UID names one message for ever: a file at the record's UID
    // with other bytes is that message damaged (set aside, never overwritten).
    let taken = |t: &Target, u: u32, ps: &[Placement]| {
        ps.iter().any(|x| x.target == want.target && x.uid == u) && t.present.contains_key(&u)
    };
    let (uid, set_aside) = if same_identity && !taken(t, r.uid, &p.placements) {
        (r.uid, t.present.contains_key(&r.uid))
    } else {
        let u = t.next_uid;
        t.next_uid += 1;
        (u, false)
    };
    t.touched = true;
    t.present.insert(uid, r.content_hash);
    let mut record = r;
    record.uid = uid;
    let origin_note = if same_identity && uid == r.uid { "" } else { " (under a new UID)" };
    insert_hint(
        &mut t.hints,
        Hint {
            record,
            flag_names: want.flag_names.clone(),
            origin: None,
            source: format!("a record found by salvage{origin_note}"),
            resolves: want.ledger.clone(),
        },
    );
    p.wants[w].placed = Some(p.placements.len());
    p.placements.push(Placement {
        target: want.target,
        uid,
        candidate: ci,
        how,
        set_aside,
        mtime: r.internal_date,
        size: r.size,
        hash: r.content_hash,
        want: Some(w),
    });
    p.placements.len() - 1
}

/// Which identity a mailbox carries: its own if it ever assigned a UID, else the one of the
/// identities known for it with the most messages (taken back).
fn decide_home(t: &mut Target, ids: &[Id], cat: &Catalog, s: &Survey) {
    let own = t.in_place.and_then(|i| s.in_place[i].own);
    let own_last = t.in_place.map(|i| s.in_place[i].own_last_uid).unwrap_or(0);
    if own.is_some() && own_last > 0 {
        t.home = own;
        return;
    }
    let best = ids
        .iter()
        .filter(|id| Some(**id) != own)
        .filter_map(|id| cat.known.get(id).map(|k| (id, k)))
        .max_by_key(|(_, k)| (k.live().count(), k.last_uid));
    match best {
        Some((id, k)) if k.last_uid > 0 || k.live().next().is_some() => {
            t.home = Some(*id);
            t.adopt = true;
            t.hints.identity = Some(HintIdentity {
                unique_id: k.unique_id,
                uid_validity: k.uid_validity,
                last_uid: k.last_uid,
                highest_modseq: k.highest_modseq,
                created: if k.created > 0 { k.created } else { crate::util::now() },
                flag_names: k.flag_names.clone(),
                resolves: cat.recreated.iter().find(|e| (e.unique_id, e.uid_validity) == *id).cloned(),
            });
        }
        _ => t.home = own,
    }
}

/// How [`present_of`] learns the BLAKE3 of a message file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// A file whose size and mtime match its own record is taken as that record's hash
    /// without reading it (`--quick`).
    Quick,
    /// Every file is read.
    Read,
}

/// BLAKE3 of every message file of a mailbox on disk (see [`Check`]).
fn present_of(ip: &InPlace, cat: &Catalog, check: Check) -> BTreeMap<u32, [u8; 32]> {
    let mut out = BTreeMap::new();
    let own = ip.own.and_then(|id| cat.known.get(&id));
    let Ok(dir) = super::tree::Dir::open(&ip.dir) else { return out };
    for &(uid, size, mtime) in &ip.files {
        if size == 0 {
            continue;
        }
        if check == Check::Quick {
            if let Some(r) = own.and_then(|k| k.records.get(&uid)) {
                if r.size == size
                    && crate::store::derive::mtime_matches(mtime, r.internal_date, crate::util::now())
                    && r.content_hash != [0; 32]
                {
                    out.insert(uid, r.content_hash);
                    continue;
                }
            }
        }
        let name = layout::message_file_name(uid);
        if let Ok((_, h, _)) = hash_file(&dir, std::ffi::OsStr::new(&name)) {
            out.insert(uid, h);
        }
    }
    out
}

/// The domain an unknown message most likely belongs to: the first of Delivered-To,
/// X-Original-To, Envelope-To, To whose domain is a domain of the store; else the store's
/// only domain, or its first.
fn guess_domain(head: &[u8], targets: &[Target]) -> Option<String> {
    let domains: Vec<&str> = {
        let mut d: Vec<&str> = targets.iter().map(|t| t.domain.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    let header = &head[..crate::message::split(head).header_len.min(head.len())];
    for field in ["delivered-to", "x-original-to", "envelope-to", "to"] {
        for f in crate::message::fields(header).filter(|f| f.is(field)) {
            let v = String::from_utf8_lossy(&crate::message::unfold(f.raw_value)).to_ascii_lowercase();
            for part in v.split([',', ' ', '<', '>', '\t', '\r', '\n']) {
                if let Some((_, d)) = part.rsplit_once('@') {
                    let d = d.trim_end_matches(['>', '.', ';']);
                    if let Some(found) = domains.iter().find(|x| **x == d) {
                        return Some(found.to_string());
                    }
                }
            }
        }
    }
    domains.first().map(|d| d.to_string())
}

/// The internal date of a message no record knew: its `Received:` date, else its `Date:`,
/// else the file's mtime.
fn date_of_unknown(head: &[u8], mtime: i64) -> (crate::message::DateTime, DateSource) {
    let header = &head[..crate::message::split(head).header_len.min(head.len())];
    if let Some(d) = crate::message::received_date(header) {
        return (d, DateSource::Received);
    }
    let env = crate::message::Envelope::from_header(header);
    if let Some(d) = env.date.as_deref().and_then(crate::message::parse_date) {
        return (d, DateSource::DateHeader);
    }
    (crate::message::DateTime { unix: mtime, offset_minutes: 0 }, DateSource::FileMtime)
}
