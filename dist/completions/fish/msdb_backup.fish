complete -c msdb_backup -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c msdb_backup -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c msdb_backup -l verbose -d 'Print what was backed up (by default a successful backup prints nothing, for cron)'
complete -c msdb_backup -s h -l help -d 'Print help'
