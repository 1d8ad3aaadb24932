//! The database commands as administrators run them: the real binaries on temporary
//! stores — `msdb_verify`, `msdb_backup` (silent, cron-friendly, keeps the last N),
//! `msdb_recover` and its modes, `msdb_repair` (each rung), `msdb_restore`, the exit
//! statuses, and the permission messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mstore::codec::wal;
use mstore::db::log;
use mstore::fs::RealFs;

fn bin(name: &str) -> PathBuf {
    match name {
        "mstore" => PathBuf::from(env!("CARGO_BIN_EXE_mstore")),
        "msdb_recover" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_recover")),
        "msdb_backup" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_backup")),
        "msdb_verify" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_verify")),
        "msdb_restore" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_restore")),
        "msdb_repair" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_repair")),
        other => panic!("no binary {other}"),
    }
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).env_remove("MS_CONF").output().expect("run binary")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn code(name: &str, args: &[&str], want: i32) -> String {
    let o = run(name, args);
    assert_eq!(o.status.code(), Some(want), "{name} {args:?}:\n{}", text(&o));
    text(&o)
}

struct Store {
    _tmp: tempfile::TempDir,
    conf: String,
    home: PathBuf,
    backups: PathBuf,
}

impl Store {
    fn new(extra: &str) -> Store {
        let tmp = tempfile::tempdir().expect("tempdir");
        let conf = tmp.path().join("ms.conf");
        let (u, g) = mstore::cli::current_user_and_group();
        std::fs::write(
            &conf,
            format!("ms-path: ms\nruntime-user: {u}\nruntime-group: {g}\nfsync: yes\nlog-segment-size: 64K\nbackup-keep: 2\n{extra}"),
        )
        .expect("conf");
        let s = Store {
            home: tmp.path().join("ms/database"),
            backups: tmp.path().join("ms/backup"),
            conf: conf.to_str().expect("utf-8").to_string(),
            _tmp: tmp,
        };
        code("mstore", &["-f", &s.conf, "init"], 0);
        s
    }

    fn create(&self, name: &str) {
        code("mstore", &["-f", &self.conf, "create", "example.com", name], 0);
    }

    fn ls(&self) -> String {
        code("mstore", &["-f", &self.conf, "ls"], 0)
    }

    fn c(&self) -> &str {
        &self.conf
    }

    fn backups(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.backups)
            .map(|d| d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The last segment and the (offset, LSN) of each of its records.
    fn records(&self) -> (PathBuf, Vec<(u64, u64)>) {
        let segs = log::list_segments(&RealFs, &self.home).expect("segments");
        let path = segs.last().expect("a segment").1.clone();
        let bytes = std::fs::read(&path).expect("read");
        let (h, crc) = wal::decode_segment_header(&bytes).expect("header");
        let scan = wal::scan_records(&bytes[64..], 64, h.salt, crc, h.first_lsn, usize::MAX);
        (path, scan.records.iter().map(|(o, r)| (*o, r.lsn)).collect())
    }
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[at as usize] ^= 0x40;
    std::fs::write(path, b).expect("write");
}

#[test]
fn every_database_command_prints_its_version() {
    for b in ["msdb_recover", "msdb_backup", "msdb_verify", "msdb_restore", "msdb_repair"] {
        let o = run(b, &["-v"]);
        assert_eq!(o.status.code(), Some(0), "{b} -v");
        assert!(o.stdout.is_empty(), "{b} -v wrote to stdout");
        assert!(String::from_utf8_lossy(&o.stderr).starts_with(&format!("{b} (M-Store toolkit) ")));
    }
    for sub in ["recover", "backup", "db-verify", "restore", "repair"] {
        let o = run("mstore", &[sub, "-v"]);
        assert_eq!(o.status.code(), Some(0), "mstore {sub} -v");
    }
}

#[test]
fn backup_is_silent_keeps_the_last_n_and_verify_recover_are_clean() {
    let s = Store::new("");
    for n in ["user/joe", "user/joe/pub", "admin"] {
        s.create(n);
    }
    assert!(code("msdb_verify", &["-f", s.c()], 0).contains("clean"));
    for _ in 0..3 {
        let o = run("msdb_backup", &["-f", s.c()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(o.stdout.is_empty() && o.stderr.is_empty(), "msdb_backup must be silent: {}", text(&o));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let b = s.backups();
    assert_eq!(b.len(), 2, "backup-keep: 2 keeps two: {b:?}");
    for name in &b {
        let manifest = std::fs::read_to_string(s.backups.join(name).join("MANIFEST")).expect("manifest");
        assert!(manifest.starts_with("msdb-backup 1\n") && manifest.contains("file "), "{manifest}");
    }
    let v = code("mstore", &["-f", s.c(), "backup", "--verbose"], 0);
    assert!(v.contains("backup ") && v.contains("entries"), "{v}");
    code("msdb_recover", &["-f", s.c()], 0);
    code("msdb_recover", &["-f", s.c(), "--strict"], 0);
    code("msdb_recover", &["-f", s.c(), "--point-in-time"], 0);
    let json = code("msdb_verify", &["-f", s.c(), "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["status"], "clean");
    assert!(v["commits"].as_u64().expect("commits") >= 3);
    // Nothing to repair.
    let out = code("msdb_repair", &["-f", s.c()], 0);
    assert!(out.contains("nothing was wrong"), "{out}");
}

#[test]
fn backup_failure_is_one_line_and_non_zero() {
    let s = Store::new("backup-path: not-a-dir\n");
    std::fs::write(Path::new(s.c()).parent().expect("dir").join("not-a-dir"), b"file").expect("write");
    let o = run("msdb_backup", &["-f", s.c()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("msdb_backup: ") && err.contains("not-a-dir"), "{err}");
}

#[test]
fn mid_log_corruption_is_refused_then_repaired_at_rung_2() {
    let s = Store::new("");
    s.create("user/joe");
    s.create("admin");
    code("msdb_backup", &["-f", s.c()], 0);
    for n in ["user/kept1", "user/kept2", "user/lost1", "user/lost2"] {
        s.create(n);
    }
    let (seg, recs) = s.records();
    // Records from the end: commit and put of user/lost2, then of user/lost1. Damage
    // the put of user/lost1; user/lost2 follows it.
    let last: Vec<_> = recs.iter().rev().take(4).collect();
    let (off, lsn) = *last[3];
    flip(&seg, off + 44);
    let seg_name = seg.file_name().expect("name").to_string_lossy().into_owned();

    let v = code("msdb_verify", &["-f", s.c()], 4);
    assert!(v.contains("mid-log corruption") && v.contains(&seg_name), "{v}");
    assert!(v.contains(&format!("byte offset {off} (LSN {lsn})")), "{v}");
    let r = code("msdb_recover", &["-f", s.c()], 4);
    assert!(
        r.contains(&seg_name) && r.contains(&format!("byte offset {off}")) && r.contains(&format!("LSN {lsn}")),
        "{r}"
    );
    let ls = run("mstore", &["-f", s.c(), "ls"]);
    assert_eq!(ls.status.code(), Some(8));
    assert!(text(&ls).contains("unable to open database") && text(&ls).contains("msdb_repair"), "{}", text(&ls));

    let before = std::fs::read(&seg).expect("read");
    let dry = code("msdb_repair", &["-f", s.c(), "--dry-run"], 2);
    assert!(dry.contains("rung 1") && dry.contains("rung 2"), "{dry}");
    assert_eq!(std::fs::read(&seg).expect("read"), before, "--dry-run changed the log");

    let out = code("msdb_repair", &["-f", s.c()], 2);
    assert!(out.contains("repaired at rung 2") && out.contains("transactions lost: 2"), "{out}");
    // What each lost transaction was: user/lost2's put is readable, user/lost1's is the
    // damaged record.
    assert!(out.contains("mailbox example.com user/lost2 created or changed"), "{out}");
    assert!(out.contains("its operations were in the damaged bytes"), "{out}");
    assert_eq!(out.matches("  lost: transaction ").count(), 2, "{out}");
    assert!(s.backups().iter().any(|b| b.ends_with("-pre-repair")), "{:?}", s.backups());
    let q = s.home.join("quarantine");
    let moved: Vec<_> = std::fs::read_dir(&q).expect("quarantine").collect();
    assert_eq!(moved.len(), 1);
    assert!(code("msdb_verify", &["-f", s.c()], 0).contains("clean"));
    let ls = s.ls();
    for kept in ["user/joe", "admin", "user/kept1", "user/kept2"] {
        assert!(ls.contains(&format!("\t{kept}\t")), "{kept} missing:\n{ls}");
    }
    assert!(!ls.contains("user/lost1") && !ls.contains("user/lost2"), "{ls}");
    // The store works again.
    s.create("user/after");
    assert!(s.ls().contains("user/after"));
}

#[test]
fn a_log_cut_below_the_snapshots_is_not_reported_as_nothing_lost() {
    let s = Store::new("");
    s.create("user/joe");
    s.create("admin");
    code("msdb_recover", &["-f", s.c()], 0);
    for n in ["user/new1", "user/new2"] {
        s.create(n);
    }
    let (seg, recs) = s.records();
    // Cut the log inside what the snapshots include: the two creations after them go.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(recs[1].0).expect("truncate");
    drop(f);
    let v = code("msdb_verify", &["-f", s.c()], 4);
    assert!(v.contains("committed log records are missing"), "{v}");
    let out = run("msdb_repair", &["-f", s.c()]);
    let out = text(&out);
    assert!(!out.contains("no committed transaction was lost"), "{out}");
    assert!(out.contains("cannot be counted") && out.contains("reconstruct -r"), "{out}");
}

#[test]
fn torn_tail_is_recovered_at_rung_1_and_restore_moves_the_live_files_aside() {
    let s = Store::new("");
    s.create("user/joe");
    code("msdb_backup", &["-f", s.c()], 0);
    s.create("user/mary");
    // A torn final record: cut the last record short.
    let (seg, recs) = s.records();
    let (off, _) = *recs.last().expect("records");
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(off + 10).expect("truncate");
    drop(f);
    let v = code("msdb_verify", &["-f", s.c()], 2);
    assert!(v.contains("torn final record"), "{v}");
    code("msdb_recover", &["-f", s.c(), "--strict"], 4);
    let out = code("msdb_repair", &["-f", s.c()], 1);
    assert!(out.contains("repaired at rung 1"), "{out}");
    code("msdb_verify", &["-f", s.c()], 0);
    // The torn commit (mary's) was never acknowledged... as far as the log knows.
    assert!(!s.ls().contains("user/mary"));

    s.create("user/zoe");
    code("msdb_restore", &["-f", s.c(), "no-such-backup"], 8);
    let dry = code("msdb_restore", &["-f", s.c(), "--dry-run"], 0);
    assert!(dry.contains("would restore"), "{dry}");
    assert!(s.ls().contains("user/zoe"));
    let out = code("msdb_restore", &["-f", s.c()], 0);
    assert!(out.contains("restored backup") && out.contains("quarantine"), "{out}");
    let ls = s.ls();
    assert!(ls.contains("user/joe") && !ls.contains("user/zoe"), "{ls}");
    code("msdb_verify", &["-f", s.c()], 0);
}

#[test]
fn recover_to_an_lsn_a_time_and_catastrophic() {
    let s = Store::new("");
    s.create("user/a");
    let v: serde_json::Value = serde_json::from_str(&code("msdb_verify", &["-f", s.c(), "--json"], 0)).expect("json");
    let after_a = v["end_lsn"].as_u64().expect("end_lsn");
    s.create("user/b");
    s.create("user/c");
    code("msdb_recover", &["-f", s.c(), "--to-lsn", &after_a.to_string(), "--dry-run"], 1);
    assert!(s.ls().contains("user/c"), "dry run changed something");
    let out = code("msdb_recover", &["-f", s.c(), "--to-lsn", &after_a.to_string()], 1);
    assert!(out.contains("dropped 2 committed transactions"), "{out}");
    let ls = s.ls();
    assert!(ls.contains("user/a") && !ls.contains("user/b") && !ls.contains("user/c"), "{ls}");
    code("msdb_verify", &["-f", s.c()], 0);
    // Going back before the snapshots is refused with the way out.
    let o = code("msdb_recover", &["-f", s.c(), "--to-lsn", "1"], 8);
    assert!(o.contains("--catastrophic"), "{o}");
    // A time in the future keeps everything.
    code("msdb_recover", &["-f", s.c(), "--to-time", "2999-01-01T00:00:00Z"], 0);
    code("msdb_recover", &["-f", s.c(), "--to-time", "yesterday"], 8);

    // Catastrophic: the snapshots are lost; the backup plus the live log bring all back.
    code("msdb_backup", &["-f", s.c()], 0);
    s.create("user/d");
    for db in ["mailboxes.db", "subscriptions.db"] {
        std::fs::remove_file(s.home.join(db)).expect("rm");
    }
    let out = code("msdb_recover", &["-f", s.c(), "--catastrophic"], 1);
    assert!(out.contains("started from the backup"), "{out}");
    let ls = s.ls();
    assert!(ls.contains("user/a") && ls.contains("user/d"), "{ls}");
    code("msdb_verify", &["-f", s.c()], 0);
}

#[test]
fn permission_problems_name_owner_mode_and_the_fix() {
    let s = Store::new("");
    s.create("user/joe");
    let is_root = rustix::process::geteuid().is_root();
    if is_root {
        // Root on a store owned by someone else: refused, with the reason and the way.
        std::os::unix::fs::chown(&s.home, Some(4242), Some(4242)).expect("chown");
        let o = code("msdb_recover", &["-f", s.c()], 8);
        assert!(o.contains("must not run as root") && o.contains("uid 4242") && o.contains("su -s /bin/sh"), "{o}");
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&s.home, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let o = code("msdb_recover", &["-f", s.c()], 8);
        std::fs::set_permissions(&s.home, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        assert!(o.contains("permission denied") && o.contains("mode 0000") && o.contains("chown -R"), "{o}");
    }
}

#[test]
fn concurrent_processes_commit_through_the_lock_and_lose_nothing() {
    let s = Store::new("");
    let children: Vec<_> = (0..4)
        .map(|p| {
            let conf = s.c().to_string();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let name = format!("user/p{p}/m{i}");
                    let o = run("mstore", &["-f", &conf, "create", "example.com", &name]);
                    assert!(o.status.success(), "{name}: {}", text(&o));
                }
            })
        })
        .collect();
    let backups = {
        let conf = s.c().to_string();
        std::thread::spawn(move || {
            for _ in 0..3 {
                let o = run("msdb_backup", &["-f", &conf]);
                assert!(o.status.success(), "{}", text(&o));
            }
        })
    };
    for c in children {
        c.join().expect("writer");
    }
    backups.join().expect("backup");
    let ls = s.ls();
    for p in 0..4 {
        for i in 0..8 {
            assert!(ls.contains(&format!("\tuser/p{p}/m{i}\t")), "user/p{p}/m{i} missing:\n{ls}");
        }
    }
    code("msdb_verify", &["-f", s.c()], 0);
}

/// Exit statuses the other tests do not reach: `msdb_backup` 4 on damaged databases,
/// `msdb_verify` 8 when the database home is not a directory, `doctor` 8 without a
/// configuration file.
#[test]
fn exit_statuses_backup_4_verify_8_doctor_8() {
    let s = Store::new("");
    s.create("user/joe");
    s.create("admin");
    let (seg, recs) = s.records();
    flip(&seg, recs[1].0 + 44);
    let before = s.backups();
    let out = code("msdb_backup", &["-f", s.c()], 4);
    assert!(out.contains(&seg.display().to_string()) && out.contains("byte offset"), "{out}");
    assert_eq!(s.backups(), before, "a backup of damaged databases was kept");

    let s = Store::new("");
    std::fs::remove_dir_all(&s.home).expect("rm");
    std::fs::write(&s.home, b"").expect("a file where the home was");
    let out = code("msdb_verify", &["-f", s.c()], 8);
    assert!(out.contains("is not a directory") && out.contains(&s.home.display().to_string()), "{out}");

    let missing = format!("{}.missing", s.c());
    let out = code("mstore", &["-f", &missing, "doctor"], 8);
    assert!(out.contains(&missing), "{out}");
}

/// Every rung failing: mid-log corruption (rung 1 refuses), a file where the quarantine
/// directory belongs (rung 2 cannot set the log aside, and never deletes it instead) and
/// no backup (rung 3): exit 4, naming each cause, and the databases left as they were.
#[test]
fn msdb_repair_exits_4_when_every_rung_fails_and_changes_nothing() {
    let s = Store::new("");
    for n in ["user/joe", "admin", "user/mary", "user/zoe"] {
        s.create(n);
    }
    let (seg, recs) = s.records();
    flip(&seg, recs[recs.len() - 4].0 + 44);
    std::fs::write(s.home.join("quarantine"), b"not a directory").expect("file in the way");
    let before = std::fs::read(&seg).expect("read");
    let out = code("msdb_repair", &["-f", s.c()], 4);
    assert!(out.contains("NOT repaired: every rung failed"), "{out}");
    let q = s.home.join("quarantine");
    assert!(out.contains(&format!("{} is not a directory", q.display())), "rung 2's cause: {out}");
    assert!(out.contains(&format!("no good backup in {}", s.backups.display())), "rung 3's cause: {out}");
    assert_eq!(std::fs::read(&seg).expect("read"), before, "the log is untouched");
    assert!(!out.contains("no committed transaction was lost"), "{out}");
}

/// A damaged `mailboxes.db` loses nothing when what it lost is still somewhere: the log
/// reaching back to LSN 1 holds every entry, and a snapshot damaged only in its trailer
/// still reads back entry by entry (even with the log gone).
#[test]
fn a_damaged_snapshot_is_rebuilt_whole_from_the_log_or_from_its_own_entries() {
    let names = ["user/joe", "admin", "user/mary"];
    let s = Store::new("");
    for n in names {
        s.create(n);
    }
    code("msdb_recover", &["-f", s.c()], 0);
    let db = s.home.join("mailboxes.db");
    let b = std::fs::read(&db).expect("read");
    let at = b.windows(8).position(|w| w == b"user/joe").expect("joe");
    flip(&db, at as u64);
    let out = code("msdb_repair", &["-f", s.c()], 2);
    assert!(out.contains("no committed transaction was lost") && !out.contains("cannot be counted"), "{out}");
    let ls = s.ls();
    for n in names {
        assert!(ls.contains(&format!("\t{n}\t")), "{n} missing:\n{ls}");
    }

    let s = Store::new("");
    for n in names {
        s.create(n);
    }
    code("msdb_recover", &["-f", s.c()], 0);
    let db = s.home.join("mailboxes.db");
    let len = std::fs::metadata(&db).expect("stat").len();
    flip(&db, len - 2);
    let (seg, _) = s.records();
    std::fs::write(&seg, b"").expect("the log emptied");
    let out = code("msdb_repair", &["-f", s.c()], 2);
    assert!(out.contains("no committed transaction was lost") && !out.contains("cannot be counted"), "{out}");
    let ls = s.ls();
    for n in names {
        assert!(ls.contains(&format!("\t{n}\t")), "{n} missing:\n{ls}");
    }
    code("msdb_verify", &["-f", s.c()], 0);
}

/// A damaged commit record: its transaction's operations are read but it cannot be told
/// committed; msdb_verify and msdb_repair both name it, with what it did, as lost if it was
/// committed, besides the commits readable after the damage.
#[test]
fn a_transaction_whose_commit_record_is_damaged_is_named_as_possibly_lost() {
    let s = Store::new("");
    for n in ["user/joe", "admin", "user/lost1", "user/after"] {
        s.create(n);
    }
    let (seg, recs) = s.records();
    // From the end: commit and put of user/after, then commit and put of user/lost1.
    let (off, lsn) = recs[recs.len() - 3];
    flip(&seg, off + 20);
    let v = code("msdb_verify", &["-f", s.c()], 4);
    let line = format!(
        "its commit record would be at LSN {lsn}, where the damage begins: mailbox example.com user/lost1 created or changed"
    );
    assert!(v.contains(&line), "{v}");
    let out = code("msdb_repair", &["-f", s.c()], 2);
    assert!(out.contains("may have been committed and is lost if it was") && out.contains(&line), "{out}");
    assert!(
        out.contains("transactions lost: 1") && out.contains("mailbox example.com user/after created or changed"),
        "{out}"
    );
    assert!(!out.contains("no committed transaction was lost"), "{out}");
    let ls = s.ls();
    assert!(ls.contains("\tadmin\t") && !ls.contains("user/lost1") && !ls.contains("user/after"), "{ls}");
    code("msdb_verify", &["-f", s.c()], 0);
}
