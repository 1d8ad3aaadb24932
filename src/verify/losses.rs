//! Losses the toolkit saw (the loss ledger, `formats/ledger.md`) as findings: every loss
//! stays a finding until salvage brings the message back or an administrator accepts it,
//! so "no problems found" never follows a loss that a repair recorded.

use std::collections::{BTreeMap, HashSet};

use super::Scope;
use crate::finding::{Finding, Severity};
use crate::layout::MailboxName;
use crate::ledger::{self, Entry, Kind};
use crate::message::DateTime;
use crate::store::{MailboxPlace, Store};
use crate::survey::gather::{self, Listing};
use crate::util::shell_quote;

/// UIDs listed in a finding's message before "and N more".
const SHOWN_UIDS: usize = 20;

fn date(t: i64) -> String {
    DateTime { unix: t, offset_minutes: 0 }.to_rfc3339()
}

fn in_scope(scope: &Scope, mailbox: &str) -> bool {
    if scope.mailboxes.is_empty() {
        return true;
    }
    let Ok(name) = MailboxName::parse(mailbox) else { return false };
    scope
        .mailboxes
        .iter()
        .filter_map(|m| MailboxName::parse(m).ok())
        .any(|m| name == m || (scope.recursive && name.is_within(&m)))
}

/// The content hashes a mailbox holds now (index and log, whatever verifies), to see
/// whether a lost message was put back since; `None` if the mailbox is not on disk.
fn hashes_now(store: &Store, domain: &str, mailbox: &str) -> Option<HashSet<[u8; 32]>> {
    let name = MailboxName::parse(mailbox).ok()?;
    let entry = store.entry(domain, &name).ok();
    let partition = entry.map(|e| e.partition).unwrap_or_else(|| store.config().default_partition.clone());
    let root = store.partition_root(&partition).ok()?;
    let dir = crate::layout::mailbox_dir(root, domain, &name);
    if !dir.is_dir() {
        return None;
    }
    let place = MailboxPlace {
        domain: domain.to_string(),
        name,
        partition,
        dir,
        config_path: store.config().path.clone(),
        durability: store.config().durability,
        fs: std::sync::Arc::clone(store.fs()),
    };
    let mut old = gather::gather(&place, &Listing::default(), None);
    Some(super::expected_records(&mut old).values().map(|r| r.content_hash).collect())
}

/// Findings for the outstanding losses of `domain` within `scope`, and for damage to its
/// ledger.
pub fn findings(store: &Store, domain: &str, scope: &Scope) -> Vec<Finding> {
    let cfg = store.config();
    let conf = shell_quote(&cfg.path.to_string_lossy());
    let mut out = Vec::new();
    let l = match ledger::read(cfg, domain) {
        Ok(Some(l)) => l,
        Ok(None) => return out,
        Err(e) => {
            out.push(
                Finding::at(
                    Severity::Error,
                    "ledger-unreadable",
                    ledger::path(cfg, domain).display().to_string(),
                    format!("{e}: the losses recorded there cannot be checked; the file is evidence, keep it (the next repair that records a loss starts a new ledger and moves this one aside)"),
                ),
            );
            return out;
        }
    };
    for (offset, what) in &l.damage {
        if l.torn_tail_only {
            continue;
        }
        let mut f = Finding::at(
            Severity::Warning,
            "ledger-damaged",
            l.path.display().to_string(),
            format!("{what}: this entry cannot be read; the entries before and after it are"),
        );
        f.offset = Some(*offset);
        out.push(f);
    }
    let open = ledger::outstanding(&l.entries);
    let mut by_mailbox: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in open.into_iter().filter(|e| in_scope(scope, &e.mailbox)) {
        by_mailbox.entry(e.mailbox.as_str()).or_default().push(e);
    }
    for (mailbox, entries) in by_mailbox {
        let held = hashes_now(store, domain, mailbox).unwrap_or_default();
        let quoted = shell_quote(mailbox);
        let display = MailboxName::parse(mailbox).map(|n| n.display()).unwrap_or_else(|_| mailbox.to_string());
        let path = ledger::path(cfg, domain).display().to_string();
        let lost: Vec<&&Entry> =
            entries.iter().filter(|e| e.kind == Kind::Lost && !held.contains(&e.record.content_hash)).collect();
        if !lost.is_empty() {
            let since = lost.iter().map(|e| e.when).min().unwrap_or(0);
            let mut uids: Vec<u32> = lost.iter().map(|e| e.record.uid).collect();
            uids.sort_unstable();
            let shown: Vec<String> = uids.iter().take(SHOWN_UIDS).map(u32::to_string).collect();
            let more =
                if uids.len() > SHOWN_UIDS { format!(" and {} more", uids.len() - SHOWN_UIDS) } else { String::new() };
            let flagged = lost.iter().filter(|e| e.record.system_flags.0 != 0 || e.record.user_flags.0 != 0).count();
            let mut reasons: Vec<&str> = lost.iter().map(|e| e.reason.as_str()).collect();
            reasons.sort_unstable();
            reasons.dedup();
            let mut f = Finding::at(
                Severity::Error,
                "messages-lost",
                path.clone(),
                format!(
                    "{} message(s) of {domain} {display} missing since {} (UIDs {}{more}; {flagged} with flags; {}): recorded in the loss ledger. Bring them back from a copy of the spool with `mstore salvage -f {conf} --from BACKUP_DIR` (or from lost+found and a disk image with `mstore rescue -f {conf}`); if no copy survives, accept the loss with the fix below",
                    lost.len(),
                    date(since),
                    shown.join(", "),
                    reasons.join(", ")
                ),
            )
            .fix(format!("mstore ledger ack -f {conf} {domain} {quoted}"));
            f.domain = Some(domain.to_string());
            f.mailbox = Some(display.clone());
            out.push(f);
        }
        for e in entries.iter().filter(|e| e.kind == Kind::Recreated) {
            let mut f = Finding::at(
                Severity::Error,
                "mailbox-recreated",
                path.clone(),
                format!(
                    "{domain} {display} was recreated empty on {} (UID validity {} → {}): the messages it held were not found. Look for them with `mstore rescue -f {conf}` (every lost+found; add --from BACKUP_DIR for a copy of the spool); if no copy survives, accept the loss with the fix below",
                    date(e.when),
                    e.uid_validity,
                    e.new_uid_validity
                ),
            )
            .fix(format!("mstore ledger ack -f {conf} {domain} {quoted}"));
            f.domain = Some(domain.to_string());
            f.mailbox = Some(display.clone());
            out.push(f);
        }
    }
    out
}
