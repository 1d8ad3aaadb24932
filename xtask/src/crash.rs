//! `cargo xtask crash`: the long crash-state enumeration of the databases (the test suite
//! runs a bounded one, `tests/db_crash.rs`). Every workload of `mstore_testkit::crash`, many
//! seeds, many power cuts per crash point, recovery crashed at every point for a share of
//! the states; the runs are spread over threads.
//!
//! `cargo xtask crash --mailbox`: the same for a mailbox (`mstore_testkit::mailbox_crash`;
//! bounded in `tests/mailbox_crash.rs`): random workloads of appends, flag changes,
//! expunges, checkpoints and reconstruct rewrites, every crash point, reopen and
//! reconstruct checked against the workload's own model; then the I/O-error runs (ENOSPC
//! and EIO on every write and fsync of every step).

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
    /// Enumerate the crash states of mailbox workloads instead of the databases' (with
    /// `--seeds`, `--first-seed`, `--variants`; `--steps` steps per workload).
    #[arg(long)]
    pub mailbox: bool,
    /// Steps per mailbox workload.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
}

/// Run `job(i)` for `0..n` on `threads` threads; the first error stops the run.
fn spread<T: Send>(n: usize, threads: usize, job: impl Fn(usize) -> Result<T, String> + Sync) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<T>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    match job(i) {
                        Ok(t) => {
                            if let Ok(mut o) = out.lock() {
                                o.push(t);
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
    Ok(out.into_inner().unwrap_or_default())
}

fn mailbox(a: &CrashArgs, threads: usize) -> Result<()> {
    use mstore_testkit::mailbox_crash::{self as mc, CheckConfig as MbConfig, FaultStats, Stats as MbStats};
    let started = Instant::now();
    let cfg = MbConfig { random_variants: a.variants, seed: 0x5eed };
    let seeds: Vec<u64> = (a.first_seed..a.first_seed + a.seeds).collect();
    let (steps, mut ops) = (a.steps, 0usize);
    let runs = spread(seeds.len(), threads, |i| {
        let rec = mc::record(seeds[i], steps)
            .map_err(|e| format!("mailbox workload seed {} failed to run: {e}", seeds[i]))?;
        let s = mc::check(&rec, &cfg).map_err(|f| f.to_string())?;
        Ok((rec.trace.len(), s))
    })?;
    let mut total = MbStats::default();
    for (n, s) in &runs {
        ops += n;
        total.add(s);
    }
    let crash_secs = started.elapsed().as_secs_f64();
    let faults = spread(seeds.len().min(8), threads, |i| mc::faults(seeds[i], steps.min(12)))?;
    let mut f = FaultStats::default();
    for s in &faults {
        f.runs += s.runs;
        f.failed_steps += s.failed_steps;
    }
    println!(
        "mailbox: {} crash states checked ({} crash points of {ops} operations, {} seeds x {steps} steps; {} opened without reconstruct; step in flight applied in {}, orphans kept {}), {crash_secs:.1}s",
        total.states,
        total.points,
        seeds.len(),
        total.opened,
        total.in_flight_applied,
        total.orphans
    );
    println!(
        "mailbox I/O errors: {} runs with ENOSPC or EIO on a write or fsync ({} steps failed), {:.1}s in all",
        f.runs,
        f.failed_steps,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn run(a: &CrashArgs) -> Result<()> {
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if a.mailbox {
        return mailbox(a, threads);
    }
    let started = Instant::now();
    let jobs: Vec<(Workload, u64)> =
        Workload::ALL.iter().flat_map(|&w| (a.first_seed..a.first_seed + a.seeds).map(move |s| (w, s))).collect();
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
        "total: {} crash states checked ({} after a power cut in a workload, {} after a power cut inside recovery, {} after a power cut during commits on a recovered home), {} seeds x {} workloads, {:.1}s",
        total.states + total.nested_states + total.after_recovery_states,
        total.states,
        total.nested_states,
        total.after_recovery_states,
        a.seeds,
        Workload::ALL.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
