//! End-to-end tests of the binaries on real directories: the demo, `ls`, `show --json`,
//! `append`, `-v`, configuration errors, and every file of `../shared/corpus-ext`
//! appended and read back byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(name: &str) -> PathBuf {
    match name {
        "mstore" => PathBuf::from(env!("CARGO_BIN_EXE_mstore")),
        "reconstruct" => PathBuf::from(env!("CARGO_BIN_EXE_reconstruct")),
        "msdb_recover" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_recover")),
        "msdb_backup" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_backup")),
        other => panic!("no binary {other}"),
    }
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).env_remove("MS_CONF").output().expect("run binary")
}

fn ok(name: &str, args: &[&str]) -> String {
    let o = run(name, args);
    assert!(o.status.success(), "{name} {args:?} failed: {}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("utf-8 output")
}

fn json(name: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(name, args)).expect("JSON output")
}

#[test]
fn version_goes_to_stderr_and_exits_zero() {
    for b in ["mstore", "reconstruct", "msdb_recover", "msdb_backup"] {
        let o = run(b, &["-v"]);
        assert_eq!(o.status.code(), Some(0), "{b} -v");
        assert!(o.stdout.is_empty(), "{b} -v wrote to stdout");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with(&format!("{b} (M-Store toolkit) ")), "{b}: {err}");
    }
}

#[test]
fn demo_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let d = dir.to_str().expect("utf-8 path");
    let out = ok("mstore", &["demo", d, "--messages", "400"]);
    assert!(out.contains("export MS_CONF="), "{out}");
    assert!(out.contains("reconstruct -r esys.ca \"user/foobar\""), "{out}");
    let conf = dir.join("ms.conf");
    let c = conf.to_str().expect("utf-8");
    // The seed's cast is there.
    let ls = ok("mstore", &["-f", c, "ls"]);
    for (domain, name) in [
        ("example.com", "user/joe"),
        ("example.com", "user/joe/pub"),
        ("example.com", "user/joe/pub/projects"),
        ("example.com", "admin"),
        ("example.com", "admin/archive"),
        ("foo.com", "admin"),
        ("esys.ca", "user/foobar"),
        ("esys.ca", "user/foobar/Archive"),
        ("example.com", "user/mary/Reisen &- Urlaub"),
        ("example.com", "user/mary/Entw&APw-rfe"),
    ] {
        assert!(
            ls.lines().any(|l| l.starts_with(&format!("{domain}\t{name}\t"))),
            "{domain} {name} missing from\n{ls}"
        );
    }
    // MS_CONF is honoured like -f.
    let via_env = Command::new(bin("mstore")).args(["ls", "foo.com"]).env("MS_CONF", &conf).output().expect("run");
    assert!(String::from_utf8_lossy(&via_env.stdout).contains("foo.com\tadmin"));
    // Every mailbox shows, message counts add up, flags and user flags exist.
    let list = json("mstore", &["-f", c, "ls", "--json"]);
    let mut total = 0;
    let mut seen = 0;
    let mut user_flagged = 0;
    for e in list.as_array().expect("array") {
        let domain = e["domain"].as_str().expect("domain");
        let name = e["mailbox"].as_str().expect("mailbox");
        let show = json("mstore", &["-f", c, "show", domain, name, "--json"]);
        assert_eq!(show["mailbox"], name);
        let msgs = show["messages"].as_array().expect("messages");
        assert_eq!(show["message_count"].as_u64(), Some(msgs.len() as u64));
        for m in msgs {
            total += 1;
            let flags: Vec<&str> =
                m["flags"].as_array().expect("flags").iter().map(|f| f.as_str().expect("str")).collect();
            seen += usize::from(flags.contains(&"\\Seen"));
            user_flagged += usize::from(flags.iter().any(|f| !f.starts_with('\\')));
            let date = m["internal_date"].as_str().expect("date");
            assert!(mstore::message::DateTime::from_rfc3339(date).is_some(), "{date}");
            assert_eq!(m["content_hash"].as_str().expect("hash").len(), 64);
        }
    }
    assert_eq!(total, 400);
    assert!(seen > 200 && user_flagged > 30, "seen {seen}, user-flagged {user_flagged}");
    // A second demo into the same directory refuses.
    let again = run("mstore", &["demo", d]);
    assert_eq!(again.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a demo store"));
}

fn corpus_ext() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus-ext");
    p.is_dir().then_some(p)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readdir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if p.file_name().is_some_and(|n| n != ".gitattributes") {
            out.push(p);
        }
    }
}

#[test]
fn every_external_message_is_appended_and_read_back_byte_identical() {
    let Some(ext) = corpus_ext() else {
        panic!("../shared/corpus-ext is missing: the tests need ../shared beside the checkout");
    };
    let mut files = Vec::new();
    files_under(&ext, &mut files);
    assert!(files.len() > 500, "only {} files in corpus-ext", files.len());
    // Empty files (Maildir markers and the like) are not messages: append refuses them.
    let (empty, files): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|p| std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(false));
    assert!(empty.len() < 10, "{empty:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("ms.conf");
    let (u, g) = mstore::cli::current_user_and_group();
    std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {u}\nruntime-group: {g}\nfsync: no\n")).expect("conf");
    let c = conf.to_str().expect("utf-8");
    ok("mstore", &["-f", c, "init"]);
    ok("mstore", &["-f", c, "create", "example.com", "shared/imported"]);
    for p in &empty {
        let o = run("mstore", &["-f", c, "append", "example.com", "shared/imported", p.to_str().expect("utf-8")]);
        assert_eq!(o.status.code(), Some(8), "{} appended", p.display());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&p.display().to_string()) && err.contains("empty"), "{err}");
    }
    let mut args: Vec<String> =
        ["-f", c, "append", "example.com", "shared/imported", "--flags", "\\Seen,$Imported"].map(String::from).to_vec();
    args.extend(files.iter().map(|p| p.to_string_lossy().into_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok("mstore", &refs);
    assert_eq!(out.lines().count(), files.len());
    let show = json("mstore", &["-f", c, "show", "example.com", "shared/imported", "--json"]);
    let msgs = show["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), files.len());
    let dir = PathBuf::from(show["path"].as_str().expect("path"));
    for (m, src) in msgs.iter().zip(&files) {
        let uid = m["uid"].as_u64().expect("uid");
        let original = std::fs::read(src).expect("read original");
        let stored = std::fs::read(dir.join(format!("{uid}."))).expect("read stored");
        assert!(stored == original, "{} differs after append as UID {uid}", src.display());
        assert_eq!(m["content_hash"].as_str(), Some(blake3::hash(&original).to_hex().as_str()));
        assert_eq!(m["size"].as_u64(), Some(original.len() as u64));
        assert_eq!(m["flags"], serde_json::json!(["\\Seen", "$Imported"]));
    }
    // Reading through the library gives the same bytes (mapped or read).
    let cfg = mstore::config::Config::load(&conf).expect("config");
    let st = mstore::store::Store::open(cfg).expect("store");
    let mb = st
        .open_mailbox("example.com", &mstore::layout::MailboxName::parse("shared/imported").expect("name"))
        .expect("open");
    for (r, src) in mb.records().iter().zip(&files) {
        assert_eq!(&*mb.read_message(r.uid).expect("read"), &std::fs::read(src).expect("read")[..]);
    }
}

#[test]
fn configuration_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("ms.conf");
    std::fs::write(&conf, "ms-path: /x\nthis is wrong\n").expect("write");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "ls"]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:2: expected `key: value`", conf.display())), "{err}");
    let missing = tmp.path().join("nope.conf");
    let o = run("mstore", &["-f", missing.to_str().expect("utf-8"), "ls"]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unable to read configuration file") && err.contains("missing"), "{err}");
    let (u, g) = mstore::cli::current_user_and_group();
    std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {u}\nruntime-group: {g}\nfrobnicate: 1\n"))
        .expect("write");
    let o = run("mstore", &["-f", conf.to_str().expect("utf-8"), "init"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(":4: warning: unknown key `frobnicate` ignored"));
}
