complete -c reconstruct -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c reconstruct -s u -d 'Reconstruct a specific user\'s mailbox or mailboxes (arguments are in that user\'s personal hierarchy; INBOX is the user\'s own mailbox)' -r
complete -c reconstruct -s j -l threads -d 'Worker threads (default: the configuration\'s `threads`, else one per core)' -r
complete -c reconstruct -l io-threads -d 'Requests kept in flight on the disk: threads that read message files ahead of the workers (default 32, which keeps a solid-state, virtual or spinning disk busy; they stand aside while the page cache holds the files; 0: the workers read)' -r
complete -c reconstruct -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c reconstruct -s r -d 'Recursively reconstruct all sub-mailboxes of the mailboxes or prefixes given; with no mailbox arguments, every mailbox of the domain; with no domain either, every mailbox of the store'
complete -c reconstruct -s n -l dry-run -d 'Report what would change and write nothing'
complete -c reconstruct -l json -d 'Print every change as JSON on standard output'
complete -c reconstruct -l verify-content -d 'Read and hash every message even where the index looks current'
complete -c reconstruct -l quarantine -d 'Move stray and unreadable files into the mailbox\'s ms.quarantine/ directory'
complete -c reconstruct -l keep-uids -d 'Index a message file that has no surviving record under its own UID even when that UID is not above the last UID (default: re-append it under a new UID). Only when no expunge was in flight: the message of an interrupted expunge comes back'
complete -c reconstruct -l no-progress -d 'Never show a progress bar'
complete -c reconstruct -s h -l help -d 'Print help'
