//! `mstore flags DOMAIN MAILBOX UIDSET (+|-|=)FLAGS...`: IMAP `UID STORE` from the command
//! line, through the store's write protocol (the change log first).

use serde::Serialize;

use super::args::FlagsArgs;
use super::{domain_and_name, emit, load_config_for_writing};
use crate::error::{Error, Result};
use crate::flags::SystemFlags;
use crate::report::{Exit, Format, Render};
use crate::store::{FlagOp, Store};
use crate::uidset::UidSet;

/// One signed group of flags: `+\Seen $Work`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagChange {
    /// Add, remove or replace.
    pub op: FlagOp,
    /// System flag bits.
    pub system: u32,
    /// Keywords.
    pub keywords: Vec<String>,
}

/// Parse the flag arguments: each sign (`+`, `-`, `=`) starts a group that takes the flags
/// after it, in the same word or the next ones; commas and IMAP's parentheses separate
/// flags too (`+(\Seen $Work)`).
pub fn parse_changes(args: &[String]) -> Result<Vec<FlagChange>> {
    let mut out: Vec<FlagChange> = Vec::new();
    for arg in args {
        let mut word = arg.as_str();
        if let Some(op) = word.chars().next().and_then(|c| match c {
            '+' => Some(FlagOp::Add),
            '-' => Some(FlagOp::Remove),
            '=' => Some(FlagOp::Replace),
            _ => None,
        }) {
            out.push(FlagChange { op, system: 0, keywords: Vec::new() });
            word = &word[1..];
        }
        let Some(group) = out.last_mut() else {
            return Err(Error::Invalid(format!(
                "{arg:?}: say what to do first: +FLAG adds, -FLAG removes, =FLAG sets exactly (e.g. +\\Seen)"
            )));
        };
        for flag in word.split(|c: char| c == ',' || c == '(' || c == ')' || c.is_whitespace()) {
            if flag.is_empty() {
                continue;
            }
            match SystemFlags::bit(flag) {
                Some(b) => group.system |= b,
                None if flag.starts_with('\\') => {
                    return Err(Error::Invalid(format!(
                        "unknown system flag {flag} (system flags: \\Answered \\Flagged \\Deleted \\Seen \\Draft)"
                    )));
                }
                None if !crate::flags::valid_user_flag(flag) => {
                    return Err(Error::Invalid(format!("{flag:?} is not a valid keyword (an IMAP atom)")));
                }
                None => group.keywords.push(flag.to_string()),
            }
        }
    }
    if let Some(g) = out.iter().find(|g| g.op != FlagOp::Replace && g.system == 0 && g.keywords.is_empty()) {
        let sign = if g.op == FlagOp::Add { '+' } else { '-' };
        return Err(Error::Invalid(format!("{sign} names no flag (e.g. {sign}\\Seen)")));
    }
    if out.is_empty() {
        return Err(Error::Invalid("no flags given: +FLAG adds, -FLAG removes, =FLAG sets exactly".into()));
    }
    Ok(out)
}

/// What `mstore flags` did (`--json`: fields in the order they have always been printed).
#[derive(Serialize)]
struct FlagsReport {
    /// Messages whose flags changed.
    changed: usize,
    domain: String,
    highest_modseq: u64,
    mailbox: String,
    /// Messages the UID set matched.
    matched: usize,
    messages: Vec<FlagsMessage>,
    uid_set: String,
}

/// A matched message after the change.
#[derive(Serialize)]
struct FlagsMessage {
    changed: bool,
    flags: Vec<String>,
    modseq: u64,
    uid: u32,
}

impl Render for FlagsReport {
    fn text(&self) -> String {
        format!(
            "{} {}: {} message(s) matched {}, {} changed; highest modseq {}\n",
            self.domain, self.mailbox, self.matched, self.uid_set, self.changed, self.highest_modseq
        )
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
}

pub(super) fn run(a: &FlagsArgs) -> Result<Exit> {
    let set = UidSet::parse(&a.uids)?;
    // The flag words take hyphens (`-\Seen`), so a `--json` after them arrives among them.
    let json = a.json || a.flags.iter().any(|f| f == "--json");
    let words: Vec<String> = a.flags.iter().filter(|f| *f != "--json").cloned().collect();
    let changes = parse_changes(&words)?;
    let cfg = load_config_for_writing(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(&a.domain, &a.mailbox)?;
    let mut mb = st.open_mailbox_locked(&d, &n)?;
    let in_use: Vec<u32> = mb.records().iter().map(|r| r.uid).collect();
    let uids = set.select(&in_use);
    let before: Vec<_> = uids.iter().filter_map(|&u| mb.record(u).copied()).collect();
    for c in &changes {
        mb.store_flags(&uids, c.op, c.system, &c.keywords)?;
    }
    let changed: Vec<u32> =
        before.iter().filter(|b| mb.record(b.uid).is_some_and(|a| a.modseq != b.modseq)).map(|b| b.uid).collect();
    let messages = uids
        .iter()
        .filter_map(|&u| mb.record(u))
        .map(|r| {
            let mut flags: Vec<String> = r.system_flags.names().map(str::to_string).collect();
            flags.extend(mb.user_flag_names(r.user_flags));
            FlagsMessage { changed: changed.contains(&r.uid), flags, modseq: r.modseq, uid: r.uid }
        })
        .collect();
    let report = FlagsReport {
        changed: changed.len(),
        domain: d,
        highest_modseq: mb.highest_modseq(),
        mailbox: n.as_str().to_string(),
        matched: uids.len(),
        messages,
        uid_set: a.uids.clone(),
    };
    emit(&report, Format::json_if(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Vec<FlagChange>> {
        parse_changes(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn signs_group_the_flags_after_them() {
        let c = p(&["+\\Seen", "$Work", "-\\flagged,Later", "="]).expect("parses");
        assert_eq!(
            c,
            vec![
                FlagChange { op: FlagOp::Add, system: SystemFlags::SEEN, keywords: vec!["$Work".into()] },
                FlagChange { op: FlagOp::Remove, system: SystemFlags::FLAGGED, keywords: vec!["Later".into()] },
                FlagChange { op: FlagOp::Replace, system: 0, keywords: vec![] },
            ]
        );
        let c = p(&["+(\\Seen", "\\Answered)"]).expect("parentheses");
        assert_eq!(c[0].system, SystemFlags::SEEN | SystemFlags::ANSWERED);
        let c = p(&["+", "\\Draft"]).expect("a bare sign takes the next word");
        assert_eq!(c[0].system, SystemFlags::DRAFT);
    }

    #[test]
    fn mistakes_are_refused_with_the_fix() {
        for (args, says) in [
            (&["\\Seen"][..], "say what to do first"),
            (&["+\\Sen"][..], "unknown system flag"),
            (&["+"][..], "names no flag"),
            (&["-"][..], "names no flag"),
            (&["+a\"b"][..], "not a valid keyword"),
            (&[][..], "no flags given"),
        ] {
            let e = p(args).expect_err("refused").to_string();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }
}
