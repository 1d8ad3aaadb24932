# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mstore_global_optspecs
    string join \n f= v/version h/help
end

function __fish_mstore_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mstore_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mstore_using_subcommand
    set -l cmd (__fish_mstore_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mstore -n "__fish_mstore_needs_command" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_needs_command" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_needs_command" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "demo" -d 'Create a demo store with the guide\'s domains, users and folders (its own ms.conf in DIR)'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "init" -d 'Create an empty store\'s directories and databases from the configuration'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "ls" -d 'List mailboxes'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "show" -d 'Show a mailbox\'s header and every index record'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "create" -d 'Create a mailbox'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "append" -d 'Append message files to a mailbox'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "flags" -d 'Set, add or remove flags of messages (as IMAP UID STORE does)'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "verify" -d 'Read-only scan of the store: checksums, index against message files, bit rot, owners'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "estimate" -d 'Predict how long a full rebuild, a no-op, a verify and a rescue take here, from a sample of the store (read-only, no lock)'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "doctor" -d 'Check owners, modes and the configuration; print (or, as root, apply) the fix'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "reconstruct" -d 'Rebuild the header, index and cache files of mailboxes from their message files'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "recover" -d 'Bring the databases to their last committed state from their transaction logs'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "backup" -d 'Back up the databases while the store runs (daily, from cron)'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "db-verify" -d 'Verify every record of the databases and their transaction logs (read-only)'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "restore" -d 'Restore the databases from the last good (or a named) verified backup'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "repair" -d 'Repair the databases: recover; else back up, quarantine the logs, salvage; else restore'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "rescue" -d 'After a disk failure, the whole runbook in one command: databases, reconstruct, salvage from every lost+found, backup copies and images, verify'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "salvage" -d 'Bring back what the file system moved, lost or damaged: from lost+found, a backup copy of the spool, or a raw device'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "ledger" -d 'The loss ledger: what repairs had to let go of; acknowledge a loss'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "import" -d 'Import mail from a Maildir tree or mbox files, flags, keywords and dates kept'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "export" -d 'Export a mailbox to a Maildir or an mbox file, flags, keywords and dates kept'
complete -c mstore -n "__fish_mstore_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand demo" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand demo" -l messages -d 'Number of messages' -r
complete -c mstore -n "__fish_mstore_using_subcommand demo" -l seed -d 'Seed of the generator' -r
complete -c mstore -n "__fish_mstore_using_subcommand demo" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand demo" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand init" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand init" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand init" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand ls" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand ls" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand ls" -l json -d 'Output JSON'
complete -c mstore -n "__fish_mstore_using_subcommand ls" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand show" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand show" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand show" -l json -d 'Output JSON (a stable shape: fields are only ever added)'
complete -c mstore -n "__fish_mstore_using_subcommand show" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand create" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand create" -l partition -d 'Partition (default: the configuration\'s default-partition)' -r
complete -c mstore -n "__fish_mstore_using_subcommand create" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand create" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand append" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand append" -l flags -d 'Flags, comma-separated: system flags with their backslash (\\Seen), others are user flags' -r
complete -c mstore -n "__fish_mstore_using_subcommand append" -l date -d 'Internal date (RFC 3339); default: the file\'s modification time' -r
complete -c mstore -n "__fish_mstore_using_subcommand append" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand append" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand flags" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand flags" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand flags" -l json -d 'Print the messages changed, with their new flags and modseqs, as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand flags" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s j -l threads -d 'Worker threads (default: the configuration\'s `threads`, else one per core)' -r
complete -c mstore -n "__fish_mstore_using_subcommand verify" -l io-threads -d 'Requests kept in flight on the disk: threads that read message files ahead of the workers (default 32, which keeps a solid-state, virtual or spinning disk busy; they stand aside while the page cache holds the files; 0: the workers read)' -r
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s r -d 'With mailbox arguments: also every mailbox below each'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -l quick -d 'Metadata only: do not read message bodies (no content hashes checked)'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -l json -d 'Print every finding as JSON on standard output'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s q -l quiet -d 'Print nothing when nothing is found (from cron: a mail only when there is work)'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand verify" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -l sample -d 'Message files to sample (in clusters of 16 consecutive messages of a mailbox)' -r
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -s j -l threads -d 'CPU workers the repair will use (default: the configuration\'s `threads`, else one per core)' -r
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -l json -d 'Print the estimate as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand estimate" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand doctor" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand doctor" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand doctor" -l fix -d 'As root: apply the printed chown/chmod, then check again'
complete -c mstore -n "__fish_mstore_using_subcommand doctor" -l json -d 'Print the findings as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s u -d 'Reconstruct a specific user\'s mailbox or mailboxes (arguments are in that user\'s personal hierarchy; INBOX is the user\'s own mailbox)' -r
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s j -l threads -d 'Worker threads (default: the configuration\'s `threads`, else one per core)' -r
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l io-threads -d 'Requests kept in flight on the disk: threads that read message files ahead of the workers (default 32, which keeps a solid-state, virtual or spinning disk busy; they stand aside while the page cache holds the files; 0: the workers read)' -r
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s r -d 'Recursively reconstruct all sub-mailboxes of the mailboxes or prefixes given; with no mailbox arguments, every mailbox of the domain; with no domain either, every mailbox of the store'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s n -l dry-run -d 'Report what would change and write nothing'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l json -d 'Print every change as JSON on standard output'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l verify-content -d 'Read and hash every message even where the index looks current'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l quarantine -d 'Move stray and unreadable files into the mailbox\'s ms.quarantine/ directory'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l keep-uids -d 'Index a message file that has no surviving record under its own UID even when that UID is not above the last UID (default: re-append it under a new UID). Only when no expunge was in flight: the message of an interrupted expunge comes back'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand reconstruct" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l to-lsn -d 'Keep only the transactions committed at or before log sequence number N' -r
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l to-time -d 'Keep only the transactions committed at or before this time (RFC 3339)' -r
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l backup -d 'The backup --catastrophic starts from (a name in backup-path, or a directory)' -r
complete -c mstore -n "__fish_mstore_using_subcommand recover" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l strict -d 'Refuse on any damage of the log, a torn final record included'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l point-in-time -d 'Stop at the first bad record, wherever it is, and open the databases there; report the committed transactions dropped. The rest of the log is moved into quarantine'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l catastrophic -d 'Start from the last good backup (or --backup) and replay the logs after it'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -s n -l dry-run -d 'Say what would be done; change nothing'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand recover" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand backup" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand backup" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand backup" -l verbose -d 'Print what was backed up (by default a successful backup prints nothing, for cron)'
complete -c mstore -n "__fish_mstore_using_subcommand backup" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand db-verify" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand db-verify" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand db-verify" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand db-verify" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand restore" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand restore" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand restore" -s n -l dry-run -d 'Say what would be restored; change nothing'
complete -c mstore -n "__fish_mstore_using_subcommand restore" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand restore" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand repair" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand repair" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand repair" -s n -l dry-run -d 'Say what each rung finds and would do; change nothing'
complete -c mstore -n "__fish_mstore_using_subcommand repair" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand repair" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -l image -d 'A raw device or image to carve messages from (read-only, read before anything is written)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -l from -d 'Another copy of the spool to take messages from; only ever read' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -l lost-found -d 'A lost+found directory to search besides those of the store\'s file systems' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -s j -l threads -d 'Worker threads (default: the configuration\'s `threads`, else one per core)' -r
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -s n -l dry-run -d 'Say what would be done; change nothing'
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand rescue" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -l lost-found -d 'A lost+found directory to search; without any of --lost-found, --from and --image, the lost+found of every file system holding ms-path, the database home or a partition' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -l from -d 'Another copy of the spool to take messages from (an rsync or tar copy, a photorec output directory, another server\'s copy); only ever read' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -l image -d 'A raw device or image to carve messages from (read-only, one sequential pass)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -s j -l threads -d 'Worker threads (default: the configuration\'s `threads`, else one per core)' -r
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -s n -l dry-run -d 'Say what would be put back, and from where; change nothing'
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -l json -d 'Print the report as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -l quick -d 'Trust a message file of the store whose size and mtime match its record (do not read it to find damaged ones)'
complete -c mstore -n "__fish_mstore_using_subcommand salvage" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -f -a "list" -d 'List the losses still outstanding (with --all, every entry)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -f -a "ack" -d 'Accept the loss of messages no copy of which survives: verify stops reporting them'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and not __fish_seen_subcommand_from list ack help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -s r -d 'With a mailbox: the mailboxes below it too'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -l all -d 'Every entry, resolved ones included'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -l json -d 'Print as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from ack" -l note -d 'Why (kept in the ledger with who acknowledged it)' -r
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from ack" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from ack" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from ack" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the losses still outstanding (with --all, every entry)'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "ack" -d 'Accept the loss of messages no copy of which survives: verify stops reporting them'
complete -c mstore -n "__fish_mstore_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -f -a "maildir" -d 'Import a Maildir tree (Maildir++ `.a.b` and nested folders become sub-mailboxes)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -f -a "mbox" -d 'Import mbox files (plain, gzip, bzip2, xz or lzip)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and not __fish_seen_subcommand_from maildir mbox help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -l partition -d 'Partition of the mailboxes the import creates (default: the configuration\'s default-partition)' -r
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -l batch -d 'Messages per append batch (each batch is one commit)' -r
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -l duplicates -d 'Append messages even when the same bytes with the same internal date are already in the mailbox (by default a re-run skips them, so an interrupted import resumes)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -l json -d 'Print the summary as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from maildir" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l partition -d 'Partition of the mailboxes the import creates (default: the configuration\'s default-partition)' -r
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l batch -d 'Messages per append batch (each batch is one commit)' -r
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l quoting -d 'How `>From ` quoting is undone: mboxrd (one `>` off every `>+From ` line), mboxo (only `>From `), none (mboxcl2 files that rely on Content-Length)' -r -f -a "mboxrd\t''
mboxo\t''
none\t''"
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l duplicates -d 'Append messages even when the same bytes with the same internal date are already in the mailbox (by default a re-run skips them, so an interrupted import resumes)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -l json -d 'Print the summary as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from mbox" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "maildir" -d 'Import a Maildir tree (Maildir++ `.a.b` and nested folders become sub-mailboxes)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "mbox" -d 'Import mbox files (plain, gzip, bzip2, xz or lzip)'
complete -c mstore -n "__fish_mstore_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -f -a "maildir" -d 'Export to a new Maildir (with dovecot-uidlist and dovecot-keywords)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -f -a "mbox" -d 'Export to a new mbox file (mboxrd, with Status/X-Status/X-Keywords)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and not __fish_seen_subcommand_from maildir mbox help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -s r -d 'Also export every mailbox below MAILBOX, as Maildir++ folders `.a.b`'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -l json -d 'Print the summary as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from maildir" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from mbox" -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from mbox" -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from mbox" -l no-progress -d 'Never show a progress bar'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from mbox" -l json -d 'Print the summary as JSON'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from mbox" -s h -l help -d 'Print help'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "maildir" -d 'Export to a new Maildir (with dovecot-uidlist and dovecot-keywords)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "mbox" -d 'Export to a new mbox file (mboxrd, with Status/X-Status/X-Keywords)'
complete -c mstore -n "__fish_mstore_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "demo" -d 'Create a demo store with the guide\'s domains, users and folders (its own ms.conf in DIR)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "init" -d 'Create an empty store\'s directories and databases from the configuration'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "ls" -d 'List mailboxes'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "show" -d 'Show a mailbox\'s header and every index record'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "create" -d 'Create a mailbox'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "append" -d 'Append message files to a mailbox'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "flags" -d 'Set, add or remove flags of messages (as IMAP UID STORE does)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "verify" -d 'Read-only scan of the store: checksums, index against message files, bit rot, owners'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "estimate" -d 'Predict how long a full rebuild, a no-op, a verify and a rescue take here, from a sample of the store (read-only, no lock)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "doctor" -d 'Check owners, modes and the configuration; print (or, as root, apply) the fix'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "reconstruct" -d 'Rebuild the header, index and cache files of mailboxes from their message files'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "recover" -d 'Bring the databases to their last committed state from their transaction logs'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "backup" -d 'Back up the databases while the store runs (daily, from cron)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "db-verify" -d 'Verify every record of the databases and their transaction logs (read-only)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "restore" -d 'Restore the databases from the last good (or a named) verified backup'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "repair" -d 'Repair the databases: recover; else back up, quarantine the logs, salvage; else restore'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "rescue" -d 'After a disk failure, the whole runbook in one command: databases, reconstruct, salvage from every lost+found, backup copies and images, verify'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "salvage" -d 'Bring back what the file system moved, lost or damaged: from lost+found, a backup copy of the spool, or a raw device'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "ledger" -d 'The loss ledger: what repairs had to let go of; acknowledge a loss'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "import" -d 'Import mail from a Maildir tree or mbox files, flags, keywords and dates kept'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "export" -d 'Export a mailbox to a Maildir or an mbox file, flags, keywords and dates kept'
complete -c mstore -n "__fish_mstore_using_subcommand help; and not __fish_seen_subcommand_from demo init ls show create append flags verify estimate doctor reconstruct recover backup db-verify restore repair rescue salvage ledger import export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "list" -d 'List the losses still outstanding (with --all, every entry)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "ack" -d 'Accept the loss of messages no copy of which survives: verify stops reporting them'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "maildir" -d 'Import a Maildir tree (Maildir++ `.a.b` and nested folders become sub-mailboxes)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "mbox" -d 'Import mbox files (plain, gzip, bzip2, xz or lzip)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "maildir" -d 'Export to a new Maildir (with dovecot-uidlist and dovecot-keywords)'
complete -c mstore -n "__fish_mstore_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "mbox" -d 'Export to a new mbox file (mboxrd, with Status/X-Status/X-Keywords)'
