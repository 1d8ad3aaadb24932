//! Property test of `reconstruct` (issue 3, "Tests"): random damage to a mailbox's header,
//! index and cache files — deletion, truncation, bit flips, garbage, zeroed ranges — never
//! loses a flag or an internal date that an intact index record or the change log still
//! holds. Two variants: with the change log intact (then nothing at all may be lost), and
//! with the change log gone (then every index record that survived the damage intact must
//! keep its flags and date). Every run is also checked for panics and for message files
//! deleted or modified (`support::checked_run`), and a second run must change nothing.
//!
//! Cases: 48 by default; `PROPTEST_CASES` overrides.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;
use support::*;

const D: &str = "example.com";
const NAME: &str = "user/joe";

/// What happens to one file.
#[derive(Clone, Debug)]
enum Damage {
    Keep,
    Delete,
    /// Cut at this fraction (per mille) of the length.
    Truncate(u16),
    /// Flip bit `.1` of the byte at fraction `.0` (per mille).
    Flip(Vec<(u16, u8)>),
    /// Overwrite `len` bytes at a fraction of the length with pseudo-random bytes.
    Garbage {
        at: u16,
        len: u16,
        seed: u64,
    },
    /// Overwrite `len` bytes at a fraction of the length with zeros.
    Zero {
        at: u16,
        len: u16,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        1 => Just(Damage::Keep),
        1 => Just(Damage::Delete),
        2 => (0u16..1000).prop_map(Damage::Truncate),
        3 => proptest::collection::vec((0u16..1000, 0u8..8), 1..6).prop_map(Damage::Flip),
        2 => (0u16..1000, 1u16..300, any::<u64>()).prop_map(|(at, len, seed)| Damage::Garbage { at, len, seed }),
        1 => (0u16..1000, 1u16..300).prop_map(|(at, len)| Damage::Zero { at, len }),
    ]
}

/// Apply `d` to the file at `path`; whether the file's bytes changed.
fn apply(path: &Path, d: &Damage) -> bool {
    let Ok(mut b) = std::fs::read(path) else { return false };
    let at = |frac: u16, len: usize| (len * frac as usize / 1000).min(len.saturating_sub(1));
    let old = b.clone();
    match d {
        Damage::Keep => return false,
        Damage::Delete => {
            std::fs::remove_file(path).expect("delete");
            return true;
        }
        Damage::Truncate(f) => b.truncate(b.len() * *f as usize / 1000),
        Damage::Flip(v) => {
            for &(f, bit) in v {
                if !b.is_empty() {
                    let i = at(f, b.len());
                    b[i] ^= 1 << bit;
                }
            }
        }
        Damage::Garbage { at: f, len, seed } => {
            let start = at(*f, b.len());
            let mut x = *seed | 1;
            for byte in b.iter_mut().skip(start).take(*len as usize) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
        }
        Damage::Zero { at: f, len } => {
            let start = at(*f, b.len());
            b.iter_mut().skip(start).take(*len as usize).for_each(|x| *x = 0);
        }
    }
    std::fs::write(path, &b).expect("write damaged file");
    b != old
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 48;
    }
    c
}

/// The flag names a rebuilt mailbox may show for the flags of `before`: the same, or the
/// placeholder of their slot when no surviving file held the name.
fn flags_match(before: &Value, after: &Value, was: &[String], now: &[String], exact_names: bool) -> bool {
    let names = |v: &Value| -> Vec<Option<String>> {
        v["user_flags"].as_array().expect("user_flags").iter().map(|n| n.as_str().map(str::to_string)).collect()
    };
    let (bn, an) = (names(before), names(after));
    let expect: Vec<String> = was
        .iter()
        .map(|f| {
            if f.starts_with('\\') || exact_names {
                return f.clone();
            }
            let slot = bn.iter().position(|n| n.as_deref() == Some(f.as_str())).expect("named slot");
            match an.get(slot).cloned().flatten() {
                Some(n) if n == *f || n == format!("$RecoveredFlag{slot}") => n,
                _ => format!("<slot {slot} renamed to {:?}>", an.get(slot)),
            }
        })
        .collect();
    expect == now
}

fn check(n: u32, header: Damage, index: Damage, cache: Damage, drop_log: bool, checkpoint: bool, verify: bool) {
    let fx = Fx::new();
    let dir = fx.mailbox(D, NAME, n);
    if checkpoint || drop_log {
        fx.checkpoint(D, NAME);
    }
    let before = fx.show(D, NAME);
    let original_index = mstore::codec::index::decode(&std::fs::read(dir.join("ms.index")).expect("index"))
        .expect("a fresh index decodes")
        .1;
    if drop_log {
        std::fs::remove_file(dir.join("ms.log")).expect("remove log");
    }
    let changed_header = apply(&dir.join("ms.header"), &header);
    let changed_index = apply(&dir.join("ms.index"), &index);
    let changed_cache = apply(&dir.join("ms.cache"), &cache);
    // Index records that survived the damage bit for bit.
    let intact: BTreeSet<u32> = match std::fs::read(dir.join("ms.index")) {
        Ok(b) => mstore::codec::index::salvage(&b)
            .records
            .into_iter()
            .filter(|(_, r)| original_index.contains(r))
            .map(|(_, r)| r.uid)
            .collect(),
        Err(_) => BTreeSet::new(),
    };

    // Whether the mailbox's identity survives somewhere (else a new UID validity is due).
    let identity_known = std::fs::read(dir.join("ms.header"))
        .is_ok_and(|b| mstore::codec::header::decode_fixed(&b).is_ok())
        || std::fs::read(dir.join("ms.index")).is_ok_and(|b| mstore::codec::index::decode_header(&b).is_ok());
    let args: &[&str] = if verify { &[D, NAME, "--verify-content"] } else { &[D, NAME] };
    let r = fx.reconstruct(args);
    // A damaged cache record is only seen when messages are read (--verify-content), and
    // unreferenced cache bytes not at all: cache damage alone may leave nothing to do.
    let must_repair = drop_log || changed_header || changed_index;
    assert!(
        r.code == 1 || (r.code == 0 && !must_repair),
        "exit {} (damage: header {changed_header}, index {changed_index}, cache {changed_cache}, log dropped {drop_log})\nstdout:\n{}\nstderr:\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    let after = fx.show(D, NAME);
    let (b, a) = (essentials(&before), essentials(&after));
    if !drop_log {
        // The change log holds everything.
        assert_survived(&before, &after);
    } else {
        let header_intact = !changed_header;
        for uid in &intact {
            let (was, now) = (&b[&u64::from(*uid)], a.get(&u64::from(*uid)));
            let now = now.unwrap_or_else(|| panic!("UID {uid} had an intact record and is gone\n{}", r.stdout));
            assert!(
                flags_match(&before, &after, &was.0, &now.0, header_intact),
                "UID {uid}: flags {:?} became {:?}\n{}",
                was.0,
                now.0,
                r.stdout
            );
            assert_eq!(now.1, was.1, "UID {uid}: internal date\n{}", r.stdout);
        }
        // Every message is still indexed, whatever became of its record.
        for (uid, e) in &b {
            assert!(a.values().any(|x| x.4 == e.4), "the message of UID {uid} is no longer indexed\n{}", r.stdout);
        }
        assert_eq!(a.len(), b.len());
        if identity_known {
            assert_eq!(after["uid_validity"], before["uid_validity"], "{}", r.stdout);
        } else {
            assert_ne!(after["uid_validity"], before["uid_validity"], "a new UID validity is due\n{}", r.stdout);
        }
    }
    if verify {
        assert_cache_names_records(&fx, D, NAME);
    }
    // Right after a repair, a second run changes nothing.
    let again = fx.reconstruct(args);
    assert_eq!(again.code, 0, "second run\nfirst:\n{}\nsecond:\n{}", r.stdout, again.stdout);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn damage_to_header_index_and_cache_never_loses_what_an_intact_record_or_the_log_holds(
        n in 4u32..14,
        header in damage(),
        index in damage(),
        cache in damage(),
        drop_log in any::<bool>(),
        checkpoint in any::<bool>(),
        verify in any::<bool>(),
    ) {
        check(n, header, index, cache, drop_log, checkpoint, verify);
    }
}

/// The cases that once failed or that matter most, run every time.
#[test]
fn known_cases() {
    check(6, Damage::Delete, Damage::Delete, Damage::Delete, false, false, false);
    check(6, Damage::Delete, Damage::Truncate(500), Damage::Keep, true, true, false);
    check(5, Damage::Flip(vec![(10, 0)]), Damage::Flip(vec![(600, 3)]), Damage::Truncate(0), true, true, true);
    check(
        7,
        Damage::Garbage { at: 0, len: 299, seed: 7 },
        Damage::Zero { at: 0, len: 128 },
        Damage::Keep,
        false,
        true,
        false,
    );
    // A flipped cache record, found by reading the messages.
    check(6, Damage::Keep, Damage::Keep, Damage::Flip(vec![(700, 2)]), false, true, true);
    // Identity lost everywhere: a new UID validity.
    check(5, Damage::Delete, Damage::Flip(vec![(20, 1)]), Damage::Keep, true, true, false);
}
