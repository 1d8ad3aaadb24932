//! Export fidelity as the readers people use see it (issue 14):
//!
//! - an mbox export read back by Python's standard `mailbox` module gives every message of
//!   `../shared/corpus-ext` (CRLF and LF, with and without a final line end) byte for byte;
//! - a Maildir export imported into a new mailbox keeps every UID, the UID validity, the
//!   next UID, flags, keywords and the internal date with its zone;
//! - Dovecot (`doveadm fetch`, where Dovecot is installed; `.ci/run` installs it) reads a
//!   Maildir export with every UID, flag, keyword (`$Forwarded` included) and date.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mstore::config::Config;
use mstore::flags::SystemFlags;
use mstore::import::{self, NoProgress, Options};
use mstore::layout::MailboxName;
use mstore::message::DateTime;
use mstore::store::{CreateOptions, FlagOp, Mailbox, NewMessage, Store};

fn store(dir: &Path) -> Store {
    let conf = dir.join("ms.conf");
    let (u, g) = mstore::cli::current_user_and_group();
    std::fs::write(
        &conf,
        format!("ms-path: {}\nruntime-user: {u}\nruntime-group: {g}\nfsync: no\n", dir.join("ms").display()),
    )
    .expect("conf");
    Store::init(Config::load(&conf).expect("config")).expect("store")
}

fn name(s: &str) -> MailboxName {
    MailboxName::parse(s).expect("name")
}

/// Every file of `dir` (recursively), sorted.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).expect("readdir").map(|e| e.expect("entry").path()).collect();
    v.sort();
    for p in v {
        let m = std::fs::symlink_metadata(&p).expect("stat");
        if m.is_dir() {
            files_under(&p, out);
        } else if m.is_file() {
            out.push(p);
        }
    }
}

/// The mbox bookkeeping fields export writes into a message's header: a reader that does
/// not treat them as bookkeeping (Python) sees them as header fields; the rest must be the
/// stored message exactly.
fn without_bookkeeping(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    let mut in_header = true;
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if in_header {
            if line == b"\n" || line == b"\r\n" {
                in_header = false;
            } else {
                let field = line.split(|&b| b == b':').next().unwrap_or_default().to_ascii_lowercase();
                if mstore::import::mbox::META_FIELDS.iter().any(|f| f.as_bytes() == field.as_slice()) {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// mboxrd unquoting (one `>` off every line matching `>+From `), which Python's `mailbox`
/// leaves to its caller.
fn unquote(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    for line in msg.split_inclusive(|&b| b == b'\n') {
        let gt = line.iter().take_while(|&&b| b == b'>').count();
        if gt > 0 && line[gt..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

const PY_MBOX_BYTES: &str = r#"
import mailbox, sys, json, base64
box = mailbox.mbox(sys.argv[1], create=False)
print(json.dumps([base64.b64encode(box.get_bytes(k)).decode() for k in box.keys()]))
"#;

fn b64decode(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn mbox_export_reads_back_in_python_byte_for_byte() {
    let Some(ext) = support::shared_corpus("an mbox export of corpus-ext read back by Python") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    // Every real message: the mbox files imported, the loose and Maildir files appended as
    // they are (CRLF and LF, some without a final line end).
    let mut mbox_files = Vec::new();
    for d in ["mbox-messageparser/mailboxes", "perl-mail-box"] {
        files_under(&ext.join(d), &mut mbox_files);
    }
    mbox_files.retain(|p| {
        let n = p.to_string_lossy();
        !n.ends_with(".gz") && !n.ends_with(".bz2") && !n.ends_with(".xz") && !n.ends_with(".lz")
    });
    let mut loose = Vec::new();
    for d in ["ruby-mail/emails", "stalwart-mail-parser/eml", "notmuch/corpora", "mu/testdata"] {
        files_under(&ext.join(d), &mut loose);
    }
    loose.retain(|p| {
        let n = p.file_name().expect("name").to_string_lossy().into_owned();
        !n.starts_with("dovecot") && !n.starts_with('.') && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
    });
    let mut mailboxes = Vec::new();
    for (i, f) in mbox_files.iter().enumerate() {
        let n = name(&format!("mbox/{i}"));
        let s = import::import_mbox(
            &st,
            "example.com",
            &n,
            std::slice::from_ref(f),
            &Options::default(),
            &NoProgress,
            None,
        )
        .expect("import");
        if s.imported() > 0 {
            mailboxes.push(n);
        }
    }
    let n = name("loose");
    let mut mb = st.create_mailbox("example.com", &n, Default::default()).expect("create");
    let bodies: Vec<Vec<u8>> = loose.iter().map(|p| std::fs::read(p).expect("read")).collect();
    for (i, chunk) in bodies.chunks(50).enumerate() {
        let batch: Vec<NewMessage<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(j, b)| NewMessage {
                bytes: b,
                internal_date: Some(DateTime { unix: 1_600_000_000 + (i * 50 + j) as i64 * 3600, offset_minutes: 60 }),
                system_flags: if j % 3 == 0 { SystemFlags::SEEN } else { 0 },
                user_flags: if j % 5 == 0 { vec!["$Forwarded".into()] } else { vec![] },
            })
            .collect();
        mb.append(&batch).expect("append");
    }
    drop(mb);
    mailboxes.push(n);

    let (mut total, mut crlf, mut no_final_eol) = (0, 0, 0);
    for (i, n) in mailboxes.iter().enumerate() {
        let dest = tmp.path().join(format!("out{i}.mbox"));
        let s = import::export::export_mbox(&st, "example.com", n, &dest, &NoProgress).expect("export");
        let mb = st.open_mailbox("example.com", n).expect("open");
        assert_eq!(s.messages(), mb.records().len() as u64, "{n}: {:?}", s.problems);
        let out = Command::new("python3").arg("-c").arg(PY_MBOX_BYTES).arg(&dest).output().expect("python3 runs");
        assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<String> = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(got.len(), mb.records().len(), "{n}: Python counts another number of messages");
        let here = no_final_eol;
        for (r, theirs) in mb.records().iter().zip(&got) {
            let ours = mb.read_message(r.uid).expect("read");
            let mut want = without_bookkeeping(&ours);
            // Python's reader takes no notice of Content-Length: a message without a final
            // line end is read with the `\n` that ends its last line in the file.
            if !ours.ends_with(b"\n") {
                want.push(b'\n');
                no_final_eol += 1;
            }
            crlf += usize::from(ours.ends_with(b"\r\n"));
            total += 1;
            let theirs = without_bookkeeping(&unquote(&b64decode(theirs)));
            assert!(
                theirs == want,
                "{n} UID {}: Python reads {} bytes, the store holds {} (ends {:?} vs {:?})",
                r.uid,
                theirs.len(),
                want.len(),
                String::from_utf8_lossy(&theirs[theirs.len().saturating_sub(8)..]),
                String::from_utf8_lossy(&want[want.len().saturating_sub(8)..]),
            );
        }
        // The export says how many such messages it wrote.
        assert_eq!(s.no_final_eol, (no_final_eol - here) as u64, "{n}");
    }
    // The corpus has what the test is about.
    assert!(total >= 400, "{total} messages");
    assert!(crlf >= 20, "{crlf} CRLF messages");
    assert!(no_final_eol >= 5, "{no_final_eol} messages without a final line end");
}

/// A mailbox with UID gaps, a next UID above the last message, zones, flags and keywords.
fn varied_mailbox(st: &Store, n: &MailboxName) -> Mailbox {
    // A UID validity of its own (the default, the time, may be another mailbox's too).
    let opts = CreateOptions { uid_validity: Some(1_234_567), ..CreateOptions::default() };
    let mut mb = st.create_mailbox("example.com", n, opts).expect("create");
    let bodies: Vec<Vec<u8>> = (0..12u32)
        .map(|i| {
            if i % 2 == 0 {
                format!("Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n").into_bytes()
            } else {
                format!("Subject: m{i}\nFrom: a@example.com\n\nbody {i}\n").into_bytes()
            }
        })
        .collect();
    let zones = [0i16, 60, -300, 330, -720, 840, 45, -90, 0, 120, 0, 525];
    let batch: Vec<NewMessage<'_>> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| NewMessage {
            bytes: b,
            internal_date: Some(DateTime { unix: 1_700_000_000 + i as i64 * 86_400, offset_minutes: zones[i] }),
            system_flags: [0, SystemFlags::SEEN, SystemFlags::ANSWERED | SystemFlags::SEEN, SystemFlags::FLAGGED]
                [i % 4]
                | if i == 7 { SystemFlags::DRAFT } else { 0 },
            user_flags: match i % 3 {
                0 => vec!["$Forwarded".into()],
                1 => vec!["$Forwarded".into(), "$Label1".into(), "Work".into()],
                _ => vec![],
            },
        })
        .collect();
    mb.append(&batch).expect("append");
    // Gaps: 3 and 6 expunged, and the last one, so the next UID is above the last message.
    mb.store_flags(&[3, 6, 12], FlagOp::Add, SystemFlags::DELETED, &[]).expect("flag");
    mb.expunge(Some(&[3, 6, 12])).expect("expunge");
    mb.store_flags(&[4], FlagOp::Add, SystemFlags::DELETED, &[]).expect("flag");
    mb
}

#[test]
fn maildir_export_imported_into_a_new_mailbox_keeps_uids_validity_flags_and_zones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    let a = varied_mailbox(&st, &name("user/joe"));
    let dest = tmp.path().join("maildir");
    let s = import::export::export_maildir(&st, "example.com", &name("user/joe"), &dest, false, &NoProgress)
        .expect("export");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let s = import::import_maildir(&st, "example.com", &name("back"), &dest, &Options::default(), &NoProgress, None)
        .expect("import");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let mut b = st.open_mailbox_locked("example.com", &name("back")).expect("open");
    assert_eq!(b.uid_validity(), a.uid_validity(), "UID validity");
    assert_eq!(b.last_uid(), a.last_uid(), "next UID");
    assert_eq!(b.records().len(), a.records().len());
    for (x, y) in a.records().iter().zip(b.records()) {
        assert_eq!(x.uid, y.uid);
        assert_eq!(&*a.read_message(x.uid).expect("read"), &*b.read_message(y.uid).expect("read"));
        assert_eq!(x.system_flags, y.system_flags, "UID {}", x.uid);
        let (mut fx, mut fy) = (a.user_flag_names(x.user_flags), b.user_flag_names(y.user_flags));
        fx.sort();
        fy.sort();
        assert_eq!(fx, fy, "UID {}", x.uid);
        assert_eq!((x.internal_date, x.internal_offset), (y.internal_date, y.internal_offset), "UID {}", x.uid);
    }
    // A message appended afterwards gets a UID never given in the source.
    let m = b"Subject: new\n\nx\n";
    let uids =
        b.append(&[NewMessage { bytes: m, internal_date: None, system_flags: 0, user_flags: vec![] }]).expect("append");
    assert_eq!(uids, vec![13]);
    drop(b);
    // Run again (a resume): nothing appended twice, UIDs unchanged.
    let s = import::import_maildir(&st, "example.com", &name("back"), &dest, &Options::default(), &NoProgress, None)
        .expect("import again");
    assert_eq!((s.imported(), s.already_present()), (0, 9));
    // Into a mailbox of another UID validity, messages get new UIDs (never reused ones).
    let mut other = st.create_mailbox("example.com", &name("other"), Default::default()).expect("create");
    other.append(&[NewMessage { bytes: m, internal_date: None, system_flags: 0, user_flags: vec![] }]).expect("a");
    drop(other);
    import::import_maildir(&st, "example.com", &name("other"), &dest, &Options::default(), &NoProgress, None)
        .expect("import");
    let other = st.open_mailbox("example.com", &name("other")).expect("open");
    let got: Vec<u32> = other.records().iter().map(|r| r.uid).collect();
    assert_eq!(got, (1..=10).collect::<Vec<u32>>());
}

/// Whether `doveadm` is installed (`None` after the skip line; see `support::require`).
fn doveadm(what: &str) -> Option<()> {
    let there = Command::new("doveadm").arg("help").output().is_ok();
    support::require(support::Need::Dovecot, there, what, "doveadm is not installed (Debian: dovecot-core)")
        .then_some(())
}

/// The unprivileged user doveadm runs as (Dovecot refuses root), created if missing.
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

/// Run doveadm as `user` on the Maildir `maildir` with a configuration of its own; the
/// rows of its tab-separated output as (field → value) maps.
fn doveadm_rows(home: &Path, user: &str, args: &[&str]) -> Vec<std::collections::BTreeMap<String, String>> {
    let conf = home.join("dovecot.conf");
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={user}"), &format!("--regid={user}"), "--clear-groups", "env"])
        .arg(format!("USER={user}"))
        .arg(format!("HOME={}", home.display()))
        .arg("doveadm")
        .arg("-c")
        .arg(&conf)
        .args(["-f", "tab"])
        .args(args);
    let out = cmd.output().expect("doveadm runs");
    assert!(out.status.success(), "doveadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().expect("header line").split('\t').map(str::to_string).collect();
    lines.map(|l| head.iter().cloned().zip(l.split('\t').map(str::to_string)).collect()).collect()
}

#[test]
fn maildir_export_read_by_dovecot_keeps_every_uid_flag_keyword_and_date() {
    let Some(user) = test_user("Dovecot reading a Maildir export (doveadm refuses to run as root)") else { return };
    let Some(()) = doveadm("Dovecot reading a Maildir export") else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let st = store(tmp.path());
    let a = varied_mailbox(&st, &name("user/joe"));
    let home = tmp.path().join("dovecot");
    let dest = home.join("Maildir");
    std::fs::create_dir(&home).expect("mkdir");
    let s = import::export::export_maildir(&st, "example.com", &name("user/joe"), &dest, false, &NoProgress)
        .expect("export");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    std::fs::write(
        home.join("dovecot.conf"),
        format!(
            "protocols =\nmail_location = maildir:{}:LAYOUT=fs:INDEX=MEMORY\nlog_path = /dev/stderr\nbase_dir = {h}/run\nstate_dir = {h}/state\nssl = no\n",
            dest.display(),
            h = home.display()
        ),
    )
    .expect("conf");
    for d in ["run", "state"] {
        std::fs::create_dir(home.join(d)).expect("mkdir");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let st_chown = Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(&home).status().expect("chown");
    assert!(st_chown.success());

    let rows = doveadm_rows(&home, &user, &["fetch", "uid flags date.received.unixtime", "mailbox", "INBOX", "all"]);
    assert_eq!(rows.len(), a.records().len(), "{rows:?}");
    for (r, row) in a.records().iter().zip(&rows) {
        assert_eq!(row["uid"], r.uid.to_string());
        let mut theirs: Vec<String> = row["flags"].split_whitespace().map(str::to_string).collect();
        theirs.sort();
        let mut ours: Vec<String> = [
            (SystemFlags::SEEN, "\\Seen"),
            (SystemFlags::ANSWERED, "\\Answered"),
            (SystemFlags::FLAGGED, "\\Flagged"),
            (SystemFlags::DELETED, "\\Deleted"),
            (SystemFlags::DRAFT, "\\Draft"),
        ]
        .iter()
        .filter(|(b, _)| r.system_flags.0 & b != 0)
        .map(|(_, n)| n.to_string())
        .chain(a.user_flag_names(r.user_flags))
        .collect();
        ours.sort();
        assert_eq!(theirs, ours, "UID {}: Dovecot's flags", r.uid);
        assert_eq!(row["date.received.unixtime"], r.internal_date.to_string(), "UID {}", r.uid);
    }
    assert!(rows.iter().filter(|r| r["flags"].contains("$Forwarded")).count() >= 3);
    let status = doveadm_rows(&home, &user, &["mailbox", "status", "uidvalidity uidnext messages", "INBOX"]);
    assert_eq!(status[0]["uidvalidity"], a.uid_validity().to_string());
    assert_eq!(status[0]["uidnext"], (a.last_uid() + 1).to_string());
    assert_eq!(status[0]["messages"], a.records().len().to_string());
}
