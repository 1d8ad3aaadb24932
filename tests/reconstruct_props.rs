//! Property test of `reconstruct` (issues 3 and 14): a mailbox with a random history
//! (appends, flag changes, new keywords, expunges, checkpoints) gets random damage to its
//! header, index, cache and change log — deletion, truncation, bit flips, garbage, zeroed
//! ranges — and to some message files (a flipped bit, a deleted file). Then:
//!
//! - every message whose file is intact is still indexed, and keeps its flags and internal
//!   date whenever the newest record of it (index record or log record, by modseq) and a
//!   record holding its date survived the damage — "survived" decided by comparing the
//!   record's bytes with the original file's, not by the code under test;
//! - within the same UID validity: the last UID never decreases, no UID is reused (a UID
//!   shows the bytes it showed before, or is above the old last UID: re-appended files
//!   land there), HIGHESTMODSEQ never goes down, and a message whose flags or bytes
//!   changed has a modseq above the old HIGHESTMODSEQ (RFC 7162) — except after a log cut
//!   exactly at a record boundary past what the index and header saw, which no reader can
//!   tell from a log that ends there (`formats/changelog.md`, "Coverage");
//! - no panic, no message file deleted or modified (`support::checked_run`), the exit
//!   status says whether there was damage, `verify` is clean afterwards, and a second run
//!   changes nothing.
//!
//! Cases: 96 by default; `PROPTEST_CASES` overrides.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mstore::flags::SystemFlags;
use mstore::layout::MailboxName;
use mstore::store::{CreateOptions, FlagOp, NewMessage};
use proptest::prelude::*;
use serde_json::Value;
use support::*;

const D: &str = "example.com";
const NAME: &str = "user/joe";

/// What happens to one store file.
#[derive(Clone, Debug)]
enum Damage {
    Keep,
    Delete,
    /// Cut at this fraction (per mille) of the length.
    Truncate(u16),
    /// Flip bit `.1` of the byte at fraction `.0` (per mille).
    Flip(Vec<(u16, u8)>),
    /// Overwrite `len` bytes at a fraction of the length with pseudo-random bytes.
    Garbage {
        at: u16,
        len: u16,
        seed: u64,
    },
    /// Overwrite `len` bytes at a fraction of the length with zeros.
    Zero {
        at: u16,
        len: u16,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::Keep),
        1 => Just(Damage::Delete),
        2 => (0u16..1000).prop_map(Damage::Truncate),
        3 => proptest::collection::vec((0u16..1000, 0u8..8), 1..6).prop_map(Damage::Flip),
        1 => (0u16..1000, 1u16..300, any::<u64>()).prop_map(|(at, len, seed)| Damage::Garbage { at, len, seed }),
        1 => (0u16..1000, 1u16..300).prop_map(|(at, len)| Damage::Zero { at, len }),
    ]
}

/// Apply `d` to the file at `path`; the length it was cut to, for a truncation.
fn apply(path: &Path, d: &Damage) -> Option<usize> {
    let Ok(mut b) = std::fs::read(path) else { return None };
    let at = |frac: u16, len: usize| (len * frac as usize / 1000).min(len.saturating_sub(1));
    let mut cut = None;
    match d {
        Damage::Keep => return None,
        Damage::Delete => {
            std::fs::remove_file(path).expect("delete");
            return None;
        }
        Damage::Truncate(f) => {
            b.truncate(b.len() * *f as usize / 1000);
            cut = Some(b.len());
        }
        Damage::Flip(v) => {
            for &(f, bit) in v {
                if !b.is_empty() {
                    let i = at(f, b.len());
                    b[i] ^= 1 << bit;
                }
            }
        }
        Damage::Garbage { at: f, len, seed } => {
            let start = at(*f, b.len());
            let mut x = *seed | 1;
            for byte in b.iter_mut().skip(start).take(*len as usize) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
        }
        Damage::Zero { at: f, len } => {
            let start = at(*f, b.len());
            b.iter_mut().skip(start).take(*len as usize).for_each(|x| *x = 0);
        }
    }
    std::fs::write(path, &b).expect("write damaged file");
    cut
}

/// One step of a mailbox's history.
#[derive(Clone, Debug)]
enum Op {
    /// Append this many generated messages.
    Append(u8),
    /// Add (0), remove (1) or set (2) flag number `flag` on the messages picked (fractions
    /// of the live UIDs, per mille); flag 5 is a keyword new to the mailbox.
    Flags { pick: Vec<u16>, op: u8, flag: u8 },
    /// Expunge the messages picked.
    Expunge(Vec<u16>),
    /// Write a checkpoint (index and compacted log).
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    let pick = || proptest::collection::vec(0u16..1000, 1..4);
    prop_oneof![
        2 => (1u8..4).prop_map(Op::Append),
        4 => (pick(), 0u8..3, 0u8..6).prop_map(|(pick, op, flag)| Op::Flags { pick, op, flag }),
        1 => pick().prop_map(Op::Expunge),
        1 => Just(Op::Checkpoint),
    ]
}

/// What happens to a message file.
#[derive(Clone, Debug)]
enum MsgDamage {
    /// Flip a bit at a fraction of the file (same size and mtime: only a run that reads
    /// the file sees it).
    Flip(u16, u8),
    Delete,
}

fn msg_damage() -> impl Strategy<Value = (u16, MsgDamage)> {
    (0u16..1000, prop_oneof![(0u16..1000, 0u8..8).prop_map(|(a, b)| MsgDamage::Flip(a, b)), Just(MsgDamage::Delete)])
}

/// Build the history through the library; returns the mailbox directory.
fn build(fx: &Fx, n0: u8, ops: &[Op], final_checkpoint: bool) -> std::path::PathBuf {
    let name = MailboxName::parse(NAME).expect("name");
    let mut mb = fx.store.create_mailbox(D, &name, CreateOptions::default()).expect("create");
    let mut next = 1u32;
    let mut append = |mb: &mut mstore::store::Mailbox, k: u8| {
        let bodies: Vec<(u32, Vec<u8>)> = (0..k)
            .map(|_| {
                next += 1;
                (next - 1, message_bytes(NAME, next - 1))
            })
            .collect();
        let batch: Vec<NewMessage<'_>> = bodies
            .iter()
            .map(|(i, b)| NewMessage {
                bytes: b,
                internal_date: Some(date_of(*i)),
                system_flags: system_flags_of(*i),
                user_flags: user_flags_of(*i),
            })
            .collect();
        mb.append(&batch).expect("append");
    };
    append(&mut mb, n0);
    let picked = |mb: &mstore::store::Mailbox, pick: &[u16]| -> Vec<u32> {
        let live: Vec<u32> = mb.records().iter().map(|r| r.uid).collect();
        if live.is_empty() {
            return vec![];
        }
        pick.iter().map(|&f| live[(f as usize * live.len() / 1000).min(live.len() - 1)]).collect()
    };
    for o in ops {
        match o {
            Op::Append(k) => append(&mut mb, *k),
            Op::Flags { pick, op, flag } => {
                let uids = picked(&mb, pick);
                let fop = [FlagOp::Add, FlagOp::Remove, FlagOp::Replace][*op as usize];
                let (sys, user): (u32, Vec<String>) = match flag {
                    0 => (SystemFlags::SEEN, vec![]),
                    1 => (SystemFlags::FLAGGED | SystemFlags::ANSWERED, vec![]),
                    2 => (0, vec!["$Work".into()]),
                    3 => (SystemFlags::DRAFT, vec!["Later".into()]),
                    4 => (SystemFlags::DELETED, vec![]),
                    _ => (0, vec![format!("$New{}", uids.first().copied().unwrap_or(0))]),
                };
                mb.store_flags(&uids, fop, sys, &user).expect("flags");
            }
            Op::Expunge(pick) => {
                let uids = picked(&mb, pick);
                mb.expunge(Some(&uids)).expect("expunge");
            }
            Op::Checkpoint => mb.checkpoint().expect("checkpoint"),
        }
    }
    if final_checkpoint {
        mb.checkpoint().expect("checkpoint");
    }
    mb.place().dir.clone()
}

/// A record of the original files that concerns a message: where it is, its bytes, its
/// modseq, and whether it holds the internal date (index and MESSAGE records do).
#[derive(Clone, Debug)]
struct Source {
    file: &'static str,
    offset: usize,
    bytes: Vec<u8>,
    modseq: u64,
    has_date: bool,
    /// For a log record: every record of its change (offset, bytes), itself included: a
    /// change is applied whole or not at all (`formats/changelog.md`, "Changes").
    change: Vec<(usize, Vec<u8>)>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Every record of the original index and log, by the UID it concerns; and the offset where
/// each change of the log ends. Read from the format's tables (`formats/index.md`,
/// `formats/changelog.md`) here, not with the crate's decoders.
fn sources(index: &[u8], log: &[u8]) -> (BTreeMap<u32, Vec<Source>>, BTreeSet<usize>) {
    let mut by_uid: BTreeMap<u32, Vec<Source>> = BTreeMap::new();
    let mut off = 128;
    while off + 128 <= index.len() {
        let r = &index[off..off + 128];
        by_uid.entry(u32_at(r, 0)).or_default().push(Source {
            file: "ms.index",
            offset: off,
            bytes: r.to_vec(),
            modseq: u64_at(r, 72),
            has_date: true,
            change: Vec::new(),
        });
        off += 128;
    }
    let mut ends = BTreeSet::new();
    let mut off = 64;
    // Records of the change being read, and the sources waiting for its end.
    let mut change: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut waiting: Vec<(u32, Source)> = Vec::new();
    while off + 20 <= log.len() {
        let len = u32_at(log, off) as usize;
        let (kind, flags, seq) = (log[off + 4], log[off + 5], u64_at(log, off + 8));
        let rec = &log[off..off + len];
        change.push((off, rec.to_vec()));
        // MESSAGE (3) and FLAGS (4) name a UID first in their body; their modseq is seq.
        if kind == 3 || kind == 4 {
            let s = Source {
                file: "ms.log",
                offset: off,
                bytes: rec.to_vec(),
                modseq: seq,
                has_date: kind == 3,
                change: Vec::new(),
            };
            waiting.push((u32_at(rec, 16), s));
        }
        off += len;
        // Bit 0 of the flags byte: another record of the same change follows.
        if flags & 1 == 0 {
            ends.insert(off);
            for (uid, mut s) in waiting.drain(..) {
                s.change = change.clone();
                by_uid.entry(uid).or_default().push(s);
            }
            change.clear();
        }
    }
    (by_uid, ends)
}

/// Whether `s` is still in its file, byte for byte (for the log, every record of its change
/// and the log's header too: it holds the unique id that seeds every record's checksum).
fn intact(s: &Source, index: Option<&[u8]>, log: Option<&[u8]>, log_orig: &[u8]) -> bool {
    let file = if s.file == "ms.index" { index } else { log };
    let Some(b) = file else { return false };
    let at = |off: usize, bytes: &[u8]| b.get(off..off + bytes.len()) == Some(bytes);
    match s.file {
        "ms.index" => at(s.offset, &s.bytes),
        _ => at(0, &log_orig[..64]) && s.change.iter().all(|(off, bytes)| at(*off, bytes)),
    }
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 96;
    }
    c
}

/// The flag names a rebuilt mailbox may show for the flags of `before`: the same, or the
/// placeholder of their slot when no surviving file held the name.
fn flags_match(before: &Value, after: &Value, was: &[String], now: &[String]) -> bool {
    let names = |v: &Value| -> Vec<Option<String>> {
        v["user_flags"].as_array().expect("user_flags").iter().map(|n| n.as_str().map(str::to_string)).collect()
    };
    let (bn, an) = (names(before), names(after));
    let expect: Vec<String> = was
        .iter()
        .map(|f| {
            if f.starts_with('\\') {
                return f.clone();
            }
            let slot = bn.iter().position(|n| n.as_deref() == Some(f.as_str())).expect("named slot");
            match an.get(slot).cloned().flatten() {
                Some(n) if n == *f || n == format!("$RecoveredFlag{slot}") => n,
                _ => format!("<slot {slot} renamed to {:?}>", an.get(slot)),
            }
        })
        .collect();
    expect == now
}

#[derive(Clone, Debug)]
struct Case {
    n0: u8,
    ops: Vec<Op>,
    final_checkpoint: bool,
    header: Damage,
    index: Damage,
    cache: Damage,
    log: Damage,
    messages: Vec<(u16, MsgDamage)>,
    verify_content: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (2u8..10, proptest::collection::vec(op(), 0..8), any::<bool>()),
        (damage(), damage(), damage(), damage()),
        (proptest::collection::vec(msg_damage(), 0..3), any::<bool>()),
    )
        .prop_map(|((n0, ops, final_checkpoint), (header, index, cache, log), (messages, verify_content))| Case {
            n0,
            ops,
            final_checkpoint,
            header,
            index,
            cache,
            log,
            messages,
            verify_content,
        })
}

fn check(c: &Case) {
    let fx = Fx::new();
    let dir = build(&fx, c.n0, &c.ops, c.final_checkpoint);
    let before = fx.show(D, NAME);
    let read = |f: &str| std::fs::read(dir.join(f)).ok();
    let (index_orig, log_orig) = (read("ms.index").expect("index"), read("ms.log").expect("log"));
    let (sources, log_ends) = sources(&index_orig, &log_orig);
    let originals: BTreeMap<&str, Option<Vec<u8>>> =
        ["ms.header", "ms.index", "ms.cache", "ms.log"].into_iter().map(|f| (f, read(f))).collect();

    // Damage.
    apply(&dir.join("ms.header"), &c.header);
    apply(&dir.join("ms.index"), &c.index);
    apply(&dir.join("ms.cache"), &c.cache);
    let log_cut = apply(&dir.join("ms.log"), &c.log);
    let uids: Vec<u64> = essentials(&before).into_keys().collect();
    let mut hurt: BTreeSet<u64> = BTreeSet::new();
    let mut deleted = false;
    for (pick, d) in &c.messages {
        let Some(&uid) = uids.get((*pick as usize * uids.len() / 1000).min(uids.len().saturating_sub(1))) else {
            continue;
        };
        if !hurt.insert(uid) {
            continue;
        }
        let path = dir.join(format!("{uid}."));
        match d {
            MsgDamage::Flip(at, bit) => {
                let len = std::fs::metadata(&path).expect("stat").len() as usize;
                let mtime = std::fs::metadata(&path).expect("stat").modified().expect("mtime");
                flip(&path, (len * *at as usize / 1000).min(len - 1), *bit);
                std::fs::File::options().write(true).open(&path).expect("open").set_modified(mtime).expect("mtime");
            }
            MsgDamage::Delete => {
                std::fs::remove_file(&path).expect("delete");
                deleted = true;
            }
        }
    }
    let changed = |f: &str| originals[f].as_deref() != std::fs::read(dir.join(f)).ok().as_deref();
    let (index_now, log_now) = (read("ms.index"), read("ms.log"));
    // A log cut where a change ends, nothing else wrong with it: if past what index and
    // header saw, nothing can tell it from a log that ends there.
    let boundary_cut = log_cut.is_some_and(|n| n == 64 || log_ends.contains(&n));

    // Whether the mailbox's identity survives (else a new UID validity is due).
    let identity_known = std::fs::read(dir.join("ms.header"))
        .is_ok_and(|b| mstore::codec::header::decode_fixed(&b).is_ok())
        || std::fs::read(dir.join("ms.index")).is_ok_and(|b| mstore::codec::index::decode_header(&b).is_ok());
    let mut args = vec![D, NAME];
    if c.verify_content {
        args.push("--verify-content");
    }
    let r = fx.reconstruct(&args);
    let must_repair = changed("ms.header") || changed("ms.index") || (changed("ms.log") && !boundary_cut) || deleted;
    assert!(
        r.code == 1 || (r.code == 0 && !must_repair),
        "exit {} (must repair: {must_repair})\nstdout:\n{}\nstderr:\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    let after = fx.show(D, NAME);
    let (b, a) = (essentials(&before), essentials(&after));
    let by_hash: BTreeMap<&str, Vec<u64>> = a.iter().fold(BTreeMap::new(), |mut m, (uid, e)| {
        m.entry(e.4.as_str()).or_default().push(*uid);
        m
    });

    for (uid, was) in &b {
        if hurt.contains(uid) {
            continue;
        }
        // Every intact message is still indexed.
        assert!(by_hash.contains_key(was.4.as_str()), "the message of UID {uid} is no longer indexed\n{}", r.stdout);
        let srcs = sources.get(&(*uid as u32)).map(Vec::as_slice).unwrap_or_default();
        let ok = |s: &Source| intact(s, index_now.as_deref(), log_now.as_deref(), &log_orig);
        let newest = srcs.iter().max_by_key(|s| (s.modseq, s.file == "ms.log"));
        let dated = srcs.iter().any(|s| s.has_date && ok(s));
        if newest.is_some_and(ok) && dated {
            let now = a
                .get(uid)
                .unwrap_or_else(|| panic!("UID {uid}: its newest record is intact, yet it moved\n{}", r.stdout));
            assert!(
                flags_match(&before, &after, &was.0, &now.0),
                "UID {uid}: flags {:?} became {:?}\n{}",
                was.0,
                now.0,
                r.stdout
            );
            assert_eq!(now.1, was.1, "UID {uid}: internal date\n{}", r.stdout);
        }
    }

    let same_validity = after["uid_validity"] == before["uid_validity"];
    if identity_known {
        assert!(same_validity, "the UID validity survived in the header or index\n{}", r.stdout);
    }
    if same_validity {
        let hm = |v: &Value| v["highest_modseq"].as_u64().expect("highest_modseq");
        let last = |v: &Value| v["last_uid"].as_u64().expect("last_uid");
        assert!(
            last(&after) >= last(&before),
            "last UID went down: {} → {}\n{}",
            last(&before),
            last(&after),
            r.stdout
        );
        let ms = modseqs(&after);
        for (uid, e) in &a {
            match b.get(uid) {
                // No UID is reused: it shows its old bytes, or is new above the old last UID.
                Some(old) => {
                    assert!(old.4 == e.4 || hurt.contains(uid), "UID {uid} was reused for other bytes\n{}", r.stdout)
                }
                None => assert!(
                    *uid > last(&before),
                    "UID {uid} is new but not above the old last UID {}\n{}",
                    last(&before),
                    r.stdout
                ),
            }
            let changed = b.get(uid).is_none_or(|old| old.0 != e.0 || old.4 != e.4);
            if changed && !boundary_cut {
                assert!(
                    ms[uid] > hm(&before),
                    "UID {uid} changed but its modseq {} is not above {}\n{}",
                    ms[uid],
                    hm(&before),
                    r.stdout
                );
            }
        }
        if !boundary_cut {
            assert!(
                hm(&after) >= hm(&before),
                "HIGHESTMODSEQ went down: {} → {}\n{}",
                hm(&before),
                hm(&after),
                r.stdout
            );
        }
    }

    // The store is healthy afterwards: verify finds nothing, and a second run changes
    // nothing. (Without --verify-content, a run that trusts a record on size and mtime
    // reads neither a rotted message file nor its cache record; verify reads both, and
    // its fix for them is --verify-content.)
    let rotted = c.messages.iter().any(|m| matches!(m.1, MsgDamage::Flip(..)));
    if c.verify_content || (!rotted && !changed("ms.cache")) {
        // Only the losses the repair had to record remain: the loss ledger keeps every
        // record it dropped, and verify reports them until they are brought back or
        // accepted; nothing else.
        let v = fx.mstore(&["verify", D, NAME, "--no-progress", "--json"]);
        let findings: Vec<serde_json::Value> = v.json()["findings"].as_array().cloned().unwrap_or_default();
        let other: Vec<&serde_json::Value> =
            findings.iter().filter(|f| f["kind"] != "messages-lost" && f["kind"] != "mailbox-recreated").collect();
        assert!(other.is_empty(), "verify after the repair:\n{}\nreconstruct said:\n{}", v.stdout, r.stdout);
        let dropped = r.stdout.contains(" dropped,") && !r.stdout.contains(" 0 dropped,");
        let lost = findings.iter().any(|f| f["kind"] == "messages-lost");
        assert!(
            !dropped || lost,
            "a dropped record is a loss verify reports:\n{}\nreconstruct said:\n{}",
            v.stdout,
            r.stdout
        );
        assert!(
            !lost || dropped || r.stdout.contains("no longer matches"),
            "verify reports a loss reconstruct did not make:\n{}\nreconstruct said:\n{}",
            v.stdout,
            r.stdout
        );
    }
    let again = fx.reconstruct(&args);
    assert_eq!(again.code, 0, "second run\nfirst:\n{}\nsecond:\n{}", r.stdout, again.stdout);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_damage_never_loses_what_an_intact_record_holds_nor_reuses_uids_or_modseqs(c in case()) {
        check(&c);
    }
}

/// The cases that once failed or that matter most, run every time.
#[test]
fn known_cases() {
    let base = Case {
        n0: 6,
        ops: vec![Op::Checkpoint, Op::Flags { pick: vec![100, 600], op: 0, flag: 1 }, Op::Expunge(vec![900])],
        final_checkpoint: false,
        header: Damage::Keep,
        index: Damage::Keep,
        cache: Damage::Keep,
        log: Damage::Keep,
        messages: vec![],
        verify_content: false,
    };
    let all_gone = Case { header: Damage::Delete, index: Damage::Delete, cache: Damage::Delete, ..base.clone() };
    check(&all_gone);
    check(&Case { index: Damage::Truncate(500), log: Damage::Delete, final_checkpoint: true, ..base.clone() });
    check(&Case {
        header: Damage::Flip(vec![(10, 0)]),
        index: Damage::Flip(vec![(600, 3)]),
        cache: Damage::Truncate(0),
        log: Damage::Delete,
        verify_content: true,
        ..base.clone()
    });
    // Header and index lost, the log cut to its header: every file re-appended above the
    // last UID the header holds, modseqs above its ceiling (issue 14, found 2).
    check(&Case { index: Damage::Delete, log: Damage::Truncate(0), ..base.clone() });
    check(&Case { index: Damage::Delete, log: Damage::Delete, ..base.clone() });
    // A flipped cache record, found by reading the messages.
    check(&Case { cache: Damage::Flip(vec![(700, 2)]), verify_content: true, ..base.clone() });
    // Identity lost everywhere: a new UID validity.
    check(&Case { header: Damage::Delete, index: Damage::Flip(vec![(20, 1)]), log: Damage::Delete, ..base.clone() });
    // A flipped log record mid-log and a rotted message, read.
    check(&Case {
        log: Damage::Flip(vec![(400, 1)]),
        messages: vec![(500, MsgDamage::Flip(300, 2)), (0, MsgDamage::Delete)],
        verify_content: true,
        ..base
    });
}
