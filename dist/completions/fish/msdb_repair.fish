complete -c msdb_repair -s f -d 'Alternate location of the configuration file (default: $MS_CONF, else /etc/md/store/ms.conf)' -r -F
complete -c msdb_repair -s v -l version -d 'Display program version information on standard error, then exit (whatever else is on the command line)'
complete -c msdb_repair -s n -l dry-run -d 'Say what each rung finds and would do; change nothing'
complete -c msdb_repair -l json -d 'Print the report as JSON'
complete -c msdb_repair -s h -l help -d 'Print help'
