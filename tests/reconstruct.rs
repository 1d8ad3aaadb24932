//! `reconstruct` end to end (issue 3, "Tests"): one test per damage scenario on mailboxes of
//! known flags and dates, each run through the real binary and checked through
//! `mstore show --json`: deleted index, header, cache, all three, everything; a truncated
//! index; a bit flip in the index header and in one record; message files added, removed,
//! changed, emptied; stray files and `--quarantine`; UID gaps and UIDs above the last UID;
//! `-r` over nested shared folders; `-u joe example.com INBOX`; names with spaces, quotes
//! and modified UTF-7; every message of `../shared/corpus-ext/`; every example of the
//! M-Store administration guide's Table 5-2 verbatim on the demo store; a healthy store left alone; a second run
//! and `--dry-run` writing nothing; exit statuses; a lost header; a mailbox missing from
//! the mailbox list; bad input (garbage files, an unreadable directory, bad usage).
//!
//! Every run is checked by `support::checked_run`: no panic, and no message file deleted
//! or modified (only renamed within its mailbox, or moved into its `ms.quarantine/`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mstore::layout::MailboxName;
use mstore::message::DateTime;
use mstore::store::NewMessage;
use serde_json::{Value, json};
use support::*;

const D: &str = "example.com";

/// A run on a consistent store: exit 0, "nothing to do", no change or repair line, and
/// no file or directory of the tree changed (bytes and mtimes).
fn assert_no_op(fx: &Fx, args: &[&str]) {
    let before = fx.tree_but_listings();
    let r = fx.reconstruct(args);
    r.expect_code(0, &format!("reconstruct {args:?} on a consistent store"));
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    for l in r.stdout.lines() {
        assert!(!l.starts_with(' '), "change line on a consistent store: {l:?}\n{}", r.stdout);
        assert!(l.contains(": unchanged (") || l.starts_with("reconstruct: "), "unexpected line {l:?}\n{}", r.stdout);
    }
    assert_same_tree(&before, &fx.tree_but_listings(), &format!("reconstruct {args:?} on a consistent store"));
}

fn rm(dir: &Path, file: &str) {
    std::fs::remove_file(dir.join(file)).unwrap_or_else(|e| panic!("remove {file}: {e}"));
}

fn last_uid(show: &Value) -> u32 {
    show["last_uid"].as_u64().expect("last_uid") as u32
}

fn uids(show: &Value) -> Vec<u64> {
    essentials(show).keys().copied().collect()
}

/// UID of the message whose content hash is `hash`.
fn uid_with_hash(show: &Value, hash: &str) -> Option<u64> {
    essentials(show).iter().find(|(_, e)| e.4 == hash).map(|(u, _)| *u)
}

fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn line_of<'a>(r: &'a Run, domain: &str, name: &str) -> &'a str {
    let head = format!("{domain} {name}: ");
    r.stdout
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no line for {name}:\n{}\nstderr:\n{}", r.stdout, r.stderr))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ------------------------------------------------------------------- deleted files

#[test]
fn deleted_index_loses_no_flag_and_no_date() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 12);
    let before = fx.show(D, "user/joe");
    // The fixture's last changes live only in the change log.
    assert!(flags_of(&before, 2).contains(&"$Tail".to_string()));
    assert!(!flags_of(&before, 1).contains(&"\\Seen".to_string()));
    rm(&dir, "ms.index");
    let err = fx.show_fails(D, "user/joe");
    assert!(err.contains("ms.index") && err.contains("reconstruct -f"), "{err}");

    let r = fx.reconstruct(&[D, "user/joe"]);
    r.expect_code(1, "deleted index");
    assert!(line_of(&r, D, "user/joe").contains(": repaired: "), "{}", r.stdout);
    assert!(r.stdout.contains("ms.index is missing"), "{}", r.stdout);
    assert!(line_of(&r, D, "user/joe").contains("0 flags lost"), "{}", r.stdout);
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);

    // The log is now compacted to exactly this state: losing the index again rewrites the
    // index alone (log and header keep their inode: same bytes are not written again).
    use std::os::unix::fs::MetadataExt;
    let ino = |f: &str| std::fs::metadata(dir.join(f)).expect("stat").ino();
    let (log, header) = (ino("ms.log"), ino("ms.header"));
    rm(&dir, "ms.index");
    fx.reconstruct(&[D, "user/joe"]).expect_code(1, "deleted index again");
    assert_eq!((ino("ms.log"), ino("ms.header")), (log, header), "log or header rewritten");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn deleted_header_keeps_identity_and_flag_names() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 10);
    let before = fx.show(D, "user/joe");
    rm(&dir, "ms.header");
    fx.show_fails(D, "user/joe");
    let r = fx.reconstruct(&[D, "user/joe"]);
    r.expect_code(1, "deleted header");
    assert!(r.stdout.contains("ms.header is missing"), "{}", r.stdout);
    assert!(!r.stdout.contains("RecoveredFlag"), "the log holds every flag name:\n{}", r.stdout);
    assert!(!r.stdout.contains("belongs to another mailbox"), "the cache is this mailbox's:\n{}", r.stdout);
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn deleted_cache_is_rebuilt_and_its_records_name_the_right_messages() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "admin", 9);
    let before = fx.show(D, "admin");
    rm(&dir, "ms.cache");
    let r = fx.reconstruct(&[D, "admin"]);
    r.expect_code(1, "deleted cache");
    assert!(r.stdout.contains("ms.cache is missing"), "{}", r.stdout);
    assert_survived(&before, &fx.show(D, "admin"));
    // Every record points at a cache record of its own message.
    assert_cache_names_records(&fx, D, "admin");
    assert_no_op(&fx, &[D, "admin"]);
}

#[test]
fn a_rebuilt_cache_is_the_same_whatever_the_thread_count() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 200);
    let before = fx.show(D, "user/joe");
    rm(&dir, "ms.index");
    rm(&dir, "ms.cache");
    fx.reconstruct(&["-j", "4", D, "user/joe"]).expect_code(1, "index and cache deleted");
    assert_cache_names_records(&fx, D, "user/joe");
    let cache = std::fs::read(dir.join("ms.cache")).expect("cache");
    let log = std::fs::metadata(dir.join("ms.log")).expect("log").ino();

    // Records are placed in UID order however the runs of files finish, so a second
    // rebuild (one thread this time) writes the same cache, and the log, already
    // compacted to this state, is left alone.
    rm(&dir, "ms.index");
    rm(&dir, "ms.cache");
    fx.reconstruct(&["-j", "1", D, "user/joe"]).expect_code(1, "index and cache deleted again");
    assert!(std::fs::read(dir.join("ms.cache")).expect("cache")[64..] == cache[64..], "cache records differ");
    assert_eq!(std::fs::metadata(dir.join("ms.log")).expect("log").ino(), log, "log rewritten");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn a_damaged_cache_record_is_rebuilt_by_verify_content() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 7);
    fx.checkpoint(D, "user/joe");
    let before = fx.show(D, "user/joe");
    let at = {
        let mb = fx.store.open_mailbox(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
        let r = mb.record(3).expect("UID 3");
        r.cache_offset as usize + r.cache_len as usize / 2
    };
    flip(&dir.join("ms.cache"), at, 5);
    let r = fx.reconstruct(&[D, "user/joe", "--verify-content"]);
    r.expect_code(1, "damaged cache record");
    assert!(r.stdout.contains("cache record"), "the report says what was rebuilt:\n{}", r.stdout);
    assert_cache_names_records(&fx, D, "user/joe");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe", "--verify-content"]);
}

#[test]
fn all_three_deleted_recovers_everything_from_the_change_log() {
    let fx = Fx::new();
    let dir = fx.mailbox_on(D, "user/bob", 11, Some("d2"));
    let before = fx.show(D, "user/bob");
    for f in ["ms.header", "ms.index", "ms.cache"] {
        rm(&dir, f);
    }
    let r = fx.reconstruct(&[D, "user/bob"]);
    r.expect_code(1, "header, index and cache deleted");
    assert_survived(&before, &fx.show(D, "user/bob"));
    assert_no_op(&fx, &[D, "user/bob"]);
}

#[test]
fn nothing_but_message_files_keeps_uids_and_issues_a_new_uid_validity() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    for f in ["ms.header", "ms.index", "ms.cache", "ms.log"] {
        rm(&dir, f);
    }
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "only message files left");
    let report = r.json();
    let v = changes(&report, "user/joe", "uidvalidity-changed");
    assert_eq!(v.len(), 1, "{report:#}");
    let after = fx.show(D, "user/joe");
    assert_ne!(after["uid_validity"], before["uid_validity"], "the last UID is unknown: a new UID validity is due");
    assert_eq!(v[0]["new"], after["uid_validity"]);
    assert_eq!(uids(&after), uids(&before), "files keep their UIDs");
    assert_eq!(last_uid(&after), last_uid(&before));
    let (b, a) = (essentials(&before), essentials(&after));
    for (uid, e) in &a {
        let old = &b[uid];
        assert!(e.0.is_empty(), "UID {uid}: flags from nowhere: {:?}", e.0);
        // The file's mtime is the internal date; its zone comes from the Date header.
        assert_eq!((&e.1, e.2.as_str()), (&old.1, "file-mtime"), "UID {uid}");
        assert_eq!((e.3, &e.4, &e.5), (old.3, &old.4, &old.5), "UID {uid}");
    }
    // The mailbox list follows the new UID validity.
    let ls = fx.mstore(&["ls", D, "--json"]).json();
    let entry = ls.as_array().expect("array").iter().find(|e| e["mailbox"] == "user/joe").expect("listed");
    assert_eq!(entry["uid_validity"], after["uid_validity"]);
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn a_lost_header_keeps_uid_validity_and_flag_bits_and_names_what_was_lost() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 10);
    fx.checkpoint(D, "user/joe");
    let before = fx.show(D, "user/joe");
    let names: Vec<String> =
        before["user_flags"].as_array().expect("flags").iter().map(|n| n.as_str().expect("name").to_string()).collect();
    assert!(names.len() >= 4, "{names:?}");
    // Header and change log gone: the index alone holds the flag bits, no one their names.
    rm(&dir, "ms.header");
    rm(&dir, "ms.log");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "lost header and log");
    let report = r.json();
    let lost = changes(&report, "user/joe", "flag-name-unknown");
    let mut lost_names: Vec<&str> = lost.iter().map(|c| c["new"].as_str().expect("placeholder")).collect();
    lost_names.sort();
    let mut expect: Vec<String> = (0..names.len()).map(|s| format!("$RecoveredFlag{s}")).collect();
    expect.sort();
    assert_eq!(lost_names, expect, "every slot in use is reported");
    let after = fx.show(D, "user/joe");
    assert_eq!(after["uid_validity"], before["uid_validity"]);
    // The log is lost: UIDs up to the bound may have been given since the checkpoint.
    assert_eq!(after["last_uid"].as_u64(), Some(uid_bound(&report, "user/joe", &before)));
    let (b, a) = (essentials(&before), essentials(&after));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (uid, e) in &b {
        let renamed: Vec<String> =
            e.0.iter()
                .map(|f| match names.iter().position(|n| n == f) {
                    Some(slot) => format!("$RecoveredFlag{slot}"),
                    None => f.clone(),
                })
                .collect();
        assert_eq!(a[uid].0, renamed, "UID {uid}: every flag bit is kept");
        assert_eq!(a[uid].1, e.1, "UID {uid}: internal date");
    }
    // The human report says which names could not be recovered.
    fx.reconstruct(&[D, "user/joe"]).expect_code(0, "second run");
    let dir2 = fx.mailbox(D, "user/mary", 6);
    fx.checkpoint(D, "user/mary");
    rm(&dir2, "ms.header");
    rm(&dir2, "ms.log");
    let r = fx.reconstruct(&[D, "user/mary"]);
    r.expect_code(1, "lost header and log");
    assert!(r.stdout.contains("the name of user flag slot 0 is lost"), "{}", r.stdout);
}

/// The last UID a run raised to because the log that recorded the last UIDs given was
/// lost (its `last-uid-bound` change): above the old last UID, by the modseq headroom.
fn uid_bound(report: &Value, mailbox: &str, before: &Value) -> u64 {
    let c = changes(report, mailbox, "last-uid-bound");
    assert_eq!(c.len(), 1, "{report:#}");
    let bound = c[0]["new"].as_u64().expect("bound");
    assert!(bound > u64::from(last_uid(before)), "{bound}");
    bound
}

// ------------------------------------------------------------------- damaged index

#[test]
fn truncated_index_with_the_change_log_loses_nothing() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 12);
    let before = fx.show(D, "user/joe");
    let index = dir.join("ms.index");
    std::fs::File::options().write(true).open(&index).expect("open").set_len(128 + 128 * 5 + 60).expect("truncate");
    let r = fx.reconstruct(&[D, "user/joe"]);
    r.expect_code(1, "truncated index");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn truncated_index_alone_keeps_every_whole_record_before_the_cut() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 12);
    fx.checkpoint(D, "user/joe");
    let before = fx.show(D, "user/joe");
    rm(&dir, "ms.log");
    let index = dir.join("ms.index");
    std::fs::File::options().write(true).open(&index).expect("open").set_len(128 + 128 * 5 + 60).expect("truncate");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "truncated index, no log");
    let report = r.json();
    let after = fx.show(D, "user/joe");
    let (b, a) = (essentials(&before), essentials(&after));
    let kept: Vec<u64> = b.keys().copied().take(5).collect();
    for uid in &kept {
        assert_eq!(a.get(uid), b.get(uid), "UID {uid} was before the cut");
    }
    // The rest have no surviving record and UIDs at or below the last UID: re-appended
    // under new UIDs, bytes untouched, no flags, internal date from the file's mtime.
    let old_last = u64::from(last_uid(&before));
    let reappended = changes(&report, "user/joe", "re-appended");
    let lost: Vec<u64> = b.keys().copied().skip(5).collect();
    assert_eq!(reappended.len(), lost.len(), "{report:#}");
    for uid in &lost {
        assert!(!a.contains_key(uid), "UID {uid} reused for a message without a record");
        let new = uid_with_hash(&after, &b[uid].4).unwrap_or_else(|| panic!("content of UID {uid} lost"));
        assert!(new > old_last, "UID {uid} re-appended as {new}, not above {old_last}");
        assert!(a[&new].0.is_empty());
        assert_eq!((&a[&new].1, a[&new].2.as_str()), (&b[uid].1, "file-mtime"));
    }
    assert_eq!(u64::from(last_uid(&after)), uid_bound(&report, "user/joe", &before) + lost.len() as u64);
    assert_cache_names_records(&fx, D, "user/joe");
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn bit_flip_in_the_index_header_loses_nothing() {
    let fx = Fx::new();
    // With the change log.
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    flip(&dir.join("ms.index"), 44, 0);
    let err = fx.show_fails(D, "user/joe");
    assert!(err.contains("byte offset 0"), "{err}");
    fx.reconstruct(&[D, "user/joe"]).expect_code(1, "index header flip");
    assert_survived(&before, &fx.show(D, "user/joe"));
    // From the index alone: every field of the header region, records self-describing.
    for (i, off) in [0usize, 8, 16, 32, 40, 44, 48, 56, 64, 80, 124].into_iter().enumerate() {
        let name = format!("shared/flip{off}");
        let dir = fx.mailbox(D, &name, 6);
        fx.checkpoint(D, &name);
        let before = fx.show(D, &name);
        rm(&dir, "ms.log");
        flip(&dir.join("ms.index"), off, (i % 8) as u8);
        fx.reconstruct(&[D, &name]).expect_code(1, &format!("index header flip at {off}, no log"));
        assert_survived(&before, &fx.show(D, &name));
        assert_no_op(&fx, &[D, &name]);
    }
}

#[test]
fn bit_flip_in_one_index_record_loses_at_most_that_records_flags() {
    let fx = Fx::new();
    // With the change log: nothing lost.
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    flip(&dir.join("ms.index"), 128 + 3 * 128 + 60, 3);
    let err = fx.show_fails(D, "user/joe");
    assert!(err.contains(&format!("byte offset {}", 128 + 3 * 128)), "{err}");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "record flip");
    let report = r.json();
    let from_log = changes(&report, "user/joe", "record-from-log");
    assert!(from_log.iter().any(|c| c["uid"] == 4), "UID 4 recovered from the log: {from_log:?}");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);

    // From the index alone: only UID 4 (the fourth record) loses its flags.
    let dir = fx.mailbox(D, "user/mary", 8);
    fx.checkpoint(D, "user/mary");
    let before = fx.show(D, "user/mary");
    rm(&dir, "ms.log");
    flip(&dir.join("ms.index"), 128 + 3 * 128 + 60, 3);
    let r = fx.reconstruct(&[D, "user/mary", "--json"]);
    r.expect_code(1, "record flip, no log");
    let after = fx.show(D, "user/mary");
    let (b, a) = (essentials(&before), essentials(&after));
    for (uid, e) in &b {
        if *uid != 4 {
            assert_eq!(a.get(uid), Some(e), "UID {uid}");
        }
    }
    assert!(!a.contains_key(&4));
    let new = uid_with_hash(&after, &b[&4].4).expect("UID 4's message is still indexed");
    // With the log lost, UIDs up to the bound may have been given: re-appended above it.
    assert_eq!(new, uid_bound(&r.json(), "user/mary", &before) + 1);
    assert_eq!(changes(&r.json(), "user/mary", "re-appended").len(), 1);
    assert_no_op(&fx, &[D, "user/mary"]);
}

// ------------------------------------------------------------------- message files

#[test]
fn message_file_added_is_indexed_with_the_best_date_it_has() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 6);
    let before = fx.show(D, "user/joe");
    let last = last_uid(&before);
    let zone = DateTime { unix: 0, offset_minutes: 120 };
    let recv = DateTime { unix: 1_610_000_000, offset_minutes: 120 };
    let sent = DateTime { unix: 1_605_000_000, offset_minutes: -240 };
    // (UID, bytes, mtime, expected internal date, expected date source)
    let cases: Vec<(u32, Vec<u8>, i64, DateTime, &str)> = vec![
        (
            last + 1,
            bare_message(&format!("Date: {}\r\n", DateTime { unix: 1_600_000_000, ..zone }.to_rfc5322()), "mtime"),
            1_600_000_000,
            DateTime { unix: 1_600_000_000, ..zone },
            "file-mtime",
        ),
        (
            last + 2,
            bare_message(
                &format!("Received: by mx; {}\r\nDate: {}\r\n", recv.to_rfc5322(), sent.to_rfc5322()),
                "received",
            ),
            0,
            recv,
            "received",
        ),
        (
            last + 3,
            bare_message(&format!("Date: {}\r\n", sent.to_rfc5322()), "date"),
            now() + 30 * 86_400,
            sent,
            "date-header",
        ),
    ];
    for (uid, bytes, mtime, _, _) in &cases {
        let p = dir.join(format!("{uid}."));
        std::fs::write(&p, bytes).expect("write");
        set_mtime(&p, *mtime);
    }
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "messages added");
    let report = r.json();
    let added = changes(&report, "user/joe", "added");
    let after = fx.show(D, "user/joe");
    let a = essentials(&after);
    for (uid, bytes, _, date, source) in &cases {
        let e = a.get(&u64::from(*uid)).unwrap_or_else(|| panic!("UID {uid} not indexed"));
        assert!(e.0.is_empty());
        assert_eq!((e.1.as_str(), e.2.as_str()), (date.to_rfc3339().as_str(), *source), "UID {uid}");
        assert_eq!(e.4, hash_hex(bytes));
        let c = added.iter().find(|c| c["uid"] == *uid).unwrap_or_else(|| panic!("no 'added' for {uid}"));
        assert!(c["detail"].as_str().expect("detail").contains(source), "{c}");
    }
    assert_eq!(last_uid(&after), last + 3);
    for (uid, e) in essentials(&before) {
        assert_eq!(a.get(&uid), Some(&e), "UID {uid}");
    }
    assert_no_op(&fx, &[D, "user/joe"]);
    // UIDs only grow.
    let mut mb = fx.store.open_mailbox_locked(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
    let body = message_bytes("late", 1);
    let nm = NewMessage { bytes: &body, internal_date: None, system_flags: 0, user_flags: vec![] };
    assert_eq!(mb.append(&[nm]).expect("append"), vec![last + 4]);
}

#[test]
fn message_file_removed_drops_its_record_and_reports_its_flags() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    rm(&dir, "3.");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "message removed");
    let report = r.json();
    let dropped = changes(&report, "user/joe", "dropped-missing");
    assert_eq!(dropped.len(), 1, "{report:#}");
    assert_eq!(dropped[0]["uid"], 3);
    assert_eq!(dropped[0]["old"], json!(flags_of(&before, 3)));
    let after = fx.show(D, "user/joe");
    assert!(!essentials(&after).contains_key(&3));
    assert_eq!(last_uid(&after), last_uid(&before), "the last UID never goes down");
    for (uid, e) in essentials(&before) {
        if uid != 3 {
            assert_eq!(essentials(&after).get(&uid), Some(&e), "UID {uid}");
        }
    }
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn message_content_changed_under_the_same_uid_is_re_appended_without_the_old_flags() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    let last = last_uid(&before);
    assert!(!flags_of(&before, 5).is_empty() && !flags_of(&before, 6).is_empty());
    // A different size (and a new mtime).
    let new5 = message_bytes("someone else", 5);
    std::fs::write(dir.join("5."), &new5).expect("write");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "content changed");
    let report = r.json();
    let c = changes(&report, "user/joe", "content-changed");
    assert_eq!(c.len(), 1, "{report:#}");
    assert_eq!((&c[0]["uid"], &c[0]["old"]), (&json!(5), &json!(flags_of(&before, 5))));
    assert_eq!(report["mailboxes"][0]["counts"]["flags_lost"], 1);
    let after = fx.show(D, "user/joe");
    assert!(!essentials(&after).contains_key(&5));
    let new = uid_with_hash(&after, &hash_hex(&new5)).expect("new content indexed");
    assert_eq!(new, u64::from(last) + 1);
    assert!(essentials(&after)[&new].0.is_empty(), "old flags are not applied to other content");

    // Same size, same mtime: only a content check sees it.
    let p = dir.join("6.");
    let mut b = std::fs::read(&p).expect("read");
    let at = b.windows(5).position(|w| w == b"quick").expect("body text");
    b[at] = b'Q';
    std::fs::write(&p, &b).expect("write");
    set_mtime(&p, date_of(6).unix);
    let r = fx.reconstruct(&[D, "user/joe", "--verify-content", "--json"]);
    r.expect_code(1, "same-size change with --verify-content");
    let c = changes(&r.json(), "user/joe", "content-changed").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(c.len(), 1);
    assert_eq!((&c[0]["uid"], &c[0]["old"]), (&json!(6), &json!(flags_of(&before, 6))));
    let after = fx.show(D, "user/joe");
    assert_eq!(uid_with_hash(&after, &hash_hex(&b)), Some(u64::from(last) + 2));
    assert_cache_names_records(&fx, D, "user/joe");
    assert_no_op(&fx, &[D, "user/joe", "--verify-content"]);
}

#[test]
fn zero_length_files_are_reported_left_in_place_and_quarantined_on_request() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 8);
    let before = fx.show(D, "user/joe");
    let last = last_uid(&before);
    std::fs::write(dir.join("2."), b"").expect("empty 2.");
    let extra = format!("{}.", last + 1);
    std::fs::write(dir.join(&extra), b"").expect("empty new file");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(4, "empty files without --quarantine");
    let report = r.json();
    let dropped = changes(&report, "user/joe", "dropped-empty");
    assert_eq!(dropped.len(), 1);
    assert_eq!((&dropped[0]["uid"], &dropped[0]["old"]), (&json!(2), &json!(flags_of(&before, 2))));
    let problems = report["mailboxes"][0]["problems"].to_string();
    assert!(problems.contains("2.: empty message file") && problems.contains(&format!("{extra}: empty")), "{problems}");
    assert!(dir.join("2.").exists() && dir.join(&extra).exists(), "left in place");
    let after = fx.show(D, "user/joe");
    assert!(!essentials(&after).contains_key(&2) && !essentials(&after).contains_key(&u64::from(last + 1)));
    for (uid, e) in essentials(&before) {
        if uid != 2 {
            assert_eq!(essentials(&after).get(&uid), Some(&e), "UID {uid}");
        }
    }
    // Still unrepaired on the next run; --quarantine moves them aside.
    fx.reconstruct(&[D, "user/joe"]).expect_code(4, "empty files still there");
    let r = fx.reconstruct(&[D, "user/joe", "--quarantine"]);
    r.expect_code(1, "--quarantine");
    for f in ["2.", extra.as_str()] {
        assert!(!dir.join(f).exists(), "{f} still in the mailbox");
        assert_eq!(std::fs::metadata(dir.join("ms.quarantine").join(f)).expect("quarantined").len(), 0);
    }
    assert_survived(&after, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn stray_files_are_reported_then_quarantined() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 6);
    let before = fx.show(D, "user/joe");
    std::fs::write(dir.join("notes.txt"), b"not a message").expect("stray");
    std::fs::write(dir.join("ms.tmp.ms.index.999"), b"half a write").expect("temp");
    let r = fx.reconstruct(&[D, "user/joe"]);
    r.expect_code(4, "stray without --quarantine");
    assert!(r.stdout.contains("problem: notes.txt: stray file"), "{}", r.stdout);
    assert!(r.stdout.contains("problem: ms.tmp.ms.index.999: temporary file"), "{}", r.stdout);
    assert_eq!(std::fs::read(dir.join("notes.txt")).expect("left in place"), b"not a message");
    assert_survived(&before, &fx.show(D, "user/joe"));

    let r = fx.reconstruct(&[D, "user/joe", "--quarantine"]);
    r.expect_code(1, "--quarantine");
    assert!(!dir.join("notes.txt").exists() && !dir.join("ms.tmp.ms.index.999").exists());
    let q = dir.join("ms.quarantine");
    assert_eq!(std::fs::read(q.join("notes.txt")).expect("moved"), b"not a message");
    assert_eq!(std::fs::read(q.join("ms.tmp.ms.index.999")).expect("moved"), b"half a write");
    assert_survived(&before, &fx.show(D, "user/joe"));
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn uid_gaps_stay_and_a_file_in_a_gap_never_reuses_its_uid() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 10);
    {
        let mut mb = fx.store.open_mailbox_locked(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
        assert_eq!(mb.expunge(Some(&[4, 5, 6])).expect("expunge"), vec![4, 5, 6]);
        mb.checkpoint().expect("checkpoint");
    }
    let before = fx.show(D, "user/joe");
    assert_eq!(uids(&before), vec![1, 2, 3, 7, 8, 10]);
    rm(&dir, "ms.index");
    fx.reconstruct(&[D, "user/joe"]).expect_code(1, "index deleted");
    assert_survived(&before, &fx.show(D, "user/joe"));

    // A file appears in the gap (the compacted log no longer remembers the expunge).
    let stranger = message_bytes("stranger", 5);
    std::fs::write(dir.join("5."), &stranger).expect("write");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "file in a gap");
    assert_eq!(changes(&r.json(), "user/joe", "re-appended").len(), 1);
    let after = fx.show(D, "user/joe");
    assert_eq!(uids(&after), vec![1, 2, 3, 7, 8, 10, 11]);
    assert_eq!(uid_with_hash(&after, &hash_hex(&stranger)), Some(11));
    assert_cache_names_records(&fx, D, "user/joe");

    // An expunge the log still holds: the leftover file is moved aside, not indexed.
    let seven = std::fs::read(dir.join("7.")).expect("read 7.");
    {
        let mut mb = fx.store.open_mailbox_locked(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
        assert_eq!(mb.expunge(Some(&[7])).expect("expunge"), vec![7]);
    }
    std::fs::write(dir.join("7."), &seven).expect("restore 7.");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "leftover of an expunge");
    assert_eq!(changes(&r.json(), "user/joe", "expunged-leftover").len(), 1);
    assert_eq!(std::fs::read(dir.join("ms.quarantine/7.")).expect("moved aside"), seven);
    let after = fx.show(D, "user/joe");
    assert_eq!(uids(&after), vec![1, 2, 3, 8, 10, 11]);
    assert_eq!(last_uid(&after), 11);
    assert_no_op(&fx, &[D, "user/joe"]);
}

#[test]
fn a_file_above_the_last_uid_is_indexed_under_its_uid() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 6);
    let before = fx.show(D, "user/joe");
    let high = last_uid(&before) + 100;
    let bytes = message_bytes("high", 3);
    std::fs::write(dir.join(format!("{high}.")), &bytes).expect("write");
    let r = fx.reconstruct(&[D, "user/joe", "--json"]);
    r.expect_code(1, "UID above the last UID");
    let raised = changes(&r.json(), "user/joe", "last-uid-raised").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0]["new"], high);
    let after = fx.show(D, "user/joe");
    assert_eq!(last_uid(&after), high);
    assert_eq!(uid_with_hash(&after, &hash_hex(&bytes)), Some(u64::from(high)));
    for (uid, e) in essentials(&before) {
        assert_eq!(essentials(&after).get(&uid), Some(&e), "UID {uid}");
    }
    assert_no_op(&fx, &[D, "user/joe"]);
    let mut mb = fx.store.open_mailbox_locked(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
    let nm = NewMessage { bytes: &bytes, internal_date: None, system_flags: 0, user_flags: vec![] };
    assert_eq!(mb.append(&[nm]).expect("append"), vec![high + 1]);
}

// ------------------------------------------------------------------- selection

/// Delete the index of each mailbox, run `args`, and check that exactly `expect` were
/// repaired (and survived) while the others still fail `mstore show` with the fix.
fn repairs_exactly(fx: &Fx, all: &[(&str, &str)], args: &[&str], expect: &[(&str, &str)]) {
    let before: Vec<Value> = all.iter().map(|(d, n)| fx.show(d, n)).collect();
    for (d, n) in all {
        rm(&fx.dir(d, n), "ms.index");
    }
    let r = fx.reconstruct(args);
    r.expect_code(1, &format!("reconstruct {args:?}"));
    let repaired: Vec<&str> = r.mailbox_lines();
    let mut heads: Vec<String> = repaired.iter().map(|l| l.split(": ").next().expect("head").to_string()).collect();
    heads.sort();
    let mut want: Vec<String> = expect.iter().map(|(d, n)| format!("{d} {n}")).collect();
    want.sort();
    assert_eq!(heads, want, "{}", r.stdout);
    assert!(repaired.iter().all(|l| l.contains(": repaired: ")), "{}", r.stdout);
    for ((d, n), b) in all.iter().zip(&before) {
        if expect.contains(&(*d, *n)) {
            assert_survived(b, &fx.show(d, n));
        } else {
            let err = fx.show_fails(d, n);
            assert!(err.contains("reconstruct -f") && err.contains(n), "{d} {n}: {err}");
        }
    }
}

#[test]
fn recursive_over_nested_shared_folders() {
    let fx = Fx::new();
    let all = [
        (D, "admin"),
        (D, "admin/sub"),
        (D, "admin/sub/deeper"),
        (D, "admin/sub/deeper/deepest"),
        (D, "admin/other"),
        (D, "adminx"),
        (D, "administrators"),
        (D, "user/joe"),
        ("foo.com", "admin"),
        ("foo.com", "admin/sub"),
    ];
    for (i, (d, n)) in all.iter().enumerate() {
        fx.mailbox_on(d, n, 4 + i as u32 % 3, (i % 3 == 1).then_some("d2"));
    }
    repairs_exactly(
        &fx,
        &all,
        &["-r", D, "admin"],
        &[(D, "admin"), (D, "admin/sub"), (D, "admin/sub/deeper"), (D, "admin/sub/deeper/deepest"), (D, "admin/other")],
    );
    // A prefix that is not itself a mailbox.
    let fx = Fx::new();
    let all = [(D, "shared/a"), (D, "shared/a/b"), (D, "shared/c"), (D, "sharedx")];
    for (d, n) in all {
        fx.mailbox(d, n, 4);
    }
    repairs_exactly(&fx, &all, &["-r", D, "shared"], &[(D, "shared/a"), (D, "shared/a/b"), (D, "shared/c")]);
}

#[test]
fn user_inbox_is_not_recursive() {
    let fx = Fx::new();
    let all = [(D, "user/joe"), (D, "user/joe/pub"), (D, "user/joe/Sent"), (D, "user/joey"), ("foo.com", "user/joe")];
    for (d, n) in all {
        fx.mailbox(d, n, 4);
    }
    repairs_exactly(&fx, &all, &["-u", "joe", D, "INBOX"], &[(D, "user/joe")]);
}

#[test]
fn names_with_spaces_quotes_and_modified_utf7() {
    let fx = Fx::new();
    // (name as created, the IMAP name show reports)
    let names = [
        ("shared/with space", "shared/with space"),
        ("user/joe/Q3 \"final\" report (v2)", "user/joe/Q3 \"final\" report (v2)"),
        ("user/joe/it's $HOME; `x` | y &- z*", "user/joe/it's $HOME; `x` | y &- z*"),
        ("user/joe/Entwürfe", "user/joe/Entw&APw-rfe"),
        ("user/joe/Reisen &- Urlaub", "user/joe/Reisen &- Urlaub"),
        ("user/joe/日本語", "user/joe/&ZeVnLIqe-"),
        ("shared/100% a.b", "shared/100% a.b"),
    ];
    for (typed, _) in names {
        fx.mailbox(D, typed, 5);
    }
    for (typed, imap) in names {
        let before = fx.show(D, imap);
        assert_eq!(before["mailbox"], imap);
        // Through a shell, quoted as an administrator would: first as typed, then by its
        // IMAP name, then under -u joe without the user/joe/ prefix.
        let mut forms = vec![typed.to_string(), imap.to_string()];
        if let Some(rest) = imap.strip_prefix("user/joe/") {
            forms.push(format!("-u joe {D} {}", sh_quote(rest)));
        }
        for form in forms {
            rm(&fx.dir(D, imap), "ms.index");
            fx.show_fails(D, imap);
            let line = if form.starts_with("-u ") {
                format!("{} -f {} {form}", sh_quote(RECONSTRUCT), sh_quote(fx.conf.to_str().expect("utf-8")))
            } else {
                format!(
                    "{} -f {} {D} {}",
                    sh_quote(RECONSTRUCT),
                    sh_quote(fx.conf.to_str().expect("utf-8")),
                    sh_quote(&form)
                )
            };
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&line).env_remove("MS_CONF");
            let r = checked_run(fx.root(), cmd);
            r.expect_code(1, &line);
            assert_eq!(r.mailbox_lines().len(), 1, "{}", r.stdout);
            assert!(line_of(&r, D, imap).contains(": repaired: "), "{}", r.stdout);
            assert_survived(&before, &fx.show(D, imap));
        }
    }
    assert_no_op(&fx, &["-r", D]);
}

// ------------------------------------------------------------------- corpus-ext

/// Every file of `../shared/corpus-ext`; `None` where it is missing (see `support::require`).
fn corpus_ext_files(what: &str) -> Option<Vec<PathBuf>> {
    let ext = shared_corpus(what)?;
    let mut out = Vec::new();
    let mut stack = vec![ext];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".gitattributes") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn every_corpus_ext_message_is_indexable() {
    // Every non-empty file is a message to index (the few empty ones are Maildir markers;
    // an empty file is not a message: see `zero_length_files_...`).
    let Some(files) = corpus_ext_files("indexing every message of corpus-ext") else { return };
    let files: Vec<PathBuf> = files.into_iter().filter(|p| std::fs::metadata(p).expect("stat").len() > 0).collect();
    assert!(files.len() > 500, "only {} files in corpus-ext", files.len());
    let fx = Fx::new();
    // The same files appended through the store, with flags...
    let name = MailboxName::parse("shared/appended").expect("name");
    let mut mb = fx.store.create_mailbox(D, &name, Default::default()).expect("create");
    let bodies: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let batch: Vec<NewMessage<'_>> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| NewMessage {
            bytes: b,
            internal_date: Some(date_of(i as u32)),
            system_flags: system_flags_of(i as u32),
            user_flags: user_flags_of(i as u32),
        })
        .collect();
    mb.append(&batch).expect("append corpus-ext");
    drop(mb);
    // ...and dropped as bare message files into a directory no list knows.
    let root = fx.store.partition_root("d2").expect("partition");
    let raw = mstore::layout::mailbox_dir(root, D, &MailboxName::parse("shared/raw imports").expect("name"));
    std::fs::create_dir_all(&raw).expect("mkdir");
    for (i, b) in bodies.iter().enumerate() {
        std::fs::write(raw.join(format!("{}.", i + 1)), b).expect("write");
    }
    let appended = fx.show(D, "shared/appended");
    let dir = fx.dir(D, "shared/appended");
    for f in ["ms.header", "ms.index", "ms.cache"] {
        rm(&dir, f);
    }
    let r = fx.reconstruct(&["-r", D]);
    r.expect_code(1, "corpus-ext");
    assert!(line_of(&r, D, "shared/raw imports").contains(": repaired: "), "{}", r.stdout);
    assert!(r.stdout.contains("found on disk but missing from the mailbox list"), "{}", r.stdout);
    assert_survived(&appended, &fx.show(D, "shared/appended"));
    let rawshow = fx.show(D, "shared/raw imports");
    assert_eq!(rawshow["partition"], "d2");
    let (a, b) = (essentials(&appended), essentials(&rawshow));
    assert_eq!(b.len(), files.len());
    for (i, f) in files.iter().enumerate() {
        let uid = i as u64 + 1;
        let (x, y) = (&a[&uid], &b[&uid]);
        assert_eq!((y.3, &y.4), (bodies[i].len() as u64, &hash_hex(&bodies[i])), "{}", f.display());
        assert_eq!(y.5, x.5, "{}: the Date header derived as append derives it", f.display());
    }
    assert_cache_names_records(&fx, D, "shared/appended");
    assert_cache_names_records(&fx, D, "shared/raw imports");
    assert_no_op(&fx, &["-r", D, "--verify-content"]);
}

// ------------------------------------------------------------------- the guide's examples

#[test]
fn every_guide_example_works_verbatim_on_the_demo_store() {
    let fx = Fx::demo(600);
    let all: Vec<(String, String)> = fx.listed().into_iter().collect();
    assert_eq!(all.len(), 26, "{all:?}");
    let before: Vec<Value> = all.iter().map(|(d, n)| fx.show(d, n)).collect();
    let bin_dir = Path::new(RECONSTRUCT).parent().expect("bin dir");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let guide_run = |line: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(line).env("MS_CONF", &fx.conf).env("PATH", &path);
        checked_run(fx.root(), cmd)
    };
    type Pick = fn(&str, &str) -> bool;
    let examples: [(&str, Pick); 7] = [
        ("reconstruct -r example.com", |d, _| d == "example.com"),
        ("reconstruct -r -u joe example.com", |d, n| {
            d == "example.com" && (n == "user/joe" || n.starts_with("user/joe/"))
        }),
        ("reconstruct -u joe example.com INBOX", |d, n| d == "example.com" && n == "user/joe"),
        ("reconstruct -r -u joe example.com pub", |d, n| {
            d == "example.com" && (n == "user/joe/pub" || n.starts_with("user/joe/pub/"))
        }),
        ("reconstruct foo.com admin", |d, n| d == "foo.com" && n == "admin"),
        ("reconstruct -r example.com admin", |d, n| d == "example.com" && (n == "admin" || n.starts_with("admin/"))),
        ("reconstruct -r esys.ca \"user/foobar\"", |d, n| {
            d == "esys.ca" && (n == "user/foobar" || n.starts_with("user/foobar/"))
        }),
    ];
    // On the healthy demo every example changes nothing (the listing cache aside).
    let snap = || fx.tree_but_listings();
    let snapshot = snap();
    for (line, _) in &examples {
        let r = guide_run(line);
        r.expect_code(0, line);
        assert!(r.stdout.contains("nothing to do") && !r.stdout.contains("repaired"), "{line}:\n{}", r.stdout);
    }
    assert_same_tree(&snapshot, &snap(), "the guide's examples on a healthy store");

    let expected_counts = [18, 7, 1, 4, 1, 4, 5];
    for ((line, pick), count) in examples.iter().zip(expected_counts) {
        let want: Vec<&(String, String)> = all.iter().filter(|(d, n)| pick(d, n)).collect();
        assert_eq!(want.len(), count, "{line}: {want:?}");
        for (d, n) in &all {
            flip(&fx.dir(d, n).join("ms.index"), 48, 0);
        }
        let r = guide_run(line);
        r.expect_code(1, line);
        let mut got: Vec<String> = r.mailbox_lines().iter().map(|l| l.to_string()).collect();
        got.sort();
        let mut expect: Vec<String> = want.iter().map(|(d, n)| format!("{d} {n}: repaired: ")).collect();
        expect.sort();
        assert_eq!(got.len(), expect.len(), "{line}:\n{}", r.stdout);
        for (g, e) in got.iter().zip(&expect) {
            assert!(g.starts_with(e.as_str()), "{line}: {g:?} is not {e:?}\n{}", r.stdout);
        }
        for ((d, n), b) in all.iter().zip(&before) {
            if pick(d, n) {
                assert_survived(b, &fx.show(d, n));
            } else {
                let err = fx.show_fails(d, n);
                assert!(err.contains("reconstruct -f") && err.contains("byte offset 0"), "{line}: {d} {n}: {err}");
            }
        }
        // Repair the rest before the next example.
        for d in ["example.com", "foo.com", "esys.ca"] {
            let all_done = all.iter().filter(|(x, _)| x == d).all(|(x, n)| pick(x, n));
            guide_run(&format!("reconstruct -r {d}")).expect_code(if all_done { 0 } else { 1 }, d);
        }
        for ((d, n), b) in all.iter().zip(&before) {
            assert_survived(b, &fx.show(d, n));
        }
    }
}

/// Not in the guide: `reconstruct -r` without a domain rebuilds every domain of the store
/// in one run (one pipeline), and reports each domain as its own run would, then the store.
#[test]
fn reconstruct_r_without_a_domain_rebuilds_every_domain_in_one_run() {
    let fx = Fx::demo(600);
    let all: Vec<(String, String)> = fx.listed().into_iter().collect();
    let domains = ["esys.ca", "example.com", "foo.com"];
    assert!(domains.iter().all(|d| all.iter().any(|(x, _)| x == d)), "{all:?}");
    let before: Vec<Value> = all.iter().map(|(d, n)| fx.show(d, n)).collect();

    // No domain and no -r: the usage (a domain is required), nothing runs.
    let r = fx.reconstruct(&[]);
    r.expect_code(8, "no domain, no -r");
    assert!(r.stderr.contains("required") && r.stderr.contains("<domain>"), "{}", r.stderr);
    // -u names a user of one domain.
    let r = fx.reconstruct(&["-r", "-u", "joe"]);
    assert_ne!(r.code, 0, "-u without a domain:\n{}", r.stdout);
    assert!(r.stderr.contains("<domain>"), "{}", r.stderr);

    // A healthy store: nothing to do, every domain reported, nothing written.
    let snapshot = fx.tree_but_listings();
    let r = fx.reconstruct(&["-r"]);
    r.expect_code(0, "healthy store");
    for d in domains {
        assert!(r.stdout.contains(&format!("reconstruct: {d}: nothing to do")), "{d}:\n{}", r.stdout);
    }
    let total = format!("reconstruct: the whole store: 3 domain(s), {} mailbox(es): 0 repaired, 0 failed", all.len());
    assert!(r.stdout.contains(&total), "{}", r.stdout);
    assert_same_tree(&snapshot, &fx.tree_but_listings(), "reconstruct -r on a healthy store");

    // Every index damaged, and one cache gone in each domain.
    for (d, n) in &all {
        flip(&fx.dir(d, n).join("ms.index"), 48, 0);
    }
    for d in domains {
        let (_, n) = all.iter().find(|(x, _)| x == d).expect("a mailbox");
        std::fs::remove_file(fx.dir(d, n).join("ms.cache")).expect("remove cache");
    }
    let damaged = fx.tree_but_listings();
    let r = fx.reconstruct(&["-r", "-n"]);
    r.expect_code(4, "dry run");
    assert!(r.stdout.contains(&format!("{} would be repaired", all.len())), "{}", r.stdout);
    assert_same_tree(&damaged, &fx.tree_but_listings(), "a dry run writes nothing");

    let r = fx.reconstruct(&["-r", "--json"]);
    r.expect_code(1, "whole store, repaired");
    let j = r.json();
    let reported: Vec<&Value> = j["domains"].as_array().expect("domains").iter().collect();
    let names: Vec<&str> = reported.iter().map(|d| d["domain"].as_str().expect("domain")).collect();
    assert_eq!(names, domains, "{j:#}");
    let mut got: Vec<(String, String)> = Vec::new();
    for d in &reported {
        for m in d["mailboxes"].as_array().expect("mailboxes") {
            assert_eq!(m["status"], "repaired", "{m:#}");
            got.push((d["domain"].as_str().expect("domain").into(), m["mailbox"].as_str().expect("name").into()));
        }
    }
    got.sort();
    assert_eq!(got, all, "every mailbox of every domain, once");
    assert_eq!(j["errors"].as_array().map(Vec::len), Some(0), "{j:#}");
    for ((d, n), b) in all.iter().zip(&before) {
        assert_survived(b, &fx.show(d, n));
        assert_cache_names_records(&fx, d, n);
    }
    fx.reconstruct(&["-r"]).expect_code(0, "a second run");
    let v = fx.mstore(&["verify"]);
    v.expect_code(0, "verify after the whole-store run");
}

// ------------------------------------------------------------------- runs and statuses

#[test]
fn a_healthy_store_is_left_alone() {
    let fx = Fx::new();
    // Mailboxes whose latest changes are only in the change log (no checkpoint since).
    fx.mailbox(D, "user/joe", 9);
    fx.mailbox(D, "user/joe/pub", 5);
    fx.mailbox_on(D, "user/bob", 6, Some("d2"));
    fx.mailbox(D, "shared/Q3 \"final\" report", 4);
    fx.mailbox("foo.com", "admin", 7);
    fx.checkpoint("foo.com", "admin");
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(0, "healthy store --json");
    for m in r.json()["mailboxes"].as_array().expect("mailboxes") {
        assert_eq!(m["status"], "unchanged", "{m:#}");
        assert_eq!(m["changes"], json!([]), "{m:#}");
        assert_eq!(m["counts"]["rebuilt"], 0, "{m:#}");
        assert_eq!(m["counts"]["kept"], m["messages"], "{m:#}");
    }
    assert_no_op(&fx, &["-r", D]);
    assert_no_op(&fx, &["-r", "foo.com"]);
    assert_no_op(&fx, &["-r", D, "--verify-content"]);
    assert_no_op(&fx, &["-u", "joe", D, "INBOX"]);
    assert_no_op(&fx, &["--quarantine", D, "user/bob"]);
}

#[test]
fn dry_run_writes_nothing_but_reports() {
    let fx = Fx::new();
    let joe = fx.mailbox(D, "user/joe", 6);
    let mary = fx.mailbox(D, "user/mary", 6);
    let bob = fx.mailbox(D, "user/bob", 6);
    fx.mailbox(D, "user/ann", 6);
    fx.mailbox(D, "admin", 5);
    rm(&joe, "ms.index");
    rm(&mary, "ms.header");
    rm(&mary, "ms.cache");
    std::fs::write(bob.join("stray.txt"), b"x").expect("stray");
    std::fs::write(bob.join("9."), message_bytes("new", 9)).expect("new file");
    fx.unregister(D, "user/ann");
    let snapshot = tree(fx.root());
    for flag in ["-n", "--dry-run"] {
        for extra in [None, Some("--quarantine"), Some("--verify-content")] {
            let mut args = vec![flag, "-r", D];
            args.extend(extra);
            let r = fx.reconstruct(&args);
            r.expect_code(4, &format!("{args:?}"));
            for n in ["user/joe", "user/mary", "user/bob", "user/ann"] {
                assert!(line_of(&r, D, n).contains(": would repair: "), "{n}:\n{}", r.stdout);
            }
            assert!(line_of(&r, D, "admin").contains(": unchanged ("), "{}", r.stdout);
            assert!(r.stdout.contains("dry run") && r.stdout.contains("nothing was written"), "{}", r.stdout);
            assert!(r.stdout.contains("stray.txt"), "{}", r.stdout);
            assert_same_tree(&snapshot, &tree(fx.root()), &format!("{args:?}"));
        }
    }
    let j = fx.reconstruct(&["-n", "-r", D, "--json"]);
    assert_eq!(j.json()["dry_run"], true);
    assert!(!fx.listed().contains(&(D.to_string(), "user/ann".to_string())));
    // The real run, then a dry run finds nothing.
    fx.reconstruct(&["-r", D, "--quarantine"]).expect_code(1, "repair");
    let r = fx.reconstruct(&["-n", "-r", D]);
    r.expect_code(0, "dry run after the repair");
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
}

#[test]
fn exit_statuses() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 5);
    fx.mailbox(D, "admin", 5);
    // 0: nothing to do.
    fx.reconstruct(&["-r", D]).expect_code(0, "healthy");
    // 1: repaired.
    rm(&dir, "ms.index");
    fx.reconstruct(&["-r", D]).expect_code(1, "repaired");
    // 4: left unrepaired (a stray without --quarantine; a dry run with changes).
    std::fs::write(dir.join("README.old"), b"x").expect("stray");
    fx.reconstruct(&["-r", D]).expect_code(4, "stray");
    fx.reconstruct(&["-r", D, "--quarantine"]).expect_code(1, "stray quarantined");
    rm(&dir, "ms.cache");
    fx.reconstruct(&["-n", "-r", D]).expect_code(4, "dry run with changes");
    fx.reconstruct(&["-r", D]).expect_code(1, "repaired");
    // 8: failed (a mailbox that does not exist, a bad configuration, bad usage), and the
    // other arguments are still processed.
    rm(&dir, "ms.index");
    let r = fx.reconstruct(&[D, "user/nobody", "user/joe"]);
    r.expect_code(8, "unknown mailbox");
    assert!(r.stdout.contains("no mailbox user/nobody"), "{}", r.stdout);
    assert!(line_of(&r, D, "user/joe").contains(": repaired: "), "{}", r.stdout);
    let bad = fx.root().join("bad.conf");
    std::fs::write(&bad, "ms-path: ms\nnonsense line\n").expect("write");
    let o = Command::new(RECONSTRUCT)
        .args(["-f", bad.to_str().expect("utf-8"), "-r", D])
        .env_remove("MS_CONF")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:2:", bad.display())), "{err}");
    for args in [&[][..], &["--no-such-option", D][..], &["-r", D, "-j"][..]] {
        let o = Command::new(RECONSTRUCT).args(args).env_remove("MS_CONF").output().expect("run");
        assert_eq!(o.status.code(), Some(8), "reconstruct {args:?}: bad usage is status 8");
        assert!(!o.stderr.is_empty(), "reconstruct {args:?}: says why");
    }
    let o = Command::new(RECONSTRUCT).arg("--help").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "--help");
}

#[test]
fn a_mailbox_missing_from_the_list_is_reported_and_registered_again() {
    let fx = Fx::new();
    fx.mailbox(D, "user/joe", 5);
    fx.mailbox(D, "user/joe/Archive", 7);
    fx.mailbox_on(D, "shared/lost", 5, Some("d2"));
    let archive = fx.show(D, "user/joe/Archive");
    let lost = fx.show(D, "shared/lost");
    fx.unregister(D, "user/joe/Archive");
    fx.unregister(D, "shared/lost");
    assert!(!fx.listed().contains(&(D.to_string(), "user/joe/Archive".to_string())));
    // By name, without -r.
    let r = fx.reconstruct(&[D, "shared/lost"]);
    r.expect_code(1, "unlisted mailbox by name");
    assert!(r.stdout.contains("found on disk but missing from the mailbox list"), "{}", r.stdout);
    // The whole domain.
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(1, "unlisted mailbox");
    let report = r.json();
    assert_eq!(changes(&report, "user/joe/Archive", "registered").len(), 1, "{report:#}");
    assert!(changes(&report, "user/joe", "registered").is_empty());
    let listed = fx.listed();
    assert!(listed.contains(&(D.to_string(), "user/joe/Archive".to_string())), "{listed:?}");
    assert!(listed.contains(&(D.to_string(), "shared/lost".to_string())), "{listed:?}");
    assert_survived(&archive, &fx.show(D, "user/joe/Archive"));
    let after = fx.show(D, "shared/lost");
    assert_eq!(after["partition"], "d2");
    assert_survived(&lost, &after);
    let ls = fx.mstore(&["ls", D, "--json"]).json();
    let e = ls.as_array().expect("array").iter().find(|e| e["mailbox"] == "user/joe/Archive").expect("listed");
    assert_eq!((&e["uid_validity"], &e["unique_id"]), (&archive["uid_validity"], &archive["unique_id"]));
    assert_no_op(&fx, &["-r", D]);
}

// ------------------------------------------------------------------- listing cache

/// The listing cache of a domain (`formats/listings.md`).
fn listing_cache(fx: &Fx, domain: &str) -> PathBuf {
    fx.root().join("ms/listings").join(domain)
}

/// The cached entry of `dir`, if any.
fn cached(fx: &Fx, dir: &Path) -> Option<mstore::codec::listings::DirListing> {
    let bytes = std::fs::read(listing_cache(fx, D)).ok()?;
    let l = mstore::codec::listings::decode(&bytes).expect("listing cache decodes");
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir).expect("stat"));
    l.entries.into_iter().find(|(e, _)| e.ino == ino).map(|(_, d)| d)
}

/// Wait until every directory is older than the listing cache's quiet period (two seconds,
/// `formats/listings.md`).
fn let_directories_settle() {
    std::thread::sleep(std::time::Duration::from_millis(2300));
}

#[test]
fn listing_cache_records_only_quiet_directories_and_never_hides_a_change() {
    let fx = Fx::new();
    let joe = fx.mailbox(D, "user/joe", 6);
    let sent = fx.mailbox(D, "user/joe/Sent", 5);
    fx.reconstruct(&["-r", D]);
    // Directories changed a moment ago are not recorded (a change in the same tick would
    // not move their times).
    assert!(cached(&fx, &joe).is_none());
    let_directories_settle();
    // -n reads the cache but never writes it.
    fx.reconstruct(&["-n", "-r", D]).expect_code(0, "dry run on a healthy store");
    assert!(!listing_cache(&fx, D).exists(), "-n wrote the listing cache");
    fx.reconstruct(&["-r", D]).expect_code(0, "healthy store");
    let entry = cached(&fx, &joe).expect("user/joe recorded");
    assert_eq!(entry.messages, uids(&fx.show(D, "user/joe")).iter().map(|&u| u as u32).collect::<Vec<_>>());
    assert_eq!(entry.subdirs, ["Sent"]);
    assert!(cached(&fx, &sent).is_some());
    // The next run uses it and writes nothing at all.
    assert_no_op(&fx, &["-r", D]);

    // A file added to a cached directory changes its times: listed again, indexed.
    let last = last_uid(&fx.show(D, "user/joe"));
    let added = bare_message("Subject: late\r\n", "late");
    std::fs::write(joe.join(format!("{}.", last + 1)), &added).expect("write");
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(1, "file added to a cached directory");
    let report = r.json();
    assert_eq!(changes(&report, "user/joe", "added")[0]["uid"], last + 1, "{report:#}");

    // A message file truncated in place leaves its directory alone: the cached listing is
    // used, and the per-file statx still sees the change.
    assert!(cached(&fx, &sent).is_some());
    let before = fx.show(D, "user/joe/Sent");
    std::fs::write(sent.join("2."), b"Subject: cut\r\n\r\n").expect("truncate in place");
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(1, "file truncated in a cached directory");
    let c = changes(&r.json(), "user/joe/Sent", "content-changed").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(c.len(), 1, "{}", r.stdout);
    assert_eq!((&c[0]["uid"], &c[0]["old"]), (&json!(2), &json!(flags_of(&before, 2))));
}

#[test]
fn a_wrong_or_damaged_listing_cache_costs_no_record() {
    let fx = Fx::new();
    let joe = fx.mailbox(D, "user/joe", 6);
    let_directories_settle();
    fx.reconstruct(&["-r", D]);
    fx.reconstruct(&["-r", D]).expect_code(0, "healthy store");
    let path = listing_cache(&fx, D);
    let before = fx.show(D, "user/joe");

    // A cache that (wrongly) lacks a message of a directory whose times it still matches:
    // the planner sees the listing disagree with the index, lists again, and drops nothing.
    let mut l = mstore::codec::listings::decode(&std::fs::read(&path).expect("read")).expect("decode");
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&joe).expect("stat"));
    let e = l.entries.iter_mut().find(|(e, _)| e.ino == ino).expect("user/joe cached");
    e.1.messages.retain(|&u| u != 2);
    std::fs::write(&path, mstore::codec::listings::encode(&l)).expect("write");
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(0, "a wrong cached listing");
    assert!(changes(&r.json(), "user/joe", "dropped-missing").is_empty(), "{}", r.stdout);
    assert_eq!(essentials(&fx.show(D, "user/joe")), essentials(&before));

    // Garbage: ignored, and replaced by a good file.
    let garbage = b"MSLISTNG\x01\x00 not a listing cache";
    std::fs::write(&path, garbage).expect("write");
    fx.reconstruct(&["-n", "-r", D]).expect_code(0, "garbage listing cache, dry run");
    assert_eq!(std::fs::read(&path).expect("read"), garbage, "-n rewrote the listing cache");
    fx.reconstruct(&["-r", D]).expect_code(0, "garbage listing cache");
    let back = mstore::codec::listings::decode(&std::fs::read(&path).expect("read")).expect("rewritten");
    assert!(back.entries.iter().any(|(e, _)| e.ino == ino));
    assert_eq!(essentials(&fx.show(D, "user/joe")), essentials(&before));
}

// ------------------------------------------------------------------- bad input

/// The unprivileged runtime user of the permission tests (the one CI creates), created
/// here if missing; `Err` with the reason when there is none and this process is root
/// (see [`no_test_user`]). `Ok(None)`: not root, so this process itself is unprivileged.
fn test_user() -> Result<Option<String>, String> {
    let name = "mstest";
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let exists = |n: &str| Command::new("id").arg(n).output().is_ok_and(|o| o.status.success());
    if !exists(name) {
        let o = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", name])
            .output()
            .map_err(|e| format!("useradd: {e}"))?;
        // Another test process may have created it meanwhile.
        if !o.status.success() && !exists(name) {
            return Err(format!("useradd {name} failed: {}", String::from_utf8_lossy(&o.stderr)));
        }
    }
    Ok(Some(name.to_string()))
}

/// Root, but no unprivileged user could be made: say what was not run (or fail in CI).
fn no_test_user(why: &str) {
    require(Need::Root, false, "the assertions as an unprivileged runtime user", why);
}

/// Make `u` the store's runtime user and owner of all of it.
fn hand_store_to(fx: &Fx, u: &str) {
    let conf = std::fs::read_to_string(&fx.conf).expect("read ms.conf");
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("runtime-"))
        .map(|l| format!("{l}\n"))
        .chain([format!("runtime-user: {u}\nruntime-group: {u}\n")])
        .collect();
    std::fs::write(&fx.conf, conf).expect("write ms.conf");
    let st = Command::new("chown").args(["-R", &format!("{u}:{u}")]).arg(fx.root()).status().expect("chown");
    assert!(st.success(), "chown -R {u}:{u}");
}

#[test]
fn a_healthy_mailbox_is_only_read_even_where_nothing_could_be_written() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/joe", 20);
    let user = match test_user() {
        Ok(u) => u,
        Err(why) => return no_test_user(&why),
    };
    if let Some(u) = &user {
        hand_store_to(&fx, u);
    }
    // Every store file read-only: a no-op must not even open one for writing.
    for f in ["ms.header", "ms.index", "ms.cache", "ms.log"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o444)).expect("chmod");
    }
    let r = fx.reconstruct(&[D, "user/joe"]);
    r.expect_code(0, "healthy mailbox with read-only files");
    assert!(line_of(&r, D, "user/joe").contains("unchanged"), "{}", r.stdout);
}

#[test]
fn the_listing_cache_is_the_runtime_users_and_failing_to_write_it_is_only_a_note() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fx = Fx::new();
    fx.mailbox(D, "user/joe", 6);
    let user = match test_user() {
        Ok(u) => u,
        Err(why) => return no_test_user(&why),
    };
    if let Some(u) = &user {
        hand_store_to(&fx, u);
    }
    let owner = std::fs::metadata(fx.root().join("ms")).expect("ms-path").uid();
    let_directories_settle();
    fx.reconstruct(&["-r", D]).expect_code(0, "healthy store");
    let cache = listing_cache(&fx, D);
    let m = std::fs::metadata(&cache).expect("listing cache written");
    assert_eq!((m.uid(), m.mode() & 0o777), (owner, 0o640), "written as the runtime user, not world-readable");

    // The runtime user cannot write it: the run is still a clean no-op, with a note
    // naming the file.
    let listings = cache.parent().expect("listings dir").to_path_buf();
    std::fs::remove_file(&cache).expect("remove");
    std::fs::set_permissions(&listings, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let r = fx.reconstruct(&["-r", D]);
    let _ = std::fs::set_permissions(&listings, std::fs::Permissions::from_mode(0o750));
    r.expect_code(0, "listing cache not writable");
    let note = r.stdout.lines().find(|l| l.starts_with("note: ")).unwrap_or_else(|| panic!("no note:\n{}", r.stdout));
    assert!(note.contains(&cache.display().to_string()) && note.contains("not written"), "{note}");
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
}

#[test]
fn bad_input_is_named_by_path_and_offset_and_other_mailboxes_are_still_processed() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::new();
    let names = ["admin", "user/joe", "user/joe/pub", "user/joe/pub/deep", "user/mary", "user/zed"];
    for n in names {
        fx.mailbox(D, n, 5);
    }
    let before: Vec<Value> = names.iter().map(|n| fx.show(D, n)).collect();
    let garbage: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let admin_index = fx.dir(D, "admin").join("ms.index");
    std::fs::write(&admin_index, &garbage).expect("garbage index");
    let mary_header = fx.dir(D, "user/mary").join("ms.header");
    std::fs::write(&mary_header, &garbage[..200]).expect("garbage header");
    let zed_index = fx.dir(D, "user/zed").join("ms.index");
    flip(&zed_index, 128 + 128 + 7, 1);
    rm(&fx.dir(D, "user/joe"), "ms.index");

    let r = fx.reconstruct(&["-r", D]);
    r.expect_code(1, "garbage files");
    for (path, offset) in [(&admin_index, 0), (&mary_header, 0), (&zed_index, 256)] {
        let want = path.display().to_string();
        let line =
            r.stdout.lines().find(|l| l.contains(&want)).unwrap_or_else(|| panic!("{want} not named:\n{}", r.stdout));
        assert!(line.contains(&format!("byte offset {offset}")), "{line}");
    }
    for (n, b) in names.iter().zip(&before) {
        assert_survived(b, &fx.show(D, n));
    }

    // An unreadable mailbox directory: that mailbox fails (named, with its path), every
    // other mailbox is still processed. As root the store is handed to an unprivileged
    // runtime user, to which reconstruct switches before touching anything (root could
    // read a mode 000 directory).
    let user = match test_user() {
        Ok(u) => u,
        Err(why) => return no_test_user(&why),
    };
    if let Some(u) = &user {
        hand_store_to(&fx, u);
    }
    for n in ["admin", "user/joe", "user/mary"] {
        rm(&fx.dir(D, n), "ms.index");
    }
    let pub_dir = fx.dir(D, "user/joe/pub");
    std::fs::set_permissions(&pub_dir, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    if user.is_none() && std::fs::read_dir(&pub_dir).is_ok() {
        std::fs::set_permissions(&pub_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
        require(
            Need::Root,
            false,
            "the unreadable-directory assertions",
            "this process is not root yet reads a mode 000 directory",
        );
        return;
    }
    let r = fx.reconstruct(&["-r", D]);
    std::fs::set_permissions(&pub_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    r.expect_code(8, "unreadable directory");
    let failed = line_of(&r, D, "user/joe/pub");
    assert!(failed.contains("FAILED") && failed.contains(&pub_dir.display().to_string()), "{}", r.stdout);
    assert!(failed.to_lowercase().contains("permission"), "{failed}");
    // Below it: failed too, and not taken for a missing directory to recreate.
    let deep = line_of(&r, D, "user/joe/pub/deep");
    assert!(deep.contains("FAILED") && deep.contains("permission denied") && !deep.contains("recreat"), "{deep}");
    // The walk of the partition says which directory it could not list.
    let note = r.stdout.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no note:\n{}", r.stdout));
    assert!(note.contains(&pub_dir.display().to_string()) && note.contains("permission denied"), "{note}");
    for n in ["admin", "user/joe", "user/mary"] {
        assert!(line_of(&r, D, n).contains(": repaired: "), "{n}:\n{}", r.stdout);
    }
    for (n, b) in names.iter().zip(&before) {
        if *n != "user/joe/pub" && *n != "user/joe/pub/deep" {
            assert_survived(b, &fx.show(D, n));
        }
    }
}

// ------------------------------------------------------------------- several domains

#[test]
fn several_domains_in_one_run_are_each_reported_as_their_own_run() {
    use mstore::reconstruct::{NoProgress, Options, Selection, run_many};
    let fx = Fx::new();
    let joe = fx.mailbox("a.example", "user/joe", 6);
    let mary = fx.mailbox("b.example", "user/mary", 5);
    let gone = fx.mailbox("b.example", "shared/gone", 4);
    let (joe_before, mary_before) = (fx.show("a.example", "user/joe"), fx.show("b.example", "user/mary"));
    std::fs::remove_file(joe.join("ms.index")).expect("lose joe's index");
    std::fs::remove_file(mary.join("ms.cache")).expect("lose mary's cache");
    std::fs::remove_dir_all(&gone).expect("lose a whole mailbox directory");

    let whole = |d: &str| Selection { domain: d.into(), recursive: true, ..Default::default() };
    let runs = run_many(
        &fx.store,
        vec![
            (whole("a.example"), Default::default()),
            (whole("bad/domain"), Default::default()),
            (whole("b.example"), Default::default()),
        ],
        &Options::default(),
        &NoProgress,
    )
    .expect("one pipeline");
    assert_eq!(runs.len(), 3, "one result per selection, in order");
    assert!(runs[1].is_err(), "a selection that cannot be resolved fails alone");
    let a = serde_json::to_value(runs[0].as_ref().expect("a.example")).expect("json");
    let b = serde_json::to_value(runs[2].as_ref().expect("b.example")).expect("json");
    assert_eq!(a["domain"], "a.example");
    assert_eq!(b["domain"], "b.example");
    let status = |r: &Value, name: &str| {
        let m = r["mailboxes"].as_array().expect("mailboxes").iter().find(|m| m["mailbox"] == name).cloned();
        m.unwrap_or_else(|| panic!("{name} not in {r:#}"))["status"].clone()
    };
    assert_eq!(status(&a, "user/joe"), "repaired", "{a:#}");
    assert_eq!(a["mailboxes"].as_array().expect("mailboxes").len(), 1, "only a.example's mailboxes: {a:#}");
    assert_eq!(status(&b, "user/mary"), "repaired", "{b:#}");
    assert_eq!(status(&b, "shared/gone"), "repaired", "the lost directory is recreated: {b:#}");
    assert!(gone.is_dir(), "recreated after the pipeline");

    // Each mailbox is what its own run would have made of it, and each domain is consistent.
    assert_eq!(essentials(&fx.show("a.example", "user/joe")), essentials(&joe_before));
    assert_eq!(essentials(&fx.show("b.example", "user/mary")), essentials(&mary_before));
    assert_no_op(&fx, &["-r", "a.example"]);
    assert_no_op(&fx, &["-r", "b.example"]);
}

// ------------------------------------------------------------------- future dates

#[test]
fn internal_dates_in_the_future_are_not_forced_on_file_mtimes_run_after_run() {
    let fx = Fx::new();
    let joe = fx.mailbox(D, "user/joe", 5);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    // Ten years ahead (any file system holds it), and the year 3000 (past ext4's 2446: the
    // mtime is clamped, so setting it back could never succeed).
    let dates = [now + 10 * 365 * 86_400, 32_503_680_000];
    {
        let mut mb = fx.store.open_mailbox_locked(D, &MailboxName::parse("user/joe").expect("name")).expect("open");
        let bodies: Vec<Vec<u8>> = (0..2).map(|i| bare_message(&format!("Subject: later {i}\r\n"), "later")).collect();
        let batch: Vec<NewMessage<'_>> = bodies
            .iter()
            .zip(dates)
            .map(|(b, d)| NewMessage {
                bytes: b,
                internal_date: Some(DateTime { unix: d, offset_minutes: 0 }),
                system_flags: 0,
                user_flags: vec![],
            })
            .collect();
        mb.append(&batch).expect("append");
    }
    let before = fx.show(D, "user/joe");
    // The first run may set what it can; from then on nothing is left to do.
    fx.reconstruct(&["-r", D]);
    let r = fx.reconstruct(&["-r", D, "--json"]);
    r.expect_code(0, "a store whose dates lie in the future");
    assert!(changes(&r.json(), "user/joe", "mtime-restored").is_empty(), "{}", r.stdout);
    assert_eq!(essentials(&fx.show(D, "user/joe")), essentials(&before), "the dates are kept");
    let v = fx.mstore(&["verify", D, "--json"]);
    assert!(!v.stdout.contains("message-mtime"), "verify reports what no repair can change: {}", v.stdout);
    assert!(joe.is_dir());
}

// ------------------------------------------------------------------- large mailboxes

/// What survived, the report's changes (kind, UID) and the mailbox directory's files.
type Rebuilt = (Essentials, Vec<(String, Option<u64>)>, Vec<String>);

/// A mailbox of `n` messages whose index and cache are lost, three of its message files
/// gone (in different chunks of the log's records) and one file added: rebuilt with the
/// files' outcomes kept in memory or set aside in a file (`spill_at`), the log's records
/// let go of as the merge passes them. What survives, what the report says, and what the
/// directory holds afterwards.
fn rebuild_large(n: u32, spill_at: Option<usize>) -> Rebuilt {
    use mstore::reconstruct::{NoProgress, Options, Selection, run_many};
    let fx = Fx::new();
    let dir = fx.mailbox(D, "user/big", n);
    let before = fx.show(D, "user/big");
    rm(&dir, "ms.index");
    rm(&dir, "ms.cache");
    let gone = [3, n / 2, n - 2];
    for uid in gone {
        rm(&dir, &format!("{uid}."));
    }
    let added = dir.join(format!("{}.", n + 5));
    std::fs::write(&added, message_bytes("added", 1)).expect("add a message file");
    set_mtime(&added, 1_700_000_000);
    let sel = Selection { domain: D.into(), recursive: true, ..Default::default() };
    let opts = Options { spill_at, all_changes: true, ..Options::default() };
    let runs = run_many(&fx.store, vec![(sel, Default::default())], &opts, &NoProgress).expect("one pipeline");
    let report = serde_json::to_value(runs[0].as_ref().expect("the domain")).expect("json");
    let mailbox = &report["mailboxes"][0];
    assert_eq!(mailbox["status"], "repaired", "{mailbox:#}");
    let changes: Vec<(String, Option<u64>)> = mailbox["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["what"].as_str().expect("what").to_string(), c["uid"].as_u64()))
        .collect();
    for uid in gone {
        assert!(
            changes.contains(&("dropped-missing".into(), Some(uid as u64))),
            "{uid}. reported dropped: {changes:?}"
        );
    }
    let after = fx.show(D, "user/big");
    let (b, a) = (essentials(&before), essentials(&after));
    for (uid, e) in &b {
        if gone.contains(&(*uid as u32)) {
            assert!(!a.contains_key(uid), "{uid}. is gone");
        } else {
            assert_eq!(a.get(uid), Some(e), "UID {uid}: flags, dates, size and hash from the log and the file");
        }
    }
    assert_eq!(a.len(), b.len() - gone.len() + 1, "the added file is indexed");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with('.'))
        .collect();
    names.sort();
    assert_no_op(&fx, &[D, "user/big"]);
    (a, changes, names)
}

#[test]
fn a_large_mailbox_is_rebuilt_the_same_with_its_outcomes_in_memory_or_set_aside() {
    // 17,000 messages: the log's records span three chunks, released as the merge goes.
    let n = 17_000;
    let (mem, mem_changes, mem_names) = rebuild_large(n, Some(usize::MAX));
    let (file, file_changes, file_names) = rebuild_large(n, Some(0));
    // The two fixtures differ only in their random identities (not compared here).
    let strip = |e: Essentials| e.into_iter().map(|(u, (f, d, s, z, h, _))| (u, (f, d, s, z, h))).collect::<Vec<_>>();
    let (mem, file) = (strip(mem), strip(file));
    let differ: Vec<_> = mem.iter().zip(&file).filter(|(a, b)| a != b).take(3).collect();
    assert!(
        differ.is_empty() && mem.len() == file.len(),
        "{} and {} messages; first differences: {differ:?}",
        mem.len(),
        file.len()
    );
    assert_eq!(mem_changes, file_changes);
    assert_eq!(mem_names, file_names, "nothing left beside the mailbox's own files: {file_names:?}");
    assert_eq!(file_names, ["ms.cache", "ms.header", "ms.index", "ms.log"]);
}
