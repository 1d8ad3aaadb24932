//! Crash-state enumeration of the databases, bounded for CI (the long run is
//! `cargo xtask crash`): every point of every workload's trace, several power cuts at
//! each, recovery and `msdb_verify` checked on each (see `mstore_testkit::crash`).

use mstore_testkit::crash::{self, CheckConfig, Stats, Workload};

fn run(w: Workload, seed: u64, txns: usize, cfg: &CheckConfig) -> Stats {
    let rec = crash::record(w, seed, txns).unwrap_or_else(|e| panic!("{} workload failed: {e}", w.name()));
    let s = crash::check(&rec, cfg).unwrap_or_else(|f| panic!("{f}"));
    eprintln!(
        "{:>12}: {} ops, {} points, {} crash states, {} inside recovery, {} torn, {} backups checked",
        w.name(),
        rec.trace.len(),
        s.points,
        s.states,
        s.nested_states,
        s.torn,
        s.backups_checked
    );
    s
}

#[test]
fn every_crash_point_of_every_workload_recovers() {
    let cfg = CheckConfig { random_variants: 12, nested_every: 20, seed: 7 };
    let mut total = Stats::default();
    for seed in 1..=8 {
        for w in Workload::ALL {
            total.add(&run(w, seed, 30, &cfg));
        }
    }
    eprintln!(
        "total: {} crash states checked ({} inside recovery)",
        total.states + total.nested_states,
        total.nested_states
    );
    assert!(total.states > 8000, "{total:?}");
    eprintln!("{} crash states after commits on a recovered home", total.after_recovery_states);
    assert!(total.torn > 1000 && total.nested_states > 2000 && total.backups_checked > 1000, "{total:?}");
    assert!(total.after_recovery_states > 1000, "{total:?}");
}

mod installs {
    //! A power cut in the middle of an install (point-in-time recovery, restore): running
    //! the same command again reaches the same contents, and the result verifies clean.

    use std::path::Path;
    use std::sync::Arc;

    use mstore::db::recover::{Mode, RecoverOptions, recover};
    use mstore::db::verify::{Status, verify};
    use mstore::db::{Env, EnvOptions, backup, log, restore};
    use mstore::fs::Fs;
    use mstore::io::Durability;
    use mstore_testkit::Rng;
    use mstore_testkit::crash::random_txn;
    use mstore_testkit::sim::{CrashSweep, Image, SimFs, Variant};

    const HOME: &str = "/ms/database";
    const BACKUPS: &str = "/ms/backup";

    /// A home with a backup, more commits, and a damaged record in the middle of the log.
    fn damaged_home() -> Image {
        let fs = Arc::new(SimFs::new());
        let o = EnvOptions {
            fs: fs.clone(),
            durability: Durability::Sync,
            segment_size: 1 << 20,
            checkpoint_bytes: u64::MAX,
        };
        let env = Env::create_with(Path::new(HOME), o.clone()).expect("create");
        let mut rng = Rng::new(5);
        for i in 0..6 {
            env.commit(random_txn(&mut rng, i)).expect("commit");
        }
        let bo = backup::BackupOptions { backup_dir: BACKUPS.into(), keep: 2 };
        backup::backup(&o, Path::new(HOME), &bo, &mut |_| {}).expect("backup");
        for i in 6..12 {
            env.commit(random_txn(&mut rng, i)).expect("commit");
        }
        drop(env);
        let seg = log::list_segments(&*fs, Path::new(HOME)).expect("list").pop().expect("segment").1;
        let mut b = fs.read(&seg).expect("read");
        // The first record after the backup's checkpoint record: five transactions follow.
        let (h, crc) = mstore::codec::wal::decode_segment_header(&b).expect("header");
        let scan = mstore::codec::wal::scan_records(&b[64..], 64, h.salt, crc, h.first_lsn, usize::MAX);
        let ck = scan
            .records
            .iter()
            .rposition(|(_, r)| matches!(r.body, mstore::codec::wal::Body::Checkpoint { .. }))
            .expect("checkpoint record");
        let at = scan.records[ck + 1].0 as usize + 20;
        b[at] ^= 0x55;
        fs.poke(&seg, b).expect("poke");
        let v = verify(&*fs, Path::new(HOME)).expect("verify");
        assert_eq!(v.status, Status::Corrupt, "{}", v.render());
        fs.image()
    }

    fn check_rerun(name: &str, img: &Image, run: &dyn Fn(&SimFs) -> [u8; 32]) -> u64 {
        let fs = SimFs::from_image(img);
        let start = fs.start_recording();
        let want = run(&fs);
        let trace = fs.take_trace();
        let mut sweep = CrashSweep::new(&start, &trace);
        let mut rng = Rng::new(9);
        let mut states = 0;
        loop {
            for v in [Variant::SyncedOnly, Variant::Everything, Variant::Random, Variant::Random] {
                let state = SimFs::from_image(&sweep.materialise(v, &mut rng));
                let got = run(&state);
                assert_eq!(
                    got,
                    want,
                    "{name}: crash at point {} ({v:?}) then rerun reached other contents",
                    sweep.point()
                );
                let after = verify(&state, Path::new(HOME)).expect("verify");
                assert_eq!(after.status, Status::Clean, "{name} point {}: {}", sweep.point(), after.render());
                states += 1;
            }
            if !sweep.has_next() {
                break;
            }
            sweep.advance();
        }
        states
    }

    #[test]
    fn a_crash_during_point_in_time_recovery_or_restore_is_finished_by_a_rerun() {
        let img = damaged_home();
        let pit = |fs: &SimFs| {
            let o = RecoverOptions { mode: Mode::PointInTime, durability: Durability::Sync, dry_run: false };
            recover(fs, Path::new(HOME), &o).expect("point-in-time recovery").digest
        };
        let n1 = check_rerun("point-in-time", &img, &pit);
        let rst = |fs: &SimFs| {
            restore::restore(
                fs,
                Path::new(HOME),
                Path::new(BACKUPS),
                None,
                Durability::Sync,
                mstore::report::Run::Apply,
            )
            .expect("restore");
            let o = RecoverOptions { mode: Mode::Normal, durability: Durability::Sync, dry_run: false };
            recover(fs, Path::new(HOME), &o).expect("recover after restore").digest
        };
        let n2 = check_rerun("restore", &img, &rst);
        eprintln!("{n1} crash states inside point-in-time recovery, {n2} inside restore");
        assert!(n1 > 50 && n2 > 50);
    }
}
