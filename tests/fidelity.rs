//! Fidelity (issue 14): `mstore flags`, the log coverage recorded by index and header,
//! mod-sequences that never go down, and true "flags lost" counts. Real binaries on real
//! directories (`tests/support`).

mod support;

use serde_json::Value;
use support::*;

const D: &str = "example.com";
const JOE: &str = "user/joe";

fn msg(show: &Value, uid: u64) -> &Value {
    show["messages"].as_array().expect("messages").iter().find(|m| m["uid"] == uid).expect("uid present")
}

#[test]
fn flags_command_stores_through_the_change_log() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, JOE, 8);
    let before = fx.show(D, JOE);
    let hm = before["highest_modseq"].as_u64().expect("highest_modseq");
    // UIDs 1..8 minus the expunged 7.
    let r = fx.mstore(&["flags", D, JOE, "3,5:*", "+\\Answered", "$Later", "-\\Seen", "--json"]);
    r.expect_code(0, "mstore flags");
    let j = r.json();
    assert_eq!(j["matched"], 4, "{j:#}");
    let uids: Vec<u64> =
        j["messages"].as_array().expect("messages").iter().map(|m| m["uid"].as_u64().expect("uid")).collect();
    assert_eq!(uids, [3, 5, 6, 8]);
    let after = fx.show(D, JOE);
    for uid in [3u64, 5, 6, 8] {
        let f = flags_of(&after, uid);
        assert!(f.contains(&"\\Answered".to_string()) && f.contains(&"$Later".to_string()), "UID {uid}: {f:?}");
        assert!(!f.contains(&"\\Seen".to_string()), "UID {uid}: {f:?}");
        assert!(msg(&after, uid)["modseq"].as_u64().expect("modseq") > hm, "UID {uid} got a new modseq");
    }
    for uid in [1u64, 2, 4] {
        assert_eq!(flags_of(&after, uid), flags_of(&before, uid), "UID {uid} is not in the set");
        assert_eq!(msg(&after, uid)["modseq"], msg(&before, uid)["modseq"]);
    }
    assert!(after["highest_modseq"].as_u64().expect("hm") > hm);
    // `=` sets exactly, `=` alone clears; `*` is the highest UID in use.
    fx.mstore(&["flags", D, JOE, "*", "=\\Flagged"]).expect_code(0, "=");
    fx.mstore(&["flags", D, JOE, "1", "="]).expect_code(0, "= alone");
    let after = fx.show(D, JOE);
    assert_eq!(flags_of(&after, 8), ["\\Flagged"]);
    assert!(flags_of(&after, 1).is_empty());
    // The change log holds every change: the index alone does not (it was not rewritten).
    std::fs::remove_file(dir.join("ms.index")).expect("remove index");
    fx.reconstruct(&[D, JOE]).expect_code(1, "reconstruct");
    assert_survived(&after, &fx.show(D, JOE));
    // Mistakes: exit 8 and a line that says what to type.
    let r = fx.mstore(&["flags", D, JOE, "0:3", "+\\Seen"]);
    assert_eq!(r.code, 8);
    assert!(r.stderr.contains("is not a UID set") && r.stderr.contains("1:*"), "{}", r.stderr);
    let r = fx.mstore(&["flags", D, JOE, "1", "\\Seen"]);
    assert_eq!(r.code, 8);
    assert!(r.stderr.contains("+FLAG adds"), "{}", r.stderr);
    assert_survived(&after, &fx.show(D, JOE));
}

/// `mstore verify --json` findings of the store: (kind, path, offset) and the fixes.
fn verify(fx: &Fx) -> (i32, Vec<Value>) {
    let r = fx.mstore(&["verify", "--json", "--no-progress"]);
    assert!(r.code == 0 || r.code == 4, "verify exit {}\n{}\n{}", r.code, r.stdout, r.stderr);
    (r.code, r.json()["findings"].as_array().expect("findings").clone())
}

fn kinds(findings: &[Value]) -> Vec<&str> {
    findings.iter().map(|f| f["kind"].as_str().expect("kind")).collect()
}

/// Run the `fix:` of a finding, as printed (a shell line), with the test's binaries first
/// on PATH.
fn run_fix(fx: &Fx, fix: &str) -> Run {
    let bin_dir = std::path::Path::new(RECONSTRUCT).parent().expect("bin dir");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(fix).env("PATH", path).env_remove("MS_CONF");
    checked_run(fx.root(), cmd)
}

/// After the index is lost too, every flag and date comes back from the change log: the
/// second copy is whole.
fn assert_log_is_whole(fx: &Fx, dir: &std::path::Path, state: &Value) {
    std::fs::remove_file(dir.join("ms.index")).expect("remove index");
    fx.reconstruct(&[D, JOE]).expect_code(1, "reconstruct without the index");
    assert_survived(state, &fx.show(D, JOE));
}

/// A checkpointed mailbox whose log is then damaged by `damage`: verify finds `want` (one
/// of the kinds) in ms.log at or before `max_offset`, the printed fix repairs it, verify
/// is then clean, nothing is lost, and the log is whole again.
fn log_damage_case(what: &str, damage: impl FnOnce(&std::path::Path, &[u8]) -> u64, want: &[&str]) {
    let fx = Fx::new();
    let dir = fx.mailbox(D, JOE, 12);
    fx.checkpoint(D, JOE);
    let state = fx.show(D, JOE);
    let log = std::fs::read(dir.join("ms.log")).expect("log");
    let max_offset = damage(&dir.join("ms.log"), &log);
    let (code, f) = verify(&fx);
    assert_eq!(code, 4, "{what}: verify must not be clean");
    let hit = f
        .iter()
        .find(|f| want.contains(&f["kind"].as_str().unwrap_or_default()))
        .unwrap_or_else(|| panic!("{what}: no {want:?} in {:?}", kinds(&f)));
    assert!(hit["path"].as_str().expect("path").ends_with("/user/joe/ms.log"), "{hit}");
    assert!(hit["offset"].as_u64().expect("offset") <= max_offset, "{what}: {hit}");
    let fix = hit["fix"].as_str().expect("fix");
    let r = run_fix(&fx, fix);
    r.expect_code(1, fix);
    assert!(
        r.stdout.contains("change log") || r.stdout.contains("ms.log"),
        "{what}: the report names the log:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("0 flags lost"), "{what}: nothing was lost:\n{}", r.stdout);
    let (code, f) = verify(&fx);
    assert_eq!(code, 0, "{what}: clean after the printed fix: {:?}", kinds(&f));
    assert_survived(&state, &fx.show(D, JOE));
    assert_log_is_whole(&fx, &dir, &state);
}

#[test]
fn a_log_cut_inside_its_checkpoint_is_found_and_rewritten_whole() {
    for i in 0..=10usize {
        log_damage_case(
            &format!("cut {i}/11"),
            |p, log| {
                // Ten lengths across the log, and down to its 64-byte header.
                let cut = 64 + (log.len() - 64) * i / 11;
                std::fs::write(p, &log[..cut]).expect("cut log");
                cut as u64
            },
            &["log-short", "log-torn-tail"],
        );
    }
}

#[test]
fn a_flipped_bit_in_the_logs_last_record_is_found() {
    for bit in [0u8, 5] {
        log_damage_case(
            &format!("bit {bit} of the last record"),
            |p, log| {
                let mut b = log.to_vec();
                let at = b.len() - 30;
                b[at] ^= 1 << bit;
                std::fs::write(p, &b).expect("write");
                log.len() as u64
            },
            &["log-altered", "log-short", "log-torn-tail"],
        );
    }
}

#[test]
fn a_flipped_trailing_flags_record_is_reported_not_silently_undone() {
    // `\Draft` changes no flag name: nothing but the log records the change, and a damaged
    // last record is indistinguishable from a crash's torn write, so it is reported as
    // such, with what it may cost. `$Saved` is a new keyword: the header is rewritten after
    // the change and saw the record, so its damage is known to be damage.
    // The damage is reported where the change starts: a change's records (here the new
    // keyword's FLAG_NAME, 28 bytes, then FLAGS) are applied whole or not at all.
    for (flag, kind, change_len) in [("+\\Draft", "log-torn-tail", 52), ("+$Saved", "log-short", 52 + 28)] {
        let fx = Fx::new();
        let dir = fx.mailbox(D, JOE, 6);
        fx.checkpoint(D, JOE);
        fx.mstore(&["flags", D, JOE, "2", flag]).expect_code(0, "flags");
        let log = std::fs::read(dir.join("ms.log")).expect("log");
        let mut b = log.clone();
        let n = b.len();
        b[n - 10] ^= 0x10; // inside the FLAGS record just appended (52 bytes)
        std::fs::write(dir.join("ms.log"), &b).expect("write");
        let (code, f) = verify(&fx);
        assert_eq!(code, 4, "{flag}: verify must not be clean");
        assert_eq!(kinds(&f), [kind], "{flag}");
        assert_eq!(f[0]["offset"].as_u64(), Some((n - change_len) as u64), "{}", f[0]);
        assert!(f[0]["message"].as_str().expect("message").contains("lost"), "{}", f[0]);
        let r = run_fix(&fx, f[0]["fix"].as_str().expect("fix"));
        r.expect_code(1, "fix");
        assert!(r.stdout.contains("cut short or damaged"), "{}", r.stdout);
        assert_eq!(verify(&fx).0, 0);
    }
}

#[test]
fn version_1_stores_keep_opening_and_are_upgraded_by_the_next_write() {
    let fx = Fx::new();
    let dir = fx.mailbox(D, JOE, 6);
    fx.checkpoint(D, JOE);
    let state = fx.show(D, JOE);
    // Rewrite header and index as builds before version 2 wrote them.
    let h = mstore::codec::header::MailboxHeader::decode(&std::fs::read(dir.join("ms.header")).expect("h"))
        .expect("header decodes");
    std::fs::write(dir.join("ms.header"), h.encode_v1()).expect("write v1 header");
    let (ih, recs) = mstore::codec::index::decode(&std::fs::read(dir.join("ms.index")).expect("i")).expect("index");
    std::fs::write(dir.join("ms.index"), mstore::codec::index::encode_v1(&ih, &recs)).expect("write v1 index");
    assert_eq!(std::fs::read(dir.join("ms.header")).expect("h")[8], 1);
    assert_survived(&state, &fx.show(D, JOE));
    assert_eq!(verify(&fx), (0, vec![]), "a version 1 mailbox is healthy");
    let r = fx.reconstruct(&[D, JOE]);
    r.expect_code(0, "reconstruct on a version 1 mailbox");
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    fx.mstore(&["flags", D, JOE, "1:*", "+$Upgraded"]).expect_code(0, "flags");
    assert_eq!(std::fs::read(dir.join("ms.header")).expect("h")[8], 2, "the first write upgrades the header");
    let after = fx.show(D, JOE);
    assert!(after["highest_modseq"].as_u64() > state["highest_modseq"].as_u64());
    assert_eq!(verify(&fx), (0, vec![]));
}

/// Messages of `before` whose bytes (content hash) no longer show in `after` with the same
/// flags: those that lost flags (or their content).
fn flags_differ(before: &Value, after: &Value) -> u64 {
    let after: std::collections::BTreeSet<(String, Vec<String>)> =
        essentials(after).into_values().map(|e| (e.4, e.0)).collect();
    essentials(before).into_values().filter(|e| !after.contains(&(e.4.clone(), e.0.clone()))).count() as u64
}

/// `reconstruct --json` on joe's INBOX: (flags_lost, flags_unknown).
fn flag_counts(r: &Run) -> (u64, u64) {
    let j = r.json();
    let m = &j["mailboxes"][0];
    (m["counts"]["flags_lost"].as_u64().expect("lost"), m["counts"]["flags_unknown"].as_u64().expect("unknown"))
}

/// Every record that changed got a modseq above the highest one before, and
/// HIGHESTMODSEQ did not go down (RFC 7162).
fn assert_modseqs_rose(before: &Value, after: &Value) {
    let hm = before["highest_modseq"].as_u64().expect("hm");
    assert!(
        after["highest_modseq"].as_u64().expect("hm") >= hm,
        "HIGHESTMODSEQ went down: {hm} → {}",
        after["highest_modseq"]
    );
    let old: std::collections::BTreeMap<u64, (Vec<String>, String, u64)> = essentials(before)
        .into_iter()
        .zip(before["messages"].as_array().expect("messages"))
        .map(|((uid, e), m)| (uid, (e.0, e.4, m["modseq"].as_u64().expect("modseq"))))
        .collect();
    for m in after["messages"].as_array().expect("messages") {
        let uid = m["uid"].as_u64().expect("uid");
        let modseq = m["modseq"].as_u64().expect("modseq");
        let flags: Vec<String> =
            m["flags"].as_array().expect("flags").iter().map(|f| f.as_str().expect("f").to_string()).collect();
        let same = old
            .get(&uid)
            .is_some_and(|o| o.0 == flags && o.1 == m["content_hash"].as_str().expect("hash") && o.2 == modseq);
        assert!(same || modseq > hm, "UID {uid} changed but got modseq {modseq}, not above {hm}");
    }
}

#[test]
fn flags_lost_counts_what_show_json_shows_was_lost() {
    type Damage = fn(&std::path::Path);
    // (A flag change after the last checkpoint is made only where the damage leaves a
    // trace of it: a log cut at a record boundary past what index and header saw is
    // indistinguishable from a log that ends there, and the report says changes may be
    // lost without a count.)
    let cases: [(&str, Damage, &[&str]); 4] = [
        (
            "index lost, log cut to its header",
            |d| {
                std::fs::remove_file(d.join("ms.index")).expect("rm");
                let log = std::fs::read(d.join("ms.log")).expect("log");
                std::fs::write(d.join("ms.log"), &log[..64]).expect("cut");
            },
            &[],
        ),
        (
            "index lost, log cut in the middle",
            |d| {
                std::fs::remove_file(d.join("ms.index")).expect("rm");
                let log = std::fs::read(d.join("ms.log")).expect("log");
                std::fs::write(d.join("ms.log"), &log[..log.len() / 2 + 17]).expect("cut");
            },
            &[],
        ),
        (
            "two message files rotted",
            |d| {
                flip(&d.join("3."), 200, 1);
                flip(&d.join("9."), 300, 4);
            },
            &["--verify-content"],
        ),
        (
            "the last flag change damaged",
            |d| {
                let log = std::fs::read(d.join("ms.log")).expect("log");
                let n = log.len();
                flip(&d.join("ms.log"), n - 10, 2);
            },
            &[],
        ),
    ];
    for (what, damage, extra) in cases {
        let fx = Fx::new();
        let dir = fx.mailbox(D, JOE, 24);
        fx.mstore(&["flags", D, JOE, "1:*", "+$All"]).expect_code(0, "flags");
        fx.checkpoint(D, JOE);
        if what.contains("flag change") {
            fx.mstore(&["flags", D, JOE, "5", "+\\Draft"]).expect_code(0, "flags");
        }
        let before = fx.show(D, JOE);
        damage(&dir);
        let mut args = vec![D, JOE, "--json"];
        args.extend_from_slice(extra);
        let r = fx.reconstruct(&args);
        r.expect_code(1, what);
        let (lost, unknown) = flag_counts(&r);
        let after = fx.show(D, JOE);
        let differ = flags_differ(&before, &after);
        // Every message carried a flag, so each whose record was lost lost a flag.
        assert_eq!(
            differ,
            lost + unknown,
            "{what}: {differ} messages lost flags, the report says {lost} lost + {unknown} unknown\n{}",
            r.stdout
        );
        assert!(differ > 0, "{what}: the damage must cost something for the test to mean anything");
        assert_modseqs_rose(&before, &after);
        // The human line says the same.
        let again = fx.reconstruct(&[D, JOE]);
        again.expect_code(0, "second run");
    }
}

#[test]
fn index_and_log_lost_reappend_by_default_and_keep_uids_on_request() {
    for keep in [false, true] {
        let fx = Fx::new();
        let dir = fx.mailbox(D, JOE, 10);
        let before = fx.show(D, JOE);
        let last = before["last_uid"].as_u64().expect("last_uid");
        std::fs::remove_file(dir.join("ms.index")).expect("rm index");
        std::fs::remove_file(dir.join("ms.log")).expect("rm log");
        let mut args = vec![D, JOE, "--json"];
        if keep {
            args.push("--keep-uids");
        }
        let r = fx.reconstruct(&args);
        r.expect_code(1, "reconstruct");
        let after = fx.show(D, JOE);
        assert_eq!(after["uid_validity"], before["uid_validity"], "the header keeps the UID validity");
        assert_modseqs_rose(&before, &after);
        let (lost, unknown) = flag_counts(&r);
        assert_eq!((lost, unknown), (0, 9), "nine messages lost their records");
        let uids: Vec<u64> = essentials(&after).into_keys().collect();
        let old: Vec<u64> = essentials(&before).into_keys().collect();
        if keep {
            assert_eq!(uids, old, "--keep-uids keeps every file's UID");
            assert_eq!(changes(&r.json(), JOE, "kept-uid").len(), 9);
            assert!(after["last_uid"].as_u64() >= Some(last));
        } else {
            assert!(uids.iter().all(|&u| u > last), "re-appended above the old last UID {last}: {uids:?}");
            assert_eq!(changes(&r.json(), JOE, "re-appended").len(), 9);
        }
        // The same bytes are all there.
        let hashes = |v: &Value| essentials(v).into_values().map(|e| e.4).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(hashes(&before), hashes(&after));
    }
}

/// A binary of the crate, run with `-f CONF`.
fn db_cmd(fx: &Fx, name: &str, args: &[&str]) -> Run {
    let bin = std::path::Path::new(RECONSTRUCT).with_file_name(name);
    let o =
        std::process::Command::new(bin).arg("-f").arg(&fx.conf).args(args).env_remove("MS_CONF").output().expect("run");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Mailboxes in two domains (`JOE` and `user/mary` in `D`, `admin` in foo.com): the
/// fixture, `show --json` of each in that order, and the mailbox list.
fn three_mailboxes() -> (Fx, Vec<Value>, std::collections::BTreeSet<(String, String)>) {
    let fx = Fx::new();
    fx.mailbox(D, JOE, 6);
    fx.mailbox(D, "user/mary", 5);
    fx.mailbox("foo.com", "admin", 4);
    let before: Vec<Value> =
        [(D, JOE), (D, "user/mary"), ("foo.com", "admin")].iter().map(|(d, n)| fx.show(d, n)).collect();
    let listed = fx.listed();
    (fx, before, listed)
}

#[test]
fn a_missing_database_home_is_recreated_by_the_repair_commands_and_mailboxes_registered_again() {
    let (fx, before, listed) = three_mailboxes();
    let home = fx.store.config().database_path.clone();
    let rm_home = || std::fs::remove_dir_all(&home).expect("remove database home");

    // The guide's recovery without `mstore init`: reconstruct -r for each domain.
    rm_home();
    let r = fx.mstore(&["ls"]);
    assert_eq!(r.code, 8);
    assert!(r.stderr.contains("msdb_repair") && r.stderr.contains("reconstruct"), "{}", r.stderr);
    let r = fx.reconstruct(&["-r", D]);
    r.expect_code(1, "reconstruct -r with the database home missing");
    assert!(r.stdout.contains("database home") && r.stdout.contains("recreated"), "{}", r.stdout);
    fx.reconstruct(&["-r", "foo.com"]).expect_code(1, "second domain");
    assert_eq!(fx.listed(), listed, "every mailbox on disk is registered again");
    for ((d, n), b) in [(D, JOE), (D, "user/mary"), ("foo.com", "admin")].iter().zip(&before) {
        assert_survived(b, &fx.show(d, n));
    }
    assert_eq!(verify(&fx).0, 0);

    // msdb_recover recreates it too (and says so); a dry run does not.
    rm_home();
    let r = db_cmd(&fx, "msdb_recover", &["-n"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(!home.exists(), "a dry run writes nothing");
    let r = db_cmd(&fx, "msdb_recover", &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("recreated") && r.stderr.contains("reconstruct"), "{}", r.stderr);
    for d in [D, "foo.com"] {
        fx.reconstruct(&["-r", d]).expect_code(1, "register again");
    }
    assert_eq!(fx.listed(), listed);

    // msdb_backup never makes an empty database to back up (it would rotate good backups
    // out): it fails and says what to run; with a backup, msdb_repair restores it.
    db_cmd(&fx, "msdb_backup", &[]).expect_code(0, "backup");
    rm_home();
    let r = db_cmd(&fx, "msdb_backup", &[]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(!home.exists(), "msdb_backup does not recreate the home");
    assert_eq!(db_cmd(&fx, "msdb_verify", &[]).code, 8, "msdb_verify only reads");
    let r = db_cmd(&fx, "msdb_repair", &[]);
    assert_eq!(r.code, 3, "restored the last backup\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(fx.listed(), listed, "the backup's mailbox list");
    assert_eq!(verify(&fx).0, 0);
}

/// The mailbox list damaged, every log segment overwritten and no backup: the repair
/// keeps every entry that still reads back, says that what is gone cannot be counted and
/// how to register it again (never "no committed transaction was lost"), and
/// `reconstruct -r` brings the lost mailbox back with its UID validity, flags and dates.
#[test]
fn a_damaged_mailbox_list_without_log_or_backup_keeps_what_reads_back_and_says_what_is_lost() {
    let (fx, before, listed) = three_mailboxes();
    db_cmd(&fx, "msdb_recover", &[]).expect_code(0, "checkpoint");
    let home = fx.store.config().database_path.clone();
    let db = home.join("mailboxes.db");
    let mut bytes = std::fs::read(&db).expect("read mailboxes.db");
    let at = bytes.windows(JOE.len()).position(|w| w == JOE.as_bytes()).expect("joe's entry");
    bytes[at] ^= 0x40;
    std::fs::write(&db, &bytes).expect("damage mailboxes.db");
    let mut segments = 0;
    for e in std::fs::read_dir(&home).expect("home") {
        let p = e.expect("entry").path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")) {
            let len = std::fs::metadata(&p).expect("stat").len();
            std::fs::write(&p, vec![0u8; len as usize]).expect("overwrite segment");
            segments += 1;
        }
    }
    assert!(segments > 0, "the log was overwritten");
    assert_eq!(db_cmd(&fx, "msdb_verify", &[]).code, 4);

    let r = db_cmd(&fx, "msdb_repair", &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(!out.contains("no committed transaction was lost"), "{out}");
    assert!(out.contains("cannot be counted") && out.contains("reconstruct -r DOMAIN"), "{out}");
    assert!(out.contains("2 entries were read back, up to 1 of its 3 entries are gone"), "{out}");
    let now = fx.listed();
    assert_eq!(now.len(), 2, "what read back is kept: {now:?}");
    assert!(!now.iter().any(|(_, n)| n == JOE), "{now:?}");
    assert_eq!(db_cmd(&fx, "msdb_verify", &[]).code, 0);

    fx.reconstruct(&["-r", D]).expect_code(1, "register the lost mailbox again");
    assert_eq!(fx.listed(), listed, "every mailbox is listed again");
    for ((d, n), b) in [(D, JOE), (D, "user/mary"), ("foo.com", "admin")].iter().zip(&before) {
        assert_survived(b, &fx.show(d, n));
    }
    assert_eq!(verify(&fx).0, 0);
}

/// A database log cut exactly at a record boundary after the last checkpoint looks like a
/// log with fewer commits: no database tool can tell (nothing else records its length).
/// What it lost is still seen: a mailbox created in the lost tail is on disk but not
/// listed, `mstore verify` reports it (`not-registered`) with a fix, and the fix brings it
/// back with its UID validity, flags and dates.
#[test]
fn a_database_log_cut_at_a_record_boundary_is_caught_by_verify_as_an_unregistered_mailbox() {
    let fx = Fx::new();
    fx.mailbox(D, JOE, 4);
    db_cmd(&fx, "msdb_recover", &[]).expect_code(0, "checkpoint");
    let home = fx.store.config().database_path.clone();
    let lengths = |home: &std::path::Path| -> std::collections::BTreeMap<std::path::PathBuf, u64> {
        mstore::db::log::list_segments(&mstore::fs::RealFs, home)
            .expect("segments")
            .into_iter()
            .map(|(_, p)| {
                let n = std::fs::metadata(&p).expect("stat").len();
                (p, n)
            })
            .collect()
    };
    let before = lengths(&home);
    fx.mailbox(D, "user/new", 5);
    let new_state = fx.show(D, "user/new");
    // Cut the log back to where it ended before: a record boundary.
    for p in lengths(&home).into_keys() {
        match before.get(&p) {
            Some(&old) => std::fs::OpenOptions::new().write(true).open(&p).expect("open").set_len(old).expect("cut"),
            None => std::fs::remove_file(&p).expect("remove a segment begun since"),
        }
    }
    assert!(!lengths(&home).is_empty());
    assert_eq!(db_cmd(&fx, "msdb_verify", &[]).code, 0, "the database alone cannot tell");
    assert!(!fx.listed().iter().any(|(_, n)| n == "user/new"), "setup: the creation was lost");

    let (code, findings) = verify(&fx);
    assert_eq!(code, 4);
    let f = findings
        .iter()
        .find(|f| f["kind"] == "not-registered" && f["path"].as_str().is_some_and(|p| p.ends_with("user/new")))
        .unwrap_or_else(|| panic!("no not-registered finding for user/new: {findings:?}"));
    let fix = f["fix"].as_str().expect("a fix");
    run_fix(&fx, fix);
    assert_eq!(verify(&fx).0, 0, "clean after the printed fix");
    assert_survived(&new_state, &fx.show(D, "user/new"));
}
