//! Export: a mailbox (and, for Maildir, its sub-mailboxes) handed out as a Maildir tree
//! or an mbox file, with flags, keywords and internal dates, in UID order.
//!
//! **Maildir**: each message is written to `tmp/`, given the internal date as its mtime,
//! then renamed into `cur/` as `DATE.MUIDVUIDVALIDITY.mstore,S=SIZE[,Z=+hhmm]:2,FLAGS`
//! (`Z`: the internal date's zone, when it is not UTC, for our import; flag letters in
//! ASCII order: `D` draft, `F` flagged, `P` for the `$Forwarded` keyword, `R` answered,
//! `S` seen, `T` deleted, then keyword letters). `$Forwarded` is also written as a keyword
//! letter: Dovecot does not turn `P` into a keyword. `dovecot-keywords` names the keyword
//! letters (26 at most: further keywords are reported and not written), and
//! `dovecot-uidlist` (version 3) gives every file its UID and the mailbox its UID
//! validity and next UID, so Dovecot, and our own import into a new mailbox, keep every
//! UID, the UID validity and keywords. Sub-mailboxes
//! (with `recursive`) become Maildir++ folders `.a.b` with a `maildirfolder` file.
//!
//! **mbox**: see [`super::mbox::write_message`]. The file is written under a temporary
//! name in the destination directory, synced and renamed into place, so a crash never
//! leaves a half-written mbox under the requested name.
//!
//! Export reads without the mailbox lock (the store's files are replaced by rename, and
//! message files are write-once); a message expunged meanwhile is reported and skipped.
//! The destination must not exist (an empty directory is accepted for Maildir): nothing
//! is ever overwritten.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::flags::SystemFlags;
use crate::fs::{self, Fs, RealFs, TempFile};
use crate::io::Durability;
use crate::layout::MailboxName;
use crate::message::DateTime;
use crate::store::{Mailbox, Store};
use crate::util::hex;

use super::Progress;
use super::maildir::PASSED_KEYWORD;

/// What an export did.
#[derive(Debug, Default)]
pub struct ExportSummary {
    /// (mailbox, messages, bytes) per mailbox written.
    pub mailboxes: Vec<(String, u64, u64)>,
    /// Messages written changed (mbox: own bookkeeping fields or a missing final line end).
    pub changed: u64,
    /// Problems (a message that could not be read, keywords beyond 26 letters...).
    pub problems: Vec<String>,
    /// mbox: messages without a final line end. The file keeps them whole for readers that
    /// honour Content-Length (ours); others (Python's `mailbox`, most clients) read them
    /// with one line end added, as mbox cannot end a message anywhere but at a line end.
    pub no_final_eol: u64,
}

impl ExportSummary {
    /// Messages written.
    pub fn messages(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.1).sum()
    }

    /// The human summary.
    pub fn render_text(&self, dest: &Path) -> String {
        let mut s = String::new();
        for (name, n, b) in &self.mailboxes {
            s.push_str(&format!("{name}: {n} exported ({b} bytes)\n"));
        }
        s.push_str(&format!(
            "export: {} messages from {} mailboxes to {}, {} problems",
            self.messages(),
            self.mailboxes.len(),
            dest.display(),
            self.problems.len()
        ));
        if self.changed > 0 {
            s.push_str(&format!(", {} messages could not be written unchanged (see above)", self.changed));
        }
        if self.no_final_eol > 0 {
            s.push_str(&format!(
                "\nnote: {} messages have no final line end: mbox keeps them whole only for readers that honour Content-Length (mstore import does); Python's mailbox and most mail clients read them with one line end added (export maildir keeps them byte for byte)",
                self.no_final_eol
            ));
        }
        s.push('\n');
        s
    }
}

/// What an export may write into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// A new file only.
    NewFile,
    /// A new directory, or an empty one.
    EmptyDir,
}

fn refuse_existing(dest: &Path, kind: Dest) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", dest, e)),
        Ok(m) if kind == Dest::EmptyDir && m.is_dir() => {
            if std::fs::read_dir(dest).ctx("list", dest)?.next().is_some() {
                Err(Error::Invalid(format!("{} exists and is not empty; export never overwrites", dest.display())))
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(Error::Invalid(format!("{} exists; export never overwrites", dest.display()))),
    }
}

/// Refuse a destination whose directory someone other than the caller and root can
/// change: files created there could be redirected by them (a planted link, a swapped
/// directory), and run as root, export would write root's files wherever they like.
fn refuse_foreign_destination(dest: &Path) -> Result<()> {
    let dir = if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
        dest.to_path_buf()
    } else {
        match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let me = rustix::process::geteuid().as_raw();
    match crate::privs::controlled_by_others(&dir, me) {
        None => Ok(()),
        Some((d, who)) => Err(Error::Invalid(format!(
            "refusing to export to {}: {} can be changed by {who}, who could redirect the files export creates there; export as that user (su -s /bin/sh USER -c 'mstore export ...'), or into a directory only you{} can change, then hand the result over",
            dest.display(),
            d.display(),
            if me == 0 { "" } else { " and root" }
        ))),
    }
}

/// A message as export hands it out: its file must be the one its record describes (size
/// and BLAKE3 content hash), else it is reported and not exported. (The file is opened
/// without following a link and must be a regular file: see `Mailbox::read_message`.)
fn read_checked(mb: &Mailbox, r: &crate::codec::index::MessageRecord) -> std::result::Result<crate::io::Bytes, String> {
    let label = mb.place().label();
    let data = mb.read_message(r.uid).map_err(|e| format!("{label}: UID {}: {e}: not exported", r.uid))?;
    if data.len() as u64 != r.size {
        return Err(format!(
            "{label}: UID {}: the file holds {} bytes but its record says {}: not exported (run mstore verify, then reconstruct --verify-content)",
            r.uid,
            data.len(),
            r.size
        ));
    }
    if r.content_hash != [0; 32] {
        let h = blake3::hash(&data);
        if h.as_bytes() != &r.content_hash {
            return Err(format!(
                "{label}: UID {}: its bytes do not match its record (BLAKE3 {} but the record says {}): not exported (run mstore verify, then reconstruct --verify-content)",
                r.uid,
                &h.to_hex()[..16],
                &hex(&r.content_hash)[..16]
            ));
        }
    }
    Ok(data)
}

/// The mailbox and, with `recursive`, every mailbox below it, sorted.
fn mailboxes(store: &Store, domain: &str, name: &MailboxName, recursive: bool) -> Result<Vec<MailboxName>> {
    store.entry(domain, name)?;
    if !recursive {
        return Ok(vec![name.clone()]);
    }
    Ok(store.list(Some(domain))?.into_iter().map(|e| e.name).filter(|n| n.is_within(name)).collect())
}

/// Maildir flag letters of a record (without keyword letters).
fn system_letters(system: u32, forwarded: bool) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (SystemFlags::DRAFT, 'D'),
        (SystemFlags::FLAGGED, 'F'),
        (u32::MAX, 'P'),
        (SystemFlags::ANSWERED, 'R'),
        (SystemFlags::SEEN, 'S'),
        (SystemFlags::DELETED, 'T'),
    ] {
        let on = if c == 'P' { forwarded } else { system & bit != 0 };
        if on {
            s.push(c);
        }
    }
    s
}

/// Export `domain`'s mailbox `name` to the Maildir `dest` (created; it must not exist or
/// be an empty directory).
pub fn export_maildir(
    store: &Store,
    domain: &str,
    name: &MailboxName,
    dest: &Path,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    let domain = crate::layout::domain(domain)?;
    let names = mailboxes(store, &domain, name, recursive)?;
    refuse_existing(dest, Dest::EmptyDir)?;
    refuse_foreign_destination(dest)?;
    let d = store.config().durability;
    let mut summary = ExportSummary::default();
    let mut opened = Vec::new();
    for n in &names {
        opened.push((n.clone(), store.open_mailbox(&domain, n)?));
    }
    progress.start(opened.iter().map(|(_, mb)| mb.records().len() as u64).sum(), crate::import::Unit::Files);
    RealFs.create_dir_all(dest).ctx("create", dest)?;
    for (n, mb) in &opened {
        let dir = if n == name {
            dest.to_path_buf()
        } else {
            let rest = &n.as_str()[name.as_str().len() + 1..];
            if rest.split('/').any(|c| c.contains('.') || c.starts_with('.')) {
                summary.problems.push(format!(
                    "{n}: a name component holds '.', which Maildir++ uses as its separator: not exported"
                ));
                continue;
            }
            dest.join(format!(".{}", rest.replace('/', ".")))
        };
        let (count, bytes) = write_maildir_folder(mb, &dir, n != name, d, progress, &mut summary.problems)?;
        summary.mailboxes.push((n.to_string(), count, bytes));
    }
    if let Some(parent) = dest.parent() {
        fs::sync_dir(&RealFs, parent, d).ctx("sync directory", parent)?;
    }
    Ok(summary)
}

fn write_maildir_folder(
    mb: &Mailbox,
    dir: &Path,
    sub: bool,
    d: Durability,
    progress: &dyn Progress,
    problems: &mut Vec<String>,
) -> Result<(u64, u64)> {
    let rfs: &dyn Fs = &RealFs;
    for s in ["cur", "new", "tmp"] {
        let p = dir.join(s);
        rfs.create_dir_all(&p).ctx("create", &p)?;
    }
    if sub {
        fs::atomic_write(rfs, dir, "maildirfolder", b"", d).ctx("write", &dir.join("maildirfolder"))?;
    }
    let label = mb.place().label();
    // Keyword letters: in slot order, for the keywords some message carries.
    let mut used = crate::flags::UserFlags::default();
    for r in mb.records() {
        used.0 |= r.user_flags.0;
    }
    let mut letters: Vec<(usize, u8)> = Vec::new(); // slot → letter
    let mut keywords_file = String::new();
    let mut lost = Vec::new();
    for slot in used.slots() {
        let Some(kw) = mb.header().flag_name(slot) else { continue };
        if letters.len() < 26 {
            let letter = b'a' + letters.len() as u8;
            keywords_file.push_str(&format!("{} {kw}\n", letters.len()));
            letters.push((slot, letter));
        } else {
            lost.push(kw.to_string());
        }
    }
    if !lost.is_empty() {
        problems.push(format!("{label}: Maildir has 26 keyword letters; keywords {lost:?} were not exported"));
    }
    let forwarded_slot = mb.header().flag_slot(PASSED_KEYWORD);
    let mut uidlist =
        format!("3 V{} N{} G{}\n", mb.uid_validity(), mb.last_uid().saturating_add(1), hex(&mb.header().unique_id));
    let (mut count, mut bytes) = (0u64, 0u64);
    let pid = std::process::id();
    for r in mb.records() {
        progress.advance(1);
        let data = match read_checked(mb, r) {
            Ok(b) => b,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let zone = if r.internal_offset != 0 { super::maildir::zone_field(r.internal_offset) } else { String::new() };
        let base = format!("{}.M{}V{}.mstore,S={}{zone}", r.internal_date, r.uid, mb.uid_validity(), data.len());
        let mut info = system_letters(r.system_flags.0, forwarded_slot.is_some_and(|s| r.user_flags.has(s)));
        for &(slot, letter) in &letters {
            if r.user_flags.has(slot) {
                info.push(letter as char);
            }
        }
        let tmp_name = format!("{base}.{pid}");
        let tmp = dir.join("tmp").join(&tmp_name);
        if !fs::create_new_file(rfs, &dir.join("tmp"), &tmp_name, &data, Some(r.internal_date), d)
            .ctx("create", &tmp)?
        {
            return Err(Error::Invalid(format!("{} exists; export never overwrites", tmp.display())));
        }
        let target = dir.join("cur").join(format!("{base}:2,{info}"));
        rfs.rename_noreplace(&tmp, &target).ctx("rename", &tmp)?;
        uidlist.push_str(&format!("{} :{base}\n", r.uid));
        count += 1;
        bytes += data.len() as u64;
    }
    for s in ["cur", "tmp"] {
        let p = dir.join(s);
        fs::sync_dir(rfs, &p, d).ctx("sync directory", &p)?;
    }
    fs::atomic_write(rfs, dir, "dovecot-keywords", keywords_file.as_bytes(), d)
        .ctx("write", &dir.join("dovecot-keywords"))?;
    fs::atomic_write(rfs, dir, "dovecot-uidlist", uidlist.as_bytes(), d).ctx("write", &dir.join("dovecot-uidlist"))?;
    Ok((count, bytes))
}

/// Export `domain`'s mailbox `name` to the mbox file `dest` (which must not exist).
pub fn export_mbox(
    store: &Store,
    domain: &str,
    name: &MailboxName,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    let domain = crate::layout::domain(domain)?;
    let mb = store.open_mailbox(&domain, name)?;
    refuse_existing(dest, Dest::NewFile)?;
    refuse_foreign_destination(dest)?;
    let d = store.config().durability;
    let parent: PathBuf = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = dest
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} names no file", dest.display())))?
        .to_string_lossy()
        .into_owned();
    let mut summary = ExportSummary::default();
    progress.start(mb.records().len() as u64, crate::import::Unit::Files);
    let rfs: &dyn Fs = &RealFs;
    let result = (|| -> Result<(u64, u64)> {
        let f = TempFile::create(rfs, &parent, &file_name).ctx("create a temporary file in", &parent)?;
        let tmp = f.path().to_path_buf();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let (mut count, mut bytes) = (0u64, 0u64);
        let label = mb.place().label();
        for r in mb.records() {
            progress.advance(1);
            let data = match read_checked(&mb, r) {
                Ok(b) => b,
                Err(p) => {
                    summary.problems.push(p);
                    continue;
                }
            };
            let kw = mb.user_flag_names(r.user_flags);
            let date = DateTime { unix: r.internal_date, offset_minutes: r.internal_offset };
            let o = super::mbox::write_message(&mut w, &data, date, r.system_flags.0, &kw).ctx("write", &tmp)?;
            if o.changed {
                summary.changed += 1;
                summary.problems.push(format!(
                    "{label}: UID {}: written changed (its own Status/X-Status/X-Keywords/Content-Length fields were replaced, or a line end was added to a header-only message)",
                    r.uid
                ));
            }
            summary.no_final_eol += u64::from(!data.ends_with(b"\n"));
            count += 1;
            bytes += data.len() as u64;
        }
        let mut f = w.into_inner().map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        f.finish(d).ctx("sync", &tmp)?;
        if !f.persist_noreplace(dest).ctx("rename into place", dest)? {
            return Err(Error::Invalid(format!("{} exists; export never overwrites", dest.display())));
        }
        fs::sync_dir(rfs, &parent, d).ctx("sync directory", &parent)?;
        Ok((count, bytes))
    })();
    match result {
        Ok((count, bytes)) => {
            summary.mailboxes.push((name.to_string(), count, bytes));
            Ok(summary)
        }
        // Our own temporary file, never renamed into place, was removed on the way out.
        Err(e) => Err(e),
    }
}
