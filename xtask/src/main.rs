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

mod bench;
mod bench_cold;
mod bench_db;
#[allow(dead_code)]
#[path = "../../fuzz/bodies.rs"]
mod bodies;
mod corpus;
mod crash;
mod deb;
mod dist;
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
