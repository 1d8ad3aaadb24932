//! `msdb_restore`: put the state of the last good (or a named) verified backup in place
//! of the live databases. Whatever it replaces — snapshots and every log segment — is
//! moved into `quarantine/<stamp>-restore-<backup>/` first (see `install.rs`), never
//! deleted.
//!
//! A backup counts as good when its manifest verifies, every file matches its size and
//! BLAKE3, its log verifies clean, and recovering it gives the contents digest the
//! manifest recorded.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::backup::{backup_state, list_backups};
use super::log::{self, Tables};
use super::{DbError, install};
use crate::codec::wal::Body;
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode};
use crate::io::Durability;
use crate::report::Run;

/// What a restore did (or would do).
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: String,
    /// Its directory.
    pub path: PathBuf,
    /// LSN of the restored state.
    pub lsn: u64,
    /// Entries restored.
    pub entries: usize,
    /// Backups passed over (newer ones that did not check out), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Committed transactions of the live log after the backup (lost by the restore),
    /// as far as the live log could be read.
    pub commits_lost: usize,
    /// Where the replaced files went (`None` on a dry run).
    pub quarantine: Option<PathBuf>,
}

impl RestoreReport {
    /// Human-readable lines.
    pub fn render(&self, run: Run) -> String {
        let mut s = String::new();
        for (n, why) in &self.skipped {
            s += &format!("skipped backup {n}: {why}\n");
        }
        s += &format!(
            "{} backup {} (LSN {}, {} entries); {} committed transactions of the live log after it are lost\n",
            if run == Run::DryRun { "would restore" } else { "restored" },
            self.backup,
            self.lsn,
            self.entries,
            self.commits_lost
        );
        if let Some(q) = &self.quarantine {
            s += &format!("the replaced snapshots and log are in {}\n", q.display());
        }
        s
    }
}

/// A backup chosen for a restore, with its recovered contents.
#[derive(Debug)]
pub struct Chosen {
    /// Name.
    pub name: String,
    /// Directory.
    pub path: PathBuf,
    /// Recovered contents.
    pub tables: Tables,
    /// Their LSN.
    pub lsn: u64,
    /// Newer backups passed over, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The backup to restore: `name` (a name in `bdir`, or a path), else the newest good one.
pub fn choose(fs: &dyn Fs, bdir: &Path, name: Option<&str>) -> Result<Chosen> {
    if let Some(n) = name {
        let path = if n.contains('/') { PathBuf::from(n) } else { bdir.join(n) };
        let (t, lsn) = backup_state(fs, &path)?;
        let shown = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| n.to_string());
        return Ok(Chosen { name: shown, path, tables: t, lsn, skipped: Vec::new() });
    }
    let mut skipped = Vec::new();
    for b in list_backups(fs, bdir)?.into_iter().rev() {
        match backup_state(fs, &b.path) {
            Ok((tables, lsn)) => return Ok(Chosen { name: b.name, path: b.path, tables, lsn, skipped }),
            Err(e) => skipped.push((b.name, e.to_string())),
        }
    }
    let why: Vec<String> = skipped.iter().map(|(n, e)| format!("{n}: {e}")).collect();
    Err(DbError::Backup(format!(
        "no good backup in {}{}",
        bdir.display(),
        if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) }
    ))
    .into())
}

/// Restore into `home` from `bdir`.
pub fn restore(
    fs: &dyn Fs,
    home: &Path,
    bdir: &Path,
    name: Option<&str>,
    d: Durability,
    run: Run,
) -> Result<RestoreReport> {
    let Chosen { name: bname, path, tables, lsn, skipped } = choose(fs, bdir, name)?;
    fs.metadata(home).map_err(|e| Error::io("open database home", home, e))?;
    let _x = fs.lock(home, LockMode::Exclusive).ctx("lock database home", home)?;
    let commits_lost = live_commits_after(fs, home, lsn);
    let mut report = RestoreReport {
        backup: bname.clone(),
        path,
        lsn,
        entries: tables.entries(),
        skipped,
        commits_lost,
        quarantine: None,
    };
    if run == Run::Apply {
        let mut tables = tables;
        tables.applied = [lsn; 2];
        let reason = format!("restore-{}", bname.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"));
        report.quarantine = Some(install::install(fs, home, &tables, lsn, &reason, d)?);
    }
    Ok(report)
}

/// Commits in the live log after `lsn` (best effort: 0 if it cannot be read).
fn live_commits_after(fs: &dyn Fs, home: &Path, lsn: u64) -> usize {
    let Ok(segs) = log::list_segments(fs, home) else { return 0 };
    let Ok(heads) = log::read_heads(fs, &segs) else { return 0 };
    let mut n = 0;
    let _ = log::read_log(fs, &heads, 0, 0, &mut |_, _, r| {
        if r.lsn > lsn && matches!(r.body, Body::Commit { .. }) {
            n += 1;
        }
        Ok(true)
    });
    n
}
