//! `cargo xtask dist [--check]`: the man pages and shell completions, generated from the
//! clap definitions (`mstore::cli::command`) into `dist/` and checked in, so that a
//! package build needs no generator and a change of a command shows in review.
//!
//! - `dist/man/`: `mstore.1`, one page per subcommand (`mstore-ls.1`,
//!   `mstore-import-maildir.1`, ...), and one per guide name (`reconstruct.1`,
//!   `msdb_recover.1`, ...), each with its exit statuses, the configuration file and the
//!   pages to see also.
//! - `dist/completions/{bash,zsh,fish}/`: for `mstore` and each guide name, named as each
//!   shell looks them up (`mstore`, `_mstore`, `mstore.fish`).
//!
//! `--check` (and the test below, which `cargo test --workspace` runs in CI) fails when the
//! checked-in files differ from what the definitions give now: run `cargo xtask dist`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap_complete::Shell;

/// What `dist/` holds: relative path → contents.
pub fn generate() -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for prog in mstore::cli::program_names() {
        let cmd = mstore::cli::command(prog).context("a program name")?;
        man_pages(prog, cmd.clone(), &mut out)?;
        for (shell, dir, file) in [
            (Shell::Bash, "bash", prog.to_string()),
            (Shell::Zsh, "zsh", format!("_{prog}")),
            (Shell::Fish, "fish", format!("{prog}.fish")),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), prog, &mut buf);
            out.insert(Path::new("completions").join(dir).join(file), buf);
        }
    }
    Ok(out)
}

/// The page of `cmd` and, for `mstore`, of every subcommand below it.
fn man_pages(prog: &str, cmd: clap::Command, out: &mut BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Each page with the subcommand whose exit statuses it has (`import maildir`: import's).
    let mut stack = vec![(cmd, prog.to_string())];
    while let Some((c, sub)) = stack.pop() {
        let top = sub == prog;
        stack.extend(
            c.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| (s.clone(), if top { s.get_name().to_string() } else { sub.clone() })),
        );
        let name = c.get_display_name().unwrap_or(c.get_name()).to_string();
        let page = page(c, &sub, prog)?;
        out.insert(Path::new("man").join(format!("{name}.1")), page);
    }
    Ok(())
}

/// One man page: clap_mangen's sections, then EXIT STATUS, FILES, SEE ALSO.
fn page(cmd: clap::Command, sub: &str, prog: &str) -> Result<Vec<u8>> {
    let has_subcommands = cmd.get_subcommands().next().is_some();
    let man = clap_mangen::Man::new(cmd).manual("M-Store toolkit");
    let mut w = Vec::new();
    man.render_title(&mut w)?;
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    man.render_description_section(&mut w)?;
    man.render_options_section(&mut w)?;
    if has_subcommands {
        man.render_subcommands_section(&mut w)?;
    }
    // The subcommand a guide name stands for has the guide name's statuses.
    let sub = mstore::cli::GUIDE_NAMES.iter().find(|g| g.0 == sub).map(|g| g.1).unwrap_or(sub);
    let statuses = if prog == "mstore" && sub == "mstore" {
        vec![
            (0, "nothing wrong, nothing to do"),
            (1, "problems found and repaired"),
            (4, "problems found and left unrepaired"),
            (8, "operational error: bad usage, cannot open or read what was asked"),
        ]
    } else {
        mstore::cli::help::exit_statuses(sub)
    };
    let mut r = String::new();
    let examples = mstore::cli::help::examples(sub);
    if !examples.is_empty() {
        r += ".SH EXAMPLES\n";
        for (line, what) in examples {
            r += &format!(".TP\n\\fB{}\\fR\n{}\n", escape(line), escape(what));
        }
    }
    r += ".SH \"EXIT STATUS\"\n";
    for (code, what) in statuses {
        r += &format!(".TP\n\\fB{code}\\fR\n{}\n", escape(what));
    }
    r += ".SH FILES\n.TP\n\\fI/etc/md/store/ms.conf\\fR\n";
    r += "The configuration (another with \\fB\\-f\\fR \\fIconfig_file\\fR or the environment variable \\fBMS_CONF\\fR).\n";
    r += ".SH \"SEE ALSO\"\n";
    let see: Vec<String> =
        mstore::cli::program_names().filter(|p| *p != prog).map(|p| format!("\\fB{}\\fR(1)", escape(p))).collect();
    r += &format!("{}\n.PP\nThe M-Store administration guide; the README of the M-Store toolkit.\n", see.join(", "));
    w.extend_from_slice(r.as_bytes());
    Ok(w)
}

/// Text for roff: backslashes and leading dots or quotes made harmless.
fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// Write `dist/` (removing files it no longer has), or with `check` only compare.
pub fn run(check: bool) -> Result<()> {
    let root = crate::project_root().join("dist");
    let want = generate()?;
    let have = read_tree(&root)?;
    let stale: Vec<&PathBuf> = want.iter().filter(|(p, b)| have.get(*p) != Some(b)).map(|(p, _)| p).collect();
    let extra: Vec<&PathBuf> = have.keys().filter(|p| !want.contains_key(*p)).collect();
    if check {
        if !stale.is_empty() || !extra.is_empty() {
            bail!(
                "dist/ is not current ({} to rewrite: {:?}; {} to remove: {:?}): run `cargo xtask dist` and commit dist/",
                stale.len(),
                stale,
                extra.len(),
                extra
            );
        }
        println!("dist/ is current: {} files", want.len());
        return Ok(());
    }
    for p in extra {
        std::fs::remove_file(root.join(p)).with_context(|| format!("remove dist/{}", p.display()))?;
    }
    for p in &stale {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, &want[*p]).with_context(|| format!("write {}", path.display()))?;
    }
    println!("dist/: {} files, {} written", want.len(), stale.len());
    Ok(())
}

/// Every file below `root`: relative path → contents.
fn read_tree(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root)?.to_path_buf();
                out.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI's check that the checked-in man pages and completions are what the clap
    /// definitions give (fails after a change to a command until `cargo xtask dist`).
    #[test]
    fn dist_is_current() {
        if let Err(e) = run(true) {
            panic!("{e:#}");
        }
    }

    #[test]
    fn every_program_and_subcommand_has_a_page_and_completions() {
        let files = generate().expect("generate");
        for prog in mstore::cli::program_names() {
            for f in [
                format!("man/{prog}.1"),
                format!("completions/bash/{prog}"),
                format!("completions/zsh/_{prog}"),
                format!("completions/fish/{prog}.fish"),
            ] {
                assert!(files.contains_key(Path::new(&f)), "{f} missing");
            }
        }
        for sub in ["ls", "show", "verify", "doctor", "reconstruct", "import-maildir", "export-mbox", "db-verify"] {
            assert!(files.contains_key(Path::new(&format!("man/mstore-{sub}.1"))), "mstore-{sub}.1 missing");
        }
        let page = String::from_utf8(files[Path::new("man/reconstruct.1")].clone()).expect("utf-8");
        assert!(page.contains(".SH \"EXIT STATUS\"") && page.contains("nothing to do"), "{page}");
        assert!(page.contains("\\fB\\-r\\fR"), "{page}");
        let bash = String::from_utf8(files[Path::new("completions/bash/msdb_recover")].clone()).expect("utf-8");
        assert!(bash.contains("--point-in-time") && bash.contains("complete "), "{bash}");
    }
}
