//! `mstore import maildir|mbox` and `mstore export maildir|mbox`: arguments to library
//! calls, a progress bar when standard error is a terminal, Ctrl-C handling, the summary
//! and the exit status (0 all imported, 4 something was skipped or interrupted, 8 the
//! store or the arguments failed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::args::*;
use super::progress::Bar;
use super::render::Exported;
use super::{domain_and_name, emit, load_config, load_config_for_writing};
use crate::error::{Error, Result};
use crate::import::{self, Options, Quoting};
use crate::report::{Exit, Format};
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

fn finish(summary: &import::Summary, json: bool) -> Result<Exit> {
    for e in &summary.errors {
        eprintln!("mstore import: {e}");
    }
    for n in &summary.notes {
        eprintln!("mstore import: note: {n}");
    }
    emit(summary, Format::json_if(json))
}

/// `mstore import ...`
pub fn import(a: &ImportArgs) -> Result<Exit> {
    match &a.source {
        ImportSource::Maildir(m) => {
            let cfg = load_config_for_writing(&m.common)?;
            let st = Store::open(cfg)?;
            let (d, n) = domain_and_name(&m.domain, &m.mailbox)?;
            let path = &m.path;
            let bar = Bar::new(!m.import.no_progress, "import");
            let cancel = cancel_flag();
            let s =
                import::import_maildir(&st, &d, &n, path, &options(&m.import, Quoting::Mboxrd), &bar, Some(&cancel));
            bar.finish();
            finish(&s?, m.import.json)
        }
        ImportSource::Mbox(m) => {
            // clap asks for at least three: FILE... DOMAIN MAILBOX.
            let [files @ .., domain, mailbox] = m.args.as_slice() else {
                return Err(Error::Invalid("usage: mstore import mbox [-f config_file] FILE... DOMAIN MAILBOX".into()));
            };
            let cfg = load_config_for_writing(&m.common)?;
            let st = Store::open(cfg)?;
            let (d, n) = domain_and_name(domain, mailbox)?;
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            let quoting = match m.quoting.as_str() {
                "mboxo" => Quoting::Mboxo,
                "none" => Quoting::None,
                _ => Quoting::Mboxrd,
            };
            let bar = Bar::new(!m.import.no_progress, "import");
            let cancel = cancel_flag();
            let s = import::import_mbox(&st, &d, &n, &files, &options(&m.import, quoting), &bar, Some(&cancel));
            bar.finish();
            finish(&s?, m.import.json)
        }
    }
}

/// `mstore export ...`
pub fn export(a: &ExportArgs) -> Result<Exit> {
    let (common, no_progress, json, domain, mailbox, dest) = match &a.dest {
        ExportDest::Maildir(m) => (&m.common, m.no_progress, m.json, &m.domain, &m.mailbox, &m.dest),
        ExportDest::Mbox(m) => (&m.common, m.no_progress, m.json, &m.domain, &m.mailbox, &m.dest),
    };
    let cfg = load_config(common)?;
    let st = Store::open_read_only(cfg)?;
    let (d, n) = domain_and_name(domain, mailbox)?;
    let bar = Bar::new(!no_progress, "export");
    let s = match &a.dest {
        ExportDest::Maildir(m) => import::export::export_maildir(&st, &d, &n, dest, m.recursive, &bar),
        ExportDest::Mbox(_) => import::export::export_mbox(&st, &d, &n, dest, &bar),
    };
    bar.finish();
    let s = s?;
    for p in &s.problems {
        eprintln!("mstore export: {p}");
    }
    emit(&Exported { summary: &s, dest }, Format::json_if(json))
}
