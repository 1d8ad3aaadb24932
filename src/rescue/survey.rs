//! The survey: read-only, it reads every store file of the store in place, of every tree
//! salvage was given (`lost+found`, backup copies) and of the loss ledgers into one
//! [`Catalog`], lists every mailbox directory of the store with its message files, and
//! lists every other file of the trees as a candidate message (or a database file).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::catalog::{Catalog, FileKind, IDENTIFY_LEN, Id, identify};
use super::tree::{self, Dir, Meta};
use crate::config::Config;
use crate::layout::{self, EntryKind, MailboxName};

/// Most files looked at in one tree.
const TREE_LIMIT: usize = 50_000_000;
/// Largest store file read (an index of 8 million messages).
const STORE_FILE_LIMIT: u64 = 1 << 30;

/// Where salvage looks for what was lost.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A `lost+found` directory: what `e2fsck` reconnected. Files taken back are moved.
    LostFound,
    /// Another copy of the spool (an rsync or tar copy, a photorec output, another
    /// server's copy): only ever read.
    From,
    /// A raw device or image, carved for messages no directory entry points to: only ever
    /// read.
    Image,
}

impl SourceKind {
    /// How a report names it.
    pub fn label(&self) -> &'static str {
        match self {
            SourceKind::LostFound => "lost+found",
            SourceKind::From => "copy",
            SourceKind::Image => "image, carved",
        }
    }
}

/// One tree to search.
#[derive(Debug)]
pub struct Source {
    /// Kind.
    pub kind: SourceKind,
    /// Path.
    pub path: PathBuf,
    /// The open directory (`None`: it could not be opened; see `error`).
    pub dir: Option<Dir>,
    /// Why it could not be searched.
    pub error: Option<String>,
}

/// A message file (or a file that may be one) found in a tree.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Index of its tree in [`Survey::sources`].
    pub source: usize,
    /// Path components below the tree's root.
    pub rel: Vec<OsString>,
    /// Metadata when found.
    pub meta: Meta,
    /// The UID its name gives (`<uid>.`), if any.
    pub name_uid: Option<u32>,
    /// The identity of the mailbox directory it sits in (a store file next to it says).
    pub context: Option<Id>,
    /// Whether its first bytes look like a message.
    pub message_like: bool,
    /// For a message carved from an image: its byte offset there (`rel` is empty).
    pub offset: Option<u64>,
}

/// A database file found in a tree: (source index, path components, what it is, the file
/// name it had in the database home).
#[derive(Clone, Debug)]
pub struct DbFile {
    /// Index of its tree.
    pub source: usize,
    /// Path components below the tree's root.
    pub rel: Vec<OsString>,
    /// The name it must have in a database home (`mailboxes.db`, `log.0000000000000001`).
    pub home_name: String,
    /// Size.
    pub size: u64,
}

/// A mailbox directory of the store.
#[derive(Clone, Debug)]
pub struct InPlace {
    /// Partition name.
    pub partition: String,
    /// Domain.
    pub domain: String,
    /// Mailbox name.
    pub name: MailboxName,
    /// Directory.
    pub dir: PathBuf,
    /// The identity its own store files give (header, else index, else log).
    pub own: Option<Id>,
    /// The last UID its own files know.
    pub own_last_uid: u32,
    /// Message files: (uid, size, mtime).
    pub files: Vec<(u32, u64, i64)>,
    /// What its own index and log say of each UID (BLAKE3), for its own identity: what
    /// reconstruct will find without help. (The catalog merges every copy of an identity,
    /// an image's or a lost+found's included.)
    pub own_records: HashMap<u32, [u8; 32]>,
}

/// Everything the survey found.
#[derive(Debug, Default)]
pub struct Survey {
    /// What is known of every identity.
    pub catalog: Catalog,
    /// The trees searched.
    pub sources: Vec<Source>,
    /// Every mailbox directory of the store.
    pub in_place: Vec<InPlace>,
    /// Files of the trees that may be messages.
    pub candidates: Vec<Candidate>,
    /// Database files of the trees.
    pub db_files: Vec<DbFile>,
    /// Store files read in the trees: (path, what).
    pub store_files: Vec<(PathBuf, FileKind)>,
    /// Files of the trees that are neither messages nor store files.
    pub foreign: u64,
    /// What could not be looked at: (path, why).
    pub skipped: Vec<(PathBuf, String)>,
    /// Notes for the report.
    pub notes: Vec<String>,
}

/// Read a whole small file through `dir`, bounded.
fn read_whole(dir: &Dir, name: &OsStr) -> std::io::Result<Vec<u8>> {
    let (f, m) = dir.open_file(name)?;
    if m.size > STORE_FILE_LIMIT {
        return Err(std::io::Error::other(format!("{} bytes: too large for a store file", m.size)));
    }
    let b = crate::io::read_file_at(&f, m.size, crate::io::Map::Allow)?;
    Ok(b.to_vec())
}

/// Read the first bytes of a file.
fn read_head(dir: &Dir, name: &OsStr) -> std::io::Result<Vec<u8>> {
    let (f, _) = dir.open_file(name)?;
    let mut head = vec![0u8; IDENTIFY_LEN];
    let mut n = 0;
    while n < head.len() {
        match std::io::Read::read(&mut &f, &mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    Ok(head)
}

/// What a store file is, in words.
fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Header => "a mailbox header (ms.header)",
        FileKind::Index => "a mailbox index (ms.index)",
        FileKind::Log => "a mailbox change log (ms.log)",
        _ => "a store file",
    }
}

/// Add one store file to the catalog; the identity it names, if any.
pub fn add_store_file(cat: &mut Catalog, path: &Path, kind: FileKind, bytes: &[u8]) -> Option<Id> {
    match kind {
        FileKind::Header => match crate::codec::header::MailboxHeader::decode(bytes) {
            Ok(h) => {
                cat.add_header(path, &h);
                Some((h.unique_id, h.uid_validity))
            }
            Err(_) => crate::codec::header::decode_fixed(bytes).ok().map(|h| {
                cat.add_header_fixed(path, &h);
                (h.unique_id, h.uid_validity)
            }),
        },
        FileKind::Index => {
            cat.add_index(path, bytes);
            crate::codec::index::decode_header(bytes).ok().map(|h| (h.unique_id, h.uid_validity))
        }
        FileKind::Log => {
            cat.add_log(path, bytes)?;
            crate::codec::changelog::decode_header(bytes).ok().map(|h| (h.unique_id, h.uid_validity))
        }
        FileKind::Ledger => {
            if let Ok(l) = crate::ledger::parse(path, bytes) {
                let open = crate::ledger::outstanding(&l.entries);
                cat.add_ledger(path, &open);
            }
            None
        }
        _ => None,
    }
}

/// The name a database file has in a database home, from its header.
fn db_home_name(kind: FileKind, bytes: &[u8]) -> Option<String> {
    match kind {
        FileKind::DbSnapshot => crate::codec::dbsnap::decode_header(bytes)
            .ok()
            .filter(|h| !h.name.is_empty() && h.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .map(|h| format!("{}.db", h.name)),
        FileKind::DbLog => {
            crate::codec::wal::decode_segment_header(bytes).ok().map(|(h, _)| format!("log.{:016x}", h.segment))
        }
        _ => None,
    }
}

/// Survey the store of `config` and the trees `sources`. `ledger_dirs` are read for
/// outstanding losses (the store's own ledger directory, at least).
pub fn survey(config: &Config, sources: Vec<(SourceKind, PathBuf)>) -> Survey {
    let mut s = Survey::default();
    survey_store(config, &mut s);
    // The store's loss ledgers.
    for d in crate::ledger::domains(config) {
        let p = crate::ledger::path(config, &d);
        match crate::ledger::read_file(&p) {
            Ok(Some(l)) => {
                let open = crate::ledger::outstanding(&l.entries);
                s.catalog.add_ledger(&p, &open);
            }
            Ok(None) => {}
            Err(e) => s.notes.push(format!("loss ledger not read: {e}")),
        }
    }
    for (kind, path) in sources {
        if kind == SourceKind::Image {
            let error = std::fs::File::open(&path).err().map(|e| crate::error::describe_io(&e, &path));
            s.sources.push(Source { kind, path, dir: None, error });
            continue;
        }
        let (dir, error) = match Dir::open(&path) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(crate::error::describe_io(&e, &path))),
        };
        s.sources.push(Source { kind, path, dir, error });
    }
    for i in 0..s.sources.len() {
        survey_tree(&mut s, i);
    }
    s.catalog.adopt_orphans();
    s
}

/// Every mailbox directory on every partition: its own store files into the catalog, its
/// message files listed.
fn survey_store(config: &Config, s: &mut Survey) {
    for (pname, root) in &config.partitions {
        let Ok(rdir) = Dir::open(root) else {
            if root.exists() {
                s.skipped.push((root.clone(), "partition cannot be opened".into()));
            }
            continue;
        };
        let Ok(domains) = rdir.names() else { continue };
        for d in domains {
            let Some(domain) = d.to_str().filter(|x| layout::domain(x).is_ok_and(|y| y == *x)) else { continue };
            let Ok(ddir) = rdir.sub(&d) else { continue };
            let mut stack: Vec<(Dir, Vec<String>)> = vec![(ddir, Vec::new())];
            while let Some((dir, comps)) = stack.pop() {
                let names = match dir.names() {
                    Ok(n) => n,
                    Err(e) => {
                        s.skipped.push((dir.path.clone(), format!("cannot list: {e}")));
                        continue;
                    }
                };
                let mut files = Vec::new();
                let mut store = Vec::new();
                for n in &names {
                    match layout::classify(n.as_bytes()) {
                        EntryKind::Message(uid) => {
                            if let Ok(m) = dir.meta(n) {
                                if m.kind == tree::Kind::File {
                                    files.push((uid, m.size, m.mtime));
                                }
                            }
                        }
                        EntryKind::StoreFile => store.push(n.clone()),
                        EntryKind::SubMailbox if comps.len() < tree::MAX_DEPTH => {
                            if let Ok(sub) = dir.sub(n) {
                                let mut c = comps.clone();
                                c.push(n.to_string_lossy().into_owned());
                                stack.push((sub, c));
                            }
                        }
                        _ => {}
                    }
                }
                if comps.is_empty() || (files.is_empty() && store.is_empty()) {
                    continue;
                }
                let Some(name) = MailboxName::from_dir_components(comps.iter().map(String::as_str)) else { continue };
                let mut own: Option<Id> = None;
                let mut own_last_uid = 0;
                // Header first: it names the identity the others must agree with.
                store.sort_by_key(|n| match n.to_str() {
                    Some(layout::HEADER_FILE) => 0,
                    Some(layout::INDEX_FILE) => 1,
                    _ => 2,
                });
                let mut mine = Catalog::default();
                for n in store {
                    let path = dir.path.join(&n);
                    let Ok(bytes) = read_whole(&dir, &n) else { continue };
                    let kind = identify(&bytes[..bytes.len().min(IDENTIFY_LEN)]);
                    add_store_file(&mut mine, &path, kind, &bytes);
                    if let Some(id) = add_store_file(&mut s.catalog, &path, kind, &bytes) {
                        if own.is_none() {
                            own = Some(id);
                        }
                        if own == Some(id) {
                            let k = &s.catalog.known[&id];
                            own_last_uid = own_last_uid.max(k.last_uid);
                        }
                    }
                }
                files.sort_unstable();
                let own_records = own
                    .and_then(|id| mine.known.get(&id))
                    .map(|k| k.live().map(|r| (r.uid, r.content_hash)).collect())
                    .unwrap_or_default();
                s.in_place.push(InPlace {
                    partition: pname.clone(),
                    domain: domain.to_string(),
                    name,
                    dir: dir.path.clone(),
                    own,
                    own_last_uid,
                    files,
                    own_records,
                });
            }
        }
    }
    s.in_place.sort_by(|a, b| (&a.domain, &a.name).cmp(&(&b.domain, &b.name)));
}

/// Every file of one tree: store files into the catalog (each directory's identity noted),
/// database files listed, the rest listed as candidates.
fn survey_tree(s: &mut Survey, i: usize) {
    let Some(root) = s.sources[i].dir.as_ref() else { return };
    let (found, skipped) = tree::walk(root, TREE_LIMIT, |_, _| true);
    s.skipped.extend(skipped.items);
    let mut dir_ids: HashMap<Vec<OsString>, Id> = HashMap::new();
    let mut pending: Vec<(Vec<OsString>, Meta, bool)> = Vec::new();
    let mut cur: Option<(Vec<OsString>, Dir)> = None;
    for f in found {
        let parent: Vec<OsString> = f.rel[..f.rel.len() - 1].to_vec();
        let name = f.rel.last().cloned().unwrap_or_default();
        if cur.as_ref().is_none_or(|(p, _)| *p != parent) {
            cur = tree::descend(root, &parent).ok().map(|d| (parent.clone(), d));
        }
        let Some((_, dir)) = cur.as_ref() else {
            s.skipped.push((root.path.join(f.rel_path()), "its directory cannot be opened".into()));
            continue;
        };
        let path = root.path.join(f.rel_path());
        let head = match read_head(dir, &name) {
            Ok(h) => h,
            Err(e) => {
                s.skipped.push((path, e.to_string()));
                continue;
            }
        };
        let kind = identify(&head);
        match kind {
            FileKind::Header | FileKind::Index | FileKind::Log | FileKind::Ledger => match read_whole(dir, &name) {
                Ok(bytes) => {
                    match add_store_file(&mut s.catalog, &path, kind, &bytes) {
                        Some(id) => {
                            dir_ids.entry(parent).or_insert(id);
                        }
                        None if kind != FileKind::Ledger => s.skipped.push((
                            path.clone(),
                            format!(
                                "{} of {} bytes, cut short or damaged: its header does not verify, nothing in it is used",
                                kind_name(kind),
                                bytes.len()
                            ),
                        )),
                        None => {}
                    }
                    s.store_files.push((path, kind));
                }
                Err(e) => s.skipped.push((path, e.to_string())),
            },
            FileKind::Cache | FileKind::Listings => s.store_files.push((path, kind)),
            FileKind::DbSnapshot | FileKind::DbLog => match db_home_name(kind, &head) {
                Some(home_name) => {
                    s.db_files.push(DbFile { source: i, rel: f.rel.clone(), home_name, size: f.meta.size });
                    s.store_files.push((path, kind));
                }
                None => s.skipped.push((path, "a database file whose header is damaged".into())),
            },
            FileKind::Message => pending.push((f.rel, f.meta, true)),
            FileKind::Other => {
                // A message file that lost its first bytes still matches by BLAKE3 if its
                // size is wanted; anything else is foreign.
                pending.push((f.rel, f.meta, false));
            }
        }
    }
    for (rel, meta, message_like) in pending {
        let parent = rel[..rel.len() - 1].to_vec();
        let name_uid = match rel.last().map(|n| layout::classify(n.as_bytes())) {
            Some(EntryKind::Message(u)) => Some(u),
            _ => None,
        };
        if !message_like {
            s.foreign += 1;
        }
        s.candidates.push(Candidate {
            source: i,
            context: dir_ids.get(&parent).copied(),
            rel,
            meta,
            name_uid,
            message_like,
            offset: None,
        });
    }
}

use std::os::unix::ffi::OsStrExt as _;
