//! Shared fixtures of the reconstruct integration tests (`tests/reconstruct.rs`,
//! `tests/reconstruct_props.rs`): a store with `fsync: no` in a temporary directory,
//! mailboxes of known messages, flags and dates built through the library, runs of the real
//! `reconstruct` and `mstore` binaries, and the invariants every run is checked against
//! (no panic; no message file deleted or modified, only renamed within its mailbox or moved
//! into its `ms.quarantine/`).
//!
//! Each test crate uses a part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

mod require;
#[allow(unused_imports)]
pub use require::{Missing, Need, decide, require, root, shared_corpus};

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mstore::config::Config;
use mstore::flags::SystemFlags;
use mstore::layout::{self, EntryKind, MailboxName};
use mstore::message::DateTime;
use mstore::store::{CreateOptions, FlagOp, NewMessage, Store};
use serde_json::Value;

/// The `reconstruct` binary under test.
pub const RECONSTRUCT: &str = env!("CARGO_BIN_EXE_reconstruct");
/// The `mstore` binary under test.
pub const MSTORE: &str = env!("CARGO_BIN_EXE_mstore");

/// One finished run of a binary.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Assert the exit status, showing both outputs when it differs.
    pub fn expect_code(&self, code: i32, what: &str) -> &Run {
        assert_eq!(
            self.code, code,
            "{what}: exit status {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// The per-mailbox report lines (`DOMAIN NAME: status...`) of a human-readable run.
    pub fn mailbox_lines(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| !l.starts_with(' ') && !l.starts_with("reconstruct:")).collect()
    }
}

/// Internal date of the `i`-th generated message (its `Date:` header carries the same
/// instant and zone, its `Received:` header a minute later).
pub fn date_of(i: u32) -> DateTime {
    const ZONES: [i16; 5] = [0, 60, -300, 330, 120];
    DateTime { unix: 1_650_000_000 + i64::from(i) * 86_400 + i64::from(i) * 37, offset_minutes: ZONES[i as usize % 5] }
}

/// System flags of the `i`-th generated message.
pub fn system_flags_of(i: u32) -> u32 {
    const S: [u32; 7] = [
        SystemFlags::SEEN,
        SystemFlags::SEEN | SystemFlags::ANSWERED,
        SystemFlags::FLAGGED,
        0,
        SystemFlags::SEEN | SystemFlags::FLAGGED | SystemFlags::DRAFT,
        SystemFlags::SEEN | SystemFlags::DELETED,
        SystemFlags::ANSWERED,
    ];
    S[i as usize % S.len()]
}

/// User flags of the `i`-th generated message.
pub fn user_flags_of(i: u32) -> Vec<String> {
    let v: &[&str] = match i % 5 {
        0 => &["$Work"],
        1 => &["$Junk", "Later"],
        2 => &[],
        3 => &["Later"],
        _ => &["$Work", "$Important"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// The bytes of the `i`-th generated message of mailbox `tag` (distinct per tag and `i`;
/// sizes vary).
pub fn message_bytes(tag: &str, i: u32) -> Vec<u8> {
    let d = date_of(i);
    let received = DateTime { unix: d.unix + 60, offset_minutes: d.offset_minutes };
    let mut m = format!(
        "Received: from mx.example.com by mail.example.com with ESMTP id {i:x};\r\n\t{}\r\n\
         Date: {}\r\nFrom: Sender {i} <s{i}@example.com>\r\nTo: joe@example.com\r\n\
         Subject: message {i} of {tag}\r\nMessage-ID: <{i}.{}@example.com>\r\n\r\n",
        received.to_rfc5322(),
        d.to_rfc5322(),
        tag.len()
    );
    for line in 0..(3 + i % 11) {
        m += &format!("line {line} of message {i} in {tag}: the quick brown fox\r\n");
    }
    m.into_bytes()
}

/// A message with only the headers given (for date fallbacks).
pub fn bare_message(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}From: x@example.com\r\nSubject: bare\r\n\r\n{body}\r\n").into_bytes()
}

/// A store in a temporary directory: `ms.conf` with `fsync: no`, partitions `default` and
/// `d2`.
pub struct Fx {
    tmp: tempfile::TempDir,
    /// The configuration file.
    pub conf: PathBuf,
    /// The store, open.
    pub store: Store,
}

impl Fx {
    /// A new, empty store.
    pub fn new() -> Fx {
        let tmp = tempfile::tempdir().expect("tempdir");
        let conf = tmp.path().join("ms.conf");
        // The runtime user is whoever runs the tests (root in CI): no privilege switch.
        let (user, group) = mstore::cli::current_user_and_group();
        let text = format!(
            "ms-path: ms\npartition-default: ms/spool\npartition-d2: d2\nfsync: no\nthreads: 2\n\
             runtime-user: {user}\nruntime-group: {group}\n"
        );
        std::fs::write(&conf, text).expect("write ms.conf");
        let store = Store::init(Config::load(&conf).expect("config")).expect("init store");
        Fx { tmp, conf, store }
    }

    /// The temporary directory holding everything.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Create `domain`/`name` with `n` generated messages (UIDs 1..=n, flags and dates from
    /// [`system_flags_of`], [`user_flags_of`], [`date_of`]), checkpoint it, then make
    /// changes that only the change log holds: `\Flagged $Tail` added to UIDs 2 and 3,
    /// `\Seen` removed from UID 1 and UID `n - 1` expunged.
    pub fn mailbox(&self, domain: &str, name: &str, n: u32) -> PathBuf {
        self.mailbox_on(domain, name, n, None)
    }

    /// [`Fx::mailbox`] on a given partition.
    pub fn mailbox_on(&self, domain: &str, name: &str, n: u32, partition: Option<&str>) -> PathBuf {
        assert!(n >= 4, "fixture mailboxes have at least 4 messages");
        let mname = MailboxName::parse(name).expect("mailbox name");
        let opts = CreateOptions { partition: partition.map(str::to_string), ..CreateOptions::default() };
        let mut mb = self.store.create_mailbox(domain, &mname, opts).expect("create mailbox");
        let bodies: Vec<Vec<u8>> = (1..=n).map(|i| message_bytes(name, i)).collect();
        let batch: Vec<NewMessage<'_>> = bodies
            .iter()
            .zip(1..=n)
            .map(|(b, i)| NewMessage {
                bytes: b,
                internal_date: Some(date_of(i)),
                system_flags: system_flags_of(i),
                user_flags: user_flags_of(i),
            })
            .collect();
        let uids = mb.append(&batch).expect("append");
        assert_eq!(uids, (1..=n).collect::<Vec<_>>());
        mb.checkpoint().expect("checkpoint");
        mb.store_flags(&[2, 3], FlagOp::Add, SystemFlags::FLAGGED, &["$Tail".to_string()]).expect("flags");
        mb.store_flags(&[1], FlagOp::Remove, SystemFlags::SEEN, &[]).expect("flags");
        assert_eq!(mb.expunge(Some(&[n - 1])).expect("expunge"), vec![n - 1]);
        mb.place().dir.clone()
    }

    /// Write a checkpoint (index and compacted log) of a mailbox: afterwards the index
    /// alone holds its whole state.
    pub fn checkpoint(&self, domain: &str, name: &str) {
        let mname = MailboxName::parse(name).expect("mailbox name");
        let mut mb = self.store.open_mailbox_locked(domain, &mname).expect("open");
        mb.checkpoint().expect("checkpoint");
    }

    /// Directory of a registered mailbox.
    pub fn dir(&self, domain: &str, name: &str) -> PathBuf {
        let mname = MailboxName::parse(name).expect("mailbox name");
        let e = self.store.entry(domain, &mname).expect("registered");
        self.store.place(&e).expect("place").dir
    }

    /// Remove a mailbox from the mailbox list, leaving its files.
    pub fn unregister(&self, domain: &str, name: &str) {
        let mname = MailboxName::parse(name).expect("mailbox name");
        self.store.mailbox_list().change(&[], &[(domain.to_string(), mname)]).expect("unregister");
    }

    /// `reconstruct -f CONF ARGS...`, checked against the run invariants.
    pub fn reconstruct(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(RECONSTRUCT);
        cmd.arg("-f").arg(&self.conf).args(args).env_remove("MS_CONF");
        checked_run(self.root(), cmd)
    }

    /// `mstore show --json` of a mailbox (must succeed).
    pub fn show(&self, domain: &str, name: &str) -> Value {
        let r = self.mstore(&["show", domain, name, "--json"]);
        r.expect_code(0, &format!("mstore show {domain} {name}"));
        r.json()
    }

    /// `mstore show` of a mailbox that must fail; returns its standard error.
    pub fn show_fails(&self, domain: &str, name: &str) -> String {
        let r = self.mstore(&["show", domain, name, "--json"]);
        assert_ne!(r.code, 0, "mstore show {domain} {name} succeeded on a damaged mailbox:\n{}", r.stdout);
        r.stderr
    }

    /// `mstore -f CONF ARGS...`.
    pub fn mstore(&self, args: &[&str]) -> Run {
        let o = Command::new(MSTORE)
            .arg("-f")
            .arg(&self.conf)
            .args(args)
            .env_remove("MS_CONF")
            .output()
            .expect("run mstore");
        let r = Run::from(o);
        assert!(!r.stderr.contains("panicked"), "mstore {args:?} panicked:\n{}", r.stderr);
        r
    }

    /// `(domain, name)` of every registered mailbox, by `mstore ls --json`.
    pub fn listed(&self) -> BTreeSet<(String, String)> {
        listed(&self.mstore(&["ls", "--json"]))
    }
}

/// Parse `mstore ls --json`.
pub fn listed(r: &Run) -> BTreeSet<(String, String)> {
    r.expect_code(0, "mstore ls --json");
    r.json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (e["domain"].as_str().expect("domain").to_string(), e["mailbox"].as_str().expect("mailbox").to_string())
        })
        .collect()
}

/// Run a command and check the invariants of every reconstruct run over the tree at `root`:
/// it does not panic or die of a signal, and no message file is deleted or modified.
pub fn checked_run(root: &Path, mut cmd: Command) -> Run {
    let before = message_files(root);
    let out = cmd.output().expect("run reconstruct");
    let r = Run::from(out);
    assert!(r.code >= 0, "killed by a signal: {cmd:?}\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{cmd:?} panicked:\n{}", r.stderr);
    let after = message_files(root);
    assert_messages_kept(&before, &after, &r);
    r
}

/// Every message file (`<uid>.`) below `root`, quarantined ones included: path → BLAKE3.
pub fn message_files(root: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && matches!(layout::classify(e.file_name().as_encoded_bytes()), EntryKind::Message(_))
            {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.insert(e.path(), *blake3::hash(&b).as_bytes());
                }
            }
        }
    }
    out
}

/// Each message file before a run is still there with the same bytes, or was renamed to a
/// new name in its own directory or its `ms.quarantine/` (each new file accounts for one
/// old file only).
pub fn assert_messages_kept(before: &BTreeMap<PathBuf, [u8; 32]>, after: &BTreeMap<PathBuf, [u8; 32]>, r: &Run) {
    let mut fresh: Vec<(&PathBuf, &[u8; 32])> = after.iter().filter(|(p, _)| !before.contains_key(*p)).collect();
    for (p, h) in before {
        match after.get(p) {
            Some(a) if a == h => continue,
            Some(_) => panic!("{} was modified by reconstruct\nstdout:\n{}", p.display(), r.stdout),
            None => {
                let dir = p.parent().expect("parent");
                let pos = fresh.iter().position(|(q, qh)| {
                    *qh == h && (q.parent() == Some(dir) || q.parent() == Some(&dir.join(layout::QUARANTINE_DIR)))
                });
                match pos {
                    Some(i) => {
                        fresh.swap_remove(i);
                    }
                    None => panic!(
                        "{} is gone after reconstruct (not renamed, not quarantined)\nstdout:\n{}\nstderr:\n{}",
                        p.display(),
                        r.stdout,
                        r.stderr
                    ),
                }
            }
        }
    }
}

/// Every file and directory below `root` with its size, mtime (ns) and BLAKE3 (files).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, (u64, i64, Option<[u8; 32]>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let m = std::fs::symlink_metadata(e.path()).expect("stat");
            let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
            if m.is_dir() {
                stack.push(e.path());
                out.insert(e.path(), (0, mtime, None));
            } else {
                let b = std::fs::read(e.path()).expect("read");
                out.insert(e.path(), (m.len(), mtime, Some(*blake3::hash(&b).as_bytes())));
            }
        }
    }
    out
}

impl Fx {
    /// [`tree`] of the whole fixture but the listing cache (`ms-path/listings/`, and
    /// ms-path's own mtime): the one file a no-op reconstruct may write, once the folders
    /// have been quiet for 2 s (README, "Performance"), which depends on this machine's
    /// speed.
    pub fn tree_but_listings(&self) -> BTreeMap<PathBuf, (u64, i64, Option<[u8; 32]>)> {
        let ms_path = self.store.config().ms_path.clone();
        let mut t = tree(self.root());
        t.retain(|p, _| *p != ms_path && !p.starts_with(ms_path.join("listings")));
        t
    }
}

/// Assert two [`tree`] snapshots are identical, naming the first difference.
pub fn assert_same_tree(
    before: &BTreeMap<PathBuf, (u64, i64, Option<[u8; 32]>)>,
    after: &BTreeMap<PathBuf, (u64, i64, Option<[u8; 32]>)>,
    what: &str,
) {
    for (p, b) in before {
        match after.get(p) {
            None => panic!("{what}: {} disappeared", p.display()),
            Some(a) if a != b => panic!("{what}: {} changed: {b:?} -> {a:?}", p.display()),
            Some(_) => {}
        }
    }
    for p in after.keys() {
        assert!(before.contains_key(p), "{what}: {} appeared", p.display());
    }
}

/// What must survive of a message, from `show --json`: (flags, internal date, date source,
/// size, content hash, sent date), by UID.
pub type Essentials = BTreeMap<u64, (Vec<String>, String, String, u64, String, Value)>;

/// The [`Essentials`] of a `show --json` report.
pub fn essentials(show: &Value) -> Essentials {
    show["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let flags = m["flags"].as_array().expect("flags").iter().map(|f| f.as_str().expect("flag").to_string());
            (
                m["uid"].as_u64().expect("uid"),
                (
                    flags.collect(),
                    m["internal_date"].as_str().expect("date").to_string(),
                    m["date_source"].as_str().expect("date_source").to_string(),
                    m["size"].as_u64().expect("size"),
                    m["content_hash"].as_str().expect("hash").to_string(),
                    m["sent_date"].clone(),
                ),
            )
        })
        .collect()
}

/// Assert that a rebuilt mailbox shows exactly what it showed before the damage: UID
/// validity, flag names, and every message's UID, flags, dates, size, hash and modseq; the
/// last UID and HIGHESTMODSEQ may rise (a log that lost records may have given more than
/// what survives), never fall.
pub fn assert_survived(before: &Value, after: &Value) {
    for k in ["unique_id", "uid_validity", "user_flags", "message_count"] {
        assert_eq!(before[k], after[k], "{k} differs after reconstruct");
    }
    // The last UID may rise (a log that lost records may have given UIDs above what
    // survives: they are skipped), never fall.
    let last = |v: &Value| v["last_uid"].as_u64().expect("last_uid");
    assert!(last(after) >= last(before), "the last UID went down: {} → {}", last(before), last(after));
    let hm = |v: &Value| v["highest_modseq"].as_u64().expect("highest_modseq");
    assert!(hm(after) >= hm(before), "HIGHESTMODSEQ went down: {} → {}", hm(before), hm(after));
    let (b, a) = (essentials(before), essentials(after));
    for (uid, e) in &b {
        assert_eq!(a.get(uid), Some(e), "UID {uid} differs after reconstruct");
    }
    // A modseq stays, or rises above the old HIGHESTMODSEQ (a log that lost records gives
    // every message a new one, so that clients fetch flags again).
    let (mb, ma) = (modseqs(before), modseqs(after));
    for (uid, m) in &mb {
        let got = ma.get(uid).copied().unwrap_or(0);
        assert!(got == *m || got > hm(before), "UID {uid}: modseq {m} → {got} (HIGHESTMODSEQ was {})", hm(before));
    }
    assert_eq!(a.len(), b.len(), "message count differs: {:?}", a.keys().collect::<Vec<_>>());
}

/// Modseq of every message of a `show --json` report, by UID.
pub fn modseqs(show: &Value) -> BTreeMap<u64, u64> {
    show["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["uid"].as_u64().expect("uid"), m["modseq"].as_u64().expect("modseq")))
        .collect()
}

/// Flags of one UID in a `show --json` report.
pub fn flags_of(show: &Value, uid: u64) -> Vec<String> {
    essentials(show).get(&uid).map(|e| e.0.clone()).unwrap_or_else(|| panic!("no UID {uid}"))
}

/// Changes of the one mailbox in a `reconstruct --json` report whose `what` is `what`.
pub fn changes<'a>(report: &'a Value, mailbox: &str, what: &str) -> Vec<&'a Value> {
    let m = report["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .find(|m| m["mailbox"] == mailbox)
        .unwrap_or_else(|| panic!("{mailbox} not in the report: {report:#}"));
    m["changes"].as_array().expect("changes").iter().filter(|c| c["what"] == what).collect()
}

/// Flip bit `bit` of byte `offset` of a file.
pub fn flip(path: &Path, offset: usize, bit: u8) {
    let mut b = std::fs::read(path).expect("read");
    b[offset] ^= 1 << bit;
    std::fs::write(path, b).expect("write");
}

/// Set a file's modification time (seconds since the epoch).
pub fn set_mtime(path: &Path, secs: i64) {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    };
    let f = std::fs::File::options().write(true).open(path).expect("open");
    f.set_modified(t).expect("set mtime");
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

impl Fx {
    /// A demo store (`mstore demo DIR --messages N`): the M-Store administration guide's cast, its own `ms.conf`.
    pub fn demo(messages: u32) -> Fx {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("demo");
        let o = Command::new(MSTORE)
            .args(["demo", dir.to_str().expect("utf-8 path"), "--messages", &messages.to_string()])
            .env_remove("MS_CONF")
            .output()
            .expect("run mstore demo");
        Run::from(o).expect_code(0, "mstore demo");
        let conf = dir.join("ms.conf");
        // The demo syncs every write; the tests need not (the guide's command lines are
        // unaffected: only the configuration's durability changes).
        let text = std::fs::read_to_string(&conf).expect("read demo ms.conf");
        assert!(text.contains("fsync: yes\n"), "{text}");
        std::fs::write(&conf, text.replace("fsync: yes\n", "fsync: no\n")).expect("write ms.conf");
        let store = Store::open(Config::load(&conf).expect("config")).expect("open demo store");
        Fx { tmp, conf, store }
    }
}

/// Every index record of a mailbox points at a cache record of its own UID and subject.
pub fn assert_cache_names_records(fx: &Fx, domain: &str, name: &str) {
    let mb = fx.store.open_mailbox(domain, &MailboxName::parse(name).expect("name")).expect("open");
    let cache = mb.read_cache().expect("cache");
    for rec in mb.records() {
        let e = mstore::codec::cache::decode(&cache, rec.cache_offset as usize, Some(rec.cache_len))
            .unwrap_or_else(|e| panic!("{name} UID {}: cache record at {}: {e}", rec.uid, rec.cache_offset));
        assert_eq!(e.uid, rec.uid, "{name}: the cache record of UID {} names another UID", rec.uid);
        let bytes = mb.read_message(rec.uid).expect("read");
        let subject = mstore::message::Envelope::from_header(&bytes[..rec.header_size as usize]).subject;
        assert_eq!(e.envelope[1].map(<[u8]>::to_vec), subject.map(|c| c.into_owned()), "{name} UID {}", rec.uid);
    }
}
