//! Command-line definitions (clap): one per command, used whether the command is invoked
//! as an `mstore` subcommand (`mstore reconstruct ...`) or under the name the M-Store
//! administration guide gives it (`reconstruct ...`, `msdb_recover ...`: see
//! [`super::GUIDE_NAMES`]), and by the man pages and shell completions (`cargo xtask dist`).
//!
//! Adding a subcommand: an `XxxArgs` struct flattening [`Common`], a variant of
//! [`Command`], its arm in `super::dispatch`, and its place in a group of
//! `super::help::GROUPS` (a unit test fails until it has one).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Options every command takes.
#[derive(Args, Clone, Debug, Default)]
pub struct Common {
    /// Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf).
    #[arg(short = 'f', value_name = "config_file", global = true)]
    pub config: Option<PathBuf>,
    /// Display program version information on standard error, then exit (whatever else is
    /// on the command line).
    #[arg(short = 'v', long = "version", action = ArgAction::Version, global = true)]
    pub version: (),
}

/// `reconstruct [-f config_file] [-r] [-u user] [-v] domain [mailbox ...]`, and the
/// toolkit's `reconstruct -r` without a domain: every domain of the store in one run.
#[derive(Args, Clone, Debug, Default)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub common: Common,
    /// Recursively reconstruct all sub-mailboxes of the mailboxes or prefixes given; with no
    /// mailbox arguments, every mailbox of the domain; with no domain either, every mailbox
    /// of the store.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Reconstruct a specific user's mailbox or mailboxes (arguments are in that user's
    /// personal hierarchy; INBOX is the user's own mailbox).
    #[arg(short = 'u', value_name = "user", requires = "domain")]
    pub user: Option<String>,
    /// Report what would change and write nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Print every change as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Read and hash every message even where the index looks current.
    #[arg(long)]
    pub verify_content: bool,
    /// Move stray and unreadable files into the mailbox's ms.quarantine/ directory.
    #[arg(long)]
    pub quarantine: bool,
    /// Index a message file that has no surviving record under its own UID even when that
    /// UID is not above the last UID (default: re-append it under a new UID). Only when no
    /// expunge was in flight: the message of an interrupted expunge comes back.
    #[arg(long)]
    pub keep_uids: bool,
    /// Worker threads (default: the configuration's `threads`, else one per core).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Requests kept in flight on the disk: threads that read message files ahead of the
    /// workers (default 32, which keeps a solid-state, virtual or spinning disk busy; they
    /// stand aside while the page cache holds the files; 0: the workers read).
    #[arg(long = "io-threads", value_name = "N")]
    pub io_threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// The domain (example.com). Omitted, with -r: every domain of the store, all their
    /// mailboxes in one run.
    #[arg(value_name = "domain", required_unless_present = "recursive")]
    pub domain: Option<String>,
    /// Fully qualified IMAP mailbox names (quote names with shell characters).
    #[arg(value_name = "mailbox")]
    pub mailboxes: Vec<String>,
}

/// `msdb_recover [-f config_file] [--strict | --point-in-time | --to-lsn N | --to-time T | --catastrophic]`
#[derive(Args, Clone, Debug, Default)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub common: Common,
    /// Refuse on any damage of the log, a torn final record included.
    #[arg(long, conflicts_with_all = ["point_in_time", "to_lsn", "to_time", "catastrophic"])]
    pub strict: bool,
    /// Stop at the first bad record, wherever it is, and open the databases there; report the
    /// committed transactions dropped. The rest of the log is moved into quarantine.
    #[arg(long, conflicts_with_all = ["to_lsn", "to_time", "catastrophic"])]
    pub point_in_time: bool,
    /// Keep only the transactions committed at or before log sequence number N.
    #[arg(long, value_name = "N", conflicts_with_all = ["to_time", "catastrophic"])]
    pub to_lsn: Option<u64>,
    /// Keep only the transactions committed at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", conflicts_with = "catastrophic")]
    pub to_time: Option<String>,
    /// Start from the last good backup (or --backup) and replay the logs after it.
    #[arg(long)]
    pub catastrophic: bool,
    /// The backup --catastrophic starts from (a name in backup-path, or a directory).
    #[arg(long, value_name = "BACKUP", requires = "catastrophic")]
    pub backup: Option<String>,
    /// Say what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `msdb_backup [-f config_file]`
#[derive(Args, Clone, Debug, Default)]
pub struct BackupArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print what was backed up (by default a successful backup prints nothing, for cron).
    #[arg(long)]
    pub verbose: bool,
}

/// `msdb_verify [-f config_file] [--json]`
#[derive(Args, Clone, Debug, Default)]
pub struct DbVerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `msdb_restore [-f config_file] [BACKUP]`
#[derive(Args, Clone, Debug, Default)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// The backup to restore: a name in backup-path, or a directory (default: the last good one).
    #[arg(value_name = "BACKUP")]
    pub backup: Option<String>,
    /// Say what would be restored; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `msdb_repair [-f config_file] [--dry-run]`
#[derive(Args, Clone, Debug, Default)]
pub struct RepairArgs {
    #[command(flatten)]
    pub common: Common,
    /// Say what each rung finds and would do; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mstore demo [DIR]`
#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Directory to create the demo store in.
    #[arg(default_value = "mstore-demo")]
    pub dir: PathBuf,
    /// Number of messages.
    #[arg(long, default_value_t = 5000)]
    pub messages: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `mstore ls [-f config_file] [DOMAIN]`
#[derive(Args, Clone, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only this domain.
    pub domain: Option<String>,
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mstore show [-f config_file] DOMAIN MAILBOX [--json]`
#[derive(Args, Clone, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub common: Common,
    /// The domain.
    pub domain: String,
    /// The mailbox (fully qualified IMAP name).
    pub mailbox: String,
    /// Output JSON (a stable shape: fields are only ever added).
    #[arg(long)]
    pub json: bool,
}

/// `mstore create [-f config_file] DOMAIN MAILBOX [--partition P]`
#[derive(Args, Clone, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    /// The domain.
    pub domain: String,
    /// The mailbox (fully qualified IMAP name).
    pub mailbox: String,
    /// Partition (default: the configuration's default-partition).
    #[arg(long)]
    pub partition: Option<String>,
}

/// `mstore append [-f config_file] DOMAIN MAILBOX FILE... [--flags F,...] [--date RFC3339]`
#[derive(Args, Clone, Debug)]
pub struct AppendArgs {
    #[command(flatten)]
    pub common: Common,
    /// The domain.
    pub domain: String,
    /// The mailbox (fully qualified IMAP name).
    pub mailbox: String,
    /// Message files (RFC 5322).
    pub files: Vec<PathBuf>,
    /// Flags, comma-separated: system flags with their backslash (\Seen), others are user flags.
    #[arg(long, value_delimiter = ',')]
    pub flags: Vec<String>,
    /// Internal date (RFC 3339); default: the file's modification time.
    #[arg(long)]
    pub date: Option<String>,
}

/// `mstore flags [-f config_file] DOMAIN MAILBOX UIDSET (+|-|=)FLAGS... [--json]`
#[derive(Args, Clone, Debug)]
pub struct FlagsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print the messages changed, with their new flags and modseqs, as JSON.
    #[arg(long)]
    pub json: bool,
    /// The domain.
    pub domain: String,
    /// The mailbox (fully qualified IMAP name).
    pub mailbox: String,
    /// UIDs as an IMAP sequence set: 1:*, 3,5:9, * (the highest UID in use).
    #[arg(value_name = "UIDSET")]
    pub uids: String,
    /// +FLAG adds, -FLAG removes, =FLAG sets exactly; a sign applies to the flags after it
    /// until the next sign (`+\Seen $Work -\Flagged`; `=` alone clears every flag).
    /// System flags with their backslash, others are keywords.
    #[arg(value_name = "(+|-|=)FLAGS", allow_hyphen_values = true, num_args = 1.., required = true)]
    pub flags: Vec<String>,
}

/// `mstore salvage [-f config_file] [--lost-found DIR]... [--from DIR]... [--image DEVICE_OR_IMAGE]... [-n] [--json]`
#[derive(Args, Clone, Debug)]
pub struct SalvageArgs {
    #[command(flatten)]
    pub common: Common,
    /// A lost+found directory to search; without any of --lost-found, --from and --image,
    /// the lost+found of every file system holding ms-path, the database home or a
    /// partition.
    #[arg(long = "lost-found", value_name = "DIR")]
    pub lost_found: Vec<std::path::PathBuf>,
    /// Another copy of the spool to take messages from (an rsync or tar copy, a photorec
    /// output directory, another server's copy); only ever read.
    #[arg(long, value_name = "DIR")]
    pub from: Vec<std::path::PathBuf>,
    /// A raw device or image to carve messages from (read-only, one sequential pass).
    #[arg(long, value_name = "DEVICE_OR_IMAGE")]
    pub image: Vec<std::path::PathBuf>,
    /// Say what would be put back, and from where; change nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Trust a message file of the store whose size and mtime match its record (do not
    /// read it to find damaged ones).
    #[arg(long)]
    pub quick: bool,
    /// Worker threads (default: the configuration's `threads`, else one per core).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
}

/// `mstore rescue [-f config_file] [--image DEVICE_OR_IMAGE]... [--from DIR]... [-n] [--json]`
#[derive(Args, Clone, Debug)]
pub struct RescueArgs {
    #[command(flatten)]
    pub common: Common,
    /// A raw device or image to carve messages from (read-only, read before anything is
    /// written).
    #[arg(long, value_name = "DEVICE_OR_IMAGE")]
    pub image: Vec<std::path::PathBuf>,
    /// Another copy of the spool to take messages from; only ever read.
    #[arg(long, value_name = "DIR")]
    pub from: Vec<std::path::PathBuf>,
    /// A lost+found directory to search besides those of the store's file systems.
    #[arg(long = "lost-found", value_name = "DIR")]
    pub lost_found: Vec<std::path::PathBuf>,
    /// Say what would be done; change nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: the configuration's `threads`, else one per core).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
}

/// `mstore ledger list|ack`
#[derive(Args, Clone, Debug)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub common: Common,
    /// What to do.
    #[command(subcommand)]
    pub action: Option<LedgerAction>,
}

/// `mstore ledger` subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum LedgerAction {
    /// List the losses still outstanding (with --all, every entry).
    List {
        /// Only this domain.
        domain: Option<String>,
        /// Only this mailbox (and, with -r, those below it).
        mailbox: Option<String>,
        /// With a mailbox: the mailboxes below it too.
        #[arg(short = 'r')]
        recursive: bool,
        /// Every entry, resolved ones included.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept the loss of messages no copy of which survives: verify stops reporting them.
    Ack {
        /// The domain.
        domain: String,
        /// The mailbox.
        mailbox: String,
        /// Only these UIDs (an IMAP sequence set: 3,5:9); default: every outstanding loss
        /// of the mailbox.
        #[arg(value_name = "UIDSET")]
        uids: Option<String>,
        /// Why (kept in the ledger with who acknowledged it).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
}

/// `mstore estimate [-f config_file] [domain ...]`
#[derive(Args, Clone, Debug)]
pub struct EstimateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Domains to estimate (default: the whole store).
    pub domains: Vec<String>,
    /// Message files to sample (in clusters of 16 consecutive messages of a mailbox).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sample: usize,
    /// CPU workers the repair will use (default: the configuration's `threads`, else one per core).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Print the estimate as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mstore verify [-f config_file] [-r] [domain [mailbox ...]]`
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// With mailbox arguments: also every mailbox below each.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Metadata only: do not read message bodies (no content hashes checked).
    #[arg(long)]
    pub quick: bool,
    /// Print every finding as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Print nothing when nothing is found (from cron: a mail only when there is work).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Worker threads (default: the configuration's `threads`, else one per core).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Requests kept in flight on the disk: threads that read message files ahead of the
    /// workers (default 32, which keeps a solid-state, virtual or spinning disk busy; they
    /// stand aside while the page cache holds the files; 0: the workers read).
    #[arg(long = "io-threads", value_name = "N")]
    pub io_threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// The domain (every domain when omitted).
    #[arg(value_name = "domain")]
    pub domain: Option<String>,
    /// Mailboxes (every mailbox of the domain when omitted).
    #[arg(value_name = "mailbox")]
    pub mailboxes: Vec<String>,
}

/// `mstore doctor [-f config_file] [--fix]`
#[derive(Args, Clone, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub common: Common,
    /// As root: apply the printed chown/chmod, then check again.
    #[arg(long)]
    pub fix: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mstore init [-f config_file]`
#[derive(Args, Clone, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub common: Common,
}

/// `mstore import maildir|mbox ...`
#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

/// What `mstore import` reads.
#[derive(Subcommand, Clone, Debug)]
pub enum ImportSource {
    /// Import a Maildir tree (Maildir++ `.a.b` and nested folders become sub-mailboxes).
    Maildir(ImportMaildirArgs),
    /// Import mbox files (plain, gzip, bzip2, xz or lzip).
    #[command(override_usage = "mstore import mbox [-f config_file] [OPTIONS] FILE... DOMAIN MAILBOX")]
    Mbox(ImportMboxArgs),
}

/// Options of both import commands.
#[derive(Args, Clone, Debug, Default)]
pub struct ImportCommon {
    /// Partition of the mailboxes the import creates (default: the configuration's default-partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Append messages even when the same bytes with the same internal date are already in the
    /// mailbox (by default a re-run skips them, so an interrupted import resumes).
    #[arg(long)]
    pub duplicates: bool,
    /// Messages per append batch (each batch is one commit).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub batch: usize,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mstore import maildir [-f config_file] PATH DOMAIN MAILBOX`
#[derive(Args, Clone, Debug)]
pub struct ImportMaildirArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub import: ImportCommon,
    /// The Maildir (or directory of folders) to import.
    pub path: PathBuf,
    /// The domain.
    pub domain: String,
    /// The mailbox to import into (created if missing); sub-folders go below it.
    pub mailbox: String,
}

/// `mstore import mbox [-f config_file] FILE... DOMAIN MAILBOX`
#[derive(Args, Clone, Debug)]
pub struct ImportMboxArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub import: ImportCommon,
    /// How `>From ` quoting is undone: mboxrd (one `>` off every `>+From ` line), mboxo (only
    /// `>From `), none (mboxcl2 files that rely on Content-Length).
    #[arg(long, default_value = "mboxrd", value_parser = ["mboxrd", "mboxo", "none"])]
    pub quoting: String,
    /// FILE... DOMAIN MAILBOX: the mbox files, then the domain and the mailbox (created if missing).
    #[arg(value_name = "FILE... DOMAIN MAILBOX", required = true, num_args = 3..)]
    pub args: Vec<String>,
}

/// `mstore export maildir|mbox ...`
#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub dest: ExportDest,
}

/// What `mstore export` writes.
#[derive(Subcommand, Clone, Debug)]
pub enum ExportDest {
    /// Export to a new Maildir (with dovecot-uidlist and dovecot-keywords).
    Maildir(ExportMaildirArgs),
    /// Export to a new mbox file (mboxrd, with Status/X-Status/X-Keywords).
    Mbox(ExportMboxArgs),
}

/// `mstore export maildir [-f config_file] [-r] DOMAIN MAILBOX DEST`
#[derive(Args, Clone, Debug)]
pub struct ExportMaildirArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also export every mailbox below MAILBOX, as Maildir++ folders `.a.b`.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The domain.
    pub domain: String,
    /// The mailbox.
    pub mailbox: String,
    /// The Maildir to create (it must not exist, or be an empty directory).
    pub dest: PathBuf,
}

/// `mstore export mbox [-f config_file] DOMAIN MAILBOX DEST`
#[derive(Args, Clone, Debug)]
pub struct ExportMboxArgs {
    #[command(flatten)]
    pub common: Common,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The domain.
    pub domain: String,
    /// The mailbox.
    pub mailbox: String,
    /// The mbox file to create (it must not exist).
    pub dest: PathBuf,
}

/// The umbrella command.
#[derive(Parser, Debug)]
#[command(
    name = "mstore",
    version = super::VERSION,
    propagate_version = true,
    disable_version_flag = true,
    about = "M-Store toolkit: the message store and its repair kit"
)]
pub struct MstoreCli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `mstore` subcommands. Those the guide names (`reconstruct`, `msdb_*`) also answer to
/// that name: see [`super::GUIDE_NAMES`].
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a demo store with the guide's domains, users and folders (its own ms.conf in DIR).
    Demo(DemoArgs),
    /// Create an empty store's directories and databases from the configuration.
    Init(InitArgs),
    /// List mailboxes.
    Ls(LsArgs),
    /// Show a mailbox's header and every index record.
    Show(ShowArgs),
    /// Create a mailbox.
    Create(CreateArgs),
    /// Append message files to a mailbox.
    Append(AppendArgs),
    /// Set, add or remove flags of messages (as IMAP UID STORE does).
    Flags(FlagsArgs),
    /// Read-only scan of the store: checksums, index against message files, bit rot, owners.
    Verify(VerifyArgs),
    /// Predict how long a full rebuild, a no-op, a verify and a rescue take here, from a
    /// sample of the store (read-only, no lock).
    Estimate(EstimateArgs),
    /// Check owners, modes and the configuration; print (or, as root, apply) the fix.
    Doctor(DoctorArgs),
    /// Rebuild the header, index and cache files of mailboxes from their message files.
    Reconstruct(ReconstructArgs),
    /// Bring the databases to their last committed state from their transaction logs.
    Recover(RecoverArgs),
    /// Back up the databases while the store runs (daily, from cron).
    Backup(BackupArgs),
    /// Verify every record of the databases and their transaction logs (read-only).
    DbVerify(DbVerifyArgs),
    /// Restore the databases from the last good (or a named) verified backup.
    Restore(RestoreArgs),
    /// Repair the databases: recover; else back up, quarantine the logs, salvage; else restore.
    Repair(RepairArgs),
    /// After a disk failure, the whole runbook in one command: databases, reconstruct,
    /// salvage from every lost+found, backup copies and images, verify.
    Rescue(RescueArgs),
    /// Bring back what the file system moved, lost or damaged: from lost+found, a backup
    /// copy of the spool, or a raw device.
    Salvage(SalvageArgs),
    /// The loss ledger: what repairs had to let go of; acknowledge a loss.
    Ledger(LedgerArgs),
    /// Import mail from a Maildir tree or mbox files, flags, keywords and dates kept.
    Import(ImportArgs),
    /// Export a mailbox to a Maildir or an mbox file, flags, keywords and dates kept.
    Export(ExportArgs),
}
