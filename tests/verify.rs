//! `mstore verify` and `mstore doctor` end to end: each kind of damage injected into a
//! generated store is reported exactly (kind, path, offset) with a repair command, and
//! running that command clears it; verify is read-only (bytes and mtimes unchanged); a
//! clean store and imported real-world mail give no finding; commands started as root
//! leave no root-owned file (they switch to the runtime user).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mstore::layout::MailboxName;
use mstore::store::Store;

fn bin(name: &str) -> PathBuf {
    match name {
        "mstore" => PathBuf::from(env!("CARGO_BIN_EXE_mstore")),
        "reconstruct" => PathBuf::from(env!("CARGO_BIN_EXE_reconstruct")),
        other => panic!("no binary {other}"),
    }
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).env_remove("MS_CONF").output().expect("run")
}

/// Run a repair command exactly as printed, through the shell, with our binaries first
/// on PATH.
fn run_fix(fix: &str) -> Output {
    let dir = bin("mstore").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("sh").arg("-c").arg(fix).env("PATH", path).env_remove("MS_CONF").output().expect("run fix")
}

fn current_user() -> (String, String) {
    mstore::cli::current_user_and_group()
}

/// A small generated store (the demo cast, fewer messages) owned by `user`.
fn store(dir: &Path, messages: u64, user: Option<&str>) -> PathBuf {
    let (cu, cg) = current_user();
    let (u, g) = match user {
        Some(u) => (u.to_string(), u.to_string()),
        None => (cu, cg),
    };
    let cfg = mstore::synth::write_config(dir, &u, &g, mstore::io::Durability::NoSync).expect("config");
    let st = Store::init(cfg.clone()).expect("init");
    mstore::synth::populate(&st, &mstore::synth::demo_cast(), messages, 3, 2).expect("populate");
    if let Some(u) = user {
        let st = Command::new("chown").args(["-R", &format!("{u}:{u}")]).arg(dir).status().expect("chown");
        assert!(st.success());
    }
    cfg.path
}

#[derive(Debug, serde::Deserialize)]
struct F {
    kind: String,
    path: String,
    offset: Option<u64>,
    uid: Option<u32>,
    fix: Option<String>,
}

fn verify(conf: &Path, extra: &[&str]) -> (Vec<F>, i32) {
    let mut args = vec!["-f", conf.to_str().expect("utf-8"), "verify", "--json", "--no-progress"];
    args.extend_from_slice(extra);
    let o = run("mstore", &args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify JSON: {e}\n{}", String::from_utf8_lossy(&o.stderr)));
    let f: Vec<F> = serde_json::from_value(v["findings"].clone()).expect("findings");
    (f, o.status.code().unwrap_or(-1))
}

fn mailbox_dir(conf: &Path, domain: &str, name: &str) -> PathBuf {
    let cfg = mstore::config::Config::load(conf).expect("config");
    let st = Store::open(cfg).expect("store");
    let e = st.entry(domain, &MailboxName::parse(name).expect("name")).expect("entry");
    st.place(&e).expect("place").dir
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).expect("read");
    b[offset] ^= 0x20;
    std::fs::write(path, b).expect("write");
}

/// Assert `verify` reports exactly one finding of `kind` (and nothing else), run its fix,
/// and assert verify is clean afterwards.
fn expect_one_and_fix(conf: &Path, kind: &str, check: impl Fn(&F)) {
    run_one_fix(conf, kind, check);
    let (after, code) = verify(conf, &[]);
    assert!(after.is_empty(), "after the fix: {after:#?}");
    assert_eq!(code, 0);
}

/// [`expect_one_and_fix`] for damage whose repair has to let something go: after the fix,
/// verify reports exactly that loss (`loss`, from the loss ledger) and nothing else, and
/// the loss's own fix (accepting it) leaves verify clean.
fn expect_one_fix_then_loss(conf: &Path, kind: &str, loss: &str, check: impl Fn(&F)) {
    run_one_fix(conf, kind, check);
    expect_one_and_fix(conf, loss, |f| {
        assert!(f.path.contains("/ledger/"), "{f:?}");
        assert!(f.fix.as_deref().is_some_and(|x| x.contains("mstore ledger ack")), "{f:?}");
    });
}

/// Assert `verify` reports exactly one finding of `kind` (and nothing else) and run its fix.
fn run_one_fix(conf: &Path, kind: &str, check: impl Fn(&F)) {
    let (findings, code) = verify(conf, &[]);
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, vec![kind], "findings: {findings:#?}");
    assert_eq!(code, 4);
    check(&findings[0]);
    let fix = findings[0].fix.clone().expect("a repair command");
    let o = run_fix(&fix);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "fix {fix:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn clean_store_has_no_finding_and_verify_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 1500, None);
    let before = snapshot(tmp.path());
    let (f, code) = verify(&conf, &[]);
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(code, 0);
    let (f, _) = verify(&conf, &["--quick"]);
    assert!(f.is_empty(), "{f:#?}");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "verify", "example.com"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no problems found"));
    assert_eq!(snapshot(tmp.path()), before, "verify changed the tree");
}

/// Every file and directory: (bytes hash or "dir", mtime).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, i64, i64)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).expect("stat");
        if md.is_dir() {
            m.insert(p.clone(), ("dir".into(), md.mtime(), md.mtime_nsec()));
            for e in std::fs::read_dir(&p).expect("ls") {
                stack.push(e.expect("entry").path());
            }
        } else {
            let h = blake3::hash(&std::fs::read(&p).expect("read")).to_hex().to_string();
            m.insert(p, (h, md.mtime(), md.mtime_nsec()));
        }
    }
    m
}

#[test]
fn flipped_byte_in_a_message_is_bit_rot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 300, None);
    let dir = mailbox_dir(&conf, "foo.com", "admin");
    let file = dir.join("3.");
    let mtime = std::fs::metadata(&file).expect("stat").mtime();
    flip(&file, 40);
    // Bit rot changes no metadata.
    use mstore::fs::Fs;
    let mut f = mstore::fs::RealFs.open_write(&file).expect("open");
    f.set_mtime(mtime).expect("mtime");
    drop(f);
    let (quick, _) = verify(&conf, &["--quick"]);
    assert!(quick.is_empty(), "a metadata-only scan cannot see bit rot: {quick:#?}");
    // The original bytes are gone: the loss stays a finding until accepted.
    expect_one_fix_then_loss(&conf, "message-content", "messages-lost", |f| {
        assert_eq!(f.uid, Some(3));
        assert_eq!(f.path, file.display().to_string());
        assert!(
            f.fix.as_deref().is_some_and(|x| x.contains("--verify-content") && x.contains("foo.com admin")),
            "{f:?}"
        );
    });
}

#[test]
fn flipped_byte_in_an_index_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 300, None);
    let dir = mailbox_dir(&conf, "example.com", "user/joe");
    flip(&dir.join("ms.index"), 128 + 128 * 2 + 9);
    expect_one_and_fix(&conf, "index-record-corrupt", |f| {
        assert_eq!(f.offset, Some(128 + 128 * 2));
        assert!(f.path.ends_with("user/joe/ms.index"));
        assert!(
            f.fix.as_deref().is_some_and(|x| x.starts_with("reconstruct -f ") && x.ends_with(" example.com user/joe"))
        );
    });
}

#[test]
fn flipped_byte_in_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 300, None);
    let dir = mailbox_dir(&conf, "example.com", "admin");
    let cfg = mstore::config::Config::load(&conf).expect("config");
    let st = Store::open(cfg).expect("store");
    let mb = st.open_mailbox("example.com", &MailboxName::parse("admin").expect("name")).expect("open");
    let r = mb.records()[1];
    flip(&dir.join("ms.cache"), r.cache_offset as usize + 20);
    expect_one_and_fix(&conf, "cache-record-corrupt", |f| {
        assert_eq!(f.uid, Some(r.uid));
        assert!(f.path.ends_with("admin/ms.cache"));
    });
}

#[test]
fn removed_and_extra_message_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 300, None);
    let dir = mailbox_dir(&conf, "esys.ca", "user/foobar");
    std::fs::remove_file(dir.join("2.")).expect("rm");
    expect_one_fix_then_loss(&conf, "message-missing", "messages-lost", |f| assert_eq!(f.uid, Some(2)));
    std::fs::copy(dir.join("3."), dir.join("500.")).expect("cp");
    expect_one_and_fix(&conf, "message-extra", |f| assert_eq!(f.uid, Some(500)));
}

#[test]
fn mailbox_list_against_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 200, None);
    let cfg = mstore::config::Config::load(&conf).expect("config");
    let st = Store::open(cfg).expect("store");
    let name = MailboxName::parse("admin/archive").expect("name");
    st.mailbox_list().change(&[], &[("example.com".into(), name.clone())]).expect("unregister");
    expect_one_and_fix(&conf, "not-registered", |f| assert!(f.path.ends_with("admin/archive")));
    assert!(st.entry("example.com", &name).is_ok(), "registered again");
    let dir = mailbox_dir(&conf, "foo.com", "user/alice/&ZeVnLIqe-");
    std::fs::rename(&dir, tmp.path().join("moved-away")).expect("mv");
    expect_one_fix_then_loss(&conf, "directory-missing", "mailbox-recreated", |f| {
        assert_eq!(f.path, dir.display().to_string())
    });
}

#[test]
fn corrupt_change_log_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 200, None);
    let dir = mailbox_dir(&conf, "example.com", "user/mary");
    let log = dir.join("ms.log");
    let len = std::fs::metadata(&log).expect("stat").len() as usize;
    flip(&log, len / 2);
    expect_one_and_fix(&conf, "log-corrupt", |f| assert!(f.offset.is_some() && f.path.ends_with("ms.log")));
}

#[test]
fn stray_file_and_the_quarantine_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 200, None);
    let dir = mailbox_dir(&conf, "example.com", "user/joe/pub");
    std::fs::write(dir.join("notes.txt"), b"not mail").expect("write");
    expect_one_and_fix(&conf, "stray-file", |f| {
        assert!(f.fix.as_deref().is_some_and(|x| x.contains("--quarantine")));
    });
    assert!(dir.join("ms.quarantine/notes.txt").exists(), "moved aside, not deleted");
}

/// The unprivileged runtime user of the permission tests, created if missing: `None` (the
/// test returns) when not root, see `support::require`.
fn test_user(what: &str) -> Option<String> {
    if !support::root(what) {
        return None;
    }
    let name = "mstest";
    let exists = |n: &str| Command::new("id").arg(n).output().is_ok_and(|o| o.status.success());
    if !exists(name) {
        let st = Command::new("useradd").args(["--system", "--user-group", "--no-create-home", name]).status();
        assert!(st.is_ok_and(|s| s.success()) || exists(name), "could not create test user {name}");
    }
    Some(name.into())
}

#[test]
fn root_owned_file_is_reported_with_the_chown_that_fixes_it() {
    let Some(user) = test_user("a root-owned file found and chowned back (chown needs root)") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 200, Some(&user));
    let dir = mailbox_dir(&conf, "example.com", "admin");
    std::os::unix::fs::lchown(dir.join("2."), Some(0), Some(0)).expect("chown to root");
    expect_one_and_fix(&conf, "owner", |f| {
        assert!(f.path.ends_with("admin/2."));
        assert_eq!(
            f.fix.as_deref(),
            Some(format!("chown -R {user}:{user} {}", tmp.path().join("store").display()).as_str())
        );
    });
    // The doctor says the same, root-owned first, with the one command for everything.
    std::os::unix::fs::lchown(dir.join("3."), Some(0), Some(0)).expect("chown to root");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "doctor"]);
    assert_eq!(o.status.code(), Some(4));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("root-owned") && out.contains(&format!("chown -R {user}:{user} ")), "{out}");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "doctor", "--fix"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        std::fs::metadata(dir.join("3.")).expect("stat").uid(),
        nix::unistd::User::from_name(&user).expect("lookup").expect("user").uid.as_raw()
    );
}

#[test]
fn unreadable_config_is_diagnosed() {
    let Some(user) = test_user("a configuration file the runtime user cannot read (made by root)") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 50, Some(&user));
    std::os::unix::fs::lchown(&conf, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let kinds: Vec<&str> =
        v["findings"].as_array().expect("array").iter().map(|f| f["kind"].as_str().expect("kind")).collect();
    assert!(kinds.contains(&"config-unreadable"), "{kinds:?}");
    let fix = v["findings"]
        .as_array()
        .expect("array")
        .iter()
        .find(|f| f["kind"] == "config-unreadable")
        .expect("finding")["fix"]
        .as_str()
        .expect("fix")
        .to_string();
    // Root's and readable by the group: the runtime user reads it and cannot change it.
    assert!(fix.starts_with(&format!("chown root:{user} ")) && fix.contains("chmod 0640"), "{fix}");
    assert!(run_fix(&fix).status.success());
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "doctor"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn writing_commands_started_as_root_leave_no_root_owned_file() {
    let Some(user) = test_user("writing commands started as root") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    // The runtime user needs to reach the store: the tempdir is 0700 root.
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let conf = tmp.path().join("ms.conf");
    std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {user}\nruntime-group: {user}\nfsync: no\n"))
        .expect("conf");
    let c = conf.to_str().expect("utf-8");
    for args in [
        vec!["-f", c, "init"],
        vec!["-f", c, "create", "example.com", "user/joe"],
        vec!["-f", c, "append", "example.com", "user/joe", c, "--flags", "\\Seen"],
    ] {
        let o = run("mstore", &args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let dir = mailbox_dir(&conf, "example.com", "user/joe");
    std::fs::remove_file(dir.join("ms.index")).expect("rm");
    let o = run("reconstruct", &["-f", c, "example.com", "user/joe"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let uid = nix::unistd::User::from_name(&user).expect("lookup").expect("user").uid.as_raw();
    let mut stack = vec![tmp.path().join("ms")];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("stat");
        assert_eq!(m.uid(), uid, "{} is owned by uid {}", p.display(), m.uid());
        n += 1;
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).expect("ls").map(|e| e.expect("entry").path()));
        }
    }
    assert!(n > 8, "only {n} entries");
    // A runtime user that does not exist: refuse, with the reason.
    std::fs::write(&conf, "ms-path: ms\nruntime-user: no-such-user-here\nfsync: no\n").expect("conf");
    let o = run("mstore", &["-f", c, "create", "example.com", "user/bob"]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing to run as root") && err.contains("no-such-user-here"), "{err}");
}

#[test]
fn imported_real_world_mail_verifies_clean() {
    let Some(ext) = support::shared_corpus("verifying every message of corpus-ext") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("ms.conf");
    let (u, g) = current_user();
    std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {u}\nruntime-group: {g}\nfsync: no\n")).expect("conf");
    let c = conf.to_str().expect("utf-8");
    assert!(run("mstore", &["-f", c, "init"]).status.success());
    assert!(run("mstore", &["-f", c, "create", "example.com", "shared/ext"]).status.success());
    let mut files = Vec::new();
    let mut stack = vec![ext];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).expect("ls").map(|e| e.expect("entry").path()));
        } else if std::fs::metadata(&p).expect("stat").len() > 0 {
            files.push(p.to_string_lossy().into_owned());
        }
    }
    let mut args = vec!["-f", c, "append", "example.com", "shared/ext"];
    args.extend(files.iter().map(String::as_str));
    let o = run("mstore", &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (f, code) = verify(&conf, &[]);
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(code, 0);
}

#[test]
fn corrupt_transaction_log_record_then_the_mailboxes_it_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = store(tmp.path(), 100, None);
    let home = tmp.path().join("store/database");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&home)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")))
        .collect();
    segs.sort();
    let seg = segs.last().expect("a log segment").clone();
    let len = std::fs::metadata(&seg).expect("stat").len() as usize;
    flip(&seg, len / 2);
    let (f, code) = verify(&conf, &[]);
    assert_eq!(code, 8, "the mailboxes cannot be checked against a list that cannot be opened");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "db-corrupt");
    let fix = f[0].fix.clone().expect("fix");
    assert_eq!(fix, format!("msdb_repair -f {}", conf.display()));
    let o = run_fix(&fix);
    assert!(o.status.code().is_some_and(|c| c <= 3), "{}", String::from_utf8_lossy(&o.stdout));
    // The repair lost the transactions after the damage: the mailboxes they registered
    // are now on disk only. Each finding's fix registers its mailbox again.
    let (f, _) = verify(&conf, &[]);
    assert!(!f.is_empty() && f.iter().all(|x| x.kind == "not-registered"), "{f:#?}");
    for x in &f {
        let o = run_fix(x.fix.as_deref().expect("fix"));
        assert!(o.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (f, code) = verify(&conf, &[]);
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(code, 0);
}
