//! The command-line front end: argument definitions ([`args`]), the grouped help
//! ([`help`]), and the code that turns parsed arguments into calls of the library, a
//! report ([`crate::report::Render`]) and an exit status.
//!
//! One binary answers to every name: `mstore`, and the names the M-Store administration
//! guide gives its commands ([`GUIDE_NAMES`]), told apart by the name it is invoked under
//! (`argv[0]`, as busybox does). The binaries in `src/bin/` are one-line shells over
//! [`main`], so that `cargo install` puts every name in place; `mstore demo` and the Debian
//! package link the names to one binary instead.
//!
//! `-v` (version on standard error, then exit, whatever else is given: the guide's
//! semantics) is clap's version action on every command, answered once in `parse`.

pub mod args;
mod db;
mod demo;
mod flags;
pub mod help;
mod import;
mod progress;
mod render;
mod rescue;

pub use crate::privs::current_user_and_group;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::layout::{self, MailboxName};
use crate::report::{Exit, Format, Render, ShowReport};
use crate::store::{CreateOptions, NewMessage, Store};
use args::*;

/// The toolkit's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commands the M-Store administration guide names, each with the `mstore` subcommand
/// it is. The binary invoked under one of these names (a link to it, or the binary built
/// under that name) is that command: `reconstruct -r example.com` is
/// `mstore reconstruct -r example.com`.
pub const GUIDE_NAMES: [(&str, &str); 6] = [
    ("reconstruct", "reconstruct"),
    ("msdb_recover", "recover"),
    ("msdb_backup", "backup"),
    ("msdb_verify", "db-verify"),
    ("msdb_restore", "restore"),
    ("msdb_repair", "repair"),
];

/// Every program name the binary answers to: `mstore`, then [`GUIDE_NAMES`].
pub fn program_names() -> impl Iterator<Item = &'static str> {
    std::iter::once("mstore").chain(GUIDE_NAMES.iter().map(|g| g.0))
}

/// The clap definition of a program: `mstore` with its subcommands (and the grouped
/// help), or a guide name with the definition of its subcommand. `None` for another name.
/// The man pages and shell completions are generated from these.
pub fn command(prog: &str) -> Option<clap::Command> {
    let root = help::with_grouped_help(MstoreCli::command());
    if prog == "mstore" {
        return Some(root);
    }
    let (name, sub) = GUIDE_NAMES.iter().find(|g| g.0 == prog)?;
    let c = root.find_subcommand(sub)?.clone();
    Some(c.name(*name).bin_name(*name).version(VERSION).disable_version_flag(true))
}

/// The entry point of every binary: runs the program named by `argv[0]` (its file name) if
/// it is one of [`program_names`], else `default` (the binary's own name), and returns its
/// exit status.
pub fn main(default: &'static str) -> ExitCode {
    crate::io::limit_malloc_arenas();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let invoked = argv.first().and_then(|a| Path::new(a).file_name()).and_then(|n| n.to_str());
    let prog = program_names().find(|p| Some(*p) == invoked).unwrap_or(default);
    let Some(cmd) = parse(prog, argv) else { return Exit::Error.into() };
    match cmd {
        Ok(cmd) => run(&cmd).into(),
        Err(exit) => exit.into(),
    }
}

/// Parse a command line for `prog`. `Err` holds the exit status of a run that ends here:
/// `-v` (0, the version on standard error), `--help` (0), bad usage (8, not clap's 2: see
/// the README's exit statuses), `mstore` without a subcommand (8, after the help).
/// `None`: `prog` is no program of ours.
fn parse(prog: &str, argv: Vec<OsString>) -> Option<std::result::Result<Command, Exit>> {
    let cmd = command(prog)?;
    let parsed = cmd.clone().try_get_matches_from(argv).and_then(|m| {
        if prog == "mstore" {
            MstoreCli::from_arg_matches(&m).map(|c| c.command)
        } else {
            guide_command(prog, &m).map(Some)
        }
    });
    Some(match parsed {
        Ok(Some(c)) => Ok(c),
        Ok(None) => {
            let _ = cmd.clone().print_help();
            Err(Exit::Error)
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {
            eprintln!("{prog} (M-Store toolkit) {VERSION}");
            Err(Exit::Ok)
        }
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() { Exit::Error } else { Exit::Ok })
        }
    })
}

/// The subcommand a guide name stands for, from the matches of its definition.
fn guide_command(prog: &str, m: &clap::ArgMatches) -> std::result::Result<Command, clap::Error> {
    Ok(match prog {
        "reconstruct" => Command::Reconstruct(ReconstructArgs::from_arg_matches(m)?),
        "msdb_recover" => Command::Recover(RecoverArgs::from_arg_matches(m)?),
        "msdb_backup" => Command::Backup(BackupArgs::from_arg_matches(m)?),
        "msdb_verify" => Command::DbVerify(DbVerifyArgs::from_arg_matches(m)?),
        "msdb_restore" => Command::Restore(RestoreArgs::from_arg_matches(m)?),
        "msdb_repair" => Command::Repair(RepairArgs::from_arg_matches(m)?),
        other => {
            return Err(clap::Error::raw(clap::error::ErrorKind::InvalidSubcommand, format!("no command {other}\n")));
        }
    })
}

/// Run a parsed command: its report on standard output, an operational error as one line
/// on standard error (`NAME: what is wrong`), and the exit status.
pub fn run(cmd: &Command) -> Exit {
    match dispatch(cmd) {
        Ok(e) => e,
        Err(e) => fail(error_prefix(cmd), &e),
    }
}

/// The name an error line starts with: the guide's name of the command if it has one.
fn error_prefix(cmd: &Command) -> &'static str {
    match cmd {
        Command::Reconstruct(_) => "reconstruct",
        Command::Recover(_) => "msdb_recover",
        Command::Backup(_) => "msdb_backup",
        Command::DbVerify(_) => "msdb_verify",
        Command::Restore(_) => "msdb_restore",
        Command::Repair(_) => "msdb_repair",
        _ => "mstore",
    }
}

/// One arm per subcommand: its arguments to the function that runs it.
fn dispatch(cmd: &Command) -> Result<Exit> {
    match cmd {
        Command::Demo(a) => demo::run(a),
        Command::Init(a) => init(a),
        Command::Ls(a) => ls(a),
        Command::Show(a) => show(a),
        Command::Create(a) => create(a),
        Command::Append(a) => append(a),
        Command::Flags(a) => flags::run(a),
        Command::Rescue(a) => rescue::rescue(a),
        Command::Salvage(a) => rescue::salvage(a),
        Command::Ledger(a) => rescue::ledger(a),
        Command::Verify(a) => verify(a),
        Command::Estimate(a) => estimate(a),
        Command::Doctor(a) => doctor(a),
        Command::Reconstruct(a) => reconstruct(a),
        Command::Recover(a) => db::recover(a),
        Command::Backup(a) => db::backup(a),
        Command::DbVerify(a) => db::db_verify(a),
        Command::Restore(a) => db::restore(a),
        Command::Repair(a) => db::repair(a),
        Command::Import(a) => import::import(a),
        Command::Export(a) => import::export(a),
    }
}

/// Print an operational error the way every command does, and return its status.
pub fn fail(prog: &str, err: &dyn std::fmt::Display) -> Exit {
    eprintln!("{prog}: {err}");
    Exit::Error
}

/// Print a report on standard output in `format`; its exit status. A reader that went
/// away (`| head`) is not an error.
pub fn emit(report: &impl Render, format: Format) -> Result<Exit> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match report.print(format, &mut out) {
        Ok(exit) => Ok(exit),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(report.exit()),
        Err(e) => Err(Error::io("write the report to", "standard output", e)),
    }
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
            crate::doctor::prepare_store_dir(dir, &ids)?;
        }
    }
    crate::privs::become_runtime_user(cfg)?;
    Ok(())
}

/// `mstore init`.
fn init(a: &InitArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    init_as_runtime_user(&cfg)?;
    let st = Store::init(cfg)?;
    println!(
        "store ready: ms-path {}, database {}",
        st.config().ms_path.display(),
        st.config().database_path.display()
    );
    Ok(Exit::Ok)
}

fn verify(a: &VerifyArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let scope =
        crate::verify::Scope { domain: a.domain.clone(), recursive: a.recursive, mailboxes: a.mailboxes.clone() };
    let opts = crate::verify::Options { quick: a.quick, threads: a.threads.unwrap_or(0), io_threads: a.io_threads };
    let bar = progress::Bar::new(!a.no_progress, "verify");
    let report = crate::verify::run_config(cfg, &scope, &opts, &bar)?;
    bar.finish();
    if a.quiet && report.exit() == Exit::Ok {
        return Ok(Exit::Ok);
    }
    emit(&report, Format::json_if(a.json))
}

fn doctor(a: &DoctorArgs) -> Result<Exit> {
    let path = config::resolve_path(a.common.config.as_deref());
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            // The doctor's first job is exactly this symptom: say why and what to do.
            eprintln!("mstore doctor: {e}");
            eprintln!("    fix: {}", config_fix(&path, &e));
            return Ok(Exit::Error);
        }
    };
    for w in &cfg.warnings {
        eprintln!("{w}");
    }
    let mut report = crate::doctor::check(&cfg);
    let mut fixed = false;
    if a.fix && report.has_errors() {
        let n = crate::doctor::fix(&cfg)?;
        eprintln!("mstore doctor: changed {n} owner(s) or mode(s); checking again");
        report = crate::doctor::check(&cfg);
        fixed = true;
    }
    emit(&render::Doctored { report: &report, fixed }, Format::json_if(a.json))
}

/// What to type when the configuration cannot be loaded: a syntax error gets a fix for
/// the syntax (never a change of owner); an unreadable file the two ways to make it
/// readable; a missing one how to name or create it.
fn config_fix(path: &Path, e: &config::ConfigError) -> String {
    let p = crate::util::shell_quote(&path.to_string_lossy());
    match e {
        config::ConfigError::Syntax { line, .. } => {
            format!("edit line {line} of {p} (the key: value syntax and every key are in formats/config.md)")
        }
        config::ConfigError::TooLarge { .. } => {
            format!("{p} is not a configuration file: pass the right one with -f FILE or MS_CONF")
        }
        config::ConfigError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "create it (see formats/config.md), pass -f FILE, or set MS_CONF".into()
        }
        config::ConfigError::Io { .. } => format!(
            "make it readable by the runtime user: chown root:sms {p} && chmod 0640 {p} (root's, readable by the group), or, as the M-Store administration guide has it, chown sms:sms {p}"
        ),
    }
}

fn estimate(a: &EstimateArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let st = Store::open_read_only(cfg)?;
    let opts = crate::estimate::Options {
        domains: a.domains.clone(),
        sample: a.sample,
        threads: a.threads.unwrap_or(0),
        ..Default::default()
    };
    emit(&crate::estimate::run(&st, &opts)?, Format::json_if(a.json))
}

fn ls(a: &LsArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let st = Store::open_read_only(cfg)?;
    let domain = a.domain.as_deref().map(layout::domain).transpose()?;
    let list = st.list(domain.as_deref())?;
    emit(&render::Listing::of(&list), Format::json_if(a.json))
}

fn domain_and_name(domain: &str, mailbox: &str) -> Result<(String, MailboxName)> {
    Ok((layout::domain(domain)?, MailboxName::parse(mailbox)?))
}

fn show(a: &ShowArgs) -> Result<Exit> {
    let cfg = load_config(&a.common)?;
    let st = Store::open_read_only(cfg)?;
    let (d, n) = domain_and_name(&a.domain, &a.mailbox)?;
    let mb = st.open_mailbox(&d, &n)?;
    emit(&ShowReport::of(&mb), Format::json_if(a.json))
}

fn create(a: &CreateArgs) -> Result<Exit> {
    let cfg = load_config_for_writing(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(&a.domain, &a.mailbox)?;
    let mb = st.create_mailbox(&d, &n, CreateOptions { partition: a.partition.clone(), ..CreateOptions::default() })?;
    println!("created {}:{} in {}", d, n, mb.place().dir.display());
    Ok(Exit::Ok)
}

fn append(a: &AppendArgs) -> Result<Exit> {
    let cfg = load_config_for_writing(&a.common)?;
    let st = Store::open(cfg)?;
    let (d, n) = domain_and_name(&a.domain, &a.mailbox)?;
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
    let cfg = load_config_for_writing(&a.common)?;
    // A repair command: a lost database home is recreated (the run registers the
    // mailboxes it finds on disk), except in a dry run, which only reads: the databases too.
    let recreated = if a.dry_run { None } else { Store::recreate_database_home(&cfg)? };
    let st = if a.dry_run { Store::open_read_only(cfg)? } else { Store::open(cfg)? };
    let opts = crate::reconstruct::Options {
        dry_run: a.dry_run,
        verify_content: a.verify_content,
        quarantine: a.quarantine,
        threads: a.threads.unwrap_or(0),
        io_threads: a.io_threads,
        mmap: true,
        all_changes: a.json,
        keep_uids: a.keep_uids,
        spill_at: None,
    };
    let bar = progress::Bar::new(!a.no_progress, "reconstruct");
    let Some(domain) = &a.domain else {
        let mut report = crate::reconstruct::run_store(&st, &opts, &bar)?;
        bar.finish();
        if let Some(message) = recreated {
            report.notes.push(message);
            report.repaired_store = true;
        }
        return emit(&report, Format::json_if(a.json));
    };
    let sel = crate::reconstruct::Selection {
        domain: domain.clone(),
        user: a.user.clone(),
        recursive: a.recursive,
        mailboxes: a.mailboxes.clone(),
    };
    let mut report = crate::reconstruct::run(&st, &sel, &opts, &bar)?;
    bar.finish();
    if let Some(message) = recreated {
        report.notes.insert(0, crate::survey::discover::SelectionNote { message, error: false });
        report.repaired_store = true;
    }
    emit(&report, Format::json_if(a.json))
}
