//! Tests of the database environment: commits, reads, reopen, rollover, checkpoints,
//! group commit, several environments on one home, fsync failure.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mstore::Error;
use mstore::codec::wal::{MAX_KEY_LEN, MAX_VALUE_LEN};
use mstore::db::log::{self, Tables};
use mstore::db::{Db, DbError, Env, EnvOptions, Txn, verify};
use mstore::io::Durability;
use mstore_testkit::sim::{Fault, SimFs};

fn sim_opts(fs: &Arc<SimFs>, segment_size: u64) -> EnvOptions {
    EnvOptions { fs: fs.clone(), durability: Durability::Sync, segment_size, checkpoint_bytes: u64::MAX }
}

fn put(db: Db, k: &str, v: &str) -> Txn {
    let mut t = Txn::default();
    t.put(db, k.as_bytes().to_vec(), v.as_bytes().to_vec());
    t
}

#[test]
fn commit_get_scan_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::create(dir.path(), Durability::NoSync).expect("create");
    let mut t = Txn::default();
    t.put(Db::Mailboxes, b"a\0x".to_vec(), b"1".to_vec());
    t.put(Db::Mailboxes, b"b\0y".to_vec(), b"2".to_vec());
    t.put(Db::Subscriptions, b"a\0joe\0x".to_vec(), Vec::new());
    env.commit(t).expect("commit");
    let env = Env::open(dir.path(), Durability::NoSync).expect("reopen");
    assert_eq!(env.get(Db::Mailboxes, b"a\0x").expect("get"), Some(b"1".to_vec()));
    assert_eq!(env.scan_prefix(Db::Mailboxes, b"b\0").expect("scan").len(), 1);
    assert_eq!(env.scan_prefix(Db::Subscriptions, b"a\0").expect("scan").len(), 1);
    let mut t = Txn::default();
    t.delete(Db::Mailboxes, b"a\0x".to_vec());
    env.commit(t).expect("commit");
    assert_eq!(env.get(Db::Mailboxes, b"a\0x").expect("get"), None);
    let env = Env::open(dir.path(), Durability::NoSync).expect("reopen");
    assert_eq!(env.get(Db::Mailboxes, b"a\0x").expect("get"), None);
    assert_eq!(env.get(Db::Mailboxes, b"b\0y").expect("get"), Some(b"2".to_vec()));
}

#[test]
fn damaged_database_is_named_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mailboxes.db"), b"MSDBSNAP\x01\0 garbage").expect("write");
    let err = Env::open(dir.path(), Durability::NoSync).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains("mailboxes.db") && text.contains("corrupt at byte offset"), "{text}");
}

#[test]
fn rollover_checkpoint_and_reopen_keep_everything() {
    let fs = Arc::new(SimFs::new());
    let home = Path::new("/db");
    let env = Env::create_with(home, sim_opts(&fs, 1024)).expect("create");
    let mut expect = Tables::default();
    for i in 0..60 {
        let t =
            put(if i % 3 == 0 { Db::Subscriptions } else { Db::Mailboxes }, &format!("k{}", i % 17), &"v".repeat(i));
        t.apply_to(&mut expect);
        env.commit(t).expect("commit");
        if i == 30 {
            env.checkpoint().expect("checkpoint");
        }
    }
    let segs = log::list_segments(&*fs, home).expect("list");
    assert!(segs.len() > 5, "{} segments", segs.len());
    assert_eq!(env.snapshot_tables().expect("tables").maps, expect.maps);
    drop(env);
    let env = Env::open_with(home, sim_opts(&fs, 1024)).expect("reopen");
    assert_eq!(env.snapshot_tables().expect("tables").maps, expect.maps);
    let v = verify::verify(&*fs, home).expect("verify");
    assert_eq!(v.status, verify::Status::Clean, "{}", v.render());
    assert_eq!(v.commits, 60);
}

#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let fs = Arc::new(SimFs::new());
    fs.set_sync_delay(Duration::from_millis(3));
    let home = Path::new("/db");
    let env = Arc::new(Env::create_with(home, sim_opts(&fs, 1 << 20)).expect("create"));
    let per = 25;
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let env = env.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    env.commit(put(Db::Mailboxes, &format!("w{w}-{i}"), "x")).expect("commit");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let (syncs, batches) = env.log_stats();
    assert_eq!(env.scan_prefix(Db::Mailboxes, b"w").expect("scan").len(), 4 * per);
    assert!(syncs == batches && syncs < (4 * per) as u64 * 3 / 4, "{syncs} fsyncs for {} commits", 4 * per);
    drop(env);
    let env = Env::open_with(home, sim_opts(&fs, 1 << 20)).expect("reopen");
    assert_eq!(env.scan_prefix(Db::Mailboxes, b"w").expect("scan").len(), 4 * per);
}

#[test]
fn two_environments_on_one_home_see_each_other() {
    let fs = Arc::new(SimFs::new());
    let home = Path::new("/db");
    let a = Env::create_with(home, sim_opts(&fs, 2048)).expect("a");
    let b = Env::open_with(home, sim_opts(&fs, 2048)).expect("b");
    for i in 0..40 {
        let (w, r) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        w.commit(put(Db::Mailboxes, &format!("k{i}"), &i.to_string())).expect("commit");
        assert_eq!(r.get(Db::Mailboxes, format!("k{i}").as_bytes()).expect("get"), Some(i.to_string().into_bytes()));
        if i == 20 {
            b.checkpoint().expect("checkpoint");
        }
    }
    let c = Env::open_with(home, sim_opts(&fs, 2048)).expect("c");
    assert_eq!(c.scan_prefix(Db::Mailboxes, b"k").expect("scan").len(), 40);
    let v = verify::verify(&*fs, home).expect("verify");
    assert_eq!(v.status, verify::Status::Clean, "{}", v.render());
}

#[test]
fn failed_fsync_is_fatal_and_loses_no_acknowledged_commit() {
    let fs = Arc::new(SimFs::new());
    let home = Path::new("/db");
    let env = Env::create_with(home, sim_opts(&fs, 1 << 20)).expect("create");
    env.commit(put(Db::Mailboxes, "a", "1")).expect("commit");
    // The next commit's calls: lock, metadata/list/reads of the refresh, open, write,
    // fsync. Fail every call from the fsync on... found by trying.
    let start = fs.calls();
    let mut failed_at = None;
    for n in 1..40 {
        fs.set_fault(Some(Fault { at: start + n, persistent: false }));
        let before = fs.calls();
        let r = env.commit(put(Db::Mailboxes, "b", "2"));
        fs.set_fault(None);
        if r.is_err() {
            failed_at = Some((n, before));
            break;
        }
    }
    let (_, _) = failed_at.expect("some call fails");
    // Whatever failed, later commits either work (nothing was written) or are refused.
    let later = env.commit(put(Db::Mailboxes, "c", "3"));
    if let Err(e) = &later {
        assert!(e.to_string().contains("refuses commits"), "{e}");
    }
    drop(env);
    let env = Env::open_with(home, sim_opts(&fs, 1 << 20)).expect("reopen recovers");
    assert_eq!(env.get(Db::Mailboxes, b"a").expect("get"), Some(b"1".to_vec()));
    if later.is_ok() {
        assert_eq!(env.get(Db::Mailboxes, b"c").expect("get"), Some(b"3".to_vec()));
    }
}

#[test]
fn oversized_keys_and_values_are_refused() {
    let fs = Arc::new(SimFs::new());
    let env = Env::create_with(Path::new("/db"), sim_opts(&fs, 1 << 20)).expect("create");
    let mut t = Txn::default();
    t.put(Db::Mailboxes, vec![1; MAX_KEY_LEN + 1], vec![]);
    assert!(matches!(env.commit(t), Err(Error::Db(DbError::TooLarge { what: "key", .. }))));
    let mut t = Txn::default();
    t.put(Db::Mailboxes, vec![1], vec![0; MAX_VALUE_LEN + 1]);
    assert!(matches!(env.commit(t), Err(Error::Db(DbError::TooLarge { what: "value", .. }))));
    let mut t = Txn::default();
    t.put(Db::Mailboxes, vec![1; MAX_KEY_LEN], vec![0; MAX_VALUE_LEN]);
    env.commit(t).expect("largest record fits");
    assert_eq!(env.get(Db::Mailboxes, &[1; MAX_KEY_LEN]).expect("get").map(|v| v.len()), Some(MAX_VALUE_LEN));
}

/// The modules of `src/db/` form no loop (opening an environment finishes an install,
/// which must not need the backup code, which opens environments), and the error types
/// live in `src/error.rs`, which imports nothing from the databases.
#[test]
fn the_database_modules_do_not_loop() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let read = |p: &str| std::fs::read_to_string(src.join(p)).expect("read source");
    let install = read("db/install.rs");
    assert!(!install.contains("backup::") && !install.contains("Env::"), "install.rs reaches back into backup or Env");
    let error = read("error.rs");
    assert!(!error.contains("crate::db") && !error.contains("db::"), "error.rs imports from the databases");
    assert!(read("db/mod.rs").contains("pub use crate::error::DbError;"));
}
