//! The runtime user: resolving it, switching to it, and checking what it may access.
//!
//! The most common cause of trouble, in the M-Store administration guide, is running `reconstruct` and `msdb_*` as root,
//! which leaves root-owned files the store (running as `sms`) cannot write. Every command
//! that writes to the store calls [`become_runtime_user`] before it opens anything: started
//! as root, it drops the supplementary groups and switches group then user to the
//! configuration's runtime user; if that user does not exist it refuses.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Config;
use crate::error::{Error, Result};

/// The runtime user and group, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeIds {
    /// User name.
    pub user: String,
    /// Group name.
    pub group: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups of the user (from the group database).
    pub groups: Vec<u32>,
}

impl RuntimeIds {
    /// `user:group`, as `chown` takes it.
    pub fn owner(&self) -> String {
        format!("{}:{}", self.user, self.group)
    }
}

/// Look up the configuration's runtime user and group.
pub fn resolve(config: &Config) -> Result<RuntimeIds> {
    let user = User::from_name(&config.runtime_user)
        .map_err(|e| Error::Invalid(format!("cannot look up runtime user {}: {e}", config.runtime_user)))?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "runtime user {:?} (runtime-user in {}) does not exist: create it (useradd --system {}) or set runtime-user to the user that owns the store",
                config.runtime_user,
                config.path.display(),
                config.runtime_user
            ))
        })?;
    let group = Group::from_name(&config.runtime_group)
        .map_err(|e| Error::Invalid(format!("cannot look up runtime group {}: {e}", config.runtime_group)))?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "runtime group {:?} (runtime-group in {}) does not exist: create it (groupadd --system {}) or set runtime-group",
                config.runtime_group,
                config.path.display(),
                config.runtime_group
            ))
        })?;
    let groups = nix::unistd::getgrouplist(
        &std::ffi::CString::new(config.runtime_user.as_str()).map_err(|_| Error::Invalid("bad user name".into()))?,
        group.gid,
    )
    .map(|v| v.into_iter().map(Gid::as_raw).collect())
    .unwrap_or_else(|_| vec![group.gid.as_raw()]);
    Ok(RuntimeIds {
        user: config.runtime_user.clone(),
        group: config.runtime_group.clone(),
        uid: user.uid.as_raw(),
        gid: group.gid.as_raw(),
        groups,
    })
}

/// What [`become_runtime_user`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Started as root; now running as the runtime user and group.
    Switched(RuntimeIds),
    /// Already the runtime user.
    AlreadyRuntimeUser,
    /// Neither root nor the runtime user: files it creates will belong to this user.
    OtherUser {
        /// Who we are.
        uid: u32,
        /// Who the store expects.
        expected: String,
    },
}

/// Switch to the runtime user if started as root (supplementary groups dropped, then the
/// group, then the user: the order that makes the switch irrevocable). Refuses if the
/// runtime user does not exist while running as root.
pub fn become_runtime_user(config: &Config) -> Result<Switch> {
    let euid = Uid::effective();
    if !euid.is_root() {
        return Ok(match resolve(config) {
            Ok(ids) if ids.uid == euid.as_raw() => Switch::AlreadyRuntimeUser,
            _ => Switch::OtherUser { uid: euid.as_raw(), expected: config.runtime_user.clone() },
        });
    }
    let ids = resolve(config).map_err(|e| {
        Error::Invalid(format!("refusing to run as root, which would leave root-owned files in the store: {e}"))
    })?;
    if ids.uid == 0 {
        refuse_root_on_foreign_store(config)?;
        return Ok(Switch::AlreadyRuntimeUser);
    }
    let fail = |what: &str, e: nix::Error| {
        Error::Invalid(format!("cannot switch to runtime user {}: {what}: {e}", ids.owner()))
    };
    nix::unistd::setgroups(&[]).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(Gid::from_raw(ids.gid)).map_err(|e| fail("setgid", e))?;
    nix::unistd::setuid(Uid::from_raw(ids.uid)).map_err(|e| fail("setuid", e))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::Invalid("switching to the runtime user did not drop root: refusing to go on".into()));
    }
    Ok(Switch::Switched(ids))
}

/// `runtime-user: root` is accepted only for a store root owns: on a store that belongs to
/// another user, files a command writes as root would be root's, and the store (running as
/// its owner) could no longer write them. Refused with the fix.
fn refuse_root_on_foreign_store(config: &Config) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut dirs = vec![&config.ms_path, &config.database_path];
    dirs.extend(config.partitions.values());
    for dir in dirs {
        let Ok(m) = std::fs::metadata(dir) else { continue };
        if m.uid() == 0 {
            continue;
        }
        let name = User::from_uid(Uid::from_raw(m.uid())).ok().flatten().map(|u| u.name);
        let conf = crate::util::shell_quote(&config.path.to_string_lossy());
        let command: Vec<String> = std::env::args().map(|a| crate::util::shell_quote(&a)).collect();
        let who = name.clone().unwrap_or_else(|| format!("uid {}", m.uid()));
        let fix = match &name {
            Some(n) => format!(
                "set `runtime-user: {n}` (and its group) in {conf}, then run the command as root again (it switches to {n}), or run it as {n}: su -s /bin/sh {n} -c {}",
                crate::util::shell_quote(&command.join(" "))
            ),
            None => format!(
                "set runtime-user in {conf} to the user with uid {} (su -s /bin/sh USER -c '...' runs a command as that user)",
                m.uid()
            ),
        };
        return Err(Error::NeedsRepair {
            reason: format!(
                "must not run as root: {} says runtime-user: root, but {} belongs to {who} (uid {}), and files written now would belong to root, which the store cannot write",
                config.path.display(),
                dir.display(),
                m.uid()
            ),
            fix,
        });
    }
    Ok(())
}

/// The first directory on the way to `dir` (`dir` included) that someone other than `me`
/// and root can change, and who: a directory owned by another user, or writable by a
/// group other than root's or by everyone without the sticky bit. Files created below
/// such a directory can be redirected by that someone (a planted link, a directory swapped
/// for another), so a command running as `me` must not create files there on anyone's
/// behalf. Both the path as given and the path its links resolve to are looked at.
pub fn controlled_by_others(dir: &Path, me: u32) -> Option<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut chains = vec![std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())];
    if let Ok(c) = std::fs::canonicalize(dir) {
        chains.push(c);
    }
    let name = |uid: u32| User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name);
    for chain in chains {
        for d in chain.ancestors() {
            let Ok(m) = std::fs::symlink_metadata(d) else { continue };
            let mode = m.mode();
            let sticky = mode & 0o1000 != 0;
            let who = if m.uid() != me && m.uid() != 0 {
                Some(format!("its owner {} (uid {})", name(m.uid()).unwrap_or_default(), m.uid()))
            } else if m.file_type().is_symlink() {
                None
            } else if m.gid() != 0 && mode & 0o020 != 0 && !sticky {
                Some(format!("group gid {} (it is group-writable)", m.gid()))
            } else if mode & 0o002 != 0 && !sticky {
                Some("every user (it is world-writable)".to_string())
            } else {
                None
            };
            if let Some(who) = who {
                return Some((d.to_path_buf(), who));
            }
        }
    }
    None
}

/// The user and group running this process, by name (for a store they own: the demo, tests).
pub fn current_user_and_group() -> (String, String) {
    use nix::unistd::{Group, User, getgid, getuid};
    let user = User::from_uid(getuid()).ok().flatten().map(|u| u.name).unwrap_or_else(|| getuid().to_string());
    let group = Group::from_gid(getgid()).ok().flatten().map(|g| g.name).unwrap_or_else(|| getgid().to_string());
    (user, group)
}

/// Whether `ids` may read `path` (list it, for a directory), judged from owners and
/// modes (the path's parents need search permission). `Err` explains the first obstacle.
pub fn can_read(ids: &RuntimeIds, path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if ids.uid == 0 {
        return Ok(());
    }
    let bits = |m: &std::fs::Metadata, r: u32, w: u32, x: u32| -> bool {
        let mode = m.mode();
        let (sr, sw, sx) = if m.uid() == ids.uid {
            (0o400, 0o200, 0o100)
        } else if ids.groups.contains(&m.gid()) || m.gid() == ids.gid {
            (0o040, 0o020, 0o010)
        } else {
            (0o004, 0o002, 0o001)
        };
        (r == 0 || mode & sr != 0) && (w == 0 || mode & sw != 0) && (x == 0 || mode & sx != 0)
    };
    let mut parents: Vec<PathBuf> =
        path.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).collect();
    parents.reverse();
    for p in parents {
        let m = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !bits(&m, 0, 0, 1) {
            return Err(format!(
                "{} (owner uid {}, mode {:04o}) does not let {} search it",
                p.display(),
                m.uid(),
                m.mode() & 0o7777,
                ids.user
            ));
        }
    }
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ok = if m.is_dir() { bits(&m, 1, 0, 1) } else { bits(&m, 1, 0, 0) };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} (owner uid {} gid {}, mode {:04o}) is not readable by {}",
            path.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777,
            ids.user
        ))
    }
}
