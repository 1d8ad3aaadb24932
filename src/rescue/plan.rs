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
    let bytes = crate::io::read_file_at(&f, m.size, true)?;
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

/// Plan the salvage of what `s` found.
pub fn plan(config: &Config, s: &Survey, opts: &PlanOptions) -> Plan {
    let mut p = Plan::default();
    let cat = &s.catalog;
    // 1. Targets: every mailbox on disk, and every place a known identity names.
    let mut index: HashMap<(String, MailboxName), usize> = HashMap::new();
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
            domain: ip.domain.clone(),
            name: ip.name.clone(),
            partition: ip.partition.clone(),
            dir: ip.dir.clone(),
            in_place: Some(i),
            home: ip.own,
            adopt: false,
            next_uid: 0,
            present: BTreeMap::new(),
            hints: Hints::default(),
            touched: false,
        });
    }
    let mut ids_of: HashMap<usize, Vec<Id>> = HashMap::new();
    for (id, k) in &cat.known {
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
                p.targets.push(Target {
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
                });
                p.targets.len() - 1
            }
        };
        ids_of.entry(t).or_default().push(*id);
    }

    // 2. What each mailbox holds now.
    let hashed: Vec<BTreeMap<u32, [u8; 32]>> = par_map(p.targets.len(), opts.threads, |t| {
        let Some(ip) = p.targets[t].in_place.map(|i| &s.in_place[i]) else { return BTreeMap::new() };
        present_of(ip, cat, opts.quick)
    });
    for (t, h) in hashed.into_iter().enumerate() {
        p.targets[t].present = h;
    }

    // 3. Identities, and what is wanted.
    for t in 0..p.targets.len() {
        let ids: Vec<Id> = ids_of.remove(&t).unwrap_or_default();
        decide_home(&mut p.targets[t], &ids, cat, s);
        let target = &p.targets[t];
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
        // The identity it carries first: its records are the ones a file keeps.
        let mut ids = ids.clone();
        ids.sort_by_key(|id| Some(*id) != home);
        for id in &ids {
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

    // 4. Candidates: read those whose size is wanted (and every message-like file of a
    //    lost+found, which goes somewhere whatever happens).
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

    // 5. Match.
    let mut want_by_hash: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, w) in p.wants.iter().enumerate() {
        want_by_hash.entry(w.record.content_hash).or_default().push(i);
    }
    let mut everywhere: HashSet<[u8; 32]> = p.targets.iter().flat_map(|t| t.present.values().copied()).collect();
    let mut order: Vec<usize> = p.candidate_hash.keys().copied().collect();
    // lost+found before backup copies (a move brings back the very inode), then by path.
    order.sort_by_key(|&i| {
        let c = &s.candidates[i];
        (s.sources[c.source].kind != SourceKind::LostFound, c.source, c.rel.clone())
    });
    let recovered_targets: HashMap<String, usize> = HashMap::new();
    let mut recovered_targets = recovered_targets;
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
                place_want(&mut p, w, ci, how);
            }
            everywhere.insert(h);
            continue;
        }
        if from_lf {
            unknowns.push(ci);
        }
    }
    // Then what no wanted record knows (after every wanted message is placed: a damaged
    // copy is told from a new message by whether the good bytes came back).
    for ci in unknowns {
        let h = p.candidate_hash[&ci];
        let c = &s.candidates[ci];
        if everywhere.contains(&h) {
            p.left.push((ci, "its bytes are already in the store"));
            continue;
        }
        // A file fsck reconnected with its mailbox's store files, under the name of a UID
        // whose record knows other bytes that are in the store: a damaged copy of a message
        // that came back whole from elsewhere (a backup, an image). Left where it is.
        let damaged_copy = c.context.zip(c.name_uid).and_then(|(id, u)| cat.known.get(&id)?.records.get(&u));
        if damaged_copy.is_some_and(|r| r.content_hash != h && everywhere.contains(&r.content_hash)) {
            p.left.push((ci, "a damaged copy of a message whose good bytes are in the store"));
            continue;
        }
        if !c.message_like {
            p.left.push((ci, "not a message, and no record knows its bytes"));
            continue;
        }
        if opts.runtime_uid.is_some_and(|u| u != c.meta.uid) {
            p.left.push((ci, "owned by another user than the runtime user: not mail of this store"));
            continue;
        }
        // A message no record knows: into the mailbox whose directory it sat in, else the
        // domain's recovery mailbox.
        let context_target =
            c.context.and_then(|id| cat.known.get(&id)).and_then(|k| k.place.clone()).and_then(|(d, n)| {
                let key = (layout::domain(&d).ok()?, MailboxName::parse(&n).ok()?);
                index.get(&key).copied()
            });
        let head = heads.get(&ci).map(Vec::as_slice).unwrap_or_default();
        let t = match context_target {
            Some(t) => t,
            None => {
                let Some(domain) = guess_domain(head, &p.targets) else {
                    p.left.push((ci, "no domain to recover it into"));
                    continue;
                };
                *recovered_targets.entry(domain.clone()).or_insert_with(|| {
                    let name = MailboxName::parse(&opts.recovered_name)
                        .unwrap_or_else(|_| MailboxName::parse("Recovered").expect("a valid name"));
                    let key = (domain.clone(), name.clone());
                    if let Some(&t) = index.get(&key) {
                        return t;
                    }
                    let partition = config.default_partition.clone();
                    let dir = target_dir(config, &partition, &domain, &name).unwrap_or_default();
                    p.targets.push(Target {
                        domain,
                        name,
                        partition,
                        dir,
                        in_place: None,
                        home: None,
                        adopt: false,
                        next_uid: 1,
                        present: BTreeMap::new(),
                        hints: Hints::default(),
                        touched: false,
                    });
                    index.insert(key, p.targets.len() - 1);
                    p.targets.len() - 1
                })
            }
        };
        let target = &mut p.targets[t];
        let uid = target.next_uid;
        target.next_uid += 1;
        target.touched = true;
        let (date, source) = date_of_unknown(head, c.meta.mtime);
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
        let how = if movable(c, opts) { How::Move } else { How::Copy };
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
        everywhere.insert(h);
    }
    for t in &mut p.targets {
        if t.adopt || !t.hints.records.is_empty() {
            t.touched = true;
        }
    }
    p
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

/// BLAKE3 of every message file of a mailbox on disk (with `quick`, a file whose size and
/// mtime match its own record is taken as that record's hash without reading it).
fn present_of(ip: &InPlace, cat: &Catalog, quick: bool) -> BTreeMap<u32, [u8; 32]> {
    let mut out = BTreeMap::new();
    let own = ip.own.and_then(|id| cat.known.get(&id));
    let Ok(dir) = super::tree::Dir::open(&ip.dir) else { return out };
    for &(uid, size, mtime) in &ip.files {
        if size == 0 {
            continue;
        }
        if quick {
            if let Some(r) = own.and_then(|k| k.records.get(&uid)) {
                if r.size == size && r.internal_date == mtime && r.content_hash != [0; 32] {
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
