//! The commands that only read change nothing: `mstore verify` (and `--quick`), `ls`,
//! `show`, `export` and `reconstruct -n` leave every byte, modification time, change time
//! and inode under ms-path, the partitions and the database home as they were, even where
//! a writer would write: an interrupted database install (a writer finishes it on open),
//! a torn tail in a database segment and in a mailbox's change log, a damaged index.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mstore::db::install;
use mstore::db::recover::{Mode, RecoverOptions, recover};
use mstore::fs::RealFs;
use mstore::io::Durability;
use mstore_testkit::recfs::{FaultOn, FaultPlan, RecFs};
use support::Fx;

/// Everything below `root`: path → (inode, size, mtime ns, ctime ns, BLAKE3 of a file).
type Tree = BTreeMap<PathBuf, (u64, u64, i64, i64, Option<[u8; 32]>)>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let hash =
                if m.is_file() { Some(*blake3::hash(&std::fs::read(&p).expect("read")).as_bytes()) } else { None };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p,
                (
                    m.ino(),
                    m.len(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                    hash,
                ),
            );
        }
    }
    out
}

fn assert_unchanged(before: &Tree, after: &Tree, what: &str) {
    for (p, b) in before {
        match after.get(p) {
            None => panic!("{what}: {} disappeared", p.display()),
            Some(a) if a != b => panic!("{what}: {} changed: {b:?} -> {a:?}", p.display()),
            Some(_) => {}
        }
    }
    if let Some(p) = after.keys().find(|p| !before.contains_key(*p)) {
        panic!("{what}: {} appeared", p.display());
    }
}

/// Leave an interrupted install in the database home: a point-in-time style install that
/// fails (an injected EIO) after its plan was written.
fn interrupt_an_install(home: &Path) {
    for at in 1..200 {
        let scratch = tempfile::tempdir().expect("tempdir");
        let copy = scratch.path().join("db");
        copy_dir(home, &copy);
        let rec = RecFs::new(scratch.path());
        rec.set_fault(Some(FaultPlan { on: FaultOn::Any, at, persistent: true, errno: rustix::io::Errno::IO }));
        let o = RecoverOptions { mode: Mode::Rebuild, durability: Durability::Sync, dry_run: false };
        let failed = recover(&rec, &copy, &o).is_err();
        if failed && install::pending(&RealFs, &copy).expect("pending") {
            std::fs::remove_dir_all(home).expect("rm");
            copy_dir(&copy, home);
            return;
        }
    }
    panic!("no fault left an install pending");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls").flatten() {
        let t = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).expect("copy");
        }
    }
}

#[test]
fn readers_change_nothing_under_ms_path_and_the_partitions() {
    let fx = Fx::new();
    fx.mailbox("example.com", "user/joe", 8);
    fx.mailbox_on("example.com", "shared/d2", 6, Some("d2"));
    fx.mailbox("example.com", "user/mary", 5);
    let home = fx.store.config().database_path.clone();
    // Damage a reader must see and leave: a torn tail in a mailbox's change log, a
    // damaged index, a torn database segment, an interrupted install.
    let joe = fx.dir("example.com", "user/joe");
    let mut log = std::fs::read(joe.join("ms.log")).expect("log");
    log.extend_from_slice(&[7u8; 30]);
    std::fs::write(joe.join("ms.log"), &log).expect("write");
    let mary = fx.dir("example.com", "user/mary");
    let mut idx = std::fs::read(mary.join("ms.index")).expect("index");
    let n = idx.len();
    idx[n - 5] ^= 0xff;
    std::fs::write(mary.join("ms.index"), &idx).expect("write");
    interrupt_an_install(&home);
    assert!(install::pending(&RealFs, &home).expect("pending"), "setup: an install is pending");

    let root = fx.root().to_path_buf();
    let before = tree(&root);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = elsewhere.path().join("joe.mbox");
    let out = out.to_str().expect("utf-8");
    let runs: Vec<Vec<&str>> = vec![
        vec!["verify"],
        vec!["verify", "--quick"],
        vec!["verify", "--json"],
        vec!["ls"],
        vec!["show", "example.com", "user/joe"],
        vec!["reconstruct", "-n", "-r", "example.com"],
        vec!["export", "mbox", "example.com", "user/mary", out],
    ];
    for args in &runs {
        let r = fx.mstore(args);
        assert!(r.code >= 0, "{args:?}: {}", r.stderr);
        assert_unchanged(&before, &tree(&root), &format!("mstore {}", args.join(" ")));
    }
    // verify says what it found rather than finishing the install.
    let r = fx.mstore(&["verify"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("INSTALL") || r.stderr.contains("INSTALL"), "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_store_opened_read_only_refuses_every_change() {
    let fx = Fx::new();
    fx.mailbox("example.com", "user/joe", 4);
    let cfg = fx.store.config().clone();
    let root = fx.root().to_path_buf();
    let before = tree(&root);
    let st = mstore::store::Store::open_read_only(cfg).expect("open read-only");
    let name = mstore::layout::MailboxName::parse("user/joe").expect("name");
    assert!(st.open_mailbox_locked("example.com", &name).is_err());
    assert!(
        st.create_mailbox("example.com", &mstore::layout::MailboxName::parse("user/x").expect("n"), Default::default())
            .is_err()
    );
    let e = st.mailbox_list().change(&[], &[("example.com".into(), name.clone())]).expect_err("commit refused");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(st.list(Some("example.com")).expect("list").len(), 1);
    assert_eq!(st.open_mailbox("example.com", &name).expect("read").records().len(), 3);
    drop(st);
    assert_unchanged(&before, &tree(&root), "a read-only store");
}

/// A binary of the crate, run with `-f CONF`.
fn db_cmd(fx: &Fx, name: &str, args: &[&str]) -> support::Run {
    let bin = Path::new(support::RECONSTRUCT).with_file_name(name);
    let o =
        std::process::Command::new(bin).arg("-f").arg(&fx.conf).args(args).env_remove("MS_CONF").output().expect("run");
    support::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The dry runs of the database commands (`msdb_recover -n` in each mode, `msdb_restore
/// -n`, `msdb_repair -n`) change no byte, time or inode anywhere under ms-path, the
/// backups included, whatever damage they find: a torn tail, mid-log corruption, a
/// damaged snapshot, an interrupted install.
#[test]
fn database_dry_runs_change_nothing() {
    type Damage = fn(&Path);
    let torn: Damage = |home| {
        let seg = mstore::db::log::list_segments(&RealFs, home).expect("segments").last().expect("segment").1.clone();
        let mut b = std::fs::read(&seg).expect("read");
        b.extend_from_slice(&[9u8; 21]);
        std::fs::write(&seg, b).expect("write");
    };
    let mid_log: Damage = |home| {
        let seg = mstore::db::log::list_segments(&RealFs, home).expect("segments").last().expect("segment").1.clone();
        let mut b = std::fs::read(&seg).expect("read");
        b[64 + 30] ^= 0x40;
        std::fs::write(&seg, b).expect("write");
    };
    let snapshot: Damage = |home| {
        let db = home.join("mailboxes.db");
        let mut b = std::fs::read(&db).expect("read");
        b[70] ^= 0x40;
        std::fs::write(&db, b).expect("write");
    };
    let install: Damage = |home| interrupt_an_install(home);
    for (what, damage) in [
        ("torn tail", torn),
        ("mid-log corruption", mid_log),
        ("damaged snapshot", snapshot),
        ("interrupted install", install),
    ] {
        let fx = Fx::new();
        fx.mailbox("example.com", "user/joe", 5);
        fx.mailbox("example.com", "user/mary", 4);
        db_cmd(&fx, "msdb_recover", &[]).expect_code(0, "checkpoint");
        db_cmd(&fx, "msdb_backup", &[]).expect_code(0, "backup");
        fx.mailbox("example.com", "shared/later", 4);
        let home = fx.store.config().database_path.clone();
        damage(&home);
        let root = fx.root().to_path_buf();
        let before = tree(&root);
        let runs: [(&str, &[&str]); 6] = [
            ("msdb_recover", &["-n"]),
            ("msdb_recover", &["-n", "--point-in-time"]),
            ("msdb_recover", &["-n", "--catastrophic"]),
            ("msdb_recover", &["-n", "--to-lsn", "3"]),
            ("msdb_restore", &["-n"]),
            ("msdb_repair", &["-n"]),
        ];
        for (bin, args) in runs {
            let r = db_cmd(&fx, bin, args);
            assert!(r.code >= 0, "{what}: {bin} {args:?}: {}", r.stderr);
            assert_unchanged(&before, &tree(&root), &format!("{what}: {bin} {}", args.join(" ")));
        }
        let r = db_cmd(&fx, "msdb_repair", &["-n"]);
        assert_ne!(r.code, 0, "{what}: the dry run saw the damage\n{}\n{}", r.stdout, r.stderr);
    }
}
