//! The database commands: `msdb_recover`, `msdb_backup`, `msdb_verify`, `msdb_restore`,
//! `msdb_repair` (also `mstore recover|backup|db-verify|restore|repair`). Each turns its
//! arguments into one call of [`crate::db`], prints the report and picks the exit status.
//!
//! Failures that an administrator fixes with `chown` (the guide's "i/o error" and
//! "unable to open database") name the path, its owner and mode, and print the `chown -R`
//! that repairs them, with the runtime user and group of the configuration.

use std::path::{Path, PathBuf};

use super::args::{BackupArgs, DbVerifyArgs, RecoverArgs, RepairArgs, RestoreArgs};
use super::render::DryRun;
use super::{emit, load_config};
use crate::config::Config;
use crate::db::backup::{self, BackupOptions};
use crate::db::log::Limit;
use crate::db::recover::{Mode, RecoverOptions};
use crate::db::repair::RepairOptions;
use crate::db::{DbError, EnvOptions, restore, verify};
use crate::error::{Error, Result};
use crate::fs::RealFs;
use crate::report::{Exit, Format, Run};

/// Still root after [`super::load_config_for_writing`] (the runtime user is root): refuse
/// on a store owned by someone else, as every file written would be left owned by root
/// (the guide's first cause of permission problems).
fn refuse_root(cfg: &Config, prog: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let home = &cfg.database_path;
    let Ok(meta) = std::fs::metadata(home) else { return Ok(()) };
    if meta.uid() == 0 {
        return Ok(());
    }
    Err(Error::NeedsRepair {
        reason: format!(
            "{prog} must not run as root: the database home {} belongs to uid {}, and files written now would belong to root",
            home.display(),
            meta.uid()
        ),
        fix: format!(
            "su -s /bin/sh {} -c '{prog} -f {}'",
            cfg.runtime_user,
            crate::util::shell_quote(&cfg.path.to_string_lossy())
        ),
    })
}

/// Add the `chown -R` fix to a permission error.
fn explain(err: Error, cfg: &Config) -> Error {
    let denied = match &err {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
        _ => false,
    };
    if !denied {
        return err;
    }
    let mut paths: Vec<&Path> = vec![&cfg.ms_path];
    for p in [&cfg.database_path, &cfg.backup_path] {
        if !p.starts_with(&cfg.ms_path) {
            paths.push(p);
        }
    }
    Error::NeedsRepair {
        reason: err.to_string(),
        fix: crate::error::chown_fix(&cfg.runtime_user, &cfg.runtime_group, &paths),
    }
}

/// Whether an error means the databases are damaged (exit 4) rather than that the
/// command could not run (exit 8).
fn is_damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. }
            | Error::Db(
                DbError::LogCorrupt { .. }
                    | DbError::LogGap { .. }
                    | DbError::NeedsRecovery { .. }
                    | DbError::Refused(_)
            )
    )
}

fn fail(prog: &str, e: &Error) -> Exit {
    eprintln!("{prog}: {e}");
    if is_damage(e) { Exit::Unrepaired } else { Exit::Error }
}

fn backup_path(cfg: &Config, name: &str) -> PathBuf {
    if name.contains('/') { PathBuf::from(name) } else { cfg.backup_path.join(name) }
}

/// A lost database home, recreated (empty) for a repair command, said on standard error
/// (standard output may be JSON); `true` if it was. Not in a dry run.
fn recreate_home(cfg: &Config, prog: &str, run: Run) -> Result<bool> {
    if run == Run::DryRun {
        return Ok(false);
    }
    let note = crate::store::Store::recreate_database_home(cfg)?;
    if let Some(n) = &note {
        eprintln!(
            "{prog}: note: {n}: run `reconstruct -f {} -r DOMAIN` for each domain",
            crate::util::shell_quote(&cfg.path.to_string_lossy())
        );
    }
    Ok(note.is_some())
}

/// At least "repaired" when the database home had to be recreated.
fn at_least_repaired(exit: Exit, recreated: bool) -> Exit {
    if recreated && exit == Exit::Ok { Exit::Repaired } else { exit }
}

/// `msdb_recover`.
pub fn recover(a: &RecoverArgs) -> Result<Exit> {
    let prog = "msdb_recover";
    let cfg = super::load_config_for_writing(&a.common)?;
    refuse_root(&cfg, prog)?;
    let recreated = recreate_home(&cfg, prog, Run::dry_run_if(a.dry_run))?;
    let fs = RealFs;
    let mode = if a.strict {
        Mode::Strict
    } else if a.point_in_time {
        Mode::PointInTime
    } else if let Some(n) = a.to_lsn {
        Mode::Until(Limit::Lsn(n))
    } else if let Some(t) = &a.to_time {
        let d = crate::message::DateTime::from_rfc3339(t)
            .ok_or_else(|| Error::Invalid(format!("--to-time {t:?} is not an RFC 3339 date")))?;
        Mode::Until(Limit::Time(d.unix))
    } else if a.catastrophic {
        let path = match &a.backup {
            Some(n) => backup_path(&cfg, n),
            None => restore::choose(&fs, &cfg.backup_path, None).map_err(|e| explain(e, &cfg))?.path,
        };
        Mode::Catastrophic(path)
    } else {
        Mode::Normal
    };
    let opts = RecoverOptions { mode, durability: cfg.durability, dry_run: a.dry_run };
    match crate::db::recover::recover(&fs, &cfg.database_path, &opts) {
        Ok(rep) => emit(&rep, Format::json_if(a.json)).map(|e| at_least_repaired(e, recreated)),
        Err(e) => Ok(fail(prog, &explain(e, &cfg))),
    }
}

/// `msdb_backup`: silent on success (unless `--verbose`), one line and a non-zero status
/// on failure.
pub fn backup(a: &BackupArgs) -> Result<Exit> {
    let prog = "msdb_backup";
    let cfg = super::load_config_for_writing(&a.common)?;
    refuse_root(&cfg, prog)?;
    let opts = BackupOptions { backup_dir: cfg.backup_path.clone(), keep: cfg.backup_keep };
    match backup::backup(&EnvOptions::from_config(&cfg), &cfg.database_path, &opts, &mut |_| {}) {
        Ok(rep) if a.verbose => emit(&rep, Format::Text),
        Ok(_) => Ok(Exit::Ok),
        Err(e) => Ok(fail(prog, &explain(e, &cfg))),
    }
}

/// `msdb_verify`.
pub fn db_verify(a: &DbVerifyArgs) -> Result<Exit> {
    let prog = "msdb_verify";
    let cfg = load_config(&a.common)?;
    let rep = match verify::verify(&RealFs, &cfg.database_path) {
        Ok(r) => r,
        Err(e) => return Ok(fail(prog, &explain(e, &cfg))),
    };
    emit(&rep, Format::json_if(a.json))
}

/// `msdb_restore`.
pub fn restore(a: &RestoreArgs) -> Result<Exit> {
    let prog = "msdb_restore";
    let cfg = super::load_config_for_writing(&a.common)?;
    refuse_root(&cfg, prog)?;
    recreate_home(&cfg, prog, Run::dry_run_if(a.dry_run))?;
    let name = a.backup.as_deref();
    match restore::restore(
        &RealFs,
        &cfg.database_path,
        &cfg.backup_path,
        name,
        cfg.durability,
        Run::dry_run_if(a.dry_run),
    ) {
        Ok(rep) => emit(&DryRun { report: &rep, run: Run::dry_run_if(a.dry_run) }, Format::json_if(a.json)),
        Err(e) => Ok(fail(prog, &explain(e, &cfg))),
    }
}

/// `msdb_repair`.
pub fn repair(a: &RepairArgs) -> Result<Exit> {
    let prog = "msdb_repair";
    let cfg = super::load_config_for_writing(&a.common)?;
    refuse_root(&cfg, prog)?;
    if recreate_home(&cfg, prog, Run::dry_run_if(a.dry_run))? {
        // Nothing to recover from: the last good backup is the best state there is (the
        // ladder's third rung); with none, the empty databases stay.
        return match restore::restore(&RealFs, &cfg.database_path, &cfg.backup_path, None, cfg.durability, Run::Apply) {
            Ok(rep) => emit(&DryRun { report: &rep, run: Run::Apply }, Format::json_if(a.json)).map(|_| Exit::Restored),
            Err(e) => {
                eprintln!("{prog}: no backup restored ({e}); the databases are empty");
                Ok(Exit::Repaired)
            }
        };
    }
    let opts = RepairOptions { backup_dir: cfg.backup_path.clone(), durability: cfg.durability, dry_run: a.dry_run };
    let rep = match crate::db::repair::repair(&RealFs, &cfg.database_path, &opts) {
        Ok(r) => r,
        Err(e) => return Ok(fail(prog, &explain(e, &cfg))),
    };
    emit(&DryRun { report: &rep, run: Run::dry_run_if(a.dry_run) }, Format::json_if(a.json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_get_the_chown_fix_with_the_runtime_user() {
        let cfg = Config::parse(
            Path::new("/etc/md/store/ms.conf"),
            b"ms-path: /var/md/store\nruntime-user: sms\nruntime-group: mail\nbackup-path: /backup/ms\n",
        )
        .expect("config");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = explain(Error::io("open database", "/var/md/store/database/mailboxes.db", denied), &cfg);
        let text = e.to_string();
        assert!(text.contains("permission denied"), "{text}");
        assert!(text.ends_with("repair it with: chown -R sms:mail /var/md/store /backup/ms"), "{text}");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = explain(Error::io("open database", "/x", missing), &cfg);
        assert!(!e.to_string().contains("chown"), "{e}");
        assert!(is_damage(&Error::corrupt("/x", 0, "bad")));
        assert!(!is_damage(&Error::Invalid("usage".into())));
    }
}
