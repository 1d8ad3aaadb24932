//! `cargo xtask bench SUITE`: benchmark suites (`db` lives in `bench_db.rs`). These need a generated corpus, whole
//! processes, peak RSS and ratios measured in one run (criterion benches in `benches/`
//! cover the small kernels).
//!
//! `verify`: the floor, a full scan (read and hash every message) and `--quick`.
//!
//! `reconstruct`: for a corpus of N messages, the floor (open, read and BLAKE3 every
//! message file with the same thread count and nothing else), for reference the metadata
//! floor (list every mailbox directory and `statx` every message, in one process: what
//! bounds any no-op that compares metadata), a no-op run (index current),
//! a metadata-only rebuild (index files removed: the change log still holds every record),
//! and a full rebuild (index and cache files removed: every message read and parsed).
//!
//! `import`: a generated store with every message in one mailbox is exported once with
//! `mstore export` to a Maildir and an mbox file (kept under the corpus directory); then
//! each is imported into a fresh store (`fsync: no`, as for every generated corpus), and
//! timed against the floor (open, read and BLAKE3 of the same message files, one thread:
//! import appends one message at a time; the all-cores floor is shown for scale). The
//! exports are timed too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

/// The suites.
#[derive(clap::Subcommand, Debug)]
pub enum Suite {
    /// reconstruct against the read-and-hash floor: no-op, rebuilds, --verify-content.
    Reconstruct(BenchArgs),
    /// verify (full and --quick) against the floor.
    Verify(BenchArgs),
    /// import and export of Maildir and mbox against the floor.
    Import(BenchArgs),
    /// The databases: commit rates, recovery and backup speed.
    Db(crate::bench_db::DbArgs),
}

/// Options of the corpus suites.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Messages in the generated corpus.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Corpus directory (default: gen/bench-N); generated if missing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Put every message in one mailbox.
    #[arg(long)]
    pub one_mailbox: bool,
    /// Runs of each row of `reconstruct` and `verify` (the floor included); the median time
    /// is reported, and the largest peak RSS. These shared machines drift by 10-20 % from
    /// one run to the next: one run per row makes ratios jump.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Run the `reconstruct` and `mstore` binaries of this directory (another build, to
    /// compare with) instead of building this tree's.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// Where the binaries under test are.
fn bin_dir(a: &BenchArgs) -> PathBuf {
    a.bin_dir.clone().unwrap_or_else(|| crate::project_root().join("target/release"))
}

/// Run `once` `n` times: (median seconds, largest peak RSS).
fn median_of(n: usize, mut once: impl FnMut() -> Result<(f64, u64)>) -> Result<(f64, u64)> {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..n.max(1) {
        let (s, r) = once()?;
        times.push(s);
        rss = rss.max(r);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], rss))
}

/// One measured row.
pub(crate) struct Row {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rss_kib: u64,
    /// Ratio to the floor measured in pairs (see [`paired`]); else `seconds / floor`.
    pub ratio: Option<f64>,
}

/// Run the floor and `row` alternately `n` times: (median row seconds, largest peak RSS,
/// median of the n ratios row / floor). The machine drifts by 10-20 % over a minute; a
/// ratio taken against a floor measured seconds before it drifts much less than one
/// against a floor measured at the start.
pub(crate) fn paired(
    n: usize,
    mut floor: impl FnMut() -> Result<(f64, u64)>,
    mut row: impl FnMut() -> Result<(f64, u64)>,
) -> Result<(f64, u64, f64)> {
    let (mut times, mut ratios, mut rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..n.max(1) {
        let (f, _) = floor()?;
        let (s, r) = row()?;
        times.push(s);
        ratios.push(s / f);
        rss = rss.max(r);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(times), rss, median(ratios)))
}

pub fn run(suite: &Suite) -> Result<()> {
    match suite {
        Suite::Reconstruct(a) => reconstruct(a),
        Suite::Verify(a) => verify(a),
        Suite::Import(a) => import(a),
        Suite::Db(a) => crate::bench_db::db(a),
    }
}

/// Run `cmd`, returning (seconds, peak RSS in KiB of the child). Dirty pages of the
/// previous row are written back first, so one row's writeback is not timed in the next.
pub(crate) fn timed(cmd: &mut Command) -> Result<(f64, u64)> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let start = Instant::now();
    let child = cmd.spawn().context("spawn")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, and the pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    std::mem::forget(child);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) > 1 {
        bail!("{cmd:?} exited with status {}", libc::WEXITSTATUS(status));
    }
    Ok((secs, usage.ru_maxrss as u64))
}

pub(crate) fn domains(conf: &Path) -> Result<Vec<String>> {
    let cfg = mstore::config::Config::load(conf)?;
    let st = mstore::store::Store::open(cfg)?;
    let mut d: Vec<String> = st.list(None)?.into_iter().map(|e| e.domain).collect();
    d.dedup();
    Ok(d)
}

pub(crate) fn mailbox_dirs(conf: &Path) -> Result<Vec<PathBuf>> {
    let cfg = mstore::config::Config::load(conf)?;
    let st = mstore::store::Store::open(cfg)?;
    let mut v = Vec::new();
    for e in st.list(None)? {
        v.push(st.place(&e)?.dir);
    }
    Ok(v)
}

/// Generate (or reuse) the corpus, build the binaries, warm the page cache with one floor
/// run, and measure the floor: (conf, corpus dir, threads, files, bytes, floor row).
fn prepare(a: &BenchArgs) -> Result<(PathBuf, PathBuf, usize, u64, u64, Row)> {
    let (dir, conf, _) = crate::bench_cold::corpus_and_binaries(a)?;
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let exe = std::env::current_exe()?;
    let floor_cmd = || {
        let mut c = Command::new(&exe);
        c.args(["__floor", &conf.to_string_lossy(), &threads.to_string()]);
        c.stdout(std::process::Stdio::piped());
        c
    };
    // Warm the page cache, and learn the corpus size.
    let out = floor_cmd().output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let files: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;
    let bytes: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;

    let (s, rss) = median_of(a.repeat, || timed(floor_cmd().stdout(std::process::Stdio::null())))?;
    let floor =
        Row { name: "floor: open+read+blake3".into(), messages: files, bytes, seconds: s, rss_kib: rss, ratio: None };
    Ok((conf, dir, threads, files, bytes, floor))
}

pub(crate) fn print_rows(title: &str, rows: &[Row]) {
    let floor = rows[0].seconds;
    println!("{title}");
    println!("| run | messages/s | MB/s | peak RSS MiB | time s | ratio to floor |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let mbs = if r.bytes > 0 { format!("{:.0}", r.bytes as f64 / 1e6 / r.seconds) } else { "-".into() };
        println!(
            "| {} | {:.0} | {} | {:.1} | {:.2} | {:.2} |",
            r.name,
            r.messages as f64 / r.seconds,
            mbs,
            r.rss_kib as f64 / 1024.0,
            r.seconds,
            r.ratio.unwrap_or(r.seconds / floor)
        );
    }
}

fn verify(a: &BenchArgs) -> Result<()> {
    let (conf, dir, threads, files, bytes, floor) = prepare(a)?;
    let bin = bin_dir(a).join("mstore");
    let mut rows = vec![floor];
    for (name, quick) in [("verify (read + BLAKE3 every message)", false), ("verify --quick (metadata only)", true)] {
        let mut c = Command::new(&bin);
        c.args(["-f", &conf.to_string_lossy(), "verify", "-j", &threads.to_string(), "--no-progress"]);
        if quick {
            c.arg("--quick");
        }
        c.stdout(std::process::Stdio::null());
        let (s, rss) = median_of(a.repeat, || timed(&mut c))?;
        rows.push(Row {
            name: name.into(),
            messages: files,
            bytes: if quick { 0 } else { bytes },
            seconds: s,
            rss_kib: rss,
            ratio: None,
        });
    }
    print_rows(
        &format!(
            "verify bench: {files} messages, {:.1} MiB, {threads} threads, median of {} runs per row, corpus {}",
            bytes as f64 / 1048576.0,
            a.repeat.max(1),
            dir.display()
        ),
        &rows,
    );
    Ok(())
}

fn reconstruct(a: &BenchArgs) -> Result<()> {
    let (conf, dir, threads, files, bytes, floor) = prepare(a)?;
    let bin = bin_dir(a).join("reconstruct");
    let doms = domains(&conf)?;
    let mut rows = vec![floor];

    let run_all = |extra: &[&str]| -> Result<(f64, u64)> {
        let mut total = 0.0;
        let mut peak = 0;
        for d in &doms {
            let mut c = Command::new(&bin);
            c.args(["-f", &conf.to_string_lossy(), "-r", "-j", &threads.to_string(), "--no-progress"]);
            c.args(extra).arg(d).stdout(std::process::Stdio::null());
            let (s, r) = timed(&mut c)?;
            total += s;
            peak = peak.max(r);
        }
        Ok((total, peak))
    };
    let dirs = mailbox_dirs(&conf)?;
    let remove = |files: &[&str]| {
        for d in &dirs {
            for f in files {
                let _ = std::fs::remove_file(d.join(f));
            }
        }
    };
    let exe = std::env::current_exe()?;
    let floor = || {
        let mut c = Command::new(&exe);
        c.args(["__floor", &conf.to_string_lossy(), &threads.to_string()]).stdout(std::process::Stdio::null());
        timed(&mut c)
    };
    let mut row = |name: &'static str, bytes: u64, run: &mut dyn FnMut() -> Result<(f64, u64)>| -> Result<()> {
        let (s, rss, ratio) = paired(a.repeat, floor, run)?;
        rows.push(Row { name: name.into(), messages: files, bytes, seconds: s, rss_kib: rss, ratio: Some(ratio) });
        Ok(())
    };
    let mut meta = Command::new(&exe);
    meta.args(["__meta_floor", &conf.to_string_lossy(), &threads.to_string()]).stdout(std::process::Stdio::null());
    row("metadata floor: list + statx (reference)", 0, &mut || timed(&mut meta))?;
    // The listing cache (formats/listings.md): the first run over quiet folders writes
    // it, later ones use it. Both rows are shown.
    let listings = mstore::config::Config::load(&conf)?.ms_path.join("listings");
    row("no-op, no listing cache (first run)", 0, &mut || {
        let _ = std::fs::remove_dir_all(&listings);
        run_all(&[])
    })?;
    run_all(&[])?;
    row("no-op (index current)", 0, &mut || run_all(&[]))?;
    row("rebuild, ms.index removed", 0, &mut || {
        remove(&["ms.index"]);
        run_all(&[])
    })?;
    row("full rebuild, index+cache removed", bytes, &mut || {
        remove(&["ms.index", "ms.cache"]);
        run_all(&[])
    })?;
    row("full rebuild, whole store in one run (reconstruct -r)", bytes, &mut || {
        remove(&["ms.index", "ms.cache"]);
        let mut c = Command::new(&bin);
        c.args(["-f", &conf.to_string_lossy(), "-r", "-j", &threads.to_string(), "--no-progress"]);
        timed(c.stdout(std::process::Stdio::null()))
    })?;
    row("--verify-content (index current)", bytes, &mut || run_all(&["--verify-content"]))?;

    print_rows(
        &format!(
            "reconstruct bench: {files} messages, {:.1} MiB, {threads} threads, median of {} runs per row, \
             each run after a floor run (ratio: median of those pairs), corpus {}, binaries {}",
            bytes as f64 / 1048576.0,
            a.repeat.max(1),
            dir.display(),
            bin.parent().unwrap_or(Path::new(".")).display()
        ),
        &rows,
    );
    Ok(())
}

fn import(a: &BenchArgs) -> Result<()> {
    let root = crate::project_root();
    let base = a.dir.clone().unwrap_or_else(|| root.join("gen").join(format!("bench-import-{}", a.messages)));
    let src = base.join("src");
    let conf = src.join("ms.conf");
    if !conf.exists() {
        crate::corpus::run(&crate::corpus::CorpusArgs {
            messages: a.messages,
            out: src.clone(),
            seed: 1,
            users: None,
            one_mailbox: true,
        })?;
    }
    let status =
        Command::new("cargo").args(["build", "--release", "--quiet", "--bin", "mstore"]).current_dir(&root).status()?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin = root.join("target/release/mstore");
    let c = conf.to_string_lossy().into_owned();
    let md = base.join("export.maildir");
    let mbox = base.join("export.mbox");
    let mut rows = Vec::new();
    let exe = std::env::current_exe()?;
    let floor = |threads: usize| -> Result<(u64, u64, f64, u64)> {
        let mut cmd = Command::new(&exe);
        cmd.args(["__floor", &c, &threads.to_string()]).stdout(std::process::Stdio::piped());
        let out = cmd.output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let files: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;
        let bytes: u64 = it.next().and_then(|s| s.parse().ok()).context("floor output")?;
        let mut cmd = Command::new(&exe);
        cmd.args(["__floor", &c, &threads.to_string()]).stdout(std::process::Stdio::null());
        let (s, rss) = timed(&mut cmd)?;
        Ok((files, bytes, s, rss))
    };
    // Warm the page cache, learn the size.
    let (files, bytes, _, _) = floor(1)?;
    let (_, _, s1, rss1) = floor(1)?;
    rows.push(Row {
        name: "floor: open+read+blake3, 1 thread".into(),
        messages: files,
        bytes,
        seconds: s1,
        rss_kib: rss1,
        ratio: None,
    });
    let cores = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let (_, _, sn, rssn) = floor(cores)?;
    rows.push(Row { name: "floor, all cores".into(), messages: files, bytes, seconds: sn, rss_kib: rssn, ratio: None });
    for (what, dest) in [("maildir", &md), ("mbox", &mbox)] {
        if dest.exists() {
            continue;
        }
        let mut cmd = Command::new(&bin);
        cmd.args(["export", what, "-f", &c, "--no-progress", "example.com", "user/huge"]).arg(dest);
        cmd.stdout(std::process::Stdio::null());
        let (s, rss) = timed(&mut cmd)?;
        let name = if what == "maildir" { "export maildir" } else { "export mbox" };
        rows.push(Row { name: name.into(), messages: files, bytes, seconds: s, rss_kib: rss, ratio: None });
    }
    for (what, from) in [("maildir", &md), ("mbox", &mbox)] {
        let target = base.join(format!("target-{what}"));
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::create_dir_all(&target)?;
        let tconf = target.join("ms.conf");
        // The runtime user is whoever runs the bench (the default, `sms`, need not exist).
        let (user, group) = mstore::cli::current_user_and_group();
        std::fs::write(
            &tconf,
            format!(
                "ms-path: {}\nruntime-user: {user}\nruntime-group: {group}\nfsync: no\n",
                target.join("ms").display()
            ),
        )?;
        let tc = tconf.to_string_lossy().into_owned();
        let st = Command::new(&bin).args(["init", "-f", &tc]).stdout(std::process::Stdio::null()).status()?;
        if !st.success() {
            bail!("mstore init failed");
        }
        let mut cmd = Command::new(&bin);
        cmd.args(["import", what, "-f", &tc, "--no-progress"]).arg(from).args(["example.com", "user/imported"]);
        cmd.stdout(std::process::Stdio::null());
        let (s, rss) = timed(&mut cmd)?;
        let name = if what == "maildir" { "import maildir" } else { "import mbox" };
        rows.push(Row { name: name.into(), messages: files, bytes, seconds: s, rss_kib: rss, ratio: None });
        // A re-run finds everything present (hash + date per message) and appends nothing.
        let mut cmd = Command::new(&bin);
        cmd.args(["import", what, "-f", &tc, "--no-progress"]).arg(from).args(["example.com", "user/imported"]);
        cmd.stdout(std::process::Stdio::null());
        let (s, rss) = timed(&mut cmd)?;
        let name = if what == "maildir" { "re-run maildir (all present)" } else { "re-run mbox (all present)" };
        rows.push(Row { name: name.into(), messages: files, bytes, seconds: s, rss_kib: rss, ratio: None });
    }
    println!("import bench: {files} messages, {:.1} MiB, corpus {}", bytes as f64 / 1048576.0, base.display());
    println!("| run | messages/s | MB/s | peak RSS MiB | time s | ratio to 1-thread floor |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} |",
            r.name,
            r.messages as f64 / r.seconds,
            r.bytes as f64 / 1e6 / r.seconds,
            r.rss_kib as f64 / 1024.0,
            r.seconds,
            r.seconds / s1
        );
    }
    Ok(())
}

/// The metadata floor, in its own process: list every mailbox directory and `statx` (size
/// and mtime, relative to the directory) every message file in it, with `threads` threads
/// taking one directory at a time, and nothing else: what any run that compares file
/// metadata with an index must do. Prints the number of files.
pub fn meta_floor_child(conf: &str, threads: usize) -> Result<()> {
    use std::os::fd::AsRawFd;
    let dirs = mailbox_dirs(Path::new(conf))?;
    let total = each_on_threads(&dirs, threads, |d| {
        let (Ok(fd), Ok(entries)) = (std::fs::File::open(d), std::fs::read_dir(d)) else { return 0 };
        let mut names = Vec::new();
        for e in entries.flatten() {
            let n = e.file_name();
            if let mstore::layout::EntryKind::Message(_) = mstore::layout::classify(n.as_encoded_bytes()) {
                names.extend(std::ffi::CString::new(n.into_encoded_bytes()));
            }
        }
        for n in &names {
            // SAFETY: an all-zero statx is a valid value for the kernel to overwrite.
            let mut st: libc::statx = unsafe { std::mem::zeroed() };
            // SAFETY: fd is an open directory, n a NUL-terminated name, st a live local.
            let r = unsafe {
                libc::statx(
                    fd.as_raw_fd(),
                    n.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC,
                    libc::STATX_SIZE | libc::STATX_MTIME,
                    &mut st,
                )
            };
            std::hint::black_box((r, st.stx_size));
        }
        names.len() as u64
    });
    println!("{total}");
    Ok(())
}

/// Run `f` on every item with `threads` threads, each taking the next item; the sum of
/// what `f` returns.
fn each_on_threads<T: Sync>(items: &[T], threads: usize, f: impl Fn(&T) -> u64 + Sync) -> u64 {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    total.fetch_add(f(item), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    total.into_inner()
}

/// The floor, in its own process: open, fstat, read (or map) and BLAKE3 every message
/// file of the store with `threads` threads. Prints "files bytes".
pub fn floor_child(conf: &str, threads: usize) -> Result<()> {
    let mut files = Vec::new();
    for d in mailbox_dirs(Path::new(conf))? {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if let mstore::layout::EntryKind::Message(_) = mstore::layout::classify(e.file_name().as_encoded_bytes()) {
                files.push(e.path());
            }
        }
    }
    let total = each_on_threads(&files, threads, |p| {
        let Ok(f) = std::fs::File::open(p) else { return 0 };
        let Ok(m) = f.metadata() else { return 0 };
        match mstore::io::read_file_at(&f, m.len(), mstore::io::Map::Allow) {
            Ok(b) => {
                std::hint::black_box(blake3::hash(&b));
                b.len() as u64
            }
            Err(_) => 0,
        }
    });
    println!("{} {total}", files.len());
    Ok(())
}
