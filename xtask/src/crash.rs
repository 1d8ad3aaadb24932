//! `cargo xtask crash`: the long crash-state enumeration of the databases (the test suite
//! runs a bounded one, `tests/db_crash.rs`). Every workload of `mstore_testkit::crash`, many
//! seeds, many power cuts per crash point, recovery crashed at every point for a share of
//! the states; the runs are spread over threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use mstore_testkit::crash::{self, CheckConfig, Stats, Workload};

/// Options of `cargo xtask crash`.
#[derive(clap::Args, Debug)]
pub struct CrashArgs {
    /// Seeds per workload.
    #[arg(long, default_value_t = 40)]
    pub seeds: u64,
    /// First seed (runs use seeds first..first+seeds).
    #[arg(long, default_value_t = 1000)]
    pub first_seed: u64,
    /// Transactions per run.
    #[arg(long, default_value_t = 60)]
    pub txns: usize,
    /// Random power cuts per crash point (besides "synced only" and "everything").
    #[arg(long, default_value_t = 24)]
    pub variants: usize,
    /// Crash recovery itself at every one of its points for every n-th state.
    #[arg(long, default_value_t = 8)]
    pub nested_every: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: &CrashArgs) -> Result<()> {
    let started = Instant::now();
    let jobs: Vec<(Workload, u64)> =
        Workload::ALL.iter().flat_map(|&w| (a.first_seed..a.first_seed + a.seeds).map(move |s| (w, s))).collect();
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let next = AtomicUsize::new(0);
    let per: Mutex<Vec<Stats>> = Mutex::new(vec![Stats::default(); Workload::ALL.len()]);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let cfg = CheckConfig { random_variants: a.variants, nested_every: a.nested_every, seed: 0x5eed };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(w, seed)) = jobs.get(i) else { break };
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let outcome = crash::record(w, seed, a.txns)
                        .map_err(|e| format!("workload {} seed {seed} failed to run: {e}", w.name()))
                        .and_then(|rec| crash::check(&rec, &cfg).map_err(|f| f.to_string()));
                    match outcome {
                        Ok(s) => {
                            if let Ok(mut p) = per.lock() {
                                let k = Workload::ALL.iter().position(|&x| x == w).unwrap_or(0);
                                p[k].add(&s);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(f) = failure.into_inner().ok().flatten() {
        bail!("crash check failed: {f}");
    }
    let per = per.into_inner().unwrap_or_default();
    let mut total = Stats::default();
    println!(
        "{:<14} {:>10} {:>12} {:>16} {:>10} {:>10}",
        "workload", "points", "crash states", "inside recovery", "torn", "backups"
    );
    for (w, s) in Workload::ALL.iter().zip(&per) {
        println!(
            "{:<14} {:>10} {:>12} {:>16} {:>10} {:>10}",
            w.name(),
            s.points,
            s.states,
            s.nested_states,
            s.torn,
            s.backups_checked
        );
        total.add(s);
    }
    println!(
        "total: {} crash states checked ({} after a power cut in a workload, {} after a power cut inside recovery), {} seeds x {} workloads, {:.1}s",
        total.states + total.nested_states,
        total.states,
        total.nested_states,
        a.seeds,
        Workload::ALL.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
