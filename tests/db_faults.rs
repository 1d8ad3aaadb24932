//! The databases under I/O errors and damaged bytes:
//!
//! - fail the Nth file operation of a workload (once, and from then on; ENOSPC on
//!   writes, EIO on fsync and everything else): no acknowledged commit is lost, the
//!   error is reported, nothing panics;
//! - flip every byte of a small log and of each snapshot: `msdb_verify` and recovery
//!   notice every flip, and no damaged record is ever accepted silently.

use std::path::Path;
use std::sync::Arc;

use mstore::db::log::Tables;
use mstore::db::recover::{Mode, RecoverOptions, recover};
use mstore::db::verify::{Status, verify};
use mstore::db::{Db, Env, EnvOptions, Txn, backup, log};
use mstore::fs::Fs;
use mstore::io::Durability;
use mstore_testkit::Rng;
use mstore_testkit::crash::random_txn;
use mstore_testkit::sim::{CrashSweep, Fault, Image, SimFs, Variant};

const HOME: &str = "/ms/database";
const BACKUPS: &str = "/ms/backup";

fn opts(fs: &Arc<SimFs>) -> EnvOptions {
    EnvOptions { fs: fs.clone(), durability: Durability::Sync, segment_size: 1500, checkpoint_bytes: 3000 }
}

fn recover_normal(fs: &SimFs) -> mstore::Result<mstore::db::recover::RecoverReport> {
    recover(fs, Path::new(HOME), &RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false })
}

/// A home with a little history, as an image.
fn base_image() -> Image {
    let fs = Arc::new(SimFs::new());
    let env = Env::create_with(Path::new(HOME), opts(&fs)).expect("create");
    let mut t = Txn::default();
    t.put(Db::Mailboxes, b"example.com\0user/joe".to_vec(), b"initial".to_vec());
    env.commit(t).expect("commit");
    drop(env);
    fs.image()
}

/// What a run under faults did.
struct Run {
    txns: Vec<Txn>,
    acked: Vec<bool>,
    errors: usize,
}

/// The workload: commits, a checkpoint, a backup, more commits; reopening the
/// environment whenever it refuses commits after a failure.
fn workload(fs: &Arc<SimFs>, seed: u64) -> Run {
    let mut rng = Rng::new(seed);
    let mut run = Run { txns: Vec::new(), acked: Vec::new(), errors: 0 };
    let mut env = Env::open_with(Path::new(HOME), opts(fs)).ok();
    for i in 0..14 {
        if env.is_none() {
            env = Env::open_with(Path::new(HOME), opts(fs)).ok();
        }
        let Some(e) = &env else {
            run.errors += 1;
            continue;
        };
        let t = random_txn(&mut rng, i);
        run.txns.push(t.clone());
        match e.commit(t) {
            Ok(()) => run.acked.push(true),
            Err(err) => {
                let msg = err.to_string();
                assert!(!msg.is_empty());
                run.acked.push(false);
                run.errors += 1;
                env = None;
            }
        }
        if i == 5 {
            if let Some(e) = &env {
                if e.checkpoint().is_err() {
                    run.errors += 1;
                    env = None;
                }
            }
        }
        if i == 9 {
            let bopts = backup::BackupOptions { backup_dir: BACKUPS.into(), keep: 2 };
            if backup::backup(&opts(fs), Path::new(HOME), &bopts, &mut |_| {}).is_err() {
                run.errors += 1;
            }
        }
    }
    run
}

/// Whether `got` is a state the run may leave: the initial transaction, then the
/// transactions in order with each failed one present or not, cut anywhere after the
/// last acknowledged one.
fn acceptable(run: &Run, got: &Tables) -> bool {
    let failed: Vec<usize> = (0..run.txns.len()).filter(|&i| !run.acked[i]).collect();
    assert!(failed.len() <= 14);
    let last_acked = run.acked.iter().rposition(|&a| a).map(|i| i + 1).unwrap_or(0);
    let mut initial = Txn::default();
    initial.put(Db::Mailboxes, b"example.com\0user/joe".to_vec(), b"initial".to_vec());
    for mask in 0..1u32 << failed.len() {
        let included =
            |i: usize| run.acked[i] || failed.iter().position(|&f| f == i).is_some_and(|p| mask & (1 << p) != 0);
        let seq: Vec<usize> = (0..run.txns.len()).filter(|&i| included(i)).collect();
        let must = seq.iter().filter(|&&i| i < last_acked).count();
        let mut t = Tables::default();
        initial.apply_to(&mut t);
        for (k, &i) in seq.iter().enumerate() {
            if k >= must && t.maps == got.maps {
                return true;
            }
            run.txns[i].apply_to(&mut t);
        }
        if t.maps == got.maps {
            return true;
        }
    }
    false
}

#[test]
fn failing_any_file_operation_loses_no_acknowledged_commit() {
    let img = base_image();
    let mut checked = 0;
    let mut faults = 0;
    for (seed, persistent) in [(11, false), (12, false), (13, false), (11, true)] {
        // How many calls the workload makes without faults.
        let probe = Arc::new(SimFs::from_image(&img));
        let start = probe.calls();
        let clean = workload(&probe, seed);
        assert_eq!(clean.errors, 0);
        let total = probe.calls() - start;
        faults += total;
        for n in 1..=total {
            let fs = Arc::new(SimFs::from_image(&img));
            let initial = fs.start_recording();
            fs.set_fault(Some(Fault { at: fs.calls() + n, persistent }));
            let run = workload(&fs, seed);
            fs.set_fault(None);
            assert!(fs.faults_hit() > 0, "fault {n} never hit");
            assert!(run.errors > 0 || !persistent, "call {n} failed persistently but no error was reported");
            let trace = fs.take_trace();
            let mut sweep = CrashSweep::new(&initial, &trace);
            while sweep.has_next() {
                sweep.advance();
            }
            let mut rng = Rng::new(n);
            for v in [Variant::SyncedOnly, Variant::Everything, Variant::Random] {
                let state = SimFs::from_image(&sweep.materialise(v, &mut rng));
                let rep = recover_normal(&state).unwrap_or_else(|e| {
                    panic!("fault at call {n} (persistent {persistent}), {v:?}: recovery failed: {e}")
                });
                let env = Env::open_with(Path::new(HOME), opts(&Arc::new(state))).expect("open");
                let got = env.snapshot_tables().expect("tables");
                assert_eq!(got.digest(), rep.digest);
                assert!(
                    acceptable(&run, &got),
                    "fault at call {n} (persistent {persistent}), {v:?}: an acknowledged commit is missing or the state is no prefix (acked {:?})",
                    run.acked
                );
                checked += 1;
            }
        }
    }
    eprintln!("{checked} states after {faults} injected faults checked");
    assert!(checked > 2000);
}

/// A small home: transactions, a checkpoint, more transactions, all in one segment.
fn flip_home() -> (Arc<SimFs>, Vec<Txn>) {
    let fs = Arc::new(SimFs::new());
    let o =
        EnvOptions { fs: fs.clone(), durability: Durability::Sync, segment_size: 1 << 20, checkpoint_bytes: u64::MAX };
    let env = Env::create_with(Path::new(HOME), o).expect("create");
    let mut rng = Rng::new(3);
    let mut txns = Vec::new();
    for i in 0..7 {
        let t = random_txn(&mut rng, i);
        txns.push(t.clone());
        env.commit(t).expect("commit");
        if i == 2 {
            env.checkpoint().expect("checkpoint");
        }
    }
    (fs, txns)
}

fn prefix_digests(txns: &[Txn]) -> Vec<[u8; 32]> {
    let mut t = Tables::default();
    let mut out = vec![t.digest()];
    for tx in txns {
        tx.apply_to(&mut t);
        out.push(t.digest());
    }
    out
}

#[test]
fn every_flipped_byte_of_a_log_is_noticed_and_never_accepted() {
    let (fs, txns) = flip_home();
    let digests = prefix_digests(&txns);
    let segs = log::list_segments(&*fs, Path::new(HOME)).expect("list");
    assert_eq!(segs.len(), 1);
    let seg = &segs[0].1;
    let good = fs.read(seg).expect("read");
    let img = fs.image();
    let (mut refused, mut torn, mut tolerated) = (0, 0, 0);
    for i in 0..good.len() {
        let state = Arc::new(SimFs::from_image(&img));
        let mut b = good.clone();
        b[i] ^= 0xff;
        state.poke(seg, b).expect("poke");
        let v = verify(&*state, Path::new(HOME)).expect("verify runs");
        assert_ne!(v.status, Status::Clean, "flip at byte {i} of the log not noticed by msdb_verify");
        match recover_normal(&state) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&seg.display().to_string()) && msg.contains("LSN"), "{msg}");
                assert_eq!(v.status, Status::Corrupt, "recovery refused what verify called {:?}", v.status);
                refused += 1;
            }
            Ok(rep) => {
                assert!(rep.repaired, "flip at byte {i}: recovery reported nothing");
                assert!(digests.contains(&rep.digest), "flip at byte {i}: recovered contents are no prefix");
                // Committed transactions of the last batch are the only ones a torn
                // tail may drop; earlier ones are in the snapshot or verified.
                let m = digests.iter().position(|d| *d == rep.digest).unwrap_or(0);
                assert!(m >= txns.len() - 1, "flip at byte {i}: recovery dropped acknowledged commits silently");
                if rep.damage.is_some() {
                    torn += 1;
                } else {
                    tolerated += 1;
                }
                let after = verify(&*state, Path::new(HOME)).expect("verify");
                assert_eq!(after.status, Status::Clean, "flip at byte {i}: {}", after.render());
            }
        }
    }
    eprintln!(
        "{} flips: {refused} refused as mid-log corruption, {torn} torn tails dropped, {tolerated} in checkpointed records set aside",
        good.len()
    );
    assert!(refused > 0 && torn > 0 && tolerated > 0);
}

#[test]
fn every_flipped_byte_of_a_snapshot_is_noticed() {
    let (fs, _) = flip_home();
    let img = fs.image();
    for db in Db::ALL {
        let path = Path::new(HOME).join(db.file_name());
        let good = fs.read(&path).expect("read");
        for i in 0..good.len() {
            let state = SimFs::from_image(&img);
            let mut b = good.clone();
            b[i] ^= 0xff;
            state.poke(&path, b).expect("poke");
            let v = verify(&state, Path::new(HOME)).expect("verify runs");
            assert_eq!(v.status, Status::Corrupt, "flip at byte {i} of {}", path.display());
            let e = recover_normal(&state).expect_err("recovery must refuse a damaged snapshot");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
    }
}
