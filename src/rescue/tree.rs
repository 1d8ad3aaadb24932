//! Walking trees that salvage does not trust (a `lost+found`, a backup copy, a mail
//! partition it is about to write into as root) by directory descriptor: every step is an
//! `openat` with `O_NOFOLLOW`, a symbolic link is never followed, a mount point is never
//! crossed (device and mount id are compared with the root's), and only regular files and
//! directories are looked at.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, StatxFlags};

/// Deepest a walk goes (a directory tree deeper than this is not mail).
pub const MAX_DEPTH: usize = 64;

/// An open directory, with where it is and which file system it is on.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its path, for messages (never used to open anything below it).
    pub path: PathBuf,
    /// Device.
    pub dev: u64,
    /// Mount id.
    pub mnt_id: u64,
}

/// What `statx` says about an entry (never following a link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// File type.
    pub kind: Kind,
    /// Size.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Links.
    pub nlink: u32,
    /// Inode.
    pub ino: u64,
    /// Device.
    pub dev: u64,
    /// Mount id.
    pub mnt_id: u64,
    /// Modification time, seconds.
    pub mtime: i64,
}

/// The kinds of entry a walk distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else (device, socket, FIFO).
    Other,
}

fn kind_of(mode: u32) -> Kind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn cname(name: &OsStr) -> std::io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn statx_meta(fd: impl AsFd, name: &CStr, flags: AtFlags) -> std::io::Result<Meta> {
    let want = StatxFlags::TYPE
        | StatxFlags::MODE
        | StatxFlags::SIZE
        | StatxFlags::UID
        | StatxFlags::GID
        | StatxFlags::NLINK
        | StatxFlags::INO
        | StatxFlags::MTIME
        | StatxFlags::MNT_ID;
    let st = rustix::fs::statx(fd, name, flags | AtFlags::SYMLINK_NOFOLLOW, want)?;
    Ok(Meta {
        kind: kind_of(st.stx_mode.into()),
        size: st.stx_size,
        uid: st.stx_uid,
        gid: st.stx_gid,
        mode: u32::from(st.stx_mode) & 0o7777,
        nlink: st.stx_nlink,
        ino: st.stx_ino,
        dev: (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor),
        mnt_id: st.stx_mnt_id,
        mtime: st.stx_mtime.tv_sec,
    })
}

impl Dir {
    /// Open the directory at `path` (a path the administrator gave or the configuration
    /// names); its last component must not be a symbolic link.
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let m = statx_meta(&fd, c"", AtFlags::EMPTY_PATH)?;
        Ok(Dir { fd, path: path.to_path_buf(), dev: m.dev, mnt_id: m.mnt_id })
    }

    /// Open the sub-directory `name`: never through a link, never onto another mount.
    pub fn sub(&self, name: &OsStr) -> std::io::Result<Dir> {
        let c = cname(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            c.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let m = statx_meta(&fd, c"", AtFlags::EMPTY_PATH)?;
        if m.dev != self.dev || m.mnt_id != self.mnt_id {
            return Err(std::io::Error::other(format!(
                "{} is another mount: not crossed",
                self.path.join(name).display()
            )));
        }
        let path = if name == "." { self.path.clone() } else { self.path.join(name) };
        Ok(Dir { fd, path, dev: m.dev, mnt_id: m.mnt_id })
    }

    /// The entries (names only; `.` and `..` left out).
    pub fn names(&self) -> std::io::Result<Vec<OsString>> {
        let mut buf = [const { std::mem::MaybeUninit::<u8>::uninit() }; 32 * 1024];
        // A second descriptor: RawDir reads from the descriptor's position.
        let fd =
            rustix::fs::openat(&self.fd, c".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let mut it = RawDir::new(&fd, &mut buf);
        let mut out = Vec::new();
        while let Some(e) = it.next() {
            let e = e?;
            let b = e.file_name().to_bytes();
            if b != b"." && b != b".." {
                out.push(OsStr::from_bytes(b).to_os_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// `statx` of `name`, not following a link.
    pub fn meta(&self, name: &OsStr) -> std::io::Result<Meta> {
        statx_meta(&self.fd, cname(name)?.as_c_str(), AtFlags::empty())
    }

    /// `statx` of the directory itself.
    pub fn self_meta(&self) -> std::io::Result<Meta> {
        statx_meta(&self.fd, c"", AtFlags::EMPTY_PATH)
    }

    /// Open the regular file `name` for reading: never through a link, never a device or
    /// FIFO (opened non-blocking, then checked), never on another mount.
    pub fn open_file(&self, name: &OsStr) -> std::io::Result<(File, Meta)> {
        let c = cname(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            c.as_c_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let m = statx_meta(&fd, c"", AtFlags::EMPTY_PATH)?;
        if m.kind != Kind::File {
            return Err(std::io::Error::other(format!("{} is not a regular file", self.path.join(name).display())));
        }
        if m.dev != self.dev {
            return Err(std::io::Error::other(format!("{} is on another file system", self.path.join(name).display())));
        }
        // Back to blocking reads.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok((File::from(fd), m))
    }

    /// The descriptor (for `renameat`, `mkdirat`, ...).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A regular file found by a walk.
#[derive(Clone, Debug)]
pub struct Found {
    /// Path components below the walk's root (the last is the file name).
    pub rel: Vec<OsString>,
    /// Its metadata at the time of the walk.
    pub meta: Meta,
}

impl Found {
    /// The path below the root, for messages.
    pub fn rel_path(&self) -> PathBuf {
        self.rel.iter().collect()
    }
}

/// What a walk met besides regular files: links, special files, mount points, directories
/// it could not read, depth beyond [`MAX_DEPTH`].
#[derive(Clone, Debug, Default)]
pub struct Skipped {
    /// (path, why).
    pub items: Vec<(PathBuf, String)>,
}

/// Every regular file below `root`, at most `limit`: each directory's files in name
/// order, then its sub-directories', depth first.
/// `keep_dir` decides whether to descend into a directory (given its components).
pub fn walk(root: &Dir, limit: usize, mut keep_dir: impl FnMut(&[OsString], &Meta) -> bool) -> (Vec<Found>, Skipped) {
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    let mut stack: Vec<(Dir, Vec<OsString>)> = Vec::new();
    match root.sub(OsStr::new(".")) {
        Ok(d) => stack.push((d, Vec::new())),
        Err(e) => skipped.items.push((root.path.clone(), e.to_string())),
    }
    while let Some((dir, comps)) = stack.pop() {
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                skipped.items.push((dir.path.clone(), format!("cannot list: {e}")));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for name in names {
            let m = match dir.meta(&name) {
                Ok(m) => m,
                Err(e) => {
                    skipped.items.push((dir.path.join(&name), e.to_string()));
                    continue;
                }
            };
            let mut rel = comps.clone();
            rel.push(name.clone());
            match m.kind {
                Kind::File => {
                    if out.len() >= limit {
                        skipped.items.push((dir.path.join(&name), format!("more than {limit} files: not looked at")));
                        continue;
                    }
                    out.push(Found { rel, meta: m });
                }
                Kind::Dir => {
                    if m.dev != dir.dev || m.mnt_id != dir.mnt_id {
                        skipped.items.push((dir.path.join(&name), "a mount point: not crossed".into()));
                    } else if rel.len() > MAX_DEPTH {
                        skipped.items.push((dir.path.join(&name), format!("deeper than {MAX_DEPTH} levels")));
                    } else if keep_dir(&rel, &m) {
                        subdirs.push((name, rel));
                    }
                }
                Kind::Symlink => skipped.items.push((dir.path.join(&name), "a symbolic link: not followed".into())),
                Kind::Other => skipped.items.push((dir.path.join(&name), "not a regular file".into())),
            }
        }
        // Reverse, so that the stack pops them in name order.
        for (name, rel) in subdirs.into_iter().rev() {
            match dir.sub(&name) {
                Ok(d) => stack.push((d, rel)),
                Err(e) => skipped.items.push((dir.path.join(&name), e.to_string())),
            }
        }
    }
    (out, skipped)
}

/// Open the directory at components `rel` below `root`, step by step.
pub fn descend(root: &Dir, rel: &[OsString]) -> std::io::Result<Dir> {
    let mut d = root.sub(OsStr::new("."))?;
    for c in rel {
        d = d.sub(c)?;
    }
    Ok(d)
}

/// The root directory of the file system holding `path` (or its nearest existing
/// ancestor): the highest ancestor on the same device and mount.
pub fn mount_root(path: &Path) -> Option<PathBuf> {
    let start = path.ancestors().find(|p| std::fs::symlink_metadata(p).is_ok())?;
    let start = std::fs::canonicalize(start).ok()?;
    let id = |p: &Path| -> Option<(u64, u64)> {
        let st = rustix::fs::statx(rustix::fs::CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID).ok()?;
        Some(((u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor), st.stx_mnt_id))
    };
    let mine = id(&start)?;
    let mut root = start.clone();
    for a in start.ancestors().skip(1) {
        if id(a) == Some(mine) {
            root = a.to_path_buf();
        } else {
            break;
        }
    }
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_never_follows_links_and_lists_in_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        std::fs::create_dir_all(r.join("a/b")).expect("mkdir");
        std::fs::write(r.join("a/b/2."), b"x").expect("write");
        std::fs::write(r.join("a/1."), b"y").expect("write");
        std::fs::write(r.join("z"), b"z").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.path(), r.join("a/link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("file-link")).expect("symlink");
        let root = Dir::open(r).expect("open");
        let (found, skipped) = walk(&root, 100, |_, _| true);
        let names: Vec<PathBuf> = found.iter().map(Found::rel_path).collect();
        assert_eq!(names, [PathBuf::from("z"), PathBuf::from("a/1."), PathBuf::from("a/b/2.")]);
        assert_eq!(skipped.items.len(), 2, "{skipped:?}");
        assert!(skipped.items.iter().all(|(_, why)| why.contains("symbolic link")));
        let d = descend(&root, &[OsString::from("a")]).expect("descend");
        assert!(d.sub(OsStr::new("link")).is_err(), "a link is never opened as a directory");
        assert!(root.open_file(OsStr::new("file-link")).is_err(), "a link is never opened as a file");
        assert!(mount_root(r).is_some());
    }
}
