//! `mstore doctor`: the permissions and configuration doctor.
//!
//! Checks that the runtime user and group exist; that `ms.conf` is readable by that user
//! and, when root runs the doctor, whether a non-root user can change what it says; the
//! configuration itself (partitions that do not exist, are not directories, overlap, or
//! are system directories; ms-path missing); and owner, group and mode of everything
//! inside ms-path, the database home, the backup directory and every partition. `--fix`,
//! as root, gives what the store's layout accounts for to the runtime user.
//!
//! # Why the walk is written the way it is
//!
//! `--fix` runs as root over trees the runtime user (and whoever else can write there)
//! controls. So (ARCHITECTURE.md, "Privileges"):
//!
//! - every root is opened component by component with `O_NOFOLLOW|O_DIRECTORY`, and the
//!   walk descends with `openat(O_NOFOLLOW|O_DIRECTORY)` from directory descriptors: a
//!   directory swapped for a symlink during the walk fails to open instead of leading out;
//! - owners and modes are changed through descriptors (`fchown`/`fchmod` on the opened
//!   directory; for a file, an `O_PATH|O_NOFOLLOW` descriptor checked with `fstat`, then
//!   reopened through `/proc/self/fd`), never by path;
//! - a symlink is reported and never followed or changed; a file with more than one link
//!   is reported and never changed (a hard link to a root-owned file must not become the
//!   runtime user's); a directory on another mount (device or mount id differs) is
//!   reported and not entered;
//! - only what the layout accounts for is changed: mailbox directories, message files,
//!   the store's own files, database files, backups, the listing cache. A root that is a
//!   system directory (`/`, `/etc`, `/usr`, `/home`, ...) or holds anything else is
//!   reported and not changed at all, so whoever can write `ms.conf` cannot point root's
//!   `--fix` at a tree of their choosing;
//! - `ms.conf` is never changed: the doctor says who can write it and what to type.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, StatxFlags};

use crate::config::Config;
use crate::finding::{Finding, Severity};
use crate::layout::{self, EntryKind};
use crate::privs::{self, RuntimeIds};
use crate::util::shell_quote;

/// What the doctor found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DoctorReport {
    /// Everything wrong, root-owned files first.
    pub findings: Vec<Finding>,
    /// The commands that repair the ownership and mode findings.
    pub fixes: Vec<String>,
    /// Files and directories checked.
    pub checked: u64,
}

impl DoctorReport {
    /// Whether any finding is an error (warnings alone leave the exit status 0).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Findings of one kind listed at most; the rest are counted in one more finding.
const MAX_PER_KIND: usize = 1000;
/// Deepest directory level entered below a root (mailbox hierarchies are far shallower).
const MAX_DEPTH: usize = 128;

/// Directories a store root must never be: changing owners there would hand the system
/// to the runtime user. Any root that resolves to one of these is reported, never walked
/// for a fix.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/etc",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
    "/var/www",
];

/// Trees no store root may be anywhere inside: the system's own files (`/etc/sudoers.d`
/// or `/root/.ssh` are as dangerous to give away as `/etc` itself, even when empty).
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/usr",
    "/var/backups",
    "/var/cache",
    "/var/empty",
    "/var/lib",
    "/var/log",
];

/// Whether `canonical` (an absolute path without symlinks) is a system directory, or lies
/// inside a system tree.
pub fn is_system_dir(canonical: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|d| Path::new(d) == canonical) || SYSTEM_TREES.iter().any(|t| canonical.starts_with(t))
}

/// What a store root is for; decides what its layout accounts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RootKind {
    MsPath,
    Database,
    Backup,
    Partition,
}

impl RootKind {
    fn top(self) -> Ctx {
        match self {
            RootKind::MsPath => Ctx::MsPathTop,
            RootKind::Database => Ctx::DbTop,
            RootKind::Backup => Ctx::BackupTop,
            RootKind::Partition => Ctx::PartitionTop,
        }
    }
}

/// Where in the layout a directory is: decides which of its entries are accounted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// The top of ms-path (its other roots are walked on their own).
    MsPathTop,
    /// `ms-path/listings`: the listing cache files.
    Listings,
    /// The top of a partition: domain directories and `.deleted`.
    PartitionTop,
    /// A domain directory (or a mailbox directory): see [`layout::classify`].
    Mailbox,
    /// What the store moved aside (`ms.quarantine`, `.deleted`, a database quarantine):
    /// directories and regular files of any name.
    Aside,
    /// The database home.
    DbTop,
    /// The backup directory: one directory per backup.
    BackupTop,
    /// Inside one backup: database files.
    BackupDir,
}

/// What the layout says of one entry.
enum Accounted {
    /// A directory to enter, in this context.
    Dir(Ctx),
    /// A regular file of the store.
    File,
    /// Not ours to check (another root, `lost+found`, `ms.conf`).
    Skip,
    /// Not accounted for: why.
    Foreign(&'static str),
}

fn is_temp(name: &[u8]) -> bool {
    name.starts_with(b"ms.tmp.")
}

fn db_file(name: &[u8]) -> bool {
    name.ends_with(b".db")
        || name.starts_with(crate::db::log::SEGMENT_PREFIX.as_bytes())
        || name == crate::db::install::MARKER.as_bytes()
        || name == crate::db::backup::MANIFEST.as_bytes()
        || name.starts_with(b"install.")
        || is_temp(name)
}

fn account(ctx: Ctx, name: &[u8], is_dir: bool) -> Accounted {
    use Accounted::*;
    let dir_or = |c: Ctx, why: &'static str| if is_dir { Dir(c) } else { Foreign(why) };
    let file_or = |why: &'static str| if is_dir { Foreign(why) } else { File };
    match ctx {
        Ctx::MsPathTop => match name {
            b"lost+found" => Skip,
            // The state of a salvage or rescue: its runner's own (root's, 0700), which it
            // checks itself; given to the runtime user it would no longer be trusted.
            n if n == crate::rescue::state::DIR.as_bytes() => Skip,
            b"listings" => dir_or(Ctx::Listings, "ms-path/listings is not a directory"),
            _ => Foreign("not part of the store's layout"),
        },
        Ctx::Listings => file_or("a directory in the listing cache"),
        Ctx::PartitionTop => {
            if name == b"lost+found" {
                return Skip;
            }
            if name == layout::DELETED_DIR.as_bytes() {
                return dir_or(Ctx::Aside, "a file named like the deleted-mailbox directory");
            }
            let is_domain = std::str::from_utf8(name).ok().and_then(|n| layout::domain(n).ok()).as_deref()
                == std::str::from_utf8(name).ok();
            if is_domain {
                dir_or(Ctx::Mailbox, "a file where domain directories belong")
            } else {
                Foreign("not a domain directory")
            }
        }
        Ctx::Mailbox => match layout::classify(name) {
            EntryKind::Message(_) => file_or("a directory named like a message file"),
            EntryKind::Temp => file_or("a directory named like a temporary file"),
            EntryKind::StoreFile if name == layout::QUARANTINE_DIR.as_bytes() => {
                dir_or(Ctx::Aside, "ms.quarantine is not a directory")
            }
            EntryKind::StoreFile => file_or("a directory named like a store file"),
            EntryKind::SubMailbox => dir_or(Ctx::Mailbox, "a file named like a mailbox directory"),
            EntryKind::Stray => Foreign("a stray file in a mailbox directory"),
        },
        Ctx::Aside => {
            if is_dir {
                Dir(Ctx::Aside)
            } else {
                File
            }
        }
        Ctx::DbTop => {
            if name == crate::db::install::QUARANTINE.as_bytes() {
                dir_or(Ctx::Aside, "a file named like the database quarantine")
            } else if db_file(name) {
                file_or("a directory named like a database file")
            } else {
                Foreign("not a database file")
            }
        }
        Ctx::BackupTop => {
            if name == b"lost+found" {
                Skip
            } else {
                dir_or(Ctx::BackupDir, "a file where backup directories belong")
            }
        }
        Ctx::BackupDir => {
            if name == crate::db::install::QUARANTINE.as_bytes() {
                dir_or(Ctx::Aside, "a file named like the database quarantine")
            } else if db_file(name) {
                file_or("a directory named like a database file")
            } else {
                Foreign("not a database or backup file")
            }
        }
    }
}

/// One store root, opened.
struct Root {
    /// Kinds (ms-path may also be a partition, ...).
    kinds: Vec<RootKind>,
    /// As configured.
    path: PathBuf,
    /// The descriptor of the directory, opened without following a link below `/`.
    fd: OwnedFd,
    /// Its device and mount.
    dev: u64,
    mnt_id: Option<u64>,
    ino: u64,
    /// Its place in the list of roots.
    index: usize,
}

/// Every directory the configuration names as part of the store, with its kind.
fn configured_roots(config: &Config) -> Vec<(RootKind, String, PathBuf)> {
    let mut v = vec![
        (RootKind::MsPath, "ms-path".to_string(), config.ms_path.clone()),
        (RootKind::Database, "database-path".to_string(), config.database_path.clone()),
        (RootKind::Backup, "backup-path".to_string(), config.backup_path.clone()),
    ];
    for (name, dir) in &config.partitions {
        v.push((RootKind::Partition, format!("partition-{name}"), dir.clone()));
    }
    v
}

/// The roots the store owns: ms-path, the database home, backups, every partition (each
/// once, outermost first).
pub fn store_roots(config: &Config) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = configured_roots(config).into_iter().map(|r| r.2).collect();
    roots.sort();
    roots.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for r in roots {
        if !out.iter().any(|o| r.starts_with(o)) {
            out.push(r);
        }
    }
    out
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// Open the directory `canonical` (absolute, no `..`) from `/`, one component at a time,
/// never following a link.
fn open_dir_nofollow(canonical: &Path) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open("/", flags, Mode::empty()).map_err(errno)?;
    for c in canonical.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(name) => fd = rustix::fs::openat(&fd, name, flags, Mode::empty()).map_err(errno)?,
            _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not canonical")),
        }
    }
    Ok(fd)
}

/// A new open file description of the directory `fd` (its own read position: a `dup`
/// would share the position, and a second walk would read nothing).
fn reopen_dir(fd: BorrowedFd<'_>) -> Option<OwnedFd> {
    rustix::fs::openat(fd, c".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()
}

fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).ok()?;
    (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id)
}

/// An owner or mode to repair.
#[derive(Clone, Debug)]
struct Offender {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    root: usize,
    wrong_owner: bool,
    lacks: bool,
    world: bool,
}

/// What one walk gathers.
struct Walk<'a> {
    ids: &'a RuntimeIds,
    conf: String,
    config_id: Option<(u64, u64)>,
    /// Partitions as walked (for the mailbox of a stray file).
    partitions: Vec<PathBuf>,
    fix: bool,
    /// (dev, ino) of every root, so a root inside another is walked once, as itself.
    root_ids: Vec<(u64, u64)>,
    offenders: Vec<Offender>,
    findings: Vec<(usize, Finding)>,
    /// Roots holding something the layout does not account for (never changed).
    unsafe_roots: Vec<bool>,
    checked: u64,
    changed: u64,
    errors: Vec<String>,
}

impl Walk<'_> {
    fn finding(&mut self, root: usize, f: Finding) {
        self.findings.push((root, f));
    }

    fn foreign(&mut self, root: usize, path: &Path, why: &str, what: &str, mailbox_dir: Option<&Path>) {
        self.unsafe_roots[root] = true;
        let q = shell_quote(&path.to_string_lossy());
        let fix = match mailbox_dir {
            Some(_) if why.starts_with("a stray") => {
                format!("reconstruct -f {} --quarantine {}", shell_quote(&self.conf), self.mailbox_args(path))
            }
            _ => format!("mv -- {q} /root/"),
        };
        self.finding(
            root,
            Finding::at(
                Severity::Error,
                "foreign",
                path.display().to_string(),
                format!(
                    "{what}: {why}; the doctor changes nothing in a tree holding what the store's layout does not account for: move it out of the store"
                ),
            )
            .fix(fix),
        );
    }

    /// `DOMAIN MAILBOX` of a file in a mailbox directory, for a reconstruct command.
    fn mailbox_args(&self, path: &Path) -> String {
        // PARTITION/DOMAIN/a/b/FILE: the domain is the first component below a partition.
        let parent = path.parent().unwrap_or(path);
        for part in &self.partitions {
            if let Ok(rest) = parent.strip_prefix(part) {
                let comps: Vec<String> =
                    rest.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                if let Some((domain, mailbox)) = comps.split_first() {
                    if let Some(name) = layout::MailboxName::from_dir_components(mailbox.iter().map(String::as_str)) {
                        return format!("{} {}", shell_quote(domain), shell_quote(name.as_str()));
                    }
                }
            }
        }
        "DOMAIN MAILBOX".into()
    }

    /// Check (and with `fix`, repair) the entries of the directory `dir` (at `path`).
    fn walk_dir(&mut self, root: &Root, dir: OwnedFd, path: &Path, ctx: Ctx, depth: usize) {
        let ri = root.index;
        if depth > MAX_DEPTH {
            self.finding(
                ri,
                Finding::at(
                    Severity::Warning,
                    "too-deep",
                    path.display().to_string(),
                    format!("more than {MAX_DEPTH} directory levels: not checked below"),
                ),
            );
            return;
        }
        let mut names: Vec<CString> = Vec::new();
        match Dir::new(dir) {
            Ok(mut d) => {
                while let Some(e) = d.read() {
                    match e {
                        Ok(e) => {
                            let n = e.file_name();
                            if n != c"." && n != c".." {
                                names.push(n.to_owned());
                            }
                        }
                        Err(e) => {
                            self.errors.push(format!("{}: {}", path.display(), errno(e)));
                            break;
                        }
                    }
                }
                names.sort();
                let Ok(dfd) = d.fd() else { return };
                for name in names {
                    self.entry(root, dfd, path, &name, ctx, depth);
                }
            }
            Err(e) => self.errors.push(format!("{}: {}", path.display(), errno(e))),
        }
    }

    fn entry(&mut self, root: &Root, dfd: BorrowedFd<'_>, parent: &Path, name: &CStr, ctx: Ctx, depth: usize) {
        let ri = root.index;
        let bytes = name.to_bytes();
        let path = parent.join(OsStr::from_bytes(bytes));
        let Ok(st) = rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW) else { return };
        self.checked += 1;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Symlink {
            let target = rustix::fs::readlinkat(dfd, name, Vec::new())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            self.finding(
                ri,
                Finding::at(
                    Severity::Error,
                    "symlink",
                    path.display().to_string(),
                    format!(
                        "a symbolic link (to {target}) inside the store: the store never makes links and none is followed; if {target} holds mail, move it here in place of the link"
                    ),
                )
                .fix(format!("rm -- {}", shell_quote(&path.to_string_lossy()))),
            );
            return;
        }
        if ctx == Ctx::MsPathTop && self.config_id == Some((st.st_dev, st.st_ino)) {
            return; // ms.conf: checked on its own, never changed here
        }
        if ft == FileType::Directory && self.root_ids.contains(&(st.st_dev, st.st_ino)) {
            return; // another root: walked on its own
        }
        let is_dir = ft == FileType::Directory;
        if !is_dir && ft != FileType::RegularFile {
            let what = match ft {
                FileType::Fifo => "a FIFO",
                FileType::Socket => "a socket",
                FileType::CharacterDevice => "a character device",
                FileType::BlockDevice => "a block device",
                _ => "a special file",
            };
            self.foreign(ri, &path, "not a regular file", what, (ctx == Ctx::Mailbox).then_some(parent));
            return;
        }
        match account(ctx, bytes, is_dir) {
            Accounted::Skip => {}
            Accounted::Foreign(why) => {
                let what = if is_dir { "a directory" } else { "a file" };
                self.foreign(ri, &path, why, what, (ctx == Ctx::Mailbox).then_some(parent));
            }
            Accounted::File => self.file_entry(ri, dfd, name, &st, &path),
            Accounted::Dir(sub) => self.dir_entry(root, dfd, name, &path, sub, depth),
        }
    }

    /// A regular file the layout accounts for: reported if another name shares it, else
    /// judged (and fixed through a descriptor).
    fn file_entry(&mut self, ri: usize, dfd: BorrowedFd<'_>, name: &CStr, st: &Stat, path: &Path) {
        if st.st_nlink > 1 {
            self.finding(
                ri,
                Finding::at(
                    Severity::Error,
                    "hard-link",
                    path.display().to_string(),
                    format!(
                        "a file with {} links (uid {} gid {} mode {:04o}): the store never hard links a file, and the doctor never changes one that another name shares; unless it is a message that a hard-link backup also holds (find / -xdev -samefile PATH shows the other names), remove this name",
                        st.st_nlink,
                        st.st_uid,
                        st.st_gid,
                        st.st_mode & 0o7777
                    ),
                )
                .fix(format!("rm -- {}", shell_quote(&path.to_string_lossy()))),
            );
            return;
        }
        if let Some(o) = self.judge(st, false, path, ri) {
            if self.fix && !self.unsafe_roots[ri] {
                self.fix_file(dfd, name, st, &o);
            }
            self.offenders.push(o);
        }
    }

    /// A directory the layout accounts for: opened `O_NOFOLLOW`, never across a mount,
    /// judged (and fixed) through its descriptor, then walked.
    fn dir_entry(&mut self, root: &Root, dfd: BorrowedFd<'_>, name: &CStr, path: &Path, sub: Ctx, depth: usize) {
        let ri = root.index;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let Ok(fd) = rustix::fs::openat(dfd, name, flags, Mode::empty()) else { return };
        // The descriptor is the truth from here on (the name may have been swapped).
        let Ok(st) = rustix::fs::fstat(&fd) else { return };
        let other_mount =
            st.st_dev != root.dev || matches!((root.mnt_id, mount_id(fd.as_fd())), (Some(a), Some(b)) if a != b);
        if other_mount {
            self.finding(
                ri,
                Finding::at(
                    Severity::Warning,
                    "mount-point",
                    path.display().to_string(),
                    "another file system is mounted here: the doctor does not cross mount points; check it as a store root of its own (a partition) or unmount it",
                ),
            );
            return;
        }
        if self.root_ids.contains(&(st.st_dev, st.st_ino)) {
            return;
        }
        if let Some(o) = self.judge(&st, true, path, ri) {
            if self.fix && !self.unsafe_roots[ri] {
                self.fix_fd(fd.as_fd(), &st, &o);
            }
            self.offenders.push(o);
        }
        self.walk_dir(root, fd, path, sub, depth + 1);
    }

    /// Whether an entry needs its owner or mode changed.
    fn judge(&self, st: &Stat, is_dir: bool, path: &Path, root: usize) -> Option<Offender> {
        let mode = st.st_mode & 0o7777;
        let need = if is_dir { 0o700 } else { 0o600 };
        let wrong_owner = st.st_uid != self.ids.uid || st.st_gid != self.ids.gid;
        let lacks = mode & need != need;
        let world = if is_dir { mode & 0o002 != 0 } else { mode & 0o006 != 0 };
        (wrong_owner || lacks || world).then(|| Offender {
            path: path.to_path_buf(),
            uid: st.st_uid,
            gid: st.st_gid,
            mode,
            root,
            wrong_owner,
            lacks,
            world,
        })
    }

    fn new_mode(o: &Offender, is_dir: bool) -> u32 {
        if is_dir {
            (o.mode | 0o700) & !0o002
        } else {
            // No set-id bit and no access for others on a mail file.
            (o.mode | 0o600) & 0o770
        }
    }

    /// Repair through a directory descriptor.
    fn fix_fd(&mut self, fd: BorrowedFd<'_>, st: &Stat, o: &Offender) {
        if o.wrong_owner {
            let ids = (rustix::fs::Uid::from_raw(self.ids.uid), rustix::fs::Gid::from_raw(self.ids.gid));
            match rustix::fs::fchown(fd, Some(ids.0), Some(ids.1)) {
                Ok(()) => self.changed += 1,
                Err(e) => self.errors.push(format!("chown {}: {}", o.path.display(), errno(e))),
            }
        }
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        // chown clears set-id bits of files: take the mode again.
        let mode = rustix::fs::fstat(fd).map(|s| s.st_mode & 0o7777).unwrap_or(o.mode);
        let want = Walk::new_mode(&Offender { mode, ..o.clone() }, is_dir);
        if want != mode {
            match rustix::fs::fchmod(fd, Mode::from_raw_mode(want)) {
                Ok(()) => self.changed += 1,
                Err(e) => self.errors.push(format!("chmod {}: {}", o.path.display(), errno(e))),
            }
        }
    }

    /// Repair a regular file: an `O_PATH|O_NOFOLLOW` descriptor pins the inode; it must
    /// still be a regular file with one link, then it is reopened through
    /// `/proc/self/fd` (the same inode, no name involved) for `fchown`/`fchmod`.
    fn fix_file(&mut self, dfd: BorrowedFd<'_>, name: &CStr, seen: &Stat, o: &Offender) {
        let pinned =
            match rustix::fs::openat(dfd, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                Err(e) => {
                    self.errors.push(format!("open {}: {}", o.path.display(), errno(e)));
                    return;
                }
            };
        let Ok(st) = rustix::fs::fstat(&pinned) else { return };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || st.st_nlink != 1
            || (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino)
        {
            self.errors.push(format!("{}: changed while the doctor looked at it: left alone", o.path.display()));
            return;
        }
        let proc_path = format!("/proc/self/fd/{}", pinned.as_raw_fd());
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(proc_path.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                self.errors.push(format!("reopen {}: {}", o.path.display(), errno(e)));
                return;
            }
        };
        match rustix::fs::fstat(&fd) {
            Ok(again) if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino) => self.fix_fd(fd.as_fd(), &st, o),
            _ => self.errors.push(format!("{}: reopened file differs: left alone", o.path.display())),
        }
    }
}

/// Whether a non-root user can change the file `m` describes (owner, group or others).
fn writable_by_non_root(m: &std::fs::Metadata) -> Option<String> {
    let mode = m.mode();
    if m.uid() != 0 && mode & 0o200 != 0 {
        return Some(format!("its owner, {}", user_name(m.uid())));
    }
    if m.gid() != 0 && mode & 0o020 != 0 {
        return Some(format!("group {}", group_name(m.gid())));
    }
    if mode & 0o002 != 0 {
        return Some("every user".into());
    }
    None
}

/// Whether a non-root user can replace entries of the directory `m` describes.
fn dir_writable_by_non_root(m: &std::fs::Metadata) -> Option<String> {
    let mode = m.mode();
    if m.uid() != 0 && mode & 0o200 != 0 {
        return Some(format!("its owner, {}", user_name(m.uid())));
    }
    if m.gid() != 0 && mode & 0o020 != 0 && mode & 0o1000 == 0 {
        return Some(format!("group {}", group_name(m.gid())));
    }
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Some("every user".into());
    }
    None
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| format!("gid {gid}"))
}

/// When root runs the doctor: who besides root can change what `ms.conf` says (by
/// writing it, or by replacing it in a directory on its path).
pub fn config_writers(path: &Path) -> Option<(PathBuf, String)> {
    let m = std::fs::metadata(path).ok()?;
    if let Some(who) = writable_by_non_root(&m) {
        return Some((path.to_path_buf(), who));
    }
    let mut chains: Vec<PathBuf> = vec![std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())];
    if let Ok(c) = std::fs::canonicalize(path) {
        chains.push(c);
    }
    for p in chains {
        for dir in p.ancestors().skip(1) {
            if let Ok(dm) = std::fs::metadata(dir) {
                if let Some(who) = dir_writable_by_non_root(&dm) {
                    return Some((dir.to_path_buf(), who));
                }
            }
        }
    }
    None
}

/// Whether a run only looks, or also changes owners and modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Check,
    Fix,
}

/// Run every check.
pub fn check(config: &Config) -> DoctorReport {
    run(config, Act::Check).0
}

/// Apply the ownership and mode fixes (as root), through descriptors, to what the layout
/// accounts for inside roots that hold nothing else. Returns how many owners and modes
/// were changed.
pub fn fix(config: &Config) -> crate::Result<u64> {
    privs::resolve(config)?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(crate::Error::Invalid("mstore doctor --fix changes owners: run it as root".into()));
    }
    let (_, changed, errors) = run(config, Act::Fix);
    for e in errors {
        eprintln!("mstore doctor: {e}");
    }
    Ok(changed)
}

fn run(config: &Config, act: Act) -> (DoctorReport, u64, Vec<String>) {
    let mut rep = DoctorReport::default();
    let conf = config.path.display().to_string();
    let ids = match privs::resolve(config) {
        Ok(ids) => Some(ids),
        Err(e) => {
            rep.findings.push(
                Finding::at(Severity::Error, "runtime-user", conf.clone(), e.to_string())
                    .fix(format!("useradd --system --user-group {}", config.runtime_user)),
            );
            None
        }
    };
    check_configuration(config, &conf, &mut rep);
    let Some(ids) = ids else {
        return (rep, 0, Vec::new());
    };
    check_config_file(config, &conf, &ids, &mut rep);

    // Open every root (without following a link below `/`), refuse system directories.
    let mut roots: Vec<Root> = Vec::new();
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (kind, key, path) in configured_roots(config) {
        let Ok(canonical) = std::fs::canonicalize(&path) else { continue };
        if is_system_dir(&canonical) {
            rep.findings.push(
                Finding::at(
                    Severity::Error,
                    "unsafe-root",
                    path.display().to_string(),
                    format!(
                        "{key} is {}, a system directory or inside one: the doctor checks and changes nothing there; a store lives in a directory of its own",
                        canonical.display()
                    ),
                )
                .fix(format!("edit {}: set {key} to the store's own directory", shell_quote(&conf))),
            );
            continue;
        }
        if !canonical.is_dir() {
            continue;
        }
        if let Some(&i) = seen.get(&canonical) {
            roots[i].kinds.push(kind);
            continue;
        }
        match open_dir_nofollow(&canonical) {
            Ok(fd) => {
                let Ok(st) = rustix::fs::fstat(&fd) else { continue };
                let mnt_id = mount_id(fd.as_fd());
                seen.insert(canonical, roots.len());
                let index = roots.len();
                roots.push(Root { kinds: vec![kind], path, fd, dev: st.st_dev, mnt_id, ino: st.st_ino, index });
            }
            Err(e) => rep.findings.push(Finding::at(
                Severity::Error,
                "root-changed",
                path.display().to_string(),
                format!("{key} could not be opened without following a link ({e}): not checked"),
            )),
        }
    }
    let config_id = std::fs::metadata(&config.path).ok().map(|m| (m.dev(), m.ino()));
    let mut w = Walk {
        ids: &ids,
        conf: conf.clone(),
        config_id,
        partitions: roots.iter().filter(|r| r.kinds.contains(&RootKind::Partition)).map(|r| r.path.clone()).collect(),
        fix: act == Act::Fix,
        root_ids: roots.iter().map(|r| (r.dev, r.ino)).collect(),
        offenders: Vec::new(),
        findings: Vec::new(),
        unsafe_roots: vec![false; roots.len()],
        checked: 0,
        changed: 0,
        errors: Vec::new(),
    };
    // A fix first walks without changing anything, so a root found to hold what the
    // layout does not account for is left entirely alone.
    if act == Act::Fix {
        let mut probe = Walk { fix: false, ..w.clone_empty() };
        walk_roots(&mut probe, &roots);
        w.unsafe_roots = probe.unsafe_roots;
    }
    walk_roots(&mut w, &roots);
    let (changed, errors) = (w.changed, std::mem::take(&mut w.errors));
    rep.checked = w.checked;
    report_walk(&mut rep, w, &roots, &conf, &ids);
    (rep, changed, errors)
}

impl<'a> Walk<'a> {
    fn clone_empty(&self) -> Walk<'a> {
        Walk {
            ids: self.ids,
            conf: self.conf.clone(),
            config_id: self.config_id,
            partitions: self.partitions.clone(),
            fix: self.fix,
            root_ids: self.root_ids.clone(),
            offenders: Vec::new(),
            findings: Vec::new(),
            unsafe_roots: vec![false; self.unsafe_roots.len()],
            checked: 0,
            changed: 0,
            errors: Vec::new(),
        }
    }
}

fn walk_roots(w: &mut Walk<'_>, roots: &[Root]) {
    for (i, root) in roots.iter().enumerate() {
        let Ok(st) = rustix::fs::fstat(&root.fd) else { continue };
        w.checked += 1;
        if let Some(o) = w.judge(&st, true, &root.path, i) {
            w.offenders.push(o.clone());
            if w.fix && !w.unsafe_roots[i] {
                w.fix_fd(root.fd.as_fd(), &st, &o);
            }
        }
        // A root of several kinds accepts what any of them accounts for: walk it once
        // per kind, each pass entering only what that kind accounts for.
        let mut kinds = root.kinds.clone();
        kinds.sort();
        kinds.dedup();
        if kinds.len() == 1 {
            let Some(fd) = reopen_dir(root.fd.as_fd()) else { continue };
            w.walk_dir(root, fd, &root.path, kinds[0].top(), 0);
        } else {
            walk_multi(w, root, &kinds);
        }
    }
}

/// A root that is several roots at once (ms-path that is also a partition, ...): each
/// entry is judged by the first kind that accounts for it.
fn walk_multi(w: &mut Walk<'_>, root: &Root, kinds: &[RootKind]) {
    let Some(fd) = reopen_dir(root.fd.as_fd()) else { return };
    let Ok(mut d) = Dir::new(fd) else { return };
    let mut names = Vec::new();
    while let Some(Ok(e)) = d.read() {
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push((n.to_owned(), e.file_type() == FileType::Directory));
        }
    }
    names.sort();
    let Ok(dfd) = d.fd() else { return };
    for (name, is_dir) in names {
        let ctx = kinds
            .iter()
            .map(|k| k.top())
            .find(|c| !matches!(account(*c, name.to_bytes(), is_dir), Accounted::Foreign(_)))
            .unwrap_or_else(|| kinds[0].top());
        w.entry(root, dfd, &root.path, &name, ctx, 1);
    }
}

fn check_configuration(config: &Config, conf: &str, rep: &mut DoctorReport) {
    if !config.ms_path.is_dir() {
        rep.findings.push(
            Finding::at(
                Severity::Error,
                "ms-path-missing",
                config.ms_path.display().to_string(),
                format!("ms-path (from {conf}) does not exist or is not a directory"),
            )
            .fix(format!("mstore init -f {}", shell_quote(conf))),
        );
    }
    let parts: Vec<(&String, &PathBuf)> = config.partitions.iter().collect();
    for (name, dir) in &parts {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => rep.findings.push(
                Finding::at(
                    Severity::Error,
                    "partition-not-directory",
                    dir.display().to_string(),
                    format!("partition-{name} is not a directory"),
                )
                .fix(format!("edit {}: point partition-{name} at a directory", shell_quote(conf))),
            ),
            Err(_) => rep.findings.push(
                Finding::at(
                    Severity::Error,
                    "partition-missing",
                    dir.display().to_string(),
                    format!("partition-{name} does not exist"),
                )
                .fix(format!("mstore init -f {}", shell_quote(conf))),
            ),
        }
    }
    for (i, (a, da)) in parts.iter().enumerate() {
        for (b, db) in parts.iter().skip(i + 1) {
            if da.starts_with(db) || db.starts_with(da) {
                rep.findings.push(
                    Finding::at(
                        Severity::Error,
                        "partition-overlap",
                        da.display().to_string(),
                        format!(
                            "partition-{a} ({}) and partition-{b} ({}) overlap: one holds the other",
                            da.display(),
                            db.display()
                        ),
                    )
                    .fix(format!(
                        "edit {}: give partition-{a} and partition-{b} separate directories",
                        shell_quote(conf)
                    )),
                );
            }
        }
    }
}

fn check_config_file(config: &Config, conf: &str, ids: &RuntimeIds, rep: &mut DoctorReport) {
    let q = shell_quote(conf);
    let choices = format!("chown root:{g} {q} && chmod 0640 {q}", g = ids.group);
    if let Err(why) = privs::can_read(ids, &config.path) {
        rep.findings.push(
            Finding::at(
                Severity::Error,
                "config-unreadable",
                conf.to_string(),
                format!(
                    "unable to read configuration file as {}: {why}; either make it root's and readable by group {} (the fix below), or, as the M-Store administration guide has it, give it to {}: chown {} {q}",
                    ids.user,
                    ids.group,
                    ids.user,
                    ids.owner()
                ),
            )
            .fix(choices.clone()),
        );
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    if let Some((what, who)) = config_writers(&config.path) {
        let via = if what == config.path {
            String::new()
        } else {
            format!(" (through {}, which it can write)", what.display())
        };
        rep.findings.push(
            Finding::at(
                Severity::Warning,
                "config-writable",
                conf.to_string(),
                format!(
                    "{who} can change this configuration{via}, and commands started as root (mstore doctor --fix, mstore init) act on what it says: whoever writes it decides which directories root looks at. Either make it root's and readable by group {} (the fix below; the store only needs to read it), or keep it as the M-Store administration guide has it (owned by {}): doctor --fix then still changes only the store's own files inside the configured directories, never a system directory or a tree holding anything else",
                    ids.group, ids.user
                ),
            )
            .fix(choices),
        );
    }
}

fn report_walk(rep: &mut DoctorReport, w: Walk<'_>, roots: &[Root], conf: &str, ids: &RuntimeIds) {
    let Walk { mut offenders, findings, unsafe_roots, .. } = w;
    offenders.sort_by_key(|o| (!(o.wrong_owner && o.uid == 0), o.path.clone()));
    let qconf = shell_quote(conf);
    let mut per_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut push = |rep: &mut DoctorReport, f: Finding| {
        let n = per_kind.entry(f.kind).or_insert(0);
        *n += 1;
        if *n <= MAX_PER_KIND {
            rep.findings.push(f);
        }
    };
    let mut to_fix = FixRoots::default();
    for o in &offenders {
        let root = roots[o.root].path.to_string_lossy().into_owned();
        let head = format!("uid {} gid {} mode {:04o}", o.uid, o.gid, o.mode);
        if o.wrong_owner {
            let what = if o.uid == 0 && ids.uid != 0 { "root-owned" } else { "wrong owner" };
            push(
                rep,
                Finding::at(
                    Severity::Error,
                    "owner",
                    o.path.display().to_string(),
                    format!("{what}: {head}, expected {} ({}:{})", ids.owner(), ids.uid, ids.gid),
                )
                .fix(format!("mstore doctor -f {qconf} --fix")),
            );
            if !to_fix.owner.contains(&o.root) {
                to_fix.owner.push(o.root);
            }
        } else if o.lacks {
            push(
                rep,
                Finding::at(
                    Severity::Error,
                    "mode",
                    o.path.display().to_string(),
                    format!("owner lacks permission: {head}, expected the owner to read and write it"),
                )
                .fix(format!("chmod -R u+rwX {}", shell_quote(&root))),
            );
            if !to_fix.lack.contains(&o.root) {
                to_fix.lack.push(o.root);
            }
        }
        if o.world && !o.wrong_owner {
            push(
                rep,
                Finding::at(
                    Severity::Error,
                    "world-access",
                    o.path.display().to_string(),
                    format!(
                        "{}: {head}: mail must not be readable or writable by every user",
                        if o.mode & 0o002 != 0 { "world-writable" } else { "world-readable" }
                    ),
                )
                .fix(format!("chmod -R o-rwx {}", shell_quote(&root))),
            );
            if !to_fix.world.contains(&o.root) {
                to_fix.world.push(o.root);
            }
        }
    }
    for (_, f) in findings {
        push(rep, f);
    }
    for (kind, n) in &per_kind {
        if *n > MAX_PER_KIND {
            rep.findings.push(Finding::at(
                Severity::Error,
                kind,
                String::new(),
                format!("{} more findings of this kind not listed", n - MAX_PER_KIND),
            ));
        }
    }
    push_fixes(rep, roots, &unsafe_roots, &to_fix, &qconf, ids);
}

/// The roots holding an entry with the wrong owner, one the owner lacks access to, and one
/// open to every user.
#[derive(Default)]
struct FixRoots {
    owner: Vec<usize>,
    lack: Vec<usize>,
    world: Vec<usize>,
}

/// The commands that fix what the walk found, one per kind, over the roots concerned.
fn push_fixes(
    rep: &mut DoctorReport,
    roots: &[Root],
    unsafe_roots: &[bool],
    to_fix: &FixRoots,
    qconf: &str,
    ids: &RuntimeIds,
) {
    let q =
        |v: &[usize]| v.iter().map(|&i| shell_quote(&roots[i].path.to_string_lossy())).collect::<Vec<_>>().join(" ");
    if !to_fix.owner.is_empty() {
        rep.fixes.push(format!("mstore doctor -f {qconf} --fix"));
        if to_fix.owner.iter().all(|&i| !unsafe_roots[i])
            && !rep.findings.iter().any(|f| f.kind == "hard-link" || f.kind == "symlink")
        {
            rep.fixes.push(format!(
                "chown -R {} {}   # the same, by path, as the M-Store administration guide has it",
                ids.owner(),
                q(&to_fix.owner)
            ));
        }
    }
    if !to_fix.lack.is_empty() {
        rep.fixes.push(format!("chmod -R u+rwX {}", q(&to_fix.lack)));
    }
    if !to_fix.world.is_empty() {
        rep.fixes.push(format!("chmod -R o-rwx {}", q(&to_fix.world)));
    }
}

/// `mstore init` as root: create `dir` (and missing parents) and give the directory to
/// the runtime user, through a descriptor, with mode 0750 whatever the umask. An existing
/// directory is given only if it is empty: init never takes over a tree that holds
/// anything (whoever writes `ms.conf` must not be able to point it at one), and never a
/// system directory.
pub fn prepare_store_dir(dir: &Path, ids: &RuntimeIds) -> crate::Result<()> {
    let refuse = |why: String| crate::Error::Invalid(format!("mstore init: {}: {why}", dir.display()));
    let existed = dir.exists();
    if !existed {
        crate::fs::Fs::create_dir_all(&crate::fs::RealFs, dir).map_err(|e| crate::Error::io("create", dir, e))?;
    }
    let canonical = std::fs::canonicalize(dir).map_err(|e| crate::Error::io("resolve", dir, e))?;
    if is_system_dir(&canonical) {
        return Err(refuse(format!(
            "resolves to {}, a system directory: a store lives in a directory of its own",
            canonical.display()
        )));
    }
    let fd = open_dir_nofollow(&canonical).map_err(|e| crate::Error::io("open", dir, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| crate::Error::io("stat", dir, errno(e)))?;
    if (st.st_uid, st.st_gid) == (ids.uid, ids.gid) {
        return Ok(());
    }
    if existed {
        let Some(fd2) = reopen_dir(fd.as_fd()) else { return Err(refuse("cannot list it".into())) };
        let mut d = Dir::new(fd2).map_err(|e| crate::Error::io("list", dir, errno(e)))?;
        let mut empty = true;
        while let Some(e) = d.read() {
            let e = e.map_err(|e| crate::Error::io("list", dir, errno(e)))?;
            if e.file_name() != c"." && e.file_name() != c".." && e.file_name() != c"lost+found" {
                empty = false;
                break;
            }
        }
        if !empty {
            return Err(refuse(format!(
                "exists, is not empty and belongs to uid {} gid {}: init gives the runtime user only directories it creates or that are empty; check what it holds, then give it to {} (mstore doctor -f CONF shows what)",
                st.st_uid,
                st.st_gid,
                ids.owner()
            )));
        }
    }
    let (u, g) = (rustix::fs::Uid::from_raw(ids.uid), rustix::fs::Gid::from_raw(ids.gid));
    rustix::fs::fchown(&fd, Some(u), Some(g)).map_err(|e| crate::Error::io("chown", dir, errno(e)))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o750)).map_err(|e| crate::Error::io("chmod", dir, errno(e)))?;
    Ok(())
}
