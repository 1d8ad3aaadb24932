//! The command-line front end: argument definitions ([`args`]) and the code that turns
//! parsed arguments into calls of the library, output and an exit status. The binaries in
//! `src/bin/` are one-line shells over the `*_main` functions here.

pub mod args;
mod demo;
mod import;
mod progress;

pub use demo::current_user_and_group;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::layout::{self, MailboxName};
use crate::report::{Exit, ShowReport};
use crate::store::{CreateOptions, NewMessage, Store};
use args::*;

/// The toolkit's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn print_version(prog: &str) -> Exit {
    eprintln!("{prog} (M-Store toolkit) {VERSION}");
    Exit::Ok
}

/// Print an operational error the way every command does, and return its status.
pub fn fail(prog: &str, err: &dyn std::fmt::Display) -> Exit {
    eprintln!("{prog}: {err}");
    Exit::Error
}

/// Load the configuration named by `-f` (or the default), printing its warnings.
pub fn load_config(common: &Common) -> Result<Config> {
    let path = config::resolve_path(common.config.as_deref());
    let cfg = Config::load(&path)?;
    for w in &cfg.warnings {
        eprintln!("{w}");
    }
    Ok(cfg)
}

fn run(prog: &str, f: impl FnOnce() -> Result<Exit>) -> ExitCode {
    match f() {
        Ok(e) => e.into(),
        Err(e) => fail(prog, &e).into(),
    }
}

/// `mstore`.
pub fn mstore_main() -> ExitCode {
    let cli = MstoreCli::parse();
    let Some(cmd) = cli.command else {
        if cli.common.version {
            return print_version("mstore").into();
        }
        let _ = <MstoreCli as clap::CommandFactory>::command().print_help();
        return Exit::Error.into();
    };
    let prog = "mstore";
    match cmd {
        Command::Demo(a) => run(prog, || if a.common.version { Ok(print_version(prog)) } else { demo::run(&a) }),
        Command::Init(a) => run(prog, || {
            if a.common.version {
                return Ok(print_version(prog));
            }
            let cfg = load_config(&a.common)?;
            let st = Store::init(cfg)?;
            println!(
                "store ready: ms-path {}, database {}",
                st.config().ms_path.display(),
                st.config().database_path.display()
            );
            Ok(Exit::Ok)
        }),
        Command::Ls(a) => run(prog, || ls(&a)),
        Command::Show(a) => run(prog, || show(&a)),
        Command::Create(a) => run(prog, || create(&a)),
        Command::Append(a) => run(prog, || append(&a)),
        Command::Reconstruct(a) => run(prog, || reconstruct(&a)),
        Command::Recover(a) => run(prog, || recover(&a)),
        Command::Backup(a) => run(prog, || backup(&a)),
        Command::Import(a) => run(prog, || import::import(&a)),
        Command::Export(a) => run(prog, || import::export(&a)),
    }
}

/// `reconstruct`.
pub fn reconstruct_main() -> ExitCode {
    let cli = ReconstructCli::parse();
    run("reconstruct", || reconstruct(&cli.args))
}

/// `msdb_recover`.
pub fn msdb_recover_main() -> ExitCode {
    let cli = RecoverCli::parse();
    run("msdb_recover", || recover(&cli.args))
}

/// `msdb_backup`.
pub fn msdb_backup_main() -> ExitCode {
    let cli = BackupCli::parse();
    run("msdb_backup", || backup(&cli.args))
}

fn ls(a: &LsArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(&a.common)?;
    let st = Store::open(cfg)?;
    let domain = a.domain.as_deref().map(layout::domain).transpose()?;
    let list = st.list(domain.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|e| {
                serde_json::json!({
                    "domain": e.domain, "mailbox": e.name.as_str(), "mailbox_utf8": e.name.display(),
                    "partition": e.partition, "uid_validity": e.uid_validity,
                    "unique_id": crate::util::hex(&e.unique_id),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows).map_err(|e| Error::Invalid(e.to_string()))?;
        let _ = writeln!(out);
    } else {
        for e in &list {
            let shown = e.name.display();
            let _ = if shown != e.name.as_str() {
                writeln!(out, "{}\t{}\t{}\t({})", e.domain, e.name, e.partition, shown)
            } else {
                writeln!(out, "{}\t{}\t{}", e.domain, e.name, e.partition)
            };
        }
    }
    Ok(Exit::Ok)
}

fn domain_and_name(domain: Option<&String>, mailbox: Option<&String>) -> Result<(String, MailboxName)> {
    let d = layout::domain(domain.map(String::as_str).unwrap_or_default())?;
    let n = MailboxName::parse(mailbox.map(String::as_str).unwrap_or_default())?;
    Ok((d, n))
}

fn show(a: &ShowArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(a.domain.as_ref(), a.mailbox.as_ref())?;
    let mb = st.open_mailbox(&d, &n)?;
    let report = ShowReport::of(&mb);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Invalid(e.to_string()))?;
        let _ = writeln!(out);
    } else {
        let _ = out.write_all(report.render_text().as_bytes());
    }
    Ok(Exit::Ok)
}

fn create(a: &CreateArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(a.domain.as_ref(), a.mailbox.as_ref())?;
    let mb = st.create_mailbox(&d, &n, CreateOptions { partition: a.partition.clone(), ..CreateOptions::default() })?;
    println!("created {}:{} in {}", d, n, mb.place().dir.display());
    Ok(Exit::Ok)
}

fn append(a: &AppendArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(a.domain.as_ref(), a.mailbox.as_ref())?;
    let mut system = 0;
    let mut user = Vec::new();
    for f in &a.flags {
        match crate::flags::SystemFlags::bit(f) {
            Some(b) => system |= b,
            None if f.starts_with('\\') => return Err(Error::Invalid(format!("unknown system flag {f}"))),
            None => user.push(f.clone()),
        }
    }
    let given_date = match &a.date {
        Some(s) => Some(
            crate::message::DateTime::from_rfc3339(s)
                .ok_or_else(|| Error::Invalid(format!("--date {s:?} is not an RFC 3339 date")))?,
        ),
        None => None,
    };
    let mut mb = st.open_mailbox_locked(&d, &n)?;
    let mut files = Vec::with_capacity(a.files.len());
    for p in &a.files {
        let bytes = crate::io::read_file(p).map_err(|e| Error::io("read", p, e))?;
        let date = match given_date {
            Some(d) => d,
            None => crate::message::DateTime { unix: mtime(p)?, offset_minutes: 0 },
        };
        files.push((bytes, date));
    }
    let batch: Vec<NewMessage<'_>> = files
        .iter()
        .map(|(b, d)| NewMessage { bytes: b, internal_date: Some(*d), system_flags: system, user_flags: user.clone() })
        .collect();
    let uids = mb.append(&batch)?;
    for (p, u) in a.files.iter().zip(&uids) {
        println!("{u}\t{}", p.display());
    }
    Ok(Exit::Ok)
}

fn mtime(p: &Path) -> Result<i64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p).map_err(|e| Error::io("stat", p, e))?.mtime())
}

fn reconstruct(a: &ReconstructArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("reconstruct"));
    }
    let cfg = load_config(&a.common)?;
    let st = Store::open(cfg)?;
    let sel = crate::reconstruct::Selection {
        domain: a.domain.clone().unwrap_or_default(),
        user: a.user.clone(),
        recursive: a.recursive,
        mailboxes: a.mailboxes.clone(),
    };
    let opts = crate::reconstruct::Options {
        dry_run: a.dry_run,
        verify_content: a.verify_content,
        quarantine: a.quarantine,
        threads: a.threads.unwrap_or(0),
        mmap: true,
    };
    let bar = progress::Bar::new(!a.no_progress, "reconstruct");
    let report = crate::reconstruct::run(&st, &sel, &opts, &bar)?;
    bar.finish();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Invalid(e.to_string()))?;
        let _ = writeln!(out);
    } else {
        let _ = out.write_all(report.render_text().as_bytes());
    }
    let _ = out.flush();
    Ok(exit_from_bits(report.exit_code()))
}

/// The most severe of OR'ed exit bits (1 repaired, 4 unrepaired, 8 failed).
fn exit_from_bits(bits: u8) -> Exit {
    if bits & Exit::Error as u8 != 0 {
        Exit::Error
    } else if bits & Exit::Unrepaired as u8 != 0 {
        Exit::Unrepaired
    } else if bits & Exit::Repaired as u8 != 0 {
        Exit::Repaired
    } else {
        Exit::Ok
    }
}

fn recover(a: &RecoverArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_recover"));
    }
    Err(Error::Invalid("msdb_recover is not built yet (issue 4)".into()))
}

fn backup(a: &BackupArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_backup"));
    }
    Err(Error::Invalid("msdb_backup is not built yet (issue 4)".into()))
}
