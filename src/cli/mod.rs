//! The command-line front end: argument definitions ([`args`]) and the code that turns
//! parsed arguments into calls of the library, output and an exit status. The binaries in
//! `src/bin/` are one-line shells over the `*_main` functions here.

pub mod args;
mod db;
mod demo;
mod flags;
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

/// Parse the command line. Bad usage exits with status 8 (an operational error, see the
/// README's exit statuses) rather than clap's 2; `--help` exits 0.
fn parse_args<P: Parser>() -> P {
    match P::try_parse() {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { Exit::Error as i32 } else { 0 });
        }
    }
}

/// `mstore`.
pub fn mstore_main() -> ExitCode {
    let cli = parse_args::<MstoreCli>();
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
            init_as_runtime_user(&cfg)?;
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
        Command::Flags(a) => run(prog, || flags::run(&a)),
        Command::Verify(a) => run(prog, || verify(&a)),
        Command::Doctor(a) => run(prog, || doctor(&a)),
        Command::Reconstruct(a) => run(prog, || reconstruct(&a)),
        Command::Recover(a) => run(prog, || recover(&a)),
        Command::Backup(a) => run(prog, || backup(&a)),
        Command::DbVerify(a) => run(prog, || db_verify(&a)),
        Command::Restore(a) => run(prog, || restore(&a)),
        Command::Repair(a) => run(prog, || repair(&a)),
        Command::Import(a) => run(prog, || import::import(&a)),
        Command::Export(a) => run(prog, || import::export(&a)),
    }
}

/// The seed-named binaries: one `main` each, parsing its own clap definition and running
/// the same function as the `mstore` subcommand.
macro_rules! binary_main {
    ($($fn_name:ident: $cli:ty => $prog:literal, $run:ident;)*) => {$(
        #[doc = concat!("`", $prog, "`.")]
        pub fn $fn_name() -> ExitCode {
            let cli = parse_args::<$cli>();
            run($prog, || $run(&cli.args))
        }
    )*};
}

binary_main! {
    reconstruct_main: ReconstructCli => "reconstruct", reconstruct;
    msdb_recover_main: RecoverCli => "msdb_recover", recover;
    msdb_backup_main: BackupCli => "msdb_backup", backup;
    msdb_verify_main: DbVerifyCli => "msdb_verify", db_verify;
    msdb_restore_main: RestoreCli => "msdb_restore", restore;
    msdb_repair_main: RepairCli => "msdb_repair", repair;
}

/// Load the configuration of a command that writes to the store, and switch to the
/// runtime user if started as root (or refuse, with the reason).
pub fn load_config_for_writing(common: &Common) -> Result<Config> {
    let cfg = load_config(common)?;
    match crate::privs::become_runtime_user(&cfg)? {
        crate::privs::Switch::OtherUser { uid, expected } => eprintln!(
            "warning: running as uid {uid}, not the runtime user {expected}: files this creates will belong to uid {uid}"
        ),
        crate::privs::Switch::Switched(_) | crate::privs::Switch::AlreadyRuntimeUser => {}
    }
    Ok(cfg)
}

/// `mstore init` as root: create the store's directories, give them to the runtime user,
/// then continue as that user.
fn init_as_runtime_user(cfg: &Config) -> Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        let ids = crate::privs::resolve(cfg)?;
        // What `Store::init` creates (backups are made by msdb_backup when first needed).
        for dir in [&cfg.ms_path, &cfg.database_path].into_iter().chain(cfg.partitions.values()) {
            crate::fs::Fs::create_dir_all(&crate::fs::RealFs, dir).map_err(|e| Error::io("create", dir, e))?;
            std::os::unix::fs::lchown(dir, Some(ids.uid), Some(ids.gid)).map_err(|e| Error::io("chown", dir, e))?;
        }
    }
    crate::privs::become_runtime_user(cfg)?;
    Ok(())
}

fn verify(a: &VerifyArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let cfg = load_config(&a.common)?;
    let scope =
        crate::verify::Scope { domain: a.domain.clone(), recursive: a.recursive, mailboxes: a.mailboxes.clone() };
    let opts = crate::verify::Options { quick: a.quick, threads: a.threads.unwrap_or(0) };
    let bar = progress::Bar::new(!a.no_progress, "verify");
    let report = crate::verify::run_config(cfg, &scope, &opts, &bar)?;
    bar.finish();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Invalid(e.to_string()))?;
        let _ = writeln!(out);
    } else {
        for f in &report.findings {
            let _ = writeln!(out, "{}", f.render());
        }
        for e in &report.errors {
            let _ = writeln!(out, "error: could not scan: {e}");
        }
        let _ = writeln!(
            out,
            "verify: {} mailboxes, {} messages, {:.1} MiB read{}: {}",
            report.mailboxes,
            report.messages,
            report.bytes_read as f64 / 1048576.0,
            if report.quick { " (quick: metadata only)" } else { "" },
            if report.findings.is_empty() && report.errors.is_empty() {
                "no problems found".to_string()
            } else {
                format!("{} finding(s)", report.findings.len())
            }
        );
    }
    let _ = out.flush();
    Ok(report.exit())
}

fn doctor(a: &DoctorArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("mstore"));
    }
    let path = config::resolve_path(a.common.config.as_deref());
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            // The doctor's first job is exactly this symptom: say why and what to do.
            eprintln!("mstore doctor: {e}");
            if path.exists() {
                eprintln!(
                    "    fix: make it readable: chown sms:sms {p} && chmod u+r {p}",
                    p = crate::util::shell_quote(&path.to_string_lossy())
                );
            } else {
                eprintln!("    fix: create it (see formats/config.md), pass -f FILE, or set MS_CONF");
            }
            return Ok(Exit::Error);
        }
    };
    for w in &cfg.warnings {
        eprintln!("{w}");
    }
    let mut report = crate::doctor::check(&cfg);
    let mut fixed = false;
    if a.fix && !report.findings.is_empty() {
        let n = crate::doctor::fix(&cfg)?;
        eprintln!("mstore doctor: changed {n} owner(s) or mode(s); checking again");
        report = crate::doctor::check(&cfg);
        fixed = true;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| Error::Invalid(e.to_string()))?;
        let _ = writeln!(out);
    } else {
        for f in &report.findings {
            let _ = writeln!(out, "{}", f.render());
        }
        if !report.fixes.is_empty() {
            let _ = writeln!(out, "\nTo repair ownership and permissions, run as root:");
            for f in &report.fixes {
                let _ = writeln!(out, "  {f}");
            }
        }
        let _ = writeln!(
            out,
            "doctor: {} entries checked: {}",
            report.checked,
            if report.findings.is_empty() {
                "no problems found".to_string()
            } else {
                format!("{} finding(s)", report.findings.len())
            }
        );
    }
    let _ = out.flush();
    Ok(if report.findings.is_empty() { if fixed { Exit::Repaired } else { Exit::Ok } } else { Exit::Unrepaired })
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
    let cfg = load_config_for_writing(&a.common)?;
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
    let cfg = load_config_for_writing(&a.common)?;
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
        if bytes.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the file is empty; an empty message cannot be appended",
                p.display()
            )));
        }
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
    let cfg = load_config_for_writing(&a.common)?;
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
        all_changes: a.json,
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
    db::recover("msdb_recover", a)
}

fn backup(a: &BackupArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_backup"));
    }
    db::backup("msdb_backup", a)
}

fn db_verify(a: &DbVerifyArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_verify"));
    }
    db::db_verify("msdb_verify", a)
}

fn restore(a: &RestoreArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_restore"));
    }
    db::restore("msdb_restore", a)
}

fn repair(a: &RepairArgs) -> Result<Exit> {
    if a.common.version {
        return Ok(print_version("msdb_repair"));
    }
    db::repair("msdb_repair", a)
}
