//! A progress bar on standard error for long runs, when standard error is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of a run over mailboxes; draws nothing unless stderr is a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    messages: AtomicU64,
}

impl Bar {
    /// A bar if `wanted` and standard error is a terminal.
    pub fn new(wanted: bool, what: &str) -> Bar {
        let bar = (wanted && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(&format!(
                "{what} {{bar:30}} {{pos}}/{{len}} mailboxes, {{msg}} [{{elapsed_precise}}, eta {{eta}}]"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            // Draw only once the run proves long.
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        Bar { bar, messages: AtomicU64::new(0) }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl crate::reconstruct::Progress for Bar {
    fn start(&self, mailboxes: u64) {
        if let Some(b) = &self.bar {
            b.set_length(mailboxes);
        }
    }
    fn mailbox_done(&self, messages: u64) {
        let m = self.messages.fetch_add(messages, Ordering::Relaxed) + messages;
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!("{m} messages"));
        }
    }
}

impl crate::verify::Progress for Bar {
    fn start(&self, mailboxes: u64) {
        crate::reconstruct::Progress::start(self, mailboxes);
    }
    fn mailbox_done(&self, messages: u64) {
        crate::reconstruct::Progress::mailbox_done(self, messages);
    }
}
