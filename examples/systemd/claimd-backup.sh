#!/bin/sh
# A scheduled backup of a running claimd: log in as an admin, stream POST /admin/backup to a
# dated file, keep the last 14. Run it from cron or a systemd timer, e.g.
#   15 3 * * *  claimd  /usr/local/bin/claimd-backup.sh
# The admin's credentials come from a root-only file (CLAIMD_BACKUP_CREDENTIALS, two lines:
# username, password). The backup holds private keys and password hashes: keep it 0600.
set -eu
base=${CLAIMD_URL:-http://127.0.0.1:8080}
dir=${CLAIMD_BACKUP_DIR:-/var/backups/claimd}
credentials=${CLAIMD_BACKUP_CREDENTIALS:-/etc/claimd/backup-credentials}
umask 077
mkdir -p "$dir"
username=$(sed -n 1p "$credentials")
password=$(sed -n 2p "$credentials")
token=$(printf '{"username":"%s","password":"%s"}' "$username" "$password" |
  curl -fsS -H 'Content-Type: application/json' --data-binary @- "$base/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "claimd-backup: login failed" >&2; exit 1; }
file="$dir/claimd-$(date -u +%Y%m%dT%H%M%SZ).backup"
curl -fsS -X POST -H "Authorization: Bearer $token" -o "$file.partial" "$base/admin/backup"
mv "$file.partial" "$file"
ls -1t "$dir"/claimd-*.backup | tail -n +15 | xargs -r rm -f
echo "claimd-backup: wrote $file"
