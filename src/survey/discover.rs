//! Which mailboxes a `reconstruct` (or verify) run covers: the argument rules of the M-Store
//! administration guide (`reconstruct`, Table 5-2)
//! applied to the mailbox list and to what is on disk.
//!
//! - `domain` alone with `-r`: every mailbox of the domain.
//! - `-u user`: arguments are in the user's personal hierarchy (`INBOX` is `user/USER`);
//!   with no argument, the user's INBOX (and with `-r`, everything below it).
//! - with `-r`, each argument is a mailbox or a prefix: it and every mailbox below it.
//! - mailboxes found on disk but missing from the mailbox list are included (and reported).

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::Mutex;

use super::listcache::{self, ListCache};
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

/// A directory listing taken during discovery (or found in the listing cache), with the
/// directory's ctime and mtime read before it was taken. The planner reuses it if, under
/// the mailbox lock, both are still the same: no entry was created, removed or renamed
/// since (saving a second `getdents` pass). Listings of directories modified within 100 ms
/// of the listing are not kept: a change in the same coarse clock tick would not move the
/// times.
#[derive(Clone, Debug)]
pub struct ListingHint {
    /// The directory's ctime and mtime before listing.
    pub times: ((i64, u32), (i64, u32)),
    /// The listing.
    pub listing: std::sync::Arc<super::gather::Listing>,
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

/// Where discovery looks: the whole domain, or only the given mailboxes (and, with
/// `descend`, everything below them).
pub enum Scope<'a> {
    /// Every mailbox directory of the domain.
    Domain,
    /// These mailboxes' directories only; `descend` adds their sub-mailboxes.
    Mailboxes { bases: &'a [MailboxName], descend: bool },
}

/// One directory to look at during discovery.
struct Visit {
    /// Position of the partition in the configuration (keeps results in partition order).
    part: usize,
    dir: PathBuf,
    /// Encoded mailbox-name components of `dir` below the domain directory.
    comps: Vec<String>,
    descend: bool,
}

/// Mailbox directories of `domain` on every partition within `scope`: name → where found
/// (in partition order). Directories are listed by `threads` workers. A directory that
/// cannot be looked at or listed is reported in `unreadable` and the walk goes on
/// (mailboxes in it that the mailbox list knows get their own error when processed).
/// Listings come from `cache` where it still holds them, and are recorded in it.
pub fn disk_mailboxes(
    store: &Store,
    domain: &str,
    scope: &Scope<'_>,
    threads: usize,
    cache: &ListCache,
    unreadable: &mut Vec<Error>,
) -> Result<BTreeMap<MailboxName, Vec<Found>>> {
    let parts: Vec<(&String, &PathBuf)> = store.config().partitions.iter().collect();
    let mut roots = Vec::new();
    for (part, (_, root)) in parts.iter().enumerate() {
        let droot = root.join(domain);
        match scope {
            Scope::Domain => {
                if droot.is_dir() {
                    roots.push(Visit { part, dir: droot, comps: Vec::new(), descend: true });
                }
            }
            Scope::Mailboxes { bases, descend } => {
                // A base inside another one that is walked with its descendants (or named
                // twice) would be listed twice.
                let covered = |i: usize, b: &MailboxName| {
                    bases.iter().enumerate().any(|(j, o)| (j < i && o == b) || (*descend && o != b && b.is_within(o)))
                };
                for (_, b) in bases.iter().enumerate().filter(|&(i, b)| !covered(i, b)) {
                    let comps: Vec<String> = b.components().map(layout::encode_component).collect();
                    let dir = layout::mailbox_dir(root, domain, b);
                    roots.push(Visit { part, dir, comps, descend: *descend });
                }
            }
        }
    }
    let found: Mutex<Vec<(MailboxName, usize, Found)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    crate::scan::walk(roots, threads, |v: Visit, children| {
        let before = match listcache::stat_dir(&v.dir) {
            Ok(m) => m,
            // A named mailbox with no directory on this partition: nothing to find here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !matches!(scope, Scope::Domain) => return,
            Err(e) => {
                errors.lock().push(Error::io("stat directory", &v.dir, e));
                return;
            }
        };
        let started = std::time::SystemTime::now();
        let (listing, mut subdirs) = match cache.lookup(&before) {
            Some(hit) => hit,
            None => {
                let mut subdirs = Vec::new();
                match super::gather::list_with(&v.dir, |name| subdirs.push(name.to_string())) {
                    Ok(l) => {
                        cache.record(&before, started, &l, &subdirs);
                        (l, subdirs)
                    }
                    Err(e) => {
                        errors.lock().push(Error::io("list directory", &v.dir, e));
                        return;
                    }
                }
            }
        };
        if !v.descend {
            subdirs.clear();
        }
        for sub in subdirs {
            let mut comps = v.comps.clone();
            comps.push(sub.clone());
            children.push(Visit { part: v.part, dir: v.dir.join(sub), comps, descend: true });
        }
        let is_mailbox = !listing.messages.is_empty()
            || listing.has_header
            || listing.has_index
            || listing.has_cache
            || listing.has_log;
        if !is_mailbox || v.comps.is_empty() {
            return;
        }
        if let Some(name) = MailboxName::from_dir_components(v.comps.iter().map(String::as_str)) {
            let k = before.key;
            let age = listcache::age_at(started, k.ctime).min(listcache::age_at(started, k.mtime));
            let settled = age > std::time::Duration::from_millis(100);
            let hint =
                settled.then(|| ListingHint { times: (k.ctime, k.mtime), listing: std::sync::Arc::new(listing) });
            let (pname, _) = parts[v.part];
            found.lock().push((name, v.part, Found { partition: pname.clone(), dir: v.dir, hint }));
        }
    });
    let mut found = found.into_inner();
    // Workers finish in any order: by name, then in partition order.
    found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut out: BTreeMap<MailboxName, Vec<Found>> = BTreeMap::new();
    for (name, _, f) in found {
        out.entry(name).or_default().push(f);
    }
    let mut errors = errors.into_inner();
    errors.sort_by_cached_key(|e| e.to_string());
    unreadable.extend(errors);
    Ok(out)
}

/// Resolve a selection to targets, in name order. `cache` says what the run may do with
/// the domain's listing cache (`formats/listings.md`).
pub fn select(
    store: &Store,
    sel: &Selection,
    threads: usize,
    cache: listcache::Mode,
) -> Result<(Vec<Target>, Vec<SelectionNote>)> {
    let domain = layout::domain(&sel.domain)?;
    let listed: BTreeMap<MailboxName, MailboxEntry> =
        store.list(Some(&domain))?.into_iter().map(|e| (e.name.clone(), e)).collect();
    let bases = bases_of(sel)?;
    let whole_domain = sel.user.is_none() && sel.mailboxes.is_empty();
    // Only the named mailboxes' directories are listed (a run over one mailbox must not
    // walk a whole domain); the whole domain only when it is what was asked for.
    let scope = if whole_domain { Scope::Domain } else { Scope::Mailboxes { bases: &bases, descend: sel.recursive } };
    let mut unreadable = Vec::new();
    let extent = if whole_domain { listcache::Extent::Domain } else { listcache::Extent::Subtrees };
    let lc = ListCache::load(store, &domain, cache, extent);
    let disk = disk_mailboxes(store, &domain, &scope, threads, &lc, &mut unreadable)?;
    let mut notes: Vec<SelectionNote> = unreadable
        .into_iter()
        .map(|e| SelectionNote {
            message: format!("{domain}: {e}; mailboxes below it were not looked for on disk"),
            error: true,
        })
        .collect();
    if let Err(e) = lc.save(store) {
        notes.push(SelectionNote {
            message: format!(
                "{domain}: listing cache {} not written: {e} (the next run lists every directory)",
                listcache::cache_path(store, &domain).display()
            ),
            error: false,
        });
    }
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

    let targets = targets_of(&domain, chosen, &listed, &disk, &mut notes);
    Ok((targets, notes))
}

/// The mailboxes named on the command line (none for `-r` over a whole domain).
fn bases_of(sel: &Selection) -> Result<Vec<MailboxName>> {
    Ok(match (&sel.user, sel.mailboxes.is_empty()) {
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
    })
}

/// The chosen mailboxes that exist somewhere (listed, or on disk), each on the partition
/// it is registered on (or, unlisted, the first it was found on); a directory on another
/// partition is noted and left alone.
fn targets_of(
    domain: &str,
    chosen: Vec<MailboxName>,
    listed: &BTreeMap<MailboxName, MailboxEntry>,
    disk: &BTreeMap<MailboxName, Vec<Found>>,
    notes: &mut Vec<SelectionNote>,
) -> Vec<Target> {
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
    targets
}

/// Directory of a target.
pub fn target_dir(store: &Store, domain: &str, t: &Target) -> Result<PathBuf> {
    Ok(layout::mailbox_dir(store.partition_root(&t.partition)?, domain, &t.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn names(found: &BTreeMap<MailboxName, Vec<Found>>) -> Vec<String> {
        found.keys().map(|n| n.to_string()).collect()
    }

    #[test]
    fn scope_limits_which_directories_are_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let text = format!("ms-path: {}\nfsync: no\n", tmp.path().join("ms").display());
        let store =
            Store::init(Config::parse(&tmp.path().join("ms.conf"), text.as_bytes()).expect("config")).expect("init");
        let root = store.partition_root("default").expect("partition").join("example.com");
        for m in ["user/joe", "user/joe/Sent", "user/joe/Sent/2025", "user/ann", "shared"] {
            let dir = root.join(MailboxName::parse(m).expect("name").relative_dir());
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("1."), b"Subject: x\r\n\r\nx\r\n").expect("write");
        }

        let off = ListCache::load(&store, "example.com", listcache::Mode::Off, listcache::Extent::Domain);
        for threads in [1, 3] {
            let mut errs = Vec::new();
            let all = disk_mailboxes(&store, "example.com", &Scope::Domain, threads, &off, &mut errs).expect("walk");
            assert_eq!(names(&all), ["shared", "user/ann", "user/joe", "user/joe/Sent", "user/joe/Sent/2025"]);
            assert!(errs.is_empty());

            let joe = [MailboxName::parse("user/joe").expect("name")];
            let one = Scope::Mailboxes { bases: &joe, descend: false };
            let found = disk_mailboxes(&store, "example.com", &one, threads, &off, &mut errs).expect("walk");
            assert_eq!(names(&found), ["user/joe"]);
            let below = Scope::Mailboxes { bases: &joe, descend: true };
            let found = disk_mailboxes(&store, "example.com", &below, threads, &off, &mut errs).expect("walk");
            assert_eq!(names(&found), ["user/joe", "user/joe/Sent", "user/joe/Sent/2025"]);

            // Overlapping bases find each directory once; a base with no directory is
            // not an error (the selection reports it).
            let overlap = [
                MailboxName::parse("user/joe").expect("name"),
                MailboxName::parse("user/joe/Sent").expect("name"),
                MailboxName::parse("user/nobody").expect("name"),
            ];
            let scope = Scope::Mailboxes { bases: &overlap, descend: true };
            let found = disk_mailboxes(&store, "example.com", &scope, threads, &off, &mut errs).expect("walk");
            assert_eq!(names(&found), ["user/joe", "user/joe/Sent", "user/joe/Sent/2025"]);
            assert!(found.values().all(|f| f.len() == 1));
            assert!(errs.is_empty(), "{errs:?}");
        }
    }
}
