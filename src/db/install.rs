//! Installing a recovered state over the database home, crash-safely, moving aside
//! (never deleting) what it replaces.
//!
//! Point-in-time recovery, recovery to an LSN or a time, catastrophic recovery, restore
//! and rung 2 of the repair ladder all end the same way: a state at some LSN `P` must
//! replace the live snapshots, and the log after `P` (damaged, or deliberately dropped)
//! must never be replayed again. That takes several renames, so it is journaled:
//!
//! 1. the new snapshots are written as `install.<db>.db` (temp + fsync + rename);
//! 2. the plan is written as [`MARKER`] (atomically, with a CRC): `P`, the number of the
//!    new segment, the quarantine directory, the staged files and the old segments;
//! 3. the new segment is created, flagged "new timeline", first LSN `P + 1` — from here
//!    on every reader ignores the older segments;
//! 4. each live snapshot is moved into the quarantine directory and its staged
//!    replacement renamed into place; every old segment is moved into quarantine;
//! 5. the directories are fsynced and the marker removed.
//!
//! Steps 3–5 are idempotent. Whoever opens the home for writing while the marker exists
//! finishes them first ([`finish_pending`]); readers refuse until then.

use std::path::{Path, PathBuf};

use super::log::{self, Tables};
use super::{Db, DbError};
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, exists, sync_dir};
use crate::io::Durability;

/// The plan of an install in progress, in the database home.
pub const MARKER: &str = "INSTALL";
/// Directory (in the database home) where replaced files are moved.
pub const QUARANTINE: &str = "quarantine";

/// What an install does (the contents of [`MARKER`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// LSN the installed snapshots include.
    pub lsn: u64,
    /// Number of the new-timeline segment.
    pub segment: u64,
    /// Quarantine directory, relative to the home.
    pub quarantine: String,
    /// Staged snapshot files (relative), per database.
    pub staged: Vec<(Db, String)>,
    /// Old segment files (relative) to move into quarantine.
    pub old_segments: Vec<String>,
}

impl Plan {
    /// The text of the plan, with its CRC line.
    pub fn encode(&self) -> String {
        let mut s =
            format!("msdb-install 1\nlsn {}\nsegment {}\nquarantine {}\n", self.lsn, self.segment, self.quarantine);
        for (db, f) in &self.staged {
            s += &format!("stage {} {f}\n", db.name());
        }
        for f in &self.old_segments {
            s += &format!("move {f}\n");
        }
        let crc = crate::format::crc(s.as_bytes());
        s + &format!("crc {crc:08x}\n")
    }

    /// Parse a plan; `None` if it does not verify.
    pub fn decode(text: &str) -> Option<Plan> {
        let body_end = text.rfind("crc ")?;
        let (body, tail) = text.split_at(body_end);
        let crc = u32::from_str_radix(tail.strip_prefix("crc ")?.trim_end(), 16).ok()?;
        if crc != crate::format::crc(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "msdb-install 1" {
            return None;
        }
        let mut plan = Plan { lsn: 0, segment: 0, quarantine: String::new(), staged: vec![], old_segments: vec![] };
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            match k {
                "lsn" => plan.lsn = v.parse().ok()?,
                "segment" => plan.segment = v.parse().ok()?,
                "quarantine" => plan.quarantine = safe_rel(v)?,
                "stage" => {
                    let (db, f) = v.split_once(' ')?;
                    let db = Db::ALL.into_iter().find(|d| d.name() == db)?;
                    plan.staged.push((db, safe_rel(f)?));
                }
                "move" => plan.old_segments.push(safe_rel(v)?),
                _ => return None,
            }
        }
        (plan.segment > 0 && !plan.quarantine.is_empty()).then_some(plan)
    }
}

/// A relative path without `..` (a damaged or forged marker cannot move files elsewhere).
fn safe_rel(s: &str) -> Option<String> {
    let p = Path::new(s);
    (!s.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))).then(|| s.to_string())
}

/// Whether an install is pending in `dir`.
pub fn pending(fs: &dyn Fs, dir: &Path) -> Result<bool> {
    exists(fs, &dir.join(MARKER)).ctx("open database home", dir)
}

/// A new directory name under `dir/quarantine/`: `<UTC stamp>-<reason>`.
pub fn quarantine_name(fs: &dyn Fs, dir: &Path, reason: &str) -> Result<String> {
    let base = format!("{QUARANTINE}/{}-{reason}", crate::util::utc_stamp(crate::util::now()));
    let qdir = dir.join(QUARANTINE);
    if fs.metadata(&qdir).is_ok_and(|m| !m.is_dir) {
        return Err(Error::Invalid(format!(
            "{} is not a directory: it is where recovery sets replaced database files aside; move it elsewhere and run again",
            qdir.display()
        )));
    }
    let mut name = base.clone();
    let mut n = 2;
    while exists(fs, &dir.join(&name)).ctx("look in the quarantine directory", &qdir)? {
        name = format!("{base}-{n}");
        n += 1;
    }
    Ok(name)
}

/// Install `tables` as the state at `lsn` (the caller holds the exclusive lock of
/// `dir`). Returns the quarantine directory holding what was replaced.
pub fn install(fs: &dyn Fs, dir: &Path, tables: &Tables, lsn: u64, reason: &str, d: Durability) -> Result<PathBuf> {
    if pending(fs, dir)? {
        finish_pending(fs, dir, d)?;
    }
    let quarantine = quarantine_name(fs, dir, reason)?;
    let mut staged = Vec::new();
    for db in Db::ALL {
        let name = format!("install.{}", db.file_name());
        log::write_snapshot(fs, dir, &name, db, &tables.maps[db.index()], lsn, d)?;
        staged.push((db, name));
    }
    let segs = log::list_segments(fs, dir)?;
    let segment = segs.last().map(|(n, _)| n + 1).unwrap_or(1);
    let old_segments = segs.iter().map(|(n, _)| log::segment_name(*n)).collect();
    let plan = Plan { lsn, segment, quarantine: quarantine.clone(), staged, old_segments };
    crate::fs::atomic_write(fs, dir, MARKER, plan.encode().as_bytes(), d)
        .ctx("write install plan", &dir.join(MARKER))?;
    finish(fs, dir, &plan, d)?;
    Ok(dir.join(quarantine))
}

/// Finish the install whose plan is in `dir` (the caller holds the exclusive lock).
pub fn finish_pending(fs: &dyn Fs, dir: &Path, d: Durability) -> Result<()> {
    let path = dir.join(MARKER);
    let bytes = fs.read(&path).ctx("read install plan", &path)?;
    let plan = std::str::from_utf8(&bytes)
        .ok()
        .and_then(Plan::decode)
        .ok_or_else(|| Error::corrupt(&path, 0, "install plan does not verify; move it aside and run msdb_repair"))?;
    finish(fs, dir, &plan, d)
}

fn finish(fs: &dyn Fs, dir: &Path, plan: &Plan, d: Durability) -> Result<()> {
    let q = dir.join(&plan.quarantine);
    fs.create_dir_all(&q).ctx("create quarantine directory", &q)?;
    let seg_path = dir.join(log::segment_name(plan.segment));
    if !exists(fs, &seg_path).ctx("open database home", dir)? {
        log::create_segment(fs, dir, plan.segment, plan.lsn + 1, None, log::Timeline::New, d)?;
    }
    for (db, staged) in &plan.staged {
        let staged = dir.join(staged);
        if !exists(fs, &staged).ctx("open database home", dir)? {
            continue;
        }
        let live = dir.join(db.file_name());
        if exists(fs, &live).ctx("open database home", dir)? {
            let aside = unused(fs, &q, &db.file_name())?;
            fs.rename(&live, &aside).ctx("move aside", &live)?;
        }
        fs.rename(&staged, &live).ctx("install database snapshot", &live)?;
    }
    for name in &plan.old_segments {
        let p = dir.join(name);
        if exists(fs, &p).ctx("open database home", dir)? {
            let aside = unused(fs, &q, name)?;
            fs.rename(&p, &aside).ctx("move aside", &p)?;
        }
    }
    sync_dir(fs, &q, d).ctx("fsync", &q)?;
    if let Some(parent) = q.parent() {
        sync_dir(fs, parent, d).ctx("fsync", parent)?;
    }
    sync_dir(fs, dir, d).ctx("fsync", dir)?;
    let marker = dir.join(MARKER);
    fs.remove_file(&marker).ctx("remove install plan", &marker)?;
    sync_dir(fs, dir, d).ctx("fsync", dir)?;
    Ok(())
}

fn unused(fs: &dyn Fs, dir: &Path, name: &str) -> Result<PathBuf> {
    let mut p = dir.join(name);
    let mut n = 2;
    while exists(fs, &p).ctx("open quarantine directory", dir)? {
        p = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    Ok(p)
}

/// The error for a home whose install cannot be finished by a reader.
pub fn pending_error(dir: &Path) -> Error {
    DbError::InstallPending { dir: dir.to_path_buf() }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_error_names_the_marker() {
        let e = pending_error(Path::new("/ms/database")).to_string();
        assert!(e.contains(&format!(" {MARKER} ")) && e.contains("/ms/database") && e.contains("msdb_recover"), "{e}");
    }

    #[test]
    fn plan_round_trip_and_damage() {
        let p = Plan {
            lsn: 42,
            segment: 7,
            quarantine: "quarantine/20240101T000000Z-restore".into(),
            staged: vec![(Db::Mailboxes, "install.mailboxes.db".into())],
            old_segments: vec!["log.0000000000000001".into()],
        };
        let t = p.encode();
        assert_eq!(Plan::decode(&t), Some(p.clone()));
        let bad = t.replace("lsn 42", "lsn 43");
        assert_eq!(Plan::decode(&bad), None);
        let escape = Plan { quarantine: "../etc".into(), ..p };
        assert_eq!(Plan::decode(&escape.encode()), None);
    }
}
