//! Bulk recovery after a disk failure: `mstore salvage` and `mstore rescue`.
//!
//! ```text
//! survey (read-only: the store's files, every lost+found, --from trees, the loss ledger)
//!   → plan (which mailbox each known identity is, what it holds now by BLAKE3, what is
//!     missing, which found file holds it, under which UID it goes back)
//!   → place (as root where lost+found needs it: by directory descriptor, O_NOFOLLOW,
//!     RENAME_NOREPLACE, owners and modes through descriptors)
//!   → reconstruct each mailbox touched, with the records found as hints (flags, dates)
//! ```

pub mod carve;
pub mod catalog;
pub mod place;
pub mod plan;
pub mod state;
pub mod survey;
pub mod tree;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::MailboxName;
use crate::report::Exit;
use place::{Outcome, Owner};
use plan::{How, PlanOptions};
use survey::SourceKind;

/// UIDs listed per mailbox in a report before "and N more".
const SHOWN: usize = 20;

/// How to salvage.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `lost+found` directories to search (besides those found automatically).
    pub lost_found: Vec<PathBuf>,
    /// Search the `lost+found` of every file system holding ms-path, the database home
    /// or a partition.
    pub auto_lost_found: bool,
    /// Other copies of the spool (only ever read).
    pub from: Vec<PathBuf>,
    /// Raw devices or images to carve (only ever read).
    pub images: Vec<PathBuf>,
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    /// Trust a message file of the store whose size and mtime match its record (do not
    /// hash it).
    pub quick: bool,
    /// Worker threads (0: from the configuration).
    pub threads: usize,
    /// Reconstruct every mailbox of every domain afterwards (rescue), not only the ones
    /// something was put back into.
    pub reconstruct_all: bool,
}

/// One tree searched.
#[derive(Clone, Debug, Serialize)]
pub struct SourceSummary {
    /// Path.
    pub path: PathBuf,
    /// `lost-found` or `from`.
    pub kind: SourceKind,
    /// Why it could not be searched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files that may be messages.
    pub candidates: u64,
    /// Files put back from it.
    pub used: u64,
}

/// What salvage did for one mailbox.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MailboxSummary {
    /// Domain.
    pub domain: String,
    /// Mailbox (as users see it).
    pub mailbox: String,
    /// Its directory.
    pub path: PathBuf,
    /// It took back the identity (UID validity) its old files had.
    pub took_back_identity: bool,
    /// Messages put back, by where they came from (a tree's path).
    pub back: BTreeMap<String, u64>,
    /// UIDs put back (the first few).
    pub back_uids: Vec<u32>,
    /// Messages no record knew, put here.
    pub unknown: u64,
    /// Messages whose bytes were already there.
    pub already_there: u64,
    /// Damaged files set aside into ms.quarantine/ before the good copy was put back.
    pub set_aside: u64,
    /// Messages known but found nowhere.
    pub missing: u64,
    /// Their UIDs (the first few).
    pub missing_uids: Vec<u32>,
    /// Failures, each with its cause.
    pub failed: Vec<String>,
}

/// The report of a salvage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SalvageReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Trees searched.
    pub sources: Vec<SourceSummary>,
    /// Database files restored into a missing database home.
    pub database: Vec<String>,
    /// Mailboxes concerned.
    pub mailboxes: Vec<MailboxSummary>,
    /// Files left where they were, by reason.
    pub left: BTreeMap<String, u64>,
    /// What the reconstruct runs did, by domain.
    pub reconstruct: Vec<crate::reconstruct::RunReport>,
    /// Notes.
    pub notes: Vec<String>,
    /// What went wrong.
    pub errors: Vec<String>,
    /// This run continued one that was stopped: what it kept of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<String>,
    /// Files the stopped run this one continues had put back (they count as this run's:
    /// the exit status is the whole salvage's).
    #[serde(skip_serializing_if = "is_zero")]
    pub resumed_placed: u64,
    /// Where the files taken are listed (`ms-path/ms.rescue/taken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_list: Option<PathBuf>,
}

impl SalvageReport {
    /// Messages put back.
    pub fn back(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.back.values().sum::<u64>() + m.unknown).sum()
    }
    /// Known messages found nowhere.
    pub fn missing(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.missing).sum()
    }
    /// Exit status: 8 could not run, 4 something still missing or failed, 1 something
    /// brought back, 0 nothing to do.
    pub fn exit(&self) -> Exit {
        let failed = self.mailboxes.iter().any(|m| !m.failed.is_empty());
        let rc_bits = self.reconstruct.iter().map(|r| r.exit_code()).fold(0, |a, b| a | b);
        if !self.errors.is_empty() || rc_bits & 8 != 0 {
            Exit::Error
        } else if self.missing() > 0 || failed || rc_bits & 4 != 0 {
            Exit::Unrepaired
        } else if self.back() > 0 || self.resumed_placed > 0 || !self.database.is_empty() || rc_bits & 1 != 0 {
            Exit::Repaired
        } else {
            Exit::Ok
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let would = if self.dry_run { "would be " } else { "" };
        if let Some(r) = &self.resumed {
            s += &format!("{r}\n");
        }
        for src in &self.sources {
            match &src.error {
                Some(e) => {
                    s += &format!("searched: {} ({}): cannot be searched: {e}\n", src.path.display(), src.kind.label())
                }
                None => {
                    s += &format!(
                        "searched: {} ({}): {} candidate file(s), {} {}put back\n",
                        src.path.display(),
                        src.kind.label(),
                        src.candidates,
                        src.used,
                        would
                    )
                }
            }
        }
        for d in &self.database {
            s += &format!("database: {d}\n");
        }
        for m in &self.mailboxes {
            let back: u64 = m.back.values().sum();
            let mut line = format!("{} {}: ", m.domain, m.mailbox);
            let mut parts = Vec::new();
            if back > 0 {
                let from: Vec<String> = m.back.iter().map(|(k, v)| format!("{v} from {k}")).collect();
                parts.push(format!("{back} message(s) {would}put back ({})", from.join(", ")));
            }
            if m.unknown > 0 {
                parts.push(format!("{} message(s) no record knew {would}put here", m.unknown));
            }
            if m.took_back_identity {
                parts.push(format!("{would}took back its old UID validity"));
            }
            if m.set_aside > 0 {
                parts.push(format!("{} damaged file(s) {would}moved to ms.quarantine/", m.set_aside));
            }
            if m.already_there > 0 {
                parts.push(format!("{} already there", m.already_there));
            }
            if m.missing > 0 {
                let more = if m.missing as usize > m.missing_uids.len() { " ..." } else { "" };
                let uids: Vec<String> = m.missing_uids.iter().map(u32::to_string).collect();
                parts.push(format!("{} message(s) still missing (UIDs {}{more})", m.missing, uids.join(", ")));
            }
            for f in &m.failed {
                parts.push(format!("FAILED: {f}"));
            }
            if parts.is_empty() {
                continue;
            }
            line += &parts.join("; ");
            s += &line;
            s.push('\n');
        }
        for (why, n) in &self.left {
            s += &format!("left in place: {n} file(s): {why}\n");
        }
        for r in &self.reconstruct {
            for m in r.mailboxes.iter().filter(|m| !matches!(m.status, crate::reconstruct::Status::Unchanged)) {
                s += &format!("reconstruct {}\n", m.line());
            }
        }
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        for e in &self.errors {
            s += &format!("error: {e}\n");
        }
        if let Some(t) = self.taken_list.as_ref().filter(|_| self.back() > 0) {
            s += &format!("every file taken is listed in {}\n", t.display());
        }
        s += &format!(
            "salvage: {} message(s) {}put back, {} still missing{}\n",
            self.back(),
            would,
            self.missing(),
            if self.missing() > 0 { " (they stay in the loss ledger; mstore verify reports them)" } else { "" }
        );
        s
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `lost+found` of every file system holding ms-path, the database home or a
/// partition (each once).
pub fn lost_found_dirs(config: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let paths = [&config.ms_path, &config.database_path].into_iter().chain(config.partitions.values());
    for p in paths {
        if let Some(root) = tree::mount_root(p) {
            let lf = root.join("lost+found");
            if lf.is_dir() && !out.contains(&lf) {
                out.push(lf);
            }
        }
    }
    out
}

/// Who files put back belong to: the runtime user when running as root (`None`
/// otherwise: they are created as whoever runs).
fn owner_for(config: &Config) -> Result<Option<Owner>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let ids = crate::privs::resolve(config).map_err(|e| {
        Error::Invalid(format!("refusing to run as root without a runtime user to give the files to: {e}"))
    })?;
    Ok(Some(Owner { uid: ids.uid, gid: ids.gid }))
}

/// Run `f` with the effective user and group of `owner` (root's again afterwards): for
/// reading the databases before the run switches to the runtime user for good.
fn as_owner<T>(owner: Option<Owner>, f: impl FnOnce() -> T) -> T {
    let Some(o) = owner else { return f() };
    let switched = nix::unistd::setegid(nix::unistd::Gid::from_raw(o.gid)).is_ok()
        && nix::unistd::seteuid(nix::unistd::Uid::from_raw(o.uid)).is_ok();
    let r = f();
    if switched {
        let _ = nix::unistd::seteuid(nix::unistd::Uid::from_raw(0));
        let _ = nix::unistd::setegid(nix::unistd::Gid::from_raw(0));
    }
    r
}

/// The mailbox list's partitions, if the databases can be read.
fn registered(config: &Config) -> HashMap<(String, MailboxName), String> {
    match crate::store::Store::open(config.clone()).and_then(|st| st.list(None)) {
        Ok(list) => list.into_iter().map(|e| ((e.domain, e.name), e.partition)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// What one salvage stage produced: the report so far and the hints for reconstruct.
pub struct Salvaged {
    /// The report.
    pub report: SalvageReport,
    /// Hints by domain and mailbox.
    pub hints: BTreeMap<String, HashMap<MailboxName, crate::reconstruct::merge::Hints>>,
    /// Domains of every mailbox concerned.
    pub domains: Vec<String>,
}

/// Stage one of a salvage (root's, when run as root): survey, plan and put files back;
/// a missing database home is restored from database files found in the trees.
pub fn collect(config: &Config, opts: &Options, state: &mut state::State) -> Result<Salvaged> {
    let owner = owner_for(config)?;
    let mut s = survey::survey(config, trees_to_search(config, opts));
    let mut kept: Vec<String> = Vec::new();
    // Store files whose inodes were lost are still on the images: read them before
    // planning (their records say which messages are missing, and with which flags).
    read_image_store_files(&mut s, state, &mut kept);
    let threads = if opts.threads > 0 { opts.threads } else { config.worker_threads() };
    let runtime_uid = crate::privs::resolve(config).ok().map(|i| i.uid);
    let popts = PlanOptions {
        quick: opts.quick,
        threads,
        runtime_uid,
        recovered_name: state.recovered_name(),
        registered: as_owner(owner, || registered(config)),
    };
    let mut p = plan::plan(config, &s, &popts);
    let mut report = SalvageReport { dry_run: opts.dry_run, notes: s.notes.clone(), ..SalvageReport::default() };
    // Carving reads every image before anything is written: the blocks of a message whose
    // inode fsck cleared are free, and the next file written may take them.
    let preloaded = carve_images(&mut s, &mut p, &mut report, state, &mut kept);
    // Every image is read: from here on the run may write (its state first).
    if !opts.dry_run {
        state.begin();
        if let Some(b) = &state.busy {
            return Err(Error::Invalid(b.clone()));
        }
    }
    report.notes.extend(state.notes.iter().cloned());
    note_resumed(&mut report, state, &kept);
    report.taken_list = state.taken_path();
    report.notes.extend(p.notes.iter().cloned());
    note_survey(&mut report, &s);
    restore_database(config, opts, &s, owner, &mut report);
    let outcomes = if opts.dry_run {
        vec![Outcome::Placed { how: How::Copy }; p.placements.len()]
    } else {
        put_back(config, &s, &p, &preloaded, owner, state)?
    };
    // The report, mailbox by mailbox.
    let (by_target, used) = summarize_mailboxes(&s, &p, &outcomes);
    for (i, src) in s.sources.iter().enumerate() {
        report.sources.push(SourceSummary {
            path: src.path.clone(),
            kind: src.kind.clone(),
            error: src.error.clone(),
            candidates: s.candidates.iter().filter(|c| c.source == i).count() as u64,
            used: used.get(&i).copied().unwrap_or(0),
        });
    }
    for (_, why) in &p.left {
        *report.left.entry(why.to_string()).or_default() += 1;
    }
    let (hints, domains) = hints_and_domains(p.targets);
    report.mailboxes = by_target.into_values().collect();
    Ok(Salvaged { report, hints, domains })
}

/// The trees to search: the `lost+found` directories given (and found, with
/// `--auto-lost-found`), then the `--from` trees, then the images.
fn trees_to_search(config: &Config, opts: &Options) -> Vec<(SourceKind, PathBuf)> {
    let mut trees: Vec<(SourceKind, PathBuf)> = Vec::new();
    let mut lfs = opts.lost_found.clone();
    if opts.auto_lost_found {
        for lf in lost_found_dirs(config) {
            if !lfs.contains(&lf) {
                lfs.push(lf);
            }
        }
    }
    trees.extend(lfs.into_iter().map(|p| (SourceKind::LostFound, p)));
    trees.extend(opts.from.iter().cloned().map(|p| (SourceKind::From, p)));
    trees.extend(opts.images.iter().cloned().map(|p| (SourceKind::Image, p)));
    trees
}

/// Add to the catalog the store files on every image searched: those a stopped run found
/// (read again at their offsets, noted in `kept`), else scanned for (and recorded).
fn read_image_store_files(s: &mut survey::Survey, state: &mut state::State, kept: &mut Vec<String>) {
    for src in s.sources.iter_mut().filter(|x| x.kind == SourceKind::Image && x.error.is_none()) {
        let path = src.path.clone();
        let cat = &mut s.catalog;
        let r = state::ImageId::of(&path).and_then(|id| {
            if let Some(files) = state.resume.store_files_of(&id) {
                carve::read_store_files(&path, files, |kind, off, bytes| {
                    let at = PathBuf::from(format!("{}@{off}", path.display()));
                    survey::add_store_file(cat, &at, kind, bytes);
                })?;
                kept.push(format!("the store files found on {}", path.display()));
                return Ok(());
            }
            let mut files = Vec::new();
            carve::scan_store_files(&path, |kind, off, bytes| {
                files.push((kind.name().to_string(), off, bytes.len() as u64));
                let at = PathBuf::from(format!("{}@{off}", path.display()));
                survey::add_store_file(cat, &at, kind, bytes);
            })?;
            state.record(&state::Event::StoreFiles { image: id, files });
            Ok(())
        });
        if let Err(e) = r {
            src.error = Some(crate::error::describe_io(&e, &path));
        }
    }
}

/// When this run continues a stopped one: say so in the report, with what it kept.
fn note_resumed(report: &mut SalvageReport, state: &state::State, kept: &[String]) {
    let Some(t) = state.resume.started else { return };
    let mut r = format!(
        "continuing the salvage begun at {} (it was stopped before its end)",
        crate::message::DateTime { unix: t, offset_minutes: 0 }.to_rfc3339()
    );
    if !kept.is_empty() {
        r += &format!(": kept {}", kept.join(", "));
    }
    if state.resume.placed > 0 {
        r += &format!("; {} file(s) it put back are in place", state.resume.placed);
    }
    report.resumed = Some(r);
    report.resumed_placed = state.resume.placed;
}

/// Notes on what the survey left alone: foreign files, and paths not looked at (the
/// first 50).
fn note_survey(report: &mut SalvageReport, s: &survey::Survey) {
    if s.foreign > 0 {
        report.notes.push(format!(
            "{} file(s) found are neither store files nor messages any record knows: left where they are",
            s.foreign
        ));
    }
    for (path, why) in s.skipped.iter().take(50) {
        report.notes.push(format!("not looked at: {}: {why}", path.display()));
    }
    if s.skipped.len() > 50 {
        report.notes.push(format!("... and {} more not looked at", s.skipped.len() - 50));
    }
}

/// Restore a missing database home from the database files found (with `--dry-run`, say
/// that it would).
fn restore_database(
    config: &Config,
    opts: &Options,
    s: &survey::Survey,
    owner: Option<Owner>,
    report: &mut SalvageReport,
) {
    if !opts.dry_run {
        match place::restore_db_home(config, s, owner) {
            Some(Ok(files)) => {
                report.database = files.iter().map(|f| format!("restored {}", f.display())).collect();
                if report.database.is_empty() {
                    report.database.push("database home recreated (no usable database file found)".into());
                }
            }
            Some(Err(e)) => report.errors.push(e),
            None => {}
        }
    } else if !config.database_path.exists() && !s.db_files.is_empty() {
        report.database.push(format!(
            "would restore the database home {} from {} database file(s) found",
            config.database_path.display(),
            s.db_files.len()
        ));
    }
}

/// Put every placement's file back, after listing them all in the state's `taken` list;
/// the outcome of each.
fn put_back(
    config: &Config,
    s: &survey::Survey,
    p: &plan::Plan,
    preloaded: &HashMap<usize, Vec<u8>>,
    owner: Option<Owner>,
    state: &mut state::State,
) -> Result<Vec<Outcome>> {
    // Listed before they are taken (a kill between the two leaves a line the next run
    // repeats, never a file taken unlisted).
    let lines: Vec<(String, String, PathBuf, u64, [u8; 32])> = p
        .placements
        .iter()
        .map(|pl| {
            let c = &s.candidates[pl.candidate];
            let (how, from) = match c.offset {
                Some(off) => ("carved", format!("{}@{off}", s.sources[c.source].path.display())),
                None => (if pl.how == How::Move { "moved" } else { "copied" }, plan::describe(s, c)),
            };
            let to = p.targets[pl.target].dir.join(crate::layout::message_file_name(pl.uid));
            (how.to_string(), from, to, pl.size, pl.hash)
        })
        .collect();
    if let Err(e) = state.list_taken(&lines) {
        return Err(Error::Invalid(format!(
            "{}: {e}: nothing was put back (every file taken is listed there first)",
            state.path().join("taken").display()
        )));
    }
    let o = place::place_all(config, s, p, preloaded, owner);
    let n = o.iter().filter(|o| matches!(o, Outcome::Placed { .. })).count() as u64;
    if n > 0 {
        state.record(&state::Event::Placed { files: n });
    }
    Ok(o)
}

/// The summary of every mailbox concerned (touched, or with messages wanted), by target,
/// from the plan and the placements' outcomes; and the files used from each source.
fn summarize_mailboxes(
    s: &survey::Survey,
    p: &plan::Plan,
    outcomes: &[Outcome],
) -> (BTreeMap<usize, MailboxSummary>, HashMap<usize, u64>) {
    let mut used: HashMap<usize, u64> = HashMap::new();
    let mut by_target: BTreeMap<usize, MailboxSummary> = BTreeMap::new();
    for (t, target) in p.targets.iter().enumerate() {
        if target.touched || p.wants.iter().any(|w| w.target == t) {
            by_target.insert(
                t,
                MailboxSummary {
                    domain: target.domain.clone(),
                    mailbox: target.name.display(),
                    path: target.dir.clone(),
                    took_back_identity: target.adopt,
                    ..MailboxSummary::default()
                },
            );
        }
    }
    for (pl, o) in p.placements.iter().zip(outcomes) {
        let m = by_target.get_mut(&pl.target).expect("every placement's target is reported");
        let c = &s.candidates[pl.candidate];
        match o {
            Outcome::Placed { .. } => {
                *used.entry(c.source).or_default() += 1;
                if pl.want.is_some() {
                    *m.back.entry(s.sources[c.source].path.display().to_string()).or_default() += 1;
                    if m.back_uids.len() < SHOWN {
                        m.back_uids.push(pl.uid);
                    }
                } else {
                    m.unknown += 1;
                }
                if pl.set_aside {
                    m.set_aside += 1;
                }
            }
            Outcome::AlreadyThere => m.already_there += 1,
            Outcome::Failed { error } => {
                m.failed.push(format!("UID {} from {}: {error}", pl.uid, plan::describe(s, c)));
            }
        }
    }
    for w in p.missing() {
        let m = by_target.get_mut(&w.target).expect("every want's target is reported");
        m.missing += 1;
        if m.missing_uids.len() < SHOWN {
            m.missing_uids.push(w.record.uid);
        }
    }
    (by_target, used)
}

/// Hints for reconstruct, by domain and mailbox.
type HintsByMailbox = BTreeMap<String, HashMap<MailboxName, crate::reconstruct::merge::Hints>>;

/// Hints for reconstruct, by domain and mailbox; and the domains of every mailbox
/// concerned (sorted, once each).
fn hints_and_domains(targets: Vec<plan::Target>) -> (HintsByMailbox, Vec<String>) {
    let mut hints = HintsByMailbox::new();
    let mut domains: Vec<String> = Vec::new();
    for target in targets {
        domains.push(target.domain.clone());
        // Hints go to reconstruct whether or not anything was put back: a mailbox whose
        // files are all there but whose index and log were lost gets its flags, dates and
        // UIDs from the records salvage found (on an image, in a lost+found). Where a
        // placement failed, the hints still hold for what is there.
        if !target.hints.is_empty() {
            hints.entry(target.domain.clone()).or_default().insert(target.name.clone(), target.hints);
        }
    }
    domains.sort();
    domains.dedup();
    (hints, domains)
}

/// Most bytes of carved messages held in memory when the image is a device (whose free
/// blocks the placements themselves could overwrite).
const PRELOAD_CAP: u64 = 2 << 30;

/// Carve every image for the wanted messages still missing; they become candidates with
/// placements. For a block device, the carved bytes are read into memory before anything
/// is written. Returns those bytes by candidate.
fn carve_images(
    s: &mut survey::Survey,
    p: &mut plan::Plan,
    report: &mut SalvageReport,
    state: &mut state::State,
    kept: &mut Vec<String>,
) -> HashMap<usize, Vec<u8>> {
    let mut preloaded = HashMap::new();
    let images: Vec<usize> = s
        .sources
        .iter()
        .enumerate()
        .filter(|(_, x)| x.kind == SourceKind::Image && x.error.is_none())
        .map(|(i, _)| i)
        .collect();
    if images.is_empty() {
        return preloaded;
    }
    let no_prefix = p.missing().filter(|w| w.record.prefix_hash == 0).count();
    if no_prefix > 0 {
        report.notes.push(format!(
            "{no_prefix} missing message(s) have no prefix hash (their records were written before it existed): carving cannot look for them"
        ));
    }
    for i in images {
        let sought = still_sought(p);
        if sought.is_empty() {
            break;
        }
        let path = s.sources[i].path.clone();
        let carved = match carve_one(&path, &sought, state, kept) {
            Ok(c) => c,
            Err(e) => {
                s.sources[i].error = Some(crate::error::describe_io(&e, &path));
                continue;
            }
        };
        note_carved(report, p, &carved, &path);
        let device =
            std::fs::metadata(&path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
        let mut held = 0u64;
        for (w, off) in carved.found {
            let r = p.wants[w].record;
            let ci = s.candidates.len();
            s.candidates.push(carved_candidate(i, &r, off));
            if device {
                held += r.size;
                if held > PRELOAD_CAP {
                    report.errors.push(format!(
                        "more than {} MiB to carve from the device {}, which the store may be writing to: make an image of it on another disk first (dd if={} of=/other/disk/store.img bs=4M) and give that with --image",
                        PRELOAD_CAP >> 20,
                        path.display(),
                        path.display()
                    ));
                    return HashMap::new();
                }
                match carve::read_extent(&path, off, r.size) {
                    Ok(b) => {
                        preloaded.insert(ci, b);
                    }
                    Err(e) => {
                        report.notes.push(format!("{}: byte {off}: {e}", path.display()));
                        continue;
                    }
                }
            }
            plan::place_want(p, w, ci, How::Copy);
        }
    }
    preloaded
}

/// The wanted messages not placed yet that carving can look for (they have a prefix hash).
fn still_sought(p: &plan::Plan) -> Vec<carve::Sought> {
    p.wants
        .iter()
        .enumerate()
        .filter(|(_, w)| w.placed.is_none() && w.record.prefix_hash != 0)
        .map(|(j, w)| carve::Sought {
            id: j,
            size: w.record.size,
            hash: w.record.content_hash,
            prefix: w.record.prefix_hash,
        })
        .collect()
}

/// Notes on what carving image `path` could not take: messages whose first bytes only
/// were found, and sizes too small to look for.
fn note_carved(report: &mut SalvageReport, p: &plan::Plan, carved: &carve::Carved, path: &std::path::Path) {
    for (w, off) in &carved.partial {
        report.notes.push(format!(
            "{} UID {}: its first bytes are at byte {off} of {} but not the rest (fragmented or overwritten): not carved",
            p.targets[p.wants[*w].target].name.display(),
            p.wants[*w].record.uid,
            path.display()
        ));
    }
    if carved.skipped_small > 0 {
        report.notes.push(format!(
            "{} sizes under 512 bytes were not looked for in {}",
            carved.skipped_small,
            path.display()
        ));
    }
}

/// The candidate for message `r` carved at byte `off` of image source `source`.
fn carved_candidate(source: usize, r: &crate::codec::index::MessageRecord, off: u64) -> survey::Candidate {
    survey::Candidate {
        source,
        rel: Vec::new(),
        meta: tree::Meta {
            kind: tree::Kind::File,
            size: r.size,
            uid: 0,
            gid: 0,
            mode: 0o600,
            nlink: 1,
            ino: 0,
            dev: 0,
            mnt_id: 0,
            mtime: r.internal_date,
        },
        name_uid: None,
        context: None,
        message_like: true,
        offset: Some(off),
    }
}

/// One image carved for `sought`: from what an earlier pass of this salvage found when
/// it looked for all of them (each confirmed again by its BLAKE3), else by a new pass,
/// whose result goes into the journal.
fn carve_one(
    path: &std::path::Path,
    sought: &[carve::Sought],
    state: &mut state::State,
    kept: &mut Vec<String>,
) -> std::io::Result<carve::Carved> {
    let id = state::ImageId::of(path)?;
    let hashes: Vec<[u8; 32]> = sought.iter().map(|x| x.hash).collect();
    if let Some(known) = state.resume.carved_on(&id, &hashes) {
        let f = std::fs::File::open(path)?;
        let mut out = carve::Carved::default();
        for x in sought {
            if let Some(&off) = known.get(&x.hash) {
                if carve::confirm(&f, off, x)? {
                    out.found.push((x.id, off));
                } else {
                    out.partial.push((x.id, off));
                }
            }
        }
        kept.push(format!("the carving of {} ({} found, no new pass)", path.display(), out.found.len()));
        return Ok(out);
    }
    let carved = carve::carve(path, sought, |_| {})?;
    let by_id: HashMap<usize, &carve::Sought> = sought.iter().map(|x| (x.id, x)).collect();
    let found = carved
        .found
        .iter()
        .filter_map(|(i, off)| {
            by_id.get(i).map(|x| state::Found { hash: crate::util::hex(&x.hash), size: x.size, offset: *off })
        })
        .collect();
    let looked = sought.iter().map(|x| crate::util::hex(&x.hash[..16])).collect();
    state.record(&state::Event::Carved { image: id, sought: looked, found });
    Ok(carved)
}

/// Stage two (as the runtime user): reconstruct what stage one touched, with its hints.
pub fn finish(config: &Config, mut got: Salvaged, opts: &Options, state: &mut state::State) -> SalvageReport {
    if opts.dry_run {
        return got.report;
    }
    let store = match crate::store::Store::open(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            got.report.errors.push(format!("the mailboxes put back were not reconstructed: {e}"));
            return got.report;
        }
    };
    // After a disk failure every byte is suspect: a rescue reads every message file and
    // checks every cache record (`reconstruct --verify-content`); its survey read them all
    // anyway.
    let ropts = crate::reconstruct::Options {
        threads: opts.threads,
        mmap: true,
        verify_content: opts.reconstruct_all,
        ..crate::reconstruct::Options::default()
    };
    let domains: Vec<String> =
        if opts.reconstruct_all { got.domains.clone() } else { got.hints.keys().cloned().collect() };
    // Every domain's mailboxes in one pipeline.
    let mut run: Vec<String> = Vec::new();
    let mut selections = Vec::new();
    for domain in domains {
        // A domain a stopped run reconstructed is done, unless this run put something back.
        if state.resume.reconstructed.contains(&domain) && !got.hints.contains_key(&domain) {
            continue;
        }
        let hints = got.hints.remove(&domain).unwrap_or_default();
        let mut names: Vec<String> = hints.keys().map(|n| n.as_str().to_string()).collect();
        names.sort();
        let sel = crate::reconstruct::Selection {
            domain: domain.clone(),
            user: None,
            recursive: opts.reconstruct_all,
            mailboxes: if opts.reconstruct_all { Vec::new() } else { names },
        };
        run.push(domain);
        selections.push((sel, hints));
    }
    let results = match crate::reconstruct::run_many(&store, selections, &ropts, &crate::report::NoProgress) {
        Ok(r) => r,
        Err(e) => {
            got.report.errors.push(format!("reconstruct: {e}"));
            return got.report;
        }
    };
    for (domain, result) in run.into_iter().zip(results) {
        match result {
            Ok(r) => {
                if r.exit_code() & 8 == 0 {
                    state.record(&state::Event::Reconstructed { domain: domain.clone() });
                }
                got.report.reconstruct.push(r)
            }
            Err(e) => got.report.errors.push(format!("reconstruct {domain}: {e}")),
        }
    }
    got.report
}

/// What the database step of a rescue did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DatabaseStep {
    /// The database home was missing and was created empty (nothing of it was found).
    pub created: bool,
    /// The repair ladder's report (`msdb_repair`).
    pub repair: Option<crate::db::repair::RepairReport>,
    /// What went wrong.
    pub error: Option<String>,
}

/// A rescue's report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RescueReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The databases.
    pub database: DatabaseStep,
    /// What salvage put back, and the reconstruct runs.
    pub salvage: SalvageReport,
    /// The final verify's findings (not run in a dry run).
    pub verify: Option<crate::verify::VerifyReport>,
}

impl RescueReport {
    /// Exit status: 8 something could not run; 4 something is still missing or damaged
    /// (verify's findings); 1 something was repaired or brought back; 0 nothing to do.
    pub fn exit(&self) -> Exit {
        let s = self.salvage.exit();
        let v = self.verify.as_ref().map(|v| v.exit()).unwrap_or(Exit::Ok);
        let db_failed =
            self.database.error.is_some() || self.database.repair.as_ref().is_some_and(|r| r.exit_code() == 4);
        if s == Exit::Error || v == Exit::Error || db_failed {
            Exit::Error
        } else if s == Exit::Unrepaired || v == Exit::Unrepaired {
            Exit::Unrepaired
        } else if s == Exit::Repaired
            || self.database.created
            || self.database.repair.as_ref().is_some_and(|r| !r.nothing_wrong)
        {
            Exit::Repaired
        } else {
            Exit::Ok
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.database.created {
            s += "databases: the database home was missing and nothing of it was found: created empty (the mailboxes on disk are registered again)\n";
        }
        if let Some(r) = &self.database.repair {
            if !r.nothing_wrong {
                s += "databases (the msdb_repair ladder):\n";
                for line in r.render(crate::report::Run::dry_run_if(self.dry_run)).lines() {
                    s += &format!("    {line}\n");
                }
            }
        }
        if let Some(e) = &self.database.error {
            s += &format!("databases: FAILED: {e}\n");
        }
        s += &self.salvage.text();
        if let Some(v) = &self.verify {
            if v.findings.is_empty() && v.errors.is_empty() {
                s += &format!("verify: no problems found ({} mailboxes, {} messages)\n", v.mailboxes, v.messages);
            } else {
                s += &format!("verify: {} finding(s) left:\n", v.findings.len());
                for f in v.findings.iter().take(50) {
                    for line in f.render().lines() {
                        s += &format!("    {line}\n");
                    }
                }
                if v.findings.len() > 50 {
                    s += &format!("    ... and {} more (mstore verify --json lists them all)\n", v.findings.len() - 50);
                }
                for e in &v.errors {
                    s += &format!("    error: {e}\n");
                }
            }
        }
        s
    }
}

/// The whole runbook after `fsck`, as one command. In order: survey (read-only) and carve
/// the images before anything is written; restore a missing database home from database
/// files found in a lost+found; put back what was found (as root where a lost+found needs
/// it); then, as the runtime user for good: the `msdb_repair` ladder (a missing home
/// created), `reconstruct` of every domain with what salvage knows as hints, and `verify`.
pub fn rescue(config: &Config, opts: &Options) -> Result<RescueReport> {
    let mut opts = opts.clone();
    opts.auto_lost_found = true;
    opts.reconstruct_all = true;
    let mut state = open_state(config, &opts)?;
    let got = collect(config, &opts, &mut state)?;
    crate::privs::become_runtime_user(config)?;
    let mut report = RescueReport { dry_run: opts.dry_run, ..RescueReport::default() };
    // Databases.
    if !config.database_path.exists() {
        if opts.dry_run {
            report
                .salvage
                .notes
                .push(format!("would create the missing database home {}", config.database_path.display()));
        } else {
            match crate::store::Store::init(config.clone()) {
                Ok(_) => report.database.created = true,
                Err(e) => report.database.error = Some(e.to_string()),
            }
        }
    }
    // The ladder only when msdb_verify finds something (recovery rewrites snapshots even
    // when nothing is wrong, and a second rescue must change nothing).
    let clean = || {
        crate::db::verify::verify(&crate::fs::RealFs, &config.database_path)
            .is_ok_and(|v| v.status == crate::db::verify::Status::Clean)
    };
    if config.database_path.exists() && !(report.database.created || clean()) {
        let ropts = crate::db::repair::RepairOptions {
            backup_dir: config.backup_path.clone(),
            durability: config.durability,
            dry_run: opts.dry_run,
        };
        match crate::db::repair::repair(&crate::fs::RealFs, &config.database_path, &ropts) {
            Ok(r) => report.database.repair = Some(r),
            Err(e) => report.database.error = Some(e.to_string()),
        }
    }
    report.salvage = finish(config, got, &opts, &mut state);
    if !opts.dry_run {
        let scope = crate::verify::Scope::default();
        let vopts = crate::verify::Options { quick: opts.quick, threads: opts.threads, ..Default::default() };
        match crate::verify::run_config(config.clone(), &scope, &vopts, &crate::report::NoProgress) {
            Ok(v) => report.verify = Some(v),
            Err(e) => report.salvage.errors.push(format!("verify: {e}")),
        }
    }
    state.record(&state::Event::Finished { at: crate::util::now() });
    Ok(report)
}

/// `mstore salvage`: stage one ([`collect`], as root where a lost+found needs it), then as
/// the runtime user stage two ([`finish`]); the state under ms-path lets a stopped run
/// continue.
pub fn salvage(config: &Config, opts: &Options) -> Result<SalvageReport> {
    let mut state = open_state(config, opts)?;
    let got = collect(config, opts, &mut state)?;
    crate::privs::become_runtime_user(config)?;
    let report = finish(config, got, opts, &mut state);
    state.record(&state::Event::Finished { at: crate::util::now() });
    Ok(report)
}

/// The state of this salvage or rescue under ms-path (opened as root, before anything is
/// written; a dry run reads it only).
pub fn open_state(config: &Config, opts: &Options) -> Result<state::State> {
    let owner = owner_for(config)?;
    let fresh = format!(
        "Recovered/{}",
        &crate::message::DateTime { unix: crate::util::now(), offset_minutes: 0 }.to_rfc3339()[..10]
    );
    let st = state::State::open(
        &config.ms_path,
        crate::report::Run::dry_run_if(opts.dry_run),
        config.durability,
        &fresh,
        owner,
    );
    match st.busy.clone() {
        Some(e) => Err(Error::Invalid(e)),
        None => Ok(st),
    }
}
