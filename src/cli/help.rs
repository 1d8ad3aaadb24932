//! `mstore --help`: the subcommands grouped as an administrator looks for them (look
//! around, repair, the databases, move mail, set up), each with a one-line example.
//!
//! A new subcommand goes into one group of [`GROUPS`] with an example; until it does, the
//! help lists it under "Other" and a unit test fails.

use std::fmt::Write;

/// A group of subcommands in `mstore --help`.
pub struct Group {
    /// The heading.
    pub title: &'static str,
    /// Each subcommand of the group with an example command line (which must parse).
    pub commands: &'static [(&'static str, &'static str)],
}

/// The groups, in the order the help shows them.
pub const GROUPS: &[Group] = &[
    Group {
        title: "Look around (read-only)",
        commands: &[
            ("ls", "mstore ls example.com"),
            ("show", "mstore show example.com user/joe"),
            ("verify", "mstore verify --quick"),
            ("estimate", "mstore estimate"),
            ("doctor", "mstore doctor"),
        ],
    },
    Group {
        title: "Repair mailboxes",
        commands: &[
            ("reconstruct", "reconstruct -r example.com"),
            ("flags", "mstore flags example.com user/joe 1:* '-\\Deleted'"),
        ],
    },
    Group {
        title: "After a disk failure",
        commands: &[
            ("rescue", "mstore rescue --image /dev/sdb1 --from /backup/spool"),
            ("salvage", "mstore salvage --from /backup/spool"),
            ("ledger", "mstore ledger list example.com"),
        ],
    },
    Group {
        title: "Databases (the guide's msdb_* commands)",
        commands: &[
            ("db-verify", "msdb_verify"),
            ("recover", "msdb_recover"),
            ("repair", "msdb_repair -n"),
            ("backup", "msdb_backup"),
            ("restore", "msdb_restore -n"),
        ],
    },
    Group {
        title: "Move mail",
        commands: &[
            ("import", "mstore import mbox old.mbox example.com user/joe/old"),
            ("export", "mstore export maildir -r example.com user/joe /tmp/joe"),
            ("append", "mstore append example.com user/joe message.eml --flags '\\Seen'"),
        ],
    },
    Group {
        title: "Set up",
        commands: &[
            ("demo", "mstore demo ./mstore-demo"),
            ("init", "mstore init -f /etc/md/store/ms.conf"),
            ("create", "mstore create example.com user/joe/Drafts"),
        ],
    },
];

/// The examples of the M-Store administration guide's Table 5-2, with what each rebuilds.
/// `mstore demo` prints them; the man page of `reconstruct` lists them.
pub const GUIDE_EXAMPLES: [(&str, &str); 7] = [
    ("reconstruct -r example.com", "every mailbox of example.com"),
    ("reconstruct -r -u joe example.com", "all of joe@example.com's mailboxes"),
    ("reconstruct -u joe example.com INBOX", "only joe's INBOX (user/joe)"),
    ("reconstruct -r -u joe example.com pub", "joe's pub folder and everything below it"),
    ("reconstruct foo.com admin", "the shared folder admin of foo.com"),
    ("reconstruct -r example.com admin", "admin and all its sub-folders"),
    ("reconstruct -r esys.ca \"user/foobar\"", "the personal hierarchy of foobar@esys.ca"),
];

/// Not in the guide: `reconstruct -r` without a domain (the toolkit's extension).
pub const WHOLE_STORE_EXAMPLE: (&str, &str) =
    ("reconstruct -r", "every mailbox of every domain, in one run (not in the guide: the toolkit's)");

/// The examples of a subcommand: its line in [`GROUPS`], and for `reconstruct` the guide's
/// and the whole store.
pub fn examples(sub: &str) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> =
        GROUPS.iter().flat_map(|g| g.commands.iter()).filter(|c| c.0 == sub).map(|c| (c.1, "")).collect();
    if sub == "reconstruct" {
        out = GUIDE_EXAMPLES.to_vec();
        out.push(WHOLE_STORE_EXAMPLE);
    }
    out
}

/// The exit statuses of each subcommand (the README's tables), shown at the end of its
/// `--help` and in its man page. A subcommand not listed has 0 (done) and 8 (could not run).
pub const EXIT_STATUSES: &[(&str, &[(u8, &str)])] = &[
    (
        "reconstruct",
        &[
            (0, "nothing to do: every mailbox was consistent"),
            (1, "repaired"),
            (4, "problems found and left: a dry run with changes, stray files without --quarantine, unreadable files"),
            (8, "a mailbox or an argument could not be processed (the other mailboxes still were)"),
        ],
    ),
    ("verify", &[(0, "clean"), (4, "findings (each with the command that repairs it)"), (8, "could not scan")]),
    (
        "rescue",
        &[
            (0, "nothing was wrong"),
            (1, "repaired, and everything known came back"),
            (4, "something is still missing (kept in the loss ledger) or damaged: see the report and mstore verify"),
            (8, "could not run"),
        ],
    ),
    (
        "salvage",
        &[
            (0, "nothing to bring back"),
            (1, "messages brought back"),
            (4, "some known messages were found nowhere (they stay in the loss ledger), or could not be put back"),
            (8, "could not run"),
        ],
    ),
    (
        "ledger",
        &[
            (0, "no outstanding loss (list), or acknowledged nothing"),
            (1, "losses acknowledged"),
            (4, "outstanding losses listed"),
            (8, "could not run"),
        ],
    ),
    ("doctor", &[(0, "no problems"), (1, "--fix repaired every finding"), (4, "findings left"), (8, "could not run")]),
    (
        "recover",
        &[
            (0, "nothing was wrong"),
            (1, "repaired (a torn tail dropped, transactions dropped by the mode, damage set aside)"),
            (4, "refused: corruption left unrepaired; run msdb_repair"),
            (8, "could not run"),
        ],
    ),
    ("backup", &[(0, "backed up (silently)"), (4, "the databases are damaged"), (8, "could not run")]),
    (
        "db-verify",
        &[
            (0, "clean"),
            (2, "only damage that msdb_recover repairs without losing an acknowledged transaction"),
            (4, "corrupt: run msdb_repair"),
            (8, "the check could not run"),
        ],
    ),
    ("restore", &[(0, "restored (or, with -n, would restore)"), (8, "no usable backup, or could not run")]),
    (
        "repair",
        &[
            (0, "nothing was wrong"),
            (1, "repaired at rung 1 (recover)"),
            (2, "repaired at rung 2 (salvage: see the transactions lost)"),
            (3, "repaired at rung 3 (restored a backup)"),
            (4, "every rung failed; the evidence copy and quarantine are kept"),
            (8, "could not run"),
        ],
    ),
    ("import", &[(0, "all imported"), (4, "something was skipped, or the run was interrupted"), (8, "failed")]),
    ("export", &[(0, "exported"), (4, "problems (listed)"), (8, "failed")]),
];

/// The exit statuses of a subcommand, as lines.
pub fn exit_statuses(sub: &str) -> Vec<(u8, &'static str)> {
    match EXIT_STATUSES.iter().find(|e| e.0 == sub) {
        Some(e) => e.1.to_vec(),
        None => vec![(0, "done"), (8, "could not run (bad usage, cannot open or read what was asked)")],
    }
}

/// The name a subcommand's example uses for it: the guide's name where it has one.
fn listed_name(sub: &str) -> &str {
    super::GUIDE_NAMES.iter().find(|g| g.1 == sub).map(|g| g.0).unwrap_or(sub)
}

/// The grouped list of subcommands, as the help prints it.
pub fn grouped(cmd: &clap::Command) -> String {
    let mut s = String::new();
    let mut listed = Vec::new();
    let section = |s: &mut String, title: &str, commands: &mut dyn Iterator<Item = (&str, Option<&str>)>| {
        let _ = writeln!(s, "{title}:");
        for (name, example) in commands {
            let about =
                cmd.find_subcommand(name).and_then(|c| c.get_about()).map(|a| a.to_string()).unwrap_or_default();
            let shown = match listed_name(name) {
                n if n != name => format!("{name} ({n})"),
                _ => name.to_string(),
            };
            let _ = writeln!(s, "  {shown:<26} {about}");
            if let Some(e) = example {
                let _ = writeln!(s, "  {:<26}   $ {e}", "");
            }
        }
        let _ = writeln!(s);
    };
    for g in GROUPS {
        listed.extend(g.commands.iter().map(|c| c.0));
        section(&mut s, g.title, &mut g.commands.iter().map(|(n, e)| (*n, Some(*e))));
    }
    let others: Vec<&str> =
        cmd.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help" && !listed.contains(n)).collect();
    if !others.is_empty() {
        section(&mut s, "Other", &mut others.iter().map(|n| (*n, None)));
    }
    s
}

/// `mstore` with the grouped list in its help instead of clap's flat one, and each
/// subcommand's exit statuses at the end of its `--help`.
pub fn with_grouped_help(mut cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for n in names {
        let mut text = String::from("Exit status:\n");
        for (code, what) in exit_statuses(&n) {
            let _ = writeln!(text, "  {code}  {what}");
        }
        cmd = cmd.mut_subcommand(n, |c| c.after_help(text));
    }
    let list = grouped(&cmd).replace('{', "{{").replace('}', "}}");
    let template = format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{list}\
         The guide's names (reconstruct, msdb_recover, ...) run the same commands; \
         `mstore COMMAND --help` (or `man COMMAND`) tells more.\n\n\
         Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split an example the way a shell would (single quotes only, which is all they use).
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
        for c in line.chars() {
            match c {
                '\'' => (quoted, any) = (!quoted, true),
                ' ' if !quoted => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                    }
                    any = false;
                }
                c => (cur, any) = (cur + &c.to_string(), true),
            }
        }
        if any {
            out.push(cur);
        }
        out
    }

    #[test]
    fn every_subcommand_is_in_exactly_one_group_with_an_example_that_parses() {
        let cmd = super::super::command("mstore").expect("mstore");
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help").collect();
        for n in &names {
            let groups = GROUPS.iter().filter(|g| g.commands.iter().any(|c| c.0 == *n)).count();
            assert_eq!(groups, 1, "`mstore {n}` must be in exactly one group of cli::help::GROUPS (with an example)");
        }
        for g in GROUPS {
            for (name, example) in g.commands {
                assert!(names.contains(name), "{name} in the help groups is no subcommand");
                let argv = words(example);
                let prog = argv[0].as_str();
                assert_eq!(
                    argv.get(1).map(String::as_str).filter(|_| prog == "mstore").unwrap_or(prog),
                    listed_name(name),
                    "the example of {name} runs another command: {example}"
                );
                let c = super::super::command(prog).expect("a program name");
                if let Err(e) = c.try_get_matches_from(&argv) {
                    panic!("the example `{example}` does not parse: {e}");
                }
            }
        }
        let text = grouped(&cmd);
        assert!(!text.contains("Other:"), "{text}");
        assert!(text.contains("Look around") && text.contains("$ reconstruct -r example.com"), "{text}");
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(words("a  'b c' d'\\e'"), ["a", "b c", "d\\e"]);
    }
}
