//! `msdb_repair`: the guide's escalation ladder as one command.
//!
//! The guide: "run msdb_recover first. If that fails, run msdb_backup, delete the
//! transaction logs and run msdb_recover. If the above fails, one must restore the last
//! good backup." Ours never deletes, and loses as little as it can:
//!
//! - **Rung 1** — normal recovery (`msdb_recover`).
//! - **Rung 2** — copy the whole database home into `<backup-path>/<stamp>-pre-repair/`
//!   (an unverified evidence copy), then salvage: point-in-time recovery from the live
//!   snapshots (the valid prefix of the log), or, if a snapshot is damaged, a rebuild
//!   from the entries it still holds plus the whole readable log (first when that loses
//!   nothing: the log reaches back to LSN 1 or every entry was read back), catastrophic
//!   recovery from the last good backup plus the live log, and a rebuild that loses
//!   entries last. The log and replaced snapshots move into `quarantine/<stamp>-…/`. The
//!   transactions lost are listed; losses that cannot be counted are said, with the fix.
//! - **Rung 3** — restore the last good backup (`msdb_restore`).
//!
//! After rungs 2 and 3 a normal recovery and `msdb_verify` must come out clean.
//! Exit status: 0 nothing was wrong; 1, 2 or 3 the rung that repaired it; 4 every rung
//! failed; 8 operational error.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::log::{self, RecInfo, TxnInfo};
use super::recover::{Mode, RecoverOptions, RecoverReport, recover_locked};
use super::{backup, restore, verify};
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode, sync_dir, walk_files, write_new};
use crate::io::Durability;
use crate::report::Run;

/// Options of the ladder.
#[derive(Clone, Debug)]
pub struct RepairOptions {
    /// The backup directory (`backup-path`).
    pub backup_dir: PathBuf,
    /// fsync or not.
    pub durability: Durability,
    /// Say what each rung would do; change nothing.
    pub dry_run: bool,
}

/// One rung: what it found and what it did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rung {
    /// 1, 2 or 3.
    pub number: u8,
    /// Its name.
    pub name: &'static str,
    /// What it found.
    pub found: Vec<String>,
    /// What it did (or would do).
    pub did: Vec<String>,
    /// Whether it brought the databases to a clean state.
    pub ok: bool,
}

/// The ladder's report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    /// Rungs tried, in order.
    pub rungs: Vec<Rung>,
    /// The rung that succeeded (`None`: none did).
    pub succeeded: Option<u8>,
    /// Nothing was wrong to begin with.
    pub nothing_wrong: bool,
    /// Committed transactions lost (at most 1000 listed).
    pub lost: Vec<RecInfo>,
    /// How many committed transactions were lost (or, for a restore, an estimate from
    /// the readable live log).
    pub lost_count: usize,
    /// Uncommitted transactions discarded.
    pub discarded: Vec<TxnInfo>,
    /// The log ended before the snapshots' LSN (cut or replaced): commits after the
    /// snapshots that it held are gone and cannot be counted (msdb_verify's "committed log
    /// records are missing").
    pub uncounted: Option<String>,
}

impl RepairReport {
    /// The exit status: 0 nothing wrong, 1–3 the rung that repaired, 4 none did.
    pub fn exit_code(&self) -> u8 {
        match self.succeeded {
            _ if self.nothing_wrong => 0,
            Some(n) => n,
            None => 4,
        }
    }

    /// Human-readable lines.
    pub fn render(&self, run: Run) -> String {
        let mut s = String::new();
        for r in &self.rungs {
            s += &format!("rung {} ({}){}:\n", r.number, r.name, if run == Run::DryRun { ", dry run" } else { "" });
            for f in &r.found {
                s += &format!("  found: {f}\n");
            }
            for d in &r.did {
                s += &format!("  {}: {d}\n", if run == Run::DryRun { "plan" } else { "did" });
            }
            s += &format!("  {}\n", if r.ok { "=> databases consistent" } else { "=> not repaired here" });
        }
        if self.lost_count > 0 {
            s += &format!("transactions lost: {} ({})\n", self.lost_count, log::txn_list(&self.lost));
            s += &log::txn_lines(&self.lost, self.lost_count, "  lost: ");
        }
        for t in &self.discarded {
            s += &format!("{}\n", log::discarded_line(t));
        }
        if let Some(u) = &self.uncounted {
            s += &format!("{u}\n");
        } else if self.lost_count == 0 && self.succeeded.is_some() && !self.discarded.iter().any(|t| t.commit_in_damage)
        {
            s += "no committed transaction was lost\n";
        }
        s += &match (self.nothing_wrong, self.succeeded) {
            (true, _) => "nothing was wrong\n".to_string(),
            (false, Some(n)) => format!("repaired at rung {n}\n"),
            (false, None) => {
                "NOT repaired: every rung failed; keep the evidence copies and quarantine, and get help\n".to_string()
            }
        };
        s
    }
}

/// Walk the ladder on the database home `dir`.
pub fn repair(fs: &dyn Fs, dir: &Path, opts: &RepairOptions) -> Result<RepairReport> {
    fs.metadata(dir).map_err(|e| Error::io("open database home", dir, e))?;
    let mut report = RepairReport::default();
    let d = opts.durability;

    // Rung 1.
    let mut r1 = Rung { number: 1, name: "msdb_recover", ..Rung::default() };
    let before = verify::verify(fs, dir)?;
    r1.found.push(format!("msdb_verify: {}", before.status));
    if let Some(dmg) = &before.damage {
        r1.found.push(dmg.describe());
    }
    r1.found.extend(before.problems.iter().cloned());
    let snapshot_lsn = before.snapshots.iter().filter_map(|s| s.checkpoint_lsn).max().unwrap_or(0);
    if !before.segments.is_empty() && before.damage.is_none() && snapshot_lsn > before.end_lsn {
        report.uncounted = Some(format!(
            "committed transactions may be lost and cannot be counted: the log ends at LSN {} but the snapshots include LSN {snapshot_lsn} (it was cut or replaced), so whatever was committed after LSN {snapshot_lsn} is gone; mailboxes created since are on disk: `reconstruct -r DOMAIN` registers them again",
            before.end_lsn
        ));
    }
    let rec = {
        let _x = fs.lock(dir, LockMode::Exclusive).ctx("lock database home", dir)?;
        recover_locked(fs, dir, &RecoverOptions { mode: Mode::Normal, durability: d, dry_run: opts.dry_run })
    };
    match rec {
        Ok(rep) => {
            r1.did.extend(rep.actions.iter().cloned());
            r1.did.push(format!("recovered to LSN {} ({} entries)", rep.lsn, rep.entries));
            add_losses(&mut report, &rep);
            r1.ok = opts.dry_run || clean_after(fs, dir, &mut r1)?;
            report.nothing_wrong = before.status == verify::Status::Clean && before.problems.is_empty() && r1.ok;
        }
        Err(e) => r1.found.push(format!("recovery refused: {e}")),
    }
    let ok1 = r1.ok;
    report.rungs.push(r1);
    if ok1 {
        report.succeeded = Some(1);
        return Ok(report);
    }

    // Rung 2.
    let mut r2 = Rung { number: 2, name: "backup, quarantine the logs, salvage, recover", ..Rung::default() };
    match rung2(fs, dir, opts, &mut r2, &mut report) {
        Ok(ok) => r2.ok = ok,
        Err(e) => r2.found.push(format!("failed: {e}")),
    }
    let ok2 = r2.ok;
    report.rungs.push(r2);
    if ok2 {
        report.succeeded = Some(2);
        return Ok(report);
    }

    // Rung 3.
    let mut r3 = Rung { number: 3, name: "restore the last good backup", ..Rung::default() };
    match restore::restore(fs, dir, &opts.backup_dir, None, d, Run::dry_run_if(opts.dry_run)) {
        Ok(rep) => {
            r3.did.push(rep.render(Run::dry_run_if(opts.dry_run)).trim_end().to_string());
            report.lost_count += rep.commits_lost;
            r3.ok = opts.dry_run || {
                let _x = fs.lock(dir, LockMode::Exclusive).ctx("lock database home", dir)?;
                recover_locked(fs, dir, &RecoverOptions { mode: Mode::Normal, durability: d, dry_run: false }).is_ok()
            } && clean_after(fs, dir, &mut r3)?;
        }
        Err(e) => r3.found.push(format!("failed: {e}")),
    }
    let ok3 = r3.ok;
    report.rungs.push(r3);
    if ok3 {
        report.succeeded = Some(3);
    }
    Ok(report)
}

fn add_losses(report: &mut RepairReport, rep: &RecoverReport) {
    report.lost.extend(rep.dropped.iter().cloned());
    report.lost.truncate(1000);
    report.lost_count += rep.dropped_count;
    report.discarded.extend(rep.discarded.iter().cloned());
    if let Some(u) = &rep.uncounted {
        report.uncounted = Some(match report.uncounted.take() {
            Some(before) => format!("{before}\n{u}"),
            None => u.clone(),
        });
    }
}

/// Verify after a rung; note what is still wrong.
fn clean_after(fs: &dyn Fs, dir: &Path, rung: &mut Rung) -> Result<bool> {
    let v = verify::verify(fs, dir)?;
    if v.status == verify::Status::Clean {
        return Ok(true);
    }
    rung.found.push(format!("msdb_verify after it: {}", v.status));
    rung.found.extend(v.problems);
    if let Some(dmg) = v.damage {
        rung.found.push(dmg.describe());
    }
    Ok(false)
}

fn rung2(fs: &dyn Fs, dir: &Path, opts: &RepairOptions, rung: &mut Rung, report: &mut RepairReport) -> Result<bool> {
    let d = opts.durability;
    // The guide's "run msdb_backup": a verified backup is impossible from a damaged home,
    // so take an evidence copy of every file as it is.
    let name = format!("{}-pre-repair", backup::stamp(crate::util::now()));
    let copy = opts.backup_dir.join(&name);
    if opts.dry_run {
        rung.did.push(format!("copy the database home into {} (unverified evidence copy)", copy.display()));
    } else {
        let files = evidence_copy(fs, dir, &copy, d)?;
        rung.did.push(format!(
            "copied the database home ({files} files) into {} (unverified evidence copy)",
            copy.display()
        ));
    }
    let _x = fs.lock(dir, LockMode::Exclusive).ctx("lock database home", dir)?;
    let snapshots_ok = log::Tables::load(fs, dir).is_ok();
    let backup = backup::list_backups(fs, &opts.backup_dir).ok().and_then(|l| l.last().cloned());
    let mut modes = Vec::new();
    if snapshots_ok {
        modes.push(Mode::PointInTime);
        modes.extend(backup.map(|b| Mode::Catastrophic(b.path)));
    } else {
        rung.found.push("a snapshot is damaged".to_string());
        // A rebuild that loses nothing it cannot count first; else the backup plus the
        // live log; a rebuild that loses entries of the damaged snapshot last.
        let whole = recover_locked(fs, dir, &RecoverOptions { mode: Mode::Rebuild, durability: d, dry_run: true })
            .is_ok_and(|r| r.uncounted.is_none());
        if whole {
            modes.push(Mode::Rebuild);
        }
        modes.extend(backup.map(|b| Mode::Catastrophic(b.path)));
        if !whole {
            modes.push(Mode::Rebuild);
        }
    }
    for mode in modes {
        let shown = match &mode {
            Mode::PointInTime => "point-in-time recovery (salvage the valid prefix of the log)".to_string(),
            Mode::Rebuild => {
                "rebuild from what the damaged snapshots still hold and the whole readable log".to_string()
            }
            Mode::Catastrophic(b) => format!("catastrophic recovery from the backup {} plus the live log", b.display()),
            _ => String::new(),
        };
        match recover_locked(fs, dir, &RecoverOptions { mode, durability: d, dry_run: opts.dry_run }) {
            Ok(rep) => {
                rung.did.push(shown);
                rung.did.extend(rep.actions.iter().cloned());
                add_losses(report, &rep);
                if opts.dry_run {
                    return Ok(true);
                }
                let again =
                    recover_locked(fs, dir, &RecoverOptions { mode: Mode::Normal, durability: d, dry_run: false });
                if let Err(e) = again {
                    rung.found.push(format!("recovery after the salvage refused: {e}"));
                    return Ok(false);
                }
                rung.did.push(format!("recovered to LSN {} ({} entries)", rep.lsn, rep.entries));
                let v = verify::verify_locked(fs, dir)?;
                if v.status != verify::Status::Clean {
                    rung.found.push(format!("msdb_verify after it: {}", v.status));
                    return Ok(false);
                }
                return Ok(true);
            }
            Err(e) => rung.found.push(format!("{shown} failed: {e}")),
        }
    }
    Ok(false)
}

/// Copy every file below `dir` (quarantine included) into `to`, synced.
fn evidence_copy(fs: &dyn Fs, dir: &Path, to: &Path, d: Durability) -> Result<usize> {
    let files = walk_files(fs, dir).ctx("list database home", dir)?;
    for rel in &files {
        let src = dir.join(rel);
        let dst = to.join(rel);
        if let Some(parent) = dst.parent() {
            fs.create_dir_all(parent).ctx("create evidence copy", parent)?;
        }
        let b = fs.read(&src).ctx("read", &src)?;
        write_new(fs, &dst, &b, d).ctx("write evidence copy", &dst)?;
    }
    fs.create_dir_all(to).ctx("create evidence copy", to)?;
    sync_dir(fs, to, d).ctx("fsync", to)?;
    if let Some(parent) = to.parent() {
        sync_dir(fs, parent, d).ctx("fsync", parent)?;
    }
    Ok(files.len())
}
