//! What reconstruct tells the administrator: a line per mailbox, every change in JSON,
//! and the exit status.

use serde::Serialize;

use super::merge::{Change, Counts, Elided};
use crate::report::Exit;
use crate::store::MailboxEntry;
use crate::survey::discover::{SelectionNote, Target};

/// Outcome of one mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "error")]
pub enum Status {
    /// Consistent: nothing written.
    Unchanged,
    /// Rebuilt and written.
    Repaired,
    /// Dry run: this would be rebuilt.
    WouldRepair,
    /// Could not be processed.
    Failed(String),
}

/// Report of one mailbox.
#[derive(Clone, Debug, Serialize)]
pub struct MailboxReport {
    /// Domain.
    pub domain: String,
    /// Mailbox name.
    pub mailbox: String,
    /// Directory.
    pub path: String,
    /// Outcome.
    #[serde(flatten)]
    pub status: Status,
    /// Messages in the rebuilt index.
    pub messages: u64,
    /// Bytes of message files read.
    pub bytes_read: u64,
    /// Summary counts.
    pub counts: Counts,
    /// Every change (or, without `--json`, the first few of each kind: see `elided`).
    pub changes: Vec<Change>,
    /// Changes summed up rather than kept one by one (to bound memory on huge runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elided: Vec<Elided>,
    /// Problems left as they are (stray files, unreadable files, ...).
    pub problems: Vec<String>,
    /// Whether it was (or would be) registered in the mailbox list.
    pub registered: bool,
    /// The list entry to register.
    #[serde(skip)]
    pub entry: Option<MailboxEntry>,
}

impl MailboxReport {
    /// A mailbox that could not be processed.
    pub fn failed(domain: &str, t: &Target, error: String) -> MailboxReport {
        MailboxReport {
            domain: domain.to_string(),
            mailbox: t.name.to_string(),
            path: String::new(),
            status: Status::Failed(error),
            messages: 0,
            bytes_read: 0,
            counts: Counts::default(),
            changes: Vec::new(),
            elided: Vec::new(),
            problems: Vec::new(),
            registered: false,
            entry: None,
        }
    }

    /// Keep the first few changes of each kind and count the rest (memory stays bounded
    /// by mailboxes, not messages, when the caller does not want every change).
    pub fn compact(&mut self) {
        let mut kept: Vec<Change> = Vec::new();
        let mut per_kind: std::collections::HashMap<&'static str, usize> = std::collections::HashMap::new();
        for c in std::mem::take(&mut self.changes) {
            let n = per_kind.entry(c.what).or_default();
            *n += 1;
            if *n <= DETAIL_LINES {
                kept.push(c);
            } else {
                match self.elided.iter_mut().find(|e| e.what == c.what) {
                    Some(e) => {
                        e.count += 1;
                        e.uids.extend(c.uid);
                    }
                    None => self.elided.push(Elided { what: c.what, count: 1, uids: c.uid.into_iter().collect() }),
                }
            }
        }
        self.changes = kept;
    }

    /// Exit bits of this mailbox.
    pub fn exit_bits(&self) -> u8 {
        let mut bits = match &self.status {
            Status::Unchanged => 0,
            Status::Repaired => Exit::Repaired as u8,
            Status::WouldRepair => Exit::Unrepaired as u8,
            Status::Failed(_) => Exit::Error as u8,
        };
        if !self.problems.is_empty() {
            bits |= Exit::Unrepaired as u8;
        }
        bits
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        let c = &self.counts;
        let mut counts = format!(
            "{} kept, {} rebuilt, {} added, {} dropped, {} flags lost",
            c.kept, c.rebuilt, c.added, c.dropped, c.flags_lost
        );
        if c.restored > 0 {
            counts += &format!(", {} restored", c.restored);
        }
        if c.flags_unknown > 0 {
            counts += &format!(
                " (and {} message(s) whose record was lost: their flags, if any, are lost too)",
                c.flags_unknown
            );
        }
        let head = format!("{} {}", self.domain, self.mailbox);
        match &self.status {
            Status::Unchanged => format!("{head}: unchanged ({} messages)", self.messages),
            Status::Repaired => format!("{head}: repaired: {counts}"),
            Status::WouldRepair => format!("{head}: would repair: {counts}"),
            Status::Failed(e) => format!("{head}: FAILED: {e}"),
        }
    }
}

/// Report of a whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Domain.
    pub domain: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Problems with the selection itself.
    #[serde(serialize_with = "notes_json")]
    pub notes: Vec<SelectionNote>,
    /// Mailboxes in name order.
    pub mailboxes: Vec<MailboxReport>,
    /// Something outside the mailboxes was repaired (a lost database home recreated).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repaired_store: bool,
}

fn notes_json<S: serde::Serializer>(n: &[SelectionNote], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(n.len()))?;
    for x in n {
        seq.serialize_element(&serde_json::json!({ "message": x.message, "error": x.error }))?;
    }
    seq.end()
}

/// Changes printed one by one per kind before they are summed up (see `--json`).
pub const DETAIL_LINES: usize = 5;

/// Human lines for a mailbox's changes: each kind's first few in full, the rest counted
/// with their UIDs as ranges.
fn summarize(changes: &[Change], elided: &[Elided]) -> Vec<String> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for c in changes {
        if !kinds.contains(&c.what) {
            kinds.push(c.what);
        }
    }
    let mut out = Vec::new();
    for k in kinds {
        let of: Vec<&Change> = changes.iter().filter(|c| c.what == k).collect();
        let more = elided.iter().find(|e| e.what == k);
        if of.len() <= DETAIL_LINES && more.is_none() {
            out.extend(of.iter().map(|c| c.detail.clone()));
        } else {
            let mut uids: Vec<u32> = of.iter().filter_map(|c| c.uid).collect();
            let mut n = of.len() as u64;
            if let Some(m) = more {
                uids.extend(&m.uids);
                n += m.count;
            }
            out.push(format!("{n} × {} [UIDs {}]", of[0].detail, ranges(&uids, 8)));
        }
    }
    out
}

/// `1-5, 9, 12-14` (at most `max` ranges, then `...`).
pub fn ranges(uids: &[u32], max: usize) -> String {
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        if parts.len() == max {
            parts.push("...".to_string());
            break;
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(", ")
}

impl RunReport {
    /// Exit status: bits of every mailbox and note OR'ed (1 repaired, 4 left unrepaired,
    /// 8 failed).
    pub fn exit_code(&self) -> u8 {
        let mut bits = self.mailboxes.iter().fold(0u8, |b, m| b | m.exit_bits());
        if self.repaired_store {
            bits |= Exit::Repaired as u8;
        }
        if self.notes.iter().any(|n| n.error) {
            bits |= Exit::Error as u8;
        }
        bits
    }

    /// Human-readable output.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "{}{}", if n.error { "error: " } else { "note: " }, n.message);
        }
        let (mut unchanged, mut repaired, mut would, mut failed, mut messages) = (0, 0, 0, 0, 0u64);
        for m in &self.mailboxes {
            let _ = writeln!(s, "{}", m.line());
            match m.status {
                Status::Unchanged => unchanged += 1,
                Status::Repaired => repaired += 1,
                Status::WouldRepair => would += 1,
                Status::Failed(_) => failed += 1,
            }
            messages += m.messages;
            for line in summarize(&m.changes, &m.elided) {
                let _ = writeln!(s, "    {line}");
            }
            for p in &m.problems {
                let _ = writeln!(s, "    problem: {p}");
            }
        }
        let total = self.mailboxes.len();
        let with_problems = self.mailboxes.iter().filter(|m| !m.problems.is_empty()).count();
        if repaired == 0 && would == 0 && failed == 0 && !self.repaired_store && self.notes.iter().all(|n| !n.error) {
            if with_problems > 0 {
                let _ = writeln!(
                    s,
                    "reconstruct: {}: nothing repaired: {total} mailbox(es), {messages} messages; problems left in {with_problems} (listed above)",
                    self.domain
                );
                return s;
            }
            let _ = writeln!(
                s,
                "reconstruct: {}: nothing to do: {total} mailbox(es), {messages} messages, all consistent",
                self.domain
            );
        } else if self.dry_run {
            let _ = writeln!(
                s,
                "reconstruct: {}: dry run: {would} of {total} mailbox(es) would be repaired, {unchanged} consistent, {failed} failed; nothing was written",
                self.domain
            );
        } else {
            let _ = writeln!(
                s,
                "reconstruct: {}: {repaired} of {total} mailbox(es) repaired, {unchanged} unchanged, {failed} failed; {messages} messages",
                self.domain
            );
        }
        s
    }
}

/// Report of `reconstruct -r` without a domain: every domain of the store in one run.
#[derive(Clone, Debug, Serialize)]
pub struct StoreReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// What was done to the store itself (a lost database home recreated).
    pub notes: Vec<String>,
    /// Each domain's report, in name order.
    pub domains: Vec<RunReport>,
    /// Domains that could not be run at all, each with why.
    pub errors: Vec<String>,
    /// Something outside the mailboxes was repaired (a lost database home recreated).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repaired_store: bool,
}

impl StoreReport {
    /// Exit status: every domain's bits OR'ed, and 8 when a domain could not be run.
    pub fn exit_code(&self) -> u8 {
        let mut bits = self.domains.iter().fold(0u8, |b, d| b | d.exit_code());
        if self.repaired_store {
            bits |= Exit::Repaired as u8;
        }
        if !self.errors.is_empty() {
            bits |= Exit::Error as u8;
        }
        bits
    }

    /// Human-readable output: each domain's, then one line for the store.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s: String = self.notes.iter().map(|n| format!("note: {n}\n")).collect();
        s.extend(self.domains.iter().map(RunReport::render_text));
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        let mailboxes: Vec<&MailboxReport> = self.domains.iter().flat_map(|d| &d.mailboxes).collect();
        let count = |f: fn(&Status) -> bool| mailboxes.iter().filter(|m| f(&m.status)).count();
        let repaired = count(|s| matches!(s, Status::Repaired | Status::WouldRepair));
        let failed = count(|s| matches!(s, Status::Failed(_)));
        let messages: u64 = mailboxes.iter().map(|m| m.messages).sum();
        let verb = if self.dry_run { "would be repaired" } else { "repaired" };
        let _ = writeln!(
            s,
            "reconstruct: the whole store: {} domain(s), {} mailbox(es): {repaired} {verb}, {failed} failed; {messages} messages{}",
            self.domains.len(),
            mailboxes.len(),
            if self.dry_run { "; nothing was written" } else { "" }
        );
        s
    }
}
