//! Crash-state enumeration of a mailbox (used by `tests/mailbox_crash.rs` with small
//! bounds, and by `cargo xtask crash --mailbox` for long runs).
//!
//! A workload runs on a real store in a scratch directory through [`RecFs`]: appends of
//! one to three messages (flags, keywords, dates), flag changes (add, remove, replace,
//! new keywords), expunges (by UID and of `\Deleted`), checkpoints (index written, log
//! compacted), and rebuilds (`reconstruct` after `ms.index`, `ms.cache` or `ms.header`
//! was removed: its whole rewrite). The trace holds every write, fsync, rename, unlink and
//! directory fsync, with a mark before each step is issued and after it is acknowledged.
//! [`check`] then visits every point of the trace with several power cuts
//! ([`Variant`]s) and, for each distinct crash state, on a copy in a real directory:
//!
//! 1. *reopen*: if the mailbox opens (as a server would open it after the crash), what it
//!    shows is the state after every acknowledged step, or after the step in flight too;
//! 2. *reconstruct* must succeed, and the mailbox must then show such a state.
//!
//! The expected states come from an oracle independent of the store's code: the model
//! the workload keeps of what it asked for (message bytes, internal dates, flags and
//! keyword names by UID), and the states are compared against the message files' bytes
//! read directly. A step in flight is whole or absent ("no half-applied change"), with
//! one allowance the write protocol documents (`formats/changelog.md`): a message file of
//! an append that was not committed may be kept by reconstruct as an orphan (its bytes
//! and date, no flags). Also checked in every state: the last UID and the highest modseq
//! never go below what was acknowledged, and no acknowledged-expunged UID comes back.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mstore::config::Config;
use mstore::flags::SystemFlags;
use mstore::fs::RealFs;
use mstore::io::Durability;
use mstore::layout::MailboxName;
use mstore::message::DateTime;
use mstore::reconstruct::{self, NoProgress, Options, Selection, Status};
use mstore::store::{CreateOptions, FlagOp, NewMessage, Store};

use crate::Rng;
use crate::recfs::{FaultOn, FaultPlan, RecFs, materialise};
use crate::sim::{CrashSweep, Image, Mark, Op, Variant};

/// The domain of the workload's mailbox.
pub const DOMAIN: &str = "example.com";
/// The workload's mailbox.
pub const MAILBOX: &str = "user/joe";

/// A message as the workload asked for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Msg {
    /// Its bytes.
    pub bytes: Arc<Vec<u8>>,
    /// Internal date (seconds).
    pub date: i64,
    /// System flags.
    pub system: u32,
    /// Keyword names.
    pub keywords: BTreeSet<String>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Msg({} bytes, date {}, flags {:#x} {:?})", self.bytes.len(), self.date, self.system, self.keywords)
    }
}

/// What the mailbox holds, by the oracle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Live messages by UID.
    pub msgs: BTreeMap<u32, Msg>,
    /// UIDs expunged (never to come back).
    pub expunged: BTreeSet<u32>,
    /// Highest UID given.
    pub last_uid: u32,
    /// Highest modseq the store reported.
    pub highest_modseq: u64,
}

/// One step of a workload.
#[derive(Clone, Debug)]
pub enum Step {
    /// Append these messages in one call.
    Append(Vec<Msg>),
    /// Change flags of these UIDs.
    Flags {
        /// The UIDs.
        uids: Vec<u32>,
        /// How.
        op: FlagOp,
        /// System flags.
        system: u32,
        /// Keywords.
        keywords: Vec<String>,
    },
    /// Expunge these UIDs (`None`: every `\Deleted` message).
    Expunge(Option<Vec<u32>>),
    /// Write the index and compact the log.
    Checkpoint,
    /// Remove these files of the mailbox, then run reconstruct.
    Rebuild(Vec<&'static str>),
}

impl Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Append(_) => "append",
            Step::Flags { .. } => "flags",
            Step::Expunge(_) => "expunge",
            Step::Checkpoint => "checkpoint",
            Step::Rebuild(_) => "rebuild",
        }
    }
}

/// A workload as run.
#[derive(Debug)]
pub struct Recorded {
    /// The seed.
    pub seed: u64,
    /// The scratch directory the store lived in (paths of the trace are under it).
    pub root: PathBuf,
    /// The files before the first operation.
    pub initial: Image,
    /// Every operation.
    pub trace: Vec<Op>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// `models[k]`: the state after the first `k` steps.
    pub models: Vec<Model>,
    _dir: tempfile::TempDir,
}

/// A scratch directory on a memory file system when there is one.
pub fn scratch() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("mstore-crash-").tempdir_in(shm) {
            return Ok(d);
        }
    }
    tempfile::Builder::new().prefix("mstore-crash-").tempdir()
}

fn write_conf(root: &Path) -> std::io::Result<PathBuf> {
    let (user, group) = mstore::cli::current_user_and_group();
    let conf = root.join("ms.conf");
    std::fs::write(
        &conf,
        format!(
            "ms-path: ms\npartition-default: ms/spool\nfsync: yes\nthreads: 1\nruntime-user: {user}\nruntime-group: {group}\n"
        ),
    )?;
    Ok(conf)
}

fn name() -> MailboxName {
    MailboxName::parse(MAILBOX).expect("valid mailbox name")
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A message of `n` bytes or so, distinct per `seed` and `i`.
fn message(rng: &mut Rng, i: u64) -> Msg {
    let date = 1_600_000_000 + (rng.below(100_000_000) as i64);
    let d = DateTime { unix: date, offset_minutes: 0 };
    let mut text = format!(
        "Date: {}\r\nFrom: Sender {i} <s{i}@example.com>\r\nTo: joe@example.com\r\nSubject: message {i} ({})\r\nMessage-ID: <{i}.{}@example.com>\r\n\r\n",
        d.to_rfc5322(),
        rng.next_u64(),
        rng.next_u64()
    );
    for l in 0..1 + rng.below(6) {
        text += &format!("line {l} of message {i}\r\n");
    }
    const KW: [&str; 4] = ["$Work", "Later", "$Junk", "Project-X"];
    let mut keywords = BTreeSet::new();
    for k in KW {
        if rng.below(4) == 0 {
            keywords.insert(k.to_string());
        }
    }
    let system = (rng.next_u64() as u32) & SystemFlags::ALL;
    Msg { bytes: Arc::new(text.into_bytes()), date, system, keywords }
}

fn apply_flags(m: &mut Msg, op: FlagOp, system: u32, keywords: &[String]) {
    let kw: BTreeSet<String> = keywords.iter().cloned().collect();
    match op {
        FlagOp::Add => {
            m.system |= system;
            m.keywords.extend(kw);
        }
        FlagOp::Remove => {
            m.system &= !system;
            m.keywords.retain(|k| !kw.contains(k));
        }
        FlagOp::Replace => {
            m.system = system;
            m.keywords = kw;
        }
    }
}

/// A random next step for the state `m`.
fn random_step(rng: &mut Rng, m: &Model, counter: &mut u64) -> Step {
    let uids: Vec<u32> = m.msgs.keys().copied().collect();
    let pick = |rng: &mut Rng, n: usize| -> Vec<u32> {
        let mut v: Vec<u32> = (0..n).map(|_| uids[rng.below(uids.len() as u64) as usize]).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let r = rng.below(100);
    if uids.len() < 2 || r < 30 {
        let n = 1 + rng.below(3);
        return Step::Append(
            (0..n)
                .map(|_| {
                    *counter += 1;
                    message(rng, *counter)
                })
                .collect(),
        );
    }
    match r {
        30..=59 => {
            let op = [FlagOp::Add, FlagOp::Remove, FlagOp::Replace][rng.below(3) as usize];
            let system = [SystemFlags::SEEN, SystemFlags::FLAGGED, SystemFlags::DELETED, SystemFlags::ANSWERED]
                [rng.below(4) as usize];
            let keywords = match rng.below(4) {
                0 => vec![],
                1 => vec!["$Work".to_string()],
                2 => vec![format!("New{}", rng.below(5))],
                _ => vec!["Later".to_string(), "$Junk".to_string()],
            };
            let n = 1 + rng.below(3) as usize;
            Step::Flags { uids: pick(rng, n), op, system, keywords }
        }
        60..=74 => {
            if rng.below(3) == 0 {
                Step::Expunge(None)
            } else {
                let n = 1 + rng.below(2) as usize;
                Step::Expunge(Some(pick(rng, n)))
            }
        }
        75..=86 => Step::Checkpoint,
        _ => Step::Rebuild(match rng.below(4) {
            0 => vec!["ms.index"],
            1 => vec!["ms.cache"],
            2 => vec!["ms.index", "ms.cache"],
            _ => vec!["ms.header"],
        }),
    }
}

/// Run `step` on the store; returns the model after it.
fn run_step(store: &Store, step: &Step, before: &Model) -> Result<Model, String> {
    let mut m = before.clone();
    let place = || store.place(&store.entry(DOMAIN, &name()).map_err(err)?).map_err(err);
    match step {
        Step::Append(msgs) => {
            let mut mb = store.open_mailbox_locked(DOMAIN, &name()).map_err(err)?;
            let batch: Vec<NewMessage<'_>> = msgs
                .iter()
                .map(|x| NewMessage {
                    bytes: &x.bytes,
                    internal_date: Some(DateTime { unix: x.date, offset_minutes: 0 }),
                    system_flags: x.system,
                    user_flags: x.keywords.iter().cloned().collect(),
                })
                .collect();
            let uids = mb.append(&batch).map_err(err)?;
            for (u, x) in uids.iter().zip(msgs) {
                m.msgs.insert(*u, x.clone());
            }
            m.last_uid = mb.last_uid();
            m.highest_modseq = mb.highest_modseq();
        }
        Step::Flags { uids, op, system, keywords } => {
            let mut mb = store.open_mailbox_locked(DOMAIN, &name()).map_err(err)?;
            mb.store_flags(uids, *op, *system, keywords).map_err(err)?;
            for u in uids {
                if let Some(x) = m.msgs.get_mut(u) {
                    apply_flags(x, *op, *system, keywords);
                }
            }
            m.highest_modseq = mb.highest_modseq();
        }
        Step::Expunge(which) => {
            let mut mb = store.open_mailbox_locked(DOMAIN, &name()).map_err(err)?;
            let gone = mb.expunge(which.as_deref()).map_err(err)?;
            for u in gone {
                m.msgs.remove(&u);
                m.expunged.insert(u);
            }
            m.highest_modseq = mb.highest_modseq();
        }
        Step::Checkpoint => {
            let mut mb = store.open_mailbox_locked(DOMAIN, &name()).map_err(err)?;
            mb.checkpoint().map_err(err)?;
        }
        Step::Rebuild(files) => {
            let dir = place()?.dir;
            for f in files {
                store.fs().remove_file(&dir.join(f)).map_err(err)?;
            }
            rebuild(store)?;
            let mb = store.open_mailbox(DOMAIN, &name()).map_err(err)?;
            m.highest_modseq = m.highest_modseq.max(mb.highest_modseq());
            m.last_uid = m.last_uid.max(mb.last_uid());
        }
    }
    Ok(m)
}

/// `reconstruct DOMAIN MAILBOX` on `store`; an error unless the mailbox came out whole.
fn rebuild(store: &Store) -> Result<(), String> {
    let sel = Selection { domain: DOMAIN.into(), user: None, recursive: false, mailboxes: vec![MAILBOX.into()] };
    let opts = Options { threads: 1, mmap: true, ..Options::default() };
    let rep = reconstruct::run(store, &sel, &opts, &NoProgress).map_err(|e| format!("reconstruct: {e}"))?;
    for r in &rep.mailboxes {
        if let Status::Failed(why) = &r.status {
            return Err(format!("reconstruct failed: {why}"));
        }
    }
    Ok(())
}

/// Build the initial store in `root` (a mailbox with some history, checkpointed and
/// not), on the real file system.
fn setup(root: &Path, rng: &mut Rng, counter: &mut u64) -> Result<Model, String> {
    let conf = write_conf(root).map_err(err)?;
    let store = Store::init(Config::load(&conf).map_err(err)?).map_err(err)?;
    store
        .create_mailbox(DOMAIN, &name(), CreateOptions { uid_validity: Some(1_700_000_000), ..Default::default() })
        .map_err(err)?;
    let mut m = Model::default();
    for step in [
        Step::Append(
            (0..4)
                .map(|_| {
                    *counter += 1;
                    message(rng, *counter)
                })
                .collect(),
        ),
        Step::Checkpoint,
        Step::Flags { uids: vec![1, 2], op: FlagOp::Add, system: SystemFlags::FLAGGED, keywords: vec!["$Tail".into()] },
        Step::Expunge(Some(vec![3])),
    ] {
        m = run_step(&store, &step, &m)?;
    }
    Ok(m)
}

/// Run a workload of `steps` random steps with `seed`, recorded.
pub fn record(seed: u64, steps: usize) -> Result<Recorded, String> {
    let dir = scratch().map_err(err)?;
    let root = dir.path().to_path_buf();
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x6d61_696c);
    let mut counter = 0;
    let m0 = setup(&root, &mut rng, &mut counter)?;
    let rec = Arc::new(RecFs::new(&root));
    let initial = rec.start_recording().map_err(err)?;
    let store = Store::open_on(Config::load(&root.join("ms.conf")).map_err(err)?, rec.clone()).map_err(err)?;
    let mut models = vec![m0];
    let mut plan = Vec::new();
    for n in 0..steps {
        let cur = models.last().cloned().unwrap_or_default();
        let step = random_step(&mut rng, &cur, &mut counter);
        rec.mark(Mark::Issue(n));
        let next = run_step(&store, &step, &cur).map_err(|e| format!("seed {seed} step {n} ({}): {e}", step.kind()))?;
        rec.mark(Mark::Ack(n));
        models.push(next);
        plan.push(step);
    }
    drop(store);
    let trace = rec.take_trace();
    Ok(Recorded { seed, root, initial, trace, steps: plan, models, _dir: dir })
}

/// How hard to look.
#[derive(Clone, Copy, Debug)]
pub struct CheckConfig {
    /// Random variants per crash point (besides "synced only" and "everything").
    pub random_variants: usize,
    /// Seed of the random variants.
    pub seed: u64,
}

/// What was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Crash points visited.
    pub points: u64,
    /// Distinct crash states checked (each: reopen, reconstruct, compare).
    pub states: u64,
    /// States in which the mailbox opened without reconstruct.
    pub opened: u64,
    /// States in which the step in flight was found applied.
    pub in_flight_applied: u64,
    /// States in which reconstruct kept an uncommitted message as an orphan.
    pub orphans: u64,
}

impl Stats {
    /// Add another run's numbers.
    pub fn add(&mut self, o: &Stats) {
        self.points += o.points;
        self.states += o.states;
        self.opened += o.opened;
        self.in_flight_applied += o.in_flight_applied;
        self.orphans += o.orphans;
    }
}

/// A failed check.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Seed.
    pub seed: u64,
    /// Crash point.
    pub point: usize,
    /// Variant.
    pub variant: Variant,
    /// The step in flight, if any.
    pub step: Option<String>,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mailbox workload seed {} crash point {} ({:?}, step in flight: {}): {}",
            self.seed,
            self.point,
            self.variant,
            self.step.as_deref().unwrap_or("none"),
            self.what
        )
    }
}

/// One message as a mailbox shows it: the bytes of its file (if there is one), its date,
/// system flags and keywords.
type Shown = (Option<Vec<u8>>, i64, u32, BTreeSet<String>);

/// What a mailbox shows: UID → [`Shown`]; and its last UID and highest modseq.
#[derive(Debug)]
struct Seen {
    msgs: BTreeMap<u32, Shown>,
    last_uid: u32,
    highest_modseq: u64,
}

fn look(store: &Store) -> mstore::Result<Seen> {
    let mb = store.open_mailbox(DOMAIN, &name())?;
    let mut msgs = BTreeMap::new();
    for r in mb.records() {
        // The bytes straight from the file, not through the store.
        let bytes = std::fs::read(mb.message_path(r.uid)).ok();
        let kw: BTreeSet<String> = mb.user_flag_names(r.user_flags).into_iter().collect();
        msgs.insert(r.uid, (bytes, r.internal_date, r.system_flags.0, kw));
    }
    Ok(Seen { msgs, last_uid: mb.last_uid(), highest_modseq: mb.highest_modseq() })
}

/// What one message must look like: absent, or these bytes, date and flags.
type Want<'a> = Option<&'a Msg>;

fn same(seen: &Shown, want: Want<'_>) -> bool {
    let (bytes, date, system, kw) = seen;
    want.is_some_and(|x| {
        bytes.as_deref() == Some(&x.bytes[..]) && (*date, *system, kw) == (x.date, x.system, &x.keywords)
    })
}

fn describe(seen: Option<&Shown>) -> String {
    match seen {
        None => "absent".to_string(),
        Some((b, d, s, k)) => format!("{} date {d} flags {s:#x} {k:?}", if b.is_some() { "file" } else { "no file" }),
    }
}

/// Whether `seen` is `model` exactly, but for orphans of `pending` (the messages of an
/// append that was not committed: present with their bytes and date and no flags).
/// Returns the number of orphans, or the first difference.
fn is_state(seen: &Seen, model: &Model, pending: &[Msg]) -> Result<u64, String> {
    let mut orphans = 0;
    for (uid, want) in &model.msgs {
        let s = seen.msgs.get(uid);
        if !s.is_some_and(|x| same(x, Some(want))) {
            return Err(format!(
                "UID {uid} is {}, not date {} flags {:#x} {:?}",
                describe(s),
                want.date,
                want.system,
                want.keywords
            ));
        }
    }
    for (uid, x) in &seen.msgs {
        if model.msgs.contains_key(uid) {
            continue;
        }
        let (bytes, date, system, kw) = x;
        let orphan = *system == 0
            && kw.is_empty()
            && pending.iter().any(|p| bytes.as_deref() == Some(&p.bytes[..]) && *date == p.date);
        if !orphan {
            return Err(format!("UID {uid} is {}, and should not be there", describe(Some(x))));
        }
        orphans += 1;
    }
    Ok(orphans)
}

/// Whether `seen` is the state `before`, or `after` (the step in flight applied whole:
/// no change is half-applied). Messages of an append in flight (`pending`) may be kept as
/// orphans by reconstruct when the append was not committed (`formats/changelog.md`,
/// "Write protocol"). Returns (the step was applied, orphans), or what is wrong.
fn matches(seen: &Seen, before: &Model, after: Option<&Model>, pending: &[Msg]) -> Result<(bool, u64), String> {
    let b = match is_state(seen, before, pending) {
        Ok(o) => return Ok((false, o)),
        Err(e) => e,
    };
    match after.map(|a| is_state(seen, a, &[])) {
        Some(Ok(o)) => Ok((true, o)),
        Some(Err(a)) => Err(format!("neither the acknowledged state ({b}) nor the step in flight applied ({a})")),
        None => Err(b),
    }
}

/// Check `seen` against the acceptable states: `models[acked]`, and `models[acked + 1]`
/// for the step in flight. Returns (the step in flight was applied, orphans).
fn acceptable(seen: &Seen, rec: &Recorded, acked: usize, issued: usize) -> Result<(bool, u64), String> {
    let base = &rec.models[acked];
    if seen.last_uid < base.last_uid {
        return Err(format!("last UID {} is below the acknowledged {}", seen.last_uid, base.last_uid));
    }
    if seen.highest_modseq < base.highest_modseq {
        return Err(format!(
            "highest modseq {} is below the acknowledged {}",
            seen.highest_modseq, base.highest_modseq
        ));
    }
    if let Some(u) = seen.msgs.keys().find(|u| base.expunged.contains(u)) {
        return Err(format!("UID {u} was expunged (acknowledged) and is back"));
    }
    let in_flight = issued > acked;
    let after = if in_flight { rec.models.get(acked + 1) } else { None };
    let pending: &[Msg] = match rec.steps.get(acked) {
        Some(Step::Append(v)) if in_flight => v,
        _ => &[],
    };
    matches(seen, base, after, pending).map_err(|e| format!("{e} (acknowledged steps: {acked}, issued: {issued})"))
}

/// Reopen and reconstruct one crash state; compare with the oracle.
fn check_state(img: &Image, rec: &Recorded, acked: usize, issued: usize, stats: &mut Stats) -> Result<(), String> {
    let scratch = scratch().map_err(err)?;
    let root = scratch.path();
    materialise(img, &rec.root, root).map_err(|e| format!("materialise: {e}"))?;
    let mut cfg = Config::load(&root.join("ms.conf")).map_err(err)?;
    cfg.durability = Durability::NoSync;
    let store = Store::open_on(cfg, RealFs::shared()).map_err(|e| format!("open the store: {e}"))?;
    // 1. Reopen, as a server would.
    if let Ok(seen) = look(&store) {
        acceptable(&seen, rec, acked, issued).map_err(|e| format!("reopened without reconstruct: {e}"))?;
        stats.opened += 1;
    }
    // 2. Reconstruct, then look again.
    rebuild(&store)?;
    let seen = look(&store).map_err(|e| format!("open after reconstruct: {e}"))?;
    let (applied, orphans) = acceptable(&seen, rec, acked, issued).map_err(|e| format!("after reconstruct: {e}"))?;
    stats.in_flight_applied += u64::from(applied);
    stats.orphans += orphans;
    Ok(())
}

/// Check every crash point of `rec`.
pub fn check(rec: &Recorded, cfg: &CheckConfig) -> Result<Stats, Failure> {
    let mut stats = Stats::default();
    let mut seen: HashSet<([u8; 32], usize, usize)> = HashSet::new();
    let mut rng = Rng::new(cfg.seed ^ rec.seed.rotate_left(23));
    let mut sweep = CrashSweep::new(&rec.initial, &rec.trace);
    loop {
        stats.points += 1;
        let mut variants = vec![Variant::SyncedOnly];
        if sweep.has_undurable() {
            variants.push(Variant::Everything);
            variants.extend(std::iter::repeat_n(Variant::Random, cfg.random_variants));
        }
        for v in variants {
            let img = sweep.materialise(v, &mut rng);
            let (acked, issued) = (sweep.acked(), sweep.issued());
            if !seen.insert((img.digest(), acked, issued)) {
                continue;
            }
            check_state(&img, rec, acked, issued, &mut stats).map_err(|what| Failure {
                seed: rec.seed,
                point: sweep.point(),
                variant: v,
                step: (issued > acked).then(|| format!("{:?}", rec.steps[acked])),
                what,
            })?;
            stats.states += 1;
        }
        if !sweep.has_next() {
            break;
        }
        sweep.advance();
    }
    Ok(stats)
}

/// What the fault runs checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Runs with an injected fault.
    pub runs: u64,
    /// Runs in which the step failed (the others absorbed the fault or never reached it).
    pub failed_steps: u64,
}

/// I/O errors on the write paths: for each step of a workload of `steps` steps and each
/// fault (ENOSPC or EIO on the n-th write or fsync of the step, once or from then on),
/// run the step with the fault injected. It may fail; then, with the fault gone:
/// no temporary file is left in the mailbox, the mailbox reopens and reconstructs to the
/// state before or after the step, and the next step works.
pub fn faults(seed: u64, steps: usize) -> Result<FaultStats, String> {
    let mut stats = FaultStats::default();
    let mut rng = Rng::new(seed ^ 0x6661_756c_7473);
    let mut counter = 0;
    // Learn the workload (and how many writes and fsyncs each step makes) on a dry run.
    let dir = scratch().map_err(err)?;
    let base = setup(dir.path(), &mut rng, &mut counter)?;
    let rec = Arc::new(RecFs::new(dir.path()));
    let store = Store::open_on(Config::load(&dir.path().join("ms.conf")).map_err(err)?, rec.clone()).map_err(err)?;
    let mut models = vec![base];
    let mut plan = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..steps {
        let cur = models.last().cloned().unwrap_or_default();
        let step = random_step(&mut rng, &cur, &mut counter);
        rec.set_fault(None);
        let next = run_step(&store, &step, &cur)?;
        counts.push(rec.calls());
        models.push(next);
        plan.push(step);
    }
    drop(store);
    // Replay each step with each fault, from a copy of the state before it.
    let mut rng = Rng::new(seed ^ 0x6661_756c_7473);
    let mut counter = 0;
    let dir = scratch().map_err(err)?;
    setup(dir.path(), &mut rng, &mut counter)?;
    for (k, step) in plan.iter().enumerate() {
        let before = crate::recfs::image_of(dir.path()).map_err(err)?;
        let (writes, syncs, _) = counts[k];
        for (on, n) in [(FaultOn::Write, writes), (FaultOn::Sync, syncs)] {
            for at in 1..=n {
                for (errno, persistent) in [
                    (rustix::io::Errno::NOSPC, true),
                    (rustix::io::Errno::IO, false),
                    (rustix::io::Errno::NOSPC, false),
                ] {
                    let run = scratch().map_err(err)?;
                    materialise(&before, dir.path(), run.path()).map_err(err)?;
                    let what = format!("seed {seed} step {k} ({}) {on:?} #{at} {errno:?}", step.kind());
                    let failed = fault_run(
                        run.path(),
                        step,
                        &models[k],
                        &models[k + 1],
                        FaultPlan { on, at, persistent, errno },
                    )
                    .map_err(|e| format!("{what}: {e}"))?;
                    stats.runs += 1;
                    stats.failed_steps += u64::from(failed);
                }
            }
        }
        // Move the clean copy on by the step itself.
        let cfg = Config::load(&dir.path().join("ms.conf")).map_err(err)?;
        let store = Store::open(cfg).map_err(err)?;
        run_step(&store, step, &models[k])?;
    }
    Ok(stats)
}

/// One step under a fault; then the checks of [`faults`]. Returns whether the step failed.
fn fault_run(root: &Path, step: &Step, before: &Model, after: &Model, plan: FaultPlan) -> Result<bool, String> {
    let rec = Arc::new(RecFs::new(root));
    let mut cfg = Config::load(&root.join("ms.conf")).map_err(err)?;
    cfg.durability = Durability::Sync;
    let store = Store::open_on(cfg.clone(), rec.clone()).map_err(err)?;
    rec.set_fault(Some(plan));
    let result = run_step(&store, step, before);
    rec.set_fault(None);
    drop(store);
    let dir = root.join("ms/spool").join(DOMAIN).join(MAILBOX);
    let temps: Vec<String> = std::fs::read_dir(&dir)
        .map_err(err)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ms.tmp."))
        .collect();
    if !temps.is_empty() {
        return Err(format!("temporary files left after the failure ({result:?}): {temps:?}"));
    }
    let store = Store::open(cfg).map_err(|e| format!("reopen: {e}"))?;
    rebuild(&store).map_err(|e| format!("after the failure ({result:?}): {e}"))?;
    let seen = look(&store).map_err(err)?;
    let pending: &[Msg] = if let Step::Append(v) = step { v } else { &[] };
    matches(&seen, before, Some(after), pending)
        .map_err(|e| format!("after the failure ({result:?}) and reconstruct: {e}"))?;
    // The mailbox still takes changes.
    let mut mb = store.open_mailbox_locked(DOMAIN, &name()).map_err(|e| format!("lock after the failure: {e}"))?;
    let probe = NewMessage {
        bytes: b"Subject: probe\r\n\r\nprobe\r\n",
        internal_date: None,
        system_flags: 0,
        user_flags: vec![],
    };
    mb.append(&[probe]).map_err(|e| format!("append after the failure: {e}"))?;
    Ok(result.is_err())
}
