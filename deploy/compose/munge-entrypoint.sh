#!/bin/sh
# munged for one system, beside the gateway: the site's key comes in read-only at /run/secrets/munge.key and is
# copied where munged accepts it (owned by munge, 0400); the socket directory /run/munge is a volume the gateway
# and worker mount, so they verify credentials made with this system's key.
set -eu
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
install -o munge -g munge -m 0400 /run/secrets/munge.key /etc/munge/munge.key
exec runuser -u munge -- /usr/sbin/munged --foreground --force --num-threads="${MUNGE_THREADS:-4}"
