//! What some tests need and a machine may lack: `../shared/corpus-ext` beside the checkout
//! (real-world mail; a fresh clone has none), root (chown, users, privilege switches),
//! Dovecot's `doveadm` (an independent reader of our Maildir export).
//!
//! Where it is missing, such a test says so in one line on standard error (written past the
//! test harness's capture, so it shows in `cargo test`'s output) and passes without running
//! what needs it. Under the variable of the need set to `1` (`.ci/run` sets both), it fails
//! instead: CI never skips silently (`.ci/run` also installs Dovecot and sets its variable). Every test that would return early uses this.

use std::io::Write;
use std::path::PathBuf;

/// A precondition some tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `../shared/corpus-ext` beside the checkout.
    Shared,
    /// Running as root (and able to create the unprivileged user `mstest`).
    Root,
    /// Dovecot's `doveadm` installed (Debian's `dovecot-core`; `.ci/run` installs it).
    Dovecot,
}

impl Need {
    /// The environment variable under which a missing precondition fails the test.
    pub fn variable(self) -> &'static str {
        match self {
            Need::Shared => "MSTORE_REQUIRE_SHARED",
            Need::Root => "MSTORE_REQUIRE_ROOT",
            Need::Dovecot => "MSTORE_REQUIRE_DOVECOT",
        }
    }
}

/// What becomes of a test whose precondition does not hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// Go on without the part that needs it, after this line.
    Skip(String),
    /// Fail with this message.
    Fail(String),
}

/// The decision, apart from its effects: `None` when the precondition holds; else skip, or
/// fail when `variable` (the value of [`Need::variable`]) is `1`.
pub fn decide(need: Need, holds: bool, variable: Option<&str>, test: &str, what: &str, why: &str) -> Option<Missing> {
    if holds {
        return None;
    }
    let var = need.variable();
    Some(if variable == Some("1") {
        Missing::Fail(format!("{test}: {why}, and {var}=1 says it must not be skipped: {what} cannot run"))
    } else {
        Missing::Skip(format!("SKIPPED in {test}: {what}: {why} (with {var}=1 this fails)"))
    })
}

/// The name of the running test (libtest names its thread after it).
fn test_name() -> String {
    std::thread::current().name().unwrap_or("a test").to_string()
}

/// Whether the test may run `what`, which needs `need` (`holds` says whether it is there).
/// `false` after the skip line; panics under the need's variable.
pub fn require(need: Need, holds: bool, what: &str, why: &str) -> bool {
    let var = std::env::var(need.variable()).ok();
    match decide(need, holds, var.as_deref(), &test_name(), what, why) {
        None => true,
        Some(Missing::Fail(m)) => panic!("{m}"),
        Some(Missing::Skip(line)) => {
            // Straight to the process's standard error: `eprintln!` is captured for passing tests.
            let _ = writeln!(std::io::stderr(), "{line}");
            false
        }
    }
}

/// `../shared/corpus-ext`, if it is there (see [`require`]).
pub fn shared_corpus(what: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus-ext"));
    let why = format!("{} is missing (a clone without ../shared beside it)", p.display());
    require(Need::Shared, p.is_dir(), what, &why).then_some(p)
}

/// Whether this process is root (see [`require`]).
pub fn root(what: &str) -> bool {
    require(Need::Root, nix::unistd::Uid::effective().is_root(), what, "not running as root")
}
