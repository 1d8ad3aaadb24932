//! Names to paths: domains, mailbox names, partitions and the directories they map to.
//!
//! See `formats/layout.md` for the directory layout. In short: the mailbox `NAME` of domain
//! `DOMAIN` on partition `P` lives in `P/DOMAIN/C1/C2/...`, where `C1/C2/...` are the
//! components of `NAME` (IMAP names, hierarchy separator `/`, modified UTF-7), each
//! percent-encoded so that a mailbox directory name never contains a `.`. Message files
//! (`<uid>.`) and the store's own files (`ms.*`) always do, so a directory listing tells
//! messages, store files and sub-mailboxes apart by name alone.

pub mod mutf7;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Longest accepted mailbox name, in bytes of its modified UTF-7 form.
pub const MAX_NAME_LEN: usize = 1000;
/// Longest accepted domain.
pub const MAX_DOMAIN_LEN: usize = 253;

/// Validate and canonicalise a domain (lower-cased).
pub fn domain(input: &str) -> Result<String> {
    let bad = |reason: &str| Error::InvalidName { what: "domain", name: input.to_string(), reason: reason.to_string() };
    let d = input.to_ascii_lowercase();
    if d.is_empty() || d.len() > MAX_DOMAIN_LEN {
        return Err(bad("must be 1 to 253 characters"));
    }
    if !d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err(bad("may hold only letters, digits, '-' and '.'"));
    }
    if d.split('.').any(str::is_empty) {
        return Err(bad("has an empty label (leading, trailing or doubled '.')"));
    }
    Ok(d)
}

/// A validated mailbox name in canonical form: modified UTF-7, `/`-separated, non-empty
/// components.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName(String);

impl MailboxName {
    /// Accept a mailbox name as typed by a user: modified UTF-7 is kept, other non-ASCII
    /// text (UTF-8) is encoded to modified UTF-7.
    pub fn parse(input: &str) -> Result<MailboxName> {
        let bad = |reason: String| Error::InvalidName { what: "mailbox name", name: input.to_string(), reason };
        let canonical = if input.is_ascii() { input.to_string() } else { mutf7::encode(input) };
        if canonical.is_empty() {
            return Err(bad("is empty".into()));
        }
        if canonical.len() > MAX_NAME_LEN {
            return Err(bad(format!("is longer than {MAX_NAME_LEN} bytes")));
        }
        if let Some(b) = canonical.bytes().find(|b| b.is_ascii_control()) {
            return Err(bad(format!("contains control character 0x{b:02x}")));
        }
        if canonical.split('/').any(str::is_empty) {
            return Err(bad("has an empty component (leading, trailing or doubled '/')".into()));
        }
        if mutf7::decode(&canonical).is_none() {
            return Err(bad("is not valid modified UTF-7 (write '&' as '&-')".into()));
        }
        Ok(MailboxName(canonical))
    }

    /// The canonical (modified UTF-7) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name decoded to UTF-8, for display.
    pub fn display(&self) -> String {
        mutf7::decode(&self.0).unwrap_or_else(|| self.0.clone())
    }

    /// Components of the name.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether `self` is `prefix` or lies below it in the hierarchy.
    pub fn is_within(&self, prefix: &MailboxName) -> bool {
        self.0 == prefix.0 || (self.0.starts_with(&prefix.0) && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// The parent mailbox name, if any.
    pub fn parent(&self) -> Option<MailboxName> {
        self.0.rsplit_once('/').map(|(p, _)| MailboxName(p.to_string()))
    }

    /// The owner's user name if this is a personal mailbox (`user/NAME[/...]`).
    pub fn owner(&self) -> Option<&str> {
        let mut it = self.0.split('/');
        match (it.next(), it.next()) {
            (Some("user"), Some(u)) => Some(u),
            _ => None,
        }
    }

    /// Path of this mailbox below a domain directory.
    pub fn relative_dir(&self) -> PathBuf {
        self.components().map(encode_component).collect()
    }

    /// Rebuild a name from the directory components below a domain directory. `None` if a
    /// component is not a mailbox directory name (it holds a `.`, or bad escapes).
    pub fn from_dir_components<'a>(components: impl IntoIterator<Item = &'a str>) -> Option<MailboxName> {
        let mut out = String::new();
        for c in components {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(&decode_component(c)?);
        }
        MailboxName::parse(&out).ok()
    }
}

impl std::fmt::Display for MailboxName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The mailbox name that `-u user` turns `arg` into: `INBOX` is `user/USER`, `INBOX/x` is
/// `user/USER/x`, anything else `x` is `user/USER/x`.
pub fn personal_name(user: &str, arg: Option<&str>) -> Result<MailboxName> {
    if user.is_empty() || user.contains('/') {
        return Err(Error::InvalidName {
            what: "user name",
            name: user.into(),
            reason: "must be non-empty and hold no '/'".into(),
        });
    }
    let name = match arg {
        None => format!("user/{user}"),
        Some(a) if a.eq_ignore_ascii_case("inbox") => format!("user/{user}"),
        Some(a) => match a.split_once('/') {
            Some((head, rest)) if head.eq_ignore_ascii_case("inbox") => format!("user/{user}/{rest}"),
            _ => format!("user/{user}/{a}"),
        },
    };
    MailboxName::parse(&name)
}

/// Encode one name component as a directory name: `%`, `.`, and control bytes become `%XX`.
pub fn encode_component(c: &str) -> String {
    let mut s = String::with_capacity(c.len());
    for b in c.bytes() {
        if b == b'%' || b == b'.' || b.is_ascii_control() || b >= 0x80 {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(b as char);
        }
    }
    s
}

/// Inverse of [`encode_component`]; `None` for names that are not mailbox directories.
pub fn decode_component(d: &str) -> Option<String> {
    if d.is_empty() || d.contains('.') {
        return None;
    }
    let b = d.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Directory of a mailbox on a partition.
pub fn mailbox_dir(partition_root: &Path, domain: &str, name: &MailboxName) -> PathBuf {
    partition_root.join(domain).join(name.relative_dir())
}

/// What a directory entry inside a mailbox directory is, judged by its name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A message file `<uid>.` with its UID.
    Message(u32),
    /// One of the store's own files (`ms.header`, `ms.index`, `ms.cache`, `ms.log`).
    StoreFile,
    /// A temporary file (`ms.tmp.*`) left by an interrupted write.
    Temp,
    /// A sub-mailbox directory (no `.` in the name).
    SubMailbox,
    /// Anything else (reported by reconstruct and verify, never touched).
    Stray,
}

/// Message file name for `uid`.
pub fn message_file_name(uid: u32) -> String {
    MessageName::new(uid).as_str().to_string()
}

/// A message file name built on the stack (no allocation): for the per-message system
/// calls of a scan, which must not allocate a `String` per file.
pub struct MessageName {
    /// `<uid>.` followed by a NUL (10 digits at most).
    buf: [u8; 12],
    len: usize,
}

impl MessageName {
    /// The name of `uid`'s file.
    pub fn new(uid: u32) -> MessageName {
        let mut digits = itoa::Buffer::new();
        let d = digits.format(uid).as_bytes();
        let mut buf = [0u8; 12];
        buf[..d.len()].copy_from_slice(d);
        buf[d.len()] = b'.';
        MessageName { buf, len: d.len() + 1 }
    }
    /// The name, as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
    /// The name, NUL-terminated, for system calls.
    pub fn as_c_str(&self) -> &std::ffi::CStr {
        std::ffi::CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or_default()
    }
}

/// Classify a directory entry name.
pub fn classify(name: &[u8]) -> EntryKind {
    if let Some(digits) = name.strip_suffix(b".") {
        if !digits.is_empty() && digits.len() <= 10 && digits.iter().all(u8::is_ascii_digit) && digits[0] != b'0' {
            if let Some(uid) = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<u32>().ok()) {
                return EntryKind::Message(uid);
            }
        }
    }
    if name.starts_with(b"ms.tmp.") {
        return EntryKind::Temp;
    }
    if STORE_FILES.iter().any(|f| f.as_bytes() == name) {
        return EntryKind::StoreFile;
    }
    if !name.contains(&b'.') && std::str::from_utf8(name).ok().and_then(decode_component).is_some() {
        return EntryKind::SubMailbox;
    }
    EntryKind::Stray
}

/// Name of the header file.
pub const HEADER_FILE: &str = "ms.header";
/// Name of the index file.
pub const INDEX_FILE: &str = "ms.index";
/// Name of the cache file.
pub const CACHE_FILE: &str = "ms.cache";
/// Name of the change log.
pub const LOG_FILE: &str = "ms.log";
/// Directory (inside a mailbox) where repairs move what they set aside.
pub const QUARANTINE_DIR: &str = "ms.quarantine";
/// The store's own files in a mailbox directory.
pub const STORE_FILES: &[&str] = &[HEADER_FILE, INDEX_FILE, CACHE_FILE, LOG_FILE, QUARANTINE_DIR];
/// Directory (on each partition) holding deleted mailboxes' files.
pub const DELETED_DIR: &str = ".deleted";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_name_on_the_stack_matches_the_string() {
        for uid in [1, 9, 10, 4_294_967_295, 123_456] {
            let n = MessageName::new(uid);
            assert_eq!(n.as_str(), format!("{uid}."));
            assert_eq!(n.as_c_str().to_bytes(), format!("{uid}.").as_bytes());
            assert_eq!(classify(n.as_str().as_bytes()), EntryKind::Message(uid));
        }
    }

    #[test]
    fn names_round_trip_through_directories() {
        for n in [
            "user/joe",
            "user/joe/pub",
            "admin/sub folder",
            "user/john.doe/a.b",
            "shared/100%",
            "Entw&APw-rfe",
            "quote\"and'$`!*?;|&-",
            "1.",
            "ms.header",
        ] {
            let name = MailboxName::parse(n).expect(n);
            let rel = name.relative_dir();
            let comps: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            assert!(comps.iter().all(|c| !c.contains('.')), "{comps:?}");
            for c in &comps {
                assert_eq!(classify(c.as_bytes()), EntryKind::SubMailbox, "{c}");
            }
            let back = MailboxName::from_dir_components(comps.iter().map(String::as_str)).expect("decodes");
            assert_eq!(back, name);
        }
    }

    #[test]
    fn utf8_input_becomes_modified_utf7() {
        let n = MailboxName::parse("user/joe/Entwürfe").expect("valid");
        assert_eq!(n.as_str(), "user/joe/Entw&APw-rfe");
        assert_eq!(n.display(), "user/joe/Entwürfe");
    }

    #[test]
    fn invalid_names() {
        for n in ["", "/a", "a/", "a//b", "a\nb", "bad&name"] {
            assert!(MailboxName::parse(n).is_err(), "{n:?} accepted");
        }
        assert!(domain("Example.COM").expect("valid") == "example.com");
        for d in ["", ".a", "a..b", "a/b", "a b"] {
            assert!(domain(d).is_err(), "{d:?} accepted");
        }
    }

    #[test]
    fn personal_hierarchy() {
        assert_eq!(personal_name("joe", Some("INBOX")).expect("ok").as_str(), "user/joe");
        assert_eq!(personal_name("joe", Some("inbox")).expect("ok").as_str(), "user/joe");
        assert_eq!(personal_name("joe", Some("pub")).expect("ok").as_str(), "user/joe/pub");
        assert_eq!(personal_name("joe", Some("INBOX/x")).expect("ok").as_str(), "user/joe/x");
        assert_eq!(personal_name("joe", None).expect("ok").as_str(), "user/joe");
        let joe = MailboxName::parse("user/joe").expect("ok");
        assert!(MailboxName::parse("user/joe/pub").expect("ok").is_within(&joe));
        assert!(!MailboxName::parse("user/joey").expect("ok").is_within(&joe));
        assert_eq!(joe.owner(), Some("joe"));
    }

    #[test]
    fn classify_entries() {
        assert_eq!(classify(b"1."), EntryKind::Message(1));
        assert_eq!(classify(b"4294967295."), EntryKind::Message(u32::MAX));
        assert_eq!(classify(b"4294967296."), EntryKind::Stray);
        assert_eq!(classify(b"01."), EntryKind::Stray);
        assert_eq!(classify(b"0."), EntryKind::Stray);
        assert_eq!(classify(b"ms.index"), EntryKind::StoreFile);
        assert_eq!(classify(b"ms.tmp.ms.index.123"), EntryKind::Temp);
        assert_eq!(classify(b"pub"), EntryKind::SubMailbox);
        assert_eq!(classify(b"notes.txt"), EntryKind::Stray);
    }
}
