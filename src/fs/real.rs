//! [`RealFs`]: the operating system, with the creation and opening rules of the layer.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::{DIR_MODE, FILE_MODE, Fs, FsFile, FsLock, LockMode, Meta, symlink_refused};

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// A shared handle to the real file system.
    pub fn shared() -> std::sync::Arc<dyn Fs> {
        std::sync::Arc::new(RealFs)
    }
}

/// An `open` error on `path`: `ELOOP` from `O_NOFOLLOW` on a symbolic link is said so.
fn open_error(e: rustix::io::Errno, path: &Path) -> io::Error {
    let maybe_link = matches!(e, rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR);
    if maybe_link && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return symlink_refused(path);
    }
    e.into()
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a regular file", path.display()))
}

/// Open `path` with `flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK` (a FIFO planted where a
/// store file should be does not block the open) and check it is a regular file.
fn open_regular(path: &Path, flags: OFlags) -> io::Result<File> {
    let fd = rustix::fs::open(path, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty())
        .map_err(|e| open_error(e, path))?;
    let file = File::from(fd);
    if !file.metadata()?.file_type().is_file() {
        return Err(not_regular(path));
    }
    Ok(file)
}

/// Open the directory `dir` itself (not through a symbolic link).
fn open_dir_nofollow(dir: &Path) -> io::Result<File> {
    let fd =
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| open_error(e, dir))?;
    Ok(File::from(fd))
}

struct RealFile(File);

impl FsFile for RealFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(data, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_mtime(&mut self, secs: i64) -> io::Result<()> {
        use rustix::fs::{Timespec, Timestamps, futimens};
        let ts = Timespec { tv_sec: secs, tv_nsec: 0 };
        futimens(&self.0, &Timestamps { last_access: ts, last_modification: ts })?;
        Ok(())
    }
}

/// `mkdir` with [`DIR_MODE`], then the mode set on the new directory's descriptor (the
/// umask cannot change it). `AlreadyExists` if anything is at `dir`.
fn mkdir_one(dir: &Path) -> io::Result<()> {
    rustix::fs::mkdir(dir, Mode::from_raw_mode(DIR_MODE))?;
    let f = open_dir_nofollow(dir)?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(DIR_MODE))?;
    Ok(())
}

impl Fs for RealFs {
    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(Meta { is_dir: m.is_dir(), is_symlink: m.file_type().is_symlink(), len: m.len() })
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(dir)),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", dir.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Missing components, from the deepest existing ancestor down. Ancestors above
        // the first missing one are looked at as they are (ms-path may be a link that the
        // administrator made); what we create we create as directories of our own.
        let mut missing = vec![dir];
        let mut cur = dir.parent();
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || std::fs::metadata(p).is_ok() {
                break;
            }
            missing.push(p);
            cur = p.parent();
        }
        for d in missing.into_iter().rev() {
            match mkdir_one(d) {
                Ok(()) => {}
                // Made by someone else meanwhile: fine if it is a directory (checked below
                // for `dir` itself).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d != dir => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let m = std::fs::symlink_metadata(d)?;
                    if m.file_type().is_symlink() {
                        return Err(symlink_refused(d));
                    }
                    if !m.is_dir() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let f = open_regular(path, OFlags::RDONLY)?;
        // Its real content, not its apparent size (a sparse file stops at a hole).
        let len = crate::io::content_len(&f)?;
        // Reserve what the file holds, capped: a size read from disk never sizes memory.
        let mut buf = Vec::with_capacity(len.min(64 << 20) as usize);
        f.take(len).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn read_bytes(&self, path: &Path) -> io::Result<crate::io::Bytes> {
        let f = open_regular(path, OFlags::RDONLY)?;
        let len = crate::io::content_len(&f)?;
        crate::io::read_file_at(&f, len, crate::io::Map::Allow)
    }

    fn read_at(&self, path: &Path, offset: u64, max: u64) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = open_regular(path, OFlags::RDONLY)?;
        let len = crate::io::content_len(&f)?;
        let want = len.saturating_sub(offset).min(max);
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(want.min(64 << 20) as usize);
        f.take(want).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn crate::codec::ReadAt + Send>> {
        Ok(Box::new(crate::io::FileSource::new(open_regular(path, OFlags::RDONLY)?)?))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(FILE_MODE))?;
        // The mode given to open is narrowed by the umask; set it on the descriptor.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE))?;
        Ok(Box::new(RealFile(File::from(fd))))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(RealFile(open_regular(path, OFlags::WRONLY)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            // File systems without RENAME_NOREPLACE: link + unlink gives the same guarantee
            // for files.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                std::fs::hard_link(from, to)?;
                std::fs::remove_file(from)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, dir: &Path, mode: LockMode) -> io::Result<FsLock> {
        use rustix::fs::{FlockOperation, flock};
        let file = open_dir_nofollow(dir)?;
        let op = match mode {
            LockMode::Exclusive => FlockOperation::LockExclusive,
            LockMode::Shared => FlockOperation::LockShared,
        };
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(FsLock::by_descriptor(file)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
