//! `mstore doctor`: the permissions and configuration doctor.
//!
//! Checks that the runtime user and group exist; that `ms.conf` is readable by that user;
//! owner, group and mode of ms-path, the database home, every database and log file and
//! every file and directory of every partition; and the configuration itself (partitions
//! that do not exist, are not directories, or overlap; ms-path missing). It lists each
//! offender, root-owned first (the guide's most common cause), then prints the exact
//! `chown -R user:group path ...` that repairs them; `--fix`, as root, applies it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::finding::{Finding, Severity};
use crate::privs::{self, Need, RuntimeIds};
use crate::util::shell_quote;

/// What the doctor found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DoctorReport {
    /// Everything wrong, root-owned files first.
    pub findings: Vec<Finding>,
    /// The commands that repair the ownership findings.
    pub fixes: Vec<String>,
    /// Files and directories checked.
    pub checked: u64,
}

/// An entry owned by the wrong user or group, or lacking owner permissions.
#[derive(Clone, Debug)]
struct Offender {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    root: PathBuf,
}

/// The roots the store owns: ms-path, the database home, backups, every partition (each
/// once, outermost first).
pub fn store_roots(config: &Config) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> =
        vec![config.ms_path.clone(), config.database_path.clone(), config.backup_path.clone()];
    roots.extend(config.partitions.values().cloned());
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

/// Run every check.
pub fn check(config: &Config) -> DoctorReport {
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

    // The configuration itself.
    if !config.ms_path.is_dir() {
        rep.findings.push(
            Finding::at(
                Severity::Error,
                "ms-path-missing",
                config.ms_path.display().to_string(),
                format!("ms-path (from {conf}) does not exist or is not a directory"),
            )
            .fix(format!("mstore init -f {}", shell_quote(&conf))),
        );
    }
    let parts: Vec<(&String, &PathBuf)> = config.partitions.iter().collect();
    for (name, dir) in &parts {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => rep.findings.push(Finding::at(
                Severity::Error,
                "partition-not-directory",
                dir.display().to_string(),
                format!("partition-{name} is not a directory"),
            )),
            Err(_) => rep.findings.push(
                Finding::at(
                    Severity::Error,
                    "partition-missing",
                    dir.display().to_string(),
                    format!("partition-{name} does not exist"),
                )
                .fix(format!("mstore init -f {}", shell_quote(&conf))),
            ),
        }
    }
    for (i, (a, da)) in parts.iter().enumerate() {
        for (b, db) in parts.iter().skip(i + 1) {
            if da.starts_with(db) || db.starts_with(da) {
                rep.findings.push(Finding::at(
                    Severity::Error,
                    "partition-overlap",
                    da.display().to_string(),
                    format!(
                        "partition-{a} ({}) and partition-{b} ({}) overlap: one holds the other",
                        da.display(),
                        db.display()
                    ),
                ));
            }
        }
    }
    let Some(ids) = ids else {
        return rep;
    };

    // ms.conf readable by the runtime user.
    if let Err(why) = privs::can_access(&ids, &config.path, Need::Read) {
        rep.findings.push(
            Finding::at(
                Severity::Error,
                "config-unreadable",
                conf.clone(),
                format!("unable to read configuration file as {}: {why}", ids.user),
            )
            .fix(format!("chown {} {q} && chmod u+r {q}", ids.owner(), q = shell_quote(&conf))),
        );
    }

    // Ownership and modes of everything the store owns.
    let mut offenders = Vec::new();
    for root in store_roots(config) {
        if root.exists() {
            walk(&root, &root, &ids, &mut offenders, &mut rep.checked);
        }
    }
    offenders.sort_by_key(|o| (o.uid != 0, o.path.clone()));
    let mut roots_owner: Vec<PathBuf> = Vec::new();
    let mut roots_mode: Vec<PathBuf> = Vec::new();
    for o in &offenders {
        let wrong_owner = o.uid != ids.uid || o.gid != ids.gid;
        let what = if o.uid == 0 && ids.uid != 0 {
            "root-owned"
        } else if wrong_owner {
            "wrong owner"
        } else {
            "owner lacks permission"
        };
        rep.findings.push(
            Finding::at(
                Severity::Error,
                if wrong_owner { "owner" } else { "mode" },
                o.path.display().to_string(),
                format!(
                    "{what}: uid {} gid {} mode {:04o}, expected {} ({}:{})",
                    o.uid,
                    o.gid,
                    o.mode & 0o7777,
                    ids.owner(),
                    ids.uid,
                    ids.gid
                ),
            )
            .fix(if wrong_owner {
                format!("chown -R {} {}", ids.owner(), shell_quote(&o.root.to_string_lossy()))
            } else {
                format!("chmod -R u+rwX {}", shell_quote(&o.root.to_string_lossy()))
            }),
        );
        let list = if wrong_owner { &mut roots_owner } else { &mut roots_mode };
        if !list.contains(&o.root) {
            list.push(o.root.clone());
        }
    }
    let q = |v: &[PathBuf]| v.iter().map(|p| shell_quote(&p.to_string_lossy())).collect::<Vec<_>>().join(" ");
    if !roots_owner.is_empty() {
        rep.fixes.push(format!("chown -R {} {}", ids.owner(), q(&roots_owner)));
    }
    if !roots_mode.is_empty() {
        rep.fixes.push(format!("chmod -R u+rwX {}", q(&roots_mode)));
    }
    rep
}

fn walk(root: &Path, path: &Path, ids: &RuntimeIds, out: &mut Vec<Offender>, checked: &mut u64) {
    let Ok(m) = std::fs::symlink_metadata(path) else { return };
    *checked += 1;
    let need = if m.is_dir() { 0o700 } else { 0o600 };
    if m.uid() != ids.uid || m.gid() != ids.gid || (!m.file_type().is_symlink() && m.mode() & need != need) {
        out.push(Offender {
            path: path.to_path_buf(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            root: root.to_path_buf(),
        });
    }
    if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            let mut kids: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            kids.sort();
            for k in kids {
                walk(root, &k, ids, out, checked);
            }
        }
    }
}

/// Apply the ownership and mode fixes (as root): `chown -R` and `chmod -R u+rwX` of every
/// root that holds an offender. Returns how many entries were changed.
pub fn fix(config: &Config) -> crate::Result<u64> {
    let ids = privs::resolve(config)?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(crate::Error::Invalid("mstore doctor --fix changes owners: run it as root".into()));
    }
    let mut changed = 0;
    for root in store_roots(config) {
        if root.exists() {
            fix_tree(&root, &ids, &mut changed)?;
        }
    }
    let conf = &config.path;
    if let Ok(m) = std::fs::metadata(conf) {
        if m.uid() != ids.uid || m.gid() != ids.gid || m.mode() & 0o400 == 0 {
            std::os::unix::fs::lchown(conf, Some(ids.uid), Some(ids.gid))
                .map_err(|e| crate::Error::io("chown", conf, e))?;
            set_mode(conf, m.mode() | 0o400)?;
            changed += 1;
        }
    }
    Ok(changed)
}

fn set_mode(p: &Path, mode: u32) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| crate::Error::io("chmod", p, e))
}

fn fix_tree(path: &Path, ids: &RuntimeIds, changed: &mut u64) -> crate::Result<()> {
    let m = std::fs::symlink_metadata(path).map_err(|e| crate::Error::io("stat", path, e))?;
    if m.uid() != ids.uid || m.gid() != ids.gid {
        std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
            .map_err(|e| crate::Error::io("chown", path, e))?;
        *changed += 1;
    }
    if !m.file_type().is_symlink() {
        let need = if m.is_dir() { 0o700 } else { 0o600 };
        if m.mode() & need != need {
            set_mode(path, m.mode() | need)?;
            *changed += 1;
        }
    }
    if m.is_dir() {
        for e in std::fs::read_dir(path).map_err(|e| crate::Error::io("list", path, e))? {
            let e = e.map_err(|err| crate::Error::io("list", path, err))?;
            fix_tree(&e.path(), ids, changed)?;
        }
    }
    Ok(())
}
