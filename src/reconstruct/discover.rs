//! Which mailboxes a `reconstruct` (or verify) run covers: the seed's argument rules
//! applied to the mailbox list and to what is on disk.
//!
//! - `domain` alone with `-r`: every mailbox of the domain.
//! - `-u user`: arguments are in the user's personal hierarchy (`INBOX` is `user/USER`);
//!   with no argument, the user's INBOX (and with `-r`, everything below it).
//! - with `-r`, each argument is a mailbox or a prefix: it and every mailbox below it.
//! - mailboxes found on disk but missing from the mailbox list are included (and reported).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::layout::{self, MailboxName};
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

/// A directory listing taken during discovery, with the directory's mtime read before
/// it was taken. The planner reuses it if, under the mailbox lock, the directory's mtime
/// is still the same: no entry was created, removed or renamed since (saving a second
/// `getdents` pass). Listings of directories modified within 100 ms of the listing are
/// not kept: a change in the same coarse clock tick would not move the mtime.
#[derive(Clone, Debug)]
pub struct ListingHint {
    /// The directory's mtime before listing (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// The listing.
    pub listing: std::sync::Arc<super::plan::Listing>,
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
    /// Its directory listing from discovery, if still reusable.
    pub hint: Option<ListingHint>,
}

/// Problems found while selecting (an argument naming nothing, a duplicate directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionNote {
    /// What was wrong.
    pub message: String,
    /// Whether it is an error (the run cannot do what was asked).
    pub error: bool,
}

/// A mailbox directory found on disk.
#[derive(Clone, Debug)]
pub struct Found {
    /// Partition.
    pub partition: String,
    /// Directory.
    pub dir: PathBuf,
    /// Its listing, when reusable.
    pub hint: Option<ListingHint>,
}

fn mtime_of(m: &std::fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.mtime(), m.mtime_nsec())
}

/// Mailbox directories of `domain` on every partition: name → where found. A directory
/// that cannot be looked at or listed is reported in `unreadable` and the walk goes on
/// (mailboxes in it that the mailbox list knows get their own error when processed).
pub fn disk_mailboxes(
    store: &Store,
    domain: &str,
    unreadable: &mut Vec<Error>,
) -> Result<BTreeMap<MailboxName, Vec<Found>>> {
    let mut found: BTreeMap<MailboxName, Vec<Found>> = BTreeMap::new();
    for (pname, root) in &store.config().partitions {
        let droot = root.join(domain);
        if !droot.is_dir() {
            continue;
        }
        let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(droot, Vec::new())];
        while let Some((dir, comps)) = stack.pop() {
            let before = match std::fs::metadata(&dir) {
                Ok(m) => m,
                Err(e) => {
                    unreadable.push(Error::io("stat directory", &dir, e));
                    continue;
                }
            };
            let started = std::time::SystemTime::now();
            let mut subdirs = Vec::new();
            let listing = match super::plan::list_with(&dir, |name| subdirs.push(name.to_string())) {
                Ok(l) => l,
                Err(e) => {
                    unreadable.push(Error::io("list directory", &dir, e));
                    continue;
                }
            };
            for sub in subdirs {
                let mut c = comps.clone();
                c.push(sub.clone());
                stack.push((dir.join(sub), c));
            }
            let is_mailbox = !listing.messages.is_empty()
                || listing.has_header
                || listing.has_index
                || listing.has_cache
                || listing.has_log;
            if is_mailbox && !comps.is_empty() {
                if let Some(name) = MailboxName::from_dir_components(comps.iter().map(String::as_str)) {
                    let settled = before
                        .modified()
                        .ok()
                        .and_then(|m| started.duration_since(m).ok())
                        .is_some_and(|age| age > std::time::Duration::from_millis(100));
                    let hint = settled
                        .then(|| ListingHint { mtime: mtime_of(&before), listing: std::sync::Arc::new(listing) });
                    found.entry(name).or_default().push(Found { partition: pname.clone(), dir, hint });
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
    let mut unreadable = Vec::new();
    let disk = disk_mailboxes(store, &domain, &mut unreadable)?;
    let mut notes: Vec<SelectionNote> = unreadable
        .into_iter()
        .map(|e| SelectionNote {
            message: format!("{domain}: {e}; mailboxes below it were not looked for on disk"),
            error: true,
        })
        .collect();

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
            (None, Some(f)) => f.partition.clone(),
            (None, None) => continue,
        };
        for Found { partition: p, dir, .. } in &dirs {
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
        let mine = dirs.iter().find(|f| f.partition == partition);
        let on_disk = mine.is_some();
        let hint = mine.and_then(|f| f.hint.clone());
        targets.push(Target { name, partition, entry, on_disk, hint });
    }
    Ok((targets, notes))
}

/// Directory of a target.
pub fn target_dir(store: &Store, domain: &str, t: &Target) -> Result<PathBuf> {
    Ok(layout::mailbox_dir(store.partition_root(&t.partition)?, domain, &t.name))
}
