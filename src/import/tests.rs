//! Library-level tests of import and export: the round-trip property (store → export →
//! import → export → import keeps bytes, flags, keywords and dates) for mbox and Maildir,
//! resuming after an interrupted run, and batches.

use proptest::prelude::*;

use super::*;
use crate::config::Config;
use crate::store::{NewMessage, Store};

fn store(dir: &Path) -> Store {
    let conf = dir.join("ms.conf");
    std::fs::write(&conf, format!("ms-path: {}\nfsync: no\n", dir.join("ms").display())).expect("conf");
    Store::init(Config::load(&conf).expect("config")).expect("store")
}

fn name(s: &str) -> MailboxName {
    MailboxName::parse(s).expect("name")
}

#[derive(Clone, Debug)]
struct Gen {
    bytes: Vec<u8>,
    flags: u32,
    keywords: Vec<String>,
    date: DateTime,
}

const BODY_LINES: &[&str] = &[
    "From here",
    ">From there",
    ">>From x",
    "From a Wed Jul  1 13:17:17 1998",
    "",
    "plain text",
    "Status: RO",
    " indented",
    "From: not a header here",
];
const KEYWORDS: &[&str] = &["$Work", "$Junk", "later", "x"];

fn message() -> impl Strategy<Value = Gen> {
    (
        any::<bool>(),                                                 // CRLF
        prop::collection::vec(prop::sample::select(BODY_LINES), 0..8), // body
        0u8..4, // end: 0 newline, 1 none, 2 header-only, 3 blank end
        0u32..32,
        prop::collection::btree_set(prop::sample::select(KEYWORDS), 0..3),
        0i64..4_000_000_000,
        -720i16..=840,
        0u32..1000,
    )
        .prop_map(|(crlf, body, end, flags, kw, unix, off, n)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut s = format!("Subject: message {n}{eol}From: a@example.com{eol}");
            match end {
                2 => {}
                _ => {
                    s.push_str(eol);
                    s.push_str(&body.join(eol));
                    if end == 0 && !body.is_empty() {
                        s.push_str(eol);
                    }
                    if end == 3 {
                        s.push_str(eol);
                        s.push_str(eol);
                    }
                }
            }
            Gen {
                bytes: s.into_bytes(),
                flags,
                keywords: kw.into_iter().map(str::to_string).collect(),
                date: DateTime { unix, offset_minutes: off },
            }
        })
}

/// (bytes, system flags, sorted keywords, date) of every message, in UID order.
fn contents(st: &Store, n: &str) -> Vec<(Vec<u8>, u32, Vec<String>, DateTime)> {
    let mb = st.open_mailbox("example.com", &name(n)).expect("open");
    mb.records()
        .iter()
        .map(|r| {
            let mut kw = mb.user_flag_names(r.user_flags);
            kw.sort();
            (
                mb.read_message(r.uid).expect("read").to_vec(),
                r.system_flags.0,
                kw,
                DateTime { unix: r.internal_date, offset_minutes: r.internal_offset },
            )
        })
        .collect()
}

fn import_mbox_file(st: &Store, file: &Path, into: &str) {
    let s = import_mbox(st, "example.com", &name(into), &[file.to_path_buf()], &Options::default(), &NoProgress, None)
        .expect("import");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn export_then_import_keeps_bytes_flags_keywords_and_dates(msgs in prop::collection::vec(message(), 1..8)) {
        let tmp = tempfile::tempdir().expect("tmp");
        let st = store(tmp.path());
        let mut mb = st.create_mailbox("example.com", &name("src"), CreateOptions::default()).expect("create");
        let batch: Vec<NewMessage<'_>> = msgs
            .iter()
            .map(|m| NewMessage {
                bytes: &m.bytes,
                internal_date: Some(m.date),
                system_flags: m.flags,
                user_flags: m.keywords.clone(),
            })
            .collect();
        mb.append(&batch).expect("append");
        drop(mb);
        let src = contents(&st, "src");

        // mbox: store → export → import → export → import.
        let e1 = tmp.path().join("1.mbox");
        let s = export::export_mbox(&st, "example.com", &name("src"), &e1, &NoProgress).expect("export");
        prop_assert_eq!(s.changed, 0, "{:?}", s.problems);
        import_mbox_file(&st, &e1, "m1");
        let e2 = tmp.path().join("2.mbox");
        export::export_mbox(&st, "example.com", &name("m1"), &e2, &NoProgress).expect("export");
        import_mbox_file(&st, &e2, "m2");
        let m1 = contents(&st, "m1");
        prop_assert_eq!(&m1, &src);
        prop_assert_eq!(&contents(&st, "m2"), &m1);
        // Exporting what was imported gives the same file.
        prop_assert_eq!(std::fs::read(&e1).expect("read"), std::fs::read(&e2).expect("read"));

        // Maildir: the zone of a date is not kept (mtime is seconds), all else is.
        let d1 = tmp.path().join("md1");
        export::export_maildir(&st, "example.com", &name("src"), &d1, false, &NoProgress).expect("export");
        let s = import_maildir(&st, "example.com", &name("d1"), &d1, &Options::default(), &NoProgress, None).expect("import");
        prop_assert!(s.errors.is_empty(), "{:?}", s.errors);
        let d2 = tmp.path().join("md2");
        export::export_maildir(&st, "example.com", &name("d1"), &d2, false, &NoProgress).expect("export");
        import_maildir(&st, "example.com", &name("d2"), &d2, &Options::default(), &NoProgress, None).expect("import");
        let utc = |v: Vec<(Vec<u8>, u32, Vec<String>, DateTime)>| -> Vec<(Vec<u8>, u32, Vec<String>, i64)> {
            v.into_iter().map(|(b, f, k, d)| (b, f, k, d.unix)).collect()
        };
        let d1c = utc(contents(&st, "d1"));
        prop_assert_eq!(&d1c, &utc(src));
        prop_assert_eq!(&utc(contents(&st, "d2")), &d1c);
    }
}

fn mbox_of(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let date = DateTime { unix: 1_500_000_000 + i as i64, offset_minutes: 0 };
        let msg = format!("Subject: {i}\n\nbody {i}\n");
        mbox::write_message(&mut out, msg.as_bytes(), date, SystemFlags::SEEN, &["$K".to_string()]).expect("write");
    }
    out
}

#[test]
fn a_rerun_resumes_and_keeps_true_duplicates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    // The source holds the same message twice (a true duplicate) and 9 others.
    let mut data = mbox_of(10);
    data.extend_from_slice(&mbox_of(1));
    let file = tmp.path().join("in.mbox");
    std::fs::write(&file, &data).expect("write");
    // A first run that stopped after 4 messages (as if interrupted after a batch).
    let part = tmp.path().join("part.mbox");
    std::fs::write(&part, mbox_of(4)).expect("write");
    import_mbox_file(&st, &part, "box");
    // The re-run imports the rest, keeps the duplicate, and appends nothing twice.
    let s = import_mbox(
        &st,
        "example.com",
        &name("box"),
        std::slice::from_ref(&file),
        &Options::default(),
        &NoProgress,
        None,
    )
    .expect("import");
    assert_eq!((s.imported(), s.already_present()), (7, 4));
    assert_eq!(contents(&st, "box").len(), 11);
    let s = import_mbox(
        &st,
        "example.com",
        &name("box"),
        std::slice::from_ref(&file),
        &Options::default(),
        &NoProgress,
        None,
    )
    .expect("import");
    assert_eq!((s.imported(), s.already_present()), (0, 11));
    // --duplicates appends anyway.
    let opts = Options { duplicates: true, ..Options::default() };
    let s = import_mbox(&st, "example.com", &name("box"), &[file], &opts, &NoProgress, None).expect("import");
    assert_eq!(s.imported(), 11);
}

#[test]
fn batches_commit_separately_and_cancel_stops_after_a_batch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    let file = tmp.path().join("in.mbox");
    std::fs::write(&file, mbox_of(25)).expect("write");
    let opts = Options { batch_messages: 10, ..Options::default() };
    // Three batches (10, 10, 5): every message lands, in source order.
    let s = import_mbox(&st, "example.com", &name("b"), std::slice::from_ref(&file), &opts, &NoProgress, None)
        .expect("import");
    assert_eq!(s.imported(), 25);
    let mb = st.open_mailbox("example.com", &name("b")).expect("open");
    assert_eq!(mb.records().len(), 25);
    let subjects: Vec<Vec<u8>> =
        mb.records().iter().map(|r| mb.read_message(r.uid).expect("read")[..11].to_vec()).collect();
    assert_eq!(subjects[0], b"Subject: 0\n");
    assert_eq!(subjects[24], b"Subject: 24");
    // A cancel flag already set: nothing is read, the mailbox exists, the run says so.
    let cancel = AtomicBool::new(true);
    let s = import_mbox(&st, "example.com", &name("c"), &[file], &opts, &NoProgress, Some(&cancel)).expect("import");
    assert!(s.interrupted);
    assert_eq!(s.imported(), 0);
    assert!(s.render_text().contains("interrupted"));
}

#[test]
fn after_a_crash_orphans_are_refused_then_reconstructed_and_get_their_flags_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    let file = tmp.path().join("in.mbox");
    std::fs::write(&file, mbox_of(3)).expect("write");
    let first = tmp.path().join("first.mbox");
    std::fs::write(&first, mbox_of(1)).expect("write");
    import_mbox_file(&st, &first, "r");
    // A crash after the message files of the next batch were written, before its commit:
    // files `2.` and `3.` with their dates as mtimes, and no records.
    let dir = st.open_mailbox("example.com", &name("r")).expect("open").place().dir.clone();
    for i in 1..3u32 {
        let msg = format!("Subject: {i}\n\nbody {i}\n");
        let written = crate::fs::create_new_file(
            &crate::fs::RealFs,
            &dir,
            &format!("{}.", i + 1),
            msg.as_bytes(),
            Some(1_500_000_000 + i64::from(i)),
            crate::io::Durability::NoSync,
        )
        .expect("orphan");
        assert!(written);
    }
    let refused = import_mbox(
        &st,
        "example.com",
        &name("r"),
        std::slice::from_ref(&file),
        &Options::default(),
        &NoProgress,
        None,
    );
    match refused {
        Err(Error::NeedsRepair { reason, fix }) => {
            assert!(reason.contains("2 message files above its last UID"), "{reason}");
            assert!(fix.starts_with("reconstruct -f"), "{fix}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let sel = crate::reconstruct::Selection {
        domain: "example.com".into(),
        user: None,
        recursive: false,
        mailboxes: vec!["r".into()],
    };
    let ropts = crate::reconstruct::Options {
        dry_run: false,
        verify_content: false,
        quarantine: false,
        threads: 1,
        io_threads: None,
        mmap: false,
        all_changes: false,
        keep_uids: false,
        spill_at: None,
    };
    crate::reconstruct::run(&st, &sel, &ropts, &crate::reconstruct::NoProgress).expect("reconstruct");
    assert_eq!(contents(&st, "r").iter().map(|c| c.1).collect::<Vec<_>>(), vec![SystemFlags::SEEN, 0, 0]);
    let s =
        import_mbox(&st, "example.com", &name("r"), &[file], &Options::default(), &NoProgress, None).expect("import");
    assert_eq!((s.imported(), s.already_present()), (0, 3));
    let c = contents(&st, "r");
    assert_eq!(c.iter().map(|c| c.1).collect::<Vec<_>>(), vec![SystemFlags::SEEN; 3]);
    assert!(c.iter().all(|c| c.2 == vec!["$K".to_string()]));
}

#[test]
fn records_given_by_an_append_keep_their_flags_on_a_rerun() {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    let file = tmp.path().join("in.mbox");
    std::fs::write(&file, mbox_of(3)).expect("write");
    // An appended record (date "given") with no flags: the user may have cleared them.
    let mut mb = st.create_mailbox("example.com", &name("r"), CreateOptions::default()).expect("create");
    let msg = b"Subject: 0\n\nbody 0\n";
    mb.append(&[NewMessage {
        bytes: msg,
        internal_date: Some(DateTime { unix: 1_500_000_000, offset_minutes: 0 }),
        system_flags: 0,
        user_flags: vec![],
    }])
    .expect("append");
    drop(mb);
    let s =
        import_mbox(&st, "example.com", &name("r"), &[file], &Options::default(), &NoProgress, None).expect("import");
    assert_eq!((s.imported(), s.already_present()), (2, 1));
    let c = contents(&st, "r");
    assert_eq!(c[0].1, 0);
    assert_eq!(c[1].1, SystemFlags::SEEN);
}
