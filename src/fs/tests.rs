//! The real file system's rules: round trip, locks, modes set on the descriptor, symbolic
//! links refused, temporary files removed after a failure.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::*;

#[test]
fn real_fs_round_trip_and_locks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs;
    atomic_write(&fs, dir.path(), "a", b"hello world", Durability::Sync).expect("write");
    assert_eq!(fs.read(&dir.path().join("a")).expect("read"), b"hello world");
    assert_eq!(&*fs.read_bytes(&dir.path().join("a")).expect("read"), b"hello world");
    assert_eq!(fs.read_at(&dir.path().join("a"), 6, 100).expect("read"), b"world");
    assert_eq!(fs.read_at(&dir.path().join("a"), 60, 100).expect("read"), b"");
    assert_eq!(fs.list(dir.path()).expect("ls"), vec!["a".to_string()]);
    let mut f = fs.open_write(&dir.path().join("a")).expect("open");
    f.write_at(11, b"!").expect("append");
    assert_eq!(f.size().expect("size"), 12);
    f.set_len(5).expect("truncate");
    f.sync().expect("sync");
    f.set_mtime(1_000_000_000).expect("mtime");
    drop(f);
    assert_eq!(fs.read(&dir.path().join("a")).expect("read"), b"hello");
    assert_eq!(std::fs::metadata(dir.path().join("a")).expect("stat").mtime(), 1_000_000_000);
    let shared1 = fs.lock(dir.path(), LockMode::Shared).expect("shared");
    let shared2 = fs.lock(dir.path(), LockMode::Shared).expect("shared again");
    assert!(shared1.dir().is_some());
    drop((shared1, shared2));
    let _ex = fs.lock(dir.path(), LockMode::Exclusive).expect("exclusive");
    fs.create_dir_all(&dir.path().join("x/y")).expect("mkdir");
    write_new(&fs, &dir.path().join("x/y/z"), b"1", Durability::NoSync).expect("write");
    assert!(write_new(&fs, &dir.path().join("x/y/z"), b"2", Durability::NoSync).is_err(), "never replaces");
    assert_eq!(walk_files(&fs, dir.path()).expect("walk"), vec![PathBuf::from("a"), PathBuf::from("x/y/z")]);
    remove_tree(&fs, &dir.path().join("x")).expect("rm");
    assert!(!exists(&fs, &dir.path().join("x")).expect("exists"));
}

#[test]
fn exclusive_lock_excludes_shared_and_exclusive() {
    use rustix::fs::{FlockOperation, flock};
    let dir = tempfile::tempdir().expect("tempdir");
    let held = RealFs.lock(dir.path(), LockMode::Exclusive).expect("lock");
    // Another open file description asks without waiting: refused.
    let other = std::fs::File::open(dir.path()).expect("open");
    assert!(flock(&other, FlockOperation::NonBlockingLockShared).is_err());
    drop(held);
    flock(&other, FlockOperation::NonBlockingLockExclusive).expect("free after release");
}

#[test]
fn create_new_file_never_replaces_and_leaves_no_temp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs;
    assert!(create_new_file(&fs, dir.path(), "1.", b"first", Some(1_000_000_000), Durability::NoSync).expect("1"));
    assert!(!create_new_file(&fs, dir.path(), "1.", b"second", None, Durability::NoSync).expect("again"));
    assert_eq!(std::fs::read(dir.path().join("1.")).expect("read"), b"first");
    assert_eq!(std::fs::metadata(dir.path().join("1.")).expect("stat").mtime(), 1_000_000_000);
    assert_eq!(fs.list(dir.path()).expect("ls"), vec!["1.".to_string()], "temporary file left behind");
}

#[test]
fn temporary_names_are_unpredictable() {
    let a = temp_name("ms.index");
    let b = temp_name("ms.index");
    assert_ne!(a, b);
    assert!(a.starts_with("ms.tmp.ms.index.") && a.len() == "ms.tmp.ms.index.".len() + 16, "{a}");
    assert!(!a.contains(&std::process::id().to_string()) || a != b);
}

/// Modes come from the layer (under umask 000 too: `tests/fs_rules.rs` runs the binaries
/// so; the umask is per process, and changing it here would race with other tests).
#[test]
fn modes_are_set_on_the_descriptor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs;
    atomic_write(&fs, dir.path(), "f", b"x", Durability::NoSync).expect("write");
    fs.create_dir_all(&dir.path().join("d/e")).expect("mkdir");
    let mode = |p: &str| std::fs::symlink_metadata(dir.path().join(p)).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode("f"), FILE_MODE);
    assert_eq!(mode("d"), DIR_MODE);
    assert_eq!(mode("d/e"), DIR_MODE);
}

#[test]
fn symbolic_links_are_refused_with_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs;
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious").expect("write");
    std::fs::create_dir(dir.path().join("realdir")).expect("mkdir");
    let link = dir.path().join("ms.log");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let dlink = dir.path().join("mbox");
    std::os::unix::fs::symlink(dir.path().join("realdir"), &dlink).expect("symlink");
    let dangling = dir.path().join("gone");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).expect("symlink");
    assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink(), "setup");

    let says_link = |e: std::io::Error, p: &std::path::Path| {
        let s = e.to_string();
        assert!(s.contains("symbolic link") && s.contains(&*p.to_string_lossy()), "{s}");
    };
    says_link(fs.open_write(&link).err().expect("open_write follows"), &link);
    says_link(fs.read(&link).expect_err("read follows"), &link);
    says_link(fs.read_bytes(&link).expect_err("read_bytes follows"), &link);
    says_link(fs.lock(&dlink, LockMode::Exclusive).expect_err("lock follows"), &dlink);
    says_link(fs.lock(&dangling, LockMode::Exclusive).expect_err("lock dangling"), &dangling);
    says_link(fs.create_dir_all(&dlink).expect_err("mkdir on link"), &dlink);
    says_link(fs.create_dir_all(&dangling).expect_err("mkdir on dangling"), &dangling);
    assert_eq!(fs.create_new(&link).err().expect("create over link").kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        fs.create_new(&dangling).err().expect("create through dangling").kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert!(!dir.path().join("nothing").exists(), "a dangling link was followed");
    assert!(fs.metadata(&link).expect("lstat").is_symlink);
    // Removing a tree removes a link inside it, never what it points to.
    std::fs::create_dir(dir.path().join("t")).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("realdir"), dir.path().join("t/l")).expect("symlink");
    std::fs::write(dir.path().join("realdir/keep"), b"k").expect("write");
    remove_tree(&fs, &dir.path().join("t")).expect("rm");
    assert!(dir.path().join("realdir/keep").exists(), "remove_tree followed a link");
    assert_eq!(std::fs::read(&target).expect("read"), b"precious");
}

#[test]
fn a_fifo_is_not_opened_as_a_store_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("ms.log");
    rustix::fs::mknodat(rustix::fs::CWD, &p, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .expect("mkfifo");
    let e = RealFs.read(&p).expect_err("fifo read");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(RealFs.open_write(&p).is_err());
}

#[test]
fn a_failed_write_removes_its_temporary_file() {
    #[derive(Debug)]
    struct FullDisk;
    struct NoSpace;
    impl FsFile for NoSpace {
        fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::from(rustix::io::Errno::NOSPC))
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn set_len(&mut self, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn size(&self) -> std::io::Result<u64> {
            Ok(0)
        }
        fn set_mtime(&mut self, _: i64) -> std::io::Result<()> {
            Ok(())
        }
    }
    // The real file system, except that no byte fits.
    impl Fs for FullDisk {
        fn metadata(&self, p: &Path) -> std::io::Result<Meta> {
            RealFs.metadata(p)
        }
        fn create_dir_all(&self, d: &Path) -> std::io::Result<()> {
            RealFs.create_dir_all(d)
        }
        fn list(&self, d: &Path) -> std::io::Result<Vec<String>> {
            RealFs.list(d)
        }
        fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
            RealFs.read(p)
        }
        fn read_at(&self, p: &Path, o: u64, m: u64) -> std::io::Result<Vec<u8>> {
            RealFs.read_at(p, o, m)
        }
        fn create_new(&self, p: &Path) -> std::io::Result<Box<dyn FsFile>> {
            RealFs.create_new(p)?;
            Ok(Box::new(NoSpace))
        }
        fn open_write(&self, _: &Path) -> std::io::Result<Box<dyn FsFile>> {
            Ok(Box::new(NoSpace))
        }
        fn rename(&self, a: &Path, b: &Path) -> std::io::Result<()> {
            RealFs.rename(a, b)
        }
        fn rename_noreplace(&self, a: &Path, b: &Path) -> std::io::Result<()> {
            RealFs.rename_noreplace(a, b)
        }
        fn remove_file(&self, p: &Path) -> std::io::Result<()> {
            RealFs.remove_file(p)
        }
        fn remove_dir(&self, p: &Path) -> std::io::Result<()> {
            RealFs.remove_dir(p)
        }
        fn sync_dir(&self, d: &Path) -> std::io::Result<()> {
            RealFs.sync_dir(d)
        }
        fn lock(&self, d: &Path, m: LockMode) -> std::io::Result<FsLock> {
            RealFs.lock(d, m)
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..3 {
        assert!(atomic_write(&FullDisk, dir.path(), "ms.cache", b"x", Durability::Sync).is_err());
        assert!(create_new_file(&FullDisk, dir.path(), "1.", b"x", None, Durability::Sync).is_err());
        assert!(write_new(&FullDisk, &dir.path().join("n"), b"x", Durability::Sync).is_err());
        let mut t = TempFile::create(&FullDisk, dir.path(), "ms.index").expect("create");
        assert!(std::io::Write::write_all(&mut t, b"abc").is_err());
    }
    assert_eq!(RealFs.list(dir.path()).expect("ls"), Vec::<String>::new(), "temporary files piled up");
}
