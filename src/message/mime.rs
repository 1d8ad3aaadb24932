//! The MIME structure of a message (RFC 2045, RFC 2046): what an IMAP
//! `BODYSTRUCTURE` needs, as a flat list of parts in pre-order.
//!
//! Part 0 is the whole message. A `multipart/*` part with a `boundary`
//! parameter has one child per body part between its delimiter lines; a
//! `message/rfc822` (or `message/global`) part has exactly one child, the
//! encapsulated message, whose header and body are parsed like the top
//! level. Everything else is a leaf.
//!
//! The walk is iterative (an explicit stack, no recursion). Hostile nesting
//! is bounded: parts at depth [`MAX_DEPTH`] are leaves whatever their type,
//! and no more than [`MAX_PARTS`] parts are made; either cap sets
//! [`Structure::truncated`].
//!
//! Multipart rules, after RFC 2046 section 5.1.1: a delimiter is a line that
//! starts with `--boundary`, optionally followed by `--` (the close
//! delimiter), then only SP/HTAB before the line end (CRLF or LF) or the end
//! of the enclosing body. The line end *before* a delimiter belongs to the
//! delimiter, not to the body part above it. The preamble (before the first
//! delimiter) and the epilogue (after the close delimiter) belong to no part.
//! Without a close delimiter the last body part runs to the end of the
//! multipart's body, which itself ends where its enclosing body part ends.
//! A multipart with no usable `boundary` parameter or no delimiter line is a
//! leaf (its media type is kept as given; see [`PartKind`]).

use std::borrow::Cow;

use memchr::memmem;

use super::MessageError;
use super::envelope::Envelope;
use super::header::{Split, fields, split, trim_wsp, unfold};
use super::params::{Params, find_param, parse_content_type, parse_disposition};

/// Parts deeper than this (part 0 has depth 0) are not broken down further.
pub const MAX_DEPTH: u16 = 64;

/// At most this many parts are made for one message.
pub const MAX_PARTS: usize = 10_000;

// Part indices are stored as u32.
const _: () = assert!(MAX_PARTS <= u32::MAX as usize);

/// Boundaries longer than this are not honoured (RFC 2046 allows 70).
const MAX_BOUNDARY: usize = 256;

/// How a part was broken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// No children. This includes `multipart/*` parts that could not be
    /// split (no boundary, no delimiter, depth or part cap) and
    /// `message/rfc822` parts that could not be opened (base64 or
    /// quoted-printable encoded, depth or part cap); an IMAP server should
    /// describe such a part as a single non-multipart body.
    Leaf,
    /// A `multipart/*` part with at least one child.
    Multipart,
    /// A `message/rfc822` or `message/global` part whose one child is the
    /// encapsulated message.
    Message,
}

/// The MIME structure of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure<'a> {
    /// All parts in pre-order (a part, then its children's subtrees, in
    /// order). `parts[0]` is the whole message and always exists.
    pub parts: Vec<Part<'a>>,
    /// A cap ([`MAX_DEPTH`] or [`MAX_PARTS`]) stopped the breakdown somewhere.
    pub truncated: bool,
}

impl Structure<'_> {
    /// Indices of the direct children of part `index`, in order.
    pub fn children(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        let depth = self.parts.get(index).map_or(u16::MAX, |p| p.depth);
        let parent = u32::try_from(index).ok();
        let start = index.saturating_add(1);
        self.parts
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(move |p| p.depth > depth)
            .enumerate()
            .filter(move |(_, p)| p.parent.is_some() && p.parent == parent)
            .map(move |(i, _)| start + i)
    }
}

/// One MIME part: its header fields of interest and where it lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// Index of the parent part in [`Structure::parts`]; `None` for part 0.
    pub parent: Option<u32>,
    /// 0 for the message, 1 for its children, and so on.
    pub depth: u16,
    /// How the part was broken down.
    pub kind: PartKind,
    /// The `Content-Type` field as written, trimmed (a fold is left in: nothing in the
    /// store reads this but tests and diagnostics, and unfolding costs a copy); `None`
    /// when absent.
    pub content_type: Option<&'a [u8]>,
    /// Media type, lower-cased (`text`). When `Content-Type` is absent or
    /// malformed: `message` for a child of `multipart/digest`, else `text`.
    pub media_type: Cow<'a, [u8]>,
    /// Media subtype, lower-cased (`plain`; `rfc822` by digest default).
    pub media_subtype: Cow<'a, [u8]>,
    /// `Content-Type` parameters: names lower-cased, quoted strings
    /// unquoted, RFC 2231 continuations joined (`name*` values stay
    /// percent-encoded). No default `charset` is added.
    pub params: Params<'a>,
    /// `Content-ID`, unfolded.
    pub id: Option<Cow<'a, [u8]>>,
    /// `Content-Description`, unfolded.
    pub description: Option<Cow<'a, [u8]>>,
    /// `Content-Transfer-Encoding`, unfolded, case as written.
    pub encoding: Option<Cow<'a, [u8]>>,
    /// `Content-Disposition` type, lower-cased (`attachment`).
    pub disposition: Option<Cow<'a, [u8]>>,
    /// `Content-Disposition` parameters, as for [`Part::params`].
    pub disposition_params: Params<'a>,
    /// `Content-Language`, unfolded.
    pub language: Option<Cow<'a, [u8]>>,
    /// `Content-Location`, unfolded.
    pub location: Option<Cow<'a, [u8]>>,
    /// `Content-MD5`, unfolded.
    pub md5: Option<Cow<'a, [u8]>>,
    /// Absolute offset of the part's header block in the message.
    pub header_offset: u64,
    /// Length of the header block (without the blank separator line).
    pub header_len: u64,
    /// Absolute offset of the part's body in the message.
    pub body_offset: u64,
    /// Length of the body.
    pub body_len: u64,
    /// Number of line ends (LF) in the body: IMAP's "size in text lines". Counted for
    /// `text/*` and `message/*` parts only (IMAP has no line count for others): 0 there.
    pub body_lines: u64,
    /// The envelope of part 0 and of every encapsulated message (the child
    /// of a [`PartKind::Message`] part); `None` for other parts.
    pub envelope: Option<Envelope<'a>>,
}

impl<'a> Part<'a> {
    /// The first `Content-Type` parameter called `name` (lower case).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        find_param(&self.params, name)
    }

    /// The first `Content-Disposition` parameter called `name` (lower case).
    pub fn disposition_param(&self, name: &str) -> Option<&[u8]> {
        find_param(&self.disposition_params, name)
    }

    /// Whether the media type is `type/subtype` (give them in lower case).
    pub fn is(&self, media_type: &str, media_subtype: &str) -> bool {
        *self.media_type == *media_type.as_bytes() && *self.media_subtype == *media_subtype.as_bytes()
    }

    /// The part's header block within `msg` (the message it was parsed
    /// from); `None` if `msg` is too short.
    pub fn header_bytes<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        slice(msg, self.header_offset, self.header_len)
    }

    /// The part's body within `msg` (the message it was parsed from);
    /// `None` if `msg` is too short.
    pub fn body_bytes<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        slice(msg, self.body_offset, self.body_len)
    }
}

fn slice(msg: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    msg.get(start..end)
}

/// Parse the MIME structure of a whole message.
///
/// # Errors
///
/// - [`MessageError::Empty`] for a zero-length input;
/// - [`MessageError::NoHeaderFields`] when the top-level header block holds
///   no field at all (a binary or zeroed file, or one starting with a blank
///   line).
///
/// Nothing else is an error: broken MIME degrades to leaves and defaults.
pub fn parse_structure(msg: &[u8]) -> Result<Structure<'_>, MessageError> {
    if msg.is_empty() {
        return Err(MessageError::Empty);
    }

    let mut parts: Vec<Part<'_>> = Vec::new();
    let mut truncated = false;
    let mut stack = vec![Pending {
        parent: None,
        depth: 0,
        start: 0,
        end: msg.len(),
        default: DefaultType::TextPlain,
        encapsulated: true,
    }];
    let mut ranges: Vec<(usize, usize)> = Vec::new();

    while let Some(p) = stack.pop() {
        let index = u32::try_from(parts.len()).expect("parts.len() < MAX_PARTS <= u32::MAX");
        let (mut part, body_start, fields_read) = read_part(msg, &p);
        if index == 0 && fields_read == 0 {
            // Part 0's header is the message's: no field at all is no message.
            return Err(MessageError::NoHeaderFields { header_len: part.header_len as usize });
        }
        // Parts still allowed after this one and those already queued.
        let room = MAX_PARTS.saturating_sub(parts.len() + 1 + stack.len());
        let body = msg.get(body_start..p.end).unwrap_or_default();

        let multipart = *part.media_type == *b"multipart";
        let message = *part.media_type == *b"message" && matches!(&*part.media_subtype, b"rfc822" | b"global");
        if (multipart || message) && p.depth >= MAX_DEPTH {
            truncated = true;
        } else if multipart {
            let boundary = part.param("boundary").filter(|b| !b.is_empty() && b.len() <= MAX_BOUNDARY);
            if let Some(boundary) = boundary {
                truncated |= find_body_parts(body, boundary, room, &mut ranges);
                if !ranges.is_empty() {
                    part.kind = PartKind::Multipart;
                    let default = if *part.media_subtype == *b"digest" {
                        DefaultType::MessageRfc822
                    } else {
                        DefaultType::TextPlain
                    };
                    stack.extend(ranges.iter().rev().map(|&(s, e)| Pending {
                        parent: Some(index),
                        depth: p.depth + 1,
                        start: body_start + s,
                        end: body_start + e,
                        default,
                        encapsulated: false,
                    }));
                }
            }
        } else if message && !is_encoded(part.encoding.as_deref()) {
            if room == 0 {
                truncated = true;
            } else {
                part.kind = PartKind::Message;
                stack.push(Pending {
                    parent: Some(index),
                    depth: p.depth + 1,
                    start: body_start,
                    end: p.end,
                    default: DefaultType::TextPlain,
                    encapsulated: true,
                });
            }
        }
        parts.push(part);
    }
    Ok(Structure { parts, truncated })
}

/// The default media type of a part without a usable `Content-Type`.
#[derive(Clone, Copy, Debug)]
enum DefaultType {
    TextPlain,
    MessageRfc822,
}

/// A part waiting to be read: its whole extent `msg[start..end]`.
struct Pending {
    parent: Option<u32>,
    depth: u16,
    start: usize,
    end: usize,
    default: DefaultType,
    /// A message (part 0 or an encapsulated one): it gets an envelope.
    encapsulated: bool,
}

/// The first occurrence of each MIME header field, raw.
#[derive(Default)]
struct MimeFields<'a> {
    content_type: Option<&'a [u8]>,
    encoding: Option<&'a [u8]>,
    id: Option<&'a [u8]>,
    description: Option<&'a [u8]>,
    disposition: Option<&'a [u8]>,
    language: Option<&'a [u8]>,
    location: Option<&'a [u8]>,
    md5: Option<&'a [u8]>,
}

impl<'a> MimeFields<'a> {
    /// One pass over the header block at the start of `region`: these fields, the
    /// envelope fields too when `env` is given (an encapsulated message: its header is
    /// walked once, not twice), where the header ends ([`split`] of `region`), and how
    /// many fields it holds.
    fn read(region: &'a [u8], mut env: Option<&mut Envelope<'a>>) -> (Self, Split, usize) {
        let mut m = MimeFields::default();
        let mut n = 0;
        let mut it = fields(region);
        for f in it.by_ref() {
            n += 1;
            let Some(suffix) =
                f.name.get(8..).filter(|_| f.name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case(b"content-")))
            else {
                if let Some(e) = env.as_deref_mut() {
                    e.take(&f);
                }
                continue;
            };
            let is = |s: &str| suffix.eq_ignore_ascii_case(s.as_bytes());
            let slot = match suffix.len() {
                4 if is("type") => &mut m.content_type,
                17 if is("transfer-encoding") => &mut m.encoding,
                2 if is("id") => &mut m.id,
                11 if is("description") => &mut m.description,
                11 if is("disposition") => &mut m.disposition,
                8 if is("language") => &mut m.language,
                8 if is("location") => &mut m.location,
                3 if is("md5") => &mut m.md5,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(f.raw_value);
            }
        }
        // The loop ran to the end, so the iterator knows where the header ended.
        let sp = it.split().unwrap_or_else(|| split(region));
        (m, sp, n)
    }
}

/// Read one part's header (one pass: its fields and where it ends); returns the part (as
/// a leaf), the absolute offset of its body and the number of header fields it has.
fn read_part<'a>(msg: &'a [u8], p: &Pending) -> (Part<'a>, usize, usize) {
    let region = msg.get(p.start..p.end).unwrap_or_default();
    let mut envelope = p.encapsulated.then(Envelope::default);
    let (m, sp, fields_read) = MimeFields::read(region, envelope.as_mut());
    let body = region.get(sp.body_offset..).unwrap_or_default();

    let ct = m.content_type.map(parse_content_type).unwrap_or_default();
    let (media_type, media_subtype) = match (ct.kind, ct.subtype) {
        (Some(t), Some(s)) => (t, s),
        _ => match p.default {
            DefaultType::TextPlain => (Cow::Borrowed(&b"text"[..]), Cow::Borrowed(&b"plain"[..])),
            DefaultType::MessageRfc822 => (Cow::Borrowed(&b"message"[..]), Cow::Borrowed(&b"rfc822"[..])),
        },
    };
    let disp = m.disposition.map(parse_disposition).unwrap_or_default();
    let body_start = p.start + sp.body_offset;
    // IMAP reports a line count only for text/* and message/* bodies; counting the lines
    // of attachments and multipart bodies would be wasted work.
    let body_lines =
        if media_type.as_ref() == b"text" || media_type.as_ref() == b"message" { super::count_lines(body) } else { 0 };
    let part = Part {
        parent: p.parent,
        depth: p.depth,
        kind: PartKind::Leaf,
        content_type: m.content_type.map(trim_wsp),
        media_type,
        media_subtype,
        params: ct.params,
        id: m.id.map(unfold),
        description: m.description.map(unfold),
        encoding: m.encoding.map(unfold),
        disposition: disp.kind,
        disposition_params: disp.params,
        language: m.language.map(unfold),
        location: m.location.map(unfold),
        md5: m.md5.map(unfold),
        header_offset: p.start as u64,
        header_len: sp.header_len as u64,
        body_offset: body_start as u64,
        body_len: body.len() as u64,
        body_lines,
        envelope,
    };
    (part, body_start, fields_read)
}

/// Is a transfer encoding one that hides the bytes (base64 or
/// quoted-printable), so an encapsulated message cannot be read in place?
fn is_encoded(encoding: Option<&[u8]>) -> bool {
    let Some(e) = encoding else { return false };
    let e = trim_wsp(e);
    let token = e.split(|&b| b == b'(' || b == b' ' || b == b'\t').next().unwrap_or_default();
    token.eq_ignore_ascii_case(b"base64") || token.eq_ignore_ascii_case(b"quoted-printable")
}

/// Find the body parts of a multipart body: fills `out` with their ranges
/// relative to `body` (each from just after a delimiter line to just before
/// the line end that precedes the next delimiter). At most `limit` ranges;
/// returns whether more were there.
fn find_body_parts(body: &[u8], boundary: &[u8], limit: usize, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let mut needle = Vec::with_capacity(boundary.len() + 2);
    needle.extend_from_slice(b"--");
    needle.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&needle);

    let mut open: Option<usize> = None; // start of the body part being read
    let mut pos = 0;
    while let Some(hit) = body.get(pos..).and_then(|r| finder.find(r)) {
        let at = pos + hit;
        pos = at + 1;
        if at > 0 && body.get(at - 1) != Some(&b'\n') {
            continue; // not at a line start
        }
        let mut k = at + needle.len();
        let close = body.get(k..k + 2) == Some(b"--");
        if close {
            k += 2;
        }
        while matches!(body.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        let line_end = match body.get(k) {
            None => body.len(),
            Some(b'\n') => k + 1,
            Some(b'\r') if body.get(k + 1) == Some(&b'\n') => k + 2,
            _ => continue, // "--boundaryX": some other line
        };
        // The line end before the delimiter belongs to the delimiter.
        let delim_start = if at >= 2 && body.get(at - 2..at) == Some(b"\r\n") { at - 2 } else { at.saturating_sub(1) };
        if let Some(start) = open {
            if out.len() >= limit {
                return true;
            }
            out.push((start, delim_start.max(start)));
        }
        if close {
            return false;
        }
        open = Some(line_end);
        pos = pos.max(line_end);
    }
    if let Some(start) = open {
        if out.len() >= limit {
            return true;
        }
        out.push((start, body.len().max(start)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: &[u8]) -> String {
        String::from_utf8_lossy(c).into_owned()
    }

    fn body<'m>(msg: &'m [u8], p: &Part<'_>) -> &'m [u8] {
        p.body_bytes(msg).expect("range inside the message")
    }

    fn ty(p: &Part<'_>) -> String {
        format!("{}/{}", s(&p.media_type), s(&p.media_subtype))
    }

    #[test]
    fn errors() {
        assert_eq!(parse_structure(b""), Err(MessageError::Empty));
        assert_eq!(parse_structure(b"\r\nbody"), Err(MessageError::NoHeaderFields { header_len: 0 }));
        assert_eq!(parse_structure(&[0u8; 64]), Err(MessageError::NoHeaderFields { header_len: 64 }));
        assert!(parse_structure(b"X: y").is_ok());
    }

    #[test]
    fn single_part_defaults() {
        let m = b"From: a@b\r\nSubject: hi\r\n\r\nline 1\r\nline 2\r\n";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 1);
        let p = &st.parts[0];
        assert_eq!(ty(p), "text/plain");
        assert_eq!(p.kind, PartKind::Leaf);
        assert_eq!(p.parent, None);
        assert_eq!((p.header_offset, p.header_len), (0, 24));
        assert_eq!((p.body_offset, p.body_len, p.body_lines), (26, 16, 2));
        assert_eq!(body(m, p), b"line 1\r\nline 2\r\n");
        assert!(p.params.is_empty());
        let env = p.envelope.as_ref().expect("part 0 has an envelope");
        assert_eq!(env.subject.as_deref(), Some(&b"hi"[..]));
        assert!(!st.truncated);
    }

    #[test]
    fn content_fields() {
        let m = b"Content-Type: Text/HTML; Charset=\"UTF-8\"\n\
                  Content-Transfer-Encoding: Base64\n\
                  Content-ID: <id@x>\n\
                  Content-Description: a\n  description\n\
                  Content-Disposition: INLINE; filename=a.html\n\
                  Content-Language: en, de\n\
                  Content-Location: http://x/\n\
                  Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\
                  Content-Type: ignored/second\n\
                  \n\
                  PGh0bWw+";
        let st = parse_structure(m).expect("parses");
        let p = &st.parts[0];
        assert_eq!(ty(p), "text/html");
        assert_eq!(p.param("charset"), Some(&b"UTF-8"[..]));
        assert_eq!(p.content_type, Some(&b"Text/HTML; Charset=\"UTF-8\""[..]));
        assert_eq!(p.encoding.as_deref(), Some(&b"Base64"[..]));
        assert_eq!(p.id.as_deref(), Some(&b"<id@x>"[..]));
        assert_eq!(p.description.as_deref(), Some(&b"a  description"[..]));
        assert_eq!(p.disposition.as_deref(), Some(&b"inline"[..]));
        assert_eq!(p.disposition_param("filename"), Some(&b"a.html"[..]));
        assert_eq!(p.language.as_deref(), Some(&b"en, de"[..]));
        assert_eq!(p.location.as_deref(), Some(&b"http://x/"[..]));
        assert_eq!(p.md5.as_deref(), Some(&b"Q2hlY2sgSW50ZWdyaXR5IQ=="[..]));
        assert_eq!((p.body_len, p.body_lines), (8, 0));
    }

    #[test]
    fn malformed_content_type_defaults() {
        let m = b"Content-Type: garbage\r\n\r\nx";
        let st = parse_structure(m).expect("parses");
        assert_eq!(ty(&st.parts[0]), "text/plain");
        assert_eq!(st.parts[0].content_type, Some(&b"garbage"[..]));
    }

    const NESTED: &[u8] = b"From: a@b\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble --outer not a delimiter\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
first part\r\n\
--outer-not-a-delimiter\r\n\
\x20--outer (indented, not a delimiter)\r\n\
\r\n\
--outer \t\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>html</p>\r\n\
--inner--\r\n\
inner epilogue\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: c@d\r\n\
Subject: inside\r\n\
Content-Type: multipart/mixed; boundary=deep\r\n\
\r\n\
--deep\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
bin\r\n\
--deep--\r\n\
--outer--\r\n\
epilogue\r\n";

    #[test]
    fn nested_multipart_and_message() {
        let m = NESTED;
        let st = parse_structure(m).expect("parses");
        let got: Vec<_> = st.parts.iter().map(|p| (ty(p), p.parent, p.depth, p.kind)).collect();
        use PartKind::*;
        let want = [
            ("multipart/mixed", None, 0, Multipart),
            ("text/plain", Some(0), 1, Leaf),
            ("multipart/alternative", Some(0), 1, Multipart),
            ("text/plain", Some(2), 2, Leaf),
            ("text/html", Some(2), 2, Leaf),
            ("message/rfc822", Some(0), 1, Message),
            ("multipart/mixed", Some(5), 2, Multipart),
            ("application/octet-stream", Some(6), 3, Leaf),
        ];
        let want: Vec<_> = want.iter().map(|&(t, p, d, k)| (t.to_string(), p, d, k)).collect();
        assert_eq!(got, want);

        let b = |i: usize| body(m, &st.parts[i]);
        assert_eq!(b(1), &b"first part\r\n--outer-not-a-delimiter\r\n --outer (indented, not a delimiter)\r\n"[..]);
        assert_eq!(b(3), b"plain");
        assert_eq!(b(4), b"<p>html</p>");
        assert_eq!(b(7), b"bin");
        assert!(b(5).starts_with(b"From: c@d\r\n"));
        assert!(b(5).ends_with(b"--deep--"));
        assert_eq!(st.parts[5].envelope, None);
        let env = st.parts[6].envelope.as_ref().expect("encapsulated message");
        assert_eq!(env.subject.as_deref(), Some(&b"inside"[..]));
        assert_eq!(st.parts[6].header_offset, st.parts[5].body_offset);
        assert_eq!(st.parts[6].body_offset + st.parts[6].body_len, st.parts[5].body_offset + st.parts[5].body_len);
        // Part 3 has no header at all: it starts with the blank line.
        assert_eq!(st.parts[3].header_len, 0);
        assert_eq!(st.parts[3].body_offset, st.parts[3].header_offset + 2);
        assert_eq!(st.children(0).collect::<Vec<_>>(), [1, 2, 5]);
        assert_eq!(st.children(2).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(st.children(5).collect::<Vec<_>>(), [6]);
        assert_eq!(st.children(7).count(), 0);
        assert_eq!(st.children(99).count(), 0);
        assert_eq!(st.parts[1].body_lines, 3);
    }

    #[test]
    fn nested_lf_only() {
        let lf: Vec<u8> = NESTED
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[..] != b"\r\n"[..])
            .map(|(i, _)| NESTED[i])
            .chain(NESTED.last().copied())
            .collect();
        assert!(!lf.contains(&b'\r'));
        let st = parse_structure(&lf).expect("parses");
        assert_eq!(st.parts.len(), 8);
        assert_eq!(body(&lf, &st.parts[3]), b"plain");
        assert_eq!(body(&lf, &st.parts[7]), b"bin");
    }

    #[test]
    fn missing_close_delimiter() {
        let m = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nlast\nno close\n";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 3);
        assert_eq!(body(m, &st.parts[1]), b"first");
        assert_eq!(body(m, &st.parts[2]), b"last\nno close\n");
        // Inside an outer multipart, the inner one ends where its part ends.
        let m = b"Content-Type: multipart/mixed; boundary=o\n\n--o\n\
                  Content-Type: multipart/mixed; boundary=i\n\n--i\n\ninner\n\
                  --o\n\nsecond\n--o--\n";
        let st = parse_structure(m).expect("parses");
        let tys: Vec<_> = st.parts.iter().map(|p| (ty(p), p.parent)).collect();
        assert_eq!(
            tys,
            [
                ("multipart/mixed".to_string(), None),
                ("multipart/mixed".to_string(), Some(0)),
                ("text/plain".to_string(), Some(1)),
                ("text/plain".to_string(), Some(0)),
            ]
        );
        assert_eq!(body(m, &st.parts[2]), b"inner");
        assert_eq!(body(m, &st.parts[3]), b"second");
    }

    #[test]
    fn delimiter_at_end_without_line_end() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 2);
        assert_eq!(body(m, &st.parts[1]), b"x");
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 3);
        assert_eq!(st.parts[2].body_len, 0);
    }

    #[test]
    fn empty_and_adjacent_parts() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\nX: 1\r\n--b--\r\n";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 3);
        let p1 = &st.parts[1];
        assert_eq!((p1.header_len, p1.body_len), (0, 0));
        // A part with a header and no blank line is all header.
        let p2 = &st.parts[2];
        assert_eq!(p2.header_bytes(m), Some(&b"X: 1"[..]));
        assert_eq!(p2.body_len, 0);
    }

    #[test]
    fn broken_multiparts_are_leaves() {
        for m in [
            &b"Content-Type: multipart/mixed\r\n\r\n--b\r\nx\r\n--b--\r\n"[..],
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\nx\r\n",
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--b\r\nx\r\n--b--\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n--b\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n",
        ] {
            let st = parse_structure(m).expect("parses");
            assert_eq!(st.parts.len(), 1, "{}", String::from_utf8_lossy(m));
            assert_eq!(st.parts[0].kind, PartKind::Leaf);
            assert_eq!(ty(&st.parts[0]), "multipart/mixed");
        }
    }

    #[test]
    fn boundary_like_text_in_body() {
        let m = b"Content-Type: multipart/mixed; boundary=b\n\n\
                  --b\n\n\
                  text --b inside a line\n\
                  --bb is another boundary\n\
                  --b- almost\n\
                  --b--x not a close\n\
                  --b\n\nsecond\n--b--\n";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 3);
        assert_eq!(
            body(m, &st.parts[1]),
            &b"text --b inside a line\n--bb is another boundary\n--b- almost\n--b--x not a close"[..]
        );
        assert_eq!(body(m, &st.parts[2]), b"second");
    }

    #[test]
    fn digest_default_and_encoded_message() {
        let m = b"Content-Type: multipart/digest; boundary=d\n\n--d\n\n\
                  Subject: one\n\nbody one\n--d\nContent-Type: text/plain\n\nnot a message\n--d--\n";
        let st = parse_structure(m).expect("parses");
        let got: Vec<_> = st.parts.iter().map(|p| (ty(p), p.kind)).collect();
        assert_eq!(
            got,
            [
                ("multipart/digest".to_string(), PartKind::Multipart),
                ("message/rfc822".to_string(), PartKind::Message),
                ("text/plain".to_string(), PartKind::Leaf),
                ("text/plain".to_string(), PartKind::Leaf),
            ]
        );
        let env = st.parts[2].envelope.as_ref().expect("encapsulated");
        assert_eq!(env.subject.as_deref(), Some(&b"one"[..]));
        assert_eq!(body(m, &st.parts[2]), b"body one");

        let m = b"Content-Type: message/rfc822\nContent-Transfer-Encoding: BASE64 (x)\n\nU3ViamVjdDogeA==\n";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 1);
        assert_eq!(st.parts[0].kind, PartKind::Leaf);
        let m = b"Content-Type: message/global\n\nSubject: g\n\nbody";
        let st = parse_structure(m).expect("parses");
        assert_eq!(st.parts.len(), 2);
        assert_eq!(st.parts[1].body_bytes(m), Some(&b"body"[..]));
    }

    #[test]
    fn depth_cap() {
        // 200 nested message/rfc822 levels.
        let mut m = Vec::new();
        for _ in 0..200 {
            m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        m.extend_from_slice(b"Subject: bottom\r\n\r\nbody\r\n");
        let st = parse_structure(&m).expect("parses");
        assert!(st.truncated);
        assert_eq!(st.parts.len(), usize::from(MAX_DEPTH) + 1);
        let last = st.parts.last().expect("parts");
        assert_eq!(last.depth, MAX_DEPTH);
        assert_eq!(last.kind, PartKind::Leaf);
        // Nested multiparts, each with a distinct boundary.
        let mut m = Vec::new();
        for i in 0..200 {
            m.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes());
        }
        let st = parse_structure(&m).expect("parses");
        assert!(st.truncated);
        assert_eq!(st.parts.len(), usize::from(MAX_DEPTH) + 1);
        assert!(st.parts.iter().all(|p| p.depth <= MAX_DEPTH));
    }

    #[test]
    fn part_cap() {
        let mut m = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for _ in 0..(MAX_PARTS + 500) {
            m.extend_from_slice(b"--b\n\nx\n");
        }
        m.extend_from_slice(b"--b--\n");
        let st = parse_structure(&m).expect("parses");
        assert!(st.truncated);
        assert_eq!(st.parts.len(), MAX_PARTS);
        // Exactly at the cap: not truncated.
        let mut m = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for _ in 0..(MAX_PARTS - 1) {
            m.extend_from_slice(b"--b\n\nx\n");
        }
        m.extend_from_slice(b"--b--\n");
        let st = parse_structure(&m).expect("parses");
        assert!(!st.truncated);
        assert_eq!(st.parts.len(), MAX_PARTS);
    }

    #[test]
    fn part_cap_with_nesting() {
        // Every part is a multipart of two messages: the queue must respect
        // the cap too.
        let mut m = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for _ in 0..6000 {
            m.extend_from_slice(b"--b\nContent-Type: message/rfc822\n\nSubject: x\n\ny\n");
        }
        let st = parse_structure(&m).expect("parses");
        assert!(st.truncated);
        assert!(st.parts.len() <= MAX_PARTS);
    }
}
