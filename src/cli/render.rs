//! [`Render`] for every report a command prints: the text lines, the JSON (the report's
//! own `Serialize`, unchanged) and the exit status, in one place per report. The CLI prints
//! each through [`super::emit`]; nothing else writes a report.
//!
//! Reports whose text depends on how the command ran (a dry run, `--fix`, the export's
//! destination) are wrapped in a small struct that serializes as the report itself.

use std::fmt::Write;
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::db::backup::BackupReport;
use crate::db::recover::RecoverReport;
use crate::db::repair::RepairReport;
use crate::db::restore::RestoreReport;
use crate::doctor::DoctorReport;
use crate::import::Summary as ImportSummary;
use crate::import::export::ExportSummary;
use crate::reconstruct::RunReport;
use crate::report::{Exit, Format, Render, ShowReport};
use crate::store::MailboxEntry;

impl Render for ShowReport<'_> {
    fn text(&self) -> String {
        let mut v = Vec::new();
        let _ = self.write_text(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
    /// Streamed: a mailbox of any size prints in the memory of one line.
    fn print(&self, format: Format, out: &mut dyn std::io::Write) -> std::io::Result<Exit> {
        match format {
            Format::Text => self.write_text(out)?,
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, self).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(self.exit())
    }
}

impl Render for RunReport {
    fn text(&self) -> String {
        self.render_text()
    }
    fn exit(&self) -> Exit {
        Exit::from_bits(self.exit_code())
    }
}

impl Render for crate::reconstruct::StoreReport {
    fn text(&self) -> String {
        self.render_text()
    }
    fn exit(&self) -> Exit {
        Exit::from_bits(self.exit_code())
    }
}

impl Render for crate::verify::VerifyReport {
    fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            let _ = writeln!(s, "{}", f.render());
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: could not scan: {e}");
        }
        let verdict = if self.findings.is_empty() && self.errors.is_empty() {
            "no problems found".to_string()
        } else {
            format!("{} finding(s)", self.findings.len())
        };
        let _ = writeln!(
            s,
            "verify: {} mailboxes, {} messages, {:.1} MiB read{}: {verdict}",
            self.mailboxes,
            self.messages,
            self.bytes_read as f64 / 1048576.0,
            if self.quick { " (quick: metadata only)" } else { "" },
        );
        s
    }
    fn exit(&self) -> Exit {
        // The scan's own rule (the inherent method).
        crate::verify::VerifyReport::exit(self)
    }
}

/// `mstore doctor`'s report, and whether `--fix` changed anything before it was made.
pub struct Doctored<'a> {
    /// The (last) check.
    pub report: &'a DoctorReport,
    /// `--fix` applied the repairs, then checked again.
    pub fixed: bool,
}

impl Serialize for Doctored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl Render for Doctored<'_> {
    fn text(&self) -> String {
        let r = self.report;
        let mut s = String::new();
        for f in &r.findings {
            let _ = writeln!(s, "{}", f.render());
        }
        if !r.fixes.is_empty() {
            let _ = writeln!(s, "\nTo repair ownership and permissions, run as root:");
            for f in &r.fixes {
                let _ = writeln!(s, "  {f}");
            }
        }
        let verdict = if r.findings.is_empty() {
            "no problems found".to_string()
        } else {
            format!("{} finding(s)", r.findings.len())
        };
        let _ = writeln!(s, "doctor: {} entries checked: {verdict}", r.checked);
        s
    }
    /// Warnings (a `config-writable` ms.conf, a mount point not entered) are printed and
    /// leave the status alone; errors left make it 4.
    fn exit(&self) -> Exit {
        match (self.report.has_errors(), self.fixed) {
            (true, _) => Exit::Unrepaired,
            (false, true) => Exit::Repaired,
            (false, false) => Exit::Ok,
        }
    }
}

/// `mstore ls`: one row per mailbox.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Listing(Vec<ListRow>);

/// A row of `mstore ls --json` (fields in the order the JSON has always had them).
#[derive(Serialize)]
struct ListRow {
    domain: String,
    mailbox: String,
    mailbox_utf8: String,
    partition: String,
    uid_validity: u32,
    unique_id: String,
}

impl Listing {
    /// The rows of a mailbox list.
    pub fn of(list: &[MailboxEntry]) -> Listing {
        Listing(
            list.iter()
                .map(|e| ListRow {
                    domain: e.domain.clone(),
                    mailbox: e.name.as_str().to_string(),
                    mailbox_utf8: e.name.display(),
                    partition: e.partition.clone(),
                    uid_validity: e.uid_validity,
                    unique_id: crate::util::hex(&e.unique_id),
                })
                .collect(),
        )
    }
}

impl Render for Listing {
    fn text(&self) -> String {
        let mut s = String::new();
        for e in &self.0 {
            let _ = if e.mailbox_utf8 != e.mailbox {
                writeln!(s, "{}\t{}\t{}\t({})", e.domain, e.mailbox, e.partition, e.mailbox_utf8)
            } else {
                writeln!(s, "{}\t{}\t{}", e.domain, e.mailbox, e.partition)
            };
        }
        s
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
}

impl Render for RecoverReport {
    fn text(&self) -> String {
        self.render()
    }
    fn exit(&self) -> Exit {
        if self.repaired { Exit::Repaired } else { Exit::Ok }
    }
}

impl Render for BackupReport {
    fn text(&self) -> String {
        format!(
            "backup {} at LSN {} ({} entries, {} files, {} bytes, {:.2}s); removed {} old backups, {} archived log segments\n",
            self.path.display(),
            self.end_lsn,
            self.entries,
            self.files,
            self.bytes,
            self.seconds,
            self.removed_backups.len(),
            self.removed_segments.len()
        )
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
}

impl Render for crate::db::verify::VerifyReport {
    fn text(&self) -> String {
        self.render()
    }
    fn exit(&self) -> Exit {
        Exit::from_code(self.exit_code())
    }
}

/// A report of a command that has a dry run (`-n`): the text says "would".
pub struct DryRun<'a, R> {
    /// The report.
    pub report: &'a R,
    /// Whether anything was changed.
    pub run: crate::report::Run,
}

impl<R: Serialize> Serialize for DryRun<'_, R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl Render for DryRun<'_, RestoreReport> {
    fn text(&self) -> String {
        self.report.render(self.run)
    }
    fn exit(&self) -> Exit {
        Exit::Ok
    }
}

impl Render for DryRun<'_, RepairReport> {
    fn text(&self) -> String {
        self.report.render(self.run)
    }
    fn exit(&self) -> Exit {
        Exit::from_code(self.report.exit_code())
    }
}

impl Serialize for ImportSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mailboxes: Vec<serde_json::Value> = self
            .mailboxes
            .iter()
            .map(|m| {
                serde_json::json!({
                    "mailbox": m.mailbox, "created": m.created, "imported": m.imported,
                    "already_present": m.already_present, "bytes": m.bytes,
                })
            })
            .collect();
        serde_json::json!({
            "mailboxes": mailboxes,
            "imported": self.imported(),
            "already_present": self.already_present(),
            "errors": self.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "notes": self.notes,
            "interrupted": self.interrupted,
        })
        .serialize(s)
    }
}

impl Render for ImportSummary {
    fn text(&self) -> String {
        self.render_text()
    }
    fn exit(&self) -> Exit {
        if self.errors.is_empty() && !self.interrupted { Exit::Ok } else { Exit::Unrepaired }
    }
}

/// What `mstore export` wrote, and where.
pub struct Exported<'a> {
    /// The summary.
    pub summary: &'a ExportSummary,
    /// The Maildir or mbox file written.
    pub dest: &'a Path,
}

impl Serialize for Exported<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.summary;
        let mailboxes: Vec<serde_json::Value> = e
            .mailboxes
            .iter()
            .map(|(name, n, b)| serde_json::json!({ "mailbox": name, "messages": n, "bytes": b }))
            .collect();
        serde_json::json!({
            "dest": self.dest.display().to_string(),
            "mailboxes": mailboxes,
            "messages": e.messages(),
            "changed": e.changed,
            "no_final_line_end": e.no_final_eol,
            "problems": e.problems,
        })
        .serialize(s)
    }
}

impl Render for Exported<'_> {
    fn text(&self) -> String {
        self.summary.render_text(self.dest)
    }
    fn exit(&self) -> Exit {
        if self.summary.problems.is_empty() { Exit::Ok } else { Exit::Unrepaired }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_come_from_the_report() {
        let mut d = DoctorReport::default();
        assert_eq!(Doctored { report: &d, fixed: false }.exit(), Exit::Ok);
        assert_eq!(Doctored { report: &d, fixed: true }.exit(), Exit::Repaired);
        d.findings.push(crate::finding::Finding::at(crate::finding::Severity::Error, "owner", "/x", "root-owned"));
        assert_eq!(Doctored { report: &d, fixed: true }.exit(), Exit::Unrepaired);
        let text = Doctored { report: &d, fixed: false }.text();
        assert!(text.starts_with("error: owner: /x: root-owned\n") && text.ends_with("1 finding(s)\n"), "{text}");
        let mut out = Vec::new();
        let exit = Doctored { report: &d, fixed: false }.print(crate::report::Format::Json, &mut out).expect("print");
        assert_eq!(exit, Exit::Unrepaired);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["findings"][0]["kind"], "owner");
    }
}
