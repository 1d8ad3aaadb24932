complete -c msdb_restore -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c msdb_restore -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c msdb_restore -s n -l dry-run -d 'Say what would be restored; change nothing'
complete -c msdb_restore -l json -d 'Print the report as JSON'
complete -c msdb_restore -s h -l help -d 'Print help'
