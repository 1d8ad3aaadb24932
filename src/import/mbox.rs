//! mbox files: a streaming reader (From_ lines, mboxrd/mboxo unquoting, `Content-Length`,
//! the `Status`/`X-Status`/`X-Keywords` flag fields) and the writer that export uses.
//!
//! # What a message is
//!
//! A message starts after a **From_ line**: a line that begins with `From ` and ends in a
//! date in `asctime` form (`From sender Wed Jul  1 13:17:17 1998`, with an optional zone
//! before or after the year and `remote from ...`). A line that begins with `From ` but
//! carries no such date (`From this principle, ...`) is body text. A blank line before the
//! From_ line is not required (writers that forget it exist). The blank line that
//! separates two messages (`\n` or `\r\n`) is not part of the message before it.
//!
//! A `Content-Length` field is honoured when it is *sane*: its body fits in the file and is
//! followed by end of file, or by a From_ line, optionally after one blank line. Otherwise
//! it is ignored and From_ lines decide. It is never used to size an allocation: the body
//! is read in bounded steps, and no message may exceed [`MAX_MESSAGE`].
//!
//! # What is stored
//!
//! The stored message is the region between two From_ lines, with the quoting undone
//! (mboxrd: one `>` removed from every line matching `>+From `; mboxo: only from
//! `>From `), and **without** the mbox bookkeeping fields of its top-level header:
//! `Status`, `X-Status`, `X-Keywords`, `X-UID`, `X-IMAP`, `X-IMAPbase` and
//! `Content-Length` ([`META_FIELDS`]). These fields are what mbox uses in place of an
//! index: they describe the copy in this file, not the message (Dovecot hides the same
//! fields from IMAP clients). Their content becomes the flags, and export writes them
//! back from the current flags, so import → export → import gives the same bytes.
//!
//! Flags: `Status: R` is `\Seen` (`O` only says "not new"); `X-Status` letters `A`
//! `\Answered`, `F` `\Flagged`, `T` `\Draft`, `D` `\Deleted`; `X-Keywords` holds keyword
//! names separated by white space or commas.
//!
//! # What export writes
//!
//! [`write_message`]: the From_ line (`From MAILER-DAEMON` and the internal date in its own
//! zone, the zone after the year unless it is UTC), the message with every line matching
//! `>*From ` quoted (mboxrd), the bookkeeping fields inserted just before the blank line
//! that ends the header (or at the end of a header-only message), then the separator: one
//! `\n`, also after a CRLF message (a `\r\n` separator would be read as part of the
//! message by readers that only take `\n` as the blank line, such as Python's `mailbox`).
//! A message that does not end in a line end gets a `Content-Length` field, so its end is
//! exact for readers that honour it (ours, mutt); a reader that does not (Python's
//! `mailbox`) sees it with one `\n` added, unless it is the last message of the file. A message the format
//! cannot carry unchanged (it holds its own bookkeeping fields, or it is header-only
//! without a final line end) is written changed, and [`WriteOutcome::changed`] says so.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use memchr::memchr;

use super::ImportError;
use crate::flags::{SystemFlags, valid_user_flag};
use crate::message::{self, DateTime};

/// Largest message accepted from an mbox file (bytes). Larger ones are reported and
/// skipped: nothing is allocated beyond this, whatever a file claims.
pub const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// Longest line that is considered as a From_ line.
const MAX_FROM_LINE: usize = 1000;

/// The mbox bookkeeping fields: read for flags, removed from the stored message, written
/// back by export (lower case).
pub const META_FIELDS: [&str; 7] =
    ["status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length"];

/// How `>From ` quoting is undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quoting {
    /// mboxrd: one `>` is removed from every line matching `>+From ` (the default; also
    /// right for mboxo files, except for lines that had `>>From ` before quoting).
    #[default]
    Mboxrd,
    /// mboxo: only `>From ` becomes `From `.
    Mboxo,
    /// Nothing is unquoted (mboxcl2 files, which rely on `Content-Length`).
    None,
}

/// A From_ line: who and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromLine {
    /// The envelope sender as written (may be empty or hold spaces).
    pub sender: String,
    /// The date.
    pub date: DateTime,
}

/// One message read from an mbox file.
#[derive(Clone, Debug)]
pub struct MboxMessage {
    /// The message as it will be stored.
    pub bytes: Vec<u8>,
    /// Byte offset of its From_ line (in the uncompressed stream).
    pub offset: u64,
    /// The From_ line.
    pub from: FromLine,
    /// System flags from `Status`/`X-Status`.
    pub system_flags: u32,
    /// Keywords from `X-Keywords` (valid IMAP atoms only).
    pub keywords: Vec<String>,
    /// Keywords that were dropped because they are not IMAP atoms.
    pub bad_keywords: Vec<String>,
    /// Whether the end of the message came from a sane `Content-Length`.
    pub by_content_length: bool,
    /// A mailbox-internal pseudo message (`X-IMAP` with "FOLDER INTERNAL DATA").
    pub internal: bool,
}

/// A line reader over a `BufRead` that can take bytes back (for `Content-Length`
/// look-ahead) and knows the offset of the next byte.
struct Src<R> {
    r: R,
    front: Vec<u8>,
    front_pos: usize,
    offset: u64,
}

impl<R: BufRead> Src<R> {
    /// Append the next line (with its `\n`) to `out`, reading at most `limit` bytes.
    /// Returns the number of bytes appended (0 at end of input).
    fn read_line(&mut self, out: &mut Vec<u8>, limit: usize) -> std::io::Result<usize> {
        let mut n = 0;
        if self.front_pos < self.front.len() {
            let rest = &self.front[self.front_pos..];
            let take = match memchr(b'\n', rest) {
                Some(i) => i + 1,
                None => rest.len(),
            }
            .min(limit);
            out.extend_from_slice(&rest[..take]);
            self.front_pos += take;
            if self.front_pos == self.front.len() {
                self.front.clear();
                self.front_pos = 0;
            }
            n += take;
            if out.last() == Some(&b'\n') || n >= limit {
                self.offset += n as u64;
                return Ok(n);
            }
        }
        while n < limit {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let (take, done) = match memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let take = take.min(limit - n);
            out.extend_from_slice(&buf[..take]);
            self.r.consume(take);
            n += take;
            if done && out.last() == Some(&b'\n') {
                break;
            }
        }
        self.offset += n as u64;
        Ok(n)
    }

    /// Append up to `len` bytes to `out` (fewer at end of input); returns how many.
    fn read_bytes(&mut self, out: &mut Vec<u8>, len: usize) -> std::io::Result<usize> {
        let mut n = 0;
        while n < len {
            if self.front_pos < self.front.len() {
                let rest = &self.front[self.front_pos..];
                let take = rest.len().min(len - n);
                out.extend_from_slice(&rest[..take]);
                self.front_pos += take;
                if self.front_pos == self.front.len() {
                    self.front.clear();
                    self.front_pos = 0;
                }
                n += take;
                continue;
            }
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min(len - n);
            out.extend_from_slice(&buf[..take]);
            self.r.consume(take);
            n += take;
        }
        self.offset += n as u64;
        Ok(n)
    }

    /// Give bytes back: the next reads return them first.
    fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut v = Vec::with_capacity(bytes.len() + self.front.len() - self.front_pos);
        v.extend_from_slice(bytes);
        v.extend_from_slice(&self.front[self.front_pos..]);
        self.front = v;
        self.front_pos = 0;
        self.offset -= bytes.len() as u64;
    }
}

/// A streaming reader of the messages of one mbox file.
pub struct MboxReader<R> {
    src: Src<R>,
    path: PathBuf,
    quoting: Quoting,
    /// The From_ line that starts the next message, with its offset.
    next_from: Option<(u64, FromLine)>,
    started: bool,
    done: bool,
    max_message: usize,
}

impl<R: BufRead> MboxReader<R> {
    /// A reader of `r`; `path` names the file in errors.
    pub fn new(r: R, path: &Path, quoting: Quoting) -> MboxReader<R> {
        MboxReader {
            src: Src { r, front: Vec::new(), front_pos: 0, offset: 0 },
            path: path.to_path_buf(),
            quoting,
            next_from: None,
            started: false,
            done: false,
            max_message: MAX_MESSAGE,
        }
    }

    /// Change the size limit (tests use a small one).
    pub fn with_max_message(mut self, max: usize) -> Self {
        self.max_message = max;
        self
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset
    }

    fn io_err(&self, e: std::io::Error) -> ImportError {
        ImportError::Read { path: self.path.clone(), offset: self.src.offset, source: e }
    }

    fn malformed(&self, offset: u64, what: impl Into<String>) -> ImportError {
        ImportError::Malformed { path: self.path.clone(), offset, what: what.into() }
    }

    /// Find the first From_ line: blank lines may come first; anything else means the file
    /// is not an mbox.
    fn start(&mut self) -> Result<(), ImportError> {
        self.started = true;
        let mut line = Vec::new();
        loop {
            let at = self.src.offset;
            line.clear();
            let n = self.src.read_line(&mut line, MAX_FROM_LINE + 2).map_err(|e| self.io_err(e))?;
            if n == 0 {
                self.done = true;
                return Ok(());
            }
            if line.iter().all(|b| matches!(b, b'\n' | b'\r' | b' ' | b'\t')) && line.ends_with(b"\n") {
                continue;
            }
            match parse_from_line(&line) {
                Some(f) => {
                    self.next_from = Some((at, f));
                    return Ok(());
                }
                None => {
                    self.done = true;
                    let shown: String = String::from_utf8_lossy(&line[..line.len().min(60)])
                        .chars()
                        .map(|c| if c.is_control() { '.' } else { c })
                        .collect();
                    return Err(ImportError::NotAMailbox {
                        path: self.path.clone(),
                        expected: "an mbox file",
                        why: format!("byte offset {at} should start with a From_ line, found {shown:?}"),
                    });
                }
            }
        }
    }

    /// The next message, or a malformed one's error (reading goes on after it), or `None`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<MboxMessage, ImportError>> {
        if !self.started {
            if let Err(e) = self.start() {
                return Some(Err(e));
            }
        }
        if self.done && self.next_from.is_none() {
            return None;
        }
        let (offset, from) = self.next_from.take()?;
        match self.read_region() {
            Ok(Region { bytes, too_big, by_cl }) => {
                if too_big {
                    return Some(Err(
                        self.malformed(offset, format!("message larger than {} bytes: skipped", self.max_message))
                    ));
                }
                if bytes.is_empty() {
                    return Some(Err(self.malformed(offset, "empty message (a From_ line with nothing after it)")));
                }
                let m = finish(bytes, offset, from, by_cl, self.quoting);
                if m.bytes.is_empty() {
                    return Some(Err(self.malformed(offset, "empty message (nothing but mbox bookkeeping fields)")));
                }
                Some(Ok(m))
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.io_err(e)))
            }
        }
    }

    /// Read the lines of one message, up to the next From_ line (kept in `next_from`) or
    /// end of input.
    fn read_region(&mut self) -> std::io::Result<Region> {
        let mut buf: Vec<u8> = Vec::new();
        let mut in_header = true;
        let mut too_big = false;
        let mut line = Vec::new();
        loop {
            let at = self.src.offset;
            line.clear();
            let n = self.src.read_line(&mut line, MAX_FROM_LINE + 2)?;
            if n == 0 {
                self.done = true;
                break;
            }
            let mut complete = line.ends_with(b"\n");
            if line.starts_with(b"From ") && complete {
                if let Some(f) = parse_from_line(&line) {
                    self.next_from = Some((at, f));
                    break;
                }
            }
            if !complete {
                // A long line: read the rest of it (bounded by the message limit).
                let room = (self.max_message + 1).saturating_sub(buf.len() + line.len()).max(1);
                self.src.read_line(&mut line, room)?;
                complete = line.ends_with(b"\n");
            }
            if too_big || buf.len() + line.len() > self.max_message {
                too_big = true;
                buf = Vec::new();
                // Skip the rest of a line that is longer than the limit.
                while !complete {
                    line.clear();
                    if self.src.read_line(&mut line, 1 << 20)? == 0 {
                        break;
                    }
                    complete = line.ends_with(b"\n");
                }
                continue;
            }
            buf.extend_from_slice(&line);
            if in_header && (line == b"\n" || line == b"\r\n") {
                in_header = false;
                if let Some(cl) = content_length(&buf) {
                    if let Some(body) = self.try_content_length(cl, buf.len())? {
                        buf.extend_from_slice(&body);
                        return Ok(Region { bytes: buf, too_big: false, by_cl: true });
                    }
                }
            }
        }
        if too_big {
            return Ok(Region { bytes: Vec::new(), too_big, by_cl: false });
        }
        // The blank line before the next From_ line (or end of file) is the separator.
        if buf.ends_with(b"\r\n\r\n") {
            buf.truncate(buf.len() - 2);
        } else if buf.ends_with(b"\n\n") {
            buf.truncate(buf.len() - 1);
        }
        Ok(Region { bytes: buf, too_big: false, by_cl: false })
    }

    /// Read a `Content-Length` body of `cl` bytes and check that a From_ line or the end of
    /// the file follows (after at most one blank line). On success the separator is
    /// consumed and the next From_ line recorded; otherwise everything is given back.
    fn try_content_length(&mut self, cl: u64, have: usize) -> std::io::Result<Option<Vec<u8>>> {
        let Ok(cl) = usize::try_from(cl) else { return Ok(None) };
        if cl.saturating_add(have) > self.max_message {
            return Ok(None);
        }
        let mut body = Vec::new();
        // Read in bounded steps: the allocation grows with bytes actually present.
        let mut left = cl;
        while left > 0 {
            let step = left.min(1 << 20);
            let got = self.src.read_bytes(&mut body, step)?;
            if got < step {
                self.src.unread(&body);
                return Ok(None);
            }
            left -= got;
        }
        let mut l1 = Vec::new();
        let at1 = self.src.offset;
        if self.src.read_line(&mut l1, MAX_FROM_LINE + 2)? == 0 {
            self.done = true;
            return Ok(Some(body));
        }
        if let Some(f) = l1.starts_with(b"From ").then(|| parse_from_line(&l1)).flatten() {
            self.next_from = Some((at1, f));
            return Ok(Some(body));
        }
        if l1 == b"\n" || l1 == b"\r\n" {
            let mut l2 = Vec::new();
            let at2 = self.src.offset;
            if self.src.read_line(&mut l2, MAX_FROM_LINE + 2)? == 0 {
                self.done = true;
                return Ok(Some(body));
            }
            if let Some(f) = l2.starts_with(b"From ").then(|| parse_from_line(&l2)).flatten() {
                self.next_from = Some((at2, f));
                return Ok(Some(body));
            }
            self.src.unread(&l2);
        }
        self.src.unread(&l1);
        self.src.unread(&body);
        Ok(None)
    }
}

struct Region {
    bytes: Vec<u8>,
    too_big: bool,
    by_cl: bool,
}

/// The `Content-Length` of a header block (the first one; decimal, at most 19 digits).
fn content_length(header: &[u8]) -> Option<u64> {
    let v = message::field(header, "content-length")?;
    let v = std::str::from_utf8(&v).ok()?.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Unquote, read the flag fields and remove the bookkeeping fields.
fn finish(raw: Vec<u8>, offset: u64, from: FromLine, by_cl: bool, quoting: Quoting) -> MboxMessage {
    let raw = unquote(raw, quoting);
    let split = message::split(&raw);
    let header = raw.get(..split.header_len).unwrap_or_default();
    let mut system_flags = 0;
    let mut keywords: Vec<String> = Vec::new();
    let mut bad_keywords = Vec::new();
    let mut internal = false;
    let mut has_meta = false;
    for f in message::fields(header) {
        let name = f.name.to_ascii_lowercase();
        let Ok(name) = std::str::from_utf8(&name) else { continue };
        if !META_FIELDS.contains(&name) {
            continue;
        }
        has_meta = true;
        let value = message::unfold(f.raw_value);
        match name {
            "status" if value.contains(&b'R') => system_flags |= SystemFlags::SEEN,
            "x-status" => {
                for &b in value.iter() {
                    system_flags |= match b {
                        b'A' => SystemFlags::ANSWERED,
                        b'F' => SystemFlags::FLAGGED,
                        b'T' => SystemFlags::DRAFT,
                        b'D' => SystemFlags::DELETED,
                        _ => 0,
                    };
                }
            }
            "x-keywords" => {
                for k in value.split(|b| b.is_ascii_whitespace() || *b == b',').filter(|k| !k.is_empty()) {
                    let k = String::from_utf8_lossy(k).into_owned();
                    if valid_user_flag(&k) {
                        if !keywords.contains(&k) {
                            keywords.push(k);
                        }
                    } else {
                        bad_keywords.push(k);
                    }
                }
            }
            "x-imap" => {
                let subject = message::field(header, "subject").unwrap_or_default();
                internal = memchr::memmem::find(&subject, b"FOLDER INTERNAL DATA").is_some();
            }
            _ => {}
        }
    }
    let bytes = if has_meta { strip_meta(&raw, split.header_len) } else { raw };
    MboxMessage { bytes, offset, from, system_flags, keywords, bad_keywords, by_content_length: by_cl, internal }
}

/// Whether `line` (at a line start) is a quoted From line `>+From ` (mboxrd) or `>From `
/// (mboxo).
fn is_quoted_from(line: &[u8], quoting: Quoting) -> bool {
    match quoting {
        Quoting::None => false,
        Quoting::Mboxo => line.starts_with(b">From "),
        Quoting::Mboxrd => {
            let gt = line.iter().take_while(|&&b| b == b'>').count();
            gt > 0 && line[gt..].starts_with(b"From ")
        }
    }
}

/// Remove one `>` from every quoted From line.
fn unquote(raw: Vec<u8>, quoting: Quoting) -> Vec<u8> {
    let any = lines(&raw).any(|(s, _)| is_quoted_from(&raw[s..], quoting));
    if !any {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len());
    for (s, e) in lines(&raw) {
        let l = &raw[s..e];
        if is_quoted_from(l, quoting) {
            out.extend_from_slice(&l[1..]);
        } else {
            out.extend_from_slice(l);
        }
    }
    out
}

/// (start, end) of each line, its line end included.
fn lines(b: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= b.len() {
            return None;
        }
        let s = pos;
        let e = match memchr(b'\n', &b[pos..]) {
            Some(i) => pos + i + 1,
            None => b.len(),
        };
        pos = e;
        Some((s, e))
    })
}

/// Whether a header line starts a bookkeeping field.
fn is_meta_line(l: &[u8]) -> bool {
    let Some(colon) = memchr(b':', l) else { return false };
    let name = l[..colon].trim_ascii_end();
    META_FIELDS.iter().any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
}

/// Remove every bookkeeping field (with its continuation lines) from the header block
/// `raw[..header_len]`.
fn strip_meta(raw: &[u8], header_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for (s, e) in lines(&raw[..header_len]) {
        let l = &raw[s..e];
        let continuation = matches!(l.first(), Some(b' ' | b'\t'));
        if continuation && skipping {
            continue;
        }
        skipping = !continuation && is_meta_line(l);
        if !skipping {
            out.extend_from_slice(l);
        }
    }
    out.extend_from_slice(&raw[header_len..]);
    out
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MONTH_NAMES: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

fn is_word_of(tok: &[u8], names: &[&str]) -> Option<usize> {
    if tok.len() < 3 || !tok.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let lower = tok.to_ascii_lowercase();
    names.iter().position(|n| lower.starts_with(n.as_bytes()))
}

fn is_zone(tok: &[u8]) -> bool {
    match tok.first() {
        Some(b'+' | b'-') => tok.len() == 5 && tok[1..].iter().all(u8::is_ascii_digit),
        Some(_) => (1..=6).contains(&tok.len()) && tok.iter().all(u8::is_ascii_alphabetic),
        None => false,
    }
}

fn is_time(tok: &[u8]) -> bool {
    let parts: Vec<&[u8]> = tok.split(|&b| b == b':').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts.iter().all(|p| (1..=2).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
}

/// `[weekday] month day time [zone] year [zone] [remote from ...]` starting at `toks[0]`.
fn parse_asctime(toks: &[&[u8]]) -> Option<DateTime> {
    let mut i = 0;
    if is_word_of(toks.first()?, &DAY_NAMES).is_some() && is_word_of(toks.first()?, &MONTH_NAMES).is_none() {
        i += 1;
    }
    let month = is_word_of(toks.get(i)?, &MONTH_NAMES)?;
    i += 1;
    let day = toks.get(i)?;
    if !(1..=2).contains(&day.len()) || !day.iter().all(u8::is_ascii_digit) {
        return None;
    }
    i += 1;
    let time = toks.get(i)?;
    if !is_time(time) {
        return None;
    }
    i += 1;
    let mut zone: Option<&[u8]> = None;
    if toks.get(i).is_some_and(|t| is_zone(t)) {
        zone = toks.get(i).copied();
        i += 1;
    }
    let year = toks.get(i)?;
    if year.len() != 4 || !year.iter().all(u8::is_ascii_digit) {
        return None;
    }
    i += 1;
    if let Some(t) = toks.get(i) {
        if is_zone(t) && !t.eq_ignore_ascii_case(b"remote") {
            // A numeric zone after the year wins over a named one before it.
            if zone.is_none() || t.first().is_some_and(|b| matches!(b, b'+' | b'-')) {
                zone = Some(t);
            }
            i += 1;
        }
    }
    match toks.get(i) {
        None => {}
        Some(t) if t.eq_ignore_ascii_case(b"remote") => {}
        Some(_) => return None,
    }
    let mut s = Vec::with_capacity(40);
    s.extend_from_slice(day);
    s.push(b' ');
    s.extend_from_slice(MONTH_NAMES[month].as_bytes());
    s.push(b' ');
    s.extend_from_slice(year);
    s.push(b' ');
    s.extend_from_slice(time);
    s.push(b' ');
    s.extend_from_slice(zone.unwrap_or(b"+0000"));
    message::parse_date(&s)
}

/// Parse a From_ line (`From sender date`, line end optional). `None` if the line is not
/// one (it does not start with `From `, or no date in `asctime` form ends it).
pub fn parse_from_line(line: &[u8]) -> Option<FromLine> {
    if line.len() > MAX_FROM_LINE + 2 {
        return None;
    }
    let rest = line.strip_prefix(b"From ")?;
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let mut toks: Vec<(usize, &[u8])> = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b' ' || rest[i] == b'\t' {
            i += 1;
            continue;
        }
        let s = i;
        while i < rest.len() && rest[i] != b' ' && rest[i] != b'\t' {
            i += 1;
        }
        toks.push((s, &rest[s..i]));
        if toks.len() > 64 {
            return None;
        }
    }
    let words: Vec<&[u8]> = toks.iter().map(|t| t.1).collect();
    for k in 0..words.len() {
        if let Some(date) = parse_asctime(&words[k..]) {
            let sender = match toks.get(k) {
                Some(&(start, _)) => rest[..start].trim_ascii(),
                None => rest.trim_ascii(),
            };
            return Some(FromLine { sender: String::from_utf8_lossy(sender).into_owned(), date });
        }
    }
    None
}

/// The From_ line export writes: `From MAILER-DAEMON Wed Jul  1 13:17:17 1998[ +hhmm]`.
pub fn format_from_line(date: DateTime) -> String {
    // to_rfc5322 gives "Wed, 01 Jul 1998 13:17:17 +0100" in the date's own zone.
    let r = date.to_rfc5322();
    let parts: Vec<&str> = r.split(' ').collect();
    let (dow, day, mon, year, time, zone) = match parts.as_slice() {
        [dow, day, mon, year, time, zone] => (dow.trim_end_matches(','), *day, *mon, *year, *time, *zone),
        _ => ("Thu", "01", "Jan", "1970", "00:00:00", "+0000"),
    };
    let day = day.trim_start_matches('0');
    let mut s = format!("From MAILER-DAEMON {dow} {mon} {day:>2} {time} {year}");
    if date.offset_minutes != 0 {
        s.push(' ');
        s.push_str(zone);
    }
    s
}

/// What [`write_message`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written.
    pub bytes: u64,
    /// The message could not be written so that import gives back the same bytes: it held
    /// bookkeeping fields of its own (replaced by the current flags), or it is header-only
    /// without a final line end (one was added).
    pub changed: bool,
}

/// The bookkeeping fields for a message's flags (each line ending in `eol`).
fn meta_fields(system_flags: u32, keywords: &[String], eol: &[u8], body_len: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(if system_flags & SystemFlags::SEEN != 0 { b"Status: RO" } else { b"Status: O" });
    out.extend_from_slice(eol);
    let mut xs = String::new();
    for (bit, c) in [
        (SystemFlags::ANSWERED, 'A'),
        (SystemFlags::FLAGGED, 'F'),
        (SystemFlags::DRAFT, 'T'),
        (SystemFlags::DELETED, 'D'),
    ] {
        if system_flags & bit != 0 {
            xs.push(c);
        }
    }
    if !xs.is_empty() {
        out.extend_from_slice(b"X-Status: ");
        out.extend_from_slice(xs.as_bytes());
        out.extend_from_slice(eol);
    }
    if !keywords.is_empty() {
        out.extend_from_slice(b"X-Keywords: ");
        out.extend_from_slice(keywords.join(" ").as_bytes());
        out.extend_from_slice(eol);
    }
    if let Some(n) = body_len {
        out.extend_from_slice(format!("Content-Length: {n}").as_bytes());
        out.extend_from_slice(eol);
    }
    out
}

/// Write `line` quoted (mboxrd) if it matches `>*From `.
fn write_quoted_line(w: &mut impl Write, l: &[u8]) -> std::io::Result<u64> {
    let gt = l.iter().take_while(|&&b| b == b'>').count();
    if l[gt..].starts_with(b"From ") {
        w.write_all(b">")?;
        w.write_all(l)?;
        Ok(l.len() as u64 + 1)
    } else {
        w.write_all(l)?;
        Ok(l.len() as u64)
    }
}

/// Write one message in mboxrd form (see the module documentation).
pub fn write_message(
    w: &mut impl Write,
    msg: &[u8],
    date: DateTime,
    system_flags: u32,
    keywords: &[String],
) -> std::io::Result<WriteOutcome> {
    let mut changed = false;
    let split = message::split(msg);
    let header_has_meta = lines(&msg[..split.header_len]).any(|(s, e)| is_meta_line(&msg[s..e]));
    let owned;
    let (msg, split) = if header_has_meta {
        changed = true;
        owned = strip_meta(msg, split.header_len);
        (&owned[..], message::split(&owned))
    } else {
        (msg, split)
    };
    let header = &msg[..split.header_len];
    let eol: &[u8] =
        if header.ends_with(b"\r\n") || (header.is_empty() && msg.starts_with(b"\r\n")) { b"\r\n" } else { b"\n" };
    let ends_eol = msg.ends_with(b"\n");
    let has_blank = split.body_offset > split.header_len;
    // Body length in the file (after quoting), for a message without a final line end.
    let body_len = if !ends_eol && has_blank {
        let body = &msg[split.body_offset..];
        Some(lines(body).map(|(s, e)| body[s..e].len() + usize::from(quoted_len(&body[s..e]))).sum())
    } else {
        None
    };
    let mut n = 0u64;
    let from = format_from_line(date);
    w.write_all(from.as_bytes())?;
    w.write_all(b"\n")?;
    n += from.len() as u64 + 1;
    for (s, e) in lines(header) {
        n += write_quoted_line(w, &msg[s..e])?;
    }
    let mut rest_start = split.header_len;
    if !header.is_empty() && !header.ends_with(b"\n") {
        // Header-only message without a final line end: the fields need a line of their own.
        w.write_all(b"\n")?;
        n += 1;
        changed = true;
        rest_start = msg.len();
    }
    let meta = meta_fields(system_flags, keywords, eol, body_len);
    w.write_all(&meta)?;
    n += meta.len() as u64;
    let rest = &msg[rest_start..];
    for (s, e) in lines(rest) {
        n += write_quoted_line(w, &rest[s..e])?;
    }
    // The separator is one `\n`, also after a CRLF message: readers that take only `\n` as
    // the blank line before a From_ line (Python's `mailbox`) would keep a `\r\n` in the
    // message before it; ours strips either.
    w.write_all(b"\n")?;
    n += 1;
    Ok(WriteOutcome { bytes: n, changed })
}

fn quoted_len(l: &[u8]) -> bool {
    let gt = l.iter().take_while(|&&b| b == b'>').count();
    l[gt..].starts_with(b"From ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> Vec<Result<MboxMessage, ImportError>> {
        let mut r = MboxReader::new(data, Path::new("t.mbox"), Quoting::Mboxrd);
        std::iter::from_fn(|| r.next()).collect()
    }

    fn ok_bytes(data: &[u8]) -> Vec<Vec<u8>> {
        read_all(data).into_iter().map(|m| m.expect("message").bytes).collect()
    }

    #[test]
    fn from_lines() {
        let f = parse_from_line(b"From dblank@comp.uark.edu  Wed Jul  1 13:17:17 1998\n").expect("from");
        assert_eq!(f.sender, "dblank@comp.uark.edu");
        assert_eq!(f.date.to_rfc3339(), "1998-07-01T13:17:17+00:00");
        let f = parse_from_line(b"From upi at papat.org  Wed Feb  1 19:06:04 2006\r\n").expect("from");
        assert_eq!(f.sender, "upi at papat.org");
        let f = parse_from_line(b"From klopp Mon Jan  5 08:50:15 +0100 2004").expect("from");
        assert_eq!(f.date.to_rfc3339(), "2004-01-05T08:50:15+01:00");
        let f = parse_from_line(b"From x Thu Sep 13 12:30:05 2001 -0400").expect("from");
        assert_eq!(f.date.offset_minutes, -240);
        let f = parse_from_line(b"From david@coppit.org Sat Sep  1 20:58 EDT 2001").expect("from");
        assert_eq!(f.date.to_rfc3339(), "2001-09-01T20:58:00-04:00");
        assert!(parse_from_line(b"From goldt@et.byu.edu  Tue Jul  7 20:33:03 1998 WETDST").is_some());
        assert!(parse_from_line(b"From this principle, all of life and physics may be deduced.\n").is_none());
        assert!(parse_from_line(b"From: someone\n").is_none());
        assert!(parse_from_line(b"From  Wed Jul  1 13:17:17 1998").is_some_and(|f| f.sender.is_empty()));
        assert!(parse_from_line(b"From a Wed Jul 41 13:17:17 1998").is_none());
    }

    #[test]
    fn from_line_round_trip() {
        for (unix, off) in [(0i64, 0i16), (899_299_037, 0), (1_700_000_000, 60), (1_700_000_000, -570), (-1, 0)] {
            let d = DateTime { unix, offset_minutes: off };
            let line = format_from_line(d);
            if unix >= -2_208_988_800 {
                let p = parse_from_line(line.as_bytes()).unwrap_or_else(|| panic!("{line}"));
                assert_eq!(p.date, d, "{line}");
                assert_eq!(p.sender, "MAILER-DAEMON");
            }
        }
    }

    #[test]
    fn splits_unquotes_and_strips_the_separator() {
        let data = b"From a Wed Jul  1 13:17:17 1998\nSubject: x\n\n>From here\n>>From there\nFrom nowhere\n\nFrom b Wed Jul  1 13:17:18 1998\nSubject: y\n\nbody\n";
        let got = ok_bytes(data);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], b"Subject: x\n\nFrom here\n>From there\nFrom nowhere\n");
        assert_eq!(got[1], b"Subject: y\n\nbody\n");
    }

    #[test]
    fn crlf_separator_and_missing_blank_line() {
        let data = b"From a Wed Jul  1 13:17:17 1998\r\nA: b\r\n\r\nx\r\n\r\nFrom b Wed Jul  1 13:17:17 1998\r\nA: c\r\n\r\ny\r\nFrom c Wed Jul  1 13:17:17 1998\nA: d\n";
        let got = ok_bytes(data);
        assert_eq!(got, vec![b"A: b\r\n\r\nx\r\n".to_vec(), b"A: c\r\n\r\ny\r\n".to_vec(), b"A: d\n".to_vec()]);
    }

    #[test]
    fn flags_are_read_and_fields_removed() {
        let data = b"From a Wed Jul  1 13:17:17 1998\nSubject: x\nStatus: RO\nX-Status: AF\nX-Keywords: $Work, later\n  folded\nX-UID: 7\nTo: y\n\nbody\n";
        let m = read_all(data).remove(0).expect("message");
        assert_eq!(m.bytes, b"Subject: x\nTo: y\n\nbody\n");
        assert_eq!(m.system_flags, SystemFlags::SEEN | SystemFlags::ANSWERED | SystemFlags::FLAGGED);
        assert_eq!(m.keywords, vec!["$Work", "later", "folded"]);
    }

    #[test]
    fn content_length_is_honoured_when_sane() {
        let body = b"From inside the body, unquoted\nmore\n";
        let mut data = format!("From a Wed Jul  1 13:17:17 1998\nContent-Length: {}\n\n", body.len()).into_bytes();
        data.extend_from_slice(body);
        data.extend_from_slice(b"\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n\nc\n");
        let got = read_all(&data);
        assert_eq!(got.len(), 2);
        let m = got[0].as_ref().expect("first");
        assert!(m.by_content_length);
        assert_eq!(m.bytes, [&b"\n"[..], body].concat());
        // Too long: ignored, From_ lines decide.
        let data = b"From a Wed Jul  1 13:17:17 1998\nContent-Length: 99999\n\nx\n\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n\nc\n";
        let got = ok_bytes(data);
        assert_eq!(got, vec![b"\nx\n".to_vec(), b"A: b\n\nc\n".to_vec()]);
        // Lands in the middle of a line: ignored.
        let data =
            b"From a Wed Jul  1 13:17:17 1998\nContent-Length: 1\n\nxy\n\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n\nc\n";
        assert_eq!(ok_bytes(data).len(), 2);
    }

    #[test]
    fn not_an_mbox_and_malformed_messages() {
        let got = read_all(b"Hello\nworld\n");
        assert!(matches!(&got[..], [Err(ImportError::NotAMailbox { .. })]), "{got:?}");
        let got = read_all(b"\n\nFrom a Wed Jul  1 13:17:17 1998\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n");
        assert_eq!(got.len(), 2);
        match &got[0] {
            Err(ImportError::Malformed { offset, .. }) => assert_eq!(*offset, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1].as_ref().expect("second").bytes, b"A: b\n");
        let mut r = MboxReader::new(
            &b"From a Wed Jul  1 13:17:17 1998\nA: 0123456789012345678901234567890123456789\n\nFrom b Wed Jul  1 13:17:17 1998\nA: b\n"[..],
            Path::new("t"),
            Quoting::Mboxrd,
        )
        .with_max_message(20);
        assert!(matches!(r.next(), Some(Err(ImportError::Malformed { offset: 0, .. }))));
        assert_eq!(r.next().expect("second").expect("ok").bytes, b"A: b\n");
        assert!(r.next().is_none());
    }

    proptest::proptest! {
        /// Any bytes: no panic, messages are non-empty, offsets increase, and the reader
        /// ends; the same holds with a tiny size limit and for the From_ line parser.
        #[test]
        fn any_input_reads_without_panic(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b"From a Wed Jul  1 13:17:17 1998\n".to_vec()),
                    proptest::strategy::Just(b"Content-Length: 3\n".to_vec()),
                    proptest::strategy::Just(b"Status: RO\nX-Keywords: a, b\n".to_vec()),
                    proptest::strategy::Just(b"\n".to_vec()),
                    proptest::strategy::Just(b"\r\n".to_vec()),
                    proptest::strategy::Just(b">From x\n".to_vec()),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                ],
                0..30,
            ),
            limit in 1usize..200,
        ) {
            let data: Vec<u8> = parts.concat();
            for max in [MAX_MESSAGE, limit] {
                let mut r = MboxReader::new(&data[..], Path::new("f"), Quoting::Mboxrd).with_max_message(max);
                let mut last = None;
                let mut n = 0;
                while let Some(item) = r.next() {
                    n += 1;
                    proptest::prop_assert!(n <= data.len() + 1);
                    if let Ok(m) = item {
                        proptest::prop_assert!(!m.bytes.is_empty());
                        proptest::prop_assert!(last.is_none_or(|l| m.offset > l));
                        last = Some(m.offset);
                    }
                }
                proptest::prop_assert!(r.offset() <= data.len() as u64);
            }
            let _ = parse_from_line(&data);
        }
    }

    fn round_trip(msg: &[u8], flags: u32, kw: &[&str]) {
        let kw: Vec<String> = kw.iter().map(|s| s.to_string()).collect();
        let date = DateTime { unix: 1_600_000_000, offset_minutes: 120 };
        let mut out = Vec::new();
        for _ in 0..2 {
            let o = write_message(&mut out, msg, date, flags, &kw).expect("write");
            assert!(!o.changed);
        }
        let got = read_all(&out);
        assert_eq!(got.len(), 2, "{}", String::from_utf8_lossy(&out));
        for m in got {
            let m = m.expect("message");
            assert_eq!(m.bytes, msg, "{}", String::from_utf8_lossy(&out));
            assert_eq!(m.system_flags, flags);
            assert_eq!(m.keywords, kw);
            assert_eq!(m.from.date, date);
        }
    }

    #[test]
    fn write_then_read_gives_the_same_message() {
        round_trip(b"Subject: a\n\nFrom x\n>From y\n", SystemFlags::SEEN, &["$Work"]);
        round_trip(b"Subject: a\r\n\r\nFrom x\r\n>>From y\r\n", SystemFlags::ALL, &[]);
        round_trip(b"Subject: a\n\nno final line end", 0, &["a", "b"]);
        round_trip(b"Subject: a\n\nFrom no final line end", 0, &[]);
        round_trip(b"Subject: a\n", SystemFlags::DRAFT, &[]);
        round_trip(b"Subject: a\n\n", 0, &[]);
        round_trip(b"\nbody only\n", 0, &[]);
        round_trip(b"Subject: a\n\nx\n\n\n", 0, &[]);
        round_trip(b"Subject: a\r\n\r\nx\r\n\r", 0, &[]);
    }
}
