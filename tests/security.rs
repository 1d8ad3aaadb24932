//! Issue 13's attacks, each tried as a test (as root, with users of its own: `mstest-sec`
//! is the store's runtime user, `mstest-evil` another local user), and each doctor
//! finding kind injected, reported (kind and path), repaired by the printed fix, and
//! gone afterwards. Every attack test also checks that its setup really happened (the
//! link was in place, the swap ran while the doctor did).
//!
//! Without root these tests skip with one line (and fail under `MSTORE_REQUIRE_ROOT=1`,
//! which `.ci/run` sets): see `tests/support/require.rs`.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mstore::store::Store;

const RUNTIME: &str = "mstest-sec";
const EVIL: &str = "mstest-evil";

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

/// Run a printed fix through the shell, with our binaries first on PATH.
fn run_fix(fix: &str) -> Output {
    let dir = bin("mstore").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new("sh").arg("-c").arg(fix).env("PATH", path).env_remove("MS_CONF").output().expect("run fix");
    // 0: done; 1: problems found and repaired (e2fsck's convention, as our commands use it).
    assert!(matches!(o.status.code(), Some(0 | 1)), "fix {fix:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Create (once) and look up a test user: (uid, gid).
fn user(name: &str) -> (u32, u32) {
    let lookup = || nix::unistd::User::from_name(name).ok().flatten();
    if lookup().is_none() {
        let st = Command::new("useradd").args(["--system", "--user-group", "--no-create-home", name]).status();
        assert!(st.is_ok_and(|s| s.success()) || lookup().is_some(), "could not create test user {name}");
    }
    let u = lookup().expect("user exists");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// `true` when the test must return: not root (see `support::root`).
fn skip_unless_root(what: &str) -> bool {
    if !support::root(what) {
        return true;
    }
    user(RUNTIME);
    user(EVIL);
    false
}

/// A small generated store owned by the runtime user, in a directory others may enter.
struct Fx {
    tmp: tempfile::TempDir,
    conf: PathBuf,
}

impl Fx {
    fn new(messages: u64) -> Fx {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let cfg =
            mstore::synth::write_config(tmp.path(), RUNTIME, RUNTIME, mstore::io::Durability::NoSync).expect("config");
        let st = Store::init(cfg.clone()).expect("init");
        mstore::synth::populate(&st, &mstore::synth::demo_cast(), messages, 7, 1).expect("populate");
        drop(st);
        let (uid, gid) = user(RUNTIME);
        chown_tree(&tmp.path().join("store"), uid, gid);
        chown_tree(&tmp.path().join("d2"), uid, gid);
        // ms.conf as the issue found it: root's, 0644.
        std::fs::set_permissions(&cfg.path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        Fx { tmp, conf: cfg.path }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn c(&self) -> &str {
        self.conf.to_str().expect("utf-8")
    }

    fn mailbox(&self, domain: &str, name: &str) -> PathBuf {
        let cfg = mstore::config::Config::load(&self.conf).expect("config");
        let st = Store::open(cfg).expect("store");
        let e = st.entry(domain, &mstore::layout::MailboxName::parse(name).expect("name")).expect("entry");
        st.place(&e).expect("place").dir
    }

    fn doctor(&self, extra: &[&str]) -> Doc {
        doctor(&self.conf, extra)
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown").arg("-hR").arg(format!("{uid}:{gid}")).arg(p).status().expect("chown");
    assert!(st.success());
}

#[derive(Debug, serde::Deserialize)]
struct F {
    severity: String,
    kind: String,
    path: String,
    message: String,
    fix: Option<String>,
}

struct Doc {
    findings: Vec<F>,
    code: i32,
    stderr: String,
}

impl Doc {
    fn of(&self, kind: &str) -> Vec<&F> {
        self.findings.iter().filter(|f| f.kind == kind).collect()
    }

    /// The one finding of `kind`, at `path`.
    fn one(&self, kind: &str, path: &Path) -> &F {
        let v = self.of(kind);
        assert_eq!(v.len(), 1, "expected one {kind} finding, got {:#?}", self.findings);
        assert_eq!(Path::new(&v[0].path), path, "{kind} at the wrong path: {:#?}", v[0]);
        v[0]
    }

    fn errors(&self) -> Vec<&F> {
        self.findings.iter().filter(|f| f.severity == "error").collect()
    }
}

fn doctor(conf: &Path, extra: &[&str]) -> Doc {
    let mut args = vec!["doctor", "-f", conf.to_str().expect("utf-8"), "--json"];
    args.extend_from_slice(extra);
    let o = run("mstore", &args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON: {e}\n{}\n{stderr}", String::from_utf8_lossy(&o.stdout)));
    let findings: Vec<F> = serde_json::from_value(v["findings"].clone()).expect("findings");
    Doc { findings, code: o.status.code().unwrap_or(-1), stderr }
}

/// Owner, group and mode of everything under `root` (links not followed).
fn owners(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        out.insert(p.clone(), (m.uid(), m.gid(), m.mode() & 0o7777));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).expect("list") {
                stack.push(e.expect("entry").path());
            }
        }
    }
    out
}

/// Entries whose owner, group or mode differ between two [`owners`] snapshots.
fn changed(before: &BTreeMap<PathBuf, (u32, u32, u32)>, after: &BTreeMap<PathBuf, (u32, u32, u32)>) -> Vec<String> {
    let mut v: Vec<String> = after
        .iter()
        .filter(|(p, a)| before.get(*p) != Some(a))
        .map(|(p, a)| format!("{}: {:?} -> {a:?}", p.display(), before.get(p)))
        .collect();
    v.extend(before.keys().filter(|p| !after.contains_key(*p)).map(|p| format!("{}: gone", p.display())));
    v
}

/// A root-owned tree outside the store: what an attacker wants to own.
fn victim_tree(parent: &Path) -> PathBuf {
    let v = parent.join("victim");
    std::fs::create_dir_all(v.join("sub")).expect("mkdir");
    std::fs::write(v.join("shadow"), "root:*:1::::::\n").expect("write");
    std::fs::set_permissions(v.join("shadow"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::fs::write(v.join("tool"), "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(v.join("tool"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(v.join("sub/7."), "From: a\n\nb\n").expect("write");
    // Names a store walk also meets, so a path resolved through a swapped link lands here.
    for i in 1..=300 {
        std::fs::write(v.join(format!("{i}.")), "x").expect("write");
    }
    v
}

#[test]
fn doctor_fix_never_follows_a_directory_or_file_swapped_for_a_symlink() {
    if skip_unless_root("doctor race") {
        return;
    }
    let fx = Fx::new(40);
    let victim = victim_tree(fx.root());
    let before = owners(&victim);
    let joe = fx.mailbox("example.com", "user/joe");
    let user_dir = joe.parent().expect("user/").to_path_buf();
    // The swap partners: a symlink to the victim directory next to the mailbox
    // directory, and a symlink to a victim file named like a message next to a message.
    let dir_link = user_dir.join("zz");
    let file_link = joe.join("999999.");
    std::os::unix::fs::symlink(&victim, &dir_link).expect("symlink");
    std::os::unix::fs::symlink(victim.join("tool"), &file_link).expect("symlink");
    let msg = joe.join("5.");
    assert!(msg.is_file());
    let exchange = |a: &Path, b: &Path| {
        rustix::fs::renameat_with(rustix::fs::CWD, a, rustix::fs::CWD, b, rustix::fs::RenameFlags::EXCHANGE)
    };
    // The setup really swaps: one exchange makes the mailbox a link, the next undoes it.
    exchange(&joe, &dir_link).expect("exchange");
    assert!(std::fs::symlink_metadata(&joe).expect("lstat").file_type().is_symlink());
    exchange(&joe, &dir_link).expect("exchange back");
    assert!(std::fs::symlink_metadata(&joe).expect("lstat").is_dir());

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (joe, dir_link, msg, file_link) = (joe.clone(), dir_link.clone(), msg.clone(), file_link.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (a, b) in [(&joe, &dir_link), (&msg, &file_link)] {
                    if rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        a.as_path(),
                        rustix::fs::CWD,
                        b.as_path(),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .is_ok()
                    {
                        swaps.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let runs: usize = std::env::var("MSTORE_RACE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let (mut saw_link, mut failed) = (0, 0);
    for _ in 0..runs {
        // Give the doctor work on both sides of every swap: root-owned, world-writable.
        for p in [&joe, &dir_link, &msg, &file_link] {
            let _ = std::os::unix::fs::lchown(p, Some(0), Some(0));
        }
        let o = run("mstore", &["doctor", "-f", fx.c(), "--json", "--fix"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        saw_link += v["findings"].as_array().map_or(0, |a| a.iter().filter(|f| f["kind"] == "symlink").count());
        failed += usize::from(o.status.code() == Some(8));
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    let diff = changed(&before, &owners(&victim));
    assert!(
        diff.is_empty(),
        "outside the store, {} entries changed owner or mode: {:?}",
        diff.len(),
        &diff[..diff.len().min(5)]
    );
    let swaps = swaps.load(Ordering::Relaxed);
    assert!(swaps > runs as u64, "the swapper ran only {swaps} times");
    assert!(saw_link > 0, "no doctor run saw a swapped-in link in {runs} runs");
    assert_eq!(failed, 0, "doctor --fix failed under the race");
}

#[test]
fn doctor_never_changes_a_hard_linked_file_and_its_fix_works() {
    if skip_unless_root("hard link") {
        return;
    }
    let fx = Fx::new(20);
    let victim = fx.root().join("root-file");
    std::fs::write(&victim, "secret\n").expect("write");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let dir = fx.mailbox("example.com", "admin");
    let link = dir.join("777.");
    std::fs::hard_link(&victim, &link).expect("hard link");
    assert_eq!(std::fs::metadata(&victim).expect("stat").nlink(), 2, "setup: the link is in place");
    let d = fx.doctor(&["--fix"]);
    let f = d.one("hard-link", &link);
    let m = std::fs::metadata(&victim).expect("stat");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o666), "the hard-linked file was changed");
    run_fix(f.fix.as_deref().expect("fix"));
    assert!(victim.exists(), "the other name keeps the file");
    let d = fx.doctor(&[]);
    assert!(d.errors().is_empty(), "{:#?}", d.findings);
    assert_eq!(d.code, 0);
}

#[test]
fn ms_conf_is_never_chowned_and_cannot_point_root_at_a_tree() {
    if skip_unless_root("ms.conf takeover") {
        return;
    }
    let fx = Fx::new(20);
    let (uid, gid) = user(RUNTIME);
    // Root-owned ms.conf with a wrong owner in the store: the fix leaves ms.conf root's.
    let joe = fx.mailbox("example.com", "user/joe");
    std::os::unix::fs::lchown(joe.join("1."), Some(0), Some(0)).expect("chown");
    let d = fx.doctor(&["--fix"]);
    assert_eq!(d.code, 1, "{:#?}\n{}", d.findings, d.stderr);
    assert_eq!(std::fs::metadata(&fx.conf).expect("stat").uid(), 0, "doctor changed the owner of ms.conf");
    assert_eq!(std::fs::metadata(joe.join("1.")).expect("stat").uid(), uid);

    // As the guide has it (ms.conf the runtime user's), the runtime user adds partitions:
    // a root-owned tree, and /etc.
    let tree = victim_tree(fx.root());
    let before_tree = owners(&tree);
    let etc = std::fs::metadata("/etc").expect("stat");
    std::os::unix::fs::lchown(&fx.conf, Some(uid), Some(gid)).expect("chown");
    let mut text = std::fs::read_to_string(&fx.conf).expect("read");
    text.push_str(&format!("partition-evil: {}\npartition-sys: /etc\n", tree.display()));
    std::fs::write(&fx.conf, text).expect("write");
    let d = fx.doctor(&["--fix"]);
    assert_eq!(
        changed(&before_tree, &owners(&tree)),
        Vec::<String>::new(),
        "the runtime user's partition line gave it a root-owned tree"
    );
    let etc2 = std::fs::metadata("/etc").expect("stat");
    assert_eq!((etc2.uid(), etc2.gid(), etc2.mode()), (etc.uid(), etc.gid(), etc.mode()));
    d.one("unsafe-root", Path::new("/etc"));
    // Inside a system tree is as bad, even an empty directory (root's own, say).
    let inner = Path::new("/etc/mstest-sec-empty.d");
    std::fs::create_dir_all(inner).expect("mkdir");
    std::fs::write(
        &fx.conf,
        format!("{}partition-inner: {}\n", std::fs::read_to_string(&fx.conf).expect("read"), inner.display()),
    )
    .expect("write");
    let d = fx.doctor(&["--fix"]);
    let owner = std::fs::metadata(inner).expect("stat").uid();
    std::fs::remove_dir(inner).expect("rmdir");
    assert_eq!(owner, 0, "an empty directory under /etc was given away");
    assert!(d.of("unsafe-root").iter().any(|f| Path::new(&f.path) == inner), "{:#?}", d.findings);
    assert!(d.of("foreign").iter().any(|f| Path::new(&f.path).starts_with(&tree)), "{:#?}", d.findings);
    let w = d.one("config-writable", &fx.conf);
    assert_eq!(w.severity, "warning");
    assert!(w.message.contains("as the M-Store administration guide has it"), "{}", w.message);
    assert_eq!(std::fs::metadata(&fx.conf).expect("stat").uid(), uid, "ms.conf changed owner silently");
}

#[test]
fn a_config_syntax_error_gets_a_syntax_fix_not_a_chown() {
    if skip_unless_root("config syntax") {
        return;
    }
    let fx = Fx::new(5);
    let mut text = std::fs::read_to_string(&fx.conf).expect("read");
    text.push_str("this line has no colon\n");
    std::fs::write(&fx.conf, text).expect("write");
    let o = run("mstore", &["doctor", "-f", fx.c()]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fix: edit line 10 of "), "{err}");
    assert!(!err.contains("chown"), "{err}");
    let o = run("mstore", &["doctor", "-f", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&o.stderr).contains("larger than 1048576 bytes"));
}

/// Inject one damage, expect one finding of `kind` at `path`, run its printed fix (or
/// `apply` the edit it describes), and expect no error and no finding of that kind after.
fn kind_round_trip(fx: &Fx, kind: &str, path: &Path, apply: Option<&dyn Fn()>) {
    let d = fx.doctor(&[]);
    let f = d.one(kind, path);
    match apply {
        Some(a) => a(),
        None => {
            run_fix(f.fix.as_deref().unwrap_or_else(|| panic!("{kind} has no fix")));
        }
    }
    let d = fx.doctor(&[]);
    assert!(d.of(kind).is_empty() && d.errors().is_empty(), "after the fix of {kind}: {:#?}", d.findings);
    assert_eq!(d.code, 0, "{:#?}", d.findings);
}

#[test]
fn every_doctor_finding_kind_is_fixed_by_its_printed_fix() {
    if skip_unless_root("doctor kinds") {
        return;
    }
    let fx = Fx::new(20);
    let (uid, gid) = user(RUNTIME);
    let d = fx.doctor(&[]);
    assert!(d.errors().is_empty(), "a fresh store is clean: {:#?}", d.findings);
    let joe = fx.mailbox("example.com", "user/joe");

    // owner (the fix is doctor --fix, through descriptors)
    let p = joe.join("2.");
    std::os::unix::fs::lchown(&p, Some(0), Some(0)).expect("chown");
    kind_round_trip(&fx, "owner", &p, None);
    assert_eq!(std::fs::metadata(&p).expect("stat").uid(), uid);

    // mode: the owner cannot read its own file
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o040)).expect("chmod");
    kind_round_trip(&fx, "mode", &p, None);

    // world-access: world-readable mail
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    kind_round_trip(&fx, "world-access", &p, None);
    assert_eq!(std::fs::metadata(&p).expect("stat").mode() & 0o007, 0);

    // symlink
    let l = joe.join("555.");
    std::os::unix::fs::symlink("/etc/passwd", &l).expect("symlink");
    kind_round_trip(&fx, "symlink", &l, None);
    assert!(Path::new("/etc/passwd").exists());

    // hard-link: a second name, in the store, for a file outside it
    let outside = fx.root().join("outside");
    std::fs::copy(joe.join("3."), &outside).expect("copy");
    std::os::unix::fs::lchown(&outside, Some(uid), Some(gid)).expect("chown");
    let h = joe.join("556.");
    std::fs::hard_link(&outside, &h).expect("link");
    kind_round_trip(&fx, "hard-link", &h, None);

    // foreign: a stray file in a mailbox directory (the fix quarantines it)
    let s = joe.join("notes.txt");
    std::fs::write(&s, "x").expect("write");
    std::os::unix::fs::lchown(&s, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    kind_round_trip(&fx, "foreign", &s, None);
    assert!(joe.join("ms.quarantine/notes.txt").exists(), "moved aside, not deleted");

    // foreign: a file at the top of a partition (the fix moves it out of the store)
    let name = format!("mstest-sec-{}.txt", std::process::id());
    let s = fx.root().join("d2/mailstore").join(&name);
    std::fs::write(&s, "x").expect("write");
    kind_round_trip(&fx, "foreign", &s, None);
    let moved = Path::new("/root").join(&name);
    assert!(moved.exists());
    std::fs::remove_file(moved).expect("clean up");

    // config-unreadable: the printed fix makes it root's and group-readable
    std::fs::set_permissions(&fx.conf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    kind_round_trip(&fx, "config-unreadable", &fx.conf, None);
    let m = std::fs::metadata(&fx.conf).expect("stat");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, gid, 0o640));

    // config-writable (a warning): the first choice of the fix
    std::os::unix::fs::lchown(&fx.conf, Some(uid), Some(gid)).expect("chown");
    kind_round_trip(&fx, "config-writable", &fx.conf, None);

    // partition-missing and ms-path-missing: mstore init creates them for the runtime user
    let gone = fx.root().join("d2/mailstore");
    std::fs::rename(&gone, fx.root().join("d2-old")).expect("move away");
    kind_round_trip(&fx, "partition-missing", &gone, None);
    assert_eq!(std::fs::metadata(&gone).expect("stat").uid(), uid);
    std::fs::remove_dir_all(&gone).expect("rm");
    std::fs::rename(fx.root().join("d2-old"), &gone).expect("move back");

    // partition-not-directory, partition-overlap, unsafe-root: the fix is an edit of ms.conf
    let orig = std::fs::read_to_string(&fx.conf).expect("read");
    let edit = |extra: &str| std::fs::write(&fx.conf, format!("{orig}{extra}")).expect("write");
    let restore = || std::fs::write(&fx.conf, &orig).expect("write");
    let file = fx.root().join("plain-file");
    std::fs::write(&file, "x").expect("write");
    edit(&format!("partition-f: {}\n", file.display()));
    kind_round_trip(&fx, "partition-not-directory", &file, Some(&restore));
    edit(&format!("partition-inner: {}\n", fx.root().join("d2/mailstore/example.com").display()));
    kind_round_trip(&fx, "partition-overlap", &fx.root().join("d2/mailstore"), Some(&restore));
    // ms-path-missing: ms-path names a directory that is not there; mstore init makes it.
    let new_ms = fx.root().join("store2");
    std::fs::write(&fx.conf, orig.replace("ms-path: store\n", "ms-path: store2\n")).expect("write");
    kind_round_trip(&fx, "ms-path-missing", &new_ms, None);
    assert_eq!(std::fs::metadata(&new_ms).expect("stat").uid(), uid, "init gave it to the runtime user");
    restore();
    edit("partition-sys: /usr\n");
    kind_round_trip(&fx, "unsafe-root", Path::new("/usr"), Some(&restore));

    // runtime-user: a user that does not exist; the fix creates it
    let ghost = format!("mstest-g{}", std::process::id() % 100000);
    std::fs::write(&fx.conf, orig.replace(&format!("runtime-user: {RUNTIME}"), &format!("runtime-user: {ghost}")))
        .expect("write");
    let d = fx.doctor(&[]);
    let f = d.one("runtime-user", &fx.conf);
    run_fix(f.fix.as_deref().expect("fix"));
    assert!(nix::unistd::User::from_name(&ghost).ok().flatten().is_some());
    let _ = Command::new("userdel").arg(&ghost).status();
    let _ = Command::new("groupdel").arg(&ghost).status();
    restore();
}

#[test]
fn doctor_does_not_cross_a_mount_point() {
    if skip_unless_root("mount point") {
        return;
    }
    let fx = Fx::new(10);
    let joe = fx.mailbox("example.com", "user/joe");
    let mnt = joe.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "mstest-sec"]).arg(&mnt).status();
    assert!(st.is_ok_and(|s| s.success()), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    std::fs::write(mnt.join("1."), "From: a\n\nb\n").expect("write");
    let d = fx.doctor(&["--fix"]);
    d.one("mount-point", &mnt);
    assert_eq!(std::fs::metadata(mnt.join("1.")).expect("stat").uid(), 0, "the doctor crossed into a mount");
}

#[test]
fn runtime_user_root_on_a_store_of_another_user_is_refused_with_the_fix() {
    if skip_unless_root("runtime-user root") {
        return;
    }
    let fx = Fx::new(10);
    let text = std::fs::read_to_string(&fx.conf).expect("read");
    std::fs::write(&fx.conf, text.replace(&format!("runtime-user: {RUNTIME}"), "runtime-user: root")).expect("write");
    let before = owners(fx.root());
    let msg = fx.root().join("m.eml");
    std::fs::write(&msg, "From: a\n\nb\n").expect("write");
    for args in [
        vec!["reconstruct", "-f", fx.c(), "-r", "example.com"],
        vec!["mstore", "append", "-f", fx.c(), "example.com", "user/joe", msg.to_str().expect("utf-8")],
    ] {
        let o = run(args[0], &args[1..]);
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("set `runtime-user: {RUNTIME}`")), "{err}");
    }
    std::fs::remove_file(&msg).expect("rm");
    let after = owners(fx.root());
    let conf = fx.conf.clone();
    let changed: Vec<_> = after.iter().filter(|(p, v)| **p != conf && before.get(*p) != Some(v)).collect();
    assert!(changed.is_empty(), "refused commands changed {changed:?}");
}

#[test]
fn init_as_root_never_takes_over_a_system_or_foreign_directory() {
    if skip_unless_root("init") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = victim_tree(tmp.path());
    let before = owners(&tree);
    let etc = std::fs::metadata("/etc").expect("stat");
    for part in ["/etc".to_string(), tree.display().to_string()] {
        let conf = tmp.path().join("ms.conf");
        std::fs::write(
            &conf,
            format!(
                "ms-path: {}\nruntime-user: {RUNTIME}\nruntime-group: {RUNTIME}\npartition-x: {part}\nfsync: no\n",
                tmp.path().join("ms").display()
            ),
        )
        .expect("conf");
        let o = run("mstore", &["init", "-f", conf.to_str().expect("utf-8")]);
        assert_eq!(o.status.code(), Some(8), "init accepted partition {part}");
    }
    assert_eq!(changed(&before, &owners(&tree)), Vec::<String>::new());
    let etc2 = std::fs::metadata("/etc").expect("stat");
    assert_eq!((etc2.uid(), etc2.gid(), etc2.mode()), (etc.uid(), etc.gid(), etc.mode()));
}

/// Run a command as root with `umask` set first (through the shell).
fn run_with_umask(umask: &str, args: &[&str]) -> Output {
    let mut line = format!("umask {umask}; exec");
    for a in args {
        line.push(' ');
        line.push_str(&format!("'{}'", a.replace('\'', "'\\''")));
    }
    let dir = bin("mstore").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("sh").arg("-c").arg(line).env("PATH", path).env_remove("MS_CONF").output().expect("run")
}

#[test]
fn import_maildir_never_follows_a_link_in_the_source_tree() {
    if skip_unless_root("import links") {
        return;
    }
    let fx = Fx::new(20);
    let (euid, egid) = user(EVIL);
    let joe = fx.mailbox("example.com", "user/joe");
    let joe_count = std::fs::read_dir(&joe)
        .expect("ls")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with('.')))
        .count();
    assert!(joe_count > 0);
    // Evil's Maildir: three messages of its own, and links into the store, to /, and
    // back into itself (as a Maildir++ folder, as a nested folder, as a message file).
    let md = fx.root().join("evil-maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).expect("mkdir");
    }
    for i in 1..=3 {
        std::fs::write(md.join(format!("cur/{i}.evil:2,S")), format!("From: evil\nSubject: {i}\n\nmine\n"))
            .expect("write");
    }
    let links = [
        (md.join(".stolen"), joe.clone()),
        (md.join(".root"), PathBuf::from("/")),
        (md.join(".loop"), PathBuf::from(".")),
        (md.join("nested"), joe.clone()),
        (md.join("cur/9.stolen:2,S"), joe.join("1.")),
        (md.join("dovecot-keywords"), joe.join("1.")),
    ];
    for (l, t) in &links {
        std::os::unix::fs::symlink(t, l).expect("symlink");
    }
    chown_tree(&md, euid, egid);
    std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The setup is real: the links are links, and the store behind them is readable.
    for (l, _) in &links {
        assert!(std::fs::symlink_metadata(l).expect("lstat").file_type().is_symlink());
    }
    assert!(md.join(".stolen").join("1.").is_file() && md.join(".loop/cur").is_dir());

    let o =
        run("mstore", &["import", "maildir", "-f", fx.c(), md.to_str().expect("utf-8"), "example.com", "user/evil"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "links are skipped and reported: {err}");
    for (l, _) in &links {
        assert!(err.contains(&format!("{}: a symbolic link", l.display())), "{} not reported: {err}", l.display());
    }
    let ls = run("mstore", &["ls", "-f", fx.c(), "example.com"]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("user/evil") && !ls.contains("user/evil/"), "a linked folder became a mailbox: {ls}");
    let show = run("mstore", &["show", "-f", fx.c(), "--json", "example.com", "user/evil"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("show json");
    assert_eq!(v["message_count"], 3, "only evil's own messages: {}", String::from_utf8_lossy(&show.stdout));
}

#[test]
fn export_as_root_refuses_a_destination_another_user_controls() {
    if skip_unless_root("export destination") {
        return;
    }
    let fx = Fx::new(20);
    let (euid, egid) = user(EVIL);
    let evil_dir = fx.root().join("evil-out");
    std::fs::create_dir(&evil_dir).expect("mkdir");
    std::os::unix::fs::lchown(&evil_dir, Some(euid), Some(egid)).expect("chown");
    assert_eq!(std::fs::metadata(&evil_dir).expect("stat").uid(), euid, "setup: the directory is evil's");
    for (kind, name) in [("mbox", "joe.mbox"), ("maildir", "joe")] {
        let dest = evil_dir.join(name);
        let o =
            run("mstore", &["export", kind, "-f", fx.c(), "example.com", "user/joe", dest.to_str().expect("utf-8")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(8), "{kind}: {err}");
        assert!(err.contains("refusing to export") && err.contains(&format!("uid {euid}")), "{err}");
    }
    assert_eq!(std::fs::read_dir(&evil_dir).expect("ls").count(), 0, "export wrote into the refused directory");
}

#[test]
fn export_reports_a_linked_or_changed_message_file_and_does_not_export_it() {
    if skip_unless_root("export message checks") {
        return;
    }
    let fx = Fx::new(20);
    let joe = fx.mailbox("example.com", "user/joe");
    let secret = fx.root().join("secret");
    std::fs::write(&secret, "root-only secret line\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::remove_file(joe.join("3.")).expect("rm");
    std::os::unix::fs::symlink(&secret, joe.join("3.")).expect("symlink");
    assert!(std::fs::symlink_metadata(joe.join("3.")).expect("lstat").file_type().is_symlink());
    let mut bytes = std::fs::read(joe.join("4.")).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(joe.join("4."), &bytes).expect("write");
    let out = fx.root().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let dest = out.join("joe.mbox");
    let o = run("mstore", &["export", "mbox", "-f", fx.c(), "example.com", "user/joe", dest.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("UID 3: ") && err.contains("symbolic link"), "{err}");
    assert!(err.contains("UID 4: its bytes do not match its record"), "{err}");
    let mbox = std::fs::read_to_string(&dest).expect("mbox");
    assert!(!mbox.contains("root-only secret"), "the linked file was exported");
    assert!(!mbox.contains(std::str::from_utf8(&bytes).expect("utf-8")), "the changed file was exported");
}

#[test]
fn exports_under_umask_000_are_not_readable_by_others() {
    if skip_unless_root("export modes") {
        return;
    }
    let fx = Fx::new(20);
    let out = fx.root().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let md = out.join("joe-maildir");
    let mbox = out.join("joe.mbox");
    for (kind, dest) in [("maildir", &md), ("mbox", &mbox)] {
        let o = run_with_umask(
            "000",
            &["mstore", "export", kind, "-f", fx.c(), "-r", "example.com", "user/joe", dest.to_str().expect("utf-8")]
                .into_iter()
                .filter(|a| kind == "maildir" || *a != "-r")
                .collect::<Vec<_>>(),
        );
        assert_eq!(o.status.code(), Some(0), "{kind}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let all = owners(&out);
    assert!(all.len() > 10, "setup: the exports exist: {all:?}");
    // The umask really was 000: a file the shell creates under it is 0666.
    let probe = out.join("probe");
    let o = Command::new("sh").arg("-c").arg(format!("umask 000; : > {}", probe.display())).status().expect("sh");
    assert!(o.success());
    assert_eq!(std::fs::metadata(&probe).expect("stat").mode() & 0o777, 0o666);
    std::fs::remove_file(&probe).expect("rm");
    for (p, (_, _, mode)) in all.iter().filter(|(p, _)| *p != &out) {
        let is_dir = std::fs::symlink_metadata(p).expect("lstat").is_dir();
        let allowed = if is_dir { [0o700, 0o750] } else { [0o600, 0o640] };
        assert!(allowed.contains(mode), "{} has mode {mode:04o}", p.display());
    }
}

/// `mstore verify --json`: (kind, path, fix) of every finding, and the exit status.
fn verify_findings(fx: &Fx) -> (Vec<(String, PathBuf, Option<String>)>, i32) {
    let o = run("mstore", &["verify", "-f", fx.c(), "--json", "--no-progress"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify JSON: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    let f = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().expect("kind").to_string(),
                PathBuf::from(f["path"].as_str().expect("path")),
                f["fix"].as_str().map(str::to_string),
            )
        })
        .collect();
    (f, o.status.code().unwrap_or(-1))
}

#[test]
fn verify_reports_every_symlink_in_the_store_and_follows_none() {
    if skip_unless_root("verify links") {
        return;
    }
    let fx = Fx::new(30);
    let (f, code) = verify_findings(&fx);
    assert!(f.is_empty() && code == 0, "a fresh store is clean: {f:?}");
    let joe = fx.mailbox("example.com", "user/joe");
    let mary = fx.mailbox("example.com", "user/mary");
    // ms.index replaced by a link to a copy of itself: followed, it would look healthy.
    let copy = fx.root().join("index-copy");
    std::fs::copy(joe.join("ms.index"), &copy).expect("copy");
    std::fs::remove_file(joe.join("ms.index")).expect("rm");
    std::os::unix::fs::symlink(&copy, joe.join("ms.index")).expect("symlink");
    // A message-named link to a root-only file, a mailbox directory moved and linked, a
    // domain that is a link to /etc, and a link in the database home.
    std::os::unix::fs::symlink("/etc/shadow", joe.join("900.")).expect("symlink");
    let moved = fx.root().join("mary-elsewhere");
    std::fs::rename(&mary, &moved).expect("move");
    std::os::unix::fs::symlink(&moved, &mary).expect("symlink");
    let spool = fx.root().join("store/spool");
    std::os::unix::fs::symlink("/etc", spool.join("evil.com")).expect("symlink");
    let links = [joe.join("ms.index"), joe.join("900."), mary.clone(), spool.join("evil.com")];
    for l in &links {
        assert!(std::fs::symlink_metadata(l).expect("lstat").file_type().is_symlink(), "setup: {}", l.display());
    }
    let (f, code) = verify_findings(&fx);
    assert_eq!(code, 4);
    for l in &links {
        let n = f.iter().filter(|(k, p, _)| k == "symlink" && p == l).count();
        assert_eq!(n, 1, "{} reported {n} times: {f:?}", l.display());
    }
    // The printed fixes remove the links (nothing behind them); the mailbox comes back.
    for (_, _, fix) in f.iter().filter(|(k, p, _)| k == "symlink" && *p != mary) {
        run_fix(fix.as_deref().expect("fix"));
    }
    std::fs::remove_file(&mary).expect("rm link");
    std::fs::rename(&moved, &mary).expect("move back");
    assert!(Path::new("/etc/shadow").exists() && Path::new("/etc").is_dir());
    let (f, _) = verify_findings(&fx);
    assert!(!f.iter().any(|(k, _, _)| k == "symlink"), "{f:?}");

    // A link in the database home: reported (the databases are not opened through it).
    let seg = std::fs::read_dir(fx.root().join("store/database"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")))
        .expect("a log segment");
    let real = fx.root().join("segment-elsewhere");
    std::fs::rename(&seg, &real).expect("move");
    std::os::unix::fs::symlink(&real, &seg).expect("symlink");
    let (f, code) = verify_findings(&fx);
    assert_eq!(code, 8, "the mailboxes cannot be scanned: {f:?}");
    assert_eq!(f.iter().filter(|(k, p, _)| k == "symlink" && *p == seg).count(), 1, "{f:?}");
    std::fs::remove_file(&seg).expect("rm");
    std::fs::rename(&real, &seg).expect("move back");
    assert_eq!(verify_findings(&fx).1, 0);
}

/// Run `cat PATH` (or `ls` for a directory) as `uid:gid` (the standard library drops the
/// supplementary groups when it switches user); whether it could read it.
fn can_read_as(uid: u32, gid: u32, path: &Path) -> bool {
    use std::os::unix::process::CommandExt;
    let tool = if path.is_dir() { "ls" } else { "cat" };
    let mut c = Command::new(tool);
    c.arg(path).uid(uid).gid(gid);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().expect("run").success()
}

#[test]
fn a_local_user_cannot_read_mail_index_or_cache_even_with_the_directories_open() {
    if skip_unless_root("local user reads") {
        return;
    }
    let fx = Fx::new(20);
    let (euid, egid) = user(EVIL);
    let joe = fx.mailbox("example.com", "user/joe");
    // What the issue's local user read: subjects, senders and Message-IDs from ms.cache.
    let cache = std::fs::read(joe.join("ms.cache")).expect("read");
    let msg = std::fs::read_to_string(joe.join("1.")).expect("read");
    let subject = msg.lines().find_map(|l| l.strip_prefix("Subject: ")).expect("a subject").trim();
    assert!(cache.windows(subject.len()).any(|w| w == subject.as_bytes()), "setup: ms.cache holds {subject:?}");
    let files = [joe.join("ms.cache"), joe.join("ms.index"), joe.join("ms.header"), joe.join("ms.log"), joe.join("1.")];
    for f in &files {
        assert!(!can_read_as(euid, egid, f), "{} is readable by another local user", f.display());
    }
    assert!(!can_read_as(euid, egid, &joe), "the mailbox directory is listable by another local user");
    // Even with every directory on the way opened to everyone, the files' own modes
    // keep them from other users; and a world-readable file there is readable, so the
    // check above really ran as that user and reached the directory.
    let mut opened = Vec::new();
    for d in joe.ancestors().take_while(|d| d.starts_with(fx.root())) {
        let m = std::fs::metadata(d).expect("stat").mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode((m & 0o7777) | 0o005)).expect("chmod");
        opened.push((d.to_path_buf(), m & 0o7777));
    }
    let probe = joe.join("probe.txt");
    std::fs::write(&probe, "x").expect("write");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(can_read_as(euid, egid, &probe), "setup: the other user reaches the mailbox directory");
    let readable: Vec<_> = files.iter().filter(|f| can_read_as(euid, egid, f)).collect();
    std::fs::remove_file(&probe).expect("rm");
    for (d, m) in opened {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(m)).expect("chmod back");
    }
    assert!(readable.is_empty(), "readable by another local user: {readable:?}");
    // Doctor says so when mail is world-readable.
    std::fs::set_permissions(joe.join("ms.cache"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    fx.doctor(&[]).one("world-access", &joe.join("ms.cache"));
}

/// A message file the runtime user cannot read (root's, mode 000, as a mistaken copy by
/// root leaves it): reconstruct, run as root, works as the runtime user, names the file
/// and why, leaves it as it is, keeps every other message, and exits 4.
#[test]
fn reconstruct_exits_4_on_a_message_file_it_cannot_read_and_names_it() {
    if skip_unless_root("reconstruct on an unreadable message file") {
        return;
    }
    let fx = Fx::new(40);
    let dir = fx.mailbox("example.com", "user/joe");
    let victim = dir.join("2.");
    let bytes = std::fs::read(&victim).expect("read");
    std::os::unix::fs::chown(&victim, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let (uid, gid) = user(RUNTIME);
    assert!(!can_read_as(uid, gid, &victim), "setup: the runtime user cannot read {}", victim.display());
    let o = run("reconstruct", &["-f", fx.c(), "example.com", "user/joe"]);
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.contains("2.") && out.to_lowercase().contains("permission denied"), "{out}");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(std::fs::read(&victim).expect("read"), bytes, "the file is left as it was");
    let show = run("mstore", &["-f", fx.c(), "show", "--json", "example.com", "user/joe"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("show --json");
    let uids: Vec<u64> =
        v["messages"].as_array().expect("messages").iter().map(|m| m["uid"].as_u64().expect("uid")).collect();
    assert!(uids.contains(&2), "UID 2 keeps its record while its file cannot be read: {uids:?}");
}
