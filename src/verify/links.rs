//! Symbolic links in the store: a finding of `mstore verify` (kind `symlink`), never
//! followed. The store never makes a link; one found in a mailbox directory, a partition or
//! the database home was planted or left by hand, and no command of the toolkit reads or
//! writes through it (store files are opened with `O_NOFOLLOW`).
//!
//! Inside mailbox directories the scan of each mailbox reports them (its listing sees the
//! entry types). This module looks where no mailbox scan does: the top of each partition,
//! the domain directories and the level below them (`user/`, where the personal mailboxes
//! are), and the database home.

use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, RawDir};

use crate::finding::{Finding, Severity};
use crate::store::Store;
use crate::util::shell_quote;

/// The `symlink` finding for `path`.
pub fn finding(path: &Path) -> Finding {
    let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
    Finding::at(
        Severity::Error,
        "symlink",
        path.display().to_string(),
        format!(
            "a symbolic link (to {target}) inside the store: never followed, so what it points to is not part of the store; if {target} is the store's own, move it here in place of the link"
        ),
    )
    .fix(format!("rm -- {}", shell_quote(&path.to_string_lossy())))
}

/// Entries of `dir` (not followed if `dir` is itself a link): (name, type).
fn entries(dir: &Path) -> Vec<(String, FileType)> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(dir, flags, Mode::empty()) else { return Vec::new() };
    let mut buf = [const { std::mem::MaybeUninit::<u8>::uninit() }; 16 * 1024];
    let mut it = RawDir::new(&fd, &mut buf);
    let mut out = Vec::new();
    while let Some(Ok(e)) = it.next() {
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let ty = match e.file_type() {
            FileType::Unknown => rustix::fs::statat(&fd, e.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode))
                .unwrap_or(FileType::Unknown),
            t => t,
        };
        out.push((String::from_utf8_lossy(name).into_owned(), ty));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Links at the top of each partition, in the domain directories of `domains` and one
/// level below them, and (with `database`) in the database home.
pub fn outside_mailboxes(store: &Store, domains: &[String], database: bool) -> Vec<Finding> {
    let cfg = store.config();
    let mut out = Vec::new();
    let mut roots: Vec<PathBuf> = cfg.partitions.values().cloned().collect();
    roots.sort();
    roots.dedup();
    for root in roots {
        for (name, ty) in entries(&root) {
            let p = root.join(&name);
            if ty == FileType::Symlink {
                out.push(finding(&p));
            } else if ty == FileType::Directory && domains.contains(&name) {
                for (n2, t2) in entries(&p) {
                    let p2 = p.join(&n2);
                    if t2 == FileType::Symlink {
                        out.push(finding(&p2));
                    } else if t2 == FileType::Directory {
                        out.extend(
                            entries(&p2)
                                .into_iter()
                                .filter(|(_, t)| *t == FileType::Symlink)
                                .map(|(n3, _)| finding(&p2.join(n3))),
                        );
                    }
                }
            }
        }
    }
    if database {
        out.extend(in_database_home(cfg));
    }
    out
}

/// Links in the database home (the home itself, its files, one level of directories).
pub fn in_database_home(cfg: &crate::config::Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let home = &cfg.database_path;
    if is_link(home) {
        out.push(finding(home));
    }
    for (name, ty) in entries(home) {
        let p = home.join(&name);
        if ty == FileType::Symlink {
            out.push(finding(&p));
        } else if ty == FileType::Directory {
            out.extend(
                entries(&p).into_iter().filter(|(_, t)| *t == FileType::Symlink).map(|(n, _)| finding(&p.join(n))),
            );
        }
    }
    out
}

/// Whether `path` is itself a symbolic link.
pub fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
