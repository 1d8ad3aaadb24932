# /etc/cron.d/mstore: the M-Store toolkit's scheduled jobs, run as the runtime user.
# Disabled until you enable them: remove the "#" before each job (README, "Nightly").
# Both are quiet when all is well, so cron mails only what needs your attention.
#
# The daily database backup (the M-Store administration guide: at least once a day).
#15 3 * * *   sms   /usr/bin/msdb_backup -f /etc/md/store/ms.conf
#
# The nightly read-only scan (metadata only; drop --quick for a full content check).
#30 2 * * *   sms   /usr/bin/mstore verify --quick --quiet -f /etc/md/store/ms.conf
