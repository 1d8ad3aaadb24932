//! Every finding kind of `mstore verify` (issue 14): a test damages a store to produce it,
//! checks its kind, path and offset, runs the exact fix printed (through the shell, with
//! this build's binaries first on PATH), checks that verify is then clean, and that
//! `show --json` kept every flag and internal date but those the damage itself destroyed.
//!
//! Kinds not here: `message-unreadable` and `directory-unreadable` (only a permission
//! problem makes them, and their fix is the doctor's; `tests/verify.rs` has the owner and
//! permission cases), `partition` (a mailbox list entry naming a partition that ms.conf
//! lacks: the fix is an edit of ms.conf, not a command), `db-unreadable` and `db-damage`
//! (the database checks failing to run, and an interrupted install: `tests/db_cli.rs`).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mstore::layout::MailboxName;
use serde_json::Value;
use support::*;

const D: &str = "example.com";
const JOE: &str = "user/joe";
const MARY: &str = "user/mary";

/// What a case expects of verify.
struct Expect {
    kind: &'static str,
    /// The finding's path.
    path: PathBuf,
    /// Its byte offset (`None`: the finding has none).
    offset: Option<u64>,
    /// Other kinds the same damage may also show.
    also: &'static [&'static str],
    /// Messages the damage itself destroyed (mailbox, UID): their flags and dates are not
    /// checked afterwards.
    lost: Vec<(&'static str, u64)>,
    /// Whether verify can scan at all (a database it cannot open: exit 8).
    exit: i32,
    /// Kinds a fix may leave behind, with a fix of their own (run once).
    then: &'static [&'static str],
}

impl Expect {
    fn new(kind: &'static str, path: PathBuf, offset: Option<u64>) -> Expect {
        Expect { kind, path, offset, also: &[], lost: vec![], exit: 4, then: &[] }
    }
}

fn verify(fx: &Fx) -> (i32, Vec<Value>) {
    let r = fx.mstore(&["verify", "--json", "--no-progress"]);
    let j: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("verify JSON: {e}\n{}\n{}", r.stdout, r.stderr));
    (r.code, j["findings"].as_array().expect("findings").clone())
}

/// A repair that worked: 0 or 1; `msdb_repair` also 2 and 3 (the rung that repaired).
fn fix_succeeded(fix: &str, code: i32) -> bool {
    code == 0 || code == 1 || (fix.starts_with("msdb_repair") && (code == 2 || code == 3))
}

fn run_fix(fx: &Fx, fix: &str) -> Run {
    let bin_dir = Path::new(RECONSTRUCT).parent().expect("bin dir");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(fix).env("PATH", path).env_remove("MS_CONF");
    checked_run(fx.root(), cmd)
}

/// (flags, internal date) of every message of a `show --json`, by content hash.
fn by_hash(show: &Value) -> BTreeMap<String, (Vec<String>, String)> {
    essentials(show).into_values().map(|e| (e.4, (e.0, e.1))).collect()
}

/// The store of every case: joe with changes only his log holds (flags on 2 and 3, `\Seen`
/// off 1, 7 expunged), mary checkpointed (her log is one compaction).
fn run_case(damage: impl FnOnce(&Fx) -> Expect) {
    run_case_after(|_| {}, damage)
}

/// [`run_case`] with changes made by `prepare` before the state to keep is taken.
fn run_case_after(prepare: impl FnOnce(&Fx), damage: impl FnOnce(&Fx) -> Expect) {
    let fx = Fx::new();
    fx.mailbox(D, JOE, 8);
    fx.mailbox(D, MARY, 6);
    fx.checkpoint(D, MARY);
    prepare(&fx);
    let before: Vec<Value> = [JOE, MARY].iter().map(|n| fx.show(D, n)).collect();
    let e = damage(&fx);

    let (code, findings) = verify(&fx);
    assert_eq!(code, e.exit, "{}: verify exit\n{findings:#?}", e.kind);
    let hit = findings
        .iter()
        .find(|f| f["kind"] == e.kind)
        .unwrap_or_else(|| panic!("no {} finding in {findings:#?}", e.kind));
    for f in &findings {
        let k = f["kind"].as_str().expect("kind");
        assert!(k == e.kind || e.also.contains(&k), "{}: unexpected {k} finding: {f:#}", e.kind);
    }
    assert_eq!(hit["path"].as_str(), Some(e.path.to_str().expect("utf-8")), "{}: path: {hit:#}", e.kind);
    assert_eq!(hit["offset"].as_u64(), e.offset, "{}: offset: {hit:#}", e.kind);
    let fix = hit["fix"].as_str().unwrap_or_else(|| panic!("{}: no fix printed: {hit:#}", e.kind));
    // The fix of this finding, then those of the others the same damage caused, each once.
    let mut fixes = vec![fix];
    for f in &findings {
        let other = f["fix"].as_str().unwrap_or_else(|| panic!("{}: no fix printed: {f:#}", e.kind));
        if !fixes.contains(&other) {
            fixes.push(other);
        }
    }
    let mut r = None;
    for fix in fixes {
        let out = run_fix(&fx, fix);
        assert!(
            fix_succeeded(fix, out.code),
            "{}: the fix {fix:?} exited {}\n{}\n{}",
            e.kind,
            out.code,
            out.stdout,
            out.stderr
        );
        r.get_or_insert(out);
    }
    let r = r.expect("a fix ran");
    // A repair may leave a consequence with its own fix (a database salvage that lost a
    // registration leaves a mailbox not registered; a repair that dropped a record leaves
    // its loss in the ledger until acknowledged): those run too, once.
    let (_, left) = verify(&fx);
    let mut then: Vec<&str> = left.iter().filter_map(|f| f["fix"].as_str()).collect();
    then.dedup();
    for f in &left {
        let k = f["kind"].as_str().unwrap_or_default();
        let expected = e.then.contains(&k) || (k == "messages-lost" && !e.lost.is_empty());
        assert!(expected, "{}: after the fix, {left:#?}", e.kind);
    }
    for fix in then {
        let out = run_fix(&fx, fix);
        assert!(
            fix_succeeded(fix, out.code),
            "{}: then {fix:?} exited {}\n{}\n{}",
            e.kind,
            out.code,
            out.stdout,
            out.stderr
        );
    }
    let (code, after) = verify(&fx);
    assert!(
        after.is_empty() && code == 0,
        "{}: after the printed fix {fix:?}, verify says {after:#?}\nthe fix said:\n{}",
        e.kind,
        r.stdout
    );
    for (name, b) in [JOE, MARY].iter().zip(&before) {
        let now = fx.show(D, name);
        let now = by_hash(&now);
        for (uid, m) in essentials(b) {
            if e.lost.contains(&(*name, uid)) {
                continue;
            }
            assert_eq!(
                now.get(&m.4),
                Some(&(m.0.clone(), m.1.clone())),
                "{}: {name} UID {uid}: flags and date",
                e.kind
            );
        }
    }
}

fn dir(fx: &Fx, name: &str) -> PathBuf {
    fx.dir(D, name)
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).expect("read");
    f(&mut b);
    std::fs::write(path, b).expect("write");
}

// ------------------------------------------------------------------- header

#[test]
fn header_corrupt() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.header");
        rewrite(&p, |b| {
            let n = b.len();
            b[n - 6] ^= 0x20; // inside the flag names: the fixed part survives
        });
        Expect::new("header-corrupt", p, Some(0))
    });
}

#[test]
fn header_missing() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.header");
        std::fs::remove_file(&p).expect("rm");
        Expect::new("header-missing", p, None)
    });
}

#[test]
fn header_name() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.header");
        let mut h = mstore::codec::header::MailboxHeader::decode(&std::fs::read(&p).expect("read")).expect("header");
        h.name = "user/someone-else".into();
        std::fs::write(&p, h.encode()).expect("write");
        Expect::new("header-name", p, None)
    });
}

#[test]
fn list_mismatch() {
    run_case(|fx| {
        let mut e = fx.store.entry(D, &MailboxName::parse(MARY).expect("name")).expect("entry");
        e.uid_validity += 1;
        fx.store.mailbox_list().change(&[e], &[]).expect("change list");
        Expect::new("list-mismatch", dir(fx, MARY).join("ms.header"), None)
    });
}

#[test]
fn not_registered() {
    run_case(|fx| {
        fx.unregister(D, MARY);
        Expect::new("not-registered", dir_on_disk(fx, MARY), None)
    });
}

fn dir_on_disk(fx: &Fx, name: &str) -> PathBuf {
    fx.store.config().partitions["default"].join(D).join(name)
}

#[test]
fn directory_missing() {
    run_case(|fx| {
        let d = dir(fx, MARY);
        std::fs::rename(&d, fx.root().join("mary-elsewhere")).expect("move away");
        let mut e = Expect::new("directory-missing", d, None);
        e.lost = (1..=6).map(|u| (MARY, u)).collect();
        e.then = &["mailbox-recreated"];
        e
    });
}

// ------------------------------------------------------------------- index

#[test]
fn index_missing() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.index");
        std::fs::remove_file(&p).expect("rm");
        Expect::new("index-missing", p, None)
    });
}

#[test]
fn index_header_corrupt() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.index");
        rewrite(&p, |b| b[40] ^= 1);
        Expect::new("index-header-corrupt", p, Some(0))
    });
}

#[test]
fn index_record_corrupt() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.index");
        rewrite(&p, |b| b[128 + 2 * 128 + 9] ^= 4);
        Expect::new("index-record-corrupt", p, Some(128 + 2 * 128))
    });
}

#[test]
fn index_truncated() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.index");
        rewrite(&p, |b| b.truncate(128 + 3 * 128 + 50));
        Expect::new("index-truncated", p, Some(128 + 3 * 128))
    });
}

#[test]
fn index_corrupt() {
    run_case(|fx| {
        // Every record and the header's checksum hold, but its count does not fit.
        let p = dir(fx, MARY).join("ms.index");
        rewrite(&p, |b| {
            let n = u32::from_le_bytes(b[48..52].try_into().expect("4")) + 1;
            b[48..52].copy_from_slice(&n.to_le_bytes());
            let c = crc32c::crc32c(&b[..124]);
            b[124..128].copy_from_slice(&c.to_le_bytes());
        });
        Expect::new("index-corrupt", p, Some(48))
    });
}

#[test]
fn mailbox_inconsistent() {
    let saved = std::cell::RefCell::new(Vec::new());
    let prepare = |fx: &Fx| {
        *saved.borrow_mut() = std::fs::read(dir(fx, MARY).join("ms.index")).expect("index");
        fx.mstore(&["flags", D, MARY, "1", "+$Later"]).expect_code(0, "flags");
        fx.checkpoint(D, MARY);
    };
    run_case_after(prepare, |fx| {
        // An index from before the last checkpoint put back: each file verifies alone.
        let d = dir(fx, MARY);
        let old = saved.take();
        std::fs::write(d.join("ms.index"), old).expect("old index back");
        Expect::new("mailbox-inconsistent", d.join("ms.index"), None)
    });
}

// ------------------------------------------------------------------- change log

#[test]
fn log_missing() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.log");
        std::fs::remove_file(&p).expect("rm");
        Expect::new("log-missing", p, None)
    });
}

#[test]
fn log_corrupt() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.log");
        let mut at = 0;
        rewrite(&p, |b| {
            // Inside the third MESSAGE record: records follow it.
            at = b.len() - 3 * 144 - 100;
            b[at] ^= 0x40;
        });
        let start = (at - 64) as u64; // where that record's change starts: a whole record
        let mut e = Expect::new("log-corrupt", p, None);
        // The damaged change starts at a record boundary at or before the flipped byte.
        let (_, f) = verify(fx);
        let off = f.iter().find(|f| f["kind"] == "log-corrupt").and_then(|f| f["offset"].as_u64());
        assert!(off.is_some_and(|o| o <= at as u64 && o + 200 > start), "{f:#?}");
        e.offset = off;
        e
    });
}

#[test]
fn log_short() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("ms.log");
        let mut at = 0;
        rewrite(&p, |b| {
            // Cut where the last two MESSAGE records start.
            at = b.len() - 2 * 144;
            b.truncate(at);
        });
        Expect::new("log-short", p, Some(at as u64))
    });
}

#[test]
fn log_altered() {
    run_case(|fx| {
        // The checkpoint's last record replaced by another valid one of the same length.
        let p = dir(fx, MARY).join("ms.log");
        let b = std::fs::read(&p).expect("read");
        let scan = mstore::codec::changelog::scan(&b).expect("scan");
        let (off, seq, rec) = scan.records.last().expect("records").clone();
        let mstore::codec::changelog::LogRecord::Message(mut m) = rec else { panic!("last record is a message") };
        m.system_flags.0 ^= mstore::flags::SystemFlags::DRAFT;
        let mut out = b[..off as usize].to_vec();
        mstore::codec::changelog::encode_record(
            &mut out,
            &scan.header.unique_id,
            seq,
            &mstore::codec::changelog::LogRecord::Message(m),
        );
        assert_eq!(out.len(), b.len());
        std::fs::write(&p, &out).expect("write");
        Expect::new("log-altered", p, Some(b.len() as u64))
    });
}

#[test]
fn log_torn_tail() {
    run_case(|fx| {
        // The expunge (joe's last change) damaged: past what index and header saw.
        let p = dir(fx, JOE).join("ms.log");
        let mut n = 0;
        rewrite(&p, |b| {
            n = b.len();
            b[n - 8] ^= 1;
        });
        let mut e = Expect::new("log-torn-tail", p, Some((n - 36) as u64));
        // The expunge not applied, UID 7 is back in the state while its file is gone; the
        // repair drops its record, which the loss ledger keeps until acknowledged.
        e.also = &["message-missing"];
        e.then = &["messages-lost"];
        e
    });
}

// ------------------------------------------------------------------- cache

#[test]
fn cache_corrupt() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.cache");
        rewrite(&p, |b| b[20] ^= 2);
        Expect::new("cache-corrupt", p, Some(0))
    });
}

#[test]
fn cache_record_corrupt() {
    run_case(|fx| {
        let d = dir(fx, MARY);
        let mb = fx.store.open_mailbox(D, &MailboxName::parse(MARY).expect("name")).expect("open");
        let r = mb.records()[2];
        rewrite(&d.join("ms.cache"), |b| b[r.cache_offset as usize + 30] ^= 8);
        Expect::new("cache-record-corrupt", d.join("ms.cache"), Some(r.cache_offset))
    });
}

// ------------------------------------------------------------------- message files

#[test]
fn message_missing() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("5.");
        std::fs::remove_file(&p).expect("rm");
        let mut e = Expect::new("message-missing", p, None);
        e.lost = vec![(JOE, 5)];
        e
    });
}

#[test]
fn message_extra() {
    run_case(|fx| {
        let d = dir(fx, JOE);
        std::fs::write(d.join("50."), message_bytes("extra", 50)).expect("write");
        Expect::new("message-extra", d.join("50."), None)
    });
}

#[test]
fn message_empty() {
    run_case(|fx| {
        let d = dir(fx, JOE);
        std::fs::write(d.join("50."), b"").expect("write");
        Expect::new("message-empty", d.join("50."), None)
    });
}

#[test]
fn message_size() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("4.");
        let mtime = std::fs::metadata(&p).expect("stat").modified().expect("mtime");
        rewrite(&p, |b| b.extend_from_slice(b"appended\r\n"));
        std::fs::File::options().write(true).open(&p).expect("open").set_modified(mtime).expect("mtime");
        let mut e = Expect::new("message-size", p, None);
        e.lost = vec![(MARY, 4)];
        e
    });
}

#[test]
fn message_emptied() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("4.");
        std::fs::write(&p, b"").expect("empty it");
        let mut e = Expect::new("message-size", p, None);
        e.lost = vec![(MARY, 4)];
        e
    });
}

#[test]
fn message_content() {
    run_case(|fx| {
        let p = dir(fx, MARY).join("3.");
        let mtime = std::fs::metadata(&p).expect("stat").modified().expect("mtime");
        rewrite(&p, |b| b[100] ^= 1);
        std::fs::File::options().write(true).open(&p).expect("open").set_modified(mtime).expect("mtime");
        let mut e = Expect::new("message-content", p, None);
        e.lost = vec![(MARY, 3)];
        e
    });
}

#[test]
fn message_mtime() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("6.");
        set_mtime(&p, 1_000_000_000);
        Expect::new("message-mtime", p, None)
    });
}

#[test]
fn stray_file() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("notes.txt");
        std::fs::write(&p, b"not mail").expect("write");
        Expect::new("stray-file", p, None)
    });
}

#[test]
fn temp_file() {
    run_case(|fx| {
        let p = dir(fx, JOE).join("ms.tmp.ms.index.4711");
        std::fs::write(&p, b"half an index").expect("write");
        Expect::new("temp-file", p, None)
    });
}

#[test]
fn owner() {
    if !support::root("chown a message file to another user") {
        return;
    }
    run_case(|fx| {
        let p = dir(fx, JOE).join("3.");
        std::os::unix::fs::lchown(&p, Some(4242), Some(4242)).expect("chown");
        Expect::new("owner", p, None)
    });
}

// ------------------------------------------------------------------- databases

/// The last segment of the transaction log.
fn last_segment(fx: &Fx) -> PathBuf {
    let home = &fx.store.config().database_path;
    let mut segs: Vec<PathBuf> = std::fs::read_dir(home)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")))
        .collect();
    segs.sort();
    segs.pop().expect("a log segment")
}

#[test]
fn db_log_torn_tail() {
    run_case(|fx| {
        let p = last_segment(fx);
        let len = std::fs::metadata(&p).expect("stat").len();
        std::fs::File::options().write(true).open(&p).expect("open").set_len(len - 5).expect("cut");
        let mut e = Expect::new("db-log-torn-tail", p, None);
        // The torn transaction was mary's registration (the last one): it was never
        // acknowledged, and reconstruct registers her again.
        e.also = &["not-registered"];
        let (_, f) = verify(fx);
        e.offset = f.iter().find(|f| f["kind"] == e.kind).and_then(|f| f["offset"].as_u64());
        assert!(e.offset.is_some_and(|o| o < len), "{f:#?}");
        e
    });
}

#[test]
fn db_log_corrupt() {
    run_case(|fx| {
        // A byte flipped in the first transaction: every later one is past the damage.
        let home = fx.store.config().database_path.clone();
        let mut segs: Vec<PathBuf> = std::fs::read_dir(&home)
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")))
            .collect();
        segs.sort();
        let p = segs[0].clone();
        rewrite(&p, |b| b[100] ^= 0x10);
        // The log cannot be replayed: nothing else can be scanned (exit 8). The damage is
        // reported where the damaged record starts (the first, at the segment's header).
        let _ = home;
        let mut e = Expect::new("db-corrupt", p, Some(64));
        e.exit = 8;
        e.then = &["not-registered"];
        e
    });
}

#[test]
fn db_snapshot() {
    run_case(|fx| {
        // Snapshots are written by a checkpoint (msdb_recover writes one).
        let home = fx.store.config().database_path.clone();
        let bin = Path::new(RECONSTRUCT).with_file_name("msdb_recover");
        let o = std::process::Command::new(bin).arg("-f").arg(&fx.conf).env_remove("MS_CONF").output().expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let p = home.join("mailboxes.db");
        rewrite(&p, |b| b[80] ^= 1);
        // The mailbox list cannot be opened: nothing else can be scanned (exit 8).
        let mut e = Expect::new("db-corrupt", p, Some(64));
        e.exit = 8;
        e.then = &["not-registered"];
        e
    });
}
