//! The loss ledger (`formats/ledger.md`): what a repair had to let go of, kept until salvage
//! brings it back or an administrator accepts the loss.
//!
//! One append-only file per domain under `<ms-path>/ledger/`. Writers (reconstruct,
//! salvage, `mstore ledger ack`) append a batch of entries in one `write` under an
//! exclusive `flock`, then `fsync`; readers (verify, salvage, `mstore ledger`) read the
//! whole file and work out which losses are still outstanding.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use crate::codec::ledger::{Entry, Key, Kind, Reason};
use crate::codec::{FormatError, ledger as codec};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode, RealFs};
use crate::io::Durability;

/// Largest ledger read (a million losses take about 250 MiB; past this something other
/// than a ledger grew the file).
const MAX_LEN: u64 = 1 << 30;

/// The directory holding every domain's ledger.
pub fn dir(config: &Config) -> PathBuf {
    config.ms_path.join("ledger")
}

/// The ledger of `domain`.
pub fn path(config: &Config, domain: &str) -> PathBuf {
    dir(config).join(domain)
}

/// A domain's ledger as read: its entries, and the damage skipped (with the path).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The file.
    pub path: PathBuf,
    /// Its valid entries, in file order.
    pub entries: Vec<Entry>,
    /// Damage: (byte offset, what), a cut-short last entry included.
    pub damage: Vec<(u64, String)>,
    /// Whether the damage is only a last entry cut short by a crash (harmless).
    pub torn_tail_only: bool,
}

/// Read the ledger of `domain`; `Ok(None)` when it does not exist. A file whose header is
/// damaged is an error naming the file and offset.
pub fn read(config: &Config, domain: &str) -> Result<Option<Ledger>> {
    read_file(&path(config, domain))
}

/// Read a ledger file (also one found elsewhere, e.g. in `lost+found`).
pub fn read_file(p: &Path) -> Result<Option<Ledger>> {
    let f = match open_nofollow(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", p, e)),
    };
    let len = crate::io::file_size(&f).ctx("stat", p)?;
    if len > MAX_LEN {
        return Err(Error::corrupt(p, 0, format!("{len} bytes: larger than any ledger this build reads")));
    }
    let bytes = crate::io::read_file_at(&f, len, crate::io::Map::Allow).ctx("read", p)?;
    parse(p, &bytes).map(Some)
}

/// Parse ledger bytes read from `p`.
pub fn parse(p: &Path, bytes: &[u8]) -> Result<Ledger> {
    let s = codec::scan(bytes).map_err(|e| e.at(p))?;
    Ok(Ledger {
        path: p.to_path_buf(),
        entries: s.entries.into_iter().map(|(_, e)| e).collect(),
        damage: s.skipped.iter().map(|e: &FormatError| (e.offset(), e.to_string())).collect(),
        torn_tail_only: s.torn_tail_only,
    })
}

/// Open a ledger for reading: never through a link, never blocking on a FIFO or device the
/// runtime user put in its place (opened non-blocking, then checked to be a regular file).
fn open_nofollow(p: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let f = std::fs::File::options().read(true).custom_flags(flags.bits() as i32).open(p)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file (a ledger is one): not read"));
    }
    rustix::fs::fcntl_setfl(&f, OFlags::empty())?;
    Ok(f)
}

/// Append `entries` to the ledger of `domain`, creating it (and `<ms-path>/ledger/`) if
/// needed: one write under the ledger directory's exclusive lock, then fsync. A file whose
/// header is damaged is moved aside to `<domain>.damaged.<time>` (evidence is never
/// overwritten) and a new one is started.
pub fn append(config: &Config, domain: &str, entries: &[Entry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    append_at(&RealFs, &dir(config), domain, entries, config.durability)
}

/// [`append`] into the ledger directory `d`, through `fs`.
pub fn append_at(fs: &dyn Fs, d: &Path, domain: &str, entries: &[Entry], durability: Durability) -> Result<()> {
    let mut body = Vec::with_capacity(entries.len() * 256);
    for e in entries {
        codec::encode_entry(&mut body, e);
    }
    let created_dir = !crate::fs::exists(fs, d).ctx("look at", d)?;
    if created_dir {
        fs.create_dir_all(d).ctx("create", d)?;
        if let Some(parent) = d.parent() {
            crate::fs::sync_dir(fs, parent, durability).ctx("sync directory", parent)?;
        }
    }
    let _lock = fs.lock(d, LockMode::Exclusive).ctx("lock", d)?;
    let p = d.join(domain);
    let mut created = false;
    let mut f = match fs.open_write(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            created = true;
            fs.create_new(&p).ctx("create", &p)?
        }
        Err(e) => return Err(Error::io("open", &p, e)),
    };
    let mut len = f.size().ctx("stat", &p)?;
    if len > 0 {
        let head = fs.read_at(&p, 0, crate::format::ledger::HEADER_LEN as u64).ctx("read", &p)?;
        if codec::decode_header(&head).is_err() {
            drop(f);
            let aside = d.join(format!("{domain}.damaged.{}", crate::util::now()));
            fs.rename_noreplace(&p, &aside).ctx("move aside", &p)?;
            f = fs.create_new(&p).ctx("create", &p)?;
            created = true;
            len = 0;
        }
    }
    let mut out = Vec::new();
    if len == 0 {
        out.extend_from_slice(&codec::encode_header(crate::util::now()));
    }
    out.extend_from_slice(&body);
    f.write_at(len, &out).ctx("write", &p)?;
    crate::fs::sync_file(&mut *f, durability).ctx("sync", &p)?;
    if created {
        crate::fs::sync_dir(fs, d, durability).ctx("sync directory", d)?;
    }
    Ok(())
}

/// The losses still outstanding, in the order they were first recorded: `LOST` and
/// `RECREATED` entries with no later `RECOVERED` or `ACKNOWLEDGED` entry of the same key.
/// A loss recorded twice (a crash between the ledger and the repair) counts once.
pub fn outstanding(entries: &[Entry]) -> Vec<&Entry> {
    let mut open: HashMap<Key, usize> = HashMap::new();
    let mut order: Vec<Option<&Entry>> = Vec::new();
    for e in entries {
        match e.kind {
            Kind::Lost | Kind::Recreated => {
                open.entry(e.key()).or_insert_with(|| {
                    order.push(Some(e));
                    order.len() - 1
                });
            }
            Kind::Recovered | Kind::Acknowledged => {
                if let Some(i) = open.remove(&e.key()) {
                    order[i] = None;
                }
            }
        }
    }
    order.into_iter().flatten().collect()
}

/// Domains that have a ledger, sorted.
pub fn domains(config: &Config) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir(config)) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.contains(".damaged.") && !n.starts_with("ms.tmp."))
        .collect();
    v.sort();
    v
}

/// The entry that resolves `e`: `kind` (recovered or acknowledged) now, with `note`.
pub fn resolution(e: &Entry, kind: Kind, note: &str, new_uid_validity: u32, new_uid: u32) -> Entry {
    Entry {
        kind,
        reason: Reason::None,
        when: crate::util::now(),
        new_uid_validity,
        new_uid,
        note: note.to_string(),
        ..e.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::index::MessageRecord;

    fn lost(uid: u32, hash: u8) -> Entry {
        Entry {
            kind: Kind::Lost,
            reason: Reason::Gone,
            when: 1,
            unique_id: [1; 16],
            uid_validity: 5,
            new_uid_validity: 0,
            new_uid: 0,
            record: MessageRecord { uid, content_hash: [hash; 32], size: 10, ..MessageRecord::default() },
            domain: "example.com".into(),
            mailbox: "user/joe".into(),
            flag_names: vec![],
            note: String::new(),
        }
    }

    #[test]
    fn outstanding_skips_resolved_and_duplicate_losses() {
        let a = lost(1, 1);
        let b = lost(2, 2);
        let c = lost(3, 3);
        let entries = vec![
            a.clone(),
            b.clone(),
            a.clone(),
            resolution(&b, Kind::Recovered, "from backup", 5, 2),
            c.clone(),
            resolution(&lost(3, 9), Kind::Acknowledged, "other content: not this loss", 0, 0),
        ];
        let out = outstanding(&entries);
        assert_eq!(out.iter().map(|e| e.record.uid).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn append_creates_reads_back_and_moves_a_damaged_file_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("ledger");
        append_at(&RealFs, &d, "example.com", &[lost(1, 1)], Durability::NoSync).expect("append");
        append_at(&RealFs, &d, "example.com", &[lost(2, 2), lost(3, 3)], Durability::NoSync).expect("append");
        let l = read_file(&d.join("example.com")).expect("read").expect("exists");
        assert_eq!(l.entries.iter().map(|e| e.record.uid).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(l.damage.is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("example.com")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777 & !0o640, 0, "mode {mode:o}");

        std::fs::write(d.join("example.com"), b"not a ledger at all, but evidence").expect("write");
        assert!(read_file(&d.join("example.com")).is_err());
        append_at(&RealFs, &d, "example.com", &[lost(4, 4)], Durability::NoSync).expect("append");
        let l = read_file(&d.join("example.com")).expect("read").expect("exists");
        assert_eq!(l.entries.len(), 1);
        let aside: Vec<_> = std::fs::read_dir(&d)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("example.com.damaged."))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).expect("read"), b"not a ledger at all, but evidence");
    }

    #[test]
    fn a_symlinked_ledger_is_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("ledger");
        std::fs::create_dir(&d).expect("mkdir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"root's file").expect("write");
        std::os::unix::fs::symlink(&victim, d.join("example.com")).expect("symlink");
        assert!(append_at(&RealFs, &d, "example.com", &[lost(1, 1)], Durability::NoSync).is_err());
        assert!(read_file(&d.join("example.com")).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"root's file");
    }

    #[test]
    fn a_fifo_in_place_of_a_ledger_is_refused_without_blocking() {
        // The runtime user can put a FIFO where a ledger belongs: verify (as root) must
        // not wait on it forever.
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("example.com");
        rustix::fs::mknodat(rustix::fs::CWD, &p, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o666), 0)
            .expect("mkfifo");
        let e = read_file(&p).expect_err("a FIFO is not a ledger");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
