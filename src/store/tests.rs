//! Store API tests: every operation, then again after reopening.

use super::*;
use crate::flags::SystemFlags;
use crate::io::Durability;
use crate::message::DateTime;

fn store(dir: &Path) -> Store {
    let text =
        format!("ms-path: {}\npartition-d2: {}\nfsync: no\n", dir.join("ms").display(), dir.join("d2").display());
    let config = Config::parse(&dir.join("ms.conf"), text.as_bytes()).expect("config");
    assert_eq!(config.durability, Durability::NoSync);
    Store::init(config).expect("init")
}

fn name(s: &str) -> MailboxName {
    MailboxName::parse(s).expect("name")
}

fn msg(i: u32) -> Vec<u8> {
    format!(
        "From: a{i}@example.com\r\nSubject: test {i}\r\nDate: Mon, 1 Jan 2024 10:00:{:02} +0100\r\n\r\nbody {i}\r\n",
        i % 60
    )
    .into_bytes()
}

fn new<'a>(bytes: &'a [u8], date: i64, flags: u32, user: &[&str]) -> NewMessage<'a> {
    NewMessage {
        bytes,
        internal_date: Some(DateTime { unix: date, offset_minutes: 60 }),
        system_flags: flags,
        user_flags: user.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn append_flags_expunge_survive_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let inbox = name("user/joe");
    let mut mb = st.create_mailbox("example.com", &inbox, CreateOptions::default()).expect("create");
    let bodies: Vec<Vec<u8>> = (1..=5).map(msg).collect();
    let batch: Vec<NewMessage<'_>> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| new(b, 1_700_000_000 + i as i64, SystemFlags::SEEN, &["$Work"]))
        .collect();
    assert_eq!(mb.append(&batch).expect("append"), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        mb.store_flags(&[2, 3], FlagOp::Add, SystemFlags::FLAGGED | SystemFlags::DELETED, &["Junk".into()])
            .expect("flags"),
        2
    );
    assert_eq!(mb.store_flags(&[1], FlagOp::Remove, SystemFlags::SEEN, &["$Work".into()]).expect("flags"), 1);
    assert_eq!(mb.expunge(None).expect("expunge"), vec![2, 3]);
    drop(mb);

    let mb = st.open_mailbox("example.com", &inbox).expect("reopen");
    let uids: Vec<u32> = mb.records().iter().map(|r| r.uid).collect();
    assert_eq!(uids, vec![1, 4, 5]);
    assert_eq!(mb.last_uid(), 5);
    let r1 = mb.record(1).expect("uid 1");
    assert_eq!(r1.system_flags.0, 0);
    assert_eq!(r1.user_flags.0, 0);
    let r4 = mb.record(4).expect("uid 4");
    assert_eq!(r4.system_flags.0, SystemFlags::SEEN);
    assert_eq!(mb.user_flag_names(r4.user_flags), vec!["$Work".to_string()]);
    assert_eq!(r4.internal_date, 1_700_000_003);
    assert_eq!(r4.internal_offset, 60);
    assert_eq!(r4.sent_date, Some(1_704_099_604)); // 2024-01-01T09:00:04Z
    assert_eq!(&*mb.read_message(4).expect("read"), &bodies[3][..]);
    assert!(!mb.message_path(2).exists(), "expunged file removed");
    assert_eq!(mb.header().flags, vec![Some("$Work".to_string()), Some("Junk".to_string())]);
    // The file's mtime is the internal date.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(mb.message_path(5)).expect("stat").mtime(), 1_700_000_004);
    // Cache records decode and name the right UID.
    let cache = mb.read_cache().expect("cache");
    let e = crate::codec::cache::decode(&cache, r4.cache_offset as usize, Some(r4.cache_len)).expect("cache record");
    assert_eq!(e.uid, 4);
    assert_eq!(e.envelope[1], Some(&b"test 4"[..]));
    // Appending after reopen continues the UIDs.
    let mut mb = st.open_mailbox_locked("example.com", &inbox).expect("lock");
    assert_eq!(mb.append(&[new(&bodies[0], 1, 0, &[])]).expect("append"), vec![6]);
}

#[test]
fn checkpoint_compacts_the_log_and_keeps_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let n = name("admin");
    let mut mb = st.create_mailbox("example.com", &n, CreateOptions::default()).expect("create");
    let body = msg(1);
    for i in 0..1500u32 {
        mb.append(&[new(&body, i64::from(i), 0, &[])]).expect("append");
        if i % 3 == 0 {
            mb.store_flags(&[i + 1], FlagOp::Add, SystemFlags::ANSWERED, &[]).expect("flag");
        }
    }
    assert!(mb.index_header().generation > 1, "a checkpoint ran");
    let expect: Vec<_> = mb.records().to_vec();
    drop(mb);
    let mb = st.open_mailbox("example.com", &n).expect("reopen");
    assert_eq!(mb.records(), &expect[..]);
    // Index and compacted log agree independently.
    let log = std::fs::read(mb.place().dir.join(layout::LOG_FILE)).expect("log");
    let scan = crate::codec::changelog::scan(&log).expect("scan");
    let from_log = scan
        .records
        .iter()
        .filter_map(|(_, _, r)| match r {
            crate::codec::changelog::LogRecord::Message(m) => Some(m.uid),
            _ => None,
        })
        .count();
    assert!(from_log >= mb.index_header().message_count as usize);
}

#[test]
fn torn_log_tail_is_ignored_and_cut_by_next_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let n = name("user/joe");
    let mut mb = st.create_mailbox("example.com", &n, CreateOptions::default()).expect("create");
    let body = msg(1);
    mb.append(&[new(&body, 10, 0, &[])]).expect("append");
    let log = mb.place().dir.join(layout::LOG_FILE);
    drop(mb);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open log");
    std::io::Write::write_all(&mut f, &[0x90, 0, 0, 0, 3, 0, 0]).expect("torn write");
    drop(f);
    let mut mb = st.open_mailbox_locked("example.com", &n).expect("open with torn tail");
    assert_eq!(mb.records().len(), 1);
    mb.append(&[new(&body, 11, 0, &[])]).expect("append after torn tail");
    drop(mb);
    let mb = st.open_mailbox("example.com", &n).expect("reopen");
    assert_eq!(mb.records().iter().map(|r| r.uid).collect::<Vec<_>>(), vec![1, 2]);
    let scan = crate::codec::changelog::scan(&std::fs::read(&log).expect("log")).expect("scan");
    assert_eq!(scan.end, crate::codec::changelog::LogEnd::Clean);
}

#[test]
fn orphan_message_file_keeps_its_uid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let n = name("user/joe");
    let mut mb = st.create_mailbox("example.com", &n, CreateOptions::default()).expect("create");
    // A crash after the rename of 1. but before the log commit leaves an orphan file.
    std::fs::write(mb.place().dir.join("1."), b"orphan").expect("orphan");
    let body = msg(1);
    assert_eq!(mb.append(&[new(&body, 10, 0, &[])]).expect("append"), vec![2]);
    assert_eq!(std::fs::read(mb.place().dir.join("1.")).expect("read"), b"orphan");
    assert_eq!(mb.last_uid(), 2);
}

#[test]
fn list_rename_delete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    for (d, n) in [
        ("example.com", "user/joe"),
        ("example.com", "user/joe/pub"),
        ("example.com", "user/joe/pub/a b"),
        ("foo.com", "admin"),
    ] {
        st.create_mailbox(d, &name(n), CreateOptions::default()).expect("create");
    }
    let listed: Vec<String> = st.list(Some("example.com")).expect("list").iter().map(|e| e.name.to_string()).collect();
    assert_eq!(listed, vec!["user/joe", "user/joe/pub", "user/joe/pub/a b"]);
    assert!(matches!(
        st.create_mailbox("example.com", &name("user/joe"), CreateOptions::default()),
        Err(Error::MailboxExists { .. })
    ));
    let mut mb = st.open_mailbox_locked("example.com", &name("user/joe/pub/a b")).expect("open");
    let body = msg(3);
    mb.append(&[new(&body, 5, 0, &[])]).expect("append");
    drop(mb);
    st.rename_mailbox("example.com", &name("user/joe/pub"), &name("user/joe/Öffentlich")).expect("rename");
    let listed: Vec<String> = st.list(Some("example.com")).expect("list").iter().map(|e| e.name.to_string()).collect();
    assert_eq!(listed, vec!["user/joe", "user/joe/&ANY-ffentlich", "user/joe/&ANY-ffentlich/a b"]);
    let mb = st.open_mailbox("example.com", &name("user/joe/&ANY-ffentlich/a b")).expect("open renamed");
    assert_eq!(mb.records().len(), 1);
    assert_eq!(mb.header().name, "user/joe/&ANY-ffentlich/a b");
    drop(mb);
    let moved = st.delete_mailbox("example.com", &name("user/joe/&ANY-ffentlich")).expect("delete");
    assert!(moved.join(layout::HEADER_FILE).exists(), "files moved aside, not unlinked");
    let listed: Vec<String> = st.list(Some("example.com")).expect("list").iter().map(|e| e.name.to_string()).collect();
    assert_eq!(listed, vec!["user/joe", "user/joe/&ANY-ffentlich/a b"]);
    st.open_mailbox("example.com", &name("user/joe/&ANY-ffentlich/a b")).expect("child survives");
    assert_eq!(st.list(None).expect("all").len(), 3);
}

#[test]
fn damaged_files_name_the_repair() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let n = name("user/joe");
    let mb = st.create_mailbox("example.com", &n, CreateOptions::default()).expect("create");
    let index = mb.place().dir.join(layout::INDEX_FILE);
    drop(mb);
    let mut b = std::fs::read(&index).expect("read");
    b[50] ^= 1;
    std::fs::write(&index, b).expect("write");
    let err = st.open_mailbox("example.com", &n).expect_err("damaged");
    let text = err.to_string();
    assert!(text.contains("ms.index") && text.contains("byte offset 0") && text.contains("reconstruct -f"), "{text}");
    assert!(text.ends_with("example.com user/joe"), "{text}");
}

#[test]
fn an_empty_message_is_refused_and_nothing_of_its_batch_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = store(tmp.path());
    let n = name("user/joe");
    let mut mb = st.create_mailbox("example.com", &n, CreateOptions::default()).expect("create");
    let body = msg(1);
    let err = mb.append(&[new(&body, 10, 0, &[]), new(b"", 11, 0, &[])]).expect_err("empty message");
    assert!(err.to_string().contains("message 2 of 2 is empty"), "{err}");
    assert!(mb.records().is_empty());
    assert!(!mb.message_path(1).exists());
    assert_eq!(mb.append(&[new(&body, 10, 0, &[])]).expect("append"), vec![1]);
}
