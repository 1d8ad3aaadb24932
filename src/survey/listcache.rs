//! The directory listing cache (`formats/listings.md`): discovery looks a directory up by
//! its `statx` and, while nothing that any change to its entries moves has moved, takes
//! its listing from here instead of reading the directory again.
//!
//! Only a cache: a missing, damaged or foreign file is ignored and, by a run that may
//! write, replaced. Per-file `statx` still happens for every message, and the planner
//! checks the directory's times again under the mailbox lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::codec::listings::{self, DirKey, DirListing, Listings};
use crate::format::listings::{HAS_CACHE, HAS_HEADER, HAS_INDEX, HAS_LOG};
use crate::store::Store;

use super::gather::Listing;

/// How long a directory must have been quiet before its listing is recorded: longer than
/// the coarsest timestamp granularity (1 s), so that a change in the same tick as the
/// listing cannot leave the times as they were.
pub const QUIET: Duration = Duration::from_secs(2);

/// How much of a domain a run lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// All of it: what it did not visit is gone.
    Domain,
    /// Some mailboxes' subtrees.
    Subtrees,
}

/// What a run may do with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Neither read nor write it.
    Off,
    /// Use it, never write it (`-n`, `verify`).
    Read,
    /// Use it, and record what was listed.
    ReadWrite,
}

/// A directory's `statx`, as discovery needs it.
#[derive(Clone, Copy, Debug)]
pub struct DirStat {
    /// Identity and times.
    pub key: DirKey,
    /// Whether the mount id is known (else nothing is cached for it).
    pub has_mnt_id: bool,
}

/// One `statx` of the directory at `path` (following symlinks, as `metadata` does).
pub fn stat_dir(path: &Path) -> std::io::Result<DirStat> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let st = statx(CWD, path, AtFlags::empty(), StatxFlags::BASIC_STATS | StatxFlags::MNT_ID)?;
    if rustix::fs::FileType::from_raw_mode(st.stx_mode.into()) != rustix::fs::FileType::Directory {
        return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
    }
    Ok(DirStat { key: key_of(&st), has_mnt_id: st.stx_mask & StatxFlags::MNT_ID.bits() != 0 })
}

/// The `statx` of an open directory (under the mailbox lock).
pub fn stat_open_dir(dir: &std::fs::File) -> std::io::Result<DirKey> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let st = statx(dir, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS | StatxFlags::MNT_ID)?;
    Ok(key_of(&st))
}

fn key_of(st: &rustix::fs::Statx) -> DirKey {
    DirKey {
        mnt_id: st.stx_mnt_id,
        dev: (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor),
        ino: st.stx_ino,
        ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
        mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        size: st.stx_size,
    }
}

/// How old the file time `(seconds, nanoseconds)` was at `when`: zero for a time in the
/// future or before 1970 (neither counts as settled).
pub fn age_at(when: SystemTime, (s, ns): (i64, u32)) -> Duration {
    if s < 0 {
        return Duration::ZERO;
    }
    let t = SystemTime::UNIX_EPOCH + Duration::new(s as u64, ns.min(999_999_999));
    when.duration_since(t).unwrap_or_default()
}

/// The cache of one domain for one run.
pub struct ListCache {
    mode: Mode,
    path: PathBuf,
    boot_id: Option<[u8; 16]>,
    /// Devices of the partitions on local file systems: only their directories are recorded.
    local_devs: Vec<u64>,
    /// What the file held (dev, ino) → entry; empty when unusable.
    old: HashMap<(u64, u64), (DirKey, DirListing)>,
    /// What the file will hold.
    new: Mutex<HashMap<(u64, u64), (DirKey, DirListing)>>,
    /// The file exists but is unusable: rewrite it even if `new` equals `old` (empty).
    stale: bool,
}

/// File systems whose directory times are kept by the local kernel (not NFS or FUSE,
/// which may cache attributes).
fn local_fs(path: &Path) -> bool {
    const EXT: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const TMPFS: i64 = 0x0102_1994;
    // `f_type` is i64 here, narrower on some targets.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|s| [EXT, XFS, BTRFS, TMPFS].contains(&(s.f_type as i64)))
}

/// This boot's id, as 16 bytes.
fn boot_id() -> Option<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: Vec<u8> = text.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Where the cache of `domain` lives.
pub fn cache_path(store: &Store, domain: &str) -> PathBuf {
    store.config().ms_path.join("listings").join(domain)
}

impl ListCache {
    /// Load the cache of `domain`. For a run over the whole domain, directories not
    /// visited are dropped when it is saved (they are gone); else they are kept.
    pub fn load(store: &Store, domain: &str, mode: Mode, extent: Extent) -> ListCache {
        let path = cache_path(store, domain);
        let boot_id = if mode == Mode::Off { None } else { boot_id() };
        let mut old = HashMap::new();
        let mut stale = false;
        if let Some(id) = boot_id {
            let bytes = std::fs::File::open(&path).and_then(|f| {
                let len = crate::io::file_size(&f)?;
                // A cache larger than this is not ours to read (a million directories of
                // a thousand messages take about 4 GiB; such a domain simply lists).
                if len > 1 << 30 {
                    return Err(std::io::Error::other("listing cache too large"));
                }
                crate::io::read_file_at(&f, len, crate::io::Map::Never)
            });
            match bytes.as_deref().map_err(|_| ()).and_then(|b| listings::decode(b).map_err(|_| ())) {
                Ok(l) if l.boot_id == id => {
                    old = l.entries.into_iter().map(|(k, d)| ((k.dev, k.ino), (k, d))).collect();
                }
                // Damaged, foreign or from another boot: replaced even if nothing new is
                // recorded. (Absent: nothing to replace.)
                _ => stale = path.exists(),
            }
        }
        let local_devs = if mode == Mode::ReadWrite && boot_id.is_some() {
            store
                .config()
                .partitions
                .values()
                .filter(|root| local_fs(root))
                .filter_map(|root| stat_dir(root).ok())
                .map(|s| s.key.dev)
                .collect()
        } else {
            Vec::new()
        };
        let new = if extent == Extent::Domain { HashMap::new() } else { old.clone() };
        ListCache { mode, path, boot_id, local_devs, old, stale, new: Mutex::new(new) }
    }

    /// The cached listing of the directory whose `statx` is `st`, if every part of the key
    /// still matches: (listing, sub-directory names).
    pub fn lookup(&self, st: &DirStat) -> Option<(Listing, Vec<String>)> {
        if !st.has_mnt_id {
            return None;
        }
        let k = &st.key;
        let (key, d) = self.old.get(&(k.dev, k.ino)).filter(|(key, _)| key == k)?;
        self.new.lock().insert((k.dev, k.ino), (*key, d.clone()));
        let listing = Listing {
            messages: d.messages.clone(),
            temps: d.temps.clone(),
            strays: d.strays.clone(),
            has_header: d.flags & HAS_HEADER != 0,
            has_index: d.flags & HAS_INDEX != 0,
            has_cache: d.flags & HAS_CACHE != 0,
            has_log: d.flags & HAS_LOG != 0,
        };
        Some((listing, d.subdirs.clone()))
    }

    /// A directory was just listed (`started` is when the listing began): record it if it
    /// had been quiet long enough and is on a local file system; else forget it.
    pub fn record(&self, st: &DirStat, started: SystemTime, listing: &Listing, subdirs: &[String]) {
        let k = st.key;
        let mut new = self.new.lock();
        new.remove(&(k.dev, k.ino));
        if self.mode != Mode::ReadWrite || !st.has_mnt_id || !self.local_devs.contains(&k.dev) {
            return;
        }
        if age_at(started, k.ctime).min(age_at(started, k.mtime)) <= QUIET {
            return;
        }
        let mut subdirs = subdirs.to_vec();
        subdirs.sort();
        let flags = [
            (listing.has_header, HAS_HEADER),
            (listing.has_index, HAS_INDEX),
            (listing.has_cache, HAS_CACHE),
            (listing.has_log, HAS_LOG),
        ]
        .iter()
        .filter(|(has, _)| *has)
        .fold(0, |f, (_, bit)| f | bit);
        let d = DirListing {
            messages: listing.messages.clone(),
            subdirs,
            temps: listing.temps.clone(),
            strays: listing.strays.clone(),
            flags,
        };
        if d.encodable() {
            new.insert((k.dev, k.ino), (k, d));
        }
    }

    /// Write the cache if this run may and anything changed (temp + fsync + rename +
    /// directory fsync). A failure is returned for the run to report; it costs nothing
    /// but the next run's listing.
    pub fn save(self, store: &Store) -> std::io::Result<bool> {
        let new = self.new.into_inner();
        let Some(boot_id) = self.boot_id else { return Ok(false) };
        if self.mode != Mode::ReadWrite || (new == self.old && !self.stale) {
            return Ok(false);
        }
        let mut entries: Vec<(DirKey, DirListing)> = new.into_values().collect();
        entries.sort_by_key(|(k, _)| (k.dev, k.ino));
        let written = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let bytes = listings::encode(&Listings { boot_id, written, entries });
        let dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let fs = &**store.fs();
        fs.create_dir_all(&dir)?;
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("listings");
        remove_stale_temps(fs, &dir, name);
        crate::fs::atomic_write(fs, &dir, name, &bytes, store.config().durability)?;
        Ok(true)
    }
}

/// Remove this domain's temporary cache files left by a run that died while writing one
/// (more than ten minutes old, so a concurrent run's file in progress is left alone).
/// They are the cache's own files: nothing of a mailbox is ever removed here.
fn remove_stale_temps(fs: &dyn crate::fs::Fs, dir: &Path, name: &str) {
    let prefix = crate::fs::temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        // `ms.tmp.<domain>.<16 random hex digits>` (or `.<pid>`, as older versions named
        // them): another domain may extend this one's name.
        let ours = e.file_name().to_str().and_then(|n| n.strip_prefix(prefix.as_str())).is_some_and(|tail| {
            (tail.len() == 16 && tail.bytes().all(|b| b.is_ascii_hexdigit()))
                || (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
        });
        if stale && ours {
            let _ = fs.remove_file(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_temporary_files_of_this_domain_are_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let old = |n: &str| {
            let p = d.join(n);
            std::fs::write(&p, b"x").expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(SystemTime::now() - Duration::from_secs(3600)).expect("mtime");
        };
        old("ms.tmp.example.com.123");
        old("ms.tmp.example.com.0123456789abcdef");
        old("ms.tmp.example.com.org.5");
        old("example.com");
        std::fs::write(d.join("ms.tmp.example.com.77"), b"x").expect("write");
        remove_stale_temps(&crate::fs::RealFs, d, "example.com");
        let mut left: Vec<String> = std::fs::read_dir(d)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        left.sort();
        assert_eq!(left, ["example.com", "ms.tmp.example.com.77", "ms.tmp.example.com.org.5"]);
    }
}
