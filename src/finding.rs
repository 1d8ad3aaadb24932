//! Findings: what `mstore verify` and `mstore doctor` report, each with the exact command
//! that repairs it.

use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is damaged, missing, or inaccessible to the store.
    Error,
    /// Not damage, but something an administrator should look at.
    Warning,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Stable machine-readable kind (`index-record-corrupt`, `message-content`, `owner`, ...).
    pub kind: &'static str,
    /// Domain, if the finding concerns a mailbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Mailbox, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// The file or directory.
    pub path: String,
    /// Byte offset of the damage, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The message concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// The command that repairs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding about a path, without mailbox context.
    pub fn at(severity: Severity, kind: &'static str, path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            kind,
            domain: None,
            mailbox: None,
            path: path.into(),
            offset: None,
            uid: None,
            message: message.into(),
            fix: None,
        }
    }

    /// With a repair command.
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// One human line (two with the fix).
    pub fn render(&self) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut s = format!("{sev}: {}: {}", self.kind, self.path);
        if let Some(o) = self.offset {
            s += &format!(" @{o}");
        }
        if let Some(u) = self.uid {
            s += &format!(" (uid {u})");
        }
        s += &format!(": {}", self.message);
        if let Some(f) = &self.fix {
            s += &format!("\n    fix: {f}");
        }
        s
    }
}
