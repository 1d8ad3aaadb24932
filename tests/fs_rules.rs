//! The creation and opening rules of the file-system layer (`src/fs/`), tried as an
//! attacker or an unlucky administrator would, on the real binaries:
//!
//! - under umask 000, every file the toolkit creates is 0640 and every directory 0750;
//! - a symbolic link where a store file or a mailbox directory should be (`ms.log`,
//!   `ms.cache`, a database segment `log.N`, the mailbox directory itself, dangling or
//!   not) is refused with an error naming it, and what it points to is left untouched;
//! - a full disk leaves no temporary file behind, run after run;
//! - the store and database code reach the file system only through the layer.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Fx, MSTORE, RECONSTRUCT, Run};

fn run_sh(line: &str, conf: &Path) -> Run {
    let bins = Path::new(RECONSTRUCT).parent().expect("bin dir");
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new("sh").arg("-c").arg(line).env("MS_CONF", conf).env("PATH", path).output().expect("run sh");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Every file and directory below `root` (not following links).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn write_message(dir: &Path, name: &str, subject: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("From: a@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n")).expect("write");
    p
}

#[test]
fn umask_000_cannot_widen_what_the_toolkit_creates() {
    let fx = Fx::new();
    let conf = fx.conf.display().to_string();
    let msg = write_message(fx.root(), "msg.eml", "hello");
    // Everything below is created by commands run with umask 000: a mailbox, appends, a
    // rebuild that rewrites index, cache, header and log, a database backup.
    let lines = [
        format!("umask 000; mstore -f {conf} create example.com user/joe"),
        format!("umask 000; mstore -f {conf} create example.com user/joe/sub"),
        format!("umask 000; mstore -f {conf} append example.com user/joe {}", msg.display()),
        format!("umask 000; mstore -f {conf} append example.com user/joe/sub {}", msg.display()),
    ];
    for l in &lines {
        run_sh(l, &fx.conf).expect_code(0, l);
    }
    let dir = fx.dir("example.com", "user/joe");
    for f in ["ms.index", "ms.cache", "ms.header"] {
        std::fs::remove_file(dir.join(f)).expect("remove");
    }
    let l = format!("umask 000; reconstruct -f {conf} -r example.com");
    run_sh(&l, &fx.conf).expect_code(1, &l);
    let l = format!("umask 000; msdb_backup -f {conf}");
    let r = run_sh(&l, &fx.conf);
    assert!(r.code == 0, "{l}: {}\n{}", r.stdout, r.stderr);
    let l = format!("umask 000; mstore -f {conf} export maildir example.com user/joe {}/out", fx.root().display());
    run_sh(&l, &fx.conf).expect_code(0, &l);

    let mut checked = (0, 0);
    for p in walk(fx.root()) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p == fx.conf || p == msg || name == "msg.eml" {
            continue;
        }
        let m = mode(&p);
        if p.is_dir() {
            assert_eq!(m, 0o750, "directory {} is {m:04o} under umask 000", p.display());
            checked.0 += 1;
        } else {
            assert_eq!(m, 0o640, "file {} is {m:04o} under umask 000", p.display());
            checked.1 += 1;
        }
    }
    // The setup really made what it claims: mailbox files, a rebuilt index, a backup.
    assert!(dir.join("ms.index").exists() && dir.join("1.").exists());
    assert!(checked.0 >= 8 && checked.1 >= 12, "{checked:?}");
}

/// A link planted where a store file should be: the writer refuses, names the link, and
/// the file it points to keeps its bytes.
#[test]
fn writers_never_write_through_a_symlinked_store_file() {
    for file in ["ms.log", "ms.cache"] {
        let fx = Fx::new();
        let dir = fx.mailbox("example.com", "user/joe", 5);
        // The target holds the store file's own bytes, so that a writer following the
        // link would find nothing wrong with it and append.
        let victim = fx.root().join("victim");
        let original = std::fs::read(dir.join(file)).expect("read");
        std::fs::write(&victim, &original).expect("write");
        std::fs::rename(dir.join(file), fx.root().join("moved-away")).expect("move");
        std::os::unix::fs::symlink(&victim, dir.join(file)).expect("symlink");
        assert!(std::fs::symlink_metadata(dir.join(file)).expect("lstat").file_type().is_symlink(), "setup");
        let msg = write_message(fx.root(), "m.eml", "x");
        let r = fx.mstore(&["append", "example.com", "user/joe", msg.to_str().expect("utf-8")]);
        assert_ne!(r.code, 0, "append through a symlinked {file} succeeded:\n{}", r.stdout);
        let link = dir.join(file).display().to_string();
        assert!(r.stderr.contains(&link) && r.stderr.contains("symbolic link"), "{file}: {}", r.stderr);
        assert_eq!(std::fs::read(&victim).expect("read"), original, "{file}: written through the link");
    }
}

#[test]
fn a_symlinked_database_segment_is_never_appended_through() {
    let fx = Fx::new();
    fx.mailbox("example.com", "user/joe", 4);
    let home = fx.store.config().database_path.clone();
    let seg = std::fs::read_dir(&home)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("log.")))
        .max()
        .expect("a log segment");
    let victim = fx.root().join("victim");
    std::fs::copy(&seg, &victim).expect("copy");
    let before = std::fs::read(&victim).expect("read");
    std::fs::remove_file(&seg).expect("rm");
    std::os::unix::fs::symlink(&victim, &seg).expect("symlink");
    assert!(std::fs::symlink_metadata(&seg).expect("lstat").file_type().is_symlink(), "setup");
    let r = fx.mstore(&["create", "example.com", "user/newbie"]);
    assert_ne!(r.code, 0, "a commit went through a symlinked {}:\n{}", seg.display(), r.stdout);
    assert!(
        r.stderr.contains(&*seg.to_string_lossy()) && r.stderr.contains("symbolic link"),
        "the error must name the link: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(&victim).expect("read"), before, "appended through the link");
}

#[test]
fn a_symlinked_or_dangling_mailbox_directory_is_refused() {
    let fx = Fx::new();
    let dir = fx.mailbox("example.com", "user/joe", 5);
    let elsewhere = fx.root().join("elsewhere");
    std::fs::rename(&dir, &elsewhere).expect("move the mailbox away");
    std::os::unix::fs::symlink(&elsewhere, &dir).expect("symlink");
    assert!(std::fs::symlink_metadata(&dir).expect("lstat").file_type().is_symlink(), "setup");
    let before = walk(&elsewhere).into_iter().map(|p| (p.clone(), std::fs::read(&p).ok())).collect::<Vec<_>>();
    let msg = write_message(fx.root(), "m.eml", "x");
    let r = fx.mstore(&["append", "example.com", "user/joe", msg.to_str().expect("utf-8")]);
    assert_ne!(r.code, 0, "append into a symlinked mailbox directory succeeded");
    assert!(r.stderr.contains(&*dir.to_string_lossy()) && r.stderr.contains("symbolic link"), "{}", r.stderr);
    let r = Command::new(RECONSTRUCT)
        .arg("-f")
        .arg(&fx.conf)
        .args(["example.com", "user/joe"])
        .env_remove("MS_CONF")
        .output()
        .expect("reconstruct");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_ne!(r.status.code(), Some(0), "{out}");
    assert!(out.contains("symbolic link") && !out.contains("recreated"), "{out}");
    let after = walk(&elsewhere).into_iter().map(|p| (p.clone(), std::fs::read(&p).ok())).collect::<Vec<_>>();
    assert_eq!(before, after, "the link's target changed");

    // Dangling: never "recreated empty", never followed.
    std::fs::remove_file(&dir).expect("rm link");
    let gone = fx.root().join("gone");
    std::os::unix::fs::symlink(&gone, &dir).expect("symlink");
    for _ in 0..2 {
        let r = Command::new(RECONSTRUCT)
            .arg("-f")
            .arg(&fx.conf)
            .args(["example.com", "user/joe"])
            .env_remove("MS_CONF")
            .output()
            .expect("reconstruct");
        let out = String::from_utf8_lossy(&r.stdout);
        assert_ne!(r.status.code(), Some(0), "{out}");
        assert!(out.contains("symbolic link") && !out.contains("recreated"), "{out}");
        assert!(!gone.exists(), "the dangling link was followed");
    }
}

fn temps_under(root: &Path) -> Vec<PathBuf> {
    walk(root)
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ms.tmp.")))
        .collect()
}

/// A really full disk (a small tmpfs; root only, as in CI): reconstruct fails, again and
/// again, and no temporary file piles up.
#[test]
fn a_full_disk_leaves_no_temporary_files() {
    if !support::root("a full tmpfs (mounting one needs root)") {
        return;
    }
    let outer = tempfile::tempdir().expect("tempdir");
    let mnt = outer.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&mnt).status().expect("mount");
    assert!(st.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let conf = mnt.join("ms.conf");
    let (user, group) = mstore::cli::current_user_and_group();
    std::fs::write(
        &conf,
        format!("ms-path: ms\npartition-default: ms/spool\nfsync: no\nruntime-user: {user}\nruntime-group: {group}\n"),
    )
    .expect("conf");
    let run = |args: &[&str]| {
        let o = Command::new(MSTORE).arg("-f").arg(&conf).args(args).env_remove("MS_CONF").output().expect("mstore");
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(run(&["init"]).0, Some(0));
    assert_eq!(run(&["create", "example.com", "user/joe"]).0, Some(0));
    let body = "x".repeat(20_000);
    let msg = outer.path().join("m.eml");
    std::fs::write(&msg, format!("Subject: big\r\n\r\n{body}\r\n")).expect("write");
    for _ in 0..12 {
        let _ = run(&["append", "example.com", "user/joe", msg.to_str().expect("utf-8")]);
    }
    // Fill what is left.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 2 << 20]);
    let dir = mnt.join("ms/spool/example.com/user/joe");
    assert!(dir.join("1.").exists(), "setup: messages appended");
    for f in ["ms.index", "ms.cache"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let mut failed = 0;
    for _ in 0..4 {
        let o = Command::new(RECONSTRUCT).arg("-f").arg(&conf).args(["-r", "example.com"]).output().expect("run");
        failed += usize::from(o.status.code() != Some(0) && o.status.code() != Some(1));
        assert!(temps_under(&mnt).is_empty(), "temporary files left: {:?}", temps_under(&mnt));
    }
    assert!(failed >= 1, "the disk was not full: reconstruct never failed");
}

/// The crash tests see every write only if the store and database code make none but
/// through `fs::Fs` (ARCHITECTURE.md, "One file-system layer").
#[test]
fn store_and_database_code_do_file_io_only_through_the_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["db", "store"] {
        for e in std::fs::read_dir(root.join(sub)).expect("src dir") {
            files.push(e.expect("entry").path());
        }
    }
    files.push(root.join("reconstruct/write.rs"));
    let mut checked = 0;
    for p in files {
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        if name == "tests.rs" || !name.ends_with(".rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for bad in ["std::fs::", "File::open", "File::create", "OpenOptions", "fsync_dir(", "io::read_file("] {
            // `TempFile::create` is the layer's own.
            let found = code
                .match_indices(bad)
                .any(|(i, _)| !code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
            assert!(!found, "{} uses {bad} outside the fs layer", p.display());
        }
        checked += 1;
    }
    assert!(checked >= 14, "{checked} files");
    // Store files that verify (run as root) and reconstruct read are opened by the layer
    // too (O_NOFOLLOW|O_NONBLOCK, regular files only): a link or a FIFO swapped in after
    // a file was looked at is neither followed nor blocks the run.
    for rel in ["verify/mod.rs", "reconstruct/mod.rs"] {
        let text = std::fs::read_to_string(root.join(rel)).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(!code.contains("io::read_file("), "src/{rel} reads a store file by path outside the fs layer");
    }
}
