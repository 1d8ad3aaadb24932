//! The embedded store: open a store from its configuration, create, list, rename and
//! delete mailboxes, and open them for reading or writing.

pub mod derive;
pub mod mailbox;
pub mod mboxlist;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use mailbox::{CreateParams, FlagOp, Mailbox, MailboxPlace, NewMessage};
pub use mboxlist::{MailboxEntry, MailboxList};

use crate::config::Config;
use crate::db::{Access, Env, EnvOptions};
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, LockMode, RealFs};
use crate::layout::{self, DELETED_DIR, MailboxName};
use crate::util::{hex, now, random_id, shell_quote};

/// Options for a new mailbox; `None` fields get fresh values.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Partition name (default: the configuration's `default-partition`).
    pub partition: Option<String>,
    /// Unique id (default: random).
    pub unique_id: Option<[u8; 16]>,
    /// UID validity (default: the current time).
    pub uid_validity: Option<u32>,
    /// Creation time (default: now).
    pub created: Option<i64>,
    /// ACL (default: all rights for the owner of a personal mailbox, `lrs` for anyone on
    /// a shared one).
    pub acl: Option<String>,
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    config: Config,
    env: Env,
    fs: Arc<dyn Fs>,
}

impl Store {
    /// Open an existing store.
    pub fn open(config: Config) -> Result<Store> {
        Store::open_on(config, RealFs::shared())
    }

    /// Open an existing store whose files are reached through `fs` (the real file system,
    /// or a recording or fault-injecting one in the crash tests).
    pub fn open_on(config: Config, fs: Arc<dyn Fs>) -> Result<Store> {
        Store::open_for(config, fs, Access::ReadWrite)
    }

    /// Open an existing store for reading only: its databases are opened read-only
    /// ([`Access::ReadOnly`]: nothing finished, nothing opened for writing), and every
    /// change through it (a mailbox created, renamed or deleted, a mailbox opened for
    /// writing) is refused. What `verify`, `show`, `ls`, `export` and dry runs use.
    pub fn open_read_only(config: Config) -> Result<Store> {
        Store::open_for(config, RealFs::shared(), Access::ReadOnly)
    }

    /// Open an existing store through `fs` for `access`.
    pub fn open_for(config: Config, fs: Arc<dyn Fs>, access: Access) -> Result<Store> {
        let dir = config.database_path.clone();
        let opts = EnvOptions { fs: Arc::clone(&fs), ..EnvOptions::from_config(&config) };
        let env = match Env::open_for(&dir, opts, access) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let conf = shell_quote(&config.path.to_string_lossy());
                return Err(Error::Invalid(format!(
                    "unable to open database: database home {} is missing (ms-path {} from {}); if the store had databases, `msdb_repair -f {conf}` recreates them from the last backup and `reconstruct -f {conf} -r DOMAIN` registers each domain's mailboxes again; a new store is made with `mstore init -f {conf}`",
                    dir.display(),
                    config.ms_path.display(),
                    config.path.display(),
                )));
            }
            other => other?,
        };
        Ok(Store { config, env, fs })
    }

    /// Recreate a missing database home (empty databases) for a repair command, when the
    /// store itself is there (ms-path exists: a missing ms-path is more likely a wrong
    /// `-f` or `ms-path` than a lost database, and is refused with the fix). Returns what
    /// was done, for the report; `None` when the home exists.
    pub fn recreate_database_home(config: &Config) -> Result<Option<String>> {
        let home = &config.database_path;
        let fs = RealFs;
        match fs.metadata(home) {
            Ok(_) => return Ok(None),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("look at", home, e)),
            Err(_) => {}
        }
        if !fs.metadata(&config.ms_path).is_ok_and(|m| m.is_dir) {
            return Err(Error::NeedsRepair {
                reason: format!(
                    "unable to open database: the database home {} and ms-path {} (from {}) are both missing: is this the right configuration file?",
                    home.display(),
                    config.ms_path.display(),
                    config.path.display()
                ),
                fix: format!("mstore init -f {}", shell_quote(&config.path.to_string_lossy())),
            });
        }
        Env::create_with(home, crate::db::EnvOptions::from_config(config))?;
        Ok(Some(format!(
            "the database home {} was missing: recreated with empty databases (the mailbox list, subscriptions); mailboxes found on disk are registered again by reconstruct",
            home.display()
        )))
    }

    /// Create the store's directories (ms-path, database home, partitions) if missing,
    /// then open it.
    pub fn init(config: Config) -> Result<Store> {
        Store::init_on(config, RealFs::shared())
    }

    /// [`Store::init`] through `fs`.
    pub fn init_on(config: Config, fs: Arc<dyn Fs>) -> Result<Store> {
        fs.create_dir_all(&config.ms_path).ctx("create ms-path", &config.ms_path)?;
        for dir in config.partitions.values() {
            fs.create_dir_all(dir).ctx("create partition", dir)?;
        }
        let opts = EnvOptions { fs: Arc::clone(&fs), ..EnvOptions::from_config(&config) };
        Env::create_with(&config.database_path, opts)?;
        Store::open_on(config, fs)
    }

    /// The file system the store's files are reached through.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Refused unless the store was opened for writing.
    fn writable(&self) -> Result<()> {
        match self.env.access() {
            Access::ReadWrite => Ok(()),
            Access::ReadOnly => Err(Error::Invalid(format!(
                "the store of {} was opened read-only; nothing can be changed through it",
                self.config.path.display()
            ))),
        }
    }

    /// The database environment.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The mailbox list.
    pub fn mailbox_list(&self) -> MailboxList<'_> {
        MailboxList::new(&self.env)
    }

    /// Registered mailboxes of `domain` (or of every domain), sorted.
    pub fn list(&self, domain: Option<&str>) -> Result<Vec<MailboxEntry>> {
        self.mailbox_list().list(domain)
    }

    /// The list entry of a mailbox.
    pub fn entry(&self, domain: &str, name: &MailboxName) -> Result<MailboxEntry> {
        self.mailbox_list()
            .get(domain, name)?
            .ok_or_else(|| Error::NoSuchMailbox { domain: domain.to_string(), name: name.to_string() })
    }

    /// Root directory of a partition.
    pub fn partition_root(&self, partition: &str) -> Result<&Path> {
        self.config
            .partition(partition)
            .ok_or_else(|| Error::NoSuchPartition { name: partition.to_string(), config: self.config.path.clone() })
    }

    /// Where a listed mailbox lives.
    pub fn place(&self, entry: &MailboxEntry) -> Result<MailboxPlace> {
        let root = self.partition_root(&entry.partition)?;
        Ok(MailboxPlace {
            domain: entry.domain.clone(),
            name: entry.name.clone(),
            partition: entry.partition.clone(),
            dir: layout::mailbox_dir(root, &entry.domain, &entry.name),
            config_path: self.config.path.clone(),
            durability: self.config.durability,
            fs: Arc::clone(&self.fs),
        })
    }

    /// Create a mailbox and register it; returns it open for writing.
    pub fn create_mailbox(&self, domain: &str, name: &MailboxName, opts: CreateOptions) -> Result<Mailbox> {
        self.writable()?;
        let domain = layout::domain(domain)?;
        if self.mailbox_list().get(&domain, name)?.is_some() {
            return Err(Error::MailboxExists { domain, name: name.to_string() });
        }
        let partition = opts.partition.unwrap_or_else(|| self.config.default_partition.clone());
        let created = opts.created.unwrap_or_else(now);
        let entry = MailboxEntry {
            domain: domain.clone(),
            name: name.clone(),
            partition,
            unique_id: opts.unique_id.unwrap_or_else(random_id),
            uid_validity: opts.uid_validity.unwrap_or_else(|| (now() as u32).max(1)),
            created,
            acl: opts.acl.unwrap_or_else(|| default_acl(name)),
            highest_modseq: 0,
        };
        let place = self.place(&entry)?;
        // Files first, then the list entry: a crash in between leaves a directory that
        // reconstruct finds and registers, never a list entry without files.
        let mb = Mailbox::create(
            place,
            CreateParams { unique_id: entry.unique_id, uid_validity: entry.uid_validity, created },
        )?;
        self.mailbox_list().change(&[entry], &[])?;
        Ok(mb)
    }

    /// Open a mailbox for reading.
    pub fn open_mailbox(&self, domain: &str, name: &MailboxName) -> Result<Mailbox> {
        Mailbox::open(self.place(&self.entry(domain, name)?)?)
    }

    /// Open a mailbox for writing (takes its lock).
    pub fn open_mailbox_locked(&self, domain: &str, name: &MailboxName) -> Result<Mailbox> {
        self.writable()?;
        Mailbox::open_locked(self.place(&self.entry(domain, name)?)?)
    }

    /// Rename a mailbox and every mailbox below it (as IMAP RENAME does). The directory
    /// tree moves in one rename on its partition.
    pub fn rename_mailbox(&self, domain: &str, old: &MailboxName, new: &MailboxName) -> Result<()> {
        self.writable()?;
        let entry = self.entry(domain, old)?;
        if new.is_within(old) {
            return Err(Error::Invalid(format!("cannot rename {old} to {new}, which lies inside it")));
        }
        let all = self.list(Some(domain))?;
        let moving: Vec<&MailboxEntry> = all.iter().filter(|e| e.name.is_within(old)).collect();
        let mut renamed = Vec::with_capacity(moving.len());
        for e in &moving {
            let suffix = &e.name.as_str()[old.as_str().len()..];
            let target = MailboxName::parse(&format!("{new}{suffix}"))?;
            if all.iter().any(|x| x.name == target) {
                return Err(Error::MailboxExists { domain: domain.to_string(), name: target.to_string() });
            }
            if e.partition != entry.partition {
                return Err(Error::Invalid(format!(
                    "{} is on partition {} but {} is on {}: rename the sub-mailboxes separately",
                    e.name, e.partition, old, entry.partition
                )));
            }
            renamed.push(((*e).clone(), target));
        }
        let from = self.place(&entry)?.dir;
        let root = self.partition_root(&entry.partition)?;
        let to = layout::mailbox_dir(root, domain, new);
        let fs = &*self.fs;
        if crate::fs::exists(fs, &to).ctx("look at", &to)? {
            return Err(Error::Invalid(format!(
                "{} already exists on disk; cannot rename {old} onto it",
                to.display()
            )));
        }
        let _lock = Mailbox::open_locked(self.place(&entry)?)?;
        if let Some(parent) = to.parent() {
            fs.create_dir_all(parent).ctx("create directory", parent)?;
        }
        fs.rename_noreplace(&from, &to).ctx("rename mailbox directory", &from)?;
        let d = self.config.durability;
        for dir in [from.parent(), to.parent()].into_iter().flatten() {
            crate::fs::sync_dir(fs, dir, d).ctx("sync directory", dir)?;
        }
        drop(_lock);
        let puts: Vec<MailboxEntry> =
            renamed.iter().map(|(e, target)| MailboxEntry { name: target.clone(), ..e.clone() }).collect();
        let deletes: Vec<(String, MailboxName)> =
            renamed.iter().map(|(e, _)| (e.domain.clone(), e.name.clone())).collect();
        self.mailbox_list().change(&puts, &deletes)?;
        for e in &puts {
            let mut mb = Mailbox::open_locked(self.place(e)?)?;
            mb.set_name(&e.name)?;
        }
        Ok(())
    }

    /// Delete a mailbox: unregister it and move its files to the partition's `.deleted`
    /// area (never unlinked here). Sub-mailboxes stay.
    pub fn delete_mailbox(&self, domain: &str, name: &MailboxName) -> Result<PathBuf> {
        self.writable()?;
        let entry = self.entry(domain, name)?;
        let place = self.place(&entry)?;
        let root = self.partition_root(&entry.partition)?;
        let dest_parent = root.join(DELETED_DIR).join(domain);
        let fs = &*self.fs;
        fs.create_dir_all(&dest_parent).ctx("create directory", &dest_parent)?;
        let dest = dest_parent.join(format!("{}-{}", hex(&entry.unique_id), now()));
        let lock = fs.lock(&place.dir, LockMode::Exclusive).ctx("lock mailbox", &place.dir)?;
        let d = self.config.durability;
        let names = fs.list(&place.dir).ctx("list", &place.dir)?;
        let is_child = |n: &String| layout::classify(n.as_bytes()) == layout::EntryKind::SubMailbox;
        if names.iter().any(is_child) {
            fs.create_dir_all(&dest).ctx("create directory", &dest)?;
            for n in names.iter().filter(|n| !is_child(n)) {
                let from = place.dir.join(n);
                fs.rename_noreplace(&from, &dest.join(n)).ctx("move aside", &from)?;
            }
            crate::fs::sync_dir(fs, &dest, d).ctx("sync directory", &dest)?;
            crate::fs::sync_dir(fs, &place.dir, d).ctx("sync directory", &place.dir)?;
        } else {
            fs.rename_noreplace(&place.dir, &dest).ctx("move aside", &place.dir)?;
            if let Some(p) = place.dir.parent() {
                crate::fs::sync_dir(fs, p, d).ctx("sync directory", p)?;
            }
        }
        crate::fs::sync_dir(fs, &dest_parent, d).ctx("sync directory", &dest_parent)?;
        drop(lock);
        self.mailbox_list().change(&[], &[(entry.domain.clone(), entry.name.clone())])?;
        Ok(dest)
    }
}

fn default_acl(name: &MailboxName) -> String {
    match name.owner() {
        Some(user) => format!("{user}\tlrswipkxtecda"),
        None => "anyone\tlrs".to_string(),
    }
}

#[cfg(test)]
mod tests;
