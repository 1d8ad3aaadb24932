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
