//! Import and export against real mail: every mbox file and Maildir folder of
//! `../shared/corpus-ext` imports with the counts and flags that an independent reader
//! (Python's standard `mailbox` module) finds; a Maildir we export reads back in Python
//! with the same bytes and flags; the command line (summary, exit status, resume, refusal
//! of a mailbox with orphans, of a non-mailbox file).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mstore::config::Config;
use mstore::flags::SystemFlags;
use mstore::import::{self, NoProgress, Options};
use mstore::layout::MailboxName;
use mstore::store::{NewMessage, Store};

/// `../shared/corpus-ext`, or `None` (the test returns) where it is missing: see
/// `support::require`.
fn corpus(what: &str) -> Option<PathBuf> {
    support::shared_corpus(what)
}

fn store(dir: &Path) -> (Store, PathBuf) {
    let conf = dir.join("ms.conf");
    let (u, g) = mstore::cli::current_user_and_group();
    std::fs::write(
        &conf,
        format!("ms-path: {}\nruntime-user: {u}\nruntime-group: {g}\nfsync: no\n", dir.join("ms").display()),
    )
    .expect("conf");
    let st = Store::init(Config::load(&conf).expect("config")).expect("store");
    (st, conf)
}

fn name(s: &str) -> MailboxName {
    MailboxName::parse(s).expect("name")
}

/// Run a Python program; its standard output parsed as JSON.
fn python(program: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3").arg("-c").arg(program).args(args).output().expect("python3 runs");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// System flags as Python's mbox letters (R seen, A answered, F flagged, D deleted).
fn mbox_letters(flags: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (SystemFlags::SEEN, 'R'),
        (SystemFlags::DELETED, 'D'),
        (SystemFlags::FLAGGED, 'F'),
        (SystemFlags::ANSWERED, 'A'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// System flags as Maildir letters, sorted (D draft, F, R, S, T).
fn maildir_letters(flags: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (SystemFlags::DRAFT, 'D'),
        (SystemFlags::FLAGGED, 'F'),
        (SystemFlags::ANSWERED, 'R'),
        (SystemFlags::SEEN, 'S'),
        (SystemFlags::DELETED, 'T'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

const PY_MBOX: &str = r#"
import mailbox, sys, json, gzip, bz2, lzma, tempfile, os
out = {}
for p in sys.argv[1:]:
    data = open(p, 'rb').read()
    if data[:2] == b'\x1f\x8b': data = gzip.decompress(data)
    elif data[:3] == b'BZh': data = bz2.decompress(data)
    elif data[:6] == b'\xfd7zXZ\x00': data = lzma.decompress(data)
    elif data[:4] == b'LZIP': continue  # no lzip in Python's standard library
    t = tempfile.NamedTemporaryFile(delete=False)
    t.write(data); t.close()
    box = mailbox.mbox(t.name)
    flags = []
    for m in box:
        f = m.get_flags()
        flags.append(''.join(c for c in 'RDFA' if c in f))
    out[p] = flags
    os.unlink(t.name)
print(json.dumps(out))
"#;

/// (file name, Python's count, our count, why they differ).
const PYTHON_DIFFERS: &[(&str, usize, usize, &str)] = &[(
    "separators2.sep",
    3,
    2,
    "`From this principle, all of life ...` starts a line but carries no date: body text, not a From_ line",
)];

/// Counts of Mail::Mbox::MessageParser (`expected/number_*.stdout`) that we do not share.
const MESSAGEPARSER_DIFFERS: &[(&str, usize, usize, &str)] = &[
    (
        "mailarc-1.txt",
        13,
        16,
        "it keeps From_ lines inside multipart bodies and after a line without a blank in the message before",
    ),
    ("mailarc-1-dos.txt", 13, 16, "the same file with CRLF line ends"),
    ("mailarc-2.txt", 4, 5, "it skips a From_ line inside `----- Begin Included Message -----`"),
    ("mailarc-3.txt", 13, 17, "as mailarc-1"),
];

#[test]
fn every_mbox_file_imports_with_pythons_counts_and_flags() {
    let Some(ext) = corpus("importing every mbox file of corpus-ext") else { return };
    let mut files: Vec<PathBuf> = Vec::new();
    for d in ["mbox-messageparser/mailboxes", "perl-mail-box"] {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(ext.join(d)).expect("readdir").map(|e| e.expect("entry").path()).collect();
        v.sort();
        files.extend(v);
    }
    assert!(files.len() >= 20, "{files:?}");
    let args: Vec<String> = files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let py = python(PY_MBOX, &arg_refs);
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, _) = store(tmp.path());
    let mut ours_by_file = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let file_name = f.file_name().expect("name").to_string_lossy().into_owned();
        let mbname = name(&format!("mbox/{i}"));
        let s = import::import_mbox(
            &st,
            "example.com",
            &mbname,
            std::slice::from_ref(f),
            &Options::default(),
            &NoProgress,
            None,
        )
        .expect("import");
        if file_name == "non-mailbox.txt.gz" {
            // Refused, clearly, and nothing imported.
            assert_eq!(s.imported(), 0);
            let e = s.errors.first().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("not an mbox file") && e.contains("byte offset 0"), "{e}");
            continue;
        }
        assert!(s.errors.is_empty(), "{}: {:?}", f.display(), s.errors);
        let mb = st.open_mailbox("example.com", &mbname).expect("open");
        let ours: Vec<String> = mb.records().iter().map(|r| mbox_letters(r.system_flags.0)).collect();
        assert_eq!(ours.len() as u64, s.imported());
        ours_by_file.insert(file_name.clone(), ours.len());
        // Every message is whole: the bytes hash as recorded, nothing empty.
        for r in mb.records() {
            let b = mb.read_message(r.uid).expect("read");
            assert!(!b.is_empty());
            assert_eq!(blake3::hash(&b).as_bytes(), &r.content_hash);
        }
        let key = f.to_string_lossy().into_owned();
        let Some(theirs) = py.get(&key) else {
            assert!(file_name.ends_with(".lz"), "python skipped {key}");
            continue;
        };
        let theirs: Vec<String> =
            theirs.as_array().expect("array").iter().map(|v| v.as_str().expect("str").to_string()).collect();
        match PYTHON_DIFFERS.iter().find(|d| d.0 == file_name) {
            Some(&(_, py_count, our_count, why)) => {
                assert_eq!((theirs.len(), ours.len()), (py_count, our_count), "{file_name}: {why}");
            }
            None => {
                assert_eq!(ours.len(), theirs.len(), "{file_name}: message count differs from Python's");
                assert_eq!(ours, theirs, "{file_name}: flags differ from Python's");
            }
        }
    }
    // The compressed copies hold the same messages as the plain files.
    for c in ["mailarc-2.txt.gz", "mailarc-2.txt.bz2", "mailarc-2.txt.xz", "mailarc-2.txt.lz"] {
        assert_eq!(ours_by_file.get(c), ours_by_file.get("mailarc-2.txt"), "{c}");
    }
    assert_eq!(ours_by_file.get("mailbox with space.txt.gz"), Some(&3));
    assert_eq!(ours_by_file.get("mbox.src"), Some(&45));
    assert_eq!(ours_by_file.get("mbox.win"), Some(&45));
    // That project's own expected counts, and where we part ways.
    for e in ["mailarc-1", "mailarc-1-dos", "mailarc-2", "mailarc-3"] {
        let text = std::fs::read_to_string(ext.join(format!("mbox-messageparser/expected/number_{e}.stdout")))
            .expect("expected file");
        let expected = text.lines().filter(|l| !l.trim().is_empty()).count();
        let file = format!("{e}.txt");
        let ours = ours_by_file[&file];
        match MESSAGEPARSER_DIFFERS.iter().find(|d| d.0 == file) {
            Some(&(_, theirs, mine, why)) => assert_eq!((expected, ours), (theirs, mine), "{file}: {why}"),
            None => assert_eq!(ours, expected, "{file}"),
        }
    }
}

#[test]
fn crlf_and_lf_copies_import_to_the_same_messages_modulo_line_ends() {
    let Some(ext) = corpus("importing CRLF and LF copies of corpus-ext messages") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, _) = store(tmp.path());
    for (f, n) in [("perl-mail-box/mbox.src", "lf"), ("perl-mail-box/mbox.win", "crlf")] {
        import::import_mbox(&st, "example.com", &name(n), &[ext.join(f)], &Options::default(), &NoProgress, None)
            .expect("import");
    }
    let lf = st.open_mailbox("example.com", &name("lf")).expect("open");
    let crlf = st.open_mailbox("example.com", &name("crlf")).expect("open");
    assert_eq!(lf.records().len(), 45);
    for (a, b) in lf.records().iter().zip(crlf.records()) {
        let x = lf.read_message(a.uid).expect("read");
        let y = crlf.read_message(b.uid).expect("read");
        let y: Vec<u8> = String::from_utf8_lossy(&y).replace("\r\n", "\n").into_bytes();
        assert_eq!(String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
        assert_eq!(a.system_flags, b.system_flags);
        assert_eq!(a.internal_date, b.internal_date);
        // Content-Length and Status are bookkeeping: not in the stored message.
        assert!(!x.windows(16).any(|w| w.eq_ignore_ascii_case(b"\ncontent-length:")));
        assert!(!x.windows(8).any(|w| w == b"\nStatus:"));
    }
}

const PY_MAILDIR: &str = r#"
import mailbox, sys, json, os, tempfile
# Python's Maildir needs both cur/ and new/; give it a view with the missing one empty.
# It also lists dot files (mu's .noindex markers), which the Maildir convention says to
# skip; they are filtered here, and so are files in tmp/ (never listed by Python anyway).
out = {}
for p in sys.argv[1:]:
    view = tempfile.mkdtemp()
    for sub in ('cur', 'new', 'tmp'):
        src = os.path.join(p, sub)
        if os.path.isdir(src):
            os.symlink(src, os.path.join(view, sub))
        else:
            os.mkdir(os.path.join(view, sub))
    res = []
    for colon in (':', ';', '!'):
        box = mailbox.Maildir(view, factory=None, create=False)
        box.colon = colon
        for key in box.iterkeys():
            sub = box._lookup(key)
            fname = os.path.basename(sub)
            if fname.startswith('.'):
                continue
            if colon != ':' and colon not in fname:
                continue
            if colon == ':' and (';2,' in fname or '!2,' in fname):
                continue
            msg = box.get_message(key)
            res.append([fname, ''.join(sorted(c for c in msg.get_flags() if c in 'DFRST')), len(box.get_bytes(key))])
    out[p] = sorted(res)
print(json.dumps(out))
"#;

const PY_LOOSE: &str = r#"
import sys, json, os, email, email.policy
out = {}
for p in sys.argv[1:]:
    n = 0
    for f in sorted(os.listdir(p)):
        fp = os.path.join(p, f)
        if f.startswith('.') or not os.path.isfile(fp) or os.path.getsize(fp) == 0:
            continue
        m = email.message_from_binary_file(open(fp, 'rb'), policy=email.policy.compat32)
        if len(m.keys()) > 0 or m.get_unixfrom():
            n += 1
    out[p] = n
print(json.dumps(out))
"#;

/// Loose folders where Python's `email` parser and ours disagree on what is a message:
/// (folder, Python's count, ours, why).
const LOOSE_DIFFERS: &[(&str, u64, u64, &str)] = &[(
    "stalwart-mail-parser/eml/malformed",
    22,
    23,
    "019.eml starts `Fro :uMmlti Sender`: a field name with white space before the colon (RFC 5322 4.5.8 obs-optional), which Python's compat32 parser takes as body",
)];

#[test]
fn every_maildir_folder_imports_with_pythons_counts_and_flags() {
    let Some(ext) = corpus("importing every Maildir folder of corpus-ext") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, _) = store(tmp.path());
    let mut folders_checked = 0;
    for (i, root) in ["mu/testdata", "notmuch/corpora", "stalwart-mail-parser", "ruby-mail/emails"].iter().enumerate() {
        let root = ext.join(root);
        let base = name(&format!("md/{i}"));
        let s = import::import_maildir(&st, "example.com", &base, &root, &Options::default(), &NoProgress, None)
            .expect("import");
        // The only error in the whole corpus is an empty file.
        for e in &s.errors {
            assert!(e.to_string().contains("empty file"), "{e}");
        }
        let mut problems = Vec::new();
        let folders = mstore::import::maildir::discover(&root, &mut problems).expect("discover");
        let mut maildirs = Vec::new();
        let mut loose = Vec::new();
        for f in &folders {
            match f.kind {
                mstore::import::maildir::FolderKind::Maildir => maildirs.push(f),
                mstore::import::maildir::FolderKind::Loose => loose.push(f),
                mstore::import::maildir::FolderKind::Container => {}
            }
        }
        let mb_of = |f: &mstore::import::maildir::Folder| {
            let n = if f.components.is_empty() {
                base.clone()
            } else {
                name(&format!("{}/{}", base, f.components.join("/")))
            };
            st.open_mailbox("example.com", &n).ok()
        };
        let paths: Vec<String> = maildirs.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let py = python(PY_MAILDIR, &refs);
        for f in &maildirs {
            let theirs = py[f.path.to_string_lossy().as_ref()].as_array().expect("array").clone();
            let Some(mb) = mb_of(f) else {
                assert!(theirs.is_empty(), "{} has mail but no mailbox", f.path.display());
                continue;
            };
            // Python lists by key; compare as sorted (size, flags) multisets.
            let mut ours: Vec<(u64, String)> =
                mb.records().iter().map(|r| (r.size, maildir_letters(r.system_flags.0))).collect();
            let mut th: Vec<(u64, String)> = theirs
                .iter()
                .map(|v| (v[2].as_u64().expect("size"), v[1].as_str().expect("flags").to_string()))
                .collect();
            ours.sort();
            th.sort();
            assert_eq!(ours, th, "{}", f.path.display());
            folders_checked += 1;
        }
        let paths: Vec<String> = loose.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let py = python(PY_LOOSE, &refs);
        for f in &loose {
            let theirs = py[f.path.to_string_lossy().as_ref()].as_u64().expect("count");
            let ours = mb_of(f).map(|mb| mb.records().len() as u64).unwrap_or(0);
            match LOOSE_DIFFERS.iter().find(|d| f.path.ends_with(d.0)) {
                Some(&(_, py_count, our_count, why)) => {
                    assert_eq!((theirs, ours), (py_count, our_count), "{}: {why}", f.path.display())
                }
                None => assert_eq!(ours, theirs, "{}", f.path.display()),
            }
            folders_checked += 1;
        }
    }
    assert!(folders_checked >= 30, "only {folders_checked} folders checked");
}

#[test]
fn maildir_tricky_names_flags_and_tmp() {
    let Some(ext) = corpus("importing the tricky Maildir folders of corpus-ext") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, _) = store(tmp.path());
    let root = ext.join("stalwart-mail-parser/maildir");
    let s = import::import_maildir(&st, "example.com", &name("s"), &root, &Options::default(), &NoProgress, None)
        .expect("import");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let flags = |mbname: &str| -> Vec<Vec<String>> {
        let mb = st.open_mailbox("example.com", &name(mbname)).expect("open");
        mb.records()
            .iter()
            .map(|r| {
                let mut v: Vec<String> = r.system_flags.names().map(str::to_string).collect();
                v.extend(mb.user_flag_names(r.user_flags));
                v
            })
            .collect()
    };
    // `;2,` separators and `,S=…,W=…` size fields; order by the leading timestamp.
    assert_eq!(
        flags("s"),
        vec![
            vec!["\\Seen".to_string(), "$MaildirKeyword_b".into()],
            vec!["\\Deleted".into(), "\\Seen".into(), "$MaildirKeyword_l".into(), "$MaildirKeyword_n".into()],
        ]
    );
    assert_eq!(flags("s/My Folder/Nested Folder").len(), 2);
    assert_eq!(
        flags("s/My Folder"),
        vec![vec!["\\Answered".to_string(), "\\Deleted".into(), "\\Draft".into()], Vec::<String>::new(),]
    );
    // mu: `!2,` separators, and the file in tmp/ is not imported.
    let root = ext.join("mu/testdata/testdir");
    import::import_maildir(&st, "example.com", &name("mu"), &root, &Options::default(), &NoProgress, None)
        .expect("import");
    let mb = st.open_mailbox("example.com", &name("mu")).expect("open");
    let in_cur_new =
        ["cur", "new"].iter().map(|d| std::fs::read_dir(root.join(d)).expect("dir").count()).sum::<usize>();
    assert!(root.join("tmp/1220863087.12663.ignore").is_file());
    assert_eq!(mb.records().len(), in_cur_new);
    let seen = mb.records().iter().filter(|r| r.system_flags.has(SystemFlags::SEEN)).count();
    let named_s = std::fs::read_dir(root.join("cur"))
        .expect("cur")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name().to_string_lossy().contains("!2,")
                    && e.file_name().to_string_lossy().rsplit("!2,").next().is_some_and(|f| f.contains('S'))
            })
        })
        .count();
    assert_eq!(seen, named_s);
}

const PY_READ_EXPORT: &str = r#"
import mailbox, sys, json, hashlib, os
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
res = []
for key in box.iterkeys():
    msg = box.get_message(key)
    res.append([hashlib.sha256(box.get_bytes(key)).hexdigest(), ''.join(sorted(msg.get_flags())),
                int(os.path.getmtime(os.path.join(sys.argv[1], box._lookup(key))))])
folders = sorted(box.list_folders())
print(json.dumps({"messages": sorted(res), "folders": folders}))
"#;

fn sha256_hex(b: &[u8]) -> String {
    // Python computes SHA-256; compare through Python too, so no hash crate is needed here.
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b)?;
            c.wait_with_output()
        })
        .expect("python");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

#[test]
fn exported_maildir_reads_back_in_python_with_the_same_bytes_flags_and_dates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, _) = store(tmp.path());
    let mut mb = st.create_mailbox("example.com", &name("user/joe"), Default::default()).expect("create");
    let msgs: Vec<(Vec<u8>, u32, Vec<String>, i64)> = vec![
        (
            b"Subject: one\n\nFrom here\n".to_vec(),
            SystemFlags::SEEN | SystemFlags::FLAGGED,
            vec!["$Work".into()],
            1_000_000_000,
        ),
        (
            b"Subject: two\r\n\r\n>From there\r\n".to_vec(),
            SystemFlags::ANSWERED | SystemFlags::DRAFT,
            vec![],
            1_100_000_000,
        ),
        (
            b"Subject: three\n\nno final line end".to_vec(),
            SystemFlags::DELETED,
            vec!["$Forwarded".into(), "x".into()],
            1_200_000_000,
        ),
    ];
    let batch: Vec<NewMessage<'_>> = msgs
        .iter()
        .map(|(b, f, k, d)| NewMessage {
            bytes: b,
            internal_date: Some(mstore::message::DateTime { unix: *d, offset_minutes: 0 }),
            system_flags: *f,
            user_flags: k.clone(),
        })
        .collect();
    mb.append(&batch).expect("append");
    drop(mb);
    let mut sub = st.create_mailbox("example.com", &name("user/joe/Sent Items"), Default::default()).expect("sub");
    sub.append(&batch[..1]).expect("append");
    drop(sub);
    let dest = tmp.path().join("out");
    let s = import::export::export_maildir(&st, "example.com", &name("user/joe"), &dest, true, &NoProgress)
        .expect("export");
    assert_eq!(s.messages(), 4);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let py = python(PY_READ_EXPORT, &[dest.to_str().expect("utf-8")]);
    let mut expected: Vec<serde_json::Value> = msgs
        .iter()
        .map(|(b, f, k, d)| {
            let mut letters = maildir_letters(*f);
            if k.iter().any(|x| x == "$Forwarded") {
                letters.push('P');
            }
            let mut letters: Vec<char> = letters.chars().collect();
            letters.sort();
            let mut l: String = letters.into_iter().collect();
            // Keyword letters: $Work is slot 0 -> 'a', $Forwarded 'b' (also written as `P`,
            // which Dovecot does not turn into a keyword), x -> 'c' (slots in first-use order).
            for kw in k {
                l.push(match kw.as_str() {
                    "$Work" => 'a',
                    "$Forwarded" => 'b',
                    _ => 'c',
                });
            }
            let mut l: Vec<char> = l.chars().collect();
            l.sort();
            serde_json::json!([sha256_hex(b), l.into_iter().collect::<String>(), d])
        })
        .collect();
    expected.sort_by_key(|v| v.to_string());
    let mut got = py["messages"].as_array().expect("messages").clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected);
    assert_eq!(py["folders"], serde_json::json!(["Sent Items"]));
    // And our own import reads it back: same bytes, flags, keywords and dates, UID order kept.
    let s = import::import_maildir(&st, "example.com", &name("back"), &dest, &Options::default(), &NoProgress, None)
        .expect("import");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let a = st.open_mailbox("example.com", &name("user/joe")).expect("open");
    let b = st.open_mailbox("example.com", &name("back")).expect("open");
    assert_eq!(a.records().len(), b.records().len());
    for (x, y) in a.records().iter().zip(b.records()) {
        assert_eq!(&*a.read_message(x.uid).expect("read"), &*b.read_message(y.uid).expect("read"));
        assert_eq!(x.system_flags, y.system_flags);
        assert_eq!(a.user_flag_names(x.user_flags), b.user_flag_names(y.user_flags));
        assert_eq!(x.internal_date, y.internal_date);
    }
    assert_eq!(st.open_mailbox("example.com", &name("back/Sent Items")).expect("sub").records().len(), 1);
    // Export never overwrites.
    let again = import::export::export_maildir(&st, "example.com", &name("user/joe"), &dest, false, &NoProgress);
    assert!(again.is_err());
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mstore"))
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).env_remove("MS_CONF").output().expect("run mstore")
}

#[test]
fn cli_import_resume_export_and_refusals() {
    let Some(ext) = corpus("the import command line over corpus-ext") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let (_st, conf) = store(tmp.path());
    let c = conf.to_str().expect("utf-8");
    let src = ext.join("perl-mail-box/mbox.src");
    let bad = ext.join("mbox-messageparser/mailboxes/non-mailbox.txt.gz");
    let s = src.to_str().expect("utf-8");
    let o = run(&["import", "mbox", "-f", c, s, bad.to_str().expect("utf-8"), "example.com", "user/joe/old"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{out}\n{err}");
    assert!(out.contains("user/joe/old: 45 imported") && out.contains("mailbox created"), "{out}");
    assert!(err.contains("non-mailbox.txt.gz: not an mbox file"), "{err}");
    // A re-run resumes: everything is already there.
    let o = run(&["import", "mbox", "-f", c, s, "example.com", "user/joe/old"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("0 imported") && out.contains("45 already present"), "{out}");
    // Export both ways, then import the mbox export again: identical messages.
    let md = tmp.path().join("md");
    let o = run(&["export", "maildir", "-f", c, "example.com", "user/joe/old", md.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(md.join("cur")).expect("cur").count(), 45);
    let mbox = tmp.path().join("old.mbox");
    let o = run(&["export", "mbox", "-f", c, "example.com", "user/joe/old", mbox.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["import", "mbox", "-f", c, mbox.to_str().expect("utf-8"), "example.com", "again"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = Store::open(Config::load(&conf).expect("config")).expect("store");
    let a = st.open_mailbox("example.com", &name("user/joe/old")).expect("open");
    let b = st.open_mailbox("example.com", &name("again")).expect("open");
    assert_eq!(a.records().len(), b.records().len());
    for (x, y) in a.records().iter().zip(b.records()) {
        assert_eq!(&*a.read_message(x.uid).expect("read"), &*b.read_message(y.uid).expect("read"));
        assert_eq!((x.system_flags, x.internal_date), (y.system_flags, y.internal_date));
    }
    // A mailbox with an orphan message file (a crash between file and commit) is refused
    // with the command that indexes it.
    let orphan = a.place().dir.join(format!("{}.", a.last_uid() + 1));
    std::fs::write(&orphan, "Subject: orphan\n\nx\n").expect("orphan");
    let o = run(&["import", "mbox", "-f", c, s, "example.com", "user/joe/old"]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("above its last UID") && err.contains("reconstruct -f"), "{err}");
    // Usage errors.
    let o = run(&["import", "mbox", "-f", c, "example.com", "x"]);
    assert_eq!(o.status.code(), Some(8));
    let o = run(&["import", "maildir", "-v"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("mstore (M-Store toolkit) "));
}

/// Message files (`N.`) anywhere below `dir`.
fn count_message_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else if name.ends_with('.') && name[..name.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
                n += 1;
            }
        }
    }
    n
}

/// Ctrl-C during an import: the run commits what it read, says it was interrupted and
/// how to resume, exits 4; the next run imports the rest, and every message is there
/// exactly once.
#[test]
fn an_interrupted_import_exits_4_and_the_next_run_resumes_without_duplicates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (st, conf) = store(tmp.path());
    drop(st);
    // fsync on, one message per commit: slow enough to be interrupted half-way.
    let text = std::fs::read_to_string(&conf).expect("conf").replace("fsync: no", "fsync: yes");
    std::fs::write(&conf, text).expect("conf");
    let c = conf.to_str().expect("utf-8");
    let total = 4000;
    let mut mbox = String::new();
    for i in 0..total {
        mbox += &format!(
            "From sender@example.com Mon Jan  1 00:00:00 2024\nSubject: message {i}\nMessage-ID: <{i}@example.com>\n\nbody {i}\n\n"
        );
    }
    let src = tmp.path().join("bulk.mbox");
    std::fs::write(&src, mbox).expect("mbox");
    let s = src.to_str().expect("utf-8");
    let child = Command::new(bin())
        .args(["import", "mbox", "-f", c, "--batch", "1", s, "example.com", "bulk"])
        .env_remove("MS_CONF")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let ms = tmp.path().join("ms");
    let started = std::time::Instant::now();
    while count_message_files(&ms) < 20 {
        assert!(started.elapsed().as_secs() < 60, "the import did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::INT,
    )
    .expect("SIGINT");
    let o = child.wait_with_output().expect("wait");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let imported_first = count_message_files(&ms);
    assert!(imported_first < total, "setup: the import was still running when interrupted ({imported_first} files)");
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.contains("interrupted (run it again to resume)"), "{out}");
    let o = run(&["import", "mbox", "-f", c, s, "example.com", "bulk"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("already present"), "{out}");
    let st = Store::open(Config::load(&conf).expect("config")).expect("store");
    let m = st.open_mailbox("example.com", &name("bulk")).expect("open");
    assert_eq!(m.records().len(), total, "every message exactly once");
    let mut subjects = std::collections::BTreeSet::new();
    for r in m.records() {
        let b = m.read_message(r.uid).expect("read");
        let t = String::from_utf8_lossy(&b);
        let subj = t.lines().find(|l| l.starts_with("Subject: ")).expect("subject").to_string();
        assert!(subjects.insert(subj.clone()), "{subj} twice");
    }
    assert_eq!(subjects.len(), total);
    assert_eq!(count_message_files(&ms), total, "no file left over");
}
