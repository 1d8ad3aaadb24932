//! Crash-state enumeration of a mailbox, bounded for CI (the long run is
//! `cargo xtask crash --mailbox`): every point of random workloads of appends, flag
//! changes, expunges, checkpoints and reconstruct rewrites, several power cuts at each;
//! reopen and reconstruct checked against an independent model on each (see
//! `mstore_testkit::mailbox_crash`). And the same paths under injected ENOSPC and EIO.

use mstore_testkit::mailbox_crash::{self, CheckConfig, Stats};

#[test]
fn every_crash_point_of_a_mailbox_workload_recovers() {
    let cfg = CheckConfig { random_variants: 3, seed: 11 };
    let mut total = Stats::default();
    let mut ops = 0;
    for seed in 1..=8 {
        let rec = mailbox_crash::record(seed, 16).unwrap_or_else(|e| panic!("workload: {e}"));
        ops += rec.trace.len();
        let s = mailbox_crash::check(&rec, &cfg).unwrap_or_else(|f| panic!("{f}"));
        total.add(&s);
    }
    eprintln!("{ops} operations, {total:?}");
    assert!(total.states > 200, "{total:?}");
}

#[test]
fn io_errors_on_the_mailbox_write_paths_leave_a_mailbox_that_recovers() {
    let s = mailbox_crash::faults(3, 6).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{s:?}");
    assert!(s.runs > 50 && s.failed_steps > 20, "{s:?}");
}
