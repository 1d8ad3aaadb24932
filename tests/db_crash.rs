//! Crash-state enumeration of the databases, bounded for CI (the long run is
//! `cargo xtask crash`): every point of every workload's trace, several power cuts at
//! each, recovery and `msdb_verify` checked on each (see `mstore::db::crash`).

use mstore::db::crash::{self, CheckConfig, Stats, Workload};

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
    assert!(total.torn > 1000 && total.nested_states > 2000 && total.backups_checked > 1000, "{total:?}");
}

/// The crash tests see every file operation only if the database code makes none but
/// through `db::fs::Fs` (ARCHITECTURE.md, "The database code sees no file system but").
#[test]
fn database_code_does_file_io_only_through_the_fs_trait() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).expect("src/db") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        if name == "fs.rs" || name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for bad in ["std::fs::", "File::open", "OpenOptions", "crate::io::atomic_write", "fsync_dir("] {
            assert!(!code.contains(bad), "{name} uses {bad} outside db::fs");
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} files");
}
