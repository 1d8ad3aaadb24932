//! The real disk-failure drill (`cargo xtask drill`): a demo store on a loop-mounted ext4
//! image, damage below the file system (directory blocks, inode-table blocks, data blocks,
//! the directory above the partitions), `e2fsck -fy`, then `mstore rescue` with the image
//! taken before fsck given for carving and an older copy of the spool for `--from`; then
//! every message is compared with what `mstore show --json` said before the damage.
//!
//! Also compiled into `tests/drill.rs` (a small run in CI): no dependency beyond std and
//! serde_json, errors are strings.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The directory blocks of the three largest mailboxes are zeroed: fsck moves their
    /// files into `lost+found/#<inode>`.
    DirBlocks,
    /// 5% of the inode-table blocks holding the store's message inodes are zeroed: fsck
    /// clears those inodes; their data blocks stay on the device.
    Inodes,
    /// 0.5% of the messages get a block overwritten: their bytes are damaged.
    Data,
    /// The directory above the partitions is zeroed and 2% of the store's blocks
    /// overwritten (`ms.conf` is kept elsewhere, as in /etc).
    Tree,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 4] = [Scenario::DirBlocks, Scenario::Inodes, Scenario::Data, Scenario::Tree];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::DirBlocks => "dirblocks",
            Scenario::Inodes => "inodes",
            Scenario::Data => "data",
            Scenario::Tree => "tree",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The damage, in words (the matrix's first column).
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::DirBlocks => "directory blocks of the 3 largest mailboxes zeroed",
            Scenario::Inodes => "5% of the inode-table blocks holding message inodes zeroed",
            Scenario::Data => "0.5% of the messages get one block overwritten",
            Scenario::Tree => "the directory above the partitions zeroed + 2% of the store's blocks overwritten",
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Messages in the demo store.
    pub messages: u32,
    /// Where the images and copies go (a directory on another file system than nothing in
    /// particular: it is created and removed).
    pub work: PathBuf,
    /// The `mstore` binary.
    pub mstore: PathBuf,
    /// Keep the work directory.
    pub keep: bool,
    /// Seed of the damage.
    pub seed: u64,
}

/// One line of the matrix.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Row {
    /// The scenario.
    pub scenario: String,
    /// Messages before the damage.
    pub total: u64,
    /// Back in their mailbox with the same UID, flags and internal date (and bytes).
    pub identical: u64,
    /// Not back, but named in the loss ledger.
    pub in_ledger: u64,
    /// Neither.
    pub lost: u64,
    /// Messages whose files the damage actually reached (for the data scenario: damaged).
    pub hit: u64,
    /// `e2fsck`'s exit status.
    pub fsck: i32,
    /// `mstore rescue`'s exit status.
    pub rescue: i32,
    /// `mstore verify`'s exit status afterwards.
    pub verify: i32,
    /// Whether a second rescue changed anything in the store.
    pub second_run_changed: bool,
    /// Messages put back, by where they came from (the rescue report).
    pub sources: BTreeMap<String, u64>,
}

impl Row {
    fn pct(n: u64, d: u64) -> String {
        if d == 0 { "-".into() } else { format!("{:.1}%", 100.0 * n as f64 / d as f64) }
    }
    /// The matrix line (markdown).
    pub fn markdown(&self) -> String {
        let sc = Scenario::parse(&self.scenario).map(|s| s.describe()).unwrap_or("");
        format!(
            "| {sc} | {} | {} | {} | {} | {} | fsck {}, rescue {}, verify {}{} |",
            self.total,
            self.hit,
            Row::pct(self.identical, self.total),
            Row::pct(self.in_ledger, self.total),
            Row::pct(self.lost, self.total),
            self.fsck,
            self.rescue,
            self.verify,
            if self.second_run_changed { ", second rescue CHANGED the store" } else { "" }
        )
    }
}

/// The matrix's header (markdown).
pub const HEADER: &str = "| damage | messages | hit | back with identical UID, flags, date | in the ledger | lost | exit statuses |\n|---|---|---|---|---|---|---|";

fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    cmd.output().map_err(|e| format!("{cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> Result<String, String> {
    let o = run(cmd)?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether this machine can run the drill: root, a loop device, the e2fsprogs tools.
pub fn available() -> Result<(), String> {
    if !nix_is_root() {
        return Err("the drill needs root (loop devices, mount)".into());
    }
    for t in ["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs", "losetup", "mount", "umount"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).chain(["/sbin".into(), "/usr/sbin".into()]).any(|d| d.join(t).exists()))
            .unwrap_or(false);
        if !found {
            return Err(format!("{t} is not installed"));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no loop devices (/dev/loop-control)".into());
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A deterministic generator for the damage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A mounted loop device, unmounted and detached on drop.
struct Mounted {
    dev: String,
    mnt: PathBuf,
    mounted: bool,
}

impl Mounted {
    fn attach(img: &Path, mnt: &Path) -> Result<Mounted, String> {
        let dev = ok(Command::new("losetup").args(["-f", "--show"]).arg(img))?.trim().to_string();
        let mut m = Mounted { dev, mnt: mnt.to_path_buf(), mounted: false };
        std::fs::create_dir_all(mnt).map_err(|e| e.to_string())?;
        ok(Command::new("mount").arg(&m.dev).arg(mnt))?;
        m.mounted = true;
        Ok(m)
    }
    fn unmount(&mut self) -> Result<(), String> {
        if self.mounted {
            ok(Command::new("umount").arg(&self.mnt))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Every message of the store: (domain, mailbox as stored) → uid → (flags, internal date, hash).
type State = BTreeMap<(String, String), BTreeMap<u64, (BTreeSet<String>, String, String)>>;

fn mstore(o: &Options, conf: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    run(Command::new(&o.mstore).arg("-f").arg(conf).args(args).env_remove("MS_CONF"))
}

/// The store's messages, each mailbox's name as users see it, and its directory.
type Names = BTreeMap<(String, String), (String, PathBuf)>;

fn state(o: &Options, conf: &Path) -> Result<(State, Names), String> {
    let ls = mstore(o, conf, &["ls", "--json"])?;
    let list: Value = serde_json::from_slice(&ls.stdout).map_err(|e| format!("ls --json: {e}"))?;
    let mut out = State::new();
    let mut utf8 = BTreeMap::new();
    for m in list.as_array().cloned().unwrap_or_default() {
        let (d, n) = (m["domain"].as_str().unwrap_or("").to_string(), m["mailbox"].as_str().unwrap_or("").to_string());
        let show = mstore(o, conf, &["show", &d, &n, "--json"])?;
        let Ok(v) = serde_json::from_slice::<Value>(&show.stdout) else {
            utf8.insert((d.clone(), n.clone()), (m["mailbox_utf8"].as_str().unwrap_or("").to_string(), PathBuf::new()));
            out.insert((d, n), BTreeMap::new());
            continue;
        };
        utf8.insert(
            (d.clone(), n.clone()),
            (m["mailbox_utf8"].as_str().unwrap_or("").to_string(), PathBuf::from(v["path"].as_str().unwrap_or(""))),
        );
        let mut msgs = BTreeMap::new();
        for x in v["messages"].as_array().cloned().unwrap_or_default() {
            let flags: BTreeSet<String> = x["flags"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            msgs.insert(
                x["uid"].as_u64().unwrap_or(0),
                (
                    flags,
                    x["internal_date"].as_str().unwrap_or("").to_string(),
                    x["content_hash"].as_str().unwrap_or("").to_string(),
                ),
            );
        }
        out.insert((d, n), msgs);
    }
    Ok((out, utf8))
}

/// Every regular file below `root`: (path, inode, size).
fn files(root: &Path) -> Vec<(PathBuf, u64, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.push((p, m.ino(), m.len()));
            }
        }
    }
    out.sort();
    out
}

fn is_message(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with('.') && n[..n.len() - 1].parse::<u32>().is_ok())
}

/// Physical blocks of a file or directory of the image (`debugfs blocks`), by its path
/// inside the file system.
fn blocks(img: &Path, inner: &str) -> Result<Vec<u64>, String> {
    let out =
        ok(Command::new("debugfs").arg("-R").arg(format!("blocks \"{inner}\"")).arg(img).env("DEBUGFS_PAGER", "cat"))?;
    Ok(out.split_whitespace().filter_map(|w| w.parse::<u64>().ok()).collect())
}

/// Block size, inode size, inodes per group and each group's inode-table start block.
fn geometry(img: &Path) -> Result<(u64, u64, u64, Vec<u64>), String> {
    let out = ok(Command::new("dumpe2fs").arg(img))?;
    let field = |name: &str| -> Result<u64, String> {
        out.lines()
            .find_map(|l| l.strip_prefix(name).map(|r| r.trim().trim_start_matches(':').trim().to_string()))
            .and_then(|v| v.split_whitespace().next().and_then(|x| x.parse().ok()))
            .ok_or_else(|| format!("dumpe2fs: no {name}"))
    };
    let bs = field("Block size")?;
    let isz = field("Inode size")?;
    let ipg = field("Inodes per group")?;
    let mut tables = Vec::new();
    for l in out.lines() {
        if let Some(i) = l.find("Inode table at ") {
            let rest = &l[i + "Inode table at ".len()..];
            let start: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(s) = start.parse() {
                tables.push(s);
            }
        }
    }
    Ok((bs, isz, ipg, tables))
}

fn write_at(img: &Path, offset: u64, data: &[u8]) -> Result<(), String> {
    let f = std::fs::OpenOptions::new().write(true).open(img).map_err(|e| e.to_string())?;
    f.write_all_at(data, offset).map_err(|e| e.to_string())
}

/// Run one scenario; its matrix row.
pub fn scenario(o: &Options, sc: Scenario) -> Result<Row, String> {
    let dir = o.work.join(sc.name());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let Disk { img, mnt, mut m, demo, conf, backup } = make_disk(o, &dir)?;
    let (before, utf8) = state(o, &conf)?;
    let total: u64 = before.values().map(|m| m.len() as u64).sum();
    // What the damage reaches, chosen while the file system is mounted.
    let all = files(&demo);
    let msgs: Vec<&(PathBuf, u64, u64)> = all.iter().filter(|(p, _, _)| is_message(p)).collect();
    // Unmount before touching the image.
    let sync = ok(&mut Command::new("sync"));
    drop(sync);
    let mut dirs_by_size: Vec<(usize, PathBuf)> = Vec::new();
    for (k, ms) in &before {
        if let Some((_, path)) = utf8.get(k) {
            dirs_by_size.push((ms.len(), path.clone()));
        }
    }
    dirs_by_size.sort_by_key(|a| std::cmp::Reverse(a.0));
    m.unmount()?;
    let reach = Reach { img: &img, mnt: &mnt, demo: &demo, all: &all, msgs: &msgs, dirs_by_size: &dirs_by_size, total };
    let (damage, hit) = plan_damage(o, sc, &reach)?;
    for (off, bytes) in &damage {
        write_at(&img, *off, bytes)?;
    }
    // The image the runbook says to take before fsck: what rescue carves from.
    let pre = dir.join("pre-fsck.img");
    ok(Command::new("cp").arg("--sparse=always").arg(&img).arg(&pre))?;
    let fsck = run(Command::new("e2fsck").args(["-fy"]).arg(&img))?.status.code().unwrap_or(-1);
    let mut m = Mounted::attach(&img, &mnt)?;
    let pre_s = pre.to_string_lossy().into_owned();
    let bsp = backup.join("spool").to_string_lossy().into_owned();
    let bd2 = backup.join("d2").to_string_lossy().into_owned();
    // Inode damage is what carving is for (the older copy would serve first); data damage
    // only a copy can repair (the image holds the damaged bytes).
    let mut args: Vec<&str> = vec!["rescue", "--json"];
    if sc != Scenario::Data {
        args.extend(["--image", &pre_s]);
    }
    if sc != Scenario::Inodes {
        args.extend(["--from", &bsp, "--from", &bd2]);
    }
    let r = mstore(o, &conf, &args)?;
    let rescue = r.status.code().unwrap_or(-1);
    let sources = rescue_sources(&r)?;
    let verify = mstore(o, &conf, &["verify"])?.status.code().unwrap_or(-1);
    let (after, _) = state(o, &conf)?;
    let mut row = Row { scenario: sc.name().into(), total, hit, fsck, rescue, verify, sources, ..Row::default() };
    count_outcomes(o, &conf, sc, &before, &after, &utf8, &mut row)?;
    // A second rescue right after changes nothing.
    let s1 = snap(&demo);
    let _ = mstore(o, &conf, &args[..args.len()].iter().filter(|a| **a != "--json").copied().collect::<Vec<_>>())?;
    row.second_run_changed = snap(&demo) != s1;
    m.unmount()?;
    drop(m);
    if !o.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(row)
}

/// A scenario's disk: an ext4 image with a demo store on it, mounted; the store's
/// configuration beside the image; an older copy of its partitions.
struct Disk {
    img: PathBuf,
    mnt: PathBuf,
    m: Mounted,
    demo: PathBuf,
    conf: PathBuf,
    backup: PathBuf,
}

fn make_disk(o: &Options, dir: &Path) -> Result<Disk, String> {
    let img = dir.join("disk.img");
    let size_mb = (64 + o.messages as u64 * 40 / 1024).max(64);
    let f = std::fs::File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(size_mb << 20).map_err(|e| e.to_string())?;
    drop(f);
    ok(Command::new("mkfs.ext4")
        .args(["-F", "-q", "-b", "4096", "-i", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(&img))?;
    let mnt = dir.join("mnt");
    let m = Mounted::attach(&img, &mnt)?;
    let demo = mnt.join("demo");
    let o2 = ok(Command::new(&o.mstore)
        .arg("demo")
        .arg(&demo)
        .args(["--messages", &o.messages.to_string()])
        .env_remove("MS_CONF"))?;
    drop(o2);
    // The configuration outside the image (as /etc/md/store/ms.conf is), absolute paths.
    let conf = dir.join("ms.conf");
    std::fs::write(
        &conf,
        format!(
            "ms-path: {d}/store\nruntime-user: root\nruntime-group: root\npartition-default: {d}/store/spool\npartition-d2: {d}/d2/mailstore\nbackup-path: {d}/store/backup\nfsync: no\n",
            d = demo.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // An older copy of the spool (then a few flags change: salvage must take the newest
    // flags from the records, only the bytes from the copy).
    let backup = dir.join("backup");
    std::fs::create_dir_all(&backup).map_err(|e| e.to_string())?;
    ok(Command::new("cp").arg("-a").arg(demo.join("store/spool")).arg(backup.join("spool")))?;
    ok(Command::new("cp").arg("-a").arg(demo.join("d2/mailstore")).arg(backup.join("d2")))?;
    let _ = mstore(o, &conf, &["flags", "example.com", "user/joe", "1:10", "+\\Flagged"])?;
    Ok(Disk { img, mnt, m, demo, conf, backup })
}

/// What a scenario may damage, chosen while the file system was mounted.
struct Reach<'a> {
    img: &'a Path,
    mnt: &'a Path,
    demo: &'a Path,
    /// Every file of the store: path, inode, size.
    all: &'a [(PathBuf, u64, u64)],
    /// The message files among them.
    msgs: &'a [&'a (PathBuf, u64, u64)],
    /// Mailbox directories, largest first.
    dirs_by_size: &'a [(usize, PathBuf)],
    /// Messages in the store.
    total: u64,
}

/// Bytes written over the image at a byte offset.
type Damage = (u64, Vec<u8>);

/// The damage of scenario `sc` (byte offset and bytes in the image), and how many
/// messages it reaches.
fn plan_damage(o: &Options, sc: Scenario, r: &Reach<'_>) -> Result<(Vec<Damage>, u64), String> {
    let Reach { img, mnt, demo, all, msgs, dirs_by_size, total } = *r;
    let inner = |p: &Path| format!("/{}", p.strip_prefix(mnt).unwrap_or(p).display());
    let mut rng = Rng(o.seed | 1);
    let mut damage: Vec<Damage> = Vec::new();
    let mut hit = 0u64;
    let (bs, isz, ipg, tables) = geometry(img)?;
    let zero = vec![0u8; bs as usize];
    match sc {
        Scenario::DirBlocks => {
            for (n, d) in dirs_by_size.iter().take(3) {
                hit += *n as u64;
                for b in blocks(img, &inner(d))? {
                    damage.push((b * bs, zero.clone()));
                }
            }
        }
        Scenario::Inodes => {
            let block_of = |ino: u64| -> Option<u64> {
                let g = (ino - 1) / ipg;
                let i = (ino - 1) % ipg;
                tables.get(g as usize).map(|t| t + i * isz / bs)
            };
            let mut chosen: HashSet<u64> = HashSet::new();
            let want = (msgs.len() as u64).div_ceil(20);
            let mut covered: HashSet<u64> = HashSet::new();
            let mut order: Vec<u64> = msgs.iter().map(|x| x.1).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for ino in order {
                if covered.len() as u64 >= want {
                    break;
                }
                let Some(b) = block_of(ino) else { continue };
                if chosen.insert(b) {
                    for x in msgs {
                        if block_of(x.1) == Some(b) {
                            covered.insert(x.1);
                        }
                    }
                }
            }
            hit = covered.len() as u64;
            for b in chosen {
                damage.push((b * bs, zero.clone()));
            }
        }
        Scenario::Data => {
            let want = (msgs.len() as u64).div_ceil(200);
            let mut picked: HashSet<usize> = HashSet::new();
            while (picked.len() as u64) < want.min(msgs.len() as u64) {
                picked.insert(rng.below(msgs.len() as u64) as usize);
            }
            for i in picked {
                let (p, _, size) = msgs[i];
                if let Some(&b) = blocks(img, &inner(p))?.first() {
                    let n = (*size).min(bs).saturating_sub(64).clamp(1, 256) as usize;
                    let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    damage.push((b * bs + 64.min(size.saturating_sub(1)), junk));
                    hit += 1;
                }
            }
        }
        Scenario::Tree => {
            for b in blocks(img, &inner(&demo.join("store")))? {
                damage.push((b * bs, zero.clone()));
            }
            // 2% of the store's blocks: file data (messages and store files alike).
            let mut store_blocks: Vec<u64> = Vec::new();
            for (p, _, _) in all {
                store_blocks.extend(blocks(img, &inner(p))?);
            }
            let want = (store_blocks.len() as u64).div_ceil(50);
            let mut damaged_files: HashSet<usize> = HashSet::new();
            for _ in 0..want {
                let b = store_blocks[rng.below(store_blocks.len() as u64) as usize];
                let junk: Vec<u8> = (0..bs).map(|_| rng.next() as u8).collect();
                damage.push((b * bs, junk));
                damaged_files.insert(b as usize);
            }
            hit = total;
        }
    }
    Ok((damage, hit))
}

/// Where what rescue put back came from, by kind of source.
fn rescue_sources(r: &std::process::Output) -> Result<BTreeMap<String, u64>, String> {
    let mut sources = BTreeMap::new();
    if let Ok(v) = serde_json::from_slice::<Value>(&r.stdout) {
        for mb in v["salvage"]["mailboxes"].as_array().cloned().unwrap_or_default() {
            for (k, n) in mb["back"].as_object().cloned().unwrap_or_default() {
                let kind = if k.contains("lost+found") {
                    "lost+found"
                } else if k.ends_with(".img") {
                    "image"
                } else {
                    "backup copy"
                };
                *sources.entry(kind.to_string()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
            *sources.entry("unknown → Recovered".into()).or_insert(0) += mb["unknown"].as_u64().unwrap_or(0);
        }
    } else {
        return Err(format!(
            "rescue said:\n{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    Ok(sources)
}

/// Count each message of `before`: identical after the rescue, in the loss ledger (or its
/// mailbox recreated), or lost without a word.
fn count_outcomes(
    o: &Options,
    conf: &Path,
    sc: Scenario,
    before: &State,
    after: &State,
    utf8: &Names,
    row: &mut Row,
) -> Result<(), String> {
    let ledger: Value =
        serde_json::from_slice(&mstore(o, conf, &["ledger", "list", "--json"])?.stdout).unwrap_or(Value::Null);
    let in_ledger: HashSet<(String, String, u64)> = ledger
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["kind"] == "lost")
        .map(|e| {
            (
                e["domain"].as_str().unwrap_or("").to_string(),
                e["mailbox"].as_str().unwrap_or("").to_string(),
                e["uid"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let recreated: HashSet<(String, String)> = ledger
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["kind"] == "recreated")
        .map(|e| (e["domain"].as_str().unwrap_or("").to_string(), e["mailbox"].as_str().unwrap_or("").to_string()))
        .collect();
    for ((d, n), ms) in before {
        let now = after.get(&(d.clone(), n.clone()));
        let u8name = utf8.get(&(d.clone(), n.clone())).map(|x| x.0.clone()).unwrap_or_default();
        for (uid, e) in ms {
            if now.and_then(|x| x.get(uid)) == Some(e) {
                row.identical += 1;
            } else if in_ledger.contains(&(d.clone(), u8name.clone(), *uid))
                || recreated.contains(&(d.clone(), u8name.clone()))
            {
                row.in_ledger += 1;
            } else {
                row.lost += 1;
                if row.lost <= 5 {
                    eprintln!(
                        "drill: {}: lost {d} {n} UID {uid}: before {e:?}, after {:?}",
                        sc.name(),
                        now.and_then(|x| x.get(uid))
                    );
                }
            }
        }
    }
    Ok(())
}

/// Every file under `root` with its inode, size and mtime, but the caches a run rewrites.
fn snap(root: &Path) -> Vec<(PathBuf, u64, u64, i64)> {
    files(root)
        .into_iter()
        // The listing cache is a cache (a remount voids it and the next run rewrites it).
        .filter(|(p, _, _)| !p.starts_with(root.join("store/listings")) && !p.starts_with(root.join("store/ms.rescue")))
        .map(|(p, ino, len)| {
            let mt = std::fs::metadata(&p).map(|m| m.mtime()).unwrap_or(0);
            (p, ino, len, mt)
        })
        .collect()
}
