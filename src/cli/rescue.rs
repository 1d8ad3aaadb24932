//! `mstore rescue`, `mstore salvage` and `mstore ledger`: bulk recovery after a disk
//! failure, and the loss ledger.

use std::io::Write as _;

use super::args::{LedgerAction, LedgerArgs, RescueArgs, SalvageArgs};
use super::{load_config, load_config_for_writing};
use crate::error::{Error, Result};
use crate::layout::{self, MailboxName};
use crate::ledger::{self, Kind};
use crate::report::Exit;

fn print(json: bool, value: &impl serde::Serialize, text: &str) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = if json {
        serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other).and_then(|_| writeln!(out))
    } else {
        out.write_all(text.as_bytes())
    };
    match r.and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("write the report to", "standard output", e))
        }
        _ => Ok(()),
    }
}

/// `mstore salvage`.
pub(super) fn salvage(a: &SalvageArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let opts = crate::rescue::Options {
        lost_found: a.lost_found.clone(),
        auto_lost_found: a.lost_found.is_empty() && a.from.is_empty() && a.image.is_empty(),
        from: a.from.clone(),
        images: a.image.clone(),
        dry_run: a.dry_run,
        quick: a.quick,
        threads: a.threads.unwrap_or(0),
        reconstruct_all: false,
    };
    // Stage one may need root (lost+found is root's); stage two runs as the runtime user.
    let report = crate::rescue::salvage(&cfg, &opts)?;
    print(a.json, &report, &report.text())?;
    Ok(report.exit())
}

/// `mstore rescue`.
pub(super) fn rescue(a: &RescueArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let opts = crate::rescue::Options {
        lost_found: a.lost_found.clone(),
        auto_lost_found: true,
        from: a.from.clone(),
        images: a.image.clone(),
        dry_run: a.dry_run,
        quick: false,
        threads: a.threads.unwrap_or(0),
        reconstruct_all: true,
    };
    let report = crate::rescue::rescue(&cfg, &opts)?;
    print(a.json, &report, &report.text())?;
    Ok(report.exit())
}

/// One ledger entry, as `mstore ledger list` shows it.
#[derive(serde::Serialize)]
struct Item<'a> {
    kind: Kind,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    when: String,
    domain: &'a str,
    mailbox: String,
    uid_validity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internal_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_hash: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
}

fn date(t: i64, off: i16) -> String {
    crate::message::DateTime { unix: t, offset_minutes: off }.to_rfc3339()
}

fn item(e: &ledger::Entry) -> Item<'_> {
    let r = &e.record;
    let has_record = r.uid != 0;
    let mut flags: Vec<String> = r.system_flags.names().map(str::to_string).collect();
    flags.extend(e.flag_names.iter().cloned());
    Item {
        kind: e.kind,
        reason: e.reason.as_str(),
        when: date(e.when, 0),
        domain: &e.domain,
        mailbox: MailboxName::parse(&e.mailbox).map(|n| n.display()).unwrap_or_else(|_| e.mailbox.clone()),
        uid_validity: e.uid_validity,
        uid: has_record.then_some(r.uid),
        flags,
        internal_date: has_record.then(|| date(r.internal_date, r.internal_offset)),
        size: has_record.then_some(r.size),
        content_hash: has_record.then(|| crate::util::hex(&r.content_hash)),
        note: &e.note,
    }
}

fn in_scope(e: &ledger::Entry, mailbox: Option<&MailboxName>, recursive: bool) -> bool {
    let Some(m) = mailbox else { return true };
    MailboxName::parse(&e.mailbox).is_ok_and(|n| n == *m || (recursive && n.is_within(m)))
}

/// `mstore ledger list|ack`.
pub(super) fn ledger(a: &LedgerArgs) -> Result<Exit> {
    let Some(action) = &a.action else {
        return Err(Error::Invalid(
            "say what to do: mstore ledger list [DOMAIN [MAILBOX]], or mstore ledger ack DOMAIN MAILBOX [UIDSET]"
                .into(),
        ));
    };
    match action {
        LedgerAction::List { domain, mailbox, recursive, all, json } => {
            let cfg = load_config(&a.common)?;
            let domains = match domain {
                Some(d) => vec![layout::domain(d)?],
                None => ledger::domains(&cfg),
            };
            let mailbox = mailbox.as_deref().map(MailboxName::parse).transpose()?;
            let ledgers: Vec<ledger::Ledger> =
                domains.iter().filter_map(|d| ledger::read(&cfg, d).transpose()).collect::<Result<_>>()?;
            let mut items = Vec::new();
            let mut text = String::new();
            for l in &ledgers {
                let entries: Vec<&ledger::Entry> =
                    if *all { l.entries.iter().collect() } else { ledger::outstanding(&l.entries) };
                for e in entries.into_iter().filter(|e| in_scope(e, mailbox.as_ref(), *recursive)) {
                    let it = item(e);
                    text += &match e.kind {
                        Kind::Lost => format!(
                            "{} {} UID {}: lost {} ({}): flags [{}], internal date {}, {} bytes\n",
                            it.domain,
                            it.mailbox,
                            e.record.uid,
                            it.when,
                            it.reason,
                            it.flags.join(" "),
                            it.internal_date.as_deref().unwrap_or(""),
                            e.record.size
                        ),
                        Kind::Recreated => format!(
                            "{} {}: recreated empty {} (UID validity {} → {}): {}\n",
                            it.domain, it.mailbox, it.when, e.uid_validity, e.new_uid_validity, e.note
                        ),
                        Kind::Recovered => format!(
                            "{} {} UID {}: recovered {} as UID {} from {}\n",
                            it.domain, it.mailbox, e.record.uid, it.when, e.new_uid, e.note
                        ),
                        Kind::Acknowledged => format!(
                            "{} {} UID {}: loss acknowledged {}: {}\n",
                            it.domain, it.mailbox, e.record.uid, it.when, e.note
                        ),
                    };
                    items.push(it);
                }
                for (off, what) in l.damage.iter().filter(|_| !l.torn_tail_only) {
                    text += &format!("warning: {} @{off}: {what}\n", l.path.display());
                }
            }
            if items.is_empty() {
                text += if *all { "the loss ledger is empty\n" } else { "no outstanding loss\n" };
            }
            print(*json, &items, &text)?;
            Ok(if !*all && !items.is_empty() { Exit::Unrepaired } else { Exit::Ok })
        }
        LedgerAction::Ack { domain, mailbox, uids, note } => {
            let cfg = load_config_for_writing(&a.common)?;
            let domain = layout::domain(domain)?;
            let name = MailboxName::parse(mailbox)?;
            let set = uids.as_deref().map(crate::uidset::UidSet::parse).transpose()?;
            let Some(l) = ledger::read(&cfg, &domain)? else {
                println!("{domain}: no loss ledger: nothing to acknowledge");
                return Ok(Exit::Ok);
            };
            let open = ledger::outstanding(&l.entries);
            let chosen: Vec<&ledger::Entry> = open
                .into_iter()
                .filter(|e| in_scope(e, Some(&name), false))
                .filter(|e| match &set {
                    None => true,
                    Some(s) => e.kind == Kind::Lost && !s.select(&[e.record.uid]).is_empty(),
                })
                .collect();
            if chosen.is_empty() {
                println!("{domain} {}: no outstanding loss to acknowledge", name.display());
                return Ok(Exit::Ok);
            }
            let who = super::current_user_and_group().0;
            let text =
                format!("acknowledged by {who}{}", note.as_deref().map(|n| format!(": {n}")).unwrap_or_default());
            let acks: Vec<ledger::Entry> =
                chosen.iter().map(|e| ledger::resolution(e, Kind::Acknowledged, &text, 0, 0)).collect();
            ledger::append(&cfg, &domain, &acks)?;
            println!(
                "{domain} {}: {} loss(es) acknowledged; mstore verify no longer reports them (the ledger keeps them)",
                name.display(),
                acks.len()
            );
            Ok(Exit::Repaired)
        }
    }
}
