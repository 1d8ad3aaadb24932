//! Which mailboxes a `reconstruct` (or verify) run covers: the seed's argument rules
//! applied to the mailbox list and to what is on disk.
//!
//! - `domain` alone with `-r`: every mailbox of the domain.
//! - `-u user`: arguments are in the user's personal hierarchy (`INBOX` is `user/USER`);
//!   with no argument, the user's INBOX (and with `-r`, everything below it).
//! - with `-r`, each argument is a mailbox or a prefix: it and every mailbox below it.
//! - mailboxes found on disk but missing from the mailbox list are included (and reported).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::{self, EntryKind, MailboxName};
use crate::store::{MailboxEntry, Store};

/// What the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Domain.
    pub domain: String,
    /// `-u user`.
    pub user: Option<String>,
    /// `-r`.
    pub recursive: bool,
    /// Mailbox arguments.
    pub mailboxes: Vec<String>,
}

/// A mailbox to work on.
#[derive(Clone, Debug)]
pub struct Target {
    /// Name.
    pub name: MailboxName,
    /// Partition.
    pub partition: String,
    /// Its list entry, if registered.
    pub entry: Option<MailboxEntry>,
    /// Whether its directory exists.
    pub on_disk: bool,
}

/// Problems found while selecting (an argument naming nothing, a duplicate directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionNote {
    /// What was wrong.
    pub message: String,
    /// Whether it is an error (the run cannot do what was asked).
    pub error: bool,
}

/// Mailbox directories of `domain` on every partition: name → (partition, dir).
pub fn disk_mailboxes(store: &Store, domain: &str) -> Result<BTreeMap<MailboxName, Vec<(String, PathBuf)>>> {
    let mut found: BTreeMap<MailboxName, Vec<(String, PathBuf)>> = BTreeMap::new();
    for (pname, root) in &store.config().partitions {
        let droot = root.join(domain);
        if !droot.is_dir() {
            continue;
        }
        let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(droot, Vec::new())];
        while let Some((dir, comps)) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => return Err(Error::io("list directory", &dir, e)),
            };
            let mut is_mailbox = false;
            for e in rd {
                let e = e.map_err(|err| Error::io("list directory", &dir, err))?;
                let fname = e.file_name();
                match layout::classify(fname.as_encoded_bytes()) {
                    EntryKind::Message(_) | EntryKind::StoreFile => is_mailbox = true,
                    EntryKind::SubMailbox => {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            let mut c = comps.clone();
                            c.push(fname.to_string_lossy().into_owned());
                            stack.push((e.path(), c));
                        }
                    }
                    EntryKind::Temp | EntryKind::Stray => {}
                }
            }
            if is_mailbox && !comps.is_empty() {
                if let Some(name) = MailboxName::from_dir_components(comps.iter().map(String::as_str)) {
                    found.entry(name).or_default().push((pname.clone(), dir));
                }
            }
        }
    }
    Ok(found)
}

/// Resolve a selection to targets, in name order.
pub fn select(store: &Store, sel: &Selection) -> Result<(Vec<Target>, Vec<SelectionNote>)> {
    let domain = layout::domain(&sel.domain)?;
    let listed: BTreeMap<MailboxName, MailboxEntry> =
        store.list(Some(&domain))?.into_iter().map(|e| (e.name.clone(), e)).collect();
    let disk = disk_mailboxes(store, &domain)?;
    let mut notes = Vec::new();

    let bases: Vec<MailboxName> = match (&sel.user, sel.mailboxes.is_empty()) {
        (Some(u), true) => vec![layout::personal_name(u, None)?],
        (Some(u), false) => {
            sel.mailboxes.iter().map(|m| layout::personal_name(u, Some(m))).collect::<Result<Vec<_>>>()?
        }
        (None, false) => sel.mailboxes.iter().map(|m| MailboxName::parse(m)).collect::<Result<Vec<_>>>()?,
        (None, true) if sel.recursive => Vec::new(),
        (None, true) => {
            return Err(Error::Invalid(
                "no mailbox given: name the mailboxes, or use -r to reconstruct the whole domain".into(),
            ));
        }
    };
    let whole_domain = sel.user.is_none() && sel.mailboxes.is_empty();
    let all_names: Vec<&MailboxName> = {
        let mut v: Vec<&MailboxName> = listed.keys().chain(disk.keys()).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut chosen: Vec<MailboxName> = Vec::new();
    if whole_domain {
        chosen.extend(all_names.iter().map(|n| (*n).clone()));
    } else {
        for b in &bases {
            let before = chosen.len();
            for n in &all_names {
                if *n == b || (sel.recursive && n.is_within(b)) {
                    chosen.push((*n).clone());
                }
            }
            if chosen.len() == before {
                notes.push(SelectionNote {
                    message: format!(
                        "{domain}: no mailbox {b}{} in the mailbox list or on any partition",
                        if sel.recursive { " (nor any below it)" } else { "" }
                    ),
                    error: true,
                });
            }
        }
        chosen.sort();
        chosen.dedup();
    }

    let mut targets = Vec::with_capacity(chosen.len());
    for name in chosen {
        let entry = listed.get(&name).cloned();
        let dirs = disk.get(&name).cloned().unwrap_or_default();
        let partition = match (&entry, dirs.first()) {
            (Some(e), _) => e.partition.clone(),
            (None, Some((p, _))) => p.clone(),
            (None, None) => continue,
        };
        for (p, dir) in &dirs {
            if *p != partition {
                notes.push(SelectionNote {
                    message: format!(
                        "{domain}: {name} also has a directory on partition {p} ({}), not the one it is registered on ({partition}); left alone",
                        dir.display()
                    ),
                    error: false,
                });
            }
        }
        let on_disk = dirs.iter().any(|(p, _)| *p == partition);
        targets.push(Target { name, partition, entry, on_disk });
    }
    Ok((targets, notes))
}

/// Directory of a target.
pub fn target_dir(store: &Store, domain: &str, t: &Target) -> Result<PathBuf> {
    Ok(layout::mailbox_dir(store.partition_root(&t.partition)?, domain, &t.name))
}

/// Whether `dir` looks like a mailbox directory.
pub fn looks_like_mailbox(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                matches!(
                    layout::classify(e.file_name().as_encoded_bytes()),
                    EntryKind::Message(_) | EntryKind::StoreFile
                )
            })
        })
        .unwrap_or(false)
}
