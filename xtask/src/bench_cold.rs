//! `cargo xtask bench --cold`: the runs that matter after a disk failure, with nothing in
//! the page cache. Root only: the page cache is dropped (`sync; echo 3 >
//! /proc/sys/vm/drop_caches`) before every timed run, floors included. Never in tests.
//!
//! The cold floor is opening and reading every message file of the store (the mailbox
//! directories listed first, as any tool must) with 32 requests in flight and nothing
//! else; the same with 2 in flight is shown for reference (what a scan with one thread per
//! core of this machine keeps in flight). Each row is timed right after a cold floor run
//! (paired, as the warm suites do), and its ratio is the median of those pairs.
//!
//! Rows: `reconstruct` full rebuild (index and cache removed), `reconstruct` no-op,
//! `mstore verify`, `mstore verify --quick`, all with default options (no `-j`), over the
//! whole store. `--variant NAME=ARGS` adds the same rows run with extra options (a sweep
//! by hand: `--variant 'j32=-j 32'`), `--baseline DIR` the same rows with another build's
//! binaries, all in the same invocation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::bench::{BenchArgs, Row, domains, mailbox_dirs, paired, print_rows, timed};

/// Options of the cold suite only.
#[derive(clap::Args, Debug, Default)]
pub struct ColdArgs {
    /// Also run every row with these extra options, as NAME=ARGS (ARGS split on spaces);
    /// repeatable. For sweeps by hand in one invocation: --variant 'j32=-j 32'.
    #[arg(long = "variant", value_name = "NAME=ARGS")]
    pub variants: Vec<String>,
    /// Also run every row with the binaries of this directory (a build before a change).
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// Only these rows (comma-separated: rebuild, store, noop, verify, quick, estimate).
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`: written-back dirty pages, then every clean
/// page, dentry and inode dropped.
pub fn drop_caches() -> Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").context("echo 3 > /proc/sys/vm/drop_caches")?;
    Ok(())
}

/// Refuse clearly unless root.
fn require_root() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask bench --cold must run as root: it drops the page cache before every cold run \
             (sync; echo 3 > /proc/sys/vm/drop_caches), which only root may do. Run it as root, \
             e.g. sudo -E cargo xtask bench --cold"
        );
    }
    Ok(())
}

/// Run `cmd` cold: page cache dropped first.
fn cold(cmd: &mut Command) -> Result<(f64, u64)> {
    drop_caches()?;
    timed(cmd)
}

pub fn run(a: &BenchArgs, c: &ColdArgs) -> Result<()> {
    require_root()?;
    let (dir, conf, bin) = corpus_and_binaries(a)?;
    let confs = conf.to_string_lossy().into_owned();
    let exe = std::env::current_exe()?;
    let floor_cmd = |inflight: usize| {
        let mut c = Command::new(&exe);
        c.args(["__cold_floor", &confs, &inflight.to_string()]);
        c
    };
    // Learn the corpus size (warm or not, it does not matter here).
    let out = floor_cmd(32).stdout(Stdio::piped()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let files: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;
    let bytes: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;

    let doms = domains(&conf)?;
    let dirs = mailbox_dirs(&conf)?;
    let floor32 = || cold(floor_cmd(32).stdout(Stdio::null()));
    let mut rows = floor_rows(a.repeat, &floor_cmd, files, bytes)?;
    let setups = setups(c, &bin)?;
    let want = |r: &str| c.rows.is_empty() || c.rows.iter().any(|x| x == r);
    let remove = |names: &[&str]| {
        for d in &dirs {
            for f in names {
                let _ = std::fs::remove_file(d.join(f));
            }
        }
    };
    // Every domain, one process each (as the guide's command line runs it), one after
    // the other; the run's time is their sum.
    let reconstruct_all = |bin: &Path, extra: &[String]| -> Result<(f64, u64)> {
        let (mut total, mut peak) = (0.0, 0);
        for d in &doms {
            let mut cmd = Command::new(bin.join("reconstruct"));
            cmd.args(["-f", &confs, "-r", "--no-progress"]).args(extra).arg(d).stdout(Stdio::null());
            let (s, r) = timed(&mut cmd)?;
            total += s;
            peak = peak.max(r);
        }
        Ok((total, peak))
    };
    for (suffix, bin, extra) in &setups {
        let mut push = |name: &str, bytes: u64, (s, rss, ratio): (f64, u64, f64)| {
            eprintln!(
                "  {name}{suffix}: {s:.2} s, ratio to the cold floor {ratio:.2}, peak RSS {:.0} MiB",
                rss as f64 / 1024.0
            );
            rows.push(Row {
                name: format!("{name}{suffix}"),
                messages: files,
                bytes,
                seconds: s,
                rss_kib: rss,
                ratio: Some(ratio),
            });
        };
        if want("rebuild") {
            let r = paired(a.repeat, floor32, || {
                remove(&["ms.index", "ms.cache"]);
                drop_caches()?;
                reconstruct_all(bin, extra)
            })?;
            push("reconstruct full rebuild (index+cache removed)", bytes, r);
        }
        if want("store") {
            // The same rebuild as one run over every domain (`reconstruct -r`, no domain).
            let r = paired(a.repeat, floor32, || {
                remove(&["ms.index", "ms.cache"]);
                let mut cmd = Command::new(bin.join("reconstruct"));
                cmd.args(["-f", &confs, "-r", "--no-progress"]).args(extra).stdout(Stdio::null());
                cold(&mut cmd)
            });
            match r {
                Ok(r) => push("reconstruct -r full rebuild, whole store in one run", bytes, r),
                // A baseline built before `reconstruct -r` took no domain, or a variant's
                // options that run refuses: said, and the other rows go on.
                Err(e) if !suffix.is_empty() => eprintln!("  whole-store row{suffix} skipped: {e}"),
                Err(e) => return Err(e),
            }
        }
        if want("noop") {
            // One warm-up run writes the listing cache, as a nightly run would have.
            reconstruct_all(bin, extra)?;
            let r = paired(a.repeat, floor32, || {
                drop_caches()?;
                reconstruct_all(bin, extra)
            })?;
            push("reconstruct no-op", 0, r);
        }
        for (row, name, quick) in [("verify", "verify", false), ("quick", "verify --quick", true)] {
            if !want(row) {
                continue;
            }
            let r = paired(a.repeat, floor32, || {
                let mut cmd = Command::new(bin.join("mstore"));
                cmd.args(["-f", &confs, "verify", "--no-progress"]).args(extra).stdout(Stdio::null());
                if quick {
                    cmd.arg("--quick");
                }
                cold(&mut cmd)
            })?;
            push(name, if quick { 0 } else { bytes }, r);
        }
    }
    let checks = if want("estimate") { check_estimate(a, &bin, &confs, &rows)? } else { Vec::new() };
    print_rows(
        &format!(
            "cold bench: {files} messages, {:.1} MiB, {} domains, default options, page cache dropped before \
             every run; each row timed right after a cold floor run (ratio: median of {} such pairs); corpus {}, \
             binaries {}",
            bytes as f64 / 1048576.0,
            doms.len(),
            a.repeat.max(1),
            dir.display(),
            bin.display()
        ),
        &rows,
    );
    print_checks(&checks);
    Ok(())
}

/// The corpus directory (generated if missing), its `ms.conf`, and the binaries' directory
/// (built unless `--bin-dir` names one).
pub fn corpus_and_binaries(a: &BenchArgs) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let root = crate::project_root();
    let dir = a.dir.clone().unwrap_or_else(|| {
        root.join("gen").join(format!("bench-{}{}", a.messages, if a.one_mailbox { "-one" } else { "" }))
    });
    let conf = dir.join("ms.conf");
    if !conf.exists() {
        crate::corpus::run(&crate::corpus::CorpusArgs {
            messages: a.messages,
            out: dir.clone(),
            seed: 1,
            users: None,
            one_mailbox: a.one_mailbox,
        })?;
    }
    if a.bin_dir.is_none() {
        let status = Command::new("cargo")
            .args(["build", "--release", "--quiet", "--bin", "reconstruct", "--bin", "mstore"])
            .current_dir(&root)
            .status()?;
        if !status.success() {
            bail!("cargo build failed");
        }
    }
    let bin = a.bin_dir.clone().unwrap_or_else(|| root.join("target/release"));
    Ok((dir, conf, bin))
}

/// The two floor rows: 32 in flight (alone, median of `repeat`) and 2 in flight (paired
/// with the 32).
fn floor_rows(repeat: usize, floor_cmd: &dyn Fn(usize) -> Command, files: u64, bytes: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let floor32 = || cold(floor_cmd(32).stdout(Stdio::null()));
    let (s, rss, _) = paired(repeat, floor32, || cold(floor_cmd(2).stdout(Stdio::null())))?;
    // The 32-in-flight floor is measured alone too, for its own row.
    let mut f32 = Vec::new();
    for _ in 0..repeat.max(1) {
        f32.push(floor32()?.0);
    }
    f32.sort_by(f64::total_cmp);
    eprintln!("  cold floor: 32 in flight {:.2} s, 2 in flight {s:.2} s", f32[f32.len() / 2]);
    rows.push(Row {
        name: "cold floor: list + open + read, 32 in flight".into(),
        messages: files,
        bytes,
        seconds: f32[f32.len() / 2],
        rss_kib: 0,
        ratio: Some(1.0),
    });
    rows.push(Row {
        name: "cold floor, 2 in flight (reference)".into(),
        messages: files,
        bytes,
        seconds: s,
        rss_kib: rss,
        ratio: Some(s / f32[f32.len() / 2]),
    });

    Ok(rows)
}

/// What each row runs with: (name suffix, binary directory, extra arguments): the
/// defaults, each `--variant`, and the `--baseline` build.
fn setups(c: &ColdArgs, bin: &Path) -> Result<Vec<(String, PathBuf, Vec<String>)>> {
    let mut setups: Vec<(String, PathBuf, Vec<String>)> = vec![(String::new(), bin.to_path_buf(), Vec::new())];
    for v in &c.variants {
        let (name, args) = v.split_once('=').context("--variant NAME=ARGS")?;
        setups.push((format!(" [{name}]"), bin.to_path_buf(), args.split_whitespace().map(String::from).collect()));
    }
    if let Some(b) = &c.baseline {
        setups.push((" [baseline]".into(), b.clone(), Vec::new()));
    }
    Ok(setups)
}

/// The estimate's predictions against the measured rows.
fn print_checks(checks: &[Check]) {
    if !checks.is_empty() {
        println!();
        println!(
            "mstore estimate (run cold, default sample) against the cold runs above: the prediction must be within ±25 %"
        );
        println!("| run | predicted s (± error bar) | bound | measured s | predicted / measured | within ±25 % |");
        println!("|---|---|---|---|---|---|");
        for c in checks {
            println!(
                "| {} | {:.2} (±{:.0} %) | {} | {:.2} | {:.2} | {} |",
                c.run,
                c.predicted,
                c.error * 100.0,
                c.bound,
                c.measured,
                c.predicted / c.measured,
                if (c.predicted / c.measured - 1.0).abs() <= 0.25 { "yes" } else { "NO" }
            );
        }
    }
}

/// One prediction of `mstore estimate` next to the run it predicts.
struct Check {
    run: String,
    predicted: f64,
    error: f64,
    bound: String,
    measured: f64,
}

/// Run `mstore estimate --json` cold (`a.repeat` times: the median prediction of each
/// run) and pair its predictions with the measured default rows.
fn check_estimate(a: &BenchArgs, bin: &Path, confs: &str, rows: &[Row]) -> Result<Vec<Check>> {
    let mut runs: Vec<serde_json::Value> = Vec::new();
    for _ in 0..a.repeat.max(1) {
        drop_caches()?;
        let out = Command::new(bin.join("mstore")).args(["-f", confs, "estimate", "--json"]).output()?;
        if !out.status.success() {
            bail!("mstore estimate failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        runs.push(serde_json::from_slice(&out.stdout).context("mstore estimate --json")?);
    }
    let measured = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.seconds);
    let mut checks = Vec::new();
    for (run, label, row) in [
        ("rebuild", "rebuild", "reconstruct full rebuild (index+cache removed)"),
        ("rebuild", "rebuild, whole store in one run", "reconstruct -r full rebuild, whole store in one run"),
        ("noop", "noop", "reconstruct no-op"),
        ("verify", "verify", "verify"),
    ] {
        let Some(m) = measured(row) else { continue };
        let mut preds: Vec<(f64, f64, String)> = runs
            .iter()
            .filter_map(|v| {
                let p = v["predictions"].as_array()?.iter().find(|p| p["run"] == run)?;
                Some((p["seconds"].as_f64()?, p["error"].as_f64()?, p["bound"].as_str()?.to_string()))
            })
            .collect();
        if preds.is_empty() {
            bail!("mstore estimate --json has no prediction for {run}");
        }
        preds.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (p, e, b) = preds.swap_remove(preds.len() / 2);
        eprintln!("  estimate {label}: predicted {p:.2} s (±{:.0} %, {b}), measured {m:.2} s", e * 100.0);
        checks.push(Check { run: label.into(), predicted: p, error: e, bound: b, measured: m });
    }
    Ok(checks)
}

/// The cold floor, in its own process: list every mailbox directory, then open and read
/// every message file (plain `read`, nothing mapped, nothing hashed) with `inflight`
/// threads, so that at most `inflight` requests are in flight. Prints "files bytes".
pub fn cold_floor_child(conf: &str, inflight: usize) -> Result<()> {
    use std::io::Read;
    let dirs = mailbox_dirs(Path::new(conf))?;
    let lists: Vec<std::sync::Mutex<Vec<PathBuf>>> = dirs.iter().map(|_| Default::default()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..inflight.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(d) = dirs.get(i) else { break };
                    let mut v = Vec::new();
                    if let Ok(rd) = std::fs::read_dir(d) {
                        for e in rd.flatten() {
                            if let mstore::layout::EntryKind::Message(uid) =
                                mstore::layout::classify(e.file_name().as_encoded_bytes())
                            {
                                v.push((uid, e.path()));
                            }
                        }
                    }
                    v.sort_unstable();
                    *lists[i].lock().unwrap_or_else(|e| e.into_inner()) = v.into_iter().map(|(_, p)| p).collect();
                }
            });
        }
    });
    let files: Vec<PathBuf> =
        lists.into_iter().flat_map(|l| l.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..inflight.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 * 1024];
                let mut sum = 0u64;
                while let Some(p) = files.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let Ok(mut f) = std::fs::File::open(p) else { continue };
                    while let Ok(n) = f.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sum += n as u64;
                    }
                }
                total.fetch_add(sum, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    println!("{} {}", files.len(), total.into_inner());
    Ok(())
}
