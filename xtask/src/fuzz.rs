//! `cargo xtask fuzz`: run the cargo-fuzz targets for a set time each, one process and one
//! core at a time, and keep a record of every run.
//!
//! cargo-fuzz needs nightly features; on the stable toolchain `RUSTC_BOOTSTRAP=1` enables
//! them (`RUSTC_BOOTSTRAP=1 cargo install cargo-fuzz` installs it). Each target reads its
//! seeds from `corpus/fuzz/<target>/` and writes what it discovers to
//! `target/fuzz/corpus/<target>/` (the committed seed directory is never written); a crash
//! input lands in `target/fuzz/artifacts/<target>/` and must be committed as
//! `corpus/fuzz/<target>/crash-<name>` together with its fix, so `tests/fuzz_seeds.rs`
//! replays it. Every run is appended to `target/fuzz/runs.tsv` (UTC time, target, seconds
//! fuzzed, runs, result); the README's fuzzing table is made from it.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Targets to run (see fuzz/fuzz_targets/); all when omitted.
    targets: Vec<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// A different time for one target: `--time wal=600` (repeatable).
    #[arg(long = "time", value_name = "TARGET=SECONDS")]
    times: Vec<String>,
}

pub fn run(a: &FuzzArgs) -> Result<()> {
    let root = crate::project_root();
    let mut targets = a.targets.clone();
    if targets.is_empty() {
        targets = crate::bodies::TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let mut times = std::collections::HashMap::new();
    for t in &a.times {
        let (name, secs) = t.split_once('=').with_context(|| format!("--time {t}: expected TARGET=SECONDS"))?;
        times.insert(name.to_string(), secs.parse::<u64>().with_context(|| format!("--time {t}: seconds"))?);
    }
    let work = root.join("target/fuzz");
    for d in ["logs", "corpus", "artifacts"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let mut failed = Vec::new();
    for t in &targets {
        let secs = times.get(t).copied().unwrap_or(a.seconds);
        let started = std::time::Instant::now();
        let (runs, done_secs, result) = run_one(&root, &work, t, secs)?;
        // libFuzzer's own count of seconds; after a crash (no such line), the wall time.
        let took = done_secs.unwrap_or_else(|| started.elapsed().as_secs().min(secs));
        let line = format!("{}\t{t}\t{took}\t{runs}\t{result}\n", utc_now());
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work.join("runs.tsv"))?
            .write_all(line.as_bytes())?;
        println!("fuzz {t}: {runs} runs in {took} s: {result}");
        if result != "ok" {
            failed.push(t.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets {failed:?} failed: see target/fuzz/logs/<target>.log; commit each input of target/fuzz/artifacts/<target>/ as corpus/fuzz/<target>/crash-<name> with its fix"
        );
    }
    Ok(())
}

fn run_one(root: &Path, work: &Path, t: &str, secs: u64) -> Result<(u64, Option<u64>, String)> {
    let scratch = work.join("corpus").join(t);
    let artifacts = work.join("artifacts").join(t);
    std::fs::create_dir_all(&scratch)?;
    std::fs::create_dir_all(&artifacts)?;
    let log_path = work.join("logs").join(format!("{t}.log"));
    let log = std::fs::File::create(&log_path)?;
    let status = Command::new("cargo")
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", t])
        .arg(&scratch)
        .arg(root.join("corpus/fuzz").join(t))
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .context("run cargo fuzz (install it with `RUSTC_BOOTSTRAP=1 cargo install cargo-fuzz`)")?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let runs = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // "Done 5319328 runs in 180 second(s)"
    let done_secs = text.lines().find_map(|l| {
        let rest = l.strip_prefix("Done ")?;
        rest.split_once(" runs in ")?.1.split_whitespace().next()?.parse().ok()
    });
    let result = if status.success() { "ok".to_string() } else { format!("failed ({status})") };
    Ok((runs, done_secs, result))
}

/// `YYYY-MM-DDTHH:MM:SSZ` without a date crate.
fn utc_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}
