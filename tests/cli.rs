//! End-to-end tests of the binaries on real directories: the demo, `ls`, `show --json`,
//! `append`, `-v`, configuration errors, and every file of `../shared/corpus-ext`
//! appended and read back byte for byte.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(name: &str) -> PathBuf {
    match name {
        "mstore" => PathBuf::from(env!("CARGO_BIN_EXE_mstore")),
        "reconstruct" => PathBuf::from(env!("CARGO_BIN_EXE_reconstruct")),
        "msdb_recover" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_recover")),
        "msdb_backup" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_backup")),
        "msdb_verify" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_verify")),
        "msdb_restore" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_restore")),
        "msdb_repair" => PathBuf::from(env!("CARGO_BIN_EXE_msdb_repair")),
        other => panic!("no binary {other}"),
    }
}

/// Every name the program answers to.
const PROGRAMS: [&str; 7] =
    ["mstore", "reconstruct", "msdb_recover", "msdb_backup", "msdb_verify", "msdb_restore", "msdb_repair"];

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

fn assert_version(o: &Output, prog: &str, what: &str) {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "{what} wrote to stdout");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, format!("{prog} (M-Store toolkit) {}\n", env!("CARGO_PKG_VERSION")), "{what}");
}

/// The guide: `-v` displays the version on standard error, then exits, whatever else is on
/// the command line: alone, after other options, without the arguments a command requires.
#[test]
fn version_goes_to_stderr_and_exits_zero() {
    for b in PROGRAMS {
        assert_version(&run(b, &["-v"]), b, &format!("{b} -v"));
        assert_version(&run(b, &["-f", "/nonexistent", "-v"]), b, &format!("{b} -f ... -v"));
    }
    assert_version(&run("reconstruct", &["-r", "-v", "example.com"]), "reconstruct", "reconstruct -r -v example.com");
    assert_version(&run("reconstruct", &["-rv"]), "reconstruct", "reconstruct -rv");
    let help = ok("mstore", &["--help"]);
    for sub in subcommands(&help) {
        let mut argv: Vec<&str> = sub.split(' ').collect();
        argv.push("-v");
        assert_version(&run("mstore", &argv), "mstore", &format!("mstore {sub} -v"));
    }
}

/// The subcommands `mstore --help` lists (leaves: `import maildir`, not `import`).
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in help.lines() {
        let Some(name) = line.strip_prefix("  ").and_then(|l| l.split_whitespace().next()) else { continue };
        if name == "$" || name.starts_with('-') {
            continue;
        }
        match name {
            "import" | "export" => out.extend(["maildir", "mbox"].map(|k| format!("{name} {k}"))),
            n => out.push(n.to_string()),
        }
    }
    assert!(out.len() >= 16, "{out:?}\n{help}");
    out
}

/// Required arguments are required: without them, the usage and exit status 8.
#[test]
fn missing_arguments_are_a_usage_error() {
    for argv in [
        &["reconstruct"][..],
        &["mstore", "reconstruct"],
        &["mstore", "show", "example.com"],
        &["mstore", "create"],
        &["mstore", "append", "example.com"],
        &["mstore", "import", "maildir", "/tmp", "example.com"],
        &["mstore", "import", "mbox", "a.mbox", "example.com"],
        &["mstore", "export", "mbox", "example.com", "user/joe"],
    ] {
        let o = run(argv[0], &argv[1..]);
        assert_eq!(o.status.code(), Some(8), "{argv:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("required") && err.contains("Usage: "), "{argv:?}: {err}");
    }
    // And `mstore` alone shows what there is.
    let o = run("mstore", &[]);
    assert_eq!(o.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Look around"));
}

/// One binary, many names: a link named after a guide command runs that command.
#[test]
fn the_binary_answers_to_the_name_it_is_invoked_under() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in PROGRAMS {
        let link = tmp.path().join(name);
        std::os::unix::fs::symlink(bin("mstore"), &link).expect("symlink");
        let o = Command::new(&link).arg("--help").output().expect("run link");
        assert!(o.status.success(), "{name} --help");
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(help.contains(&format!("Usage: {name} ")), "{name}:\n{help}");
        assert_version(&Command::new(&link).arg("-v").output().expect("run"), name, name);
    }
    // Another name is the binary's own program.
    let other = tmp.path().join("mstore-0.1");
    std::os::unix::fs::symlink(bin("reconstruct"), &other).expect("symlink");
    assert_version(&Command::new(&other).arg("-v").output().expect("run"), "reconstruct", "renamed reconstruct");
}

/// `mstore --help` groups the commands, each with an example.
#[test]
fn help_groups_the_commands_with_an_example_each() {
    let help = ok("mstore", &["--help"]);
    let at = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s:?} not in\n{help}"));
    assert!(at("Look around") < at("Repair mailboxes"));
    assert!(at("Repair mailboxes") < at("Databases"));
    assert!(at("Databases") < at("Move mail"));
    let lines: Vec<&str> = help.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let cmd = l.strip_prefix("  ").and_then(|l| l.split_whitespace().next());
        if let Some(c) = cmd.filter(|c| *c != "$" && !c.starts_with('-')) {
            let next = lines.get(i + 1).map(|n| n.trim_start()).unwrap_or("");
            assert!(next.starts_with("$ "), "{c} has no example line:\n{help}");
        }
    }
}

#[test]
fn demo_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let d = dir.to_str().expect("utf-8 path");
    let out = ok("mstore", &["demo", d, "--messages", "400"]);
    assert!(out.contains("export MS_CONF=") && out.contains("export PATH="), "{out}");
    assert!(out.contains("reconstruct -r esys.ca \"user/foobar\""), "{out}");
    let conf = dir.join("ms.conf");
    let c = conf.to_str().expect("utf-8");
    // The cast of the guide's examples is there.
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
    // --quiet: nothing when clean (for cron), the findings when not.
    let o = run("mstore", &["-f", c, "verify", "--quick", "--quiet"]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0), "{}", String::from_utf8_lossy(&o.stdout));
    let joe = json("mstore", &["-f", c, "show", "example.com", "user/joe", "--json"]);
    let uid = joe["messages"][0]["uid"].as_u64().expect("a message");
    std::fs::remove_file(Path::new(joe["path"].as_str().expect("path")).join(format!("{uid}."))).expect("rm");
    let o = run("mstore", &["-f", c, "verify", "--quick", "--quiet"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stdout).contains("fix: reconstruct"), "{}", String::from_utf8_lossy(&o.stdout));
    // A second demo into the same directory refuses.
    let again = run("mstore", &["demo", d]);
    assert_eq!(again.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a demo store"));
}

/// The README's first command, then every command the demo prints, pasted into a shell
/// exactly as printed, in a directory without our binaries on PATH: each succeeds.
#[test]
fn every_command_the_demo_prints_runs_as_printed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A directory name a shell cares about, as a user's may be.
    let dir = tmp.path().join("my demo");
    let out = ok("mstore", &["demo", dir.to_str().expect("utf-8 path"), "--messages", "300"]);
    let lines: Vec<&str> = out.lines().skip_while(|l| !l.trim_start().starts_with("export MS_CONF=")).collect();
    let commands: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("  ")).collect();
    assert!(commands.len() >= 12, "{out}");
    assert!(commands[1].starts_with("export PATH="), "{out}");
    for guide in ["reconstruct -r example.com", "reconstruct -r esys.ca \"user/foobar\"", "msdb_recover", "msdb_backup"]
    {
        assert!(commands.contains(&guide), "{guide} not printed:\n{out}");
    }
    let script = format!("set -ex\n{}\n", commands.join("\n"));
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .output()
        .expect("run sh");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the demo's commands failed ({}):\n{script}\nstderr:\n{err}", o.status);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("reconstruct: esys.ca: nothing to do"), "{stdout}");
    assert!(stdout.contains("example.com\tuser/joe\t"), "{stdout}");
    // The links are the guide's names, pointing at the binary that made the demo.
    let exe = std::fs::canonicalize(bin("mstore")).expect("canonical");
    for name in PROGRAMS {
        let target = std::fs::read_link(dir.join("bin").join(name)).expect("a link");
        assert_eq!(std::fs::canonicalize(target).expect("canonical"), exe, "{name}");
    }
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
    let Some(ext) = support::shared_corpus("appending every message of corpus-ext and reading it back") else {
        return;
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
