complete -c msdb_recover -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c msdb_recover -l to-lsn -d 'Keep only the transactions committed at or before log sequence number N' -r
complete -c msdb_recover -l to-time -d 'Keep only the transactions committed at or before this time (RFC 3339)' -r
complete -c msdb_recover -l backup -d 'The backup --catastrophic starts from (a name in backup-path, or a directory)' -r
complete -c msdb_recover -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c msdb_recover -l strict -d 'Refuse on any damage of the log, a torn final record included'
complete -c msdb_recover -l point-in-time -d 'Stop at the first bad record, wherever it is, and open the databases there; report the committed transactions dropped. The rest of the log is moved into quarantine'
complete -c msdb_recover -l catastrophic -d 'Start from the last good backup (or --backup) and replay the logs after it'
complete -c msdb_recover -s n -l dry-run -d 'Say what would be done; change nothing'
complete -c msdb_recover -l json -d 'Print the report as JSON'
complete -c msdb_recover -s h -l help -d 'Print help'
