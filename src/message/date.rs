//! Dates: the `Date:` and `Received:` fields (RFC 5322 section 3.3 and the
//! obsolete forms of 4.3), and the RFC 3339 and IMAP `INTERNALDATE`
//! renderings.
//!
//! The parser tokenizes the value (numbers, words, single symbols; comments
//! and white space dropped) into a fixed-size array, then tries three word
//! orders in turn:
//!
//! 1. RFC 5322: `[day-name[,]] day month year [time] [zone]`, also with `-`
//!    between day, month and year (the IMAP `INTERNALDATE` form);
//! 2. asctime / `date(1)`: `[day-name] month day time [zone] year [zone]`,
//!    and JavaScript's `[day-name] month day year [time] [zone]`;
//! 3. ISO 8601: `yyyy-mm-dd[T]hh:mm[:ss][.frac] [zone]`.
//!
//! Numbers saturate while they are read, so no digit string can overflow;
//! every field is range-checked before any arithmetic. Calendar arithmetic is
//! Howard Hinnant's `days_from_civil` / `civil_from_days` (proleptic
//! Gregorian), so there is no dependency on a date crate.

use std::fmt::Write as _;

use memchr::memrchr;

use super::header::fields;

/// A point in time with the zone it was written in, as in a `Date:` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// The zone offset east of UTC, in minutes (`+0100` is 60). `0` for
    /// `-0000`, `GMT`, military zones and a missing zone.
    pub offset_minutes: i16,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTHS_FULL: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS_FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

impl DateTime {
    /// The time as `yyyy-mm-ddThh:mm:ss±hh:mm` (RFC 3339), in its own zone.
    pub fn to_rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s) = self.local();
        let (sign, oh, om) = self.offset_parts();
        let mut out = String::with_capacity(25);
        // Writing to a String cannot fail.
        let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{oh:02}:{om:02}");
        out
    }

    /// The time as an IMAP `INTERNALDATE` (`dd-Mon-yyyy hh:mm:ss ±hhmm`).
    pub fn to_imap(&self) -> String {
        let (y, mo, d, h, mi, s) = self.local();
        let (sign, oh, om) = self.offset_parts();
        let mon = MONTHS.get(usize::try_from(mo).unwrap_or(0).wrapping_sub(1)).copied().unwrap_or("Jan");
        let mut out = String::with_capacity(26);
        let _ = write!(out, "{d:02}-{mon}-{y:04} {h:02}:{mi:02}:{s:02} {sign}{oh:02}{om:02}");
        out
    }

    /// The time as an RFC 5322 `Date:` value (`Mon, 01 Mar 2024 12:00:00 +0100`).
    pub fn to_rfc5322(&self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        let (y, mo, d, h, mi, s) = self.local();
        let (sign, oh, om) = self.offset_parts();
        let mon = MONTHS.get(usize::try_from(mo).unwrap_or(0).wrapping_sub(1)).copied().unwrap_or("Jan");
        let local_days = (self.unix + i64::from(self.offset_minutes) * 60).div_euclid(86_400);
        let dow = DAYS[local_days.rem_euclid(7) as usize];
        let mut out = String::with_capacity(31);
        let _ = write!(out, "{dow}, {d:02} {mon} {y:04} {h:02}:{mi:02}:{s:02} {sign}{oh:02}{om:02}");
        out
    }

    /// Parse `yyyy-mm-ddThh:mm:ss[.frac](Z|±hh:mm)` (RFC 3339 section 5.6;
    /// `t`, `z` and a space for `T` are accepted; fractions are dropped).
    pub fn from_rfc3339(s: &str) -> Option<DateTime> {
        let b = s.as_bytes();
        let num = |at: usize, n: usize| -> Option<u32> {
            let digits = b.get(at..at.checked_add(n)?)?;
            digits.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
        };
        let sym = |at: usize, set: &[u8]| b.get(at).is_some_and(|c| set.contains(c));
        let year = num(0, 4)?;
        let month = num(5, 2)?;
        let day = num(8, 2)?;
        let hour = num(11, 2)?;
        let minute = num(14, 2)?;
        let second = num(17, 2)?;
        if !(sym(4, b"-") && sym(7, b"-") && sym(10, b"Tt ") && sym(13, b":") && sym(16, b":")) {
            return None;
        }
        let mut i = 19;
        if sym(i, b".") {
            i += 1;
            let frac = b.get(i..)?.iter().take_while(|c| c.is_ascii_digit()).count();
            if frac == 0 {
                return None;
            }
            i += frac;
        }
        let offset = if sym(i, b"Zz") {
            i += 1;
            0
        } else if sym(i, b"+-") {
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            if !sym(i + 3, b":") || oh > 23 || om > 59 {
                return None;
            }
            let m = i32::try_from(oh * 60 + om).ok()?;
            let m = if sym(i, b"-") { -m } else { m };
            i += 6;
            m
        } else {
            return None;
        };
        if i != b.len() {
            return None;
        }
        build(i64::from(year), month, day, hour, minute, second, offset)
    }

    /// Local civil time: (year, month, day, hour, minute, second).
    fn local(&self) -> (i64, u32, u32, u32, u32, u32) {
        let t = self.unix.saturating_add(i64::from(self.offset_minutes) * 60);
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        // 0 <= secs < 86400, so these fit in u32.
        let secs = u32::try_from(secs).unwrap_or(0);
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    fn offset_parts(&self) -> (char, i32, i32) {
        let off = i32::from(self.offset_minutes);
        let sign = if off < 0 { '-' } else { '+' };
        (sign, off.abs() / 60, off.abs() % 60)
    }
}

/// Parse a `Date:`-style value into a [`DateTime`].
///
/// Accepts RFC 5322 `date-time` and the common obsolete and broken forms:
/// optional or full day names, 2-digit years (`< 50` is 20xx, else 19xx) and
/// 3-digit years (+1900), missing seconds, a missing time (midnight), named
/// zones (`UT GMT UTC Z EST EDT CST CDT MST MDT PST PDT`), military letters
/// and unknown zone names (all treated as `+0000`), a missing zone (`+0000`),
/// `+hh:mm` zones, comments, any white space, any letter case, and trailing
/// garbage; also asctime (`Fri Mar  1 12:00:00 2024`) and ISO 8601 order.
///
/// Returns `None` when no sane date can be made of it: a day that does not
/// exist in that month (leap years included), an hour over 23, a minute
/// over 59, a second over 60 (60 is read as 59), a zone offset beyond
/// ±23:59, a year before 1900 or with more than 4 digits.
pub fn parse_date(value: &[u8]) -> Option<DateTime> {
    let toks = Tokens::new(value);
    let t = toks.as_slice();
    parse_rfc5322(t).or_else(|| parse_asctime(t)).or_else(|| parse_iso(t))
}

/// The date of the topmost `Received:` field (the text after its last `;`).
pub fn received_date(header: &[u8]) -> Option<DateTime> {
    let f = fields(header).find(|f| f.is("Received"))?;
    let semi = memrchr(b';', f.raw_value)?;
    parse_date(f.raw_value.get(semi + 1..)?)
}

/// At most this many tokens are looked at; anything after is trailing
/// garbage. A date needs about fifteen.
const MAX_TOKENS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// A run of ASCII digits; `val` saturates at `u32::MAX` and `digits` at
    /// 255, so both are only good for range checks once large.
    Num { val: u32, digits: u8 },
    /// A run of ASCII letters.
    Word(&'a [u8]),
    /// Any other byte that is not white space or inside a comment.
    Sym(u8),
}

struct Tokens<'a> {
    buf: [Tok<'a>; MAX_TOKENS],
    len: usize,
}

impl<'a> Tokens<'a> {
    fn new(v: &'a [u8]) -> Self {
        let mut t = Tokens { buf: [Tok::Sym(0); MAX_TOKENS], len: 0 };
        let mut i = 0;
        while t.len < MAX_TOKENS {
            let Some(&b) = v.get(i) else { break };
            let tok = match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    i += 1;
                    continue;
                }
                b'(' => {
                    i = skip_comment(v, i);
                    continue;
                }
                b'0'..=b'9' => {
                    let start = i;
                    let mut val: u32 = 0;
                    while let Some(&d @ b'0'..=b'9') = v.get(i) {
                        val = val.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                        i += 1;
                    }
                    let digits = u8::try_from(i - start).unwrap_or(u8::MAX);
                    Tok::Num { val, digits }
                }
                b if b.is_ascii_alphabetic() => {
                    let start = i;
                    while v.get(i).is_some_and(u8::is_ascii_alphabetic) {
                        i += 1;
                    }
                    Tok::Word(v.get(start..i).unwrap_or_default())
                }
                _ => {
                    i += 1;
                    Tok::Sym(b)
                }
            };
            if let Some(slot) = t.buf.get_mut(t.len) {
                *slot = tok;
                t.len += 1;
            }
        }
        t
    }

    fn as_slice(&self) -> &[Tok<'a>] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Skip a (nested) comment starting at `v[i] == b'('`; returns the index
/// after it, or `v.len()` when it is not closed.
pub(crate) fn skip_comment(v: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&b) = v.get(i) {
        i += 1;
        match b {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    v.len()
}

/// A cursor over the tokens.
struct P<'t, 'a> {
    t: &'t [Tok<'a>],
    i: usize,
}

impl<'a> P<'_, 'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.t.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<Tok<'a>> {
        self.t.get(self.i.checked_add(k)?).copied()
    }

    fn eat_sym(&mut self, c: u8) -> bool {
        if self.peek() == Some(Tok::Sym(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A number of `min..=max` digits.
    fn num(&mut self, min: u8, max: u8) -> Option<u32> {
        match self.peek()? {
            Tok::Num { val, digits } if (min..=max).contains(&digits) => {
                self.i += 1;
                Some(val)
            }
            _ => None,
        }
    }

    fn word(&mut self) -> Option<&'a [u8]> {
        match self.peek()? {
            Tok::Word(w) => {
                self.i += 1;
                Some(w)
            }
            _ => None,
        }
    }

    /// Skip an optional day name and the comma or dot after it.
    fn skip_day_name(&mut self) {
        if let Some(Tok::Word(w)) = self.peek() {
            if is_name(w, &DAYS_FULL) {
                self.i += 1;
                let _ = self.eat_sym(b',') || self.eat_sym(b'.');
            }
        }
        while self.eat_sym(b',') {}
    }

    fn month(&mut self) -> Option<u32> {
        let save = self.i;
        let w = self.word()?;
        let m = MONTHS_FULL
            .iter()
            .position(|full| is_name(w, &[full]))
            .or_else(|| w.eq_ignore_ascii_case(b"sept").then_some(8));
        match m {
            Some(m) => {
                let _ = self.eat_sym(b'.');
                u32::try_from(m + 1).ok()
            }
            None => {
                self.i = save;
                None
            }
        }
    }

    /// A year per RFC 5322 4.3: 2 digits (< 50 is 20xx), 3 digits (+1900) or
    /// 4 digits (1900 or later).
    fn year(&mut self) -> Option<i64> {
        let Tok::Num { val, digits } = self.peek()? else {
            return None;
        };
        let y = match digits {
            2 if val < 50 => 2000 + val,
            2 | 3 => 1900 + val,
            4 if val >= 1900 => val,
            _ => return None,
        };
        self.i += 1;
        Some(i64::from(y))
    }

    /// `hh:mm[:ss][.frac]`.
    fn time(&mut self) -> Option<(u32, u32, u32)> {
        let h = self.num(1, 2)?;
        if !self.eat_sym(b':') {
            return None;
        }
        let m = self.num(1, 2)?;
        let s = if self.eat_sym(b':') { self.num(1, 2)? } else { 0 };
        if self.peek() == Some(Tok::Sym(b'.')) && matches!(self.peek_at(1), Some(Tok::Num { .. })) {
            self.i += 2;
        }
        Some((h, m, s))
    }

    /// A time if one is there (a number follows), midnight if not; `None`
    /// if a number follows that is not a time.
    fn time_opt(&mut self) -> Option<(u32, u32, u32)> {
        match self.peek() {
            Some(Tok::Num { .. }) => self.time(),
            _ => Some((0, 0, 0)),
        }
    }

    /// A zone, in minutes east of UTC. Missing or unknown is 0; `None` only
    /// for a numeric offset out of range.
    fn zone(&mut self) -> Option<i32> {
        match self.peek() {
            Some(Tok::Sym(b'+' | b'-')) => self.numeric_zone(),
            Some(Tok::Word(w)) => {
                self.i += 1;
                let lower = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
                let utc = lower("UT") || lower("UTC") || lower("GMT") || lower("Z");
                if utc && matches!(self.peek(), Some(Tok::Sym(b'+' | b'-'))) {
                    return self.numeric_zone();
                }
                let hours = match w.len() {
                    3 if lower("EST") => -5,
                    3 if lower("EDT") => -4,
                    3 if lower("CST") => -6,
                    3 if lower("CDT") => -5,
                    3 if lower("MST") => -7,
                    3 if lower("MDT") => -6,
                    3 if lower("PST") => -8,
                    3 if lower("PDT") => -7,
                    // UT, GMT, military letters, unknown names.
                    _ => 0,
                };
                Some(hours * 60)
            }
            _ => Some(0),
        }
    }

    /// `+hhmm`, `-hhmm`, `+hh`, `+hh:mm`, `+hmm`. A sign with no number
    /// after it is garbage, read as a missing zone.
    fn numeric_zone(&mut self) -> Option<i32> {
        let negative = self.peek() == Some(Tok::Sym(b'-'));
        let Some(Tok::Num { val, digits }) = self.peek_at(1) else {
            self.i += 1;
            return Some(0);
        };
        self.i += 2;
        let (h, m) = match digits {
            3 | 4 => (val / 100, val % 100),
            1 | 2 => {
                let m = if self.peek() == Some(Tok::Sym(b':'))
                    && matches!(self.peek_at(1), Some(Tok::Num { digits: 2, .. }))
                {
                    self.i += 1;
                    self.num(2, 2)?
                } else {
                    0
                };
                (val, m)
            }
            _ => return None,
        };
        if h > 23 || m > 59 {
            return None;
        }
        let off = i32::try_from(h * 60 + m).ok()?;
        Some(if negative { -off } else { off })
    }
}

/// Is `w` the name `full` (lower case), its 3-letter abbreviation, or an
/// abbreviation in between ("Thu", "Thurs", "Thursday")?
fn is_name(w: &[u8], names: &[&str]) -> bool {
    w.len() >= 3 && names.iter().any(|full| full.as_bytes().get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(w)))
}

fn parse_rfc5322(t: &[Tok<'_>]) -> Option<DateTime> {
    let mut p = P { t, i: 0 };
    p.skip_day_name();
    let day = p.num(1, 2)?;
    let _ = p.eat_sym(b'-') || p.eat_sym(b'/');
    let month = p.month()?;
    let _ = p.eat_sym(b'-') || p.eat_sym(b',') || p.eat_sym(b'/');
    let year = p.year()?;
    let (h, m, s) = p.time_opt()?;
    let off = p.zone()?;
    build(year, month, day, h, m, s, off)
}

fn parse_asctime(t: &[Tok<'_>]) -> Option<DateTime> {
    let mut p = P { t, i: 0 };
    p.skip_day_name();
    let month = p.month()?;
    let day = p.num(1, 2)?;
    let _ = p.eat_sym(b',');
    // JavaScript's Date.toString(): the year comes before the time.
    if matches!(p.peek(), Some(Tok::Num { digits: 4, .. })) && p.peek_at(1) != Some(Tok::Sym(b':')) {
        let year = p.year()?;
        let (h, m, s) = p.time_opt()?;
        let off = p.zone()?;
        return build(year, month, day, h, m, s, off);
    }
    let (h, m, s) = p.time()?;
    let (year, off) = if matches!(p.peek(), Some(Tok::Num { .. })) {
        let y = p.year()?;
        (y, p.zone()?)
    } else {
        let z = p.zone()?;
        (p.year()?, z)
    };
    build(year, month, day, h, m, s, off)
}

fn parse_iso(t: &[Tok<'_>]) -> Option<DateTime> {
    let mut p = P { t, i: 0 };
    p.skip_day_name();
    if !matches!(p.peek(), Some(Tok::Num { digits: 4, .. })) {
        return None;
    }
    let year = p.year()?;
    if !p.eat_sym(b'-') {
        return None;
    }
    let month = p.num(1, 2)?;
    if !p.eat_sym(b'-') {
        return None;
    }
    let day = p.num(1, 2)?;
    if let Some(Tok::Word(w)) = p.peek() {
        if w.eq_ignore_ascii_case(b"T") {
            p.i += 1;
        }
    }
    let (h, m, s) = p.time_opt()?;
    let off = p.zone()?;
    build(year, month, day, h, m, s, off)
}

/// Range-check the fields and compute the instant.
fn build(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    offset_minutes: i32,
) -> Option<DateTime> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
        || !(0..=9999).contains(&year)
        || offset_minutes.abs() > 23 * 60 + 59
    {
        return None;
    }
    let second = second.min(59);
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - i64::from(offset_minutes) * 60;
    Some(DateTime { unix, offset_minutes: i16::try_from(offset_minutes).ok()? })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant).
/// `month` must be 1..=12; any year that fits an i64 / 400 works.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((m + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant).
/// Works for any `z` with `|z| < i64::MAX / 2`; callers pass `unix / 86400`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = if m <= 2 { y + 1 } else { y };
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod rfc5322_out_tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        let d = DateTime { unix: 1_709_290_800, offset_minutes: 60 };
        assert_eq!(d.to_rfc5322(), "Fri, 01 Mar 2024 12:00:00 +0100");
        assert_eq!(parse_date(d.to_rfc5322().as_bytes()), Some(d));
        let e = DateTime { unix: 0, offset_minutes: -300 };
        assert_eq!(e.to_rfc5322(), "Wed, 31 Dec 1969 19:00:00 -0500");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(s: &str) -> Option<i64> {
        parse_date(s.as_bytes()).map(|d| d.unix)
    }

    fn dt(s: &str) -> Option<(i64, i16)> {
        parse_date(s.as_bytes()).map(|d| (d.unix, d.offset_minutes))
    }

    // Reference values, each checked with GNU `date -u -d '...' +%s`:
    // 2024-03-01T11:00:00Z = 1709290800 (19783 days * 86400 + 11 * 3600)
    // 2003-07-01T08:52:37Z = 1057049557
    // 1997-11-21T15:55:06Z = 880127706 (RFC 5322 A.1.1 example, -0600)
    // 2000-02-29T00:00:00Z = 951782400
    // 1999-12-31T23:59:59Z = 946684799
    // 1970-01-01T00:00:00Z = 0

    #[test]
    fn rfc5322_canonical() {
        assert_eq!(dt("Fri, 1 Mar 2024 12:00:00 +0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("Fri, 21 Nov 1997 09:55:06 -0600"), Some((880_127_706, -360)));
        assert_eq!(dt("Tue, 1 Jul 2003 10:52:37 +0200"), Some((1_057_049_557, 120)));
        assert_eq!(dt("1 Jan 1970 00:00:00 +0000"), Some((0, 0)));
        assert_eq!(dt("Thu, 01 Jan 1970 00:00:00 -0000"), Some((0, 0)));
    }

    #[test]
    fn optional_day_name_and_case() {
        assert_eq!(unix("01 MAR 2024 11:00:00 +0000"), Some(1_709_290_800));
        assert_eq!(unix("friday, 1 mar 2024 11:00:00 GMT"), Some(1_709_290_800));
        assert_eq!(unix("Fri,1 Mar 2024 11:00:00 GMT"), Some(1_709_290_800));
        assert_eq!(unix("Fri , 1 March 2024 11:00:00 UT"), Some(1_709_290_800));
    }

    #[test]
    fn obsolete_years() {
        // 2-digit: < 50 is 20xx, else 19xx; 3-digit: + 1900.
        assert_eq!(unix("1 Mar 24 11:00:00 +0000"), Some(1_709_290_800));
        assert_eq!(unix("21 Nov 97 15:55:06 GMT"), Some(880_127_706));
        assert_eq!(unix("21 Nov 097 15:55:06 GMT"), Some(880_127_706));
        assert_eq!(unix("29 Feb 00 00:00:00 GMT"), Some(951_782_400));
        assert_eq!(unix("31 Dec 99 23:59:59 GMT"), Some(946_684_799));
        // 2049 vs 1950: 2049-01-01 = 2493072000, 1950-01-01 = -631152000.
        assert_eq!(unix("1 Jan 49 00:00 GMT"), Some(2_493_072_000));
        assert_eq!(unix("1 Jan 50 00:00 GMT"), Some(-631_152_000));
        assert_eq!(unix("1 Jan 150 00:00 GMT"), Some(2_524_608_000));
        // 1-digit and 5-digit years, and 4-digit years before 1900, are not sane.
        assert_eq!(unix("1 Jan 5 00:00 GMT"), None);
        assert_eq!(unix("1 Jan 20245 00:00 GMT"), None);
        assert_eq!(unix("1 Jan 1899 00:00 GMT"), None);
        assert_eq!(unix("1 Jan 1900 00:00 GMT"), Some(-2_208_988_800));
        assert_eq!(unix("31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799));
    }

    #[test]
    fn missing_seconds_time_and_zone() {
        assert_eq!(dt("Fri, 1 Mar 2024 12:00 +0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("Fri, 1 Mar 2024 11:00:00"), Some((1_709_290_800, 0)));
        assert_eq!(dt("1 Mar 2024 11:00"), Some((1_709_290_800, 0)));
        // No time at all: midnight.
        assert_eq!(dt("1 Mar 2024"), Some((1_709_251_200, 0)));
        assert_eq!(dt("1 Mar 2024 +0100"), Some((1_709_251_200 - 3600, 60)));
        // A number that is not a time is not a sane date.
        assert_eq!(dt("1 Mar 2024 1100"), None);
    }

    #[test]
    fn named_zones() {
        // 12:00 local on 2024-03-01.
        let cases = [
            ("UT", 0, 1_709_294_400),
            ("GMT", 0, 1_709_294_400),
            ("UTC", 0, 1_709_294_400),
            ("Z", 0, 1_709_294_400),
            ("EST", -300, 1_709_312_400),
            ("EDT", -240, 1_709_308_800),
            ("CST", -360, 1_709_316_000),
            ("CDT", -300, 1_709_312_400),
            ("MST", -420, 1_709_319_600),
            ("MDT", -360, 1_709_316_000),
            ("PST", -480, 1_709_323_200),
            ("PDT", -420, 1_709_319_600),
            ("est", -300, 1_709_312_400),
            // Military letters and unknown names: +0000.
            ("A", 0, 1_709_294_400),
            ("z", 0, 1_709_294_400),
            ("M", 0, 1_709_294_400),
            ("CET", 0, 1_709_294_400),
            ("MEZ", 0, 1_709_294_400),
        ];
        for (zone, off, unix) in cases {
            let s = format!("Fri, 1 Mar 2024 12:00:00 {zone}");
            assert_eq!(dt(&s), Some((unix, off)), "{s}");
        }
        // 2024-03-01T17:00:00Z = 1709312400
        assert_eq!(dt("Fri, 1 Mar 2024 12:00:00 EST"), Some((1_709_312_400, -300)));
        // A numeric offset after GMT wins.
        assert_eq!(dt("1 Mar 2024 12:00:00 GMT+0100"), Some((1_709_290_800, 60)));
    }

    #[test]
    fn numeric_zone_forms() {
        assert_eq!(dt("1 Mar 2024 12:00:00 +01:00"), Some((1_709_290_800, 60)));
        assert_eq!(dt("1 Mar 2024 12:00:00 +01"), Some((1_709_290_800, 60)));
        assert_eq!(dt("1 Mar 2024 12:00:00+0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("1 Mar 2024 05:30:00 +0530"), Some((1_709_251_200, 330)));
        assert_eq!(dt("1 Mar 2024 05:30:00 +530"), Some((1_709_251_200, 330)));
        assert_eq!(dt("1 Mar 2024 00:00:00 -2359"), Some((1_709_251_200 + 86_340, -1439)));
        // Out of range offsets are not sane.
        assert_eq!(dt("1 Mar 2024 12:00:00 +2400"), None);
        assert_eq!(dt("1 Mar 2024 12:00:00 +0160"), None);
        assert_eq!(dt("1 Mar 2024 12:00:00 +010000"), None);
        // A sign with nothing after it is trailing garbage.
        assert_eq!(dt("1 Mar 2024 11:00:00 -"), Some((1_709_290_800, 0)));
    }

    #[test]
    fn comments_whitespace_and_garbage() {
        assert_eq!(dt("Fri, 1 Mar 2024 12:00:00 +0100 (CET)"), Some((1_709_290_800, 60)));
        assert_eq!(
            dt("(comment (nested \\) ) ) Fri,(x) 1\r\n Mar\t2024   12:00:00   +0100"),
            Some((1_709_290_800, 60))
        );
        assert_eq!(dt("  Fri, 1 Mar 2024 12:00:00 +0100 garbage 99 :: +++ "), Some((1_709_290_800, 60)));
        assert_eq!(dt("Fri, 1 Mar 2024 11:00:00 (unclosed"), Some((1_709_290_800, 0)));
        assert_eq!(dt("1-Mar-2024 12:00:00 +0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("1 Mar. 2024 11:00:00"), Some((1_709_290_800, 0)));
        assert_eq!(dt("Fri,01Mar2024 12:00:00+0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("Fri,01Mar2024 11:00:00GMT"), Some((1_709_290_800, 0)));
        assert_eq!(dt("Thurs, 29 Feb 2024 00:00:00 +0000"), Some((1_709_164_800, 0)));
        assert_eq!(dt("1 Sept 2024 00:00 GMT").map(|d| d.0), unix("1 Sep 2024 00:00 GMT"));
        assert_eq!(dt("1 Mar 2024 11:00:00.250 +0000"), Some((1_709_290_800, 0)));
    }

    #[test]
    fn asctime_and_iso_orders() {
        assert_eq!(dt("Fri Mar  1 11:00:00 2024"), Some((1_709_290_800, 0)));
        assert_eq!(dt("Fri Mar 1 12:00:00 2024 +0100"), Some((1_709_290_800, 60)));
        assert_eq!(dt("Fri Mar  1 12:00:00 EST 2024"), Some((1_709_312_400, -300)));
        assert_eq!(dt("2024-03-01T12:00:00+01:00"), Some((1_709_290_800, 60)));
        assert_eq!(dt("2024-03-01 11:00:00Z"), Some((1_709_290_800, 0)));
        assert_eq!(dt("2024-03-01"), Some((1_709_251_200, 0)));
    }

    #[test]
    fn validation() {
        assert_eq!(unix("29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(unix("29 Feb 2023 00:00:00 GMT"), None);
        assert_eq!(unix("29 Feb 2100 00:00:00 GMT"), None);
        assert_eq!(unix("29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
        assert_eq!(unix("31 Apr 2024 00:00:00 GMT"), None);
        assert_eq!(unix("0 Mar 2024 00:00:00 GMT"), None);
        assert_eq!(unix("32 Mar 2024 00:00:00 GMT"), None);
        assert_eq!(unix("1 Mar 2024 24:00:00 GMT"), None);
        assert_eq!(unix("1 Mar 2024 23:60:00 GMT"), None);
        assert_eq!(unix("1 Mar 2024 23:59:61 GMT"), None);
        // A leap second reads as :59.
        assert_eq!(unix("31 Dec 1999 23:59:60 GMT"), Some(946_684_799));
        assert_eq!(unix("1 Foo 2024 00:00:00 GMT"), None);
        assert_eq!(unix("1 Ma 2024 00:00:00 GMT"), None);
        assert_eq!(unix(""), None);
        assert_eq!(unix("garbage"), None);
        assert_eq!(unix("123 Mar 2024"), None);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let nines = "9".repeat(400);
        for s in [
            format!("{nines} Mar 2024 00:00:00 GMT"),
            format!("1 Mar {nines} 00:00:00 GMT"),
            format!("1 Mar 2024 {nines}:00:00 GMT"),
            format!("1 Mar 2024 00:{nines}:00 GMT"),
            format!("1 Mar 2024 00:00:00 +{nines}"),
            format!("1 Mar 2024 00:00:00 -{nines}:{nines}"),
            format!("{nines}-{nines}-{nines}T{nines}:{nines}"),
            format!("Mar {nines} {nines}:{nines} {nines}"),
            "4294967295 Mar 4294967296 4294967297:1:1 +4294967298".to_string(),
        ] {
            assert_eq!(parse_date(s.as_bytes()), None, "{s}");
        }
        let many = "1 ".repeat(10_000);
        assert_eq!(parse_date(many.as_bytes()), None);
        let parens = "(".repeat(10_000);
        assert_eq!(parse_date(parens.as_bytes()), None);
    }

    #[test]
    fn received() {
        let h = b"Received: from a by b; Fri, 1 Mar 2024 12:00:00 +0100\r\n\
                  Received: from c by d;\r\n\tFri, 1 Mar 2024 10:00:00 +0100\r\n";
        assert_eq!(received_date(h), Some(DateTime { unix: 1_709_290_800, offset_minutes: 60 }));
        let folded = b"Received: from a (x; y) by b;\r\n Fri, 1 Mar 2024 12:00:00 +0100\r\n";
        assert_eq!(received_date(folded).map(|d| d.unix), Some(1_709_290_800));
        assert_eq!(received_date(b"Received: no semicolon\r\n"), None);
        assert_eq!(received_date(b"Date: 1 Mar 2024\r\n"), None);
    }

    #[test]
    fn formatting() {
        let d = DateTime { unix: 1_709_290_800, offset_minutes: 60 };
        assert_eq!(d.to_rfc3339(), "2024-03-01T12:00:00+01:00");
        assert_eq!(d.to_imap(), "01-Mar-2024 12:00:00 +0100");
        let d = DateTime { unix: 880_127_706, offset_minutes: -360 };
        assert_eq!(d.to_rfc3339(), "1997-11-21T09:55:06-06:00");
        assert_eq!(d.to_imap(), "21-Nov-1997 09:55:06 -0600");
        let d = DateTime { unix: 0, offset_minutes: 0 };
        assert_eq!(d.to_rfc3339(), "1970-01-01T00:00:00+00:00");
        assert_eq!(d.to_imap(), "01-Jan-1970 00:00:00 +0000");
        // Before the epoch, and a half-hour zone west of UTC.
        let d = DateTime { unix: -1, offset_minutes: -210 };
        assert_eq!(d.to_rfc3339(), "1969-12-31T20:29:59-03:30");
        // Absurd values format without panicking.
        for unix in [i64::MIN, i64::MAX, -1, 253_402_300_800] {
            for offset_minutes in [i16::MIN, i16::MAX, 0] {
                let d = DateTime { unix, offset_minutes };
                assert!(!d.to_rfc3339().is_empty());
                assert!(!d.to_imap().is_empty());
            }
        }
    }

    #[test]
    fn rfc3339_parse() {
        let d = DateTime { unix: 1_709_290_800, offset_minutes: 60 };
        assert_eq!(DateTime::from_rfc3339("2024-03-01T12:00:00+01:00"), Some(d));
        assert_eq!(DateTime::from_rfc3339("2024-03-01t12:00:00.123456+01:00"), Some(d));
        assert_eq!(
            DateTime::from_rfc3339("2024-03-01 11:00:00Z"),
            Some(DateTime { unix: 1_709_290_800, offset_minutes: 0 })
        );
        assert_eq!(
            DateTime::from_rfc3339("1969-12-31T20:29:59-03:30"),
            Some(DateTime { unix: -1, offset_minutes: -210 })
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-03-01T12:00:00",
            "2024-03-01T12:00:00+0100",
            "2024-03-01T12:00:00+01:00x",
            "2024-02-30T12:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T12:00:00.Z",
            "2024-03-01T12:00:00+24:00",
            "２024-03-01T12:00:00Z",
            "+024-03-01T12:00:00Z",
        ] {
            assert_eq!(DateTime::from_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }
}
