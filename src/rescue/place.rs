//! Putting files back: the only part of salvage that writes before reconstruct runs, and
//! the part that may run as root (a `lost+found` is root's). Everything goes through
//! directory descriptors opened step by step from a partition root with `O_NOFOLLOW`
//! (a mailbox directory the runtime user swapped for a link is refused, never followed);
//! files are created `O_CREAT|O_EXCL|O_NOFOLLOW` under unpredictable names with explicit
//! modes and owners set through the descriptor, renamed into place with
//! `RENAME_NOREPLACE`: no message file is ever overwritten or deleted; a damaged one is
//! moved into `ms.quarantine/` first.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, RenameFlags};

use super::plan::{How, Placement, Plan};
use super::survey::Survey;
use super::tree::{self, Dir};
use crate::io::Durability;
use crate::layout::{self, MailboxName};

/// Owner and group to give what is created (set when running as root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What happened to one placement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Put back.
    Placed {
        /// Moved or copied.
        how: How,
    },
    /// The same bytes were already there (an earlier run put them back).
    AlreadyThere,
    /// Not put back.
    Failed {
        /// Why.
        error: String,
    },
}

fn io_err(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

/// Set a file's modification (and access) time through its descriptor.
fn set_mtime(f: &std::fs::File, secs: i64) -> std::io::Result<()> {
    let ts = rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 };
    rustix::fs::futimens(f, &rustix::fs::Timestamps { last_access: ts, last_modification: ts }).map_err(io_err)
}

/// Apply owner and mode through a descriptor.
fn own(fd: impl AsFd, owner: Option<Owner>, mode: u32) -> std::io::Result<()> {
    if let Some(o) = owner {
        rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(o.uid)), Some(rustix::fs::Gid::from_raw(o.gid)))
            .map_err(io_err)?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err)
}

/// Open (creating as needed, mode 0750, given to `owner`) the directory at `comps` below
/// the directory `root`: every component through `O_NOFOLLOW`, never another mount.
pub fn make_dirs(root: &Dir, comps: &[OsString], owner: Option<Owner>, durability: Durability) -> std::io::Result<Dir> {
    let mut d = root.sub(OsStr::new("."))?;
    for c in comps {
        match d.sub(c) {
            Ok(next) => d = next,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cn = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(c.as_os_str()))
                    .map_err(|_| std::io::Error::other("NUL in a name"))?;
                match rustix::fs::mkdirat(d.fd(), cn.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let next = d.sub(c)?;
                own(next.fd(), owner, 0o750)?;
                if durability == Durability::Sync {
                    rustix::fs::fsync(d.fd()).map_err(io_err)?;
                }
                d = next;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(d)
}

/// Open the directory `path`, creating what is missing of it (from its nearest existing
/// ancestor, mode 0750, given to `owner`).
pub fn ensure_dir(path: &Path, owner: Option<Owner>, durability: Durability) -> std::io::Result<Dir> {
    let existing = path.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let rest: Vec<OsString> = path
        .strip_prefix(existing)
        .map_err(|_| std::io::Error::other("bad path"))?
        .iter()
        .map(OsStr::to_os_string)
        .collect();
    let root = Dir::open(existing)?;
    make_dirs(&root, &rest, owner, durability)
}

/// The directory of a mailbox below its partition root, as components.
pub fn mailbox_components(domain: &str, name: &MailboxName) -> Vec<OsString> {
    std::iter::once(OsString::from(domain)).chain(name.relative_dir().iter().map(OsStr::to_os_string)).collect()
}

/// A fresh unpredictable temporary name (`ms.tmp.rescue.<random>`).
fn temp_name() -> String {
    format!("{}{}", super::state::TEMP_PREFIX, crate::util::hex(&crate::util::random_id()))
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

/// Move the file `name` of `dir` into `dir/ms.quarantine/` under a name not in use.
fn set_aside(dir: &Dir, name: &str, owner: Option<Owner>, durability: Durability) -> std::io::Result<String> {
    let q = make_dirs(dir, &[OsString::from(layout::QUARANTINE_DIR)], owner, durability)?;
    for i in 0.. {
        let target = if i == 0 { format!("{name}rescue") } else { format!("{name}rescue.{i}") };
        match rustix::fs::renameat_with(
            dir.fd(),
            cstr(name).as_c_str(),
            q.fd(),
            cstr(&target).as_c_str(),
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                if durability == Durability::Sync {
                    rustix::fs::fsync(q.fd()).map_err(io_err)?;
                }
                return Ok(format!("{}/{target}", layout::QUARANTINE_DIR));
            }
            Err(rustix::io::Errno::EXIST) if i < 10_000 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns")
}

/// The BLAKE3 of the message file `name` in `dir`, if it is there.
fn hash_at(dir: &Dir, name: &str) -> Option<[u8; 32]> {
    let (f, m) = dir.open_file(OsStr::new(name)).ok()?;
    let b = crate::io::read_file_at(&f, m.size, crate::io::Map::Allow).ok()?;
    Some(crate::store::derive::content_hash(&b))
}

/// A message file already in place (a run killed after putting it back): its owner and
/// mode made right through its descriptor.
fn already_there(dir: &Dir, name: &str, owner: Option<Owner>) -> std::io::Result<Outcome> {
    let (f, m) = dir.open_file(OsStr::new(name))?;
    if m.nlink == 1 {
        own(&f, owner, 0o640)?;
    }
    Ok(Outcome::AlreadyThere)
}

/// Files `ms.tmp.rescue.*` a killed copy left in a mailbox directory: set aside into
/// `ms.quarantine/` (never deleted: the name is not proof of who made them).
fn set_aside_stale_temps(dir: &Dir, owner: Option<Owner>, durability: Durability) -> std::io::Result<u64> {
    let mut n = 0;
    for name in dir.names()? {
        if let Some(name) = name.to_str().filter(|n| n.starts_with(super::state::TEMP_PREFIX)) {
            set_aside(dir, name, owner, durability)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Put one file back into the open mailbox directory `tgt`.
fn place_one(
    s: &Survey,
    p: &Placement,
    preloaded: &std::collections::HashMap<usize, Vec<u8>>,
    tgt: &Dir,
    owner: Option<Owner>,
    durability: Durability,
) -> std::io::Result<Outcome> {
    let c = &s.candidates[p.candidate];
    let name = layout::message_file_name(p.uid);
    // The UID's file already there: the same bytes (a run killed after putting it back),
    // or another message's (damaged: set aside first, if the plan says so).
    if let Some(h) = hash_at(tgt, &name) {
        if h == p.hash {
            return already_there(tgt, &name, owner);
        }
        if !p.set_aside {
            return Ok(Outcome::Failed { error: format!("{name} is in use by another message") });
        }
        set_aside(tgt, &name, owner, durability)?;
    }
    if let Some(off) = c.offset {
        let bytes = match preloaded.get(&p.candidate) {
            Some(b) => b.clone(),
            None => super::carve::read_extent(&s.sources[c.source].path, off, p.size)?,
        };
        return write_copy(tgt, &name, &bytes, p, owner, durability);
    }
    let root = s.sources[c.source].dir.as_ref().ok_or_else(|| std::io::Error::other("source not open"))?;
    let src_dir = tree::descend(root, &c.rel[..c.rel.len() - 1])?;
    let src_name = c.rel.last().cloned().unwrap_or_default();
    if p.how == How::Move {
        // Only the very file surveyed: same inode, same size. Its owner, mode and date are
        // set (through its descriptor) before it moves, so a file in a mailbox is never
        // root's, even when a kill falls right after the rename.
        let (sf, m) = src_dir.open_file(&src_name)?;
        if m.ino == c.meta.ino && m.size == p.size && m.nlink == 1 {
            own(&sf, owner, 0o640)?;
            set_mtime(&sf, p.mtime)?;
            let sn = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(src_name.as_os_str()))
                .map_err(|_| std::io::Error::other("NUL in a name"))?;
            match rustix::fs::renameat_with(
                src_dir.fd(),
                sn.as_c_str(),
                tgt.fd(),
                cstr(&name).as_c_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    if durability == Durability::Sync {
                        rustix::fs::fsync(src_dir.fd()).map_err(io_err)?;
                    }
                    return Ok(Outcome::Placed { how: How::Move });
                }
                Err(rustix::io::Errno::XDEV) => {}
                Err(rustix::io::Errno::EXIST) => {
                    return Ok(if hash_at(tgt, &name) == Some(p.hash) {
                        Outcome::AlreadyThere
                    } else {
                        Outcome::Failed { error: format!("{name} appeared meanwhile") }
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Copy: read, check the bytes are still the ones surveyed, write a new file.
    let (f, m) = src_dir.open_file(&src_name)?;
    let bytes = crate::io::read_file_at(&f, m.size, crate::io::Map::Allow)?;
    write_copy(tgt, &name, &bytes, p, owner, durability)
}

/// Write `bytes` as the message file `name` of `tgt`: a new file under an unpredictable
/// name, checked against the placement's size and BLAKE3, synced, renamed into place
/// without replacing anything.
fn write_copy(
    tgt: &Dir,
    name: &str,
    bytes: &[u8],
    p: &Placement,
    owner: Option<Owner>,
    durability: Durability,
) -> std::io::Result<Outcome> {
    if bytes.len() as u64 != p.size || crate::store::derive::content_hash(bytes) != p.hash {
        return Ok(Outcome::Failed { error: "the bytes changed since they were surveyed".into() });
    }
    let tmp = temp_name();
    let fd = rustix::fs::openat(
        tgt.fd(),
        cstr(&tmp).as_c_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut out = std::fs::File::from(fd);
    let written = (|| -> std::io::Result<()> {
        out.write_all(bytes)?;
        own(&out, owner, 0o640)?;
        set_mtime(&out, p.mtime)?;
        if durability == Durability::Sync {
            out.sync_all()?;
        }
        rustix::fs::renameat_with(
            tgt.fd(),
            cstr(&tmp).as_c_str(),
            tgt.fd(),
            cstr(name).as_c_str(),
            RenameFlags::NOREPLACE,
        )
        .map_err(io_err)
    })();
    match written {
        Ok(()) => Ok(Outcome::Placed { how: How::Copy }),
        Err(e) => {
            // Our own temporary file, never renamed into place.
            let _ = rustix::fs::unlinkat(tgt.fd(), cstr(&tmp).as_c_str(), rustix::fs::AtFlags::empty());
            if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) && hash_at(tgt, name) == Some(p.hash) {
                return Ok(Outcome::AlreadyThere);
            }
            Err(e)
        }
    }
}

/// Carry out every placement of `plan` (in order), mailbox by mailbox; the outcome of each.
pub fn place_all(
    config: &crate::config::Config,
    s: &Survey,
    plan: &Plan,
    preloaded: &std::collections::HashMap<usize, Vec<u8>>,
    owner: Option<Owner>,
) -> Vec<Outcome> {
    let durability = config.durability;
    let mut out: Vec<Outcome> = vec![Outcome::AlreadyThere; plan.placements.len()];
    let mut by_target: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, p) in plan.placements.iter().enumerate() {
        by_target.entry(p.target).or_default().push(i);
    }
    for (t, ps) in by_target {
        let target = &plan.targets[t];
        let opened = config
            .partition(&target.partition)
            .ok_or_else(|| std::io::Error::other(format!("no partition {}", target.partition)))
            .and_then(|root| ensure_dir(root, owner, durability))
            .and_then(|root| make_dirs(&root, &mailbox_components(&target.domain, &target.name), owner, durability));
        let tgt = match opened {
            Ok(d) => d,
            Err(e) => {
                for i in ps {
                    out[i] = Outcome::Failed { error: format!("mailbox directory {}: {e}", target.dir.display()) };
                }
                continue;
            }
        };
        if let Err(e) = set_aside_stale_temps(&tgt, owner, durability) {
            for i in ps {
                out[i] = Outcome::Failed { error: format!("mailbox directory {}: {e}", target.dir.display()) };
            }
            continue;
        }
        for i in ps {
            out[i] = match place_one(s, &plan.placements[i], preloaded, &tgt, owner, durability) {
                Ok(o) => o,
                Err(e) => Outcome::Failed { error: e.to_string() },
            };
            super::state::step();
        }
        if durability == Durability::Sync {
            let _ = rustix::fs::fsync(tgt.fd());
        }
    }
    out
}

/// Bring a database home back from database files found in a tree, when the home is
/// missing: the snapshots and log segments of the one directory that holds the most of
/// them are copied under the names they had. Returns what was restored, or why not.
pub fn restore_db_home(
    config: &crate::config::Config,
    s: &Survey,
    owner: Option<Owner>,
) -> Option<Result<Vec<PathBuf>, String>> {
    let home = &config.database_path;
    if home.exists() || s.db_files.is_empty() {
        return None;
    }
    // The directory with the most database files (a whole `database/` that fsck moved).
    let mut groups: std::collections::BTreeMap<(usize, Vec<OsString>), Vec<usize>> = Default::default();
    for (i, f) in s.db_files.iter().enumerate() {
        groups.entry((f.source, f.rel[..f.rel.len() - 1].to_vec())).or_default().push(i);
    }
    let (_, files) = groups.into_iter().max_by_key(|(_, v)| v.len())?;
    // Built under a temporary name beside it and renamed into place whole: a kill leaves
    // either no home (the next run builds it again) or a complete one.
    let parent = home.parent().unwrap_or(Path::new("/"));
    let home_name = home.file_name().map(OsStr::to_os_string).unwrap_or_default();
    let staging = temp_name();
    let result = (|| -> std::io::Result<Vec<PathBuf>> {
        let pdir = ensure_dir(parent, owner, config.durability)?;
        let hdir = make_dirs(&pdir, &[OsString::from(&staging)], owner, config.durability)?;
        let mut done = Vec::new();
        for i in files {
            let f = &s.db_files[i];
            let root = s.sources[f.source].dir.as_ref().ok_or_else(|| std::io::Error::other("source not open"))?;
            let sdir = tree::descend(root, &f.rel[..f.rel.len() - 1])?;
            let (src, m) = sdir.open_file(f.rel.last().map(OsString::as_os_str).unwrap_or_default())?;
            let bytes = crate::io::read_file_at(&src, m.size, crate::io::Map::Allow)?;
            let tmp = temp_name();
            let fd = rustix::fs::openat(
                hdir.fd(),
                cstr(&tmp).as_c_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut out = std::fs::File::from(fd);
            out.write_all(&bytes)?;
            own(&out, owner, 0o640)?;
            if config.durability == Durability::Sync {
                out.sync_all()?;
            }
            match rustix::fs::renameat_with(
                hdir.fd(),
                cstr(&tmp).as_c_str(),
                hdir.fd(),
                cstr(&f.home_name).as_c_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    done.push(home.join(&f.home_name));
                    super::state::step();
                }
                Err(e) => {
                    let _ = rustix::fs::unlinkat(hdir.fd(), cstr(&tmp).as_c_str(), rustix::fs::AtFlags::empty());
                    if e != rustix::io::Errno::EXIST {
                        return Err(e.into());
                    }
                }
            }
        }
        if config.durability == Durability::Sync {
            rustix::fs::fsync(hdir.fd()).map_err(io_err)?;
        }
        let hn = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(home_name.as_os_str()))
            .map_err(|_| std::io::Error::other("NUL in a name"))?;
        rustix::fs::renameat_with(
            pdir.fd(),
            cstr(&staging).as_c_str(),
            pdir.fd(),
            hn.as_c_str(),
            RenameFlags::NOREPLACE,
        )
        .map_err(io_err)?;
        if config.durability == Durability::Sync {
            rustix::fs::fsync(pdir.fd()).map_err(io_err)?;
        }
        Ok(done)
    })();
    Some(result.map_err(|e| format!("database home {}: {e}", home.display())))
}
