//! The header block of a message (RFC 5322 section 2.2): where it ends, its
//! fields as they sit in the file, and unfolding.
//!
//! A header block is a run of lines ended by the first empty line. Lines end
//! in CRLF or LF, mixed freely. A field starts on a line whose first byte is
//! not white space and that holds a colon; the bytes before the colon (minus
//! trailing white space, RFC 5322 4.5.8 `obs-optional`) are the name, and
//! must be printable US-ASCII. Lines starting with SP or HTAB continue the
//! field above them. Anything else (a line without a colon, an mbox `From `
//! line, 8-bit bytes in the name) is skipped together with its continuation
//! lines.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter};

/// Where the header block of a message ends.
///
/// `msg[..header_len]` is the header fields (the last one with its line end);
/// `msg[header_len..body_offset]` is the blank separator line (empty when
/// there is none); `msg[body_offset..]` is the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Bytes of the header fields, excluding the blank separator line.
    pub header_len: usize,
    /// Offset of the first byte of the body; `msg.len()` when there is no
    /// blank line (the whole input is header).
    pub body_offset: usize,
}

/// Find the end of the header block: the first empty line (`LF` or `CRLF`
/// alone on a line).
///
/// An input with no empty line is all header. Nothing at the start is
/// special: an mbox `From ` line is just a line that [`fields`] skips.
pub fn split(msg: &[u8]) -> Split {
    // A blank line at offset 0: no header at all.
    if let Some(len) = blank_line_at(msg, 0) {
        return Split { header_len: 0, body_offset: len };
    }
    for nl in memchr_iter(b'\n', msg) {
        // `nl < msg.len()`, so `nl + 1` cannot overflow.
        let start = nl + 1;
        if let Some(len) = blank_line_at(msg, start) {
            return Split { header_len: start, body_offset: start + len };
        }
    }
    Split { header_len: msg.len(), body_offset: msg.len() }
}

/// If an empty line starts at `at`, the length of its line end (1 or 2).
#[inline]
fn blank_line_at(buf: &[u8], at: usize) -> Option<usize> {
    match buf.get(at)? {
        b'\n' => Some(1),
        b'\r' if buf.get(at.checked_add(1)?) == Some(&b'\n') => Some(2),
        _ => None,
    }
}

/// One header field as it sits in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name, as written (compare it case-insensitively).
    pub name: &'a [u8],
    /// Everything after the colon, folded lines included, the final line end
    /// (CRLF or LF) excluded. Not trimmed; see [`unfold`].
    pub raw_value: &'a [u8],
    /// Byte offset of the field name within the header block.
    pub offset: usize,
}

impl Field<'_> {
    /// Whether the field is called `name` (ASCII case-insensitive).
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Iterator over the fields of a header block; see [`fields`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    header: &'a [u8],
    pos: usize,
    /// Where the header block ended, once the iterator has: the same as [`split`] of
    /// the input (every line start that could be the blank line is looked at).
    end: Option<Split>,
}

impl Fields<'_> {
    /// Where the header block ends, as [`split`] gives it, once the iterator has returned
    /// `None` (so one pass finds both the fields and the end); `None` before that.
    pub fn split(&self) -> Option<Split> {
        self.end
    }
}

/// Iterate over the fields of a header block.
///
/// Give it `&msg[..split(msg).header_len]` or a MIME part's header. If it is
/// given more, it stops at the first empty line, so passing a whole message
/// is harmless. Lines that are not fields are skipped; nothing is allocated.
pub fn fields(header: &[u8]) -> Fields<'_> {
    Fields { header, pos: 0, end: None }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let h = self.header;
        loop {
            let start = self.pos;
            let Some(rest) = h.get(start..).filter(|r| !r.is_empty()) else {
                // Out of lines without a blank one: all header (`split`'s rule).
                self.end.get_or_insert(Split { header_len: h.len(), body_offset: h.len() });
                return None;
            };
            if let Some(len) = blank_line_at(h, start) {
                self.end = Some(Split { header_len: start, body_offset: start + len });
                self.pos = h.len();
                return None;
            }
            // End of the first physical line (index of its LF, or the end).
            let first_end = memchr(b'\n', rest).map_or(h.len(), |i| start + i);
            // Extend over continuation lines.
            let mut end = first_end;
            while end < h.len() && matches!(h.get(end + 1), Some(b' ' | b'\t')) {
                end = h.get(end + 1..).and_then(|r| memchr(b'\n', r)).map_or(h.len(), |i| end + 1 + i);
            }
            self.pos = if end < h.len() { end + 1 } else { h.len() };

            let line = h.get(start..first_end).unwrap_or_default();
            if matches!(line.first(), Some(b' ' | b'\t')) {
                continue; // continuation line with nothing to continue
            }
            let Some(colon) = memchr(b':', line) else {
                continue; // not a field
            };
            let name = trim_end_wsp(line.get(..colon).unwrap_or_default());
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                continue; // garbage or 8-bit name (e.g. an mbox "From " line)
            }
            let value_start = start + colon + 1;
            let mut value_end = end;
            if value_end > value_start && h.get(value_end - 1) == Some(&b'\r') {
                value_end -= 1;
            }
            let raw_value = h.get(value_start..value_end).unwrap_or_default();
            return Some(Field { name, raw_value, offset: start });
        }
    }
}

/// Unfold a raw field value: remove every CRLF or LF that is followed by SP
/// or HTAB (keeping the white space), and trim white space (including line
/// ends) at both ends.
///
/// Borrows when there is no fold; copies only when there is one.
pub fn unfold(raw: &[u8]) -> Cow<'_, [u8]> {
    let t = trim_wsp(raw);
    let is_fold = |nl: usize| matches!(t.get(nl + 1), Some(b' ' | b'\t'));
    if !memchr_iter(b'\n', t).any(is_fold) {
        return Cow::Borrowed(t);
    }
    let mut out = Vec::with_capacity(t.len());
    let mut from = 0;
    for nl in memchr_iter(b'\n', t) {
        if !is_fold(nl) {
            continue;
        }
        let mut cut = nl;
        if cut > from && t.get(cut - 1) == Some(&b'\r') {
            cut -= 1;
        }
        out.extend_from_slice(t.get(from..cut).unwrap_or_default());
        from = nl + 1;
    }
    out.extend_from_slice(t.get(from..).unwrap_or_default());
    Cow::Owned(out)
}

/// The first field called `name` (ASCII case-insensitive), unfolded.
pub fn field<'a>(header: &'a [u8], name: &str) -> Option<Cow<'a, [u8]>> {
    fields(header).find(|f| f.is(name)).map(|f| unfold(f.raw_value))
}

/// Is `b` white space in a header (SP, HTAB, CR, LF)?
#[inline]
pub(crate) fn is_wsp_or_eol(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trim SP, HTAB, CR and LF at both ends.
pub(crate) fn trim_wsp(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_wsp_or_eol(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_wsp_or_eol(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// Trim SP and HTAB at the end.
fn trim_end_wsp(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &[u8]) -> Vec<String> {
        fields(h).map(|f| String::from_utf8_lossy(f.name).into_owned()).collect()
    }

    #[test]
    fn split_crlf() {
        let m = b"A: 1\r\nB: 2\r\n\r\nbody\r\n";
        let s = split(m);
        assert_eq!(s.header_len, 12);
        assert_eq!(s.body_offset, 14);
        assert_eq!(&m[s.body_offset..], b"body\r\n");
    }

    #[test]
    fn split_lf() {
        let m = b"A: 1\nB: 2\n\nbody\n";
        let s = split(m);
        assert_eq!((s.header_len, s.body_offset), (10, 11));
    }

    #[test]
    fn split_mixed_line_ends() {
        let m = b"A: 1\r\nB: 2\n\r\nbody";
        assert_eq!(split(m), Split { header_len: 11, body_offset: 13 });
        let m = b"A: 1\r\nB: 2\r\n\nbody";
        assert_eq!(split(m), Split { header_len: 12, body_offset: 13 });
    }

    #[test]
    fn split_no_blank_line_is_all_header() {
        let m = b"A: 1\r\nB: 2\r\n";
        assert_eq!(split(m), Split { header_len: m.len(), body_offset: m.len() });
        assert_eq!(split(b""), Split { header_len: 0, body_offset: 0 });
        // A CR alone is not a blank line.
        let m = b"A: 1\n\r";
        assert_eq!(split(m).header_len, m.len());
    }

    #[test]
    fn split_leading_blank_line() {
        assert_eq!(split(b"\r\nbody"), Split { header_len: 0, body_offset: 2 });
        assert_eq!(split(b"\nbody"), Split { header_len: 0, body_offset: 1 });
    }

    #[test]
    fn split_blank_line_at_end() {
        let m = b"A: 1\n\n";
        assert_eq!(split(m), Split { header_len: 5, body_offset: 6 });
    }

    #[test]
    fn split_whitespace_line_is_not_blank() {
        // " \r\n" is a (folded, empty) continuation line, not the separator.
        let m = b"A: 1\r\n \r\n\r\nbody";
        assert_eq!(split(m).header_len, 9);
    }

    #[test]
    fn fields_basic_and_offsets() {
        let h = b"From: a@b\r\nTo: c@d\r\n";
        let v: Vec<_> = fields(h).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, b"From");
        assert_eq!(v[0].raw_value, b" a@b");
        assert_eq!(v[0].offset, 0);
        assert_eq!(v[1].name, b"To");
        assert_eq!(v[1].raw_value, b" c@d");
        assert_eq!(v[1].offset, 11);
    }

    #[test]
    fn fields_folded_crlf_and_lf() {
        let h = b"Subject: one\r\n two\r\n\tthree\r\nX: y\r\n";
        let v: Vec<_> = fields(h).collect();
        assert_eq!(v[0].raw_value, b" one\r\n two\r\n\tthree");
        assert_eq!(v[1].name, b"X");
        let h = b"Subject: one\n two\nX: y";
        let v: Vec<_> = fields(h).collect();
        assert_eq!(v[0].raw_value, b" one\n two");
        assert_eq!(v[1].raw_value, b" y");
    }

    #[test]
    fn fields_skip_garbage() {
        let h = b"From foo@bar Mon Jan  1 00:00:00 2024\n\
                  no colon here\n  continued garbage\n\
                  \xc3\xa9t\xc3\xa9: eight-bit name\n\
                  : empty name\n\
                  Good: yes\n\
                  Sub ject: space in name\n\
                  Obs : obsolete space before colon\n";
        assert_eq!(names(h), ["Good", "Obs"]);
    }

    #[test]
    fn fields_leading_continuation_skipped() {
        let h = b"  orphan\r\nA: 1\r\n";
        assert_eq!(names(h), ["A"]);
    }

    #[test]
    fn fields_stop_at_blank_line() {
        let m = b"A: 1\r\n\r\nB: 2\r\n";
        assert_eq!(names(m), ["A"]);
        assert_eq!(names(b"\nA: 1"), Vec::<String>::new());
    }

    #[test]
    fn fields_empty_value_and_no_final_newline() {
        let v: Vec<_> = fields(b"A:\r\nB:").collect();
        assert_eq!(v[0].raw_value, b"");
        assert_eq!(v[1].raw_value, b"");
        let v: Vec<_> = fields(b"A: x\r").collect();
        assert_eq!(v[0].raw_value, b" x");
    }

    #[test]
    fn unfold_borrows_when_possible() {
        assert!(matches!(unfold(b"  plain value \r\n"), Cow::Borrowed(b"plain value")));
        assert!(matches!(unfold(b""), Cow::Borrowed(b"")));
        assert!(matches!(unfold(b" \r\n "), Cow::Borrowed(b"")));
    }

    #[test]
    fn unfold_removes_folds() {
        let u = unfold(b" one\r\n two\n\tthree\r\n");
        assert!(matches!(u, Cow::Owned(_)));
        assert_eq!(&*u, b"one two\tthree");
        // A line end not followed by white space is kept (not a fold).
        assert_eq!(&*unfold(b"a\r\nb\r\n c"), b"a\r\nb c");
    }

    #[test]
    fn field_lookup_case_insensitive() {
        let h = b"subject: first\r\nSUBJECT: second\r\nX-Long: a\r\n  b\r\n";
        assert_eq!(field(h, "Subject").as_deref(), Some(&b"first"[..]));
        assert_eq!(field(h, "x-long").as_deref(), Some(&b"a  b"[..]));
        assert_eq!(field(h, "Missing"), None);
    }
}
