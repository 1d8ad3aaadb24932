//! `mstore import maildir|mbox` and `mstore export maildir|mbox`: arguments to library
//! calls, a progress bar when standard error is a terminal, Ctrl-C handling, the summary
//! and the exit status (0 all imported, 4 something was skipped or interrupted, 8 the
//! store or the arguments failed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::args::*;
use super::progress::Bar;
use super::{domain_and_name, load_config, load_config_for_writing, print_version};
use crate::error::{Error, Result};
use crate::import::{self, Options, Quoting};
use crate::report::Exit;
use crate::store::Store;

/// SIGINT and SIGTERM set the flag (the run stops after committing its batch); a second
/// one ends the process at once.
fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

fn options(c: &ImportCommon, quoting: Quoting) -> Options {
    Options {
        partition: c.partition.clone(),
        batch_messages: c.batch.max(1),
        duplicates: c.duplicates,
        quoting,
        ..Options::default()
    }
}

fn finish(summary: &import::Summary) -> Exit {
    for e in &summary.errors {
        eprintln!("mstore import: {e}");
    }
    for n in &summary.notes {
        eprintln!("mstore import: note: {n}");
    }
    print!("{}", summary.render_text());
    if summary.errors.is_empty() && !summary.interrupted { Exit::Ok } else { Exit::Unrepaired }
}

/// `mstore import ...`
pub fn import(a: &ImportArgs) -> Result<Exit> {
    match &a.source {
        ImportSource::Maildir(m) => {
            if m.common.version {
                return Ok(print_version("mstore"));
            }
            let cfg = load_config_for_writing(&m.common)?;
            let st = Store::open(cfg)?;
            let (d, n) = domain_and_name(m.domain.as_ref(), m.mailbox.as_ref())?;
            let path = m.path.clone().unwrap_or_default();
            let bar = Bar::new(!m.import.no_progress, "import");
            let cancel = cancel_flag();
            let s =
                import::import_maildir(&st, &d, &n, &path, &options(&m.import, Quoting::Mboxrd), &bar, Some(&cancel));
            bar.finish();
            Ok(finish(&s?))
        }
        ImportSource::Mbox(m) => {
            if m.common.version {
                return Ok(print_version("mstore"));
            }
            if m.args.len() < 3 {
                return Err(Error::Invalid(
                    "usage: mstore import mbox [-f config_file] FILE... DOMAIN MAILBOX (at least one file)".into(),
                ));
            }
            let cfg = load_config_for_writing(&m.common)?;
            let st = Store::open(cfg)?;
            let k = m.args.len();
            let (d, n) = domain_and_name(m.args.get(k - 2), m.args.get(k - 1))?;
            let files: Vec<PathBuf> = m.args[..k - 2].iter().map(PathBuf::from).collect();
            let quoting = match m.quoting.as_str() {
                "mboxo" => Quoting::Mboxo,
                "none" => Quoting::None,
                _ => Quoting::Mboxrd,
            };
            let bar = Bar::new(!m.import.no_progress, "import");
            let cancel = cancel_flag();
            let s = import::import_mbox(&st, &d, &n, &files, &options(&m.import, quoting), &bar, Some(&cancel));
            bar.finish();
            Ok(finish(&s?))
        }
    }
}

/// `mstore export ...`
pub fn export(a: &ExportArgs) -> Result<Exit> {
    let (common, no_progress, domain, mailbox, dest) = match &a.dest {
        ExportDest::Maildir(m) => (&m.common, m.no_progress, &m.domain, &m.mailbox, &m.dest),
        ExportDest::Mbox(m) => (&m.common, m.no_progress, &m.domain, &m.mailbox, &m.dest),
    };
    if common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(domain.as_ref(), mailbox.as_ref())?;
    let dest = dest.clone().unwrap_or_default();
    let bar = Bar::new(!no_progress, "export");
    let s = match &a.dest {
        ExportDest::Maildir(m) => import::export::export_maildir(&st, &d, &n, &dest, m.recursive, &bar),
        ExportDest::Mbox(_) => import::export::export_mbox(&st, &d, &n, &dest, &bar),
    };
    bar.finish();
    let s = s?;
    for p in &s.problems {
        eprintln!("mstore export: {p}");
    }
    print!("{}", s.render_text(&dest));
    Ok(if s.problems.is_empty() { Exit::Ok } else { Exit::Unrepaired })
}
