//! Project hygiene: words a reader cannot look up stay out of what users and readers see,
//! and the rule of `tests/support/require.rs` (what a test may skip, and when it must fail
//! instead) holds.

mod support;

use std::path::{Path, PathBuf};

use support::{Missing, Need, decide};

/// Every file a user or reader sees: sources, tests, docs, format specs, CI, packaging.
fn project_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["src", "tests", "xtask", "benches", "fuzz", "formats", "dist", "debian", ".ci"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    out.extend(["README.md", "ARCHITECTURE.md", "Cargo.toml"].iter().map(|f| root.join(f)));
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != "corpus" && name != "artifacts" {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_text_speaks_of_the_seed() {
    // What the team called the guide among themselves; users know it as the M-Store
    // administration guide. (Random-number and fuzz seeds are another word.)
    let banned = [concat!("the ", "seed"), concat!("seed", "'s"), concat!("seed", "-named")];
    let mut hits = Vec::new();
    for p in project_files() {
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        for (i, line) in text.lines().enumerate() {
            let l = line.to_lowercase();
            if banned.iter().any(|b| l.contains(b)) {
                hits.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "say \"the M-Store administration guide\" (or \"the guide\"):\n{}", hits.join("\n"));
}

#[test]
fn a_missing_precondition_skips_with_one_line_or_fails_under_its_variable() {
    assert_eq!(decide(Need::Shared, true, Some("1"), "t", "w", "y"), None);
    assert_eq!(decide(Need::Root, true, None, "t", "w", "y"), None);
    let Some(Missing::Skip(line)) = decide(Need::Shared, false, None, "cli::x", "reading corpus-ext", "it is missing")
    else {
        panic!("not a skip");
    };
    assert_eq!(line.lines().count(), 1);
    assert!(line.contains("cli::x") && line.contains("reading corpus-ext") && line.contains("it is missing"), "{line}");
    assert!(line.contains("MSTORE_REQUIRE_SHARED=1"), "{line}");
    // Only "1" turns it into a failure.
    for v in [Some("0"), Some(""), Some("yes"), None] {
        assert!(matches!(decide(Need::Root, false, v, "t", "w", "y"), Some(Missing::Skip(_))), "{v:?}");
    }
    let Some(Missing::Fail(m)) = decide(Need::Root, false, Some("1"), "verify::x", "chown", "not running as root")
    else {
        panic!("not a failure");
    };
    assert!(m.contains("verify::x") && m.contains("MSTORE_REQUIRE_ROOT=1") && m.contains("not running as root"), "{m}");
}

#[test]
fn ci_requires_every_precondition() {
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).expect(".ci/run");
    for need in [Need::Shared, Need::Root, Need::Dovecot] {
        assert!(ci.contains(&format!("export {}=1", need.variable())), ".ci/run must set {}=1", need.variable());
    }
}
