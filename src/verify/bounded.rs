//! The findings of one mailbox's message files, held in memory bounded by the mailbox's
//! kinds of damage rather than by its amount: of each kind, the [`MAX_LISTED_PER_KIND`]
//! findings with the lowest UIDs are kept whole, and of the rest only the UID (4 bytes
//! instead of a finding's few hundred), summed up at the end in one finding that lists
//! them as an IMAP UID set. A mailbox of 300,000 message files lost to a disk failure
//! held 300,000 findings (235 MiB in `tests/bounded.rs`) until the end of the run, and
//! printed as many lines; the cache's damaged records, found when the mailbox is
//! planned, are bounded the same way.

use std::collections::{BTreeMap, BinaryHeap};

use crate::finding::Finding;

/// Findings of one kind listed whole for one mailbox; the rest are summed up.
pub const MAX_LISTED_PER_KIND: usize = 1000;

/// A finding about a message file, ordered by (UID, arrival) so the heap of each kind
/// drops the highest UID first and what is listed does not depend on which thread came
/// first.
struct ByUid {
    uid: u32,
    seq: u64,
    finding: Finding,
}

impl PartialEq for ByUid {
    fn eq(&self, o: &Self) -> bool {
        (self.uid, self.seq) == (o.uid, o.seq)
    }
}
impl Eq for ByUid {}
impl PartialOrd for ByUid {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByUid {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.uid, self.seq).cmp(&(o.uid, o.seq))
    }
}

#[derive(Default)]
struct Kind {
    /// The listed findings (a max-heap: the highest UID is the next to give up its place).
    listed: BinaryHeap<ByUid>,
    /// UIDs of the findings not listed.
    more: Vec<u32>,
    /// The first finding not listed: the summary takes its severity, path and fix.
    first_dropped: Option<Finding>,
}

/// See the module documentation.
pub struct Bounded {
    cap: usize,
    seq: u64,
    kinds: BTreeMap<&'static str, Kind>,
}

impl Default for Bounded {
    fn default() -> Self {
        Bounded::with_cap(MAX_LISTED_PER_KIND)
    }
}

impl Bounded {
    /// At most `cap` findings of a kind listed.
    pub fn with_cap(cap: usize) -> Bounded {
        Bounded { cap: cap.max(1), seq: 0, kinds: BTreeMap::new() }
    }

    /// Add a finding about message file `uid` (findings of one file in the order they are
    /// added).
    pub fn push(&mut self, uid: u32, finding: Finding) {
        self.seq += 1;
        let k = self.kinds.entry(finding.kind).or_default();
        k.listed.push(ByUid { uid, seq: self.seq, finding });
        if k.listed.len() > self.cap {
            if let Some(out) = k.listed.pop() {
                k.more.push(out.uid);
                if k.first_dropped.is_none() {
                    k.first_dropped = Some(out.finding);
                }
            }
        }
    }

    /// Add every finding of `other` (another thread's part of the same mailbox).
    pub fn append(&mut self, other: Vec<(u32, Finding)>) {
        for (uid, f) in other {
            self.push(uid, f);
        }
    }

    /// The findings, listed ones in UID order (a file's in the order they were added),
    /// then one summary per kind that had more than the cap, naming `path` (the mailbox
    /// directory, or the one file all the findings are about).
    pub fn into_findings(self, path: &str) -> Vec<Finding> {
        let mut listed: Vec<ByUid> = Vec::new();
        let mut summaries = Vec::new();
        for (kind, k) in self.kinds {
            listed.extend(k.listed);
            let Some(mut f) = k.first_dropped else { continue };
            let mut more = k.more;
            more.sort_unstable();
            more.dedup();
            f.path = path.to_string();
            f.uid = None;
            f.offset = None;
            f.message = format!(
                "{} more {kind} findings in this mailbox, not listed one by one (the {} with the lowest \
                 UIDs are): UIDs {}",
                more.len(),
                self.cap,
                uid_set(&more)
            );
            summaries.push(f);
        }
        listed.sort_unstable();
        listed.into_iter().map(|b| b.finding).chain(summaries).collect()
    }
}

/// Sorted, distinct UIDs as an IMAP UID set (`1:5,9,12:14`).
fn uid_set(uids: &[u32]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !s.is_empty() {
            s.push(',');
        }
        if start == end {
            s += &start.to_string();
        } else {
            s += &format!("{start}:{end}");
        }
        i += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;

    fn f(kind: &'static str, uid: u32) -> Finding {
        let mut f = Finding::at(Severity::Error, kind, format!("/m/{uid}."), format!("{kind} {uid}"));
        f.uid = Some(uid);
        f.fix("reconstruct example.com user/joe")
    }

    #[test]
    fn uid_sets_are_runs() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[1, 2, 3, 5, 9, 10, u32::MAX]), "1:3,5,9:10,4294967295");
    }

    #[test]
    fn of_each_kind_the_lowest_uids_are_listed_whatever_the_order_and_the_rest_summed_up() {
        // 25 missing files arriving out of order from two threads, 3 of another kind.
        let mut a = Bounded::with_cap(10);
        let mut order: Vec<u32> = (1..=25).rev().collect();
        order.swap(3, 17);
        for &u in &order[..12] {
            a.push(u, f("message-missing", u));
        }
        let rest: Vec<(u32, Finding)> = order[12..].iter().map(|&u| (u, f("message-missing", u))).collect();
        a.append(rest);
        for u in [4, 2, 30] {
            a.push(u, f("message-size", u));
        }
        let out = a.into_findings("/m");
        assert_eq!(out.len(), 10 + 3 + 1, "{out:#?}");
        let listed: Vec<(&str, Option<u32>)> = out[..13].iter().map(|f| (f.kind, f.uid)).collect();
        let mut want: Vec<(&str, Option<u32>)> = (1..=10).map(|u| ("message-missing", Some(u))).collect();
        want.extend([("message-size", Some(2)), ("message-size", Some(4)), ("message-size", Some(30))]);
        want.sort_by_key(|w| w.1);
        assert_eq!(listed, want, "UID order across kinds");
        let s = &out[13];
        assert_eq!((s.kind, s.uid, s.path.as_str()), ("message-missing", None, "/m"));
        assert!(
            s.message.starts_with("15 more message-missing findings") && s.message.ends_with("UIDs 11:25"),
            "{}",
            s.message
        );
        assert_eq!(s.fix.as_deref(), Some("reconstruct example.com user/joe"));
        assert_eq!(s.severity, Severity::Error);
    }

    #[test]
    fn a_files_findings_keep_their_order_and_nothing_under_the_cap_is_summed_up() {
        let mut a = Bounded::with_cap(5);
        a.push(3, f("owner", 3));
        a.push(3, f("message-size", 3));
        a.push(1, f("message-extra", 1));
        let out = a.into_findings("/m");
        let got: Vec<(&str, Option<u32>)> = out.iter().map(|f| (f.kind, f.uid)).collect();
        assert_eq!(got, [("message-extra", Some(1)), ("owner", Some(3)), ("message-size", Some(3))]);
    }
}
