//! Bulk recovery drills, simulated on ordinary directories (the real ext4 drill is
//! `cargo xtask drill`): files and directories are moved into `lost+found` under
//! `#<inode>` names exactly as `e2fsck` reconnects them, files are deleted or damaged, and
//! `mstore show --json` must show every message back with the same UID, flags and
//! internal date; the loss ledger and `mstore verify` must name whatever cannot come back.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mstore::config::Config;
use serde_json::Value;
use support::{Fx, essentials};

/// Move `path` into `lf` as `#<inode>`, as e2fsck's pass 3/4 reconnects an orphan.
fn to_lost_found(path: &Path, lf: &Path) -> PathBuf {
    std::fs::create_dir_all(lf).expect("lost+found");
    let ino = std::fs::symlink_metadata(path).expect("stat").ino();
    let to = lf.join(format!("#{ino}"));
    std::fs::rename(path, &to).expect("move into lost+found");
    to
}

/// Every entry of a mailbox directory into lost+found (its directory blocks were lost:
/// fsck empties the directory and reconnects every inode it held).
fn lose_directory_blocks(dir: &Path, lf: &Path) {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir).expect("ls").map(|e| e.expect("entry").path()).collect();
    names.sort();
    for p in names {
        to_lost_found(&p, lf);
    }
}

fn salvage(fx: &Fx, opts: mstore::rescue::Options) -> mstore::rescue::SalvageReport {
    let cfg = Config::load(&fx.conf).expect("config");
    mstore::rescue::salvage(&cfg, &opts).expect("salvage")
}

fn lf_opts(lf: &Path) -> mstore::rescue::Options {
    mstore::rescue::Options { lost_found: vec![lf.to_path_buf()], threads: 2, ..Default::default() }
}

/// UID, flags, internal date, size and hash of every message, and the UID validity.
fn state(show: &Value) -> (Value, support::Essentials) {
    (show["uid_validity"].clone(), essentials(show))
}

#[test]
fn directory_blocks_lost_then_fsck_every_message_comes_back() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/joe", 40);
    fx.mailbox("example.com", "user/joe/Sent", 12);
    let before = fx.show("example.com", "user/joe");
    let before_sent = fx.show("example.com", "user/joe/Sent");
    let lf = fx.root().join("lost+found");
    lose_directory_blocks(&dir, &lf);
    // The administrator ran the guide's procedure first: reconstruct drops what it cannot
    // find (into the loss ledger) and verify says so.
    fx.reconstruct(&["-r", "example.com"]).expect_code(1, "reconstruct after fsck");
    let v = fx.mstore(&["verify", "--json"]);
    v.expect_code(4, "verify after the losses");
    assert!(v.stdout.contains("mailbox-recreated") || v.stdout.contains("messages-lost"), "{}", v.stdout);

    let r = salvage(&fx, lf_opts(&lf));
    assert!(r.errors.is_empty(), "{}", r.text());
    assert_eq!(r.missing(), 0, "{}", r.text());
    let after = fx.show("example.com", "user/joe");
    assert_eq!(state(&after), state(&before), "{}", r.text());
    assert_eq!(state(&fx.show("example.com", "user/joe/Sent")), state(&before_sent));
    // Moved back, not copied: lost+found keeps only the store files it held (evidence,
    // never deleted), in its files and in the sub-mailbox directory fsck reconnected.
    let left = files_below(&lf);
    assert!(!left.is_empty());
    for f in &left {
        let head = std::fs::read(f).expect("read");
        assert!(head.starts_with(b"MS"), "{} is still in lost+found", f.display());
    }
    // Nothing is left to report, and a second salvage changes nothing.
    fx.mstore(&["verify"]).expect_code(0, "verify after salvage");
    let again = salvage(&fx, lf_opts(&lf));
    assert_eq!(again.back(), 0, "{}", again.text());
    assert_eq!(state(&fx.show("example.com", "user/joe")), state(&before));
}

#[test]
fn files_deleted_come_back_from_a_backup_copy_with_their_flags() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/ann", 30);
    let before = fx.show("example.com", "user/ann");
    let backup = fx.root().join("backup-copy");
    copy_tree(&fx.root().join("ms/spool"), &backup);
    for uid in [3, 7, 11] {
        std::fs::remove_file(dir.join(format!("{uid}."))).expect("rm");
    }
    fx.reconstruct(&["example.com", "user/ann"]).expect_code(1, "reconstruct drops them");
    let r = salvage(&fx, mstore::rescue::Options { from: vec![backup.clone()], threads: 2, ..Default::default() });
    assert_eq!(r.back(), 3, "{}", r.text());
    assert_eq!(state(&fx.show("example.com", "user/ann")), state(&before), "{}", r.text());
    // The backup is only read.
    assert!(backup.join("example.com/user/ann/3.").exists());
    fx.mstore(&["verify"]).expect_code(0, "the ledger's losses are resolved");
}

#[test]
fn a_damaged_message_is_set_aside_and_its_bytes_come_back() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/bob", 10);
    let before = fx.show("example.com", "user/bob");
    let backup = fx.root().join("backup-copy");
    copy_tree(&fx.root().join("ms/spool"), &backup);
    let f = dir.join("4.");
    let mut b = std::fs::read(&f).expect("read");
    b[20] ^= 0x40;
    let mtime = std::fs::metadata(&f).expect("stat").mtime();
    std::fs::write(&f, &b).expect("damage");
    support::set_mtime(&f, mtime);
    let r = salvage(&fx, mstore::rescue::Options { from: vec![backup], threads: 2, ..Default::default() });
    assert_eq!(r.back(), 1, "{}", r.text());
    assert_eq!(state(&fx.show("example.com", "user/bob")), state(&before), "{}", r.text());
    let q: Vec<_> = std::fs::read_dir(dir.join("ms.quarantine")).expect("quarantine").collect();
    assert_eq!(q.len(), 1, "the damaged file is kept aside");
}

#[test]
fn unknown_messages_in_lost_found_go_to_the_recovery_mailbox() {
    let fx = Fx::new();
    fx.mailbox("example.com", "user/joe", 6);
    let lf = fx.root().join("lost+found");
    std::fs::create_dir_all(&lf).expect("mkdir");
    std::fs::write(
        lf.join("#901"),
        b"Received: from x by y; Tue, 2 Mar 2021 10:00:00 +0100\r\nDelivered-To: carol@example.com\r\nSubject: orphan\r\n\r\nbody\r\n",
    )
    .expect("write");
    std::fs::write(lf.join("#902"), b"\x7fELF not mail").expect("write");
    let r = salvage(&fx, lf_opts(&lf));
    assert_eq!(r.back(), 1, "{}", r.text());
    let m = r.mailboxes.iter().find(|m| m.mailbox.starts_with("Recovered/")).expect("recovery mailbox");
    let show = fx.show("example.com", &m.mailbox);
    assert_eq!(show["messages"][0]["internal_date"], "2021-03-02T10:00:00+01:00");
    assert!(lf.join("#902").exists(), "a foreign file is left alone");
    let again = salvage(&fx, lf_opts(&lf));
    assert_eq!(again.back(), 0, "{}", again.text());
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(st.success());
}

#[test]
fn messages_whose_inodes_were_cleared_are_carved_from_the_image() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/dan", 20);
    let before = fx.show("example.com", "user/dan");
    // A raw "device": garbage, with some message files' bytes at block boundaries (where
    // a file system puts file data), then their inodes are cleared (the files vanish).
    let mut dev: Vec<u8> = (0..64 * 4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut at = 4096;
    for uid in [2u32, 5, 9, 14] {
        let f = dir.join(format!("{uid}."));
        let b = std::fs::read(&f).expect("read");
        dev[at..at + b.len()].copy_from_slice(&b);
        at += b.len().div_ceil(4096) * 4096 + 8192;
        std::fs::remove_file(&f).expect("clear the inode");
    }
    let img = fx.root().join("disk.img");
    std::fs::write(&img, &dev).expect("image");
    fx.reconstruct(&["example.com", "user/dan"]).expect_code(1, "reconstruct drops them");
    fx.mstore(&["verify"]).expect_code(4, "the losses are findings");
    let r = salvage(&fx, mstore::rescue::Options { images: vec![img.clone()], threads: 2, ..Default::default() });
    assert_eq!(r.back(), 4, "{}", r.text());
    assert_eq!(state(&fx.show("example.com", "user/dan")), state(&before), "{}", r.text());
    fx.mstore(&["verify"]).expect_code(0, "resolved");
    assert_eq!(std::fs::read(&img).expect("read"), dev, "the image is only read");
}

/// Every file and directory below `root`: (size, mtime, inode).
fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, (u64, i64, u64)> {
    let mut m = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).expect("stat");
        m.insert(p.clone(), (if md.is_dir() { 0 } else { md.len() }, md.mtime(), md.ino()));
        if md.is_dir() {
            for e in std::fs::read_dir(&p).expect("ls") {
                stack.push(e.expect("entry").path());
            }
        }
    }
    m
}

#[test]
fn the_whole_tree_above_the_partitions_lost_rescue_brings_back_everything() {
    let fx = Fx::new();
    fx.mailbox("example.com", "user/joe", 25);
    fx.mailbox("example.com", "user/joe/Sent", 8);
    fx.mailbox("foo.com", "admin", 12);
    fx.mailbox_on("example.com", "user/ann", 9, Some("d2"));
    let names = [
        ("example.com", "user/joe"),
        ("example.com", "user/joe/Sent"),
        ("foo.com", "admin"),
        ("example.com", "user/ann"),
    ];
    let before: Vec<_> = names.iter().map(|(d, n)| state(&fx.show(d, n))).collect();
    let listed = fx.listed();
    // One hit on ms-path's directory blocks: fsck reconnects the database home and the
    // default partition into lost+found, whole.
    let lf = fx.root().join("lost+found");
    to_lost_found(&fx.root().join("ms/database"), &lf);
    to_lost_found(&fx.root().join("ms/spool"), &lf);
    fx.mstore(&["ls"]).expect_code(8, "nothing opens without the database home");

    // A dry run changes nothing at all.
    let snap = snapshot(fx.root());
    let r = fx.mstore(&["rescue", "-n", "--lost-found", lf.to_str().expect("utf-8")]);
    assert!(r.code == 1 || r.code == 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("would"), "{}", r.stdout);
    assert_eq!(snapshot(fx.root()), snap, "a dry run changed the tree");

    let r = fx.mstore(&["rescue", "--lost-found", lf.to_str().expect("utf-8")]);
    r.expect_code(1, "rescue");
    assert!(r.stdout.contains("verify: no problems found"), "{}", r.stdout);
    assert_eq!(fx.listed(), listed, "the mailbox list came back from the database files found");
    for ((d, n), b) in names.iter().zip(&before) {
        assert_eq!(&state(&fx.show(d, n)), b, "{d} {n}\n{}", r.stdout);
    }
    // A second rescue right after the first changes nothing (but its own journal).
    let store_only = |m: std::collections::BTreeMap<PathBuf, (u64, i64, u64)>| {
        m.into_iter().filter(|(p, _)| !p.to_string_lossy().contains("/ms.rescue")).collect::<Vec<_>>()
    };
    let snap = store_only(snapshot(&fx.root().join("ms")));
    let r = fx.mstore(&["rescue", "--lost-found", lf.to_str().expect("utf-8")]);
    r.expect_code(0, "second rescue");
    assert_eq!(store_only(snapshot(&fx.root().join("ms"))), snap, "{}", r.stdout);
}

/// Lines of the `taken` list: (how, from, to).
fn taken(fx: &Fx) -> Vec<(String, String, String)> {
    let t = std::fs::read_to_string(fx.root().join("ms/ms.rescue/taken")).unwrap_or_default();
    t.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "{l}");
            (f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect()
}

/// The damage of the kill drill: a mailbox's directory blocks and the database home lost
/// (fsck put them in lost+found), three messages whose inodes were cleared (their bytes
/// on an image). Returns the lost+found, the image and the states to come back.
fn kill_drill_damage(fx: &Fx) -> (PathBuf, PathBuf, Vec<(Value, support::Essentials)>) {
    let dir = fx.mailbox("example.com", "user/joe", 10);
    let dan = fx.mailbox("example.com", "user/dan", 6);
    let before = vec![state(&fx.show("example.com", "user/joe")), state(&fx.show("example.com", "user/dan"))];
    let mut dev: Vec<u8> = (0..32 * 4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut at = 4096;
    for uid in [1u32, 3, 6] {
        let f = dan.join(format!("{uid}."));
        let b = std::fs::read(&f).expect("read");
        dev[at..at + b.len()].copy_from_slice(&b);
        at += b.len().div_ceil(4096) * 4096 + 4096;
        std::fs::remove_file(&f).expect("clear the inode");
    }
    let img = fx.root().join("disk.img");
    std::fs::write(&img, &dev).expect("image");
    let lf = fx.root().join("lost+found");
    lose_directory_blocks(&dir, &lf);
    to_lost_found(&fx.root().join("ms/database"), &lf);
    (lf, img, before)
}

#[test]
fn a_rescue_killed_at_any_point_continues_where_it_stopped() {
    // Each debug-build step (a journal event, a file put back, a database file restored)
    // is a kill point (MSTORE_RESCUE_KILL_AT: SIGKILL, as kill -9). After a kill at step
    // n, a plain rescue must bring everything back exactly once, not redo a finished
    // carving pass, and list every file it took.
    let mut n = 1;
    loop {
        let fx = Fx::new();
        let (lf, img, before) = kill_drill_damage(&fx);
        let lf_files = files_below(&lf).len();
        let args = ["rescue", "--lost-found", lf.to_str().expect("utf-8"), "--image", img.to_str().expect("utf-8")];
        let o = std::process::Command::new(support::MSTORE)
            .arg("-f")
            .arg(&fx.conf)
            .args(args)
            .env("MSTORE_RESCUE_KILL_AT", n.to_string())
            .output()
            .expect("run");
        if o.status.code().is_some() {
            // The whole run took fewer steps: it ran to its end.
            assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
            assert!(n > 10, "a rescue of this store takes more than {n} steps");
            break;
        }
        let journal = std::fs::read_to_string(fx.root().join("ms/ms.rescue/journal")).unwrap_or_default();
        let r = fx.mstore(&args);
        // Killed right after its last step: the run was complete, the next has nothing to do.
        let finished = journal.contains("\"event\":\"finished\"");
        r.expect_code(if finished { 0 } else { 1 }, &format!("the rescue after a kill at step {n}"));
        assert!(r.stdout.contains("verify: no problems found"), "kill at {n}:\n{}", r.stdout);
        // One carving pass in all, whether the kill came before or after it.
        let j = std::fs::read_to_string(fx.root().join(if finished {
            "ms/ms.rescue/journal.prev"
        } else {
            "ms/ms.rescue/journal"
        }))
        .expect("journal");
        assert_eq!(j.matches("\"event\":\"carved\"").count(), 1, "kill at {n}: the carving was redone:\n{j}");
        assert_eq!(j.matches("\"event\":\"store-files\"").count(), 1, "kill at {n}: the image was read again:\n{j}");
        if journal.contains("\"event\":\"run\"") && !finished {
            assert!(r.stdout.contains("continuing the salvage begun at"), "kill at {n}:\n{}", r.stdout);
        }
        let after = vec![state(&fx.show("example.com", "user/joe")), state(&fx.show("example.com", "user/dan"))];
        assert_eq!(after, before, "kill at step {n}:\n{}", r.stdout);
        // Every file taken is listed; nothing of the store is left in lost+found.
        let t = taken(&fx);
        assert!(t.iter().filter(|x| x.0 == "carved").count() >= 3, "kill at {n}: {t:?}");
        let joe = fx.show("example.com", "user/joe")["messages"].as_array().expect("messages").len();
        assert_eq!(
            t.iter().filter(|x| x.0 == "moved").map(|x| &x.2).collect::<std::collections::BTreeSet<_>>().len(),
            joe,
            "kill at {n}: {t:?}"
        );
        assert_eq!(files_below(&lf).len(), lf_files - joe, "kill at {n}: joe's message files moved, once");
        // Every file put back has the store's owner and mode (a kill between a move and
        // its chown would leave it root's).
        for (_, _, to) in &t {
            let m = std::fs::metadata(to).expect("stat");
            let p = Path::new(to);
            assert_eq!((m.uid(), m.mode() & 0o777), (fx_owner(&fx), 0o640), "kill at {n}: {}", p.display());
        }
        n += 1;
    }
}

/// The uid message files of the fixture belong to.
fn fx_owner(fx: &Fx) -> u32 {
    std::fs::metadata(fx.root().join("ms/spool")).expect("stat").uid()
}

#[test]
fn an_expunged_message_is_never_brought_back_from_an_older_copy() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/eve", 20);
    let backup = fx.root().join("backup-copy");
    copy_tree(&fx.root().join("ms/spool"), &backup);
    // After the copy: UID 5 is expunged, and a checkpoint compacts its expunge record away.
    let name = mstore::layout::MailboxName::parse("user/eve").expect("name");
    let mut mb = fx.store.open_mailbox_locked("example.com", &name).expect("open");
    assert_eq!(mb.expunge(Some(&[5])).expect("expunge"), vec![5]);
    mb.checkpoint().expect("checkpoint");
    drop(mb);
    let before = fx.show("example.com", "user/eve");
    // Then UID 7's file is lost.
    std::fs::remove_file(dir.join("7.")).expect("rm");
    fx.reconstruct(&["example.com", "user/eve"]).expect_code(1, "reconstruct drops 7");
    let r = salvage(&fx, mstore::rescue::Options { from: vec![backup], threads: 2, ..Default::default() });
    assert_eq!(r.back(), 1, "only the lost message comes back, never the expunged one:\n{}", r.text());
    assert_eq!(state(&fx.show("example.com", "user/eve")), state(&before), "{}", r.text());
    assert!(!dir.join("5.").exists(), "an expunged message came back");
}

#[test]
fn a_mailbox_whose_index_and_log_inodes_were_cleared_gets_its_flags_from_the_image() {
    // Its message files and header survived; its index and log vanished, but their blocks
    // are on the image. Nothing is put back (every file is there): the records found on
    // the image must still reach reconstruct, or it renumbers the files and drops flags.
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/kim", 8);
    let before = fx.show("example.com", "user/kim");
    let mut dev: Vec<u8> = (0..16 * 4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut at = 4096;
    for name in ["ms.index", "ms.log"] {
        let b = std::fs::read(dir.join(name)).expect("read");
        assert!(at + b.len() < dev.len(), "the image is big enough");
        dev[at..at + b.len()].copy_from_slice(&b);
        at += b.len().div_ceil(4096) * 4096 + 4096;
        std::fs::remove_file(dir.join(name)).expect("clear the inode");
    }
    let img = fx.root().join("disk.img");
    std::fs::write(&img, &dev).expect("image");
    let r = salvage(&fx, mstore::rescue::Options { images: vec![img], threads: 2, ..Default::default() });
    assert_eq!(state(&fx.show("example.com", "user/kim")), state(&before), "{}", r.text());
    fx.mstore(&["verify"]).expect_code(0, "nothing left to find");
}

#[test]
fn foreign_truncated_and_garbage_inputs_are_findings_never_panics() {
    // A lost+found full of what is not ours or is cut short, and images that are garbage,
    // empty, a text file, a directory, or missing: salvage says what it could not use,
    // puts nothing wrong back, changes nothing in the store, never panics.
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/eve", 6);
    let before = state(&fx.show("example.com", "user/eve"));
    let lf = fx.root().join("lost+found");
    std::fs::create_dir_all(&lf).expect("lost+found");
    let junk: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
    std::fs::write(lf.join("#901"), &junk).expect("junk");
    std::fs::write(lf.join("#902"), b"\x7fELF\x02\x01\x01\x00").expect("elf");
    std::fs::write(lf.join("#903"), b"").expect("empty");
    std::os::unix::fs::symlink("/etc/shadow", lf.join("#904")).expect("symlink");
    let sparse = std::fs::File::create(lf.join("#905")).expect("sparse");
    sparse.set_len(3 << 30).expect("a 3 GiB hole");
    // Store files cut short: a header, an index and a log of eve's, each halved, and a
    // snapshot of the mailbox list cut to 40 bytes.
    for (i, name) in ["ms.header", "ms.index", "ms.log"].iter().enumerate() {
        let b = std::fs::read(dir.join(name)).expect("read");
        std::fs::write(lf.join(format!("#91{i}")), &b[..b.len() / 2]).expect("cut");
    }
    let db: Vec<PathBuf> = std::fs::read_dir(fx.root().join("ms/database"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    if let Some(p) = db.first() {
        let b = std::fs::read(p).expect("read");
        std::fs::write(lf.join("#920"), &b[..b.len().min(40)]).expect("cut snapshot");
    }
    let garbage = fx.root().join("garbage.img");
    std::fs::write(&garbage, &junk).expect("garbage");
    let text = fx.root().join("notes.txt");
    std::fs::write(&text, b"this is not a file system\n").expect("text");
    let empty = fx.root().join("empty.img");
    std::fs::write(&empty, b"").expect("empty");
    let a_dir = fx.root().join("a-directory");
    std::fs::create_dir_all(&a_dir).expect("mkdir");
    let missing = fx.root().join("no-such.img");
    let snap = support::message_files(&fx.root().join("ms"));
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let mut args: Vec<String> = vec!["salvage".into(), "--lost-found".into(), s(&lf)];
    for img in [&garbage, &text, &empty, &a_dir, &missing] {
        args.extend(["--image".to_string(), s(img)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = fx.mstore(&args);
    assert!(r.code == 0 || r.code == 8, "{}{}", r.stdout, r.stderr);
    for bad in [&a_dir, &missing] {
        assert!(r.stdout.contains(&format!("{}", bad.display())), "{} is not named:\n{}", bad.display(), r.stdout);
    }
    assert!(r.stdout.contains("cannot be searched"), "{}", r.stdout);
    // A store file cut short that nothing can be used of is named, with what it is (a log
    // cut short is used up to its last whole record; an index record by record).
    assert!(
        r.stdout.lines().any(|l| l.contains("lost+found/#910") && l.contains("ms.header")),
        "#910 (ms.header) is not named:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("neither store files nor messages"), "{}", r.stdout);
    assert_eq!(state(&fx.show("example.com", "user/eve")), before, "{}", r.stdout);
    assert_eq!(support::message_files(&fx.root().join("ms")), snap, "no message file changed:\n{}", r.stdout);
    for n in ["#901", "#902", "#903", "#904", "#905", "#910", "#911", "#912"] {
        assert!(std::fs::symlink_metadata(lf.join(n)).is_ok(), "{n} was taken:\n{}", r.stdout);
    }
    fx.mstore(&["verify"]).expect_code(0, "the store is as it was");
}

#[test]
fn a_damaged_copy_in_lost_found_stays_there_when_the_good_bytes_come_back() {
    // fsck moved a whole mailbox directory into lost+found; one of its message files was
    // hit by the failure. The good bytes come from a backup copy: the damaged file is left
    // in lost+found (named as such), not delivered to a recovery mailbox.
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/lou", 10);
    let before = fx.show("example.com", "user/lou");
    let backup = fx.root().join("backup-copy");
    copy_tree(&fx.root().join("ms/spool"), &backup);
    support::flip(&dir.join("4."), 200, 3);
    let lf = fx.root().join("lost+found");
    let moved = to_lost_found(&dir, &lf);
    let r = salvage(
        &fx,
        mstore::rescue::Options { lost_found: vec![lf.clone()], from: vec![backup], threads: 2, ..Default::default() },
    );
    assert_eq!(state(&fx.show("example.com", "user/lou")), state(&before), "{}", r.text());
    assert!(moved.join("4.").exists(), "the damaged copy stays in lost+found:\n{}", r.text());
    assert!(r.text().contains("a damaged copy of a message whose good bytes are in the store"), "{}", r.text());
    assert!(r.mailboxes.iter().all(|m| m.unknown == 0), "{}", r.text());
    fx.mstore(&["verify"]).expect_code(0, "nothing left");
}
