//! Output shared by the commands: exit statuses, and the stable JSON shapes other tools
//! read (`mstore show --json`).
//!
//! Exit statuses follow e2fsck: scripts can test bits. Every report implements [`Render`]:
//! text and JSON from the one value, and the exit status it calls for.

use serde::Serialize;

use crate::store::Mailbox;
use crate::util::hex;

/// Process exit statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Nothing wrong (or nothing to do).
    Ok = 0,
    /// Problems were found and repaired.
    Repaired = 1,
    /// A lesser finding or repair: `msdb_verify` found only a torn final record (normal
    /// recovery repairs it); `msdb_repair` repaired at rung 2 (salvage).
    Notice = 2,
    /// `msdb_repair` repaired only at rung 3 (restored a backup).
    Restored = 3,
    /// Problems were found and left unrepaired.
    Unrepaired = 4,
    /// Operational error: bad usage, cannot open or read what was asked.
    Error = 8,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

impl Exit {
    /// The status a command documents by number (`msdb_repair`'s 0-4, `msdb_verify`'s 0, 2,
    /// 4); a number no status has is an operational error.
    pub fn from_code(code: u8) -> Exit {
        match code {
            0 => Exit::Ok,
            1 => Exit::Repaired,
            2 => Exit::Notice,
            3 => Exit::Restored,
            4 => Exit::Unrepaired,
            _ => Exit::Error,
        }
    }

    /// The most severe of OR'ed status bits (8 failed, 4 left unrepaired, 2 notice,
    /// 1 repaired): a run over many mailboxes sums up that way.
    pub fn from_bits(bits: u8) -> Exit {
        [Exit::Error, Exit::Unrepaired, Exit::Notice, Exit::Repaired]
            .into_iter()
            .find(|e| bits & *e as u8 != 0)
            .unwrap_or(Exit::Ok)
    }
}

/// How a report is printed, decided once from the command line (`--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// Pretty-printed JSON for a program.
    Json,
}

impl Format {
    /// `--json` given or not.
    pub fn json_if(json: bool) -> Format {
        if json { Format::Json } else { Format::Text }
    }
}

/// Progress of a run over mailboxes (reconstruct, verify): the CLI draws a bar, tests
/// and embedding programs pass [`NoProgress`].
pub trait Progress: Sync {
    /// The run starts: this many mailboxes.
    fn start(&self, _mailboxes: u64) {}
    /// A mailbox is done; `messages` files were looked at.
    fn mailbox_done(&self, _messages: u64) {}
}

/// No progress output (for every kind of progress: runs over mailboxes, and imports).
pub struct NoProgress;
impl Progress for NoProgress {}

/// Whether a command changes anything, decided once from the command line (`-n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Make the changes.
    Apply,
    /// Change nothing; say what would be done.
    DryRun,
}

impl Run {
    /// `-n` given or not.
    pub fn dry_run_if(dry_run: bool) -> Run {
        if dry_run { Run::DryRun } else { Run::Apply }
    }
}

/// A command's report: the same value gives the text, the JSON (`Serialize`) and the
/// exit status. Every command prints its report through [`Render::print`].
pub trait Render: Serialize {
    /// The human-readable lines, each ending in a line break.
    fn text(&self) -> String;

    /// The exit status this report calls for.
    fn exit(&self) -> Exit;

    /// Write the report to `out` in `format`; returns [`Render::exit`].
    fn print(&self, format: Format, out: &mut dyn std::io::Write) -> std::io::Result<Exit> {
        match format {
            Format::Text => out.write_all(self.text().as_bytes())?,
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, self).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(self.exit())
    }
}

/// One message in `mstore show --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ShowMessage {
    /// UID.
    pub uid: u32,
    /// Internal date, RFC 3339 with its zone.
    pub internal_date: String,
    /// Where the internal date came from.
    pub date_source: &'static str,
    /// System flags then user flags, by name.
    pub flags: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the message file, hex.
    pub content_hash: String,
    /// Modification sequence.
    pub modseq: u64,
    /// The Date header, RFC 3339, if it parsed.
    pub sent_date: Option<String>,
}

/// `mstore show --json`: a mailbox's header and every index record. Stable: fields are
/// only ever added. A view of the open mailbox: the messages are rendered one at a time
/// as they are written, so printing a mailbox of any size takes memory for one line.
#[derive(Serialize)]
pub struct ShowReport<'a> {
    /// Domain.
    pub domain: String,
    /// Mailbox name (modified UTF-7, as commands take it).
    pub mailbox: String,
    /// The name decoded to UTF-8.
    pub mailbox_utf8: String,
    /// Partition.
    pub partition: String,
    /// Directory.
    pub path: String,
    /// Unique id, hex.
    pub unique_id: String,
    /// UID validity.
    pub uid_validity: u32,
    /// Last UID assigned.
    pub last_uid: u32,
    /// Highest modseq.
    pub highest_modseq: u64,
    /// Number of messages.
    pub message_count: usize,
    /// Sum of message sizes.
    pub total_size: u64,
    /// User flag names by slot (`null` for a free slot).
    pub user_flags: Vec<Option<String>>,
    /// Every message, by UID.
    pub messages: ShowMessages<'a>,
}

/// The messages of a [`ShowReport`], serialized one by one from the mailbox's records.
pub struct ShowMessages<'a>(&'a Mailbox);

impl Serialize for ShowMessages<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'a> ShowMessages<'a> {
    /// Each message, rendered when it is reached.
    pub fn iter(&self) -> impl Iterator<Item = ShowMessage> + 'a {
        let mb = self.0;
        mb.records().iter().map(move |r| ShowMessage::of(mb, r))
    }
}

impl ShowMessage {
    fn of(mb: &Mailbox, r: &crate::codec::index::MessageRecord) -> ShowMessage {
        let mut flags: Vec<String> = r.system_flags.names().map(str::to_string).collect();
        flags.extend(mb.user_flag_names(r.user_flags));
        ShowMessage {
            uid: r.uid,
            internal_date: crate::message::DateTime { unix: r.internal_date, offset_minutes: r.internal_offset }
                .to_rfc3339(),
            date_source: r.date_source.as_str(),
            flags,
            size: r.size,
            content_hash: hex(&r.content_hash),
            modseq: r.modseq,
            sent_date: r
                .sent_date
                .map(|d| crate::message::DateTime { unix: d, offset_minutes: r.sent_offset }.to_rfc3339()),
        }
    }
}

impl<'a> ShowReport<'a> {
    /// The view of an open mailbox.
    pub fn of(mb: &'a Mailbox) -> ShowReport<'a> {
        let place = mb.place();
        ShowReport {
            domain: place.domain.clone(),
            mailbox: place.name.to_string(),
            mailbox_utf8: place.name.display(),
            partition: place.partition.clone(),
            path: place.dir.display().to_string(),
            unique_id: hex(&mb.header().unique_id),
            uid_validity: mb.uid_validity(),
            last_uid: mb.last_uid(),
            highest_modseq: mb.highest_modseq(),
            message_count: mb.records().len(),
            total_size: mb.records().iter().map(|r| r.size).sum(),
            user_flags: mb.header().flags.clone(),
            messages: ShowMessages(mb),
        }
    }

    /// Human-readable rendering, written line by line.
    pub fn write_text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "mailbox      {}:{}", self.domain, self.mailbox_utf8)?;
        if self.mailbox != self.mailbox_utf8 {
            writeln!(out, "imap name    {}", self.mailbox)?;
        }
        writeln!(out, "partition    {} ({})", self.partition, self.path)?;
        writeln!(out, "unique id    {}", self.unique_id)?;
        writeln!(out, "uidvalidity  {}", self.uid_validity)?;
        writeln!(out, "last uid     {}    highest modseq {}", self.last_uid, self.highest_modseq)?;
        writeln!(out, "messages     {} ({} bytes)", self.message_count, self.total_size)?;
        let names: Vec<&str> = self.user_flags.iter().flatten().map(String::as_str).collect();
        writeln!(out, "user flags   {}", if names.is_empty() { "(none)".to_string() } else { names.join(" ") })?;
        writeln!(out)?;
        writeln!(out, "{:>8}  {:<25}  {:>9}  FLAGS", "UID", "INTERNALDATE", "SIZE")?;
        for m in self.messages.iter() {
            writeln!(out, "{:>8}  {:<25}  {:>9}  {}", m.uid, m.internal_date, m.size, m.flags.join(" "))?;
        }
        Ok(())
    }
}
