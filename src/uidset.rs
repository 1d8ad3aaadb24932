//! IMAP sequence sets of UIDs (RFC 9051, `sequence-set`): `1:*`, `3,5:9`, `*`.
//!
//! `*` is the highest UID in use in the mailbox. As in `UID STORE`, a range names every
//! message whose UID falls in it (UIDs that do not exist are no error), `9:5` is `5:9`,
//! and `n:*` names the last message even when `n` is above every UID in use.

use crate::error::{Error, Result};

/// One end of a range: a UID or `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Uid(u32),
    Star,
}

/// A parsed sequence set, resolved against a mailbox's UIDs by [`UidSet::select`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(End, End)>,
}

impl UidSet {
    /// Parse `text` (`1:*`, `3,5:9`, `*`). UIDs are 1 to 4294967295.
    pub fn parse(text: &str) -> Result<UidSet> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "{text:?} is not a UID set: {why} (expected an IMAP sequence set such as 1:*, 3,5:9 or *)"
            ))
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let end = |s: &str| -> Result<End> {
            if s == "*" {
                return Ok(End::Star);
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
                return Err(bad(&format!("{s:?} is neither a UID (1 to 4294967295) nor *")));
            }
            s.parse::<u32>().map(End::Uid).map_err(|_| bad(&format!("{s} is above 4294967295")))
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let r = match part.split_once(':') {
                Some((a, b)) => (end(a)?, end(b)?),
                None => {
                    let e = end(part)?;
                    (e, e)
                }
            };
            ranges.push(r);
        }
        Ok(UidSet { ranges })
    }

    /// The UIDs of `uids` (sorted, as a mailbox's records are) that the set names, sorted
    /// and without duplicates.
    pub fn select(&self, uids: &[u32]) -> Vec<u32> {
        let Some(&max) = uids.last() else { return Vec::new() };
        let val = |e: End| match e {
            End::Uid(u) => u,
            End::Star => max,
        };
        let mut out: Vec<u32> = Vec::new();
        for &(a, b) in &self.ranges {
            let (lo, hi) = {
                let (x, y) = (val(a), val(b));
                (x.min(y), x.max(y))
            };
            let start = uids.partition_point(|&u| u < lo);
            let stop = uids.partition_point(|&u| u <= hi);
            out.extend_from_slice(&uids[start..stop]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(set: &str, uids: &[u32]) -> Vec<u32> {
        UidSet::parse(set).expect("parses").select(uids)
    }

    #[test]
    fn ranges_stars_and_lists() {
        let uids = [1, 2, 3, 5, 6, 8, 9, 12];
        assert_eq!(sel("1:*", &uids), uids);
        assert_eq!(sel("3,5:9", &uids), [3, 5, 6, 8, 9]);
        assert_eq!(sel("9:5", &uids), [5, 6, 8, 9]);
        assert_eq!(sel("*", &uids), [12]);
        assert_eq!(sel("100:*", &uids), [12], "n:* names the last message even above every UID");
        assert_eq!(sel("4", &uids), Vec::<u32>::new(), "a UID not in use is no error");
        assert_eq!(sel("2,2,1:3", &uids), [1, 2, 3]);
        assert_eq!(sel("1:*", &[]), Vec::<u32>::new());
        assert_eq!(sel("4294967295", &[4294967295]), [4294967295]);
    }

    #[test]
    fn bad_sets_are_refused_with_the_reason() {
        for bad in ["", "0", "1:", ":3", "a", "1,,2", "-1", "1:2:3", "4294967296", "01", " 1"] {
            let e = UidSet::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("is not a UID set"), "{bad}: {e}");
        }
    }
}
