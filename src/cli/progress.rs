//! The progress bar of long runs (reconstruct, verify, import, export): drawn on standard
//! error only when it is a terminal, and only once the run has lasted a second (a short
//! run prints no bar at all).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a run must last before its bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A progress bar; draws nothing unless wanted and standard error is a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    what: &'static str,
    started: Instant,
    shown: AtomicBool,
    messages: AtomicU64,
}

impl Bar {
    /// A bar for `what` ("reconstruct", "import", ...).
    pub fn new(wanted: bool, what: &'static str) -> Bar {
        let bar = (wanted && std::io::stderr().is_terminal())
            .then(|| ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden()));
        Bar { bar, what, started: Instant::now(), shown: AtomicBool::new(false), messages: AtomicU64::new(0) }
    }

    fn style(&self, unit: &str) {
        if let Some(b) = &self.bar {
            let what = self.what;
            let t = format!("{what} {{bar:30}} {unit}, {{msg}} [{{elapsed_precise}}, eta {{eta}}]");
            b.set_style(ProgressStyle::with_template(&t).unwrap_or_else(|_| ProgressStyle::default_bar()));
        }
    }

    /// Show the bar once the run proves long.
    fn update(&self, f: impl FnOnce(&ProgressBar)) {
        let Some(b) = &self.bar else { return };
        f(b);
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= SHOW_AFTER
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            b.set_draw_target(ProgressDrawTarget::stderr());
            b.enable_steady_tick(Duration::from_millis(250));
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn add_messages(&self, n: u64) -> u64 {
        self.messages.fetch_add(n, Ordering::Relaxed) + n
    }
}

impl crate::report::Progress for Bar {
    fn start(&self, mailboxes: u64) {
        self.style("{pos}/{len} mailboxes");
        self.update(|b| b.set_length(mailboxes));
    }
    fn mailbox_done(&self, messages: u64) {
        let m = self.add_messages(messages);
        self.update(|b| {
            b.inc(1);
            b.set_message(format!("{m} messages"));
        });
    }
}

impl crate::import::Progress for Bar {
    fn start(&self, total: u64, unit: crate::import::Unit) {
        self.style(if unit == crate::import::Unit::Bytes {
            "{bytes}/{total_bytes} {binary_bytes_per_sec}"
        } else {
            "{pos}/{len} files"
        });
        self.update(|b| b.set_length(total));
    }
    fn advance(&self, done: u64) {
        self.update(|b| b.inc(done));
    }
    fn messages(&self, count: u64) {
        let m = self.add_messages(count);
        self.update(|b| b.set_message(format!("{m} messages")));
    }
}
