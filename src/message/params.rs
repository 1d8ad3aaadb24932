//! Structured MIME field values: `Content-Type` (RFC 2045 section 5.1) and
//! `Content-Disposition` (RFC 2183), with their parameters.
//!
//! The raw field value is read directly (folds and comments are white space
//! to this lexer, so no unfolding copy is made). Values are borrowed from the
//! message unless they must change: lower-casing a type or parameter name,
//! undoing quoted-string escapes or folds, joining RFC 2231 continuations.
//!
//! Leniency, as mail software needs it: an unquoted value may hold any byte
//! but `;`, white space and `"` (real boundaries such as `==_Part_1` are not
//! RFC tokens); a parameter without `=` is dropped; garbage is skipped up to
//! the next `;`; an unterminated quoted string runs to the end of the value.

use std::borrow::Cow;

use super::date::skip_comment;

/// At most this many parameters are kept per field; the rest are ignored.
pub const MAX_PARAMS: usize = 128;

/// A parameter list: (name lower-cased, value).
pub type Params<'a> = Vec<Param<'a>>;

/// One parameter: (name lower-cased, value).
pub type Param<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// A parsed `Content-Type` or `Content-Disposition` value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentValue<'a> {
    /// The (media or disposition) type, lower-cased; `None` when missing or
    /// malformed.
    pub kind: Option<Cow<'a, [u8]>>,
    /// The media subtype, lower-cased; always `None` for a disposition, and
    /// `None` for a malformed media type (then `kind` is `None` too).
    pub subtype: Option<Cow<'a, [u8]>>,
    /// Parameters in order of appearance: names lower-cased, quoted strings
    /// unquoted, RFC 2231 continuations (`name*0`, `name*1*`) joined.
    pub params: Params<'a>,
}

impl ContentValue<'_> {
    /// The first parameter called `name` (give it in lower case).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        find_param(&self.params, name)
    }
}

/// The first parameter called `name` (give it in lower case) in a list.
pub fn find_param<'p>(params: &'p Params<'_>, name: &str) -> Option<&'p [u8]> {
    params.iter().find(|(n, _)| n.as_ref() == name.as_bytes()).map(|(_, v)| v.as_ref())
}

/// Parse a raw `Content-Type` value: `type "/" subtype *(";" parameter)`.
///
/// A value without a valid `type/subtype` gives `kind` and `subtype` `None`
/// (the caller applies the default); its parameters are still read.
pub fn parse_content_type(raw: &[u8]) -> ContentValue<'_> {
    let mut lx = Lexer { s: raw, pos: 0 };
    lx.skip_cfws();
    let kind = lx.token();
    lx.skip_cfws();
    let subtype = if kind.is_some() && lx.eat(b'/') {
        lx.skip_cfws();
        lx.token()
    } else {
        None
    };
    let (kind, subtype) = match (kind, subtype) {
        (Some(k), Some(s)) => (Some(lower(k)), Some(lower(s))),
        _ => (None, None),
    };
    ContentValue { kind, subtype, params: lx.params() }
}

/// Parse a raw `Content-Disposition` value: `type *(";" parameter)`.
pub fn parse_disposition(raw: &[u8]) -> ContentValue<'_> {
    let mut lx = Lexer { s: raw, pos: 0 };
    lx.skip_cfws();
    let kind = lx.token().map(lower);
    ContentValue { kind, subtype: None, params: lx.params() }
}

/// Lower-case ASCII letters, borrowing when there are none to change.
pub(crate) fn lower(s: &[u8]) -> Cow<'_, [u8]> {
    if s.iter().any(u8::is_ascii_uppercase) { Cow::Owned(s.to_ascii_lowercase()) } else { Cow::Borrowed(s) }
}

/// RFC 2045 `tspecials`.
fn is_tspecial(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'=')
}

/// A token byte: printable, not a tspecial. 8-bit bytes are allowed.
fn is_token(b: u8) -> bool {
    b > b' ' && b != 0x7f && !is_tspecial(b)
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skip white space, line ends (folds) and comments.
    fn skip_cfws(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'(') => self.pos = skip_comment(self.s, self.pos),
                _ => return,
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Option<&'a [u8]> {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).filter(|t| !t.is_empty())
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        self.take_while(is_token)
    }

    /// A quoted string starting at `"`; escapes undone, folds removed.
    fn quoted(&mut self) -> Cow<'a, [u8]> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut plain = true;
        while let Some(b) = self.peek() {
            match b {
                b'"' => break,
                b'\\' => {
                    plain = false;
                    self.pos += 1;
                }
                b'\r' | b'\n' => plain = false,
                _ => {}
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.s.len());
        let inner = self.s.get(start..end).unwrap_or_default();
        let _ = self.eat(b'"');
        if plain {
            return Cow::Borrowed(inner);
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut it = inner.iter();
        while let Some(&b) = it.next() {
            match b {
                b'\\' => {
                    if let Some(&next) = it.next() {
                        out.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        Cow::Owned(out)
    }

    /// Skip a quoted string starting at `"`, without unquoting it.
    fn skip_quoted(&mut self) {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += if b == b'\\' { 2 } else { 1 };
            if b == b'"' {
                return;
            }
        }
    }

    /// Skip to the next `;` that is outside quotes and comments (or the end).
    fn skip_to_semicolon(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b';' => return,
                b'"' => self.skip_quoted(),
                b'(' => self.pos = skip_comment(self.s, self.pos),
                _ => self.pos += 1,
            }
        }
    }

    /// `*(";" attribute "=" value)`, leniently, RFC 2231 continuations joined.
    fn params(&mut self) -> Params<'a> {
        let mut out: Params<'a> = Vec::new();
        while out.len() < MAX_PARAMS {
            self.skip_cfws();
            match self.peek() {
                None => break,
                Some(b';') => self.pos += 1,
                Some(_) => {
                    self.skip_to_semicolon();
                    continue;
                }
            }
            self.skip_cfws();
            let Some(name) = self.token() else {
                continue;
            };
            self.skip_cfws();
            if !self.eat(b'=') {
                continue;
            }
            self.skip_cfws();
            let value = if self.peek() == Some(b'"') {
                self.quoted()
            } else {
                let v = self.take_while(|b| !matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'('));
                Cow::Borrowed(v.unwrap_or_default())
            };
            out.push((lower(name), value));
        }
        join_rfc2231(out)
    }
}

/// One parsed `name*N` / `name*N*` parameter name.
#[derive(Clone, Copy)]
struct Segment<'n> {
    base: &'n [u8],
    index: u32,
    extended: bool,
}

/// `base*N` or `base*N*` with N a decimal number of at most 4 digits.
fn segment(name: &[u8]) -> Option<Segment<'_>> {
    let star = name.iter().position(|&b| b == b'*')?;
    let base = name.get(..star)?;
    let rest = name.get(star + 1..)?;
    let (digits, extended) = match rest.split_last() {
        Some((b'*', d)) => (d, true),
        _ => (rest, false),
    };
    if base.is_empty()
        || digits.is_empty()
        || digits.len() > 4
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits.first() == Some(&b'0'))
    {
        return None;
    }
    let index = digits.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    Some(Segment { base, index, extended })
}

/// Join RFC 2231 continuations: `title*0="a"; title*1="b"` becomes
/// `title="ab"`; if segment 0 is extended (`title*0*=us-ascii'en'a%20`) the
/// result is `title*` with the percent-encoded value (later non-extended
/// segments are percent-encoded so the whole stays one encoding). The joined
/// parameter takes the place of its segment 0.
///
/// Per name, the chain is the first occurrence of segment 0, 1, 2, ... up to
/// the first gap; segments outside the chain (after a gap, repeats, a chain
/// with no segment 0) are kept as they were. O(n log n) in the number of
/// parameters, so a hostile list cannot make this slow.
fn join_rfc2231(params: Params<'_>) -> Params<'_> {
    // Nearly every list has no segment at all: nothing to allocate for it.
    if !params.iter().any(|(n, _)| n.contains(&b'*')) {
        return params;
    }
    let segs: Vec<Option<Segment<'_>>> = params.iter().map(|(n, _)| segment(n)).collect();
    // Segment positions sorted by (name, number, position in the field).
    let mut order: Vec<(&[u8], u32, usize)> =
        segs.iter().enumerate().filter_map(|(i, s)| s.map(|s| (s.base, s.index, i))).collect();
    if order.is_empty() {
        return params;
    }
    order.sort_unstable();

    let mut used = vec![false; params.len()];
    let mut joined: Vec<Option<Param<'_>>> = vec![None; params.len()];
    let mut chain: Vec<usize> = Vec::new();
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        chain.clear();
        let mut want = 0u32;
        for &(_, index, i) in group {
            if index == want {
                chain.push(i);
                want += 1;
            } else if index > want {
                break; // a gap ends the chain
            } // else: a repeat of a segment already in the chain
        }
        let Some(Some(first)) = chain.first().map(|&i| segs.get(i).copied().flatten()) else {
            continue;
        };
        let mut name = first.base.to_vec();
        if first.extended {
            name.push(b'*');
        }
        let mut value = Vec::new();
        for &i in &chain {
            let extended = segs.get(i).copied().flatten().is_some_and(|s| s.extended);
            let v = params.get(i).map(|(_, v)| v.as_ref()).unwrap_or_default();
            if first.extended && !extended {
                percent_encode_into(v, &mut value);
            } else {
                value.extend_from_slice(v);
            }
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        if let Some(slot) = chain.first().and_then(|&i| joined.get_mut(i)) {
            *slot = Some((Cow::Owned(name), Cow::Owned(value)));
        }
    }
    params
        .into_iter()
        .zip(used)
        .zip(joined)
        .filter_map(|((p, used), joined)| match (used, joined) {
            (_, Some(j)) => Some(j),
            (true, None) => None,
            (false, None) => Some(p),
        })
        .collect()
}

/// Append `v` with every byte that is not an RFC 2231 `attribute-char`
/// written as `%XX`.
fn percent_encode_into(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if is_token(b) && b.is_ascii() && !matches!(b, b'*' | b'\'' | b'%') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(raw: &str) -> ContentValue<'_> {
        parse_content_type(raw.as_bytes())
    }

    fn pairs(v: &ContentValue<'_>) -> Vec<(String, String)> {
        v.params
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    fn p(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn simple_type_borrowed() {
        let v = ct(" text/plain; charset=us-ascii");
        assert_eq!(v.kind.as_deref(), Some(&b"text"[..]));
        assert_eq!(v.subtype.as_deref(), Some(&b"plain"[..]));
        assert!(matches!(v.kind, Some(Cow::Borrowed(_))));
        assert_eq!(pairs(&v), [p("charset", "us-ascii")]);
        assert!(matches!(v.params[0].1, Cow::Borrowed(_)));
        assert_eq!(v.param("charset"), Some(&b"us-ascii"[..]));
    }

    #[test]
    fn case_comments_folds_quotes() {
        let v = ct(" Multipart/MIXED (comment) ;\r\n\tBoundary=\"=_a b\\\"c\" ; (x) CHARSET = UTF-8 (y)");
        assert_eq!(v.kind.as_deref(), Some(&b"multipart"[..]));
        assert_eq!(v.subtype.as_deref(), Some(&b"mixed"[..]));
        assert_eq!(pairs(&v), [p("boundary", "=_a b\"c"), p("charset", "UTF-8")]);
        let v = ct("text / html ; name=\"folded\r\n name\"");
        assert_eq!(v.subtype.as_deref(), Some(&b"html"[..]));
        assert_eq!(pairs(&v), [p("name", "folded name")]);
    }

    #[test]
    fn lenient_unquoted_values() {
        let v = ct("multipart/alternative; boundary==_Part_0_1.2/3?x; charset=x");
        assert_eq!(pairs(&v), [p("boundary", "=_Part_0_1.2/3?x"), p("charset", "x")]);
        let v = ct("text/plain; charset=\"unterminated");
        assert_eq!(pairs(&v), [p("charset", "unterminated")]);
        let v = ct("text/plain; novalue; =x; a=; b=1;;; garbage here; c=\"q;uoted\"");
        assert_eq!(pairs(&v), [p("a", ""), p("b", "1"), p("c", "q;uoted")]);
        let v = ct("text/plain junk \"x;y\" more; d=2");
        assert_eq!(pairs(&v), [p("d", "2")]);
    }

    #[test]
    fn malformed_type() {
        for raw in ["", "text", "text/", "/plain", "; charset=x", "te@xt/plain", "\u{1}"] {
            let v = ct(raw);
            assert_eq!(v.kind, None, "{raw:?}");
            assert_eq!(v.subtype, None, "{raw:?}");
        }
        assert_eq!(pairs(&ct("text; charset=x")), [p("charset", "x")]);
    }

    #[test]
    fn rfc2231_continuations() {
        let v = ct("application/x; title*1=\" world\"; title*0=hello; x=y");
        assert_eq!(pairs(&v), [p("title", "hello world"), p("x", "y")]);
        let v = ct("application/x; TITLE*0*=us-ascii'en'This%20is; title*1*=%20even; title*2=\" more!\"");
        assert_eq!(pairs(&v), [p("title*", "us-ascii'en'This%20is%20even%20more!")]);
        // A simple extended parameter is kept raw.
        let v = ct("application/x; name*=utf-8''%E2%82%AC.txt");
        assert_eq!(pairs(&v), [p("name*", "utf-8''%E2%82%AC.txt")]);
        // A gap ends the chain; the rest is kept as it was.
        let v = ct("application/x; n*0=a; n*2=c");
        assert_eq!(pairs(&v), [p("n", "a"), p("n*2", "c")]);
        // No segment 0: kept as they were.
        let v = ct("application/x; n*1=b; n*01=x; n*99999=y; *0=z");
        assert_eq!(pairs(&v), [p("n*1", "b"), p("n*01", "x"), p("n*99999", "y"), p("*0", "z")]);
        // Repeated segments: the first wins, the repeat is kept as it was.
        let v = ct("application/x; n*0=a; n*0=b; n*1=c; n*1=d");
        assert_eq!(pairs(&v), [p("n", "ac"), p("n*0", "b"), p("n*1", "d")]);
        // Two names interleaved, numbers out of order.
        let v = ct("application/x; b*1=2; a*1=y; b*0=1; a*0=x");
        assert_eq!(pairs(&v), [p("b", "12"), p("a", "xy")]);
    }

    #[test]
    fn param_cap() {
        let mut raw = String::from("text/plain");
        for i in 0..1000 {
            raw.push_str(&format!("; p{i}=v"));
        }
        assert_eq!(ct(&raw).params.len(), MAX_PARAMS);
    }

    #[test]
    fn disposition() {
        let v = parse_disposition(b" Attachment; FileName=\"a b.pdf\"; size=12");
        assert_eq!(v.kind.as_deref(), Some(&b"attachment"[..]));
        assert_eq!(v.subtype, None);
        assert_eq!(pairs(&v), [p("filename", "a b.pdf"), p("size", "12")]);
        let v = parse_disposition(b"; filename=x");
        assert_eq!(v.kind, None);
        assert_eq!(pairs(&v), [p("filename", "x")]);
    }
}
