//! `cargo xtask`: the project's chores, one entry point.
//!
//! - `corpus --messages N --out DIR [--seed S]`: a deterministic generated store.
//! - `ci`: what CI runs (`bash .ci/run`).
//! - `seeds`: write the fuzz seed inputs to `corpus/fuzz/`.
//! - `bench reconstruct|verify|import|db`, `bench --cold`: benchmark suites (see the README).
//! - `crash`: the long crash-state enumeration of the databases.
//! - `dist [--check]`: man pages and shell completions into `dist/` (checked in).
//! - `deb [--check]`: the Debian package (cargo-deb); `--check` installs, uses and purges it (root).
//! - `fuzz [TARGET...] [--seconds N] [--time TARGET=N]`: run the cargo-fuzz targets (`fuzz.rs`).
//! - `drill [--messages N] [SCENARIO...]`: the real disk-failure drill on a loop-mounted ext4
//!   image (root): damage, `e2fsck -fy`, `mstore rescue`, the matrix (`drill.rs`).

mod bench;
mod bench_cold;
mod bench_db;
#[allow(dead_code)]
#[path = "../../fuzz/bodies.rs"]
mod bodies;
mod carve_speed;
mod corpus;
mod crash;
mod deb;
mod dist;
mod drill;
mod fuzz;

use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a store: DIR/ms.conf and its partitions.
    Corpus(corpus::CorpusArgs),
    /// Run what CI runs (.ci/run).
    Ci,
    /// Write the fuzz targets' seed inputs to corpus/fuzz/<target>/seed-*.
    Seeds,
    /// Run a benchmark suite; --cold: the cold-cache rows (root).
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        /// Cold page cache (root only): reconstruct full rebuild and no-op, verify and
        /// verify --quick, each paired with the cold floor, page cache dropped before each run.
        #[arg(long)]
        cold: bool,
        #[command(flatten)]
        args: bench::BenchArgs,
        #[command(flatten)]
        cold_args: bench_cold::ColdArgs,
        #[command(subcommand)]
        suite: Option<bench::Suite>,
    },
    /// Enumerate crash states of the databases at length (the tests run a bounded version).
    Crash(crash::CrashArgs),
    /// Internal: the floor of the corpus benches, in its own process.
    #[command(name = "__floor", hide = true)]
    Floor { conf: String, threads: usize },
    /// Internal: the cold floor (list, open and read with N requests in flight).
    #[command(name = "__cold_floor", hide = true)]
    ColdFloor { conf: String, inflight: usize },
    /// Internal: the metadata floor of the reconstruct bench (list + statx), in its own process.
    #[command(name = "__meta_floor", hide = true)]
    MetaFloor { conf: String, threads: usize },
    /// Generate the man pages and shell completions into dist/ (--check: only compare).
    Dist {
        /// Fail if dist/ differs from what the command definitions give; write nothing.
        #[arg(long)]
        check: bool,
    },
    /// Build the Debian package (needs cargo-deb); --check installs, uses and purges it (root).
    Deb {
        /// After building: dpkg -i, mstore init, a store through the guide's names, mstore
        /// doctor, dpkg --purge (the store's data stays). Changes this machine.
        #[arg(long)]
        check: bool,
    },
    /// Run the cargo-fuzz targets for a time each (RUSTC_BOOTSTRAP=1 cargo install cargo-fuzz).
    Fuzz(fuzz::FuzzArgs),
    /// The real disk-failure drill (root): a demo store on a loop-mounted ext4 image, damage
    /// below the file system, e2fsck -fy, mstore rescue; prints the matrix.
    Drill {
        /// Messages in the demo store.
        #[arg(long, default_value_t = 3000)]
        messages: u32,
        /// Scenarios (dirblocks, inodes, data, tree; default: all).
        scenarios: Vec<String>,
        /// Where the images go (default: a directory under target/).
        #[arg(long)]
        work: Option<std::path::PathBuf>,
        /// Keep the images and copies.
        #[arg(long)]
        keep: bool,
        /// Seed of the damage.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print the rows as JSON too.
        #[arg(long)]
        json: bool,
        /// Instead of the scenarios: how fast carving reads an image of N MiB, against a
        /// plain sequential read of it, cold (as root) and warm.
        #[arg(long, value_name = "MIB")]
        carve_speed: Option<u64>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Corpus(a) => corpus::run(&a),
        Cmd::Ci => {
            let root = project_root();
            let status = Command::new("bash").arg(".ci/run").current_dir(&root).status().context("run .ci/run")?;
            if !status.success() {
                bail!(".ci/run failed: {status}");
            }
            Ok(())
        }
        Cmd::Fuzz(a) => fuzz::run(&a),
        Cmd::Drill { carve_speed: Some(mib), work, .. } => {
            let root = project_root();
            let work = work.unwrap_or_else(|| root.join("target/drill"));
            carve_speed::run(&work, mib, (mib as usize * 4).max(100), 3).map_err(anyhow::Error::msg)
        }
        Cmd::Drill { messages, scenarios, work, keep, seed, json, carve_speed: None } => {
            drill::available().map_err(anyhow::Error::msg)?;
            let root = project_root();
            let st = Command::new("cargo")
                .args(["build", "--release", "--bin", "mstore"])
                .current_dir(&root)
                .status()
                .context("cargo build")?;
            if !st.success() {
                bail!("cargo build --release failed");
            }
            let scs: Vec<drill::Scenario> = if scenarios.is_empty() {
                drill::Scenario::ALL.to_vec()
            } else {
                scenarios
                    .iter()
                    .map(|s| {
                        drill::Scenario::parse(s)
                            .with_context(|| format!("no scenario {s} (dirblocks, inodes, data, tree)"))
                    })
                    .collect::<Result<_>>()?
            };
            let o = drill::Options {
                messages,
                work: work.unwrap_or_else(|| root.join("target/drill")),
                mstore: root.join("target/release/mstore"),
                keep,
                seed,
            };
            let mut rows = Vec::new();
            for sc in scs {
                eprintln!("drill: {} ({} messages)...", sc.describe(), messages);
                let t = std::time::Instant::now();
                let row = drill::scenario(&o, sc).map_err(anyhow::Error::msg)?;
                eprintln!("drill: {}: {:.1} s", sc.name(), t.elapsed().as_secs_f64());
                rows.push(row);
            }
            println!("{}", drill::HEADER);
            for r in &rows {
                println!("{}", r.markdown());
            }
            for r in &rows {
                println!("{}: put back from {:?}", r.scenario, r.sources);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            Ok(())
        }
        Cmd::Dist { check } => dist::run(check),
        Cmd::Deb { check } => {
            let deb = deb::build()?;
            if check { deb::check(&deb) } else { Ok(()) }
        }
        Cmd::Bench { suite: Some(suite), .. } => bench::run(&suite),
        Cmd::Bench { suite: None, cold: true, args, cold_args } => bench_cold::run(&args, &cold_args),
        Cmd::Bench { suite: None, cold: false, .. } => {
            bail!("name a suite (cargo xtask bench reconstruct|verify|import|db) or --cold")
        }
        Cmd::Crash(a) => crash::run(&a),
        Cmd::Floor { conf, threads } => bench::floor_child(&conf, threads),
        Cmd::ColdFloor { conf, inflight } => bench_cold::cold_floor_child(&conf, inflight),
        Cmd::MetaFloor { conf, threads } => bench::meta_floor_child(&conf, threads),
        Cmd::Seeds => {
            let root = project_root();
            for t in bodies::TARGETS {
                let dir = root.join("corpus/fuzz").join(t);
                std::fs::create_dir_all(&dir)?;
                for (name, bytes) in bodies::seed_inputs(t) {
                    std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
                }
            }
            println!("seeds written under {}", root.join("corpus/fuzz").display());
            Ok(())
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(|p| p.to_path_buf()).unwrap_or_default()
}
