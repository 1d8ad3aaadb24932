//! `msdb_backup`: a hot backup of the database home while writers run.
//!
//! 1. Serialise with other backups (exclusive lock of the backup directory); only a
//!    backup ever removes log segments, so holding it holds off log removal.
//! 2. Checkpoint the live environment (snapshots at the current LSN, checkpoint record).
//! 3. Copy the snapshots into `<backup-path>/<stamp>.partial/`, then every segment of the
//!    active timeline: the older ones without a lock (they no longer change), then, under
//!    the shared lock of the home (no write in progress), the segments that are new or
//!    grew. Writers go on meanwhile; what they commit after the copy is not in it.
//! 4. fsync every file and the directory; run recovery (in memory) and `msdb_verify` on
//!    the copy; only if both are clean write `MANIFEST` (BLAKE3 and size of every file,
//!    the LSNs, a digest of the recovered contents) and rename the directory to `<stamp>`.
//! 5. Keep the newest `backup-keep` verified backups; remove leftovers of crashed backups.
//! 6. Remove live log segments that this verified backup holds byte for byte and that no
//!    live snapshot needs (all their LSNs are at or before every snapshot's checkpoint).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::log::{self, Tables};
use super::{Db, DbError, Env, EnvOptions, recover, verify};
use crate::codec::dbsnap;
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode, exists, remove_tree, sync_dir, write_new};
use crate::io::Durability;

/// Name of the manifest in a backup directory.
pub const MANIFEST: &str = "MANIFEST";
/// Suffix of a backup being written.
pub const PARTIAL: &str = ".partial";

/// Where the backup is (for tests that write while it runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The live checkpoint is done.
    Checkpointed,
    /// The snapshots are copied.
    SnapshotsCopied,
    /// The older segments are copied; the last ones are next.
    OlderSegmentsCopied,
    /// Everything is copied; verification is next.
    Copied,
}

/// Options of a backup.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// The backup directory (`backup-path`).
    pub backup_dir: PathBuf,
    /// How many verified backups to keep (at least 1).
    pub keep: u32,
}

/// What a backup did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// Name (`<stamp>`).
    pub name: String,
    /// Directory.
    pub path: PathBuf,
    /// LSN of the live checkpoint.
    pub checkpoint_lsn: u64,
    /// LSN the backup reaches (its log's last record).
    pub end_lsn: u64,
    /// Entries in the recovered copy.
    pub entries: usize,
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Older backups removed.
    pub removed_backups: Vec<String>,
    /// Live log segments removed (held by this backup).
    pub removed_segments: Vec<String>,
    /// Seconds taken.
    pub seconds: f64,
}

/// A parsed `MANIFEST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// When written.
    pub created: i64,
    /// LSN of the live checkpoint it started from.
    pub checkpoint_lsn: u64,
    /// LSN the backup reaches.
    pub end_lsn: u64,
    /// Entries of the recovered contents.
    pub entries: usize,
    /// BLAKE3 of the recovered contents (`Tables::digest`), hex.
    pub state_digest: String,
    /// `(name, size, blake3 hex)` of every file.
    pub files: Vec<(String, u64, String)>,
}

impl Manifest {
    /// Encode as text, with a CRC line at the end.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "msdb-backup 1\ncreated {}\ncheckpoint_lsn {}\nend_lsn {}\nentries {}\nstate_digest {}\n",
            self.created, self.checkpoint_lsn, self.end_lsn, self.entries, self.state_digest
        );
        for (name, size, hash) in &self.files {
            s += &format!("file {hash} {size} {name}\n");
        }
        let crc = crate::format::crc(s.as_bytes());
        s + &format!("crc {crc:08x}\n")
    }

    /// Decode; `None` if it does not verify.
    pub fn decode(text: &str) -> Option<Manifest> {
        let at = text.rfind("crc ")?;
        let (body, tail) = text.split_at(at);
        let crc = u32::from_str_radix(tail.strip_prefix("crc ")?.trim_end(), 16).ok()?;
        if crc != crate::format::crc(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "msdb-backup 1" {
            return None;
        }
        let mut m = Manifest {
            created: 0,
            checkpoint_lsn: 0,
            end_lsn: 0,
            entries: 0,
            state_digest: String::new(),
            files: Vec::new(),
        };
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            match k {
                "created" => m.created = v.parse().ok()?,
                "checkpoint_lsn" => m.checkpoint_lsn = v.parse().ok()?,
                "end_lsn" => m.end_lsn = v.parse().ok()?,
                "entries" => m.entries = v.parse().ok()?,
                "state_digest" => m.state_digest = v.to_string(),
                "file" => {
                    let mut it = v.splitn(3, ' ');
                    let hash = it.next()?.to_string();
                    let size = it.next()?.parse().ok()?;
                    let name = it.next()?.to_string();
                    if name.contains('/') || name.starts_with('.') {
                        return None;
                    }
                    m.files.push((name, size, hash));
                }
                _ => return None,
            }
        }
        Some(m)
    }
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for `secs`: backup names.
pub fn stamp(secs: i64) -> String {
    crate::util::utc_stamp(secs)
}

/// Back up the database home `home`; `hook` is called at each [`Phase`] (tests write
/// while the backup runs; pass `&mut |_| {}` otherwise).
pub fn backup(
    env_opts: &EnvOptions,
    home: &Path,
    opts: &BackupOptions,
    hook: &mut dyn FnMut(Phase),
) -> Result<BackupReport> {
    let started = Instant::now();
    let fs = &*env_opts.fs;
    let d = env_opts.durability;
    let bdir = &opts.backup_dir;
    fs.create_dir_all(bdir).ctx("create backup directory", bdir)?;
    let _serial = fs.lock(bdir, LockMode::Exclusive).ctx("lock backup directory", bdir)?;

    let checkpoint_lsn = {
        let env = Env::open_with(home, env_opts.clone())?;
        env.checkpoint()?
    };
    hook(Phase::Checkpointed);

    let name = unused_name(fs, bdir)?;
    let stage = bdir.join(format!("{name}{PARTIAL}"));
    fs.create_dir_all(&stage).ctx("create backup directory", &stage)?;
    copy_snapshots(fs, home, &stage, d)?;
    hook(Phase::SnapshotsCopied);

    copy_segments(fs, home, &stage, d, hook)?;
    sync_dir(fs, &stage, d).ctx("fsync", &stage)?;
    hook(Phase::Copied);

    // Recovery and verification of the copy before it counts.
    check_copy(fs, &stage)?;
    let (tables, end_lsn, _) = recover::recovered_state(fs, &stage)?;
    let mut files = Vec::new();
    let mut bytes = 0;
    for n in fs.list(&stage).ctx("list backup", &stage)? {
        let b = fs.read(&stage.join(&n)).ctx("read backup", &stage.join(&n))?;
        bytes += b.len() as u64;
        files.push((n, b.len() as u64, blake3::hash(&b).to_hex().to_string()));
    }
    let manifest = Manifest {
        created: crate::util::now(),
        checkpoint_lsn,
        end_lsn,
        entries: tables.entries(),
        state_digest: crate::util::hex(&tables.digest()),
        files,
    };
    write_new(fs, &stage.join(MANIFEST), manifest.encode().as_bytes(), d).ctx("write backup manifest", &stage)?;
    sync_dir(fs, &stage, d).ctx("fsync", &stage)?;
    let final_dir = bdir.join(&name);
    fs.rename(&stage, &final_dir).ctx("rename backup", &stage)?;
    sync_dir(fs, bdir, d).ctx("fsync", bdir)?;

    let removed_backups = prune(fs, bdir, opts.keep, d)?;
    let removed_segments = remove_covered_segments(fs, home, &final_dir, &manifest, d)?;
    Ok(BackupReport {
        name,
        path: final_dir,
        checkpoint_lsn,
        end_lsn,
        entries: tables.entries(),
        files: manifest.files.len(),
        bytes,
        removed_backups,
        removed_segments,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Copy the snapshots of `home` into `stage`.
fn copy_snapshots(fs: &dyn Fs, home: &Path, stage: &Path, d: Durability) -> Result<()> {
    let mut copied: Vec<(String, Vec<u8>)> = Vec::new();
    for db in Db::ALL {
        let src = home.join(db.file_name());
        match fs.read(&src) {
            Ok(b) => copied.push((db.file_name(), b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read database", src, e)),
        }
    }
    for (n, b) in &copied {
        write_new(fs, &stage.join(n), b, d).ctx("write backup", &stage.join(n))?;
    }
    Ok(())
}

/// Copy the log segments of `home`'s timeline into `stage`: the older ones (they do not
/// change any more) without a lock, then the rest with no write in progress.
fn copy_segments(fs: &dyn Fs, home: &Path, stage: &Path, d: Durability, hook: &mut dyn FnMut(Phase)) -> Result<()> {
    let segs = log::list_segments(fs, home)?;
    let heads = log::read_heads(fs, &segs)?;
    let active = &heads[log::timeline_start(&heads)..];
    let mut seg_copies: Vec<(String, u64)> = Vec::new();
    for h in active.iter().take(active.len().saturating_sub(1)) {
        let b = fs.read(&h.path).ctx("read transaction log", &h.path)?;
        let n = log::segment_name(h.number);
        write_new(fs, &stage.join(&n), &b, d).ctx("write backup", &stage.join(&n))?;
        seg_copies.push((n, b.len() as u64));
    }
    hook(Phase::OlderSegmentsCopied);
    {
        // The rest with no write in progress.
        let _shared = fs.lock(home, LockMode::Shared).ctx("lock database home", home)?;
        let segs = log::list_segments(fs, home)?;
        let heads = log::read_heads(fs, &segs)?;
        let start = log::timeline_start(&heads);
        for h in &heads[start..] {
            let n = log::segment_name(h.number);
            if seg_copies.iter().any(|(c, len)| *c == n && *len == h.len) {
                continue;
            }
            let b = fs.read(&h.path).ctx("read transaction log", &h.path)?;
            write_new(fs, &stage.join(&n), &b, d).ctx("write backup", &stage.join(&n))?;
            seg_copies.retain(|(c, _)| *c != n);
            seg_copies.push((n, b.len() as u64));
        }
    }
    Ok(())
}

/// Verify a copy (recovery included) before it counts; a copy that fails is removed.
fn check_copy(fs: &dyn Fs, stage: &Path) -> Result<()> {
    let check = verify::verify_locked(fs, stage)?;
    if check.status != verify::Status::Clean {
        let _ = remove_tree(fs, stage);
        return Err(DbError::Backup(format!(
            "backup copy {} did not verify ({}); the live databases need msdb_verify / msdb_repair",
            stage.display(),
            check.render().lines().skip(1).map(str::trim).collect::<Vec<_>>().join("; ")
        ))
        .into());
    }
    Ok(())
}

fn unused_name(fs: &dyn Fs, bdir: &Path) -> Result<String> {
    let base = stamp(crate::util::now());
    let mut name = base.clone();
    let mut n = 2;
    while exists(fs, &bdir.join(&name)).ctx("open backup directory", bdir)?
        || exists(fs, &bdir.join(format!("{name}{PARTIAL}"))).ctx("open backup directory", bdir)?
    {
        name = format!("{base}-{n}");
        n += 1;
    }
    Ok(name)
}

/// A backup found in the backup directory.
#[derive(Clone, Debug, Serialize)]
pub struct BackupInfo {
    /// Name.
    pub name: String,
    /// Directory.
    pub path: PathBuf,
    /// Its manifest, if it decodes.
    pub manifest: Option<Manifest>,
}

/// The backups of `bdir` with a manifest that decodes, oldest first (names sort by time).
pub fn list_backups(fs: &dyn Fs, bdir: &Path) -> Result<Vec<BackupInfo>> {
    let mut out = Vec::new();
    let names = match fs.list(bdir) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("list backup directory", bdir, e)),
    };
    for n in names {
        let path = bdir.join(&n);
        if n.ends_with(PARTIAL) || !fs.metadata(&path).map(|m| m.is_dir).unwrap_or(false) {
            continue;
        }
        let manifest = match fs.read(&path.join(MANIFEST)) {
            Ok(b) => std::str::from_utf8(&b).ok().and_then(Manifest::decode),
            Err(_) => None,
        };
        if manifest.is_some() {
            out.push(BackupInfo { name: n, path, manifest });
        }
    }
    Ok(out)
}

/// Check a backup: the manifest verifies, every file it names has its size and BLAKE3,
/// and no other file is there. Returns the manifest.
pub fn check_backup(fs: &dyn Fs, path: &Path) -> Result<Manifest> {
    let mpath = path.join(MANIFEST);
    let bytes = fs.read(&mpath).ctx("read backup manifest", &mpath)?;
    let m = std::str::from_utf8(&bytes)
        .ok()
        .and_then(Manifest::decode)
        .ok_or_else(|| Error::corrupt(&mpath, 0, "backup manifest does not verify"))?;
    let mut names: Vec<String> = m.files.iter().map(|f| f.0.clone()).collect();
    names.push(MANIFEST.to_string());
    names.sort();
    let mut present = fs.list(path).ctx("list backup", path)?;
    present.sort();
    if names != present {
        return Err(Error::corrupt(path, 0, format!("backup holds {present:?}, its manifest names {names:?}")));
    }
    for (n, size, hash) in &m.files {
        let p = path.join(n);
        let b = fs.read(&p).ctx("read backup", &p)?;
        if b.len() as u64 != *size || blake3::hash(&b).to_hex().as_str() != hash {
            return Err(Error::corrupt(&p, 0, "backup file does not match its manifest (size or BLAKE3)"));
        }
    }
    Ok(m)
}

/// Keep the newest `keep` backups; remove older ones and leftovers of crashed backups.
fn prune(fs: &dyn Fs, bdir: &Path, keep: u32, d: Durability) -> Result<Vec<String>> {
    let good = list_backups(fs, bdir)?;
    let mut removed = Vec::new();
    let excess = good.len().saturating_sub(keep.max(1) as usize);
    for b in good.iter().take(excess) {
        remove_tree(fs, &b.path).ctx("remove old backup", &b.path)?;
        removed.push(b.name.clone());
    }
    for n in fs.list(bdir).ctx("list backup directory", bdir)? {
        if n.ends_with(PARTIAL) {
            let p = bdir.join(&n);
            remove_tree(fs, &p).ctx("remove unfinished backup", &p)?;
            removed.push(n);
        }
    }
    if !removed.is_empty() {
        sync_dir(fs, bdir, d).ctx("fsync", bdir)?;
    }
    Ok(removed)
}

/// Remove live segments the verified backup at `bpath` holds byte for byte, that are not
/// the last one, and whose records every live snapshot already includes.
fn remove_covered_segments(fs: &dyn Fs, home: &Path, bpath: &Path, m: &Manifest, d: Durability) -> Result<Vec<String>> {
    let _x = fs.lock(home, LockMode::Exclusive).ctx("lock database home", home)?;
    let mut min_ckpt = u64::MAX;
    for db in Db::ALL {
        let p = home.join(db.file_name());
        match fs.read_at(&p, 0, dbsnap_header_len()) {
            Ok(h) => match dbsnap_checkpoint(&h) {
                Some(c) => min_ckpt = min_ckpt.min(c),
                None => return Ok(Vec::new()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => min_ckpt = 0,
            Err(e) => return Err(Error::io("read database", p, e)),
        }
    }
    let segs = log::list_segments(fs, home)?;
    let heads = log::read_heads(fs, &segs)?;
    let mut removed = Vec::new();
    for (i, h) in heads.iter().enumerate() {
        let Some(next) = heads.get(i + 1) else { break };
        let Ok((ninfo, _)) = &next.header else { break };
        // The last LSN of `h` is just before the next segment's first.
        if ninfo.first_lsn.saturating_sub(1) > min_ckpt.min(m.end_lsn) {
            break;
        }
        let n = log::segment_name(h.number);
        let Some((_, size, hash)) = m.files.iter().find(|f| f.0 == n) else { break };
        let live = fs.read(&h.path).ctx("read transaction log", &h.path)?;
        let held = fs.read(&bpath.join(&n)).ctx("read backup", bpath)?;
        if live.len() as u64 != *size || live != held || blake3::hash(&live).to_hex().as_str() != hash {
            break;
        }
        fs.remove_file(&h.path).ctx("remove archived log segment", &h.path)?;
        removed.push(n);
    }
    if !removed.is_empty() {
        sync_dir(fs, home, d).ctx("fsync", home)?;
    }
    Ok(removed)
}

fn dbsnap_header_len() -> u64 {
    crate::format::dbsnap::HEADER_LEN as u64
}

/// The checkpoint LSN from a snapshot's header, if the header verifies.
fn dbsnap_checkpoint(header: &[u8]) -> Option<u64> {
    dbsnap::decode_header(header).ok().map(|h| h.checkpoint_lsn)
}

/// The recovered contents of a verified backup, and its LSN.
pub fn backup_state(fs: &dyn Fs, path: &Path) -> Result<(Tables, u64)> {
    let m = check_backup(fs, path)?;
    let (tables, lsn, damage) = recover::recovered_state(fs, path)?;
    if let Some(d) = damage {
        return Err(DbError::Backup(format!("backup {} log is damaged: {}", path.display(), d.describe())).into());
    }
    if crate::util::hex(&tables.digest()) != m.state_digest || lsn != m.end_lsn {
        return Err(DbError::Backup(format!(
            "backup {} recovers to a state other than the one its manifest records",
            path.display()
        ))
        .into());
    }
    Ok((tables, lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_manifests() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_709_210_096), "20240229T123456Z");
        let m = Manifest {
            created: 5,
            checkpoint_lsn: 7,
            end_lsn: 9,
            entries: 3,
            state_digest: "ab".repeat(32),
            files: vec![("mailboxes.db".into(), 10, "cd".repeat(32))],
        };
        let t = m.encode();
        assert_eq!(Manifest::decode(&t), Some(m));
        assert_eq!(Manifest::decode(&t.replace("end_lsn 9", "end_lsn 8")), None);
    }
}
