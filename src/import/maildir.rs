//! Maildir trees: finding the folders, listing their messages in order with their flags,
//! keywords and dates. Reading only; [`super::import_maildir`] appends what this finds.
//!
//! # Folders
//!
//! - A **Maildir** is a directory with `cur/` or `new/` (either may be missing; `tmp/` is
//!   never read: files there are deliveries in progress). Its messages are the files of
//!   `cur/` and `new/`; the other files at its top (`dovecot-uidlist`,
//!   `dovecot-keywords`, `maildirfolder`, indexes) are metadata.
//! - **Maildir++** sub-folders are directories of a Maildir named `.a.b`: the
//!   sub-mailbox `a/b` (names are modified UTF-7, as Courier and Dovecot write them).
//! - **Nested** folders (Dovecot's `LAYOUT=fs`, mu, notmuch): any other sub-directory is
//!   the sub-mailbox of its name, recursively.
//! - A directory with neither `cur/` nor `new/` is a **loose** folder: each regular file
//!   in it whose first line is a header field (or a Unix `From ` line) is a message; other
//!   files (licences, READMEs) are reported and skipped. A file that starts with a From_
//!   line and has another one after a blank line may be an mbox file (or a message with
//!   a `git format-patch` attachment): it is imported as one message, with a note
//!   pointing to `mstore import mbox`. A sub-folder becomes a mailbox only if it holds a
//!   message.
//!
//! Files and directories whose names start with `.` are never messages (Maildir rule).
//!
//! # Messages
//!
//! The info part of a file name (`:2,FLAGS`; also `;2,` and `!2,`, as some Windows and mu
//! setups write) gives the flags: `S` `\Seen`, `R` `\Answered`, `F` `\Flagged`, `T`
//! `\Deleted`, `D` `\Draft`, `P` (passed) the keyword `$Forwarded`; the letters `a`–`z`
//! are keywords named by `dovecot-keywords` (a letter with no name there becomes
//! `$MaildirKeyword_x`, reported once per folder). Files of `new/` have no info.
//!
//! Order: by UID when `dovecot-uidlist` names the file (matched by the part of its name
//! before the info), then the others in delivery order (the number that starts the name,
//! then the name). The internal date is the file's modification time, which is where
//! Dovecot and Courier keep it (`dovecot-uidlist` holds UIDs, GUIDs and sizes, no date);
//! its zone comes from a `,Z=+hhmm` field of the name before the info, where our export
//! writes it (Maildir has no place for it; Dovecot ignores fields it does not know).
//!
//! UIDs: when the target mailbox is new (or has the UID validity of the folder's
//! `dovecot-uidlist`, as a resumed import's does), it gets that UID validity, each message
//! the UID the list gives it and the mailbox the list's next UID, so a Maildir export
//! read back by import keeps every UID. Into a mailbox of another UID validity, messages
//! are appended at new UIDs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ImportError;
use crate::flags::SystemFlags;

/// The keyword that the `P` (passed) letter stands for.
pub const PASSED_KEYWORD: &str = "$Forwarded";

/// What kind of folder a directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// A Maildir (`cur/` or `new/`).
    Maildir,
    /// A plain directory of message files.
    Loose,
    /// A directory holding only sub-folders.
    Container,
}

/// A folder found under the import root.
#[derive(Clone, Debug)]
pub struct Folder {
    /// Its directory.
    pub path: PathBuf,
    /// Mailbox name components below the target mailbox (empty for the root).
    pub components: Vec<String>,
    /// Its kind.
    pub kind: FolderKind,
}

/// One message file of a folder.
#[derive(Clone, Debug)]
pub struct MaildirEntry {
    /// The file.
    pub path: PathBuf,
    /// System flags from the info letters.
    pub system_flags: u32,
    /// Keyword names.
    pub keywords: Vec<String>,
    /// UID from `dovecot-uidlist`, if it names the file.
    pub uid: Option<u32>,
    /// Zone of the internal date (minutes east of UTC) from a `,Z=+hhmm` name field.
    pub zone: Option<i16>,
}

/// The `,Z=+hhmm` field of a Maildir file name's base (the zone of the internal date, as
/// our export writes it), in minutes east of UTC.
pub fn zone_of(name: &str) -> Option<i16> {
    let base = base_name(name);
    let i = base.find(",Z=")?;
    let f = &base[i + 3..];
    let f = f.split(',').next().unwrap_or(f).as_bytes();
    if f.len() != 5 || !matches!(f[0], b'+' | b'-') || !f[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |a: u8, b: u8| i16::from(a - b'0') * 10 + i16::from(b - b'0');
    let (h, m) = (n(f[1], f[2]), n(f[3], f[4]));
    if h > 23 || m > 59 {
        return None;
    }
    let v = h * 60 + m;
    Some(if f[0] == b'-' { -v } else { v })
}

/// The `,Z=` name field for a zone offset (minutes east of UTC).
pub fn zone_field(offset_minutes: i16) -> String {
    let a = offset_minutes.unsigned_abs();
    format!(",Z={}{:02}{:02}", if offset_minutes < 0 { '-' } else { '+' }, a / 60, a % 60)
}

/// Metadata file names at the top of a Maildir or in a loose folder that are never messages.
fn is_metadata_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("dovecot")
        || name.starts_with("courier")
        || name == "maildirfolder"
        || name == "subscriptions"
        || name.starts_with("ms.")
}

/// A directory, not a link to one: nothing below the source root is reached through a
/// symbolic link.
fn is_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

fn link_error(path: &Path) -> ImportError {
    ImportError::Link { path: path.to_path_buf(), target: std::fs::read_link(path).ok() }
}

/// Open a file of the source tree whose canonical root is `root`: never through a
/// symbolic link (`O_NOFOLLOW` on the name, and the opened file's own path, read back from
/// `/proc/self/fd`, must lie inside `root`, so a directory swapped for a link on the way is
/// caught as well), never blocking on a FIFO (`O_NONBLOCK`), regular files only.
pub fn open_source_file(path: &Path, root: &Path) -> Result<std::fs::File, ImportError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    let read_err = |source| ImportError::Read { path: path.to_path_buf(), offset: 0, source };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) if is_symlink(path) => return Err(link_error(path)),
        Err(e) => return Err(read_err(e.into())),
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(ImportError::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            what: "not a regular file: skipped".into(),
        });
    }
    if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        if !real.starts_with(root) {
            return Err(ImportError::Malformed {
                path: path.to_path_buf(),
                offset: 0,
                what: format!(
                    "opened as {}, outside the source tree {} (a directory on its path was replaced by a link?): not read",
                    real.display(),
                    root.display()
                ),
            });
        }
    }
    Ok(file)
}

/// The bytes of a metadata file (`dovecot-keywords`, `dovecot-uidlist`), not through a
/// symbolic link; `None` when missing or not readable.
fn read_metadata_file(path: &Path) -> Option<Vec<u8>> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = std::fs::File::from(rustix::fs::open(path, flags, Mode::empty()).ok()?);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut v = Vec::new();
    file.take(crate::import::MAX_METADATA_FILE).read_to_end(&mut v).ok()?;
    Some(v)
}

/// The kind of a directory.
pub fn kind_of(dir: &Path) -> FolderKind {
    if is_dir(&dir.join("cur")) || is_dir(&dir.join("new")) {
        return FolderKind::Maildir;
    }
    let has_files = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !is_metadata_name(&name) && std::fs::symlink_metadata(e.path()).map(|m| m.is_file()).unwrap_or(false)
            })
        })
        .unwrap_or(false);
    if has_files { FolderKind::Loose } else { FolderKind::Container }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, ImportError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ImportError::Read { path: dir.to_path_buf(), offset: 0, source: e })?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| ImportError::Read { path: dir.to_path_buf(), offset: 0, source: e })?;
        v.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    v.sort();
    Ok(v)
}

/// Every folder under `root` (the root first, then sub-folders in name order). A folder
/// whose name cannot be read is reported in `problems` and left out.
pub fn discover(root: &Path, problems: &mut Vec<ImportError>) -> Result<Vec<Folder>, ImportError> {
    // The root is the administrator's to name, link or not; nothing below it is followed.
    if !std::fs::metadata(root).is_ok_and(|m| m.is_dir()) {
        return Err(ImportError::NotAMailbox {
            path: root.to_path_buf(),
            expected: "a Maildir directory",
            why: "it is not a directory".into(),
        });
    }
    let mut out = Vec::new();
    walk(root, Vec::new(), &mut out, problems)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    components: Vec<String>,
    out: &mut Vec<Folder>,
    problems: &mut Vec<ImportError>,
) -> Result<(), ImportError> {
    let kind = kind_of(dir);
    out.push(Folder { path: dir.to_path_buf(), components: components.clone(), kind });
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        // Below the root (which has no components), an unreadable folder is a problem
        // reported, not the end of the import.
        Err(e) if !components.is_empty() => {
            problems.push(e);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for (name, path) in entries {
        if is_symlink(&path) {
            // A link a loose folder lists as a message is reported when it is read.
            if kind != FolderKind::Loose || is_metadata_name(&name) {
                problems.push(link_error(&path));
            }
            continue;
        }
        if !is_dir(&path) {
            continue;
        }
        if kind == FolderKind::Maildir && matches!(name.as_str(), "cur" | "new" | "tmp") {
            continue;
        }
        if let Some(sub) = name.strip_prefix('.') {
            // Maildir++ folders live in a Maildir; other dot directories (`.notmuch`,
            // `.git`) are not mail.
            if kind != FolderKind::Maildir || sub.is_empty() || sub == "." || matches!(sub, "notmuch" | "git") {
                continue;
            }
            let parts: Vec<String> = sub.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                problems.push(ImportError::Malformed {
                    path: path.clone(),
                    offset: 0,
                    what: "Maildir++ folder name has an empty component: skipped".into(),
                });
                continue;
            }
            let mut c = components.clone();
            c.extend(parts);
            // A Maildir++ folder is a Maildir itself; nested fs-layout folders inside it
            // are taken too.
            walk(&path, c, out, problems)?;
        } else {
            let mut c = components.clone();
            c.push(name);
            walk(&path, c, out, problems)?;
        }
    }
    Ok(())
}

/// `dovecot-keywords` of `dir`: letter → name (empty when missing or unreadable).
pub fn read_keywords(dir: &Path) -> HashMap<u8, String> {
    read_metadata_file(&dir.join("dovecot-keywords")).map(|t| parse_keywords(&t)).unwrap_or_default()
}

/// The text of a `dovecot-keywords` file: letter (`a` + index) → name.
pub fn parse_keywords(text: &[u8]) -> HashMap<u8, String> {
    let mut map = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let mut it = line.split_whitespace();
        let (Some(i), Some(name)) = (it.next(), it.next()) else { continue };
        if let Ok(i) = i.parse::<u8>() {
            if i < 26 {
                map.insert(b'a' + i, name.to_string());
            }
        }
    }
    map
}

/// `dovecot-uidlist` of `dir`: base file name → UID (empty when missing or unreadable).
pub fn read_uidlist(dir: &Path) -> HashMap<String, u32> {
    read_metadata_file(&dir.join("dovecot-uidlist")).map(|t| parse_uidlist(&t)).unwrap_or_default()
}

/// The UID validity and next UID of `dir`'s `dovecot-uidlist` (version 3 header
/// `3 V<validity> N<next> ...`), if it has them.
pub fn read_uidlist_header(dir: &Path) -> Option<(u32, u32)> {
    let text = read_metadata_file(&dir.join("dovecot-uidlist"))?;
    parse_uidlist_header(&text)
}

/// See [`read_uidlist_header`].
pub fn parse_uidlist_header(text: &[u8]) -> Option<(u32, u32)> {
    let line = text.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    if words.next()? != "3" {
        return None;
    }
    let (mut v, mut n) = (None, None);
    for w in words {
        if let Some(x) = w.strip_prefix('V') {
            v = x.parse::<u32>().ok();
        } else if let Some(x) = w.strip_prefix('N') {
            n = x.parse::<u32>().ok();
        }
    }
    Some((v.filter(|&v| v > 0)?, n.unwrap_or(1)))
}

/// The text of a `dovecot-uidlist` file (versions 1 and 3): base file name → UID.
pub fn parse_uidlist(text: &[u8]) -> HashMap<String, u32> {
    let mut map = HashMap::new();
    let mut lines = text.split(|&b| b == b'\n');
    let version = lines.next().and_then(|h| h.split(|&b| b == b' ').next().map(|v| v.to_vec()));
    for line in lines {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let Some((uid, rest)) = line.split_once(' ') else { continue };
        let Ok(uid) = uid.parse::<u32>() else { continue };
        let name = if version.as_deref() == Some(b"1") {
            rest.trim()
        } else {
            match rest.find(':') {
                Some(i) => &rest[i + 1..],
                None => rest.trim(),
            }
        };
        // A name that is all info part (`:2,S`) has no base to match a file by.
        let base = base_name(name);
        if uid > 0 && !base.is_empty() {
            map.insert(base.to_string(), uid);
        }
    }
    map
}

/// Where the info part of a file name starts (the separator before `2,`), if it has one.
fn info_start(name: &str) -> Option<usize> {
    let b = name.as_bytes();
    (0..b.len().saturating_sub(2))
        .rev()
        .find(|&i| matches!(b[i], b':' | b';' | b'!') && b[i + 1] == b'2' && b[i + 2] == b',')
}

/// The file name without its info part.
pub fn base_name(name: &str) -> &str {
    match info_start(name) {
        Some(i) => &name[..i],
        None => name,
    }
}

/// The flag letters of a file name (after `:2,`), if any.
pub fn info_letters(name: &str) -> &str {
    match info_start(name) {
        Some(i) => &name[i + 3..],
        None => "",
    }
}

/// Flags of a file name: system flags, keyword names, and letters that had no name.
pub fn flags_of(name: &str, keywords: &HashMap<u8, String>) -> (u32, Vec<String>, Vec<char>) {
    let mut system = 0;
    let mut kw = Vec::new();
    let mut unnamed = Vec::new();
    for c in info_letters(name).bytes() {
        match c {
            b'S' => system |= SystemFlags::SEEN,
            b'R' => system |= SystemFlags::ANSWERED,
            b'F' => system |= SystemFlags::FLAGGED,
            b'T' => system |= SystemFlags::DELETED,
            b'D' => system |= SystemFlags::DRAFT,
            b'P' => push_unique(&mut kw, PASSED_KEYWORD.to_string()),
            b'a'..=b'z' => match keywords.get(&c) {
                Some(n) => push_unique(&mut kw, n.clone()),
                None => {
                    push_unique(&mut kw, format!("$MaildirKeyword_{}", c as char));
                    if !unnamed.contains(&(c as char)) {
                        unnamed.push(c as char);
                    }
                }
            },
            _ => {}
        }
    }
    (system, kw, unnamed)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Delivery order key: the number that starts the name, then the name.
fn delivery_key(name: &str) -> (u64, String) {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    (digits.parse().unwrap_or(u64::MAX), name.to_string())
}

/// Whether a loose file looks like a message: its first line is a header field or a Unix
/// `From ` line.
pub fn looks_like_message(first: &[u8]) -> bool {
    if first.starts_with(b"From ") {
        return true;
    }
    let line = match memchr::memchr(b'\n', first) {
        Some(i) => &first[..i],
        None => first,
    };
    match memchr::memchr(b':', line) {
        Some(c) if c > 0 => line[..c].trim_ascii_end().iter().all(|&b| (33..=126).contains(&b) && b != b':'),
        _ => false,
    }
}

/// Whether a loose file may be an mbox file of several messages: it starts with a From_
/// line and another From_ line follows a blank line (LF or CRLF).
pub fn looks_like_mbox(bytes: &[u8]) -> bool {
    if super::mbox::parse_from_line(first_line(bytes)).is_none() {
        return false;
    }
    memchr::memmem::find_iter(bytes, b"\nFrom ").any(|i| {
        let blank_before = bytes[..i].ends_with(b"\n") || bytes[..i].ends_with(b"\n\r");
        blank_before && super::mbox::parse_from_line(first_line(&bytes[i + 1..])).is_some()
    })
}

fn first_line(b: &[u8]) -> &[u8] {
    match memchr::memchr(b'\n', b) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// The messages of one folder, in import order. Letters without a keyword name are
/// returned too, to be reported once.
pub fn list_messages(folder: &Folder) -> Result<(Vec<MaildirEntry>, Vec<char>), ImportError> {
    let keywords = read_keywords(&folder.path);
    let uidlist = read_uidlist(&folder.path);
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    match folder.kind {
        FolderKind::Container => {}
        FolderKind::Maildir => {
            for sub in ["cur", "new"] {
                let d = folder.path.join(sub);
                if !is_dir(&d) {
                    continue;
                }
                for (name, path) in sorted_entries(&d)? {
                    if !name.starts_with('.') && !is_dir(&path) {
                        files.push((name, path));
                    }
                }
            }
        }
        FolderKind::Loose => {
            for (name, path) in sorted_entries(&folder.path)? {
                if !is_metadata_name(&name) && !is_dir(&path) {
                    files.push((name, path));
                }
            }
        }
    }
    let mut unnamed_all = Vec::new();
    let mut entries: Vec<(Option<u32>, (u64, String), MaildirEntry)> = files
        .into_iter()
        .map(|(name, path)| {
            let (system_flags, keywords, unnamed) = flags_of(&name, &keywords);
            for c in unnamed {
                if !unnamed_all.contains(&c) {
                    unnamed_all.push(c);
                }
            }
            let uid = uidlist.get(base_name(&name)).copied();
            let key = delivery_key(&name);
            let zone = zone_of(&name);
            (uid, key, MaildirEntry { path, system_flags, keywords, uid, zone })
        })
        .collect();
    entries.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    unnamed_all.sort_unstable();
    Ok((entries.into_iter().map(|e| e.2).collect(), unnamed_all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parts() {
        assert_eq!(base_name("1234.M1P2.host,S=10:2,FS"), "1234.M1P2.host,S=10");
        assert_eq!(info_letters("1234.M1P2.host,S=10:2,FS"), "FS");
        assert_eq!(info_letters("1035478339.27041_118.foo.org,S=1000,W=1030;2,RDF,"), "RDF,");
        assert_eq!(info_letters("special!2,Sabc"), "Sabc");
        assert_eq!(info_letters("plain"), "");
        assert_eq!(base_name("x:2,"), "x");
        let kw: HashMap<u8, String> = [(b'a', "$Work".to_string())].into_iter().collect();
        let (s, k, u) = flags_of("x:2,DFPRSTab", &kw);
        assert_eq!(s, SystemFlags::ALL);
        assert_eq!(k, vec!["$Forwarded", "$Work", "$MaildirKeyword_b"]);
        assert_eq!(u, vec!['b']);
    }

    #[test]
    fn zone_fields_and_uidlist_header() {
        assert_eq!(zone_of("1.M1V2.mstore,S=5,Z=+0130:2,S"), Some(90));
        assert_eq!(zone_of("1.M1V2.mstore,Z=-0800,S=5:2,S"), Some(-480));
        assert_eq!(zone_of("1.M1V2.mstore,S=5:2,S"), None);
        assert_eq!(zone_of("1.M1V2.mstore,Z=+2460:2,"), None);
        assert_eq!(zone_of("1.x:2,Z=+0100"), None);
        for z in [-720, -90, 0, 45, 840] {
            assert_eq!(zone_of(&format!("1.a{}:2,", zone_field(z))), Some(z));
        }
        assert_eq!(parse_uidlist_header(b"3 V1613 N783 Gabc\n1 :a\n"), Some((1613, 783)));
        assert_eq!(parse_uidlist_header(b"1 1613 783\n"), None);
        assert_eq!(parse_uidlist_header(b"3 N7\n"), None);
    }

    #[test]
    fn order_uidlist_then_delivery() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        for s in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.join(s)).expect("mkdir");
        }
        for n in ["cur/20.a:2,S", "cur/3.b:2,", "new/100.c", "cur/5.d:2,F", "tmp/1.e", "new/.hidden"] {
            std::fs::write(d.join(n), "A: b\n\nc\n").expect("write");
        }
        std::fs::write(d.join("dovecot-uidlist"), "3 V1 N9 Gx\n7 :5.d\n2 W10 :20.a:2,S\n").expect("write");
        std::fs::write(d.join("dovecot-keywords"), "0 $Junk\n").expect("write");
        let f = Folder { path: d.to_path_buf(), components: vec![], kind: kind_of(d) };
        assert_eq!(f.kind, FolderKind::Maildir);
        let (list, _) = list_messages(&f).expect("list");
        let names: Vec<String> =
            list.iter().map(|e| e.path.file_name().expect("name").to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["20.a:2,S", "5.d:2,F", "3.b:2,", "100.c"]);
        assert_eq!(list[0].uid, Some(2));
        assert_eq!(list[0].system_flags, SystemFlags::SEEN);
    }

    #[test]
    fn message_sniffing() {
        assert!(looks_like_message(b"Return-Path: <a@b>\n"));
        assert!(looks_like_message(b"From a Wed Jul  1 13:17:17 1998\n"));
        assert!(!looks_like_message(b"GNU GENERAL PUBLIC LICENSE\n"));
        assert!(!looks_like_message(b"This directory: corpora\n"));
        assert!(!looks_like_message(b""));
        let one = b"From a Wed Jul  1 13:17:17 1998\nA: b\n\nFrom here\n";
        assert!(!looks_like_mbox(one));
        assert!(looks_like_mbox(&[&one[..], b"\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n"].concat()));
        assert!(looks_like_mbox(b"From a Wed Jul  1 13:17:17 1998\r\nA: b\r\n\r\nFrom b Wed Jul  1 13:17:17 1998\r\n"));
    }
}
