//! Bringing mail in from Maildir trees and mbox files, and handing it out again
//! ([`export`]), with flags, keywords and internal dates kept.
//!
//! # Map
//!
//! - [`maildir`]: finding folders and their messages (flags from file names, keywords
//!   from `dovecot-keywords`, order from `dovecot-uidlist`).
//! - [`mbox`]: the streaming mbox reader (From_ lines, quoting, `Content-Length`, the
//!   `Status`/`X-Status`/`X-Keywords` fields) and the writer.
//! - [`compress`]: gzip, bzip2, xz and lzip mbox files, told by their first bytes.
//! - [`export`]: a mailbox to a Maildir (with `dovecot-uidlist` and `dovecot-keywords`) or
//!   to an mbox file.
//! - this module: the driver that appends what the readers find, in batches.
//!
//! # Batches, crashes and re-runs
//!
//! Messages are appended with [`Mailbox::append`] in batches of at most
//! [`Options::batch_messages`] messages or [`Options::batch_bytes`] bytes, so memory stays
//! bounded whatever the size of the source (an mbox is read as a stream; a batch holds
//! its messages and nothing else). Each batch is committed by one fsync of the mailbox's
//! change log (see `formats/changelog.md`, "Write protocol"): after a crash or a kill, a
//! mailbox holds every batch that was committed, complete with flags and dates, and
//! nothing of the batch in flight except, at worst, its message files without records
//! (orphans). Ctrl-C (SIGINT, SIGTERM) is gentler: the command stops reading, commits the
//! batch in hand, and says where it stopped.
//!
//! A re-run **resumes**: a message whose bytes (BLAKE3) and internal date are already in
//! the target mailbox as many times as it has been met so far in the source is skipped,
//! so the messages of committed batches are not appended twice, while true duplicates
//! inside one source are kept ([`Options::duplicates`] turns the check off). A mailbox
//! with orphans is refused with the `reconstruct` command that indexes them first (the
//! orphans are then present, and the re-run skips them; flags that reconstruct could not
//! know are given back from the source when the record has none).
//!
//! # Errors
//!
//! A malformed message or folder is an [`ImportError`] naming the file and the byte
//! offset; it is counted in the summary and everything else is still imported.

pub mod compress;
pub mod export;
pub mod maildir;
pub mod mbox;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::flags::{DateSource, SystemFlags, valid_user_flag};
use crate::format::header::MAX_USER_FLAGS;
use crate::io::Bytes;
use crate::layout::{self, EntryKind, MailboxName};
use crate::message::DateTime;
use crate::store::{CreateOptions, FlagOp, Mailbox, NewMessage, Store};

pub use mbox::Quoting;

/// A problem with one source file, folder or message.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A message or folder that cannot be imported as it is.
    #[error("{}: byte offset {offset}: {what}", path.display())]
    Malformed {
        /// The source file or folder.
        path: PathBuf,
        /// Byte offset (in the uncompressed stream for compressed files).
        offset: u64,
        /// What is wrong, and what was done.
        what: String,
    },
    /// The source is not what the command reads.
    #[error("{}: not {expected}: {why}", path.display())]
    NotAMailbox {
        /// The source.
        path: PathBuf,
        /// "an mbox file", "a Maildir directory".
        expected: &'static str,
        /// Why.
        why: String,
    },
    /// A symbolic link in a source tree: never followed (it could lead into the store,
    /// another user's mail, `/`, or back into the tree).
    #[error("{}: a symbolic link{}: not followed (import never follows a link inside the source tree)", path.display(), target.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default())]
    Link {
        /// The link.
        path: PathBuf,
        /// Where it points, if it could be read.
        target: Option<PathBuf>,
    },
    /// Reading the source failed (decompression errors included).
    #[error("{}: cannot read at byte offset {offset}: {source}", path.display())]
    Read {
        /// The source.
        path: PathBuf,
        /// Where reading stopped.
        offset: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Most bytes read from a Maildir metadata file (`dovecot-uidlist`, `dovecot-keywords`):
/// far more than a million messages need, so a damaged or hostile one cannot fill memory.
pub const MAX_METADATA_FILE: u64 = 256 << 20;

/// How an import runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Partition of mailboxes that the import creates (default: the default partition).
    pub partition: Option<String>,
    /// Most messages per batch.
    pub batch_messages: usize,
    /// Most bytes per batch (a single larger message is a batch of its own).
    pub batch_bytes: usize,
    /// Append messages even when the same bytes and date are already in the mailbox.
    pub duplicates: bool,
    /// How mbox quoting is undone.
    pub quoting: Quoting,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            partition: None,
            batch_messages: 256,
            batch_bytes: 64 << 20,
            duplicates: false,
            quoting: Quoting::Mboxrd,
        }
    }
}

/// What an import counts its progress in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes of mbox files.
    Bytes,
    /// Message files of a Maildir tree.
    Files,
}

/// Progress reports (the CLI draws a bar; the library does not care).
pub trait Progress: Sync {
    /// The amount of work: bytes of mbox files, or message files of a Maildir tree.
    fn start(&self, _total: u64, _unit: Unit) {}
    /// Work done since the last call.
    fn advance(&self, _done: u64) {}
    /// Messages appended so far.
    fn messages(&self, _count: u64) {}
}

pub use crate::report::NoProgress;
impl Progress for NoProgress {}

/// Counts for one mailbox.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct MailboxCount {
    /// The mailbox (IMAP name).
    pub mailbox: String,
    /// Whether the import created it.
    pub created: bool,
    /// Messages appended.
    pub imported: u64,
    /// Messages skipped because they were already there (a re-run).
    pub already_present: u64,
    /// Bytes appended.
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per mailbox, in the order they were first written.
    pub mailboxes: Vec<MailboxCount>,
    /// Problems: each names the file and offset; the rest was imported.
    pub errors: Vec<ImportError>,
    /// Things worth saying that lost nothing (skipped non-message files, keyword letters
    /// without a name, internal pseudo messages).
    pub notes: Vec<String>,
    /// The run was interrupted (Ctrl-C); what was read before it is committed.
    pub interrupted: bool,
}

impl Summary {
    /// Messages appended in all mailboxes.
    pub fn imported(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.imported).sum()
    }
    /// Messages skipped as already present.
    pub fn already_present(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.already_present).sum()
    }
    /// The human summary.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for m in &self.mailboxes {
            s.push_str(&format!(
                "{}: {} imported ({} bytes){}{}\n",
                m.mailbox,
                m.imported,
                m.bytes,
                if m.already_present > 0 { format!(", {} already present", m.already_present) } else { String::new() },
                if m.created { ", mailbox created" } else { "" },
            ));
        }
        s.push_str(&format!(
            "import: {} messages imported into {} mailboxes, {} already present, {} errors{}\n",
            self.imported(),
            self.mailboxes.len(),
            self.already_present(),
            self.errors.len(),
            if self.interrupted { ", interrupted (run it again to resume)" } else { "" },
        ));
        s
    }
}

/// A message waiting in a batch.
struct Pending {
    /// The UID the source gives it (kept when the target keeps the source's UIDs).
    uid: Option<u32>,
    bytes: Payload,
    date: DateTime,
    system_flags: u32,
    user_flags: Vec<String>,
}

enum Payload {
    Owned(Vec<u8>),
    File(Bytes),
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::File(b) => b,
        }
    }
}

type Key = ([u8; 32], i64);

/// One target mailbox being written.
struct Target {
    mb: Mailbox,
    /// (hash, date) → UIDs present before the run (only when the mailbox was not empty).
    present: Option<HashMap<Key, Vec<u32>>>,
    batch: Vec<Pending>,
    batch_bytes: usize,
    /// Names this batch will assign new slots for.
    new_names: Vec<String>,
    dropped_names: Vec<String>,
    /// Flags to give back to records that reconstruct made without them.
    restore: Vec<(u32, u32, Vec<String>)>,
    /// The source's UIDs are kept (a new mailbox given the source's UID validity).
    keep_uids: bool,
    count: MailboxCount,
}

/// UIDs of a Maildir source: its UID validity, and the file each listed UID names.
struct SourceUids<'a> {
    validity: u32,
    files: HashMap<u32, &'a Path>,
}

impl SourceUids<'_> {
    /// Whether `mb` holds only messages of this source at their source UIDs (size and date
    /// alike): an import of it that was interrupted, which goes on keeping UIDs.
    fn resumed_in(&self, mb: &Mailbox) -> bool {
        mb.uid_validity() == self.validity
            && mb.records().iter().all(|r| {
                self.files
                    .get(&r.uid)
                    .and_then(|p| std::fs::symlink_metadata(p).ok())
                    .is_some_and(|m| m.is_file() && m.len() == r.size && m.mtime() == r.internal_date)
            })
    }
}

/// Open (or create) a target mailbox, refusing one with orphan message files. With the
/// UIDs of a Maildir source (its `dovecot-uidlist`), a new mailbox gets the source's UID
/// validity and keeps its UIDs, and so does one an interrupted import of it created.
fn open_target(
    store: &Store,
    domain: &str,
    name: &MailboxName,
    opts: &Options,
    source: Option<&SourceUids<'_>>,
) -> Result<Target> {
    let uid_validity = source.map(|s| s.validity);
    let (mb, created) = match store.open_mailbox_locked(domain, name) {
        Ok(mb) => (mb, false),
        Err(Error::NoSuchMailbox { .. }) => {
            let mb = store.create_mailbox(
                domain,
                name,
                CreateOptions { partition: opts.partition.clone(), uid_validity, ..CreateOptions::default() },
            )?;
            (mb, true)
        }
        Err(e) => return Err(e),
    };
    let dir = &mb.place().dir;
    let mut orphans = 0u64;
    for e in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        if let EntryKind::Message(uid) = layout::classify(e.file_name().as_encoded_bytes()) {
            if uid > mb.last_uid() {
                orphans += 1;
            }
        }
    }
    if orphans > 0 {
        return Err(Error::NeedsRepair {
            reason: format!(
                "mailbox {} holds {orphans} message files above its last UID that no record names (left by an interrupted append or import); index them first, then run the import again (messages already present are skipped)",
                mb.place().label()
            ),
            fix: mb.place().reconstruct_command(),
        });
    }
    let present = if opts.duplicates || mb.records().is_empty() {
        None
    } else {
        let mut map: HashMap<Key, Vec<u32>> = HashMap::with_capacity(mb.records().len());
        for r in mb.records() {
            map.entry((r.content_hash, r.internal_date)).or_default().push(r.uid);
        }
        Some(map)
    };
    let count = MailboxCount { mailbox: name.to_string(), created, ..MailboxCount::default() };
    let keep_uids = source.is_some_and(|s| (created && mb.uid_validity() == s.validity) || s.resumed_in(&mb));
    Ok(Target {
        keep_uids,
        mb,
        present,
        batch: Vec::new(),
        batch_bytes: 0,
        new_names: Vec::new(),
        dropped_names: Vec::new(),
        restore: Vec::new(),
        count,
    })
}

impl Target {
    /// Queue a message; flushes when the batch is full.
    fn add(&mut self, mut p: Pending, opts: &Options, progress: &dyn Progress, notes: &mut Vec<String>) -> Result<()> {
        if let Some(present) = &mut self.present {
            let key = (crate::store::derive::content_hash(&p.bytes), p.date.unix);
            if let Some(uids) = present.get_mut(&key) {
                if let Some(uid) = uids.pop() {
                    if uids.is_empty() {
                        present.remove(&key);
                    }
                    self.count.already_present += 1;
                    if let Some(r) = self.mb.record(uid) {
                        let bare = r.system_flags.0 == 0 && r.user_flags.0 == 0;
                        let found = matches!(r.date_source, DateSource::FileMtime | DateSource::Received);
                        if bare && found && (p.system_flags != 0 || !p.user_flags.is_empty()) {
                            self.restore.push((uid, p.system_flags, p.user_flags));
                        }
                    }
                    return Ok(());
                }
            }
        }
        // User flags: IMAP atoms only, and no more than the index has slots for.
        let used = self.mb.header().flags.iter().filter(|f| f.is_some()).count();
        let mut keep = Vec::with_capacity(p.user_flags.len());
        for f in p.user_flags.drain(..) {
            if !valid_user_flag(&f) {
                continue;
            }
            if self.mb.header().flag_slot(&f).is_some() || self.new_names.contains(&f) {
                keep.push(f);
            } else if used + self.new_names.len() < MAX_USER_FLAGS {
                self.new_names.push(f.clone());
                keep.push(f);
            } else if !self.dropped_names.contains(&f) {
                notes.push(format!(
                    "{}: keyword {f:?} not kept: the mailbox already uses all {MAX_USER_FLAGS} user flags",
                    self.count.mailbox
                ));
                self.dropped_names.push(f);
            }
        }
        p.user_flags = keep;
        self.batch_bytes += p.bytes.len();
        self.batch.push(p);
        if self.batch.len() >= opts.batch_messages || self.batch_bytes >= opts.batch_bytes {
            self.flush(progress)?;
        }
        Ok(())
    }

    /// Append the batch (one commit).
    fn flush(&mut self, progress: &dyn Progress) -> Result<()> {
        if !self.restore.is_empty() {
            for (uid, system, user) in std::mem::take(&mut self.restore) {
                self.mb.store_flags(&[uid], FlagOp::Add, system & SystemFlags::ALL, &user)?;
            }
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let msgs: Vec<NewMessage<'_>> = self
            .batch
            .iter()
            .map(|p| NewMessage {
                bytes: &p.bytes,
                internal_date: Some(p.date),
                system_flags: p.system_flags,
                user_flags: p.user_flags.clone(),
            })
            .collect();
        let wanted: Vec<Option<u32>> =
            if self.keep_uids { self.batch.iter().map(|p| p.uid).collect() } else { Vec::new() };
        let uids = self.mb.append_at(&msgs, &wanted)?;
        self.count.imported += uids.len() as u64;
        self.count.bytes += self.batch_bytes as u64;
        progress.messages(uids.len() as u64);
        self.batch.clear();
        self.batch_bytes = 0;
        self.new_names.clear();
        Ok(())
    }
}

fn cancelled(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|c| c.load(Ordering::Relaxed))
}

/// Import the mbox `files` (in order) into `domain`'s mailbox `name` (created if
/// missing). A file that cannot be read or is not an mbox is reported and the others
/// are imported. `Err` only when the store itself fails.
pub fn import_mbox(
    store: &Store,
    domain: &str,
    name: &MailboxName,
    files: &[PathBuf],
    opts: &Options,
    progress: &dyn Progress,
    cancel: Option<&AtomicBool>,
) -> Result<Summary> {
    let domain = layout::domain(domain)?;
    let mut summary = Summary::default();
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    progress.start(total, Unit::Bytes);
    let mut target = open_target(store, &domain, name, opts, None)?;
    for path in files {
        if cancelled(cancel) {
            summary.interrupted = true;
            break;
        }
        let opened = match compress::open(path) {
            Ok(o) => o,
            Err(e) => {
                summary.errors.push(e);
                continue;
            }
        };
        let consumed = opened.consumed.clone();
        let mut reported = 0u64;
        let mut reader = mbox::MboxReader::new(opened.reader, path, opts.quoting);
        while let Some(item) = reader.next() {
            match item {
                Ok(m) => {
                    if m.internal {
                        summary.notes.push(format!(
                            "{}: byte offset {}: the folder's internal pseudo message (X-IMAP) was not imported",
                            path.display(),
                            m.offset
                        ));
                        continue;
                    }
                    if !m.bad_keywords.is_empty() {
                        summary.notes.push(format!(
                            "{}: byte offset {}: X-Keywords {:?} are not IMAP atoms and were not kept",
                            path.display(),
                            m.offset,
                            m.bad_keywords
                        ));
                    }
                    let p = Pending {
                        uid: None,
                        bytes: Payload::Owned(m.bytes),
                        date: m.from.date,
                        system_flags: m.system_flags,
                        user_flags: m.keywords,
                    };
                    target.add(p, opts, progress, &mut summary.notes)?;
                }
                Err(e) => summary.errors.push(e),
            }
            let now = consumed.load(Ordering::Relaxed);
            progress.advance(now.saturating_sub(reported));
            reported = now;
            if cancelled(cancel) {
                summary.interrupted = true;
                break;
            }
        }
        if opened.compression != compress::Compression::None && reader.offset() == 0 {
            summary.notes.push(format!("{}: {} file is empty", path.display(), opened.compression.name()));
        }
    }
    target.flush(progress)?;
    summary.mailboxes.push(target.count);
    Ok(summary)
}

/// Import the Maildir tree at `root` into `domain`'s mailbox `name` and sub-mailboxes
/// (see [`maildir`] for what is a folder). Mailboxes are created as needed.
pub fn import_maildir(
    store: &Store,
    domain: &str,
    name: &MailboxName,
    root: &Path,
    opts: &Options,
    progress: &dyn Progress,
    cancel: Option<&AtomicBool>,
) -> Result<Summary> {
    let domain = layout::domain(domain)?;
    let mut summary = Summary::default();
    let mut problems = Vec::new();
    // Every file read must lie inside the tree the administrator named (whose own path
    // may be a link: it is resolved once, here).
    let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let folders = match maildir::discover(root, &mut problems) {
        Ok(f) => f,
        Err(e) => {
            summary.errors.push(e);
            return Ok(summary);
        }
    };
    summary.errors.append(&mut problems);
    // List everything first: the total drives the progress bar.
    let listed = list_folders(folders, name, &mut summary);
    let total: u64 = listed.iter().map(|l| l.2.len() as u64).sum();
    progress.start(total, Unit::Files);
    'folders: for (folder, mbname, entries) in listed {
        if cancelled(cancel) {
            summary.interrupted = true;
            break;
        }
        // The root mailbox always exists afterwards; a sub-folder only once it has mail.
        let header = maildir::read_uidlist_header(&folder.path);
        let source = header.map(|(validity, _)| SourceUids {
            validity,
            files: entries.iter().filter_map(|e| Some((e.uid?, e.path.as_path()))).collect(),
        });
        let mut target = if folder.components.is_empty() {
            Some(open_target(store, &domain, &mbname, opts, source.as_ref())?)
        } else {
            None
        };
        for e in &entries {
            progress.advance(1);
            match read_entry(e, folder.kind, &canonical_root) {
                Ok(Ok(p)) => {
                    if folder.kind == maildir::FolderKind::Loose && maildir::looks_like_mbox(&p.bytes) {
                        summary.notes.push(format!(
                            "{}: imported as one message, but it holds more than one From_ line after a blank line: if it is an mbox file, import it with `mstore import mbox`",
                            e.path.display()
                        ));
                    }
                    let t = match &mut target {
                        Some(t) => t,
                        None => target.insert(open_target(store, &domain, &mbname, opts, source.as_ref())?),
                    };
                    t.add(p, opts, progress, &mut summary.notes)?;
                }
                Ok(Err(why)) => summary.notes.push(format!("{}: {why}: skipped", e.path.display())),
                Err(err) => summary.errors.push(err),
            }
            if cancelled(cancel) {
                summary.interrupted = true;
                break;
            }
        }
        if let Some(mut t) = target {
            t.flush(progress)?;
            // The source's next UID: UIDs it gave to messages since expunged stay used.
            if t.keep_uids && !summary.interrupted {
                if let Some((_, next)) = header {
                    t.mb.reserve_uids(next.saturating_sub(1))?;
                }
            }
            summary.mailboxes.push(t.count);
        }
        if summary.interrupted {
            break 'folders;
        }
    }
    Ok(summary)
}

/// The folders that become mailboxes, each with its mailbox name and its messages; what
/// cannot be imported is noted in `summary`.
fn list_folders(
    folders: Vec<maildir::Folder>,
    name: &MailboxName,
    summary: &mut Summary,
) -> Vec<(maildir::Folder, MailboxName, Vec<maildir::MaildirEntry>)> {
    let mut listed = Vec::new();
    for f in folders {
        if f.kind == maildir::FolderKind::Container && !f.components.is_empty() {
            continue;
        }
        let full = if f.components.is_empty() {
            Ok(name.clone())
        } else {
            MailboxName::parse(&format!("{}/{}", name, f.components.join("/")))
        };
        let mbname = match full {
            Ok(n) => n,
            Err(e) => {
                summary.errors.push(ImportError::Malformed {
                    path: f.path.clone(),
                    offset: 0,
                    what: format!("folder cannot become a mailbox: {e}: skipped"),
                });
                continue;
            }
        };
        match maildir::list_messages(&f) {
            Ok((entries, unnamed)) => {
                if !unnamed.is_empty() {
                    summary.notes.push(format!(
                        "{}: keyword letters {:?} have no name in dovecot-keywords; kept as $MaildirKeyword_<letter>",
                        f.path.display(),
                        unnamed
                    ));
                }
                listed.push((f, mbname, entries));
            }
            Err(e) => summary.errors.push(e),
        }
    }
    listed
}

/// Read one Maildir or loose file: `Ok(Err(why))` for a loose file that is not a message.
fn read_entry(
    e: &maildir::MaildirEntry,
    kind: maildir::FolderKind,
    root: &Path,
) -> Result<std::result::Result<Pending, &'static str>, ImportError> {
    let read_err = |source| ImportError::Read { path: e.path.clone(), offset: 0, source };
    let file = maildir::open_source_file(&e.path, root)?;
    let meta = file.metadata().map_err(read_err)?;
    if meta.len() == 0 {
        return Err(ImportError::Malformed { path: e.path.clone(), offset: 0, what: "empty file: skipped".into() });
    }
    let bytes = crate::io::read_file_at(&file, meta.len(), crate::io::Map::Allow).map_err(read_err)?;
    if kind == maildir::FolderKind::Loose && !maildir::looks_like_message(&bytes[..bytes.len().min(4096)]) {
        return Ok(Err("not a message (no header field first)"));
    }
    Ok(Ok(Pending {
        uid: e.uid,
        bytes: Payload::File(bytes),
        date: DateTime { unix: meta.mtime(), offset_minutes: e.zone.unwrap_or(0) },
        system_flags: e.system_flags,
        user_flags: e.keywords.clone(),
    }))
}

#[cfg(test)]
mod tests;
